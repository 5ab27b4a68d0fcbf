//! The oracle: an append-only record of every write pgdrill committed on the source, and the
//! arithmetic that says which of them must exist after recovery to a given target.
//!
//! Pure data and pure functions: the runner fills it from server-side facts (txid, commit LSN,
//! WAL segment, commit timestamp); nothing here talks to a database or reads a clock.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(test)]
use crate::scenario::SEED_STEP;
use crate::wal::{Lsn, SegmentName};

/// The deterministic payload of one generated row. Verification recomputes it.
pub fn row_payload(seed: u64, table: &str, id: u64) -> String {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(table.as_bytes());
    h.update(id.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Digest over the payloads of consecutive ids, as recorded for one write.
pub fn rows_digest<'a>(payloads: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for p in payloads {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// One committed transaction that inserted `rows` rows with ids `first_id..first_id+rows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Commit order on the source, from 0.
    pub seq: u64,
    pub step_id: String,
    pub table: String,
    pub first_id: u64,
    pub rows: u64,
    /// SHA-256 over the payloads of the inserted rows.
    pub digest: String,
    pub txid: u64,
    /// `pg_current_wal_insert_lsn()` read inside the transaction just before COMMIT.
    pub pre_commit_lsn: Lsn,
    /// `pg_current_wal_insert_lsn()` read right after COMMIT: the end of the commit record.
    pub commit_lsn: Lsn,
    /// The WAL segment file holding the commit record.
    pub segment: SegmentName,
    /// Server-side commit time (`pg_xact_commit_timestamp`).
    pub commit_time: DateTime<Utc>,
}

impl LedgerEntry {
    pub fn ids(&self) -> std::ops::Range<u64> {
        self.first_id..self.first_id + self.rows
    }
}

/// A base backup as barman reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub step_id: String,
    pub backup_id: String,
    pub begin_lsn: Lsn,
    pub end_lsn: Lsn,
    pub begin_wal: String,
    pub end_wal: String,
    pub end_time: DateTime<Utc>,
    pub timeline: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorePointRecord {
    pub step_id: String,
    pub name: String,
    /// The LSN `pg_create_restore_point` returned (end of its record).
    pub lsn: Lsn,
}

/// A fault pgdrill injected, as recorded for loss explanations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub step_id: String,
    /// What was done, e.g. `deleted WAL segment 000000010000000000000009`.
    pub action: String,
    /// WAL segments the fault removed from the archive.
    pub segments_removed: Vec<SegmentName>,
    /// Object keys it deleted.
    pub objects_deleted: Vec<String>,
    /// Segments holding ledger writes that `pg_stat_archiver` had not archived when the
    /// source crashed (a `crash` fault): their commits exist nowhere else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments_unarchived: Vec<SegmentName>,
    /// What the source's archiver did under this fault (error windows, crashes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archiver: Option<ArchiverImpact>,
    /// WAL segments whose archived content the fault damaged (they are still listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments_damaged: Vec<SegmentName>,
    /// Replay cannot get past this LSN: the damaged record, or the start of a segment that no
    /// longer decompresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged_from_lsn: Option<Lsn>,
    /// How the content was damaged (`CRC`, `undecompressable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
    /// The base backup the fault took apart: (`base_backup` step, backup id, part deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_deleted: Option<DeletedBackupPart>,
    /// The timeline whose `.history` file the fault deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_removed: Option<u32>,
    /// The base backup the source crashed in the middle of, and what it left in the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_interrupted: Option<InterruptedBackup>,
    /// What recovery's reads met under an object-store error window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_errors: Option<ReadErrors>,
}

/// A base backup the source crashed in the middle of (`base_backup: { crash_source }`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterruptedBackup {
    /// The `base_backup` step.
    pub step_id: String,
    /// The backup id barman gave it, if it left anything under `base/`.
    pub backup_id: Option<String>,
    /// The status its `backup.info` says (`FAILED`, `STARTED`); `None`: no backup.info.
    pub status: Option<String>,
    /// What barman-cloud-backup said when it gave up (its last error line) and its exit code.
    pub tool_said: String,
}

