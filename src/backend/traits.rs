//! The contract between the runner and a backend.

use std::fmt;
use std::future::Future;

use crate::backend::Rto;
use crate::ledger::{BackupRecord, ResolvedTarget};
use crate::plan::PlanStep;
use crate::scenario::{
    Compression, CrashMode, DumpCompression, DumpFormat, ErrorWindow, RecoveryReads, Scenario,
    StoreError,
};
use crate::wal::{Lsn, SegmentName};

use super::BackendError;
use super::amcheck::AmcheckOutcome;
use super::objstore::ObjectStore;

/// `scenario` uses `feature`, which `backend` cannot do yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The backend that refuses (`kube`).
    pub backend: &'static str,
    /// What it lacks, as the scenario spells it, e.g. ``"`crash` (step `c1`)"``.
    pub feature: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uses {}, which the {} backend does not support yet; run it with --backend local",
            self.feature, self.backend
        )
    }
}

impl std::error::Error for Unsupported {}

/// How the source cluster is configured.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub major: u32,
    pub server_name: String,
    pub compression: Compression,
    /// `archive_timeout` in seconds; `None`: off.
    pub archive_timeout_seconds: Option<u64>,
    /// Parallel upload jobs of each base backup; `None`: barman-cloud's default (2).
    pub backup_jobs: Option<u32>,
}

impl SourceSpec {
    /// The source a plan's `StartSource` step describes; `None` for any other step.
    pub fn of_step(step: &PlanStep) -> Option<Self> {
        match step {
            PlanStep::StartSource {
                major,
                server_name,
                compression,
                archive_timeout_seconds,
                backup_jobs,
            } => Some(Self {
                major: *major,
                server_name: server_name.clone(),
                compression: *compression,
                archive_timeout_seconds: *archive_timeout_seconds,
                backup_jobs: *backup_jobs,
            }),
            _ => None,
        }
    }
}

/// A running server the runner may query.
pub struct Server {
    pub client: tokio_postgres::Client,
    /// `server_version` as the server reports it, e.g. `15.18`.
    pub version: String,
}

impl Server {
    /// Wrap a connected client, reading `server_version` from it.
    pub async fn from_client(client: tokio_postgres::Client) -> Result<Self, BackendError> {
        let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
        let version = version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Server { client, version })
    }
}

/// What the runner asks a backend to recover.
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    pub major: u32,
    /// serverName of the source archive to recover from.
    pub source_server_name: String,
    /// serverName the recovered cluster archives to.
    pub server_name: String,
    pub backup: BackupRecord,
    pub target: ResolvedTarget,
    pub exclusive: bool,
    pub compression: Compression,
    /// WAL segments fetched in parallel (CNPG's `wal.maxParallel`); `None`: one at a time.
    pub wal_max_parallel: Option<u32>,
    pub timeout_seconds: u64,
    /// The recovered instance's name within the drill (local: its directory): `recovered`,
    /// or `recovered-<k>` for random target k.
    pub instance: String,
}

/// What the runner or a game day asks a backend to check with `pg_amcheck`.
#[derive(Debug, Clone)]
pub struct AmcheckRequest {
    /// The recovered instance's name within the drill (`recovered`); a game day's scratch
    /// restore has one.
    pub instance: String,
    /// Its PostgreSQL major: `pg_amcheck` comes from that major's binaries.
    pub major: u32,
    pub timeout_seconds: u64,
}

/// The refusal of a backend that cannot run `pg_amcheck` at all.
pub fn amcheck_refused(backend: &str) -> AmcheckOutcome {
    AmcheckOutcome::NotRun {
        why: format!("the {backend} backend cannot run pg_amcheck"),
    }
}

/// How a recovery attempt ended.
pub enum RecoveryAttempt {
    /// Promoted and answering queries.
    Recovered { server: Server, rto: Rto },
    /// The server or a tool failed; `message` holds what it said (FATAL lines, stderr).
    Failed { message: String, rto: Option<Rto> },
}

/// What a base backup interrupted by a crash of the source left behind.
pub struct InterruptedBackupOutcome {
    /// The backup id barman gave it, if it left a `backup.info`.
    pub backup_id: Option<String>,
    /// Its `backup.info` status (`FAILED`, `STARTED`).
    pub status: Option<String>,
    /// barman-cloud-backup's exit code and last error line.
    pub tool_said: String,
    /// The source, restarted from its own disk after crash recovery.
    pub restarted: Server,
}

