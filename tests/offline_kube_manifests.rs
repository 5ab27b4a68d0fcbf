//! The Kubernetes manifests the kube backend renders, checked offline against the CloudNativePG
//! and barman-cloud plugin CRDs (see `support/crd_schema.rs` for how strict that is), plus shape
//! facts every drill relies on.
//!
//! The CRDs come from `$PGDRILL_CRDS_DIR`, else `../shared/crds`. Without them every test here
//! fails when `CI` is set and otherwise prints a banner on stderr and passes without checking.
//!
//! The first group of tests proves the validator rejects what the API server rejects; then every
//! scenario in `scenarios/` is rendered in both flavours and every object validated; the last
//! group does the same for the objects of a kube game day (both flavours, with and without a
//! scratch archive, every kind of target).

#[path = "support/crd_schema.rs"]
mod crd_schema;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use crd_schema::{CelHandling, Registry, Violation};
use pgdrill::backend::ScratchRequest;
use pgdrill::backend::kube::render::{Flavour, Manifest, RenderSettings, render_scenario};
use pgdrill::backend::kube::render_scratch::{
    GAMEDAY_LABEL, SCRATCH_CLUSTER, gameday_namespace_name, render_gameday,
};
use pgdrill::backend::kube::resources as res;
use pgdrill::ledger::ResolvedTarget;
use pgdrill::plan::PlanStep;
use pgdrill::scenario::{Scenario, Step, load_file};
use pgdrill::wal::Lsn;
use serde_json::{Value, json};

/// The registry, or return from the test (after failing in CI or printing a banner).
macro_rules! registry_or_return {
    ($test:expr) => {
        match crd_schema::registry_or_skip($test) {
            Some(registry) => registry,
            None => return,
        }
    };
}

const NS: &str = "pgdrill-20261122t000000z-abcd";
const PLUGIN: &str = "barman-cloud.cloudnative-pg.io";

fn yaml(text: &str) -> Value {
    yaml_serde::from_str(text).expect("test YAML parses")
}

fn listing(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_valid(registry: &Registry, object: &Value) {
    let violations = registry.validate(object);
    assert!(
        violations.is_empty(),
        "expected a valid {} but got:\n{}\nobject: {object:#}",
        object["kind"],
        listing(&violations)
    );
}

/// Asserts a violation at exactly `pointer` whose message contains `needle`, and that its
/// rendering names the pointer. Returns all violations.
#[track_caller]
fn assert_rejected_at(
    registry: &Registry,
    object: &Value,
    pointer: &str,
    needle: &str,
) -> Vec<Violation> {
    let violations = registry.validate(object);
    let hit = violations
        .iter()
        .find(|v| v.pointer == pointer && v.message.contains(needle));
    match hit {
        Some(v) => assert!(
            v.to_string().starts_with(pointer),
            "{v} does not name {pointer}"
        ),
        None => panic!(
            "expected a violation at {pointer} mentioning {needle:?}, got:\n{}",
            if violations.is_empty() {
                "  (none: the object was accepted)".to_string()
            } else {
                listing(&violations)
            }
        ),
    }
    violations
}

/// Sets `value` at `pointer` (parents must exist).
fn set(object: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
    object
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"))
        .insert(key.to_string(), value);
}

fn remove(object: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
    object
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"))
        .remove(key)
        .unwrap_or_else(|| panic!("nothing at {pointer}"));
}

fn minimal_cluster() -> Value {
    yaml(&format!(
        r#"
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: source
  namespace: {NS}
  labels: {{ app.kubernetes.io/managed-by: pgdrill, pgdrill.io/run: 20261122T000000Z-abcd }}
spec:
  instances: 1
  imageName: ghcr.io/cloudnative-pg/postgresql:16-system-bookworm
  storage: {{ size: 1Gi }}
  bootstrap:
    initdb: {{ database: app, owner: app }}
"#
    ))
}

fn barman_object_store() -> Value {
    yaml(
        r#"
destinationPath: s3://pgdrill/pgdrill/20261122T000000Z-abcd
endpointURL: http://localstack.pgdrill-system.svc.cluster.local:4566
serverName: app-pg
s3Credentials:
  accessKeyId: { name: pgdrill-s3, key: ACCESS_KEY_ID }
  secretAccessKey: { name: pgdrill-s3, key: ACCESS_SECRET_KEY }
  region: { name: pgdrill-s3, key: REGION }
wal: { compression: gzip, maxParallel: 2 }
data: { compression: gzip }
"#,
    )
}

fn in_tree_cluster() -> Value {
    let mut cluster = minimal_cluster();
    set(
        &mut cluster,
        "/spec/backup",
        json!({ "barmanObjectStore": barman_object_store() }),
    );
    cluster
}

fn object_store() -> Value {
    let mut configuration = barman_object_store();
    remove(&mut configuration, "/serverName");
    json!({
        "apiVersion": "barmancloud.cnpg.io/v1",
        "kind": "ObjectStore",
        "metadata": { "name": "pgdrill-store", "namespace": NS },
        "spec": {
            "configuration": configuration,
            "instanceSidecarConfiguration": {
                "env": [{ "name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required" }]
            }
        }
    })
}

fn secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": "pgdrill-s3", "namespace": NS },
        "type": "Opaque",
        "stringData": { "ACCESS_KEY_ID": "test", "ACCESS_SECRET_KEY": "test", "REGION": "us-east-1" }
    })
}

// ---------------------------------------------------------------------------------------------
// The validator accepts what the server accepts...

#[test]
fn validator_accepts_minimal_cluster() {
    let registry = registry_or_return!("validator_accepts_minimal_cluster");
    assert_valid(registry, &minimal_cluster());
    // `instances` is required but has a default, which the server applies first.
    let mut no_instances = minimal_cluster();
    remove(&mut no_instances, "/spec/instances");
    assert_valid(registry, &no_instances);
}

#[test]
fn validator_accepts_in_tree_and_plugin_clusters() {
    let registry = registry_or_return!("validator_accepts_in_tree_and_plugin_clusters");
    assert_valid(registry, &in_tree_cluster());

    let mut plugin = minimal_cluster();
    set(
        &mut plugin,
        "/spec/plugins",
        json!([{
            "name": PLUGIN,
            "isWALArchiver": true,
            "parameters": { "barmanObjectName": "pgdrill-store", "serverName": "app-pg" }
        }]),
    );
    assert_valid(registry, &plugin);

    let mut recovery = minimal_cluster();
    set(&mut recovery, "/metadata/name", json!("restored"));
    set(
        &mut recovery,
        "/spec/bootstrap",
        json!({ "recovery": {
            "source": "origin",
            "recoveryTarget": { "targetLSN": "0/3000060", "exclusive": false }
        }}),
    );
    set(
        &mut recovery,
        "/spec/externalClusters",
        json!([{
            "name": "origin",
            "plugin": { "name": PLUGIN, "parameters": { "barmanObjectName": "pgdrill-store", "serverName": "app-pg" } }
        }]),
    );
    assert_valid(registry, &recovery);
}

