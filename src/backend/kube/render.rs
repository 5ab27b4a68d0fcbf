//! Scenario → the Kubernetes objects a kube drill applies, in order. Pure: no API calls, no clock.
//!
//! The drill builds every object it applies with these functions, so `pgdrill render` shows
//! exactly what a run would send. Values only known during a run (a Backup's barman id, a commit
//! time from the ledger) are shown as placeholders and listed in an annotation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{EnvVar, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use crate::backend::azure::AzureTarget;
use crate::backend::{RecoveryRequest, SourceSpec};
use crate::ledger::ResolvedTarget;
use crate::plan::{self, PlanStep};
use crate::scenario::{AzureCredentials as AzureFlavour, Compression, Scenario, Target};

use super::resources::*;

/// Which CloudNativePG backup integration the clusters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// `spec.backup.barmanObjectStore` (in-tree, deprecated since CNPG 1.26, what the seeds use).
    #[default]
    InTree,
    /// The barman-cloud plugin: an `ObjectStore` resource and `spec.plugins`.
    Plugin,
}

impl Flavour {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::InTree => "in-tree",
            Flavour::Plugin => "plugin",
        }
    }
}

/// Where and how a kube drill's objects are created.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub run_id: String,
    pub flavour: Flavour,
    pub bucket: String,
    /// The run's prefix inside the bucket, e.g. `pgdrill/<run-id>`.
    pub bucket_prefix: String,
    /// The S3 endpoint as the pods see it (in-cluster service URL).
    pub cluster_s3_endpoint: String,
    /// Image for a PostgreSQL major, `{major}` is replaced.
    pub image_template: String,
    pub storage_size: String,
    /// Azure Blob Storage as the pods reach it, for `object_store: azure` drills; `None`
    /// renders a preview against `https://pgdrill.blob.core.windows.net` and the bucket.
    pub azure: Option<ClusterAzure>,
}

/// The blob service URL (`https://ACCOUNT.blob.core.windows.net`, or an emulator's
/// `http://HOST:PORT/ACCOUNT`) and the container, as the pods reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAzure {
    pub endpoint: String,
    pub container: String,
}

impl ClusterAzure {
    /// Whether the endpoint is an emulator: barman-cloud accepts only a connection string
    /// there, so every credential flavour is rendered as one.
    pub fn is_emulator(&self) -> bool {
        !self
            .endpoint
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or(""))
            .unwrap_or("")
            .ends_with(".blob.core.windows.net")
    }
}

/// One object to apply, with the plan step it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Plan step that applies it (`setup`, `start-source`, a base backup step id, `recover`).
    pub step: String,
    pub kind: String,
    pub name: String,
    pub object: Value,
}

impl Manifest {
    pub(crate) fn new<T: Serialize>(step: &str, kind: &str, name: &str, object: &T) -> Self {
        Self {
            step: step.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            object: serde_json::to_value(object).expect("typed objects serialize"),
        }
    }

    /// File name for position `index` in the apply order, e.g. `04-cluster-source.yaml`.
    pub fn file_name(&self, index: usize) -> String {
        format!(
            "{:02}-{}-{}.yaml",
            index + 1,
            self.kind.to_lowercase(),
            self.name
        )
    }
}

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const RUN_ID_LABEL: &str = "pgdrill.io/run-id";
pub const SCENARIO_LABEL: &str = "pgdrill.io/scenario";
pub const PLACEHOLDERS_ANNOTATION: &str = "pgdrill.io/resolved-at-run-time";
pub const S3_SECRET: &str = "pgdrill-s3";
/// The Secret `azureCredentials` refer to, for `object_store: azure` drills.
pub const AZURE_SECRET: &str = "pgdrill-azure";
/// The storage account an Azure drill's destination names in a preview (`pgdrill render`
/// without an Azure endpoint).
pub const AZURE_ACCOUNT: &str = "pgdrill";
pub const OBJECT_STORE: &str = "pgdrill-archive";
pub const SOURCE_CLUSTER: &str = "source";
pub const RECOVERED_CLUSTER: &str = "recovered";
pub const PLUGIN_NAME: &str = "barman-cloud.cloudnative-pg.io";
/// The `externalClusters` entry the recovery reads from.
pub const ORIGIN: &str = "origin";
/// Plugin flavour, with `recovery.wal_max_parallel`: the ObjectStore the recovery reads, the
/// same archive as [`OBJECT_STORE`] with `wal.maxParallel`, so the source's archiving keeps
/// its own settings.
pub const ORIGIN_OBJECT_STORE: &str = "pgdrill-origin";

/// The namespace of one scenario in one run: `pgdrill-<scenario>-<run suffix>`, a DNS label.
pub fn namespace_name(run_id: &str, scenario: &str) -> String {
    let suffix: String = run_id
        .rsplit('-')
        .next()
        .unwrap_or(run_id)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let mut base = dns_label(scenario);
    let room = 63 - "pgdrill-".len() - 1 - suffix.len();
    base.truncate(room);
    let base = base.trim_end_matches('-');
    format!("pgdrill-{base}-{suffix}")
}

/// A Kubernetes name from a step or scenario id (`_` is not allowed in DNS labels).
pub fn dns_label(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(63);
    out.trim_matches('-').to_string()
}

/// The Backup resource name of a base backup step.
pub fn backup_name(step_id: &str) -> String {
    let mut n = format!("pgdrill-{}", dns_label(step_id));
    n.truncate(63);
    n
}

