//! Nothing left behind after a hard kill: a drill SIGKILLed mid-recovery leaves servers, its
//! directory and its bucket prefix; `pgdrill clean --dry-run` lists them and touches nothing;
//! the next run sweeps them and passes. A run whose pgdrill lives is never swept, and a kept
//! run only by `pgdrill clean --kept`. Each test has its own pgdrill home.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/home.rs"]
mod home;

const SCENARIO: &str = "scenarios/01-clean-restore-latest.yaml";
const KEY: &str = "PGDRILLSWEEPKEY";
const SECRET: &str = "pgdrill-sweep-secret-value";

fn bin(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgdrill"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PGDRILL_KEEP")
        .env("PGDRILL_HOME", home);
    c
}

fn output(mut c: Command) -> (Output, String) {
    let out = c.output().unwrap();
    let text = cli::text(&out);
    (out, text)
}

/// Pids of processes whose working directory is under `dir` (a postmaster and its children
/// work in their data directory).
fn processes_under(dir: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            cwd.starts_with(dir).then_some(pid)
        })
        .collect()
}

/// Files under `dir` (an S3 store's objects), sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Poll `cond` every 100 ms until it holds; panic with `what` at the deadline.
fn wait_until<T>(what: &str, deadline: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(Instant::now() < until, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one run directory under `<home>/runs` other than `except`, once it exists.
fn run_dir_of(home: &Path, except: Option<&Path>) -> PathBuf {
    wait_until("the run directory", Duration::from_secs(120), || {
        std::fs::read_dir(home::runs(home))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| Some(p.as_path()) != except && p.join("pgdrill.lock").is_file())
    })
}

/// A `postmaster.pid` under `run` of a server called `instance`, once it exists.
fn postmaster_of(run: &Path, instance: &str) -> PathBuf {
    wait_until(
        &format!("a {instance} server under {}", run.display()),
        Duration::from_secs(300),
        || {
            let scenario = std::fs::read_dir(run).ok()?.flatten().find(|e| {
                e.path()
                    .join(instance)
                    .join("data/postmaster.pid")
                    .is_file()
            })?;
            Some(scenario.path().join(instance).join("data/postmaster.pid"))
        },
    )
}

/// `pgdrill serve-s3` over a fresh directory, with its bucket; (child, endpoint, directory).
fn external_s3() -> (Child, String, tempfile::TempDir) {
    let store = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(store.path().join("pgdrill")).unwrap();
    let (server, endpoint) = cli::serve_s3(store.path(), KEY, SECRET);
    (server, endpoint, store)
}

/// `pgdrill run SCENARIO` in `home`, reports under `reports`.
fn drill(home: &Path, reports: &Path, extra: &[&str]) -> Command {
    let mut c = bin(home);
    c.arg("run")
        .args(extra)
        .args(["--report-dir", reports.to_str().unwrap(), SCENARIO]);
    c
}

fn with_s3(c: &mut Command, endpoint: &str) {
    c.args(["--s3-endpoint", endpoint])
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
}

#[test]
fn a_drill_killed_mid_recovery_is_swept_by_the_next_run() {
    let home = home::private_home();
    let reports = tempfile::tempdir().unwrap();
    // An endpoint that outlives pgdrill, so the recovering server goes on as it would with
    // real object storage, and the run's prefix stays behind.
    let (mut s3, endpoint, store) = external_s3();

    let mut c = drill(home.path(), reports.path(), &[]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    with_s3(&mut c, &endpoint);
    let mut first = c.spawn().unwrap();
    let run = run_dir_of(home.path(), None);
    let run_id = run.file_name().unwrap().to_str().unwrap().to_string();
    let pid_file = postmaster_of(&run, "recovered");
    first.kill().unwrap(); // SIGKILL
    let status = first.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");

    let postmaster: u32 = wait_until("the postmaster's pid", Duration::from_secs(30), || {
        std::fs::read_to_string(&pid_file)
            .ok()?
            .lines()
            .next()?
            .parse()
            .ok()
    });
    let left = processes_under(&run);
    assert!(
        left.contains(&postmaster),
        "the recovering server outlives a SIGKILLed pgdrill: {left:?}"
    );
    assert!(run.is_dir());
    let prefix = store.path().join("pgdrill/pgdrill").join(&run_id);
    let objects = files_under(&prefix);
    assert!(!objects.is_empty(), "the run's objects stay behind");

    let mut dry = bin(home.path());
    dry.args(["clean", "--dry-run"]);
    let (out, text) = output(dry);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("would sweep {run_id}")), "{text}");
    assert!(text.contains("recovered/data (postmaster pid"), "{text}");
    assert!(
        text.contains(&format!("delete s3://pgdrill/pgdrill/{run_id}")),
        "{text}"
    );
    assert!(run.is_dir(), "a dry run removes nothing");
    assert!(
        objects.iter().all(|o| o.exists()),
        "a dry run deletes no object"
    );
    assert!(
        processes_under(&run).contains(&postmaster),
        "a dry run stops nothing"
    );

    let mut second = drill(home.path(), reports.path(), &[]);
    with_s3(&mut second, &endpoint);
    let (out, text) = output(second);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(s3.id() as i32, libc::SIGINT) };
    let _ = s3.wait();
    assert_eq!(out.status.code(), Some(0), "the next run passes: {text}");
    let line = text
        .lines()
        .find(|l| l.contains("swept 1 run left by a dead pgdrill"))
        .unwrap_or_else(|| panic!("the run names the sweep: {text}"));
    assert!(
        line.contains(&run_id) && line.contains("directory removed"),
        "{line}"
    );
    assert!(
        line.contains(&format!("s3://pgdrill/pgdrill/{run_id} deleted")),
        "{line}"
    );
    assert_eq!(processes_under(&run), Vec::<u32>::new(), "left running");
    assert!(!run.exists(), "the dead run's directory is removed");
    assert_eq!(
        files_under(&prefix),
        Vec::<PathBuf>::new(),
        "the dead run's objects"
    );
    let runs: Vec<_> = std::fs::read_dir(home::runs(home.path()))
        .unwrap()
        .collect();
    assert!(runs.is_empty(), "nothing left under runs/: {runs:?}");
    assert!(!text.contains(SECRET));
}

