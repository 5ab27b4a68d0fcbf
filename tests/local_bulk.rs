//! Bulk tables on a real PostgreSQL: the server generates the rows and digests id ranges, and
//! where a digest differs the narrow queries name the exact ids (changed, missing, stray);
//! then the shipped scale scenario, and a bulk write lost to a WAL gap, as real drills.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/test_pg.rs"]
mod test_pg;

use pgdrill::ledger::Ledger;
use pgdrill::runner::{Write, create_tables, read_bulk, write_rows};
use pgdrill::scenario::ExpectRecovered;
use pgdrill::verify::{ArchiveFacts, Case, verify};

use cli::{pgdrill as run_pgdrill, run_dir, text};
use test_pg::TestPg;

const SEED: u64 = 11;
const ROW_BYTES: u32 = 300;

#[tokio::test(flavor = "multi_thread")]
async fn bulk_digests_match_and_name_changed_missing_and_stray_rows_by_id() {
    let pg = TestPg::start("bulk", &[("track_commit_timestamp", "on")]).await;
    let mut client = pg.inst.connect().await.expect("connect");
    create_tables(&client, &["blobs".to_string()])
        .await
        .expect("tables");
    let mut ledger = Ledger::default();
    for (seq, step, first_id, rows) in [(0, "seed", 1, 2000), (1, "w1", 2001, 500)] {
        let w = Write {
            seed: SEED,
            seq,
            step_id: step,
            table: "blobs",
            first_id,
            rows,
            row_bytes: Some(ROW_BYTES),
        };
        let e = write_rows(&mut client, &w).await.expect("bulk write");
        assert_eq!(e.row_bytes, Some(ROW_BYTES));
        assert!(e.digest.starts_with(&format!("{rows}:")), "{}", e.digest);
        ledger.entries.push(e);
    }
    let payload: String = client
        .query_one("SELECT payload FROM blobs WHERE id = 7", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(payload.len(), ROW_BYTES as usize);
    assert!(payload.bytes().all(|b| b.is_ascii_hexdigit()), "{payload}");

    let judge = |observed: &pgdrill::verify::ObservedBulk| {
        let mut o = pgdrill::verify::Observed::default();
        o.bulk.insert("blobs".into(), observed.clone());
        let expected: Vec<_> = ledger.entries.iter().collect();
        let expect = ExpectRecovered::default();
        let archive = ArchiveFacts::default();
        let case = Case {
            ledger: &ledger,
            expected: &expected,
            archive: &archive,
            seed: SEED,
            expect: &expect,
            rto_seconds: None,
        };
        verify(&case, &o)
    };

    // Untouched, the server's digests equal the ledger's: no id is read.
    let read = read_bulk(&client, &ledger, SEED, "blobs", ROW_BYTES)
        .await
        .expect("read bulk");
    assert!(read.bytes_scanned > 2500 * u64::from(ROW_BYTES), "{read:?}");
    assert!(
        read.ranges.iter().all(|r| r.wrong_ids.is_empty()
            && r.missing_ids.is_empty()
            && r.present_ids.is_empty())
    );
    let v = judge(&read);
    assert!(v.passed(), "{:?}", v.failures);
    assert_eq!(v.observed_rows["blobs"], 2500);

    // Two payloads changed (one to upper case: same length, other letters), one step renamed, one row deleted,
    // two stray rows past every write.
    client
        .batch_execute(
            "UPDATE blobs SET payload = 'x' WHERE id = 5; \
             UPDATE blobs SET payload = upper(payload) WHERE id = 1500; \
             UPDATE blobs SET step = 'w9' WHERE id = 2100; \
             DELETE FROM blobs WHERE id = 2400; \
             INSERT INTO blobs VALUES (9001, 'w1', 'zz'), (9002, 'w1', 'zz')",
        )
        .await
        .unwrap();
    let read = read_bulk(&client, &ledger, SEED, "blobs", ROW_BYTES)
        .await
        .expect("read bulk");
    let v = judge(&read);
    assert!(!v.passed());
    let by_what = |what: &str| {
        v.problems
            .iter()
            .filter(|p| p.what.contains(what))
            .flat_map(|p| p.ids.clone())
            .collect::<Vec<u64>>()
    };
    assert_eq!(
        by_what("content differs"),
        vec![5, 1500, 2100],
        "{:?}",
        v.problems
    );
    assert_eq!(
        by_what("only partly present"),
        vec![2400],
        "{:?}",
        v.problems
    );
    assert_eq!(
        by_what("never written"),
        vec![9001, 9002],
        "{:?}",
        v.problems
    );
    assert_eq!(v.rows_lost, 1);
    assert_eq!(v.missing[0].step_id, "w1");
    pg.stop().await;
}

#[test]
fn the_shipped_scale_scenario_recovers_mid_load_verified_by_the_server() {
    let reports = tempfile::tempdir().unwrap();
    let out = run_pgdrill(&[
        "run",
        "--report-dir",
        reports.path().to_str().unwrap(),
        "scenarios/29-scale-pitr-mid-bulk-load.yaml",
        "tests/scenarios/bulk-write-lost.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = run_dir(reports.path());
    let rto: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("rto.json")).unwrap()).unwrap();
    let scenario = |name: &str| {
        rto["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {rto}"))
            .clone()
    };
    let s = scenario("scale-pitr-mid-bulk-load");
    assert_eq!(s["status"], "passed", "{s}");
    assert_eq!(s["rows_expected"], 327_702, "{s}");
    assert_eq!(s["rows_observed"], 327_702, "{s}");
    let v = &s["verification"];
    // The blobs rows were digested by the server, only the 22 accounts rows were read back.
    assert_eq!(v["rows_digested_by_server"], 327_680, "{v}");
    assert_eq!(v["rows_read"], 22, "{v}");
    assert!(
        v["bytes_scanned_by_server"].as_u64().unwrap() > 320 << 20,
        "{v}"
    );
    assert!(v["share_of_rto"].as_f64().is_some(), "{v}");
    // The recovery restored a base backup of the bulk table's size, and says so.
    assert!(
        s["rto"]["base_backup_bytes"].as_u64().unwrap() > 256 << 20,
        "{s}"
    );

    let lost = scenario("bulk-write-lost");
    assert_eq!(lost["status"], "passed", "{lost}");
    assert_eq!(lost["rows_lost"], 8192, "{lost}");
    let missing = lost["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{lost}");
    assert_eq!(missing[0]["step_id"], "load2");
    assert_eq!(missing[0]["removed_by"], "drop-load2");
    let explained = lost["loss_explanation"].to_string();
    assert!(
        explained.contains("step `load2`: 8192 row(s) of blobs (ids 12289..20480)"),
        "{explained}"
    );
}
