//! Tears down what dead pgdrill runs left under `<home>/runs/`: their PostgreSQL servers
//! (named by each data directory's `postmaster.pid`, checked against /proc before any signal,
//! never found by process name), the bucket prefix a run recorded on an external endpoint, and
//! the directory. Never touches a directory whose owner lives, a kept run unless asked, or a
//! directory without a lock it can trust; never prints (the caller says what was swept).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::backend::BackendError;
use crate::backend::credentials::KeyPair;
use crate::backend::objstore::{ObjectStore, S3Target};

use super::lock::{self, CreatedPrefix, HeldLock, LOCK_FILE, Owner, Tried, stat_field};
use super::stale::{self, LockSeen, Verdict};

/// A PostgreSQL server a dead run left running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftServer {
    pub data_dir: PathBuf,
    /// The postmaster, as /proc showed it serving `data_dir`.
    pub postmaster: Owner,
    /// Its children then (each PostgreSQL child leads its own process group).
    pub children: Vec<Owner>,
    /// Its socket directory when that is a short one outside the run directory (see
    /// `postgres.rs`), removed once the server is stopped.
    pub short_socket_dir: Option<PathBuf>,
}

impl LeftServer {
    /// The postmaster and its children.
    pub fn processes(&self) -> usize {
        1 + self.children.len()
    }
}

/// One directory under `<home>/runs/` and what a sweep makes of it.
#[derive(Debug)]
pub struct Surveyed {
    pub dir: PathBuf,
    pub verdict: Verdict,
    /// For a stale run: the servers to stop.
    pub servers: Vec<LeftServer>,
    /// For a stale run: the bucket prefixes it recorded.
    pub prefixes: Vec<CreatedPrefix>,
    /// For a stale run: its lock, held until the teardown is over.
    lock: Option<HeldLock>,
}

impl Surveyed {
    /// The run (or game day) id: the directory's name.
    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Look at every directory under `<home>/runs/`. Stale runs keep their lock held in the
/// result, so two sweeps never tear the same run down; dropping the result releases them.
pub fn survey(home: &Path, include_kept: bool) -> Result<Vec<Surveyed>, BackendError> {
    let runs = home.join("runs");
    let entries = match std::fs::read_dir(&runs) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackendError::io(format!("reading {}", runs.display()), e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let tried = lock::try_lock(&dir)?;
        let seen = match &tried {
            Tried::NoLock => LockSeen::Absent,
            Tried::Held { pid } => LockSeen::Held(*pid),
            Tried::Taken { record, .. } => LockSeen::Free(record.as_ref().map_err(String::as_str)),
        };
        let verdict = stale::judge(seen, Owner::is_alive, include_kept);
        let (servers, prefixes, lock) = match tried {
            Tried::Taken {
                lock,
                record: Ok(r),
            } if verdict.is_stale() => (left_servers(&dir), r.prefixes, Some(lock)),
            _ => (Vec::new(), Vec::new(), None),
        };
        out.push(Surveyed {
            dir,
            verdict,
            servers,
            prefixes,
            lock,
        });
    }
    Ok(out)
}

/// The servers running on data directories under `dir`: every `postmaster.pid` (at most five
/// levels down, symlinks not followed, the embedded S3 data skipped) whose pid /proc shows
/// serving that data directory.
fn left_servers(dir: &Path) -> Vec<LeftServer> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            if t.is_dir() && depth < 4 && !(depth == 0 && e.file_name() == "s3") {
                stack.push((p, depth + 1));
            } else if t.is_file() && e.file_name() == "postmaster.pid" {
                found.extend(server_of(&d));
            }
        }
    }
    found.sort_by(|a, b| a.data_dir.cmp(&b.data_dir));
    found
}

fn server_of(data_dir: &Path) -> Option<LeftServer> {
    let data_dir = std::fs::canonicalize(data_dir).ok()?;
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let resolve = |p: &str| {
        std::fs::canonicalize(p)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let pid = stale::postmaster_pid(&text, &data_dir, resolve)?;
    let postmaster = Owner::of_pid(pid)?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !stale::serves(&data_dir, cwd.as_deref(), &cmdline) || is_zombie(pid) {
        return None;
    }
    Some(LeftServer {
        children: children_of(pid),
        short_socket_dir: stale::short_socket_dir(&text, &std::env::temp_dir()),
        data_dir,
        postmaster,
    })
}

fn proc_stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

fn is_zombie(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| stat_field(&s, 3) == Some("Z"))
}

