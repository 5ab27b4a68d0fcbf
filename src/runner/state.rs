//! What a scenario's execution keeps between steps (`DrillState`), and the context every step
//! handler gets (`StepCx`). Holds the source connection and the ledger; the only logic here is
//! the two things every kind of step does the same way: record a write, switch WAL and wait for
//! the archive. Never decides a verdict and never formats a report.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::Keep;
use crate::backend::{BackendError, Drill, Server};
use crate::ledger::{BackupRecord, Ledger, LedgerEntry, ResolvedTarget};
use crate::scenario::Scenario;
use crate::verify;
use crate::wal::SegmentName;

use super::events::{ArchiveWait, ScenarioResult, TargetResult, WaitHow};
use super::monitor::Watch;
use super::pick::Pick;
use super::sql;

/// What a scenario's execution keeps between steps.
#[derive(Default)]
pub(super) struct DrillState {
    pub(super) ledger: Ledger,
    pub(super) source: Option<Server>,
    pub(super) recovered: Option<Server>,
    pub(super) recovery_failed: Option<String>,
    pub(super) archive: verify::ArchiveFacts,
    pub(super) resolved: Option<ResolvedTarget>,
    pub(super) backup_step: Option<String>,
    /// The step whose error ended the run, if one did.
    pub(super) failed_step: Option<String>,
    /// A `crash` fault stopped the source for good.
    pub(super) crashed: bool,
    /// Archiver watches of open error windows, with the index of their fault record.
    pub(super) watches: Vec<(usize, Watch)>,
    pub(super) archive_waits: Vec<ArchiveWait>,
    /// `failed_count` and the time just before the latest error window opened.
    pub(super) window_opened: Option<(i64, Instant)>,
    pub(super) log: Vec<String>,
    /// `--keep`: recovered instances are never released before teardown.
    pub(super) keep: Keep,
    /// `target: random`: the picked targets and what became of each.
    pub(super) random: Vec<RandomTarget>,
    /// The logical backup a logical recovery restored: verification judges at its snapshot.
    pub(super) logical: Option<crate::ledger::DumpRecord>,
}

/// One picked `target: random` target and what became of it so far.
pub(super) struct RandomTarget {
    pub(super) pick: Pick,
    pub(super) backup: BackupRecord,
    /// The drill's name for its recovered instance.
    pub(super) instance: String,
    pub(super) server: Option<Server>,
    pub(super) result: TargetResult,
    /// Its result is in the scenario's result.
    pub(super) reported: bool,
}

impl DrillState {
    pub(super) fn source(&mut self) -> Result<&mut Server, BackendError> {
        self.source
            .as_mut()
            .ok_or_else(|| BackendError::infra("the source server is not running"))
    }

    /// Insert generated rows through the source and append the commit to the ledger.
    pub(super) async fn record_write(
        &mut self,
        seed: u64,
        step_id: &str,
        table: &str,
        first_id: u64,
        rows: u64,
        row_bytes: Option<u32>,
    ) -> Result<LedgerEntry, BackendError> {
        let seq = self.ledger.entries.len() as u64;
        let client = &mut self.source()?.client;
        let write = sql::Write {
            seed,
            seq,
            step_id,
            table,
            first_id,
            rows,
            row_bytes,
        };
        let e = sql::write_rows(client, &write).await?;
        self.ledger.entries.push(e.clone());
        Ok(e)
    }

    /// `pg_switch_wal()`, then wait until the finished segment (or `at_least`) is archived;
    /// the wait is recorded as archive lag under `step`.
    pub(super) async fn switch_and_wait(
        &mut self,
        step: &str,
        timeout: u64,
        at_least: Option<SegmentName>,
    ) -> Result<SegmentName, BackendError> {
        let src = self.source()?;
        let switched = sql::switch_wal(&src.client).await?;
        // Wait for the later of the two (timeline, log, segment).
        let seg = at_least.map_or(switched, |s| s.max(switched));
        let took = sql::wait_archived(&src.client, &seg, Duration::from_secs(timeout)).await?;
        self.archive_waits.push(ArchiveWait {
            step: step.to_string(),
            segment: seg,
            how: WaitHow::Switch,
            seconds: took.as_secs_f64(),
        });
        Ok(seg)
    }
}

/// Everything a step handler may use: the drill (the backend's side effects), the scenario,
/// the state kept between steps and the result being filled.
pub(super) struct StepCx<'a, D: Drill> {
    pub(super) drill: &'a mut D,
    pub(super) scenario: &'a Scenario,
    pub(super) fixtures_dir: &'a Path,
    /// The directory of the scenario file (`recovery.command` is relative to it).
    pub(super) scenario_dir: &'a Path,
    pub(super) state: &'a mut DrillState,
    pub(super) result: &'a mut ScenarioResult,
}

impl<D: Drill> StepCx<'_, D> {
    /// The scenario's archive wait, in seconds.
    pub(super) fn archive_timeout(&self) -> u64 {
        self.scenario.timeouts.archive_seconds
    }
}
