//! The kube backend against the live one-node cluster of `cluster/up.sh`: a real Kubernetes
//! (API server, kubelet, containerd), the real CloudNativePG operator and barman-cloud plugin,
//! PostgreSQL in pods, pods archiving to the cluster's S3 endpoint. Nothing here is a double.
//!
//! Each flavour runs, through the `pgdrill` binary as a user would: a clean restore to latest,
//! the ADR 007 gap, a reused serverName, a PITR target (LSN), a content fault (a CRC-damaged
//! WAL record), and in-tree also the version mismatch; the verdicts and JUnit content are
//! checked, and that no namespace or object of the run is left. The Azure scenarios (31-33
//! in-tree, 31 with the plugin) archive to Azurite on the node's bridge address. A game day restores, through
//! the kube backend, an archive a local drill made; and Ctrl-C in the middle of a kube drill
//! leaves nothing behind. The CronJobs of `deploy/kubernetes/base`, with the pgdrill image built
//! from this checkout, audit archives local drills made (a clean one, then the ADR 007 gap) and
//! run a game day with the game-day service account's RBAC.
//!
//! The cluster is brought up when it is not (`bash cluster/up.sh`, which builds what is not
//! cached: long the first time), and left up. Needs root; without it these tests fail when
//! `CI` is set and say they did not run otherwise.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
#[path = "support/test_pg.rs"]
mod test_pg;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::Value;

use cli::{rto_json, rto_scenario, run_dir};
use junit::Junit;

/// What a test needs of the live cluster: its kubeconfig and its S3 endpoint for pods.
struct Live {
    kubeconfig: PathBuf,
    /// `AWS_*` and `PGDRILL_CLUSTER_S3_*` from the cluster's `s3.env`.
    s3: HashMap<String, String>,
    /// `AZURE_STORAGE_*` and `PGDRILL_CLUSTER_AZURE_ENDPOINT` from `azure.env` (Azurite on
    /// the node's bridge address), when `make setup` installed Azurite.
    azure: Option<HashMap<String, String>>,
}

impl Live {
    fn endpoint(&self) -> &str {
        &self.s3["PGDRILL_CLUSTER_S3_ENDPOINT"]
    }

    fn bucket(&self) -> &str {
        &self.s3["PGDRILL_CLUSTER_S3_BUCKET"]
    }

    /// The node's address on the pod bridge (where pods reach host services).
    fn node_ip(&self) -> std::net::IpAddr {
        let host = self.endpoint().trim_start_matches("http://");
        host.split(':').next().unwrap().parse().expect("node IP")
    }

    /// `pgdrill ARGS` with the cluster's kubeconfig and the S3 credentials of `s3`.
    fn pgdrill(&self, args: &[&str], creds: Option<(&str, &str)>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgdrill"));
        c.args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("PGDRILL_KEEP");
        let (key, secret) = creds.unwrap_or((
            &self.s3["AWS_ACCESS_KEY_ID"],
            &self.s3["AWS_SECRET_ACCESS_KEY"],
        ));
        c.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret);
        c
    }

    async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kube config");
        Client::try_from(cfg).expect("kube client")
    }

    /// Namespaces pgdrill made with label `label` (`key=value`) that still exist (terminating
    /// ones included).
    async fn namespaces(&self, label: &str) -> Vec<String> {
        let api: Api<Namespace> = Api::all(self.client().await);
        let lp =
            ListParams::default().labels(&format!("app.kubernetes.io/managed-by=pgdrill,{label}"));
        api.list(&lp)
            .await
            .expect("list namespaces")
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect()
    }

    async fn namespaces_of(&self, run_id: &str) -> Vec<String> {
        self.namespaces(&format!("pgdrill.io/run-id={run_id}"))
            .await
    }

    /// Poll until no namespace labelled `label` is left (deletion is asynchronous: the
    /// namespace controller empties a namespace before it goes, and CNPG's instances shut
    /// down), 300 s deadline.
    async fn assert_no_namespace_left(&self, label: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let left = self.namespaces(label).await;
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "namespaces labelled {label} still there after 300 s: {left:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn is_root() -> bool {
    pgdrill::backend::local::process::is_root()
}

