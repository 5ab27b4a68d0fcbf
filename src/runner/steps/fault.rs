//! Fault steps: breaks the drill's own archive or source on purpose and records what it did in
//! the ledger, so verification can attribute every lost row. Never touches anything outside the
//! drill's prefix and never decides a verdict.

use std::time::{Duration, Instant};

use crate::backend::{BackendError, Drill};
use crate::ledger::{ArchiverImpact, FaultRecord, Moment};
use crate::scenario::{CrashMode, ErrorWindow, Fault, OneSegment, Scenario, WalSelector};
use crate::wal::SegmentName;

use super::super::monitor::{Seen, Watch};
use super::super::outcome::{Crash, StepOutcome, crash_how, describe_window};
use super::super::sql;
use super::super::state::{DrillState, StepCx};

/// Inject one fault; returns what it did.
pub(in crate::runner) async fn inject<D: Drill>(
    cx: &mut StepCx<'_, D>,
    id: &str,
    fault: &Fault,
) -> Result<StepOutcome, BackendError> {
    let archive_timeout = cx.archive_timeout();
    let StepCx {
        drill,
        scenario: s,
        state: st,
        ..
    } = cx;
    let (drill, s, st): (&mut D, &Scenario, &mut DrillState) = (drill, s, st);
    match fault {
        Fault::DeleteWal(WalSelector::Last(n)) => {
            let n = *n as usize;
            let server = &s.backup.server_name;
            // In order: timeline, log, segment.
            let mut segments: Vec<SegmentName> = drill
                .store()
                .wal_segments(server)
                .await?
                .into_keys()
                .collect();
            let tail = segments.split_off(segments.len().saturating_sub(n));
            if tail.len() < n {
                return Err(BackendError::infra(format!(
                    "delete_wal asks for the last {n} segment(s), the archive holds {}",
                    tail.len()
                )));
            }
            let mut keys = Vec::new();
            for seg in &tail {
                keys.extend(drill.store().delete_wal_segment(server, seg).await?);
            }
            st.ledger.faults.push(FaultRecord {
                step_id: id.to_string(),
                action: format!(
                    "deleted the newest {n} WAL segment(s) from the archive ({})",
                    SegmentName::list(&tail)
                ),
                segments_removed: tail.clone(),
                objects_deleted: keys.clone(),
                ..Default::default()
            });
            Ok(StepOutcome::WalDeleted {
                segments: tail,
                keys,
            })
        }
        Fault::DeleteWal(WalSelector::One(one)) => {
            let seg = match one {
                OneSegment::Segment(seg) => *seg,
                OneSegment::HoldingStep(step) => st.ledger.entry_for_step(step)?.segment,
            };
            // The segment must be in the archive before it can go missing from it; a crashed
            // source archives nothing more, so then it is either there or never will be.
            if !st.crashed {
                st.switch_and_wait(id, archive_timeout, Some(seg)).await?;
            }
            let keys = drill
                .store()
                .delete_wal_segment(&s.backup.server_name, &seg)
                .await?;
            st.ledger.faults.push(FaultRecord {
                step_id: id.to_string(),
                action: format!("deleted WAL segment {seg} from the archive"),
                segments_removed: vec![seg],
                objects_deleted: keys.clone(),
                ..Default::default()
            });
            Ok(StepOutcome::WalDeleted {
                segments: vec![seg],
                keys,
            })
        }
        Fault::CorruptWal(cw) => super::fault_content::corrupt_wal(drill, id, cw, s, st).await,
        Fault::DeleteBackup(db) => super::fault_content::delete_backup(drill, id, db, s, st).await,
        Fault::DeleteHistory(dh) => {
            super::fault_content::delete_history(drill, id, dh, s, st).await
        }
        Fault::TruncateDump(t) => super::logical::damage(drill, st, id, &t.step, Some(t)).await,
        Fault::DeleteDump(step) => super::logical::damage(drill, st, id, step, None).await,
        Fault::StaleExpressionIndex(si) => super::amcheck::stale_expression_index(id, si, st).await,
        Fault::Crash(mode) => crash(drill, id, *mode, st).await,
        Fault::ObjectStoreErrors(w) => open_window(drill, id, w, archive_timeout, st).await,
    }
}

