//! `pgdrill audit` against real archives: the ADR 007 drill runs on the local backend (real
//! PostgreSQL, real barman-cloud) into an embedded S3 endpoint this test owns, so the archive
//! outlives the drill. The audit must find the gap the fault made and issue nothing but reads
//! (the endpoint records every operation). Timelines are covered by the analysis unit tests.

use std::process::Command;

use pgdrill::backend::credentials::KeyPair;
use pgdrill::backend::local::s3server::S3Server;
use pgdrill::runner::Status;
use serde_json::Value;

#[path = "support/junit.rs"]
mod junit;
#[path = "support/promtool.rs"]
mod promtool;
#[path = "support/test_pg.rs"]
mod test_pg;

use junit::Junit;

const PREFIX: &str = "pgdrill/audit-test";

fn audit(s3: &S3Server, creds: &KeyPair, server: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args([
            "audit",
            &format!("s3://pgdrill/{PREFIX}/adr007-missing-wal-segment"),
            server,
            "--endpoint",
            &s3.endpoint,
        ])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", &creds.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_key)
        .output()
        .expect("pgdrill audit runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_the_adr007_gap_and_only_reads() {
    let a = test_pg::TestArchive::start("audit-test-").await;
    let (s3, creds, run_dir) = (&a.s3, &a.creds, &a.run_dir);
    let res = a
        .drill(
            PREFIX,
            "scenarios/03-adr007-missing-wal-segment.yaml",
            false,
        )
        .await;
    assert!(matches!(res.status, Status::Passed), "{:?}", res.status);
    let v = res.outcome.verification.as_ref().expect("verified");
    let removed: Vec<String> = v
        .missing
        .iter()
        .filter(|m| m.removed_by.is_some())
        .map(|m| m.segment.to_string())
        .collect();
    assert_eq!(removed.len(), 1, "{:?}", v.missing);
    let deleted = removed[0].clone();

    // The source archive: one backup, the deleted segment is a gap on timeline 1.
    s3.operations.clear();
    let (code, text) = audit(s3, creds, "pg-src", &["--json", "--max-wal-age", "1d"]);
    assert_eq!(code, 1, "a gap fails the audit:\n{text}");
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let gaps = report["gaps"].as_array().expect("gaps");
    assert_eq!(gaps.len(), 1, "{text}");
    assert_eq!(gaps[0]["segment"], deleted.as_str());
    assert_eq!(gaps[0]["timeline"], 1);
    let backups = report["backups"].as_array().expect("backups");
    assert_eq!(backups.len(), 1, "{text}");
    assert_eq!(backups[0]["recoverable_to_end"], true, "{text}");
    assert_eq!(backups[0]["first_gap"]["segment"], deleted.as_str());
    assert_eq!(
        report["newest_backup"], backups[0]["id"],
        "the only backup is the newest"
    );

    // Read-only: nothing but listings and reads reached the endpoint.
    let ops = s3.operations.entries();
    assert!(!ops.is_empty());
    for op in &ops {
        assert!(
            op.starts_with("ListObjectsV2 ") || op.starts_with("GetObject "),
            "the audit issued {op}"
        );
    }

    // The table and JUnit outputs say the same.
    let junit = run_dir.path().join("audit.xml");
    let (code, text) = audit(
        s3,
        creds,
        "pg-src",
        &["--junit", junit.to_str().unwrap(), "--max-wal-age", "1d"],
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&deleted) && text.contains("audit: FAILED"),
        "{text}"
    );
    let junit = Junit::read(&junit);
    assert!(
        junit
            .failed_or_errored()
            .iter()
            .any(|c| c.is_failure() && c.message().contains(&deleted)),
        "a failed check names {deleted}: {junit}"
    );

    // The same facts as Prometheus metrics, in the file a textfile collector reads.
    let prom = run_dir.path().join("audit.prom");
    let (code, text) = audit(
        s3,
        creds,
        "pg-src",
        &[
            "--metrics-file",
            prom.to_str().unwrap(),
            "--max-wal-age",
            "1d",
        ],
    );
    assert_eq!(code, 1, "{text}");
    let metrics = std::fs::read_to_string(&prom).unwrap();
    let labels = format!(
        "{{server_name=\"pg-src\",destination=\"s3://pgdrill/{PREFIX}/adr007-missing-wal-segment\"}}"
    );
    for (name, value) in [
        ("pgdrill_archive_reachable", 1.0),
        ("pgdrill_audit_ok", 0.0),
        ("pgdrill_wal_missing_segments", 1.0),
        ("pgdrill_base_backups_completed", 1.0),
        ("pgdrill_base_backups_failed_consecutive", 0.0),
    ] {
        assert_eq!(
            sample(&metrics, &format!("{name}{labels}")),
            Some(value),
            "{name}:\n{metrics}"
        );
    }
    let age = sample(
        &metrics,
        &format!("pgdrill_base_backup_age_seconds{labels}"),
    )
    .expect("backup age");
    assert!((0.0..3600.0).contains(&age), "{metrics}");
    lint(&metrics);
    assert!(
        sample(&metrics, &format!("pgdrill_wal_archived_segments{labels}")).unwrap() >= 3.0,
        "{metrics}"
    );

    // Credentials the endpoint refuses: the metrics say the archive is unreachable, and why.
    let wrong = KeyPair {
        access_key: creds.access_key.clone(),
        secret_key: "not-the-secret".into(),
    };
    let (code, text) = audit(
        s3,
        &wrong,
        "pg-src",
        &["--metrics-file", prom.to_str().unwrap()],
    );
    assert_eq!(
        code, 3,
        "an unreadable archive is an infrastructure failure:\n{text}"
    );
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(
        sample(&metrics, &format!("pgdrill_archive_reachable{labels}")),
        Some(0.0),
        "{metrics}"
    );
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("pgdrill_archive_error{"))
        .unwrap_or_else(|| panic!("no pgdrill_archive_error:\n{metrics}\n{text}"));
    assert!(
        refused.contains("reason=\"archive_access_denied\""),
        "{refused}\n{text}"
    );
    assert!(
        !metrics.contains("pgdrill_wal_missing_segments"),
        "{metrics}"
    );

    a.s3.shutdown().await;
}

/// `promtool check metrics` finds nothing to say about `metrics`.
fn lint(metrics: &str) {
    if let Some(p) = promtool::Promtool::find_or_skip("audit metrics") {
        let found = p.check_metrics(metrics);
        assert!(found.is_clean(), "{found:?}\n{metrics}");
    }
}

/// The value of the sample `series` (name and labels exactly as written) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}