#[test]
fn validator_accepts_object_store_backup_secret_namespace() {
    let registry = registry_or_return!("validator_accepts_object_store_backup_secret_namespace");
    assert_valid(registry, &object_store());
    assert_valid(
        registry,
        &json!({
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Backup",
            "metadata": { "name": "base", "namespace": NS },
            "spec": {
                "cluster": { "name": "source" },
                "method": "plugin",
                "pluginConfiguration": { "name": PLUGIN }
            }
        }),
    );
    assert_valid(registry, &secret());
    let mut with_data = secret();
    set(&mut with_data, "/data", json!({ "extra": "aGVsbG8=" }));
    assert_valid(registry, &with_data);
    assert_valid(
        registry,
        &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NS, "labels": { "pgdrill.io/run": "x" } } }),
    );
}

/// The typed resources the renderer builds from serialize into objects the CRDs accept.
#[test]
fn validator_accepts_typed_resources() {
    let registry = registry_or_return!("validator_accepts_typed_resources");
    let store = res::BarmanObjectStore {
        destination_path: "s3://pgdrill/pgdrill/run".into(),
        endpoint_url: Some("http://localstack:4566".into()),
        server_name: Some("app-pg".into()),
        s3_credentials: Some(res::S3Credentials {
            access_key_id: res::SecretKeySelector {
                name: "pgdrill-s3".into(),
                key: "ACCESS_KEY_ID".into(),
            },
            secret_access_key: res::SecretKeySelector {
                name: "pgdrill-s3".into(),
                key: "ACCESS_SECRET_KEY".into(),
            },
            region: None,
        }),
        azure_credentials: None,
        wal: Some(res::WalBackupConfiguration {
            compression: Some("gzip".into()),
            max_parallel: Some(2),
        }),
        data: Some(res::DataBackupConfiguration {
            compression: Some("gzip".into()),
            jobs: Some(4),
        }),
    };
    let mut cluster = res::Cluster::new(
        "source",
        res::ClusterSpec {
            instances: 1,
            image_name: Some("ghcr.io/cloudnative-pg/postgresql:16-system-bookworm".into()),
            enable_superuser_access: Some(true),
            storage: res::StorageConfiguration { size: "1Gi".into() },
            bootstrap: Some(res::Bootstrap {
                initdb: Some(res::BootstrapInitDb {
                    database: "app".into(),
                    owner: "app".into(),
                }),
                recovery: None,
            }),
            backup: Some(res::BackupConfiguration {
                barman_object_store: Some(store.clone()),
            }),
            ..Default::default()
        },
    );
    cluster.metadata.namespace = Some(NS.into());
    assert_valid(registry, &serde_json::to_value(&cluster).unwrap());

    let mut object_store = res::ObjectStore::new(
        "pgdrill-store",
        res::ObjectStoreSpec {
            configuration: res::BarmanObjectStore {
                server_name: None,
                ..store
            },
            instance_sidecar_configuration: None,
        },
    );
    object_store.metadata.namespace = Some(NS.into());
    assert_valid(registry, &serde_json::to_value(&object_store).unwrap());

    let mut backup = res::Backup::new(
        "base",
        res::BackupSpec {
            cluster: res::LocalObjectReference {
                name: "source".into(),
            },
            method: Some("plugin".into()),
            plugin_configuration: Some(res::BackupPluginConfiguration {
                name: PLUGIN.into(),
                parameters: BTreeMap::new(),
            }),
        },
    );
    backup.metadata.namespace = Some(NS.into());
    assert_valid(registry, &serde_json::to_value(&backup).unwrap());
}

// ---------------------------------------------------------------------------------------------
// ...and rejects what it rejects, naming the place.

#[test]
fn validator_rejects_misspelled_field() {
    let registry = registry_or_return!("validator_rejects_misspelled_field");
    let mut cluster = minimal_cluster();
    set(&mut cluster, "/spec/instance", json!(1));
    assert_rejected_at(registry, &cluster, "/spec/instance", "unknown field");

    // Deep inside, and at the root.
    let mut cluster = in_tree_cluster();
    set(
        &mut cluster,
        "/spec/backup/barmanObjectStore/wal/compresion",
        json!("gzip"),
    );
    set(&mut cluster, "/status2", json!({}));
    assert_rejected_at(
        registry,
        &cluster,
        "/spec/backup/barmanObjectStore/wal/compresion",
        "unknown field",
    );
    assert_rejected_at(registry, &cluster, "/status2", "unknown field");
}

#[test]
fn validator_rejects_wrong_type() {
    let registry = registry_or_return!("validator_rejects_wrong_type");
    let mut cluster = minimal_cluster();
    set(&mut cluster, "/spec/instances", json!("one"));
    assert_rejected_at(registry, &cluster, "/spec/instances", "integer");

    // int32 range, which the server checks against `format: int32`.
    let mut cluster = minimal_cluster();
    set(&mut cluster, "/spec/startDelay", json!(1_u64 << 40));
    assert_rejected_at(registry, &cluster, "/spec/startDelay", "maximum");
}

#[test]
fn validator_rejects_bad_enum() {
    let registry = registry_or_return!("validator_rejects_bad_enum");
    let mut cluster = in_tree_cluster();
    set(
        &mut cluster,
        "/spec/backup/barmanObjectStore/wal/compression",
        json!("zip"),
    );
    assert_rejected_at(
        registry,
        &cluster,
        "/spec/backup/barmanObjectStore/wal/compression",
        "zip",
    );
}

#[test]
fn validator_rejects_missing_required_field() {
    let registry = registry_or_return!("validator_rejects_missing_required_field");
    let mut cluster = in_tree_cluster();
    remove(
        &mut cluster,
        "/spec/backup/barmanObjectStore/destinationPath",
    );
    assert_rejected_at(
        registry,
        &cluster,
        "/spec/backup/barmanObjectStore/destinationPath",
        "Required",
    );
}

