//! The embedded Azure Blob Storage endpoint: Azurite's blob service (the npm package `setup`
//! installs), one per local run that has Azure drills, on a free loopback port, its data in
//! the run directory, with the drills' container created. Started and stopped explicitly
//! (`Azurite::shutdown`); it dies with pgdrill (parent-death signal) and `Drop` kills it as a
//! fallback. Azurite serves the published development account; its key never reaches a log.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::backend::BackendError;
use crate::backend::azure::AzureTarget;
use crate::backend::objstore::create_azure_container;

use super::process::{self, RunAs, Spawned};
use super::toolchain::Toolchain;

/// How long Azurite may take to listen, and to stop.
const START_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// A running Azurite blob service.
pub struct Azurite {
    spawned: Spawned,
    /// Fires when Azurite prints that its service closed (its data is on disk).
    closed: Option<tokio::sync::oneshot::Receiver<()>>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The development account's container the run's drills use.
    pub target: AzureTarget,
}

impl Azurite {
    /// Start Azurite with its data under `dir`, wait until it listens (its own "listens on"
    /// line, then the container created through it), within a deadline.
    pub async fn start(
        toolchain: &Toolchain,
        dir: &Path,
        container: &str,
    ) -> Result<Self, BackendError> {
        let main = toolchain.check_azurite()?;
        std::fs::create_dir_all(dir).map_err(|e| BackendError::io(dir.display().to_string(), e))?;
        let me = RunAs {
            name: "self".into(),
            ids: None,
        };
        let mut c = process::command("node", &me, dir);
        c.arg(&main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--silent"])
            .args(["--skipApiVersionCheck", "--location"])
            .arg(dir)
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        process::die_with_parent(&mut c);
        let mut spawned = process::spawn(&mut c, "azurite")?;
        let stdout = spawned
            .child
            .stdout
            .take()
            .ok_or_else(|| BackendError::infra("azurite: no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let started = Instant::now();
        let base = loop {
            let left = START_DEADLINE.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, lines.next_line()).await {
                Err(_) => {
                    return Err(BackendError::timeout(
                        "azurite to listen",
                        START_DEADLINE,
                        "no `listens on` line",
                    ));
                }
                Ok(Ok(Some(line))) => {
                    if let Some(url) = line.split("listens on ").nth(1) {
                        break url.trim().trim_end_matches('/').to_string();
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    let status = spawned.wait().await.ok();
                    return Err(BackendError::infra(format!(
                        "azurite exited before listening ({status:?})"
                    )));
                }
            }
        };
        // Keep draining its output so it never blocks on a full pipe; report the close.
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut closed_tx = Some(closed_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "pgdrill::azurite", "{line}");
                if line.contains("successfully closed")
                    && let Some(tx) = closed_tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        let target = AzureTarget::azurite(&base, container);
        create_azure_container(&target, START_DEADLINE).await?;
        Ok(Azurite {
            spawned,
            closed: Some(closed),
            base,
            target,
        })
    }

    /// The process group id (for tests that check nothing is left).
    pub fn pid(&self) -> i32 {
        self.spawned.pgid
    }

    /// SIGTERM, wait within a deadline for Azurite's "successfully closed" (its data saved)
    /// or its exit; then SIGKILL what is left (under Node 20 the process lingers after closing)
    /// and reap it.
    pub async fn shutdown(mut self) {
        process::signal_group(self.spawned.pgid, libc::SIGTERM);
        let closed = self.closed.take();
        let saved = tokio::time::timeout(STOP_DEADLINE, async {
            tokio::select! {
                r = async { closed?.await.ok() } => r.is_some(),
                _ = self.spawned.child.wait() => true,
            }
        })
        .await
        .unwrap_or(false);
        if !saved {
            tracing::warn!("azurite did not close within {STOP_DEADLINE:?}: killing it");
        }
        process::signal_group(self.spawned.pgid, libc::SIGKILL);
        let _ = self.spawned.wait().await;
    }
}
