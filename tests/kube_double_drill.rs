//! The kube backend driven through whole scenarios against the API-server double
//! (`tests/support/kube_api_double.rs`): real `kube::Client` calls over HTTP, real watches, a
//! real port-forward websocket to a real PostgreSQL 15, real S3 (the embedded endpoint) for the
//! drill's prefix. The double's simulated operator restores nothing: its "recovered" cluster is
//! the same PostgreSQL as the source. These tests prove the sequence of API calls and the
//! backend's decisions, not recovery (the local drills in `drills.rs` prove that).

#[path = "support/kube_api_double.rs"]
mod kube_api_double;
#[path = "support/test_pg.rs"]
mod test_pg;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use pgdrill::backend::kube::render::{Flavour, RenderSettings, namespace_name};
use pgdrill::backend::kube::{KubeBackend, KubeOptions};
use pgdrill::backend::local::s3server::{S3Credentials, S3Server};
use pgdrill::backend::objstore::{ObjectStore, S3Target};
use pgdrill::runner::{Emitter, RecoveryObservation, ScenarioResult, Status, run_scenario};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use kube_api_double::{ApiServerDouble, Call, Failure, SimulatedCnpg};
use test_pg::TestPg;

const DEADLINE: Duration = Duration::from_secs(30);
const RUN_ID: &str = "20261122T000000Z-d0b1";

/// Everything one test needs: a real PostgreSQL, real S3, the double, a backend.
struct Rig {
    pg: TestPg,
    s3: S3Server,
    target: S3Target,
    double: ApiServerDouble,
    _s3_dir: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Self {
        // Configured like a CNPG instance as far as the runner can tell: archiving on (the
        // command succeeds without storing anything), commit timestamps tracked.
        let pg = TestPg::start(
            "cnpg-double",
            &[
                ("wal_level", "replica"),
                ("archive_mode", "on"),
                ("archive_command", "true"),
                ("track_commit_timestamp", "on"),
            ],
        )
        .await;
        let s3_dir = tempfile::tempdir().expect("s3 dir");
        let creds = S3Credentials::random();
        let s3 = S3Server::start(s3_dir.path(), 0, &creds, &["pgdrill"])
            .await
            .expect("embedded S3");
        let target = S3Target {
            endpoint: s3.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: "pgdrill".into(),
            access_key: creds.access_key.clone(),
            secret_key: creds.secret_key.clone(),
        };
        let double = ApiServerDouble::start(SimulatedCnpg {
            postgres: Some(pg.target()),
            // Recovery chooses its backup from the archive's catalogue, as CNPG does.
            archive: Some(target.clone()),
            ..Default::default()
        })
        .await
        .expect("API server double");
        Self {
            pg,
            s3,
            target,
            double,
            _s3_dir: s3_dir,
        }
    }

    fn backend(&self, flavour: Flavour) -> KubeBackend {
        KubeBackend::new(KubeOptions {
            client: self.double.client(),
            settings: RenderSettings {
                run_id: RUN_ID.into(),
                flavour,
                bucket: "pgdrill".into(),
                bucket_prefix: format!("pgdrill/{RUN_ID}"),
                cluster_s3_endpoint: "http://localstack.pgdrill-system.svc.cluster.local:4566"
                    .into(),
                image_template: "ghcr.io/cloudnative-pg/postgresql:{major}-system-bookworm".into(),
                storage_size: "1Gi".into(),
            },
            s3: self.target.clone(),
            ready_timeout: DEADLINE,
            poll_interval: Duration::from_millis(100),
            sweep: true,
        })
    }