/// Live (not zombie) children of `parent`.
fn children_of(parent: u32) -> Vec<Owner> {
    let parent = parent.to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            proc_stat(*pid).is_some_and(|s| {
                stat_field(&s, 4) == Some(parent.as_str()) && stat_field(&s, 3) != Some("Z")
            })
        })
        .filter_map(Owner::of_pid)
        .collect()
}

/// Whether this very process still runs (a zombie does not).
fn running(p: &Owner) -> bool {
    p.is_alive() && !is_zombie(p.pid)
}

/// What a sweep did to one stale run.
#[derive(Debug)]
pub struct Swept {
    pub id: String,
    pub dir: PathBuf,
    /// The dead owner's pid.
    pub pid: u32,
    pub servers: Vec<LeftServer>,
    /// Deleted prefixes (URL) and how many objects each held.
    pub prefixes_deleted: Vec<(String, usize)>,
    /// Prefixes left (URL, why); the directory then keeps its lock so a later sweep retries.
    pub prefixes_left: Vec<(String, String)>,
    /// What went wrong (a server that would not stop, a directory that could not be removed).
    pub errors: Vec<String>,
}

/// Everything a sweep did.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub swept: Vec<Swept>,
}

impl SweepReport {
    /// One line for the user, `None` when nothing was swept.
    pub fn summary(&self) -> Option<String> {
        if self.swept.is_empty() {
            return None;
        }
        let runs: Vec<String> = self.swept.iter().map(Swept::describe).collect();
        let n = self.swept.len();
        Some(format!(
            "swept {n} run{} left by a dead pgdrill: {}",
            if n == 1 { "" } else { "s" },
            runs.join("; ")
        ))
    }

    pub fn errors(&self) -> impl Iterator<Item = &String> {
        self.swept.iter().flat_map(|s| {
            s.errors
                .iter()
                .chain(s.prefixes_left.iter().map(|(_, w)| w))
        })
    }
}

impl Swept {
    fn describe(&self) -> String {
        let procs: usize = self.servers.iter().map(LeftServer::processes).sum();
        let n = self.servers.len();
        let servers = match n {
            0 => "no server running".to_string(),
            _ => format!(
                "{n} server{} stopped ({procs} processes)",
                if n == 1 { "" } else { "s" }
            ),
        };
        let mut parts = vec![format!("{} (pid {}): {servers}", self.id, self.pid)];
        parts.extend(
            self.prefixes_deleted
                .iter()
                .map(|(url, n)| format!("{url} deleted ({n} objects)")),
        );
        parts.extend(
            self.prefixes_left
                .iter()
                .map(|(url, why)| format!("{url} left: {why}")),
        );
        parts.push(if self.errors.is_empty() && self.prefixes_left.is_empty() {
            "directory removed".into()
        } else if self.prefixes_left.is_empty() {
            format!("not all removed: {}", self.errors.join(", "))
        } else {
            "directory emptied but for its lock".into()
        });
        parts.join(", ")
    }
}

/// Tear down every stale run of `surveyed` (the rest is left as it is): stop its servers,
/// delete its recorded prefixes where `s3` (an endpoint and its keys) is theirs, remove its
/// directory.
pub async fn sweep(surveyed: Vec<Surveyed>, s3: Option<&(String, KeyPair)>) -> SweepReport {
    let mut report = SweepReport::default();
    for s in surveyed {
        let Verdict::Stale { pid, .. } = s.verdict else {
            continue;
        };
        let id = s.id();
        let mut errors = Vec::new();
        for server in &s.servers {
            match stop_server(server).await {
                Err(e) => errors.push(e),
                // Empty once its server is gone (remove_dir never removes content).
                Ok(()) => {
                    if let Some(d) = &server.short_socket_dir {
                        let _ = std::fs::remove_dir(d);
                    }
                }
            }
        }
        let (mut deleted, mut left) = (Vec::new(), Vec::new());
        for p in &s.prefixes {
            match delete_prefix(p, &id, s3).await {
                Ok(n) => deleted.push((p.url(), n)),
                Err(why) => left.push((p.url(), why)),
            }
        }
        // A server that would not stop keeps its directory: never remove a live data directory.
        if errors.is_empty()
            && let Err(e) = remove_run_dir(&s.dir, !left.is_empty())
        {
            errors.push(e);
        }
        drop(s.lock);
        report.swept.push(Swept {
            id,
            dir: s.dir,
            pid,
            servers: s.servers,
            prefixes_deleted: deleted,
            prefixes_left: left,
            errors,
        });
    }
    report
}

