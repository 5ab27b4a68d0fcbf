//! Compares what the ledger says must exist at the recovery target with what the recovered
//! database holds, and explains every difference. Pure: callers hand in rows already read.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ledger::{FaultRecord, FixtureTable, Ledger, LedgerEntry, RangeDigest, row_payload};
use crate::scenario::ExpectRecovered;
use crate::wal::SegmentName;

/// One row read back from a pgdrill-generated table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRow {
    pub id: u64,
    pub step: String,
    pub payload: String,
}

/// Everything read from the recovered database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Rows of each generated table, any order.
    pub tables: BTreeMap<String, Vec<ObservedRow>>,
    /// Row count and checksum of each fixture table.
    pub fixture_tables: Vec<FixtureTable>,
    /// The recovered server's timeline and the one it left when it promoted.
    pub timeline: Option<RecoveredTimeline>,
    /// Bulk tables, as the recovered server digested them (their rows are never read back).
    pub bulk: BTreeMap<String, ObservedBulk>,
}

/// A bulk table as the recovered server summed it up in one scan: a digest per id range between
/// the ledger's write boundaries, and exact ids only where a digest differs from the ledger.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedBulk {
    /// Ranges holding at least one row; a range absent here holds none.
    pub ranges: Vec<ObservedRange>,
    /// Bytes of the table the server scanned.
    pub bytes_scanned: u64,
}

/// One id range `first_id..end` of a bulk table on the recovered server.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRange {
    pub first_id: u64,
    pub end: u64,
    pub digest: RangeDigest,
    /// Where the digest differs from the ledger's: ids with no row (at most `MAX_IDS_SHOWN`)…
    pub missing_ids: Vec<u64>,
    /// …ids whose row is not the one written…
    pub wrong_ids: Vec<u64>,
    /// …and, where the ledger wrote nothing in this range, the ids present.
    pub present_ids: Vec<u64>,
}

/// At most this many ids name the rows of one bulk-table problem.
pub const MAX_IDS_SHOWN: usize = 1000;

/// The id boundaries of a bulk table's writes, sorted and distinct: every write's first id and
/// end, so each write is one range between two bounds and the gaps between writes are others.
pub fn bulk_bounds(ledger: &Ledger, table: &str) -> Vec<u64> {
    let set: BTreeSet<u64> = ledger
        .entries
        .iter()
        .filter(|e| e.table == table)
        .flat_map(|e| [e.first_id, e.first_id + e.rows])
        .collect();
    set.into_iter().collect()
}

/// Whether the digest of `first_id..end` differs from the ledger's, so the exact ids must be
/// read: a range that is no write, or a write whose rows are there in part or changed.
pub fn bulk_range_differs(
    ledger: &Ledger,
    table: &str,
    first_id: u64,
    end: u64,
    got: &RangeDigest,
) -> bool {
    let write = ledger
        .entries
        .iter()
        .find(|e| e.table == table && e.first_id == first_id && e.first_id + e.rows == end);
    match write {
        None => got.rows > 0,
        Some(e) => got.rows > 0 && e.digest.parse::<RangeDigest>().ok().as_ref() != Some(got),
    }
}

/// Where a recovered server's WAL history says it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredTimeline {
    /// The timeline it promoted onto.
    pub timeline: u32,
    /// The timeline recovery replayed last (the parent in its `.history`).
    pub parent: Option<u32>,
}

/// A ledger write whose rows are not in the recovered database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingWrite {
    pub step_id: String,
    pub table: String,
    pub first_id: u64,
    pub rows: u64,
    pub txid: u64,
    pub commit_lsn: String,
    pub segment: SegmentName,
    /// Whether the segment holding the commit is in the archive at recovery time.
    pub segment_in_archive: bool,
    /// The fault step that removed the segment, if one did.
    pub removed_by: Option<String>,
    /// The pre-recovery audit reported this segment missing.
    #[serde(default)]
    pub audit_gap: bool,
    /// The `crash` fault step before which this segment was never archived, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unarchived_at_crash: Option<String>,
    /// The fault step that cut replay before this write without removing its segment: damaged
    /// segment content, or a deleted `.history` file recovery needed to follow its timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
}

/// Rows that should not be there, or are there with the wrong content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowProblem {
    pub table: String,
    /// The rows' ids; for a bulk table, the first ones only.
    pub ids: Vec<u64>,
    pub what: String,
    /// Rows concerned, when more than `ids` lists (bulk tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// The comparison and its verdict. `failures` empty means the drill met its expectations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub expected_rows: BTreeMap<String, u64>,
    pub observed_rows: BTreeMap<String, u64>,
    pub missing: Vec<MissingWrite>,
    pub problems: Vec<RowProblem>,
    /// Rows missing in total (the observed data loss).
    pub rows_lost: u64,
    /// Human sentences explaining the loss, first the cause then each write.
    pub explanation: Vec<String>,
    /// Recovery point actually observed; `None` when the target expects no write.
    #[serde(default)]
    pub rpo: Option<ObservedRpo>,
    /// Unmet expectations; empty when the drill passed.
    pub failures: Vec<String>,
    /// What reading the recovered server back cost; set by the runner, which does the reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<VerifyCost>,
}

/// What a verification read and how long it took, to compare with the recovery it checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyCost {
    /// Wall time of reading the tables back and comparing them with the ledger.
    pub seconds: f64,
    /// Tables read back row by row.
    pub tables: u64,
    pub rows_read: u64,
    /// Bytes of the row values read (ids, step names, payloads).
    pub bytes_read: u64,
    /// Rows of bulk tables the recovered server digested itself (never sent to pgdrill).
    #[serde(default)]
    pub rows_digested_by_server: u64,
    /// Bytes of bulk tables the recovered server scanned to digest them.
    #[serde(default)]
    pub bytes_scanned_by_server: u64,
}

impl VerifyCost {
    /// The cost as a share of the recovery's RTO, when there is one.
    pub fn share_of(&self, rto_seconds: Option<f64>) -> Option<f64> {
        rto_seconds.filter(|r| *r > 0.0).map(|r| self.seconds / r)
    }
}

/// The recovery point a drill observed, from the ledger: between the last write expected at the
/// target (for `latest`, the last write the source committed) and the last write present
/// after recovery. Server-side commit times only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedRpo {
    /// Committed transactions expected at the target and absent after recovery.
    pub transactions_lost: u64,
    /// Commit-time distance between the last expected and the last present write; 0 when
    /// nothing is lost.
    pub seconds: f64,
    /// `step (txid N, commit time)` of the last write expected at the target.
    pub last_expected: String,
    /// The same for the last write present after recovery (`none` when none is).
    pub last_present: String,
    pub budget_seconds: Option<f64>,
}