/// Faults a backend injects into the next recovery, resolved from the ledger by the runner.
#[derive(Debug, Clone, Default)]
pub struct RecoveryFaults {
    /// An error window over recovery's reads, opened when the restore starts.
    pub errors: Option<RecoveryErrors>,
    /// Kill the recovering server once replay passes a point, and start it again.
    pub restart: Option<RecoveryRestart>,
}

/// `recovery.object_store_errors`, resolved.
#[derive(Debug, Clone)]
pub struct RecoveryErrors {
    pub error: StoreError,
    pub seconds: u64,
    pub reads: RecoveryReads,
    /// Only WAL segments from this one on fail.
    pub from_segment: Option<SegmentName>,
    /// At most this many requests fail.
    pub failures: Option<u32>,
}

/// `recovery.restart`, resolved: kill once `pg_last_wal_replay_lsn()` reaches `after_lsn`
/// (reads of WAL after `segment`, the one holding it, are held until then).
#[derive(Debug, Clone)]
pub struct RecoveryRestart {
    pub after_lsn: Lsn,
    pub segment: SegmentName,
    pub mode: CrashMode,
}

/// What the recovery faults saw, read back after the recovery.
#[derive(Debug, Clone, Default)]
pub struct RecoveryFaultsSeen {
    /// Requests the error window failed.
    pub errors_answered: u64,
    /// WAL segments whose reads failed, ascending.
    pub failed_segments: Vec<SegmentName>,
    /// WAL segments read successfully while the faults were armed.
    pub served_segments: Vec<SegmentName>,
    /// The kill of the recovering server, if it happened.
    pub restart: Option<RestartSeen>,
}

/// The recovering server killed mid-replay and started again.
#[derive(Debug, Clone)]
pub struct RestartSeen {
    /// `pg_last_wal_replay_lsn()` read just before the kill.
    pub replay_lsn_at_kill: Lsn,
    /// Seconds from the start of recovery to the kill.
    pub killed_after_seconds: f64,
    pub mode: CrashMode,
}

/// What the runner asks a backend to dump (`logical_backup`).
#[derive(Debug, Clone)]
pub struct LogicalBackupRequest {
    pub step_id: String,
    /// The database to dump (the drill's own is `postgres`).
    pub database: String,
    pub format: DumpFormat,
    pub compression: DumpCompression,
    /// A snapshot exported (`pg_export_snapshot()`) by a transaction the runner holds open on
    /// the source, for `pg_dump --snapshot`; `None` for a database other than the one the
    /// snapshot belongs to (a snapshot cannot cross databases).
    pub snapshot: Option<String>,
    /// The object key to upload to, inside the drill's prefix.
    pub key: String,
    pub timeout_seconds: u64,
}

/// A logical backup, uploaded.
#[derive(Debug, Clone)]
pub struct LogicalBackupDone {
    /// Bytes uploaded.
    pub bytes: u64,
    /// `pg_dump` alone, in seconds.
    pub dump_seconds: f64,
}

/// What the runner asks a backend to restore (`recovery.method: logical`).
#[derive(Debug, Clone)]
pub struct LogicalRestoreRequest {
    /// PostgreSQL major of the fresh target instance.
    pub major: u32,
    /// The dump's object key and how it was written.
    pub key: String,
    pub format: DumpFormat,
    pub compression: DumpCompression,
    /// `None`: pgdrill restores the dump itself. `Some`: the user's script does.
    pub script: Option<RestoreScript>,
    pub timeout_seconds: u64,
    /// The target instance's name within the drill.
    pub instance: String,
}

/// `recovery.command`, resolved: the script's absolute path, the scenario's extra environment
/// and its deadline.
#[derive(Debug, Clone)]
pub struct RestoreScript {
    pub path: std::path::PathBuf,
    /// The script as the scenario names it, for messages.
    pub name: String,
    pub env: Vec<(String, String)>,
    pub timeout_seconds: u64,
}

/// What a restore script did: exit status, how long, what it printed (bounded, credentials
/// redacted).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScriptRun {
    /// The script as the scenario names it.
    pub command: String,
    /// Its exit code; `None` when killed (deadline, Ctrl-C) or ended by a signal.
    pub exit_code: Option<i32>,
    /// It ran past its deadline and its process group was killed.
    pub timed_out: bool,
    pub seconds: f64,
    /// stdout and stderr, interleaved, at most [`SCRIPT_OUTPUT_LIMIT`] bytes (head and tail).
    pub output: String,
    /// Bytes of output left out in the middle.
    pub output_elided: u64,
}

