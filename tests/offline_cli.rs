//! The `pgdrill` binary where it must stop before anything runs: invalid scenarios (exit 2,
//! with file:line), the kube backend refusing what it cannot run, or finding no cluster,
//! before any API call (exit 2 or 3), and `serve-s3` unable to start (exit 3, its cause said
//! once). Offline: no PostgreSQL, no S3 endpoint, no cluster.
//! Asserts exit codes, messages, and that no report directory was written.

use std::path::Path;
use std::process::{Command, Output};

#[path = "support/cli.rs"]
mod cli;
use cli::{pgdrill, text};

/// The shipped `target: random` scenario.
const RANDOM_TARGETS: &str = "scenarios/30-random-pitr-targets.yaml";

/// `pgdrill run --backend kube --report-dir ROOT FILE` with no cluster (`KUBECONFIG` names a
/// missing file under `dir`) and no AWS credentials: the refusal must come first, one that
/// came later would exit 3.
fn run_kube_without_cluster(dir: &Path, root: &Path, file: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["run", "--backend", "kube", "--report-dir"])
        .arg(root)
        .arg(file)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", dir.join("none"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("pgdrill runs")
}

// ---- Invalid scenarios: exit 2, nothing run.

#[test]
fn an_invalid_scenario_exits_2_and_runs_nothing() {
    let reports = tempfile::tempdir().unwrap();
    let root = reports.path().join("r");
    let out = pgdrill(&[
        "run",
        "--report-dir",
        root.to_str().unwrap(),
        "tests/scenarios/invalid-unknown-key.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("tests/scenarios/invalid-unknown-key.yaml:7:"),
        "file:line in {msg}"
    );
    assert!(msg.contains("own_segement"), "{msg}");
    assert!(
        !root.exists(),
        "no report directory for a run that never started"
    );
    let out = pgdrill(&["validate", "tests/scenarios/invalid-unknown-key.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// `name: [[[[…]]]]` 100,000 deep once took minutes and 23 GB (libyaml's scanner is quadratic
/// in flow nesting, the position index was quadratic in path length): now the nesting limit
/// refuses it at the first list too deep, for scenario and game-day files alike, and a file
/// over 1 MiB is refused unread.
#[test]
fn deep_nesting_and_huge_files_are_refused_with_their_position() {
    let work = tempfile::tempdir().unwrap();
    let deep = work.path().join("deep.yaml");
    let depth = 100_000;
    std::fs::write(
        &deep,
        format!("name: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
    )
    .unwrap();
    let deep = deep.to_str().unwrap();
    for args in [vec!["validate", deep], vec!["gameday", deep]] {
        let out = pgdrill(&args);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {msg}");
        assert!(
            msg.contains(&format!(
                "{deep}:1:70: maps and lists are nested more than 64"
            )),
            "{args:?}: {msg}"
        );
    }
    let big = work.path().join("big.yaml");
    std::fs::write(
        &big,
        format!("name: big\ndescription: {}\n", "x".repeat(2 << 20)),
    )
    .unwrap();
    let out = pgdrill(&["validate", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("scenario file is larger than 1048576 bytes"),
        "{}",
        text(&out)
    );
}

#[test]
fn every_shipped_scenario_validates() {
    let out = pgdrill(&["validate", "scenarios"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = pgdrill(&["list"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        std::fs::read_dir("scenarios").unwrap().count()
    );
}

#[test]
fn an_undecompressable_fault_on_an_uncompressed_archive_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/21-corrupt-wal-undecompressable.yaml"),
    )
    .unwrap()
    .replace("compression: bzip2", "compression: none");
    let file = dir.path().join("uncompressed.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let line = yaml
        .lines()
        .position(|l| l.contains("mode: undecompressable"))
        .unwrap()
        + 1;
    let root = dir.path().join("reports");
    let out = pgdrill(&[
        "run",
        "--report-dir",
        root.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains(&format!("uncompressed.yaml:{line}:")),
        "file:line in {msg}"
    );
    assert!(
        msg.contains("step `garble-w2`") && msg.contains("needs a compressed archive"),
        "{msg}"
    );
    assert!(!root.exists(), "nothing ran");
}

#[test]
fn a_random_target_with_expectations_of_one_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    let yaml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(RANDOM_TARGETS))
        .unwrap()
        .replace(
            "    rto_budget_seconds: 120\n",
            "    rows: { orders: 61 }\n    rto_budget_seconds: 120\n",
        );
    std::fs::write(&file, yaml).unwrap();
    let out = pgdrill(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("bad.yaml:32:"), "file:line: {msg}");
    assert!(
        msg.contains("`expect.recovered.rows` cannot be checked with `target: random`"),
        "{msg}"
    );
}

// ---- The kube backend: what it cannot run is refused, and no cluster is exit 3, before any
// ---- API call.

#[test]
fn the_kube_backend_refuses_crashes_and_error_windows_before_any_api_call() {
    for (file, what) in [
        (
            "scenarios/12-crash-unarchived-writes.yaml",
            "`crash` (step `kill-primary`)",
        ),
        (
            "scenarios/17-wrong-credentials.yaml",
            "`object_store_errors` (step `rotated-keys`)",
        ),
        (
            "scenarios/25-recovery-read-errors.yaml",
            "`recovery.object_store_errors` (an error window over recovery's reads)",
        ),
        (
            "scenarios/26-crash-during-base-backup.yaml",
            "`crash_source` (base backup `base2`, a crash in the middle of a backup)",
        ),
        (
            "scenarios/27-recovering-server-killed.yaml",
            "`recovery.restart` (a kill of the recovering server mid-replay)",
        ),
        (
            "scenarios/34-logical-backup-restore.yaml",
            "`recovery.method: logical` (restoring a logical backup)",
        ),
        (
            "scenarios/37-runbook-restore.yaml",
            "`recovery.command` (your own restore script)",
        ),
    ] {
        let reports = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
            .args(["run", "--backend", "kube", "--report-dir"])
            .arg(reports.path())
            .arg(file)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            // No cluster: reaching the API would be an infrastructure error (exit 3).
            .env("KUBECONFIG", reports.path().join("no-such-kubeconfig"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .expect("pgdrill runs");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(file), "{text}");
        assert!(text.contains(what), "{text}");
        assert!(text.contains("--backend local"), "{text}");
    }
}

/// The kube backend refuses a failover scenario before any API call (exit 2).
#[test]
fn the_kube_backend_refuses_a_failover_before_touching_a_cluster() {
    let reports = tempfile::tempdir().unwrap();
    let root = reports.path().join("r");
    let out = run_kube_without_cluster(
        reports.path(),
        &root,
        "scenarios/24-timeline2-history-deleted.yaml",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("scenarios/24-timeline2-history-deleted.yaml")
            && msg.contains("uses `failover` (step `f1`), which the kube backend does not support"),
        "{msg}"
    );
    assert!(!root.exists(), "nothing ran, no report");
}

#[test]
fn the_kube_backend_refuses_random_targets_before_any_api_call() {
    let reports = tempfile::tempdir().unwrap();
    let root = reports.path().join("r");
    let out = run_kube_without_cluster(reports.path(), &root, RANDOM_TARGETS);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`target: random`") && text(&out).contains("--backend local"),
        "{}",
        text(&out)
    );
    assert!(!root.exists(), "no report directory: nothing ran");

    let out = pgdrill(&[
        "render",
        "--out",
        reports.path().join("m").to_str().unwrap(),
        RANDOM_TARGETS,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn skip_unsupported_leaves_local_only_scenarios_out_of_a_kube_run() {
    let run = |files: &[&str]| {
        let reports = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
            .args([
                "run",
                "--backend",
                "kube",
                "--skip-unsupported",
                "--report-dir",
            ])
            .arg(reports.path())
            .args(files)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("KUBECONFIG", reports.path().join("no-such-kubeconfig"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .expect("pgdrill runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The crash scenario is left out and said so; the clean one goes on to the API server,
    // which does not exist here: an infrastructure error (3), not a refusal (2).
    let (code, err) = run(&[
        "scenarios/12-crash-unarchived-writes.yaml",
        "scenarios/01-clean-restore-latest.yaml",
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("skipped scenarios/12-crash-unarchived-writes.yaml"),
        "{err}"
    );
    assert!(!err.contains("skipped scenarios/01"), "{err}");
    // Nothing left to run is a usage error.
    let (code, err) = run(&["scenarios/12-crash-unarchived-writes.yaml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nothing to run"), "{err}");
}

/// `pgdrill gameday --backend kube` with no usable kubeconfig: exit 3, and no report directory.
#[test]
fn without_a_kubeconfig_gameday_exits_3_before_writing_reports() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("g.yaml");
    std::fs::write(
        &file,
        "name: no-cluster\narchive:\n  destination: s3://backups/prod\n  server_name: pg-prod\n  \
         endpoint: http://127.0.0.1:9\npostgres: 15\n",
    )
    .unwrap();
    let reports = work.path().join("reports");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["gameday", file.to_str().unwrap(), "--backend", "kube"])
        .args(["--report-dir", reports.to_str().unwrap()])
        .env("KUBECONFIG", work.path().join("no-such-kubeconfig"))
        .env("HOME", work.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("AWS_ACCESS_KEY_ID", "ak")
        .env("AWS_SECRET_ACCESS_KEY", "sk")
        .env_remove("PGDRILL_KEEP")
        .output()
        .expect("pgdrill runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("no usable Kubernetes client"), "{text}");
    assert!(
        !reports.exists(),
        "no report directory before the client exists"
    );
}

// ---- Credentials never appear in help text.

#[test]
fn help_never_shows_credential_values_from_the_environment() {
    let (key, secret) = ("AKIAHELPTESTKEY00001", "help-test-secret-value");
    let commands: [&[&str]; 4] = [
        &["--help"],
        &["run", "--help"],
        &["audit", "--help"],
        &["serve-s3", "--help"],
    ];
    for args in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .output()
            .expect("pgdrill runs");
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {msg}");
        assert!(!msg.contains(key), "{args:?} shows the access key: {msg}");
        assert!(!msg.contains(secret), "{args:?} shows the secret: {msg}");
    }
}

// ---- serve-s3: a start-up error says its cause once, exit 3, nothing served.

#[test]
fn serve_s3_says_once_why_it_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let serve = |root: &Path| {
        pgdrill(&[
            "serve-s3",
            "--dir",
            root.to_str().unwrap(),
            "--port",
            &port,
            "--access-key",
            "a",
            "--secret-key",
            "b",
        ])
    };
    let out = serve(dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    let want = format!("pgdrill: embedded S3 cannot bind 127.0.0.1:{port}: ");
    assert!(msg.starts_with(&want), "{msg}");
    assert_eq!(msg.matches("os error").count(), 1, "the cause once: {msg}");
    assert!(out.stdout.is_empty(), "nothing served");

    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out = serve(&file);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.starts_with("pgdrill: cannot create bucket dir under"),
        "{msg}"
    );
    assert_eq!(msg.matches("os error").count(), 1, "the cause once: {msg}");
}

// ---- `pgdrill rto-model`: the fit over recorded RTOs, offline.

/// A run's rto.json made from RTO = 5 s + size / 50 MB/s + WAL / 100 MB/s, with noise of a few
/// tenths of a second, plus one recovery without bytes and one that did not recover.
const RTO_MODEL_FIXTURE: &str = "tests/fixtures/rto-model";

#[test]
fn rto_model_recovers_the_rates_and_judges_an_objective() {
    let out = pgdrill(&[
        "rto-model",
        RTO_MODEL_FIXTURE,
        "--size",
        "10GB",
        "--wal",
        "1GB",
        "--objective",
        "5m",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("6 recoveries with bytes in 1 report(s); 1 without bytes left out"),
        "{t}"
    );
    assert!(t.contains("restore rate  50.0 MB/s"), "{t}");
    assert!(t.contains("replay rate   99.7 MB/s"), "{t}");
    assert!(t.contains("extrapolated: that size is 5.0×"), "{t}");
    assert!(t.contains("Objective 300 s (5m 00s): holds"), "{t}");

    // 100 GiB at 50 MB/s is over half an hour: the objective fails, exit 1.
    let file = format!("{RTO_MODEL_FIXTURE}/rto.json");
    let out = pgdrill(&[
        "rto-model",
        &file,
        "--size",
        "100GiB",
        "--wal",
        "20GiB",
        "--objective",
        "5m",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("does not hold"), "{t}");
}

#[test]
fn rto_model_says_why_it_cannot_fit_instead_of_printing_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let same_size: Vec<String> = [1, 2, 3, 4]
        .iter()
        .map(|i| {
            format!(
                r#"{{"name":"s{i}","rto":{{"seconds":{},"base_backup_bytes":100000000,"wal_replayed_bytes":{}}}}}"#,
                5 + i,
                i * 16_000_000
            )
        })
        .collect();
    let file = dir.path().join("rto.json");
    std::fs::write(
        &file,
        format!(r#"{{"scenarios":[{}]}}"#, same_size.join(",")),
    )
    .unwrap();
    let out = pgdrill(&["rto-model", file.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("every recovery restored about the same size"),
        "{t}"
    );
    assert!(!t.contains("MB/s"), "{t}");

    // A directory holding no report.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = pgdrill(&["rto-model", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("neither rto.json nor gameday.json"));
}

/// An Azure scenario asking for an S3 endpoint behaviour is invalid (file, line, scenario,
/// key), and a valid Azure scenario is refused by the kube backend with the reason; both
/// before anything runs.
#[test]
fn azure_scenarios_are_checked_before_anything_runs() {
    let work = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/31-azure-clean-restore.yaml"),
    )
    .unwrap();
    let bad = work.path().join("azure-latency.yaml");
    std::fs::write(
        &bad,
        shipped.replace(
            "object_store: azure ",
            "object_store: { provider: azure, latency_ms: 20 } ",
        ),
    )
    .unwrap();
    let out = pgdrill(&["validate", bad.to_str().unwrap()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("azure-latency.yaml:8:"), "file:line in {msg}");
    assert!(
        msg.contains("azure-clean-restore") && msg.contains("`object_store.latency_ms`"),
        "{msg}"
    );

    let root = work.path().join("r");
    let out = run_kube_without_cluster(work.path(), &root, "scenarios/31-azure-clean-restore.yaml");
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("scenario `azure-clean-restore` archives to Azure")
            && msg.contains("--azure-endpoint")
            && msg.contains("31-azure-clean-restore.yaml"),
        "{msg}"
    );
    assert!(!root.exists(), "nothing ran: {msg}");
}