/// Measure the RPO: `expected` in commit order, `missing` the writes not (fully) present.
pub fn observed_rpo(
    expected: &[&LedgerEntry],
    missing: &[MissingWrite],
    budget_seconds: Option<f64>,
) -> Option<ObservedRpo> {
    let describe = |e: &LedgerEntry| {
        format!(
            "{} (txid {}, committed {})",
            e.step_id,
            e.txid,
            e.commit_time.format("%Y-%m-%d %H:%M:%S%.6f UTC")
        )
    };
    let is_missing = |e: &LedgerEntry| {
        missing
            .iter()
            .any(|m| m.step_id == e.step_id && m.table == e.table)
    };
    let last = expected.iter().max_by_key(|e| e.seq)?;
    let present = expected
        .iter()
        .filter(|e| !is_missing(e))
        .max_by_key(|e| e.seq);
    let lost = expected.iter().filter(|e| is_missing(e)).count() as u64;
    let seconds = match present {
        _ if lost == 0 => 0.0,
        Some(p) => {
            (last.commit_time - p.commit_time)
                .num_microseconds()
                .unwrap_or(0)
                .max(0) as f64
                / 1e6
        }
        None => {
            (last.commit_time - expected.iter().map(|e| e.commit_time).min()?)
                .num_microseconds()
                .unwrap_or(0)
                .max(0) as f64
                / 1e6
        }
    };
    Some(ObservedRpo {
        transactions_lost: lost,
        seconds,
        last_expected: describe(last),
        last_present: present.map_or("none".into(), |p| describe(p)),
        budget_seconds,
    })
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What was known about the source's archive when recovery ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchiveFacts {
    /// WAL segments present in the archive.
    pub segments: BTreeSet<SegmentName>,
    /// Segments the pre-recovery audit reported missing on recovery's path.
    pub audit_gaps: BTreeSet<String>,
    /// The pre-recovery audit ran (it lists objects and reads only backup.info and history
    /// files, so it cannot see damaged content).
    pub audited: bool,
    /// The write steps the pre-recovery audit predicted lost.
    pub audit_predicted: BTreeSet<String>,
}

/// What the recovered rows are judged against.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub ledger: &'a Ledger,
    /// The ledger's writes that must exist at the recovery target.
    pub expected: &'a [&'a LedgerEntry],
    /// What the source's archive held when recovery ran.
    pub archive: &'a ArchiveFacts,
    /// The payload seed.
    pub seed: u64,
    pub expect: &'a ExpectRecovered,
    /// The measured recovery time.
    pub rto_seconds: Option<f64>,
}

/// Compare what the recovered server holds with `case` and judge.
pub fn verify(case: &Case<'_>, observed: &Observed) -> Verification {
    let Case {
        ledger,
        expected,
        archive,
        seed,
        expect,
        rto_seconds,
    } = *case;
    let mut v = Verification::default();
    let expected_ids: BTreeMap<&str, BTreeSet<u64>> = {
        let mut m: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        for e in expected {
            m.entry(e.table.as_str()).or_default().extend(e.ids());
        }
        m
    };
    let tables: BTreeSet<&str> = ledger
        .entries
        .iter()
        .map(|e| e.table.as_str())
        .chain(observed.tables.keys().map(String::as_str))
        .collect();
    for table in &tables {
        if let Some(bulk) = observed.bulk.get(*table) {
            for (e, present) in check_bulk(&mut v, ledger, expected, table, bulk) {
                v.missing.push(missing_write(ledger, archive, e, present));
            }
            continue;
        }
        let want = expected_ids.get(table).cloned().unwrap_or_default();
        let rows = observed
            .tables
            .get(*table)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        v.expected_rows.insert(table.to_string(), want.len() as u64);
        v.observed_rows.insert(table.to_string(), rows.len() as u64);
        let got: BTreeSet<u64> = rows.iter().map(|r| r.id).collect();
        let extra: Vec<u64> = got.difference(&want).copied().collect();
        if !extra.is_empty() {
            v.problems.push(RowProblem {
                table: table.to_string(),
                ids: extra,
                what: "present but not expected at this recovery target".into(),
                rows: None,
            });
        }
        let corrupt: Vec<u64> = rows
            .iter()
            .filter(|r| r.payload != row_payload(seed, table, r.id))
            .map(|r| r.id)
            .collect();
        if !corrupt.is_empty() {
            v.problems.push(RowProblem {
                table: table.to_string(),
                ids: corrupt,
                what: "content differs from what was written".into(),
                rows: None,
            });
        }
        for e in expected.iter().filter(|e| e.table == *table) {
            let present = e.ids().filter(|id| got.contains(id)).count() as u64;
            if present == e.rows {
                continue;
            }
            if present > 0 {
                v.problems.push(RowProblem {
                    table: table.to_string(),
                    ids: e.ids().filter(|id| !got.contains(id)).collect(),
                    what: split_write(e, present),
                    rows: None,
                });
            }
            v.missing.push(missing_write(ledger, archive, e, present));
        }
    }
    v.missing.sort_by_key(|m| {
        ledger
            .entries
            .iter()
            .find(|e| e.step_id == m.step_id && e.table == m.table)
            .map(|e| e.seq)
    });
    v.rows_lost = v.missing.iter().map(|m| m.rows).sum();
    explain(&mut v);
    explain_faults(&mut v, ledger, archive, observed);
    v.rpo = observed_rpo(expected, &v.missing, expect.rpo_budget_seconds);
    judge(&mut v, ledger, observed, expect, rto_seconds);
    v
}

fn split_write(e: &LedgerEntry, present: u64) -> String {
    format!(
        "write `{}` is only partly present ({present} of {} rows): a transaction was split",
        e.step_id, e.rows
    )
}

/// The write `e`, of which only `present` rows came back, with what is known of why.
fn missing_write(
    ledger: &Ledger,
    archive: &ArchiveFacts,
    e: &LedgerEntry,
    present: u64,
) -> MissingWrite {
    let removed_by = ledger
        .faults
        .iter()
        .find(|f| f.segments_removed.contains(&e.segment))
        .map(|f| f.step_id.clone());
    let in_archive = archive.segments.contains(&e.segment);
    let unarchived_at_crash = ledger
        .faults
        .iter()
        .find(|f| !in_archive && f.segments_unarchived.contains(&e.segment))
        .map(|f| f.step_id.clone());
    MissingWrite {
        caused_by: cause_of(ledger, e).map(|f| f.step_id.clone()),
        step_id: e.step_id.clone(),
        table: e.table.clone(),
        first_id: e.first_id,
        rows: e.rows - present,
        txid: e.txid,
        commit_lsn: e.commit_lsn.to_string(),
        segment: e.segment,
        segment_in_archive: in_archive,
        audit_gap: archive.audit_gaps.contains(&e.segment.to_string()),
        removed_by,
        unarchived_at_crash,
    }
}

