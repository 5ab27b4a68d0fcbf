//! Logical backups and logical recovery: `logical_backup` (a snapshot exported and held on a
//! second connection while the drill runs `pg_dump` at it, recorded in the ledger with the
//! dump), faults on the dump's object, the restore into a fresh instance (by pgdrill or the
//! scenario's restore script) and its verification against the ledger at the dump's snapshot.
//! Never decides the verdict and never formats a report.

use chrono::{DateTime, Utc};

use crate::backend::RecoveryAttempt;
use crate::backend::{
    BackendError, Drill, LogicalBackupRequest, LogicalRestoreRequest, RestoreScript,
};
use crate::ledger::{DumpRecord, FaultRecord, TxSnapshot};
use crate::plan::{PlannedWrite, RestoreCommand};
use crate::scenario::{DumpCompression, DumpFormat, Expect, ExpectRecovered, TruncateDump};
use crate::verify::{self, VerifyCost};

use super::super::events::RecoveryObservation;
use super::super::outcome::{InFlightCommit, LogicalBackupTaken, LogicalRecovery, StepOutcome};
use super::super::sql;
use super::super::state::{DrillState, StepCx};
use super::recover;

/// The database the drill's tables live in.
pub(in crate::runner) const DRILL_DATABASE: &str = "postgres";

/// A `logical_backup` step, as the plan gives it.
pub(in crate::runner) struct Dump<'a> {
    pub id: &'a str,
    pub format: DumpFormat,
    pub compression: DumpCompression,
    pub database: Option<&'a str>,
    pub file: &'a str,
    pub in_flight: Option<&'a PlannedWrite>,
}

/// Hold a snapshot open, dump at it, record both.
pub(in crate::runner) async fn backup<D: Drill>(
    cx: &mut StepCx<'_, D>,
    d: Dump<'_>,
) -> Result<StepOutcome, BackendError> {
    let seed = cx.scenario.seed;
    // The in-flight write takes its txid before the snapshot exists: it is in progress there.
    let held = match d.in_flight {
        Some(w) => {
            let seq = cx.state.ledger.entries.len() as u64;
            let write = sql::Write {
                seed,
                seq,
                step_id: &w.id,
                table: &w.table,
                first_id: w.first_id,
                rows: w.rows,
                row_bytes: None,
            };
            Some(sql::begin_held(&cx.state.source()?.client, &write).await?)
        }
        None => None,
    };
    let snap = cx.drill.monitor_source().await?;
    if held.is_some() {
        // A commit after the in-flight write began moves the snapshot's xmax past it, so
        // the snapshot lists it as in progress (xip) rather than not yet started.
        sql::mark(&snap).await?;
    }
    snap.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await?;
    let row = snap
        .query_one(
            "SELECT pg_export_snapshot(), pg_current_snapshot()::text, clock_timestamp()",
            &[],
        )
        .await?;
    let (exported, current, taken_at): (String, String, DateTime<Utc>) =
        (row.get(0), row.get(1), row.get(2));
    let snapshot = TxSnapshot::parse(&current).map_err(BackendError::infra)?;
    let in_flight = match held {
        Some(h) => {
            let e = sql::commit_held(&cx.state.source()?.client, h).await?;
            let c = InFlightCommit {
                step: e.step_id.clone(),
                txid: e.txid,
                rows: e.rows,
            };
            cx.state.ledger.entries.push(e);
            Some(c)
        }
        None => None,
    };
    let database = d.database.unwrap_or(DRILL_DATABASE).to_string();
    let root = cx.drill.store().root();
    let key = format!("{root}/logical/{}", d.file);
    let req = LogicalBackupRequest {
        step_id: d.id.to_string(),
        database: database.clone(),
        format: d.format,
        compression: d.compression,
        // A snapshot belongs to its database: another database is dumped as it stands.
        snapshot: (database == DRILL_DATABASE).then_some(exported),
        key: key.clone(),
        timeout_seconds: cx.scenario.timeouts.backup_seconds,
    };
    let done = cx.drill.logical_backup(&req).await?;
    snap.batch_execute("COMMIT").await?;
    let record = DumpRecord {
        step_id: d.id.to_string(),
        key: key.clone(),
        database: database.clone(),
        format: d.format,
        compression: d.compression,
        snapshot,
        bytes: done.bytes,
        taken_at,
    };
    let writes_in_dump = cx.state.ledger.in_dump(&record).len() as u64;
    let out = LogicalBackupTaken {
        database,
        key,
        bytes: done.bytes,
        snapshot: record.snapshot.to_string(),
        dump_seconds: done.dump_seconds,
        writes_in_dump,
        in_flight,
    };
    cx.state.ledger.dumps.push(record);
    Ok(StepOutcome::LogicalBackup(out))
}

/// `truncate_dump` (`bytes: None` keeps half) and `delete_dump`.
pub(in crate::runner) async fn damage<D: Drill>(
    drill: &mut D,
    st: &mut DrillState,
    id: &str,
    step: &str,
    truncate: Option<&TruncateDump>,
) -> Result<StepOutcome, BackendError> {
    let dump = st
        .ledger
        .dump(Some(step))
        .map_err(|e| BackendError::ledger("ledger", e))?;
    let key = dump.key.clone();
    let store = drill.store();
    let before = store.get(&key).await?;
    let bytes_before = before.len() as u64;
    let (bytes_after, action) = match truncate {
        Some(t) => {
            let keep = t.bytes.unwrap_or(bytes_before / 2).min(bytes_before);
            store.put(&key, before[..keep as usize].to_vec()).await?;
            (
                Some(keep),
                format!(
                    "truncated logical backup `{step}` ({key}) from {bytes_before} to {keep} bytes"
                ),
            )
        }
        None => {
            store.delete(&key).await?;
            (None, format!("deleted logical backup `{step}` ({key})"))
        }
    };
    st.ledger.faults.push(FaultRecord {
        step_id: id.to_string(),
        action,
        objects_deleted: if bytes_after.is_none() {
            vec![key.clone()]
        } else {
            Vec::new()
        },
        ..FaultRecord::default()
    });
    Ok(StepOutcome::DumpDamaged {
        step: step.to_string(),
        key,
        bytes_before,
        bytes_after,
    })
}

