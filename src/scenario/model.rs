//! The scenario file format as plain serde types: what a drill file may say, nothing about how it runs.
//!
//! Every struct denies unknown keys so a typo is an error, never a silently ignored setting.
//! Semantic rules that serde cannot express (dangling step references, impossible targets)
//! live in `validate.rs`; this module never does I/O.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::wal::SegmentName;

/// The step id under which seed rows are recorded in the ledger; no step may take it.
pub const SEED_STEP: &str = "seed";

/// One drill: source cluster, what happens to it, how it is recovered and what must come back.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short identifier, lowercase letters, digits and dashes; unique within a run.
    pub name: String,
    /// What this drill proves, in a sentence or two. Shown in reports.
    #[serde(default)]
    pub description: String,
    /// Free-form tags, selectable with `pgdrill run --filter TAG`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Seed for every generated value (row payloads). Recorded in every report.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// PostgreSQL major version of the source cluster.
    pub postgres: u32,
    /// Continuous archiving and base backup settings of the source cluster.
    #[serde(default)]
    pub backup: BackupSpec,
    /// Data loaded before the first step.
    #[serde(default)]
    pub seed_data: SeedData,
    /// What happens to the source cluster, in order.
    pub steps: Vec<Step>,
    /// How the new cluster is bootstrapped from the archive.
    #[serde(default)]
    pub recovery: Recovery,
    /// What the drill must observe to pass.
    pub expect: Expect,
    /// Deadlines for the waits of this drill.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Extra environment for the backup tools (barman-cloud and the archive/restore commands),
    /// e.g. `AWS_REQUEST_CHECKSUM_CALCULATION: when_required`. Never credentials.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Which object store the drill archives to (`s3`, the default, or `azure`) and, on the
    /// local backend's embedded S3 endpoint, how it behaves. `object_store: azure` is short for
    /// `object_store: { provider: azure }`.
    #[serde(
        default,
        skip_serializing_if = "ObjectStoreSpec::is_default",
        deserialize_with = "super::object_store::deserialize"
    )]
    #[schemars(schema_with = "super::object_store::schema")]
    pub object_store: ObjectStoreSpec,
    /// Checks of the recovered instance beyond its rows, run after row verification.
    #[serde(default, skip_serializing_if = "VerifySpec::is_default")]
    pub verify: VerifySpec,
}

/// `verify:`: integrity checks of the recovered instance, after its rows are verified.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// Run `pg_amcheck` (the recovered major's) over every database of the recovered
    /// instance: heap pages, and B-tree indexes against their tables (`--heapallindexed
    /// --parent-check --rootdescend`). Findings fail the drill unless
    /// `expect.recovered.amcheck` names their relations.
    #[serde(default)]
    pub amcheck: bool,
}

