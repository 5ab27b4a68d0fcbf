//! Runs one scenario's plan through a backend drill: records the ledger, emits events, and
//! reaches a verdict. Knows nothing about processes, Kubernetes or report formats.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, watch};

use crate::backend::{
    Backend, BackendError, Drill, RecoveryAttempt, RecoveryRequest, Server, SourceSpec,
};
use crate::ledger::{Ledger, ResolvedTarget, RestorePointRecord};
use crate::plan::{self, PlanStep};
use crate::scenario::SEED_STEP;
use crate::scenario::{Expect, LoadedScenario, Scenario, Target};
use crate::verify::{self, Observed, Verification};

use super::events::{Event, RecoveryObservation, ScenarioResult, Status};
use super::{random, source, target};

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

/// What a scenario's execution keeps between steps.
#[derive(Default)]
pub(super) struct State {
    pub(super) ledger: Ledger,
    pub(super) source: Option<Server>,
    pub(super) recovered: Option<Server>,
    pub(super) recovery_failed: Option<String>,
    pub(super) archive: verify::ArchiveFacts,
    pub(super) resolved: Option<crate::ledger::ResolvedTarget>,
    pub(super) backup_step: Option<String>,
    /// The step whose error ended the run, if one did.
    pub(super) failed_step: Option<String>,
    /// A `crash` fault stopped the source for good.
    pub(super) crashed: bool,
    /// Archiver watches of open error windows, with the index of their fault record.
    pub(super) watches: Vec<(usize, super::monitor::Watch)>,
    pub(super) archive_waits: Vec<super::events::ArchiveWait>,
    /// `failed_count` and the time just before the latest error window opened.
    pub(super) window_opened: Option<(i64, Instant)>,
    pub(super) log: Vec<String>,
    /// `--keep`: recovered instances are never released before teardown.
    pub(super) keep: bool,
    /// `target: random`: the picked targets and what became of each.
    pub(super) random: Vec<random::RandomTarget>,
}