/// Crash the source: read where archiving stands, kill it, and record which segments holding
/// ledger writes never reached the archive.
async fn crash<D: Drill>(
    drill: &mut D,
    id: &str,
    mode: CrashMode,
    st: &mut DrillState,
) -> Result<StepOutcome, BackendError> {
    let stat = sql::archiver_stat(&st.source()?.client).await?;
    // Watches of open windows end here, before the kill so each takes its last reading from a
    // live server: the window's exposure is the one at the crash.
    let open = std::mem::take(&mut st.watches);
    for (i, w) in open {
        let seen = w.finish(Duration::ZERO).await;
        record_seen(st, i, seen, Some(&stat));
    }
    st.source = None;
    drill.crash_source(mode).await?;
    st.crashed = true;
    let stand = st.ledger.stand(
        Moment::Crash,
        stat.server_time,
        stat.last_archived_wal.as_deref(),
    );
    st.ledger.faults.push(FaultRecord {
        step_id: id.to_string(),
        action: format!("crashed the source: {}", crash_how(mode)),
        segments_unarchived: stand.exposed_segments.clone(),
        archiver: Some(ArchiverImpact {
            stand: Some(stand.clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    Ok(StepOutcome::Crashed(Crash { mode, stand }))
}

/// Open an error window and start watching the archiver through it.
async fn open_window<D: Drill>(
    drill: &mut D,
    id: &str,
    w: &ErrorWindow,
    archive_timeout: u64,
    st: &mut DrillState,
) -> Result<StepOutcome, BackendError> {
    let client = drill.monitor_source().await?;
    let baseline = sql::archiver_stat(&client).await?;
    let started = Instant::now();
    st.window_opened = Some((baseline.failed_count, started));
    drill.open_error_window(w).await?;
    st.ledger.faults.push(FaultRecord {
        step_id: id.to_string(),
        action: describe_window(w),
        ..Default::default()
    });
    let watch = Watch::spawn(
        client,
        baseline,
        started,
        Duration::from_secs(w.seconds),
        Duration::from_secs(archive_timeout),
    );
    st.watches.push((st.ledger.faults.len() - 1, watch));
    Ok(StepOutcome::ErrorWindowOpened { window: w.clone() })
}

/// End every open watch (waiting up to `grace` for each to finish by itself) and record what
/// they saw in their fault records.
pub(in crate::runner) async fn finish_watches(st: &mut DrillState, grace: Duration) {
    let open = std::mem::take(&mut st.watches);
    for (i, w) in open {
        let seen = w.finish(grace).await;
        record_seen(st, i, seen, None);
    }
}

/// Turn a watch's readings into the fault record's `ArchiverImpact`; `crash` is the reading
/// taken just before a crash, used when the window had not closed yet.
fn record_seen(st: &mut DrillState, i: usize, seen: Seen, crash: Option<&sql::ArchiverStat>) {
    let stand = match (&seen.at_close, crash) {
        (Some(c), _) => Some((Moment::WindowEnd, c)),
        (None, Some(c)) => Some((Moment::Crash, c)),
        (None, None) => None,
    }
    .map(|(moment, c)| {
        st.ledger
            .stand(moment, c.server_time, c.last_archived_wal.as_deref())
    });
    let failed_attempts = match (&seen.at_close, crash) {
        // The window was still open at the crash: count up to the crash reading.
        (None, Some(c)) => (c.failed_count - seen.baseline_failed_count).max(0) as u64,
        _ => seen.failed_attempts,
    };
    if let Some(f) = st.ledger.faults.get_mut(i) {
        f.archiver = Some(ArchiverImpact {
            failing_after_seconds: seen.failing_after.map(|d| d.as_secs_f64()),
            failed_attempts,
            stand,
            caught_up_after_seconds: seen.caught_up_after.map(|d| d.as_secs_f64()),
        });
    }
}
