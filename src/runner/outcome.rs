//! What a finished step reports: one typed `StepOutcome` per kind of thing a step does, with
//! the facts it found (txids, LSNs, segments, row counts, keys deleted, backup ids, recovery
//! figures), serialisable for machine-readable reports; its `Display` is the one-line step log
//! text reporters print. Pure data: never runs a step and never decides a verdict.

use std::fmt::{self, Display, Formatter};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::amcheck::AmcheckOutcome;
use crate::ledger::{ArchiveStand, FixtureTable, LedgerEntry, ResolvedTarget};
use crate::scenario::{
    BackupPart, CrashMode, ErrorWindow, RecoveryReads, RequestFilter, StoreError,
};
use crate::wal::{Lsn, SegmentName};

use super::pick::Range;

/// What one step did, as the step log and the progress line say it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// The source server runs, archiving to `destination/server_name`.
    SourceStarted {
        version: String,
        destination: String,
        server_name: String,
    },
    TablesCreated {
        tables: Vec<String>,
    },
    /// An SQL fixture was loaded; its tables as counted right after.
    FixtureLoaded {
        path: String,
        tables: Vec<FixtureTable>,
    },
    /// The seed rows were committed.
    Seeded(Commit),
    Written(Written),
    RestorePoint {
        name: String,
        lsn: Lsn,
    },
    Checkpoint,
    /// `pg_switch_wal()`, and the segment it finished archived.
    Switched {
        archived: SegmentName,
    },
    /// The source archived through `archived`, was stopped, recovered from its own archive
    /// and promoted onto `timeline`, leaving its old one at `switch_lsn`.
    FailedOver {
        archived: SegmentName,
        timeline: u32,
        switch_lsn: Lsn,
    },
    /// A marker was committed and WAL archived through `through`.
    ArchiveFlushed {
        through: SegmentName,
    },
    SourceStopped,
    BaseBackup {
        backup_id: String,
        begin_lsn: Lsn,
        end_lsn: Lsn,
        begin_wal: String,
        end_wal: String,
    },
    /// `pg_stat_archiver` counted failed attempts this long after an error window opened.
    ArchiveFailing {
        failed_attempts: u64,
        after_seconds: f64,
    },
    /// The segment holding `write` reached the archive without a switch (`archive_timeout`),
    /// `lag_seconds` after the commit.
    ArchivedWithoutSwitch {
        segment: SegmentName,
        write: String,
        lag_seconds: f64,
        archive_timeout_seconds: u64,
    },
    /// The pre-recovery audit: the gaps it found and what it predicts.
    Audited {
        gaps: Vec<String>,
        prediction: String,
    },
    /// `delete_wal`: these segments' objects were deleted.
    WalDeleted {
        segments: Vec<SegmentName>,
        keys: Vec<String>,
    },
    WalCorrupted(Corruption),
    /// `delete_backup`: part of the base backup of `step` was deleted.
    BackupPartDeleted {
        step: String,
        backup_id: String,
        part: BackupPart,
        keys: Vec<String>,
    },
    /// `delete_history`: `timeline`'s history file was deleted.
    HistoryDeleted {
        timeline: u32,
        keys: Vec<String>,
    },
    Crashed(Crash),
    /// `stale_expression_index`: `index` on `table` was built through `function`, which was
    /// then redefined; `rows` rows have entries the new definition no longer gives.
    IndexMadeStale {
        table: String,
        index: String,
        function: String,
        rows: u64,
    },
    /// `verify.amcheck`: what `pg_amcheck` found on the recovered instance.
    Amchecked(AmcheckOutcome),
    /// `object_store_errors`: an error window opened; an archiver watch runs through it.
    ErrorWindowOpened {
        window: ErrorWindow,
    },
    Recovered(Recovered),
    /// A base backup with the source crashed in the middle of it (`crash_source`); the source
    /// restarted from its own disk and later steps use it.
    BackupInterrupted(Interrupted),
    /// `recovery.object_store_errors` and `recovery.restart`, resolved and armed for the restore.
    RecoveryFaultsArmed {
        faults: Vec<ArmedFault>,
    },
    /// A recovery (`Recovered` or `RecoveryFailed`) with armed faults, and what each did, in
    /// words: retried and recovered fully, ended early, failed; killed and restarted.
    RecoveredUnderFaults {
        recovery: Box<StepOutcome>,
        observed: Vec<String>,
    },
    /// Recovery was attempted (or no backup could be chosen) and failed: `message` is what the
    /// server, the tool or the catalogue said.
    RecoveryFailed {
        message: String,
        fallback: Option<String>,
    },
    Verified {
        rows_expected: u64,
        rows_observed: u64,
        rows_lost: u64,
        /// The first sentence of the loss explanation, if any.
        explanation: Option<String>,
    },
    TargetsPicked(Picks),
    TargetRecovered {
        attempt: TargetAttempt,
    },
    /// The random targets recovered at the same time.
    TargetsRecovered {
        count: u32,
        attempts: Vec<TargetAttempt>,
    },
    TargetVerified(TargetVerification),
    /// `logical_backup`: pg_dump at a held snapshot, uploaded.
    LogicalBackup(LogicalBackupTaken),
    /// `recovery.method: logical`: the dump restored into a fresh instance (by pgdrill or by
    /// the restore script), or the attempt failed.
    LogicalRecovery(LogicalRecovery),
    /// `truncate_dump` / `delete_dump`: what happened to a logical backup's object.
    DumpDamaged {
        step: String,
        key: String,
        /// Size before, and after (`None`: deleted).
        bytes_before: u64,
        bytes_after: Option<u64>,
    },
}

