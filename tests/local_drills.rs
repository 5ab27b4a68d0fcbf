//! Real local drills: real PostgreSQL, real barman-cloud, the embedded S3 endpoint. Needs
//! `make setup` (which `make test` runs first). Asserts verdicts, exit codes and report content.

#[path = "support/cli.rs"]
mod cli;
use cli::{pgdrill, run_dir, testcase, text};

#[test]
fn shipped_fault_scenarios_catch_what_they_expect() {
    let reports = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "--jobs",
        "3",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "scenarios/03-adr007-missing-wal-segment.yaml",
        "scenarios/04-wrong-server-name.yaml",
        "scenarios/05-version-mismatch.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = run_dir(reports.path());
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        !junit.contains("<failure") && !junit.contains("<error"),
        "{junit}"
    );

    let adr = testcase(&junit, "adr007-missing-wal-segment");
    assert!(adr.contains(r#"name="rows.expected" value="27""#), "{adr}");
    assert!(adr.contains(r#"name="rows.observed" value="25""#), "{adr}");
    assert!(adr.contains(r#"name="rows.lost" value="2""#), "{adr}");
    assert!(
        adr.contains("absent from the archive"),
        "the loss names the missing segment: {adr}"
    );
    // The audit before recovery saw the same hole, predicted the same loss, and is cited.
    let gap = adr
        .split(r#"name="audit.gaps" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no audit.gaps property: {adr}"));
    assert_eq!(gap.len(), 24, "one segment: {adr}");
    assert!(
        adr.contains(&format!("stopped before segment {gap}, which is absent")),
        "the loss and the audit name the same segment: {adr}"
    );
    assert!(
        adr.contains(r#"name="audit.predicted_rows_lost" value="2""#),
        "{adr}"
    );
    assert!(
        adr.contains(r#"name="rpo.transactions_lost" value="2""#),
        "the observed RPO counts w2 and w3: {adr}"
    );
    assert!(
        adr.contains("The archive audit reported this gap before recovery started."),
        "{adr}"
    );

    let wrong = testcase(&junit, "wrong-server-name");
    assert!(wrong.contains("Expected empty archive"), "{wrong}");
    let mismatch = testcase(&junit, "version-mismatch-15-to-16");
    assert!(
        mismatch.contains("database files are incompatible with server"),
        "{mismatch}"
    );

    let rto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();
    let adr = rto["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "adr007-missing-wal-segment")
        .unwrap();
    assert!(adr["rto"]["seconds"].as_f64().unwrap() > 0.0, "{adr}");
    assert_eq!(adr["rto"]["phases"].as_array().unwrap().len(), 4, "{adr}");
    assert_eq!(adr["rows_lost"], 2, "{adr}");
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("adr007-missing-wal-segment"), "{summary}");
}

#[test]
fn a_silent_loss_fails_a_drill_that_trusts_the_recovery() {
    let reports = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "tests/scenarios/adr007-expects-no-loss.yaml",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1 = a drill failed its expectations\n{}",
        text(&out)
    );
    let junit = std::fs::read_to_string(run_dir(reports.path()).join("junit.xml")).unwrap();
    let case = testcase(&junit, "adr007-naive-expectation");
    assert!(case.contains("<failure"), "{case}");
    assert!(
        case.contains("unexpected data loss: 2 rows missing"),
        "{case}"
    );
    assert!(
        case.contains("over the budget of 0.0s"),
        "RPO budget: {case}"
    );
    assert!(
        case.contains("the archive audit found gaps [0000000"),
        "a wrong audit expectation is a failure reason too: {case}"
    );
}

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
fn seed_000_checksum_rejection_and_its_fix() {
    let reports = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "--jobs",
        "2",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "scenarios/10-oracle-checksum-default-client.yaml",
        "scenarios/11-oracle-checksum-when-required.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let junit = std::fs::read_to_string(run_dir(reports.path()).join("junit.xml")).unwrap();
    let default = testcase(&junit, "oracle-checksum-default-client");
    assert!(
        default.contains("(NotImplemented) when calling the PutObject operation"),
        "real barman-cloud, default SDK settings, rejected by the store: {default}"
    );
    assert!(
        default.contains(r#"name="observation" value="step `base` failed:"#),
        "the failure is attributed to the base backup step, not to recovery: {default}"
    );
    let fixed = testcase(&junit, "oracle-checksum-when-required");
    assert!(
        fixed.contains(r#"name="rows.observed" value="12""#),
        "{fixed}"
    );
    assert!(
        fixed.contains(r#"name="audit.gaps" value="none""#),
        "{fixed}"
    );
}

#[test]
fn every_target_kind_recovers_what_the_ledger_says() {
    let reports = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "--jobs",
        "2",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "scenarios/02-pitr-time-between-writes.yaml",
        "scenarios/06-pitr-lsn.yaml",
        "scenarios/07-pitr-xid-exclusive.yaml",
        "scenarios/08-pitr-restore-point.yaml",
        "scenarios/09-immediate-second-backup.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let junit = std::fs::read_to_string(run_dir(reports.path()).join("junit.xml")).unwrap();
    assert!(
        !junit.contains("<failure") && !junit.contains("<error"),
        "{junit}"
    );
    // Each drill resolved its target to a server-side value of its own kind.
    for (case, kind) in [
        ("pitr-time-between-writes", "time "),
        ("pitr-lsn-after-step", "lsn "),
        ("pitr-xid-exclusive", "xid "),
        ("pitr-restore-point", "name "),
        ("immediate-newest-backup", "immediate"),
    ] {
        let c = testcase(&junit, case);
        assert!(
            c.contains(&format!(r#"name="recovery.target.resolved" value="{kind}"#)),
            "{case}: {c}"
        );
        assert!(
            c.contains(r#"name="rpo.transactions_lost" value="0""#),
            "{case}: {c}"
        );
    }
}
