//! One PostgreSQL server process owned by pgdrill: initdb, configuration, start, readiness,
//! stop. Unix sockets only (no TCP port), in the instance directory or, when that path is too
//! long for a socket, a short private directory it made under the temporary directory; logs in
//! the instance directory. Never deletes anything else outside its own directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use crate::backend::BackendError;

use super::process::{self, RunAs, Spawned};

/// How to stop a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// SIGINT: roll back sessions, checkpoint, exit.
    Fast,
    /// SIGQUIT: exit without a checkpoint, as in a crash.
    Immediate,
}

/// Why a server did not become ready.
#[derive(Debug)]
pub enum NotReady {
    /// The postmaster exited; the FATAL/PANIC lines of its log (with their DETAIL/HINT lines).
    Exited(String),
    /// Still running at the deadline; the last log lines.
    Timeout(String),
}

/// Owner of one server directory and, while running, its postmaster.
pub struct PgInstance {
    pub name: String,
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub run_as: RunAs,
    socket: SocketDir,
    postmaster: Option<Spawned>,
}

/// Longest socket path the kernel takes (`sun_path` is 108 bytes with its NUL); PostgreSQL
/// refuses a `unix_socket_directories` entry whose `.s.PGSQL.5432` path is longer.
const MAX_SOCKET_PATH: usize = 107;
/// The socket file inside a socket directory.
const SOCKET_FILE: &str = ".s.PGSQL.5432";
/// Name prefix of the short socket directories under the temporary directory.
pub const SHORT_SOCKET_PREFIX: &str = "pgdrill-sock-";

/// Where a server's Unix socket lives: `<instance>/sock`, or, when that path is too long for a
/// socket (a long pgdrill home or scenario name), a private directory under the temporary
/// directory, removed when its owner is dropped (the sweep removes one a killed run left).
struct SocketDir {
    path: PathBuf,
    /// Whether `path` is the short directory outside the instance directory.
    short: bool,
}

impl SocketDir {
    fn for_instance(dir: &Path, run_as: &RunAs) -> Result<Self, BackendError> {
        let inside = dir.join("sock");
        if inside.join(SOCKET_FILE).as_os_str().len() <= MAX_SOCKET_PATH {
            std::fs::create_dir_all(&inside)
                .map_err(|e| BackendError::io(format!("cannot create {}", inside.display()), e))?;
            run_as.chown(&inside)?;
            return Ok(Self {
                path: inside,
                short: false,
            });
        }
        // Named by the instance directory (and this process: two homes may hold the same
        // relative layout), private to the PostgreSQL user.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(dir, std::process::id()), &mut h);
        let name = format!(
            "{SHORT_SOCKET_PREFIX}{:016x}",
            std::hash::Hasher::finish(&h)
        );
        let path = std::env::temp_dir().join(name);
        let create = || {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&path)
        };
        // An empty one left by a killed run of the same directory is reused; a full one never.
        if let Err(e) = create().or_else(|_| std::fs::remove_dir(&path).and_then(|()| create())) {
            return Err(BackendError::io(
                format!("cannot create {}", path.display()),
                e,
            ));
        }
        run_as.chown(&path)?;
        tracing::debug!(
            "{}: socket path too long, socket in {}",
            inside.display(),
            path.display()
        );
        Ok(Self { path, short: true })
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        // Only the short directory is ours to remove here; only once its server is gone
        // (remove_dir, not remove_dir_all: a kept server's socket stays).
        if self.short
            && let Err(e) = std::fs::remove_dir(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!("cannot remove {}: {e}", self.path.display());
        }
    }
}

