//! Steps about the archive: base backups, waits for archiving (by switch, by
//! `archive_timeout`, for an error window's first failure) and the pre-recovery audit with its
//! prediction. Each handler returns what it did (a `StepOutcome`); none decides a verdict.

use std::time::{Duration, Instant};

use crate::backend::{BackendError, Drill};
use crate::ledger::ResolvedTarget;
use crate::scenario::Target;

use super::super::backup_choice;
use super::super::events::{ArchiveWait, WaitHow};
use super::super::outcome::StepOutcome;
use super::super::pick;
use super::super::sql;
use super::super::state::StepCx;

pub(in crate::runner) async fn base_backup<D: Drill>(
    cx: &mut StepCx<'_, D>,
    id: &str,
) -> Result<StepOutcome, BackendError> {
    let b = cx
        .drill
        .base_backup(id, cx.scenario.timeouts.backup_seconds)
        .await?;
    let outcome = StepOutcome::BaseBackup {
        backup_id: b.backup_id.clone(),
        begin_lsn: b.begin_lsn,
        end_lsn: b.end_lsn,
        begin_wal: b.begin_wal.clone(),
        end_wal: b.end_wal.clone(),
    };
    cx.state.ledger.backups.push(b);
    Ok(outcome)
}

/// Poll `pg_stat_archiver` until it counts a failed attempt since the error window opened.
pub(in crate::runner) async fn wait_failure<D: Drill>(
    cx: &mut StepCx<'_, D>,
) -> Result<StepOutcome, BackendError> {
    let timeout = cx.archive_timeout();
    let (baseline, opened) = cx
        .state
        .window_opened
        .ok_or_else(|| BackendError::infra("no error window was opened"))?;
    let client = &cx.state.source()?.client;
    let until = Instant::now() + Duration::from_secs(timeout);
    loop {
        let stat = sql::archiver_stat(client).await?;
        if stat.failed_count > baseline {
            return Ok(StepOutcome::ArchiveFailing {
                failed_attempts: (stat.failed_count - baseline) as u64,
                after_seconds: opened.elapsed().as_secs_f64(),
            });
        }
        if Instant::now() >= until {
            return Err(BackendError::timeout(
                "pg_stat_archiver showed no failed attempt",
                Duration::from_secs(timeout),
                " of the error window (is anything being archived? set `backup.archive_timeout_seconds` and write during the window)",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait, without a switch, until the segment holding `write` is archived (`archive_timeout`).
pub(in crate::runner) async fn wait_archived<D: Drill>(
    cx: &mut StepCx<'_, D>,
    id: &str,
    write: &str,
) -> Result<StepOutcome, BackendError> {
    let timeout = cx.archive_timeout();
    let e = cx.state.ledger.entry_for_step(write)?.clone();
    let client = &cx.state.source()?.client;
    sql::wait_archived(client, &e.segment, Duration::from_secs(timeout)).await?;
    let stat = sql::archiver_stat(client).await?;
    let lag = stat
        .last_archived_time
        .map(|t| (t - e.commit_time).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .unwrap_or(0.0);
    cx.state.archive_waits.push(ArchiveWait {
        step: id.to_string(),
        segment: e.segment,
        how: WaitHow::ArchiveTimeout,
        seconds: lag,
    });
    Ok(StepOutcome::ArchivedWithoutSwitch {
        segment: e.segment,
        write: write.to_string(),
        lag_seconds: lag,
        archive_timeout_seconds: cx.scenario.backup.archive_timeout_seconds.unwrap_or(0),
    })
}

/// Audit `server_name`'s archive before recovery and predict, from the ledger, which writes
/// recovery will lose.
pub(in crate::runner) async fn audit<D: Drill>(
    cx: &mut StepCx<'_, D>,
    server_name: &str,
) -> Result<StepOutcome, BackendError> {
    let s = cx.scenario;
    let ledger = &cx.state.ledger;
    let named = s.recovery.backup.as_deref();
    // Random targets: predict for the widest span, from the earliest usable backup to the end
    // of the archive.
    let (url, report, resolved, chosen) = if s.recovery.target == Target::Random {
        let (url, report) = backup_choice::read(cx.drill.store(), server_name).await?;
        let range = pick::recoverable_range(ledger, named)
            .map_err(|e| BackendError::ledger("cannot pick random targets", e))?;
        (url, report, ResolvedTarget::Latest, range.floor.clone())
    } else {
        let found = backup_choice::for_target(
            cx.drill.store(),
            ledger,
            &s.recovery.target,
            named,
            server_name,
        )
        .await?;
        // The backup recovery will restore, chosen from the archive's catalogue; when it has
        // none, the ledger's choice (the recovery step then fails, saying why).
        let chosen = match found.chosen {
            Ok(c) => c.backup,
            Err(_) => ledger
                .choose_backup(&found.resolved, named)
                .map_err(|e| BackendError::ledger("cannot choose a base backup", e))?
                .clone(),
        };
        (found.url, found.report, found.resolved, chosen)
    };
    let expected = ledger
        .expected_at(&resolved, s.recovery.exclusive, &chosen)
        .map_err(|e| BackendError::ledger("ledger", e))?;
    let v = crate::audit::predict::verdict(&url, &report, &chosen.backup_id, &expected);
    let outcome = StepOutcome::Audited {
        gaps: v.gaps.clone(),
        prediction: v.prediction.clone(),
    };
    let archive = &mut cx.state.archive;
    archive.audit_gaps = v.gaps.iter().cloned().collect();
    archive.audited = true;
    archive.audit_predicted = v.predicted_lost_steps.iter().cloned().collect();
    cx.result.recovery.audit = Some(v);
    Ok(outcome)
}
