//! Faults that hit base backup and recovery themselves, as real drills: real PostgreSQL, real
//! barman-cloud, the embedded S3 endpoint. Runs the shipped scenarios 25-28 (and a restore that
//! fails on read errors, from tests/scenarios) and asserts what
//! happened and why (rows lost and the fault they are attributed to, the backup recovery fell
//! back to, the restart of the recovering server), not only the verdict. Needs `make setup`.

use std::path::PathBuf;

#[path = "support/cli.rs"]
mod cli;
use cli::{pgdrill, run_dir, text};

/// Run one shipped scenario into a fresh report root; returns its entry in rto.json.
fn run(scenario: &str) -> (serde_json::Value, String, tempfile::TempDir) {
    let reports = tempfile::tempdir().unwrap();
    let root = reports.path().join("reports");
    std::fs::create_dir(&root).unwrap();
    let out = pgdrill(&["run", "--report-dir", root.to_str().unwrap(), scenario]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let dir: PathBuf = run_dir(&root);
    let rto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();
    let s = rto["scenarios"][0].clone();
    assert_eq!(s["status"], "passed", "{s}");
    (s, log, reports)
}

fn fault<'a>(s: &'a serde_json::Value, step: &str) -> &'a serde_json::Value {
    s["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["step_id"] == step)
        .unwrap_or_else(|| panic!("no fault record `{step}`: {s}"))
}

#[test]
fn object_store_errors_on_wal_reads_end_recovery_early_and_the_loss_is_attributed() {
    let (s, log, _keep) = run("scenarios/25-recovery-read-errors.yaml");
    assert_eq!(s["rows_lost"], 3, "{s}");
    let missing: Vec<(&str, &str, bool)> = s["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["step_id"].as_str().unwrap(),
                m["caused_by"].as_str().unwrap_or(""),
                m["segment_in_archive"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        missing,
        [
            ("w2", "recovery-errors", true),
            ("w3", "recovery-errors", true)
        ],
        "both lost writes are in the archive and blamed on the window: {s}"
    );
    let w2_segment = s["missing"][0]["segment"].as_str().unwrap();
    let f = &fault(&s, "recovery-errors")["read_errors"];
    assert_eq!(f["ended_before"], w2_segment, "{f}");
    assert_eq!(f["error"], "503 SlowDown", "{f}");
    assert!(f["errors_answered"].as_u64().unwrap() >= 1, "{f}");
    let why = s["loss_explanation"][0].as_str().unwrap();
    assert!(
        why.contains(&format!(
            "recovery ended at segment {w2_segment} because restore_command failed while the object store answered 503 SlowDown"
        )) && why.contains("silent data loss"),
        "{why}"
    );
    // PostgreSQL's own words for the end of replay, and the outcome in the step log.
    assert!(
        s["rto"]["replay_end"]
            .as_str()
            .is_some_and(|r| r.contains("SlowDown")),
        "{s}"
    );
    assert!(
        log.contains(
            "recovery ended early: restore_command (barman-cloud-wal-restore) failed for segment"
        ),
        "{log}"
    );
    // The audit saw a whole archive: the loss is the reads', not a gap's.
    assert_eq!(s["audit"]["gaps"], serde_json::json!([]), "{s}");
}

#[test]
fn a_crash_in_the_middle_of_a_base_backup_leaves_it_failed_and_recovery_falls_back() {
    let (s, log, _keep) = run("scenarios/26-crash-during-base-backup.yaml");
    let f = &fault(&s, "base2")["backup_interrupted"];
    assert_eq!(
        f["status"], "FAILED",
        "barman-cloud-backup's own verdict: {f}"
    );
    let failed_id = f["backup_id"].as_str().unwrap();
    assert!(
        f["tool_said"].as_str().unwrap().contains("Backup failed"),
        "{f}"
    );
    assert_eq!(
        s["audit"]["unusable_backups"],
        serde_json::json!([failed_id]),
        "the audit flags exactly the interrupted backup: {s}"
    );
    assert!(
        s["audit"]["findings"].as_array().unwrap().iter().any(|x| x
            .as_str()
            .unwrap()
            .contains(&format!("backup {failed_id} has status FAILED"))),
        "{s}"
    );
    assert_eq!(
        s["backup_step"], "base1",
        "the previous backup is restored: {s}"
    );
    assert_ne!(s["backup_id"], failed_id, "{s}");
    assert_eq!(
        (s["rows_expected"].clone(), s["rows_lost"].clone()),
        (15.into(), 0.into()),
        "{s}"
    );
    // The source came back from its own disk and kept writing: w2 was committed after the crash.
    assert!(
        log.contains("the source restarted from its own disk (crash recovery)")
            && log.contains("step w2 (write)"),
        "{log}"
    );
}

#[test]
fn the_recovering_server_killed_mid_replay_resumes_and_loses_nothing() {
    let (s, log, _keep) = run("scenarios/27-recovering-server-killed.yaml");
    assert_eq!(
        (s["rows_expected"].clone(), s["rows_lost"].clone()),
        (28.into(), 0.into()),
        "{s}"
    );
    let phases: Vec<&str> = s["rto"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "restore_base_backup",
            "replay_until_kill",
            "restart_and_replay",
            "first_query"
        ],
        "the RTO shows the kill and the restart: {s}"
    );
    let action = fault(&s, "recovery-restart")["action"].as_str().unwrap();
    assert!(
        action
            .contains("started again on the same data directory, and resumed replay to promotion"),
        "{action}"
    );
    // The kill came after the point: the replay LSN read at the kill is past w2's commit.
    let at = action
        .split("with replay at ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap();
    let lsn = |t: &str| {
        let (hi, lo) = t.split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
    };
    let w2 = log
        .split("once replay passes ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap();
    assert!(lsn(at) >= lsn(w2), "killed at {at}, point {w2}");
}

#[test]
fn a_blip_of_read_errors_is_ridden_out_by_the_retries_and_nothing_is_lost() {
    let (s, log, _keep) = run("scenarios/28-recovery-read-blip.yaml");
    assert_eq!(
        (s["rows_expected"].clone(), s["rows_lost"].clone()),
        (46.into(), 0.into()),
        "{s}"
    );
    // What verification read: every row of the one table, and its share of the RTO.
    let v = &s["verification"];
    assert_eq!(
        (v["tables"].clone(), v["rows_read"].clone()),
        (1.into(), 46.into()),
        "{v}"
    );
    assert!(v["bytes_read"].as_u64().unwrap() >= 46 * 8, "{v}");
    assert!(v["share_of_rto"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    let f = &fault(&s, "recovery-errors")["read_errors"];
    assert_eq!(
        f["errors_answered"], 2,
        "exactly the window's two failures: {f}"
    );
    assert_eq!(f["ended_before"], serde_json::Value::Null, "{f}");
    assert!(
        log.contains(
            "retried and recovered fully: the object store answered 503 SlowDown to 2 request(s)"
        ),
        "{log}"
    );
}

#[test]
fn read_errors_on_the_base_backup_fail_the_restore_and_the_report_says_why() {
    let (s, log, _keep) = run("tests/scenarios/recovery-backup-read-errors.yaml");
    // The scenario expects the failure; the report carries barman's reason and the count.
    assert!(
        log.contains("barman-cloud-restore failed")
            && log.contains("SlowDown")
            && log.contains("the tools' retries gave up"),
        "{log}"
    );
    let f = &fault(&s, "recovery-errors")["read_errors"];
    assert!(f["errors_answered"].as_u64().unwrap() >= 1, "{f}");
}
