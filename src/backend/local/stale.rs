//! Pure: whether a sweep may tear a run directory down (from its lock and whether its owner
//! still runs), which process a `postmaster.pid` names and whether /proc shows that process
//! serving the data directory, and which recorded bucket prefixes may be deleted. Never reads
//! a file, looks at /proc or signals anything itself.

use std::path::{Path, PathBuf};

use super::lock::{CreatedPrefix, LockRecord, Owner};
use super::postgres::SHORT_SOCKET_PREFIX;

/// What a sweep found of a run directory's lock.
#[derive(Debug, Clone, Copy)]
pub enum LockSeen<'a> {
    /// No lock file.
    Absent,
    /// Another process holds the lock (its pid, if the record said).
    Held(Option<u32>),
    /// The lock was free; what it says, or why it cannot be trusted.
    Free(Result<&'a LockRecord, &'a str>),
}

/// What a sweep does with a run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its owner lives (holds the lock, or still runs): never touched.
    Live { pid: Option<u32> },
    /// Ended with `--keep`: left until `pgdrill clean --kept`.
    Kept { pid: u32 },
    /// Not pgdrill's to remove: no lock, or one it cannot trust.
    Unowned(String),
    /// Its owner is dead: tear it down.
    Stale { pid: u32, kept: bool },
}

impl Verdict {
    pub fn is_stale(&self) -> bool {
        matches!(self, Verdict::Stale { .. })
    }
}

/// Decide. Both liveness signs must say "dead" before anything is torn down: the lock must be
/// free *and* the recorded process (pid and start time) gone.
pub fn judge(lock: LockSeen, alive: impl Fn(&Owner) -> bool, include_kept: bool) -> Verdict {
    match lock {
        LockSeen::Absent => Verdict::Unowned("no pgdrill lock".into()),
        LockSeen::Held(pid) => Verdict::Live { pid },
        LockSeen::Free(Err(why)) => Verdict::Unowned(why.to_string()),
        LockSeen::Free(Ok(r)) if alive(&r.owner) => Verdict::Live {
            pid: Some(r.owner.pid),
        },
        LockSeen::Free(Ok(r)) if r.kept && !include_kept => Verdict::Kept { pid: r.owner.pid },
        LockSeen::Free(Ok(r)) => Verdict::Stale {
            pid: r.owner.pid,
            kept: r.kept,
        },
    }
}

/// The postmaster pid a `postmaster.pid` names, if its second line is `data_dir` (both as
/// resolved paths). `None` for anything else: a foreign file, a half-written one, pid 0 or 1.
pub fn postmaster_pid(
    text: &str,
    data_dir: &Path,
    resolve: impl Fn(&str) -> String,
) -> Option<u32> {
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let named = lines.next()?.trim();
    (pid > 1 && !named.is_empty() && resolve(named) == data_dir.to_string_lossy()).then_some(pid)
}

/// The socket directory a `postmaster.pid` names (its fifth line) when it is one of the short
/// directories pgdrill makes under the temporary directory `tmp` for servers whose own socket
/// path would be too long; `None` for any other directory.
pub fn short_socket_dir(text: &str, tmp: &Path) -> Option<PathBuf> {
    let dir = Path::new(text.lines().nth(4)?.trim());
    let name = dir.file_name()?.to_str()?;
    (dir.parent() == Some(tmp)
        && name.starts_with(SHORT_SOCKET_PREFIX)
        && name.len() > SHORT_SOCKET_PREFIX.len())
    .then(|| dir.to_path_buf())
}

/// Whether a process serves `data_dir`: its working directory is the data directory (a
/// postmaster changes into it), or its command line is `… -D <data_dir> …`.
pub fn serves(data_dir: &Path, cwd: Option<&Path>, cmdline: &[u8]) -> bool {
    if cwd == Some(data_dir) {
        return true;
    }
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let want = data_dir.as_os_str().as_encoded_bytes();
    args.windows(2).any(|w| w[0] == b"-D" && w[1] == want)
}