    async fn run(&self, flavour: Flavour, file: &str) -> ScenarioResult {
        let loaded = pgdrill::scenario::load_file(Path::new(file)).expect("scenario loads");
        let (tx, _rx) = mpsc::unbounded_channel();
        let (_cancel_tx, cancel_rx) = watch::channel(false);
        let backend = self.backend(flavour);
        tokio::time::timeout(
            Duration::from_secs(120),
            run_scenario(
                &backend,
                &loaded,
                Path::new("fixtures"),
                &Emitter { tx },
                cancel_rx,
                false,
            ),
        )
        .await
        .expect("scenario finished within 120s")
    }

    async fn stop(self) {
        self.s3.shutdown().await;
        self.pg.stop().await;
    }
}

/// (method, path suffix) pairs that must appear in this order among `calls`.
fn assert_in_order(calls: &[Call], want: &[(&str, &str)]) {
    let mut i = 0;
    for (method, suffix) in want {
        match calls[i..]
            .iter()
            .position(|c| c.method == *method && c.path.ends_with(suffix))
        {
            Some(p) => i += p + 1,
            None => panic!(
                "no {method} …{suffix} after call #{i} in:\n{}",
                calls.iter().map(Call::line).collect::<Vec<_>>().join("\n")
            ),
        }
    }
}

async fn insert_namespace(client: &kube::Client, name: &str, labels: serde_json::Value) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels}
    }))
    .expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