/// Run one scenario from open to teardown. Never panics on drill failures: they become the
/// result's status.
pub async fn run_scenario<B: Backend>(
    backend: &B,
    loaded: &LoadedScenario,
    fixtures_dir: &Path,
    emit: &Emitter,
    cancel: watch::Receiver<bool>,
    keep: bool,
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
        name: s.name.clone(),
        file: loaded.path.clone(),
        description: s.description.clone(),
        tags: s.tags.clone(),
        seed: s.seed,
        backend: backend.name().to_string(),
        started_at: Utc::now(),
        seconds: 0.0,
        source_postgres: None,
        recovery_postgres: None,
        server_name: s.backup.server_name.clone(),
        recovery_server_name: recover_step.unwrap_or_default(),
        destination: String::new(),
        backup_id: None,
        backup_step: None,
        backup_fallback: None,
        recovery_target: if s.recovery.target == Target::Random {
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
        rows_expected: None,
        rows_observed: None,
        verification: None,
        rto: None,
        status: Status::Passed,
        faults: Vec::new(),
        archive_waits: Vec::new(),
        log: Vec::new(),
        kept: Vec::new(),
        targets: Vec::new(),
    };
    emit.emit(Event::ScenarioStarted {
        scenario: s.name.clone(),
        at: res.started_at,
    });
    let mut state = State {
        keep,
        ..State::default()
    };
    let outcome = match backend.open(s).await {
        Err(e) => Err(e),
        Ok(mut drill) => {
            res.destination = drill.destination();
            let r = tokio::select! {
                r = execute(&mut drill, &plan.steps, loaded, fixtures_dir, emit, &mut res, &mut state) => r,
                _ = cancelled(cancel) => Err(BackendError::Cancelled),
            };
            // Close connections before the servers go away.
            super::fault::finish_watches(&mut state, Duration::ZERO).await;
            state.source = None;
            state.recovered = None;
            random::finish(&mut state, &mut res);
            res.kept = drill.teardown(keep).await;
            r
        }
    };
    res.log = std::mem::take(&mut state.log);
    res.faults = state.ledger.faults.clone();
    res.archive_waits = std::mem::take(&mut state.archive_waits);
    res.status = match outcome {
        // A step (a base backup, an archive wait) failed the way the scenario expects.
        Err(e)
            if !matches!(e, BackendError::Cancelled)
                && matches!(&s.expect, Expect::Failed(f) if e.to_string().contains(&f.error_contains)) =>
        {
            res.observation = RecoveryObservation::StepFailed {
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
            if let (Some(want), Some(got)) = (s.expect.audit(), &res.audit) {
                let unmet = crate::audit::predict::check_expectation(want, &state.ledger, got);
                status = add_reasons(status, unmet);
            }
            status
        }
    };
    res.seconds = started.elapsed().as_secs_f64();
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
        (Expect::Recovered(_), None) => match &res.verification {
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
    drill: &mut D,
    steps: &[PlanStep],
    loaded: &LoadedScenario,
    fixtures_dir: &Path,
    emit: &Emitter,
    res: &mut ScenarioResult,
    st: &mut State,
) -> Result<(), BackendError> {
    let s = &loaded.scenario;
    let t0 = Instant::now();
    for step in steps {
        let (id, kind) = (step.id(), step.kind());
        emit.emit(Event::StepStarted {
            scenario: s.name.clone(),
            step: id.clone(),
            kind: kind.into(),
            at: Utc::now(),
        });
        let began = Instant::now();
        let detail = match do_step(drill, step, loaded, fixtures_dir, res, st).await {
            Ok(d) => d,
            Err(e) => {
                st.failed_step = Some(id.clone());
                st.log.push(format!(
                    "[{:>7.2}s] {id} ({kind}): ERROR {e}",
                    t0.elapsed().as_secs_f64()
                ));
                return Err(e);
            }
        };
        st.log.push(format!(
            "[{:>7.2}s] {id} ({kind}): {detail}",
            t0.elapsed().as_secs_f64()
        ));
        emit.emit(Event::StepFinished {
            scenario: s.name.clone(),
            step: id,
            kind: kind.into(),
            seconds: began.elapsed().as_secs_f64(),
            detail,
        });
        if st.recovery_failed.is_some() {
            break;
        }
    }
    Ok(())
}

pub(super) fn source(st: &mut State) -> Result<&mut Server, BackendError> {
    st.source
        .as_mut()
        .ok_or_else(|| BackendError::infra("the source server is not running"))
}

/// Insert generated rows through the source and append the commit to the ledger.
async fn record_write(
    st: &mut State,
    seed: u64,
    step_id: &str,
    table: &str,
    first_id: u64,
    rows: u64,
) -> Result<crate::ledger::LedgerEntry, BackendError> {
    let seq = st.ledger.entries.len() as u64;
    let client = &mut source(st)?.client;
    let e = source::write_rows(client, seed, seq, step_id, table, first_id, rows).await?;
    st.ledger.entries.push(e.clone());
    Ok(e)
}

/// `pg_switch_wal()`, then wait until the finished segment (or `at_least`) is archived; the
/// wait is recorded as archive lag under `step`.
pub(super) async fn switch_and_wait(
    st: &mut State,
    step: &str,
    timeout: u64,
    at_least: Option<&str>,
) -> Result<String, BackendError> {
    let src = source(st)?;
    let switched = source::switch_wal(&src.client).await?;
    let seg = match at_least {
        Some(s) if s > switched.as_str() => s.to_string(),
        _ => switched,
    };
    let took = source::wait_archived(&src.client, &seg, Duration::from_secs(timeout)).await?;
    st.archive_waits.push(super::events::ArchiveWait {
        step: step.to_string(),
        segment: seg.clone(),
        how: "switch".into(),
        seconds: took.as_secs_f64(),
    });
    Ok(seg)
}

async fn do_step<D: Drill>(
    drill: &mut D,
    step: &PlanStep,
    loaded: &LoadedScenario,
    fixtures_dir: &Path,
    res: &mut ScenarioResult,
    st: &mut State,
) -> Result<String, BackendError> {
    let s = &loaded.scenario;
    let archive_timeout = s.timeouts.archive_seconds;
    Ok(match step {
        PlanStep::StartSource {
            major,
            server_name,
            compression,
            archive_timeout_seconds,
        } => {
            let spec = SourceSpec {
                major: *major,
                server_name: server_name.clone(),
                compression: *compression,
                archive_timeout_seconds: *archive_timeout_seconds,
            };
            let server = drill.start_source(&spec).await?;
            let v = server.version.clone();
            res.source_postgres = Some(v.clone());
            st.source = Some(server);
            format!(
                "PostgreSQL {v} archiving to {}/{server_name}",
                drill.destination()
            )
        }
        PlanStep::CreateTables { tables } => {
            source::create_tables(&source(st)?.client, tables).await?;
            format!("created {}", tables.join(", "))
        }
        PlanStep::LoadFixture { path } => {
            let file = fixtures_dir.join(path);
            let sql = std::fs::read_to_string(&file)
                .map_err(|e| BackendError::infra(format!("{}: {e}", file.display())))?;
            let generated: Vec<String> =
                s.seed_data.tables.iter().map(|t| t.name.clone()).collect();
            let client = &source(st)?.client;
            client.batch_execute(&sql).await?;
            let snap = source::snapshot_tables(client, &generated).await?;
            let d = format!(
                "loaded {path}: {}",
                snap.iter()
                    .map(|t| format!("{} ({} rows)", t.table, t.rows))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            st.ledger.fixture_tables = snap;
            d
        }
        PlanStep::Seed {
            table,
            first_id,
            rows,
        } => {
            let e = record_write(st, s.seed, SEED_STEP, table, *first_id, *rows).await?;
            format!(
                "{rows} rows into {table}, txid {} at {} in {}",
                e.txid, e.commit_lsn, e.segment
            )
        }
        PlanStep::BaseBackup { id } => {
            let b = drill.base_backup(id, s.timeouts.backup_seconds).await?;
            let d = format!(
                "backup {} from {} to {} ({} .. {})",
                b.backup_id, b.begin_lsn, b.end_lsn, b.begin_wal, b.end_wal
            );
            st.ledger.backups.push(b);
            d
        }
        PlanStep::Write {
            id,
            table,
            first_id,
            rows,
            own_segment,
        } => {
            let e = record_write(st, s.seed, id, table, *first_id, *rows).await?;
            let mut d = format!(
                "{rows} row(s) into {table}, txid {} committed at {} in {} ({})",
                e.txid,
                e.commit_lsn,
                e.segment,
                e.commit_time.format("%H:%M:%S%.6f")
            );
            let seg = e.segment.clone();
            if *own_segment {
                let archived = switch_and_wait(st, id, archive_timeout, Some(&seg)).await?;
                d.push_str(&format!("; switched, {archived} archived"));
            }
            d
        }
        PlanStep::RestorePoint { id, name } => {
            let lsn = source::restore_point(&source(st)?.client, name).await?;
            st.ledger.restore_points.push(RestorePointRecord {
                step_id: id.clone(),
                name: name.clone(),
                lsn,
            });
            format!("restore point `{name}` at {lsn}")
        }
        PlanStep::Checkpoint { .. } => {
            source::checkpoint(&source(st)?.client).await?;
            "checkpoint done".into()
        }
        PlanStep::SwitchWal { id } => {
            let seg = switch_and_wait(st, id, archive_timeout, None).await?;
            format!("{seg} archived")
        }
        PlanStep::WaitArchiveFailure { .. } => {
            let (baseline, opened) = st
                .window_opened
                .ok_or_else(|| BackendError::infra("no error window was opened"))?;
            let client = &source(st)?.client;
            let until = Instant::now() + Duration::from_secs(archive_timeout);
            loop {
                let stat = source::archiver_stat(client).await?;
                if stat.failed_count > baseline {
                    break format!(
                        "pg_stat_archiver counts {} failed attempt(s) {:.2}s after the window opened",
                        stat.failed_count - baseline,
                        opened.elapsed().as_secs_f64()
                    );
                }
                if Instant::now() >= until {
                    return Err(BackendError::infra(format!(
                        "pg_stat_archiver showed no failed attempt within {archive_timeout}s of the error window (is anything being archived? set `backup.archive_timeout_seconds` and write during the window)"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        PlanStep::WaitArchived { id, write } => {
            let e = st
                .ledger
                .entry_for_step(write)
                .map_err(|e| BackendError::infra(e.to_string()))?
                .clone();
            let client = &source(st)?.client;
            source::wait_archived(client, &e.segment, Duration::from_secs(archive_timeout)).await?;
            let stat = source::archiver_stat(client).await?;
            let lag = stat
                .last_archived_time
                .map(|t| (t - e.commit_time).num_microseconds().unwrap_or(0) as f64 / 1e6)
                .unwrap_or(0.0);
            st.archive_waits.push(super::events::ArchiveWait {
                step: id.clone(),
                segment: e.segment.clone(),
                how: "archive_timeout".into(),
                seconds: lag,
            });
            format!(
                "{} (holding `{write}`) archived {lag:.2}s after its commit, without a switch (archive_timeout {}s)",
                e.segment,
                s.backup.archive_timeout_seconds.unwrap_or(0)
            )
        }
        PlanStep::Fault { id, fault } => super::fault::inject(drill, id, fault, s, st).await?,
        PlanStep::Failover { id } => {
            // Everything so far reaches the archive first, as a primary that keeps archiving.
            let seg = switch_and_wait(st, id, archive_timeout, None).await?;
            st.source = None;
            let server = drill.failover(s.timeouts.recovery_seconds).await?;
            let t = source::timeline(&server.client).await?;
            let tli = t.timeline;
            st.source = Some(server);
            let switch = t.switch.filter(|_| tli > 1).ok_or_else(|| {
                BackendError::infra(format!(
                    "after the failover the source is on timeline {tli}, not a new one"
                ))
            })?;
            st.ledger.failovers.push(crate::ledger::FailoverRecord {
                step_id: id.clone(),
                timeline: tli,
                switch_lsn: switch,
            });
            format!(
                "{seg} archived; source stopped, recovered from its own archive and promoted onto timeline {tli} at {switch}"
            )
        }
        PlanStep::FlushArchive => {
            source::mark(&source(st)?.client).await?;
            let seg = switch_and_wait(st, "flush-archive", archive_timeout, None).await?;
            format!("marker committed; WAL archived through {seg}")
        }
        PlanStep::StopSource => {
            // Archiving has caught up (flush-archive waited for it): let the watches see it.
            super::fault::finish_watches(st, Duration::from_secs(5)).await;
            st.source = None;
            drill.stop_source().await?;
            "source stopped (fast shutdown)".into()
        }
        PlanStep::AuditArchive { server_name } => {
            let (url, report) = super::backup_choice::read(drill.store(), server_name).await?;
            // Random targets: predict for the widest span, from the earliest usable backup to
            // the end of the archive.
            let (resolved, chosen) = if s.recovery.target == Target::Random {
                let range =
                    super::pick::recoverable_range(&st.ledger, s.recovery.backup.as_deref())
                        .map_err(|e| {
                            BackendError::infra(format!("cannot pick random targets: {e}"))
                        })?;
                (ResolvedTarget::Latest, range.floor.clone())
            } else {
                let resolved = target::resolve(&s.recovery.target, &st.ledger).map_err(|e| {
                    BackendError::infra(format!("cannot resolve the recovery target: {e}"))
                })?;
                // The backup recovery will restore, chosen from the archive's catalogue; when
                // it has none, the ledger's choice (the recovery step then fails, saying why).
                let chosen = match super::backup_choice::choose(
                    &st.ledger,
                    &resolved,
                    s.recovery.backup.as_deref(),
                    &report,
                ) {
                    Ok(c) => c.backup,
                    Err(_) => st
                        .ledger
                        .choose_backup(&resolved, s.recovery.backup.as_deref())
                        .map_err(|e| {
                            BackendError::infra(format!("cannot choose a base backup: {e}"))
                        })?
                        .clone(),
                };
                (resolved, chosen)
            };
            let expected = st
                .ledger
                .expected_at(&resolved, s.recovery.exclusive, &chosen)
                .map_err(|e| BackendError::infra(format!("ledger: {e}")))?;
            let v = crate::audit::predict::verdict(&url, &report, &chosen.backup_id, &expected);
            let d = format!(
                "{} gap(s){}; {}",
                v.gaps.len(),
                if v.gaps.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", v.gaps.join(", "))
                },
                v.prediction
            );
            st.archive.audit_gaps = v.gaps.iter().cloned().collect();
            st.archive.audited = true;
            st.archive.audit_predicted = v.predicted_lost_steps.iter().cloned().collect();
            res.audit = Some(v);
            d
        }
        PlanStep::Recover {
            target,
            exclusive,
            major,
            source_server_name,
            server_name,
            backup,
            compression,
        } => {
            let resolved = target::resolve(target, &st.ledger).map_err(|e| {
                BackendError::infra(format!("cannot resolve the recovery target: {e}"))
            })?;
            // As CloudNativePG does: from the archive's catalogue, not from the ledger alone.
            let (_, catalogue) =
                super::backup_choice::read(drill.store(), source_server_name).await?;
            let super::backup_choice::Chosen {
                backup: chosen,
                fallback,
            } = match super::backup_choice::choose(
                &st.ledger,
                &resolved,
                backup.as_deref(),
                &catalogue,
            ) {
                Ok(c) => c,
                Err(message) => {
                    res.resolved_target = Some(resolved.to_string());
                    res.observation = RecoveryObservation::Failed {
                        message: message.clone(),
                    };
                    st.recovery_failed = Some(message.clone());
                    return Ok(format!("recovery failed: {message}"));
                }
            };
            res.backup_step = Some(chosen.step_id.clone());
            res.backup_fallback = fallback.clone();
            st.archive.segments = drill
                .store()
                .wal_segments(source_server_name)
                .await?
                .into_keys()
                .collect();
            res.backup_id = Some(chosen.backup_id.clone());
            res.resolved_target = Some(resolved.to_string());
            st.resolved = Some(resolved.clone());
            st.backup_step = Some(chosen.step_id.clone());
            let req = RecoveryRequest {
                major: *major,
                source_server_name: source_server_name.clone(),
                server_name: server_name.clone(),
                backup: chosen.clone(),
                target: resolved.clone(),
                exclusive: *exclusive,
                compression: *compression,
                timeout_seconds: s.timeouts.recovery_seconds,
                instance: "recovered".into(),
            };
            match drill.recover(&req).await? {
                RecoveryAttempt::Recovered { server, mut rto } => {
                    if let Expect::Recovered(r) = &s.expect {
                        rto.budget_seconds = r.rto_budget_seconds;
                    }
                    let mut d = format!(
                        "PostgreSQL {} recovered from backup {} to {resolved} in {:.2}s ({} WAL segments replayed)",
                        server.version, chosen.backup_id, rto.seconds, rto.wal_segments_replayed
                    );
                    if let Some(why) = &rto.replay_end {
                        d.push_str(&format!("; replay ended: {why}"));
                    }
                    if let Some(f) = &fallback {
                        d.push_str(&format!("; {f}"));
                    }
                    res.recovery_postgres = Some(server.version.clone());
                    res.observation = RecoveryObservation::Recovered;
                    res.rto = Some(rto);
                    st.recovered = Some(server);
                    d
                }
                RecoveryAttempt::Failed { message, rto } => {
                    res.observation = RecoveryObservation::Failed {
                        message: message.clone(),
                    };
                    res.rto = rto;
                    st.recovery_failed = Some(message.clone());
                    format!(
                        "recovery failed: {}{}",
                        message.lines().next().unwrap_or_default(),
                        fallback.map(|f| format!("; {f}")).unwrap_or_default()
                    )
                }
            }
        }
        PlanStep::PickTargets {
            count,
            seed,
            source_server_name,
            backup,
        } => {
            random::pick(
                drill,
                st,
                *count,
                *seed,
                source_server_name,
                backup.as_deref(),
            )
            .await?
        }
        PlanStep::RecoverTarget {
            index,
            exclusive,
            major,
            source_server_name,
            server_name,
            compression,
            ..
        } => {
            let req = random::request(
                st,
                s,
                *index,
                *exclusive,
                *major,
                source_server_name,
                server_name.clone(),
                *compression,
            )?;
            let attempt = drill.recover(&req).await?;
            random::record(st, s, res, *index, attempt)
        }
        PlanStep::RecoverTargets {
            count,
            exclusive,
            major,
            source_server_name,
            server_name_prefix,
            compression,
            ..
        } => {
            let reqs = (1..=*count)
                .map(|index| {
                    random::request(
                        st,
                        s,
                        index,
                        *exclusive,
                        *major,
                        source_server_name,
                        plan::random_target_server_name(server_name_prefix, index),
                        *compression,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let attempts = drill.recover_many(&reqs).await?;
            let lines: Vec<String> = (1..=*count)
                .zip(attempts)
                .map(|(index, attempt)| random::record(st, s, res, index, attempt))
                .collect();
            format!("{} recoveries at once: {}", count, lines.join("; "))
        }
        PlanStep::VerifyTarget { index, .. } => random::verify(drill, st, s, res, *index).await?,
        PlanStep::Verify => {
            let server = st
                .recovered
                .as_ref()
                .ok_or_else(|| BackendError::infra("nothing recovered to verify"))?;
            let resolved = st.resolved.clone().unwrap_or(ResolvedTarget::Latest);
            let v = verify_server(
                server,
                s,
                &st.ledger,
                &st.archive,
                &resolved,
                st.backup_step.as_deref().unwrap_or_default(),
                res.rto.as_ref().map(|r| r.seconds),
            )
            .await?;
            res.rows_expected = Some(v.expected_rows.values().sum());
            res.rows_observed = Some(v.observed_rows.values().sum());
            let d = format!(
                "expected {} rows, observed {}, lost {}{}",
                res.rows_expected.unwrap_or(0),
                res.rows_observed.unwrap_or(0),
                v.rows_lost,
                if v.explanation.is_empty() {
                    String::new()
                } else {
                    format!(": {}", v.explanation[0])
                }
            );
            res.verification = Some(v);
            d
        }
    })
}

/// Read the generated (and fixture) tables of `server` back and compare them with what the
/// ledger says must exist after recovering from `backup_step` to `resolved`.
pub(super) async fn verify_server(
    server: &Server,
    s: &Scenario,
    ledger: &Ledger,
    archive: &verify::ArchiveFacts,
    resolved: &ResolvedTarget,
    backup_step: &str,
    rto_seconds: Option<f64>,
) -> Result<Verification, BackendError> {
    let mut observed = Observed::default();
    let generated: Vec<String> = s.seed_data.tables.iter().map(|t| t.name.clone()).collect();
    for t in &generated {
        observed
            .tables
            .insert(t.clone(), source::read_table(&server.client, t).await?);
    }
    // Evidence for timeline explanations only: a server that will not say is no failure.
    observed.timeline =
        source::timeline(&server.client)
            .await
            .ok()
            .map(|t| verify::RecoveredTimeline {
                timeline: t.timeline,
                parent: t.parent,
            });
    if !ledger.fixture_tables.is_empty() {
        observed.fixture_tables = source::snapshot_tables(&server.client, &generated).await?;
    }
    let backup = ledger
        .backup_for_step(backup_step)
        .map_err(|e| BackendError::infra(e.to_string()))?;
    let expected = ledger
        .expected_at(resolved, s.recovery.exclusive, backup)
        .map_err(|e| BackendError::infra(format!("ledger: {e}")))?;
    let default_expect = crate::scenario::ExpectRecovered::default();
    let expect = match &s.expect {
        Expect::Recovered(r) => r,
        Expect::Failed(_) => &default_expect,
    };
    Ok(verify::verify(
        ledger,
        &expected,
        &observed,
        archive,
        s.seed,
        expect,
        rto_seconds,
    ))
}