/// Labels every object of a drill carries (the sweep of crashed runs selects on them).
pub fn labels(run_id: &str, scenario: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), "pgdrill".to_string()),
        (RUN_ID_LABEL.to_string(), label_value(run_id)),
        (SCENARIO_LABEL.to_string(), label_value(scenario)),
    ])
}

/// A label value from free text (at most 63 characters, alphanumeric at both ends).
pub(crate) fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    v.truncate(63);
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The storage of a drill's clusters: `configured`, unless the drill's bulk data needs more:
/// three times its payload (rows take about 1.3 times their payload on disk, and the WAL of
/// writing them stays until a checkpoint) plus 1 GiB, in whole GiB. A size that is not a
/// plain Kubernetes quantity is the user's and kept as it is.
pub fn storage_size(configured: &str, bulk_bytes: u64) -> String {
    if bulk_bytes == 0 {
        return configured.to_string();
    }
    let need_gib = bulk_bytes.saturating_mul(3).div_ceil(1 << 30) + 1;
    match quantity_bytes(configured) {
        Some(have) if have < need_gib << 30 => format!("{need_gib}Gi"),
        _ => configured.to_string(),
    }
}

/// Bytes of a Kubernetes quantity such as `1Gi`, `500Mi`, `2G` or `1073741824`.
fn quantity_bytes(q: &str) -> Option<u64> {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Everything the object builders need about one drill.
#[derive(Debug, Clone)]
pub struct DrillContext {
    pub settings: RenderSettings,
    pub scenario: String,
    pub namespace: String,
    /// `object_store: azure`: the credential flavour `azureCredentials` carries.
    pub azure: Option<AzureFlavour>,
}

impl DrillContext {
    pub fn new(settings: &RenderSettings, scenario: &str) -> Self {
        Self {
            settings: settings.clone(),
            scenario: scenario.to_string(),
            namespace: namespace_name(&settings.run_id, scenario),
            azure: None,
        }
    }

    /// The context of `scenario`'s drill, its clusters' storage raised for its bulk data.
    pub fn for_scenario(settings: &RenderSettings, scenario: &Scenario) -> Self {
        let mut ctx = Self::new(settings, &scenario.name);
        ctx.settings.storage_size =
            storage_size(&settings.storage_size, scenario.bulk_payload_bytes());
        ctx.azure = scenario.object_store.is_azure().then(|| {
            match &settings.azure {
                // barman-cloud reaches an emulator with a connection string only.
                Some(a) if a.is_emulator() => AzureFlavour::ConnectionString,
                _ => scenario.object_store.azure_credentials(),
            }
        });
        ctx
    }

    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(&self.settings.run_id, &self.scenario)),
            ..Default::default()
        }
    }

    /// `s3://bucket/prefix/<scenario>`: the folder holding every serverName of this drill.
    pub fn destination_path(&self) -> String {
        if self.azure.is_some() {
            // Azure's form: https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH, or the
            // emulator's http://HOST:PORT/ACCOUNT/CONTAINER/PATH; in a preview the bucket
            // setting names the container.
            let (endpoint, container) = match &self.settings.azure {
                Some(a) => (a.endpoint.clone(), a.container.as_str()),
                None => (
                    format!("https://{AZURE_ACCOUNT}.blob.core.windows.net"),
                    self.settings.bucket.as_str(),
                ),
            };
            return format!(
                "{}/{container}/{}/{}",
                endpoint.trim_end_matches('/'),
                self.settings.bucket_prefix,
                self.scenario
            );
        }
        format!(
            "s3://{}/{}/{}",
            self.settings.bucket, self.settings.bucket_prefix, self.scenario
        )
    }

    pub fn image(&self, major: u32) -> String {
        self.settings
            .image_template
            .replace("{major}", &major.to_string())
    }

    pub fn namespace(&self) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                labels: Some(labels(&self.settings.run_id, &self.scenario)),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The S3 credentials secret (keys as in the seeds' runbooks).
    pub fn s3_secret(&self, access_key: &str, secret_key: &str) -> Secret {
        s3_secret(self.meta(S3_SECRET), access_key, secret_key)
    }

    /// The Azure credentials Secret (`object_store: azure`): the keys its flavour needs.
    pub fn azure_secret(&self, flavour: AzureFlavour, values: &AzureSecretValues) -> Secret {
        let data = azure_secret_keys(flavour)
            .into_iter()
            .map(|k| {
                let v = match k {
                    "AZURE_CONNECTION_STRING" => &values.connection_string,
                    "AZURE_STORAGE_ACCOUNT" => &values.account,
                    "AZURE_STORAGE_KEY" => &values.key,
                    _ => &values.sas_token,
                };
                (k.to_string(), v.clone())
            })
            .collect();
        Secret {
            metadata: self.meta(AZURE_SECRET),
            string_data: Some(data),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    fn store(&self, server_name: Option<&str>, compression: Compression) -> BarmanObjectStore {
        let mut store = barman_store(
            &self.destination_path(),
            &self.settings.cluster_s3_endpoint,
            server_name,
            Some(compression),
        );
        if let Some(flavour) = self.azure {
            store.endpoint_url = None;
            store.s3_credentials = None;
            store.azure_credentials = Some(azure_credentials(flavour));
        }
        store
    }

    /// The plugin flavour's ObjectStore (serverName goes on each Cluster's plugin parameters),
    /// with the source's base backup jobs.
    pub fn object_store(&self, spec: &SourceSpec) -> ObjectStore {
        let mut configuration = self.store(None, spec.compression);
        set_backup_jobs(&mut configuration, spec.backup_jobs);
        self.object_store_named(OBJECT_STORE, configuration)
    }

    /// Plugin flavour: the ObjectStore [`ORIGIN_OBJECT_STORE`] the recovery reads, when the
    /// recovery fetches WAL in parallel; `None` otherwise (it reads [`OBJECT_STORE`]).
    pub fn origin_object_store(&self, r: &RecoveryManifest) -> Option<ObjectStore> {
        let n = r.wal_max_parallel?;
        if self.settings.flavour != Flavour::Plugin {
            return None;
        }
        let mut configuration = self.store(None, r.compression);
        set_wal_max_parallel(&mut configuration, Some(n));
        Some(self.object_store_named(ORIGIN_OBJECT_STORE, configuration))
    }

    fn object_store_named(&self, name: &str, configuration: BarmanObjectStore) -> ObjectStore {
        ObjectStore {
            metadata: self.meta(name),
            spec: ObjectStoreSpec {
                configuration,
                instance_sidecar_configuration: Some(InstanceSidecarConfiguration {
                    env: checksum_env(),
                }),
            },
        }
    }

    fn cluster(
        &self,
        name: &str,
        major: u32,
        server_name: &str,
        compression: Compression,
        bootstrap: Bootstrap,
    ) -> (ClusterSpec, ObjectMeta) {
        let mut spec = ClusterSpec {
            instances: 1,
            image_name: Some(self.image(major)),
            enable_superuser_access: Some(true),
            storage: StorageConfiguration {
                size: self.settings.storage_size.clone(),
            },
            postgresql: Some(PostgresConfiguration {
                // The ledger reads server-side commit times with pg_xact_commit_timestamp.
                parameters: BTreeMap::from([(
                    "track_commit_timestamp".to_string(),
                    "on".to_string(),
                )]),
            }),
            bootstrap: Some(bootstrap),
            ..Default::default()
        };
        match self.settings.flavour {
            Flavour::InTree => {
                spec.env = checksum_env();
                spec.backup = Some(BackupConfiguration {
                    barman_object_store: Some(self.store(Some(server_name), compression)),
                });
            }
            Flavour::Plugin => {
                spec.plugins = vec![PluginConfiguration {
                    name: PLUGIN_NAME.into(),
                    enabled: None,
                    is_wal_archiver: Some(true),
                    parameters: plugin_parameters(server_name),
                }];
            }
        }
        (spec, self.meta(name))
    }

    /// The source cluster, bootstrapped empty and archiving to `spec.server_name`.
    pub fn source_cluster(&self, spec: &SourceSpec) -> Cluster {
        let (mut s, meta) = self.cluster(
            SOURCE_CLUSTER,
            spec.major,
            &spec.server_name,
            spec.compression,
            Bootstrap {
                initdb: Some(BootstrapInitDb {
                    database: "app".into(),
                    owner: "app".into(),
                }),
                recovery: None,
            },
        );
        if let Some(b) = s
            .backup
            .as_mut()
            .and_then(|b| b.barman_object_store.as_mut())
        {
            set_backup_jobs(b, spec.backup_jobs);
        }
        // CNPG's own default is 5min; pgdrill's local source runs without one unless asked.
        if let (Some(t), Some(pg)) = (spec.archive_timeout_seconds, s.postgresql.as_mut()) {
            pg.parameters
                .insert("archive_timeout".to_string(), format!("{t}s"));
        }
        Cluster {
            metadata: meta,
            spec: s,
            status: None,
        }
    }

    /// An on-demand Backup of the source cluster for base backup step `step_id`.
    pub fn backup(&self, step_id: &str) -> Backup {
        let (method, plugin_configuration) = match self.settings.flavour {
            Flavour::InTree => ("barmanObjectStore", None),
            Flavour::Plugin => (
                "plugin",
                Some(BackupPluginConfiguration {
                    name: PLUGIN_NAME.into(),
                    parameters: BTreeMap::new(),
                }),
            ),
        };
        Backup {
            metadata: self.meta(&backup_name(step_id)),
            spec: BackupSpec {
                cluster: LocalObjectReference {
                    name: SOURCE_CLUSTER.into(),
                },
                method: Some(method.into()),
                plugin_configuration,
            },
            status: None,
        }
    }

    /// The recovery cluster: bootstrap from the source archive, archive to a serverName of its own.
    pub fn recovery_cluster(&self, r: &RecoveryManifest) -> Cluster {
        let (mut spec, mut meta) = self.cluster(
            RECOVERED_CLUSTER,
            r.major,
            &r.server_name,
            r.compression,
            Bootstrap {
                initdb: None,
                recovery: Some(BootstrapRecovery {
                    source: Some(ORIGIN.into()),
                    recovery_target: Some(r.target.clone()),
                    ..Default::default()
                }),
            },
        );
        spec.external_clusters = vec![match self.settings.flavour {
            Flavour::InTree => ExternalCluster {
                name: ORIGIN.into(),
                barman_object_store: Some({
                    let mut s = self.store(Some(&r.source_server_name), r.compression);
                    set_wal_max_parallel(&mut s, r.wal_max_parallel);
                    s
                }),
                plugin: None,
            },
            Flavour::Plugin => ExternalCluster {
                name: ORIGIN.into(),
                barman_object_store: None,
                plugin: Some(PluginConfiguration {
                    name: PLUGIN_NAME.into(),
                    enabled: None,
                    is_wal_archiver: None,
                    parameters: object_store_parameters(
                        if r.wal_max_parallel.is_some() {
                            ORIGIN_OBJECT_STORE
                        } else {
                            OBJECT_STORE
                        },
                        &r.source_server_name,
                    ),
                }),
            },
        }];
        if !r.placeholders.is_empty() {
            meta.annotations = Some(BTreeMap::from([(
                PLACEHOLDERS_ANNOTATION.to_string(),
                r.placeholders.join("; "),
            )]));
        }
        Cluster {
            metadata: meta,
            spec,
            status: None,
        }
    }
}

/// What a recovery Cluster is built from: a run's `RecoveryRequest`, or a preview of one.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryManifest {
    pub major: u32,
    pub source_server_name: String,
    pub server_name: String,
    pub compression: Compression,
    /// `wal.maxParallel` of the store the recovery reads.
    pub wal_max_parallel: Option<u32>,
    pub target: RecoveryTarget,
    /// Fields holding placeholders instead of run-time values (empty during a run).
    pub placeholders: Vec<String>,
}

impl RecoveryManifest {
    /// The manifest of an actual recovery: every value resolved from the ledger.
    pub fn from_request(req: &RecoveryRequest) -> Self {
        Self {
            major: req.major,
            source_server_name: req.source_server_name.clone(),
            server_name: req.server_name.clone(),
            compression: req.compression,
            wal_max_parallel: req.wal_max_parallel,
            target: recovery_target(&req.target, req.exclusive, &req.backup.backup_id),
            placeholders: Vec::new(),
        }
    }
}

/// CNPG's `recoveryTarget` for a resolved target. `backupID` pins the base backup the ledger
/// chose, so CNPG and the verdict agree on where replay starts.
pub fn recovery_target(
    target: &ResolvedTarget,
    exclusive: bool,
    backup_id: &str,
) -> RecoveryTarget {
    let mut t = RecoveryTarget {
        backup_id: Some(backup_id.to_string()),
        ..Default::default()
    };
    match target {
        ResolvedTarget::Latest => {}
        ResolvedTarget::Immediate => t.target_immediate = Some(true),
        ResolvedTarget::Time(at) => t.target_time = Some(crate::ledger::pg_timestamp(at)),
        ResolvedTarget::Lsn(l) => t.target_lsn = Some(l.to_string()),
        ResolvedTarget::Xid(x) => t.target_xid = Some(x.to_string()),
        ResolvedTarget::Name(n) => t.target_name = Some(n.clone()),
    }
    if exclusive {
        t.exclusive = Some(true);
    }
    t
}

/// What an Azure credentials Secret may hold; a flavour uses some of them.
#[derive(Clone)]
pub struct AzureSecretValues {
    pub connection_string: String,
    pub account: String,
    pub key: String,
    pub sas_token: String,
}

impl std::fmt::Debug for AzureSecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AzureSecretValues(account: {}, <redacted>)",
            self.account
        )
    }
}

