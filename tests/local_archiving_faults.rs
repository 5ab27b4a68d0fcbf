//! Real local drills of the archiving faults: a crashed primary with unarchived commits, the
//! `archive_timeout` bound, tail loss after a crash, object-store error windows (503, 503 on
//! WAL uploads with a crash inside, 403, 404) and latency. Real PostgreSQL, real barman-cloud, the embedded S3
//! endpoint with its fault layer. Asserts verdicts and what the reports say was measured,
//! never how long anything took.

use std::process::Command;

use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
use cli::{rto_scenario, run_dir};
use junit::Junit;

fn fault<'a>(s: &'a Value, step: &str) -> &'a Value {
    s["faults"]
        .as_array()
        .unwrap_or_else(|| panic!("no faults: {s}"))
        .iter()
        .find(|f| f["step_id"] == step)
        .unwrap_or_else(|| panic!("no fault {step}: {s}"))
}

fn steps_of(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn archiving_faults_lose_exactly_what_the_ledger_says() {
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["run", "--jobs", "8", "--report-dir"])
        .arg(reports.path())
        .args([
            "scenarios/12-crash-unarchived-writes.yaml",
            "scenarios/13-archive-timeout-rpo-bound.yaml",
            "scenarios/14-tail-loss-after-crash.yaml",
            "scenarios/15-object-store-outage.yaml",
            "scenarios/16-crash-during-outage.yaml",
            "scenarios/17-wrong-credentials.yaml",
            "scenarios/18-missing-bucket.yaml",
            "scenarios/19-object-store-latency.yaml",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PGDRILL_KEEP")
        .output()
        .expect("pgdrill runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let dir = run_dir(reports.path());
    let junit = Junit::read(&dir.join("junit.xml"));
    let rto: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();

    // 1. SIGKILL with two commits in the open segment: exactly those are lost, and each is
    //    attributed to the crash, not to a deletion.
    let s = rto_scenario(&rto, "crash-unarchived-writes");
    assert_eq!(s["rows_lost"], 3, "{s}");
    let crash = fault(s, "kill-primary");
    assert_eq!(
        steps_of(&crash["archiver"]["stand"]["exposed_steps"]),
        ["w2", "w3"]
    );
    for m in s["missing"].as_array().unwrap() {
        assert_eq!(m["unarchived_at_crash"], "kill-primary", "{m}");
        assert!(m["removed_by"].is_null(), "{m}");
        assert_eq!(m["segment_in_archive"], false, "{m}");
    }
    let case = junit.case("crash-unarchived-writes");
    assert_eq!(
        case.property("fault.kill-primary.exposure.transactions")
            .as_deref(),
        Some("2"),
        "{case}"
    );
    assert_eq!(
        case.property("rpo.transactions_lost").as_deref(),
        Some("2"),
        "{case}"
    );
    assert!(
        case.out()
            .contains("never archived: the source crashed at fault step `kill-primary`"),
        "{case}"
    );

    // 2. archive_timeout: w1 reached the archive with no switch; w2 died with the primary.
    let s = rto_scenario(&rto, "archive-timeout-rpo-bound");
    let wait = s["archive_waits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["step"] == "w1-archived")
        .unwrap_or_else(|| panic!("{s}"));
    assert_eq!(wait["how"], "archive_timeout", "{wait}");
    assert!(wait["seconds"].as_f64().unwrap() > 0.0, "{wait}");
    assert_eq!(s["rpo"]["transactions_lost"], 1, "{s}");
    assert!(s["rpo"]["seconds"].as_f64().unwrap() > 0.0, "{s}");

    // 3. Tail loss: the two deleted segments and the unarchived one, each with its cause; the
    //    audit sees no hole, the archive just ends earlier.
    let s = rto_scenario(&rto, "tail-loss-after-crash");
    assert_eq!(s["audit"]["gaps"].as_array().unwrap().len(), 0, "{s}");
    let causes: Vec<(String, String)> = s["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let cause = m["removed_by"]
                .as_str()
                .or(m["unarchived_at_crash"].as_str())
                .unwrap_or("?");
            (m["step_id"].as_str().unwrap().into(), cause.into())
        })
        .collect();
    assert_eq!(
        causes,
        [
            ("w2".into(), "lose-tail".into()),
            ("w3".into(), "lose-tail".into()),
            ("w4".into(), "crash".into())
        ],
        "{s}"
    );
    assert_eq!(
        fault(s, "lose-tail")["segments_removed"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // 4. WAL uploads failing, the archiver seen failing, then a crash inside the window: the
    //    exposure at the crash is what recovery lost.
    let s = rto_scenario(&rto, "crash-during-outage");
    let w = &fault(s, "wal-outage")["archiver"];
    assert!(w["failing_after_seconds"].as_f64().is_some(), "{w}");
    assert!(w["failed_attempts"].as_u64().unwrap() >= 1, "{w}");
    assert_eq!(w["stand"]["moment"], "crash", "{w}");
    assert_eq!(steps_of(&w["stand"]["exposed_steps"]), ["d1", "d2"]);
    assert!(
        w["stand"]["exposure_seconds"].as_f64().unwrap() > 0.0,
        "{w}"
    );
    let lost: Vec<&str> = s["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(lost, ["d1", "d2"], "{s}");

    // 5. 403 for a while: failures show, the exposure at the window's end is the write made
    //    during it, archiving catches up and nothing is lost.
    let s = rto_scenario(&rto, "wrong-credentials");
    let w = &fault(s, "rotated-keys")["archiver"];
    assert!(w["failing_after_seconds"].as_f64().is_some(), "{w}");
    assert_eq!(w["stand"]["moment"], "window end", "{w}");
    assert_eq!(steps_of(&w["stand"]["exposed_steps"]), ["during"]);
    assert!(w["caught_up_after_seconds"].as_f64().is_some(), "{w}");
    assert_eq!(s["rows_lost"], 0, "{s}");
    let case = junit.case("wrong-credentials");
    assert!(
        case.property("fault.rotated-keys")
            .is_some_and(|f| f.contains("403 InvalidAccessKeyId")),
        "the fault says what the store answered: {case}"
    );
    // The same shape with a 503 outage of every request and with a missing bucket.
    for (name, step, answer) in [
        ("object-store-outage", "outage", "503 SlowDown"),
        ("missing-bucket", "bucket-gone", "404 NoSuchBucket"),
    ] {
        let s = rto_scenario(&rto, name);
        let f = fault(s, step);
        assert!(f["action"].as_str().unwrap().contains(answer), "{f}");
        let w = &f["archiver"];
        assert!(w["failing_after_seconds"].as_f64().is_some(), "{w}");
        assert_eq!(steps_of(&w["stand"]["exposed_steps"]), ["during"], "{w}");
        assert!(w["caught_up_after_seconds"].as_f64().is_some(), "{w}");
        assert_eq!(s["rows_lost"], 0, "{s}");
    }

    // 6. Latency: every own-segment write's archive wait is recorded and summarised.
    let s = rto_scenario(&rto, "object-store-latency");
    let switches = s["archive_waits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["how"] == "switch")
        .count();
    assert_eq!(switches, 5, "four writes and the flush: {s}");
    let case = junit.case("object-store-latency");
    assert_eq!(
        case.property("archive.waits").as_deref(),
        Some("5"),
        "{case}"
    );
    assert!(summary.contains("**Archive lag:** 5 wait(s)"), "{summary}");
    assert!(summary.contains("### Faults"), "{summary}");
}