/// A logical backup taken: where, how big, and the snapshot it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogicalBackupTaken {
    pub database: String,
    pub key: String,
    pub bytes: u64,
    /// `xmin:xmax:xip` of the exported snapshot pg_dump read at.
    pub snapshot: String,
    pub dump_seconds: f64,
    /// The ledger's writes the snapshot sees.
    pub writes_in_dump: u64,
    /// The write held open across the snapshot and committed before pg_dump ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlightCommit>,
}

/// `logical_backup.in_flight`, committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlightCommit {
    pub step: String,
    pub txid: u64,
    pub rows: u64,
}

/// A logical recovery: the dump, and how its restore went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogicalRecovery {
    /// The `logical_backup` step restored.
    pub backup_step: String,
    pub key: String,
    /// The restored server's version, when it restored.
    pub version: Option<String>,
    pub seconds: Option<f64>,
    /// The restore script's run, with `recovery.command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<crate::backend::ScriptRun>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// A committed ledger write, as the step that made it reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    pub table: String,
    pub rows: u64,
    pub txid: u64,
    pub commit_lsn: Lsn,
    pub segment: SegmentName,
    pub commit_time: DateTime<Utc>,
}

impl From<&LedgerEntry> for Commit {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            table: e.table.clone(),
            rows: e.rows,
            txid: e.txid,
            commit_lsn: e.commit_lsn,
            segment: e.segment,
            commit_time: e.commit_time,
        }
    }
}

/// A ledger-recorded write was committed; `switched`: WAL was switched after it and this
/// segment archived (`own_segment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Written {
    #[serde(flatten)]
    pub commit: Commit,
    pub switched: Option<SegmentName>,
}

/// `corrupt_wal`: the object `key` of `segment` was rewritten, damaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Corruption {
    pub key: String,
    pub segment: SegmentName,
    pub damage: Damage,
}

/// `crash`: the source was killed; where archiving stood just before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    pub mode: CrashMode,
    pub stand: ArchiveStand,
}

/// How `corrupt_wal` damaged a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Damage {
    /// Bytes flipped inside one record (its CRC fails), `offset` into the segment.
    Crc {
        bytes_flipped: u64,
        record: DamagedRecord,
        record_lsn: Lsn,
        offset: u64,
    },
    /// The compressed stream scrambled: `kept` of `of` bytes.
    Undecompressable { kept: u64, of: u64 },
}

/// Which record a CRC fault damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DamagedRecord {
    /// The commit record of the write named by `holding_step`.
    Commit,
    /// The first record of a segment named by name.
    First,
}

/// `crash_source`: the source crashed in the middle of base backup `step`; what barman-cloud-backup
/// said and left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interrupted {
    pub step: String,
    pub mode: CrashMode,
    /// The backup's id, when the archive shows one.
    pub backup_id: Option<String>,
    /// The status its `backup.info` records, when there is one.
    pub status: Option<String>,
    /// barman-cloud-backup's own last words.
    pub tool_said: String,
}

/// One fault armed for a recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum ArmedFault {
    /// An error window over recovery's reads, from the start of the restore.
    ReadErrors {
        error: StoreError,
        reads: RecoveryReads,
        /// Only reads of WAL from this segment on fail.
        from_segment: Option<SegmentName>,
        seconds: u64,
        /// At most this many requests fail.
        failures: Option<u32>,
    },
    /// The recovering server is killed once replay passes `after_lsn` (`after_step`'s commit).
    Restart {
        mode: CrashMode,
        after_step: String,
        after_lsn: Lsn,
    },
}

/// A recovery that promoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovered {
    pub version: String,
    pub backup_id: String,
    pub target: ResolvedTarget,
    pub seconds: f64,
    pub wal_segments_replayed: u64,
    /// Why replay ended, as PostgreSQL logged it.
    pub replay_end: Option<String>,
    /// Why recovery could not use the newest backup that fits the target.
    pub fallback: Option<String>,
}

/// `target: random`: the picked targets, with the range and the seed they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picks {
    pub seed: u64,
    pub count: u32,
    pub range: PickRange,
    pub picks: Vec<PickedTarget>,
}

/// Where `target: random` picks: after `backup_step`'s backup ended, among `writes` writes from
/// `first` to `last`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PickRange {
    pub backup_step: String,
    pub backup_end: Lsn,
    pub writes: u64,
    pub first: WriteAt,
    pub last: WriteAt,
}

impl From<&Range<'_>> for PickRange {
    fn from(r: &Range<'_>) -> Self {
        let at = |e: &LedgerEntry| WriteAt {
            step: e.step_id.clone(),
            commit_lsn: e.commit_lsn,
        };
        // A range is never empty.
        let (first, last) = (r.writes[0], r.writes[r.writes.len() - 1]);
        Self {
            backup_step: r.floor.step_id.clone(),
            backup_end: r.floor.end_lsn,
            writes: r.writes.len() as u64,
            first: at(first),
            last: at(last),
        }
    }
}

/// A write step and the end of its commit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteAt {
    pub step: String,
    pub commit_lsn: Lsn,
}

/// One picked random target and the base backup it is recovered from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PickedTarget {
    pub index: u32,
    pub target: ResolvedTarget,
    /// Where it falls among the writes.
    pub around: String,
    pub backup_step: String,
}

/// A random target as reports name it: `3/6 lsn 0/3000060`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRef {
    pub index: u32,
    pub count: u32,
    /// As given to PostgreSQL, its kind first.
    pub target: String,
}

/// How the recovery of one random target went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "attempt", rename_all = "snake_case")]
pub enum TargetAttempt {
    Recovered {
        target: TargetRef,
        backup_id: String,
        seconds: f64,
        wal_segments_replayed: u64,
    },
    Failed {
        target: TargetRef,
        message: String,
    },
    /// No such target was picked.
    NotPicked {
        index: u32,
    },
}

