//! The pgdrill binary as the tests drive it (any tier), and the run directory it writes
//! (`support/junit.rs` reads the JUnit file in it). Runs nothing but `pgdrill`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Run `pgdrill ARGS` from the crate root, never in keep mode.
pub fn pgdrill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PGDRILL_KEEP")
        .output()
        .expect("pgdrill runs")
}

/// stdout and stderr of a finished command.
pub fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The single run directory a run wrote under `root` (besides `latest`).
pub fn run_dir(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap() != "latest")
        .collect();
    assert_eq!(dirs.len(), 1, "one run directory in {}", root.display());
    dirs[0].clone()
}

/// The game-day report folder under `reports` whose name starts with `prefix`
/// (`gameday-<name>-`); `said` (the command's output) goes into the panic when there is none.
pub fn gameday_dir(reports: &Path, prefix: &str, said: &str) -> PathBuf {
    std::fs::read_dir(reports)
        .unwrap_or_else(|e| panic!("{}: {e}\n{said}", reports.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| {
            panic!(
                "no {prefix}* report folder in {}:\n{said}",
                reports.display()
            )
        })
}

/// The `rto.json` a run wrote into `dir`.
pub fn rto_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap()
}

/// Scenario `name`'s entry in an `rto.json`.
pub fn rto_scenario<'a>(rto: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    rto["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in rto.json: {rto}"))
}

/// `pgdrill serve-s3` over `dir` on a free loopback port with these keys, once it serves;
/// (the child, its endpoint URL). Stop it with SIGINT.
pub fn serve_s3(dir: &Path, access_key: &str, secret_key: &str) -> (Child, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["serve-s3", "--dir", dir.to_str().unwrap()])
        .args(["--port", &port.to_string()])
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("serving"), "{first}");
    (server, format!("http://127.0.0.1:{port}"))
}
