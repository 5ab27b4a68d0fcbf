//! Object-storage content faults, as real drills: real PostgreSQL, real barman-cloud, the
//! embedded S3 endpoint. Runs the shipped scenarios 20-24 and asserts verdicts, rows lost,
//! which writes were lost and to which fault, and what JUnit, rto.json and the Markdown
//! summary say. Needs `make setup`.

use std::path::{Path, PathBuf};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
use cli::{pgdrill, rto_scenario, run_dir, text};
use junit::Junit;

/// Run `scenarios` into a fresh report root; returns (exit code, output, run directory).
fn run(scenarios: &[&str], root: &Path) -> (Option<i32>, String, PathBuf) {
    let mut args = vec!["run", "--jobs", "2", "--report-dir", root.to_str().unwrap()];
    args.extend_from_slice(scenarios);
    let out = pgdrill(&args);
    (out.status.code(), text(&out), run_dir(root))
}

fn lost_steps(s: &serde_json::Value) -> Vec<(String, String)> {
    s["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["step_id"].as_str().unwrap().to_string(),
                m["caused_by"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn damaged_wal_content_loses_the_writes_after_it_and_the_audit_cannot_see_it() {
    let reports = tempfile::tempdir().unwrap();
    // Scenario 20 with the segment named instead: its first record is damaged. The writes
    // land in the same segments every run (each in its own, after the base backup's).
    let by_name = reports.path().join("corrupt-by-segment.yaml");
    std::fs::write(
        &by_name,
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/20-corrupt-wal-crc.yaml"),
        )
        .unwrap()
        .replace("name: corrupt-wal-crc", "name: corrupt-wal-crc-by-segment")
        .replace(
            "corrupt_wal: { holding_step: w2, mode: crc }",
            "corrupt_wal: { segment: 000000010000000000000004, mode: crc }",
        ),
    )
    .unwrap();
    let root = reports.path().join("reports");
    std::fs::create_dir(&root).unwrap();
    let (code, out, dir) = run(
        &[
            "scenarios/20-corrupt-wal-crc.yaml",
            "scenarios/21-corrupt-wal-undecompressable.yaml",
            by_name.to_str().unwrap(),
        ],
        &root,
    );
    assert_eq!(code, Some(0), "{out}");
    let junit = Junit::read(&dir.join("junit.xml"));
    assert!(junit.failed_or_errored().is_empty(), "{junit}");
    let rto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();

    // CRC: the object still decompresses; PostgreSQL rejects the damaged record and promotes.
    let crc = junit.case("corrupt-wal-crc");
    assert_eq!(
        crc.property("rows.expected").as_deref(),
        Some("27"),
        "{crc}"
    );
    assert_eq!(
        crc.property("rows.observed").as_deref(),
        Some("25"),
        "{crc}"
    );
    assert_eq!(crc.property("rows.lost").as_deref(), Some("2"), "{crc}");
    let replay_end = crc
        .property("recovery.replay_end")
        .unwrap_or_else(|| panic!("PostgreSQL's reason is reported: {crc}"));
    assert!(
        replay_end.starts_with("incorrect resource manager data checksum in record at "),
        "{replay_end}"
    );
    let damaged_at = replay_end.rsplit(' ').next().unwrap();
    assert!(
        crc.out().contains(&format!(
            "write `w2` lost: WAL segment 000000010000000000000004 was corrupted by fault step `corrupt-w2` (CRC); replay stops at the damaged record at {damaged_at}"
        )),
        "the fault, the segment and PostgreSQL's record agree: {crc}"
    );
    assert!(
        crc.out().contains("unreachable past the damaged record"),
        "w3: {crc}"
    );
    // The listing-only audit saw nothing, predicted nothing, and is not credited.
    assert_eq!(crc.property("audit.gaps").as_deref(), Some("none"), "{crc}");
    assert_eq!(
        crc.property("audit.predicted_rows_lost").as_deref(),
        Some("0"),
        "{crc}"
    );
    assert!(
        crc.out()
            .contains("The pre-recovery archive audit predicted no loss")
            && crc.out().contains("cannot see damaged content"),
        "{crc}"
    );
    assert!(
        !crc.text().contains("The archive audit reported this gap"),
        "{crc}"
    );
    let s = rto_scenario(&rto, "corrupt-wal-crc");
    assert_eq!(s["rows_lost"], 2, "{s}");
    assert_eq!(
        lost_steps(s),
        [
            ("w2".to_string(), "corrupt-w2".to_string()),
            ("w3".to_string(), "corrupt-w2".to_string())
        ]
    );
    for m in s["missing"].as_array().unwrap() {
        assert_eq!(m["segment_in_archive"], true, "{m}");
        assert!(m["removed_by"].is_null(), "nothing was deleted: {m}");
    }
    assert_eq!(s["rto"]["replay_end"], replay_end.as_str(), "{s}");
    assert_eq!(s["audit"]["predicted_lost_rows"], 0, "{s}");

    // Undecompressable: barman-cloud-wal-restore fails on the segment; replay ends before it.
    let un = junit.case("corrupt-wal-undecompressable");
    assert_eq!(un.property("rows.lost").as_deref(), Some("2"), "{un}");
    assert_eq!(un.property("rows.observed").as_deref(), Some("25"), "{un}");
    assert!(
        un.property("recovery.replay_end")
            .is_some_and(|r| r.starts_with("barman-cloud-wal-restore failed: ")),
        "the restore_command's failure is the reason replay ended: {un}"
    );
    assert!(
        un.out().contains(
            "write `w2` lost: WAL segment 000000010000000000000004 was damaged by fault step `garble-w2` (undecompressable): barman-cloud-wal-restore cannot decompress it"
        ),
        "{un}"
    );
    assert_eq!(un.property("audit.gaps").as_deref(), Some("none"), "{un}");
    let s = rto_scenario(&rto, "corrupt-wal-undecompressable");
    assert_eq!(
        lost_steps(s),
        [
            ("w2".to_string(), "garble-w2".to_string()),
            ("w3".to_string(), "garble-w2".to_string())
        ]
    );

    // By segment name: the segment's first record, right after its 40-byte long page header.
    let seg = junit.case("corrupt-wal-crc-by-segment");
    assert_eq!(seg.property("rows.lost").as_deref(), Some("2"), "{seg}");
    assert!(
        seg.out()
            .contains("flipped 8 byte(s) of the first record at 0/4000028"),
        "{seg}"
    );
    assert_eq!(
        seg.property("recovery.replay_end").as_deref(),
        Some("incorrect resource manager data checksum in record at 0/4000028"),
        "{seg}"
    );

    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.contains(
            "Replay ended where PostgreSQL logged: `incorrect resource manager data checksum"
        ),
        "{summary}"
    );
    assert!(summary.contains("cannot see damaged content"), "{summary}");
}

/// With a base backup's `backup.info` deleted, recovery falls back to the older backup the
/// archive still lists; with its data deleted, barman still lists it and the restore fails;
/// with no listed backup left, recovery fails saying so.
#[test]
fn recovery_chooses_its_backup_from_the_archive_catalogue() {
    let reports = tempfile::tempdir().unwrap();
    let none_left = reports.path().join("no-usable-backup.yaml");
    std::fs::write(
        &none_left,
        "name: no-usable-backup\nseed: 25\npostgres: 15\n\
         seed_data: { tables: [{ name: events, rows: 5 }] }\n\
         steps:\n  - base_backup: { id: base1 }\n  - write: { id: w1, table: events, rows: 5, own_segment: true }\n\
         \x20 - fault: { id: drop-info, delete_backup: { step: base1, part: info } }\n\
         recovery: { target: latest }\nexpect:\n  failed: { error_contains: \"no usable base backup\" }\n",
    )
    .unwrap();
    let root = reports.path().join("reports");
    std::fs::create_dir(&root).unwrap();
    let (code, out, dir) = run(
        &[
            "scenarios/22-backup-info-deleted-fallback.yaml",
            "scenarios/23-backup-data-deleted.yaml",
            none_left.to_str().unwrap(),
        ],
        &root,
    );
    assert_eq!(code, Some(0), "{out}");
    let junit = Junit::read(&dir.join("junit.xml"));
    assert!(junit.failed_or_errored().is_empty(), "{junit}");
    let rto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();

    // backup.info gone: the older backup, more WAL, nothing lost.
    let fb = junit.case("backup-info-deleted-fallback");
    assert_eq!(fb.property("backup.step").as_deref(), Some("base1"), "{fb}");
    assert_eq!(fb.property("rows.expected").as_deref(), Some("15"), "{fb}");
    assert_eq!(fb.property("rows.observed").as_deref(), Some("15"), "{fb}");
    assert_eq!(fb.property("rows.lost").as_deref(), Some("0"), "{fb}");
    let used = fb.property("backup_id").unwrap();
    let fallback = fb
        .property("backup.fallback")
        .unwrap_or_else(|| panic!("the fallback is reported: {fb}"));
    assert!(
        fallback.starts_with("fell back from backup ")
            && fallback.contains("(step `base2`) to the older ")
            && fallback.contains(&format!("{used} (step `base1`)"))
            && fallback.ends_with("its backup.info is missing from the archive"),
        "{fallback}"
    );
    assert!(
        fb.out()
            .contains(&format!("recovered from backup {used} to latest")),
        "the step log names the backup used: {fb}"
    );
    let s = rto_scenario(&rto, "backup-info-deleted-fallback");
    assert_eq!(s["backup_id"], used.as_str(), "{s}");
    assert_eq!(s["backup_step"], "base1", "{s}");
    assert_eq!(s["backup_fallback"], fallback.as_str(), "{s}");
    assert_eq!(s["rows_lost"], 0, "{s}");
    // Recovering from base1 replays past base2: more segments than base2 alone would need.
    assert!(
        s["rto"]["wal_segments_replayed"].as_u64().unwrap() >= 4,
        "{s}"
    );

    // Data gone, backup.info kept: barman still lists it, it is chosen, the restore fails.
    let data = junit.case("backup-data-deleted");
    assert_eq!(
        data.property("backup.step").as_deref(),
        Some("base2"),
        "{data}"
    );
    assert!(data.property("backup.fallback").is_none(), "{data}");
    assert!(
        data.property("observation").is_some_and(|o| o
            .starts_with("recovery failed: barman-cloud-restore failed: ")
            && o.contains("Missing file")),
        "{data}"
    );
    let audit = data.property("audit.prediction").unwrap();
    assert!(
        audit.ends_with("is incomplete in the archive: restore will fail"),
        "the audit flagged it before recovery: {audit}"
    );
    let s = rto_scenario(&rto, "backup-data-deleted");
    let findings = s["audit"]["findings"].to_string();
    assert!(
        findings.contains("is DONE but base/") && findings.contains("barman still lists it"),
        "{findings}"
    );

    // Nothing listed: recovery fails naming the situation, before any restore.
    let none = junit.case("no-usable-backup");
    let observed = none.property("observation").unwrap();
    assert!(
        observed.starts_with("recovery failed: no usable base backup: none of the base backups that end before the target latest is in the archive's catalogue")
            && observed.contains("(step `base1`)"),
        "{observed}"
    );
    assert!(none.property("backup_id").is_none(), "{none}");
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("- **Backup fallback:** fell back from backup"),
        "{summary}"
    );
}