/// One random target verified, and its instance kept or released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetVerification {
    pub target: TargetRef,
    pub check: TargetCheck,
    pub release: Release,
}

/// What verifying one random target found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum TargetCheck {
    Verified {
        rows_expected: u64,
        rows_observed: u64,
        rows_lost: u64,
        passed: bool,
        explanation: Option<String>,
    },
    /// Not verified: its recovery failed with `message`.
    RecoveryFailed { message: String },
    /// Not verified: nothing was recovered.
    NotRecovered,
}

/// What became of a verified random target's instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// `--keep`.
    Kept,
    /// Released: the drill's name for it.
    Released(String),
}

/// `crash` as the step log and the fault record say it.
pub(super) fn crash_how(mode: CrashMode) -> &'static str {
    match mode {
        CrashMode::Immediate => "immediate shutdown (SIGQUIT, no checkpoint)",
        CrashMode::Sigkill => "SIGKILL of the postmaster",
    }
}

/// The answer an object store gives in an error window, as S3 would say it.
pub(super) fn store_error(e: StoreError) -> &'static str {
    match e {
        StoreError::SlowDown => "503 SlowDown",
        StoreError::WrongCredentials => "403 InvalidAccessKeyId",
        StoreError::MissingBucket => "404 NoSuchBucket",
    }
}

/// An error window as the step log and the fault record say it.
pub(super) fn describe_window(w: &ErrorWindow) -> String {
    let error = store_error(w.error);
    let which = match w.requests {
        RequestFilter::All => "every request",
        RequestFilter::WalPuts => "every WAL upload",
    };
    format!("object store answers {error} to {which} for {}s", w.seconds)
}

/// The first line of a message.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

/// `; {fallback}`, or nothing.
fn and_fallback(fallback: &Option<String>) -> String {
    fallback
        .as_ref()
        .map(|f| format!("; {f}"))
        .unwrap_or_default()
}

impl Display for StepOutcome {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        use StepOutcome as O;
        match self {
            O::LogicalBackup(l) => {
                write!(
                    f,
                    "pg_dump of `{}` at snapshot {} ({} ledger writes) to {}, {} bytes in {:.2}s",
                    l.database, l.snapshot, l.writes_in_dump, l.key, l.bytes, l.dump_seconds
                )?;
                if let Some(w) = &l.in_flight {
                    write!(
                        f,
                        "; write `{}` (txid {}) was in flight at the snapshot and committed before pg_dump ran: not in the dump",
                        w.step, w.txid
                    )?;
                }
                Ok(())
            }
            O::LogicalRecovery(r) => {
                let by = match &r.script {
                    Some(s) => format!(
                        " by {} (exit {}{}, {:.2}s)",
                        s.command,
                        s.exit_code.map_or("none".to_string(), |c| c.to_string()),
                        if s.timed_out {
                            ", killed at its deadline"
                        } else {
                            ""
                        },
                        s.seconds
                    ),
                    None => String::new(),
                };
                match (&r.failed, &r.version) {
                    (Some(m), _) => write!(
                        f,
                        "logical restore of `{}`{by} FAILED: {}",
                        r.backup_step,
                        m.lines().next().unwrap_or_default()
                    ),
                    (None, v) => write!(
                        f,
                        "restored `{}` ({}){by} into PostgreSQL {} in {:.2}s",
                        r.backup_step,
                        r.key,
                        v.as_deref().unwrap_or("?"),
                        r.seconds.unwrap_or(0.0)
                    ),
                }
            }
            O::DumpDamaged {
                step,
                key,
                bytes_before,
                bytes_after,
            } => match bytes_after {
                Some(n) => write!(
                    f,
                    "truncated logical backup `{step}` ({key}) from {bytes_before} to {n} bytes"
                ),
                None => write!(
                    f,
                    "deleted logical backup `{step}` ({key}, {bytes_before} bytes)"
                ),
            },
            O::SourceStarted {
                version,
                destination,
                server_name,
            } => write!(
                f,
                "PostgreSQL {version} archiving to {destination}/{server_name}"
            ),
            O::TablesCreated { tables } => write!(f, "created {}", tables.join(", ")),
            O::FixtureLoaded { path, tables } => {
                let tables: Vec<String> = tables
                    .iter()
                    .map(|t| format!("{} ({} rows)", t.table, t.rows))
                    .collect();
                write!(f, "loaded {path}: {}", tables.join(", "))
            }
            O::Seeded(c) => write!(
                f,
                "{} rows into {}, txid {} at {} in {}",
                c.rows, c.table, c.txid, c.commit_lsn, c.segment
            ),
            O::Written(w) => w.fmt(f),
            O::RestorePoint { name, lsn } => write!(f, "restore point `{name}` at {lsn}"),
            O::Checkpoint => f.write_str("checkpoint done"),
            O::Switched { archived } => write!(f, "{archived} archived"),
            O::FailedOver {
                archived,
                timeline,
                switch_lsn,
            } => write!(
                f,
                "{archived} archived; source stopped, recovered from its own archive and promoted onto timeline {timeline} at {switch_lsn}"
            ),
            O::ArchiveFlushed { through } => {
                write!(f, "marker committed; WAL archived through {through}")
            }
            O::SourceStopped => f.write_str("source stopped (fast shutdown)"),
            O::BaseBackup {
                backup_id,
                begin_lsn,
                end_lsn,
                begin_wal,
                end_wal,
            } => write!(
                f,
                "backup {backup_id} from {begin_lsn} to {end_lsn} ({begin_wal} .. {end_wal})"
            ),
            O::ArchiveFailing {
                failed_attempts,
                after_seconds,
            } => write!(
                f,
                "pg_stat_archiver counts {failed_attempts} failed attempt(s) {after_seconds:.2}s after the window opened"
            ),
            O::ArchivedWithoutSwitch {
                segment,
                write,
                lag_seconds,
                archive_timeout_seconds,
            } => write!(
                f,
                "{segment} (holding `{write}`) archived {lag_seconds:.2}s after its commit, without a switch (archive_timeout {archive_timeout_seconds}s)"
            ),
            O::Audited { gaps, prediction } if gaps.is_empty() => {
                write!(f, "0 gap(s); {prediction}")
            }
            O::Audited { gaps, prediction } => write!(
                f,
                "{} gap(s) ({}); {prediction}",
                gaps.len(),
                gaps.join(", ")
            ),
            O::WalDeleted { keys, .. }
            | O::BackupPartDeleted { keys, .. }
            | O::HistoryDeleted { keys, .. } => {
                write!(f, "deleted {}", keys.join(", "))
            }
            O::WalCorrupted(c) => c.fmt(f),
            O::Crashed(c) => c.fmt(f),
            O::ErrorWindowOpened { window } => {
                write!(f, "{}; watching pg_stat_archiver", describe_window(window))
            }
            O::Recovered(r) => r.fmt(f),
            O::BackupInterrupted(i) => i.fmt(f),
            O::RecoveryFaultsArmed { faults } => {
                let said: Vec<String> = faults.iter().map(ToString::to_string).collect();
                write!(f, "armed: {}", said.join("; "))
            }
            O::RecoveredUnderFaults { recovery, observed } => {
                recovery.fmt(f)?;
                observed.iter().try_for_each(|o| write!(f, "; {o}"))
            }
            O::RecoveryFailed { message, fallback } => write!(
                f,
                "recovery failed: {}{}",
                first_line(message),
                and_fallback(fallback)
            ),
            O::Verified {
                rows_expected,
                rows_observed,
                rows_lost,
                explanation,
            } => write!(
                f,
                "expected {rows_expected} rows, observed {rows_observed}, lost {rows_lost}{}",
                explanation
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            O::TargetsPicked(p) => p.fmt(f),
            O::TargetRecovered { attempt } => attempt.fmt(f),
            O::TargetsRecovered { count, attempts } => {
                let attempts: Vec<String> = attempts.iter().map(ToString::to_string).collect();
                write!(f, "{count} recoveries at once: {}", attempts.join("; "))
            }
            O::TargetVerified(v) => v.fmt(f),
            O::IndexMadeStale {
                table,
                index,
                function,
                rows,
            } => write!(
                f,
                "indexed {table} through IMMUTABLE {function}(), then redefined it: {index}'s entries for {rows} row(s) no longer match the table"
            ),
            O::Amchecked(AmcheckOutcome::Ran(run)) => f.write_str(&run.summary()),
            O::Amchecked(AmcheckOutcome::NotRun { why }) => write!(f, "pg_amcheck not run: {why}"),
        }
    }
}

