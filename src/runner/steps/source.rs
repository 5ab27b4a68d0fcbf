//! Steps on the source server: start it, create and fill tables, ledger-recorded writes,
//! restore points, checkpoints, WAL switches, failover and stop. Each handler returns what it
//! did (a `StepOutcome`); none touches object storage or decides a verdict.

use std::time::Duration;

use crate::backend::{BackendError, Drill, SourceSpec};
use crate::ledger::{FailoverRecord, RestorePointRecord};
use crate::scenario::SEED_STEP;

use super::super::outcome::{Commit, StepOutcome, Written};
use super::super::sql;
use super::super::state::StepCx;
use super::fault;

/// Start the source server, archiving to the drill's destination.
pub(in crate::runner) async fn start<D: Drill>(
    cx: &mut StepCx<'_, D>,
    spec: &SourceSpec,
) -> Result<StepOutcome, BackendError> {
    let server = cx.drill.start_source(spec).await?;
    let v = server.version.clone();
    cx.result.servers.source_postgres = Some(v.clone());
    cx.state.source = Some(server);
    Ok(StepOutcome::SourceStarted {
        version: v,
        destination: cx.drill.destination(),
        server_name: spec.server_name.clone(),
    })
}

pub(in crate::runner) async fn create_tables<D: Drill>(
    cx: &mut StepCx<'_, D>,
    tables: &[String],
) -> Result<StepOutcome, BackendError> {
    sql::create_tables(&cx.state.source()?.client, tables).await?;
    Ok(StepOutcome::TablesCreated {
        tables: tables.to_vec(),
    })
}

pub(in crate::runner) async fn load_fixture<D: Drill>(
    cx: &mut StepCx<'_, D>,
    path: &str,
) -> Result<StepOutcome, BackendError> {
    let file = cx.fixtures_dir.join(path);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| BackendError::io(file.display().to_string(), e))?;
    let generated: Vec<String> = cx
        .scenario
        .seed_data
        .tables
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let client = &cx.state.source()?.client;
    client.batch_execute(&text).await?;
    let snap = sql::snapshot_tables(client, &generated).await?;
    cx.state.ledger.fixture_tables = snap.clone();
    Ok(StepOutcome::FixtureLoaded {
        path: path.to_string(),
        tables: snap,
    })
}

pub(in crate::runner) async fn seed<D: Drill>(
    cx: &mut StepCx<'_, D>,
    table: &str,
    first_id: u64,
    rows: u64,
    row_bytes: Option<u32>,
) -> Result<StepOutcome, BackendError> {
    let e = cx
        .state
        .record_write(
            cx.scenario.seed,
            SEED_STEP,
            table,
            first_id,
            rows,
            row_bytes,
        )
        .await?;
    if row_bytes.is_some() {
        // Settle a bulk seed as a long-lived database's old data is settled: frozen, hinted
        // and analysed before the first base backup, so the WAL after it is the drill's writes
        // and not autovacuum's first pass over the seed.
        sql::settle(&cx.state.source()?.client, table).await?;
    }
    Ok(StepOutcome::Seeded(Commit::from(&e)))
}

/// A ledger-recorded write; with `own_segment`, WAL is switched after it and its segment
/// waited for in the archive.
pub(in crate::runner) async fn write<D: Drill>(
    cx: &mut StepCx<'_, D>,
    id: &str,
    table: &str,
    ids: std::ops::Range<u64>,
    row_bytes: Option<u32>,
    own_segment: bool,
) -> Result<StepOutcome, BackendError> {
    let rows = ids.end - ids.start;
    let e = cx
        .state
        .record_write(cx.scenario.seed, id, table, ids.start, rows, row_bytes)
        .await?;
    let switched = if own_segment {
        let timeout = cx.archive_timeout();
        Some(
            cx.state
                .switch_and_wait(id, timeout, Some(e.segment))
                .await?,
        )
    } else {
        None
    };
    Ok(StepOutcome::Written(Written {
        commit: Commit::from(&e),
        switched,
    }))
}

pub(in crate::runner) async fn restore_point<D: Drill>(
    cx: &mut StepCx<'_, D>,
    id: &str,
    name: &str,
) -> Result<StepOutcome, BackendError> {
    let lsn = sql::restore_point(&cx.state.source()?.client, name).await?;
    cx.state.ledger.restore_points.push(RestorePointRecord {
        step_id: id.to_string(),
        name: name.to_string(),
        lsn,
    });
    Ok(StepOutcome::RestorePoint {
        name: name.to_string(),
        lsn,
    })
}

pub(in crate::runner) async fn checkpoint<D: Drill>(
    cx: &mut StepCx<'_, D>,
) -> Result<StepOutcome, BackendError> {
    sql::checkpoint(&cx.state.source()?.client).await?;
    Ok(StepOutcome::Checkpoint)
}

pub(in crate::runner) async fn switch_wal<D: Drill>(
    cx: &mut StepCx<'_, D>,
    id: &str,
) -> Result<StepOutcome, BackendError> {
    let timeout = cx.archive_timeout();
    let archived = cx.state.switch_and_wait(id, timeout, None).await?;
    Ok(StepOutcome::Switched { archived })
}

pub(in crate::runner) async fn failover<D: Drill>(
    cx: &mut StepCx<'_, D>,
    id: &str,
) -> Result<StepOutcome, BackendError> {
    // Everything so far reaches the archive first, as a primary that keeps archiving.
    let timeout = cx.archive_timeout();
    let seg = cx.state.switch_and_wait(id, timeout, None).await?;
    cx.state.source = None;
    let server = cx
        .drill
        .failover(cx.scenario.timeouts.recovery_seconds)
        .await?;
    let t = sql::timeline(&server.client).await?;
    let tli = t.timeline;
    cx.state.source = Some(server);
    let switch = t.switch.filter(|_| tli > 1).ok_or_else(|| {
        BackendError::infra(format!(
            "after the failover the source is on timeline {tli}, not a new one"
        ))
    })?;
    cx.state.ledger.failovers.push(FailoverRecord {
        step_id: id.to_string(),
        timeline: tli,
        switch_lsn: switch,
    });
    Ok(StepOutcome::FailedOver {
        archived: seg,
        timeline: tli,
        switch_lsn: switch,
    })
}

pub(in crate::runner) async fn flush_archive<D: Drill>(
    cx: &mut StepCx<'_, D>,
) -> Result<StepOutcome, BackendError> {
    sql::mark(&cx.state.source()?.client).await?;
    let timeout = cx.archive_timeout();
    let through = cx
        .state
        .switch_and_wait("flush-archive", timeout, None)
        .await?;
    Ok(StepOutcome::ArchiveFlushed { through })
}

pub(in crate::runner) async fn stop<D: Drill>(
    cx: &mut StepCx<'_, D>,
) -> Result<StepOutcome, BackendError> {
    // Archiving has caught up (flush-archive waited for it): let the watches see it.
    fault::finish_watches(cx.state, Duration::from_secs(5)).await;
    cx.state.source = None;
    cx.drill.stop_source().await?;
    Ok(StepOutcome::SourceStopped)
}
