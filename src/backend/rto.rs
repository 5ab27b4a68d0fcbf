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
    /// The bytes the phase moved, where it moves data and the backend knows: the restored data
    /// directory for `restore_base_backup`, the WAL distance (LSNs) replayed for the replay
    /// phases. `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// One megabyte, as throughput is printed (MB/s): 10^6 bytes.
pub const MB: f64 = 1_000_000.0;

/// `bytes` over `seconds` in MB/s; `None` without bytes or without time to divide by.
pub fn mb_per_second(bytes: Option<u64>, seconds: f64) -> Option<f64> {
    let b = bytes?;
    (seconds > 0.0).then(|| b as f64 / MB / seconds)
}

impl Phase {
    /// A phase from `started_at` to `finished_at` (never negative), its bytes unknown.
    pub fn new(name: PhaseName, started_at: DateTime<Utc>, finished_at: DateTime<Utc>) -> Self {
        Phase {
            name,
            started_at,
            finished_at,
            seconds: (finished_at - started_at)
                .num_microseconds()
                .unwrap_or(0)
                .max(0) as f64
                / 1e6,
            bytes: None,
        }
    }

    /// Throughput in MB/s, when the phase's bytes are known and it took time.
    pub fn mb_per_second(&self) -> Option<f64> {
        mb_per_second(self.bytes, self.seconds)
    }
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
    /// Logical recovery: initdb and start of the fresh target instance.
    InstanceInit,
    /// Logical recovery: the dump downloaded from the object store.
    DownloadDump,
    /// Logical recovery: the dump restored (`psql` or `pg_restore`).
    RestoreDump,
    /// `recovery.command`: the user's restore script, start to exit.
    RestoreScript,
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
            PhaseName::InstanceInit => "instance_init",
            PhaseName::DownloadDump => "download_dump",
            PhaseName::RestoreDump => "restore_dump",
            PhaseName::RestoreScript => "restore_script",
        }
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Recovery time, from the start of the restore to the first answered query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The base backup's size as restored (the data directory after download and unpack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_backup_bytes: Option<u64>,
    /// Bytes of the WAL objects `restore_command` fetched from the archive (as stored:
    /// compressed when the archive is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_fetched_bytes: Option<u64>,
    /// The WAL distance replayed: from where redo started to where it was done (LSNs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_replayed_bytes: Option<u64>,
    /// What the parallel WAL fetch did, when recovery fetched WAL in parallel
    /// (`recovery.wal_max_parallel` above 1) and the backend can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_prefetch: Option<WalPrefetch>,
}

impl Rto {
    /// An RTO made of `phases` alone (their seconds summed), nothing replayed or fetched.
    pub fn of_phases(phases: Vec<Phase>) -> Self {
        Rto {
            seconds: phases.iter().map(|p| p.seconds).sum(),
            phases,
            ..Default::default()
        }
    }
}

/// Counts of a recovery's parallel WAL fetch (CNPG's `wal.maxParallel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WalPrefetch {
    /// Segments fetched per request that missed the spool.
    pub max_parallel: u32,
    /// `barman-cloud-wal-restore` runs: requested segments and those fetched ahead.
    pub fetches: u64,
    /// Requests served from the spool, fetched ahead by an earlier request.
    pub spool_hits: u64,
    /// Requests answered "not found" without asking the store: an earlier prefetch found the
    /// segment missing.
    pub remembered_missing: u64,
    /// Fetches that failed (the segment missing, or the store erring).
    pub failed_fetches: u64,
}

impl Rto {
    /// The phase that took longest: where the time went. `None` without phases.
    pub fn slowest_phase(&self) -> Option<&Phase> {
        self.phases
            .iter()
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
    }

    /// Seconds spent replaying WAL (and fetching it, which happens during replay): the sum of
    /// the replay phases. `None` when the backend did not time replay on its own.
    pub fn replay_seconds(&self) -> Option<f64> {
        let replay: Vec<f64> = self
            .phases
            .iter()
            .filter(|p| {
                matches!(
                    p.name,
                    PhaseName::ReplayUntilConsistent
                        | PhaseName::ReplayAndPromotion
                        | PhaseName::ReplayUntilKill
                        | PhaseName::RestartAndReplay
                )
            })
            .map(|p| p.seconds)
            .collect();
        (!replay.is_empty()).then(|| replay.iter().sum())
    }

    /// Base backup download and unpack, in MB/s of the restored size.
    pub fn base_backup_mb_per_second(&self) -> Option<f64> {
        let p = self
            .phases
            .iter()
            .find(|p| p.name == PhaseName::RestoreBaseBackup)?;
        mb_per_second(self.base_backup_bytes, p.seconds)
    }