impl Display for Written {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let c = &self.commit;
        write!(
            f,
            "{} row(s) into {}, txid {} committed at {} in {} ({})",
            c.rows,
            c.table,
            c.txid,
            c.commit_lsn,
            c.segment,
            c.commit_time.format("%H:%M:%S%.6f")
        )?;
        match &self.switched {
            Some(s) => write!(f, "; switched, {s} archived"),
            None => Ok(()),
        }
    }
}

impl Display for Corruption {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (key, segment) = (&self.key, &self.segment);
        match &self.damage {
            Damage::Crc {
                bytes_flipped,
                record,
                record_lsn,
                offset,
            } => write!(
                f,
                "{key}: flipped {bytes_flipped} byte(s) of the {} record at {record_lsn} (offset {offset:#X} in {segment}), recompressed",
                match record {
                    DamagedRecord::Commit => "commit",
                    DamagedRecord::First => "first",
                }
            ),
            Damage::Undecompressable { kept, of } => write!(
                f,
                "{key}: damaged the compressed stream ({kept} of {of} bytes kept, scrambled from byte 20)"
            ),
        }
    }
}

impl Display for Crash {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let stand = &self.stand;
        write!(
            f,
            "source crashed ({}); last archived {}; {} committed transaction(s) not archived ({}), oldest {:.2}s old",
            crash_how(self.mode),
            stand.last_archived_wal.as_deref().unwrap_or("nothing"),
            stand.exposed_transactions,
            if stand.exposed_steps.is_empty() {
                "none".to_string()
            } else {
                stand.exposed_steps.join(", ")
            },
            stand.exposure_seconds
        )
    }
}

impl Display for Interrupted {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let left = match (&self.backup_id, &self.status) {
            (Some(b), Some(s)) => format!("backup {b} with status {s} in its backup.info"),
            (Some(b), None) => format!("backup {b} without a backup.info"),
            (None, _) => "no backup.info at all".to_string(),
        };
        write!(
            f,
            "crashed the source ({}) in the middle of base backup `{}`: barman-cloud-backup {}, leaving {left}; the source restarted from its own disk (crash recovery) and kept writing",
            crash_how(self.mode),
            self.step,
            self.tool_said
        )
    }
}

impl Display for ArmedFault {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ArmedFault::ReadErrors {
                error,
                reads,
                from_segment,
                seconds,
                failures,
            } => {
                write!(
                    f,
                    "object store answers {} to {}",
                    store_error(*error),
                    reads.label()
                )?;
                if let Some(s) = from_segment {
                    write!(f, " from segment {s} on")?;
                }
                write!(f, " for {seconds}s from the start of recovery")?;
                match failures {
                    Some(n) => write!(f, ", at most {n} request(s)"),
                    None => Ok(()),
                }
            }
            ArmedFault::Restart {
                mode,
                after_step,
                after_lsn,
            } => write!(
                f,
                "kill the recovering server ({}) once replay passes {after_lsn} (the commit of `{after_step}`), then start it again on the same data directory",
                crash_how(*mode)
            ),
        }
    }
}