/// The live cluster, brought up once per test process; `None` when it cannot run here and this
/// is not CI (the caller then says so and returns).
fn live() -> Option<&'static Live> {
    static LIVE: OnceLock<Option<Live>> = OnceLock::new();
    LIVE.get_or_init(|| {
        if !is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "the live cluster needs root (cluster/up.sh), and CI must run these tests"
            );
            eprintln!("kube_live: NOT RUN: the live cluster needs root (make cluster-up)");
            return None;
        }
        let up = Command::new("bash")
            .arg("cluster/up.sh")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PGDRILL", env!("CARGO_BIN_EXE_pgdrill"))
            .stdin(Stdio::null())
            .output()
            .expect("cluster/up.sh runs");
        assert!(
            up.status.success(),
            "cluster/up.sh failed:\n{}",
            cli::text(&up)
        );
        let home = pgdrill::backend::local::toolchain::default_home();
        let run = home.join("cluster/run");
        let env_file = |text: String| -> HashMap<String, String> {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let s3 =
            env_file(std::fs::read_to_string(run.join("s3.env")).expect("the cluster's s3.env"));
        let azure = std::fs::read_to_string(run.join("azure.env"))
            .ok()
            .map(env_file);
        Some(Live {
            kubeconfig: run.join("admin.kubeconfig"),
            s3,
            azure,
        })
    })
    .as_ref()
}

