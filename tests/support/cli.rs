//! The pgdrill binary as the tests drive it (any tier), and the run directory it writes
//! (`support/junit.rs` reads the JUnit file in it). Runs nothing but `pgdrill`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