impl Display for Recovered {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PostgreSQL {} recovered from backup {} to {} in {:.2}s ({} WAL segments replayed)",
            self.version, self.backup_id, self.target, self.seconds, self.wal_segments_replayed
        )?;
        if let Some(why) = &self.replay_end {
            write!(f, "; replay ended: {why}")?;
        }
        f.write_str(&and_fallback(&self.fallback))
    }
}

impl Display for Picks {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let picks: Vec<String> = self.picks.iter().map(ToString::to_string).collect();
        write!(
            f,
            "seed {}: {} target(s) {}: {}",
            self.seed,
            self.count,
            self.range,
            picks.join("; ")
        )
    }
}

impl Display for TargetVerification {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "target {}", self.target)?;
        match &self.check {
            TargetCheck::Verified {
                rows_expected,
                rows_observed,
                rows_lost,
                passed,
                explanation,
            } => {
                write!(
                    f,
                    ": expected {rows_expected} rows, observed {rows_observed}, lost {rows_lost}: {}",
                    if *passed { "PASSED" } else { "FAILED" }
                )?;
                if let Some(e) = explanation {
                    write!(f, " ({e})")?;
                }
            }
            TargetCheck::RecoveryFailed { message } => write!(
                f,
                ": not verified, recovery failed: {}",
                first_line(message)
            )?,
            TargetCheck::NotRecovered => f.write_str(": not verified, not recovered")?,
        }
        match &self.release {
            Release::Kept => f.write_str("; kept"),
            Release::Released(instance) => write!(f, "; {instance} released"),
        }
    }
}

impl Display for PickRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "after base backup `{}` (ends at {}): {} write(s), `{}` at {} to `{}` at {}",
            self.backup_step,
            self.backup_end,
            self.writes,
            self.first.step,
            self.first.commit_lsn,
            self.last.step,
            self.last.commit_lsn
        )
    }
}

impl Display for PickedTarget {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}), from `{}`",
            self.index, self.target, self.around, self.backup_step
        )
    }
}

impl Display for TargetRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.index, self.count, self.target)
    }
}

impl Display for TargetAttempt {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            TargetAttempt::Recovered {
                target,
                backup_id,
                seconds,
                wal_segments_replayed,
            } => write!(
                f,
                "target {target} recovered from backup {backup_id} in {seconds:.2}s ({wal_segments_replayed} WAL segments replayed)"
            ),
            TargetAttempt::Failed { target, message } => write!(
                f,
                "target {target}: recovery failed: {}",
                first_line(message)
            ),
            TargetAttempt::NotPicked { index } => write!(f, "target {index}: not picked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ledger::Moment;

    fn seg(name: &str) -> SegmentName {
        name.parse().unwrap()
    }

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    fn time(h: u32, m: u32, s: u32, micros: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, h, m, s).unwrap() + chrono::Duration::microseconds(micros)
    }

    fn commit(rows: u64, txid: u64, at: &str, segment: &str, committed: DateTime<Utc>) -> Commit {
        Commit {
            table: "events".into(),
            rows,
            txid,
            commit_lsn: lsn(at),
            segment: seg(segment),
            commit_time: committed,
        }
    }

    fn stand(last: Option<&str>, steps: &[&str], seconds: f64) -> ArchiveStand {
        ArchiveStand {
            moment: Moment::Crash,
            server_time: time(12, 30, 27, 0),
            last_archived_wal: last.map(str::to_string),
            exposed_transactions: steps.len() as u64,
            exposed_steps: steps.iter().map(|s| s.to_string()).collect(),
            exposed_segments: vec![],
            exposure_seconds: seconds,
        }
    }

    fn target(index: u32, count: u32, t: &str) -> TargetRef {
        TargetRef {
            index,
            count,
            target: t.into(),
        }
    }

    const KEY: &str = "pgdrill/20261202T122833Z-a3ec/corrupt-wal-crc/pg-src/wals/0000000100000000/000000010000000000000004.gz";