impl VerifySpec {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The object store a drill archives to, and (S3 on the local backend's embedded endpoint
/// only) its behaviour faults, from the drill's first request to its last.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreSpec {
    /// The object store: `s3` (default) or `azure` (Azure Blob Storage; locally Azurite).
    #[serde(default, skip_serializing_if = "Provider::is_s3")]
    pub provider: Provider,
    /// Azure settings (with `provider: azure` only): which credentials the tools get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSpec>,
    /// Reject requests with the flexible-checksum headers of newer AWS SDKs with
    /// `501 NotImplemented`, as Oracle Object Storage does.
    #[serde(default)]
    pub reject_checksum_headers: bool,
    /// Delay every request by this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

impl ObjectStoreSpec {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the drill archives to Azure Blob Storage.
    pub fn is_azure(&self) -> bool {
        self.provider == Provider::Azure
    }

    /// The Azure credential flavour the tools get (default: a connection string).
    pub fn azure_credentials(&self) -> AzureCredentials {
        self.azure
            .as_ref()
            .map(|a| a.credentials)
            .unwrap_or_default()
    }

    /// Behaviour faults of the embedded S3 endpoint, as their keys, when any is set.
    pub fn s3_behaviour_keys(&self) -> Vec<&'static str> {
        [
            ("reject_checksum_headers", self.reject_checksum_headers),
            ("latency_ms", self.latency_ms.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}

/// Which object store a drill archives to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// S3 (locally the embedded endpoint, or `--s3-endpoint`).
    #[default]
    S3,
    /// Azure Blob Storage (barman-cloud's `azure-blob-storage` provider; locally Azurite, or
    /// `--azure-endpoint`).
    Azure,
}

impl Provider {
    pub fn is_s3(&self) -> bool {
        *self == Provider::S3
    }
}

/// Azure settings of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureSpec {
    /// Which credentials barman-cloud (and CNPG's `azureCredentials`) get.
    #[serde(default)]
    pub credentials: AzureCredentials,
}

/// The three credential flavours of CNPG's `azureCredentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AzureCredentials {
    /// `AZURE_STORAGE_CONNECTION_STRING` with the account name and key (`connectionString`).
    #[default]
    ConnectionString,
    /// The storage account and its shared key (`storageAccount` + `storageKey`).
    AccountKey,
    /// A SAS token pgdrill signs for the drill's container (`storageAccount` + `storageSasToken`).
    Sas,
}

pub fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSpec {
    /// barman `serverName` of the source cluster (folder under the drill's prefix).
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// Compression for both WAL and base backups.
    #[serde(default)]
    pub compression: Compression,
    /// PostgreSQL `archive_timeout` of the source, in seconds: a segment holding a commit is
    /// switched and archived at most this long after it. Default: off (0), so only full
    /// segments and pgdrill's own switches are archived. ADR 007 runs with 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_timeout_seconds: Option<u64>,
    /// Parallel upload jobs of a base backup (1 to 32): `barman-cloud-backup --jobs`, CNPG's
    /// `data.jobs`. Default: barman-cloud's own, 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
}

impl Default for BackupSpec {
    fn default() -> Self {
        Self {
            server_name: default_server_name(),
            compression: Compression::default(),
            archive_timeout_seconds: None,
            jobs: None,
        }
    }
}

pub fn default_server_name() -> String {
    "source".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    Bzip2,
    Snappy,
    None,
}

impl Compression {
    /// The barman-cloud flag for this compression, if any.
    pub fn barman_flag(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some("--gzip"),
            Compression::Bzip2 => Some("--bzip2"),
            Compression::Snappy => Some("--snappy"),
            Compression::None => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedData {
    /// Tables pgdrill creates and fills with generated rows (id, step, payload).
    #[serde(default)]
    pub tables: Vec<SeedTable>,
    /// An SQL file under `fixtures/`, run once before the generated tables are filled.
    #[serde(default)]
    pub sql: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedTable {
    pub name: String,
    /// Rows generated before the first step.
    #[serde(default)]
    pub rows: u64,
    /// A bulk table of this much payload before the first step, e.g. `1GiB`, `512MiB`,
    /// `64MB` (rows of `row_bytes` each, instead of `rows`). A bulk table's rows are generated
    /// by the server and verified by digests the server computes, so a drill of any size
    /// never holds them in pgdrill's memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<DataSize>,
    /// Payload bytes per row of a bulk table (64 to 8192); setting it makes the table bulk.
    /// Default 1024 when `size` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_bytes: Option<u32>,
}

impl Scenario {
    /// Payload bytes of every bulk table's seed and bulk writes, as planned.
    pub fn bulk_payload_bytes(&self) -> u64 {
        let widths: BTreeMap<&str, u32> = self
            .seed_data
            .tables
            .iter()
            .filter_map(|t| Some((t.name.as_str(), t.bulk_row_bytes()?)))
            .collect();
        let seeded = self.seed_data.tables.iter().filter_map(|t| {
            let b = t.bulk_row_bytes()?;
            Some(t.seed_rows().saturating_mul(u64::from(b)))
        });
        let written = self.steps.iter().filter_map(|s| match s {
            Step::Write(w) => {
                let b = *widths.get(w.table.as_str())?;
                Some(w.planned_rows(Some(b)).saturating_mul(u64::from(b)))
            }
            _ => None,
        });
        seeded.chain(written).fold(0, u64::saturating_add)
    }
}

/// Payload bytes per row of a bulk table unless `row_bytes` says otherwise.
pub const DEFAULT_ROW_BYTES: u32 = 1024;

impl SeedTable {
    /// `Some(row_bytes)` for a bulk table (one with `size` or `row_bytes`).
    pub fn bulk_row_bytes(&self) -> Option<u32> {
        match (self.size, self.row_bytes) {
            (_, Some(b)) => Some(b),
            (Some(_), None) => Some(DEFAULT_ROW_BYTES),
            (None, None) => None,
        }
    }

    /// Rows seeded before the first step: `rows`, or `size` in rows of `row_bytes`.
    pub fn seed_rows(&self) -> u64 {
        match (self.size, self.bulk_row_bytes()) {
            (Some(size), Some(b)) => size.rows_of(b),
            _ => self.rows,
        }
    }
}

/// An amount of data: `2GiB`, `512MiB`, `64MB`, `1.5GB` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(transparent)]
pub struct DataSize(pub bytesize::ByteSize);

impl DataSize {
    pub fn bytes(self) -> u64 {
        self.0.as_u64()
    }

    /// Rows of `row_bytes` payload bytes that hold this much, rounded up.
    pub fn rows_of(self, row_bytes: u32) -> u64 {
        self.bytes().div_ceil(u64::from(row_bytes.max(1)))
    }
}

impl std::fmt::Display for DataSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.display().iec())
    }
}

impl JsonSchema for DataSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DataSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An amount of data: `2GiB`, `512MiB`, `64MB`, `1.5GB` or a number of bytes.",
            "type": ["string", "integer"]
        })
    }
}