/// Whether a recorded prefix may be deleted for run `run_id` with credentials meant for
/// `endpoint`: it must end in the run's own id (never a bucket or a shared prefix, whatever
/// the lock says) and be on that very endpoint (credentials go nowhere else).
pub fn prefix_deletable(
    p: &CreatedPrefix,
    run_id: &str,
    endpoint: Option<&str>,
) -> Result<(), String> {
    let segments: Vec<&str> = p.prefix.trim_matches('/').split('/').collect();
    let own = segments.len() >= 2
        && segments.last() == Some(&run_id)
        && segments
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != "..");
    if !own {
        return Err(format!("not this run's own prefix (run {run_id})"));
    }
    let same = |e: &str| e.trim_end_matches('/') == p.endpoint.trim_end_matches('/');
    match endpoint {
        Some(e) if same(e) => Ok(()),
        _ => Err(format!(
            "no credentials for {} here: `pgdrill clean --s3-endpoint {}` with its keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY deletes it",
            p.endpoint, p.endpoint
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::lock::RunKind;
    use super::*;

    #[test]
    fn only_short_socket_directories_under_tmp_are_named() {
        let pid = |sock: &str| format!("4242\n/runs/x/data\n1764600000\n5432\n{sock}\n\n");
        let tmp = Path::new("/tmp");
        assert_eq!(
            short_socket_dir(&pid("/tmp/pgdrill-sock-Ab12Cd"), tmp),
            Some(PathBuf::from("/tmp/pgdrill-sock-Ab12Cd"))
        );
        for other in [
            "/var/tmp/pgdrill/runs/r/s/source/sock",
            "/tmp",
            "/tmp/pgdrill-sock-",
            "/tmp/other-dir",
            "/tmp/x/pgdrill-sock-Ab12Cd",
            "",
        ] {
            assert_eq!(short_socket_dir(&pid(other), tmp), None, "{other}");
        }
        assert_eq!(short_socket_dir("4242\n/d\n", tmp), None, "a short file");
    }

    fn record(kept: bool) -> LockRecord {
        LockRecord {
            kind: RunKind::Run,
            owner: Owner {
                pid: 4242,
                start_ticks: 7,
                boot_id: "b".into(),
            },
            kept,
            prefixes: Vec::new(),
        }
    }

    #[test]
    fn only_a_free_lock_whose_owner_is_gone_is_stale() {
        let (dead, alive) = (|_: &Owner| false, |_: &Owner| true);
        let (r, k) = (record(false), record(true));
        assert_eq!(
            judge(LockSeen::Free(Ok(&r)), dead, false),
            Verdict::Stale {
                pid: 4242,
                kept: false
            }
        );
        // The lock free but the process still there (a filesystem without flock): live.
        assert_eq!(
            judge(LockSeen::Free(Ok(&r)), alive, true),
            Verdict::Live { pid: Some(4242) }
        );
        assert_eq!(
            judge(LockSeen::Held(Some(7)), dead, true),
            Verdict::Live { pid: Some(7) }
        );
        assert!(matches!(
            judge(LockSeen::Absent, dead, true),
            Verdict::Unowned(_)
        ));
        assert_eq!(
            judge(LockSeen::Free(Err("unreadable lock")), dead, true),
            Verdict::Unowned("unreadable lock".into())
        );
        assert_eq!(
            judge(LockSeen::Free(Ok(&k)), dead, false),
            Verdict::Kept { pid: 4242 }
        );
        assert_eq!(
            judge(LockSeen::Free(Ok(&k)), dead, true),
            Verdict::Stale {
                pid: 4242,
                kept: true
            }
        );
        assert_eq!(
            judge(LockSeen::Free(Ok(&k)), alive, true),
            Verdict::Live { pid: Some(4242) },
            "a kept run whose owner still runs is live even with --kept"
        );
    }

    #[test]
    fn a_postmaster_pid_must_name_this_data_directory() {
        let data = PathBuf::from("/h/runs/r/s/recovered/data");
        let same = |s: &str| s.to_string();
        let text = "31337\n/h/runs/r/s/recovered/data\n1764676800\n5432\n";
        assert_eq!(postmaster_pid(text, &data, same), Some(31337));
        let other = "31337\n/h/runs/r/s/source/data\n";
        assert_eq!(postmaster_pid(other, &data, same), None);
        let via_link = |s: &str| s.replace("/link/", "/h/");
        let linked = "31337\n/link/runs/r/s/recovered/data\n";
        assert_eq!(postmaster_pid(linked, &data, via_link), Some(31337));
        for bad in [
            "",
            "31337\n",
            "x\n/h/runs/r/s/recovered/data\n",
            "1\n/h/runs/r/s/recovered/data\n",
        ] {
            assert_eq!(postmaster_pid(bad, &data, same), None, "{bad:?}");
        }
    }

    #[test]
    fn a_process_serves_a_data_directory_by_its_cwd_or_its_dash_d() {
        let data = Path::new("/h/runs/r/s/source/data");
        assert!(serves(data, Some(data), b""));
        assert!(serves(
            data,
            None,
            b"/usr/lib/postgresql/15/bin/postgres\0-D\0/h/runs/r/s/source/data\0"
        ));
        assert!(!serves(
            data,
            Some(Path::new("/h/runs/r/s")),
            b"sleep\x00600\x00"
        ));
        assert!(!serves(
            data,
            None,
            b"postgres\0-D\0/h/runs/r/s/source/data-other\0"
        ));
        assert!(!serves(data, None, b"/h/runs/r/s/source/data\0"));
    }

    #[test]
    fn only_the_runs_own_prefix_on_the_endpoint_with_credentials_is_deleted() {
        let p = |prefix: &str| CreatedPrefix {
            endpoint: "http://127.0.0.1:9000/".into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: prefix.into(),
        };
        let here = Some("http://127.0.0.1:9000");
        assert_eq!(prefix_deletable(&p("pgdrill/run-1"), "run-1", here), Ok(()));
        for shared in [
            "",
            "run-1",
            "pgdrill",
            "pgdrill/run-2",
            "pgdrill/../run-1",
            "pgdrill//run-1",
        ] {
            assert!(
                prefix_deletable(&p(shared), "run-1", here).is_err(),
                "{shared:?}"
            );
        }
        let elsewhere = prefix_deletable(&p("pgdrill/run-1"), "run-1", Some("http://s3.example"));
        assert!(
            elsewhere
                .unwrap_err()
                .contains("--s3-endpoint http://127.0.0.1:9000/")
        );
        assert!(prefix_deletable(&p("pgdrill/run-1"), "run-1", None).is_err());
    }
}
