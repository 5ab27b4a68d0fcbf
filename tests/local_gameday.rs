//! `pgdrill gameday` against real archives made by local drills (real PostgreSQL, real
//! barman-cloud) in an embedded S3 endpoint this test owns, so the archives outlive the drills:
//! a clean archive (latest and a seeded random target), the ADR 007 archive with a gap, and a
//! timeline-2 archive written by the server a previous recovery promoted. Every game day must
//! leave the archive under test untouched (the endpoint records every operation).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pgdrill::backend::local::Barman;
use pgdrill::backend::local::postgres::PgInstance;
use pgdrill::runner::{ScenarioResult, Status};
use pgdrill::scenario::Compression;
use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/test_pg.rs"]
mod test_pg;

const PREFIX: &str = "pgdrill/gameday-test";
const DEADLINE: Duration = Duration::from_secs(60);

struct Env {
    a: test_pg::TestArchive,
    work: tempfile::TempDir,
}

impl std::ops::Deref for Env {
    type Target = test_pg::TestArchive;
    fn deref(&self) -> &test_pg::TestArchive {
        &self.a
    }
}

async fn drill(env: &Env, file: &str, keep: bool) -> ScenarioResult {
    env.a.drill(PREFIX, file, keep).await
}

/// Write a game-day file and run `pgdrill gameday` on it; returns (exit code, output, record).
fn gameday(env: &Env, name: &str, body: &str, extra: &[&str]) -> (i32, String, Value) {
    let file = env.work.path().join(format!("{name}.yaml"));
    std::fs::write(&file, format!("name: {name}\n{body}")).unwrap();
    // Each run gets its own report root, so the folder read back is this run's.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let reports = env.work.path().join(format!("reports-{n}"));
    let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["gameday", file.to_str().unwrap(), "--operator", "ci-test"])
        .args(["--report-dir", reports.to_str().unwrap()])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", &env.creds.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &env.creds.secret_key)
        .env_remove("PGDRILL_KEEP")
        .output()
        .expect("pgdrill gameday runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let dir = cli::gameday_dir(&reports, &format!("gameday-{name}-"), &text);
    let json = std::fs::read_to_string(dir.join("gameday.json")).expect("gameday.json");
    let rec: Value = serde_json::from_str(&json).unwrap();
    for f in ["gameday.xml", "gameday.md", "report.html"] {
        let t = std::fs::read_to_string(dir.join(f)).expect(f);
        assert!(
            !t.contains(&env.creds.secret_key),
            "{f} must not contain the secret"
        );
    }
    assert!(!text.contains(&env.creds.secret_key));
    // The verdict as a metric too, labelled with the game day and the archive.
    let metrics = std::fs::read_to_string(dir.join("metrics.prom")).expect("metrics.prom");
    let success = metrics
        .lines()
        .find(|l| l.starts_with(&format!("pgdrill_gameday_success{{gameday=\"{name}\",")))
        .unwrap_or_else(|| panic!("no pgdrill_gameday_success:\n{metrics}"));
    let passed = out.status.code() == Some(0);
    assert!(
        success.ends_with(if passed { "} 1.0" } else { "} 0.0" }),
        "{success}\n{text}"
    );
    (out.status.code().unwrap_or(-1), text, rec)
}

fn archive(env: &Env, scenario: &str, server: &str) -> String {
    format!(
        "archive:\n  destination: s3://pgdrill/{PREFIX}/{scenario}\n  server_name: {server}\n  endpoint: {}\npostgres: 15\n",
        env.s3.endpoint
    )
}

