//! `KubeScratch`: a game day's restore of a real archive into a CloudNativePG recovery `Cluster`
//! in a scratch namespace of its own, followed to ready or failed with the drills' session code,
//! then reached through a port-forward for the checks.
//!
//! It only ever reads the archive under test (an `externalClusters` entry): the Cluster archives
//! nowhere unless the game day gives it an archive of its own, and one that overlaps the archive
//! under test is refused before anything is applied. It never deletes a namespace that does not
//! carry its run id.

use std::time::{Duration, Instant};

use chrono::Utc;
use kube::ResourceExt;

use crate::backend::Keep;
use crate::backend::{BackendError, RecoveryAttempt, ScratchRequest, ScratchRestore};

use super::drill::KubeOptions;
use super::render::{RUN_ID_LABEL, label_value};
use super::render_scratch::{GAMEDAY_LABEL, SCRATCH_CLUSTER, ScratchContext};
use super::resources::ObjectStore as ObjectStoreResource;
use super::session::{NAMESPACE_GONE_TIMEOUT, Session, sweep};

/// How far the scratch namespace got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamespaceState {
    /// Not asked for (the game day stopped before restoring).
    Absent,
    /// Asked for; the answer never came (cancelled) or was an error.
    Requested,
    Created,
}

/// Owner of one game day's scratch namespace.
pub struct KubeScratch {
    session: Session,
    ctx: ScratchContext,
    access_key: String,
    secret_key: String,
    poll: Duration,
    sweep: bool,
    state: NamespaceState,
    /// Set by `teardown`; `Drop` only warns when it never ran.
    torn_down: bool,
}

impl Drop for KubeScratch {
    fn drop(&mut self) {
        if !self.torn_down && self.state != NamespaceState::Absent {
            tracing::warn!(
                "namespace {ns} was not torn down; remove it with `kubectl delete namespace {ns}`",
                ns = self.ctx.namespace
            );
        }
    }
}

impl KubeScratch {
    /// A scratch restore of the archive at `destination` (its `destinationPath`) for game day
    /// `gameday`. Of `opts` it uses the client, the render settings (run id, flavour, the S3
    /// endpoint as pods see it, image template, storage size), the credentials in `opts.s3`
    /// (copied into the namespace's Secret; the endpoint and bucket there are pgdrill's own
    /// view, used by the game day's audit, not here), the poll interval and `sweep` (delete
    /// namespaces crashed runs of the same game day left behind). Talks to nothing yet.
    pub fn new(opts: KubeOptions, gameday: &str, destination: &str) -> Self {
        let ctx = ScratchContext::new(&opts.settings, gameday, destination);
        Self {
            session: Session::new(opts.client, &ctx.namespace),
            ctx,
            access_key: opts.s3.access_key,
            secret_key: opts.s3.secret_key,
            poll: opts.poll_interval,
            sweep: opts.sweep,
            state: NamespaceState::Absent,
            torn_down: false,
        }
    }

    /// The scratch namespace's name.
    pub fn namespace(&self) -> &str {
        &self.ctx.namespace
    }

    fn run_id_label(&self) -> String {
        label_value(&self.ctx.settings.run_id)
    }

    /// Whether the namespace exists and is this run's (its run-id label says so).
    async fn ours_exists(&self) -> bool {
        match self.session.get_namespace().await {
            Ok(Some(ns)) => ns.labels().get(RUN_ID_LABEL) == Some(&self.run_id_label()),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!("teardown: {e}");
                false
            }
        }
    }
}

impl ScratchRestore for KubeScratch {
    fn name(&self) -> &'static str {
        "kube"
    }

    async fn restore(&mut self, req: &ScratchRequest) -> Result<RecoveryAttempt, BackendError> {
        // Before any API call: nothing may be applied that could write into the source.
        self.ctx
            .check(req)
            .map_err(|e| BackendError::infra(e.to_string()))?;
        if self.state != NamespaceState::Absent {
            return Err(BackendError::infra(format!(
                "namespace {} already holds this game day's restore",
                self.ctx.namespace
            )));
        }
        if self.sweep {
            sweep(
                self.session.client(),
                &self.run_id_label(),
                GAMEDAY_LABEL,
                &label_value(&self.ctx.gameday),
            )
            .await?;
        }
        let t0 = Instant::now();
        let started_at = Utc::now();
        self.state = NamespaceState::Requested;
        self.session.create_namespace(&self.ctx.namespace()).await?;
        self.state = NamespaceState::Created;
        self.session
            .apply(&self.ctx.s3_secret(&self.access_key, &self.secret_key))
            .await?;
        for store in self.ctx.object_stores(req) {
            self.session.apply::<ObjectStoreResource>(&store).await?;
        }
        let cluster = self
            .ctx
            .cluster(req)
            .map_err(|e| BackendError::infra(e.to_string()))?;
        self.session.apply(&cluster).await?;
        self.session
            .await_recovery(
                SCRATCH_CLUSTER,
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
        self.session.amcheck(SCRATCH_CLUSTER, req).await
    }

    async fn teardown(mut self, keep: Keep) -> Vec<String> {
        self.torn_down = true;
        self.session.abort_tasks();
        let ns = self.ctx.namespace.clone();
        let exists = match self.state {
            NamespaceState::Absent => false,
            NamespaceState::Created => true,
            // Cancelled or failed while creating it: only a namespace with our run id is ours.
            NamespaceState::Requested => self.ours_exists().await,
        };
        if !exists {
            return Vec::new();
        }
        if keep == Keep::Everything {
            return vec![format!(
                "namespace {ns} (kubectl -n {ns} get cluster {SCRATCH_CLUSTER},pods; \
                 kubectl -n {ns} port-forward svc/{SCRATCH_CLUSTER}-rw 5432)"
            )];
        }
        match self.session.delete_namespace(NAMESPACE_GONE_TIMEOUT).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "teardown: namespace {ns} still terminating after {}s",
                NAMESPACE_GONE_TIMEOUT.as_secs()
            ),
            Err(e) => tracing::warn!("teardown: {e}"),
        }
        Vec::new()
    }
}
