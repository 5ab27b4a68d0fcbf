//! Game days on the kube backend, driven against the API-server double
//! (`tests/support/kube_api_double.rs`): `run_gameday` with `KubeScratch` over real HTTP, real
//! watches and a real port-forward websocket to a real PostgreSQL 15, and `pgdrill gameday
//! --backend kube` as a process with a kubeconfig pointing at the double.
//!
//! The archive under test is real: a local drill (real PostgreSQL, real barman-cloud) writes it
//! into an embedded S3 endpoint this test owns, and the game day's audit reads it from there.
//! The double's simulated operator restores nothing: its "recovered" scratch cluster is a
//! PostgreSQL this test seeds (`orders`, and a `probe` row holding a random token that only this
//! database has, so a passing check proves it ran there). These tests prove what is applied, in
//! which order, what is decided from statuses and logs, and that checks run through the
//! port-forward; never that CloudNativePG restores the archive.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/kube_api_double.rs"]
mod kube_api_double;
#[path = "support/test_pg.rs"]
mod test_pg;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use pgdrill::backend::kube::render::{Flavour, RenderSettings};
use pgdrill::backend::kube::render_scratch::gameday_namespace_name;
use pgdrill::backend::kube::{KubeOptions, KubeScratch};
use pgdrill::backend::objstore::S3Target;
use pgdrill::backend::{Keep, ScratchRequest, ScratchRestore};
use pgdrill::gameday::{GamedayOptions, GamedayRecord, LoadedGameday, RestoreOutcome, run_gameday};
use pgdrill::ledger::ResolvedTarget;
use pgdrill::runner::Status;
use serde_json::{Value, json};
use tokio::sync::watch;

use kube_api_double::{ApiServerDouble, Call, Failure, PgTarget, SimulatedCnpg};
use test_pg::TestPg;

const RUN_ID: &str = "20261122T000000Z-9a3e";
const PREFIX: &str = "pgdrill/kube-gameday-test";
const SCENARIO: &str = "clean-restore-latest";
const SERVER: &str = "app-pg";
const GAMEDAY: &str = "kube-double";
/// What the pods would use to reach the archive; never contacted (the double restores nothing).
const CLUSTER_S3: &str = "http://minio.storage.svc.cluster.local:9000";
/// Whole game day, the audit of a real archive included.
const GAMEDAY_DEADLINE: Duration = Duration::from_secs(120);

/// A real barman-cloud archive (scenario 01 run by the local backend) in an embedded S3
/// endpoint this test owns, so the archive outlives the drill.
struct Archive {
    a: test_pg::TestArchive,
    /// The only base backup of the archive.
    backup_id: String,
    work: tempfile::TempDir,
}

impl std::ops::Deref for Archive {
    type Target = test_pg::TestArchive;
    fn deref(&self) -> &test_pg::TestArchive {
        &self.a
    }
}

impl Archive {
    async fn make() -> Self {
        let a = test_pg::TestArchive::start("kube-gameday-test-").await;
        let res = a
            .drill(PREFIX, "scenarios/01-clean-restore-latest.yaml", false)
            .await;
        assert!(
            matches!(res.status, Status::Passed),
            "the drill making the archive: {:?}\n{}",
            res.status,
            res.log.join("\n")
        );
        Self {
            a,
            backup_id: res.recovery.backup_id.expect("the drill's backup id"),
            work: tempfile::tempdir().expect("work dir"),
        }
    }

    /// `destinationPath` of the archive.
    fn destination(&self) -> String {
        format!("s3://pgdrill/{PREFIX}/{SCENARIO}")
    }

    /// A game-day file on this archive: `extra` holds target, scratch and checks.
    fn gameday_file(&self, extra: &str) -> PathBuf {
        let file = self.work.path().join(format!("{GAMEDAY}.yaml"));
        let text = format!(
            "name: {GAMEDAY}\narchive:\n  destination: {}\n  server_name: {SERVER}\n  endpoint: {}\n\
             postgres: 15\nrecovery_timeout_seconds: 600\n{extra}",
            self.destination(),
            self.s3.endpoint
        );
        std::fs::write(&file, text).expect("game-day file");
        file
    }

