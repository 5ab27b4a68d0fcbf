//! `pgdrill audit` against real archives: the ADR 007 drill runs on the local backend (real
//! PostgreSQL, real barman-cloud) into an embedded S3 endpoint this test owns, so the archive
//! outlives the drill. The audit must find the gap the fault made and issue nothing but reads
//! (the endpoint records every operation). Timelines are covered by the analysis unit tests.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pgdrill::backend::local::s3server::{S3Credentials, S3Server};
use pgdrill::backend::local::{LocalBackend, LocalOptions};
use pgdrill::backend::objstore::S3Target;
use pgdrill::runner::{Emitter, Status, run_scenario};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

#[path = "support/kube_api_double.rs"]
mod kube_api_double;
#[path = "support/test_pg.rs"]
mod test_pg;

const PREFIX: &str = "pgdrill/audit-test";

fn audit(s3: &S3Server, creds: &S3Credentials, server: &str, extra: &[&str]) -> (i32, String) {
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
    let (toolchain, run_dir) = test_pg::run_dir("audit-test-");
    let s3_dir = tempfile::tempdir().expect("s3 dir");
    let creds = S3Credentials::random();
    let s3 = S3Server::start(s3_dir.path(), 0, &creds, &["pgdrill"])
        .await
        .expect("embedded S3");
    let backend = LocalBackend::new(LocalOptions {
        toolchain,
        s3: S3Target {
            endpoint: s3.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: "pgdrill".into(),
            access_key: creds.access_key.clone(),
            secret_key: creds.secret_key.clone(),
        },
        run_dir: run_dir.path().to_path_buf(),
        bucket_prefix: PREFIX.into(),
        // The endpoint belongs to this test: teardown leaves the archive for the audit.
        external_s3: false,
        faults: None,
    });
    let loaded =
        pgdrill::scenario::load_file(Path::new("scenarios/03-adr007-missing-wal-segment.yaml"))
            .expect("scenario");
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_c, cancel) = watch::channel(false);
    let res = tokio::time::timeout(
        Duration::from_secs(180),
        run_scenario(
            &backend,
            &loaded,
            Path::new("fixtures"),
            &Emitter { tx },
            cancel,
            false,
        ),
    )
    .await
    .expect("drill finished");
    assert!(matches!(res.status, Status::Passed), "{:?}", res.status);
    let v = res.verification.as_ref().expect("verified");
    let removed: Vec<&str> = v
        .missing
        .iter()
        .filter(|m| m.removed_by.is_some())
        .map(|m| m.segment.as_str())
        .collect();
    assert_eq!(removed.len(), 1, "{:?}", v.missing);
    let deleted = removed[0].to_string();

    // The source archive: one backup, the deleted segment is a gap on timeline 1.
    s3.operations.clear();
    let (code, text) = audit(&s3, &creds, "pg-src", &["--json", "--max-wal-age", "1d"]);
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
        &s3,
        &creds,
        "pg-src",
        &["--junit", junit.to_str().unwrap(), "--max-wal-age", "1d"],
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&deleted) && text.contains("audit: FAILED"),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("<failure") && xml.contains(&deleted), "{xml}");

    s3.shutdown().await;
}
