//! `pgdrill clean`: sweeps what crashed local runs and game days left under the pgdrill home
//! (servers, directories, the bucket prefixes they recorded), or lists it with `--dry-run`; and
//! `sweep_before`, the sweep every local `run` and `gameday` starts with, in one line on
//! stderr. Decides and removes nothing itself: the library's `sweep` does.

use std::path::Path;

use pgdrill::backend::credentials::{self, KeyPair};
use pgdrill::backend::local::stale::Verdict;
use pgdrill::backend::local::sweep::{self, Surveyed};
use pgdrill::error::{Error, exit};

use super::args::Common;

/// Arguments of `pgdrill clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// List what would be swept and what is left alone; stop, delete and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also sweep runs kept with `--keep` / PGDRILL_KEEP (once their pgdrill has exited).
    #[arg(long)]
    kept: bool,
    /// Delete the bucket prefixes crashed runs recorded on this endpoint (credentials from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); prefixes on other endpoints are left.
    #[arg(long)]
    s3_endpoint: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub async fn run(a: CleanArgs) -> anyhow::Result<i32> {
    let tc = a.common.toolchain()?;
    let s3 = match &a.s3_endpoint {
        Some(e) => Some((
            e.clone(),
            credentials::resolve(None, "--s3-endpoint").map_err(Error::Usage)?,
        )),
        None => None,
    };
    let surveyed =
        sweep::survey(&tc.home, a.kept).map_err(|e| Error::Infrastructure(e.to_string()))?;
    for s in surveyed
        .iter()
        .filter(|s| a.dry_run || !s.verdict.is_stale())
    {
        println!("{}", describe(s));
    }
    if a.dry_run {
        let n = surveyed.iter().filter(|s| s.verdict.is_stale()).count();
        println!(
            "dry run: {n} to sweep under {}",
            tc.home.join("runs").display()
        );
        return Ok(exit::PASSED);
    }
    let report = sweep::sweep(surveyed, s3.as_ref()).await;
    println!(
        "{}",
        report
            .summary()
            .unwrap_or_else(|| "nothing to sweep".into())
    );
    Ok(if report.errors().next().is_some() {
        exit::INFRASTRUCTURE
    } else {
        exit::PASSED
    })
}

/// One line per directory: what `clean` would do to it, or why it leaves it.
fn describe(s: &Surveyed) -> String {
    let id = s.id();
    match &s.verdict {
        Verdict::Stale { pid, kept } => {
            let mut what: Vec<String> = s
                .servers
                .iter()
                .map(|v| {
                    format!(
                        "stop the server on {} (postmaster pid {}, {} processes)",
                        v.data_dir.display(),
                        v.postmaster.pid,
                        v.processes()
                    )
                })
                .collect();
            what.extend(s.prefixes.iter().map(|p| format!("delete {}", p.url())));
            what.push(format!("remove {}", s.dir.display()));
            let kept = if *kept { "kept, " } else { "" };
            format!(
                "would sweep {id} ({kept}its pgdrill, pid {pid}, is gone): {}",
                what.join(", ")
            )
        }
        Verdict::Live { pid: Some(pid) } => format!("leaves {id}: pgdrill pid {pid} runs it"),
        Verdict::Live { pid: None } => format!("leaves {id}: a running pgdrill holds its lock"),
        Verdict::Kept { pid } => {
            format!("leaves {id}: kept by pgdrill pid {pid} (`pgdrill clean --kept` removes it)")
        }
        Verdict::Unowned(why) => format!("leaves {id}: {why}"),
    }
}

/// Sweep what crashed runs left before a local run or game day starts; say what in one line
/// on stderr. `s3`: the run's external endpoint and keys, for prefixes recorded there.
pub async fn sweep_before(home: &Path, s3: Option<&(String, KeyPair)>) {
    match sweep::sweep_stale(home, s3).await {
        Ok(report) => {
            if let Some(line) = report.summary() {
                eprintln!("pgdrill: {line}");
            }
        }
        Err(e) => eprintln!("pgdrill: sweeping {}: {e}", home.join("runs").display()),
    }
}
