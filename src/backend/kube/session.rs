//! The API-server work kube drills and game days share, inside the one namespace a run created:
//! create and delete that namespace, server-side apply, wait for a Cluster, follow a recovery
//! until it is ready or visibly failed, connect through a port-forward as `<cluster>-superuser`,
//! sweep namespaces crashed runs left behind.
//!
//! Every decision (ready, failed, why, RTO phases) comes from the pure functions of
//! `conditions.rs`. It never touches a namespace without pgdrill's labels.

use std::collections::BTreeMap;
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

use crate::backend::Phase;
use crate::backend::PhaseName;
use crate::backend::Rto;
use crate::backend::amcheck::AmcheckOutcome;
use crate::backend::{AmcheckRequest, BackendError, RecoveryAttempt, Server, pg_log};

use super::conditions::{self, ClusterState, RecoveryLog};
use super::render::{MANAGED_BY, RUN_ID_LABEL};
use super::resources::Cluster;

/// Field manager name for server-side apply.
const MANAGER: &str = "pgdrill";
const PG_PORT: u16 = 5432;

pub(super) fn kerr(what: &str, e: kube::Error) -> BackendError {
    BackendError::kube(what, e)
}

/// How often a run renews the heartbeat of its namespaces.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// A namespace whose heartbeat is older than this belongs to a run that stopped.
const HEARTBEAT_STALE: Duration = Duration::from_secs(180);
/// How long teardown waits for a namespace (and its pods) to be gone.
pub(super) const NAMESPACE_GONE_TIMEOUT: Duration = Duration::from_secs(180);

