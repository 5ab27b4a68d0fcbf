//! `verify.amcheck` for real: local drills (real PostgreSQL, real barman-cloud, the embedded
//! S3 endpoint) whose recovered instances real `pg_amcheck` checks. The stale expression index
//! of scenario 39 comes back with every row and is caught by amcheck alone: expected there (the
//! drill passes), not expected in its test twin (it fails with `amcheck_findings`); a clean
//! drill is checked clean; a major without `pg_amcheck` is said so, never counted clean. Game
//! days run amcheck by default and record its findings.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
#[path = "support/test_pg.rs"]
mod test_pg;

use std::process::Command;

use cli::{pgdrill, rto_scenario, run_dir, text};
use junit::Junit;
use pgdrill::backend::amcheck::AmcheckOutcome;
use pgdrill::runner::Status;
use serde_json::Value;

const STALE: &str = "scenarios/39-amcheck-stale-expression-index.yaml";
const UNEXPECTED: &str = "tests/scenarios/amcheck-unexpected-stale-index.yaml";
const CLEAN: &str = "scenarios/02-pitr-time-between-writes.yaml";
const PG16: &str = "tests/scenarios/amcheck-pg16.yaml";

#[test]
fn amcheck_catches_what_row_counts_cannot() {
    let reports = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "--jobs",
        "2",
        "--report-dir",
        reports.path().to_str().unwrap(),
        STALE,
        UNEXPECTED,
        CLEAN,
        PG16,
    ]);
    // The unexpected corruption fails its drill; PostgreSQL 16 may have no pg_amcheck.
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let dir = run_dir(reports.path());
    let junit = Junit::read(&dir.join("junit.xml"));
    let rto: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();

    // 39: every row back, the index caught, as the scenario expects: a pass.
    let stale = junit.case("amcheck-stale-expression-index");
    assert!(!stale.is_failure() && !stale.is_error(), "{stale}");
    assert_eq!(stale.property("rows.lost").as_deref(), Some("0"), "{stale}");
    assert_eq!(
        stale.property("amcheck.findings").as_deref(),
        Some("1"),
        "{stale}"
    );
    assert!(
        stale
            .property("amcheck")
            .is_some_and(|a| a.contains("finding(s) in public.orders_sort_key")),
        "{stale}"
    );
    let doc = rto_scenario(&rto, "amcheck-stale-expression-index");
    assert_eq!(doc["amcheck"]["status"], "ran", "{doc}");
    assert_eq!(doc["amcheck"]["exit_code"], 2, "{doc}");
    let f = &doc["amcheck"]["findings"][0];
    assert_eq!(
        (f["kind"].as_str(), f["relation"].as_str()),
        (Some("btree_index"), Some("orders_sort_key")),
        "{doc}"
    );
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("lacks matching index tuple within index \"orders_sort_key\""),
        "{doc}"
    );

    // Its twin without the expectation: the same rows, a failure with the amcheck code.
    let twin = junit.case("amcheck-unexpected-stale-index");
    assert!(twin.is_failure(), "{twin}");
    assert_eq!(twin.property("rows.lost").as_deref(), Some("0"), "{twin}");
    assert_eq!(
        twin.property("failure.reason").as_deref(),
        Some("amcheck_findings"),
        "{twin}"
    );
    assert!(
        twin.message().starts_with(
            "amcheck: unexpected corruption in btree index postgres.public.orders_sort_key"
        ),
        "{twin}"
    );
    assert_eq!(
        rto_scenario(&rto, "amcheck-unexpected-stale-index")["reason"],
        "amcheck_findings"
    );
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        md.contains("### Integrity after recovery (pg_amcheck)"),
        "{md}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("data-amcheck-findings=\"1\""));

    // A clean PITR drill is checked clean.
    let clean = junit.case("pitr-time-between-writes");
    assert!(!clean.is_failure() && !clean.is_error(), "{clean}");
    assert_eq!(
        clean.property("amcheck.findings").as_deref(),
        Some("0"),
        "{clean}"
    );
    assert!(
        clean
            .property("amcheck")
            .is_some_and(|a| a.contains("no corruption found")),
        "{clean}"
    );

    // PostgreSQL 16: run where a pg_amcheck of that major exists, an honest error otherwise.
    let (toolchain, _dir) = test_pg::run_dir("amcheck-pg16-");
    let pg16 = junit.case("amcheck-pg16");
    let doc = rto_scenario(&rto, "amcheck-pg16");
    match toolchain.pg_amcheck(16) {
        Ok(_) => {
            assert!(!pg16.is_failure() && !pg16.is_error(), "{pg16}");
            assert_eq!(doc["amcheck"]["status"], "ran", "{doc}");
        }
        Err(why) => {
            assert!(pg16.is_error(), "{pg16}");
            assert!(
                pg16.message().contains("no pg_amcheck for PostgreSQL 16"),
                "{pg16}"
            );
            assert_eq!(doc["amcheck"]["status"], "not_run", "{doc}");
            assert_eq!(doc["amcheck"]["why"], why.as_str(), "{doc}");
        }
    }
    assert_eq!(
        junit.failed_or_errored().len(),
        if toolchain.pg_amcheck(16).is_ok() {
            1
        } else {
            2
        }
    );
}

