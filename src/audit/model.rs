//! What an archive audit reads and what it concludes, as plain data. No I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One object under `<prefix>/<serverName>/`, key relative to that folder
/// (e.g. `wals/0000000100000000/000000010000000000000003.gz`, `base/20261122T024830/backup.info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveObject {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
}

/// Everything the audit needs from object storage: the listing plus the small text files
/// it had to read (every `backup.info` and every `.history`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveListing {
    pub objects: Vec<ArchiveObject>,
    /// backup id (folder name under `base/`) → content of its `backup.info`.
    pub backup_infos: BTreeMap<String, String>,
    /// timeline id → content of `wals/<TLI as 8 hex>.history`.
    pub histories: BTreeMap<u32, String>,
}

/// Alert thresholds (ADR 007 defaults: base backup older than 25 h, WAL older than 10 min).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub max_backup_age_seconds: u64,
    pub max_wal_age_seconds: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_backup_age_seconds: 25 * 3600,
            max_wal_age_seconds: 10 * 60,
        }
    }
}

/// A WAL segment recovery needs but the archive lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// 24-hex-digit segment name.
    pub segment: String,
    pub timeline: u32,
}

/// One base backup and how far recovery from it can go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupAudit {
    pub id: String,
    /// `status` field of backup.info (`DONE`, `FAILED`, …).
    pub status: String,
    pub timeline: u32,
    pub begin_wal: String,
    pub end_wal: String,
    pub begin_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// The data files (`data.tar*`) and backup.info are present.
    pub complete: bool,
    /// Every segment from begin_wal to end_wal is archived (the backup can reach consistency).
    pub recoverable_to_end: bool,
    /// Last segment of the contiguous run of WAL recovery can replay from this backup, following
    /// the timeline history to the newest timeline (what `recovery_target_timeline=latest` does).
    pub recoverable_until: Option<Gap>,
    /// First segment recovery would need and cannot find after this backup, if any.
    pub first_gap: Option<Gap>,
}

/// Which check a finding belongs to (one JUnit testcase each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// WAL continuity along the recovery path, timeline history included.
    WalContinuity,
    /// Age of the newest usable base backup (and whether there is one).
    BackupAge,
    /// Age of the newest archived WAL segment (and whether there is one).
    WalAge,
    /// Individual backups: failed, incomplete, inconsistent.
    Backups,
    /// Objects recovery will not use (partial, empty or misplaced files).
    Objects,
}

/// A finding that makes the audit fail (non-zero exit), or a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    /// `error` (fails the audit) or `warning`.
    pub severity: String,
    pub message: String,
}

/// The audit's verdict on one serverName.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    pub server_name: String,
    pub checked_at: DateTime<Utc>,
    pub wal_segment_size: u64,
    /// Timelines found (from segment names and history files), ascending.
    pub timelines: Vec<u32>,
    pub backups: Vec<BackupAudit>,
    /// Gaps on the path recovery from the oldest usable backup takes to the newest timeline.
    pub gaps: Vec<Gap>,
    pub newest_backup: Option<String>,
    pub newest_backup_age_seconds: Option<i64>,
    pub newest_wal: Option<String>,
    pub newest_wal_age_seconds: Option<i64>,
    /// WAL segments archived, every timeline (compressed or not; `.partial` files not counted).
    #[serde(default)]
    pub wal_segments: u64,
    pub thresholds: Thresholds,
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// True when no finding is an error.
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.severity != "error")
    }
}
