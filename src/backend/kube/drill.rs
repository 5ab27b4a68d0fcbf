//! The Kubernetes backend's drills: one namespace per scenario, CloudNativePG clusters and
//! Backups applied with server-side apply, SQL through a port-forward, waits on watches and pure
//! conditions. The API-server work it shares with game days lives in `session.rs`.
//!
//! Every object it applies comes from `render.rs`; every readiness or failure decision comes
//! from `conditions.rs`. It never deletes anything outside the namespace and bucket prefix it
//! created for the drill.

use std::time::{Duration, Instant};

use chrono::Utc;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};

use crate::backend::Keep;
use crate::backend::azure::AzureTarget;
use crate::backend::objstore::{ObjectStore, S3Target, create_azure_container};
use crate::backend::{
    Backend, BackendError, Drill, RecoveryAttempt, RecoveryRequest, Server, SourceSpec, Unsupported,
};
use crate::ledger::BackupRecord;
use crate::scenario::{CrashMode, ErrorWindow, Scenario};

use super::conditions::{self, BackupState, is_backup_finished, is_hibernated};
use super::render::{
    AzureSecretValues, DrillContext, RECOVERED_CLUSTER, RUN_ID_LABEL, RecoveryManifest,
    RenderSettings, SCENARIO_LABEL, SOURCE_CLUSTER, backup_name,
};
use super::resources::{Backup, Cluster, ObjectStore as ObjectStoreResource};
use super::session::{NAMESPACE_GONE_TIMEOUT, Session, kerr, sweep};

/// How long a missing Azure container may take to be created (the service answering).
const AZURE_CONTAINER_DEADLINE: Duration = Duration::from_secs(30);

/// How the kube backend reaches the cluster and object storage.
#[derive(Clone)]
pub struct KubeOptions {
    pub client: Client,
    pub settings: RenderSettings,
    /// Object storage as this machine reaches it (fault injection, cleanup).
    pub s3: S3Target,
    /// How long a source cluster may take to become ready (image pulls included).
    pub ready_timeout: Duration,
    /// Interval between looks at a recovering cluster and its pods' logs.
    pub poll_interval: Duration,
    /// Delete namespaces of earlier runs of the same scenario (same labels) before starting.
    pub sweep: bool,
    /// Azure Blob Storage as this machine reaches it (fault injection, audits, the container
    /// created when missing), for `object_store: azure` drills; the pods reach it at
    /// `settings.azure`. `None`: Azure drills fail to open, naming the options.
    pub azure: Option<AzureTarget>,
}

pub struct KubeBackend {
    opts: KubeOptions,
}

/// Why the kube backend cannot run `scenario` as written, if it cannot: checked by the CLI
/// before any API call (exit 2) and again by `open` (see `Backend::supports`).
fn unsupported(scenario: &Scenario) -> Option<Unsupported> {
    use crate::scenario::{Fault, Step};
    // Behaviour faults live in the local backend's embedded endpoint, the scenario `env` is
    // not passed to CNPG pods yet, and a CNPG instance manager restarts a crashed postmaster on
    // the same volume.
    let what = if scenario.recovery.target == crate::scenario::Target::Random {
        Some("`target: random` (several recoveries, each into its own cluster)".to_string())
    } else if !scenario.object_store.is_default() && !scenario.object_store.is_azure() {
        Some("`object_store`".to_string())
    } else if !scenario.env.is_empty() {
        Some("`env`".to_string())
    } else if scenario.recovery.object_store_errors.is_some() {
        // The error window lives in the local backend's embedded endpoint.
        Some("`recovery.object_store_errors` (an error window over recovery's reads)".to_string())
    } else if scenario.recovery.restart.is_some() {
        // CNPG's instance manager owns the recovering postmaster inside its Job's pod.
        Some("`recovery.restart` (a kill of the recovering server mid-replay)".to_string())
    } else if scenario.recovery.command.is_some() {
        // The script runs beside pgdrill against a target instance it starts itself.
        Some("`recovery.command` (your own restore script)".to_string())
    } else if scenario.recovery.is_logical() {
        // pg_dump and the restore run as local processes against local servers.
        Some("`recovery.method: logical` (restoring a logical backup)".to_string())
    } else {
        scenario.steps.iter().find_map(|st| match st {
            // A failover restarts the source through archive recovery, which only the local
            // backend can do to its own server (CNPG would fail over by itself).
            Step::Failover(f) => Some(format!("`failover` (step `{}`)", f.id)),
            // pg_dump runs as a local process against the local source.
            Step::LogicalBackup(l) => Some(format!("`logical_backup` (step `{}`)", l.id)),
            // The crash is timed by holding barman's STARTED backup.info in the embedded
            // endpoint, and CNPG would restart the pod by itself.
            Step::BaseBackup(b) if b.crash_source.is_some() => Some(format!(
                "`crash_source` (base backup `{}`, a crash in the middle of a backup)",
                b.id
            )),
            Step::Fault(f) => match f.fault() {
                Some(Fault::Crash(_)) => Some(format!("`crash` (step `{}`)", f.id)),
                Some(Fault::ObjectStoreErrors(_)) => {
                    Some(format!("`object_store_errors` (step `{}`)", f.id))
                }
                _ => None,
            },
            _ => None,
        })
    };
    what.map(|feature| Unsupported {
        backend: "kube",
        feature,
    })
}

