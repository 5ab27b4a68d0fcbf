//! `LocalBackend` and `LocalDrill`: one scenario's source and recovered servers, under its own
//! directory and its own bucket prefix. Teardown removes only what the drill created.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::backend::Keep;
use crate::backend::Phase;
use crate::backend::PhaseName;
use crate::backend::Rto;
use crate::backend::azure::AzureTarget;
use crate::backend::objstore::{ObjectStore, S3Target};
use crate::backend::{
    Backend, BackendError, Drill, InterruptedBackupOutcome, LogicalBackupDone,
    LogicalBackupRequest, LogicalRestoreOutcome, LogicalRestoreRequest, RecoveryAttempt,
    RecoveryFaults, RecoveryFaultsSeen, RecoveryRequest, RecoveryRestart, RestartSeen, Server,
    SourceSpec, Unsupported,
};
use crate::ledger::{BackupRecord, ResolvedTarget, pg_timestamp};
use crate::scenario::{
    Compression, CrashMode, ErrorWindow, RecoveryReads, RequestFilter, Scenario, Step,
};
use crate::wal::Lsn;

use super::barman::{Barman, Cloud, Prefetch, prefetch_counts};
use super::postgres::{NotReady, PgInstance, StopMode};
use super::s3layer::{
    ActiveErrors, Behaviour, ErrorScope, FailureBudget, FaultSwitch, HoldRule, Probe,
};
use super::toolchain::Toolchain;
use crate::backend::pg_log::{
    last_replayed_commit, replay_end, replayed_segment_count, restored_segments,
};

/// How the local backend reaches its tools and object storage.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub toolchain: Toolchain,
    pub s3: S3Target,
    /// Root of this run's working directories (`<home>/runs/<run-id>`).
    pub run_dir: PathBuf,
    /// Object key prefix for the whole run inside the bucket.
    pub bucket_prefix: String,
    /// The endpoint is external: teardown deletes the drill's objects itself.
    pub external_s3: bool,
    /// Behaviour faults of the embedded endpoint; `None` with an external endpoint.
    pub faults: Option<FaultSwitch>,
    /// The Azure account and container of `object_store: azure` drills, when the run has one.
    pub azure: Option<AzureTarget>,
    /// The Azure endpoint is external: teardown deletes the drill's blobs itself.
    pub external_azure: bool,
}

pub struct LocalBackend {
    pub opts: LocalOptions,
}

impl LocalBackend {
    pub fn new(opts: LocalOptions) -> Self {
        Self { opts }
    }
}

impl Backend for LocalBackend {
    type Drill = LocalDrill;

    fn name(&self) -> &'static str {
        "local"
    }

    /// Every scenario: the local backend is the reference for every step and fault.
    fn supports(_: &Scenario) -> Result<(), Unsupported> {
        Ok(())
    }

    async fn open(&self, scenario: &Scenario) -> Result<LocalDrill, BackendError> {
        let o = &self.opts;
        let bin = o.toolchain.check_barman()?;
        let dir = o.run_dir.join(&scenario.name);
        if dir.exists() {
            return Err(BackendError::infra(format!(
                "{} already exists: two scenarios named `{}` in one run?",
                dir.display(),
                scenario.name
            )));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| BackendError::io(format!("cannot create {}", dir.display()), e))?;
        o.toolchain.run_as.chown(&dir)?;
        let root = format!("{}/{}", o.bucket_prefix.trim_matches('/'), scenario.name);
        let (store, cloud, destination, external) = if scenario.object_store.is_azure() {
            let azure = o.azure.as_ref().ok_or_else(|| {
                BackendError::infra(format!(
                    "scenario `{}` archives to Azure, but this run has no Azure endpoint",
                    scenario.name
                ))
            })?;
            let env = azure
                .env(scenario.object_store.azure_credentials(), Utc::now())
                .map_err(BackendError::infra)?;
            (
                ObjectStore::azure(azure, &root)?,
                Cloud::Azure {
                    env,
                    target: azure.clone(),
                },
                azure.destination(&root),
                o.external_azure,
            )
        } else {
            let store = ObjectStore::new(&o.s3, &root);
            let destination = store.url();
            (store, Cloud::S3(o.s3.clone()), destination, o.external_s3)
        };
        let base_behaviour = Behaviour {
            reject_checksum_headers: scenario.object_store.reject_checksum_headers,
            latency: scenario.object_store.latency_ms.map(Duration::from_millis),
            errors: None,
            probe: None,
        };
        let windows = scenario
            .steps
            .iter()
            .any(|st| matches!(st, Step::Fault(f) if f.object_store_errors.is_some()));
        // Faults during a base backup or a recovery hold or fail requests in the endpoint too.
        let windows = windows
            || scenario.recovery.object_store_errors.is_some()
            || scenario.recovery.restart.is_some()
            || scenario
                .steps
                .iter()
                .any(|st| matches!(st, Step::BaseBackup(b) if b.crash_source.is_some()));
        let behaviours = !scenario.object_store.s3_behaviour_keys().is_empty();
        let fault_scope = if !behaviours && !windows {
            None
        } else {
            let switch = o.faults.clone().ok_or_else(|| {
                BackendError::infra(format!(
                    "scenario `{}` sets object-store behaviour faults, which need the embedded S3 endpoint (not --s3-endpoint)",
                    scenario.name
                ))
            })?;
            let scope = format!("{}/{root}", o.s3.bucket);
            switch.set(&scope, base_behaviour.clone());
            Some((switch, scope, base_behaviour))
        };
        let barman = Barman {
            bin,
            cloud,
            destination,
            run_as: o.toolchain.run_as.clone(),
            home: dir.clone(),
            extra_env: scenario
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        barman.prepare_home()?;
        Ok(LocalDrill {
            toolchain: o.toolchain.clone(),
            dir,
            store,
            barman,
            source: None,
            source_spec: None,
            recovered: Vec::new(),
            external_s3: external,
            fault_scope,
            recovery_faults: None,
        })
    }
}