    /// Every kind of outcome with the line the step log had before outcomes were typed (most
    /// copied from real drills).
    fn source_lines() -> Vec<(StepOutcome, &'static str)> {
        vec![
            (
                StepOutcome::SourceStarted {
                    version: "15.18".into(),
                    destination: "s3://pgdrill/pgdrill/20261202T123331Z-e7d0/wrong-server-name"
                        .into(),
                    server_name: "postgres-cluster".into(),
                },
                "PostgreSQL 15.18 archiving to s3://pgdrill/pgdrill/20261202T123331Z-e7d0/wrong-server-name/postgres-cluster",
            ),
            (
                StepOutcome::TablesCreated {
                    tables: vec!["events".into(), "orders".into()],
                },
                "created events, orders",
            ),
            (
                StepOutcome::FixtureLoaded {
                    path: "seed/shop.sql".into(),
                    tables: vec![
                        FixtureTable {
                            table: "customers".into(),
                            rows: 3,
                            checksum: "ab".into(),
                        },
                        FixtureTable {
                            table: "orders".into(),
                            rows: 10,
                            checksum: "cd".into(),
                        },
                    ],
                },
                "loaded seed/shop.sql: customers (3 rows), orders (10 rows)",
            ),
            (
                StepOutcome::Seeded(commit(
                    10,
                    725,
                    "0/1776C38",
                    "000000010000000000000001",
                    time(12, 33, 50, 0),
                )),
                "10 rows into events, txid 725 at 0/1776C38 in 000000010000000000000001",
            ),
            (
                StepOutcome::Written(Written {
                    commit: commit(
                        2,
                        726,
                        "0/3000670",
                        "000000010000000000000003",
                        time(12, 33, 55, 630_923),
                    ),
                    switched: Some(seg("000000010000000000000003")),
                }),
                "2 row(s) into events, txid 726 committed at 0/3000670 in 000000010000000000000003 (12:33:55.630923); switched, 000000010000000000000003 archived",
            ),
            (
                StepOutcome::Written(Written {
                    commit: commit(
                        2,
                        726,
                        "0/5000990",
                        "000000010000000000000005",
                        time(12, 33, 0, 792_235),
                    ),
                    switched: None,
                }),
                "2 row(s) into events, txid 726 committed at 0/5000990 in 000000010000000000000005 (12:33:00.792235)",
            ),
            (
                StepOutcome::RestorePoint {
                    name: "before-w3".into(),
                    lsn: lsn("0/9000300"),
                },
                "restore point `before-w3` at 0/9000300",
            ),
            (StepOutcome::Checkpoint, "checkpoint done"),
            (
                StepOutcome::Switched {
                    archived: seg("000000010000000000000003"),
                },
                "000000010000000000000003 archived",
            ),
            (
                StepOutcome::FailedOver {
                    archived: seg("000000010000000000000004"),
                    timeline: 2,
                    switch_lsn: lsn("0/50000A0"),
                },
                "000000010000000000000004 archived; source stopped, recovered from its own archive and promoted onto timeline 2 at 0/50000A0",
            ),
            (
                StepOutcome::ArchiveFlushed {
                    through: seg("000000010000000000000004"),
                },
                "marker committed; WAL archived through 000000010000000000000004",
            ),
            (StepOutcome::SourceStopped, "source stopped (fast shutdown)"),
        ]
    }

    fn archive_lines() -> Vec<(StepOutcome, &'static str)> {
        vec![
            (
                StepOutcome::BaseBackup {
                    backup_id: "20261202T123340".into(),
                    begin_lsn: lsn("0/2000028"),
                    end_lsn: lsn("0/2000100"),
                    begin_wal: "000000010000000000000002".into(),
                    end_wal: "000000010000000000000002".into(),
                },
                "backup 20261202T123340 from 0/2000028 to 0/2000100 (000000010000000000000002 .. 000000010000000000000002)",
            ),
            (
                StepOutcome::ArchiveFailing {
                    failed_attempts: 2,
                    after_seconds: 1.234,
                },
                "pg_stat_archiver counts 2 failed attempt(s) 1.23s after the window opened",
            ),
            (
                StepOutcome::ArchivedWithoutSwitch {
                    segment: seg("000000010000000000000005"),
                    write: "w1".into(),
                    lag_seconds: 3.04,
                    archive_timeout_seconds: 2,
                },
                "000000010000000000000005 (holding `w1`) archived 3.04s after its commit, without a switch (archive_timeout 2s)",
            ),
            (
                StepOutcome::Audited {
                    gaps: vec![],
                    prediction: "no gap on the path from backup 20261202T123340: no loss predicted"
                        .into(),
                },
                "0 gap(s); no gap on the path from backup 20261202T123340: no loss predicted",
            ),
            (
                StepOutcome::Audited {
                    gaps: vec![
                        "000000010000000000000009".into(),
                        "00000001000000000000000B".into(),
                    ],
                    prediction: "predicted loss: …".into(),
                },
                "2 gap(s) (000000010000000000000009, 00000001000000000000000B); predicted loss: …",
            ),
        ]
    }