    fn load(&self, extra: &str) -> LoadedGameday {
        pgdrill::gameday::load_file(&self.gameday_file(extra)).expect("game-day file loads")
    }

    /// Only reads reached the archive under test since the last `operations.clear()`.
    fn assert_read_only(&self) {
        self.a.assert_only_reads(&format!("{SCENARIO}/{SERVER}/"));
    }

    async fn stop(self) {
        self.a.s3.shutdown().await;
    }
}

/// The database behind the double's scratch cluster, with what the checks look for.
async fn scratch_database(token: &str) -> TestPg {
    let pg = TestPg::start("scratch-double", &[]).await;
    let client = pg
        .inst
        .connect()
        .await
        .expect("connect to the scratch database");
    client
        .batch_execute(&format!(
            "CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 120) g;
             CREATE TABLE probe (token text); INSERT INTO probe VALUES ('{token}');"
        ))
        .await
        .expect("seed the scratch database");
    pg
}

fn token() -> String {
    format!("probe-{:016x}", rand::random::<u64>())
}

fn checks(token: &str) -> String {
    format!(
        "checks:\n\
         \x20 - {{ name: orders, sql: select count(*) from orders, equals: \"120\" }}\n\
         \x20 - {{ name: probe, sql: select token from probe, equals: \"{token}\" }}\n"
    )
}

fn settings(flavour: Flavour) -> RenderSettings {
    RenderSettings {
        run_id: RUN_ID.into(),
        flavour,
        bucket: "pgdrill".into(),
        bucket_prefix: format!("pgdrill/{RUN_ID}"),
        cluster_s3_endpoint: CLUSTER_S3.into(),
        image_template: "ghcr.io/cloudnative-pg/postgresql:{major}-standard-bookworm".into(),
        storage_size: "1Gi".into(),
        azure: None,
    }
}

fn scratch(double: &ApiServerDouble, flavour: Flavour, archive: &Archive) -> KubeScratch {
    KubeScratch::new(
        KubeOptions {
            client: double.client(),
            settings: settings(flavour),
            s3: archive.target.clone(),
            ready_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            sweep: true,
            azure: None,
        },
        GAMEDAY,
        &archive.destination(),
    )
}

async fn game_day(
    double: &ApiServerDouble,
    flavour: Flavour,
    archive: &Archive,
    loaded: &LoadedGameday,
    keep: bool,
) -> GamedayRecord {
    let opts = GamedayOptions {
        s3: archive.target.clone(),
        operator: "ci-test".into(),
        seed: 7,
        thresholds: pgdrill::audit::Thresholds {
            max_backup_age_seconds: 86_400,
            max_wal_age_seconds: 86_400,
        },
        keep: keep.into(),
    };
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    tokio::time::timeout(
        GAMEDAY_DEADLINE,
        run_gameday(scratch(double, flavour, archive), loaded, &opts, cancel_rx),
    )
    .await
    .expect("the game day finished")
}

/// One expected call: method, path suffix, and whether it must be a watch.
type Want<'a> = (&'a str, &'a str, bool);

/// The wanted calls appear in this order among `calls` (others may come between).
fn assert_in_order(calls: &[Call], want: &[Want]) {
    let mut i = 0;
    for (method, suffix, watch) in want {
        match calls[i..].iter().position(|c| {
            c.method == *method && c.path.ends_with(suffix) && (!watch || c.is_watch())
        }) {
            Some(p) => i += p + 1,
            None => panic!(
                "no {method} …{suffix}{} after call #{i} in:\n{}",
                if *watch { " (watch)" } else { "" },
                calls.iter().map(Call::line).collect::<Vec<_>>().join("\n")
            ),
        }
    }
}

/// Every write is a server-side apply by pgdrill, except creating the namespace (a POST).
fn assert_server_side_applies(calls: &[Call]) {
    for c in calls.iter().filter(|c| c.method == "PATCH") {
        assert_eq!(
            c.patch_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{}",
            c.line()
        );
        assert_eq!(
            c.query.get("fieldManager").map(String::as_str),
            Some("pgdrill")
        );
    }
    let replaced: Vec<String> = calls
        .iter()
        .filter(|c| c.method == "PUT")
        .map(Call::line)
        .collect();
    assert!(replaced.is_empty(), "no replace expected: {replaced:?}");
}