#[test]
fn a_live_run_is_never_swept_and_a_kept_one_only_on_request() {
    let home = home::private_home();
    let reports = tempfile::tempdir().unwrap();
    let mut c = drill(home.path(), reports.path(), &["--keep"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let kept = c.spawn().unwrap();
    let run = run_dir_of(home.path(), None);
    let run_id = run.file_name().unwrap().to_str().unwrap().to_string();
    postmaster_of(&run, "source");

    let mut dry = bin(home.path());
    dry.args(["clean", "--dry-run"]);
    let (_, text) = output(dry);
    assert!(
        text.contains(&format!("leaves {run_id}: pgdrill pid")),
        "{text}"
    );

    // A second run at the same time, in the same home: it passes and sweeps nothing.
    let other = tempfile::tempdir().unwrap();
    let (out, text) = output(drill(home.path(), other.path(), &[]));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("swept"), "{text}");
    assert!(run.is_dir(), "the live run's directory stays");

    let out = kept.wait_with_output().unwrap();
    let text = cli::text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the first run passes too: {text}"
    );
    let servers = processes_under(&run);
    assert!(!servers.is_empty(), "--keep keeps the recovered server");

    let mut clean = bin(home.path());
    clean.arg("clean");
    let (out, text) = output(clean);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("leaves {run_id}: kept")), "{text}");
    assert!(text.contains("nothing to sweep"), "{text}");
    assert!(run.is_dir() && !processes_under(&run).is_empty());

    let mut clean = bin(home.path());
    clean.args(["clean", "--kept"]);
    let (out, text) = output(clean);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("swept 1 run left by a dead pgdrill: {run_id}")),
        "{text}"
    );
    assert_eq!(processes_under(&run), Vec::<u32>::new(), "left running");
    assert!(!run.exists());
}