/// What recovery's reads met under an object-store error window (`recovery.object_store_errors`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadErrors {
    /// How the store answered, e.g. `503 SlowDown`.
    pub error: String,
    /// Requests the store failed.
    pub errors_answered: u64,
    /// WAL segments whose reads failed at least once, ascending.
    pub failed_segments: Vec<SegmentName>,
    /// The first of them that was never read successfully: `restore_command` gave up on it, and
    /// PostgreSQL, taking that for the end of the archive, ended recovery before it.
    pub ended_before: Option<SegmentName>,
    /// Replay's end in WAL terms: the first LSN of `ended_before`.
    pub ended_before_lsn: Option<Lsn>,
}

/// How archiving fared under a fault, from `pg_stat_archiver` and server-side clocks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiverImpact {
    /// Seconds from the fault until `pg_stat_archiver` counted a failed attempt; `None`: no
    /// failure showed (nothing to archive, or the client's retries outlasted the window).
    pub failing_after_seconds: Option<f64>,
    /// Failed attempts `pg_stat_archiver` counted while the fault was on.
    pub failed_attempts: u64,
    /// Where archiving stood when the window closed or the source crashed.
    pub stand: Option<ArchiveStand>,
    /// Seconds from the window's end until nothing was left to archive; `None`: not seen
    /// before the source stopped or crashed.
    pub caught_up_after_seconds: Option<f64>,
}

/// Archiving at one moment: what had been archived, and the RPO exposure of the commits that
/// had not (they would be lost if the primary died right then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveStand {
    pub moment: Moment,
    /// Server-side `now()`.
    pub server_time: DateTime<Utc>,
    /// `pg_stat_archiver.last_archived_wal`.
    pub last_archived_wal: Option<String>,
    /// Ledger transactions committed by then whose segment was not archived.
    pub exposed_transactions: u64,
    /// Their write steps.
    pub exposed_steps: Vec<String>,
    /// The segments holding them.
    #[serde(default)]
    pub exposed_segments: Vec<SegmentName>,
    /// Age of the oldest of them at that moment: the RPO if the primary died then.
    pub exposure_seconds: f64,
}

/// When an [`ArchiveStand`] was taken. Serialised, and printed, as `window end` and `crash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Moment {
    /// An object-store error window closed.
    #[serde(rename = "window end")]
    WindowEnd,
    /// Just before the source crashed.
    #[serde(rename = "crash")]
    Crash,
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Moment::WindowEnd => "window end",
            Moment::Crash => "crash",
        })
    }
}

/// Which part of which base backup a fault deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedBackupPart {
    pub step_id: String,
    pub backup_id: String,
    /// `data` or `info`.
    pub part: String,
}

/// Everything recorded about the source during one drill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub entries: Vec<LedgerEntry>,
    pub backups: Vec<BackupRecord>,
    pub restore_points: Vec<RestorePointRecord>,
    pub faults: Vec<FaultRecord>,
    /// Row counts and checksums of tables loaded from an SQL fixture, taken after loading.
    pub fixture_tables: Vec<FixtureTable>,
    /// Failovers of the source onto a new timeline, in order.
    #[serde(default)]
    pub failovers: Vec<FailoverRecord>,
}

/// The source was failed over: from here on it writes on `timeline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverRecord {
    pub step_id: String,
    /// The timeline the source was promoted onto.
    pub timeline: u32,
    /// Where it left its previous timeline (the switch point in its `.history` file).
    pub switch_lsn: Lsn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixtureTable {
    pub table: String,
    pub rows: u64,
    pub checksum: String,
}

/// A recovery target with every step reference replaced by what the ledger recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedTarget {
    Latest,
    Immediate,
    Time(DateTime<Utc>),
    Lsn(Lsn),
    Xid(u64),
    Name(String),
}

impl fmt::Display for ResolvedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolvedTarget::Latest => f.write_str("latest"),
            ResolvedTarget::Immediate => f.write_str("immediate"),
            ResolvedTarget::Time(t) => write!(f, "time {}", pg_timestamp(t)),
            ResolvedTarget::Lsn(l) => write!(f, "lsn {l}"),
            ResolvedTarget::Xid(x) => write!(f, "xid {x}"),
            ResolvedTarget::Name(n) => write!(f, "name {n}"),
        }
    }
}

