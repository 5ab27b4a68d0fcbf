//! Faults that hit base backup and recovery themselves: the source crashed in the middle of a
//! base backup (and restarted from its own disk), an object-store error window over recovery's
//! reads, the recovering server killed mid-replay. Records what each did and saw in the
//! ledger's fault records so verification can attribute a loss; never decides a verdict.

use crate::backend::{
    BackendError, Drill, RecoveryErrors, RecoveryFaults, RecoveryFaultsSeen, RecoveryRestart,
};
use crate::ledger::{FaultRecord, InterruptedBackup, ReadErrors};
use crate::scenario::{CrashMode, OneSegment, RecoveryErrorWindow, ReplayRestart, WalSelectorSpec};
use crate::wal::{Lsn, SegmentName};

use super::super::outcome::{ArmedFault, Interrupted, StepOutcome, store_error};
use super::super::state::StepCx;

/// The fault record of a recovery error window.
pub(in crate::runner) const ERRORS_STEP: &str = "recovery-errors";
/// The fault record of a kill of the recovering server.
pub(in crate::runner) const RESTART_STEP: &str = "recovery-restart";

/// A base backup with the source crashed in the middle of it; the source restarts from its own
/// disk and later steps use it.
pub(in crate::runner) async fn interrupted_backup<D: Drill>(
    cx: &mut StepCx<'_, D>,
    id: &str,
    mode: CrashMode,
) -> Result<StepOutcome, BackendError> {
    cx.state.source = None;
    let out = cx
        .drill
        .base_backup_with_crash(id, mode, cx.scenario.timeouts.backup_seconds)
        .await?;
    cx.state.source = Some(out.restarted);
    let interrupted = Interrupted {
        step: id.to_string(),
        mode,
        backup_id: out.backup_id,
        status: out.status,
        tool_said: out.tool_said,
    };
    cx.state.ledger.faults.push(FaultRecord {
        step_id: id.to_string(),
        action: interrupted.to_string(),
        backup_interrupted: Some(InterruptedBackup {
            step_id: id.to_string(),
            backup_id: interrupted.backup_id.clone(),
            status: interrupted.status.clone(),
            tool_said: interrupted.tool_said.clone(),
        }),
        ..Default::default()
    });
    Ok(StepOutcome::BackupInterrupted(interrupted))
}

/// The segment a `from:` selector names.
fn segment_of<D: Drill>(
    cx: &StepCx<'_, D>,
    sel: &WalSelectorSpec,
) -> Result<SegmentName, BackendError> {
    match sel.one() {
        Some(OneSegment::Segment(s)) => Ok(s),
        Some(OneSegment::HoldingStep(step)) => Ok(cx.state.ledger.entry_for_step(&step)?.segment),
        None => Err(BackendError::infra("`from` names no single segment")),
    }
}

/// Resolve and arm the recovery's faults; they switch on when the restore starts.
pub(in crate::runner) async fn arm<D: Drill>(
    cx: &mut StepCx<'_, D>,
    errors: Option<&RecoveryErrorWindow>,
    restart: Option<&ReplayRestart>,
) -> Result<StepOutcome, BackendError> {
    let mut faults = RecoveryFaults::default();
    let mut armed = Vec::new();
    if let Some(w) = errors {
        let from_segment = w.from.as_ref().map(|f| segment_of(cx, f)).transpose()?;
        let fault = ArmedFault::ReadErrors {
            error: w.error,
            reads: w.requests,
            from_segment,
            seconds: w.seconds,
            failures: w.failures,
        };
        cx.state.ledger.faults.push(FaultRecord {
            step_id: ERRORS_STEP.into(),
            action: fault.to_string(),
            ..Default::default()
        });
        armed.push(fault);
        faults.errors = Some(RecoveryErrors {
            error: w.error,
            seconds: w.seconds,
            reads: w.requests,
            from_segment,
            failures: w.failures,
        });
    }
    if let Some(r) = restart {
        let e = cx.state.ledger.entry_for_step(&r.after_step)?;
        let fault = ArmedFault::Restart {
            mode: r.mode,
            after_step: r.after_step.clone(),
            after_lsn: e.commit_lsn,
        };
        faults.restart = Some(RecoveryRestart {
            after_lsn: e.commit_lsn,
            segment: e.segment,
            mode: r.mode,
        });
        cx.state.ledger.faults.push(FaultRecord {
            step_id: RESTART_STEP.into(),
            action: fault.to_string(),
            ..Default::default()
        });
        armed.push(fault);
    }
    cx.drill.arm_recovery_faults(&faults).await?;
    Ok(StepOutcome::RecoveryFaultsArmed { faults: armed })
}

