//! What the double's own tests do with a `kube::Client` (offline and against a real
//! PostgreSQL alike): namespaces created, CNPG Clusters applied and awaited in a phase, under
//! one deadline. Needs a double to talk to (`support/kube_api_double.rs`); runs nothing itself.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use pgdrill::backend::kube::resources::Cluster;
use serde_json::{Value, json};

pub const DEADLINE: Duration = Duration::from_secs(30);

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
}

pub async fn create_namespace(client: &kube::Client, name: &str, labels: Value) {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
}

pub fn source_cluster(name: &str) -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "instances": 1,
            "imageName": "ghcr.io/cloudnative-pg/postgresql:15",
            "enableSuperuserAccess": true,
            "storage": {"size": "1Gi"},
            "backup": {"barmanObjectStore": {
                "destinationPath": "s3://pgdrill/run-1/src",
                "endpointURL": "http://s3.pgdrill.svc:9000",
                "serverName": name,
            }},
        },
    }))
    .unwrap()
}

pub fn recovery_cluster(name: &str, server: &str) -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "instances": 1,
            "storage": {"size": "1Gi"},
            "bootstrap": {"recovery": {"source": "origin"}},
            "externalClusters": [{"name": "origin", "barmanObjectStore": {
                "destinationPath": "s3://pgdrill/run-1/src", "serverName": "src",
            }}],
            "backup": {"barmanObjectStore": {
                "destinationPath": "s3://pgdrill/run-1/src", "serverName": server,
            }},
        },
    }))
    .unwrap()
}

pub fn phase_is(phase: &'static str) -> impl Fn(Option<&Cluster>) -> bool {
    move |c: Option<&Cluster>| {
        c.and_then(|c| c.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some(phase)
    }
}

pub async fn apply_cluster(clusters: &Api<Cluster>, c: &Cluster) {
    let name = c.metadata.name.clone().unwrap();
    clusters
        .patch(&name, &PatchParams::apply("pgdrill"), &Patch::Apply(c))
        .await
        .unwrap();
}

pub async fn await_phase(clusters: &Api<Cluster>, name: &str, phase: &'static str) -> Cluster {
    within(
        &format!("cluster {name} in phase {phase}"),
        await_condition(clusters.clone(), name, phase_is(phase)),
    )
    .await
    .unwrap()
    .unwrap()
}
