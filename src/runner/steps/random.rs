//! `target: random` in the runner: picks the targets from the ledger with the scenario's seed,
//! recovers each into its own instance and serverName (one after the other, or all at once),
//! verifies each against the ledger and releases it. Never decides anything but each target's
//! verdict and the scenario's summary of them.

use crate::backend::Keep;
use crate::backend::{BackendError, Drill, RecoveryAttempt, RecoveryRequest};
use crate::plan::{default_recovery_server_name, random_target_server_name};
use crate::scenario::{Compression, Expect, Scenario};

use super::super::events::{RecoveryObservation, ScenarioResult, Status, TargetResult};
use super::super::outcome::{
    PickRange, PickedTarget, Picks, Release, StepOutcome, TargetAttempt, TargetCheck,
    TargetVerification,
};
use super::super::pick;
use super::super::state::{DrillState, RandomTarget, StepCx};
use super::recover::{JudgedAt, verify_server};

/// The scenario's target as reports show it: `random: 6 targets, seed 1`.
pub(in crate::runner) fn describe(s: &Scenario) -> String {
    format!(
        "random: {} target(s) (time, lsn, xid), seed {}{}{}",
        s.recovery.count.unwrap_or(1),
        s.seed,
        if s.recovery.exclusive {
            ", exclusive"
        } else {
            ""
        },
        if s.recovery.parallel {
            ", recovered in parallel"
        } else {
            ""
        }
    )
}

/// The serverNames the recovered clusters archive to: `source-restored-1 … source-restored-6`.
pub(in crate::runner) fn server_names(s: &Scenario) -> String {
    let prefix = s
        .recovery
        .server_name
        .clone()
        .unwrap_or_else(|| default_recovery_server_name(&s.backup.server_name));
    let count = s.recovery.count.unwrap_or(1);
    if count == 1 {
        random_target_server_name(&prefix, 1)
    } else {
        format!(
            "{} … {}",
            random_target_server_name(&prefix, 1),
            random_target_server_name(&prefix, count)
        )
    }
}

/// Pick the targets, choose each one's base backup, and note which WAL segments the archive
/// holds (for loss explanations). Returns the picks, with the seed.
pub(in crate::runner) async fn pick<D: Drill>(
    cx: &mut StepCx<'_, D>,
    count: u32,
    seed: u64,
    source_server_name: &str,
    backup: Option<&str>,
) -> Result<StepOutcome, BackendError> {
    let (drill, st) = (&mut *cx.drill, &mut *cx.state);
    let range = pick::recoverable_range(&st.ledger, backup)
        .map_err(|e| BackendError::ledger("cannot pick random targets", e))?;
    let picks = pick::pick(&range, count, seed);
    let mut picked = Vec::new();
    let mut targets = Vec::new();
    for p in picks {
        let chosen = st
            .ledger
            .choose_backup(&p.target, backup)
            .map_err(|e| {
                BackendError::ledger(
                    format!("target {}: cannot choose a base backup", p.index),
                    e,
                )
            })?
            .clone();
        picked.push(PickedTarget {
            index: p.index,
            target: p.target.clone(),
            around: p.around.clone(),
            backup_step: chosen.step_id.clone(),
        });
        targets.push(RandomTarget {
            instance: format!("recovered-{}", p.index),
            result: TargetResult {
                index: p.index,
                count,
                kind: p.kind,
                target: p.target.to_string(),
                around: p.around.clone(),
                server_name: String::new(),
                backup_id: Some(chosen.backup_id.clone()),
                observation: RecoveryObservation::NotAttempted,
                rows_expected: None,
                rows_observed: None,
                verification: None,
                rto: None,
                status: Status::Error {
                    message: "not verified: the drill stopped before this target".into(),
                },
                reason: None,
            },
            pick: p,
            backup: chosen,
            server: None,
            reported: false,
        });
    }
    let outcome = StepOutcome::TargetsPicked(Picks {
        seed,
        count,
        range: PickRange::from(&range),
        picks: picked,
    });
    st.random = targets;
    st.archive.segments = drill
        .store()
        .wal_segments(source_server_name)
        .await?
        .into_keys()
        .collect();
    Ok(outcome)
}

/// What every random target's recovery shares (`PlanStep::RecoverTarget(s)`).
pub(in crate::runner) struct TargetRecovery<'a> {
    pub exclusive: bool,
    pub major: u32,
    pub source_server_name: &'a str,
    pub compression: Compression,
    pub wal_max_parallel: Option<u32>,
}