#[test]
fn validator_rejects_bad_metadata() {
    let registry = registry_or_return!("validator_rejects_bad_metadata");
    let mut cluster = minimal_cluster();
    set(&mut cluster, "/metadata/name", json!("Source"));
    assert_rejected_at(registry, &cluster, "/metadata/name", "DNS-1123 label");

    let mut cluster = minimal_cluster();
    set(&mut cluster, "/metadata/name", json!("a".repeat(64)));
    assert_rejected_at(registry, &cluster, "/metadata/name", "DNS-1123 label");

    let mut cluster = minimal_cluster();
    remove(&mut cluster, "/metadata/namespace");
    assert_rejected_at(registry, &cluster, "/metadata/namespace", "Required");

    let mut cluster = minimal_cluster();
    set(&mut cluster, "/metadata/labels/-bad", json!("x"));
    set(&mut cluster, "/metadata/labels/ok", json!("has space"));
    set(&mut cluster, "/metadata/lables", json!({}));
    set(&mut cluster, "/metadata/resourceVersion", json!("1"));
    assert_rejected_at(registry, &cluster, "/metadata/labels/-bad", "label key");
    assert_rejected_at(registry, &cluster, "/metadata/labels/ok", "label value");
    assert_rejected_at(registry, &cluster, "/metadata/lables", "unknown field");
    assert_rejected_at(
        registry,
        &cluster,
        "/metadata/resourceVersion",
        "API server",
    );

    let namespace = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "x", "namespace": "y" } });
    assert_rejected_at(
        registry,
        &namespace,
        "/metadata/namespace",
        "cluster-scoped",
    );
}

#[test]
fn validator_rejects_unknown_api_version_or_kind() {
    let registry = registry_or_return!("validator_rejects_unknown_api_version_or_kind");
    let mut cluster = minimal_cluster();
    set(&mut cluster, "/apiVersion", json!("postgresql.cnpg.io/v2"));
    assert_rejected_at(registry, &cluster, "/kind", "not served");
    let mut cluster = minimal_cluster();
    set(&mut cluster, "/kind", json!("Clusters"));
    assert_rejected_at(registry, &cluster, "/kind", "no schema");
    let mut cluster = minimal_cluster();
    remove(&mut cluster, "/apiVersion");
    assert_rejected_at(registry, &cluster, "/apiVersion", "Required");
}

#[test]
fn validator_rejects_bad_core_objects() {
    let registry = registry_or_return!("validator_rejects_bad_core_objects");
    let mut bad = secret();
    set(&mut bad, "/strinData", json!({ "a": "b" }));
    assert_rejected_at(registry, &bad, "/strinData", "unknown field");

    // Unknown fields inside metadata of a built-in object.
    let mut bad = secret();
    set(&mut bad, "/metadata/lables", json!({ "a": "b" }));
    assert_rejected_at(registry, &bad, "/metadata/lables", "unknown field");

    // A type error is located through the line it is on.
    let mut bad = secret();
    set(&mut bad, "/immutable", json!("yes"));
    assert_rejected_at(registry, &bad, "/immutable", "invalid type");

    // `data` must be base64.
    let mut bad = secret();
    set(&mut bad, "/data", json!({ "k": "not base64!" }));
    assert_rejected_at(registry, &bad, "/data/k", "");

    let mut bad = secret();
    set(&mut bad, "/stringData/bad key", json!("x"));
    assert_rejected_at(registry, &bad, "/stringData/bad key", "Invalid key");
}

#[test]
fn validator_checks_cel_rules_by_hand() {
    let registry = registry_or_return!("validator_checks_cel_rules_by_hand");
    let mut cluster = minimal_cluster();
    set(
        &mut cluster,
        "/spec/imageCatalogRef",
        json!({ "apiGroup": "postgresql.cnpg.io", "kind": "ImageCatalog", "name": "pg", "major": 16 }),
    );
    assert_rejected_at(registry, &cluster, "/spec", "mutually exclusive");

    let mut store = object_store();
    set(
        &mut store,
        "/spec/configuration/serverName",
        json!("app-pg"),
    );
    assert_rejected_at(
        registry,
        &store,
        "/spec/configuration/serverName",
        "serverName",
    );

    let mut cluster = minimal_cluster();
    set(
        &mut cluster,
        "/spec/bootstrap/initdb/icuLocale",
        json!("en-US"),
    );
    assert_rejected_at(registry, &cluster, "/spec/bootstrap/initdb", "");

    let mut cluster = minimal_cluster();
    set(
        &mut cluster,
        "/spec/bootstrap/initdb/icuLocale",
        json!("en-US"),
    );
    set(
        &mut cluster,
        "/spec/bootstrap/initdb/localeProvider",
        json!("icu"),
    );
    assert_valid(registry, &cluster);
}

#[test]
fn validator_rejects_duplicate_list_map_keys() {
    let registry = registry_or_return!("validator_rejects_duplicate_list_map_keys");
    let mut cluster = minimal_cluster();
    set(
        &mut cluster,
        "/spec/resources",
        json!({ "claims": [{ "name": "gpu" }, { "name": "gpu" }] }),
    );
    assert_rejected_at(registry, &cluster, "/spec/resources/claims/1", "Duplicate");
    set(
        &mut cluster,
        "/spec/resources",
        json!({ "claims": [{ "name": "gpu" }, { "name": "fpga" }] }),
    );
    assert_valid(registry, &cluster);
}