impl AzureSecretValues {
    /// The values for `target` (the account as the pods reach it): its connection string,
    /// account, key and an account SAS valid for a day from `now`.
    pub fn of(target: &AzureTarget, now: DateTime<Utc>) -> Result<Self, String> {
        Ok(AzureSecretValues {
            connection_string: target.connection_string(),
            account: target.account.clone(),
            key: target.key.clone(),
            sas_token: target.account_sas(now, 24)?,
        })
    }

    /// Placeholders for a preview.
    pub fn placeholders() -> Self {
        AzureSecretValues {
            connection_string: placeholder("AZURE_STORAGE_CONNECTION_STRING at run time"),
            account: placeholder("AZURE_STORAGE_ACCOUNT at run time"),
            key: placeholder("AZURE_STORAGE_KEY at run time"),
            sas_token: placeholder("a SAS token at run time"),
        }
    }
}

/// The Secret keys a flavour's `azureCredentials` refer to.
fn azure_secret_keys(flavour: AzureFlavour) -> Vec<&'static str> {
    match flavour {
        AzureFlavour::ConnectionString => vec!["AZURE_CONNECTION_STRING"],
        AzureFlavour::AccountKey => vec!["AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"],
        AzureFlavour::Sas => vec!["AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_SAS_TOKEN"],
    }
}