/// A bulk table: its row counts, the problems its digests and exact ids show, and each
/// expected write with how many of its rows came back (a write is only present in full when
/// its digest equals the ledger's).
fn check_bulk<'a>(
    v: &mut Verification,
    ledger: &Ledger,
    expected: &[&'a LedgerEntry],
    table: &str,
    bulk: &ObservedBulk,
) -> Vec<(&'a LedgerEntry, u64)> {
    let want: Vec<&'a LedgerEntry> = expected
        .iter()
        .copied()
        .filter(|e| e.table == table)
        .collect();
    let want_seq: BTreeSet<u64> = want.iter().map(|e| e.seq).collect();
    v.expected_rows
        .insert(table.to_string(), want.iter().map(|e| e.rows).sum());
    v.observed_rows.insert(
        table.to_string(),
        bulk.ranges.iter().map(|r| r.digest.rows).sum(),
    );
    let mut problem = |ids: Vec<u64>, rows: u64, what: String| {
        let rows = (rows > ids.len() as u64).then_some(rows);
        v.problems.push(RowProblem {
            table: table.to_string(),
            ids,
            what,
            rows,
        });
    };
    let range_of = |first: u64, end: u64| {
        bulk.ranges
            .iter()
            .find(|r| r.first_id == first && r.end == end)
    };
    let mut writes: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut found = Vec::new();
    for e in ledger.entries.iter().filter(|e| e.table == table) {
        let end = e.first_id + e.rows;
        writes.insert((e.first_id, end));
        let r = range_of(e.first_id, end);
        let present = r.map_or(0, |r| r.digest.rows);
        if !want_seq.contains(&e.seq) {
            if present > 0 {
                let ids = r
                    .map(|r| r.present_ids.clone())
                    .filter(|ids| !ids.is_empty())
                    .unwrap_or_else(|| e.ids().take(MAX_IDS_SHOWN).collect());
                problem(
                    ids,
                    present,
                    "present but not expected at this recovery target".into(),
                );
            }
            continue;
        }
        if let Some(r) = r {
            if !r.wrong_ids.is_empty() {
                problem(
                    r.wrong_ids.clone(),
                    r.wrong_ids.len() as u64,
                    "content differs from what was written".into(),
                );
            } else if present == e.rows
                && e.digest.parse::<RangeDigest>().ok().as_ref() != Some(&r.digest)
            {
                problem(
                    Vec::new(),
                    0,
                    format!(
                        "content of write `{}` differs from what was written: the server's digest is {}, the ledger's {}",
                        e.step_id, r.digest, e.digest
                    ),
                );
            }
            if present > 0 && present < e.rows {
                problem(
                    r.missing_ids.clone(),
                    e.rows - present,
                    split_write(e, present),
                );
            }
        }
        if let Some(e) = want.iter().find(|w| w.seq == e.seq)
            && present < e.rows
        {
            found.push((*e, present));
        }
    }
    for r in &bulk.ranges {
        if r.digest.rows > 0 && !writes.contains(&(r.first_id, r.end)) {
            problem(
                r.present_ids.clone(),
                r.digest.rows,
                "present but never written by the ledger's writes".into(),
            );
        }
    }
    found
}

/// The loss explanation of a logical restore: rows are judged at the dump's snapshot, not at
/// a WAL position, so the first line names the dump and its snapshot, and each missing write
/// says it committed before that snapshot (the dump should hold it). `absent` lists the tables
/// the restored database does not have at all.
pub fn explain_logical(
    v: &mut Verification,
    ledger: &Ledger,
    dump: &crate::ledger::DumpRecord,
    absent: &[String],
) {
    // A logical restore reads no WAL: whether a commit's segment is archived says nothing.
    for m in &mut v.missing {
        m.segment_in_archive = true;
        m.audit_gap = false;
    }
    let later = ledger
        .entries
        .iter()
        .filter(|e| !dump.snapshot.sees(e.txid))
        .count();
    let context = format!(
        "logical backup `{}` of database `{}` at snapshot {}{}",
        dump.step_id,
        dump.database,
        dump.snapshot,
        if later > 0 {
            format!(" ({later} later or in-flight write(s) rightly not expected)")
        } else {
            String::new()
        }
    );
    if v.missing.is_empty() {
        v.explanation = Vec::new();
        return;
    }
    let mut first = format!(
        "{} rows lost: the restore of {context} lacks writes its snapshot holds.",
        v.rows_lost
    );
    if !absent.is_empty() {
        first.push_str(&format!(
            " The restored database has no table {}: the dump does not hold them (a dump of another database, or a restore into another one).",
            absent.join(", ")
        ));
    }
    let mut lines = vec![first];
    for m in &v.missing {
        let ids = if m.rows == 1 {
            format!("id {}", m.first_id)
        } else {
            format!("ids {}..{}", m.first_id, m.first_id + m.rows - 1)
        };
        lines.push(format!(
            "step `{}`: {} row(s) of {} ({ids}), txid {}, committed before the snapshot (visible in it) but missing",
            m.step_id, m.rows, m.table, m.txid
        ));
    }
    v.explanation = lines;
}

fn explain(v: &mut Verification) {
    if v.missing.is_empty() {
        return;
    }
    let gap = v.missing.iter().find(|m| !m.segment_in_archive);
    let mut lines = vec![match gap {
        Some(g) => format!(
            "{} rows lost: WAL replay stopped before segment {}, which is absent from the archive{}; \
             recovery still promoted, so every later commit is gone.{}",
            v.rows_lost,
            g.segment,
            match (&g.removed_by, &g.unarchived_at_crash) {
                (Some(s), _) => format!(" (deleted by fault step `{s}`)"),
                (None, Some(c)) => format!(
                    " (never archived: the source crashed at fault step `{c}` before archiving it)"
                ),
                (None, None) => String::new(),
            },
            if g.audit_gap {
                " The archive audit reported this gap before recovery started."
            } else {
                ""
            }
        ),
        None => format!(
            "{} rows lost although every segment holding their commits is in the archive.",
            v.rows_lost
        ),
    }];
    for m in &v.missing {
        let ids = if m.rows == 1 {
            format!("id {}", m.first_id)
        } else {
            format!("ids {}..{}", m.first_id, m.first_id + m.rows - 1)
        };
        let whereabouts = if m.segment_in_archive {
            match gap {
                Some(g) if g.segment < m.segment => {
                    format!(
                        "present in the archive but unreachable past the gap at {}",
                        g.segment
                    )
                }
                _ => "present in the archive".to_string(),
            }
        } else {
            "absent from the archive".to_string()
        };
        lines.push(format!(
            "step `{}`: {} row(s) of {} ({ids}), txid {}, commit at {} in segment {} ({whereabouts})",
            m.step_id, m.rows, m.table, m.txid, m.commit_lsn, m.segment
        ));
    }
    v.explanation = lines;
}

