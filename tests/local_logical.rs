//! Logical backups and runbook drills, for real: real PostgreSQL (`pg_dump`, `psql`,
//! `pg_restore`), the embedded S3 endpoint, the shipped restore scripts run with seed 004's
//! environment contract. Runs the shipped scenarios 34-38 and variants of them, and asserts
//! verdicts, the rows the dump's snapshot holds, reason codes, and the script output in JUnit
//! (bounded, credentials redacted). Needs `make setup`.

use std::path::{Path, PathBuf};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
use cli::{pgdrill, rto_json, rto_scenario, run_dir, text};
use junit::Junit;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run `scenarios` into a fresh report root; returns (exit code, output, run directory).
fn run(scenarios: &[&str], root: &Path) -> (Option<i32>, String, PathBuf) {
    std::fs::create_dir_all(root).unwrap();
    let mut args = vec!["run", "--jobs", "2", "--report-dir", root.to_str().unwrap()];
    args.extend_from_slice(scenarios);
    let out = pgdrill(&args);
    (out.status.code(), text(&out), run_dir(root))
}

/// A shipped scenario rewritten into `dir`: renamed, with `edits` applied and the shipped
/// restore scripts named by absolute path.
fn variant(dir: &Path, shipped: &str, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let text = std::fs::read_to_string(manifest().join("scenarios").join(shipped)).unwrap();
    let old_name = text
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .unwrap()
        .to_string();
    let mut text = text.replace(&format!("name: {old_name}"), &format!("name: {name}"));
    for (from, to) in edits {
        assert!(text.contains(from), "{shipped} has no `{from}`");
        text = text.replace(from, to);
    }
    // The shipped scripts, wherever the variant lives.
    let fixtures = manifest().join("fixtures");
    let text = text.replace(
        "../fixtures/restore",
        &format!("{}/restore", fixtures.display()),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn shipped_logical_scenarios_pass_and_say_what_the_snapshot_holds() {
    let reports = tempfile::tempdir().unwrap();
    let root = reports.path().join("reports");
    let (code, out, dir) = run(
        &[
            "scenarios/34-logical-backup-restore.yaml",
            "scenarios/35-logical-truncated-dump.yaml",
            "scenarios/36-logical-wrong-database.yaml",
            "scenarios/37-runbook-restore.yaml",
            "scenarios/38-runbook-broken.yaml",
            "tests/scenarios/logical-missing-dump.yaml",
        ],
        &root,
    );
    assert_eq!(code, Some(0), "{out}");
    let junit = Junit::read(&dir.join("junit.xml"));
    assert!(junit.failed_or_errored().is_empty(), "{junit}");
    let rto = rto_json(&dir);

    // 34: restored into 16; the in-flight write and the later one are not expected, and not
    // there (an extra row would fail the drill).
    let s34 = rto_scenario(&rto, "logical-backup-restore");
    assert_eq!(s34["rows_expected"], 67, "{s34}");
    assert_eq!(s34["rows_observed"], 67, "{s34}");
    let case = junit.case("logical-backup-restore");
    assert!(
        case.property("postgres.recovery")
            .unwrap()
            .starts_with("16."),
        "{}",
        case.text()
    );
    assert!(
        case.out().contains("write `w-inflight` (txid"),
        "{}",
        case.out()
    );
    assert!(case.out().contains("not in the dump"), "{}", case.out());
    // The in-flight write is in the snapshot's list of transactions in progress.
    let line = case
        .out()
        .lines()
        .find(|l| l.contains("nightly (logical_backup)"))
        .unwrap();
    let snapshot = line
        .split("at snapshot ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    let txid = line
        .split("(txid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap();
    let xip: Vec<&str> = snapshot.splitn(3, ':').nth(2).unwrap().split(',').collect();
    assert!(xip.contains(&txid), "{line}");
    assert_eq!(
        case.property("recovery.target").as_deref(),
        Some("the newest logical backup")
    );
    let phases: Vec<&str> = s34["rto"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["instance_init", "download_dump", "restore_dump"]);

    // 35, and pgdrill's own restore of a missing object: failed as expected, saying why.
    let out35 = junit.case("logical-truncated-dump").out().to_string();
    assert!(out35.contains("unexpected end of file"), "{out35}");
    let missing = junit.case("logical-missing-dump").out().to_string();
    assert!(
        missing.contains("backup object missing: s3://"),
        "{missing}"
    );

    // 36 and 38: "successful" restores with every row missing, caught by the ledger.
    for name in ["logical-wrong-database", "runbook-broken"] {
        let s = rto_scenario(&rto, name);
        assert_eq!(s["rows_observed"], 0, "{s}");
        assert_eq!(s["rows_lost"], s["rows_expected"], "{s}");
        let expl = s["loss_explanation"].to_string();
        assert!(expl.contains("has no table orders"), "{expl}");
    }

    // 37 and 38: the script's run and output in JUnit, the credentials nowhere.
    let c37 = junit.case("runbook-restore");
    assert_eq!(
        c37.property("restore_script")
            .as_deref()
            .map(|p| p.split(" in ").next().unwrap()),
        Some("../fixtures/restore.sh: exit 0"),
        "{}",
        c37.text()
    );
    assert!(c37.out().contains("restore.sh: restored "), "{}", c37.out());
    let c38 = junit.case("runbook-broken");
    assert!(c38.out().contains("restore complete"), "{}", c38.out());
    assert!(c38.out().contains("not in gzip format"), "{}", c38.out());
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(!xml.contains("PASSWORD '"), "a password leaked");
}

#[test]
fn logical_failures_carry_their_reason_codes() {
    let reports = tempfile::tempdir().unwrap();
    // Scenarios whose expectations are wrong on purpose, so each fails with its reason.
    let sdir = reports.path().join("scenarios");
    std::fs::create_dir(&sdir).unwrap();
    let truncated = variant(
        &sdir,
        "35-logical-truncated-dump.yaml",
        "truncated-expected-to-restore",
        &[(
            "  failed:\n    error_contains: \"unexpected end of file\"\n",
            "  recovered: {}\n",
        )],
    );
    let missing = variant(
        &sdir,
        "37-runbook-restore.yaml",
        "runbook-missing-dump",
        &[(
            "  - write: { id: w2, table: customers, rows: 2 }\n",
            "  - fault: { id: gone, delete_dump: { step: nightly } }\n",
        )],
    );
    let missing_pgdrill = variant(
        &sdir,
        "34-logical-backup-restore.yaml",
        "missing-expected-to-restore",
        &[(
            "  - write: { id: w3, table: orders, rows: 4 }\n",
            "  - fault: { id: gone, delete_dump: { step: nightly } }\n",
        )],
    );
    let root = reports.path().join("reports");
    let (code, out, dir) = run(
        &[
            truncated.to_str().unwrap(),
            missing.to_str().unwrap(),
            missing_pgdrill.to_str().unwrap(),
        ],
        &root,
    );
    assert_eq!(code, Some(1), "{out}");
    let junit = Junit::read(&dir.join("junit.xml"));
    for (name, reason) in [
        ("truncated-expected-to-restore", "logical_restore_failed"),
        ("runbook-missing-dump", "restore_script_failed"),
        ("missing-expected-to-restore", "backup_object_missing"),
    ] {
        let c = junit.case(name);
        assert!(c.is_failure(), "{}", c.text());
        assert_eq!(
            c.property("failure.reason").as_deref(),
            Some(reason),
            "{}",
            c.text()
        );
    }
    // The strict runbook names the object it could not fetch.
    let c = junit.case("runbook-missing-dump");
    assert!(c.out().contains("cannot download s3://"), "{}", c.out());
    assert!(c.out().contains("404"), "{}", c.out());
}

/// A scenario (in `root/scenarios/`) whose restore script prints its credentials (they must
/// come out redacted) and then waits on `sleep <marker>`, a child in its process group, with
/// deadline `timeout` seconds.
fn hanging_runbook(root: &Path, name: &str, marker: u32, timeout: u32) -> PathBuf {
    let sdir = root.join("scenarios");
    let fixtures = root.join("fixtures");
    std::fs::create_dir_all(&sdir).unwrap();
    std::fs::create_dir_all(&fixtures).unwrap();
    let script = fixtures.join(format!("{name}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"key=$AWS_SECRET_ACCESS_KEY pass=$DB_PASS mode=$RESTORE_MODE provider=$STORAGE_PROVIDER db=$DB_NAME\"\nsleep {marker} &\nwait\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    variant(
        &sdir,
        "37-runbook-restore.yaml",
        name,
        &[
            ("../fixtures/restore.sh", &format!("../fixtures/{name}.sh")),
            (
                "timeout_seconds: 120",
                &format!("timeout_seconds: {timeout}"),
            ),
        ],
    )
}

/// Processes whose command line is exactly `sleep <marker>`.
fn sleeping(marker: u32) -> usize {
    let want = format!("sleep {marker} ");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).replace('\0', " ") == want)
        .count()
}

#[test]
fn a_restore_script_past_its_deadline_is_killed_and_its_secrets_redacted() {
    let reports = tempfile::tempdir().unwrap();
    let marker = 3011;
    let hang = hanging_runbook(reports.path(), "runbook-hangs", marker, 3);
    let root = reports.path().join("reports");
    let began = std::time::Instant::now();
    let (code, out, dir) = run(&[hang.to_str().unwrap()], &root);
    assert!(
        began.elapsed() < std::time::Duration::from_secs(60),
        "the hung script was not killed at its deadline"
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        sleeping(marker),
        0,
        "the script's child outlived its deadline"
    );
    let junit = Junit::read(&dir.join("junit.xml"));
    let c = junit.case("runbook-hangs");
    assert_eq!(
        c.property("failure.reason").as_deref(),
        Some("restore_script_failed")
    );
    assert!(
        c.text().contains("did not finish within 3s"),
        "{}",
        c.text()
    );
    assert!(
        c.out().contains(
            "key=<redacted> pass=<redacted> mode=non-interactive provider=s3 db=restored"
        ),
        "{}",
        c.out()
    );
}

#[test]
fn ctrl_c_during_a_restore_script_kills_its_process_group() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let reports = tempfile::tempdir().unwrap();
    let marker = 3023;
    let hang = hanging_runbook(reports.path(), "runbook-interrupted", marker, 600);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .current_dir(manifest())
        .args(["run", "--report-dir"])
        .arg(reports.path().join("reports"))
        .arg(&hang)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("(logical_backup)") {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while sleeping(marker) == 0 {
        assert!(
            Instant::now() < deadline,
            "the restore script never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "pgdrill did not exit after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for _ in lines {}
    assert_eq!(status.code(), Some(130));
    while sleeping(marker) > 0 {
        assert!(
            Instant::now() < deadline,
            "the script's child outlived Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
