//! The Kubernetes backend: one namespace per scenario, CloudNativePG clusters and Backups applied
//! with server-side apply, SQL through a port-forward, waits on watches and pure conditions.
//!
//! Every object it applies comes from `render.rs`; every readiness or failure decision comes
//! from `conditions.rs`. It never deletes anything outside the namespace and bucket prefix it
//! created for the drill.

use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::objstore::{ObjectStore, S3Target};
use crate::backend::{BackendError, Drill, RecoveryAttempt, RecoveryRequest, Server, SourceSpec};
use crate::ledger::BackupRecord;
use crate::runner::{Phase, Rto};
use crate::scenario::Scenario;

use super::conditions::{self, BackupState, ClusterState, is_backup_finished, is_hibernated};
use super::render::{
    DrillContext, MANAGED_BY, RECOVERED_CLUSTER, RUN_ID_LABEL, RecoveryManifest, RenderSettings,
    SCENARIO_LABEL, SOURCE_CLUSTER, backup_name,
};
use super::resources::{Backup, Cluster, ObjectStore as ObjectStoreResource};

/// Field manager name for server-side apply.
const MANAGER: &str = "pgdrill";
const PG_PORT: u16 = 5432;

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
}

pub struct KubeBackend {
    opts: KubeOptions,
}

impl KubeBackend {
    pub fn new(opts: KubeOptions) -> Self {
        Self { opts }
    }
}

fn kerr(what: &str, e: kube::Error) -> BackendError {
    BackendError::infra(format!("{what}: {e}"))
}

impl crate::backend::Backend for KubeBackend {
    type Drill = KubeDrill;

    fn name(&self) -> &'static str {
        "kube"
    }

    async fn open(&self, scenario: &Scenario) -> Result<KubeDrill, BackendError> {
        let o = &self.opts;
        let ctx = DrillContext::new(&o.settings, &scenario.name);
        if o.sweep {
            sweep(&o.client, &o.settings.run_id, &scenario.name).await?;
        }
        let namespaces: Api<Namespace> = Api::all(o.client.clone());
        namespaces
            .create(&PostParams::default(), &ctx.namespace())
            .await
            .map_err(|e| kerr(&format!("creating namespace {}", ctx.namespace), e))?;
        let root = format!(
            "{}/{}",
            o.settings.bucket_prefix.trim_matches('/'),
            scenario.name
        );
        let drill = KubeDrill {
            client: o.client.clone(),
            ctx,
            store: ObjectStore::new(&o.s3, &root),
            ready_timeout: o.ready_timeout,
            poll: o.poll_interval,
            tasks: Vec::new(),
            torn_down: false,
        };
        let secret = drill.ctx.s3_secret(&o.s3.access_key, &o.s3.secret_key);
        if let Err(e) = drill.apply(&secret).await {
            drill.teardown(false).await;
            return Err(e);
        }
        Ok(drill)
    }
}

/// Delete namespaces a crashed earlier run of this scenario left behind (same labels, another
/// run id). Nothing without pgdrill's labels is ever touched.
async fn sweep(client: &Client, run_id: &str, scenario: &str) -> Result<(), BackendError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let labels = super::render::labels(run_id, scenario);
    let selector = format!(
        "{MANAGED_BY}=pgdrill,{SCENARIO_LABEL}={}",
        labels[SCENARIO_LABEL]
    );
    let found = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| kerr("listing namespaces of earlier runs", e))?;
    for ns in found {
        let theirs = ns.labels().get(RUN_ID_LABEL).cloned().unwrap_or_default();
        if theirs == labels[RUN_ID_LABEL] {
            continue;
        }
        let name = ns.metadata.name.clone().unwrap_or_default();
        eprintln!("pgdrill: sweeping namespace {name} left by run {theirs}");
        api.delete(&name, &DeleteParams::background())
            .await
            .map_err(|e| kerr(&format!("deleting namespace {name}"), e))?;
    }
    Ok(())
}

/// One scenario's namespace and everything in it.
pub struct KubeDrill {
    client: Client,
    ctx: DrillContext,
    store: ObjectStore,
    ready_timeout: Duration,
    poll: Duration,
    /// Port-forward and connection tasks, aborted at teardown.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Set by `teardown`; `Drop` only warns when it never ran.
    torn_down: bool,
}

impl Drop for KubeDrill {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if !self.torn_down {
            eprintln!(
                "pgdrill: namespace {ns} was not torn down; remove it with `kubectl delete namespace {ns}`",
                ns = self.ctx.namespace
            );
        }
    }
}