    fn fault_lines() -> Vec<(StepOutcome, &'static str)> {
        vec![
            (
                StepOutcome::WalDeleted {
                    segments: vec![
                        seg("000000010000000000000004"),
                        seg("000000010000000000000005"),
                    ],
                    keys: vec![
                        "a/000000010000000000000004.gz".into(),
                        "a/000000010000000000000005.gz".into(),
                    ],
                },
                "deleted a/000000010000000000000004.gz, a/000000010000000000000005.gz",
            ),
            (
                StepOutcome::WalCorrupted(Corruption {
                    key: KEY.into(),
                    segment: seg("000000010000000000000004"),
                    damage: Damage::Crc {
                        bytes_flipped: 8,
                        record: DamagedRecord::Commit,
                        record_lsn: lsn("0/40000D0"),
                        offset: 0xE8,
                    },
                }),
                "pgdrill/20261202T122833Z-a3ec/corrupt-wal-crc/pg-src/wals/0000000100000000/000000010000000000000004.gz: flipped 8 byte(s) of the commit record at 0/40000D0 (offset 0xE8 in 000000010000000000000004), recompressed",
            ),
            (
                StepOutcome::WalCorrupted(Corruption {
                    key: "k.bz2".into(),
                    segment: seg("000000010000000000000004"),
                    damage: Damage::Undecompressable { kept: 100, of: 200 },
                }),
                "k.bz2: damaged the compressed stream (100 of 200 bytes kept, scrambled from byte 20)",
            ),
            (
                StepOutcome::BackupPartDeleted {
                    step: "base2".into(),
                    backup_id: "20261202T123155".into(),
                    part: BackupPart::Info,
                    keys: vec!["p/base/20261202T123155/backup.info".into()],
                },
                "deleted p/base/20261202T123155/backup.info",
            ),
            (
                StepOutcome::HistoryDeleted {
                    timeline: 2,
                    keys: vec!["p/wals/00000002.history.gz".into()],
                },
                "deleted p/wals/00000002.history.gz",
            ),
            (
                StepOutcome::IndexMadeStale {
                    table: "orders".into(),
                    index: "orders_sort_key".into(),
                    function: "pgdrill_sort_key_orders".into(),
                    rows: 100,
                },
                "indexed orders through IMMUTABLE pgdrill_sort_key_orders(), then redefined it: orders_sort_key's entries for 100 row(s) no longer match the table",
            ),
            (
                StepOutcome::Amchecked(AmcheckOutcome::NotRun {
                    why: "no pg_amcheck for PostgreSQL 16".into(),
                }),
                "pg_amcheck not run: no pg_amcheck for PostgreSQL 16",
            ),
            (
                StepOutcome::Amchecked(AmcheckOutcome::Ran(
                    crate::backend::amcheck::AmcheckRun::from_output(
                        "pg_amcheck (PostgreSQL) 15.15".into(),
                        vec![],
                        0,
                        0.25,
                        "",
                    ),
                )),
                "pg_amcheck found no corruption (0.2s)",
            ),
            (
                StepOutcome::Crashed(Crash {
                    mode: CrashMode::Immediate,
                    stand: stand(Some("000000010000000000000005"), &["w2"], 0.0512),
                }),
                "source crashed (immediate shutdown (SIGQUIT, no checkpoint)); last archived 000000010000000000000005; 1 committed transaction(s) not archived (w2), oldest 0.05s old",
            ),
            (
                StepOutcome::Crashed(Crash {
                    mode: CrashMode::Sigkill,
                    stand: stand(None, &[], 0.0),
                }),
                "source crashed (SIGKILL of the postmaster); last archived nothing; 0 committed transaction(s) not archived (none), oldest 0.00s old",
            ),
            (
                StepOutcome::ErrorWindowOpened {
                    window: ErrorWindow {
                        error: StoreError::SlowDown,
                        seconds: 10,
                        requests: RequestFilter::All,
                    },
                },
                "object store answers 503 SlowDown to every request for 10s; watching pg_stat_archiver",
            ),
            (
                StepOutcome::ErrorWindowOpened {
                    window: ErrorWindow {
                        error: StoreError::WrongCredentials,
                        seconds: 5,
                        requests: RequestFilter::WalPuts,
                    },
                },
                "object store answers 403 InvalidAccessKeyId to every WAL upload for 5s; watching pg_stat_archiver",
            ),
        ]
    }

    fn recovery_lines() -> Vec<(StepOutcome, &'static str)> {
        let recovered = |replay_end: Option<&str>, fallback: Option<&str>| {
            StepOutcome::Recovered(Recovered {
                version: "15.18".into(),
                backup_id: "20261202T122834".into(),
                target: ResolvedTarget::Latest,
                seconds: 10.094,
                wal_segments_replayed: 3,
                replay_end: replay_end.map(str::to_string),
                fallback: fallback.map(str::to_string),
            })
        };
        vec![
            (
                recovered(None, None),
                "PostgreSQL 15.18 recovered from backup 20261202T122834 to latest in 10.09s (3 WAL segments replayed)",
            ),
            (
                recovered(Some("incorrect resource manager data checksum in record at 0/40000D0"), Some("fell back from …")),
                "PostgreSQL 15.18 recovered from backup 20261202T122834 to latest in 10.09s (3 WAL segments replayed); replay ended: incorrect resource manager data checksum in record at 0/40000D0; fell back from …",
            ),
            (
                StepOutcome::RecoveryFailed {
                    message: "2026-12-02 12:33:58,264 [23248] ERROR: WAL archive check failed for server postgres-cluster: Expected empty archive\nmore".into(),
                    fallback: Some("fell back from …".into()),
                },
                "recovery failed: 2026-12-02 12:33:58,264 [23248] ERROR: WAL archive check failed for server postgres-cluster: Expected empty archive; fell back from …",
            ),
            (
                StepOutcome::Verified {
                    rows_expected: 36,
                    rows_observed: 36,
                    rows_lost: 0,
                    explanation: None,
                },
                "expected 36 rows, observed 36, lost 0",
            ),
            (
                StepOutcome::Verified {
                    rows_expected: 38,
                    rows_observed: 32,
                    rows_lost: 6,
                    explanation: Some("6 rows lost: …".into()),
                },
                "expected 38 rows, observed 32, lost 6: 6 rows lost: …",
            ),
        ]
    }