/// `pgdrill run --backend kube --flavour FLAVOUR` against the cluster's S3 endpoint, reports
/// into `reports`, then `extra` (flags and scenario files).
fn run_kube(live: &Live, flavour: &str, reports: &Path, extra: &[&str]) -> Command {
    let mut args = vec![
        "run",
        "--backend",
        "kube",
        "--flavour",
        flavour,
        "--s3-endpoint",
        live.endpoint(),
        "--cluster-s3-endpoint",
        live.endpoint(),
        "--s3-bucket",
        live.bucket(),
        "--report-dir",
        reports.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    live.pgdrill(&args, None)
}

fn run_id_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// The drills of one flavour, and what the real operator must have produced.
async fn drills(flavour: &str) {
    let Some(live) = live() else { return };
    let reports = tempfile::tempdir().unwrap();
    let mut scenarios = vec![
        "scenarios/01-clean-restore-latest.yaml",
        "scenarios/03-adr007-missing-wal-segment.yaml",
        "scenarios/04-wrong-server-name.yaml",
        "scenarios/06-pitr-lsn.yaml",
        "scenarios/20-corrupt-wal-crc.yaml",
    ];
    if flavour == "in-tree" {
        scenarios.push("scenarios/05-version-mismatch.yaml");
    }
    // One drill at a time per flavour; the two flavours run at once (cargo's test threads), so
    // two runs of the same scenarios share the cluster, as two users' runs would.
    let mut args = vec!["--jobs", "1"];
    args.extend_from_slice(&scenarios);
    let out = run_kube(live, flavour, reports.path(), &args)
        .output()
        .expect("pgdrill run");
    let text = cli::text(&out);
    let dir = run_dir(reports.path());
    let junit = Junit::read(&dir.join("junit.xml"));
    assert_eq!(out.status.code(), Some(0), "every drill passes:\n{text}");
    let rto = rto_json(&dir);

    // Every case passed, on kube, and says so in JUnit.
    for name in [
        "clean-restore-latest",
        "adr007-missing-wal-segment",
        "wrong-server-name",
        "pitr-lsn-after-step",
        "corrupt-wal-crc",
    ] {
        let case = junit.case(name);
        assert!(
            !case.is_failure() && !case.is_error(),
            "{flavour}: {name} passed:\n{case}"
        );
        assert_eq!(case.property("backend").as_deref(), Some("kube"), "{case}");
    }

    // Clean restore: every row, and the RTO split into the real operator's phases: the Job's
    // own log (restore, replay, promotion) between the pods' timestamps.
    let clean = junit.case("clean-restore-latest");
    assert_eq!(clean.property("rows.expected").as_deref(), Some("145"));
    assert_eq!(clean.property("rows.observed").as_deref(), Some("145"));
    assert_eq!(clean.property("rows.lost").as_deref(), Some("0"));
    let phases: Vec<String> = rto_scenario(&rto, "clean-restore-latest")["rto"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        phases,
        [
            "job_scheduling",
            "restore_base_backup",
            "replay_until_consistent",
            "replay_and_promotion",
            "job_wrap_up",
            "instance_start",
            "first_query"
        ],
        "{flavour}: RTO phases from the operator's pods and the Job's log"
    );
    for p in &phases {
        assert!(
            clean.property(&format!("rto.phase.{p}")).is_some(),
            "JUnit has rto.phase.{p}: {clean}"
        );
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).expect("summary.md");
    for p in [
        "| restore_base_backup |",
        "| replay_and_promotion |",
        "| instance_start |",
    ] {
        assert!(
            summary.contains(p),
            "summary.md has the phase {p}:\n{summary}"
        );
    }
    let replayed: u64 = clean
        .property("rto.wal_segments_replayed")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        replayed >= 3,
        "the backup's segment and the writes' segments were restored: {replayed}"
    );

    // ADR 007: the silent loss is caught, attributed to the deleted segment, and was predicted.
    let adr = junit.case("adr007-missing-wal-segment");
    assert_eq!(adr.property("rows.lost").as_deref(), Some("2"), "{adr}");
    assert_eq!(
        adr.property("audit.gaps").as_deref(),
        Some("000000010000000000000005"),
        "{adr}"
    );
    let adr_json = rto_scenario(&rto, "adr007-missing-wal-segment");
    let explained = adr_json["loss_explanation"].to_string();
    assert!(
        explained.contains("drop-w2-segment") && explained.contains("000000010000000000000005"),
        "{explained}"
    );

    // Reused serverName: CNPG refuses, and the reason is its own message, from whichever
    // container logged it (the plugin logs it in its sidecar).
    let reused = junit.case("wrong-server-name");
    let observed = reused.property("observation").unwrap_or_default();
    assert!(
        observed.contains("Expected empty archive"),
        "{flavour}: the operator's reason: {observed}"
    );

    // PITR by LSN: exactly the rows up to the target.
    let pitr = junit.case("pitr-lsn-after-step");
    assert_eq!(
        pitr.property("rows.expected"),
        pitr.property("rows.observed"),
        "{pitr}"
    );
    assert!(
        pitr.property("recovery.target")
            .is_some_and(|t| t.starts_with("lsn")),
        "{pitr}"
    );

    // Content fault: replay stops at the damaged record, PostgreSQL says why, rows attributed.
    let crc = junit.case("corrupt-wal-crc");
    assert_eq!(crc.property("rows.lost").as_deref(), Some("2"), "{crc}");
    let why = crc.property("recovery.replay_end").unwrap_or_default();
    assert!(
        why.contains("checksum in record at"),
        "PostgreSQL's reason from the Job's log: {why}"
    );

    if flavour == "in-tree" {
        let mismatch = junit.case("version-mismatch-15-to-16");
        assert!(!mismatch.is_failure(), "{mismatch}");
        let observed = mismatch.property("observation").unwrap_or_default();
        assert!(
            observed.contains("database files are incompatible with server"),
            "{observed}"
        );
    }

    // Nothing of the run is left: no namespace, no object under the run's prefix.
    let run_id = run_id_of(&dir);
    live.assert_no_namespace_left(&format!("pgdrill.io/run-id={run_id}"))
        .await;
    assert_prefix_empty(live, &run_id).await;
}

/// No object is left under the run's bucket prefix.
async fn assert_prefix_empty(live: &Live, run_id: &str) {
    let store = pgdrill::backend::objstore::ObjectStore::new(
        &target(live, None),
        &format!("pgdrill/{run_id}"),
    );
    let left = store.list("").await.expect("list the run's prefix");
    assert!(left.is_empty(), "objects of run {run_id} left: {left:?}");
}