impl KubeBackend {
    pub fn new(opts: KubeOptions) -> Self {
        Self { opts }
    }
}

impl Backend for KubeBackend {
    type Drill = KubeDrill;

    fn name(&self) -> &'static str {
        "kube"
    }

    fn supports(scenario: &Scenario) -> Result<(), Unsupported> {
        unsupported(scenario).map_or(Ok(()), Err)
    }

    async fn open(&self, scenario: &Scenario) -> Result<KubeDrill, BackendError> {
        if let Err(why) = Self::supports(scenario) {
            return Err(BackendError::infra(format!(
                "scenario `{}`: {why}",
                scenario.name
            )));
        }
        let o = &self.opts;
        let ctx = DrillContext::for_scenario(&o.settings, scenario);
        if ctx.azure.is_some() && o.azure.is_none() {
            return Err(BackendError::infra(format!(
                "scenario `{}` archives to Azure, but this run has no Azure endpoint: \
                 --azure-endpoint with AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY",
                scenario.name
            )));
        }
        if o.sweep {
            let labels = super::render::labels(&o.settings.run_id, &scenario.name);
            sweep(
                &o.client,
                &labels[RUN_ID_LABEL],
                SCENARIO_LABEL,
                &labels[SCENARIO_LABEL],
            )
            .await?;
        }
        let mut session = Session::new(o.client.clone(), &ctx.namespace);
        session.create_namespace(&ctx.namespace()).await?;
        let root = format!(
            "{}/{}",
            o.settings.bucket_prefix.trim_matches('/'),
            scenario.name
        );
        let store = match (ctx.azure, &o.azure) {
            (None, _) => ObjectStore::new(&o.s3, &root),
            (Some(_), Some(target)) => ObjectStore::azure(target, &root)?,
            (Some(_), None) => unreachable!("checked before the namespace was created"),
        };
        let drill = KubeDrill {
            session,
            ctx,
            store,
            ready_timeout: o.ready_timeout,
            poll: o.poll_interval,
            torn_down: false,
        };
        if let Err(e) = drill.credentials(o).await {
            drill.teardown(Keep::Nothing).await;
            return Err(e);
        }
        Ok(drill)
    }
}

/// One scenario's namespace and everything in it.
pub struct KubeDrill {
    /// The drill's namespace; its port-forwards end when it is dropped.
    session: Session,
    ctx: DrillContext,
    store: ObjectStore,
    ready_timeout: Duration,
    poll: Duration,
    /// Set by `teardown`; `Drop` only warns when it never ran.
    torn_down: bool,
}

impl Drop for KubeDrill {
    fn drop(&mut self) {
        if !self.torn_down {
            tracing::warn!(
                "namespace {ns} was not torn down; remove it with `kubectl delete namespace {ns}`",
                ns = self.ctx.namespace
            );
        }
    }
}

