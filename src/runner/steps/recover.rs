//! Recovery to the scenario's target and its verification: choose the base backup from the
//! archive's catalogue as CloudNativePG does, recover through the drill, then read the
//! recovered tables back and compare them with the ledger. Records what it observed; the
//! verdict is `execute`'s.

use crate::backend::{BackendError, Drill, RecoveryAttempt, RecoveryRequest, Server};
use crate::ledger::{Ledger, ResolvedTarget};
use crate::scenario::{Compression, Expect, ExpectRecovered, Scenario, Target};
use crate::verify::{self, ArchiveFacts, Observed, Verification, VerifyCost};

use super::super::backup_choice::{self, Chosen};
use super::super::events::{RecoveryObservation, ScenarioResult};
use super::super::outcome::{self, StepOutcome};
use super::super::sql;
use super::super::state::StepCx;

/// The recovery `PlanStep::Recover` asks for.
pub(in crate::runner) struct Recovery<'a> {
    pub target: &'a Target,
    pub exclusive: bool,
    pub major: u32,
    pub source_server_name: &'a str,
    pub server_name: &'a str,
    pub backup: Option<&'a str>,
    pub compression: Compression,
    pub wal_max_parallel: Option<u32>,
}

pub(in crate::runner) async fn recover<D: Drill>(
    cx: &mut StepCx<'_, D>,
    r: Recovery<'_>,
) -> Result<StepOutcome, BackendError> {
    let (st, res) = (&mut *cx.state, &mut *cx.result);
    // As CloudNativePG does: from the archive's catalogue, not from the ledger alone.
    let found = backup_choice::for_target(
        cx.drill.store(),
        &st.ledger,
        r.target,
        r.backup,
        r.source_server_name,
    )
    .await?;
    let resolved = found.resolved;
    let Chosen {
        backup: chosen,
        fallback,
    } = match found.chosen {
        Ok(c) => c,
        Err(message) => {
            res.recovery.resolved_target = Some(resolved.to_string());
            res.recovery.observation = RecoveryObservation::Failed {
                message: message.clone(),
            };
            st.recovery_failed = Some(message.clone());
            return Ok(StepOutcome::RecoveryFailed {
                message,
                fallback: None,
            });
        }
    };
    res.recovery.backup_step = Some(chosen.step_id.clone());
    res.recovery.backup_fallback = fallback.clone();
    st.archive.segments = cx
        .drill
        .store()
        .wal_segments(r.source_server_name)
        .await?
        .into_keys()
        .collect();
    res.recovery.backup_id = Some(chosen.backup_id.clone());
    res.recovery.resolved_target = Some(resolved.to_string());
    st.resolved = Some(resolved.clone());
    st.backup_step = Some(chosen.step_id.clone());
    let req = RecoveryRequest {
        major: r.major,
        source_server_name: r.source_server_name.to_string(),
        server_name: r.server_name.to_string(),
        backup: chosen.clone(),
        target: resolved.clone(),
        exclusive: r.exclusive,
        compression: r.compression,
        wal_max_parallel: r.wal_max_parallel,
        timeout_seconds: cx.scenario.timeouts.recovery_seconds,
        instance: "recovered".into(),
    };
    Ok(match cx.drill.recover(&req).await? {
        RecoveryAttempt::Recovered { server, mut rto } => {
            if let Expect::Recovered(e) = &cx.scenario.expect {
                rto.budget_seconds = e.rto_budget_seconds;
            }
            let d = StepOutcome::Recovered(outcome::Recovered {
                version: server.version.clone(),
                backup_id: chosen.backup_id.clone(),
                target: resolved,
                seconds: rto.seconds,
                wal_segments_replayed: rto.wal_segments_replayed,
                replay_end: rto.replay_end.clone(),
                fallback,
            });
            res.servers.recovery_postgres = Some(server.version.clone());
            res.recovery.observation = RecoveryObservation::Recovered;
            res.outcome.rto = Some(rto);
            st.recovered = Some(server);
            d
        }
        RecoveryAttempt::Failed { message, rto } => {
            res.recovery.observation = RecoveryObservation::Failed {
                message: message.clone(),
            };
            res.outcome.rto = rto;
            st.recovery_failed = Some(message.clone());
            StepOutcome::RecoveryFailed { message, fallback }
        }
    })
}

