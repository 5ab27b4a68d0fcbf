//! The alert rules in deploy/ checked by the real promtool (scripts/promtool.sh builds it from
//! the Prometheus Go module; `make promtool`): `promtool check rules`, the unit tests of every
//! alert (`promtool test rules`), unit tests that fail when a threshold moves, the
//! PrometheusRule manifest carrying the same groups, and the `promtool check metrics` helper
//! other tests lint pgdrill's metrics with. Without promtool: a failure with `CI` set, else a
//! banner and nothing tested.

use std::path::Path;

use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/promtool.rs"]
mod promtool;

use promtool::Promtool;

const RULES: &str = "deploy/prometheus/pgdrill-rules.yaml";
const RULES_TEST: &str = "deploy/prometheus/pgdrill-rules.test.yaml";
const PROMETHEUS_RULE: &str = "deploy/kubernetes/monitoring/prometheusrule.yaml";

/// ADR 007's six alerts and the two about pgdrill itself.
const ALERTS: [&str; 8] = [
    "PgdrillBaseBackupFailing",
    "PgdrillBaseBackupTooOld",
    "PgdrillWalArchiveGap",
    "PgdrillWalArchiveStale",
    "PgdrillArchiveAccessError",
    "PgdrillRecoveryTestFailed",
    "PgdrillAuditStale",
    "PgdrillGameDayOverdue",
];

fn yaml(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
}