/// Survey and sweep in one: what every local `pgdrill run` and `gameday` starts with.
pub async fn sweep_stale(
    home: &Path,
    s3: Option<&(String, KeyPair)>,
) -> Result<SweepReport, BackendError> {
    Ok(sweep(survey(home, false)?, s3).await)
}

/// Immediate shutdown (SIGQUIT: the postmaster stops its children and exits), then, past a
/// deadline, SIGKILL of the postmaster's and its children's process groups. Signals only the
/// processes /proc showed serving the data directory, and only while each is that same process.
async fn stop_server(s: &LeftServer) -> Result<(), String> {
    let all = || std::iter::once(&s.postmaster).chain(&s.children);
    let gone = || !all().any(running);
    if running(&s.postmaster) {
        // SAFETY: kill(2) of the process checked just above to be this data directory's postmaster.
        unsafe { libc::kill(s.postmaster.pid as i32, libc::SIGQUIT) };
    }
    if wait_for(gone, Duration::from_secs(15)).await {
        return Ok(());
    }
    for p in all().filter(|p| running(p)) {
        let pid = p.pid as i32;
        // A PostgreSQL process leads its own process group (its archive or restore command is
        // in it); anything else gets the signal alone.
        let leads =
            proc_stat(p.pid).is_some_and(|st| stat_field(&st, 5) == Some(&*pid.to_string()));
        // SAFETY: kill(2) of a process (or the group it leads) checked just above to be one of
        // the server's.
        unsafe { libc::kill(if leads { -pid } else { pid }, libc::SIGKILL) };
    }
    if wait_for(gone, Duration::from_secs(10)).await {
        Ok(())
    } else {
        Err(format!(
            "the server on {} (pid {}) did not stop",
            s.data_dir.display(),
            s.postmaster.pid
        ))
    }
}