/// The content or history fault that cut replay before `e`, if one did: the earliest damaged
/// record at or before its commit, or a deleted history file of its timeline.
fn cause_of<'a>(ledger: &'a Ledger, e: &LedgerEntry) -> Option<&'a FaultRecord> {
    let damaged = ledger
        .faults
        .iter()
        .filter_map(|f| {
            let from = f
                .damaged_from_lsn
                .or_else(|| f.read_errors.as_ref().and_then(|r| r.ended_before_lsn));
            from.filter(|l| *l < e.commit_lsn).map(|l| (l, f))
        })
        .min_by_key(|(l, _)| *l)
        .map(|(_, f)| f);
    damaged.or_else(|| {
        let tli = e.segment.timeline;
        ledger
            .faults
            .iter()
            .find(|f| f.history_removed.is_some_and(|t| t <= tli))
    })
}

/// One lost write's line in an explanation, with where its commit is.
fn write_line(m: &MissingWrite, whereabouts: &str) -> String {
    format!(
        "step `{}`: {} row(s) of {} ({}), txid {}, commit at {} in segment {} ({whereabouts})",
        m.step_id,
        m.rows,
        m.table,
        id_range(m),
        m.txid,
        m.commit_lsn,
        m.segment,
    )
}

fn id_range(m: &MissingWrite) -> String {
    if m.rows == 1 {
        format!("id {}", m.first_id)
    } else {
        format!("ids {}..{}", m.first_id, m.first_id + m.rows - 1)
    }
}

/// Replace the generic explanation when the loss comes from a content or history fault: the
/// segments are all listed, so the gap sentence of `explain` does not apply.
fn explain_faults(
    v: &mut Verification,
    ledger: &Ledger,
    archive: &ArchiveFacts,
    observed: &Observed,
) {
    if v.missing.is_empty() || v.missing.iter().any(|m| !m.segment_in_archive) {
        return;
    }
    let Some(first) = v.missing.iter().find(|m| m.caused_by.is_some()) else {
        return;
    };
    let Some(fault) = ledger
        .faults
        .iter()
        .find(|f| Some(&f.step_id) == first.caused_by.as_ref())
    else {
        return;
    };
    let audit_note = if archive.audited && !archive.audit_predicted.contains(&first.step_id) {
        if archive.audit_predicted.is_empty() {
            " The pre-recovery archive audit predicted no loss: it only lists objects (and reads \
             backup.info and history files), so it cannot see damaged content; this loss comes \
             from damaged content, not from a gap it missed."
        } else {
            " The pre-recovery archive audit did not predict this loss: it only lists objects \
             (and reads backup.info and history files), so it cannot see damaged content."
        }
    } else {
        ""
    };
    let mut lines = Vec::new();
    if let (Some(lsn), Some(segment)) = (fault.damaged_from_lsn, fault.segments_damaged.first()) {
        let how = fault.damage.as_deref().unwrap_or("damaged");
        let (cut, stop) = if how == "undecompressable" {
            (
                format!(
                    "WAL segment {segment} was damaged by fault step `{}` (undecompressable): \
                     barman-cloud-wal-restore cannot decompress it, so replay ends before it",
                    fault.step_id
                ),
                format!("the undecompressable segment {segment}"),
            )
        } else {
            (
                format!(
                    "WAL segment {segment} was corrupted by fault step `{}` ({how}); replay \
                     stops at the damaged record at {lsn}",
                    fault.step_id
                ),
                format!("the damaged record at {lsn}"),
            )
        };
        lines.push(format!(
            "{} rows lost: {cut}, and recovery still promoted, so every later commit is gone.{audit_note}",
            v.rows_lost
        ));
        for m in &v.missing {
            let what = format!(
                "{} row(s) of {} ({}), txid {}, commit at {} in segment {}",
                m.rows,
                m.table,
                id_range(m),
                m.txid,
                m.commit_lsn,
                m.segment
            );
            lines.push(if m.step_id == first.step_id {
                format!("write `{}` lost: {cut}: {what}", m.step_id)
            } else if m.caused_by.is_some() {
                format!(
                    "step `{}`: {what} (present in the archive but unreachable past {stop})",
                    m.step_id
                )
            } else {
                format!("step `{}`: {what} (present in the archive)", m.step_id)
            });
        }
    } else if let Some(tli) = fault.history_removed {
        let parent = tli - 1;
        let lost: Vec<&str> = v
            .missing
            .iter()
            .filter(|m| m.caused_by.is_some())
            .map(|m| m.step_id.as_str())
            .collect();
        let failover = ledger
            .failovers
            .iter()
            .find(|f| f.timeline == tli)
            .map(|f| {
                format!(
                    " (step `{}` failed the source over at {})",
                    f.step_id, f.switch_lsn
                )
            })
            .unwrap_or_default();
        let evidence = match observed.timeline {
            Some(RecoveredTimeline {
                timeline,
                parent: Some(p),
            }) => format!(
                "; the recovered server's history says it left timeline {p} when it promoted onto its own timeline {timeline}"
            ),
            _ => String::new(),
        };
        let stayed = observed
            .timeline
            .and_then(|t| t.parent)
            .is_none_or(|p| p < tli);
        let verdict = if stayed { "diverged" } else { "lost" };
        lines.push(format!(
            "{verdict}: recovery stayed on timeline {parent}, because {tli:08X}.history was deleted by fault step `{}`, \
             so it never followed timeline {tli}{failover}; writes {} on timeline {tli} lost ({} rows){evidence}.{}",
            fault.step_id,
            lost.join(", "),
            v.rows_lost,
            match (archive.audited, lost.iter().all(|s| archive.audit_predicted.contains(*s))) {
                (true, true) => format!(
                    " The pre-recovery audit predicted it: the archive holds WAL of timeline {tli} but no {tli:08X}.history."
                ),
                (true, false) => " The pre-recovery audit did not predict it.".to_string(),
                (false, _) => String::new(),
            }
        ));
        for m in &v.missing {
            let whereabouts = if m.caused_by.is_some() {
                format!(
                    "on timeline {}, which recovery never followed",
                    m.segment.timeline
                )
            } else {
                "present in the archive".to_string()
            };
            lines.push(write_line(m, &whereabouts));
        }
    } else if let Some(r) = &fault.read_errors
        && let Some(segment) = &r.ended_before
    {
        let cut = format!(
            "recovery ended at segment {segment} because restore_command failed while the object \
             store answered {} (fault `{}`: {} failed request(s)); PostgreSQL takes a failing \
             restore_command for the end of the archive",
            r.error, fault.step_id, r.errors_answered
        );
        lines.push(format!(
            "{} rows lost: {cut}, so it promoted without them although every segment is in the \
             archive: silent data loss.",
            v.rows_lost
        ));
        for m in &v.missing {
            let whereabouts = if m.caused_by.is_some() {
                format!("present in the archive, never read: replay ended before {segment}")
            } else {
                "present in the archive".to_string()
            };
            lines.push(write_line(m, &whereabouts));
        }
    } else {
        return;
    }
    v.explanation = lines;
}