/// The cluster's S3 endpoint as pgdrill reaches it.
fn target(live: &Live, creds: Option<(&str, &str)>) -> pgdrill::backend::objstore::S3Target {
    let (key, secret) = creds.unwrap_or((
        &live.s3["AWS_ACCESS_KEY_ID"],
        &live.s3["AWS_SECRET_ACCESS_KEY"],
    ));
    pgdrill::backend::objstore::S3Target {
        endpoint: live.endpoint().to_string(),
        region: "us-east-1".into(),
        bucket: live.bucket().to_string(),
        access_key: key.to_string(),
        secret_key: secret.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_tree_drills_on_the_live_cluster() {
    drills("in-tree").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_drills_on_the_live_cluster() {
    drills("plugin").await;
}

/// A game day through the kube backend on an archive a local drill made: the archive lives in
/// an S3 endpoint this test owns, on the node's bridge address so the recovery pods reach it;
/// the endpoint's log proves the game day only read it.
/// Azure Blob Storage on the live cluster: CNPG's pods archive to Azurite on the node's bridge
/// address through `azureCredentials` (a connection string on an emulator, whatever the
/// scenario's flavour: barman-cloud accepts nothing else there), pgdrill injects the ADR 007
/// fault and audits through the same account, and both flavours restore.
#[tokio::test(flavor = "multi_thread")]
async fn azure_drills_on_the_live_cluster() {
    let Some(live) = live() else { return };
    let Some(azure) = &live.azure else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no azure.env: cluster/up.sh found no Azurite (make setup installs it)"
        );
        eprintln!("kube_live: Azure NOT RUN: no Azurite on the cluster (make setup)");
        return;
    };
    let endpoint = azure["PGDRILL_CLUSTER_AZURE_ENDPOINT"].as_str();
    for (flavour, scenarios) in [
        (
            "in-tree",
            &[
                "scenarios/31-azure-clean-restore.yaml",
                "scenarios/32-azure-adr007-missing-wal-segment.yaml",
                "scenarios/33-azure-wrong-server-name.yaml",
            ][..],
        ),
        ("plugin", &["scenarios/31-azure-clean-restore.yaml"][..]),
    ] {
        let reports = tempfile::tempdir().unwrap();
        let mut args = vec!["--jobs", "1", "--azure-endpoint", endpoint];
        args.extend_from_slice(scenarios);
        let out = run_kube(live, flavour, reports.path(), &args)
            .env("AZURE_STORAGE_ACCOUNT", &azure["AZURE_STORAGE_ACCOUNT"])
            .env("AZURE_STORAGE_KEY", &azure["AZURE_STORAGE_KEY"])
            .output()
            .expect("pgdrill run");
        let text = cli::text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flavour}: every Azure drill passes:\n{text}"
        );
        let dir = run_dir(reports.path());
        let junit = Junit::read(&dir.join("junit.xml"));
        let clean = junit.case("azure-clean-restore");
        assert_eq!(
            clean.property("backend").as_deref(),
            Some("kube"),
            "{clean}"
        );
        assert_eq!(
            clean.property("rows.observed").as_deref(),
            Some("145"),
            "{clean}"
        );
        assert!(
            text.contains(&format!("{endpoint}/pgdrill/pgdrill/")) || text.contains("azure://"),
            "{flavour}: the clusters archive to the Azure container:\n{text}"
        );
        if flavour == "in-tree" {
            let adr = junit.case("azure-adr007-missing-wal-segment");
            assert_eq!(adr.property("rows.lost").as_deref(), Some("2"), "{adr}");
            assert!(
                adr.property("audit.gaps").is_some_and(|g| !g.is_empty()),
                "{adr}"
            );
            let reused = junit.case("azure-wrong-server-name");
            let observed = reused.property("observation").unwrap_or_default();
            assert!(observed.contains("Expected empty archive"), "{observed}");
        }
        let key = &azure["AZURE_STORAGE_KEY"][..20];
        for f in ["summary.md", "junit.xml", "rto.json"] {
            let body = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(!body.contains(key), "{f} carries the account key");
        }
        assert!(!text.contains(key), "the output carries the account key");
        // Nothing of the run is left: no namespace, no blob under the run's prefix.
        let run_id = run_id_of(&dir);
        live.assert_no_namespace_left(&format!("pgdrill.io/run-id={run_id}"))
            .await;
        let target = pgdrill::backend::azure::AzureTarget::external(
            Some(endpoint),
            &azure["AZURE_STORAGE_ACCOUNT"],
            &azure["AZURE_STORAGE_KEY"],
            "pgdrill",
        );
        let store =
            pgdrill::backend::objstore::ObjectStore::azure(&target, &format!("pgdrill/{run_id}"))
                .unwrap();
        let left = store.list("").await.expect("list the run's prefix");
        assert!(left.is_empty(), "blobs of run {run_id} left: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn game_day_on_the_live_cluster() {
    let Some(live) = live() else { return };
    let archive = test_pg::TestArchive::start_on(live.node_ip(), "kube-live-gameday-").await;
    let made = archive
        .drill(
            "pgdrill/kube-live",
            "scenarios/01-clean-restore-latest.yaml",
            false,
        )
        .await;
    assert_eq!(
        made.status,
        pgdrill::runner::Status::Passed,
        "the local drill that makes the archive: {:?}",
        made.recovery.observation
    );
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("kube-live.yaml");
    std::fs::write(
        &file,
        format!(
            "name: kube-live\n\
             archive:\n  destination: s3://pgdrill/pgdrill/kube-live/clean-restore-latest\n  \
             server_name: app-pg\n  endpoint: {endpoint}\n\
             postgres: 15\ntarget: latest\nrpo_budget_seconds: 600\n\
             checks:\n  - {{ name: orders, sql: select count(*) from orders, equals: \"120\" }}\n  \
             - {{ name: customers, sql: select count(*) from customers, equals: \"25\" }}\n",
            endpoint = archive.s3.endpoint
        ),
    )
    .unwrap();
    for flavour in ["in-tree", "plugin"] {
        archive.s3.operations.clear();
        let reports = work.path().join(format!("reports-{flavour}"));
        let out = live
            .pgdrill(
                &[
                    "gameday",
                    file.to_str().unwrap(),
                    "--backend",
                    "kube",
                    "--flavour",
                    flavour,
                    "--cluster-s3-endpoint",
                    &archive.s3.endpoint,
                    "--operator",
                    "kube-live-test",
                    "--report-dir",
                    reports.to_str().unwrap(),
                ],
                Some((&archive.creds.access_key, &archive.creds.secret_key)),
            )
            .output()
            .expect("pgdrill gameday");
        let text = cli::text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flavour} game day passes:\n{text}"
        );
        let dir = std::fs::read_dir(&reports)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_dir() && p.file_name().unwrap() != "latest")
            .expect("the game day's report folder");
        let record: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("gameday.json")).unwrap())
                .unwrap();
        assert_eq!(record["backend"], "kube", "{record}");
        let checks = record["checks"].as_array().expect("checks");
        assert_eq!(checks.len(), 2, "{record}");
        for c in checks {
            assert_eq!(c["passed"], true, "{flavour}: {c}");
        }
        let phases = record["rto"]["phases"].to_string();
        assert!(
            phases.contains("restore_base_backup") && phases.contains("instance_start"),
            "{flavour}: RTO phases from the operator: {phases}"
        );
        let xml = std::fs::read_to_string(dir.join("gameday.xml")).unwrap();
        assert!(
            !xml.contains("<failure") && !xml.contains("<error"),
            "{xml}"
        );
        // The scratch cluster archived nowhere: the archive under test was only read.
        archive.assert_only_reads("clean-restore-latest/app-pg/");
        live.assert_no_namespace_left("pgdrill.io/gameday=kube-live")
            .await;
    }
    archive.s3.shutdown().await;
}