/// Restore the chosen logical backup into a fresh instance of `major`.
pub(in crate::runner) async fn recover<D: Drill>(
    cx: &mut StepCx<'_, D>,
    backup: Option<&str>,
    major: u32,
    command: Option<&RestoreCommand>,
) -> Result<StepOutcome, BackendError> {
    let dump = cx
        .state
        .ledger
        .dump(backup)
        .map_err(|e| BackendError::ledger("ledger", e))?
        .clone();
    // The source's WAL archive, for the record (a logical restore reads none of it).
    let server = &cx.scenario.backup.server_name;
    cx.state.archive.segments = cx
        .drill
        .store()
        .wal_segments(server)
        .await?
        .into_keys()
        .collect();
    let res = &mut *cx.result;
    res.recovery.backup_step = Some(dump.step_id.clone());
    res.recovery.backup_id = Some(dump.key.clone());
    res.recovery.resolved_target =
        Some(format!("snapshot {} of `{}`", dump.snapshot, dump.step_id));
    let script = command.map(|c| RestoreScript {
        // Absolute: the script runs in the target instance's directory.
        path: std::path::absolute(cx.scenario_dir.join(&c.path))
            .unwrap_or_else(|_| cx.scenario_dir.join(&c.path)),
        name: c.path.clone(),
        env: c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        timeout_seconds: c.timeout_seconds,
    });
    let req = LogicalRestoreRequest {
        major,
        key: dump.key.clone(),
        format: dump.format,
        compression: dump.compression,
        script,
        timeout_seconds: cx.scenario.timeouts.recovery_seconds,
        instance: "recovered".into(),
    };
    let out = cx.drill.logical_restore(&req).await?;
    let script = out.script;
    let (st, res) = (&mut *cx.state, &mut *cx.result);
    res.recovery.script = script.clone();
    st.logical = Some(dump.clone());
    let mut rec = LogicalRecovery {
        backup_step: dump.step_id.clone(),
        key: dump.key.clone(),
        version: None,
        seconds: None,
        script,
        failed: None,
    };
    match out.attempt {
        RecoveryAttempt::Recovered { server, mut rto } => {
            if let Expect::Recovered(e) = &cx.scenario.expect {
                rto.budget_seconds = e.rto_budget_seconds;
            }
            rec.version = Some(server.version.clone());
            rec.seconds = Some(rto.seconds);
            res.servers.recovery_postgres = Some(server.version.clone());
            res.recovery.observation = RecoveryObservation::Recovered;
            res.outcome.rto = Some(rto);
            st.recovered = Some(server);
        }
        RecoveryAttempt::Failed { message, rto } => {
            rec.seconds = rto.as_ref().map(|r| r.seconds);
            res.outcome.rto = rto;
            res.recovery.observation = RecoveryObservation::Failed {
                message: message.clone(),
            };
            st.recovery_failed = Some(message.clone());
            rec.failed = Some(message);
        }
    }
    Ok(StepOutcome::LogicalRecovery(rec))
}

/// Verify the restored database against the ledger at the dump's snapshot.
pub(in crate::runner) async fn verify<D: Drill>(
    cx: &mut StepCx<'_, D>,
) -> Result<StepOutcome, BackendError> {
    let (st, res) = (&*cx.state, &mut *cx.result);
    let s = cx.scenario;
    let server = st
        .recovered
        .as_ref()
        .ok_or_else(|| BackendError::infra("nothing restored to verify"))?;
    let dump = st
        .logical
        .as_ref()
        .ok_or_else(|| BackendError::infra("no logical backup restored"))?;
    let began = std::time::Instant::now();
    let mut absent = Vec::new();
    for t in &s.seed_data.tables {
        if !sql::table_exists(&server.client, &t.name).await? {
            absent.push(t.name.clone());
        }
    }
    let observed = recover::observe(server, s, &st.ledger, &absent).await?;
    let expected = st.ledger.in_dump(dump);
    let default_expect = ExpectRecovered::default();
    let expect = match &s.expect {
        Expect::Recovered(r) => r,
        Expect::Failed(_) => &default_expect,
    };
    let case = verify::Case {
        ledger: &st.ledger,
        expected: &expected,
        archive: &st.archive,
        seed: s.seed,
        expect,
        rto_seconds: res.outcome.rto.as_ref().map(|r| r.seconds),
    };
    let mut v = verify::verify(&case, &observed);
    verify::explain_logical(&mut v, &st.ledger, dump, &absent);
    v.cost = Some(VerifyCost {
        seconds: began.elapsed().as_secs_f64(),
        tables: (observed.tables.len() + observed.bulk.len()) as u64,
        rows_read: observed.tables.values().map(|t| t.len() as u64).sum(),
        ..VerifyCost::default()
    });
    Ok(recover::record_verification(res, v))
}
