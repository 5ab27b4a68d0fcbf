//! Azure Blob Storage on the local backend: the shipped Azure scenarios (31-33, all three
//! credential flavours; 40, fixtures/restore.sh restoring a logical backup from the container) against the Azurite each run starts and stops, and `pgdrill audit` of
//! an Azure archive (emulator URL) finding the ADR 007 gap. Real PostgreSQL, real
//! barman-cloud (`azure-blob-storage`), real Azurite; needs `make setup`.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
#[path = "support/test_pg.rs"]
mod test_pg;

use std::path::Path;
use std::process::Command;

use cli::{pgdrill, run_dir, text};
use junit::Junit;
use pgdrill::backend::azure::AZURITE_KEY;
use pgdrill::backend::local::azurite::Azurite;
use pgdrill::runner::Status;
use serde_json::Value;

/// Live processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmd.contains(needle)
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

#[test]
fn shipped_azure_scenarios_pass_on_azurite_and_leave_nothing_running() {
    let reports = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "--jobs",
        "3",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "scenarios/31-azure-clean-restore.yaml",
        "scenarios/32-azure-adr007-missing-wal-segment.yaml",
        "scenarios/33-azure-wrong-server-name.yaml",
        "scenarios/40-azure-runbook-restore.yaml",
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let dir = run_dir(reports.path());
    let junit = Junit::read(&dir.join("junit.xml"));
    assert!(junit.failed_or_errored().is_empty(), "{junit}");
    assert_eq!(junit.cases().count(), 4, "{junit}");

    let clean = junit.case("azure-clean-restore");
    assert_eq!(
        clean.property("rows.observed").as_deref(),
        Some("145"),
        "{clean}"
    );
    let adr = junit.case("azure-adr007-missing-wal-segment");
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
    assert!(
        said.contains("archiving to azure://pgdrill/pgdrill/"),
        "the source archives to the Azure container:\n{said}"
    );
    // Seed 004's Azure contract: the script downloaded the dump from the container with the
    // account key pgdrill gave it, and the ledger at the dump's snapshot judged the target
    // (orders 30 + 4, customers 6: the in-flight write and the later one are not in it).
    let runbook = junit.case("azure-runbook-restore");
    assert_eq!(
        runbook.property("rows.observed").as_deref(),
        Some("40"),
        "{runbook}"
    );
    assert!(
        said.contains("by ../fixtures/restore.sh (exit 0"),
        "the script restored the dump:\n{said}"
    );
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("restore.sh: downloading azure://pgdrill/pgdrill/"),
        "the script's output, in the report, says it read the Azure container:\n{summary}"
    );
    assert!(
        summary.contains("WAL gap: ") && summary.contains("The archive audit reported this gap"),
        "the pre-recovery audit read the Azure archive and found the gap:\n{summary}"
    );
    assert!(summary.contains("Expected empty archive"), "{summary}");
    // The development account's key never reaches what the user sees.
    for f in ["summary.md", "junit.xml", "report.html", "rto.json"] {
        let body = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        assert!(
            !body.contains(&AZURITE_KEY[..20]),
            "{f} carries the account key"
        );
    }
    assert!(!said.contains(&AZURITE_KEY[..20]), "{said}");

    // Azurite ran under the run directory and is gone with it.
    let run_id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let left = processes_with(&format!("runs/{run_id}/azurite"));
    assert!(left.is_empty(), "Azurite outlived the run: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_reads_an_azure_archive_and_finds_the_adr007_gap() {
    let a = test_pg::TestArchive::start("azure-audit-").await;
    let azurite_dir = tempfile::tempdir().unwrap();
    let azurite = Azurite::start(&a.toolchain, azurite_dir.path(), "pgdrill")
        .await
        .expect("Azurite (make setup)");
    let prefix = "pgdrill/azure-audit";
    let res = a
        .drill_into(
            Some(&azurite.target),
            prefix,
            "scenarios/32-azure-adr007-missing-wal-segment.yaml",
            false,
        )
        .await;
    assert!(matches!(res.status, Status::Passed), "{:?}", res.status);
    let v = res.outcome.verification.as_ref().expect("verified");
    let deleted: Vec<String> = v
        .missing
        .iter()
        .filter(|m| m.removed_by.is_some())
        .map(|m| m.segment.to_string())
        .collect();
    assert_eq!(deleted.len(), 1, "{:?}", v.missing);

    // barman-cloud's emulator URL form, as CNPG's destinationPath would name it.
    let url = format!(
        "{}/pgdrill/{prefix}/azure-adr007-missing-wal-segment",
        azurite.target.endpoint
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["audit", &url, "pg-src", "--json", "--max-wal-age", "1d"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("AZURE_STORAGE_KEY", AZURITE_KEY)
        .env_remove("AZURE_STORAGE_ACCOUNT")
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "a gap fails the audit:\n{said}");
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {said}"));
    let gaps = report["gaps"].as_array().expect("gaps");
    assert_eq!(gaps.len(), 1, "{said}");
    assert_eq!(gaps[0]["segment"], deleted[0].as_str());
    assert_eq!(
        report["backups"].as_array().map(Vec::len),
        Some(1),
        "{said}"
    );

    // Without the key the audit refuses before reading anything.
    let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["audit", &url, "pg-src"])
        .env_remove("AZURE_STORAGE_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("AZURE_STORAGE_KEY"), "{}", text(&out));

    let pid = azurite.pid();
    azurite.shutdown().await;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "Azurite {pid} still runs after shutdown"
    );
}