impl KubeDrill {
    /// The credentials Secret the clusters' object store refers to: S3 keys, or the Azure
    /// flavour's values for the account as the pods reach it (the container created first
    /// when missing; nothing in it is touched).
    async fn credentials(&self, o: &KubeOptions) -> Result<(), BackendError> {
        let (Some(flavour), Some(target)) = (self.ctx.azure, &o.azure) else {
            let secret = self.ctx.s3_secret(&o.s3.access_key, &o.s3.secret_key);
            return self.session.apply(&secret).await.map(drop);
        };
        create_azure_container(target, AZURE_CONTAINER_DEADLINE).await?;
        let pods = match &o.settings.azure {
            Some(a) => AzureTarget {
                endpoint: a.endpoint.clone(),
                container: a.container.clone(),
                ..target.clone()
            },
            None => target.clone(),
        };
        let values = AzureSecretValues::of(&pods, Utc::now()).map_err(BackendError::infra)?;
        self.session
            .apply(&self.ctx.azure_secret(flavour, &values))
            .await
            .map(drop)
    }

    /// Why a backup may be stuck: the source's ContinuousArchiving condition when it is False.
    async fn archiving_note(&self) -> String {
        let source = self.session.api::<Cluster>().get_opt(SOURCE_CLUSTER).await;
        match source {
            Ok(Some(c)) if conditions::continuous_archiving(&c) == Some(false) => {
                "; the source cluster's ContinuousArchiving condition is False (WAL archiving fails)"
                    .to_string()
            }
            _ => String::new(),
        }
    }
}

impl Drill for KubeDrill {
    fn store(&self) -> &ObjectStore {
        &self.store
    }

    fn destination(&self) -> String {
        self.store.url()
    }

    async fn start_source(&mut self, spec: &SourceSpec) -> Result<Server, BackendError> {
        if self.ctx.settings.flavour == super::render::Flavour::Plugin {
            self.session
                .apply::<ObjectStoreResource>(&self.ctx.object_store(spec))
                .await?;
        }
        self.session.apply(&self.ctx.source_cluster(spec)).await?;
        let cluster = self
            .session
            .wait_cluster(SOURCE_CLUSTER, self.ready_timeout)
            .await?;
        self.session.connect(&cluster).await
    }

    async fn base_backup(
        &mut self,
        step_id: &str,
        timeout_seconds: u64,
    ) -> Result<BackupRecord, BackendError> {
        let name = backup_name(step_id);
        self.session.apply(&self.ctx.backup(step_id)).await?;
        let api: Api<Backup> = self.session.api();
        let waited = tokio::time::timeout(
            Duration::from_secs(timeout_seconds),
            await_condition(api, &name, is_backup_finished()),
        )
        .await;
        let backup = match waited {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => return Err(BackendError::infra(format!("Backup {name} was deleted"))),
            Ok(Err(e)) => return Err(BackendError::kube(format!("watching Backup {name}"), e)),
            Err(_) => {
                return Err(BackendError::timeout(
                    format!("Backup {name} not finished"),
                    Duration::from_secs(timeout_seconds),
                    self.archiving_note().await,
                ));
            }
        };
        match conditions::backup_state(&backup) {
            BackupState::Completed => conditions::backup_record(step_id, &backup)
                .map_err(|e| BackendError::infra(format!("Backup {name}: {e}"))),
            BackupState::Failed { error } => Err(BackendError::infra(format!(
                "Backup {name} failed: {error}{}",
                self.archiving_note().await
            ))),
            BackupState::Pending { phase } => Err(BackendError::infra(format!(
                "Backup {name} still `{phase}`"
            ))),
        }
    }

    async fn crash_source(&mut self, _mode: CrashMode) -> Result<(), BackendError> {
        // `pgdrill run --backend kube` refuses crash scenarios before any API call; a CNPG
        // instance manager would restart a killed postmaster on the same volume anyway.
        Err(BackendError::infra(
            "the kube backend cannot crash a primary and lose its volume yet",
        ))
    }