/// The recovery request for target `index` (1-based), archiving as `server_name`.
fn request(
    st: &mut DrillState,
    s: &Scenario,
    index: u32,
    r: &TargetRecovery<'_>,
    server_name: String,
) -> Result<RecoveryRequest, BackendError> {
    let t = target(st, index)?;
    t.result.server_name = server_name.clone();
    Ok(RecoveryRequest {
        major: r.major,
        source_server_name: r.source_server_name.to_string(),
        server_name,
        backup: t.backup.clone(),
        target: t.pick.target.clone(),
        exclusive: r.exclusive,
        compression: r.compression,
        wal_max_parallel: r.wal_max_parallel,
        timeout_seconds: s.timeouts.recovery_seconds,
        instance: t.instance.clone(),
    })
}

/// Recover target `index` into its own instance, archiving as `server_name`.
pub(in crate::runner) async fn recover_one<D: Drill>(
    cx: &mut StepCx<'_, D>,
    index: u32,
    r: &TargetRecovery<'_>,
    server_name: String,
) -> Result<StepOutcome, BackendError> {
    let req = request(cx.state, cx.scenario, index, r, server_name)?;
    let attempt = cx.drill.recover(&req).await?;
    Ok(StepOutcome::TargetRecovered {
        attempt: record(cx.state, cx.scenario, cx.result, index, attempt),
    })
}