fn judge(
    v: &mut Verification,
    ledger: &Ledger,
    observed: &Observed,
    expect: &ExpectRecovered,
    rto_seconds: Option<f64>,
) {
    let mut f = Vec::new();
    for p in &v.problems {
        let rows = p.rows.unwrap_or(p.ids.len() as u64);
        f.push(if p.ids.len() as u64 == rows && rows <= 20 {
            format!("{}: {rows} row(s) {} (ids {:?})", p.table, p.what, p.ids)
        } else if p.ids.is_empty() {
            format!("{}: {}", p.table, p.what)
        } else {
            let listed = if p.ids.len() as u64 == rows {
                format!("all {rows} listed in the JSON report")
            } else {
                format!(
                    "the first {} of {rows} listed in the JSON report",
                    p.ids.len()
                )
            };
            format!(
                "{}: {rows} row(s) {} (ids {:?}…, {listed})",
                p.table,
                p.what,
                &p.ids[..p.ids.len().min(20)],
            )
        });
    }
    let want_loss = expect.data_loss.rows;
    if v.rows_lost != want_loss {
        f.push(if want_loss == 0 {
            format!("unexpected data loss: {} rows missing", v.rows_lost)
        } else {
            format!(
                "expected a loss of {want_loss} rows, observed {}",
                v.rows_lost
            )
        });
    }
    if let Some(steps) = &expect.data_loss.steps {
        let want: BTreeSet<&str> = steps.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = v.missing.iter().map(|m| m.step_id.as_str()).collect();
        if want != got {
            f.push(format!("expected lost steps {want:?}, observed {got:?}"));
        }
    }
    if let Some(rows) = &expect.rows {
        for (table, n) in rows {
            let got = v.observed_rows.get(table).copied().unwrap_or(0);
            if got != *n {
                f.push(format!("{table}: expected {n} rows, observed {got}"));
            }
        }
    }
    for want in &ledger.fixture_tables {
        match observed
            .fixture_tables
            .iter()
            .find(|o| o.table == want.table)
        {
            None => f.push(format!("fixture table {} is missing", want.table)),
            Some(o) if o.rows != want.rows || o.checksum != want.checksum => f.push(format!(
                "fixture table {}: expected {} rows (checksum {}), observed {} rows (checksum {})",
                want.table, want.rows, want.checksum, o.rows, o.checksum
            )),
            Some(_) => {}
        }
    }
    if let Some(rpo) = &v.rpo
        && let Some(budget) = rpo.budget_seconds
        && rpo.seconds > budget
    {
        f.push(format!(
            "RPO {:.1}s ({} transaction(s) lost) is over the budget of {budget:.1}s",
            rpo.seconds, rpo.transactions_lost
        ));
    }
    if let (Some(budget), Some(rto)) = (expect.rto_budget_seconds, rto_seconds)
        && rto > budget
    {
        f.push(format!("RTO {rto:.1}s is over the budget of {budget:.1}s"));
    }
    v.failures = f;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_cost_is_a_share_of_a_positive_rto_only() {
        let c = VerifyCost {
            seconds: 2.0,
            tables: 1,
            rows_read: 10,
            bytes_read: 400,
            ..Default::default()
        };
        assert_eq!(c.share_of(Some(8.0)), Some(0.25));
        assert_eq!(c.share_of(Some(0.0)), None);
        assert_eq!(c.share_of(None), None);
    }
    use crate::ledger::{FaultRecord, LedgerEntry};
    use crate::scenario::DataLoss;
    use crate::scenario::SEED_STEP;
    use crate::wal::Lsn;
    use chrono::{TimeZone, Utc};

    /// `verify` with the tests' payload seed (7).
    fn judge(
        ledger: &Ledger,
        expected: &[&LedgerEntry],
        observed: &Observed,
        archive: &ArchiveFacts,
        expect: &ExpectRecovered,
        rto_seconds: Option<f64>,
    ) -> Verification {
        let case = Case {
            ledger,
            expected,
            archive,
            seed: 7,
            expect,
            rto_seconds,
        };
        verify(&case, observed)
    }

    fn seg(name: &str) -> SegmentName {
        name.parse().unwrap()
    }

    fn entry(seq: u64, step: &str, first_id: u64, rows: u64, seg: u8) -> LedgerEntry {
        LedgerEntry {
            seq,
            step_id: step.into(),
            table: "events".into(),
            first_id,
            rows,
            digest: String::new(),
            row_bytes: None,
            txid: 700 + seq,
            pre_commit_lsn: Lsn(((seg as u64) << 24) + 0x100),
            commit_lsn: Lsn(((seg as u64) << 24) + 0x200),
            segment: format!("0000000100000000000000{seg:02X}").parse().unwrap(),
            commit_time: Utc
                .with_ymd_and_hms(2026, 11, 22, 10, 0, seq as u32)
                .unwrap(),
        }
    }

    fn ledger() -> Ledger {
        Ledger {
            entries: vec![
                entry(0, SEED_STEP, 1, 24, 5),
                entry(1, "w1", 25, 1, 8),
                entry(2, "w2", 26, 1, 9),
                entry(3, "w3", 27, 1, 10),
            ],
            faults: vec![FaultRecord {
                step_id: "drop-w2".into(),
                action: "deleted WAL segment".into(),
                segments_removed: vec![seg("000000010000000000000009")],
                objects_deleted: vec![],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn rows(ids: std::ops::RangeInclusive<u64>) -> Observed {
        let mut o = Observed::default();
        o.tables.insert(
            "events".into(),
            ids.map(|id| ObservedRow {
                id,
                step: "x".into(),
                payload: row_payload(7, "events", id),
            })
            .collect(),
        );
        o
    }

    fn archive() -> ArchiveFacts {
        ArchiveFacts {
            segments: ["000000010000000000000008", "00000001000000000000000A"]
                .map(seg)
                .into(),
            audit_gaps: ["000000010000000000000009".to_string()].into(),
            audited: true,
            audit_predicted: ["w2".to_string(), "w3".to_string()].into(),
        }
    }

    #[test]
    fn adr007_gap_is_caught_and_explained() {
        let l = ledger();
        let expected: Vec<&LedgerEntry> = l.entries.iter().collect();
        let exp = ExpectRecovered::default();
        let v = judge(&l, &expected, &rows(1..=25), &archive(), &exp, Some(3.0));
        assert_eq!(v.rows_lost, 2);
        assert_eq!(v.expected_rows["events"], 27);
        assert_eq!(v.observed_rows["events"], 25);
        assert_eq!(v.missing[0].step_id, "w2");
        assert!(!v.missing[0].segment_in_archive);
        assert_eq!(v.missing[0].removed_by.as_deref(), Some("drop-w2"));
        assert!(v.missing[1].segment_in_archive);
        // RPO from the ledger: w3 (seq 3) expected last, w1 (seq 1) present last, 2 s apart.
        let rpo = v.rpo.as_ref().expect("rpo");
        assert_eq!(rpo.transactions_lost, 2);
        assert!((rpo.seconds - 2.0).abs() < 1e-9, "{rpo:?}");
        assert!(rpo.last_present.starts_with("w1 "), "{rpo:?}");
        let budget = ExpectRecovered {
            rpo_budget_seconds: Some(1.5),
            data_loss: DataLoss {
                rows: 2,
                steps: None,
            },
            ..ExpectRecovered::default()
        };
        let over = judge(&l, &expected, &rows(1..=25), &archive(), &budget, None);
        assert_eq!(over.failures.len(), 1, "{:?}", over.failures);
        assert!(
            over.failures[0].starts_with("RPO 2.0s"),
            "{:?}",
            over.failures
        );
        let all = judge(&l, &expected, &rows(1..=27), &archive(), &budget, None);
        assert_eq!(all.rpo.as_ref().unwrap().seconds, 0.0);
        assert!(
            v.explanation[0].contains("000000010000000000000009"),
            "{:?}",
            v.explanation
        );
        assert!(
            v.explanation[2].contains("unreachable past the gap"),
            "{:?}",
            v.explanation
        );
        assert!(
            !v.passed(),
            "a silent loss must fail a drill that expects none"
        );

        let exp = ExpectRecovered {
            data_loss: DataLoss {
                rows: 2,
                steps: Some(vec!["w2".into(), "w3".into()]),
            },
            rows: Some([("events".to_string(), 25)].into()),
            ..Default::default()
        };
        let v = judge(&l, &expected, &rows(1..=25), &archive(), &exp, Some(3.0));
        assert!(v.passed(), "{:?}", v.failures);
    }

    #[test]
    fn recovery_ended_by_failing_reads_is_attributed_to_the_error_window() {
        let mut l = ledger();
        l.faults = vec![FaultRecord {
            step_id: "recovery-errors".into(),
            action: "object store answers 503 SlowDown".into(),
            read_errors: Some(crate::ledger::ReadErrors {
                error: "503 SlowDown".into(),
                errors_answered: 10,
                failed_segments: vec![seg("000000010000000000000009")],
                ended_before: Some(seg("000000010000000000000009")),
                ended_before_lsn: Some(Lsn(0x0900_0000)),
            }),
            ..Default::default()
        }];
        let mut a = archive();
        a.segments.insert(seg("000000010000000000000009"));
        a.audit_gaps.clear();
        a.audit_predicted.clear();
        let expected: Vec<&LedgerEntry> = l.entries.iter().collect();
        let exp = ExpectRecovered {
            data_loss: DataLoss {
                rows: 2,
                steps: Some(vec!["w2".into(), "w3".into()]),
            },
            ..Default::default()
        };
        let v = judge(&l, &expected, &rows(1..=25), &a, &exp, Some(3.0));
        assert!(v.passed(), "{:?}", v.failures);
        assert_eq!(v.missing[0].caused_by.as_deref(), Some("recovery-errors"));
        assert_eq!(v.missing[1].caused_by.as_deref(), Some("recovery-errors"));
        let e = &v.explanation;
        assert!(
            e[0].starts_with("2 rows lost: recovery ended at segment 000000010000000000000009 because restore_command failed while the object store answered 503 SlowDown"),
            "{e:?}"
        );
        assert!(e[0].contains("silent data loss"), "{e:?}");
        assert!(e[1].contains("never read"), "{e:?}");
    }

    #[test]
    fn a_damaged_record_is_attributed_and_the_audit_is_not_credited() {
        let mut l = ledger();
        l.faults = vec![FaultRecord {
            step_id: "corrupt-w2".into(),
            action: "corrupted".into(),
            segments_damaged: vec![seg("000000010000000000000009")],
            damaged_from_lsn: Some(Lsn(0x0900_0100)),
            damage: Some("CRC".into()),
            ..FaultRecord::default()
        }];
        let every = ArchiveFacts {
            segments: ["08", "09", "0A"]
                .map(|s| seg(&format!("0000000100000000000000{s}")))
                .into(),
            audit_gaps: BTreeSet::new(),
            audited: true,
            audit_predicted: BTreeSet::new(),
        };
        let expected: Vec<&LedgerEntry> = l.entries.iter().collect();
        let exp = ExpectRecovered {
            data_loss: DataLoss {
                rows: 2,
                steps: Some(vec!["w2".into(), "w3".into()]),
            },
            ..Default::default()
        };
        let v = judge(&l, &expected, &rows(1..=25), &every, &exp, None);
        assert!(v.passed(), "{:?}", v.failures);
        assert_eq!(v.missing[0].caused_by.as_deref(), Some("corrupt-w2"));
        assert_eq!(v.missing[1].caused_by.as_deref(), Some("corrupt-w2"));
        assert!(v.missing.iter().all(|m| m.removed_by.is_none()));
        let e = &v.explanation;
        assert!(
            e[0].starts_with("2 rows lost: WAL segment 000000010000000000000009 was corrupted by fault step `corrupt-w2` (CRC); replay stops at the damaged record at 0/9000100"),
            "{e:?}"
        );
        assert!(e[0].contains("audit predicted no loss"), "{e:?}");
        assert!(e[0].contains("cannot see damaged content"), "{e:?}");
        assert!(
            e[1].starts_with("write `w2` lost: WAL segment 000000010000000000000009 was corrupted"),
            "{e:?}"
        );
        assert!(
            e[2].contains("unreachable past the damaged record at 0/9000100"),
            "{e:?}"
        );

        // Undecompressable: replay ends before the segment.
        l.faults[0].damage = Some("undecompressable".into());
        let v = judge(&l, &expected, &rows(1..=25), &every, &exp, None);
        assert!(
            v.explanation[0].contains("barman-cloud-wal-restore cannot decompress it"),
            "{:?}",
            v.explanation
        );
        // A damaged record after every expected commit explains nothing.
        l.faults[0].damaged_from_lsn = Some(Lsn(0x0B00_0000));
        let v = judge(&l, &expected, &rows(1..=25), &every, &exp, None);
        assert!(v.missing.iter().all(|m| m.caused_by.is_none()));
        assert!(
            v.explanation[0].contains("although every segment"),
            "{:?}",
            v.explanation
        );
    }

    #[test]
    fn a_deleted_history_file_explains_a_divergence() {
        let mut l = ledger();
        // w2 and w3 were written after a failover, on timeline 2.
        l.entries[2].segment = seg("000000020000000000000009");
        l.entries[3].segment = seg("00000002000000000000000A");
        l.failovers.push(crate::ledger::FailoverRecord {
            step_id: "f1".into(),
            timeline: 2,
            switch_lsn: Lsn(0x0900_0000),
        });
        l.faults = vec![FaultRecord {
            step_id: "drop-history".into(),
            history_removed: Some(2),
            ..FaultRecord::default()
        }];
        let facts = ArchiveFacts {
            segments: l.entries.iter().map(|e| e.segment).collect(),
            audit_gaps: BTreeSet::new(),
            audited: true,
            audit_predicted: ["w2".to_string(), "w3".to_string()].into(),
        };
        let mut seen = rows(1..=25);
        seen.timeline = Some(RecoveredTimeline {
            timeline: 2,
            parent: Some(1),
        });
        let expected: Vec<&LedgerEntry> = l.entries.iter().collect();
        let v = judge(
            &l,
            &expected,
            &seen,
            &facts,
            &ExpectRecovered::default(),
            None,
        );
        assert_eq!(v.rows_lost, 2);
        assert!(
            v.missing
                .iter()
                .all(|m| m.caused_by.as_deref() == Some("drop-history"))
        );
        let e = &v.explanation;
        assert!(
            e[0].starts_with("diverged: recovery stayed on timeline 1, because 00000002.history was deleted by fault step `drop-history`"),
            "{e:?}"
        );
        assert!(
            e[0].contains("writes w2, w3 on timeline 2 lost (2 rows)"),
            "{e:?}"
        );
        assert!(
            e[0].contains("step `f1` failed the source over at 0/9000000"),
            "{e:?}"
        );
        assert!(
            e[0].contains("left timeline 1 when it promoted onto its own timeline 2"),
            "{e:?}"
        );
        assert!(
            e[0].ends_with("The pre-recovery audit predicted it: the archive holds WAL of timeline 2 but no 00000002.history."),
            "{e:?}"
        );
        assert!(e[1].contains("which recovery never followed"), "{e:?}");
    }

    #[test]
    fn extra_and_corrupt_rows_fail() {
        let l = ledger();
        let expected: Vec<&LedgerEntry> = l.entries.iter().take(2).collect();
        let mut o = rows(1..=26);
        o.tables.get_mut("events").unwrap()[0].payload = "tampered".into();
        let v = judge(
            &l,
            &expected,
            &o,
            &archive(),
            &ExpectRecovered::default(),
            None,
        );
        assert_eq!(v.problems.len(), 2);
        assert_eq!(v.problems[0].ids, vec![26]);
        assert_eq!(v.problems[1].ids, vec![1]);
        assert!(!v.passed());
    }

    #[test]
    fn exact_match_passes_and_rto_budget_is_enforced() {
        let l = ledger();
        let expected: Vec<&LedgerEntry> = l.entries.iter().collect();
        let exp = ExpectRecovered {
            rto_budget_seconds: Some(2.0),
            ..Default::default()
        };
        let v = judge(&l, &expected, &rows(1..=27), &archive(), &exp, Some(1.5));
        assert!(v.passed(), "{:?}", v.failures);
        let v = judge(&l, &expected, &rows(1..=27), &archive(), &exp, Some(2.5));
        assert_eq!(v.failures.len(), 1);
        assert!(v.failures[0].contains("RTO"));
    }

    #[test]
    fn a_split_transaction_is_reported() {
        let mut l = ledger();
        l.entries[3].rows = 3; // w3 wrote ids 27..=29
        let expected: Vec<&LedgerEntry> = l.entries.iter().collect();
        let v = judge(
            &l,
            &expected,
            &rows(1..=28),
            &archive(),
            &ExpectRecovered::default(),
            None,
        );
        assert!(v.problems.iter().any(|p| p.what.contains("partly present")));
        assert_eq!(v.rows_lost, 1);
    }

    /// A bulk table `blobs`: seed ids 1..1001, w1 1001..1501 (segment 8), w2 1501..2001
    /// (segment 9, deleted by `drop-w2`).
    fn bulk_ledger() -> Ledger {
        let bulk = |seq, step: &str, first, rows, seg, sum: &str| LedgerEntry {
            table: "blobs".into(),
            digest: format!("{rows}:{sum}"),
            row_bytes: Some(1024),
            ..entry(seq, step, first, rows, seg)
        };
        Ledger {
            entries: vec![
                bulk(0, SEED_STEP, 1, 1000, 5, "111"),
                bulk(1, "w1", 1001, 500, 8, "222"),
                bulk(2, "w2", 1501, 500, 9, "333"),
            ],
            ..ledger()
        }
    }

    fn range(first_id: u64, end: u64, rows: u64, sum: &str) -> ObservedRange {
        ObservedRange {
            first_id,
            end,
            digest: RangeDigest {
                rows,
                sum: sum.into(),
            },
            missing_ids: vec![],
            wrong_ids: vec![],
            present_ids: vec![],
        }
    }

    fn bulk_observed(ranges: Vec<ObservedRange>) -> Observed {
        let mut o = Observed::default();
        o.bulk.insert(
            "blobs".into(),
            ObservedBulk {
                ranges,
                bytes_scanned: 8192,
            },
        );
        o
    }

    fn bulk_judge(l: &Ledger, upto: usize, o: &Observed, loss: u64) -> Verification {
        let expected: Vec<&LedgerEntry> = l.entries.iter().take(upto).collect();
        let expect = ExpectRecovered {
            data_loss: DataLoss {
                rows: loss,
                ..Default::default()
            },
            ..Default::default()
        };
        judge(l, &expected, o, &ArchiveFacts::default(), &expect, None)
    }

    #[test]
    fn bulk_bounds_cut_every_write_and_ranges_equal_to_the_ledger_need_no_ids() {
        let l = bulk_ledger();
        assert_eq!(bulk_bounds(&l, "blobs"), vec![1, 1001, 1501, 2001]);
        assert!(bulk_bounds(&l, "events").iter().all(|b| *b <= 28));
        let d = |rows, sum: &str| RangeDigest {
            rows,
            sum: sum.into(),
        };
        assert!(!bulk_range_differs(&l, "blobs", 1001, 1501, &d(500, "222")));
        assert!(bulk_range_differs(&l, "blobs", 1001, 1501, &d(500, "223")));
        assert!(bulk_range_differs(&l, "blobs", 1001, 1501, &d(499, "222")));
        // A write with nothing back is a loss, its ids are the write's: no query.
        assert!(!bulk_range_differs(&l, "blobs", 1001, 1501, &d(0, "0")));
        // Rows where no write put any.
        assert!(bulk_range_differs(
            &l,
            "blobs",
            2001,
            u64::MAX >> 1,
            &d(1, "5")
        ));
        assert!(!bulk_range_differs(&l, "blobs", 0, 1, &d(0, "0")));
    }

    #[test]
    fn a_bulk_table_whose_digests_equal_the_ledger_passes_without_a_row_read() {
        let l = bulk_ledger();
        let o = bulk_observed(vec![
            range(1, 1001, 1000, "111"),
            range(1001, 1501, 500, "222"),
        ]);
        let v = bulk_judge(&l, 2, &o, 0);
        assert!(v.passed(), "{:?}", v.failures);
        assert_eq!(v.expected_rows["blobs"], 1500);
        assert_eq!(v.observed_rows["blobs"], 1500);
    }

    #[test]
    fn a_lost_bulk_write_is_explained_like_any_write() {
        let l = bulk_ledger();
        let o = bulk_observed(vec![
            range(1, 1001, 1000, "111"),
            range(1001, 1501, 500, "222"),
        ]);
        let v = bulk_judge(&l, 3, &o, 500);
        assert!(v.passed(), "{:?}", v.failures);
        assert_eq!(v.rows_lost, 500);
        assert_eq!(v.missing.len(), 1);
        let m = &v.missing[0];
        assert_eq!((m.step_id.as_str(), m.first_id, m.rows), ("w2", 1501, 500));
        assert_eq!(m.removed_by.as_deref(), Some("drop-w2"));
        assert!(
            v.explanation[1].contains("ids 1501..2000"),
            "{:?}",
            v.explanation
        );
    }

    #[test]
    fn changed_bulk_rows_are_named_by_id() {
        let l = bulk_ledger();
        let mut w1 = range(1001, 1501, 500, "999");
        w1.wrong_ids = vec![1002, 1400];
        let o = bulk_observed(vec![range(1, 1001, 1000, "111"), w1]);
        let v = bulk_judge(&l, 2, &o, 0);
        assert!(!v.passed());
        assert_eq!(v.problems.len(), 1);
        assert_eq!(v.problems[0].ids, vec![1002, 1400]);
        assert_eq!(v.problems[0].what, "content differs from what was written");
        assert_eq!(
            v.failures,
            vec!["blobs: 2 row(s) content differs from what was written (ids [1002, 1400])"]
        );
        // A digest that differs with no id to show still fails, with both digests.
        let o = bulk_observed(vec![
            range(1, 1001, 1000, "111"),
            range(1001, 1501, 500, "9"),
        ]);
        let v = bulk_judge(&l, 2, &o, 0);
        assert_eq!(v.problems.len(), 1);
        assert!(
            v.problems[0]
                .what
                .contains("digest is 500:9, the ledger's 500:222")
        );
    }

    #[test]
    fn a_split_bulk_write_shows_its_missing_ids_and_counts_the_loss() {
        let l = bulk_ledger();
        let mut w1 = range(1001, 1501, 498, "7");
        w1.missing_ids = vec![1100, 1101];
        let o = bulk_observed(vec![range(1, 1001, 1000, "111"), w1]);
        let v = bulk_judge(&l, 2, &o, 2);
        assert_eq!(v.rows_lost, 2);
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert_eq!(v.problems[0].ids, vec![1100, 1101]);
        assert!(
            v.problems[0]
                .what
                .contains("only partly present (498 of 500 rows)")
        );
    }

    #[test]
    fn bulk_rows_past_the_target_or_never_written_are_extra_with_their_count() {
        let l = bulk_ledger();
        // w2 is not expected at the target but came back whole; its ids are the write's.
        let mut stray = range(2001, u64::MAX >> 1, 3, "5");
        stray.present_ids = vec![2001, 2002, 2003];
        let o = bulk_observed(vec![
            range(1, 1001, 1000, "111"),
            range(1001, 1501, 500, "222"),
            range(1501, 2001, 500, "333"),
            stray,
        ]);
        let v = bulk_judge(&l, 2, &o, 0);
        assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
        let extra = &v.problems[0];
        assert_eq!(extra.rows, None, "every id is listed");
        assert_eq!(extra.ids.len(), 500);
        assert_eq!(extra.ids[0], 1501);
        assert_eq!(
            extra.what,
            "present but not expected at this recovery target"
        );
        assert_eq!(v.problems[1].ids, vec![2001, 2002, 2003]);
        assert!(v.failures[0].starts_with(
            "blobs: 500 row(s) present but not expected at this recovery target (ids [1501, 1502,"
        ), "{}", v.failures[0]);
        assert!(
            v.failures[0].ends_with("1520]…, all 500 listed in the JSON report)"),
            "{}",
            v.failures[0]
        );
    }

    /// A dump whose snapshot sees the seed and w1 (txids 700, 701), not w2 or w3.
    fn dump() -> crate::ledger::DumpRecord {
        crate::ledger::DumpRecord {
            step_id: "d1".into(),
            key: "p/logical/d1.sql.gz".into(),
            database: "postgres".into(),
            format: crate::scenario::DumpFormat::Plain,
            compression: crate::scenario::DumpCompression::Gzip,
            snapshot: crate::ledger::TxSnapshot::parse("702:703:702").unwrap(),
            bytes: 10,
            taken_at: Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 2).unwrap(),
        }
    }

    #[test]
    fn a_logical_restore_is_judged_at_its_snapshot() {
        let l = ledger();
        let d = dump();
        let expected = l.in_dump(&d);
        let archive = ArchiveFacts::default();
        // Exactly the snapshot's rows: passes, no explanation.
        let mut v = judge(
            &l,
            &expected,
            &rows(1..=25),
            &archive,
            &ExpectRecovered::default(),
            None,
        );
        explain_logical(&mut v, &l, &d, &[]);
        assert!(v.passed(), "{v:?}");
        assert!(v.explanation.is_empty());
        // w2's row present although its transaction was in flight at the snapshot: an extra row.
        let v = judge(
            &l,
            &expected,
            &rows(1..=26),
            &archive,
            &ExpectRecovered::default(),
            None,
        );
        assert!(!v.passed());
        assert_eq!(v.problems[0].ids, [26]);
        // Nothing restored (the table absent): every row of the snapshot lost, explained by
        // the dump, not by WAL.
        let mut v = judge(
            &l,
            &expected,
            &Observed::default(),
            &archive,
            &ExpectRecovered::default(),
            None,
        );
        explain_logical(&mut v, &l, &d, &["events".to_string()]);
        assert_eq!(v.rows_lost, 25);
        assert!(v.missing.iter().all(|m| m.segment_in_archive), "{v:?}");
        assert!(
            v.explanation[0].starts_with(
                "25 rows lost: the restore of logical backup `d1` of database `postgres` at snapshot 702:703:702 (2 later or in-flight write(s) rightly not expected)"
            ),
            "{:?}",
            v.explanation
        );
        assert!(
            v.explanation[0].contains("has no table events"),
            "{:?}",
            v.explanation
        );
        assert!(v.explanation[2].contains("step `w1`: 1 row(s) of events (id 25), txid 701"));
    }
}
