//! SQL the runner issues against the source and recovered servers: schema, seed, ledger-
//! recorded writes, restore points, WAL switches with archive confirmation, and reading the
//! recovered tables back. Shared by every backend; never touches files or object storage.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::backend::BackendError;
use crate::ledger::{FixtureTable, LedgerEntry, row_payload, rows_digest};
use crate::verify::ObservedRow;
use crate::wal::{Lsn, SegmentName, segment_of_file};

/// pgdrill's own schema on the source (never verified as user data).
pub const META_SCHEMA: &str = "pgdrill_meta";

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn lsn(s: &str) -> Result<Lsn, BackendError> {
    s.parse().map_err(BackendError::infra)
}

/// A segment name as `pg_walfile_name()` returns it.
fn segment(s: &str) -> Result<SegmentName, BackendError> {
    SegmentName::parse(s)
        .ok_or_else(|| BackendError::infra(format!("`{s}` is not a WAL segment name")))
}

/// Create the generated tables and pgdrill's marker table.
pub async fn create_tables(client: &Client, tables: &[String]) -> Result<(), BackendError> {
    let mut sql = format!(
        "CREATE SCHEMA {META_SCHEMA}; CREATE TABLE {META_SCHEMA}.marks (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());"
    );
    for t in tables {
        sql.push_str(&format!(
            "CREATE TABLE {} (id bigint PRIMARY KEY, step text NOT NULL, payload text NOT NULL);",
            ident(t)
        ));
    }
    client.batch_execute(&sql).await?;
    Ok(())
}

/// One ledger-recorded write: `rows` generated rows with ids `first_id..`, payloads from `seed`.
pub struct Write<'a> {
    pub seed: u64,
    /// Its position in the ledger.
    pub seq: u64,
    pub step_id: &'a str,
    pub table: &'a str,
    pub first_id: u64,
    pub rows: u64,
}

/// Insert generated rows in one transaction and return the ledger entry, all facts read from
/// the server: txid, LSN before COMMIT, LSN after COMMIT, WAL file, commit timestamp.
pub async fn write_rows(client: &mut Client, w: &Write<'_>) -> Result<LedgerEntry, BackendError> {
    let Write {
        seed,
        seq,
        step_id,
        table,
        first_id,
        rows,
    } = *w;
    let ids: Vec<i64> = (first_id..first_id + rows).map(|i| i as i64).collect();
    let payloads: Vec<String> = (first_id..first_id + rows)
        .map(|i| row_payload(seed, table, i))
        .collect();
    let steps: Vec<&str> = vec![step_id; ids.len()];
    let tx = client.transaction().await?;
    tx.execute(
        &format!(
            "INSERT INTO {} (id, step, payload) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])",
            ident(table)
        ),
        &[&ids, &steps, &payloads],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT (txid_current() % 4294967296)::bigint, pg_current_wal_insert_lsn()::text",
            &[],
        )
        .await?;
    let txid: i64 = row.get(0);
    let pre: String = row.get(1);
    tx.commit().await?;
    let row = client
        .query_one(
            "WITH l AS (SELECT pg_current_wal_insert_lsn() AS lsn) \
             SELECT lsn::text, pg_walfile_name(lsn), pg_xact_commit_timestamp(($1::bigint)::text::xid) FROM l",
            &[&txid],
        )
        .await?;
    let commit_lsn: String = row.get(0);
    let walfile: String = row.get(1);
    let commit_time: Option<DateTime<Utc>> = row.get(2);
    Ok(LedgerEntry {
        seq,
        step_id: step_id.to_string(),
        table: table.to_string(),
        first_id,
        rows,
        digest: rows_digest(payloads.iter().map(String::as_str)),
        txid: txid as u64,
        pre_commit_lsn: lsn(&pre)?,
        commit_lsn: lsn(&commit_lsn)?,
        segment: segment(&walfile)?,
        commit_time: commit_time.ok_or_else(|| {
            BackendError::infra("no commit timestamp: track_commit_timestamp must be on")
        })?,
    })
}

/// `pg_create_restore_point(name)`: the LSN it returns.
pub async fn restore_point(client: &Client, name: &str) -> Result<Lsn, BackendError> {
    let row = client
        .query_one("SELECT pg_create_restore_point($1)::text", &[&name])
        .await?;
    lsn(&row.get::<_, String>(0))
}

pub async fn checkpoint(client: &Client) -> Result<(), BackendError> {
    client.batch_execute("CHECKPOINT").await?;
    Ok(())
}

/// `pg_switch_wal()` and the name of the segment it completed.
pub async fn switch_wal(client: &Client) -> Result<SegmentName, BackendError> {
    let row = client
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .await?;
    segment(row.get::<_, &str>(0))
}

/// Commit a marker row, as a live primary keeps committing.
pub async fn mark(client: &Client) -> Result<(), BackendError> {
    client
        .batch_execute(&format!("INSERT INTO {META_SCHEMA}.marks DEFAULT VALUES"))
        .await?;
    Ok(())
}

