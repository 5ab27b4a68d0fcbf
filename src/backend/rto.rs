//! What a backend measures of one recovery: the RTO and its timed phases. Data only; the
//! backends fill it, reporters render it; nothing here measures or prints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One timed phase of recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Local: `restore_base_backup`, `replay_until_consistent`, `replay_and_promotion`,
    /// `first_query`. Kube: `recovery_job` (restore, replay and promotion in CNPG's Job),
    /// `instance_start`, `first_query`.
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
}

/// Recovery time, from the start of the restore to the first answered query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rto {
    pub seconds: f64,
    pub phases: Vec<Phase>,
    pub wal_segments_replayed: u64,
    pub bytes_downloaded: u64,
    pub budget_seconds: Option<f64>,
    /// Why WAL replay ended, in PostgreSQL's words, when it logged a reason (a damaged record:
    /// `incorrect resource manager data checksum in record at 0/40000D0`). `None` when replay
    /// simply ran out of archived WAL, or the backend cannot read the server log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_end: Option<String>,
    /// The commit time of the last transaction replay applied, as PostgreSQL logged it when
    /// recovery ended (`last completed transaction was at log time …`). `None` when nothing
    /// was replayed past the backup, or the backend cannot read the server log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_replayed_commit: Option<chrono::DateTime<chrono::Utc>>,
}