/// Owner of one scenario's servers, directory and prefix.
pub struct LocalDrill {
    toolchain: Toolchain,
    dir: PathBuf,
    store: ObjectStore,
    barman: Barman,
    source: Option<PgInstance>,
    source_spec: Option<SourceSpec>,
    /// Recovered instances not yet released, in the order they were created.
    recovered: Vec<PgInstance>,
    external_s3: bool,
    /// Where this drill switched behaviour faults on, and the scenario's standing behaviour;
    /// switched off at teardown.
    fault_scope: Option<(FaultSwitch, String, Behaviour)>,
    /// Faults armed for the next recovery, with the probe they report through.
    recovery_faults: Option<ArmedRecovery>,
}

/// Recovery faults armed by `arm_recovery_faults`, and what they saw so far.
struct ArmedRecovery {
    faults: RecoveryFaults,
    probe: Probe,
    restart: Option<RestartSeen>,
}

impl LocalDrill {
    fn env(&self) -> Vec<(String, String)> {
        self.barman.env()
    }

    /// Write the archive wrapper for `server_name` into `inst` and return its path.
    fn install_archive_command(
        &self,
        inst: &PgInstance,
        server_name: &str,
        compression: Compression,
    ) -> Result<PathBuf, BackendError> {
        inst.write_file(
            "bin/archive-wal.sh",
            &self.barman.archive_script(server_name, compression),
            0o755,
        )
    }
}

impl Drill for LocalDrill {
    fn store(&self) -> &ObjectStore {
        &self.store
    }

    fn destination(&self) -> String {
        self.store.url()
    }

    async fn start_source(&mut self, spec: &SourceSpec) -> Result<Server, BackendError> {
        let bin = self.toolchain.pg_bin(spec.major)?;
        let inst = PgInstance::new(
            "source",
            &self.dir.join("source"),
            &bin,
            &self.toolchain.run_as,
        )?;
        inst.initdb().await?;
        let script = self.install_archive_command(&inst, &spec.server_name, spec.compression)?;
        let mut settings = inst.base_settings();
        settings.extend([
            ("wal_level", "replica".to_string()),
            ("archive_mode", "on".to_string()),
            (
                "archive_command",
                format!("{} %p", super::sh_quote(&script.display().to_string())),
            ),
            (
                "archive_timeout",
                spec.archive_timeout_seconds.unwrap_or(0).to_string(),
            ),
            ("track_commit_timestamp", "on".to_string()),
            ("max_wal_size", "256MB".to_string()),
            ("wal_keep_size", "0".to_string()),
        ]);
        inst.append_conf(&settings)?;
        // CNPG marks a freshly bootstrapped PGDATA so its first archive checks the archive is empty.
        inst.write_file("data/.check-empty-wal-archive", "", 0o600)?;
        self.source = Some(inst);
        self.source_spec = Some(spec.clone());
        let env = self.env();
        let inst = self.source.as_mut().expect("just set");
        inst.start(&env)?;
        let client = match inst.wait_ready(Duration::from_secs(60)).await {
            Ok(c) => c,
            Err(NotReady::Exited(f)) => {
                return Err(BackendError::Exited {
                    what: "source PostgreSQL exited at start".into(),
                    log: f,
                });
            }
            Err(NotReady::Timeout(t)) => {
                return Err(BackendError::timeout(
                    "source PostgreSQL not ready",
                    Duration::from_secs(60),
                    format!(":\n{t}"),
                ));
            }
        };
        Server::from_client(client).await
    }

    async fn base_backup(
        &mut self,
        step_id: &str,
        timeout_seconds: u64,
    ) -> Result<BackupRecord, BackendError> {
        let (Some(src), Some(spec)) = (&self.source, &self.source_spec) else {
            return Err(BackendError::infra("base backup before the source started"));
        };
        let name = format!("pgdrill-{step_id}");
        let out = self
            .barman
            .backup(
                &spec.server_name,
                &src.socket_dir(),
                spec.compression,
                spec.backup_jobs,
                &name,
                Duration::from_secs(timeout_seconds),
            )
            .await?;
        if !out.success {
            return Err(out.failure("barman-cloud-backup failed"));
        }
        let list = self.barman.list_backups(&spec.server_name).await?;
        let b = list
            .into_iter()
            .find(|b| b.backup_name.as_deref() == Some(name.as_str()))
            .ok_or_else(|| {
                BackendError::infra(format!(
                    "barman-cloud-backup-list does not show backup `{name}`"
                ))
            })?;
        let parse_lsn = |v: &Option<String>, what: &str| -> Result<Lsn, BackendError> {
            v.as_deref()
                .ok_or_else(|| {
                    BackendError::infra(format!("backup {} has no {what}", b.backup_id))
                })?
                .parse()
                .map_err(BackendError::infra)
        };
        Ok(BackupRecord {
            step_id: step_id.to_string(),
            backup_id: b.backup_id.clone(),
            begin_lsn: parse_lsn(&b.begin_xlog, "begin_xlog")?,
            end_lsn: parse_lsn(&b.end_xlog, "end_xlog")?,
            begin_wal: b.begin_wal.clone().unwrap_or_default(),
            end_wal: b.end_wal.clone().unwrap_or_default(),
            end_time: b
                .end_time
                .as_deref()
                .and_then(parse_barman_time)
                .ok_or_else(|| {
                    BackendError::infra(format!("backup {} has no readable end_time", b.backup_id))
                })?,
            timeline: b.timeline.unwrap_or(1),
        })
    }

