//! Ctrl-C for the commands that run drills or game days: the first asks for a clean teardown,
//! the second kills every process group pgdrill started. Never tears anything down itself.

use tokio::sync::watch;

use pgdrill::backend::local::process;
use pgdrill::error::exit;

/// First Ctrl-C: the returned receiver turns true (cancel and tear down). Second: kill every
/// process group and exit 130.
pub fn cancel_on_ctrl_c() -> watch::Receiver<bool> {
    let (cancel_tx, cancel_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\npgdrill: interrupted; tearing down (Ctrl-C again to kill everything now)");
            let _ = cancel_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                process::kill_all_groups();
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
    cancel_rx
}