/// A timestamp in the form PostgreSQL accepts for `recovery_target_time`, microseconds kept.
pub fn pg_timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// Why a target cannot be computed from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("step `{0}` has no commit in the ledger")]
    NoCommit(String),
    #[error("no restore point named `{0}` in the ledger")]
    NoRestorePoint(String),
    #[error("no base backup in the ledger")]
    NoBackup,
    #[error("step `{0}` is not a base backup in the ledger")]
    NotABackup(String),
    #[error("no base backup ends before the target {0}")]
    NoBackupBeforeTarget(String),
    #[error("transaction {0} is not in the ledger")]
    UnknownXid(u64),
    #[error("`target: random` stands for several targets, picked at run time")]
    SeveralTargets,
    #[error(
        "no usable base backup: none of the base backups that end before the target {target} is in the archive's catalogue (a backup.info with status DONE); not listed: {not_listed}"
    )]
    NoUsableBackup { target: String, not_listed: String },
    #[error(
        "backup {backup_id} (step `{step}`) is not in the archive's catalogue (no backup.info with status DONE): barman cannot restore it"
    )]
    NotInCatalogue { step: String, backup_id: String },
}

/// The backup recovery restores, chosen from what the archive lists.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupChoice<'a> {
    pub backup: &'a BackupRecord,
    /// Newer backups that fit the target but are not in the catalogue, newest first: the
    /// ledger alone would have chosen the first of them.
    pub passed_over: Vec<&'a BackupRecord>,
}