/// Recover targets 1..=`count` at once, each into its own instance and serverName.
pub(in crate::runner) async fn recover_all<D: Drill>(
    cx: &mut StepCx<'_, D>,
    count: u32,
    r: &TargetRecovery<'_>,
    server_name_prefix: &str,
) -> Result<StepOutcome, BackendError> {
    let reqs = (1..=count)
        .map(|index| {
            let name = random_target_server_name(server_name_prefix, index);
            request(cx.state, cx.scenario, index, r, name)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let attempts = cx.drill.recover_many(&reqs).await?;
    let attempts = (1..=count)
        .zip(attempts)
        .map(|(index, attempt)| record(cx.state, cx.scenario, cx.result, index, attempt))
        .collect();
    Ok(StepOutcome::TargetsRecovered { count, attempts })
}

fn target(st: &mut DrillState, index: u32) -> Result<&mut RandomTarget, BackendError> {
    let n = st.random.len();
    st.random
        .get_mut((index as usize).wrapping_sub(1))
        .ok_or_else(|| {
            BackendError::infra(format!("random target {index} was not picked ({n} were)"))
        })
}

/// Keep what a recovery attempt of target `index` gave; returns how it went.
fn record(
    st: &mut DrillState,
    s: &Scenario,
    res: &mut ScenarioResult,
    index: u32,
    attempt: RecoveryAttempt,
) -> TargetAttempt {
    let Ok(t) = target(st, index) else {
        return TargetAttempt::NotPicked { index };
    };
    let label = t.result.reference();
    match attempt {
        RecoveryAttempt::Recovered { server, mut rto } => {
            if let Expect::Recovered(r) = &s.expect {
                rto.budget_seconds = r.rto_budget_seconds;
            }
            let d = TargetAttempt::Recovered {
                target: label,
                backup_id: t.backup.backup_id.clone(),
                seconds: rto.seconds,
                wal_segments_replayed: rto.wal_segments_replayed,
            };
            res.servers.recovery_postgres = Some(server.version.clone());
            t.result.observation = RecoveryObservation::Recovered;
            t.result.rto = Some(rto);
            t.server = Some(server);
            d
        }
        RecoveryAttempt::Failed { message, rto } => {
            t.result.observation = RecoveryObservation::Failed {
                message: message.clone(),
            };
            t.result.rto = rto;
            t.result.status = Status::Failed {
                reasons: vec![format!("recovery failed: {message}")],
            };
            TargetAttempt::Failed {
                target: label,
                message,
            }
        }
    }
}

/// Verify target `index` against the ledger, then release its instance (unless `--keep`).
pub(in crate::runner) async fn verify<D: Drill>(
    cx: &mut StepCx<'_, D>,
    index: u32,
) -> Result<StepOutcome, BackendError> {
    let StepCx {
        drill,
        scenario: s,
        state: st,
        result: res,
        ..
    } = cx;
    let keep = st.keep;
    let DrillState {
        random,
        ledger,
        archive,
        ..
    } = &mut **st;
    let t = random
        .get_mut((index as usize).wrapping_sub(1))
        .ok_or_else(|| BackendError::infra(format!("random target {index} was not picked")))?;
    let target = t.result.reference();
    let check = match t.server.take() {
        Some(server) => {
            let at = JudgedAt {
                target: &t.pick.target,
                backup_step: &t.backup.step_id,
                rto_seconds: t.result.rto.as_ref().map(|r| r.seconds),
            };
            let v = verify_server(&server, s, ledger, archive, at).await?;
            // Close the connection before the server goes away.
            drop(server);
            let (expected, observed) = (
                v.expected_rows.values().sum::<u64>(),
                v.observed_rows.values().sum::<u64>(),
            );
            t.result.rows_expected = Some(expected);
            t.result.rows_observed = Some(observed);
            t.result.status = if v.passed() {
                Status::Passed
            } else {
                Status::Failed {
                    reasons: v.failures.clone(),
                }
            };
            let check = TargetCheck::Verified {
                rows_expected: expected,
                rows_observed: observed,
                rows_lost: v.rows_lost,
                passed: v.passed(),
                explanation: v.explanation.first().cloned(),
            };
            t.result.verification = Some(v);
            check
        }
        // Its recovery failed: the verdict is already in its result.
        None => match &t.result.observation {
            RecoveryObservation::Failed { message } => TargetCheck::RecoveryFailed {
                message: message.clone(),
            },
            _ => TargetCheck::NotRecovered,
        },
    };
    let release = if keep == Keep::Everything {
        Release::Kept
    } else {
        drill.release(&t.instance).await?;
        Release::Released(t.instance.clone())
    };
    res.targets.push(t.result.clone());
    t.reported = true;
    Ok(StepOutcome::TargetVerified(TargetVerification {
        target,
        check,
        release,
    }))
}

/// At the end of a drill: close the connections of unverified targets and list the targets
/// the drill never got to, so a stopped run still shows every pick.
pub(in crate::runner) fn finish(st: &mut DrillState, res: &mut ScenarioResult) {
    for t in &mut st.random {
        t.server = None;
        if !t.reported {
            res.targets.push(t.result.clone());
            t.reported = true;
        }
    }
}

/// The scenario's verdict from its targets: passed when every picked target was recovered and
/// verified; otherwise failed, one reason per target that was not. Also sums up the
/// observation and the resolved targets for the scenario-level report fields.
pub(in crate::runner) fn judge(s: &Scenario, res: &mut ScenarioResult) -> Status {
    let count = s.recovery.count.unwrap_or(1) as usize;
    for t in &mut res.targets {
        t.reason = crate::runner::failure::of_target(t, &res.archive.faults);
    }
    res.recovery.resolved_target = Some(
        res.targets
            .iter()
            .map(|t| format!("{}: {}", t.index, t.target))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let failed_recoveries: Vec<&TargetResult> = res
        .targets
        .iter()
        .filter(|t| matches!(t.observation, RecoveryObservation::Failed { .. }))
        .collect();
    res.recovery.observation = match failed_recoveries.first() {
        None if res.targets.len() == count => RecoveryObservation::Recovered,
        None => RecoveryObservation::NotAttempted,
        Some(first) => RecoveryObservation::Failed {
            message: format!(
                "{} of {count} recoveries failed; target {}: {}",
                failed_recoveries.len(),
                first.label(),
                match &first.observation {
                    RecoveryObservation::Failed { message } => message.as_str(),
                    _ => "",
                }
            ),
        },
    };
    let mut reasons = Vec::new();
    for t in &res.targets {
        match &t.status {
            Status::Passed => {}
            Status::Failed { reasons: r } => reasons.push(format!(
                "target {} ({}): {}",
                t.label(),
                t.around,
                r.first().map(String::as_str).unwrap_or("failed")
            )),
            Status::Error { message } => {
                reasons.push(format!("target {} ({}): {message}", t.label(), t.around))
            }
        }
    }
    if res.targets.len() < count {
        reasons.push(format!(
            "{} of {count} targets were picked",
            res.targets.len()
        ));
    }
    if reasons.is_empty() {
        Status::Passed
    } else {
        Status::Failed { reasons }
    }
}
