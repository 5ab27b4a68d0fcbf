//! The pgdrill binary as the real-drill tests drive it, and readers for the reports it writes
//! (run directory, JUnit testcases and properties). Runs nothing but `pgdrill`.

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

/// The `<testcase name="NAME" ...>...</testcase>` element of a JUnit file.
pub fn testcase<'a>(junit: &'a str, name: &str) -> &'a str {
    let start = junit
        .find(&format!("<testcase name=\"{name}\""))
        .unwrap_or_else(|| panic!("no testcase {name}:\n{junit}"));
    let end = junit[start..]
        .find("</testcase>")
        .map(|e| start + e)
        .unwrap_or(junit.len());
    &junit[start..end]
}

/// A testcase property's value, if the testcase has it.
pub fn property(case: &str, name: &str) -> Option<String> {
    let at = case.find(&format!("<property name=\"{name}\" value=\""))?;
    let rest = &case[at + name.len() + 25..];
    rest.split('"').next().map(|v| v.replace("&apos;", "'"))
}
