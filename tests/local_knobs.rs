//! The knobs CNPG users turn, on real PostgreSQL and barman-cloud: `backup.jobs` and
//! `recovery.wal_max_parallel`. Needs `make setup`. Asserts the drill passes with every row
//! back and that recovery really fetched ahead (segments served from the spool).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
use cli::{pgdrill, run_dir, text};
use junit::Junit;

#[test]
fn parallel_backup_and_wal_prefetch_recover_every_row() {
    let reports = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "tests/scenarios/parallel-knobs.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = run_dir(reports.path());
    let junit = Junit::read(&dir.join("junit.xml"));
    let case = junit.case("parallel-knobs");
    assert!(!case.is_failure() && !case.is_error(), "{case}");
    assert_eq!(
        case.property("rows.expected").as_deref(),
        Some("38"),
        "{case}"
    );
    assert_eq!(
        case.property("rows.observed").as_deref(),
        Some("38"),
        "{case}"
    );
    assert_eq!(case.property("rows.lost").as_deref(), Some("0"), "{case}");

    let rto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();
    let s = rto["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "parallel-knobs")
        .unwrap();
    let p = &s["rto"]["wal_prefetch"];
    assert_eq!(p["max_parallel"], 4, "{s}");
    // Six written segments after the backup's: a miss fetches four at once, so most requests
    // are answered from the spool.
    let hits = p["spool_hits"].as_u64().unwrap();
    let fetches = p["fetches"].as_u64().unwrap();
    assert!(hits >= 1, "no segment was served from the spool: {p}");
    assert!(fetches > hits, "{p}");
    let replayed = s["rto"]["wal_segments_replayed"].as_u64().unwrap();
    assert!(replayed >= 6, "{s}");
}
