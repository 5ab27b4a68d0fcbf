//! `pgdrill history` over report directories written by the real reporters (`rto.json` from
//! `RtoJsonReporter`, `gameday.json` serialised as `pgdrill gameday` does), so the format it
//! reads cannot drift from the one written. Offline: no PostgreSQL, no S3 endpoint.

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use pgdrill::backend::{Phase, PhaseName, Rto};
use pgdrill::gameday::plan::Rpo;
use pgdrill::gameday::{GamedayRecord, RestoreOutcome};
use pgdrill::report::{Reporter, RtoJsonReporter};
use pgdrill::runner::{
    ArchiveFacts, Event, Outcome, RecoveryFacts, RecoveryObservation, RunInfo, ScenarioInfo,
    ScenarioResult, Servers, Status,
};
use serde_json::Value;

use cli::{pgdrill, text};

fn at(days_ago: i64) -> DateTime<Utc> {
    Utc::now() - Duration::days(days_ago)
}

fn rto(seconds: f64, start: DateTime<Utc>) -> Rto {
    Rto {
        seconds,
        phases: vec![Phase::new(
            PhaseName::RestoreBaseBackup,
            start,
            start + Duration::milliseconds((seconds * 1000.0) as i64),
        )],
        wal_segments_replayed: 1,
        ..Default::default()
    }
}

fn result(name: &str, started_at: DateTime<Utc>, status: Status, rto_s: f64) -> ScenarioResult {
    ScenarioResult {
        scenario: ScenarioInfo {
            name: name.into(),
            file: PathBuf::from(format!("scenarios/{name}.yaml")),
            description: String::new(),
            tags: vec![],
            seed: 7,
            backend: "local".into(),
            started_at,
            seconds: 10.0,
        },
        servers: Servers {
            source_postgres: Some("16.6".into()),
            recovery_postgres: Some("16.6".into()),
            server_name: "src".into(),
            recovery_server_name: "src-restored".into(),
            destination: "s3://pgdrill/x".into(),
        },
        recovery: RecoveryFacts {
            backup_id: Some("b1".into()),
            backup_step: None,
            backup_fallback: None,
            recovery_target: "latest".into(),
            resolved_target: Some("latest".into()),
            expected_outcome: "recovered".into(),
            observation: RecoveryObservation::Recovered,
            audit: None,
            script: None,
        },
        outcome: Outcome {
            rto: Some(rto(rto_s, started_at)),
            ..Outcome::default()
        },
        status,
        reason: None,
        archive: ArchiveFacts::default(),
        log: vec![],
        kept: vec![],
        targets: vec![],
    }
}

/// One run directory, its `rto.json` written by the real reporter.
fn write_run(root: &Path, run_id: &str, started_at: DateTime<Utc>, results: Vec<ScenarioResult>) {
    let dir = root.join(run_id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut r = RtoJsonReporter::new(&dir);
    let names = results.iter().map(|r| r.scenario.name.clone()).collect();
    r.on_event(&Event::RunStarted(RunInfo {
        run_id: run_id.into(),
        backend: "local".into(),
        started_at,
        scenarios: names,
        report_dir: dir.clone(),
    }))
    .unwrap();
    for res in results {
        r.on_event(&Event::ScenarioFinished(Box::new(res))).unwrap();
    }
    r.on_event(&Event::RunFinished {
        at: started_at + Duration::seconds(30),
        seconds: 30.0,
    })
    .unwrap();
    r.finish().unwrap();
}

/// One game-day directory, its `gameday.json` serialised as `pgdrill gameday` writes it.
fn write_gameday(root: &Path, started_at: DateTime<Utc>) {
    let dir = root.join("gameday-orders-20260101T000000Z");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = GamedayRecord {
        name: "orders".into(),
        description: String::new(),
        file: "gamedays/orders.yaml".into(),
        operator: "dr-team".into(),
        started_at,
        seconds: 42.0,
        backend: "local".into(),
        archive: "s3://backups/prod/orders-pg".into(),
        endpoint: "http://127.0.0.1:9000".into(),
        postgres_major: 16,
        postgres_version: Some("16.6".into()),
        seed: 1,
        target: "latest".into(),
        resolved_target: Some("latest".into()),
        random_window: None,
        backup_id: Some("b1".into()),
        audit: None,
        restore: RestoreOutcome::Recovered,
        recovered_to: Some(started_at),
        rto: Some(rto(40.0, started_at)),
        rpo: Some(Rpo::measure(
            "newest archived WAL",
            started_at + Duration::seconds(5),
            Some(started_at),
            None,
        )),
        checks: vec![],
        amcheck: None,
        reason: None,
        status: Status::Passed,
        kept: vec![],
    };
    std::fs::write(
        dir.join("gameday.json"),
        serde_json::to_string_pretty(&rec).unwrap() + "\n",
    )
    .unwrap();
}

/// Two runs of `clean` (one passed, one failed) and one of `gap`; a game day 100 days old;
/// a `latest` link to the second run.
fn reports() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let failed = Status::Failed {
        reasons: vec!["unexpected data loss".into()],
    };
    write_run(
        root.path(),
        "20260101T000000Z-aaaa",
        at(3),
        vec![result("clean", at(3), Status::Passed, 2.0)],
    );
    write_run(
        root.path(),
        "20260102T000000Z-bbbb",
        at(1),
        vec![
            result("clean", at(1), failed, 4.0),
            result("gap", at(1), Status::Passed, 3.0),
        ],
    );
    std::os::unix::fs::symlink("20260102T000000Z-bbbb", root.path().join("latest")).unwrap();
    write_gameday(root.path(), at(100));
    std::fs::create_dir(root.path().join("not-a-run")).unwrap();
    root
}

