//! Real local drills about the harness itself: Ctrl-C tears everything down, and a drill
//! against an external S3 endpoint deletes only what it created.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
use junit::Junit;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgdrill"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PGDRILL_KEEP");
    c
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.contains("cargo") {
                found.push(cmd);
            }
        }
    }
    found
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn ctrl_c_mid_drill_tears_everything_down() {
    let reports = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "run",
            "--report-dir",
            reports.path().to_str().unwrap(),
            "scenarios/01-clean-restore-latest.yaml",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut run_id = None;
    // Read progress until the source server is up, then interrupt.
    for line in lines.by_ref() {
        let line = line.unwrap();
        if run_id.is_none() {
            run_id = line.split_whitespace().nth(2).map(str::to_string);
        }
        if line.contains("start-source") {
            break;
        }
    }
    let run_id = run_id.expect("the first progress line names the run");
    assert!(
        !processes_mentioning(&run_id).is_empty(),
        "the source server runs before the interrupt"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "pgdrill did not exit within 120s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for _ in lines {}
    assert_eq!(status.code(), Some(130));
    assert!(
        processes_mentioning(&run_id).is_empty(),
        "left running: {:?}",
        processes_mentioning(&run_id)
    );
    let junit = Junit::read(&reports.path().join(&run_id).join("junit.xml"));
    assert!(
        junit.cases().any(|c| c.is_error()),
        "an interrupted drill is an error, not a pass: {junit}"
    );
}

#[test]
fn an_external_endpoint_keeps_everything_outside_the_drill_prefix() {
    let store = tempfile::tempdir().unwrap();
    let foreign = store.path().join("pgdrill/other-team/base/important.tar");
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    std::fs::write(&foreign, b"not ours").unwrap();
    let (mut server, endpoint) =
        cli::serve_s3(store.path(), "PGDRILLTESTKEY", "pgdrill-test-secret-value");

    let reports = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "run",
            "--report-dir",
            reports.path().to_str().unwrap(),
            "--s3-endpoint",
            &endpoint,
            "scenarios/03-adr007-missing-wal-segment.yaml",
        ])
        .env("AWS_ACCESS_KEY_ID", "PGDRILLTESTKEY")
        .env("AWS_SECRET_ACCESS_KEY", "pgdrill-test-secret-value")
        .output()
        .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGINT) };
    let _ = server.wait();
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        b"not ours",
        "an object outside the prefix was touched"
    );
    let leftovers = files_under(&store.path().join("pgdrill/pgdrill"));
    assert!(
        leftovers.is_empty(),
        "the drill's own objects were not removed: {leftovers:?}"
    );
    for f in files_under(reports.path()) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("pgdrill-test-secret-value"), "secret in {f}");
    }
    assert!(!all.contains("pgdrill-test-secret-value"));
}