fn phase_names(rto: &pgdrill::runner::Rto) -> Vec<&str> {
    rto.phases.iter().map(|p| p.name.as_str()).collect()
}

/// Distinct segments of the `restored log file` lines in what the double logged for the
/// scratch Cluster's Job (the last one is read again at the end of recovery).
fn restored_lines(double: &ApiServerDouble) -> u64 {
    let logs: Vec<String> = double
        .written_logs()
        .into_iter()
        .filter(|w| w.pod.starts_with("scratch-1-full-recovery-") && w.container == "full-recovery")
        .map(|w| w.text)
        .collect();
    assert_eq!(logs.len(), 1, "one Job pod");
    kube_api_double::distinct_restored_segments(&logs[0])
}

/// The one Cluster apply of the run.
fn applied_cluster(double: &ApiServerDouble, ns: &str) -> Value {
    let applied = double.applied(&format!("/namespaces/{ns}/clusters/scratch"));
    assert_eq!(applied.len(), 1, "one apply of the scratch Cluster");
    applied.into_iter().next().unwrap()
}

fn insert_namespace(double: &ApiServerDouble, name: &str, labels: Value, annotations: Value) {
    double
        .insert_object(
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": labels, "annotations": annotations}}),
        )
        .expect("namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_tree_game_day_restores_the_chosen_backup_without_archiving() {
    let archive = Archive::make().await;
    let token = token();
    let pg = scratch_database(&token).await;
    let double = ApiServerDouble::start(SimulatedCnpg {
        postgres: Some(PgTarget::of(&pg.inst)),
        ..Default::default()
    })
    .await
    .expect("API server double");
    // A crashed earlier run of this game day (its last heartbeat an hour old), another game
    // day's, and one pgdrill does not own.
    let stale = "pgdrill-gameday-kube-double-dead";
    let stale_heartbeat = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    insert_namespace(
        &double,
        stale,
        json!({"app.kubernetes.io/managed-by": "pgdrill",
               "pgdrill.io/run-id": "20261101T000000Z-dead", "pgdrill.io/gameday": GAMEDAY}),
        json!({"pgdrill.io/heartbeat": stale_heartbeat}),
    );
    insert_namespace(
        &double,
        "pgdrill-gameday-other-beef",
        json!({"app.kubernetes.io/managed-by": "pgdrill",
               "pgdrill.io/run-id": "20261101T000000Z-beef", "pgdrill.io/gameday": "other"}),
        json!({}),
    );
    insert_namespace(
        &double,
        "payments",
        json!({"pgdrill.io/gameday": GAMEDAY}),
        json!({}),
    );

    let loaded = archive.load(&format!("rto_budget_seconds: 600\n{}", checks(&token)));
    archive.s3.operations.clear();
    let rec = game_day(&double, Flavour::InTree, &archive, &loaded, false).await;

    assert!(matches!(rec.status, Status::Passed), "{:#?}", rec.status);
    assert_eq!(rec.restore, RestoreOutcome::Recovered);
    // pg_amcheck ran by default, on this host through the relay of port-forwards.
    assert!(
        matches!(&rec.amcheck, Some(pgdrill::backend::amcheck::AmcheckOutcome::Ran(r)) if r.exit_code == 0),
        "{:?}",
        rec.amcheck
    );
    assert_eq!(rec.backend, "kube");
    assert_eq!(rec.backup_id.as_deref(), Some(archive.backup_id.as_str()));
    assert_eq!(rec.resolved_target.as_deref(), Some("latest"));
    assert!(rec.kept.is_empty(), "{:?}", rec.kept);
    // The checks ran against the database behind the port-forward: only it has the token.
    assert_eq!(rec.checks.len(), 2);
    assert!(rec.checks.iter().all(|c| c.passed), "{:#?}", rec.checks);
    assert_eq!(rec.checks[0].observed.as_deref(), Some("120"));
    assert_eq!(rec.checks[1].observed.as_deref(), Some(token.as_str()));
    assert!(
        rec.postgres_version
            .as_deref()
            .is_some_and(|v| v.starts_with("15."))
    );
    let rto = rec.rto.as_ref().expect("an RTO");
    assert!(rto.seconds > 0.0 && rto.seconds < GAMEDAY_DEADLINE.as_secs_f64());
    // The Job's log, read before CNPG deleted the Job, splits the Job into its steps.
    assert_eq!(
        phase_names(rto),
        [
            "job_scheduling",
            "restore_base_backup",
            "replay_until_consistent",
            "replay_and_promotion",
            "job_wrap_up",
            "instance_start",
            "first_query"
        ]
    );
    assert_eq!(
        rto.wal_segments_replayed,
        restored_lines(&double),
        "the `restored log file` lines of the Job's log"
    );
    archive.assert_read_only();

    let ns = gameday_namespace_name(RUN_ID, GAMEDAY);
    let calls = double.calls();
    assert_in_order(
        &calls,
        &[
            ("DELETE", &format!("/api/v1/namespaces/{stale}"), false),
            ("POST", "/api/v1/namespaces", false),
            (
                "PATCH",
                &format!("/namespaces/{ns}/secrets/pgdrill-s3"),
                false,
            ),
            (
                "PATCH",
                &format!("/namespaces/{ns}/clusters/scratch"),
                false,
            ),
            ("GET", &format!("/namespaces/{ns}/clusters"), true),
            (
                "GET",
                &format!("/namespaces/{ns}/secrets/scratch-superuser"),
                false,
            ),
            (
                "GET",
                &format!("/namespaces/{ns}/pods/scratch-1/portforward"),
                false,
            ),
            ("DELETE", &format!("/api/v1/namespaces/{ns}"), false),
        ],
    );
    assert_server_side_applies(&calls);
    assert!(
        !calls.iter().any(|c| c.path.contains("/objectstores")),
        "the in-tree flavour applies no ObjectStore"
    );
    let created = calls
        .iter()
        .find(|c| c.method == "POST" && c.path == "/api/v1/namespaces")
        .and_then(Call::body_json)
        .expect("the namespace's body");
    assert_eq!(created["metadata"]["name"], ns.as_str());
    assert_eq!(created["metadata"]["labels"]["pgdrill.io/gameday"], GAMEDAY);
    assert_eq!(created["metadata"]["labels"]["pgdrill.io/run-id"], RUN_ID);

    // What was applied: archiving off, the chosen backup at `latest`, the user's archive.
    let cluster = applied_cluster(&double, &ns);
    let spec = &cluster["spec"];
    assert!(spec.get("backup").is_none(), "no WAL archiving: {spec:#}");
    assert!(
        spec.get("plugins").is_none(),
        "no archiver plugin: {spec:#}"
    );
    assert_eq!(
        spec["bootstrap"]["recovery"]["recoveryTarget"],
        json!({"backupID": archive.backup_id}),
        "latest: only the backup is pinned"
    );
    let origin = &spec["externalClusters"][0];
    assert_eq!(spec["bootstrap"]["recovery"]["source"], origin["name"]);
    let store = &origin["barmanObjectStore"];
    assert_eq!(store["destinationPath"], archive.destination().as_str());
    assert_eq!(store["serverName"], SERVER);
    assert_eq!(store["endpointURL"], CLUSTER_S3);
    assert_eq!(
        spec["imageName"],
        "ghcr.io/cloudnative-pg/postgresql:15-standard-bookworm"
    );
    let secret = &double.applied(&format!("/namespaces/{ns}/secrets/pgdrill-s3"))[0];
    assert_eq!(
        secret["stringData"]["ACCESS_KEY_ID"],
        archive.creds.access_key.as_str(),
        "the cluster reads the archive with the game day's credentials"
    );

    // Teardown and the sweep: this run's and the crashed run's namespaces are gone, nothing
    // else was touched.
    assert!(double.object("namespaces", "", &ns).is_none());
    assert!(double.object("namespaces", "", stale).is_none());
    assert!(
        double
            .object("namespaces", "", "pgdrill-gameday-other-beef")
            .is_some()
    );
    assert!(double.object("namespaces", "", "payments").is_some());

    drop(double);
    pg.stop().await;
    archive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_game_day_archives_only_into_its_own_archive_at_a_time_target() {
    let archive = Archive::make().await;
    let token = token();
    let pg = scratch_database(&token).await;
    let double = ApiServerDouble::start(SimulatedCnpg {
        postgres: Some(PgTarget::of(&pg.inst)),
        ..Default::default()
    })
    .await
    .expect("API server double");
    let at = Utc::now().trunc_subsecs(0);
    let scratch_destination = "s3://pgdrill/pgdrill/kube-gameday-scratch";
    let loaded = archive.load(&format!(
        "target: {{ time: \"{}\" }}\nscratch:\n  archive: {{ destination: {scratch_destination}, server_name: app-pg-gameday }}\n{}",
        at.to_rfc3339(),
        checks(&token)
    ));
    let rec = game_day(&double, Flavour::Plugin, &archive, &loaded, false).await;

    assert!(matches!(rec.status, Status::Passed), "{:#?}", rec.status);
    assert_eq!(rec.restore, RestoreOutcome::Recovered);
    assert_eq!(rec.backup_id.as_deref(), Some(archive.backup_id.as_str()));
    assert!(rec.checks.iter().all(|c| c.passed), "{:#?}", rec.checks);
    assert_eq!(rec.checks.len(), 2);
    // With the plugin, `Restore completed` is in the sidecar's log; `full-recovery` marks the
    // restore's end with `Creating new data directory`, so the Job splits as in-tree.
    let rto = rec.rto.as_ref().expect("an RTO");
    assert_eq!(
        phase_names(rto),
        [
            "job_scheduling",
            "restore_base_backup",
            "replay_until_consistent",
            "replay_and_promotion",
            "job_wrap_up",
            "instance_start",
            "first_query"
        ]
    );
    assert_eq!(rto.wal_segments_replayed, restored_lines(&double));

    let ns = gameday_namespace_name(RUN_ID, GAMEDAY);
    let calls = double.calls();
    assert_in_order(
        &calls,
        &[
            ("POST", "/api/v1/namespaces", false),
            (
                "PATCH",
                &format!("/namespaces/{ns}/secrets/pgdrill-s3"),
                false,
            ),
            (
                "PATCH",
                &format!("/namespaces/{ns}/objectstores/pgdrill-origin"),
                false,
            ),
            (
                "PATCH",
                &format!("/namespaces/{ns}/objectstores/pgdrill-scratch-archive"),
                false,
            ),
            (
                "PATCH",
                &format!("/namespaces/{ns}/clusters/scratch"),
                false,
            ),
            ("GET", &format!("/namespaces/{ns}/clusters"), true),
            (
                "GET",
                &format!("/namespaces/{ns}/secrets/scratch-superuser"),
                false,
            ),
            (
                "GET",
                &format!("/namespaces/{ns}/pods/scratch-1/portforward"),
                false,
            ),
            ("DELETE", &format!("/api/v1/namespaces/{ns}"), false),
        ],
    );
    assert_server_side_applies(&calls);

    let cluster = applied_cluster(&double, &ns);
    let spec = &cluster["spec"];
    assert!(spec.get("backup").is_none(), "{spec:#}");
    assert_eq!(
        spec["bootstrap"]["recovery"]["recoveryTarget"],
        json!({
            "backupID": archive.backup_id,
            "targetTime": pgdrill::ledger::pg_timestamp(&at),
        })
    );
    assert_eq!(
        spec["externalClusters"][0]["plugin"]["parameters"],
        json!({"barmanObjectName": "pgdrill-origin", "serverName": SERVER})
    );
    let archivers = spec["plugins"].as_array().expect("spec.plugins");
    assert_eq!(archivers.len(), 1);
    assert_eq!(archivers[0]["isWALArchiver"], true);
    assert_eq!(
        archivers[0]["parameters"],
        json!({"barmanObjectName": "pgdrill-scratch-archive", "serverName": "app-pg-gameday"})
    );
    let origin = &double.applied(&format!("/namespaces/{ns}/objectstores/pgdrill-origin"))[0];
    let configuration = &origin["spec"]["configuration"];
    assert_eq!(
        configuration["destinationPath"],
        archive.destination().as_str()
    );
    assert_eq!(configuration["endpointURL"], CLUSTER_S3);
    assert!(
        configuration.get("wal").is_none(),
        "read side: {configuration:#}"
    );
    let own = &double.applied(&format!(
        "/namespaces/{ns}/objectstores/pgdrill-scratch-archive"
    ))[0];
    assert_eq!(
        own["spec"]["configuration"]["destinationPath"],
        scratch_destination
    );
    assert!(double.object("namespaces", "", &ns).is_none());

    drop(double);
    pg.stop().await;
    archive.stop().await;
}

/// The restore job fails with PostgreSQL's FATAL: the game day fails with that message, found
/// in the job pod's log long before the deadline; with `keep` the namespace stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_signature_in_the_restore_log_fails_the_game_day() {
    let archive = Archive::make().await;
    let double = ApiServerDouble::start(SimulatedCnpg::default())
        .await
        .expect("API server double");
    let fatal = "recovery ended before configured recovery target was reached";
    double.set_failure("scratch", Failure::PostgresFatal(fatal.into()));
    let loaded = archive.load(&checks("never-read"));
    let rec = game_day(&double, Flavour::InTree, &archive, &loaded, true).await;

    let RestoreOutcome::Failed { message } = &rec.restore else {
        panic!("expected a failed restore, got {:?}", rec.restore);
    };
    assert!(message.contains(&format!("FATAL:  {fatal}")), "{message}");
    assert!(
        message.contains("scratch-1-full-recovery"),
        "names the pod: {message}"
    );
    assert!(
        !message.contains("not ready within"),
        "decided by the signature, not by the deadline: {message}"
    );
    let Status::Failed { reasons } = &rec.status else {
        panic!("expected a failed game day, got {:?}", rec.status);
    };
    assert!(reasons[0].starts_with("restore failed:"), "{reasons:?}");
    assert!(
        rec.checks.is_empty(),
        "no checks without a restored database"
    );
    assert!(rec.rto.is_none());

    let ns = gameday_namespace_name(RUN_ID, GAMEDAY);
    let calls = double.calls();
    assert_in_order(
        &calls,
        &[
            (
                "PATCH",
                &format!("/namespaces/{ns}/clusters/scratch"),
                false,
            ),
            ("GET", &format!("/namespaces/{ns}/pods"), false),
            ("GET", "/log", false),
        ],
    );
    assert!(
        !calls.iter().any(|c| c.path.ends_with("/portforward")),
        "nothing to connect to"
    );
    // Kept: the namespace stays for inspection, and the record says where.
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "DELETE" && c.path.ends_with(&format!("/namespaces/{ns}"))),
        "kept namespaces are not deleted"
    );
    assert!(double.object("namespaces", "", &ns).is_some());
    assert!(rec.kept.iter().any(|k| k.contains(&ns)), "{:?}", rec.kept);

    drop(double);
    archive.stop().await;
}

