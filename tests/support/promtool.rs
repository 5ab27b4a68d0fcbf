//! Prometheus's promtool as the tests run it: found once per test process (`$PGDRILL_PROMTOOL`,
//! else the path `scripts/promtool.sh` prints, which builds it from the Prometheus Go module the
//! first time and is a no-op once cached under the pgdrill home), and `promtool check metrics`
//! on an exposition. Runs nothing but promtool and that script.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Overrides where promtool is.
pub const PROMTOOL_ENV: &str = "PGDRILL_PROMTOOL";

/// A promtool binary.
pub struct Promtool {
    pub path: PathBuf,
}

/// What `promtool check metrics` found in an exposition.
#[derive(Debug, PartialEq, Eq)]
pub struct MetricsFindings {
    /// Lint problems, one per line promtool printed: the metric's name, then the problem.
    pub problems: Vec<String>,
    /// Set when promtool could not parse the exposition at all: its message.
    pub error: Option<String>,
}

impl MetricsFindings {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.error.is_none()
    }
}

impl Promtool {
    /// promtool, or — when it cannot be found or built — a test failure if `$CI` is set, and
    /// otherwise a banner on stderr (once) and `None`: the caller returns without testing.
    pub fn find_or_skip(test: &str) -> Option<&'static Promtool> {
        static FOUND: OnceLock<Result<Promtool, String>> = OnceLock::new();
        let why = match FOUND.get_or_init(locate) {
            Ok(p) => return Some(p),
            Err(why) => why,
        };
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("{test}: {why}; CI is set, so this is a failure rather than a skip");
        }
        // Not `eprintln!`: libtest captures it, and nobody would see it for a passing test.
        static BANNER: std::sync::Once = std::sync::Once::new();
        BANNER.call_once(|| {
            let line = "!".repeat(78);
            let banner = format!(
                "\n{line}\n!! {why}\n!! The promtool tests (alert rules, metrics lint) DID NOT \
                 RUN: run `make promtool` or set {PROMTOOL_ENV}.\n!! (With CI set this is a \
                 failure.)\n{line}\n"
            );
            let _ = std::io::stderr().write_all(banner.as_bytes());
        });
        None
    }

    /// `promtool ARGS` from the crate root.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.path)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{} runs: {e}", self.path.display()))
    }

    /// `promtool check metrics` on `text` (the Prometheus text exposition format) on stdin:
    /// exit 0 clean, 3 lint problems (one line each on stderr), 1 not parseable.
    pub fn check_metrics(&self, text: &str) -> MetricsFindings {
        let mut child = Command::new(&self.path)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs: {e}", self.path.display()));
        // promtool may stop reading at a parse error: a broken pipe is its answer, not ours.
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
        match out.status.code() {
            Some(0) => MetricsFindings {
                problems: Vec::new(),
                error: None,
            },
            Some(3) => MetricsFindings {
                problems: lines().map(String::from).collect(),
                error: None,
            },
            Some(1) => MetricsFindings {
                problems: Vec::new(),
                error: Some(lines().collect::<Vec<_>>().join("\n")),
            },
            _ => panic!(
                "promtool check metrics: {}\n{}\n{stderr}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            ),
        }
    }
}

/// `$PGDRILL_PROMTOOL`, else what `scripts/promtool.sh` prints; a runnable promtool either way.
fn locate() -> Result<Promtool, String> {
    let path = match std::env::var_os(PROMTOOL_ENV) {
        Some(p) => PathBuf::from(p),
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/promtool.sh");
            let out = Command::new("bash")
                .arg(&script)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("bash {}: {e}", script.display()))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                return Err(format!(
                    "promtool not found: {} failed ({}): {}",
                    script.display(),
                    out.status,
                    stderr.trim()
                ));
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let promtool = Promtool { path };
    match Command::new(&promtool.path).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(promtool),
        Ok(o) => Err(format!(
            "{} --version failed ({})",
            promtool.path.display(),
            o.status
        )),
        Err(e) => Err(format!(
            "promtool not found at {}: {e}",
            promtool.path.display()
        )),
    }
}
