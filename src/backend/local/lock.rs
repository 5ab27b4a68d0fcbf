//! The run lock: `<run dir>/pgdrill.lock` records which process owns a run (or a game day's
//! scratch) directory, by pid and start time, and what the run created outside it (its bucket
//! prefix on an external endpoint); the owner holds an exclusive flock on it for its whole life.
//! Never removes, stops or signals anything: `sweep.rs` acts on what it says.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::BackendError;

/// The lock file's name inside a run directory.
pub const LOCK_FILE: &str = "pgdrill.lock";

/// A process, told apart from a later one with the same pid by its start time (clock ticks
/// after boot, `/proc/<pid>/stat` field 22) and the boot it started in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub start_ticks: u64,
    pub boot_id: String,
}

impl Owner {
    /// This process.
    pub fn current() -> Result<Owner, BackendError> {
        Owner::of_pid(std::process::id()).ok_or_else(|| {
            BackendError::infra("cannot read this process's start time from /proc/self/stat")
        })
    }

    /// Process `pid` as /proc shows it now; `None` when there is none.
    pub fn of_pid(pid: u32) -> Option<Owner> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Owner {
            pid,
            start_ticks: stat_field(&stat, 22)?.parse().ok()?,
            boot_id: boot_id(),
        })
    }

    /// Whether this very process still runs (not merely a process with its pid).
    pub fn is_alive(&self) -> bool {
        Owner::of_pid(self.pid).as_ref() == Some(self)
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), empty where there is none.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Field `n` (1-based, as proc(5) numbers them) of a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses: fields 3 on start after
/// the last `)`.
pub fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n.checked_sub(3)?)
}

/// What kind of directory a lock owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `pgdrill run`: drills, and the embedded S3 endpoint's data under `s3/`.
    Run,
    /// `pgdrill gameday`: one scratch instance.
    Gameday,
}

/// A bucket prefix the run created on an external endpoint, all of it the run's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedPrefix {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
}

impl CreatedPrefix {
    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// What a lock file says. No credentials, ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub kind: RunKind,
    pub owner: Owner,
    /// The run ended with `--keep`: its servers and directories stay until `pgdrill clean
    /// --kept`.
    #[serde(default)]
    pub kept: bool,
    #[serde(default)]
    pub prefixes: Vec<CreatedPrefix>,
}

/// The owner's side: a directory taken for this process until the value is dropped.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    record: LockRecord,
}

impl RunLock {
    /// Take `dir` (which the caller has just created) for this process. The record is written
    /// and locked under a temporary name and then renamed, so `pgdrill.lock` is never seen
    /// unlocked or half written while its owner lives.
    pub fn create(
        dir: &Path,
        kind: RunKind,
        prefixes: Vec<CreatedPrefix>,
    ) -> Result<RunLock, BackendError> {
        let record = LockRecord {
            kind,
            owner: Owner::current()?,
            kept: false,
            prefixes,
        };
        let tmp = dir.join(format!(".{LOCK_FILE}.tmp"));
        let path = dir.join(LOCK_FILE);
        let io = |what: &str, p: &Path| {
            let what = format!("{what} {}", p.display());
            move |e| BackendError::io(what, e)
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io("creating", &tmp))?;
        file.try_lock()
            .map_err(|e| BackendError::io(format!("locking {}", tmp.display()), lock_error(e)))?;
        let mut lock = RunLock { file, record };
        lock.write_record().map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("renaming to", &path))?;
        Ok(lock)
    }

    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// The run ends with `--keep`: say so in the lock, so the next run's sweep leaves it.
    pub fn mark_kept(&mut self) -> Result<(), BackendError> {
        self.record.kept = true;
        self.write_record()
            .map_err(|e| BackendError::io("marking the run lock kept", e))
    }

    fn write_record(&mut self) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.record).map_err(std::io::Error::other)?;
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(format!("{text}\n").as_bytes())?;
        self.file.sync_all()
    }
}

fn lock_error(e: TryLockError) -> std::io::Error {
    match e {
        TryLockError::Error(e) => e,
        TryLockError::WouldBlock => std::io::Error::from(std::io::ErrorKind::WouldBlock),
    }
}