    async fn stop_source(&mut self) -> Result<(), BackendError> {
        if let Some(src) = self.source.as_mut() {
            src.stop(StopMode::Fast, Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    async fn crash_source(&mut self, mode: CrashMode) -> Result<(), BackendError> {
        let src = self
            .source
            .as_mut()
            .ok_or_else(|| BackendError::infra("crash before the source started"))?;
        match mode {
            CrashMode::Immediate => src.stop(StopMode::Immediate, Duration::from_secs(60)).await,
            CrashMode::Sigkill => src.kill_postmaster(Duration::from_secs(30)).await,
        }
    }

    async fn open_error_window(&mut self, w: &ErrorWindow) -> Result<(), BackendError> {
        let (switch, scope, base) = self.fault_scope.as_ref().ok_or_else(|| {
            BackendError::infra("object-store error windows need the embedded S3 endpoint")
        })?;
        switch.set(
            scope,
            Behaviour {
                errors: Some(ActiveErrors {
                    error: w.error,
                    until: Instant::now() + Duration::from_secs(w.seconds),
                    scope: match w.requests {
                        RequestFilter::All => ErrorScope::All,
                        RequestFilter::WalPuts => ErrorScope::WalPuts,
                    },
                    budget: None,
                }),
                ..base.clone()
            },
        );
        Ok(())
    }

    async fn monitor_source(&self) -> Result<tokio_postgres::Client, BackendError> {
        let src = self
            .source
            .as_ref()
            .ok_or_else(|| BackendError::infra("the source is not running"))?;
        Ok(src.connect().await?)
    }

    async fn failover(&mut self, timeout_seconds: u64) -> Result<Server, BackendError> {
        let spec = self
            .source_spec
            .clone()
            .ok_or_else(|| BackendError::infra("failover before the source started"))?;
        let restore_command = self.barman.restore_command(&spec.server_name);
        let env = self.env();
        let inst = self
            .source
            .as_mut()
            .ok_or_else(|| BackendError::infra("failover before the source started"))?;
        inst.stop(StopMode::Fast, Duration::from_secs(60)).await?;
        // Archive recovery from its own archive, as a replica CNPG promotes has replayed it;
        // no target: the end of WAL (the archive, then pg_wal), then a new timeline.
        inst.append_conf(&[
            ("restore_command", restore_command),
            ("recovery_target_timeline", "latest".to_string()),
            ("recovery_target_action", "promote".to_string()),
        ])?;
        inst.write_file("data/recovery.signal", "", 0o600)?;
        inst.start(&env)?;
        let deadline = Duration::from_secs(timeout_seconds);
        let ready = inst.wait_ready(deadline).await;
        let client = source_ready(
            &self.barman,
            ready,
            deadline,
            (
                "the source exited during its failover recovery",
                "the source was not promoted",
                " of its failover",
            ),
        )?;
        Server::from_client(client).await
    }

    async fn base_backup_with_crash(
        &mut self,
        step_id: &str,
        mode: CrashMode,
        timeout_seconds: u64,
    ) -> Result<InterruptedBackupOutcome, BackendError> {
        let (Some(spec), Some((switch, scope, base))) = (&self.source_spec, &self.fault_scope)
        else {
            return Err(BackendError::infra(
                "a crash during a base backup needs a running source and the embedded S3 endpoint",
            ));
        };
        let (spec, switch, scope, base) =
            (spec.clone(), switch.clone(), scope.clone(), base.clone());
        let probe = Probe::new(Some(HoldRule::BackupInfoPut));
        switch.set(
            &scope,
            Behaviour {
                probe: Some(probe.clone()),
                ..base.clone()
            },
        );
        let name = format!("pgdrill-{step_id}");
        let deadline = Duration::from_secs(timeout_seconds);
        let socket = self
            .source
            .as_ref()
            .ok_or_else(|| BackendError::infra("base backup before the source started"))?
            .socket_dir();
        let barman = self.barman.clone();
        let backup = barman.backup(
            &spec.server_name,
            &socket,
            spec.compression,
            spec.backup_jobs,
            &name,
            deadline,
        );
        tokio::pin!(backup);
        // The named condition: barman-cloud-backup's STARTED backup.info is held by the store.
        let until = Instant::now() + deadline;
        let finished_first = loop {
            tokio::select! {
                out = &mut backup => break Some(out),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    if probe.readings().held_now > 0 {
                        break None;
                    }
                    if Instant::now() >= until {
                        probe.release();
                        switch.set(&scope, base.clone());
                        return Err(BackendError::timeout(
                            "barman-cloud-backup did not announce a STARTED backup",
                            deadline,
                            "",
                        ));
                    }
                }
            }
        };
        if let Some(out) = finished_first {
            switch.set(&scope, base);
            let out = out?;
            return Err(BackendError::infra(format!(
                "barman-cloud-backup ended before pgdrill could crash the source in the middle of it (exit {}): \
                 this barman does not upload a STARTED backup.info",
                if out.success { "0" } else { "non-zero" }
            )));
        }
        let crashed = self.crash_source(mode).await;
        probe.release();
        let out = backup.await;
        switch.set(&scope, base);
        crashed?;
        let out = out?;
        let text = out.text();
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("ERROR"))
            .unwrap_or_else(|| text.lines().last().unwrap_or_default());
        // Without barman's timestamp and pid: `Backup failed uploading data (…)`.
        let last = line
            .split_once("ERROR: ")
            .map_or(line, |(_, m)| m)
            .trim()
            .to_string();
        let tool_said = if out.success {
            format!("exit 0: {last}")
        } else {
            format!("failed: {last}")
        };
        let list = self.barman.list_backups(&spec.server_name).await?;
        let left = list
            .into_iter()
            .find(|b| b.backup_name.as_deref() == Some(name.as_str()));
        // Restart from its own disk: crash recovery, as a pod restarting on its volume.
        let env = self.env();
        let inst = self.source.as_mut().expect("checked above");
        inst.start(&env)?;
        let ready = inst.wait_ready(Duration::from_secs(60)).await;
        let client = source_ready(
            &self.barman,
            ready,
            Duration::from_secs(60),
            (
                "the source exited in crash recovery after the interrupted backup",
                "the source did not come back after the interrupted backup",
                "",
            ),
        )?;
        Ok(InterruptedBackupOutcome {
            backup_id: left.as_ref().map(|b| b.backup_id.clone()),
            status: left.and_then(|b| b.status),
            tool_said,
            restarted: Server::from_client(client).await?,
        })
    }

    async fn arm_recovery_faults(&mut self, faults: &RecoveryFaults) -> Result<(), BackendError> {
        if self.fault_scope.is_none() {
            return Err(BackendError::infra(
                "faults during recovery need the embedded S3 endpoint (not --s3-endpoint)",
            ));
        }
        let hold = faults
            .restart
            .as_ref()
            .map(|r| HoldRule::WalReadsAfter(r.segment));
        self.recovery_faults = Some(ArmedRecovery {
            faults: faults.clone(),
            probe: Probe::new(hold),
            restart: None,
        });
        Ok(())
    }

    fn recovery_faults_seen(&mut self) -> RecoveryFaultsSeen {
        let Some(armed) = self.recovery_faults.take() else {
            return RecoveryFaultsSeen::default();
        };
        armed.probe.release();
        if let Some((switch, scope, base)) = &self.fault_scope {
            switch.set(scope, base.clone());
        }
        let r = armed.probe.readings();
        RecoveryFaultsSeen {
            errors_answered: r.errors_answered,
            failed_segments: r.failed_wal.into_iter().collect(),
            served_segments: r.served_wal.into_iter().collect(),
            restart: armed.restart,
        }
    }

    async fn logical_backup(
        &mut self,
        req: &LogicalBackupRequest,
    ) -> Result<LogicalBackupDone, BackendError> {
        let (Some(src), Some(spec)) = (&self.source, &self.source_spec) else {
            return Err(BackendError::infra(
                "logical backup before the source started",
            ));
        };
        super::logical::dump(&self.toolchain, src, spec.major, &self.store, req).await
    }

    async fn logical_restore(
        &mut self,
        req: &LogicalRestoreRequest,
    ) -> Result<LogicalRestoreOutcome, BackendError> {
        let source_major = self.source_spec.as_ref().map(|s| s.major);
        super::logical::restore(
            &self.toolchain,
            &self.dir,
            &self.store,
            &self.barman,
            source_major,
            &mut self.recovered,
            req,
        )
        .await
    }

    async fn recover(&mut self, req: &RecoveryRequest) -> Result<RecoveryAttempt, BackendError> {
        let ready = match self.prepare(req).await? {
            Prepared::Ready(r) => r,
            Prepared::Failed { attempt, inst } => {
                self.recovered.extend(inst.map(|i| *i));
                return Ok(attempt);
            }
        };
        let env = self.env();
        // Owned by the drill before it starts, so teardown stops it whatever happens next.
        self.recovered.push(ready.inst);
        let inst = self.recovered.last_mut().expect("just pushed");
        let Some(armed) = self
            .recovery_faults
            .as_mut()
            .filter(|a| a.faults.restart.is_some())
        else {
            return run_to_ready(&self.barman, &self.store, &env, inst, req, ready.timing).await;
        };
        let restart = armed.faults.restart.clone().expect("filtered");
        let mut k = Killing {
            restart: &restart,
            probe: &armed.probe,
            seen: &mut armed.restart,
        };
        let env2 = env.clone();
        run_to_ready_killed(
            &self.barman,
            &self.store,
            &env2,
            inst,
            req,
            ready.timing,
            &mut k,
        )
        .await
    }

    async fn recover_many(
        &mut self,
        reqs: &[RecoveryRequest],
    ) -> Result<Vec<RecoveryAttempt>, BackendError> {
        // Restores at once, then every server started and replaying at once.
        let prepared = {
            let this = &*self;
            futures::future::join_all(reqs.iter().map(|r| this.prepare(r))).await
        };
        let mut outcomes: Vec<Option<RecoveryAttempt>> = Vec::new();
        let mut waiting: Vec<(usize, Timing)> = Vec::new();
        let mut first_error = None;
        for (i, p) in prepared.into_iter().enumerate() {
            match p {
                Ok(Prepared::Ready(r)) => {
                    self.recovered.push(r.inst);
                    waiting.push((i, r.timing));
                    outcomes.push(None);
                }
                Ok(Prepared::Failed { attempt, inst }) => {
                    self.recovered.extend(inst.map(|i| *i));
                    outcomes.push(Some(attempt));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    outcomes.push(None);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let env = self.env();
        let names: Vec<&str> = waiting
            .iter()
            .map(|(i, _)| reqs[*i].instance.as_str())
            .collect();
        let insts: Vec<&mut PgInstance> = self
            .recovered
            .iter_mut()
            .filter(|x| names.contains(&x.name.as_str()))
            .collect();
        if insts.len() != waiting.len() {
            return Err(BackendError::infra(
                "recovered instances must have distinct names",
            ));
        }
        let (barman, store) = (&self.barman, &self.store);
        let ready = futures::future::join_all(insts.into_iter().zip(&waiting).map(
            |(inst, (i, timing))| run_to_ready(barman, store, &env, inst, &reqs[*i], *timing),
        ))
        .await;
        for ((i, _), r) in waiting.iter().zip(ready) {
            outcomes[*i] = Some(r?);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every request has an outcome"))
            .collect())
    }

    async fn amcheck(
        &mut self,
        req: &crate::backend::AmcheckRequest,
    ) -> Result<crate::backend::amcheck::AmcheckOutcome, BackendError> {
        let inst = self
            .recovered
            .iter()
            .find(|i| i.name == req.instance)
            .ok_or_else(|| {
                BackendError::infra(format!("no recovered instance `{}` to check", req.instance))
            })?;
        super::amcheck::check(&self.toolchain, inst, req).await
    }

    async fn release(&mut self, instance: &str) -> Result<(), BackendError> {
        let Some(pos) = self.recovered.iter().position(|i| i.name == instance) else {
            return Ok(());
        };
        let mut inst = self.recovered.remove(pos);
        inst.stop(StopMode::Immediate, Duration::from_secs(30))
            .await?;
        std::fs::remove_dir_all(&inst.dir)
            .map_err(|e| BackendError::io(format!("cannot remove {}", inst.dir.display()), e))
    }

    async fn teardown(mut self, keep: Keep) -> Vec<String> {
        if let Some((switch, scope, _)) = self.fault_scope.take() {
            switch.set(&scope, Behaviour::default());
        }
        let mut kept = Vec::new();
        for inst in self.recovered.iter_mut().chain(self.source.as_mut()) {
            if keep == Keep::Everything && inst.is_running() {
                kept.push(format!(
                    "{} server (socket {})",
                    inst.name,
                    inst.socket_dir().display()
                ));
                continue;
            }
            if let Err(e) = inst
                .stop(StopMode::Immediate, Duration::from_secs(30))
                .await
            {
                tracing::warn!("teardown: {e}");
            }
        }
        if keep == Keep::Everything {
            kept.push(format!("directory {}", self.dir.display()));
            kept.push(format!("archive {}", self.store.url()));
            // Keep the postmasters alive past our exit: forget them without killing.
            for inst in std::mem::take(&mut self.recovered)
                .into_iter()
                .chain(self.source.take())
            {
                std::mem::forget(inst);
            }
            return kept;
        }
        if self.external_s3
            && let Err(e) = self.store.delete_all().await
        {
            tracing::warn!("teardown of {}: {e}", self.store.url());
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("teardown: cannot remove {}: {e}", self.dir.display());
        }
        kept
    }
}

/// A restarted source's `wait_ready` outcome as an error saying what happened: (`exited`,
/// `late`, what the deadline was of) and the server's redacted log lines.
fn source_ready(
    barman: &Barman,
    ready: Result<tokio_postgres::Client, NotReady>,
    deadline: Duration,
    (exited, late, of): (&str, &str, &str),
) -> Result<tokio_postgres::Client, BackendError> {
    match ready {
        Ok(c) => Ok(c),
        Err(NotReady::Exited(f)) => Err(BackendError::Exited {
            what: exited.into(),
            log: barman.redact(&f),
        }),
        Err(NotReady::Timeout(t)) => Err(BackendError::timeout(
            late,
            deadline,
            format!("{of}:\n{}", barman.redact(&t)),
        )),
    }
}

/// When a recovery started and its restore finished: the RTO's clock.
#[derive(Debug, Clone, Copy)]
struct Timing {
    t0: Instant,
    started_at: DateTime<Utc>,
    restored_at: DateTime<Utc>,
    /// The restored data directory's size, before the server started.
    restored_bytes: Option<u64>,
}

/// A restored and configured instance, not started yet.
struct Ready {
    inst: PgInstance,
    timing: Timing,
}

/// What preparing a recovery gave.
enum Prepared {
    Ready(Ready),
    /// Refused or failed before a server could start; the instance, if one was made.
    Failed {
        attempt: RecoveryAttempt,
        inst: Option<Box<PgInstance>>,
    },
}

impl LocalDrill {
    /// Switch the armed recovery faults on in the endpoint: the error window starts now.
    fn switch_recovery_faults_on(&self) {
        let (Some(armed), Some((switch, scope, base))) = (&self.recovery_faults, &self.fault_scope)
        else {
            return;
        };
        let errors = armed.faults.errors.as_ref().map(|e| ActiveErrors {
            error: e.error,
            until: Instant::now() + Duration::from_secs(e.seconds),
            scope: match e.reads {
                RecoveryReads::WalGets => ErrorScope::WalReads(e.from_segment),
                RecoveryReads::BackupGets => ErrorScope::BackupReads,
                RecoveryReads::All => ErrorScope::All,
            },
            budget: e.failures.map(|n| FailureBudget::new(n.into())),
        });
        switch.set(
            scope,
            Behaviour {
                errors,
                probe: Some(armed.probe.clone()),
                ..base.clone()
            },
        );
    }

    /// The recovery's `restore_command`: `barman-cloud-wal-restore` itself, or with
    /// `wal_max_parallel` above 1 the prefetching script written into the instance.
    fn recovery_restore_command(
        &self,
        inst: &PgInstance,
        req: &RecoveryRequest,
    ) -> Result<String, BackendError> {
        let Some(p) = prefetch(inst, req) else {
            return Ok(self.barman.restore_command(&req.source_server_name));
        };
        let script = inst.write_file(
            RESTORE_SCRIPT,
            &self.barman.restore_script(&req.source_server_name, &p),
            0o755,
        )?;
        Ok(format!(
            "{} %f %p",
            super::sh_quote(&script.display().to_string())
        ))
    }

    /// Everything before the server starts: the empty-archive check, the restore into the
    /// instance `req.instance`, and its configuration. Takes `&self`: several run at once.
    async fn prepare(&self, req: &RecoveryRequest) -> Result<Prepared, BackendError> {
        let t0 = Instant::now();
        let started_at = Utc::now();
        // CNPG's restore job refuses a destination that already holds WAL: same check, first.
        let check = self.barman.check_wal_archive(&req.server_name).await?;
        if !check.success {
            return Ok(Prepared::Failed {
                attempt: RecoveryAttempt::Failed {
                    message: check.text(),
                    rto: None,
                },
                inst: None,
            });
        }
        let bin = self.toolchain.pg_bin(req.major)?;
        let inst = PgInstance::new(
            &req.instance,
            &self.dir.join(&req.instance),
            &bin,
            &self.toolchain.run_as,
        )?;
        let deadline = Duration::from_secs(req.timeout_seconds);
        self.switch_recovery_faults_on();
        let restore = self
            .barman
            .restore(
                &req.source_server_name,
                &req.backup.backup_id,
                &inst.data(),
                deadline,
            )
            .await?;
        let restored_at = Utc::now();
        if !restore.success {
            return Ok(Prepared::Failed {
                attempt: RecoveryAttempt::Failed {
                    message: format!("barman-cloud-restore failed: {}", restore.text()),
                    rto: None,
                },
                inst: Some(Box::new(inst)),
            });
        }
        let restored_bytes = dir_bytes(&inst.data());
        // A restored PGDATA carries the source's archive_command: point it at the new serverName.
        let script = self.install_archive_command(&inst, &req.server_name, req.compression)?;
        let mut settings = inst.base_settings();
        settings.extend([
            ("archive_mode", "on".to_string()),
            (
                "archive_command",
                format!("{} %p", super::sh_quote(&script.display().to_string())),
            ),
            (
                "restore_command",
                self.recovery_restore_command(&inst, req)?,
            ),
            ("recovery_target_action", "promote".to_string()),
            ("recovery_target_timeline", "latest".to_string()),
        ]);
        settings.extend(target_settings(&req.target, req.exclusive));
        if self
            .recovery_faults
            .as_ref()
            .is_some_and(|a| a.faults.restart.is_some())
        {
            // Replay must reach the kill point before the held read of the next segment
            // blocks it: no read-ahead past the record being replayed.
            settings.push(("recovery_prefetch", "off".to_string()));
        }
        inst.append_conf(&settings)?;
        inst.write_file("data/recovery.signal", "", 0o600)?;
        inst.write_file("data/.check-empty-wal-archive", "", 0o600)?;
        Ok(Prepared::Ready(Ready {
            inst,
            timing: Timing {
                t0,
                started_at,
                restored_at,
                restored_bytes,
            },
        }))
    }
}

/// The parallel `restore_command`, inside the instance directory.
const RESTORE_SCRIPT: &str = "bin/restore-wal.sh";

/// Where a recovery with `wal_max_parallel` above 1 spools and logs, under its own instance
/// directory (teardown removes both); `None` for one segment at a time.
fn prefetch(inst: &PgInstance, req: &RecoveryRequest) -> Option<Prefetch> {
    let n = req.wal_max_parallel.filter(|n| *n > 1)?;
    Some(Prefetch {
        max_parallel: n,
        spool: inst.dir().join("wal-spool"),
        log: inst.dir().join("restore-wal.log"),
    })
}

/// Start a prepared instance and wait until it is promoted and answers, within what is left of
/// the request's deadline; measure the RTO.
async fn run_to_ready(
    barman: &Barman,
    store: &ObjectStore,
    env: &[(String, String)],
    inst: &mut PgInstance,
    req: &RecoveryRequest,
    timing: Timing,
) -> Result<RecoveryAttempt, BackendError> {
    let Timing {
        t0,
        started_at,
        restored_at,
        restored_bytes,
    } = timing;
    inst.start(env)?;
    let deadline = Duration::from_secs(req.timeout_seconds);
    let remaining = deadline.saturating_sub(t0.elapsed());
    let ready = inst.wait_ready(remaining).await;
    let log = inst.log_text();
    match ready {
        Ok(client) => {
            let server = Server::from_client(client).await?;
            let answered_at = Utc::now();
            let rto_seconds = t0.elapsed().as_secs_f64();
            let mut rto = rto_from_log(&log, started_at, restored_at, answered_at, rto_seconds);
            let downloaded = downloaded_bytes(store, req, &log).await.ok();
            rto.bytes_downloaded = downloaded.map_or(0, |(base, wal)| base + wal);
            rto.wal_fetched_bytes = downloaded.map(|(_, wal)| wal);
            set_restored_bytes(&mut rto, restored_bytes);
            rto.wal_prefetch = prefetch(inst, req).map(|p| {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                prefetch_counts(p.max_parallel, &log)
            });
            Ok(RecoveryAttempt::Recovered { server, rto })
        }
        // The log holds restore_command output: redact it like any tool output.
        Err(NotReady::Exited(fatal)) => Ok(RecoveryAttempt::Failed {
            message: if fatal.is_empty() {
                "the server exited during recovery".into()
            } else {
                barman.redact(&fatal)
            },
            rto: None,
        }),
        Err(NotReady::Timeout(tail)) => Ok(RecoveryAttempt::Failed {
            message: format!(
                "not promoted within {}s; last log lines:\n{}",
                req.timeout_seconds,
                barman.redact(&tail)
            ),
            rto: None,
        }),
    }
}

/// The kill of a recovering server: when, how, and where to say what happened.
struct Killing<'a> {
    restart: &'a RecoveryRestart,
    probe: &'a Probe,
    seen: &'a mut Option<RestartSeen>,
}

/// `run_to_ready` with a kill in the middle of replay: start, poll the named condition
/// `pg_last_wal_replay_lsn() >= after_lsn` on the hot standby (reads of later WAL are held, so
/// replay cannot finish first), kill the postmaster, release the hold, start again on the same
/// data directory and wait as usual. The RTO's phases show the kill and the restart.
async fn run_to_ready_killed(
    barman: &Barman,
    store: &ObjectStore,
    env: &[(String, String)],
    inst: &mut PgInstance,
    req: &RecoveryRequest,
    timing: Timing,
    k: &mut Killing<'_>,
) -> Result<RecoveryAttempt, BackendError> {
    inst.start(env)?;
    let deadline = Duration::from_secs(req.timeout_seconds);
    let target = k.restart.after_lsn;
    // One connection for the whole wait, opened again only if the server drops it.
    let mut conn: Option<tokio_postgres::Client> = None;
    let replayed = loop {
        if !inst.is_running() {
            // Exited before the point: the usual path reports why.
            k.probe.release();
            return Ok(RecoveryAttempt::Failed {
                message: barman.redact(&inst.fatal_lines()),
                rto: None,
            });
        }
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            conn = inst.connect().await.ok();
        }
        if let Some(c) = &conn
            && let Ok(row) = c
                .query_one("SELECT pg_last_wal_replay_lsn()::text", &[])
                .await
            && let Some(l) = row.get::<_, Option<String>>(0).and_then(|l| Lsn::parse(&l))
            && l >= target
        {
            break l;
        }
        if timing.t0.elapsed() >= deadline {
            k.probe.release();
            return Err(BackendError::timeout(
                format!(
                    "replay did not pass {target} (pg_last_wal_replay_lsn) to kill the recovering server"
                ),
                deadline,
                "",
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(conn);
    let killed_after = timing.t0.elapsed().as_secs_f64();
    let killed_at = Utc::now();
    // Release first: a restore_command stuck on a held read would outlive the postmaster.
    k.probe.release();
    match k.restart.mode {
        CrashMode::Sigkill => inst.kill_postmaster(Duration::from_secs(30)).await?,
        CrashMode::Immediate => {
            inst.stop(StopMode::Immediate, Duration::from_secs(30))
                .await?
        }
    }
    // Its children run in their own sessions: wait until they have let go of its memory.
    inst.wait_shared_memory_released(Duration::from_secs(30))
        .await?;
    *k.seen = Some(RestartSeen {
        replay_lsn_at_kill: replayed,
        killed_after_seconds: killed_after,
        mode: k.restart.mode,
    });
    let mut attempt = run_to_ready(barman, store, env, inst, req, timing).await?;
    if let RecoveryAttempt::Recovered { rto, .. } = &mut attempt {
        restart_phases(rto, timing.restored_at, killed_at);
    }
    Ok(attempt)
}

/// Split the replay of a recovery killed at `killed_at` into the replay before the kill and
/// the restart with its replay to promotion.
fn restart_phases(rto: &mut Rto, restored_at: DateTime<Utc>, killed_at: DateTime<Utc>) {
    let ready = rto
        .phases
        .iter()
        .find(|p| p.name == PhaseName::FirstQuery)
        .map(|p| p.started_at)
        .unwrap_or(killed_at)
        .max(killed_at);
    let phase = Phase::new;
    rto.phases.retain(|p| {
        !matches!(
            p.name,
            PhaseName::ReplayUntilConsistent | PhaseName::ReplayAndPromotion
        )
    });
    rto.phases
        .insert(1, phase(PhaseName::ReplayUntilKill, restored_at, killed_at));
    rto.phases
        .insert(2, phase(PhaseName::RestartAndReplay, killed_at, ready));
}

/// Bytes fetched, as stored in the archive: the base backup's objects, and every WAL object
/// named as restored in the log.
async fn downloaded_bytes(
    store: &ObjectStore,
    req: &RecoveryRequest,
    log: &str,
) -> Result<(u64, u64), BackendError> {
    let base = store
        .list(&format!(
            "{}/base/{}/",
            req.source_server_name, req.backup.backup_id
        ))
        .await?;
    let wals = store.wal_segments(&req.source_server_name).await?;
    let restored = restored_segments(log);
    Ok((
        base.iter().map(|o| o.size).sum::<u64>(),
        restored
            .iter()
            .filter_map(|s| wals.get(s))
            .map(|o| o.size)
            .sum::<u64>(),
    ))
}

/// The base backup's restored size, on the recovery and its restore phase.
pub(super) fn set_restored_bytes(rto: &mut Rto, bytes: Option<u64>) {
    rto.base_backup_bytes = bytes;
    for p in &mut rto.phases {
        if p.name == PhaseName::RestoreBaseBackup {
            p.bytes = bytes;
        }
    }
}

/// The bytes of the regular files under `dir` (symbolic links not followed); `None` when it
/// cannot be read.
pub(super) fn dir_bytes(dir: &std::path::Path) -> Option<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()? {
            let entry = entry.ok()?;
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Some(total)
}

/// `recovery_target_*` settings for a resolved target.
pub fn target_settings(target: &ResolvedTarget, exclusive: bool) -> Vec<(&'static str, String)> {
    let inclusive = (
        "recovery_target_inclusive",
        if exclusive { "off" } else { "on" }.to_string(),
    );
    match target {
        ResolvedTarget::Latest => vec![],
        ResolvedTarget::Immediate => vec![("recovery_target", "immediate".into())],
        ResolvedTarget::Time(t) => vec![("recovery_target_time", pg_timestamp(t)), inclusive],
        ResolvedTarget::Lsn(l) => vec![("recovery_target_lsn", l.to_string()), inclusive],
        ResolvedTarget::Xid(x) => vec![("recovery_target_xid", x.to_string()), inclusive],
        ResolvedTarget::Name(n) => vec![("recovery_target_name", n.clone())],
    }
}

/// Timestamp at the start of a log line with prefix `%m `: `2026-11-22 10:00:00.123 UTC`.
fn log_time(line: &str) -> Option<DateTime<Utc>> {
    let s = line.get(..23)?;
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.3f")
        .ok()
        .map(|n| n.and_utc())
}

fn first_time(log: &str, needle: &str) -> Option<DateTime<Utc>> {
    log.lines()
        .filter(|l| l.contains(needle))
        .find_map(log_time)
}

/// RTO phases from host timestamps (restore) and the server log (replay, promotion).
pub fn rto_from_log(
    log: &str,
    started_at: DateTime<Utc>,
    restored_at: DateTime<Utc>,
    answered_at: DateTime<Utc>,
    seconds: f64,
) -> Rto {
    let phase = Phase::new;
    let mut phases = vec![phase(PhaseName::RestoreBaseBackup, started_at, restored_at)];
    let consistent = first_time(log, "consistent recovery state reached").unwrap_or(restored_at);
    let ready =
        first_time(log, "database system is ready to accept connections").unwrap_or(answered_at);
    phases.push(phase(
        PhaseName::ReplayUntilConsistent,
        restored_at,
        consistent.max(restored_at),
    ));
    phases.push(phase(
        PhaseName::ReplayAndPromotion,
        consistent.max(restored_at),
        ready.max(consistent),
    ));
    phases.push(phase(
        PhaseName::FirstQuery,
        ready.max(consistent),
        answered_at.max(ready),
    ));
    let mut rto = Rto {
        seconds,
        phases,
        wal_segments_replayed: replayed_segment_count(log),
        bytes_downloaded: 0,
        budget_seconds: None,
        replay_end: replay_end(log),
        last_replayed_commit: last_replayed_commit(log),
        ..Default::default()
    };
    rto.set_replay_bytes(&crate::backend::pg_log::replay_lsns(log));
    rto
}

/// barman's `end_time`, e.g. `Sun Nov 22 10:00:05 2026` or an ISO timestamp with offset.
fn parse_barman_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z").map(|d| d.with_timezone(&Utc))
        })
        .or_else(|_| {
            DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z").map(|d| d.with_timezone(&Utc))
        })
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%a %b %e %H:%M:%S %Y")
                .ok()
                .map(|n| n.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-11-22 10:00:01.000 UTC [9] LOG:  starting PostgreSQL 15.18\n\
2026-11-22 10:00:01.200 UTC [9] LOG:  restored log file \"000000010000000000000003\" from archive\n\
2026-11-22 10:00:01.300 UTC [9] LOG:  consistent recovery state reached at 0/3000100\n\
2026-11-22 10:00:01.400 UTC [9] LOG:  restored log file \"000000010000000000000004\" from archive\n\
2026-11-22 10:00:01.500 UTC [9] LOG:  restored log file \"00000002.history\" from archive\n\
2026-11-22 10:00:01.900 UTC [8] LOG:  database system is ready to accept connections\n";

    #[test]
    fn phases_and_segments_come_from_the_log() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let r = rto_from_log(
            LOG,
            t("2026-11-22T10:00:00Z"),
            t("2026-11-22T10:00:01Z"),
            t("2026-11-22T10:00:02Z"),
            2.0,
        );
        assert_eq!(r.wal_segments_replayed, 2);
        let names: Vec<_> = r.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "restore_base_backup",
                "replay_until_consistent",
                "replay_and_promotion",
                "first_query"
            ]
        );
        assert!((r.phases[1].seconds - 0.3).abs() < 1e-9);
        assert!((r.phases[2].seconds - 0.6).abs() < 1e-9);
        assert!((r.phases[3].seconds - 0.1).abs() < 1e-9);
        // No `redo starts` / `redo done` lines: the replay's bytes are unknown, not zero.
        assert_eq!(r.wal_replayed_bytes, None);
        assert_eq!(r.phases[1].bytes, None);
    }

    #[test]
    fn replay_phases_carry_the_lsn_distance_they_replayed() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let log = format!(
            "2026-11-22 10:00:01.100 UTC [9] LOG:  redo starts at 0/2000028\n{LOG}\
2026-11-22 10:00:01.800 UTC [9] LOG:  redo done at 0/4000090 system usage: CPU: user: 0.00 s\n"
        );
        let r = rto_from_log(
            &log,
            t("2026-11-22T10:00:00Z"),
            t("2026-11-22T10:00:01Z"),
            t("2026-11-22T10:00:02Z"),
            2.0,
        );
        let bytes: Vec<_> = r.phases.iter().map(|p| p.bytes).collect();
        assert_eq!(
            bytes,
            [
                None,
                Some(0x300_0100 - 0x200_0028),
                Some(0x400_0090 - 0x300_0100),
                None
            ]
        );
        assert_eq!(r.wal_replayed_bytes, Some(0x400_0090 - 0x200_0028));
        // Restore 1 s, replay 0.3 s + 0.6 s, first query 0.1 s.
        assert_eq!(
            r.slowest_phase().map(|p| p.name),
            Some(PhaseName::RestoreBaseBackup)
        );
    }