impl KubeDrill {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ctx.namespace)
    }

    /// Server-side apply of a typed object into the drill's namespace.
    async fn apply<K>(&self, obj: &K) -> Result<K, BackendError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        let kind = K::kind(&Default::default()).to_string();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
            .map_err(|e| kerr(&format!("applying {kind} {name}"), e))
    }

    /// Wait until `name` is ready or visibly failed, up to `timeout`.
    async fn wait_cluster(&self, name: &str, timeout: Duration) -> Result<Cluster, BackendError> {
        let api: Api<Cluster> = self.api();
        let settled = conditions::is_cluster_settled();
        match tokio::time::timeout(timeout, await_condition(api.clone(), name, settled)).await {
            Ok(Ok(Some(c))) => match conditions::cluster_state(&c) {
                ClusterState::Ready => Ok(c),
                ClusterState::Failed { reason } => Err(BackendError::infra(format!(
                    "cluster {name} failed: {reason}"
                ))),
                ClusterState::Progressing { phase } => Err(BackendError::infra(format!(
                    "cluster {name} still in phase `{phase}`"
                ))),
            },
            Ok(Ok(None)) => Err(BackendError::infra(format!("cluster {name} was deleted"))),
            Ok(Err(e)) => Err(BackendError::infra(format!("watching cluster {name}: {e}"))),
            Err(_) => {
                let phase = api
                    .get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .map(|c| match conditions::cluster_state(&c) {
                        ClusterState::Progressing { phase } => phase,
                        _ => "settled".into(),
                    })
                    .unwrap_or_else(|| "absent".into());
                Err(BackendError::infra(format!(
                    "cluster {name} not ready within {}s (phase `{phase}`)",
                    timeout.as_secs()
                )))
            }
        }
    }

    /// Connect as the superuser to the cluster's primary through a port-forward.
    async fn connect(&mut self, cluster: &Cluster) -> Result<Server, BackendError> {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let pod = cluster
            .status
            .as_ref()
            .and_then(|s| s.current_primary.clone())
            .ok_or_else(|| BackendError::infra(format!("cluster {name} has no primary yet")))?;
        let secret_name = format!("{name}-superuser");
        let secret = self
            .api::<Secret>()
            .get(&secret_name)
            .await
            .map_err(|e| kerr(&format!("reading secret {secret_name}"), e))?;
        let field = |k: &str| -> Result<String, BackendError> {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .ok_or_else(|| BackendError::infra(format!("secret {secret_name} has no `{k}`")))
        };
        let (user, password) = (field("username")?, field("password")?);
        let mut pf = self
            .api::<Pod>()
            .portforward(&pod, &[PG_PORT])
            .await
            .map_err(|e| kerr(&format!("port-forward to {pod}"), e))?;
        let stream = pf
            .take_stream(PG_PORT)
            .ok_or_else(|| BackendError::infra(format!("port-forward to {pod} gave no stream")))?;
        let mut cfg = tokio_postgres::Config::new();
        cfg.user(&user)
            .password(&password)
            .dbname("postgres")
            .application_name("pgdrill");
        let (client, connection) = cfg
            .connect_raw(stream, tokio_postgres::NoTls)
            .await
            .map_err(|e| BackendError::infra(format!("connecting to {pod}: {e}")))?;
        self.tasks.push(tokio::spawn(async move {
            let _ = connection.await;
            drop(pf);
        }));
        Server::from_client(client).await
    }

    /// Why a backup may be stuck: the source's ContinuousArchiving condition when it is False.
    async fn archiving_note(&self) -> String {
        let source = self.api::<Cluster>().get_opt(SOURCE_CLUSTER).await;
        match source {
            Ok(Some(c)) if conditions::continuous_archiving(&c) == Some(false) => {
                "; the source cluster's ContinuousArchiving condition is False (WAL archiving fails)"
                    .to_string()
            }
            _ => String::new(),
        }
    }

    async fn pods_of(&self, cluster: &str) -> Result<Vec<Pod>, BackendError> {
        self.api::<Pod>()
            .list(&ListParams::default().labels(&format!("cnpg.io/cluster={cluster}")))
            .await
            .map(|l| l.items)
            .map_err(|e| kerr(&format!("listing pods of {cluster}"), e))
    }

    /// Logs of the pods worth inspecting for failure signatures (last 200 lines each).
    async fn logs_of(&self, pods: &[Pod]) -> Vec<(String, String)> {
        let api = self.api::<Pod>();
        let mut out = Vec::new();
        for name in conditions::pods_to_inspect(pods) {
            let lp = LogParams {
                tail_lines: Some(200),
                ..Default::default()
            };
            if let Ok(text) = api.logs(&name, &lp).await {
                out.push((name, text));
            }
        }
        out
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
            self.apply::<ObjectStoreResource>(&self.ctx.object_store(spec.compression))
                .await?;
        }
        self.apply(&self.ctx.source_cluster(spec)).await?;
        let cluster = self
            .wait_cluster(SOURCE_CLUSTER, self.ready_timeout)
            .await?;
        self.connect(&cluster).await
    }

    async fn base_backup(
        &mut self,
        step_id: &str,
        timeout_seconds: u64,
    ) -> Result<BackupRecord, BackendError> {
        let name = backup_name(step_id);
        self.apply(&self.ctx.backup(step_id)).await?;
        let api: Api<Backup> = self.api();
        let waited = tokio::time::timeout(
            Duration::from_secs(timeout_seconds),
            await_condition(api, &name, is_backup_finished()),
        )
        .await;
        let backup = match waited {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => return Err(BackendError::infra(format!("Backup {name} was deleted"))),
            Ok(Err(e)) => return Err(BackendError::infra(format!("watching Backup {name}: {e}"))),
            Err(_) => {
                return Err(BackendError::infra(format!(
                    "Backup {name} not finished within {timeout_seconds}s{}",
                    self.archiving_note().await
                )));
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

    async fn stop_source(&mut self) -> Result<(), BackendError> {
        // Hibernation: CNPG shuts the instance down cleanly and keeps its volume.
        let patch = serde_json::json!({
            "metadata": {"annotations": {"cnpg.io/hibernation": "on"}}
        });
        let api: Api<Cluster> = self.api();
        api.patch(
            SOURCE_CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| kerr("hibernating the source cluster", e))?;
        let hibernated = |c: Option<&Cluster>| c.is_some_and(is_hibernated);
        match tokio::time::timeout(
            self.ready_timeout,
            await_condition(api, SOURCE_CLUSTER, hibernated),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BackendError::infra(format!("watching hibernation: {e}"))),
            Err(_) => Err(BackendError::infra(format!(
                "source cluster not hibernated within {}s",
                self.ready_timeout.as_secs()
            ))),
        }
    }

    async fn recover(&mut self, req: &RecoveryRequest) -> Result<RecoveryAttempt, BackendError> {
        let t0 = Instant::now();
        let started_at = Utc::now();
        let manifest = RecoveryManifest::from_request(req);
        self.apply(&self.ctx.recovery_cluster(&manifest)).await?;
        let api: Api<Cluster> = self.api();
        let deadline = t0 + Duration::from_secs(req.timeout_seconds);
        let mut last_phase = String::from("no status yet");
        loop {
            let cluster = api
                .get_opt(RECOVERED_CLUSTER)
                .await
                .map_err(|e| kerr("reading the recovery cluster", e))?;
            let pods = self.pods_of(RECOVERED_CLUSTER).await?;
            if let Some(c) = &cluster {
                match conditions::cluster_state(c) {
                    ClusterState::Ready => {
                        let server = self.connect(c).await?;
                        server.client.simple_query("SELECT 1").await?;
                        let answered = Utc::now();
                        let mut phases = conditions::recovery_phases(&pods);
                        let from = phases.last().map(|p| p.finished_at).unwrap_or(started_at);
                        phases.push(Phase {
                            name: "first_query".into(),
                            started_at: from,
                            finished_at: answered,
                            seconds: (answered - from).num_milliseconds().max(0) as f64 / 1000.0,
                        });
                        let rto = Rto {
                            seconds: t0.elapsed().as_secs_f64(),
                            phases,
                            wal_segments_replayed: 0,
                            bytes_downloaded: 0,
                            budget_seconds: None,
                        };
                        return Ok(RecoveryAttempt::Recovered { server, rto });
                    }
                    ClusterState::Failed { reason } => {
                        return Ok(RecoveryAttempt::Failed {
                            message: reason,
                            rto: None,
                        });
                    }
                    ClusterState::Progressing { phase } => last_phase = phase,
                }
            }
            let logs = self.logs_of(&pods).await;
            if let Some(c) = &cluster
                && let Some(message) = conditions::recovery_failure(c, &pods, &logs)
            {
                return Ok(RecoveryAttempt::Failed { message, rto: None });
            }
            if Instant::now() >= deadline {
                return Ok(RecoveryAttempt::Failed {
                    message: format!(
                        "recovery cluster not ready within {}s (phase `{last_phase}`)",
                        req.timeout_seconds
                    ),
                    rto: None,
                });
            }
            // Poll the named condition again after a short interval, never past the deadline.
            tokio::time::sleep(self.poll.min(deadline - Instant::now())).await;
        }
    }

    async fn teardown(mut self, keep: bool) -> Vec<String> {
        self.torn_down = true;
        for t in &self.tasks {
            t.abort();
        }
        let ns = self.ctx.namespace.clone();
        if keep {
            return vec![
                format!("namespace {ns} (kubectl -n {ns} get clusters,backups,pods)"),
                format!("archive {}", self.store.url()),
            ];
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = api.delete(&ns, &DeleteParams::background()).await {
            eprintln!("pgdrill: teardown: deleting namespace {ns}: {e}");
        }
        if let Err(e) = self.store.delete_all().await {
            eprintln!("pgdrill: teardown of {}: {e}", self.store.url());
        }
        Vec::new()
    }
}