/// One step against the source cluster. Written as a one-key map: `- write: { id: w1, ... }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Take a base backup with `barman-cloud-backup` (a `Backup` resource on kube).
    BaseBackup(BaseBackupStep),
    /// Insert rows in one transaction and record them in the ledger.
    Write(WriteStep),
    /// `pg_create_restore_point(name)`.
    RestorePoint(RestorePointStep),
    /// `CHECKPOINT`.
    Checkpoint(IdOnly),
    /// `pg_switch_wal()` and wait until the finished segment is archived.
    SwitchWal(IdOnly),
    /// Wait, without switching WAL, until the segment holding a write is archived: shows how
    /// long a commit stays exposed under the source's `archive_timeout`.
    WaitArchived(WaitArchivedStep),
    /// Wait until `pg_stat_archiver` counts a failed attempt made since the last
    /// `object_store_errors` window opened, so the next steps run with archiving known broken.
    WaitArchiveFailure(IdOnly),
    /// Break something on purpose.
    Fault(FaultStep),
    /// Fail the source over onto a new timeline, as after a CloudNativePG failover: stop it
    /// (fast), restart it through archive recovery from its own archive, promote at the end
    /// of WAL; it keeps archiving to the same serverName. Local backend only.
    Failover(IdOnly),
    /// `pg_dump` of the source database at an exported snapshot, uploaded to the drill's
    /// object store under `<prefix>/logical/`; the ledger records the snapshot.
    LogicalBackup(LogicalBackupStep),
}