#[test]
fn rules_file_passes_promtool_check() {
    let Some(promtool) = Promtool::find_or_skip("rules_file_passes_promtool_check") else {
        return;
    };
    let out = promtool.run(&["check", "rules", "--lint-fatal", RULES]);
    let text = cli::text(&out);
    assert!(
        out.status.success(),
        "promtool check rules {RULES}:\n{text}"
    );
    assert!(text.contains("SUCCESS: 8 rules found"), "{text}");

    // The rules are exactly the eight alerts, each with a severity and what to do.
    let rules = yaml(RULES);
    let groups = rules["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(str_at(&groups[0], "name"), "pgdrill.rules");
    let rules = groups[0]["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| str_at(r, "alert")).collect();
    assert_eq!(names, ALERTS);
    for rule in rules {
        let severity = str_at(&rule["labels"], "severity");
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{rule}"
        );
        str_at(&rule["annotations"], "summary");
        str_at(&rule["annotations"], "description");
        str_at(rule, "for");
    }
}

#[test]
fn promtool_check_rules_refuses_a_broken_rule() {
    let Some(promtool) = Promtool::find_or_skip("promtool_check_rules_refuses_a_broken_rule")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: pgdrill_audit_ok ==\n",
    )
    .unwrap();
    let out = promtool.run(&["check", "rules", broken.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", cli::text(&out));
}

#[test]
fn every_alert_has_unit_tests_that_fire_and_stay_quiet() {
    // The test file's own shape: a test group named after each alert, a case where the alert
    // fires and one where it stays quiet (promtool does not require either).
    let tests = yaml(RULES_TEST);
    assert_eq!(
        tests["rule_files"],
        serde_json::json!(["pgdrill-rules.yaml"])
    );
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    let groups: Vec<&str> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| str_at(t, "name"))
        .collect();
    for alert in ALERTS {
        assert!(groups.contains(&alert), "no test group named {alert}");
        let of_alert = || cases.iter().filter(|c| c["alertname"] == alert);
        let firing = of_alert().filter(|c| !c["exp_alerts"].as_array().unwrap().is_empty());
        assert!(firing.count() > 0, "{alert}: no case where it fires");
        let quiet = of_alert().filter(|c| c["exp_alerts"].as_array().unwrap().is_empty());
        assert!(quiet.count() > 0, "{alert}: no case where it stays quiet");
    }

    let Some(promtool) =
        Promtool::find_or_skip("every_alert_has_unit_tests_that_fire_and_stay_quiet")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("rules.junit.xml");
    let junit_flag = format!("--junit={}", junit.display());
    let out = promtool.run(&["test", "rules", &junit_flag, RULES_TEST]);
    let text = cli::text(&out);
    assert!(
        out.status.success(),
        "promtool test rules {RULES_TEST}:\n{text}"
    );
    assert!(text.contains("SUCCESS"), "{text}");
    // promtool names each test group it ran in its JUnit file (its timestamps have no time
    // zone, which quick-junit refuses, so support/junit.rs cannot read it).
    let xml = std::fs::read_to_string(&junit).unwrap();
    for alert in ALERTS {
        assert!(
            xml.contains(&format!("<testcase name=\"{alert}\">")),
            "promtool ran no test named {alert}:\n{xml}"
        );
    }
    assert_eq!(xml.matches("<testcase ").count(), groups.len(), "{xml}");
    assert!(
        !xml.contains("<failure") && !xml.contains("<error"),
        "{xml}"
    );
}

/// Each alert's threshold moved to let its boundary case through (or the condition turned
/// around): the unit tests must then fail, and say which alert.
#[test]
fn unit_tests_fail_when_a_threshold_moves() {
    let Some(promtool) = Promtool::find_or_skip("unit_tests_fail_when_a_threshold_moves") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join(RULES)).unwrap();
    let tests = std::fs::read_to_string(root.join(RULES_TEST)).unwrap();
    let mutations = [
        (
            "PgdrillBaseBackupFailing",
            "failed_consecutive >= 2",
            "failed_consecutive >= 3",
        ),
        (
            "PgdrillBaseBackupTooOld",
            "age_seconds > 25 * 3600",
            "age_seconds >= 25 * 3600",
        ),
        (
            "PgdrillBaseBackupTooOld",
            "completed == 0",
            "completed == 7",
        ),
        (
            "PgdrillWalArchiveGap",
            "missing_segments > 0",
            "missing_segments >= 0",
        ),
        (
            "PgdrillWalArchiveStale",
            "age_seconds > 600",
            "age_seconds >= 600",
        ),
        ("PgdrillWalArchiveStale", "segments == 0", "segments == 120"),
        (
            "PgdrillArchiveAccessError",
            "(pgdrill_archive_error == 1",
            "(pgdrill_archive_error == 0",
        ),
        (
            "PgdrillArchiveAccessError",
            "\n          or ignoring(reason) pgdrill_archive_reachable == 0",
            "",
        ),
        (
            "PgdrillRecoveryTestFailed",
            "(pgdrill_drill_failure == 1",
            "(pgdrill_drill_failure == 0",
        ),
        (
            "PgdrillRecoveryTestFailed",
            "or ignoring(reason) pgdrill_gameday_success == 0",
            "",
        ),
        (
            "PgdrillAuditStale",
            "seconds > 2 * 3600",
            "seconds >= 2 * 3600",
        ),
        (
            "PgdrillGameDayOverdue",
            "seconds > 92 * 86400",
            "seconds >= 92 * 86400",
        ),
    ];
    for (alert, from, to) in mutations {
        assert_eq!(rules.matches(from).count(), 1, "{from:?} once in {RULES}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pgdrill-rules.yaml"),
            rules.replace(from, to),
        )
        .unwrap();
        let test = dir.path().join("pgdrill-rules.test.yaml");
        std::fs::write(&test, &tests).unwrap();
        let out = promtool.run(&["test", "rules", test.to_str().unwrap()]);
        let text = cli::text(&out);
        assert!(
            !out.status.success(),
            "{from:?} → {to:?}: the tests still pass\n{text}"
        );
        assert!(
            text.contains(alert),
            "{from:?} → {to:?}: {alert} not named:\n{text}"
        );
    }
}

