//! The kube backend driven through whole scenarios against the API-server double
//! (`tests/support/kube_api_double.rs`): real `kube::Client` calls over HTTP, real watches, a
//! real port-forward websocket to a real PostgreSQL 15, real S3 (the embedded endpoint) for the
//! drill's prefix. The double's simulated operator restores nothing: its "recovered" cluster is
//! the same PostgreSQL as the source. These tests prove the sequence of API calls and the
//! backend's decisions, not recovery (the local drills in `local_drills.rs` prove that).

#[path = "support/kube_api_double.rs"]
mod kube_api_double;
#[path = "support/test_pg.rs"]
mod test_pg;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use pgdrill::backend::Keep;
use pgdrill::backend::credentials::KeyPair;
use pgdrill::backend::kube::render::{Flavour, RenderSettings, namespace_name};
use pgdrill::backend::kube::{KubeBackend, KubeOptions};
use pgdrill::backend::local::s3server::S3Server;
use pgdrill::backend::objstore::{ObjectStore, S3Target};
use pgdrill::runner::{Emitter, RecoveryObservation, Rto, ScenarioResult, Status, run_scenario};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use kube_api_double::{ApiServerDouble, Call, Failure, PgTarget, SimulatedCnpg};
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
        let creds = KeyPair::random();
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
            postgres: Some(PgTarget::of(&pg.inst)),
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
                azure: None,
            },
            s3: self.target.clone(),
            ready_timeout: DEADLINE,
            poll_interval: Duration::from_millis(100),
            sweep: true,
            azure: None,
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
                Keep::Nothing,
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

async fn insert_namespace(
    client: &kube::Client,
    name: &str,
    labels: serde_json::Value,
    annotations: serde_json::Value,
) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": annotations}
    }))
    .expect("namespace");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

