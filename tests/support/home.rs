//! A private pgdrill home for one test (local tier): its own `runs/`, so the sweep of one test
//! never meets another test's runs (or anyone else's under the shared home), with the tools
//! `make setup` installed in the shared home linked in. Creates and removes nothing else.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared home the tools are installed in (`PGDRILL_HOME`, else root's default).
fn shared_home() -> PathBuf {
    std::env::var_os("PGDRILL_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/pgdrill"))
}

/// A fresh home under /var/tmp, readable by the PostgreSQL user and short enough for socket
/// paths (`<home>/runs/<run-id>/<scenario>/recovered/sock/.s.PGSQL.5432` < 108 bytes).
pub fn private_home() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::Builder::new()
        .prefix("pd")
        .rand_bytes(6)
        .tempdir_in("/var/tmp")
        .expect("a home under /var/tmp");
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shared = shared_home();
    for e in std::fs::read_dir(&shared)
        .expect("the shared home: run `make setup`")
        .flatten()
    {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n.starts_with("venv-barman-") || n == "postgres" {
            std::os::unix::fs::symlink(e.path(), home.path().join(&name)).unwrap();
        }
    }
    home
}

/// `<home>/runs`.
pub fn runs(home: &Path) -> PathBuf {
    home.join("runs")
}