#[test]
fn history_json_counts_runs_and_game_days() {
    let root = reports();
    let out = pgdrill(&["history", root.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = v["scenarios"].as_array().unwrap();
    assert_eq!(s.len(), 2, "{v}");
    let clean = &s[0];
    assert_eq!(clean["name"], "clean");
    assert_eq!(clean["runs"], 2, "the latest link is not counted: {v}");
    assert_eq!(clean["passes"], 1);
    assert_eq!(clean["pass_rate"], 0.5);
    assert_eq!(clean["last_status"], "failed");
    assert!(clean["last_success"].is_string());
    assert_eq!(clean["rto"]["series"], serde_json::json!([2.0, 4.0]));
    assert_eq!(clean["rto"]["latest"], 4.0);
    assert_eq!(clean["rto"]["median"], 3.0);
    assert_eq!(s[1]["name"], "gap");
    assert_eq!(s[1]["pass_rate"], 1.0);

    let a = &v["archives"][0];
    assert_eq!(a["name"], "s3://backups/prod/orders-pg");
    assert_eq!(a["runs"], 1);
    assert_eq!(a["rpo"]["latest"], 5.0);
    assert_eq!(a["gameday_overdue"], true, "100 days > 92: {v}");
    assert_eq!(v["gameday_overdue"], true);
    assert_eq!(v["max_gameday_age_days"], 92.0);

    // A longer allowance: not overdue.
    let out = pgdrill(&[
        "history",
        root.path().to_str().unwrap(),
        "--json",
        "--max-gameday-age",
        "120d",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["archives"][0]["gameday_overdue"], false, "{v}");
    assert_eq!(v["gameday_overdue"], false);
}

#[test]
fn history_table_and_html_page() {
    let root = reports();
    let page = root.path().join("history.html");
    let out = pgdrill(&[
        "history",
        root.path().to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let clean = line("clean ");
    assert_eq!(clean[1..3], ["1/2", "50%"], "{table}");
    assert!(table.contains("4.00s/3.00s (+33%)"), "{table}");
    assert_eq!(line("gap ")[1..3], ["1/1", "100%"], "{table}");
    assert!(
        table.contains("overdue: s3://backups/prod/orders-pg (last game day 100 days ago)"),
        "{table}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(r#"data-name="clean" data-runs="2" data-passes="1""#),
        "{html}"
    );
    assert!(!html.contains("src="), "{html}");
}

#[test]
fn a_malformed_report_is_an_error_naming_the_file() {
    let root = reports();
    let bad = root.path().join("20260103T000000Z-cccc");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("rto.json"), "{\"run_id\": 3").unwrap();
    let out = pgdrill(&["history", root.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("20260103T000000Z-cccc/rto.json"),
        "{}",
        text(&out)
    );
}