impl PgInstance {
    /// A fresh instance directory `dir` (must not exist yet) owned by the PostgreSQL user.
    pub fn new(name: &str, dir: &Path, bin: &Path, run_as: &RunAs) -> Result<Self, BackendError> {
        for d in [dir.to_path_buf(), dir.join("bin")] {
            std::fs::create_dir_all(&d)
                .map_err(|e| BackendError::io(format!("cannot create {}", d.display()), e))?;
            run_as.chown(&d)?;
        }
        Ok(Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            socket: SocketDir::for_instance(dir, run_as)?,
            run_as: run_as.clone(),
            postmaster: None,
        })
    }

    /// The instance directory: data, logs, scripts and spools; teardown removes it whole.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn socket_dir(&self) -> PathBuf {
        self.socket.path.clone()
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// A command run as the PostgreSQL user with HOME in the instance directory.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        process::command(program, &self.run_as, &self.dir)
    }

    /// `initdb` with checksums, UTF8 and the C locale.
    pub async fn initdb(&self) -> Result<(), BackendError> {
        let mut c = self.command(self.bin.join("initdb"));
        c.arg("-D").arg(self.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--data-checksums",
            "--no-sync",
        ]);
        let out = process::run(
            c,
            &format!("initdb for {}", self.name),
            Duration::from_secs(120),
        )
        .await?;
        if !out.success {
            return Err(out.failure(format!("initdb for {} failed", self.name)));
        }
        Ok(())
    }

    /// Append settings to `postgresql.conf` (later lines win over earlier ones).
    pub fn append_conf(&self, settings: &[(&str, String)]) -> Result<(), BackendError> {
        use std::io::Write;
        let path = self.data().join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| BackendError::io(path.display().to_string(), e))?;
        let mut text = String::from("\n# --- pgdrill ---\n");
        for (k, v) in settings {
            text.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        f.write_all(text.as_bytes())
            .map_err(|e| BackendError::io(path.display().to_string(), e))
    }

    /// Settings every pgdrill instance has: sockets in its own directory, no TCP, UTC logs.
    pub fn base_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("listen_addresses", String::new()),
            (
                "unix_socket_directories",
                self.socket_dir().display().to_string(),
            ),
            ("port", "5432".into()),
            ("max_connections", "20".into()),
            ("shared_buffers", "32MB".into()),
            ("log_line_prefix", "%m [%p] ".into()),
            ("log_timezone", "UTC".into()),
            ("timezone", "UTC".into()),
            ("logging_collector", "off".into()),
            ("restart_after_crash", "off".into()),
        ]
    }

    /// Write a file into the instance directory, owned by the PostgreSQL user.
    pub fn write_file(&self, rel: &str, content: &str, mode: u32) -> Result<PathBuf, BackendError> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join(rel);
        std::fs::write(&p, content).map_err(|e| BackendError::io(p.display().to_string(), e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| BackendError::io(p.display().to_string(), e))?;
        self.run_as.chown(&p)?;
        Ok(p)
    }

    /// Start the postmaster in its own process group with `env` added to a clean environment.
    pub fn start(&mut self, env: &[(String, String)]) -> Result<(), BackendError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| BackendError::io(self.log_path().display().to_string(), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| BackendError::io(self.log_path().display().to_string(), e))?;
        let mut c = self.command(self.bin.join("postgres"));
        c.arg("-D")
            .arg(self.data())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(false);
        for (k, v) in env {
            c.env(k, v);
        }
        self.postmaster = Some(process::spawn(
            &mut c,
            &format!("postgres for {}", self.name),
        )?);
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.postmaster {
            Some(p) => matches!(p.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Connect over the instance's socket as `postgres`.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        self.connect_to(5432, "postgres").await
    }

    /// Connect over the instance's socket as `postgres` to `dbname`, the server listening on
    /// `port` (its socket is `.s.PGSQL.<port>`).
    pub async fn connect_to(
        &self,
        port: u16,
        dbname: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::Config::new()
            .host_path(self.socket_dir())
            .port(port)
            .user("postgres")
            .dbname(dbname)
            .application_name("pgdrill")
            .connect_timeout(Duration::from_secs(5))
            .connect(NoTls)
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Poll until the server answers and is out of recovery (promoted); fail at once if the
    /// postmaster exits. Returns a connected client.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<Client, NotReady> {
        self.wait_ready_on(5432, deadline).await
    }

    /// [`PgInstance::wait_ready`] for a server listening on `port` (its socket is
    /// `.s.PGSQL.<port>`).
    pub async fn wait_ready_on(
        &mut self,
        port: u16,
        deadline: Duration,
    ) -> Result<Client, NotReady> {
        let until = Instant::now() + deadline;
        // One connection, once the server takes them (a hot standby does from consistency on),
        // asked again on each poll: a new backend per poll would compete with replay for the
        // CPU, and the RTO would measure pgdrill.
        let mut held: Option<Client> = None;
        loop {
            if !self.is_running() {
                return Err(NotReady::Exited(self.fatal_lines()));
            }
            if held.is_none() {
                held = self.connect_to(port, "postgres").await.ok();
            }
            if let Some(client) = &held {
                match client
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .map(|r| r.get::<_, bool>(0))
                {
                    Ok(false) => return Ok(held.take().expect("held")),
                    Ok(true) => {}
                    Err(_) => held = None,
                }
            }
            if Instant::now() >= until {
                return Err(NotReady::Timeout(self.log_tail(20)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// FATAL and PANIC lines with the DETAIL/HINT lines that follow them.
    pub fn fatal_lines(&self) -> String {
        fatal_lines(&self.log_text())
    }

    fn log_tail(&self, n: usize) -> String {
        let t = self.log_text();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Stop the postmaster and wait for it; escalates to SIGKILL of the group after `deadline`.
    pub async fn stop(&mut self, mode: StopMode, deadline: Duration) -> Result<(), BackendError> {
        let Some(mut pm) = self.postmaster.take() else {
            return Ok(());
        };
        if !matches!(pm.child.try_wait(), Ok(None)) {
            return Ok(());
        }
        let sig = match mode {
            StopMode::Fast => libc::SIGINT,
            StopMode::Immediate => libc::SIGQUIT,
        };
        if let Some(pid) = pm.child.id() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
        match tokio::time::timeout(deadline, pm.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                process::signal_group(pm.pgid, libc::SIGKILL);
                let _ = pm.wait().await;
                Err(BackendError::timeout(
                    format!("{} did not stop", self.name),
                    deadline,
                    "; killed",
                ))
            }
        }
    }
}

impl PgInstance {
    /// Crash: SIGKILL the postmaster alone, as the OOM killer would, then wait until its
    /// children (backends, archiver, an `archive_command` in flight) have noticed and exited.
    /// Stragglers past `deadline` get SIGKILL too.
    pub async fn kill_postmaster(&mut self, deadline: Duration) -> Result<(), BackendError> {
        let Some(mut pm) = self.postmaster.take() else {
            return Err(BackendError::infra(format!("{} is not running", self.name)));
        };
        if let Some(pid) = pm.child.id() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let pgid = pm.pgid;
        let _ = pm.wait().await;
        let until = Instant::now() + deadline;
        // SAFETY: signal 0 only probes whether the group we created still has members.
        while unsafe { libc::kill(-pgid, 0) } == 0 {
            if Instant::now() >= until {
                process::signal_group(pgid, libc::SIGKILL);
                return Err(BackendError::infra(format!(
                    "{}: processes outlived the killed postmaster by {}s; killed",
                    self.name,
                    deadline.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl PgInstance {
    /// After a kill: poll until no process is attached to the killed server's shared memory
    /// (its children exit on their own once they notice the postmaster is gone), so a new
    /// postmaster on the same data directory can start. Reads the segment from
    /// `postmaster.pid`; no file or no segment counts as released.
    pub async fn wait_shared_memory_released(
        &self,
        deadline: Duration,
    ) -> Result<(), BackendError> {
        let pid_file = self.data().join("postmaster.pid");
        let Some(shmid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| shmid_of_pid_file(&t))
        else {
            return Ok(());
        };
        let until = Instant::now() + deadline;
        loop {
            // SAFETY: IPC_STAT only reads the segment's status into a zeroed struct we own.
            let attached = unsafe {
                let mut ds: libc::shmid_ds = std::mem::zeroed();
                if libc::shmctl(shmid, libc::IPC_STAT, &mut ds) == 0 {
                    ds.shm_nattch
                } else {
                    0
                }
            };
            if attached == 0 {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(BackendError::timeout(
                    format!(
                        "{}: {attached} process(es) of the killed server still attached to its shared memory",
                        self.name
                    ),
                    deadline,
                    "",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The SysV shared memory id in `postmaster.pid` (line 7: `key id`).
fn shmid_of_pid_file(text: &str) -> Option<i32> {
    text.lines().nth(6)?.split_whitespace().nth(1)?.parse().ok()
}

impl Drop for PgInstance {
    fn drop(&mut self) {
        if self.is_running() {
            tracing::warn!(
                "{} still running at drop; killing its process group",
                self.name
            );
        }
        // `Spawned`'s own Drop kills the group if it is still alive.
    }
}

/// FATAL and PANIC lines with the DETAIL/HINT lines that follow them.
pub fn fatal_lines(log: &str) -> String {
    let mut out = Vec::new();
    let mut follow = false;
    for line in log.lines() {
        if line.contains("FATAL:") || line.contains("PANIC:") {
            out.push(line.to_string());
            follow = true;
        } else if follow && (line.contains("DETAIL:") || line.contains("HINT:")) {
            out.push(line.to_string());
        } else {
            follow = false;
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_memory_id_comes_from_line_seven() {
        let pid = "4242\n/data\n1764670000\n5432\n/sock\n\n  1064961     32785\nready   \n";
        assert_eq!(shmid_of_pid_file(pid), Some(32785));
        assert_eq!(shmid_of_pid_file("4242\n/data\n"), None);
    }

    #[test]
    fn fatal_lines_keep_details() {
        let log = "2026-11-22 10:00:00.000 UTC [1] LOG:  starting\n\
                   2026-11-22 10:00:00.001 UTC [1] FATAL:  database files are incompatible with server\n\
                   2026-11-22 10:00:00.001 UTC [1] DETAIL:  The data directory was initialized by PostgreSQL version 15\n\
                   2026-11-22 10:00:00.002 UTC [1] LOG:  database system is shut down\n";
        let f = fatal_lines(log);
        assert_eq!(f.lines().count(), 2);
        assert!(f.contains("incompatible") && f.contains("version 15"));
        assert_eq!(fatal_lines("LOG: fine\n"), "");
    }
}
