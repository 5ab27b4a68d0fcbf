//! `LocalScratch`: a game day's restore of a real archive into a scratch PostgreSQL instance
//! on this machine. It only reads the archive under test (barman-cloud-restore and
//! barman-cloud-wal-restore); the instance archives nowhere unless given its own archive. Its
//! directory is locked for this process (`lock.rs`), so a later run sweeps it after a crash.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::backend::Keep;
use crate::backend::objstore::S3Target;
use crate::backend::{BackendError, RecoveryAttempt, ScratchRequest, ScratchRestore, Server};
use crate::scenario::Compression;

use super::barman::Barman;
use super::drill::{dir_bytes, rto_from_log, set_restored_bytes, target_settings};
use super::lock::{RunKind, RunLock};
use super::postgres::{NotReady, PgInstance, StopMode};
use super::toolchain::Toolchain;

/// Owner of one scratch instance and its directory.
pub struct LocalScratch {
    toolchain: Toolchain,
    dir: PathBuf,
    /// Reads the archive under test.
    source: Barman,
    instance: Option<PgInstance>,
    lock: RunLock,
}

impl LocalScratch {
    /// `dir` must not exist yet; `destination` is the archive's `s3://bucket/path`.
    pub fn new(
        toolchain: Toolchain,
        dir: PathBuf,
        s3: S3Target,
        destination: &str,
    ) -> Result<Self, BackendError> {
        let bin = toolchain.check_barman()?;
        // Teardown removes the whole directory: it must be this game day's alone.
        if dir.exists() {
            return Err(BackendError::infra(format!(
                "{} already exists: another game day of the same name started in the same second?",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| BackendError::io(format!("cannot create {}", dir.display()), e))?;
        toolchain.run_as.chown(&dir)?;
        let lock = RunLock::create(&dir, RunKind::Gameday, Vec::new())?;
        let source = Barman {
            bin,
            cloud: super::barman::Cloud::S3(s3),
            destination: destination.to_string(),
            run_as: toolchain.run_as.clone(),
            home: dir.clone(),
            extra_env: Vec::new(),
        };
        source.prepare_home()?;
        Ok(Self {
            toolchain,
            dir,
            source,
            instance: None,
            lock,
        })
    }
}

/// The scratch instance's own configuration: nothing from the archived cluster's
/// `postgresql.conf` or `postgresql.auto.conf` survives (they may carry its
/// archive_command, certificates and preload libraries).
fn configure(source: &Barman, inst: &PgInstance, req: &ScratchRequest) -> Result<(), BackendError> {
    let data = inst.data();
    let auto = data.join("postgresql.auto.conf");
    if auto.exists() {
        std::fs::rename(&auto, data.join("postgresql.auto.conf.pgdrill-orig"))
            .map_err(|e| BackendError::io(auto.display().to_string(), e))?;
    }
    let _ = std::fs::remove_file(data.join(".check-empty-wal-archive"));
    let _ = std::fs::remove_file(data.join("standby.signal"));
    inst.write_file(
        "data/postgresql.conf",
        "# pgdrill game-day scratch instance: replaces the archived cluster's configuration\n",
        0o600,
    )?;
    inst.write_file(
        "data/pg_hba.conf",
        "# pgdrill: Unix socket in a private directory only\nlocal all all trust\n",
        0o600,
    )?;
    let mut settings = inst.base_settings();
    settings.extend([
        ("wal_level", "replica".to_string()),
        // Recovery does not need the source's max_connections & co. without hot standby.
        ("hot_standby", "off".to_string()),
        ("restore_command", source.restore_command(&req.server_name)),
        ("recovery_target_action", "promote".to_string()),
        ("recovery_target_timeline", "latest".to_string()),
    ]);
    match &req.archive {
        None => settings.push(("archive_mode", "off".to_string())),
        Some((destination, server)) => {
            let own = Barman {
                destination: destination.clone(),
                ..source.clone()
            };
            let script = inst.write_file(
                "bin/archive-wal.sh",
                &own.archive_script(server, Compression::Gzip),
                0o755,
            )?;
            inst.write_file("data/.check-empty-wal-archive", "", 0o600)?;
            settings.extend([
                ("archive_mode", "on".to_string()),
                (
                    "archive_command",
                    format!("{} %p", super::sh_quote(&script.display().to_string())),
                ),
            ]);
        }
    }
    settings.extend(target_settings(&req.target, false));
    inst.append_conf(&settings)?;
    inst.write_file("data/recovery.signal", "", 0o600)?;
    Ok(())
}

impl ScratchRestore for LocalScratch {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn restore(&mut self, req: &ScratchRequest) -> Result<RecoveryAttempt, BackendError> {
        let t0 = Instant::now();
        let started_at = Utc::now();
        let bin = self.toolchain.pg_bin(req.major)?;
        let inst = PgInstance::new(
            "scratch",
            &self.dir.join("scratch"),
            &bin,
            &self.toolchain.run_as,
        )?;
        let deadline = Duration::from_secs(req.timeout_seconds);
        let restore = self
            .source
            .restore(&req.server_name, &req.backup_id, &inst.data(), deadline)
            .await?;
        let restored_at = Utc::now();
        self.instance = Some(inst);
        let inst = self.instance.as_mut().expect("just set");
        if !restore.success {
            return Ok(RecoveryAttempt::Failed {
                message: format!("barman-cloud-restore failed: {}", restore.text()),
                rto: None,
            });
        }
        let restored_bytes = dir_bytes(&inst.data());
        configure(&self.source, inst, req)?;
        inst.start(&self.source.env())?;
        let ready = inst.wait_ready(deadline.saturating_sub(t0.elapsed())).await;
        let log = inst.log_text();
        match ready {
            Ok(client) => {
                let server = Server::from_client(client).await?;
                let mut rto = rto_from_log(
                    &log,
                    started_at,
                    restored_at,
                    Utc::now(),
                    t0.elapsed().as_secs_f64(),
                );
                set_restored_bytes(&mut rto, restored_bytes);
                Ok(RecoveryAttempt::Recovered { server, rto })
            }
            Err(NotReady::Exited(fatal)) => Ok(RecoveryAttempt::Failed {
                message: if fatal.is_empty() {
                    "the server exited during recovery".into()
                } else {
                    self.source.redact(&fatal)
                },
                rto: None,
            }),
            Err(NotReady::Timeout(tail)) => Ok(RecoveryAttempt::Failed {
                message: format!(
                    "not promoted within {}s; last log lines:\n{}",
                    req.timeout_seconds,
                    self.source.redact(&tail)
                ),
                rto: None,
            }),
        }
    }

    async fn amcheck(
        &mut self,
        req: &crate::backend::AmcheckRequest,
    ) -> Result<crate::backend::amcheck::AmcheckOutcome, BackendError> {
        let inst = self
            .instance
            .as_ref()
            .ok_or_else(|| BackendError::infra("no scratch instance to check"))?;
        super::amcheck::check(&self.toolchain, inst, req).await
    }

    async fn teardown(mut self, keep: Keep) -> Vec<String> {
        let mut kept = Vec::new();
        if let Some(inst) = self.instance.as_mut() {
            if keep == Keep::Everything && inst.is_running() {
                kept.push(format!(
                    "scratch server (socket {})",
                    inst.socket_dir().display()
                ));
            } else if let Err(e) = inst
                .stop(StopMode::Immediate, Duration::from_secs(30))
                .await
            {
                tracing::warn!("teardown: {e}");
            }
        }
        if keep == Keep::Everything {
            if let Err(e) = self.lock.mark_kept() {
                tracing::warn!("{e}: the next run may sweep {}", self.dir.display());
            }
            kept.push(format!(
                "directory {} (`pgdrill clean --kept` stops and removes it)",
                self.dir.display()
            ));
            if let Some(inst) = self.instance.take() {
                std::mem::forget(inst);
            }
            return kept;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("teardown: cannot remove {}: {e}", self.dir.display());
        }
        kept
    }
}
