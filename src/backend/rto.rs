//! What a backend measures of one recovery: the RTO and its timed phases. Data only; the
//! backends fill it, reporters render it; nothing here measures or prints.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One timed phase of recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: PhaseName,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
}

/// The phases the backends time. Local: `restore_base_backup`, `replay_until_consistent`,
/// `replay_and_promotion`, `first_query` (with `recovery.restart`, `replay_until_kill` and
/// `restart_and_replay` instead of the two replay phases). Kube: `job_scheduling`, then either those of the
/// Job's log (`restore_base_backup`, `replay_until_consistent`, `replay_and_promotion`,
/// `job_wrap_up`) or one `recovery_job`, then `instance_start`, `first_query`. Serialised, and
/// printed by reporters, as these snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// Kube: the recovery Cluster applied → the first full-recovery container started.
    JobScheduling,
    RestoreBaseBackup,
    ReplayUntilConsistent,
    ReplayAndPromotion,
    /// Kube: CNPG restarts, checkpoints and stops the recovered server in its Job.
    JobWrapUp,
    /// Kube, without the Job's log: restore, replay and promotion in CNPG's Job.
    RecoveryJob,
    /// Kube: the Job's end → the instance pod ready.
    InstanceStart,
    /// Local, `recovery.restart`: the restore's end → the recovering server killed mid-replay.
    ReplayUntilKill,
    /// Local, `recovery.restart`: the kill → the restarted server promoted (its replay resumed
    /// from its last restartpoint).
    RestartAndReplay,
    FirstQuery,
}

impl PhaseName {
    /// The name as serialised (`restore_base_backup`).
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::JobScheduling => "job_scheduling",
            PhaseName::RestoreBaseBackup => "restore_base_backup",
            PhaseName::ReplayUntilConsistent => "replay_until_consistent",
            PhaseName::ReplayAndPromotion => "replay_and_promotion",
            PhaseName::JobWrapUp => "job_wrap_up",
            PhaseName::RecoveryJob => "recovery_job",
            PhaseName::InstanceStart => "instance_start",
            PhaseName::ReplayUntilKill => "replay_until_kill",
            PhaseName::RestartAndReplay => "restart_and_replay",
            PhaseName::FirstQuery => "first_query",
        }
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The names rto.json, the JUnit properties and the Markdown tables carry: each reads back
    /// as a phase that prints and serialises as the same name.
    #[test]
    fn phase_names_print_as_they_serialise() {
        for name in [
            "job_scheduling",
            "restore_base_backup",
            "replay_until_consistent",
            "replay_and_promotion",
            "job_wrap_up",
            "recovery_job",
            "instance_start",
            "replay_until_kill",
            "restart_and_replay",
            "first_query",
        ] {
            let p: PhaseName = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!((p.as_str(), p.to_string()), (name, name.to_string()));
            assert_eq!(serde_json::to_value(p).unwrap(), name);
        }
    }
}
