//! Child processes for the local backend: each runs in its own process group, optionally as
//! the unprivileged PostgreSQL OS user, with a clean environment and a deadline. A registry of
//! live process groups lets a second Ctrl-C kill everything at once; tools run to completion
//! also die with pgdrill (parent-death signal), a postmaster does not (`--keep` outlives
//! pgdrill; a crashed run's servers are the sweep's, `sweep.rs`).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::backend::BackendError;

/// The OS user that PostgreSQL and barman run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    /// `Some((uid, gid))` when pgdrill must switch user (it runs as root).
    pub ids: Option<(u32, u32)>,
}

impl RunAs {
    /// The current user, or `user` when running as root (PostgreSQL refuses to run as root).
    pub fn detect(user: &str) -> Result<Self, BackendError> {
        if !is_root() {
            return Ok(RunAs {
                name: current_user_name(),
                ids: None,
            });
        }
        match lookup_user(user) {
            Some((uid, gid)) if uid != 0 => Ok(RunAs {
                name: user.to_string(),
                ids: Some((uid, gid)),
            }),
            Some(_) => Err(BackendError::infra(format!(
                "PGDRILL_PG_USER={user} is root; PostgreSQL refuses to run as root: name an unprivileged user"
            ))),
            None => Err(BackendError::infra(format!(
                "pgdrill runs as root and PostgreSQL refuses to, but the user `{user}` does not exist: \
                 run `make setup` (it creates it) or set PGDRILL_PG_USER to an unprivileged user"
            ))),
        }
    }

    /// Give `path` (and nothing else) to this user.
    pub fn chown(&self, path: &Path) -> Result<(), BackendError> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| BackendError::io(format!("chown {}", path.display()), e))?;
        }
        Ok(())
    }
}

fn current_user_name() -> String {
    std::env::var("USER").unwrap_or_else(|_| "current user".into())
}

/// (uid, gid) of a user name, from the passwd database.
pub fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns NULL or a pointer to a static passwd record we copy at once.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: pw is non-null and points to a valid passwd struct.
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

static GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// SIGKILL every live process group pgdrill started (second Ctrl-C).
pub fn kill_all_groups() {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for pgid in groups {
        // SAFETY: kill with a negative pid signals a process group we created.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Signal a process group.
pub fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: as above.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// A started child, registered in the group registry until it is reaped.
pub struct Spawned {
    pub child: Child,
    pub pgid: i32,
}

impl Spawned {
    /// Wait for exit; deregisters the group.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let st = self.child.wait().await;
        forget(self.pgid);
        st
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(self.pgid, libc::SIGKILL);
        }
        forget(self.pgid);
    }
}

fn forget(pgid: i32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.remove(&pgid);
    }
}

/// A command with a clean environment (PATH, LANG, TZ and what the caller adds), in its own
/// process group, as `run_as`.
pub fn command(program: impl AsRef<OsStr>, run_as: &RunAs, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .env("HOME", home)
        .process_group(0)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    if let Some((uid, gid)) = run_as.ids {
        c.uid(uid).gid(gid);
    }
    c
}

/// Spawn and register.
pub fn spawn(cmd: &mut Command, what: &str) -> Result<Spawned, BackendError> {
    let child = cmd.spawn().map_err(|e| BackendError::spawn(what, e))?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    if let Ok(mut g) = GROUPS.lock() {
        g.insert(pgid);
    }
    Ok(Spawned { child, pgid })
}

/// The result of a finished tool.
#[derive(Debug)]
pub struct ToolOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// stderr and stdout, trimmed, for error messages.
    pub fn text(&self) -> String {
        let mut s = self.stderr.trim().to_string();
        if !self.stdout.trim().is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(self.stdout.trim());
        }
        s
    }

    /// The error of a tool that ran and failed: `{what}: {stderr and stdout}`.
    pub fn failure(&self, what: impl Into<String>) -> BackendError {
        BackendError::Tool {
            what: what.into(),
            code: self.code,
            output: self.text(),
        }
    }
}

