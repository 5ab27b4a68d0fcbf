//! The run's report directory, the `latest` symlink next to it, and atomic report file writes;
//! never deletes anything but a symlink pgdrill made.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::ReportError;

/// Name of the symlink under the reports root that points at the newest run directory.
pub const LATEST: &str = "latest";

/// A fresh run id: the UTC time and a random suffix, e.g. `20261122T024830Z-0a1f`.
pub fn new_run_id() -> String {
    use rand::Rng;
    let suffix: u16 = rand::rng().random();
    format!(
        "{}-{suffix:04x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    )
}

/// Create `reports_root/run_id` and point `reports_root/latest` at it.
///
/// The symlink is relative (`latest -> run_id`) so the reports tree can be moved or archived.
/// An existing `latest` symlink is replaced atomically; a real file or directory named `latest`
/// is never touched: that is [`ReportError::LatestNotSymlink`]. An existing run directory is
/// [`ReportError::RunDirExists`], so a run never overwrites another run's reports.
pub fn prepare_run_dir(reports_root: &Path, run_id: &str) -> Result<PathBuf, ReportError> {
    if run_id.is_empty()
        || run_id == "."
        || run_id == ".."
        || run_id == LATEST
        || run_id.starts_with(".latest")
        || run_id.contains(['/', '\\', '\0'])
    {
        return Err(ReportError::InvalidRunId(run_id.to_string()));
    }
    let latest = reports_root.join(LATEST);
    // Refuse before creating anything, so a refused run leaves no trace.
    if !replaceable(&latest)? {
        return Err(ReportError::LatestNotSymlink { path: latest });
    }
    fs::create_dir_all(reports_root).map_err(io_err("creating", reports_root))?;
    let dir = reports_root.join(run_id);
    fs::create_dir(&dir).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            ReportError::RunDirExists { path: dir.clone() }
        } else {
            ReportError::Io {
                action: "creating",
                path: dir.clone(),
                source,
            }
        }
    })?;

    // Make the new link under a temporary name, then rename it over `latest`: rename replaces
    // a symlink without following it, and there is never a moment without a `latest`.
    let tmp = reports_root.join(format!(".latest.{}.tmp", std::process::id()));
    if fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(&tmp).map_err(io_err("removing stale", &tmp))?;
    }
    symlink(run_id, &tmp).map_err(io_err("creating symlink", &tmp))?;
    // Checked again right before the rename, in case `latest` appeared meanwhile.
    if !replaceable(&latest)? {
        let _ = fs::remove_file(&tmp);
        return Err(ReportError::LatestNotSymlink { path: latest });
    }
    fs::rename(&tmp, &latest).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        ReportError::Io {
            action: "replacing symlink",
            path: latest.clone(),
            source,
        }
    })?;
    Ok(dir)
}

/// Whether `path` is absent or a symlink (to anything, even dangling).
fn replaceable(path: &Path) -> Result<bool, ReportError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.file_type().is_symlink()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(ReportError::Io {
            action: "inspecting",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Write `contents` to `path` through a temporary file and a rename, so a reader never sees
/// half a report.
pub(super) fn write_file(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let write = || -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        ReportError::Io {
            action: "writing",
            path: path.to_path_buf(),
            source,
        }
    })
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ReportError + use<> {
    let path = path.to_path_buf();
    move |source| ReportError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_target(p: &Path) -> PathBuf {
        fs::read_link(p).unwrap()
    }

    #[test]
    fn creates_run_dir_and_latest_symlink() {
        let root = tempfile::tempdir().unwrap();
        let reports = root.path().join("reports"); // created on demand
        let dir = prepare_run_dir(&reports, "run-1").unwrap();
        assert_eq!(dir, reports.join("run-1"));
        assert!(dir.is_dir());
        let latest = reports.join(LATEST);
        assert!(
            fs::symlink_metadata(&latest)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            link_target(&latest),
            PathBuf::from("run-1"),
            "relative link"
        );
        assert_eq!(
            fs::canonicalize(&latest).unwrap(),
            fs::canonicalize(&dir).unwrap()
        );
    }

    #[test]
    fn replaces_an_existing_symlink_even_a_dangling_one() {
        let root = tempfile::tempdir().unwrap();
        let first = prepare_run_dir(root.path(), "run-1").unwrap();
        fs::write(first.join("junit.xml"), "<testsuites/>").unwrap();
        prepare_run_dir(root.path(), "run-2").unwrap();
        let latest = root.path().join(LATEST);
        assert_eq!(link_target(&latest), PathBuf::from("run-2"));
        assert!(
            first.join("junit.xml").is_file(),
            "older runs stay untouched"
        );

        fs::remove_file(&latest).unwrap();
        symlink("gone", &latest).unwrap();
        prepare_run_dir(root.path(), "run-3").unwrap();
        assert_eq!(link_target(&latest), PathBuf::from("run-3"));
        let leftovers: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn refuses_to_replace_a_real_directory_or_file() {
        let root = tempfile::tempdir().unwrap();
        let latest = root.path().join(LATEST);
        fs::create_dir(&latest).unwrap();
        fs::write(latest.join("keep.txt"), "mine").unwrap();
        let err = prepare_run_dir(root.path(), "run-1").unwrap_err();
        assert!(matches!(err, ReportError::LatestNotSymlink { .. }), "{err}");
        assert!(err.to_string().contains("is not a symlink"), "{err}");
        assert_eq!(fs::read_to_string(latest.join("keep.txt")).unwrap(), "mine");
        assert!(
            !root.path().join("run-1").exists(),
            "a refused run creates nothing"
        );

        fs::remove_dir_all(&latest).unwrap();
        fs::write(&latest, "a file").unwrap();
        let err = prepare_run_dir(root.path(), "run-1").unwrap_err();
        assert!(matches!(err, ReportError::LatestNotSymlink { .. }), "{err}");
        assert_eq!(fs::read_to_string(&latest).unwrap(), "a file");
    }

    #[test]
    fn never_reuses_a_run_dir_and_rejects_bad_ids() {
        let root = tempfile::tempdir().unwrap();
        prepare_run_dir(root.path(), "run-1").unwrap();
        let err = prepare_run_dir(root.path(), "run-1").unwrap_err();
        assert!(matches!(err, ReportError::RunDirExists { .. }), "{err}");
        for bad in ["", ".", "..", "latest", "a/b", "../escape"] {
            let err = prepare_run_dir(root.path(), bad).unwrap_err();
            assert!(
                matches!(err, ReportError::InvalidRunId(_)),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn write_file_replaces_whole_files() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("summary.md");
        write_file(&p, b"first, longer content").unwrap();
        write_file(&p, b"second").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "second");
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