/// SIGQUIT the postmaster of a data directory kept by `--keep` and wait until it is gone.
async fn stop_kept(data: &Path) {
    let Ok(pidfile) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    let pid: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
    // SAFETY: signalling a postmaster this test started through the drill.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let until = Instant::now() + DEADLINE;
    // The drill forgot the postmaster without reaping it: it is this process's child, so reap
    // it (a zombie still answers signal 0). SAFETY: plain libc calls on a pid we started.
    while unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0
        && unsafe { libc::kill(pid, 0) } == 0
    {
        assert!(Instant::now() < until, "kept postmaster {pid} did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn game_days_on_real_archives() {
    let env = Env {
        a: test_pg::TestArchive::start("gameday-test-").await,
        work: tempfile::tempdir().unwrap(),
    };

    // Two archives: a clean one whose recovered server is kept running (it archives timeline 2
    // under its own serverName), and the ADR 007 one with a segment deleted.
    let (clean, gap) = tokio::join!(
        drill(&env, "scenarios/01-clean-restore-latest.yaml", true),
        drill(&env, "scenarios/03-adr007-missing-wal-segment.yaml", false)
    );
    let recovered = env.run_dir.path().join("clean-restore-latest/recovered");
    let result = std::panic::AssertUnwindSafe(checks(&env, &clean, &gap, &recovered));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    stop_kept(&recovered.join("data")).await;
    env.a.s3.shutdown().await;
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

/// The kept recovered server archives asynchronously after promotion (its `.partial` segment
/// and `00000002.history`, marked `.ready` during promotion, before the drill returned): wait
/// until its archiver has nothing pending, so those PUTs land before a read-only window opens
/// rather than inside it.
async fn kept_archiver_idle(inst: &PgInstance) {
    let client = inst.connect().await.expect("kept recovered server answers");
    let until = Instant::now() + DEADLINE;
    loop {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), \
                        (SELECT archived_count FROM pg_stat_archiver)",
                &[],
            )
            .await
            .unwrap();
        let (ready, archived): (i64, i64) = (row.get(0), row.get(1));
        if ready == 0 && archived > 0 {
            return;
        }
        assert!(
            Instant::now() < until,
            "kept server still has {ready} segment(s) to archive after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn checks(env: &Env, clean: &ScenarioResult, gap: &ScenarioResult, recovered: &Path) {
    assert!(matches!(clean.status, Status::Passed), "{:?}", clean.status);
    assert!(matches!(gap.status, Status::Passed), "{:?}", gap.status);
    let inst = PgInstance::new(
        "recovered",
        recovered,
        &env.toolchain.pg_bin(15).unwrap(),
        &env.toolchain.run_as,
    )
    .unwrap();
    kept_archiver_idle(&inst).await;

    // 1. The clean archive, latest: every row back, fresh marker, RPO measured, read-only.
    env.s3.operations.clear();
    let body = format!(
        "{}rpo_budget_seconds: 3600\nrto_budget_seconds: 600\nchecks:\n\
         \x20 - {{ name: orders, sql: select count(*) from orders, equals: \"120\" }}\n\
         \x20 - {{ name: customers, sql: select count(*) from customers, at_least: 25, at_most: 25 }}\n\
         \x20 - {{ name: newest marker, sql: select max(at) from pgdrill_meta.marks, max_age_seconds: 3600 }}\n",
        archive(env, "clean-restore-latest", "app-pg")
    );
    let (code, text, rec) = gameday(env, "clean-latest", &body, &[]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(rec["restore"]["kind"], "recovered", "{rec}");
    assert_eq!(rec["operator"], "ci-test");
    assert_eq!(rec["checks"].as_array().unwrap().len(), 3);
    assert!(
        rec["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true),
        "{rec}"
    );
    assert_eq!(rec["checks"][0]["observed"], "120");
    assert!(rec["rto"]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(rec["rto"]["phases"].as_array().unwrap().len(), 4, "{rec}");
    assert_eq!(rec["rpo"]["reference"], "newest archived WAL");
    assert!(rec["rpo"]["seconds"].as_f64().is_some(), "{rec}");
    assert_eq!(rec["audit"]["gaps"].as_array().unwrap().len(), 0);
    // pg_amcheck ran by default on the restored instance and found it clean.
    assert_eq!(rec["amcheck"]["status"], "ran", "{rec}");
    assert_eq!(
        rec["amcheck"]["findings"].as_array().unwrap().len(),
        0,
        "{rec}"
    );
    env.assert_only_reads("clean-restore-latest/app-pg/");

    // 2. The same archive, a seeded random target: an LSN inside the recoverable window, and
    // the same seed draws the same target.
    let body = format!(
        "{}target: random\nchecks:\n  - {{ name: some orders, sql: select count(*) from orders, at_least: 100 }}\n",
        archive(env, "clean-restore-latest", "app-pg")
    );
    let (code, text, rec) = gameday(env, "clean-random", &body, &["--seed", "42"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(rec["seed"], 42);
    let resolved = rec["resolved_target"].as_str().unwrap().to_string();
    assert!(resolved.starts_with("lsn "), "{rec}");
    assert!(rec["random_window"].is_array(), "{rec}");
    env.s3.operations.clear();
    // The same seed again; audit thresholds so tight they fail, which must not fail the game day.
    let (code, text, again) = gameday(
        env,
        "clean-random",
        &body,
        &[
            "--seed",
            "42",
            "--max-wal-age",
            "1s",
            "--max-backup-age",
            "1s",
        ],
    );
    assert_eq!(
        code, 0,
        "freshness findings stay in the audit suite:\n{text}"
    );
    assert!(
        again["audit"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "wal_age" && f["severity"] == "error"),
        "{again}"
    );
    env.assert_only_reads("clean-restore-latest/app-pg/");
    assert_eq!(again["resolved_target"], resolved.as_str());

    // 3. The ADR 007 archive: the restore "succeeds" but the game day fails, naming the gap
    // the audit found, and the checks show what is missing.
    let deleted = gap.recovery.audit.as_ref().expect("drill audit").gaps[0].clone();
    env.s3.operations.clear();
    let body = format!(
        "{}checks:\n  - {{ name: events, sql: select count(*) from moderation_event, equals: \"27\" }}\n",
        archive(env, "adr007-missing-wal-segment", "pg-src")
    );
    let (code, text, rec) = gameday(env, "adr007", &body, &[]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(rec["restore"]["kind"], "recovered", "{rec}");
    let reasons = rec["status"]["reasons"].as_array().unwrap();
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .contains(&format!("segment {deleted} is missing")),
        "{rec}"
    );
    assert_eq!(rec["checks"][0]["observed"], "25", "{rec}");
    assert_eq!(rec["reason"], "wal_unavailable", "{rec}");
    assert!(text.contains("game day: FAILED"), "{text}");
    env.assert_only_reads("adr007-missing-wal-segment/pg-src/");

    // 4. Timeline 2: the kept recovered server (promoted onto timeline 2, archiving under
    // `app-pg-restored`) gets a base backup and more writes; a game day restores it to latest.
    let client = inst.connect().await.expect("kept recovered server answers");
    let tli: i32 = client
        .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tli, 2, "the recovered server runs on timeline 2");
    let home = env.work.path().join("barman");
    std::fs::create_dir_all(&home).unwrap();
    env.toolchain.run_as.chown(&home).unwrap();
    let barman = Barman {
        bin: env.toolchain.check_barman().unwrap(),
        cloud: pgdrill::backend::local::Cloud::S3(env.target.clone()),
        destination: format!("s3://pgdrill/{PREFIX}/clean-restore-latest"),
        run_as: env.toolchain.run_as.clone(),
        home,
        extra_env: vec![],
    };
    barman.prepare_home().unwrap();
    let out = barman
        .backup(
            "app-pg-restored",
            &inst.socket_dir(),
            Compression::Gzip,
            None,
            "tl2",
            DEADLINE,
        )
        .await
        .unwrap();
    assert!(out.success, "{}", out.text());
    client
        .batch_execute("INSERT INTO orders SELECT g, 'tl2', 'x' FROM generate_series(1001, 1007) g")
        .await
        .unwrap();
    let seg: String = client
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .await
        .unwrap()
        .get(0);
    assert!(seg.starts_with("00000002"), "{seg}");
    let until = Instant::now() + DEADLINE;
    loop {
        let done: Option<String> = client
            .query_one("SELECT last_archived_wal FROM pg_stat_archiver", &[])
            .await
            .unwrap()
            .get(0);
        if done.as_deref() >= Some(seg.as_str()) {
            break;
        }
        assert!(
            Instant::now() < until,
            "{seg} not archived within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(client);
    kept_archiver_idle(&inst).await;
    env.s3.operations.clear();
    let body = format!(
        "{}checks:\n  - {{ name: orders, sql: select count(*) from orders, equals: \"127\" }}\n",
        archive(env, "clean-restore-latest", "app-pg-restored")
    );
    let (code, text, rec) = gameday(env, "timeline-2", &body, &[]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(rec["checks"][0]["observed"], "127", "{rec}");
    let timelines = rec["audit"]["timelines"].as_array().unwrap();
    assert!(timelines.contains(&Value::from(2)), "{rec}");
    assert_eq!(rec["audit"]["backups"][0]["timeline"], 2, "{rec}");
    env.assert_only_reads("clean-restore-latest/app-pg-restored/");
}
