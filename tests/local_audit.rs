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

    a.s3.shutdown().await;
}