impl Step {
    pub fn id(&self) -> &str {
        match self {
            Step::BaseBackup(s) => &s.id,
            Step::Write(s) => &s.id,
            Step::RestorePoint(s) => &s.id,
            Step::Checkpoint(s) | Step::SwitchWal(s) => &s.id,
            Step::WaitArchived(s) => &s.id,
            Step::WaitArchiveFailure(s) => &s.id,
            Step::Fault(s) => &s.id,
            Step::Failover(s) => &s.id,
            Step::LogicalBackup(s) => &s.id,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Step::BaseBackup(_) => "base_backup",
            Step::Write(_) => "write",
            Step::RestorePoint(_) => "restore_point",
            Step::Checkpoint(_) => "checkpoint",
            Step::SwitchWal(_) => "switch_wal",
            Step::WaitArchived(_) => "wait_archived",
            Step::WaitArchiveFailure(_) => "wait_archive_failure",
            Step::Fault(_) => "fault",
            Step::Failover(_) => "failover",
            Step::LogicalBackup(_) => "logical_backup",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdOnly {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaseBackupStep {
    pub id: String,
    /// Crash the source primary in the middle of this backup: once `barman-cloud-backup` has
    /// started it in PostgreSQL and announces it in the archive (its `STARTED` backup.info
    /// upload reaches the object store, which holds that request until the crash). The source
    /// then restarts from its own disk (crash recovery, like a pod restart) and later steps
    /// use it; the backup is left unfinished. Local backend only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_source: Option<CrashMode>,
}

/// `logical_backup`: a `pg_dump` like seed 004's CronJob (plain SQL, gzip'd, by default).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogicalBackupStep {
    pub id: String,
    /// `plain` (an SQL script, restored with psql) or `custom` (restored with pg_restore).
    #[serde(default)]
    pub format: DumpFormat,
    /// `gzip` (plain: the file is gzip'd, `.sql.gz`; custom: pg_dump's own compression) or
    /// `none`.
    #[serde(default)]
    pub compression: DumpCompression,
    /// The database to dump. Default: the drill's own (`postgres`). Naming another one is the
    /// "dump of the wrong database" misconfiguration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// A write that is in progress when the dump's snapshot is taken and commits before
    /// `pg_dump` reads anything: committed before the dump ran, yet not in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlightWrite>,
}

/// A write held open across a logical backup's snapshot (`logical_backup.in_flight`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InFlightWrite {
    /// Its ledger step id (unique among the steps' ids).
    pub id: String,
    /// A table from `seed_data.tables` (not a bulk one).
    pub table: String,
    /// Rows it inserts. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// How `pg_dump` writes a logical backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// An SQL script (`pg_dump -Fp`), restored with `psql -v ON_ERROR_STOP=1`.
    #[default]
    Plain,
    /// pg_dump's archive format (`pg_dump -Fc`), restored with `pg_restore`.
    Custom,
}

/// How a logical backup is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DumpCompression {
    #[default]
    Gzip,
    None,
}

impl LogicalBackupStep {
    /// The object's name under `<prefix>/logical/`: `<id>.sql.gz`, `<id>.sql` or `<id>.dump`.
    pub fn file_name(&self) -> String {
        dump_file_name(&self.id, self.format, self.compression)
    }
}

/// The object name of a logical backup of step `id`.
pub fn dump_file_name(id: &str, format: DumpFormat, compression: DumpCompression) -> String {
    match (format, compression) {
        (DumpFormat::Plain, DumpCompression::Gzip) => format!("{id}.sql.gz"),
        (DumpFormat::Plain, DumpCompression::None) => format!("{id}.sql"),
        (DumpFormat::Custom, _) => format!("{id}.dump"),
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteStep {
    pub id: String,
    /// A table from `seed_data.tables`.
    pub table: String,
    /// Rows inserted by this write, in one transaction. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// For a bulk table: this much payload instead of `rows`, e.g. `256MiB`, still one
    /// transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<DataSize>,
    /// After the commit, `pg_switch_wal()` and wait until the segment holding it is archived,
    /// so the next write lands in the next segment.
    #[serde(default)]
    pub own_segment: bool,
}

impl WriteStep {
    /// Rows this write inserts into a table of `row_bytes` payload bytes per row when bulk.
    pub fn planned_rows(&self, bulk_row_bytes: Option<u32>) -> u64 {
        match (self.size, bulk_row_bytes) {
            (Some(size), Some(b)) => size.rows_of(b),
            _ => self.rows.unwrap_or(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArchivedStep {
    pub id: String,
    /// A `write` step: wait until the segment holding its commit is archived.
    pub write: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestorePointStep {
    pub id: String,
    /// The restore point name, usable as `recovery.target: { name: ... }`.
    pub name: String,
}

/// A fault injected between steps: exactly one fault field is set.
/// Object-storage faults only ever touch the drill's own prefix.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    pub id: String,
    /// Delete one archived WAL segment from object storage, or with `last: N` the newest N
    /// (tail loss, after a `crash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_wal: Option<WalSelectorSpec>,
    /// Crash the source primary: `immediate` (SIGQUIT, no checkpoint) or `sigkill` (SIGKILL of
    /// the postmaster). Its disk is treated as lost: recovery has only the archive. Writes whose
    /// segments were not archived yet are lost; only object-storage faults may follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<CrashMode>,
    /// The object store answers the drill's requests with an error for a while (local
    /// backend's embedded endpoint). Archiving fails and catches up afterwards; pgdrill measures
    /// how long until `pg_stat_archiver` shows failures and the RPO exposure that accumulates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store_errors: Option<ErrorWindow>,
    /// Damage the content of one archived WAL segment, in place under the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_wal: Option<CorruptWalSpec>,
    /// Delete one base backup's data files or its `backup.info` from the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_backup: Option<DeleteBackup>,
    /// Delete a timeline's `.history` file from the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_history: Option<DeleteHistory>,
    /// Rewrite a logical backup's object to its first bytes (a dump cut short by a full disk
    /// or a killed upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_dump: Option<TruncateDump>,
    /// Delete a logical backup's object (retention too short, a wrong lifecycle rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_dump: Option<DumpRef>,
    /// On the source: index a table through a function declared IMMUTABLE, then redefine the
    /// function, so the existing index entries no longer match their rows (the glibc 2.28
    /// collation change in miniature). WAL-logged, so every recovery inherits it; row counts
    /// and digests cannot see it, `pg_amcheck --heapallindexed` can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_expression_index: Option<StaleExpressionIndex>,
}

/// `truncate_dump`: which logical backup, and how much of it stays.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TruncateDump {
    /// A `logical_backup` step id.
    pub step: String,
    /// Keep this many bytes. Default: half of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// A logical backup, by its step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DumpRef {
    /// A `logical_backup` step id.
    pub step: String,
}

/// `stale_expression_index`: the table whose `payload` gets the stale index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaleExpressionIndex {
    /// A table from `seed_data.tables`.
    pub table: String,
}

impl StaleExpressionIndex {
    /// The index the fault creates: `<table>_sort_key`.
    pub fn index_name(&self) -> String {
        format!("{}_sort_key", self.table)
    }

    /// The IMMUTABLE function the index is built on: `pgdrill_sort_key_<table>`.
    pub fn function_name(&self) -> String {
        format!("pgdrill_sort_key_{}", self.table)
    }
}

/// How the primary crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CrashMode {
    /// `pg_ctl stop -m immediate`: SIGQUIT, every process exits without a checkpoint.
    Immediate,
    /// SIGKILL of the postmaster; its children notice and exit.
    Sigkill,
}

/// An error window of the object store, starting when the fault step runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorWindow {
    /// What the store answers.
    pub error: StoreError,
    /// How long the window lasts, from the fault step.
    pub seconds: u64,
    /// Which requests fail. Default: all of them.
    #[serde(default)]
    pub requests: RequestFilter,
}

/// The error an object store answers with during an error window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreError {
    /// `503 SlowDown`: an outage or throttling.
    SlowDown,
    /// `403 InvalidAccessKeyId`: rotated or wrong credentials.
    WrongCredentials,
    /// `404 NoSuchBucket`: the bucket was deleted or renamed.
    MissingBucket,
}

/// Which requests an error window affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestFilter {
    #[default]
    All,
    /// Only uploads of WAL files (`PUT .../wals/...`); base backups and reads still work.
    WalPuts,
}

impl FaultStep {
    /// The fault this step injects, if exactly one is set and, for `delete_wal` and
    /// `corrupt_wal`, it names its segments with exactly one key and a valid segment name
    /// (validation guarantees all of it).
    pub fn fault(&self) -> Option<Fault> {
        let set: Vec<Fault> = [
            self.delete_wal
                .as_ref()
                .and_then(WalSelectorSpec::selector)
                .map(Fault::DeleteWal),
            self.crash.map(Fault::Crash),
            self.object_store_errors
                .clone()
                .map(Fault::ObjectStoreErrors),
            self.corrupt_wal
                .as_ref()
                .and_then(CorruptWalSpec::corrupt_wal)
                .map(Fault::CorruptWal),
            self.delete_backup.clone().map(Fault::DeleteBackup),
            self.delete_history.clone().map(Fault::DeleteHistory),
            self.truncate_dump.clone().map(Fault::TruncateDump),
            self.delete_dump.clone().map(|d| Fault::DeleteDump(d.step)),
            self.stale_expression_index
                .clone()
                .map(Fault::StaleExpressionIndex),
        ]
        .into_iter()
        .flatten()
        .collect();
        if set.len() == 1 {
            set.into_iter().next()
        } else {
            None
        }
    }
}

/// The fault kinds, as the plan and backends see them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    DeleteWal(WalSelector),
    Crash(CrashMode),
    ObjectStoreErrors(ErrorWindow),
    CorruptWal(CorruptWal),
    DeleteBackup(DeleteBackup),
    DeleteHistory(DeleteHistory),
    TruncateDump(TruncateDump),
    /// The `logical_backup` step whose object is deleted.
    DeleteDump(String),
    StaleExpressionIndex(StaleExpressionIndex),
}