/// A server's current timeline and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineInfo {
    pub timeline: u32,
    /// The timeline it left last (newest entry of its `.history` file); `None` on timeline 1.
    pub parent: Option<u32>,
    /// Where it left `parent`.
    pub switch: Option<Lsn>,
}

/// The server's current timeline and, past timeline 1, the newest entry of its `.history`.
pub async fn timeline(client: &Client) -> Result<TimelineInfo, BackendError> {
    let row = client
        .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
        .await?;
    let tli = row.get::<_, i32>(0) as u32;
    if tli <= 1 {
        return Ok(TimelineInfo {
            timeline: tli,
            parent: None,
            switch: None,
        });
    }
    let row = client
        .query_one(
            "SELECT pg_read_file('pg_wal/' || $1 || '.history')",
            &[&format!("{tli:08X}")],
        )
        .await?;
    let text: String = row.get(0);
    let (parent, switch) = parse_history_tail(&text);
    Ok(TimelineInfo {
        timeline: tli,
        parent,
        switch,
    })
}

/// The newest entry of a `.history` file: parent timeline and switch point.
fn parse_history_tail(text: &str) -> (Option<u32>, Option<Lsn>) {
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'));
    let mut fields = last.unwrap_or_default().split_whitespace();
    let parent = fields.next().and_then(|p| p.parse().ok());
    let switch = fields.next().and_then(|l| l.parse().ok());
    (parent, switch)
}

/// Poll `pg_stat_archiver` until `segment` (or a later one) is archived, with a deadline.
pub async fn wait_archived(
    client: &Client,
    segment: &SegmentName,
    deadline: Duration,
) -> Result<Duration, BackendError> {
    let start = Instant::now();
    loop {
        let row = client
            .query_one(
                "SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''), failed_count FROM pg_stat_archiver",
                &[],
            )
            .await?;
        let archived: String = row.get(0);
        if segment_of_file(&archived).is_some_and(|a| a >= *segment) {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= deadline {
            let failed: String = row.get(1);
            let count: i64 = row.get(2);
            return Err(BackendError::timeout(
                format!("WAL segment {segment} was not archived"),
                deadline,
                format!(
                    " (pg_stat_archiver: last archived `{archived}`, \
                     last failed `{failed}`, {count} failures; see the server log)"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One reading of `pg_stat_archiver` with the server's clock and the archive queue.
#[derive(Debug, Clone)]
pub struct ArchiverStat {
    pub server_time: chrono::DateTime<chrono::Utc>,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<chrono::DateTime<chrono::Utc>>,
    pub failed_count: i64,
    /// Files waiting in `pg_wal/archive_status` (`.ready`).
    pub ready: i64,
}

/// Read `pg_stat_archiver`, `now()` and the number of files waiting to be archived.
pub async fn archiver_stat(client: &Client) -> Result<ArchiverStat, BackendError> {
    let row = client
        .query_one(
            "SELECT now(), last_archived_wal, last_archived_time, failed_count, \
                    (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') \
             FROM pg_stat_archiver",
            &[],
        )
        .await?;
    Ok(ArchiverStat {
        server_time: row.get(0),
        last_archived_wal: row.get(1),
        last_archived_time: row.get(2),
        failed_count: row.get(3),
        ready: row.get(4),
    })
}

/// Row count and checksum of every user table except the generated ones and pgdrill's own.
pub async fn snapshot_tables(
    client: &Client,
    generated: &[String],
) -> Result<Vec<FixtureTable>, BackendError> {
    let rows = client
        .query(
            "SELECT schemaname, tablename FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema', $1) \
             AND NOT (schemaname = 'public' AND tablename = ANY($2)) ORDER BY 1, 2",
            &[&META_SCHEMA, &generated],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let (schema, table): (String, String) = (r.get(0), r.get(1));
        let q = format!(
            "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {}.{} t",
            ident(&schema),
            ident(&table)
        );
        let row = client.query_one(&q, &[]).await?;
        out.push(FixtureTable {
            table: format!("{schema}.{table}"),
            rows: row.get::<_, i64>(0) as u64,
            checksum: row.get(1),
        });
    }
    Ok(out)
}

/// Read a generated table back.
pub async fn read_table(client: &Client, table: &str) -> Result<Vec<ObservedRow>, BackendError> {
    let rows = client
        .query(
            &format!("SELECT id, step, payload FROM {} ORDER BY id", ident(table)),
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ObservedRow {
            id: r.get::<_, i64>(0) as u64,
            step: r.get(1),
            payload: r.get(2),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("events"), "\"events\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn history_tails_are_read() {
        let t = "1\t0/5000108\tno recovery target specified\n\n2\t0/7000060\tno recovery target specified\n";
        assert_eq!(parse_history_tail(t), (Some(2), Some(Lsn(0x0700_0060))));
        assert_eq!(parse_history_tail(""), (None, None));
    }
}