#[test]
fn prometheus_rule_manifest_has_the_rules_files_groups() {
    let manifest = yaml(PROMETHEUS_RULE);
    assert_eq!(manifest["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(manifest["kind"], "PrometheusRule");
    str_at(&manifest["metadata"], "name");
    let rules = yaml(RULES);
    assert!(rules["groups"].is_array(), "{RULES}: no groups");
    assert_eq!(
        manifest["spec"]["groups"], rules["groups"],
        "{PROMETHEUS_RULE}'s spec.groups differ from {RULES}'s groups: edit both"
    );
}

#[test]
fn check_metrics_accepts_a_clean_exposition() {
    let Some(promtool) = Promtool::find_or_skip("check_metrics_accepts_a_clean_exposition") else {
        return;
    };
    let text = "\
# HELP pgdrill_archive_reachable 1 when the archive could be listed and read.
# TYPE pgdrill_archive_reachable gauge
pgdrill_archive_reachable{server_name=\"pg-main\",destination=\"s3://backups/prod\"} 1
# HELP pgdrill_base_backup_age_seconds Age of the newest completed base backup.
# TYPE pgdrill_base_backup_age_seconds gauge
pgdrill_base_backup_age_seconds{server_name=\"pg-main\",destination=\"s3://backups/prod\"} 3600.5
";
    let findings = promtool.check_metrics(text);
    assert!(findings.is_clean(), "{findings:?}");
}

#[test]
fn check_metrics_reports_lint_problems_and_malformed_text() {
    let Some(promtool) =
        Promtool::find_or_skip("check_metrics_reports_lint_problems_and_malformed_text")
    else {
        return;
    };
    let lint = "\
# HELP pgdrill_drills_run Drills run.
# TYPE pgdrill_drills_run counter
pgdrill_drills_run 3
# HELP pgdrill_auditOk 1 when the audit found no error.
# TYPE pgdrill_auditOk gauge
pgdrill_auditOk 1
# TYPE pgdrill_undocumented gauge
pgdrill_undocumented 1
";
    let findings = promtool.check_metrics(lint);
    assert_eq!(findings.error, None, "{findings:?}");
    let has = |metric: &str, words: &str| {
        findings
            .problems
            .iter()
            .any(|p| p.starts_with(metric) && p.contains(words))
    };
    assert!(has("pgdrill_drills_run", "_total"), "{findings:?}");
    assert!(has("pgdrill_auditOk", "camelCase"), "{findings:?}");
    assert!(has("pgdrill_undocumented", "no help text"), "{findings:?}");
    assert_eq!(findings.problems.len(), 3, "{findings:?}");

    let malformed = "# TYPE pgdrill_audit_ok gauge\npgdrill_audit_ok{server_name=\"x\" 1\n";
    let findings = promtool.check_metrics(malformed);
    assert!(findings.problems.is_empty(), "{findings:?}");
    let error = findings.error.unwrap();
    assert!(error.contains("parsing error in line 2"), "{error}");
}

/// Every `pgdrill_*` metric an alert reads is one pgdrill writes: the names in the rules'
/// expressions against the names `src/report/metrics.rs` registers (a rename on either side
/// would leave an alert that can never fire).
#[test]
fn every_metric_the_rules_read_is_one_pgdrill_writes() {
    let source = std::fs::read_to_string("src/report/metrics.rs").unwrap();
    let written: std::collections::BTreeSet<&str> = source
        .split('"')
        .filter(|s| {
            s.starts_with("pgdrill_") && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .collect();
    assert!(written.len() >= 20, "{written:?}");
    let rules = yaml(RULES);
    let mut read = std::collections::BTreeSet::new();
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let expr = str_at(rule, "expr");
        let mut rest = expr;
        while let Some(i) = rest.find("pgdrill_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            read.insert(name);
        }
    }
    assert!(read.len() >= 10, "{read:?}");
    for name in &read {
        assert!(
            written.contains(name.as_str()),
            "an alert reads {name}, which pgdrill never writes"
        );
    }
}