/// How much of a restore script's output is kept.
pub const SCRIPT_OUTPUT_LIMIT: usize = 16 * 1024;

/// How a logical restore ended, and the script's run when there was one.
pub struct LogicalRestoreOutcome {
    pub attempt: RecoveryAttempt,
    pub script: Option<ScriptRun>,
}

/// A backend: opens one drill per scenario.
pub trait Backend: Send + Sync {
    type Drill: Drill + Send;
    fn name(&self) -> &'static str;
    /// Whether this backend can run `scenario` as written, and if not why: asked before a run
    /// starts (`run`, `render`, `--skip-unsupported`) and again by `open`.
    fn supports(scenario: &Scenario) -> Result<(), Unsupported>;
    /// Prepare an isolated place for one scenario (directories, bucket prefix, namespace).
    fn open(
        &self,
        scenario: &Scenario,
    ) -> impl Future<Output = Result<Self::Drill, BackendError>> + Send;
}

/// One scenario's resources. Every method may be cancelled by dropping its future;
/// `teardown` must still release everything afterwards.
pub trait Drill {
    /// Object storage scoped to this drill's prefix (fault injection, audits).
    fn store(&self) -> &ObjectStore;
    /// `s3://bucket/prefix` this drill archives under.
    fn destination(&self) -> String;
    /// Create, configure and start the source cluster, archiving to `spec.server_name`.
    fn start_source(
        &mut self,
        spec: &SourceSpec,
    ) -> impl Future<Output = Result<Server, BackendError>> + Send;
    /// Take a base backup of the source and return barman's record of it.
    fn base_backup(
        &mut self,
        step_id: &str,
        timeout_seconds: u64,
    ) -> impl Future<Output = Result<BackupRecord, BackendError>> + Send;
    /// Stop the source cluster cleanly (it has been flushed to the archive by the runner).
    fn stop_source(&mut self) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Crash the source primary and wait until none of its processes is left; its disk counts
    /// as lost. Backends that cannot crash a primary refuse with an infrastructure error.
    fn crash_source(
        &mut self,
        mode: CrashMode,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Make the object store answer this drill's requests with an error for a while.
    fn open_error_window(
        &mut self,
        w: &ErrorWindow,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// A second connection to the running source, for monitors that watch it while the runner
    /// goes on with the plan.
    fn monitor_source(
        &self,
    ) -> impl Future<Output = Result<tokio_postgres::Client, BackendError>> + Send;
    /// Fail the source over onto its next timeline, as after a CloudNativePG failover: stop it
    /// (fast), restart it through archive recovery from its own archive with
    /// `recovery_target_timeline = latest`, promote at the end of WAL; it keeps archiving to
    /// the same serverName. Returns a fresh connection. Only the local backend can; the CLI
    /// refuses scenarios with a `failover` step on any other before it starts.
    fn failover(
        &mut self,
        timeout_seconds: u64,
    ) -> impl Future<Output = Result<Server, BackendError>> + Send {
        let _ = timeout_seconds;
        async {
            Err(BackendError::infra(
                "this backend cannot fail the source over: `failover` steps run on the local backend only",
            ))
        }
    }
    /// Take a base backup and crash the source in the middle of it, once barman-cloud-backup
    /// has started it and announced it in the archive; then restart the source from its own
    /// disk. Only the local backend can; others refuse (see `Backend::supports`).
    fn base_backup_with_crash(
        &mut self,
        step_id: &str,
        mode: CrashMode,
        timeout_seconds: u64,
    ) -> impl Future<Output = Result<InterruptedBackupOutcome, BackendError>> + Send {
        let _ = (step_id, mode, timeout_seconds);
        async {
            Err(BackendError::infra(
                "this backend cannot crash the source during a base backup: local backend only",
            ))
        }
    }
    /// Arm faults for the next `recover`. Only the local backend can.
    fn arm_recovery_faults(
        &mut self,
        faults: &RecoveryFaults,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = faults;
        async {
            Err(BackendError::infra(
                "this backend cannot inject faults into recovery: local backend only",
            ))
        }
    }
    /// What the armed recovery faults saw, and disarm them.
    fn recovery_faults_seen(&mut self) -> RecoveryFaultsSeen {
        RecoveryFaultsSeen::default()
    }
    /// `pg_dump` the source at the request's snapshot and upload it. Only the local backend
    /// can; `Backend::supports` refuses logical scenarios elsewhere.
    fn logical_backup(
        &mut self,
        req: &LogicalBackupRequest,
    ) -> impl Future<Output = Result<LogicalBackupDone, BackendError>> + Send {
        let _ = req;
        async {
            Err(BackendError::infra(
                "this backend cannot take logical backups: `logical_backup` runs on the local backend only",
            ))
        }
    }
    /// A fresh instance with a logical backup restored into it, by pgdrill or by the user's
    /// script. Only the local backend can.
    fn logical_restore(
        &mut self,
        req: &LogicalRestoreRequest,
    ) -> impl Future<Output = Result<LogicalRestoreOutcome, BackendError>> + Send {
        let _ = req;
        async {
            Err(BackendError::infra(
                "this backend cannot restore logical backups: `recovery.method: logical` runs on the local backend only",
            ))
        }
    }
    /// Bootstrap a new cluster from the archive.
    fn recover(
        &mut self,
        req: &RecoveryRequest,
    ) -> impl Future<Output = Result<RecoveryAttempt, BackendError>> + Send;
    /// Bootstrap several new clusters from the archive at the same time, each into its own
    /// instance; one outcome per request, in order. Backends that cannot refuse with an error.
    fn recover_many(
        &mut self,
        reqs: &[RecoveryRequest],
    ) -> impl Future<Output = Result<Vec<RecoveryAttempt>, BackendError>> + Send;
    /// Stop and remove the recovered instance `instance` (its connections are closed first by
    /// the caller), so a drill recovering many times holds one at a time. Its archive prefix
    /// stays until teardown.
    fn release(&mut self, instance: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Check the recovered instance `req.instance` with `pg_amcheck` (heap and B-tree
    /// indexes of every database). `NotRun` says honestly why it could not (no `pg_amcheck`
    /// for that major, a backend that cannot); an error is a check that broke.
    fn amcheck(
        &mut self,
        req: &AmcheckRequest,
    ) -> impl Future<Output = Result<AmcheckOutcome, BackendError>> + Send {
        let _ = req;
        async { Ok(amcheck_refused("this")) }
    }
    /// Release everything, or with [`Keep::Everything`] leave it in place and say where.
    /// Returns what was kept.
    fn teardown(self, keep: Keep) -> impl Future<Output = Vec<String>> + Send;
}

/// What teardown leaves in place (`--keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Release every server, directory, namespace and archive prefix.
    #[default]
    Nothing,
    /// Leave them all in place to look at, and say where they are.
    Everything,
}

impl From<bool> for Keep {
    /// The `--keep` flag: `true` keeps everything.
    fn from(keep: bool) -> Keep {
        if keep {
            Keep::Everything
        } else {
            Keep::Nothing
        }
    }
}

/// What a game day asks a backend to restore from a real archive.
#[derive(Debug, Clone)]
pub struct ScratchRequest {
    pub major: u32,
    /// serverName of the archive under test.
    pub server_name: String,
    pub backup_id: String,
    pub target: ResolvedTarget,
    /// `None`: the scratch instance does not archive at all. Otherwise `(destinationPath,
    /// serverName)` of its own archive, already checked not to overlap the source.
    pub archive: Option<(String, String)>,
    pub timeout_seconds: u64,
}

/// A restore of a real archive into something disposable (a scratch instance or namespace).
/// Never writes to the archive under test.
pub trait ScratchRestore {
    fn name(&self) -> &'static str;
    /// Restore, replay to the target, promote, and connect.
    fn restore(
        &mut self,
        req: &ScratchRequest,
    ) -> impl Future<Output = Result<RecoveryAttempt, BackendError>> + Send;
    /// Check the restored instance with `pg_amcheck`, as [`Drill::amcheck`] does.
    fn amcheck(
        &mut self,
        req: &AmcheckRequest,
    ) -> impl Future<Output = Result<AmcheckOutcome, BackendError>> + Send {
        let _ = req;
        let name = self.name();
        async move { Ok(amcheck_refused(name)) }
    }
    /// Release everything, or with [`Keep::Everything`] leave it and say where.
    fn teardown(self, keep: Keep) -> impl Future<Output = Vec<String>> + Send;
}