impl Fault {
    /// Whether this fault stops the source: later steps cannot use it.
    pub fn stops_source(&self) -> bool {
        matches!(self, Fault::Crash(_))
    }
}

// `corrupt_wal` as the file writes it: validation checks its selector and locates its problems
// in the file, `corrupt_wal()` then gives the `CorruptWal` the plan and the runner use. Serde's
// messages and the JSON Schema (which takes the doc line below) call it `CorruptWal`, as they
// always did.
/// `corrupt_wal`: which segment, and how to damage it. Exactly one of `segment` and
/// `holding_step` is set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "CorruptWal")]
pub struct CorruptWalSpec {
    /// A segment file name, e.g. `000000010000000000000009`: its first record is damaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// The segment holding the commit record of this write step: that record is damaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding_step: Option<String>,
    pub mode: CorruptMode,
}

impl CorruptWalSpec {
    /// The segment selector part.
    pub fn selector(&self) -> WalSelectorSpec {
        WalSelectorSpec {
            segment: self.segment.clone(),
            holding_step: self.holding_step.clone(),
            last: None,
        }
    }

    /// The fault, if the selector names exactly one segment, by a valid name or a step.
    pub fn corrupt_wal(&self) -> Option<CorruptWal> {
        Some(CorruptWal {
            segment: self.selector().one()?,
            mode: self.mode,
        })
    }
}