/// A scratch archive inside the archive under test is refused before any API call, even when
/// the request bypasses the game-day loader (which refuses it too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_scratch_archive_is_refused_before_any_api_call() {
    let double = ApiServerDouble::start(SimulatedCnpg::default())
        .await
        .expect("API server double");
    let destination = "s3://backups/prod";
    for flavour in [Flavour::InTree, Flavour::Plugin] {
        let mut restorer = KubeScratch::new(
            KubeOptions {
                client: double.client(),
                settings: settings(flavour),
                s3: S3Target {
                    endpoint: "http://127.0.0.1:9".into(),
                    region: "us-east-1".into(),
                    bucket: "backups".into(),
                    access_key: "ak".into(),
                    secret_key: "sk".into(),
                },
                ready_timeout: Duration::from_secs(5),
                poll_interval: Duration::from_millis(100),
                sweep: true,
                azure: None,
            },
            GAMEDAY,
            destination,
        );
        for (scratch_destination, server) in [
            ("s3://backups/prod", "pg-prod"),
            ("s3://backups/prod/pg-prod", "scratch"),
            ("s3://backups", "prod"),
        ] {
            let req = ScratchRequest {
                major: 16,
                server_name: "pg-prod".into(),
                backup_id: "20261121T020000".into(),
                target: ResolvedTarget::Latest,
                archive: Some((scratch_destination.into(), server.into())),
                timeout_seconds: 60,
            };
            let err = match restorer.restore(&req).await {
                Ok(_) => panic!("{flavour:?}: {scratch_destination}/{server} was not refused"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("overlaps the source archive"), "{err}");
        }
        assert!(restorer.teardown(Keep::Nothing).await.is_empty());
    }
    assert_eq!(
        double.call_lines(),
        Vec::<String>::new(),
        "no API call at all"
    );
}