/// `azureCredentials` for `flavour`, each a key of [`AZURE_SECRET`].
fn azure_credentials(flavour: AzureFlavour) -> AzureCredentials {
    let r = |key: &str| {
        Some(SecretKeySelector {
            name: AZURE_SECRET.into(),
            key: key.into(),
        })
    };
    match flavour {
        AzureFlavour::ConnectionString => AzureCredentials {
            connection_string: r("AZURE_CONNECTION_STRING"),
            ..Default::default()
        },
        AzureFlavour::AccountKey => AzureCredentials {
            storage_account: r("AZURE_STORAGE_ACCOUNT"),
            storage_key: r("AZURE_STORAGE_KEY"),
            ..Default::default()
        },
        AzureFlavour::Sas => AzureCredentials {
            storage_account: r("AZURE_STORAGE_ACCOUNT"),
            storage_sas_token: r("AZURE_STORAGE_SAS_TOKEN"),
            ..Default::default()
        },
    }
}

/// The S3 credentials secret [`barman_store`] refers to, named and labelled by `metadata`.
pub(crate) fn s3_secret(metadata: ObjectMeta, access_key: &str, secret_key: &str) -> Secret {
    Secret {
        metadata,
        string_data: Some(BTreeMap::from([
            ("ACCESS_KEY_ID".to_string(), access_key.to_string()),
            ("ACCESS_SECRET_KEY".to_string(), secret_key.to_string()),
        ])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// A barman-cloud object store configuration with the credentials of [`S3_SECRET`].
/// `compression: None` leaves out the `wal` and `data` sections: a store that is only read
/// (barman-cloud finds the compression of each object by itself).
pub(crate) fn barman_store(
    destination_path: &str,
    endpoint: &str,
    server_name: Option<&str>,
    compression: Option<Compression>,
) -> BarmanObjectStore {
    let c = compression.and_then(compression_name);
    BarmanObjectStore {
        destination_path: destination_path.to_string(),
        endpoint_url: Some(endpoint.to_string()),
        server_name: server_name.map(str::to_string),
        s3_credentials: Some(S3Credentials {
            access_key_id: SecretKeySelector {
                name: S3_SECRET.into(),
                key: "ACCESS_KEY_ID".into(),
            },
            secret_access_key: SecretKeySelector {
                name: S3_SECRET.into(),
                key: "ACCESS_SECRET_KEY".into(),
            },
            region: None,
        }),
        azure_credentials: None,
        wal: compression.map(|_| WalBackupConfiguration {
            compression: c.clone(),
            max_parallel: None,
        }),
        data: c.map(|c| DataBackupConfiguration {
            compression: Some(c),
            jobs: None,
        }),
    }
}

/// `data.jobs`: parallel upload jobs of a base backup; `None` leaves barman-cloud's default.
fn set_backup_jobs(store: &mut BarmanObjectStore, jobs: Option<u32>) {
    if let Some(j) = jobs {
        store.data.get_or_insert_with(Default::default).jobs = Some(j);
    }
}

/// `wal.maxParallel`: WAL files restored (or archived) in parallel; `None`: one at a time.
fn set_wal_max_parallel(store: &mut BarmanObjectStore, max_parallel: Option<u32>) {
    if let Some(n) = max_parallel {
        store.wal.get_or_insert_with(Default::default).max_parallel = Some(n);
    }
}

fn plugin_parameters(server_name: &str) -> BTreeMap<String, String> {
    object_store_parameters(OBJECT_STORE, server_name)
}

/// The barman-cloud plugin's parameters: which `ObjectStore`, which serverName in it.
pub(crate) fn object_store_parameters(
    object_store: &str,
    server_name: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("barmanObjectName".to_string(), object_store.to_string()),
        ("serverName".to_string(), server_name.to_string()),
    ])
}

/// botocore ≥ 1.36 sends checksum trailers some S3-compatible stores reject (seed 000/002).
pub(crate) fn checksum_env() -> Vec<EnvVar> {
    [
        ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
        ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
    ]
    .into_iter()
    .map(|(name, value)| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    })
    .collect()
}