/// `corrupt_wal`, validated: the one segment and how to damage it. Serialised as the file
/// writes it: `{ holding_step: w2, mode: crc }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorruptWal {
    #[serde(flatten)]
    pub segment: OneSegment,
    pub mode: CorruptMode,
}

/// How `corrupt_wal` damages a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CorruptMode {
    /// Flip bytes inside one WAL record: the object still decompresses, the record fails its
    /// CRC, and replay stops there.
    Crc,
    /// Damage the compressed stream itself: `barman-cloud-wal-restore` cannot decompress it,
    /// so recovery ends before that segment. Needs a compressed archive.
    Undecompressable,
}

impl CorruptMode {
    pub fn label(self) -> &'static str {
        match self {
            CorruptMode::Crc => "CRC",
            CorruptMode::Undecompressable => "undecompressable",
        }
    }
}

/// `delete_backup`: which base backup and which part of it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBackup {
    /// A `base_backup` step id.
    pub step: String,
    pub part: BackupPart,
}

/// The part of a base backup `delete_backup` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupPart {
    /// The `data.tar*` objects: barman still lists the backup, its restore fails.
    Data,
    /// `backup.info`: barman no longer lists the backup; recovery falls back to an older one.
    Info,
}

impl BackupPart {
    pub fn label(self) -> &'static str {
        match self {
            BackupPart::Data => "data",
            BackupPart::Info => "info",
        }
    }
}

/// `delete_history`: the timeline whose `.history` file is deleted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteHistory {
    /// 2 or more (timeline 1 has no history file).
    pub timeline: u32,
}

// The selector as the file writes it: validation checks it and locates its problems in the
// file, `selector()` then gives the `WalSelector` the plan and the runner use. Serde's messages
// and the JSON Schema (which takes the doc line below) call it `WalSelector`, as they always did.
/// Which WAL segment a fault acts on. Exactly one field is set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "WalSelector")]
pub struct WalSelectorSpec {
    /// A segment file name, e.g. `000000010000000000000009`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// The segment holding the commit record of this write step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding_step: Option<String>,
    /// The newest N segments in the archive (`delete_wal` after a `crash` only: tail loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
}

impl WalSelectorSpec {
    /// The selector, if exactly one key is set (and a segment name is one).
    pub fn selector(&self) -> Option<WalSelector> {
        match (&self.segment, &self.holding_step, self.last) {
            (None, None, Some(n)) => Some(WalSelector::Last(n)),
            _ => self.one().map(WalSelector::One),
        }
    }

    /// The one segment, if exactly one of `segment` (a valid segment name) and `holding_step`
    /// is set (and not `last`).
    pub fn one(&self) -> Option<OneSegment> {
        match (&self.segment, &self.holding_step, self.last) {
            (Some(s), None, None) => SegmentName::parse(s).map(OneSegment::Segment),
            (None, Some(h), None) => Some(OneSegment::HoldingStep(h.clone())),
            _ => None,
        }
    }
}

/// Which WAL segments a fault acts on. Serialised as the scenario file writes it: `{ last: 2 }`,
/// `{ segment: … }`, `{ holding_step: … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalSelector {
    /// The newest N segments in the archive (`delete_wal` after a `crash` only: tail loss).
    Last(u32),
    #[serde(untagged)]
    One(OneSegment),
}