    fn random_lines() -> Vec<(StepOutcome, &'static str)> {
        let at_p1 = ResolvedTarget::Time(time(12, 29, 25, 193_403));
        let picked = |index, target, around: &str| PickedTarget {
            index,
            target,
            around: around.into(),
            backup_step: "base".into(),
        };
        let recovered = TargetAttempt::Recovered {
            target: target(1, 6, "xid 728"),
            backup_id: "20261202T122917".into(),
            seconds: 8.683,
            wal_segments_replayed: 9,
        };
        let failed = TargetAttempt::Failed {
            target: target(2, 2, "xid 7"),
            message: "FATAL:  x\nDETAIL:  y".into(),
        };
        let verified = |check, release| {
            StepOutcome::TargetVerified(TargetVerification {
                target: target(1, 6, "xid 728"),
                check,
                release,
            })
        };
        vec![
            (
                StepOutcome::TargetsPicked(Picks {
                    seed: 30,
                    count: 2,
                    range: PickRange {
                        backup_step: "base".into(),
                        backup_end: lsn("0/2000100"),
                        writes: 8,
                        first: WriteAt {
                            step: "o1".into(),
                            commit_lsn: lsn("0/30015E0"),
                        },
                        last: WriteAt {
                            step: "p4".into(),
                            commit_lsn: lsn("0/A000248"),
                        },
                    },
                    picks: vec![
                        picked(1, ResolvedTarget::Xid(728), "the transaction of `p1`"),
                        picked(3, at_p1, "at the commit of `p1`"),
                    ],
                }),
                "seed 30: 2 target(s) after base backup `base` (ends at 0/2000100): 8 write(s), `o1` at 0/30015E0 to `p4` at 0/A000248: 1: xid 728 (the transaction of `p1`), from `base`; 3: time 2026-12-02 12:29:25.193403+00 (at the commit of `p1`), from `base`",
            ),
            (
                StepOutcome::TargetRecovered {
                    attempt: recovered.clone(),
                },
                "target 1/6 xid 728 recovered from backup 20261202T122917 in 8.68s (9 WAL segments replayed)",
            ),
            (
                StepOutcome::TargetRecovered {
                    attempt: TargetAttempt::NotPicked { index: 7 },
                },
                "target 7: not picked",
            ),
            (
                StepOutcome::TargetsRecovered {
                    count: 2,
                    attempts: vec![recovered, failed],
                },
                "2 recoveries at once: target 1/6 xid 728 recovered from backup 20261202T122917 in 8.68s (9 WAL segments replayed); target 2/2 xid 7: recovery failed: FATAL:  x",
            ),
            (
                verified(
                    TargetCheck::Verified {
                        rows_expected: 75,
                        rows_observed: 75,
                        rows_lost: 0,
                        passed: true,
                        explanation: None,
                    },
                    Release::Released("recovered-1".into()),
                ),
                "target 1/6 xid 728: expected 75 rows, observed 75, lost 0: PASSED; recovered-1 released",
            ),
            (
                verified(
                    TargetCheck::Verified {
                        rows_expected: 26,
                        rows_observed: 25,
                        rows_lost: 1,
                        passed: false,
                        explanation: Some("1 row lost: …".into()),
                    },
                    Release::Kept,
                ),
                "target 1/6 xid 728: expected 26 rows, observed 25, lost 1: FAILED (1 row lost: …); kept",
            ),
            (
                verified(
                    TargetCheck::RecoveryFailed {
                        message: "FATAL:  x\nDETAIL:  y".into(),
                    },
                    Release::Released("recovered-1".into()),
                ),
                "target 1/6 xid 728: not verified, recovery failed: FATAL:  x; recovered-1 released",
            ),
            (
                verified(TargetCheck::NotRecovered, Release::Kept),
                "target 1/6 xid 728: not verified, not recovered; kept",
            ),
        ]
    }

    /// Faults during a base backup and a recovery (scenarios 25-28), as real drills print them.
    fn recovery_fault_lines() -> Vec<(StepOutcome, &'static str)> {
        let seg = SegmentName::parse("000000010000000000000004");
        let recovered = StepOutcome::RecoveryFailed {
            message: "barman-cloud-restore failed: SlowDown".into(),
            fallback: None,
        };
        vec![
            (
                StepOutcome::BackupInterrupted(Interrupted {
                    step: "base2".into(),
                    mode: CrashMode::Sigkill,
                    backup_id: Some("20261202T124625".into()),
                    status: Some("FAILED".into()),
                    tool_said: "failed: Backup failed uploading data".into(),
                }),
                "crashed the source (SIGKILL of the postmaster) in the middle of base backup `base2`: barman-cloud-backup failed: Backup failed uploading data, leaving backup 20261202T124625 with status FAILED in its backup.info; the source restarted from its own disk (crash recovery) and kept writing",
            ),
            (
                StepOutcome::RecoveryFaultsArmed {
                    faults: vec![
                        ArmedFault::ReadErrors {
                            error: StoreError::SlowDown,
                            reads: RecoveryReads::WalGets,
                            from_segment: seg,
                            seconds: 60,
                            failures: Some(2),
                        },
                        ArmedFault::Restart {
                            mode: CrashMode::Sigkill,
                            after_step: "w2".into(),
                            after_lsn: Lsn(0x0400_01A0),
                        },
                    ],
                },
                "armed: object store answers 503 SlowDown to every read of archived WAL from segment 000000010000000000000004 on for 60s from the start of recovery, at most 2 request(s); kill the recovering server (SIGKILL of the postmaster) once replay passes 0/40001A0 (the commit of `w2`), then start it again on the same data directory",
            ),
            (
                StepOutcome::RecoveredUnderFaults {
                    recovery: Box::new(recovered),
                    observed: vec!["recovery failed: the object store answered 503 SlowDown to 3 request(s) and the tools' retries gave up".into()],
                },
                "recovery failed: barman-cloud-restore failed: SlowDown; recovery failed: the object store answered 503 SlowDown to 3 request(s) and the tools' retries gave up",
            ),
        ]
    }

    fn all_lines() -> Vec<(StepOutcome, &'static str)> {
        [
            source_lines(),
            archive_lines(),
            fault_lines(),
            recovery_lines(),
            random_lines(),
            recovery_fault_lines(),
        ]
        .concat()
    }

    #[test]
    fn outcomes_read_as_the_step_log_always_read() {
        for (outcome, line) in all_lines() {
            assert_eq!(outcome.to_string(), line, "{outcome:?}");
        }
    }

    #[test]
    fn outcomes_serialise_as_tagged_facts_and_back() {
        for (outcome, _) in all_lines() {
            let v = serde_json::to_value(&outcome).unwrap();
            assert!(v["outcome"].is_string(), "{v}");
            let back: StepOutcome = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(back, outcome, "{v}");
        }
        let (written, _) = &source_lines()[4];
        let v = serde_json::to_value(written).unwrap();
        assert_eq!(v["outcome"], "written");
        assert_eq!(v["txid"], 726);
        assert_eq!(v["commit_lsn"], "0/3000670");
        assert_eq!(v["segment"], "000000010000000000000003");
        assert_eq!(v["switched"], "000000010000000000000003");
    }
}
