//! Real local drills: real PostgreSQL, real barman-cloud, the embedded S3 endpoint. Needs
//! `make setup` (which `make test` runs first). Asserts verdicts, exit codes and report content.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
#[path = "support/promtool.rs"]
mod promtool;
use cli::{pgdrill, run_dir, text};
use junit::Junit;

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
    let junit = Junit::read(&dir.join("junit.xml"));
    assert!(junit.failed_or_errored().is_empty(), "{junit}");

    let adr = junit.case("adr007-missing-wal-segment");
    assert_eq!(
        adr.property("rows.expected").as_deref(),
        Some("27"),
        "{adr}"
    );
    assert_eq!(
        adr.property("rows.observed").as_deref(),
        Some("25"),
        "{adr}"
    );
    assert_eq!(adr.property("rows.lost").as_deref(), Some("2"), "{adr}");
    assert!(
        adr.out().contains("absent from the archive"),
        "the loss names the missing segment: {adr}"
    );
    // The audit before recovery saw the same hole, predicted the same loss, and is cited.
    let gap = adr
        .property("audit.gaps")
        .unwrap_or_else(|| panic!("no audit.gaps property: {adr}"));
    assert_eq!(gap.len(), 24, "one segment: {adr}");
    assert!(
        adr.out()
            .contains(&format!("stopped before segment {gap}, which is absent")),
        "the loss and the audit name the same segment: {adr}"
    );
    assert_eq!(
        adr.property("audit.predicted_rows_lost").as_deref(),
        Some("2"),
        "{adr}"
    );
    assert_eq!(
        adr.property("rpo.transactions_lost").as_deref(),
        Some("2"),
        "the observed RPO counts w2 and w3: {adr}"
    );
    assert!(
        adr.out()
            .contains("The archive audit reported this gap before recovery started."),
        "{adr}"
    );

    let wrong = junit.case("wrong-server-name");
    assert!(wrong.out().contains("Expected empty archive"), "{wrong}");
    let mismatch = junit.case("version-mismatch-15-to-16");
    assert!(
        mismatch
            .out()
            .contains("database files are incompatible with server"),
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
    // Where the time went: the restored data directory (several MB even when empty), the
    // replayed WAL's LSN distance split over the two replay phases, the slowest phase named.
    let r = &adr["rto"];
    let base = r["base_backup_bytes"].as_u64().unwrap();
    assert!(base > 1_000_000, "{r}");
    assert_eq!(r["phases"][0]["bytes"].as_u64(), Some(base), "{r}");
    let replayed = r["wal_replayed_bytes"].as_u64().unwrap();
    assert!(replayed > 0, "{r}");
    let per_phase =
        r["phases"][1]["bytes"].as_u64().unwrap() + r["phases"][2]["bytes"].as_u64().unwrap();
    assert_eq!(per_phase, replayed, "{r}");
    assert!(r["wal_fetched_bytes"].as_u64().unwrap() > 0, "{r}");
    let names: Vec<&serde_json::Value> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert!(names.contains(&&r["slowest_phase"]), "{r}");
    assert_eq!(adr["rows_lost"], 2, "{adr}");
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("adr007-missing-wal-segment"), "{summary}");
}

#[test]
fn the_longest_scenario_name_still_recovers() {
    // Its servers' socket paths under the run directory are too long for a Unix socket:
    // PostgreSQL used to refuse to start ("could not create any Unix-domain sockets").
    let reports = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "tests/scenarios/longest-name.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let junit = Junit::read(&run_dir(reports.path()).join("junit.xml"));
    let case = junit.case("restore-with-the-longest-name-a-scenario-may-use");
    assert!(!case.is_failure() && !case.is_error(), "{case}");
    assert!(case.out().contains("recovered"), "the step log: {case}");
}

#[test]
fn a_silent_loss_fails_a_drill_that_trusts_the_recovery() {
    let reports = tempfile::tempdir().unwrap();
    let collector = tempfile::tempdir().unwrap();
    let textfile = collector.path().join("pgdrill.prom");
    let out = pgdrill(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "--metrics-file",
        textfile.to_str().unwrap(),
        "tests/scenarios/adr007-expects-no-loss.yaml",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1 = a drill failed its expectations\n{}",
        text(&out)
    );
    let junit = Junit::read(&run_dir(reports.path()).join("junit.xml"));
    let case = junit.case("adr007-naive-expectation");
    assert!(case.is_failure(), "{case}");
    // Every reason is in the failure's description.
    assert!(
        case.description()
            .contains("unexpected data loss: 2 rows missing"),
        "{case}"
    );
    assert!(
        case.description().contains("over the budget of 0.0s"),
        "RPO budget: {case}"
    );
    assert!(
        case.description()
            .contains("the archive audit found gaps [0000000"),
        "a wrong audit expectation is a failure reason too: {case}"
    );
    // The loss came down to WAL the archive lacks: one stable code, in JUnit and the metrics.
    let dir = run_dir(reports.path());
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(xml.contains(r#"type="wal_unavailable""#), "{xml}");
    let metrics = std::fs::read_to_string(dir.join("metrics.prom")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&textfile).unwrap(),
        metrics,
        "--metrics-file gets the run's metrics.prom"
    );
    for line in [
        r#"pgdrill_drill_success{scenario="adr007-naive-expectation",backend="local"} 0.0"#,
        r#"pgdrill_drill_failure{scenario="adr007-naive-expectation",backend="local",reason="wal_unavailable"} 1.0"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    if let Some(p) = promtool::Promtool::find_or_skip("run metrics") {
        let found = p.check_metrics(&metrics);
        assert!(found.is_clean(), "{found:?}\n{metrics}");
    }
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
    let junit = Junit::read(&run_dir(reports.path()).join("junit.xml"));
    let default = junit.case("oracle-checksum-default-client");
    let observation = default.property("observation").unwrap_or_default();
    assert!(
        observation.contains("(NotImplemented) when calling the PutObject operation"),
        "real barman-cloud, default SDK settings, rejected by the store: {default}"
    );
    assert!(
        observation.starts_with("step `base` failed:"),
        "the failure is attributed to the base backup step, not to recovery: {default}"
    );
    let fixed = junit.case("oracle-checksum-when-required");
    assert_eq!(
        fixed.property("rows.observed").as_deref(),
        Some("12"),
        "{fixed}"
    );
    assert_eq!(
        fixed.property("audit.gaps").as_deref(),
        Some("none"),
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
    let junit = Junit::read(&run_dir(reports.path()).join("junit.xml"));
    assert!(junit.failed_or_errored().is_empty(), "{junit}");
    // Each drill resolved its target to a server-side value of its own kind.
    for (case, kind) in [
        ("pitr-time-between-writes", "time "),
        ("pitr-lsn-after-step", "lsn "),
        ("pitr-xid-exclusive", "xid "),
        ("pitr-restore-point", "name "),
        ("immediate-newest-backup", "immediate"),
    ] {
        let c = junit.case(case);
        assert!(
            c.property("recovery.target.resolved")
                .is_some_and(|r| r.starts_with(kind)),
            "{case}: {c}"
        );
        assert_eq!(
            c.property("rpo.transactions_lost").as_deref(),
            Some("0"),
            "{case}: {c}"
        );
    }
}