/// Delete namespaces a crashed earlier run left behind: pgdrill's managed-by label, `label` equal
/// to `value` (the scenario or the game day), another run id than `run_id`, and a run that is
/// no longer alive (`conditions::sweep_blocker`: another pgdrill running the same scenario
/// right now keeps its namespace). Nothing without pgdrill's labels is ever touched.
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
        if let Some(why) = conditions::sweep_blocker(&ns, Utc::now(), HEARTBEAT_STALE) {
            tracing::warn!("namespace {name} of run {theirs} left alone: {why}");
            continue;
        }
        tracing::warn!("sweeping namespace {name} left by run {theirs}");
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

    /// Create the namespace (`ns` must be named like the session's), with a heartbeat this
    /// session renews every 30 s until it ends, so a concurrent run of the same scenario does
    /// not sweep it.
    pub(super) async fn create_namespace(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let mut ns = ns.clone();
        ns.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                conditions::HEARTBEAT_ANNOTATION.to_string(),
                heartbeat_now(),
            );
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|e| kerr(&format!("creating namespace {}", self.namespace), e))?;
        let name = self.namespace.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT_EVERY).await;
                let patch = serde_json::json!({"metadata": {"annotations": {
                    conditions::HEARTBEAT_ANNOTATION: heartbeat_now()
                }}});
                // A missed renewal is retried at the next one; three in a row are needed for
                // another run to take the namespace for abandoned.
                let _ = namespaces
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        }));
        Ok(())
    }

    /// The namespace as the API server has it now (`None`: absent).
    pub(super) async fn get_namespace(&self) -> Result<Option<Namespace>, BackendError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .get_opt(&self.namespace)
            .await
            .map_err(|e| kerr(&format!("reading namespace {}", self.namespace), e))
    }

    /// Delete the namespace and everything in it, and wait until it is gone (at most
    /// `timeout`; `Ok(false)` when it is still there then). Its pods are stopped at once (a
    /// 1 s grace period instead of CNPG's stop delay of up to 30 minutes and its smart
    /// shutdown): they are the drill's own, their data is thrown away, and until they stop a
    /// recovered cluster goes on archiving WAL into the drill's prefix (observed on the live
    /// cluster: timeline-2 segments written after the prefix had been emptied). The namespace
    /// is deleted first, so the operator cannot recreate the pods in it.
    pub(super) async fn delete_namespace(&self, timeout: Duration) -> Result<bool, BackendError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces
            .delete(&self.namespace, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(true),
            Err(e) => return Err(kerr(&format!("deleting namespace {}", self.namespace), e)),
        }
        let quick = DeleteParams {
            grace_period_seconds: Some(1),
            ..Default::default()
        };
        // Best effort: the namespace controller deletes them anyway, only later.
        let _ = self
            .api::<Pod>()
            .delete_collection(&quick, &ListParams::default())
            .await;
        let gone = |ns: Option<&Namespace>| ns.is_none();
        match tokio::time::timeout(timeout, await_condition(namespaces, &self.namespace, gone))
            .await
        {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(BackendError::kube(
                format!("watching namespace {} go", self.namespace),
                e,
            )),
            Err(_) => Ok(false),
        }
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
            Ok(Err(e)) => Err(BackendError::kube(format!("watching cluster {name}"), e)),
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
                Err(BackendError::timeout(
                    format!("cluster {name} not ready"),
                    timeout,
                    format!(" (phase `{phase}`)"),
                ))
            }
        }
    }

    /// `pg_amcheck` on this host against cluster `name`'s primary: a loopback listener relays
    /// each of its connections through a port-forward of its own, the superuser's password
    /// goes in its environment only. `NotRun` when this host has no `pg_amcheck` for the major.
    pub(super) async fn amcheck(
        &mut self,
        name: &str,
        req: &AmcheckRequest,
    ) -> Result<AmcheckOutcome, BackendError> {
        let cluster = self
            .api::<Cluster>()
            .get(name)
            .await
            .map_err(|e| kerr(&format!("reading cluster {name}"), e))?;
        let (pod, user, password) = self.primary_and_superuser(&cluster).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| BackendError::io("binding a loopback port for pg_amcheck", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| BackendError::io("the pg_amcheck relay's port", e))?
            .port();
        let pods = self.api::<Pod>();
        let target = pod.clone();
        let relay = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (pods, pod) = (pods.clone(), target.clone());
                conns.spawn(async move {
                    let Ok(mut pf) = pods.portforward(&pod, &[PG_PORT]).await else {
                        return;
                    };
                    if let Some(mut stream) = pf.take_stream(PG_PORT) {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
                    }
                    drop(pf);
                });
            }
        });
        let what = format!("cluster {name} (pod {pod}, through a port-forward)");
        let outcome = crate::backend::local::amcheck::check_remote(
            "127.0.0.1",
            port,
            &user,
            &password,
            req,
            &what,
        )
        .await;
        relay.abort();
        outcome
    }

    /// The cluster's primary pod, and its superuser's name and password (never logged).
    async fn primary_and_superuser(
        &self,
        cluster: &Cluster,
    ) -> Result<(String, String, String), BackendError> {
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
        Ok((pod, field("username")?, field("password")?))
    }

    /// Connect as the superuser to the cluster's primary through a port-forward.
    pub(super) async fn connect(&mut self, cluster: &Cluster) -> Result<Server, BackendError> {
        let (pod, user, password) = self.primary_and_superuser(cluster).await?;
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
            .map_err(|e| BackendError::connect(format!("connecting to {pod}"), e))?;
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

    /// The whole log of a successful full-recovery Job's recovery container (`None` when it
    /// cannot be read, e.g. the pod is already gone).
    async fn recovery_log(&self, pod: &str) -> Option<RecoveryLog> {
        let lp = LogParams {
            container: Some(conditions::JOB_ROLE_FULL_RECOVERY.to_string()),
            limit_bytes: Some(16 << 20),
            ..Default::default()
        };
        let text = self.api::<Pod>().logs(pod, &lp).await.ok()?;
        Some(conditions::recovery_log(&text))
    }

    /// Logs of the pods worth inspecting (`conditions::pods_to_inspect`: the failing ones): the
    /// last 200 lines of each container, the main containers first, then init and sidecar
    /// containers, joined per pod. The sidecars count: with the barman-cloud plugin, "Expected
    /// empty archive" is logged only by the `plugin-barman-cloud` sidecar of the full-recovery
    /// pod (observed with CNPG 1.30.0 and the plugin v0.14.0); its `full-recovery` container
    /// only says the plugin call failed. Logs of pods that have finished are read once and kept
    /// in `finished` (each retry of a Job is a new pod; its log does not change).
    pub(super) async fn logs_of(
        &self,
        pods: &[Pod],
        finished: &mut BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        let api = self.api::<Pod>();
        let mut out = Vec::new();
        for name in conditions::pods_to_inspect(pods) {
            let Some(pod) = pods.iter().find(|p| p.name_any() == name) else {
                continue;
            };
            if let Some(text) = finished.get(&name) {
                out.push((name, text.clone()));
                continue;
            }
            let mut text = String::new();
            for container in conditions::container_names(pod) {
                let lp = LogParams {
                    container: Some(container),
                    tail_lines: Some(200),
                    ..Default::default()
                };
                if let Ok(t) = api.logs(&name, &lp).await {
                    text.push_str(&t);
                    if !t.ends_with('\n') {
                        text.push('\n');
                    }
                }
            }
            if conditions::is_finished_pod(pod) {
                finished.insert(name.clone(), text.clone());
            }
            out.push((name, text));
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
        // CNPG deletes the completed full-recovery Job once the instance reports status, often
        // before the Cluster is Ready: its pods as last seen, and its log read when it succeeded.
        let mut jobs_seen: BTreeMap<String, Pod> = BTreeMap::new();
        let mut job_log: Option<RecoveryLog> = None;
        let mut finished_logs: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let cluster = api
                .get_opt(name)
                .await
                .map_err(|e| kerr(&format!("reading the recovery cluster {name}"), e))?;
            let pods = self.pods_of(name).await?;
            for p in pods.iter().filter(|p| conditions::is_full_recovery_pod(p)) {
                jobs_seen.insert(p.name_any(), p.clone());
            }
            if job_log.is_none()
                && let Some(job) = pods
                    .iter()
                    .find(|p| conditions::is_successful_recovery_job(p))
            {
                job_log = self.recovery_log(&job.name_any()).await;
            }
            if let Some(c) = &cluster {
                match conditions::cluster_state(c) {
                    ClusterState::Ready => {
                        // `connect` answers `SHOW server_version`: that is the first query.
                        let server = self.connect(c).await?;
                        let mut seen: Vec<Pod> = jobs_seen.into_values().collect();
                        seen.extend(
                            pods.into_iter()
                                .filter(|p| !conditions::is_full_recovery_pod(p)),
                        );
                        let rto = ready_rto(&seen, job_log.as_ref(), started_at, Utc::now(), t0);
                        return Ok(RecoveryAttempt::Recovered { server, rto });
                    }
                    // A failed Cluster is explained by `recovery_failure` below: the pod logs'
                    // FATAL lines first, the phase only when the logs say nothing.
                    ClusterState::Failed { reason } => last_phase = reason,
                    ClusterState::Progressing { phase } => last_phase = phase,
                }
            }
            let logs = self.logs_of(&pods, &mut finished_logs).await;
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

fn heartbeat_now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The RTO of a recovery that answered its first query at `answered`: the phases of the pods
/// and the Job's log (`conditions::recovery_phases`) plus `first_query`, total from `t0`; the
/// WAL segments restored and why replay ended, from the Job's log when it was read.
fn ready_rto(
    pods: &[Pod],
    log: Option<&RecoveryLog>,
    started_at: DateTime<Utc>,
    answered: DateTime<Utc>,
    t0: Instant,
) -> Rto {
    let mut phases = conditions::recovery_phases(pods, log, started_at);
    let from = phases.last().map(|p| p.finished_at).unwrap_or(started_at);
    phases.push(Phase {
        name: PhaseName::FirstQuery,
        started_at: from,
        finished_at: answered,
        seconds: (answered - from).num_milliseconds().max(0) as f64 / 1000.0,
        bytes: None,
    });
    let text = log.map(|l| l.text.as_str()).unwrap_or_default();
    // The base backup's size and the WAL objects' sizes are not measured here: `None`.
    let mut rto = Rto {
        seconds: t0.elapsed().as_secs_f64(),
        phases,
        wal_segments_replayed: pg_log::replayed_segment_count(text),
        bytes_downloaded: 0,
        budget_seconds: None,
        replay_end: pg_log::replay_end(text),
        last_replayed_commit: pg_log::last_replayed_commit(text),
        ..Default::default()
    };
    rto.set_replay_bytes(&pg_log::replay_lsns(text));
    rto
}