/// A failover onto timeline 2, then its history file deleted: recovery to latest from the
/// timeline-1 backup stays on timeline 1, promotes, and silently loses the timeline-2 writes.
/// With the history file in place, the same recovery follows timeline 2 and loses nothing.
#[test]
fn a_deleted_history_file_makes_recovery_diverge_onto_its_own_timeline() {
    let reports = tempfile::tempdir().unwrap();
    let (code, out, dir) = run(
        &[
            "scenarios/24-timeline2-history-deleted.yaml",
            "tests/scenarios/timeline2-history-present.yaml",
        ],
        reports.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    let junit = Junit::read(&dir.join("junit.xml"));
    assert!(junit.failed_or_errored().is_empty(), "{junit}");
    let rto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();

    let gone = junit.case("timeline2-history-deleted");
    // The failover really moved the source: writes after it are on timeline 2.
    assert!(
        gone.out().contains("promoted onto timeline 2 at "),
        "the failover step says so: {gone}"
    );
    for w in ["w3", "w4"] {
        let line = gone
            .out()
            .lines()
            .find(|l| l.contains(&format!("] {w} (write):")))
            .unwrap_or_else(|| panic!("no {w} line: {gone}"));
        assert!(line.contains(" in 00000002"), "{line}");
    }
    assert!(
        gone.out().contains("deleted pgdrill/")
            && gone.out().contains("/pg-src/wals/00000002.history"),
        "{gone}"
    );
    assert_eq!(
        gone.property("rows.expected").as_deref(),
        Some("15"),
        "{gone}"
    );
    assert_eq!(
        gone.property("rows.observed").as_deref(),
        Some("9"),
        "{gone}"
    );
    assert_eq!(gone.property("rows.lost").as_deref(), Some("6"), "{gone}");
    assert!(
        gone.out().contains(
            "diverged: recovery stayed on timeline 1, because 00000002.history was deleted by fault step `drop-tl2-history`"
        ) && gone.out().contains("writes w3, w4 on timeline 2 lost (6 rows)"),
        "{gone}"
    );
    assert!(
        gone.out()
            .contains("history says it left timeline 1 when it promoted onto its own timeline 2"),
        "evidence from the recovered server itself: {gone}"
    );
    // The audit reads history files: it sees the missing one and predicts this loss.
    assert_eq!(
        gone.property("audit.gaps").as_deref(),
        Some("none"),
        "{gone}"
    );
    assert_eq!(
        gone.property("audit.predicted_rows_lost").as_deref(),
        Some("6"),
        "{gone}"
    );
    let s = rto_scenario(&rto, "timeline2-history-deleted");
    assert_eq!(
        lost_steps(s),
        [
            ("w3".to_string(), "drop-tl2-history".to_string()),
            ("w4".to_string(), "drop-tl2-history".to_string())
        ]
    );
    let findings = s["audit"]["findings"].to_string();
    assert!(
        findings.contains("timeline 2 has WAL but no 00000002.history"),
        "{findings}"
    );

    let kept = junit.case("timeline2-history-present");
    assert_eq!(
        kept.property("rows.observed").as_deref(),
        Some("15"),
        "{kept}"
    );
    assert_eq!(kept.property("rows.lost").as_deref(), Some("0"), "{kept}");
    assert_eq!(
        kept.property("audit.predicted_rows_lost").as_deref(),
        Some("0"),
        "{kept}"
    );
    let restored = rto_scenario(&rto, "timeline2-history-present")["rto"]["wal_segments_replayed"]
        .as_u64()
        .unwrap();
    assert!(
        restored >= 4,
        "timeline 1 and timeline 2 segments: {restored}"
    );
}