fn compression_name(c: Compression) -> Option<String> {
    match c {
        Compression::Gzip => Some("gzip".into()),
        Compression::Bzip2 => Some("bzip2".into()),
        Compression::Snappy => Some("snappy".into()),
        Compression::None => None,
    }
}

/// A run-time value shown as a placeholder in a preview.
pub(crate) fn placeholder(what: &str) -> String {
    format!("<{what}>")
}

/// The recovery target as far as it is known before a run.
fn preview_target(target: &Target, exclusive: bool, backup: &str) -> (RecoveryTarget, Vec<String>) {
    let mut placeholders = vec![format!("recoveryTarget.backupID: backupId of {backup}")];
    let mut t = RecoveryTarget {
        backup_id: Some(placeholder(&format!("backupId of {backup}"))),
        ..Default::default()
    };
    match target {
        Target::Latest => {}
        // Never planned as a `Recover` step: random targets have their own steps, which the
        // kube backend refuses (`Backend::supports`).
        Target::Random => {}
        Target::Immediate => t.target_immediate = Some(true),
        Target::Name(n) => t.target_name = Some(n.clone()),
        Target::Time(tt) => {
            if let Some(at) = tt.at {
                t.target_time = Some(crate::ledger::pg_timestamp(&at.with_timezone(&chrono::Utc)));
            } else {
                let what = match (&tt.after_step, &tt.between) {
                    (Some(s), _) => format!("server commit time of step {s}"),
                    (_, Some([a, b])) => format!("midpoint of the commit times of {a} and {b}"),
                    _ => "target time".into(),
                };
                placeholders.push(format!("recoveryTarget.targetTime: {what}"));
                t.target_time = Some(placeholder(&what));
            }
        }
        Target::Lsn(l) => match (&l.at, &l.after_step) {
            (Some(at), _) => t.target_lsn = Some(at.clone()),
            (None, s) => {
                let what = format!("commit LSN of step {}", s.as_deref().unwrap_or("?"));
                placeholders.push(format!("recoveryTarget.targetLSN: {what}"));
                t.target_lsn = Some(placeholder(&what));
            }
        },
        Target::AfterStep(s) => {
            let what = format!("commit LSN of step {s}");
            placeholders.push(format!("recoveryTarget.targetLSN: {what}"));
            t.target_lsn = Some(placeholder(&what));
        }
        Target::Xid(x) => match (x.at, &x.of_step) {
            (Some(at), _) => t.target_xid = Some(at.to_string()),
            (None, s) => {
                let what = format!("xid of step {}", s.as_deref().unwrap_or("?"));
                placeholders.push(format!("recoveryTarget.targetXID: {what}"));
                t.target_xid = Some(placeholder(&what));
            }
        },
    }
    if exclusive {
        t.exclusive = Some(true);
    }
    (t, placeholders)
}