    #[test]
    fn a_directory_counts_the_bytes_of_its_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("base")).unwrap();
        std::fs::write(d.path().join("PG_VERSION"), "15\n").unwrap();
        std::fs::write(d.path().join("base/1"), vec![0u8; 8192]).unwrap();
        assert_eq!(dir_bytes(d.path()), Some(8195));
        assert_eq!(dir_bytes(&d.path().join("absent")), None);
    }

    #[test]
    fn targets_become_postgres_settings() {
        let s = target_settings(&ResolvedTarget::Lsn(Lsn(0x0900_0200)), true);
        assert_eq!(
            s,
            vec![
                ("recovery_target_lsn", "0/9000200".to_string()),
                ("recovery_target_inclusive", "off".to_string())
            ]
        );
        assert!(target_settings(&ResolvedTarget::Latest, false).is_empty());
        assert_eq!(
            target_settings(&ResolvedTarget::Name("rp".into()), false).len(),
            1
        );
    }

    #[test]
    fn barman_times_parse() {
        assert!(parse_barman_time("2026-11-22T10:00:05.123456+00:00").is_some());
        assert!(parse_barman_time("2026-11-22 10:00:05.123456+00:00").is_some());
        assert!(parse_barman_time("Sun Nov 22 10:00:05 2026").is_some());
    }
}