async fn wait_for(done: impl Fn() -> bool, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete_prefix(
    p: &CreatedPrefix,
    run_id: &str,
    s3: Option<&(String, KeyPair)>,
) -> Result<usize, String> {
    stale::prefix_deletable(p, run_id, s3.map(|(e, _)| e.as_str()))?;
    let (_, keys) = s3.expect("prefix_deletable needs an endpoint");
    let target = S3Target::new(&p.endpoint, &p.region, &p.bucket, keys.clone());
    ObjectStore::new(&target, &p.prefix)
        .delete_all()
        .await
        .map_err(|e| e.to_string())
}

/// Remove the run directory, or with `keep_lock` everything in it but its lock (so the
/// prefixes it records are retried by a later sweep).
fn remove_run_dir(dir: &Path, keep_lock: bool) -> Result<(), String> {
    let fail = |p: &Path, e: std::io::Error| format!("cannot remove {}: {e}", p.display());
    if !keep_lock {
        return std::fs::remove_dir_all(dir).map_err(|e| fail(dir, e));
    }
    for e in std::fs::read_dir(dir).map_err(|e| fail(dir, e))?.flatten() {
        let p = e.path();
        if e.file_name() == LOCK_FILE {
            continue;
        }
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| fail(&p, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command};

    use super::super::lock::{LockRecord, RunKind, RunLock};
    use super::*;

    /// A lock for `dir` recorded by a process that has exited.
    fn dead_lock(dir: &Path, kept: bool) {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let owner = Owner::of_pid(child.id()).unwrap();
        child.wait().unwrap();
        let record = LockRecord {
            kind: RunKind::Run,
            owner,
            kept,
            prefixes: Vec::new(),
        };
        std::fs::write(dir.join(LOCK_FILE), serde_json::to_string(&record).unwrap()).unwrap();
    }

    /// A process standing where a postmaster would: `sleep` with its cwd in `data`, named
    /// by `data/postmaster.pid`, in its own process group.
    fn fake_postmaster(data: &Path, cwd: &Path) -> Child {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(data).unwrap();
        let child = Command::new("sleep")
            .arg("600")
            .current_dir(cwd)
            .process_group(0)
            .spawn()
            .unwrap();
        let data = std::fs::canonicalize(data).unwrap();
        std::fs::write(
            data.join("postmaster.pid"),
            format!("{}\n{}\n", child.id(), data.display()),
        )
        .unwrap();
        child
    }

    fn running(child: &mut Child) -> bool {
        child.try_wait().unwrap().is_none()
    }

    #[tokio::test]
    async fn a_dead_runs_server_and_directory_go_and_nothing_else_does() {
        let home = tempfile::tempdir().unwrap();
        let runs = home.path().join("runs");
        // Stale: its "postmaster" serves its data directory.
        let stale = runs.join("r-stale");
        dead_lock(&stale, false);
        let data = stale.join("s/recovered/data");
        std::fs::create_dir_all(&data).unwrap();
        let mut pm = fake_postmaster(&data, &data);
        // Stale too, but its postmaster.pid names a process that does not serve it.
        let foreign = runs.join("r-foreign");
        dead_lock(&foreign, false);
        let mut bystander = fake_postmaster(&foreign.join("s/source/data"), home.path());
        // Live, kept, and without a lock: untouched.
        let live = runs.join("r-live");
        std::fs::create_dir_all(&live).unwrap();
        let _held = RunLock::create(&live, RunKind::Run, Vec::new()).unwrap();
        let kept = runs.join("r-kept");
        dead_lock(&kept, true);
        let bare = runs.join("r-bare");
        std::fs::create_dir_all(&bare).unwrap();

        let surveyed = survey(home.path(), false).unwrap();
        let verdicts: Vec<(String, &Verdict)> =
            surveyed.iter().map(|s| (s.id(), &s.verdict)).collect();
        assert_eq!(verdicts.len(), 5, "{verdicts:?}");
        let of = |id: &str| &surveyed.iter().find(|s| s.id() == id).unwrap().verdict;
        assert!(of("r-stale").is_stale() && of("r-foreign").is_stale());
        assert!(matches!(of("r-live"), Verdict::Live { .. }));
        assert!(matches!(of("r-kept"), Verdict::Kept { .. }));
        assert!(matches!(of("r-bare"), Verdict::Unowned(_)));
        let stale_servers = &surveyed
            .iter()
            .find(|s| s.id() == "r-stale")
            .unwrap()
            .servers;
        assert_eq!(stale_servers.len(), 1, "{stale_servers:?}");
        assert_eq!(stale_servers[0].postmaster.pid, pm.id());

        // A second survey while the first holds the stale locks sees them as live.
        let again = survey(home.path(), false).unwrap();
        assert!(again.iter().all(|s| !s.verdict.is_stale()), "{again:?}");
        drop(again);

        let report = sweep(surveyed, None).await;
        let line = report.summary().unwrap();
        assert!(
            line.starts_with("swept 2 runs left by a dead pgdrill"),
            "{line}"
        );
        assert!(line.contains("r-stale (pid "), "{line}");
        assert_eq!(report.errors().count(), 0, "{line}");
        assert!(!running(&mut pm), "the stale run's server was stopped");
        assert!(
            running(&mut bystander),
            "a process not serving the data directory is never signalled"
        );
        bystander.kill().unwrap();
        let _ = bystander.wait();
        assert!(!stale.exists() && !foreign.exists());
        assert!(live.exists() && kept.exists() && bare.exists());

        let with_kept = survey(home.path(), true).unwrap();
        let report = sweep(with_kept, None).await;
        assert_eq!(report.swept.len(), 1, "{report:?}");
        assert!(!kept.exists() && live.exists() && bare.exists());
        assert!(
            sweep(survey(home.path(), true).unwrap(), None)
                .await
                .summary()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_prefix_without_credentials_keeps_the_lock_for_later() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("runs/r-ext");
        dead_lock(&dir, false);
        let mut record: LockRecord =
            serde_json::from_str(&std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap()).unwrap();
        record.prefixes.push(CreatedPrefix {
            endpoint: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: "pgdrill/r-ext".into(),
        });
        std::fs::write(dir.join(LOCK_FILE), serde_json::to_string(&record).unwrap()).unwrap();
        std::fs::create_dir_all(dir.join("s/source/data")).unwrap();
        let report = sweep(survey(home.path(), false).unwrap(), None).await;
        let line = report.summary().unwrap();
        assert!(
            line.contains("s3://b/pgdrill/r-ext left: no credentials"),
            "{line}"
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [LOCK_FILE]);
    }
}