/// Every object a drill of `scenario` applies, in the order it applies them.
pub fn render_scenario(scenario: &Scenario, settings: &RenderSettings) -> Vec<Manifest> {
    let ctx = DrillContext::for_scenario(settings, scenario);
    let mut out = vec![
        Manifest::new("setup", "Namespace", &ctx.namespace, &ctx.namespace()),
        match ctx.azure {
            Some(flavour) => Manifest::new(
                "setup",
                "Secret",
                AZURE_SECRET,
                &ctx.azure_secret(flavour, &AzureSecretValues::placeholders()),
            ),
            None => Manifest::new(
                "setup",
                "Secret",
                S3_SECRET,
                &ctx.s3_secret(
                    &placeholder("AWS_ACCESS_KEY_ID at run time"),
                    &placeholder("AWS_SECRET_ACCESS_KEY at run time"),
                ),
            ),
        },
    ];
    let plan = plan::build(scenario);
    for step in &plan.steps {
        match step {
            PlanStep::StartSource { .. } => {
                let Some(spec) = SourceSpec::of_step(step) else {
                    continue;
                };
                if settings.flavour == Flavour::Plugin {
                    out.push(Manifest::new(
                        "setup",
                        "ObjectStore",
                        OBJECT_STORE,
                        &ctx.object_store(&spec),
                    ));
                }
                out.push(Manifest::new(
                    &step.id(),
                    "Cluster",
                    SOURCE_CLUSTER,
                    &ctx.source_cluster(&spec),
                ));
            }
            PlanStep::BaseBackup { id } => {
                out.push(Manifest::new(
                    id,
                    "Backup",
                    &backup_name(id),
                    &ctx.backup(id),
                ));
            }
            PlanStep::Recover {
                target,
                exclusive,
                major,
                source_server_name,
                server_name,
                backup,
                compression,
                wal_max_parallel,
            } => {
                let which = match backup {
                    Some(b) => format!("Backup {}", backup_name(b)),
                    None => "the newest Backup that ends before the target".to_string(),
                };
                let (t, placeholders) = preview_target(target, *exclusive, &which);
                let r = RecoveryManifest {
                    major: *major,
                    source_server_name: source_server_name.clone(),
                    server_name: server_name.clone(),
                    compression: *compression,
                    wal_max_parallel: *wal_max_parallel,
                    target: t,
                    placeholders,
                };
                if let Some(store) = ctx.origin_object_store(&r) {
                    out.push(Manifest::new(
                        &step.id(),
                        "ObjectStore",
                        ORIGIN_OBJECT_STORE,
                        &store,
                    ));
                }
                out.push(Manifest::new(
                    &step.id(),
                    "Cluster",
                    RECOVERED_CLUSTER,
                    &ctx.recovery_cluster(&r),
                ));
            }
            _ => {}
        }
    }
    out
}

/// YAML for `kubectl apply`: every string scalar double-quoted (JSON escaping is valid YAML),
/// so YAML 1.1 readers never turn `on`, `off`, `yes` or `0755` into booleans or numbers.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    out
}