/// One WAL segment, by name or by the write whose commit record it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OneSegment {
    /// A segment, e.g. `000000010000000000000009`.
    Segment(SegmentName),
    /// The segment holding the commit record of this write step.
    HoldingStep(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// Where recovery stops. Default: `latest`.
    #[serde(default)]
    pub target: Target,
    /// Stop just before the target instead of just after it (CNPG's `exclusive`).
    #[serde(default)]
    pub exclusive: bool,
    /// PostgreSQL major of the recovered cluster. Default: the source's.
    #[serde(default)]
    pub postgres: Option<u32>,
    /// serverName the recovered cluster archives to. Default: `<source>-restored`.
    /// Naming the source's own serverName reproduces "Expected empty archive".
    #[serde(default)]
    pub server_name: Option<String>,
    /// Base backup to restore: a `base_backup` step id. Default: the newest one that ends
    /// before the target, as CNPG picks it. With `target: random`: every target is recovered
    /// from it, and targets are picked only after it ends.
    #[serde(default)]
    pub backup: Option<String>,
    /// With `target: random`: how many targets to pick (1 to 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// With `target: random`: run the recoveries at the same time, each into its own instance
    /// (local backend). Default: one after the other, each released once verified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parallel: bool,
    /// The object store answers recovery's own reads with an error for a while, armed when
    /// recovery starts (local backend's embedded endpoint): `barman-cloud-restore` and
    /// `restore_command` retry, fail, or end recovery early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store_errors: Option<RecoveryErrorWindow>,
    /// Kill the recovering server in the middle of WAL replay and start it again on the same
    /// data directory (local backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<ReplayRestart>,
    /// WAL segments recovery fetches in parallel (1 to 32), CNPG's `wal.maxParallel` on the
    /// store it recovers from: asked for a segment, fetch it and the next N-1 at once into a
    /// spool and serve later requests from there. Default: one segment per `restore_command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_max_parallel: Option<u32>,
    /// `physical` (default: barman-cloud restore and WAL replay) or `logical` (a fresh
    /// instance, a `logical_backup` restored into it; `backup:` names that step, default the
    /// newest). `command:` implies `logical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<RecoveryMethod>,
    /// Your own restore script, path relative to the scenario file: run against a fresh
    /// target instance with seed 004's environment contract (`RESTORE_MODE`,
    /// `STORAGE_PROVIDER`, `BACKUP_FILE_PATH`, `DB_*`...), then the target is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// With `command`: variables added to (or overriding) the script's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// With `command`: the script's deadline. Default: `timeouts.recovery_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// How the recovered cluster is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryMethod {
    /// A base backup restored and WAL replayed (barman-cloud, CNPG's `bootstrap.recovery`).
    #[default]
    Physical,
    /// A `logical_backup` restored into a fresh instance.
    Logical,
}

impl Recovery {
    /// Whether recovery restores a logical backup (`method: logical` or a `command`).
    pub fn is_logical(&self) -> bool {
        self.method == Some(RecoveryMethod::Logical) || self.command.is_some()
    }
}

/// An error window over recovery's reads of the archive, armed when recovery starts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryErrorWindow {
    /// What the store answers.
    pub error: StoreError,
    /// How long the window lasts, from the start of recovery.
    pub seconds: u64,
    /// Which reads fail. Default: reads of WAL (`restore_command`).
    #[serde(default)]
    pub requests: RecoveryReads,
    /// Spare the WAL before this segment: only reads of this segment and later ones fail, so
    /// replay reaches consistency first. A `segment:` name or a `holding_step:` write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<WalSelectorSpec>,
    /// Fail at most this many requests, then answer again although the window is still open:
    /// a blip the tools' retries can ride out, whatever their backoff. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
}

/// Which of recovery's reads an error window affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryReads {
    /// Reads of archived WAL (`barman-cloud-wal-restore` as `restore_command`).
    #[default]
    WalGets,
    /// Reads of the base backup (`barman-cloud-restore`).
    BackupGets,
    /// Every request.
    All,
}

impl RecoveryReads {
    pub fn label(self) -> &'static str {
        match self {
            RecoveryReads::WalGets => "every read of archived WAL",
            RecoveryReads::BackupGets => "every read of the base backup",
            RecoveryReads::All => "every request",
        }
    }
}

/// `recovery.restart`: when the recovering server is killed, and how.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRestart {
    /// A write step: the kill comes once `pg_last_wal_replay_lsn()` on the recovering server
    /// has passed its commit (reads of later WAL are held by the object store until then).
    pub after_step: String,
    /// How the recovering postmaster dies. Default: `sigkill`.
    #[serde(default = "default_restart_mode")]
    pub mode: CrashMode,
}

fn default_restart_mode() -> CrashMode {
    CrashMode::Sigkill
}

impl Default for Recovery {
    fn default() -> Self {
        Self {
            target: Target::Latest,
            exclusive: false,
            postgres: None,
            server_name: None,
            backup: None,
            count: None,
            parallel: false,
            object_store_errors: None,
            restart: None,
            wal_max_parallel: None,
            method: None,
            command: None,
            env: BTreeMap::new(),
            timeout_seconds: None,
        }
    }
}

/// Recovery target. `latest` and `immediate` are plain words; the others are one-key maps.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Replay every archived WAL segment.
    #[default]
    Latest,
    /// Stop as soon as the base backup is consistent.
    Immediate,
    /// `recovery_target_time`.
    Time(TimeTarget),
    /// `recovery_target_lsn`.
    Lsn(LsnTarget),
    /// `recovery_target_xid`.
    Xid(XidTarget),
    /// `recovery_target_name`: a restore point created by a `restore_point` step.
    Name(String),
    /// The exact LSN pgdrill recorded right after this step's commit.
    AfterStep(String),
    /// `recovery.count` targets (times, LSNs and xids) picked with the scenario's `seed` from
    /// the ledger's recoverable range, each recovered into its own instance and verified.
    Random,
}