/// What another process finds when it tries a directory's lock.
#[derive(Debug)]
pub enum Tried {
    /// No lock file: not a directory pgdrill took (or one being taken this instant).
    NoLock,
    /// Someone holds the lock: its owner lives (its pid, when the record could be read).
    Held { pid: Option<u32> },
    /// The lock is now held by the caller (until the value is dropped), with what the file
    /// says, or why it cannot be trusted.
    Taken {
        lock: HeldLock,
        record: Result<LockRecord, String>,
    },
}

/// A dead owner's lock, held by the process that tries it.
#[derive(Debug)]
pub struct HeldLock {
    _file: File,
    pub path: PathBuf,
}

/// Try `dir`'s lock without waiting. A record is only trusted from a file this user owns
/// that nobody else may write (the run directory itself belongs to the PostgreSQL user).
pub fn try_lock(dir: &Path) -> Result<Tried, BackendError> {
    let path = dir.join(LOCK_FILE);
    let io = |e| BackendError::io(format!("trying {}", path.display()), e);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tried::NoLock),
        Err(e) => return Err(io(e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let record = serde_json::from_str::<LockRecord>(&text).ok();
            return Ok(Tried::Held {
                pid: record.map(|r| r.owner.pid),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // Locked the file that is still there, not one a sweeper just removed.
    let meta = file.metadata().map_err(io)?;
    match std::fs::metadata(&path) {
        Ok(now) if now.ino() == meta.ino() && now.dev() == meta.dev() => {}
        _ => return Ok(Tried::NoLock),
    }
    let record = if meta.uid() != rustix::process::geteuid().as_raw() {
        Err(format!("the lock belongs to uid {}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Err(format!(
            "the lock is writable by others ({:o})",
            meta.mode() & 0o777
        ))
    } else {
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        serde_json::from_str(&text).map_err(|e| format!("unreadable lock: {e}"))
    };
    Ok(Tried::Taken {
        lock: HeldLock { _file: file, path },
        record,
    })
}

/// The record of `dir`'s lock once it is free, within 10 s: a child another thread forks may
/// share the descriptor between its fork and its exec.
#[cfg(test)]
pub fn record_when_free(dir: &Path) -> Result<LockRecord, String> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match try_lock(dir).unwrap() {
            Tried::Taken { record, .. } => return record,
            _ if std::time::Instant::now() < until => std::thread::yield_now(),
            other => panic!("{} stays locked: {other:?}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000";
        assert_eq!(stat_field(stat, 3), Some("S"));
        assert_eq!(stat_field(stat, 5), Some("4242"));
        assert_eq!(stat_field(stat, 22), Some("987654"));
        assert_eq!(stat_field("no parenthesis", 3), None);
        assert_eq!(stat_field(stat, 2), None);
    }

    #[test]
    fn this_process_is_alive_and_a_different_start_is_not() {
        let me = Owner::current().unwrap();
        assert!(me.is_alive());
        let reused = Owner {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!reused.is_alive(), "same pid, later start: another process");
        let other_boot = Owner {
            boot_id: "another boot".into(),
            ..me
        };
        assert!(!other_boot.is_alive());
    }

    #[test]
    fn a_held_lock_is_busy_and_its_record_readable_once_free() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(try_lock(dir.path()).unwrap(), Tried::NoLock));
        let prefix = CreatedPrefix {
            endpoint: "http://127.0.0.1:9000".into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: "pgdrill/r1".into(),
        };
        let mut lock = RunLock::create(dir.path(), RunKind::Run, vec![prefix.clone()]).unwrap();
        let me = Some(std::process::id());
        assert!(matches!(try_lock(dir.path()).unwrap(), Tried::Held { pid } if pid == me));
        lock.mark_kept().unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [LOCK_FILE], "no temporary file is left");
        drop(lock);
        let record = record_when_free(dir.path()).unwrap();
        assert!(record.kept && record.owner.is_alive());
        assert_eq!(record.prefixes, [prefix]);
    }

    #[test]
    fn a_lock_others_may_write_is_not_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        drop(RunLock::create(dir.path(), RunKind::Gameday, Vec::new()).unwrap());
        let path = dir.path().join(LOCK_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            record_when_free(dir.path())
                .unwrap_err()
                .contains("writable by others")
        );
    }
}