fn plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        )
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).expect("string"),
        other => other.to_string(),
    }
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                let key = if plain_key(k) {
                    k.clone()
                } else {
                    serde_json::to_string(k).expect("key")
                };
                match val {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(val, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(val, indent, out);
                    }
                    Value::Object(_) => out.push_str(&format!("{pad}{key}: {{}}\n")),
                    Value::Array(_) => out.push_str(&format!("{pad}{key}: []\n")),
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(val))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        // The first line of the item goes after the dash.
                        let inner = inner.trim_start_matches(' ');
                        out.push_str(&format!("{pad}- {inner}"));
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        emit(item, indent + 2, out);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::backend::kube) fn settings(flavour: Flavour) -> RenderSettings {
        RenderSettings {
            run_id: "20261122T024830Z-0a1f".into(),
            flavour,
            bucket: "pgdrill".into(),
            bucket_prefix: "pgdrill/20261122T024830Z-0a1f".into(),
            cluster_s3_endpoint: "http://localstack.pgdrill-system.svc.cluster.local:4566".into(),
            image_template: "ghcr.io/cloudnative-pg/postgresql:{major}-system-bookworm".into(),
            storage_size: "1Gi".into(),
            azure: None,
        }
    }

    fn rendered(file: &str, flavour: Flavour) -> Vec<Manifest> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let loaded = crate::scenario::load_file(&path).expect("shipped scenario loads");
        render_scenario(&loaded.scenario, &settings(flavour))
    }

    fn as_yaml(ms: &[Manifest]) -> String {
        ms.iter()
            .enumerate()
            .map(|(i, m)| {
                format!(
                    "# {} (step {})\n{}",
                    m.file_name(i),
                    m.step,
                    to_yaml(&m.object)
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }

    #[test]
    fn in_tree_manifests_of_the_adr007_scenario() {
        let ms = rendered(
            "scenarios/03-adr007-missing-wal-segment.yaml",
            Flavour::InTree,
        );
        insta::assert_snapshot!(as_yaml(&ms));
    }

    #[test]
    fn plugin_manifests_of_the_exclusive_xid_scenario() {
        let ms = rendered("scenarios/07-pitr-xid-exclusive.yaml", Flavour::Plugin);
        insta::assert_snapshot!(as_yaml(&ms));
    }

    #[test]
    fn in_tree_manifests_of_the_azure_adr007_scenario_with_a_sas_token() {
        let ms = rendered(
            "scenarios/32-azure-adr007-missing-wal-segment.yaml",
            Flavour::InTree,
        );
        insta::assert_snapshot!(as_yaml(&ms));
    }

    #[test]
    fn plugin_manifests_of_the_azure_scenario_with_account_and_key() {
        let ms = rendered("scenarios/33-azure-wrong-server-name.yaml", Flavour::Plugin);
        insta::assert_snapshot!(as_yaml(&ms));
    }

    #[test]
    fn azure_flavours_render_their_own_credentials_and_no_s3_settings() {
        for (file, keys) in [
            (
                "scenarios/31-azure-clean-restore.yaml",
                vec!["connectionString"],
            ),
            (
                "scenarios/32-azure-adr007-missing-wal-segment.yaml",
                vec!["storageAccount", "storageSasToken"],
            ),
            (
                "scenarios/33-azure-wrong-server-name.yaml",
                vec!["storageAccount", "storageKey"],
            ),
        ] {
            for flavour in [Flavour::InTree, Flavour::Plugin] {
                let ms = rendered(file, flavour);
                let text = as_yaml(&ms);
                assert!(
                    !text.contains("s3Credentials") && !text.contains("endpointURL"),
                    "{file}"
                );
                assert!(
                    !text.contains("pgdrill-s3") && text.contains("name: \"pgdrill-azure\""),
                    "{file}"
                );
                assert!(
                    text.contains(
                        "destinationPath: \"https://pgdrill.blob.core.windows.net/pgdrill/"
                    ),
                    "{file}"
                );
                let secret = ms.iter().find(|m| m.kind == "Secret").expect("secret");
                let data = secret.object["stringData"].as_object().expect("stringData");
                assert_eq!(data.len(), keys.len(), "{file}: {data:?}");
                for m in ms
                    .iter()
                    .filter(|m| m.kind == "Cluster" || m.kind == "ObjectStore")
                {
                    let found = find_azure_credentials(&m.object);
                    for creds in &found {
                        let mut got: Vec<&str> = creds
                            .as_object()
                            .unwrap()
                            .keys()
                            .map(String::as_str)
                            .collect();
                        got.sort();
                        let mut want = keys.clone();
                        want.sort();
                        assert_eq!(got, want, "{file} {}", m.name);
                    }
                }
            }
        }
    }

    #[test]
    fn on_an_emulator_every_flavour_becomes_a_connection_string_to_its_endpoint() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/33-azure-wrong-server-name.yaml");
        let scenario = crate::scenario::load_file(&path).unwrap().scenario;
        let mut s = settings(Flavour::InTree);
        s.azure = Some(ClusterAzure {
            endpoint: "http://10.244.0.1:10000/devstoreaccount1".into(),
            container: "drills".into(),
        });
        let ms = render_scenario(&scenario, &s);
        let text = as_yaml(&ms);
        assert!(
            text.contains(
                "destinationPath: \"http://10.244.0.1:10000/devstoreaccount1/drills/pgdrill/"
            ),
            "{text}"
        );
        for m in ms.iter().filter(|m| m.kind == "Cluster") {
            for creds in find_azure_credentials(&m.object) {
                let keys: Vec<&String> = creds.as_object().unwrap().keys().collect();
                assert_eq!(keys, ["connectionString"], "{}", m.name);
            }
        }
        // On Azure's own domain the scenario's flavour stays.
        s.azure = Some(ClusterAzure {
            endpoint: "https://acct.blob.core.windows.net".into(),
            container: "drills".into(),
        });
        let ctx = DrillContext::for_scenario(&s, &scenario);
        assert_eq!(ctx.azure, Some(AzureFlavour::AccountKey));
        assert!(
            ctx.destination_path()
                .starts_with("https://acct.blob.core.windows.net/drills/pgdrill/")
        );
        // The Secret's values for an account: its connection string and a day's SAS.
        let t = AzureTarget::azurite("http://10.244.0.1:10000", "drills");
        let v = AzureSecretValues::of(&t, Utc::now()).unwrap();
        assert!(
            v.connection_string
                .contains("BlobEndpoint=http://10.244.0.1:10000/devstoreaccount1;")
        );
        assert!(v.sas_token.contains("sig="));
        assert!(!format!("{v:?}").contains(&t.key[..10]));
    }

    fn find_azure_credentials(v: &Value) -> Vec<Value> {
        match v {
            Value::Object(o) => o
                .iter()
                .flat_map(|(k, v)| {
                    if k == "azureCredentials" {
                        vec![v.clone()]
                    } else {
                        find_azure_credentials(v)
                    }
                })
                .collect(),
            Value::Array(a) => a.iter().flat_map(find_azure_credentials).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn in_tree_manifests_with_parallel_backup_and_wal_fetch() {
        let ms = rendered("tests/scenarios/parallel-knobs.yaml", Flavour::InTree);
        insta::assert_snapshot!(as_yaml(&ms));
    }

    #[test]
    fn plugin_manifests_with_parallel_backup_and_wal_fetch() {
        let ms = rendered("tests/scenarios/parallel-knobs.yaml", Flavour::Plugin);
        insta::assert_snapshot!(as_yaml(&ms));
    }

    #[test]
    fn apply_order_is_setup_source_backups_recovery() {
        let ms = rendered("scenarios/09-immediate-second-backup.yaml", Flavour::Plugin);
        let kinds: Vec<&str> = ms.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "Secret",
                "ObjectStore",
                "Cluster",
                "Backup",
                "Backup",
                "Cluster"
            ]
        );
        let ns = &ms[0].name;
        for m in &ms[1..] {
            assert_eq!(
                m.object["metadata"]["namespace"].as_str(),
                Some(ns.as_str())
            );
        }
    }

    #[test]
    fn secrets_never_render_real_credentials() {
        let ms = rendered("scenarios/01-clean-restore-latest.yaml", Flavour::InTree);
        let secret = ms.iter().find(|m| m.kind == "Secret").expect("secret");
        let data = &secret.object["stringData"];
        assert!(data["ACCESS_KEY_ID"].as_str().unwrap().starts_with('<'));
        assert!(data["ACCESS_SECRET_KEY"].as_str().unwrap().starts_with('<'));
    }

    #[test]
    fn yaml_output_reads_back_as_the_same_json() {
        for file in [
            "scenarios/07-pitr-xid-exclusive.yaml",
            "scenarios/02-pitr-time-between-writes.yaml",
        ] {
            for f in [Flavour::InTree, Flavour::Plugin] {
                for m in rendered(file, f) {
                    let text = to_yaml(&m.object);
                    let back: Value = yaml_serde::from_str(&text).expect("valid yaml");
                    assert_eq!(back, m.object, "{text}");
                }
            }
        }
        // YAML 1.1 readers (kubectl) would read a bare `on` as a boolean.
        let v = serde_json::json!({"parameters": {"track_commit_timestamp": "on"}, "on": ["x"]});
        assert_eq!(
            to_yaml(&v),
            "\"on\":\n- \"x\"\nparameters:\n  track_commit_timestamp: \"on\"\n"
        );
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        let n = namespace_name("20261122T024830Z-0a1f", "adr007-missing-wal-segment");
        assert_eq!(n, "pgdrill-adr007-missing-wal-segment-0a1f");
        let long = "x".repeat(80);
        let n = namespace_name("20261122T024830Z-0a1f", &long);
        assert!(n.len() <= 63, "{n}");
        assert!(n.ends_with("-0a1f"));
    }

    #[test]
    fn step_ids_become_dns_labels() {
        assert_eq!(backup_name("base_1"), "pgdrill-base-1");
        assert_eq!(dns_label("__A_b__"), "a-b");
    }

    #[test]
    fn resolved_targets_map_to_cnpg_fields() {
        let t = recovery_target(&ResolvedTarget::Xid(727), true, "20261122T024830");
        assert_eq!(t.target_xid.as_deref(), Some("727"));
        assert_eq!(t.exclusive, Some(true));
        assert_eq!(t.backup_id.as_deref(), Some("20261122T024830"));
        let t = recovery_target(&ResolvedTarget::Latest, false, "b");
        assert_eq!(
            (
                t.target_time,
                t.target_lsn,
                t.target_xid,
                t.target_name,
                t.target_immediate,
                t.exclusive
            ),
            (None, None, None, None, None, None)
        );
        let t = recovery_target(&ResolvedTarget::Immediate, false, "b");
        assert_eq!(t.target_immediate, Some(true));
    }

    #[test]
    fn bulk_drills_get_storage_for_their_data() {
        assert_eq!(storage_size("1Gi", 0), "1Gi");
        // 384 MiB of bulk data: three times 0.375 GiB rounded up to 2 GiB, plus 1.
        assert_eq!(storage_size("1Gi", 384 << 20), "3Gi");
        assert_eq!(storage_size("1Gi", 3 << 30), "10Gi");
        assert_eq!(storage_size("50Gi", 3 << 30), "50Gi");
        assert_eq!(storage_size("20G", 8 << 30), "25Gi");
        assert_eq!(storage_size("custom", 8 << 30), "custom");
        let s = crate::scenario::load_str(
            std::path::Path::new("s.yaml"),
            "name: s\npostgres: 15\nseed_data:\n  tables: [{ name: b, size: 2GiB }]\n\
             steps:\n  - base_backup: { id: b1 }\n  - write: { id: w1, table: b, size: 1GiB }\n\
             expect: { recovered: {} }\n",
        )
        .unwrap()
        .scenario;
        assert_eq!(s.bulk_payload_bytes(), 3 << 30);
        let ctx = DrillContext::for_scenario(&settings(Flavour::InTree), &s);
        assert_eq!(ctx.settings.storage_size, "10Gi");
    }
}