impl Ledger {
    pub fn entry_for_step(&self, step_id: &str) -> Result<&LedgerEntry, LedgerError> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.step_id == step_id)
            .ok_or_else(|| LedgerError::NoCommit(step_id.to_string()))
    }

    pub fn backup_for_step(&self, step_id: &str) -> Result<&BackupRecord, LedgerError> {
        self.backups
            .iter()
            .find(|b| b.step_id == step_id)
            .ok_or_else(|| LedgerError::NotABackup(step_id.to_string()))
    }

    /// Where archiving stood at `server_time` with `last_archived_wal` archived: the commits
    /// made by then whose segment comes later (not archived) and the age of the oldest.
    pub fn stand(
        &self,
        moment: Moment,
        server_time: DateTime<Utc>,
        last_archived_wal: Option<&str>,
    ) -> ArchiveStand {
        // `last_archived_wal` may be a segment, a `.partial` or `.backup` file (their first 24
        // characters name a segment) or a history file (no segment: everything is exposed).
        let archived = last_archived_wal.and_then(crate::wal::segment_of_file);
        let exposed: Vec<&LedgerEntry> = self
            .entries
            .iter()
            .filter(|e| e.commit_time <= server_time)
            .filter(|e| archived.is_none_or(|a| e.segment > a))
            .collect();
        let oldest = exposed.iter().map(|e| e.commit_time).min();
        let (mut steps, mut segments): (Vec<String>, Vec<SegmentName>) = (Vec::new(), Vec::new());
        for e in &exposed {
            if !steps.contains(&e.step_id) {
                steps.push(e.step_id.clone());
            }
            if !segments.contains(&e.segment) {
                segments.push(e.segment);
            }
        }
        ArchiveStand {
            moment,
            server_time,
            last_archived_wal: last_archived_wal.map(str::to_string),
            exposed_transactions: exposed.len() as u64,
            exposed_steps: steps,
            exposed_segments: segments,
            exposure_seconds: oldest
                .map(|o| (server_time - o).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6)
                .unwrap_or(0.0),
        }
    }

    /// The base backup recovery starts from: the one named, else the newest one that ends
    /// before the target (the rule CNPG applies).
    pub fn choose_backup(
        &self,
        target: &ResolvedTarget,
        named: Option<&str>,
    ) -> Result<&BackupRecord, LedgerError> {
        if let Some(step) = named {
            return self.backup_for_step(step);
        }
        if self.backups.is_empty() {
            return Err(LedgerError::NoBackup);
        }
        // Where an xid or restore-point target lies, when the ledger recorded it.
        let position = match target {
            ResolvedTarget::Lsn(l) => Some(*l),
            ResolvedTarget::Xid(x) => self
                .entries
                .iter()
                .find(|e| e.txid == *x)
                .map(|e| e.commit_lsn),
            ResolvedTarget::Name(n) => self
                .restore_points
                .iter()
                .find(|r| &r.name == n)
                .map(|r| r.lsn),
            _ => None,
        };
        let fits = |b: &&BackupRecord| match (target, position) {
            (ResolvedTarget::Time(t), _) => b.end_time <= *t,
            (_, Some(l)) => b.end_lsn <= l,
            _ => true,
        };
        self.backups
            .iter()
            .filter(fits)
            .max_by_key(|b| b.end_lsn)
            .ok_or_else(|| LedgerError::NoBackupBeforeTarget(target.to_string()))
    }

    /// The base backup recovery starts from when only the backups in `catalogue` can be
    /// restored (their ids: what barman lists as usable, a `backup.info` with status DONE), as
    /// CloudNativePG and barman choose: the named one, else the newest in the catalogue that
    /// ends before the target.
    pub fn choose_backup_from(
        &self,
        target: &ResolvedTarget,
        named: Option<&str>,
        catalogue: &std::collections::BTreeSet<String>,
    ) -> Result<BackupChoice<'_>, LedgerError> {
        if let Some(step) = named {
            let b = self.backup_for_step(step)?;
            if !catalogue.contains(&b.backup_id) {
                return Err(LedgerError::NotInCatalogue {
                    step: step.to_string(),
                    backup_id: b.backup_id.clone(),
                });
            }
            return Ok(BackupChoice {
                backup: b,
                passed_over: Vec::new(),
            });
        }
        let newest_fitting = self.choose_backup(target, None)?;
        // Every backup that fits the target, newest first.
        let mut fitting: Vec<&BackupRecord> = self
            .backups
            .iter()
            .filter(|b| b.end_lsn <= newest_fitting.end_lsn)
            .filter(|b| match target {
                ResolvedTarget::Time(t) => b.end_time <= *t,
                _ => true,
            })
            .collect();
        fitting.sort_by_key(|b| std::cmp::Reverse(b.end_lsn));
        match fitting
            .iter()
            .position(|b| catalogue.contains(&b.backup_id))
        {
            Some(i) => Ok(BackupChoice {
                backup: fitting[i],
                passed_over: fitting[..i].to_vec(),
            }),
            None => Err(LedgerError::NoUsableBackup {
                target: target.to_string(),
                not_listed: fitting
                    .iter()
                    .map(|b| format!("{} (step `{}`)", b.backup_id, b.step_id))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The ledger entries that must be present after recovering `backup` to `target`.
    ///
    /// Rules, as PostgreSQL applies them (xlogrecovery.c):
    /// - time: inclusive keeps commits with time <= target, exclusive those with time < target;
    /// - lsn: commits whose record ends at or before the target (writes are serial, so the
    ///   record at the target is never another commit);
    /// - xid: commits up to that transaction, it included unless exclusive;
    /// - name: commits before the restore point record;
    /// - immediate: commits before the end of the base backup.
    pub fn expected_at(
        &self,
        target: &ResolvedTarget,
        exclusive: bool,
        backup: &BackupRecord,
    ) -> Result<Vec<&LedgerEntry>, LedgerError> {
        let keep: Box<dyn Fn(&LedgerEntry) -> bool> = match target {
            ResolvedTarget::Latest => Box::new(|_| true),
            ResolvedTarget::Immediate => {
                let end = backup.end_lsn;
                Box::new(move |e| e.commit_lsn <= end)
            }
            ResolvedTarget::Time(t) => {
                let t = *t;
                if exclusive {
                    Box::new(move |e| e.commit_time < t)
                } else {
                    Box::new(move |e| e.commit_time <= t)
                }
            }
            ResolvedTarget::Lsn(l) => {
                let l = *l;
                Box::new(move |e| e.commit_lsn <= l)
            }
            ResolvedTarget::Xid(x) => {
                let seq = self
                    .entries
                    .iter()
                    .find(|e| e.txid == *x)
                    .map(|e| e.seq)
                    .ok_or(LedgerError::UnknownXid(*x))?;
                if exclusive {
                    Box::new(move |e| e.seq < seq)
                } else {
                    Box::new(move |e| e.seq <= seq)
                }
            }
            ResolvedTarget::Name(n) => {
                let rp = self
                    .restore_points
                    .iter()
                    .find(|r| &r.name == n)
                    .ok_or_else(|| LedgerError::NoRestorePoint(n.clone()))?;
                let lsn = rp.lsn;
                Box::new(move |e| e.commit_lsn <= lsn)
            }
        };
        // Everything committed before the backup ended is in the backup whatever the target.
        let end = backup.end_lsn;
        Ok(self
            .entries
            .iter()
            .filter(|e| e.commit_lsn <= end || keep(e))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(sec: u32, micro: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, sec).unwrap()
            + chrono::Duration::microseconds(micro as i64)
    }

    fn entry(seq: u64, step: &str, first_id: u64, rows: u64, lsn: u64, sec: u32) -> LedgerEntry {
        LedgerEntry {
            seq,
            step_id: step.into(),
            table: "events".into(),
            first_id,
            rows,
            digest: String::new(),
            txid: 700 + seq,
            pre_commit_lsn: Lsn(lsn - 0x40),
            commit_lsn: Lsn(lsn),
            segment: SegmentName::containing(lsn, 1, crate::wal::DEFAULT_SEGMENT_SIZE),
            commit_time: t(sec, 0),
        }
    }

    #[test]
    fn a_stand_exposes_the_commits_after_the_last_archived_segment() {
        let (ledger, _) = adr007();
        // Segment 8 (w1) archived, 9 and A not; at 10:00:35 w2 (0:20) and w3 (0:30) are exposed.
        let st = ledger.stand(Moment::Crash, t(35, 0), Some("000000010000000000000008"));
        assert_eq!(st.exposed_steps, ["w2", "w3"]);
        assert_eq!(
            st.exposed_segments
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["000000010000000000000009", "00000001000000000000000A"]
        );
        assert_eq!(st.exposed_transactions, 2);
        assert_eq!(st.exposure_seconds, 35.0 - 20.0);
        // A commit after the moment does not count; nothing archived exposes everything.
        let early = ledger.stand(
            Moment::WindowEnd,
            t(25, 0),
            Some("000000010000000000000008"),
        );
        assert_eq!(early.exposed_steps, ["w2"]);
        let none = ledger.stand(Moment::Crash, t(35, 0), None);
        assert_eq!(none.exposed_transactions, ledger.entries.len() as u64);
        // A history file as last archived name is no segment: everything counts as exposed.
        let hist = ledger.stand(Moment::Crash, t(35, 0), Some("00000002.history"));
        assert_eq!(hist.exposed_transactions, ledger.entries.len() as u64);
        let all = ledger.stand(Moment::Crash, t(35, 0), Some("00000001000000000000000A"));
        assert_eq!((all.exposed_transactions, all.exposure_seconds), (0, 0.0));
        // A `.partial` or `.backup` file names its segment; segments compare as segments.
        let partial = ledger.stand(
            Moment::Crash,
            t(35, 0),
            Some("000000010000000000000009.partial"),
        );
        assert_eq!(partial.exposed_steps, ["w3"]);
    }

    #[test]
    fn segments_serialise_as_their_names() {
        let (ledger, _) = adr007();
        let v = serde_json::to_value(&ledger.entries[3]).unwrap();
        assert_eq!(v["segment"], "00000001000000000000000A");
        let back: LedgerEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, ledger.entries[3]);
    }

    #[test]
    fn moments_print_as_they_serialise() {
        for m in [Moment::WindowEnd, Moment::Crash] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.to_string());
        }
    }

    /// Seed (24 rows) before the backup, then three single-row writes in segments 8, 9, A,
    /// a restore point between the second and third.
    fn adr007() -> (Ledger, BackupRecord) {
        let backup = BackupRecord {
            step_id: "base".into(),
            backup_id: "20261122T100000".into(),
            begin_lsn: Lsn(0x0600_0028),
            end_lsn: Lsn(0x0700_0100),
            begin_wal: "000000010000000000000006".into(),
            end_wal: "000000010000000000000007".into(),
            end_time: t(5, 0),
            timeline: 1,
        };
        let ledger = Ledger {
            entries: vec![
                entry(0, SEED_STEP, 1, 24, 0x0500_1000, 1),
                entry(1, "w1", 25, 1, 0x0800_0200, 10),
                entry(2, "w2", 26, 1, 0x0900_0200, 20),
                entry(3, "w3", 27, 1, 0x0A00_0200, 30),
            ],
            backups: vec![backup.clone()],
            restore_points: vec![RestorePointRecord {
                step_id: "rp".into(),
                name: "before-w3".into(),
                lsn: Lsn(0x0900_0300),
            }],
            ..Default::default()
        };
        (ledger, backup)
    }

    #[test]
    fn xid_and_name_targets_choose_the_newest_backup_before_them() {
        let (mut l, first) = adr007();
        let second = BackupRecord {
            step_id: "base2".into(),
            backup_id: "20261122T100025".into(),
            begin_lsn: Lsn(0x0980_0028),
            end_lsn: Lsn(0x0980_0100),
            end_time: t(25, 0),
            ..first.clone()
        };
        l.backups.push(second.clone());
        let xid_w2 = l.entries[2].txid;
        let xid_w3 = l.entries[3].txid;
        let pick = |t: ResolvedTarget| l.choose_backup(&t, None).unwrap().step_id.clone();
        assert_eq!(
            pick(ResolvedTarget::Xid(xid_w2)),
            "base",
            "w2 commits before base2 ends"
        );
        assert_eq!(pick(ResolvedTarget::Xid(xid_w3)), "base2");
        assert_eq!(pick(ResolvedTarget::Name("before-w3".into())), "base");
        assert_eq!(pick(ResolvedTarget::Latest), "base2");
    }

    fn steps(v: Vec<&LedgerEntry>) -> Vec<String> {
        v.into_iter().map(|e| e.step_id.clone()).collect()
    }

    #[test]
    fn lsn_round_trips_through_text() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l, Lsn(0x16_B374_D848));
        assert_eq!(l.to_string(), "16/B374D848");
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!("1/G".parse::<Lsn>().is_err());
        assert!("100000000/0".parse::<Lsn>().is_err());
    }

    #[test]
    fn latest_keeps_everything() {
        let (l, b) = adr007();
        let got = l.expected_at(&ResolvedTarget::Latest, false, &b).unwrap();
        assert_eq!(steps(got), ["seed", "w1", "w2", "w3"]);
    }

    #[test]
    fn immediate_keeps_what_the_backup_holds() {
        let (l, b) = adr007();
        let got = l
            .expected_at(&ResolvedTarget::Immediate, false, &b)
            .unwrap();
        assert_eq!(steps(got), ["seed"]);
    }

    #[test]
    fn time_target_inclusive_and_exclusive_at_a_commit() {
        let (l, b) = adr007();
        let at_w2 = ResolvedTarget::Time(t(20, 0));
        assert_eq!(
            steps(l.expected_at(&at_w2, false, &b).unwrap()),
            ["seed", "w1", "w2"]
        );
        assert_eq!(
            steps(l.expected_at(&at_w2, true, &b).unwrap()),
            ["seed", "w1"]
        );
        let between = ResolvedTarget::Time(t(25, 0));
        assert_eq!(
            steps(l.expected_at(&between, true, &b).unwrap()),
            ["seed", "w1", "w2"]
        );
    }

    #[test]
    fn lsn_target_keeps_commits_ending_at_or_before_it() {
        let (l, b) = adr007();
        let got = l
            .expected_at(&ResolvedTarget::Lsn(Lsn(0x0900_0200)), false, &b)
            .unwrap();
        assert_eq!(steps(got), ["seed", "w1", "w2"]);
        let got = l
            .expected_at(&ResolvedTarget::Lsn(Lsn(0x0900_01FF)), false, &b)
            .unwrap();
        assert_eq!(steps(got), ["seed", "w1"]);
    }

    #[test]
    fn xid_target_counts_in_commit_order() {
        let (l, b) = adr007();
        let x = ResolvedTarget::Xid(702); // w2
        assert_eq!(
            steps(l.expected_at(&x, false, &b).unwrap()),
            ["seed", "w1", "w2"]
        );
        assert_eq!(steps(l.expected_at(&x, true, &b).unwrap()), ["seed", "w1"]);
        assert_eq!(
            l.expected_at(&ResolvedTarget::Xid(9), false, &b),
            Err(LedgerError::UnknownXid(9))
        );
    }

    #[test]
    fn name_target_stops_at_the_restore_point() {
        let (l, b) = adr007();
        let n = ResolvedTarget::Name("before-w3".into());
        assert_eq!(
            steps(l.expected_at(&n, false, &b).unwrap()),
            ["seed", "w1", "w2"]
        );
        assert!(
            l.expected_at(&ResolvedTarget::Name("nope".into()), false, &b)
                .is_err()
        );
    }

    #[test]
    fn a_target_before_the_backup_end_still_keeps_the_backup() {
        let (l, b) = adr007();
        let early = ResolvedTarget::Lsn(Lsn(0x0100_0000));
        assert_eq!(steps(l.expected_at(&early, false, &b).unwrap()), ["seed"]);
    }

    #[test]
    fn backup_choice_follows_cnpg() {
        let (mut l, b) = adr007();
        let mut b2 = b.clone();
        b2.step_id = "base2".into();
        b2.backup_id = "20261122T100025".into();
        b2.end_lsn = Lsn(0x0900_0800);
        b2.end_time = t(25, 0);
        l.backups.push(b2);
        let pick = |tg: ResolvedTarget| l.choose_backup(&tg, None).unwrap().step_id.clone();
        assert_eq!(pick(ResolvedTarget::Latest), "base2");
        assert_eq!(pick(ResolvedTarget::Time(t(21, 0))), "base");
        assert_eq!(pick(ResolvedTarget::Time(t(26, 0))), "base2");
        assert_eq!(pick(ResolvedTarget::Lsn(Lsn(0x0900_0000))), "base");
        assert_eq!(
            l.choose_backup(&ResolvedTarget::Latest, Some("base"))
                .unwrap()
                .step_id,
            "base"
        );
        assert!(matches!(
            l.choose_backup(&ResolvedTarget::Time(t(1, 0)), None),
            Err(LedgerError::NoBackupBeforeTarget(_))
        ));
    }

    #[test]
    fn the_catalogue_decides_which_backups_count() {
        let (mut l, b) = adr007();
        let mut b2 = b.clone();
        b2.step_id = "base2".into();
        b2.backup_id = "20261122T100025".into();
        b2.end_lsn = Lsn(0x0900_0800);
        b2.end_time = t(25, 0);
        l.backups.push(b2);
        let both: std::collections::BTreeSet<String> =
            [b.backup_id.clone(), "20261122T100025".into()].into();
        let only_first: std::collections::BTreeSet<String> = [b.backup_id.clone()].into();
        let c = l
            .choose_backup_from(&ResolvedTarget::Latest, None, &both)
            .unwrap();
        assert_eq!(c.backup.step_id, "base2");
        assert!(c.passed_over.is_empty());
        // base2's backup.info is gone: barman does not list it; recovery falls back to base.
        let c = l
            .choose_backup_from(&ResolvedTarget::Latest, None, &only_first)
            .unwrap();
        assert_eq!(c.backup.step_id, "base");
        assert_eq!(
            c.passed_over
                .iter()
                .map(|b| b.step_id.as_str())
                .collect::<Vec<_>>(),
            ["base2"]
        );
        // A time target before base2 ends never considered it: no fallback.
        let c = l
            .choose_backup_from(&ResolvedTarget::Time(t(21, 0)), None, &only_first)
            .unwrap();
        assert!(c.passed_over.is_empty());
        let none = std::collections::BTreeSet::new();
        let e = l
            .choose_backup_from(&ResolvedTarget::Latest, None, &none)
            .unwrap_err();
        assert!(matches!(e, LedgerError::NoUsableBackup { .. }));
        let msg = e.to_string();
        assert!(
            msg.starts_with("no usable base backup")
                && msg.contains("20261122T100025 (step `base2`), 20261122T100000 (step `base`)"),
            "{msg}"
        );
        let e = l
            .choose_backup_from(&ResolvedTarget::Latest, Some("base2"), &only_first)
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "backup 20261122T100025 (step `base2`) is not in the archive's catalogue"
            ),
            "{e}"
        );
    }

    #[test]
    fn payloads_are_deterministic_and_distinct() {
        assert_eq!(row_payload(1, "events", 5), row_payload(1, "events", 5));
        assert_ne!(row_payload(1, "events", 5), row_payload(2, "events", 5));
        assert_ne!(row_payload(1, "events", 5), row_payload(1, "events", 6));
        assert_ne!(rows_digest(["a", "b"]), rows_digest(["ab"]));
    }
}