    /// WAL fetched from the archive, in MB/s over the replay phases.
    pub fn wal_fetched_mb_per_second(&self) -> Option<f64> {
        mb_per_second(self.wal_fetched_bytes, self.replay_seconds()?)
    }

    /// WAL replayed, in MB/s of LSN distance over the replay phases.
    pub fn wal_replayed_mb_per_second(&self) -> Option<f64> {
        mb_per_second(self.wal_replayed_bytes, self.replay_seconds()?)
    }

    /// Give the replay phases their LSN distances (start of redo → consistent → redo done), and
    /// the recovery its WAL replayed. Phases whose ends are not both known keep `None`.
    pub fn set_replay_bytes(&mut self, lsns: &crate::backend::pg_log::ReplayLsns) {
        let dist = |a: Option<crate::wal::Lsn>, b: Option<crate::wal::Lsn>| match (a, b) {
            (Some(a), Some(b)) if b >= a => Some(b.0 - a.0),
            _ => None,
        };
        for p in &mut self.phases {
            match p.name {
                PhaseName::ReplayUntilConsistent => {
                    p.bytes = dist(lsns.redo_start, lsns.consistent)
                }
                PhaseName::ReplayAndPromotion => p.bytes = dist(lsns.consistent, lsns.redo_done),
                _ => {}
            }
        }
        self.wal_replayed_bytes = dist(lsns.redo_start, lsns.redo_done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn rto(phases: Vec<Phase>) -> Rto {
        Rto {
            base_backup_bytes: Some(40_000_000),
            wal_fetched_bytes: Some(3_000_000),
            wal_replayed_bytes: Some(48_000_000),
            ..Rto::of_phases(phases)
        }
    }

    #[test]
    fn throughput_is_bytes_over_the_phases_that_moved_them() {
        let r = rto(vec![
            Phase::new(PhaseName::RestoreBaseBackup, at(0), at(4)),
            Phase::new(PhaseName::ReplayUntilConsistent, at(4), at(5)),
            Phase::new(PhaseName::ReplayAndPromotion, at(5), at(7)),
            Phase::new(PhaseName::FirstQuery, at(7), at(8)),
        ]);
        assert_eq!(r.base_backup_mb_per_second(), Some(10.0));
        assert_eq!(r.replay_seconds(), Some(3.0));
        assert_eq!(r.wal_fetched_mb_per_second(), Some(1.0));
        assert_eq!(r.wal_replayed_mb_per_second(), Some(16.0));
        assert_eq!(
            r.slowest_phase().map(|p| p.name),
            Some(PhaseName::RestoreBaseBackup)
        );
        assert_eq!(r.phases[0].mb_per_second(), None, "bytes unknown");
    }

    #[test]
    fn without_replay_phases_or_time_there_is_no_throughput() {
        // Kube without the Job's log: one recovery_job phase, replay not timed on its own.
        let r = rto(vec![
            Phase::new(PhaseName::RecoveryJob, at(0), at(30)),
            Phase::new(PhaseName::InstanceStart, at(30), at(40)),
        ]);
        assert_eq!(r.replay_seconds(), None);
        assert_eq!(r.wal_replayed_mb_per_second(), None);
        assert_eq!(r.base_backup_mb_per_second(), None);
        assert_eq!(
            r.slowest_phase().map(|p| p.name),
            Some(PhaseName::RecoveryJob)
        );
        assert_eq!(mb_per_second(Some(5), 0.0), None);
        // A phase that runs backwards is empty, not negative.
        assert_eq!(Phase::new(PhaseName::FirstQuery, at(5), at(4)).seconds, 0.0);
    }

    #[test]
    fn replay_bytes_are_lsn_distances_and_unknown_when_an_end_is() {
        use crate::backend::pg_log::ReplayLsns;
        use crate::wal::Lsn;
        let mut r = rto(vec![
            Phase::new(PhaseName::ReplayUntilConsistent, at(0), at(1)),
            Phase::new(PhaseName::ReplayAndPromotion, at(1), at(2)),
        ]);
        r.set_replay_bytes(&ReplayLsns {
            redo_start: Some(Lsn(100)),
            consistent: Some(Lsn(400)),
            redo_done: None,
        });
        assert_eq!(r.phases[0].bytes, Some(300));
        assert_eq!(r.phases[1].bytes, None);
        assert_eq!(r.wal_replayed_bytes, None);
    }

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