/// A game day of scenario 39's archive: amcheck runs by default and fails the game day with
/// the stale index; `amcheck: false` turns it off and the record says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn game_days_run_amcheck_by_default() {
    const PREFIX: &str = "pgdrill/amcheck-gameday";
    let a = test_pg::TestArchive::start("amcheck-gameday-").await;
    let drilled = a.drill(PREFIX, STALE, false).await;
    assert!(
        matches!(drilled.status, Status::Passed),
        "{:?}",
        drilled.status
    );
    assert!(
        matches!(&drilled.outcome.amcheck, Some(AmcheckOutcome::Ran(r)) if r.findings.len() == 1),
        "{:?}",
        drilled.outcome.amcheck
    );
    let work = tempfile::tempdir().unwrap();
    let gameday = |name: &str, extra: &str| -> (i32, String, Value) {
        let file = work.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "name: {name}\narchive:\n  destination: s3://pgdrill/{PREFIX}/amcheck-stale-expression-index\n  server_name: app-pg\n  endpoint: {}\npostgres: 15\nchecks:\n  - {{ name: orders, sql: select count(*) from orders, equals: \"110\" }}\n{extra}",
                a.s3.endpoint
            ),
        )
        .unwrap();
        let reports = work.path().join(format!("reports-{name}"));
        let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
            .args(["gameday", file.to_str().unwrap(), "--operator", "ci-test"])
            .args(["--report-dir", reports.to_str().unwrap()])
            .env("AWS_ACCESS_KEY_ID", &a.creds.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &a.creds.secret_key)
            .env_remove("PGDRILL_KEEP")
            .output()
            .expect("pgdrill gameday runs");
        let dir = cli::gameday_dir(&reports, "gameday-", &text(&out));
        let rec = serde_json::from_str(&std::fs::read_to_string(dir.join("gameday.json")).unwrap())
            .unwrap();
        let xml = std::fs::read_to_string(dir.join("gameday.xml")).unwrap();
        (out.status.code().unwrap_or(-1), text(&out) + &xml, rec)
    };

    a.s3.operations.clear();
    let (code, out, rec) = gameday("stale-default", "");
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        rec["checks"][0]["passed"], true,
        "the rows are all there: {rec}"
    );
    assert_eq!(rec["reason"], "amcheck_findings", "{rec}");
    assert_eq!(rec["amcheck"]["status"], "ran", "{rec}");
    assert_eq!(
        rec["amcheck"]["findings"][0]["relation"], "orders_sort_key",
        "{rec}"
    );
    assert!(out.contains("name=\"amcheck\""), "{out}");
    // amcheck installs its extension in the scratch instance only: the archive is only read.
    a.assert_only_reads("amcheck-stale-expression-index/app-pg/");

    let (code, out, rec) = gameday("stale-off", "amcheck: false\n");
    assert_eq!(code, 0, "{out}");
    assert_eq!(rec["amcheck"]["status"], "not_run", "{rec}");
    assert!(
        rec["amcheck"]["why"]
            .as_str()
            .unwrap()
            .contains("amcheck: false"),
        "{rec}"
    );
    a.s3.shutdown().await;
}