/// SIGKILL the child when the thread that spawns it exits: with pgdrill, even on SIGKILL.
///
/// Only for commands spawned from a runtime worker thread and awaited there (`run`): the
/// signal follows the spawning *thread*, and a blocking-pool thread exits when idle. Set in
/// the child after its switch to the PostgreSQL user (std applies uid/gid before `pre_exec`
/// closures), since a credential change clears it; if pgdrill died before, the child exits.
pub(super) fn die_with_parent(cmd: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
    // system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("pgdrill exited"));
            }
            Ok(())
        });
    }
}

/// Run to completion with a deadline, dying with pgdrill; on timeout the whole group is killed.
pub async fn run(
    mut cmd: Command,
    what: &str,
    deadline: Duration,
) -> Result<ToolOutput, BackendError> {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    die_with_parent(&mut cmd);
    let mut sp = spawn(&mut cmd, what)?;
    let mut out = sp.child.stdout.take();
    let mut err = sp.child.stderr.take();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut o = Vec::new();
        let mut e = Vec::new();
        let (r1, r2) = tokio::join!(
            async {
                match out.as_mut() {
                    Some(s) => s.read_to_end(&mut o).await.map(|_| ()),
                    None => Ok(()),
                }
            },
            async {
                match err.as_mut() {
                    Some(s) => s.read_to_end(&mut e).await.map(|_| ()),
                    None => Ok(()),
                }
            }
        );
        r1.and(r2)?;
        let st = sp.wait().await?;
        Ok::<_, std::io::Error>((st, o, e))
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(Ok((st, o, e))) => Ok(ToolOutput {
            success: st.success(),
            code: st.code(),
            stdout: String::from_utf8_lossy(&o).into_owned(),
            stderr: String::from_utf8_lossy(&e).into_owned(),
        }),
        Ok(Err(e)) => Err(BackendError::io(what, e)),
        Err(_) => Err(BackendError::timeout(
            format!("{what} did not finish"),
            deadline,
            "",
        )),
    }
}
/// How a command run by [`run_logged`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself (`code` is `None` when a signal ended it).
    Exited { code: Option<i32> },
    /// The deadline passed; its whole process group was killed.
    Killed,
}

/// Run to completion with a deadline, dying with pgdrill, stdout and stderr appended to
/// `log` (interleaved as written); on timeout the whole group is killed. Dropping the future
/// (Ctrl-C) kills the group too.
pub async fn run_logged(
    mut cmd: Command,
    what: &str,
    deadline: Duration,
    log: &Path,
) -> Result<Ended, BackendError> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| BackendError::io(log.display().to_string(), e))
    };
    cmd.stdout(open()?).stderr(open()?);
    die_with_parent(&mut cmd);
    let mut sp = spawn(&mut cmd, what)?;
    match tokio::time::timeout(deadline, sp.wait()).await {
        Ok(Ok(st)) => Ok(Ended::Exited { code: st.code() }),
        Ok(Err(e)) => Err(BackendError::io(what, e)),
        Err(_) => {
            signal_group(sp.pgid, libc::SIGKILL);
            let _ = sp.wait().await;
            Ok(Ended::Killed)
        }
    }
}

/// At most `limit` bytes of a file: its head and tail, and how many bytes were left out.
pub fn head_and_tail(path: &Path, limit: usize) -> std::io::Result<(String, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len <= limit as u64 {
        let mut b = Vec::new();
        f.read_to_end(&mut b)?;
        return Ok((String::from_utf8_lossy(&b).into_owned(), 0));
    }
    let head_len = limit / 4;
    let tail_len = limit - head_len;
    let mut head = vec![0; head_len];
    f.read_exact(&mut head)?;
    f.seek(SeekFrom::Start(len - tail_len as u64))?;
    let mut tail = vec![0; tail_len];
    f.read_exact(&mut tail)?;
    let elided = len - limit as u64;
    Ok((
        format!(
            "{}\n[... {elided} bytes left out ...]\n{}",
            String::from_utf8_lossy(&head),
            String::from_utf8_lossy(&tail)
        ),
        elided,
    ))
}

/// Whether pgdrill runs with root's effective user id.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