#[test]
fn cel_rules_are_accounted_for() {
    let registry = registry_or_return!("cel_rules_are_accounted_for");
    let summary = registry.cel_summary();
    println!("{summary}");
    assert!(
        !registry.cel_rules.is_empty(),
        "no CEL rule found: {summary}"
    );
    assert!(
        registry
            .cel_rules
            .iter()
            .any(|r| r.handling == CelHandling::CheckedByHand),
        "{summary}"
    );
    for rule in registry.skipped_cel_rules() {
        println!(
            "WARNING: not checked: {} at {}: {}",
            rule.kind, rule.location, rule.rule
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The real test: every scenario, both flavours.

const RUN_ID: &str = "20261122T000000Z-abcd";

fn settings(flavour: Flavour) -> RenderSettings {
    RenderSettings {
        run_id: RUN_ID.into(),
        flavour,
        bucket: "pgdrill".into(),
        bucket_prefix: format!("pgdrill/{RUN_ID}"),
        cluster_s3_endpoint: "http://localstack.pgdrill-system.svc.cluster.local:4566".into(),
        image_template: "ghcr.io/cloudnative-pg/postgresql:{major}-system-bookworm".into(),
        storage_size: "1Gi".into(),
        azure: None,
    }
}

/// Test scenarios whose manifests are validated too: the knobs no shipped scenario turns.
const EXTRA_SCENARIOS: &[&str] = &["tests/scenarios/parallel-knobs.yaml"];

fn scenario_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files.extend(EXTRA_SCENARIOS.iter().map(|f| root.join(f)));
    files
}

#[test]
fn parallelism_knobs_render_where_cnpg_reads_them() {
    let registry = registry_or_return!("parallelism_knobs_render_where_cnpg_reads_them");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXTRA_SCENARIOS[0]);
    let scenario = load_file(&file).unwrap().scenario;
    assert_eq!(scenario.backup.jobs, Some(4));
    assert_eq!(scenario.recovery.wal_max_parallel, Some(4));
    let find = |ms: &[Manifest], kind: &str, name: &str| -> Value {
        ms.iter()
            .find(|m| m.kind == kind && m.name == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .object
            .clone()
    };

    let ms = render_scenario(&scenario, &settings(Flavour::InTree));
    let source = find(&ms, "Cluster", "source");
    let recovered = find(&ms, "Cluster", "recovered");
    assert_valid(registry, &source);
    assert_valid(registry, &recovered);
    assert_eq!(
        source.pointer("/spec/backup/barmanObjectStore/data/jobs"),
        Some(&json!(4))
    );
    assert_eq!(
        recovered.pointer("/spec/externalClusters/0/barmanObjectStore/wal/maxParallel"),
        Some(&json!(4))
    );
    // The source archives one WAL file at a time still; the recovered cluster backs up nothing.
    assert_eq!(
        source.pointer("/spec/backup/barmanObjectStore/wal/maxParallel"),
        None
    );
    assert_eq!(
        recovered.pointer("/spec/backup/barmanObjectStore/data/jobs"),
        None
    );
    // Out of the CRD's range, the API server would refuse it.
    let mut zero = recovered.clone();
    set(
        &mut zero,
        "/spec/externalClusters/0/barmanObjectStore/wal/maxParallel",
        json!(0),
    );
    assert_rejected_at(
        registry,
        &zero,
        "/spec/externalClusters/0/barmanObjectStore/wal/maxParallel",
        "minimum",
    );

    let ms = render_scenario(&scenario, &settings(Flavour::Plugin));
    let archive = find(&ms, "ObjectStore", "pgdrill-archive");
    let origin = find(&ms, "ObjectStore", "pgdrill-origin");
    let recovered = find(&ms, "Cluster", "recovered");
    for object in [&archive, &origin, &recovered] {
        assert_valid(registry, object);
    }
    assert_eq!(
        archive.pointer("/spec/configuration/data/jobs"),
        Some(&json!(4))
    );
    assert_eq!(archive.pointer("/spec/configuration/wal/maxParallel"), None);
    assert_eq!(
        origin.pointer("/spec/configuration/wal/maxParallel"),
        Some(&json!(4))
    );
    assert_eq!(
        origin.pointer("/spec/configuration/destinationPath"),
        archive.pointer("/spec/configuration/destinationPath"),
        "the same archive"
    );
    assert_eq!(
        recovered.pointer("/spec/externalClusters/0/plugin/parameters/barmanObjectName"),
        Some(&json!("pgdrill-origin"))
    );
    let origin_at = ms.iter().position(|m| m.name == "pgdrill-origin").unwrap();
    let recovered_at = ms
        .iter()
        .position(|m| m.kind == "Cluster" && m.name == "recovered")
        .unwrap();
    assert!(origin_at < recovered_at, "applied before the recovery");
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".into())
}

#[test]
fn rendered_manifests_are_valid_and_well_formed() {
    let registry = registry_or_return!("rendered_manifests_are_valid_and_well_formed");
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenarios/*.yaml");
    let mut failures = Vec::new();
    let mut objects = 0;
    for file in &files {
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
        let loaded = load_file(file).unwrap_or_else(|e| panic!("{file_name}: {e}"));
        // The kube backend refuses these (run and render exit 2): nothing to validate. Azure
        // scenarios are refused for want of an endpoint the pods reach, but their
        // `azureCredentials` are rendered and must agree with the CRDs (not those restoring
        // a logical backup: no recovery Cluster there).
        let kube_refuses =
            <pgdrill::backend::kube::KubeBackend as pgdrill::backend::Backend>::supports(
                &loaded.scenario,
            )
            .is_err();
        let renders_azure =
            loaded.scenario.object_store.is_azure() && !loaded.scenario.recovery.is_logical();
        if kube_refuses && !renders_azure {
            println!("{file_name}: not supported by the kube backend, skipped");
            continue;
        }
        for flavour in [Flavour::InTree, Flavour::Plugin] {
            let label = format!("{file_name} [{flavour:?}]");
            let settings = settings(flavour);
            let rendered = catch_unwind(AssertUnwindSafe(|| {
                render_scenario(&loaded.scenario, &settings)
            }));
            let manifests = match rendered {
                Ok(manifests) => manifests,
                Err(payload) => {
                    failures.push(format!(
                        "{label}: render_scenario panicked: {}",
                        panic_text(payload.as_ref())
                    ));
                    continue;
                }
            };
            for (i, manifest) in manifests.iter().enumerate() {
                objects += 1;
                for violation in registry.validate(&manifest.object) {
                    failures.push(format!(
                        "{label}: #{i} {} {} (step {}): {violation}",
                        manifest.kind, manifest.name, manifest.step
                    ));
                }
            }
            for problem in shape_problems(&loaded.scenario, &settings, &manifests) {
                failures.push(format!("{label}: {problem}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) in the manifests of {} scenario(s) x 2 flavours ({objects} objects \
         validated):\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    println!(
        "{objects} objects from {} scenarios x 2 flavours are valid",
        files.len()
    );
}

fn api_version(m: &Manifest) -> &str {
    m.object["apiVersion"].as_str().unwrap_or_default()
}

fn is_kind(m: &Manifest, api_version_: &str, kind: &str) -> bool {
    api_version(m) == api_version_ && m.object["kind"] == kind
}

fn is_cluster(m: &Manifest) -> bool {
    is_kind(m, "postgresql.cnpg.io/v1", "Cluster")
}

fn is_backup(m: &Manifest) -> bool {
    is_kind(m, "postgresql.cnpg.io/v1", "Backup")
}

fn is_object_store(m: &Manifest) -> bool {
    is_kind(m, "barmancloud.cnpg.io/v1", "ObjectStore")
}

fn is_secret(m: &Manifest) -> bool {
    is_kind(m, "v1", "Secret")
}

fn name_of(m: &Manifest) -> &str {
    m.object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Every value under a key named `key`, anywhere in `value`, with its pointer.
fn find_key<'a>(value: &'a Value, key: &str, pointer: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let at = crd_schema::join(pointer, k);
                if k == key {
                    out.push((at.clone(), v));
                }
                find_key(v, key, &at, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_key(v, key, &crd_schema::join(pointer, &i.to_string()), out);
            }
        }
        _ => {}
    }
}

fn found<'a>(value: &'a Value, key: &str) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    find_key(value, key, "", &mut out);
    out
}

/// What every drill relies on, beyond schema validity.
fn shape_problems(
    scenario: &Scenario,
    settings: &RenderSettings,
    manifests: &[Manifest],
) -> Vec<String> {
    let mut p = Vec::new();
    if manifests.is_empty() {
        p.push("renders no manifests".to_string());
        return p;
    }
    let flavour = settings.flavour;
    let describe = |i: usize| format!("#{i} {} {}", manifests[i].kind, manifests[i].name);

    // Manifest fields agree with the objects; no object twice.
    let mut identities = BTreeSet::new();
    for (i, m) in manifests.iter().enumerate() {
        if m.object["kind"] != m.kind.as_str() {
            p.push(format!(
                "{}: Manifest.kind disagrees with object kind {}",
                describe(i),
                m.object["kind"]
            ));
        }
        if name_of(m) != m.name {
            p.push(format!(
                "{}: Manifest.name disagrees with metadata.name {:?}",
                describe(i),
                name_of(m)
            ));
        }
        if !identities.insert((api_version(m).to_string(), m.kind.clone(), m.name.clone())) {
            p.push(format!("{}: rendered twice", describe(i)));
        }
    }

    // One Namespace, applied first; everything else in it.
    let namespaces: Vec<usize> = (0..manifests.len())
        .filter(|&i| is_kind(&manifests[i], "v1", "Namespace"))
        .collect();
    match namespaces.as_slice() {
        [0] => {
            let ns = name_of(&manifests[0]);
            for (i, m) in manifests.iter().enumerate().skip(1) {
                let got = m
                    .object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str);
                if got != Some(ns) {
                    p.push(format!(
                        "{}: metadata.namespace {got:?}, expected the Namespace {ns:?}",
                        describe(i)
                    ));
                }
            }
        }
        [i] => p.push(format!(
            "the Namespace must be applied first, it is {}",
            describe(*i)
        )),
        other => p.push(format!(
            "expected exactly one Namespace, found {}",
            other.len()
        )),
    }

    // Plan steps: `setup` or the id of a step of the scenario's plan.
    let plan = pgdrill::plan::build(scenario);
    let plan_ids: BTreeSet<String> = plan.steps.iter().map(PlanStep::id).collect();
    let plan_id =
        |pred: fn(&PlanStep) -> bool| plan.steps.iter().find(|s| pred(s)).map(PlanStep::id);
    let start_source = plan_id(|s| matches!(s, PlanStep::StartSource { .. }));
    let recover = plan_id(|s| matches!(s, PlanStep::Recover { .. }));
    let backup_steps: Vec<&str> = scenario
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::BaseBackup(b) => Some(b.id.as_str()),
            _ => None,
        })
        .collect();
    for (i, m) in manifests.iter().enumerate() {
        if m.step != "setup" && !plan_ids.contains(&m.step) {
            p.push(format!(
                "{}: step {:?} is neither setup nor a step of the plan ({})",
                describe(i),
                m.step,
                plan_ids.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if manifests[0].step != "setup" {
        p.push(format!(
            "{}: the Namespace belongs to step setup",
            describe(0)
        ));
    }

    // Clusters: a source (initdb) and a recovered one (recovery), with the right images.
    let index_of = |pred: &dyn Fn(&Manifest) -> bool, name: &str| {
        manifests.iter().position(|m| pred(m) && name_of(m) == name)
    };
    let clusters: Vec<usize> = (0..manifests.len())
        .filter(|&i| is_cluster(&manifests[i]))
        .collect();
    let initdb: Vec<usize> = clusters
        .iter()
        .copied()
        .filter(|&i| {
            manifests[i]
                .object
                .pointer("/spec/bootstrap/initdb")
                .is_some()
        })
        .collect();
    let recovery: Vec<usize> = clusters
        .iter()
        .copied()
        .filter(|&i| {
            manifests[i]
                .object
                .pointer("/spec/bootstrap/recovery")
                .is_some()
        })
        .collect();
    if initdb.is_empty() {
        p.push("no Cluster with spec.bootstrap.initdb".into());
    }
    if recovery.is_empty() {
        p.push("no Cluster with spec.bootstrap.recovery".into());
    }
    let image = |major: u32| {
        settings
            .image_template
            .replace("{major}", &major.to_string())
    };
    for &i in &initdb {
        let m = &manifests[i];
        if Some(&m.step) != start_source.as_ref() {
            p.push(format!(
                "{}: an initdb Cluster belongs to the plan's start step {start_source:?}, not {:?}",
                describe(i),
                m.step
            ));
        }
        let got = m.object.pointer("/spec/imageName").and_then(Value::as_str);
        if got != Some(image(scenario.postgres).as_str()) {
            p.push(format!(
                "{}: imageName {got:?}, expected {:?}",
                describe(i),
                image(scenario.postgres)
            ));
        }
    }
    let recovery_major = scenario.recovery.postgres.unwrap_or(scenario.postgres);
    for &i in &recovery {
        let m = &manifests[i];
        if Some(&m.step) != recover.as_ref() {
            p.push(format!(
                "{}: a recovery Cluster belongs to the plan's recover step {recover:?}, not {:?}",
                describe(i),
                m.step
            ));
        }
        let got = m.object.pointer("/spec/imageName").and_then(Value::as_str);
        if got != Some(image(recovery_major).as_str()) {
            p.push(format!(
                "{}: imageName {got:?}, expected {:?}",
                describe(i),
                image(recovery_major)
            ));
        }
        let rec = &m.object["spec"]["bootstrap"]["recovery"];
        let source = rec.get("source").and_then(Value::as_str);
        let backup = rec.pointer("/backup/name").and_then(Value::as_str);
        if source.is_none() && backup.is_none() {
            p.push(format!(
                "{}: bootstrap.recovery has neither source nor backup",
                describe(i)
            ));
        }
        if let Some(source) = source {
            let external = m
                .object
                .pointer("/spec/externalClusters")
                .and_then(Value::as_array);
            if !external.is_some_and(|e| e.iter().any(|c| c["name"] == source)) {
                p.push(format!(
                    "{}: bootstrap.recovery.source {source:?} names no externalClusters entry",
                    describe(i)
                ));
            }
        }
        if let Some(backup) = backup {
            match index_of(&is_backup, backup) {
                Some(b) if b < i => {}
                Some(_) => p.push(format!(
                    "{}: recovers from Backup {backup:?}, which is applied after it",
                    describe(i)
                )),
                None => p.push(format!(
                    "{}: recovers from Backup {backup:?}, which is not rendered",
                    describe(i)
                )),
            }
        }
    }

    // Flavour.
    let stores: Vec<usize> = (0..manifests.len())
        .filter(|&i| is_object_store(&manifests[i]))
        .collect();
    let backups: Vec<usize> = (0..manifests.len())
        .filter(|&i| is_backup(&manifests[i]))
        .collect();
    match flavour {
        Flavour::Plugin => {
            if stores.is_empty() {
                p.push("plugin flavour renders no ObjectStore".into());
            }
            for &i in &clusters {
                for (at, _) in found(&manifests[i].object, "barmanObjectStore") {
                    p.push(format!("{}: plugin flavour Cluster has {at}", describe(i)));
                }
            }
            for &i in &backups {
                if manifests[i].object.pointer("/spec/method") != Some(&json!("plugin")) {
                    p.push(format!(
                        "{}: plugin flavour Backup needs spec.method: plugin",
                        describe(i)
                    ));
                }
            }
        }
        Flavour::InTree => {
            for &i in &stores {
                p.push(format!(
                    "{}: in-tree flavour renders an ObjectStore",
                    describe(i)
                ));
            }
            for &i in &clusters {
                let object = &manifests[i].object;
                if object.pointer("/spec/plugins").is_some() {
                    p.push(format!(
                        "{}: in-tree flavour Cluster has /spec/plugins",
                        describe(i)
                    ));
                }
                for (at, _) in found(object, "plugin") {
                    p.push(format!("{}: in-tree flavour Cluster has {at}", describe(i)));
                }
            }
            for &i in &backups {
                let method = manifests[i]
                    .object
                    .pointer("/spec/method")
                    .and_then(Value::as_str);
                if !matches!(method, None | Some("barmanObjectStore")) {
                    p.push(format!(
                        "{}: in-tree flavour Backup has spec.method {method:?}",
                        describe(i)
                    ));
                }
            }
        }
    }

    // A Backup per base_backup step, of a source Cluster applied before it.
    for step in &backup_steps {
        if !backups.iter().any(|&i| manifests[i].step == *step) {
            p.push(format!("no Backup for base_backup step {step:?}"));
        }
    }
    for &i in &backups {
        let m = &manifests[i];
        if !backup_steps.contains(&m.step.as_str()) {
            p.push(format!(
                "{}: a Backup belongs to a base_backup step, not {:?}",
                describe(i),
                m.step
            ));
        }
        let cluster = m
            .object
            .pointer("/spec/cluster/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match index_of(&is_cluster, cluster) {
            Some(c) if c < i && initdb.contains(&c) => {}
            Some(c) if c < i => p.push(format!(
                "{}: backs up {cluster:?}, which is not the source (initdb) Cluster",
                describe(i)
            )),
            Some(_) => p.push(format!(
                "{}: backs up Cluster {cluster:?}, which is applied after it",
                describe(i)
            )),
            None => p.push(format!(
                "{}: backs up Cluster {cluster:?}, which is not rendered",
                describe(i)
            )),
        }
    }

    // Object store settings come from the RenderSettings: on S3 the bucket and the
    // endpoint; on Azure the container (named by the bucket setting) in Azure's URL form,
    // no endpoint and no S3 credentials.
    let azure = scenario.object_store.is_azure();
    let prefix = if azure {
        format!(
            "https://{}.blob.core.windows.net/{}/{}",
            pgdrill::backend::kube::render::AZURE_ACCOUNT,
            settings.bucket,
            settings.bucket_prefix
        )
    } else {
        format!("s3://{}/{}", settings.bucket, settings.bucket_prefix)
    };
    let mut configurations: Vec<(usize, String, &Value)> = Vec::new();
    for &i in &clusters {
        for (at, v) in found(&manifests[i].object, "barmanObjectStore") {
            configurations.push((i, at, v));
        }
    }
    for &i in &stores {
        configurations.push((
            i,
            "/spec/configuration".into(),
            &manifests[i].object["spec"]["configuration"],
        ));
    }
    for (i, at, configuration) in configurations {
        let path = configuration
            .get("destinationPath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !path.starts_with(&prefix) {
            p.push(format!(
                "{}: {at}/destinationPath {path:?} is not under {prefix:?}",
                describe(i)
            ));
        }
        let endpoint = configuration.get("endpointURL").and_then(Value::as_str);
        let (has_s3, has_azure) = (
            configuration.get("s3Credentials").is_some(),
            configuration.get("azureCredentials").is_some(),
        );
        if (has_s3, has_azure) != (!azure, azure) {
            p.push(format!(
                "{}: {at} has s3Credentials {has_s3} and azureCredentials {has_azure} on {}",
                describe(i),
                if azure { "Azure" } else { "S3" }
            ));
        }
        if azure {
            if endpoint.is_some() {
                p.push(format!(
                    "{}: {at}/endpointURL {endpoint:?} on Azure",
                    describe(i)
                ));
            }
        } else if endpoint != Some(settings.cluster_s3_endpoint.as_str()) {
            p.push(format!(
                "{}: {at}/endpointURL {endpoint:?}, expected {:?}",
                describe(i),
                settings.cluster_s3_endpoint
            ));
        }
    }

    // References resolve to objects applied earlier: Secrets (with the key), ObjectStores.
    let secret_keys: BTreeMap<&str, (usize, BTreeSet<String>)> = (0..manifests.len())
        .filter(|&i| is_secret(&manifests[i]))
        .map(|i| {
            let object = &manifests[i].object;
            let keys = ["data", "stringData"]
                .iter()
                .filter_map(|f| object.get(*f).and_then(Value::as_object))
                .flat_map(|m| m.keys().cloned())
                .collect();
            (name_of(&manifests[i]), (i, keys))
        })
        .collect();
    for (i, m) in manifests.iter().enumerate() {
        for field in [
            "accessKeyId",
            "secretAccessKey",
            "connectionString",
            "storageAccount",
            "storageKey",
            "storageSasToken",
            "region",
            "sessionToken",
            "secretKeyRef",
        ] {
            for (at, selector) in found(&m.object, field) {
                let (Some(name), Some(key)) = (
                    selector.get("name").and_then(Value::as_str),
                    selector.get("key").and_then(Value::as_str),
                ) else {
                    continue;
                };
                match secret_keys.get(name) {
                    Some((s, keys)) if *s < i && keys.contains(key) => {}
                    Some((s, _)) if *s < i => p.push(format!(
                        "{}: {at} wants key {key:?} of Secret {name:?}, which has no such key",
                        describe(i)
                    )),
                    Some(_) => p.push(format!(
                        "{}: {at} refers to Secret {name:?}, which is applied after it",
                        describe(i)
                    )),
                    None => p.push(format!(
                        "{}: {at} refers to Secret {name:?}, which is not rendered",
                        describe(i)
                    )),
                }
            }
        }
        for (at, store) in found(&m.object, "barmanObjectName") {
            let name = store.as_str().unwrap_or_default();
            match index_of(&is_object_store, name) {
                Some(s) if s < i => {}
                Some(_) => p.push(format!(
                    "{}: {at} refers to ObjectStore {name:?}, which is applied after it",
                    describe(i)
                )),
                None => p.push(format!(
                    "{}: {at} refers to ObjectStore {name:?}, which is not rendered",
                    describe(i)
                )),
            }
        }
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Game days: the scratch namespace restoring a real archive.

const GAMEDAY_SOURCE: &str = "s3://backups/prod";
const GAMEDAY_SERVER: &str = "pg-prod";

/// Every request shape a game day can make: each target kind, with and without an archive of
/// the scratch cluster's own (a sibling serverName, another prefix, another bucket).
fn gameday_requests() -> Vec<(String, ScratchRequest)> {
    let time = chrono::DateTime::parse_from_rfc3339("2026-11-21T14:30:00.123456Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let targets = [
        ("latest", ResolvedTarget::Latest),
        ("time", ResolvedTarget::Time(time)),
        ("lsn", ResolvedTarget::Lsn(Lsn(0x1_2345_6789))),
    ];
    let archives = [
        ("no scratch archive", None),
        (
            "sibling serverName",
            Some((GAMEDAY_SOURCE, "pg-prod-gameday")),
        ),
        ("own prefix", Some(("s3://backups/gameday", GAMEDAY_SERVER))),
        ("own bucket", Some(("s3://scratch-bucket", "pg-prod"))),
    ];
    let mut out = Vec::new();
    for (t, target) in &targets {
        for (a, archive) in &archives {
            out.push((
                format!("{t}, {a}"),
                ScratchRequest {
                    major: 16,
                    server_name: GAMEDAY_SERVER.into(),
                    backup_id: "20261121T020000".into(),
                    target: target.clone(),
                    archive: archive.map(|(d, s)| (d.to_string(), s.to_string())),
                    timeout_seconds: 3600,
                },
            ));
        }
    }
    out
}

#[test]
fn gameday_manifests_are_valid_and_never_write_to_the_source() {
    let registry = registry_or_return!("gameday_manifests_are_valid_and_never_write_to_the_source");
    let mut failures = Vec::new();
    let mut objects = 0;
    let mut renders = 0;
    for flavour in [Flavour::InTree, Flavour::Plugin] {
        let settings = settings(flavour);
        for (what, req) in gameday_requests() {
            let label = format!("game day [{flavour:?}, {what}]");
            let manifests = match render_gameday(&settings, "orders_weekly", GAMEDAY_SOURCE, &req) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!("{label}: {e}"));
                    continue;
                }
            };
            renders += 1;
            for (i, manifest) in manifests.iter().enumerate() {
                objects += 1;
                for violation in registry.validate(&manifest.object) {
                    failures.push(format!(
                        "{label}: #{i} {} {}: {violation}",
                        manifest.kind, manifest.name
                    ));
                }
            }
            for problem in gameday_shape_problems(&settings, &req, &manifests) {
                failures.push(format!("{label}: {problem}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) in the game-day manifests ({objects} objects validated):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(renders, 24, "every request of both flavours rendered");
    println!("{objects} game-day objects from {renders} renders are valid");
}

/// A scratch archive overlapping the archive under test is refused by the renderer itself.
#[test]
fn gameday_manifests_refuse_a_scratch_archive_inside_the_source() {
    for flavour in [Flavour::InTree, Flavour::Plugin] {
        for (destination, server) in [
            (GAMEDAY_SOURCE, GAMEDAY_SERVER),
            ("s3://backups/prod/pg-prod/scratch", "x"),
            ("s3://backups", "prod"),
        ] {
            let req = ScratchRequest {
                major: 16,
                server_name: GAMEDAY_SERVER.into(),
                backup_id: "b".into(),
                target: ResolvedTarget::Latest,
                archive: Some((destination.into(), server.into())),
                timeout_seconds: 60,
            };
            let refused = render_gameday(&settings(flavour), "g", GAMEDAY_SOURCE, &req);
            assert!(
                refused.is_err(),
                "{flavour:?}: {destination}/{server} must be refused"
            );
        }
    }
}

/// What a kube game day relies on, beyond schema validity.
fn gameday_shape_problems(
    settings: &RenderSettings,
    req: &ScratchRequest,
    manifests: &[Manifest],
) -> Vec<String> {
    let mut p = Vec::new();
    let describe = |i: usize| format!("#{i} {} {}", manifests[i].kind, manifests[i].name);
    let ns = gameday_namespace_name(&settings.run_id, "orders_weekly");

    // Namespace first, everything in it, every object labelled with the run and the game day.
    if !(manifests
        .first()
        .is_some_and(|m| is_kind(m, "v1", "Namespace") && m.name == ns))
    {
        p.push(format!("the first object must be the Namespace {ns}"));
    }
    for (i, m) in manifests.iter().enumerate() {
        if m.object["kind"] != m.kind.as_str() || name_of(m) != m.name {
            p.push(format!(
                "{}: Manifest disagrees with its object",
                describe(i)
            ));
        }
        let labels = &m.object["metadata"]["labels"];
        if labels["app.kubernetes.io/managed-by"] != "pgdrill"
            || labels["pgdrill.io/run-id"] != RUN_ID
            || labels[GAMEDAY_LABEL] != "orders_weekly"
        {
            p.push(format!("{}: labels {labels}", describe(i)));
        }
        if i > 0 && m.object.pointer("/metadata/namespace") != Some(&json!(ns)) {
            p.push(format!("{}: not in namespace {ns}", describe(i)));
        }
    }

    // Exactly one Cluster, applied last, restoring from an externalClusters entry.
    let clusters: Vec<usize> = (0..manifests.len())
        .filter(|&i| is_cluster(&manifests[i]))
        .collect();
    let [c] = clusters.as_slice() else {
        p.push(format!("expected one Cluster, found {}", clusters.len()));
        return p;
    };
    let c = *c;
    if c != manifests.len() - 1 || manifests[c].name != SCRATCH_CLUSTER {
        p.push(format!(
            "{}: the Cluster `{SCRATCH_CLUSTER}` is applied last",
            describe(c)
        ));
    }
    let cluster = &manifests[c].object;
    let spec = &cluster["spec"];
    let want_image = settings.image_template.replace("{major}", "16");
    if spec["imageName"] != want_image.as_str() {
        p.push(format!(
            "imageName {}, expected {want_image}",
            spec["imageName"]
        ));
    }
    if spec.pointer("/bootstrap/initdb").is_some() {
        p.push("the scratch Cluster must not run initdb".into());
    }
    let recovery = &spec["bootstrap"]["recovery"];
    let source = recovery["source"].as_str().unwrap_or_default();
    let externals = spec["externalClusters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(origin) = externals.iter().find(|e| e["name"] == source) else {
        p.push(format!(
            "bootstrap.recovery.source {source:?} names no externalClusters entry"
        ));
        return p;
    };
    if externals.len() != 1 {
        p.push(format!(
            "{} externalClusters, expected only the origin",
            externals.len()
        ));
    }
    if recovery["recoveryTarget"]["backupID"] != req.backup_id.as_str() {
        p.push(format!(
            "recoveryTarget {}: backupID is not the chosen backup",
            recovery["recoveryTarget"]
        ));
    }
    let target_fields: Vec<&str> = [
        "targetTime",
        "targetLSN",
        "targetXID",
        "targetName",
        "targetImmediate",
    ]
    .into_iter()
    .filter(|f| recovery["recoveryTarget"].get(*f).is_some())
    .collect();
    let want_fields: &[&str] = match &req.target {
        ResolvedTarget::Latest => &[],
        ResolvedTarget::Time(_) => &["targetTime"],
        ResolvedTarget::Lsn(_) => &["targetLSN"],
        _ => &["?"],
    };
    if target_fields != want_fields {
        p.push(format!(
            "recovery target fields {target_fields:?}, expected {want_fields:?}"
        ));
    }

    // Where the origin points (read side) and where the cluster archives (write side).
    let stores: BTreeMap<&str, &Value> = manifests
        .iter()
        .filter(|m| is_object_store(m))
        .map(|m| (m.name.as_str(), &m.object["spec"]["configuration"]))
        .collect();
    let (origin_store, origin_server) = match settings.flavour {
        Flavour::InTree => (
            Some(&origin["barmanObjectStore"]),
            origin.pointer("/barmanObjectStore/serverName"),
        ),
        Flavour::Plugin => (
            origin
                .pointer("/plugin/parameters/barmanObjectName")
                .and_then(Value::as_str)
                .and_then(|n| stores.get(n).copied()),
            origin.pointer("/plugin/parameters/serverName"),
        ),
    };
    match origin_store {
        Some(store) => {
            if store["destinationPath"] != GAMEDAY_SOURCE {
                p.push(format!(
                    "origin destinationPath {}",
                    store["destinationPath"]
                ));
            }
            if store["endpointURL"] != settings.cluster_s3_endpoint.as_str() {
                p.push(format!("origin endpointURL {}", store["endpointURL"]));
            }
            for section in ["wal", "data"] {
                if store.get(section).is_some() {
                    p.push(format!("the origin (read only) has a `{section}` section"));
                }
            }
        }
        None => p.push(format!(
            "the origin {origin} names no rendered object store"
        )),
    }
    if origin_server != Some(&json!(GAMEDAY_SERVER)) {
        p.push(format!(
            "origin serverName {origin_server:?}, expected {GAMEDAY_SERVER}"
        ));
    }
    let archive_sink: Option<(&Value, Option<&Value>)> = match settings.flavour {
        Flavour::InTree => spec
            .pointer("/backup/barmanObjectStore")
            .map(|s| (s, s.get("serverName"))),
        Flavour::Plugin => {
            let archivers: Vec<&Value> = spec["plugins"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["isWALArchiver"] == true).collect())
                .unwrap_or_default();
            if spec.get("backup").is_some() {
                p.push("plugin flavour Cluster has spec.backup".into());
            }
            archivers.first().map(|a| {
                let store = a["parameters"]["barmanObjectName"]
                    .as_str()
                    .and_then(|n| stores.get(n).copied())
                    .unwrap_or(&Value::Null);
                (store, a.pointer("/parameters/serverName"))
            })
        }
    };
    match (&req.archive, archive_sink) {
        (None, None) => {
            if spec.get("backup").is_some() || spec.get("plugins").is_some() {
                p.push("archiving is off but the Cluster has a backup or plugins section".into());
            }
        }
        (None, Some(_)) => p.push("archiving is off but the Cluster archives".into()),
        (Some(_), None) => p.push("the scratch archive is not configured".into()),
        (Some((destination, server)), Some((store, sink_server))) => {
            if store["destinationPath"] != destination.as_str()
                || sink_server != Some(&json!(server))
            {
                p.push(format!(
                    "archives to {} / {sink_server:?}, expected {destination} / {server}",
                    store["destinationPath"]
                ));
            }
            if store["destinationPath"] == GAMEDAY_SOURCE
                && sink_server == Some(&json!(GAMEDAY_SERVER))
            {
                p.push("the Cluster archives into the archive under test".into());
            }
        }
    }

    // Credentials: every secret reference names a key of the Secret applied before it.
    let secret = manifests.iter().position(is_secret);
    for (i, m) in manifests.iter().enumerate() {
        for field in ["accessKeyId", "secretAccessKey"] {
            for (at, selector) in found(&m.object, field) {
                let key = selector["key"].as_str().unwrap_or_default();
                let ok = secret.is_some_and(|s| {
                    s < i
                        && selector["name"] == manifests[s].name.as_str()
                        && manifests[s].object["stringData"].get(key).is_some()
                });
                if !ok {
                    p.push(format!(
                        "{}: {at} does not resolve to an earlier Secret key",
                        describe(i)
                    ));
                }
            }
        }
        for (at, store) in found(&m.object, "barmanObjectName") {
            let name = store.as_str().unwrap_or_default();
            if !manifests[..i]
                .iter()
                .any(|s| is_object_store(s) && s.name == name)
            {
                p.push(format!(
                    "{}: {at} refers to ObjectStore {name:?} not applied before it",
                    describe(i)
                ));
            }
        }
    }
    if settings.flavour == Flavour::InTree && !stores.is_empty() {
        p.push("in-tree flavour renders ObjectStores".into());
    }
    if settings.flavour == Flavour::InTree {
        let env: Vec<&str> = spec["env"]
            .as_array()
            .map(|e| e.iter().filter_map(|v| v["name"].as_str()).collect())
            .unwrap_or_default();
        if !env.contains(&"AWS_REQUEST_CHECKSUM_CALCULATION") {
            p.push(format!(
                "in-tree Cluster env {env:?} lacks the checksum settings"
            ));
        }
    }
    p
}