async fn clean_restore_through_the_double(flavour: Flavour) {
    let rig = Rig::start().await;
    let client = rig.double.client();
    // A crashed earlier run of the same scenario, and a namespace pgdrill does not own.
    insert_namespace(
        &client,
        "pgdrill-clean-restore-latest-dead",
        json!({"app.kubernetes.io/managed-by": "pgdrill",
               "pgdrill.io/run-id": "20261101T000000Z-dead",
               "pgdrill.io/scenario": "clean-restore-latest"}),
    )
    .await;
    insert_namespace(
        &client,
        "payments",
        json!({"pgdrill.io/scenario": "clean-restore-latest"}),
    )
    .await;

    let res = rig
        .run(flavour, "scenarios/01-clean-restore-latest.yaml")
        .await;
    assert!(
        matches!(res.status, Status::Passed),
        "{:?}\n{}",
        res.status,
        res.log.join("\n")
    );
    assert_eq!(res.backend, "kube");
    assert!(matches!(res.observation, RecoveryObservation::Recovered));
    assert!(res.rows_expected.is_some_and(|n| n > 0));
    assert_eq!(res.rows_expected, res.rows_observed);
    let rto = res.rto.as_ref().expect("an RTO for a recovery");
    for phase in ["recovery_job", "instance_start", "first_query"] {
        assert!(
            rto.phases.iter().any(|p| p.name == phase),
            "{phase} in {:?}",
            rto.phases
        );
    }
    // The ledger chose a backup whose id came from the Backup's status.
    let backup_id = res.backup_id.clone().expect("backup id");
    assert!(backup_id.starts_with("20"), "{backup_id}");
    // …and the recovery Cluster pins exactly that backup.
    let applied = rig.double.applied("/clusters/recovered");
    let pinned: Vec<&serde_json::Value> = applied
        .iter()
        .map(|c| &c["spec"]["bootstrap"]["recovery"]["recoveryTarget"]["backupID"])
        .collect();
    assert!(!pinned.is_empty(), "the recovery Cluster was applied");
    assert!(
        pinned
            .iter()
            .all(|b| b.as_str() == Some(backup_id.as_str())),
        "backupID {pinned:?} vs the ledger's {backup_id}"
    );

    let ns = namespace_name(RUN_ID, "clean-restore-latest");
    let calls = rig.double.calls();
    let clusters = format!("/namespaces/{ns}/clusters");
    let mut want: Vec<(&str, String)> = vec![
        (
            "DELETE",
            "/api/v1/namespaces/pgdrill-clean-restore-latest-dead".into(),
        ),
        ("POST", "/api/v1/namespaces".into()),
        ("PATCH", format!("/namespaces/{ns}/secrets/pgdrill-s3")),
    ];
    if flavour == Flavour::Plugin {
        want.push((
            "PATCH",
            format!("/namespaces/{ns}/objectstores/pgdrill-archive"),
        ));
    }
    want.extend([
        ("PATCH", format!("{clusters}/source")),
        ("GET", clusters.clone()),
        ("GET", format!("/namespaces/{ns}/secrets/source-superuser")),
        ("GET", format!("/namespaces/{ns}/pods/source-1/portforward")),
        ("PATCH", format!("/namespaces/{ns}/backups/pgdrill-base")),
        ("GET", format!("/namespaces/{ns}/backups")),
        ("PATCH", format!("{clusters}/source")),
        ("PATCH", format!("{clusters}/recovered")),
        ("GET", format!("{clusters}/recovered")),
        (
            "GET",
            format!("/namespaces/{ns}/pods/recovered-1/portforward"),
        ),
        ("DELETE", format!("/api/v1/namespaces/{ns}")),
    ]);
    let want: Vec<(&str, &str)> = want.iter().map(|(m, p)| (*m, p.as_str())).collect();
    assert_in_order(&calls, &want);
    // Every apply is a server-side apply by pgdrill.
    for c in calls.iter().filter(|c| c.method == "PATCH") {
        let hibernate = c.path.ends_with("/clusters/source")
            && c.patch_type.as_deref() == Some("application/merge-patch+json");
        assert!(
            hibernate || c.patch_type.as_deref() == Some("application/apply-patch+yaml"),
            "{}",
            c.line()
        );
    }

    // The source was hibernated, not deleted; the recovery pinned the ledger's backup.
    // (The namespace is gone now, so read the recorded apply of the recovery cluster instead.)
    assert!(
        rig.double
            .object("namespaces", "", "pgdrill-clean-restore-latest-dead")
            .is_none(),
        "the crashed run's namespace is swept"
    );
    assert!(
        rig.double.object("namespaces", "", "payments").is_some(),
        "a namespace without pgdrill's managed-by label is never touched"
    );
    assert!(
        rig.double.object("namespaces", "", &ns).is_none(),
        "teardown deletes the drill's namespace"
    );
    // Teardown removed the drill's prefix from object storage.
    let store = ObjectStore::new(
        &rig.target,
        &format!("pgdrill/{RUN_ID}/clean-restore-latest"),
    );
    assert!(store.list("").await.expect("list").is_empty());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_tree_clean_restore_through_the_api_double() {
    clean_restore_through_the_double(Flavour::InTree).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_clean_restore_through_the_api_double() {
    clean_restore_through_the_double(Flavour::Plugin).await;
}

/// A reused serverName: the recovery job fails with "Expected empty archive". The backend must
/// find it in the job pod's log and report it long before the recovery timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_empty_archive_is_detected_from_the_recovery_pod_log() {
    let rig = Rig::start().await;
    rig.double
        .set_failure("recovered", Failure::ExpectedEmptyArchive);
    let res = rig
        .run(Flavour::InTree, "scenarios/04-wrong-server-name.yaml")
        .await;
    assert!(
        matches!(res.status, Status::Passed),
        "{:?}\n{}",
        res.status,
        res.log.join("\n")
    );
    let RecoveryObservation::Failed { message } = &res.observation else {
        panic!("expected a failed recovery, got {:?}", res.observation);
    };
    assert!(message.contains("Expected empty archive"), "{message}");
    assert!(
        !message.contains("not ready within"),
        "detected by its signature, not by the deadline: {message}"
    );
    let ns = namespace_name(RUN_ID, "wrong-server-name");
    assert_in_order(
        &rig.double.calls(),
        &[
            ("PATCH", "/clusters/recovered"),
            ("GET", &format!("/namespaces/{ns}/pods")),
            ("GET", "/log"),
            ("DELETE", &format!("/api/v1/namespaces/{ns}")),
        ],
    );
    rig.stop().await;
}