fn at(v: &serde_json::Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// The `ts` of the first line of `log` whose message (or PostgreSQL record) starts with `msg`.
fn ts_of(log: &str, msg: &str) -> DateTime<Utc> {
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .find(|v| {
            v["record"]["message"]
                .as_str()
                .or(v["msg"].as_str())
                .is_some_and(|m| m.starts_with(msg))
        })
        .map(|v| at(&v["ts"]))
        .unwrap_or_else(|| panic!("no `{msg}` in {log}"))
}

/// The RTO of a clean recovery through the double, checked against what the double did: its
/// Job pod (deleted before the Cluster was healthy, as CNPG does) and the logs it wrote.
fn assert_recovery_rto(double: &ApiServerDouble, flavour: Flavour, rto: &Rto) {
    let names: Vec<&str> = rto.phases.iter().map(|p| p.name.as_str()).collect();
    // In-tree, the `full-recovery` container logs the whole story (the live cluster's
    // fixture). With the plugin, `Restore completed` is only in the plugin-barman-cloud
    // sidecar's log (observed with CNPG 1.30.0 and the plugin v0.14.0) and the backend reads
    // the marks from `full-recovery` alone, so the Job is one `recovery_job` phase.
    // Both flavours: in-tree the restore's end is `Restore completed`, with the plugin (whose
    // sidecar restores) `Creating new data directory` in `full-recovery`.
    let want: &[&str] = &[
        "job_scheduling",
        "restore_base_backup",
        "replay_until_consistent",
        "replay_and_promotion",
        "job_wrap_up",
        "instance_start",
        "first_query",
    ];
    assert_eq!(names, want, "{:#?}", rto.phases);
    for pair in rto.phases.windows(2) {
        assert_eq!(
            pair[0].finished_at, pair[1].started_at,
            "contiguous: {:#?}",
            rto.phases
        );
    }
    assert!(
        rto.phases
            .iter()
            .all(|p| p.started_at <= p.finished_at && p.seconds >= 0.0),
        "{:#?}",
        rto.phases
    );

    // The Job pod as it was last seen, and when it went: before the Cluster was healthy.
    let events = double.events();
    let job_pod_gone = events
        .iter()
        .find(|e| {
            e.typ == "DELETED"
                && e.resource == "pods"
                && e.object["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("recovered-1-full-recovery-"))
        })
        .expect("the Job pod was deleted");
    let healthy = events
        .iter()
        .find(|e| {
            e.resource == "clusters.postgresql.cnpg.io"
                && e.object["metadata"]["name"] == "recovered"
                && e.object["status"]["phase"] == "Cluster in healthy state"
        })
        .expect("the recovery Cluster turned healthy");
    assert!(
        job_pod_gone.rv < healthy.rv,
        "CNPG deletes the completed Job before the Cluster is healthy"
    );
    let job_pod = &job_pod_gone.object;
    let job_pod_name = job_pod["metadata"]["name"].as_str().unwrap();
    let term = &job_pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 0, "{job_pod:#}");
    let (started, finished) = (at(&term["startedAt"]), at(&term["finishedAt"]));

    // The log the double wrote for that pod's `full-recovery` container.
    let log = double
        .written_logs()
        .into_iter()
        .find(|w| w.pod == job_pod_name && w.container == "full-recovery")
        .expect("the Job's log")
        .text;
    assert_eq!(
        rto.wal_segments_replayed,
        kube_api_double::distinct_restored_segments(&log),
        "the distinct segments of the Job's `restored log file` lines"
    );
    assert!(
        log.matches("restored log file").count() as u64 > rto.wal_segments_replayed,
        "the double, like PostgreSQL, reads the last segment again at the end: {log}"
    );
    assert!(rto.wal_segments_replayed >= 3, "{log}");
    assert_eq!(
        rto.replay_end, None,
        "a clean replay names no damaged record"
    );
    // The double logs the last commit of the PostgreSQL that plays the recovered instance, as
    // `last completed transaction was at log time …` (the Rig's has track_commit_timestamp).
    let logged = log
        .lines()
        .find_map(|l| {
            l.split("last completed transaction was at log time ")
                .nth(1)
        })
        .and_then(|rest| rest.split('"').next())
        .map(|t| {
            DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z")
                .unwrap_or_else(|e| panic!("{t}: {e}"))
                .with_timezone(&Utc)
        })
        .expect("the Job's log names the last transaction replayed");
    assert_eq!(rto.last_replayed_commit, Some(logged));

    let phase = |name: &str| rto.phases.iter().find(|p| p.name.as_str() == name).unwrap();
    assert_eq!(phase("job_scheduling").finished_at, started);
    // The restore ends at `Restore completed` in-tree; with the plugin that line is the
    // sidecar's, and `full-recovery` marks it with `Creating new data directory`.
    let restore_end = match flavour {
        Flavour::InTree => "Restore completed",
        Flavour::Plugin => "Creating new data directory",
    };
    assert_eq!(phase("restore_base_backup").started_at, started);
    assert_eq!(
        phase("restore_base_backup").finished_at,
        ts_of(&log, restore_end)
    );
    assert_eq!(
        phase("replay_until_consistent").finished_at,
        ts_of(&log, "consistent recovery state reached")
    );
    assert_eq!(
        phase("replay_and_promotion").finished_at,
        ts_of(&log, "database system is ready to accept connections")
    );
    let job_end = phase("job_wrap_up");
    assert_eq!(job_end.finished_at, finished);
    // instance_start ends when the instance pod the Job made turned Ready.
    let instance = events
        .iter()
        .rev()
        .find(|e| e.resource == "pods" && e.object["metadata"]["name"] == "recovered-1")
        .expect("the instance pod");
    let ready = instance.object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .expect("a Ready condition");
    assert_eq!(
        phase("instance_start").finished_at,
        at(&ready["lastTransitionTime"])
    );

    // The backend read the Job's whole log once, from its `full-recovery` container.
    let reads: Vec<Call> = double
        .calls()
        .into_iter()
        .filter(|c| {
            c.path.ends_with(&format!("/pods/{job_pod_name}/log"))
                && c.query.get("container").map(String::as_str) == Some("full-recovery")
                && !c.query.contains_key("tailLines")
        })
        .collect();
    assert_eq!(reads.len(), 1, "{reads:#?}");
}

async fn clean_restore_through_the_double(flavour: Flavour) {
    let rig = Rig::start().await;
    let client = rig.double.client();
    // A crashed earlier run of the same scenario (its last heartbeat an hour old), and a
    // namespace pgdrill does not own.
    let stale_heartbeat = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    insert_namespace(
        &client,
        "pgdrill-clean-restore-latest-dead",
        json!({"app.kubernetes.io/managed-by": "pgdrill",
               "pgdrill.io/run-id": "20261101T000000Z-dead",
               "pgdrill.io/scenario": "clean-restore-latest"}),
        json!({"pgdrill.io/heartbeat": stale_heartbeat}),
    )
    .await;
    insert_namespace(
        &client,
        "payments",
        json!({"pgdrill.io/scenario": "clean-restore-latest"}),
        json!({}),
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
    assert_eq!(res.scenario.backend, "kube");
    assert!(matches!(
        res.recovery.observation,
        RecoveryObservation::Recovered
    ));
    assert!(res.outcome.rows_expected.is_some_and(|n| n > 0));
    assert_eq!(res.outcome.rows_expected, res.outcome.rows_observed);
    let rto = res.outcome.rto.as_ref().expect("an RTO for a recovery");
    assert_recovery_rto(&rig.double, flavour, rto);
    // The ledger chose a backup whose id came from the Backup's status.
    let backup_id = res.recovery.backup_id.clone().expect("backup id");
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
        // Teardown: the namespace first (nothing can be recreated in it), then its pods with
        // a 1 s grace period (a recovered instance archives until it stops), then a watch
        // until the namespace is gone, and only then the prefix is emptied (checked below).
        ("DELETE", format!("/api/v1/namespaces/{ns}")),
        ("DELETE", format!("/api/v1/namespaces/{ns}/pods")),
        ("GET", "/api/v1/namespaces".into()),
    ]);
    let want: Vec<(&str, &str)> = want.iter().map(|(m, p)| (*m, p.as_str())).collect();
    assert_in_order(&calls, &want);
    let pods_deleted = calls
        .iter()
        .find(|c| c.method == "DELETE" && c.path.ends_with(&format!("/namespaces/{ns}/pods")))
        .expect("teardown deletes the pods");
    let options: serde_json::Value =
        serde_json::from_str(pods_deleted.body.as_deref().unwrap_or("null")).unwrap();
    assert_eq!(options["gracePeriodSeconds"], 1, "{options}");
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

/// `verify.amcheck` on the kube backend: this host's `pg_amcheck` reaches the recovered
/// cluster's primary through a loopback relay of port-forwards (the double's are real
/// websockets to a real PostgreSQL 15). The double restores nothing, so its "recovered" server
/// is the source, with the stale index scenario 39 made on it: amcheck must find it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amcheck_runs_through_the_port_forward() {
    let rig = Rig::start().await;
    let res = rig
        .run(
            Flavour::InTree,
            "scenarios/39-amcheck-stale-expression-index.yaml",
        )
        .await;
    let calls = rig.double.calls();
    rig.stop().await;
    assert!(
        matches!(res.status, Status::Passed),
        "{:?}\n{}",
        res.status,
        res.log.join("\n")
    );
    match &res.outcome.amcheck {
        Some(pgdrill::backend::amcheck::AmcheckOutcome::Ran(run)) => {
            assert_eq!(run.exit_code, 2, "{run:?}");
            assert_eq!(run.relations(), ["public.orders_sort_key"], "{run:?}");
        }
        other => panic!("amcheck did not run: {other:?}"),
    }
    // The runner connects to the recovered primary once; pg_amcheck's connections (the
    // maintenance database, then each database it checks) are port-forwards of their own.
    let forwards = calls
        .iter()
        .filter(|c| c.path.ends_with("/pods/recovered-1/portforward"))
        .count();
    assert!(forwards >= 3, "{forwards} port-forward(s) to recovered-1");
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
/// find it in the job pod's logs and report it long before the recovery timeout. In-tree the
/// line is in the `full-recovery` container's log; with the plugin only in the
/// `plugin-barman-cloud` sidecar's (observed with CNPG 1.30.0 and the plugin v0.14.0).
async fn expected_empty_archive_is_detected(flavour: Flavour) {
    let rig = Rig::start().await;
    rig.double
        .set_failure("recovered", Failure::ExpectedEmptyArchive);
    let res = rig
        .run(flavour, "scenarios/04-wrong-server-name.yaml")
        .await;
    assert!(
        matches!(res.status, Status::Passed),
        "{:?}\n{}",
        res.status,
        res.log.join("\n")
    );
    let RecoveryObservation::Failed { message } = &res.recovery.observation else {
        panic!(
            "expected a failed recovery, got {:?}",
            res.recovery.observation
        );
    };
    assert!(message.contains("Expected empty archive"), "{message}");
    assert!(
        message.contains("WAL archive check failed for server postgres-cluster"),
        "{message}"
    );
    assert!(
        message.starts_with("recovered-1-full-recovery-"),
        "names the Job's pod: {message}"
    );
    assert!(
        !message.contains("not ready within"),
        "detected by its signature, not by the deadline: {message}"
    );
    let ns = namespace_name(RUN_ID, "wrong-server-name");
    // Where the line was: which container's log the backend had to read.
    let written = rig.double.written_logs();
    let holder = written
        .iter()
        .find(|w| {
            w.pod.starts_with("recovered-1-full-recovery-")
                && w.text.contains("Expected empty archive")
        })
        .expect("the double logged it");
    let want = match flavour {
        Flavour::InTree => "full-recovery",
        Flavour::Plugin => "plugin-barman-cloud",
    };
    assert_eq!(holder.container, want);
    if flavour == Flavour::Plugin {
        let main = written
            .iter()
            .find(|w| w.pod == holder.pod && w.container == "full-recovery")
            .expect("the main container's log");
        assert!(
            !main.text.contains("Expected empty archive"),
            "{}",
            main.text
        );
    }
    let log_path = format!("/namespaces/{ns}/pods/{}/log", holder.pod);
    assert!(
        rig.double
            .calls()
            .iter()
            .any(|c| c.path.ends_with(&log_path)
                && c.query.get("container").map(String::as_str) == Some(want)),
        "the backend read {want}'s log"
    );
    assert_in_order(
        &rig.double.calls(),
        &[
            ("PATCH", "/clusters/recovered"),
            ("GET", &format!("/namespaces/{ns}/pods")),
            ("GET", &log_path),
            ("DELETE", &format!("/api/v1/namespaces/{ns}")),
        ],
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_empty_archive_is_detected_from_the_recovery_pod_log() {
    expected_empty_archive_is_detected(Flavour::InTree).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_plugin_expected_empty_archive_is_detected_from_the_sidecar_log() {
    expected_empty_archive_is_detected(Flavour::Plugin).await;
}