/// Verify the recovered server of a single-target scenario.
pub(in crate::runner) async fn verify<D: Drill>(
    cx: &mut StepCx<'_, D>,
) -> Result<StepOutcome, BackendError> {
    let (st, res) = (&*cx.state, &mut *cx.result);
    let server = st
        .recovered
        .as_ref()
        .ok_or_else(|| BackendError::infra("nothing recovered to verify"))?;
    let resolved = st.resolved.clone().unwrap_or(ResolvedTarget::Latest);
    let at = JudgedAt {
        target: &resolved,
        backup_step: st.backup_step.as_deref().unwrap_or_default(),
        rto_seconds: res.outcome.rto.as_ref().map(|r| r.seconds),
    };
    let v = verify_server(server, cx.scenario, &st.ledger, &st.archive, at).await?;
    Ok(record_verification(res, v))
}

/// Keep a single-target verification in the result; what the step reports of it.
pub(in crate::runner) fn record_verification(
    res: &mut ScenarioResult,
    v: Verification,
) -> StepOutcome {
    res.outcome.rows_expected = Some(v.expected_rows.values().sum());
    res.outcome.rows_observed = Some(v.observed_rows.values().sum());
    let d = StepOutcome::Verified {
        rows_expected: res.outcome.rows_expected.unwrap_or(0),
        rows_observed: res.outcome.rows_observed.unwrap_or(0),
        rows_lost: v.rows_lost,
        explanation: v.explanation.first().cloned(),
    };
    res.outcome.verification = Some(v);
    d
}

/// The point a recovered server is judged at: its target, the ledger step of the backup it
/// restored, and how long its recovery took.
pub(in crate::runner) struct JudgedAt<'a> {
    pub target: &'a ResolvedTarget,
    pub backup_step: &'a str,
    pub rto_seconds: Option<f64>,
}

/// Read the generated (and fixture) tables of `server` back and compare them with what the
/// ledger says must exist at `at`.
pub(in crate::runner) async fn verify_server(
    server: &Server,
    s: &Scenario,
    ledger: &Ledger,
    archive: &ArchiveFacts,
    at: JudgedAt<'_>,
) -> Result<Verification, BackendError> {
    let began = std::time::Instant::now();
    let observed = observe(server, s, ledger, &[]).await?;
    let backup = ledger.backup_for_step(at.backup_step)?;
    let expected = ledger
        .expected_at(at.target, s.recovery.exclusive, backup)
        .map_err(|e| BackendError::ledger("ledger", e))?;
    let default_expect = ExpectRecovered::default();
    let expect = match &s.expect {
        Expect::Recovered(r) => r,
        Expect::Failed(_) => &default_expect,
    };
    let case = verify::Case {
        ledger,
        expected: &expected,
        archive,
        seed: s.seed,
        expect,
        rto_seconds: at.rto_seconds,
    };
    let mut v = verify::verify(&case, &observed);
    let rows = observed.tables.values().flatten();
    v.cost = Some(VerifyCost {
        seconds: began.elapsed().as_secs_f64(),
        tables: (observed.tables.len() + observed.bulk.len()) as u64,
        rows_read: observed.tables.values().map(|t| t.len() as u64).sum(),
        bytes_read: rows
            .map(|r| (8 + r.step.len() + r.payload.len()) as u64)
            .sum(),
        rows_digested_by_server: observed
            .bulk
            .values()
            .flat_map(|b| &b.ranges)
            .map(|r| r.digest.rows)
            .sum(),
        bytes_scanned_by_server: observed.bulk.values().map(|b| b.bytes_scanned).sum(),
    });
    Ok(v)
}

/// Read the generated (and fixture) tables of `server` back, all but the `absent` ones.
pub(in crate::runner) async fn observe(
    server: &Server,
    s: &Scenario,
    ledger: &Ledger,
    absent: &[String],
) -> Result<Observed, BackendError> {
    let mut observed = Observed::default();
    let generated: Vec<String> = s.seed_data.tables.iter().map(|t| t.name.clone()).collect();
    for t in s
        .seed_data
        .tables
        .iter()
        .filter(|t| !absent.contains(&t.name))
    {
        match t.bulk_row_bytes() {
            None => {
                let rows = sql::read_table(&server.client, &t.name).await?;
                observed.tables.insert(t.name.clone(), rows);
            }
            Some(row_bytes) => {
                let bulk =
                    sql::read_bulk(&server.client, ledger, s.seed, &t.name, row_bytes).await?;
                observed.bulk.insert(t.name.clone(), bulk);
            }
        }
    }
    // Evidence for timeline explanations only: a server that will not say is no failure.
    observed.timeline =
        sql::timeline(&server.client)
            .await
            .ok()
            .map(|t| verify::RecoveredTimeline {
                timeline: t.timeline,
                parent: t.parent,
            });
    if !ledger.fixture_tables.is_empty() {
        observed.fixture_tables = sql::snapshot_tables(&server.client, &generated).await?;
    }
    Ok(observed)
}