/// After a recovery: what its armed faults saw, recorded in their fault records, and the
/// recover step's detail line with the outcome said in words (retried and recovered fully,
/// ended early, or failed, and why).
pub(in crate::runner) fn observe<D: Drill>(
    cx: &mut StepCx<'_, D>,
    recovery: StepOutcome,
) -> StepOutcome {
    let armed = cx
        .state
        .ledger
        .faults
        .iter()
        .any(|f| f.step_id == ERRORS_STEP || f.step_id == RESTART_STEP);
    if !armed {
        return recovery;
    }
    let seen = cx.drill.recovery_faults_seen();
    let failed = cx.state.recovery_failed.clone();
    let mut observed = Vec::new();
    if let Some(f) = cx
        .state
        .ledger
        .faults
        .iter_mut()
        .find(|f| f.step_id == ERRORS_STEP)
    {
        let error = cx
            .scenario
            .recovery
            .object_store_errors
            .as_ref()
            .map(|w| store_error(w.error))
            .unwrap_or("an error");
        let (outcome, read_errors) = read_outcome(&seen, error, failed.as_deref());
        f.action = format!("{}: {outcome}", f.action);
        f.read_errors = Some(read_errors);
        observed.push(outcome);
    }
    if let Some(f) = cx
        .state
        .ledger
        .faults
        .iter_mut()
        .find(|f| f.step_id == RESTART_STEP)
    {
        let said = match &seen.restart {
            Some(r) => format!(
                "the recovering server was killed {:.2}s into recovery with replay at {}, started again on the same data directory, and {}",
                r.killed_after_seconds,
                r.replay_lsn_at_kill,
                if failed.is_some() {
                    "failed after the restart"
                } else {
                    "resumed replay to promotion"
                }
            ),
            None => "the recovering server was never killed: replay did not reach the point".into(),
        };
        f.action = format!("{}: {said}", f.action);
        observed.push(said);
    }
    StepOutcome::RecoveredUnderFaults {
        recovery: Box::new(recovery),
        observed,
    }
}

/// Which of the three outcomes an error window over recovery's reads had, in words, and the
/// record verification attributes a loss with.
fn read_outcome(
    seen: &RecoveryFaultsSeen,
    error: &str,
    failed: Option<&str>,
) -> (String, ReadErrors) {
    let ended_before = seen
        .failed_segments
        .iter()
        .find(|s| !seen.served_segments.contains(s))
        .cloned();
    let mut r = ReadErrors {
        error: error.to_string(),
        errors_answered: seen.errors_answered,
        failed_segments: seen.failed_segments.clone(),
        ended_before: None,
        ended_before_lsn: None,
    };
    let n = seen.errors_answered;
    let outcome = match (failed, &ended_before) {
        _ if n == 0 => {
            "the error window failed no request: recovery's reads did not meet it".to_string()
        }
        (Some(_), _) => format!(
            "recovery failed: the object store answered {error} to {n} request(s) and the tools' retries gave up"
        ),
        (None, Some(seg)) => {
            r.ended_before = Some(*seg);
            r.ended_before_lsn = seg.start_lsn(crate::wal::DEFAULT_SEGMENT_SIZE).map(Lsn);
            format!(
                "recovery ended early: restore_command (barman-cloud-wal-restore) failed for segment {seg} while the object store answered {error} ({n} failed request(s), botocore's retries exhausted); PostgreSQL takes a failing restore_command for the end of the archive, so it promoted without the WAL from {seg} on"
            )
        }
        (None, None) => format!(
            "retried and recovered fully: the object store answered {error} to {n} request(s){}, and the tools' retries rode them out",
            if seen.failed_segments.is_empty() {
                String::new()
            } else {
                format!(" (reads of {})", join(&seen.failed_segments))
            }
        ),
    };
    (outcome, r)
}

fn join(segments: &[SegmentName]) -> String {
    let names: Vec<String> = segments.iter().map(ToString::to_string).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(failed: &[&str], served: &[&str], n: u64) -> RecoveryFaultsSeen {
        RecoveryFaultsSeen {
            errors_answered: n,
            failed_segments: failed
                .iter()
                .map(|s| SegmentName::parse(s).unwrap())
                .collect(),
            served_segments: served
                .iter()
                .map(|s| SegmentName::parse(s).unwrap())
                .collect(),
            restart: None,
        }
    }

    const S5: &str = "000000010000000000000005";
    const S6: &str = "000000010000000000000006";

    #[test]
    fn the_three_outcomes_are_told_apart() {
        let (o, r) = read_outcome(&seen(&[S5], &[S5, S6], 3), "503 SlowDown", None);
        assert!(o.starts_with("retried and recovered fully"), "{o}");
        assert_eq!(r.ended_before, None);
        let (o, r) = read_outcome(&seen(&[S5, S6], &[S5], 9), "503 SlowDown", None);
        assert!(
            o.starts_with("recovery ended early") && o.contains(S6),
            "{o}"
        );
        assert_eq!(r.ended_before, SegmentName::parse(S6));
        assert_eq!(r.ended_before_lsn, Some(Lsn(0x0600_0000)));
        let (o, _) = read_outcome(&seen(&[], &[], 4), "503 SlowDown", Some("boom"));
        assert!(o.starts_with("recovery failed"), "{o}");
        let (o, _) = read_outcome(&seen(&[], &[], 0), "503 SlowDown", None);
        assert!(o.contains("failed no request"), "{o}");
    }
}