/// Ctrl-C while the source cluster is coming up: pgdrill tears the namespace and the run's
/// prefix down and exits 130.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_mid_drill_leaves_nothing_on_the_live_cluster() {
    let Some(live) = live() else { return };
    let reports = tempfile::tempdir().unwrap();
    let child = run_kube(
        live,
        "in-tree",
        reports.path(),
        &["scenarios/01-clean-restore-latest.yaml"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("pgdrill run");
    // Wait until the run's namespace holds the source Cluster's pod, i.e. mid-drill.
    let deadline = Instant::now() + Duration::from_secs(180);
    let run_id = loop {
        let dirs: Vec<PathBuf> = std::fs::read_dir(reports.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Some(d) = dirs.iter().find(|p| p.file_name().unwrap() != "latest") {
            let id = run_id_of(d);
            let namespaces = live.namespaces_of(&id).await;
            if let Some(ns) = namespaces.first() {
                let pods: Api<k8s_openapi::api::core::v1::Pod> =
                    Api::namespaced(live.client().await, ns);
                if !pods
                    .list(&ListParams::default())
                    .await
                    .unwrap()
                    .items
                    .is_empty()
                {
                    break id;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no pod of the drill within 180 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("pgdrill exits");
    assert_eq!(status.status.code(), Some(130), "{}", cli::text(&status));
    live.assert_no_namespace_left(&format!("pgdrill.io/run-id={run_id}"))
        .await;
    assert_prefix_empty(live, &run_id).await;
}

/// The shell value of `VAR` after `source cluster/lib.sh` (paths of the cluster's builds).
fn cluster_var(var: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source cluster/lib.sh && echo \"${var}\""))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("bash");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `kubectl ARGS` of the cluster's own build, with its admin kubeconfig.
fn kubectl(live: &Live, args: &[&str]) -> std::process::Output {
    Command::new(format!("{}/kubectl", cluster_var("K8S_BIN")))
        .args(args)
        .env("KUBECONFIG", &live.kubeconfig)
        .output()
        .expect("kubectl runs")
}

/// The overlay a user would write over `deploy/kubernetes/base` (in `dir`, a directory of
/// `target/`), aimed at one archive of the
/// test's S3 endpoint: the audit every minute, the game day suspended (with `dir/gameday.yaml`
/// as its file when there is one), metrics into `textfile`.
#[allow(clippy::too_many_arguments)]
fn cron_overlay(
    dir: &Path,
    namespace: &str,
    image: &str,
    archive_url: &str,
    server_name: &str,
    endpoint: &str,
    creds: (&str, &str),
    textfile: &Path,
) {
    let (name, tag) = image.rsplit_once(':').unwrap();
    // kustomize takes a base only by a relative path: `dir` is two levels under the crate.
    let base = "../../deploy/kubernetes/base";
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             namespace: {namespace}\n\
             resources:\n  - namespace.yaml\n  - {base}\n\
             images:\n  - name: ghcr.io/pgdrill/pgdrill\n    newName: {name}\n    newTag: \"{tag}\"\n\
             secretGenerator:\n  - name: aws-creds\n    options: {{ disableNameSuffixHash: true }}\n    \
             literals: [ACCESS_KEY_ID={key}, ACCESS_SECRET_KEY={secret}]\n\
             configMapGenerator:\n{gameday}  - name: pgdrill-archive\n    behavior: replace\n    literals:\n      \
             - PGDRILL_ARCHIVE_URL={archive_url}\n      - PGDRILL_SERVER_NAME={server_name}\n      \
             - PGDRILL_S3_ENDPOINT={endpoint}\n      - AWS_DEFAULT_REGION=us-east-1\n\
             patches:\n  - target: {{ kind: CronJob, name: pgdrill-audit }}\n    patch: |-\n      \
             - {{ op: replace, path: /spec/schedule, value: \"* * * * *\" }}\n  \
             - target: {{ kind: CronJob, name: pgdrill-gameday }}\n    patch: |-\n      \
             - {{ op: add, path: /spec/suspend, value: true }}\n  \
             - target: {{ kind: CronJob }}\n    patch: |-\n      \
             apiVersion: batch/v1\n      kind: CronJob\n      metadata: {{ name: any }}\n      \
             spec: {{ jobTemplate: {{ spec: {{ template: {{ spec: {{ volumes: \
             [ {{ name: metrics, hostPath: {{ path: {textfile}, type: Directory }} }} ] }} }} }} }} }}\n",
            key = creds.0,
            secret = creds.1,
            textfile = textfile.display(),
            // The game-day file, once the test has written it.
            gameday = if dir.join("gameday.yaml").exists() {
                "  - name: pgdrill-gameday\n    behavior: replace\n    files: [gameday.yaml]\n"
            } else {
                ""
            },
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("namespace.yaml"),
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"),
    )
    .unwrap();
}

/// Poll (240 s deadline) for a Job the CronJob controller created for `cronjob` that
/// finished; returns its name and whether it succeeded.
async fn next_cron_job(live: &Live, namespace: &str, cronjob: &str) -> (String, bool) {
    use k8s_openapi::api::batch::v1::Job;
    let api: Api<Job> = Api::namespaced(live.client().await, namespace);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let jobs = api.list(&ListParams::default()).await.expect("list jobs");
        for j in jobs.items {
            let name = j.metadata.name.clone().unwrap_or_default();
            let owned = j
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "CronJob" && o.name == cronjob);
            let status = j.status.unwrap_or_default();
            let (ok, failed) = (
                status.succeeded.unwrap_or(0) > 0,
                status.failed.unwrap_or(0) > 0,
            );
            if owned && (ok || failed) {
                return (name, ok);
            }
        }
        if Instant::now() >= deadline {
            let seen = kubectl(live, &["-n", namespace, "get", "cronjobs,jobs,pods,events"]);
            panic!(
                "no Job of CronJob {cronjob} finished within 240 s:\n{}",
                cli::text(&seen)
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Job `job` made from CronJob `cronjob`'s template (`kubectl create job --from`), as its
/// schedule would make it; whether it succeeded within `seconds`.
async fn job_from_cronjob(live: &Live, ns: &str, cronjob: &str, job: &str, seconds: u64) -> bool {
    let from = format!("--from=cronjob/{cronjob}");
    let created = kubectl(live, &["-n", ns, "create", "job", job, &from]);
    assert!(created.status.success(), "{}", cli::text(&created));
    job_outcome(live, ns, job, Duration::from_secs(seconds)).await
}

/// Poll (deadline `within`) until Job `name` finished; whether it succeeded.
async fn job_outcome(live: &Live, namespace: &str, name: &str, within: Duration) -> bool {
    use k8s_openapi::api::batch::v1::Job;
    let api: Api<Job> = Api::namespaced(live.client().await, namespace);
    let deadline = Instant::now() + within;
    loop {
        if let Ok(j) = api.get(name).await {
            let s = j.status.unwrap_or_default();
            if s.succeeded.unwrap_or(0) > 0 {
                return true;
            }
            if s.failed.unwrap_or(0) > 0 {
                return false;
            }
        }
        if Instant::now() >= deadline {
            let seen = kubectl(live, &["-n", namespace, "get", "jobs,pods,events"]);
            panic!(
                "Job {name} did not finish within {}s:\n{}",
                within.as_secs(),
                cli::text(&seen)
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `deploy/kubernetes` on the live cluster: the pgdrill image built from this checkout, the
/// CronJob scheduled by the real controller, audits reading archives local drills made in an S3
/// endpoint the pods reach, metrics written to the textfile directory. Pointed at a clean
/// archive its metrics say no gap; pointed at the archive the ADR 007 drill left, the next
/// scheduled run finds the gap the drill's fault made, fails (exit 1), and its metrics say so.
#[tokio::test(flavor = "multi_thread")]
async fn audit_cronjob_on_the_live_cluster() {
    let Some(live) = live() else { return };
    let archive = test_pg::TestArchive::start_on(live.node_ip(), "kube-live-cron-").await;
    for (prefix, file) in [
        ("pgdrill/cron", "scenarios/01-clean-restore-latest.yaml"),
        (
            "pgdrill/cron",
            "scenarios/03-adr007-missing-wal-segment.yaml",
        ),
    ] {
        let made = archive.drill(prefix, file, false).await;
        assert_eq!(
            made.status,
            pgdrill::runner::Status::Passed,
            "{file}: {:?}",
            made.recovery.observation
        );
    }
    let image = Command::new("bash")
        .args(["cluster/pgdrill-image.sh", env!("CARGO_BIN_EXE_pgdrill")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cluster/pgdrill-image.sh");
    assert!(image.status.success(), "{}", cli::text(&image));
    let image = String::from_utf8_lossy(&image.stdout).trim().to_string();

    let work = tempfile::tempdir().unwrap();
    let textfile = work.path().join("textfile");
    std::fs::create_dir(&textfile).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&textfile, std::fs::Permissions::from_mode(0o777)).unwrap();
    let overlay_dir = tempfile::Builder::new()
        .prefix("cron-overlay-")
        .tempdir_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .unwrap();
    let overlay = overlay_dir.path().to_path_buf();
    let ns = "pgdrill-cron-live";
    // Whatever happens below, the overlay's objects go (the namespace, the ClusterRole).
    struct Applied<'a>(&'a Live, PathBuf);
    impl Drop for Applied<'_> {
        fn drop(&mut self) {
            let k = self.1.join("kustomization.yaml");
            if k.exists() {
                let _ = kubectl(
                    self.0,
                    &["delete", "-k", self.1.to_str().unwrap(), "--wait=false"],
                );
            }
        }
    }
    let _applied = Applied(live, overlay.clone());
    let creds = (
        archive.creds.access_key.as_str(),
        archive.creds.secret_key.as_str(),
    );
    archive.s3.operations.clear();
    for (scenario, server, gap) in [
        ("clean-restore-latest", "app-pg", false),
        ("adr007-missing-wal-segment", "pg-src", true),
    ] {
        let url = format!("s3://pgdrill/pgdrill/cron/{scenario}");
        cron_overlay(
            &overlay,
            ns,
            &image,
            &url,
            server,
            &archive.s3.endpoint,
            creds,
            &textfile,
        );
        let applied = kubectl(live, &["apply", "-k", overlay.to_str().unwrap()]);
        assert!(applied.status.success(), "{}", cli::text(&applied));
        // The first audit is the controller's own schedule; the second, to save a minute,
        // a Job made from the CronJob's template as `kubectl create job --from` makes it.
        let (job, ok) = if gap {
            let job = "audit-now".to_string();
            let ok = job_from_cronjob(live, ns, "pgdrill-audit", &job, 240).await;
            (job, ok)
        } else {
            next_cron_job(live, ns, "pgdrill-audit").await
        };
        let logs = kubectl(live, &["-n", ns, "logs", &format!("job/{job}")]);
        let logs = cli::text(&logs);
        assert_eq!(ok, !gap, "Job {job} of {scenario}:\n{logs}");
        let prom = textfile.join(format!("pgdrill_audit_{server}.prom"));
        let metrics = std::fs::read_to_string(&prom)
            .unwrap_or_else(|e| panic!("{}: {e}\n{logs}", prom.display()));
        let series = |name: &str| {
            let head = format!("{name}{{server_name=\"{server}\",destination=\"{url}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(head.as_str())?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {head}in\n{metrics}"))
        };
        assert_eq!(series("pgdrill_archive_reachable"), 1.0, "{metrics}");
        assert_eq!(series("pgdrill_base_backups_completed"), 1.0, "{metrics}");
        assert_eq!(
            series("pgdrill_wal_missing_segments"),
            if gap { 1.0 } else { 0.0 },
            "{metrics}\n{logs}"
        );
        assert_eq!(
            series("pgdrill_audit_ok"),
            if gap { 0.0 } else { 1.0 },
            "{metrics}"
        );
    }
    // The audits only ever read the archives.
    archive.assert_only_reads("cron/adr007-missing-wal-segment/pg-src/");

    // The game-day CronJob (suspended, as a schedule would start it: a Job from its template)
    // restores the clean archive into a scratch namespace with its own service account.
    archive.s3.operations.clear();
    std::fs::write(
        overlay.join("gameday.yaml"),
        format!(
            "name: cron-live\narchive:\n  destination: s3://pgdrill/pgdrill/cron/clean-restore-latest\n  \
             server_name: app-pg\n  endpoint: {endpoint}\npostgres: 15\ntarget: latest\n\
             checks:\n  - {{ name: orders, sql: select count(*) from orders, equals: \"120\" }}\n",
            endpoint = archive.s3.endpoint
        ),
    )
    .unwrap();
    let clean = "s3://pgdrill/pgdrill/cron/clean-restore-latest";
    cron_overlay(
        &overlay,
        ns,
        &image,
        clean,
        "app-pg",
        &archive.s3.endpoint,
        creds,
        &textfile,
    );
    let applied = kubectl(live, &["apply", "-k", overlay.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", cli::text(&applied));
    let ok = job_from_cronjob(live, ns, "pgdrill-gameday", "gameday-now", 900).await;
    let logs = cli::text(&kubectl(live, &["-n", ns, "logs", "job/gameday-now"]));
    assert!(ok, "the game-day Job passes:\n{logs}");
    assert!(logs.contains("game day: PASSED"), "{logs}");
    let prom = textfile.join("pgdrill_gameday_app-pg.prom");
    let metrics = std::fs::read_to_string(&prom)
        .unwrap_or_else(|e| panic!("{}: {e}\n{logs}", prom.display()));
    assert!(
        metrics.lines().any(
            |l| l.starts_with("pgdrill_gameday_success{gameday=\"cron-live\"")
                && l.ends_with("} 1.0")
        ),
        "{metrics}"
    );
    archive.assert_only_reads("cron/clean-restore-latest/app-pg/");
    live.assert_no_namespace_left("pgdrill.io/gameday=cron-live")
        .await;
    archive.s3.shutdown().await;
}