/// The whole command: `pgdrill gameday --backend kube --flavour plugin` as a process, its
/// kubeconfig pointing at the double, its audit reading the real archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gameday_command_runs_on_kube_through_a_kubeconfig() {
    let archive = Archive::make().await;
    let token = token();
    let pg = scratch_database(&token).await;
    let double = ApiServerDouble::start(SimulatedCnpg {
        postgres: Some(PgTarget::of(&pg.inst)),
        ..Default::default()
    })
    .await
    .expect("API server double");
    let kubeconfig = archive.work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\n\
             users:\n- name: double\n  user: {{}}\ncontexts:\n- name: double\n  context:\n    \
             cluster: double\n    user: double\ncurrent-context: double\n",
            double.url()
        ),
    )
    .unwrap();
    let file = archive.gameday_file(&checks(&token));
    let reports = archive.work.path().join("reports");
    let endpoint = "http://s3.storage.svc.cluster.local:9000";
    let out = tokio::time::timeout(
        GAMEDAY_DEADLINE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pgdrill"))
            .args(["gameday", file.to_str().unwrap(), "--backend", "kube"])
            .args(["--flavour", "plugin", "--cluster-s3-endpoint", endpoint])
            .args([
                "--report-dir",
                reports.to_str().unwrap(),
                "--operator",
                "ci-test",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("AWS_ACCESS_KEY_ID", &archive.creds.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &archive.creds.secret_key)
            .env_remove("PGDRILL_KEEP")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("pgdrill gameday finished")
    .expect("pgdrill runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("game day: PASSED"), "{text}");
    assert!(!text.contains(&archive.creds.secret_key), "{text}");

    let dir = cli::gameday_dir(&reports, "gameday-kube-double-", &text);
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gameday.json")).unwrap()).unwrap();
    assert_eq!(rec["backend"], "kube", "{rec}");
    assert_eq!(rec["restore"]["kind"], "recovered", "{rec}");
    assert_eq!(rec["backup_id"], archive.backup_id.as_str());
    assert_eq!(rec["checks"][1]["observed"], token.as_str(), "{rec}");
    for f in ["gameday.xml", "gameday.md", "gameday.json"] {
        let t = std::fs::read_to_string(dir.join(f)).expect(f);
        assert!(
            !t.contains(&archive.creds.secret_key),
            "{f} holds the secret"
        );
    }

    // The namespace the command made (its run id is its own), in the plugin flavour, with the
    // cluster-side endpoint from the command line and the audit's endpoint nowhere in it.
    let calls = double.calls();
    let ns = calls
        .iter()
        .find(|c| c.method == "POST" && c.path == "/api/v1/namespaces")
        .and_then(Call::body_json)
        .and_then(|b| b["metadata"]["name"].as_str().map(str::to_string))
        .expect("a namespace was created");
    assert!(ns.starts_with("pgdrill-gameday-kube-double-"), "{ns}");
    assert!(text.contains(&format!("namespace {ns}")), "{text}");
    let origin = &double.applied(&format!("/namespaces/{ns}/objectstores/pgdrill-origin"))[0];
    assert_eq!(origin["spec"]["configuration"]["endpointURL"], endpoint);
    let cluster = applied_cluster(&double, &ns);
    assert!(cluster["spec"].get("plugins").is_none(), "archiving off");
    assert!(
        !cluster.to_string().contains(&archive.s3.endpoint),
        "pgdrill's own endpoint is not the pods'"
    );
    assert_in_order(
        &calls,
        &[
            (
                "PATCH",
                &format!("/namespaces/{ns}/clusters/scratch"),
                false,
            ),
            (
                "GET",
                &format!("/namespaces/{ns}/pods/scratch-1/portforward"),
                false,
            ),
            ("DELETE", &format!("/api/v1/namespaces/{ns}"), false),
        ],
    );
    assert!(double.object("namespaces", "", &ns).is_none());

    drop(double);
    pg.stop().await;
    archive.stop().await;
}
