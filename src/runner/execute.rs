//! Runs one scenario's plan through a backend drill: opens it, walks the steps (each handled in
//! `steps/`), emits events, tears down and reaches the verdict. Knows nothing about processes,
//! Kubernetes or report formats, and no step's details.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, watch};

use crate::backend::Keep;
use crate::backend::{Backend, BackendError, Drill, SourceSpec};
use crate::plan::{self, PlanStep};
use crate::scenario::{Expect, LoadedScenario, Target};

use super::events::{
    ArchiveFacts, Event, Outcome, RecoveryFacts, RecoveryObservation, ScenarioInfo, ScenarioResult,
    Servers, Status,
};
use super::outcome::StepOutcome;
use super::state::{DrillState, StepCx};
use super::steps::random::TargetRecovery;
use super::steps::recover::Recovery;
use super::steps::{amcheck, archive, fault, fault_recovery, logical, random, recover, source};
use super::target;

/// Sends events for one scenario.
#[derive(Clone)]
pub struct Emitter {
    pub tx: mpsc::UnboundedSender<Event>,
}

impl Emitter {
    pub fn emit(&self, e: Event) {
        let _ = self.tx.send(e);
    }
}

/// Wait until the run is cancelled.
pub async fn cancelled(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Run one scenario from open to teardown. Never panics on drill failures: they become the
/// result's status.
pub async fn run_scenario<B: Backend>(
    backend: &B,
    loaded: &LoadedScenario,
    fixtures_dir: &Path,
    emit: &Emitter,
    cancel: watch::Receiver<bool>,
    keep: Keep,
) -> ScenarioResult {
    let s = &loaded.scenario;
    let plan = plan::build(s);
    let started = Instant::now();
    let recover_step = plan.steps.iter().find_map(|p| match p {
        PlanStep::Recover { server_name, .. } => Some(server_name.clone()),
        PlanStep::RecoverTarget { .. } | PlanStep::RecoverTargets { .. } => {
            Some(random::server_names(s))
        }
        _ => None,
    });
    let mut res = ScenarioResult {
        scenario: ScenarioInfo {
            name: s.name.clone(),
            file: loaded.path.clone(),
            description: s.description.clone(),
            tags: s.tags.clone(),
            seed: s.seed,
            backend: backend.name().to_string(),
            started_at: Utc::now(),
            seconds: 0.0,
        },
        servers: Servers {
            source_postgres: None,
            recovery_postgres: None,
            server_name: s.backup.server_name.clone(),
            recovery_server_name: recover_step.unwrap_or_default(),
            destination: String::new(),
        },
        recovery: RecoveryFacts {
            backup_id: None,
            backup_step: None,
            backup_fallback: None,
            recovery_target: if s.recovery.is_logical() {
                match s.recovery.backup.as_deref() {
                    Some(step) => format!("logical backup `{step}`"),
                    None => "the newest logical backup".to_string(),
                }
            } else if s.recovery.target == Target::Random {
                random::describe(s)
            } else {
                target::describe(&s.recovery.target, s.recovery.exclusive)
            },
            resolved_target: None,
            expected_outcome: match &s.expect {
                Expect::Recovered(r) => format!("recovered, {} rows lost", r.data_loss.rows),
                Expect::Failed(f) => format!("failed with `{}`", f.error_contains),
            },
            observation: RecoveryObservation::NotAttempted,
            audit: None,
            script: None,
        },
        outcome: Outcome::default(),
        status: Status::Passed,
        reason: None,
        archive: ArchiveFacts::default(),
        log: Vec::new(),
        kept: Vec::new(),
        targets: Vec::new(),
    };
    emit.emit(Event::ScenarioStarted {
        scenario: s.name.clone(),
        at: res.scenario.started_at,
    });
    let mut state = DrillState {
        keep,
        ..DrillState::default()
    };
    tracing::info!(scenario = %s.name, backend = backend.name(), "opening the drill");
    let outcome = match backend.open(s).await {
        Err(e) => Err(e),
        Ok(mut drill) => {
            res.servers.destination = drill.destination();
            let mut cx = StepCx {
                drill: &mut drill,
                scenario: s,
                fixtures_dir,
                scenario_dir: loaded.path.parent().unwrap_or(Path::new(".")),
                state: &mut state,
                result: &mut res,
            };
            let r = tokio::select! {
                r = execute(&mut cx, &plan.steps, emit) => r,
                _ = cancelled(cancel) => Err(BackendError::Cancelled),
            };
            // Close connections before the servers go away.
            fault::finish_watches(&mut state, Duration::ZERO).await;
            state.source = None;
            state.recovered = None;
            random::finish(&mut state, &mut res);
            tracing::info!(scenario = %s.name, keep = ?keep, "tearing the drill down");
            res.kept = drill.teardown(keep).await;
            r
        }
    };
    res.log = std::mem::take(&mut state.log);
    res.archive.faults = state.ledger.faults.clone();
    res.archive.archive_waits = std::mem::take(&mut state.archive_waits);
    res.status = match outcome {
        // A step (a base backup, an archive wait) failed the way the scenario expects.
        Err(e)
            if !matches!(e, BackendError::Cancelled)
                && matches!(&s.expect, Expect::Failed(f) if e.to_string().contains(&f.error_contains)) =>
        {
            res.recovery.observation = RecoveryObservation::StepFailed {
                step: state.failed_step.clone().unwrap_or_default(),
                message: e.to_string(),
            };
            Status::Passed
        }
        Err(e) => Status::Error {
            message: e.to_string(),
        },
        Ok(()) => {
            let mut status = if s.recovery.target == Target::Random {
                random::judge(s, &mut res)
            } else {
                judge(&s.expect, &res, state.recovery_failed.as_deref())
            };
            if let Expect::Recovered(r) = &s.expect
                && let Some(want) = &r.backup
                && res.recovery.backup_step.as_ref() != Some(want)
            {
                status = add_reasons(
                    status,
                    vec![format!(
                        "recovery restored the backup of step `{}`, the scenario expects step `{want}`",
                        res.recovery.backup_step.as_deref().unwrap_or("none")
                    )],
                );
            }
            if let (Some(want), Some(got)) = (s.expect.audit(), &res.recovery.audit) {
                let unmet = crate::audit::predict::check_expectation(want, &state.ledger, got);
                status = add_reasons(status, unmet);
            }
            status = add_reasons(status, amcheck::unmet(s, &res));
            status
        }
    };
    res.reason = super::failure::of_scenario(&res);
    res.scenario.seconds = started.elapsed().as_secs_f64();
    res
}

/// Add failure reasons to a verdict (an error stays an error).
fn add_reasons(status: Status, more: Vec<String>) -> Status {
    match status {
        _ if more.is_empty() => status,
        Status::Passed => Status::Failed { reasons: more },
        Status::Failed { mut reasons } => {
            reasons.extend(more);
            Status::Failed { reasons }
        }
        e @ Status::Error { .. } => e,
    }
}

fn judge(expect: &Expect, res: &ScenarioResult, failed: Option<&str>) -> Status {
    match (expect, failed) {
        (Expect::Failed(f), Some(msg)) if msg.contains(&f.error_contains) => Status::Passed,
        (Expect::Failed(f), Some(msg)) => Status::Failed {
            reasons: vec![format!(
                "recovery failed, but not with `{}`: {msg}",
                f.error_contains
            )],
        },
        (Expect::Failed(f), None) => Status::Failed {
            reasons: vec![format!(
                "expected recovery to fail with `{}`, but it succeeded",
                f.error_contains
            )],
        },
        (Expect::Recovered(_), Some(msg)) => Status::Failed {
            reasons: vec![format!("recovery failed: {msg}")],
        },
        (Expect::Recovered(_), None) => match &res.outcome.verification {
            Some(v) if v.passed() => Status::Passed,
            Some(v) => Status::Failed {
                reasons: v.failures.clone(),
            },
            None => Status::Error {
                message: "recovery was not verified".into(),
            },
        },
    }
}

async fn execute<D: Drill>(
    cx: &mut StepCx<'_, D>,
    steps: &[PlanStep],
    emit: &Emitter,
) -> Result<(), BackendError> {
    let name = &cx.scenario.name;
    let t0 = Instant::now();
    for step in steps {
        let (id, kind) = (step.id(), step.kind());
        emit.emit(Event::StepStarted {
            scenario: name.clone(),
            step: id.clone(),
            kind: kind.into(),
            at: Utc::now(),
        });
        tracing::debug!(scenario = %name, step = %id, kind, "step");
        let began = Instant::now();
        let outcome = match do_step(cx, step).await {
            Ok(o) => o,
            Err(e) => {
                cx.state.failed_step = Some(id.clone());
                cx.state.log.push(format!(
                    "[{:>7.2}s] {id} ({kind}): ERROR {e}",
                    t0.elapsed().as_secs_f64()
                ));
                return Err(e);
            }
        };
        cx.state.log.push(format!(
            "[{:>7.2}s] {id} ({kind}): {outcome}",
            t0.elapsed().as_secs_f64()
        ));
        emit.emit(Event::StepFinished {
            scenario: name.clone(),
            step: id,
            kind: kind.into(),
            seconds: began.elapsed().as_secs_f64(),
            outcome,
        });
        if cx.state.recovery_failed.is_some() {
            break;
        }
    }
    Ok(())
}

/// One step, to its handler; returns what it did.
async fn do_step<D: Drill>(
    cx: &mut StepCx<'_, D>,
    step: &PlanStep,
) -> Result<StepOutcome, BackendError> {
    match step {
        PlanStep::StartSource { .. } => {
            let spec = SourceSpec::of_step(step)
                .ok_or_else(|| BackendError::infra("a start_source step without a source"))?;
            source::start(cx, &spec).await
        }
        PlanStep::CreateTables { tables } => source::create_tables(cx, tables).await,
        PlanStep::LoadFixture { path } => source::load_fixture(cx, path).await,
        PlanStep::Seed {
            table,
            first_id,
            rows,
            row_bytes,
        } => source::seed(cx, table, *first_id, *rows, *row_bytes).await,
        PlanStep::Write {
            id,
            table,
            first_id,
            rows,
            row_bytes,
            own_segment,
        } => {
            let ids = *first_id..*first_id + *rows;
            source::write(cx, id, table, ids, *row_bytes, *own_segment).await
        }
        PlanStep::RestorePoint { id, name } => source::restore_point(cx, id, name).await,
        PlanStep::Checkpoint { .. } => source::checkpoint(cx).await,
        PlanStep::SwitchWal { id } => source::switch_wal(cx, id).await,
        PlanStep::Failover { id } => source::failover(cx, id).await,
        PlanStep::FlushArchive => source::flush_archive(cx).await,
        PlanStep::StopSource => source::stop(cx).await,
        PlanStep::BaseBackup { id } => archive::base_backup(cx, id).await,
        PlanStep::InterruptedBackup { id, crash } => {
            fault_recovery::interrupted_backup(cx, id, *crash).await
        }
        PlanStep::ArmRecoveryFaults {
            object_store_errors,
            restart,
        } => fault_recovery::arm(cx, object_store_errors.as_ref(), restart.as_ref()).await,
        PlanStep::WaitArchiveFailure { .. } => archive::wait_failure(cx).await,
        PlanStep::WaitArchived { id, write } => archive::wait_archived(cx, id, write).await,
        PlanStep::AuditArchive { server_name } => archive::audit(cx, server_name).await,
        PlanStep::Fault { id, fault } => fault::inject(cx, id, fault).await,
        PlanStep::Recover {
            target,
            exclusive,
            major,
            source_server_name,
            server_name,
            backup,
            compression,
            wal_max_parallel,
        } => {
            let r = Recovery {
                target,
                exclusive: *exclusive,
                major: *major,
                source_server_name,
                server_name,
                backup: backup.as_deref(),
                compression: *compression,
                wal_max_parallel: *wal_max_parallel,
            };
            let recovery = recover::recover(cx, r).await?;
            Ok(fault_recovery::observe(cx, recovery))
        }
        PlanStep::Verify if cx.state.logical.is_some() => logical::verify(cx).await,
        PlanStep::Verify => recover::verify(cx).await,
        PlanStep::LogicalBackup {
            id,
            format,
            compression,
            database,
            file,
            in_flight,
        } => {
            let d = logical::Dump {
                id,
                format: *format,
                compression: *compression,
                database: database.as_deref(),
                file,
                in_flight: in_flight.as_ref(),
            };
            logical::backup(cx, d).await
        }
        PlanStep::RecoverLogical {
            backup,
            major,
            command,
        } => logical::recover(cx, backup.as_deref(), *major, command.as_ref()).await,
        PlanStep::Amcheck { major } => amcheck::check(cx, *major).await,
        PlanStep::PickTargets {
            count,
            seed,
            source_server_name,
            backup,
        } => random::pick(cx, *count, *seed, source_server_name, backup.as_deref()).await,
        PlanStep::RecoverTarget {
            index,
            exclusive,
            major,
            source_server_name,
            server_name,
            compression,
            wal_max_parallel,
            ..
        } => {
            let r = TargetRecovery {
                exclusive: *exclusive,
                major: *major,
                source_server_name,
                compression: *compression,
                wal_max_parallel: *wal_max_parallel,
            };
            random::recover_one(cx, *index, &r, server_name.clone()).await
        }
        PlanStep::RecoverTargets {
            count,
            exclusive,
            major,
            source_server_name,
            server_name_prefix,
            compression,
            wal_max_parallel,
            ..
        } => {
            let r = TargetRecovery {
                exclusive: *exclusive,
                major: *major,
                source_server_name,
                compression: *compression,
                wal_max_parallel: *wal_max_parallel,
            };
            random::recover_all(cx, *count, &r, server_name_prefix).await
        }
        PlanStep::VerifyTarget { index, .. } => random::verify(cx, *index).await,
    }
}
