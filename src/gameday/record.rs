//! Everything a game day found, as one serializable record: the input to every game-day
//! report. Plain data.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::AuditReport;
use crate::backend::Rto;
use crate::backend::amcheck::AmcheckOutcome;
use crate::runner::{Reason, Status};

use super::plan::{CheckResult, Rpo};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GamedayRecord {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    /// Who ran it (`--operator`, else `$USER`).
    pub operator: String,
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    pub backend: String,
    /// `s3://bucket/path/serverName` (never credentials).
    pub archive: String,
    pub endpoint: String,
    pub postgres_major: u32,
    /// Full version of the restored server.
    pub postgres_version: Option<String>,
    pub seed: u64,
    /// As asked: `latest`, `random` or `time …`.
    pub target: String,
    /// As given to PostgreSQL.
    pub resolved_target: Option<String>,
    /// For `random`: the LSN window the target was drawn from.
    pub random_window: Option<(String, String)>,
    pub backup_id: Option<String>,
    /// The archive audit made before the restore.
    pub audit: Option<AuditReport>,
    /// How the restore ended: `recovered`, or the failure message.
    pub restore: RestoreOutcome,
    /// The last transaction the restored server replayed.
    pub recovered_to: Option<DateTime<Utc>>,
    pub rto: Option<Rto>,
    pub rpo: Option<Rpo>,
    pub checks: Vec<CheckResult>,
    /// `pg_amcheck` on the restored instance: its findings, or why it did not run (turned
    /// off, no binaries for this major, a backend that cannot). `None`: never reached.
    pub amcheck: Option<AmcheckOutcome>,
    pub status: Status,
    /// Stable code of what the failure came down to (`wal_unavailable`, …); `None` when passed.
    pub reason: Option<Reason>,
    pub kept: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RestoreOutcome {
    Recovered,
    Failed { message: String },
    NotAttempted,
}
