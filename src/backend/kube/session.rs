//! The API-server work kube drills and game days share, inside the one namespace a run created:
//! create and delete that namespace, server-side apply, wait for a Cluster, follow a recovery
//! until it is ready or visibly failed, connect through a port-forward as `<cluster>-superuser`,
//! sweep namespaces crashed runs left behind.
//!
//! Every decision (ready, failed, why, RTO phases) comes from the pure functions of
//! `conditions.rs`. It never touches a namespace without pgdrill's labels.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::watcher::watch_object;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{BackendError, RecoveryAttempt, Server};
use crate::runner::{Phase, Rto};

use super::conditions::{self, ClusterState};
use super::render::{MANAGED_BY, RUN_ID_LABEL};
use super::resources::Cluster;

/// Field manager name for server-side apply.
const MANAGER: &str = "pgdrill";
const PG_PORT: u16 = 5432;

pub(super) fn kerr(what: &str, e: kube::Error) -> BackendError {
    BackendError::infra(format!("{what}: {e}"))
}

/// Delete namespaces a crashed earlier run left behind: pgdrill's managed-by label, `label` equal
/// to `value` (the scenario or the game day), another run id than `run_id`. Nothing without
/// pgdrill's labels is ever touched.
pub(super) async fn sweep(
    client: &Client,
    run_id: &str,
    label: &str,
    value: &str,
) -> Result<(), BackendError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let selector = format!("{MANAGED_BY}=pgdrill,{label}={value}");
    let found = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| kerr("listing namespaces of earlier runs", e))?;
    for ns in found {
        let theirs = ns.labels().get(RUN_ID_LABEL).cloned().unwrap_or_default();
        if theirs == run_id {
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

/// One namespace of one run, and the port-forwards into it.
pub(super) struct Session {
    client: Client,
    namespace: String,
    /// Port-forward and connection tasks, aborted by [`Session::abort_tasks`] and on drop.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.abort_tasks();
    }
}

impl Session {
    pub(super) fn new(client: Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            tasks: Vec::new(),
        }
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn abort_tasks(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Create the namespace (`ns` must be named like the session's).
    pub(super) async fn create_namespace(&self, ns: &Namespace) -> Result<(), BackendError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .create(&PostParams::default(), ns)
            .await
            .map(|_| ())
            .map_err(|e| kerr(&format!("creating namespace {}", self.namespace), e))
    }

    /// The namespace as the API server has it now (`None`: absent).
    pub(super) async fn get_namespace(&self) -> Result<Option<Namespace>, BackendError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .get_opt(&self.namespace)
            .await
            .map_err(|e| kerr(&format!("reading namespace {}", self.namespace), e))
    }

    /// Delete the namespace and everything in it (in the background, as `kubectl` does).
    pub(super) async fn delete_namespace(&self) -> Result<(), BackendError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .delete(&self.namespace, &DeleteParams::background())
            .await
            .map(|_| ())
            .map_err(|e| kerr(&format!("deleting namespace {}", self.namespace), e))
    }

    pub(super) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side apply of a typed object into the namespace.
    pub(super) async fn apply<K>(&self, obj: &K) -> Result<K, BackendError>
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
    pub(super) async fn wait_cluster(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Cluster, BackendError> {
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
    pub(super) async fn connect(&mut self, cluster: &Cluster) -> Result<Server, BackendError> {
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

    pub(super) async fn pods_of(&self, cluster: &str) -> Result<Vec<Pod>, BackendError> {
        self.api::<Pod>()
            .list(
                &ListParams::default().labels(&format!("{}={cluster}", conditions::LABEL_CLUSTER)),
            )
            .await
            .map(|l| l.items)
            .map_err(|e| kerr(&format!("listing pods of {cluster}"), e))
    }

    /// Logs of the pods worth inspecting for failure signatures (last 200 lines each).
    pub(super) async fn logs_of(&self, pods: &[Pod]) -> Vec<(String, String)> {
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

    /// Follow the recovery Cluster `name` (already applied) until it is ready, visibly failed
    /// (terminal phase, a failure signature in its pods' logs, a crash loop) or `timeout` after
    /// `t0` has passed; when ready, connect and answer a first query. `started_at` is the wall
    /// clock at `t0`, where the RTO's first phase starts when the pods carry no timestamps.
    ///
    /// Each look reads the Cluster, its pods and the logs of the pods worth inspecting; between
    /// looks it waits for the next change of the Cluster (a watch), at most `poll`, so readiness
    /// is seen at once and pod logs at least every `poll`.
    pub(super) async fn await_recovery(
        &mut self,
        name: &str,
        timeout: Duration,
        poll: Duration,
        t0: Instant,
        started_at: DateTime<Utc>,
    ) -> Result<RecoveryAttempt, BackendError> {
        let api: Api<Cluster> = self.api();
        let deadline = t0 + timeout;
        let mut changes = Some(watch_object(api.clone(), name).boxed());
        let mut last_phase = conditions::NO_STATUS.to_string();
        loop {
            let cluster = api
                .get_opt(name)
                .await
                .map_err(|e| kerr(&format!("reading the recovery cluster {name}"), e))?;
            let pods = self.pods_of(name).await?;
            if let Some(c) = &cluster {
                match conditions::cluster_state(c) {
                    ClusterState::Ready => {
                        // `connect` answers `SHOW server_version`: that is the first query.
                        let server = self.connect(c).await?;
                        let rto = ready_rto(&pods, started_at, Utc::now(), t0);
                        return Ok(RecoveryAttempt::Recovered { server, rto });
                    }
                    // A failed Cluster is explained by `recovery_failure` below: the pod logs'
                    // FATAL lines first, the phase only when the logs say nothing.
                    ClusterState::Failed { reason } => last_phase = reason,
                    ClusterState::Progressing { phase } => last_phase = phase,
                }
            }
            let logs = self.logs_of(&pods).await;
            if let Some(c) = &cluster
                && let Some(message) = conditions::recovery_failure(c, &pods, &logs)
            {
                return Ok(RecoveryAttempt::Failed { message, rto: None });
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(RecoveryAttempt::Failed {
                    message: format!(
                        "recovery cluster {name} not ready within {}s (phase `{last_phase}`)",
                        timeout.as_secs()
                    ),
                    rto: None,
                });
            }
            // Look again at the next change of the Cluster, after `poll` at the latest, never
            // past the deadline. A watch that broke or ended degrades to plain polling.
            let wait = poll.min(deadline - now);
            let next = tokio::time::Instant::now() + wait;
            match changes.as_mut() {
                Some(stream) => match tokio::time::timeout_at(next, stream.next()).await {
                    Ok(Some(Ok(_))) | Err(_) => {}
                    Ok(Some(Err(_))) => tokio::time::sleep_until(next).await,
                    Ok(None) => {
                        changes = None;
                        tokio::time::sleep_until(next).await;
                    }
                },
                None => tokio::time::sleep_until(next).await,
            }
        }
    }
}

/// The RTO of a recovery that answered its first query at `answered`: the pods' phases
/// (`conditions::recovery_phases`) plus `first_query`, total from `t0`.
fn ready_rto(pods: &[Pod], started_at: DateTime<Utc>, answered: DateTime<Utc>, t0: Instant) -> Rto {
    let mut phases = conditions::recovery_phases(pods);
    let from = phases.last().map(|p| p.finished_at).unwrap_or(started_at);
    phases.push(Phase {
        name: "first_query".into(),
        started_at: from,
        finished_at: answered,
        seconds: (answered - from).num_milliseconds().max(0) as f64 / 1000.0,
    });
    Rto {
        seconds: t0.elapsed().as_secs_f64(),
        phases,
        wal_segments_replayed: 0,
        bytes_downloaded: 0,
        budget_seconds: None,
        replay_end: None,
    }
}
