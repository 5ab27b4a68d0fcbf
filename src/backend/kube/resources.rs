//! Typed CloudNativePG and barman-cloud plugin resources, as far as pgdrill uses them.
//!
//! Specs carry only the fields pgdrill sets; statuses carry only the fields it reads (serde
//! ignores the rest). These are data definitions: this module never talks to an API server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// `postgresql.cnpg.io/v1` Cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub instances: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// Lets pgdrill read the generated `<cluster>-superuser` secret and connect as `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_superuser_access: Option<bool>,
    /// Environment of the instance pods (in-tree barman-cloud runs there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    pub storage: StorageConfiguration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgresConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupConfiguration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_clusters: Vec<ExternalCluster>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfiguration>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfiguration {
    pub size: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostgresConfiguration {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initdb: Option<BootstrapInitDb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<BootstrapRecovery>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapInitDb {
    pub database: String,
    pub owner: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapRecovery {
    /// Name of the `externalClusters` entry holding the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A `Backup` resource in the same namespace (alternative to `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_target: Option<RecoveryTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// CNPG's `recoveryTarget`: at most one of the target fields is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RecoveryTarget {
    #[serde(rename = "backupID", default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    #[serde(
        rename = "targetTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_time: Option<String>,
    #[serde(rename = "targetLSN", default, skip_serializing_if = "Option::is_none")]
    pub target_lsn: Option<String>,
    #[serde(rename = "targetXID", default, skip_serializing_if = "Option::is_none")]
    pub target_xid: Option<String>,
    #[serde(
        rename = "targetName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_name: Option<String>,
    #[serde(
        rename = "targetImmediate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_immediate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barman_object_store: Option<BarmanObjectStore>,
}

/// barman-cloud object store settings: the in-tree `barmanObjectStore` and the plugin's
/// `ObjectStore.spec.configuration` share this shape.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BarmanObjectStore {
    pub destination_path: String,
    #[serde(
        rename = "endpointURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_credentials: Option<S3Credentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_credentials: Option<AzureCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalBackupConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataBackupConfiguration>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    pub access_key_id: SecretKeySelector,
    pub secret_access_key: SecretKeySelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<SecretKeySelector>,
}

/// `azureCredentials`: a connection string, or the storage account with its key or a SAS
/// token, each a reference into a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AzureCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<SecretKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account: Option<SecretKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<SecretKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_sas_token: Option<SecretKeySelector>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WalBackupConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataBackupConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Parallel upload jobs of a base backup (barman-cloud's default: 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalCluster {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barman_object_store: Option<BarmanObjectStore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginConfiguration>,
}

/// A CNPG-I plugin on a Cluster (`spec.plugins[]`, `externalClusters[].plugin`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PluginConfiguration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(
        rename = "isWALArchiver",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_wal_archiver: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// What pgdrill reads of a Cluster's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub phase_reason: Option<String>,
    #[serde(default)]
    pub instances: Option<u32>,
    #[serde(default)]
    pub ready_instances: Option<u32>,
    #[serde(default)]
    pub current_primary: Option<String>,
    #[serde(rename = "timelineID", default)]
    pub timeline_id: Option<u32>,
    #[serde(default)]
    pub first_recoverability_point: Option<String>,
    #[serde(default)]
    pub last_successful_backup: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A Kubernetes status condition (metav1.Condition shape).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub last_transition_time: Option<String>,
}

/// `postgresql.cnpg.io/v1` Backup.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "Backup",
    namespaced,
    status = "BackupStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    pub cluster: LocalObjectReference,
    /// `barmanObjectStore` (in-tree) or `plugin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_configuration: Option<BackupPluginConfiguration>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupPluginConfiguration {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// What pgdrill reads of a Backup's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub backup_id: Option<String>,
    #[serde(rename = "beginLSN", default)]
    pub begin_lsn: Option<String>,
    #[serde(rename = "endLSN", default)]
    pub end_lsn: Option<String>,
    #[serde(default)]
    pub begin_wal: Option<String>,
    #[serde(default)]
    pub end_wal: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub stopped_at: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub destination_path: Option<String>,
}

/// `barmancloud.cnpg.io/v1` ObjectStore (the barman-cloud plugin's object store).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "barmancloud.cnpg.io",
    version = "v1",
    kind = "ObjectStore",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    pub configuration: BarmanObjectStore,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_sidecar_configuration: Option<InstanceSidecarConfiguration>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSidecarConfiguration {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}