    async fn open_error_window(&mut self, _w: &ErrorWindow) -> Result<(), BackendError> {
        Err(BackendError::infra(
            "object-store error windows need the local backend's embedded S3 endpoint",
        ))
    }

    async fn monitor_source(&self) -> Result<tokio_postgres::Client, BackendError> {
        Err(BackendError::infra(
            "the kube backend has no monitor connection to the source yet",
        ))
    }

    async fn stop_source(&mut self) -> Result<(), BackendError> {
        // Hibernation: CNPG shuts the instance down cleanly and keeps its volume.
        let patch = serde_json::json!({
            "metadata": {"annotations": {"cnpg.io/hibernation": "on"}}
        });
        let api: Api<Cluster> = self.session.api();
        api.patch(
            SOURCE_CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| kerr("hibernating the source cluster", e))?;
        // A Cluster deleted under the wait (its namespace swept or deleted) ends it too.
        let hibernated = |c: Option<&Cluster>| c.is_none_or(is_hibernated);
        match tokio::time::timeout(
            self.ready_timeout,
            await_condition(api, SOURCE_CLUSTER, hibernated),
        )
        .await
        {
            Ok(Ok(Some(_))) => Ok(()),
            Ok(Ok(None)) => Err(BackendError::infra(
                "the source cluster was deleted while hibernating",
            )),
            Ok(Err(e)) => Err(BackendError::kube("watching hibernation", e)),
            Err(_) => Err(BackendError::timeout(
                "source cluster not hibernated",
                self.ready_timeout,
                "",
            )),
        }
    }

    async fn recover(&mut self, req: &RecoveryRequest) -> Result<RecoveryAttempt, BackendError> {
        let t0 = Instant::now();
        let started_at = Utc::now();
        let manifest = RecoveryManifest::from_request(req);
        if let Some(store) = self.ctx.origin_object_store(&manifest) {
            self.session.apply::<ObjectStoreResource>(&store).await?;
        }
        self.session
            .apply(&self.ctx.recovery_cluster(&manifest))
            .await?;
        self.session
            .await_recovery(
                RECOVERED_CLUSTER,
                Duration::from_secs(req.timeout_seconds),
                self.poll,
                t0,
                started_at,
            )
            .await
    }

    async fn amcheck(
        &mut self,
        req: &crate::backend::AmcheckRequest,
    ) -> Result<crate::backend::amcheck::AmcheckOutcome, BackendError> {
        self.session.amcheck(RECOVERED_CLUSTER, req).await
    }

    async fn recover_many(
        &mut self,
        _reqs: &[RecoveryRequest],
    ) -> Result<Vec<RecoveryAttempt>, BackendError> {
        Err(BackendError::infra(
            "the kube backend recovers one cluster per drill: `target: random` is not supported",
        ))
    }

    async fn release(&mut self, _instance: &str) -> Result<(), BackendError> {
        Err(BackendError::infra(
            "the kube backend recovers one cluster per drill: `target: random` is not supported",
        ))
    }

    async fn teardown(mut self, keep: Keep) -> Vec<String> {
        self.torn_down = true;
        self.session.abort_tasks();
        let ns = self.ctx.namespace.clone();
        if keep == Keep::Everything {
            return vec![
                format!("namespace {ns} (kubectl -n {ns} get clusters,backups,pods)"),
                format!("archive {}", self.store.url()),
            ];
        }
        // The prefix is emptied once the namespace is gone: until its pods stop, a recovered
        // cluster writes WAL into it.
        match self.session.delete_namespace(NAMESPACE_GONE_TIMEOUT).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "teardown: namespace {ns} still terminating after {}s; its pods may \
                 still write into {}",
                NAMESPACE_GONE_TIMEOUT.as_secs(),
                self.store.url()
            ),
            Err(e) => tracing::warn!("teardown: {e}"),
        }
        if let Err(e) = self.store.delete_all().await {
            tracing::warn!("teardown of {}: {e}", self.store.url());
        }
        Vec::new()
    }
}
