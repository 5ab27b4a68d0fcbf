//! Runs many scenarios, `jobs` at a time, each through `run_scenario`, and sums up.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::backend::{Backend, Keep};
use crate::scenario::LoadedScenario;

use super::events::{Event, RunInfo, ScenarioResult, Status};
use super::execute::{Emitter, run_scenario};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run_id: String,
    pub jobs: usize,
    /// `--keep`: leave every drill's resources in place.
    pub keep: Keep,
    pub fixtures_dir: PathBuf,
    pub report_dir: PathBuf,
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub results: Vec<ScenarioResult>,
    /// Scenario tasks that panicked and left no result.
    pub panicked: usize,
}

impl RunSummary {
    pub fn count(&self, f: impl Fn(&Status) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.status)).count()
    }
    pub fn passed(&self) -> usize {
        self.count(|s| matches!(s, Status::Passed))
    }
    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, Status::Failed { .. }))
    }
    pub fn errors(&self) -> usize {
        self.count(|s| matches!(s, Status::Error { .. }))
    }
}

/// Run every scenario and emit events on `tx` (RunStarted first, RunFinished last).
pub async fn run_all<B: Backend + 'static>(
    backend: Arc<B>,
    scenarios: Vec<LoadedScenario>,
    opts: &RunOptions,
    tx: mpsc::UnboundedSender<Event>,
    cancel: watch::Receiver<bool>,
) -> RunSummary {
    let started = std::time::Instant::now();
    let _ = tx.send(Event::RunStarted(RunInfo {
        run_id: opts.run_id.clone(),
        backend: backend.name().to_string(),
        started_at: Utc::now(),
        scenarios: scenarios.iter().map(|s| s.scenario.name.clone()).collect(),
        report_dir: opts.report_dir.clone(),
    }));
    let sem = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let mut tasks = Vec::new();
    for loaded in scenarios {
        let (backend, sem, cancel) = (backend.clone(), sem.clone(), cancel.clone());
        let emit = Emitter { tx: tx.clone() };
        let (fixtures, keep) = (opts.fixtures_dir.clone(), opts.keep);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let r = run_scenario(&*backend, &loaded, &fixtures, &emit, cancel, keep).await;
            emit.emit(Event::ScenarioFinished(Box::new(r.clone())));
            r
        }));
    }
    let mut summary = RunSummary::default();
    for t in tasks {
        match t.await {
            Ok(r) => summary.results.push(r),
            Err(e) => {
                tracing::error!("a scenario task panicked: {e}");
                summary.panicked += 1;
            }
        }
    }
    let _ = tx.send(Event::RunFinished {
        at: Utc::now(),
        seconds: started.elapsed().as_secs_f64(),
    });
    summary
}