/// Exactly one field is set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeTarget {
    /// A literal timestamp with time zone (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// The server-side commit time of this write step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_step: Option<String>,
    /// Halfway between the server-side commit times of two write steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<[String; 2]>,
}

/// Exactly one field is set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LsnTarget {
    /// A literal LSN such as `0/3000060`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The LSN recorded right after this write step's commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_step: Option<String>,
}

/// Exactly one field is set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XidTarget {
    /// A literal transaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// The transaction id of this write step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_step: Option<String>,
}

/// The outcome the drill must observe. One-key map: `recovered:` or `failed:`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Recovered(ExpectRecovered),
    Failed(ExpectFailed),
}

impl Expect {
    /// The audit expectation, whichever outcome is expected.
    pub fn audit(&self) -> Option<&ExpectAudit> {
        match self {
            Expect::Recovered(r) => r.audit.as_ref(),
            Expect::Failed(f) => f.audit.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectRecovered {
    /// Exact row count per table after recovery. Omitted: as the ledger says for the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<BTreeMap<String, u64>>,
    /// Rows the ledger says should be there for the target but are expected to be missing.
    #[serde(default)]
    pub data_loss: DataLoss,
    /// Maximum recovery time objective in seconds; exceeding it fails the drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_budget_seconds: Option<f64>,
    /// Maximum recovery point objective in seconds: commit-time distance between the last
    /// write expected at the target and the last write present; exceeding it fails the drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_budget_seconds: Option<f64>,
    /// What the archive audit run just before recovery must find.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<ExpectAudit>,
    /// The `base_backup` step whose backup recovery must restore, as chosen from the archive's
    /// catalogue (e.g. the previous one, when the newest was interrupted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// What `pg_amcheck` must find on the recovered instance (`verify.amcheck`). Omitted: no
    /// finding at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amcheck: Option<ExpectAmcheck>,
}

/// `expect.recovered.amcheck`: the relations `pg_amcheck` must report corrupt, and no others.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectAmcheck {
    /// Table or index names (`orders_sort_key`, `public.orders_sort_key`), each of which must
    /// have at least one finding. `[]`: a clean instance.
    pub findings: Vec<String>,
}

/// Findings the pre-recovery archive audit must report, exactly.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectAudit {
    /// The WAL segments the audit must report missing on recovery's path, and no others.
    /// `[]` asserts a clean archive.
    pub gaps: Vec<WalSelectorSpec>,
    /// The `base_backup` steps whose backups the audit must flag as not usable (interrupted,
    /// FAILED, incomplete), and no others. Omitted: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable_backups: Option<Vec<String>>,
}

/// `none`, or `{ rows: N, steps: [ids] }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataLoss {
    /// Number of ledger rows missing after recovery.
    #[serde(default)]
    pub rows: u64,
    /// The write steps whose rows are missing, if the drill wants to pin them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for DataLoss {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Repr {
            #[serde(default)]
            rows: u64,
            #[serde(default)]
            steps: Option<Vec<String>>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DataLoss;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`none` or a map with `rows` and optional `steps`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DataLoss, E> {
                if s == "none" {
                    Ok(DataLoss::default())
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(s), &self))
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<DataLoss, A::Error> {
                let r = Repr::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(DataLoss {
                    rows: r.rows,
                    steps: r.steps,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFailed {
    /// Text that must appear in the recovery error (server log FATAL line or tool output).
    pub error_contains: String,
    /// What the archive audit run just before recovery must find.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<ExpectAudit>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Deadline for a WAL segment to show up as archived.
    #[serde(default = "default_archive_timeout")]
    pub archive_seconds: u64,
    /// Deadline for a base backup.
    #[serde(default = "default_backup_timeout")]
    pub backup_seconds: u64,
    /// Deadline from the start of restore to a promoted server answering queries.
    #[serde(default = "default_recovery_timeout")]
    pub recovery_seconds: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            archive_seconds: default_archive_timeout(),
            backup_seconds: default_backup_timeout(),
            recovery_seconds: default_recovery_timeout(),
        }
    }
}

fn default_archive_timeout() -> u64 {
    60
}
fn default_backup_timeout() -> u64 {
    300
}
fn default_recovery_timeout() -> u64 {
    300
}
