//! Tests of the Kubernetes API server double (`tests/support/kube_api_double.rs`) with a real
//! `kube::Client`, offline: no PostgreSQL, no S3 (the two tests that need a real PostgreSQL
//! behind a port-forward or a Backup are in `local_kube_api_double.rs`). The simulated operator
//! is a fake: these tests prove the double speaks the protocol kube 5 expects, nothing about
//! CNPG.

#[path = "support/kube_api_double.rs"]
mod kube_api_double;
#[path = "support/kube_double_client.rs"]
mod kube_double_client;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::wait::await_condition;
use kube::runtime::watcher;
use pgdrill::backend::kube::resources::{Backup, Cluster};
use serde_json::{Value, json};

use kube_api_double::{
    ApiServerDouble, Call, Failure, OPERATOR_IMAGE, PLUGIN_CONTAINER, PLUGIN_NAME, SimulatedCnpg,
};
use kube_double_client::{
    apply_cluster, await_phase, create_namespace, recovery_cluster, source_cluster, within,
};

#[tokio::test]
async fn namespaces_list_by_label_and_deleting_one_removes_its_objects() {
    let double = ApiServerDouble::start(SimulatedCnpg::default())
        .await
        .unwrap();
    let client = double.client();
    create_namespace(&client, "run1-a", json!({"pgdrill.io/run": "r1", "x": "1"})).await;
    create_namespace(&client, "run1-b", json!({"pgdrill.io/run": "r1"})).await;
    create_namespace(&client, "run2-a", json!({"pgdrill.io/run": "r2"})).await;

    let nss: Api<Namespace> = Api::all(client.clone());
    let names = |l: kube::core::ObjectList<Namespace>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|n| n.metadata.name.unwrap())
            .collect()
    };
    let r1 = nss
        .list(&ListParams::default().labels("pgdrill.io/run=r1"))
        .await
        .unwrap();
    assert_eq!(names(r1), ["run1-a", "run1-b"]);
    let both = nss
        .list(&ListParams::default().labels("pgdrill.io/run=r1,x=1"))
        .await
        .unwrap();
    assert_eq!(names(both), ["run1-a"]);
    let by_name = nss
        .list(&ListParams::default().fields("metadata.name=run2-a"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["run2-a"]);

    // A second create is AlreadyExists.
    let dup: Namespace = serde_json::from_value(json!({"metadata": {"name": "run1-a"}})).unwrap();
    match nss.create(&PostParams::default(), &dup).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"))
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // Objects in a missing namespace cannot be created.
    let cms_nowhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    match cms_nowhere.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected NotFound, got {other:?}"),
    }

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "run1-a");
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "run1-a");
    apply_cluster(&clusters, &source_cluster("src")).await;
    await_phase(&clusters, "src", "Cluster in healthy state").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "run1-a");
    pods.get("src-1").await.unwrap();

    double.clear_calls();
    let deleted = nss
        .delete("run1-a", &DeleteParams::default())
        .await
        .unwrap();
    let ns = deleted.left().expect("the namespace object");
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    for res in [
        cms.get("c").await.map(|_| ()),
        clusters.get("src").await.map(|_| ()),
        pods.get("src-1").await.map(|_| ()),
        nss.get("run1-a").await.map(|_| ()),
    ] {
        match res {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"), "{s:?}")
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert!(double.objects("secrets", Some("run1-a")).is_empty());
    assert!(double.object("namespaces", "", "run1-b").is_some());
    let remaining = nss
        .list(&ListParams::default().labels("pgdrill.io/run=r1"))
        .await
        .unwrap();
    assert_eq!(names(remaining), ["run1-b"]);

    // (4) With no watch running, the log is exactly the requests made.
    assert_eq!(
        double.call_lines(),
        [
            "DELETE /api/v1/namespaces/run1-a",
            "GET /api/v1/namespaces/run1-a/configmaps/c",
            "GET /apis/postgresql.cnpg.io/v1/namespaces/run1-a/clusters/src",
            "GET /api/v1/namespaces/run1-a/pods/src-1",
            "GET /api/v1/namespaces/run1-a",
            "GET /api/v1/namespaces ?labelSelector=pgdrill.io/run=r1",
        ]
    );
    let statuses: Vec<u16> = double.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 404, 404, 404, 404, 200]);
}

/// A recovery Cluster that recovers through the barman-cloud plugin and archives through it.
fn plugin_recovery_cluster(name: &str, server: &str) -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "instances": 1,
            "storage": {"size": "1Gi"},
            "bootstrap": {"recovery": {"source": "origin"}},
            "externalClusters": [{"name": "origin", "plugin": {
                "name": PLUGIN_NAME,
                "parameters": {"barmanObjectName": "origin-store", "serverName": "src"},
            }}],
            "plugins": [{
                "name": PLUGIN_NAME, "isWALArchiver": true,
                "parameters": {"barmanObjectName": "own-store", "serverName": server},
            }],
        },
    }))
    .unwrap()
}

async fn job_pods(pods: &Api<Pod>, cluster: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!(
        "cnpg.io/cluster={cluster},cnpg.io/jobRole=full-recovery"
    )))
    .await
    .unwrap()
    .items
}

async fn container_log(pods: &Api<Pod>, pod: &str, container: Option<&str>) -> String {
    pods.logs(
        pod,
        &LogParams {
            container: container.map(str::to_string),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("log of {pod} {container:?}: {e}"))
}

/// `status.<field>` (`containerStatuses`, `initContainerStatuses`) entry `name` of a pod, as JSON.
fn status_of(pod: &Pod, field: &str, name: &str) -> Value {
    let v = serde_json::to_value(pod).unwrap();
    v["status"][field]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no {field} {name} in {v:#}"))
}

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&chrono::Utc)
}

/// A container time as the kubelet writes it: whole seconds, `...:SSZ`.
fn assert_whole_seconds(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    assert!(
        s.len() == 20 && s.ends_with('Z'),
        "{s} is not whole seconds"
    );
    time(v);
}

/// The `ts` of every line of a container log, checking each line is a JSON object.
fn log_times(log: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    log.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            time(&v["ts"])
        })
        .collect()
}

/// `0/1`, `2/2`: ready containers of a pod, counting sidecars (init containers that run).
fn ready_count(pod: &Pod) -> (usize, usize) {
    let v = serde_json::to_value(pod).unwrap();
    let main = v["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sidecar_names: Vec<Value> = v["spec"]["initContainers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| c["restartPolicy"] == "Always")
                .map(|c| c["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let sidecars: Vec<Value> = v["status"]["initContainerStatuses"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| sidecar_names.contains(&c["name"]))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let all: Vec<&Value> = main.iter().chain(&sidecars).collect();
    (all.iter().filter(|c| c["ready"] == true).count(), all.len())
}

#[tokio::test]
async fn expected_empty_archive_shows_in_the_full_recovery_pod_log() {
    let double = ApiServerDouble::start(SimulatedCnpg::default())
        .await
        .unwrap();
    double.set_failure("restore", Failure::ExpectedEmptyArchive);
    let client = double.client();
    create_namespace(&client, "drill-c", json!({})).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "drill-c");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "drill-c");

    apply_cluster(&clusters, &recovery_cluster("restore", "src")).await;
    let stuck = await_phase(&clusters, "restore", "Setting up primary").await;
    // As on the live cluster: no readyInstances at all while the first instance is created.
    let status = stuck.status.unwrap();
    assert_eq!(status.ready_instances, None);
    assert_eq!(status.current_primary, None);
    assert_eq!(
        status.phase_reason.as_deref(),
        Some("Creating primary instance restore-1")
    );
    let jobs = job_pods(&pods, "restore").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let name = job.metadata.name.clone().unwrap();
    assert!(name.starts_with("restore-1-full-recovery-"), "{name}");
    assert_eq!(name.len(), "restore-1-full-recovery-".len() + 5, "{name}");
    let main = status_of(job, "containerStatuses", "full-recovery");
    let terminated = &main["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 1);
    assert_eq!(terminated["reason"], "Error");
    assert_whole_seconds(&terminated["startedAt"]);
    assert_whole_seconds(&terminated["finishedAt"]);
    assert_eq!(ready_count(job), (0, 1), "in-tree: 0/1, no sidecar");
    assert_eq!(
        job.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    // The Job retries (a new pod each time on the real operator): not failed for good.
    let job_obj = double
        .object("jobs.batch", "drill-c", "restore-1-full-recovery")
        .unwrap();
    assert_eq!(job_obj["status"]["failed"], 1, "{job_obj:#}");
    assert!(
        !job_obj.to_string().contains("BackoffLimitExceeded"),
        "{job_obj:#}"
    );
    assert!(job_obj["status"].get("conditions").is_none(), "{job_obj:#}");

    let log = container_log(&pods, &name, None).await;
    assert!(log.contains("Expected empty archive"), "{log}");
    assert!(
        log.contains("WAL archive check failed for server src"),
        "{log}"
    );
    log_times(&log);
    let tail = pods
        .logs(
            &name,
            &LogParams {
                container: Some("full-recovery".into()),
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(log.ends_with(&tail), "{tail}");
    match pods.get("restore-1").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("no instance pod expected, got {other:?}"),
    }
}

/// With the plugin, the barman-cloud lines are in the sidecar's log only (observed on the live
/// cluster with CNPG 1.30.0 and the plugin v0.14.0): a client reading only the main container
/// never sees "Expected empty archive".
#[tokio::test]
async fn with_the_plugin_expected_empty_archive_is_only_in_the_sidecar_log() {
    let double = ApiServerDouble::start(SimulatedCnpg::default())
        .await
        .unwrap();
    double.set_failure("restore", Failure::ExpectedEmptyArchive);
    let client = double.client();
    create_namespace(&client, "drill-p", json!({})).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "drill-p");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "drill-p");
    apply_cluster(&clusters, &plugin_recovery_cluster("restore", "pg-reused")).await;
    await_phase(&clusters, "restore", "Setting up primary").await;

    let jobs = job_pods(&pods, "restore").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let name = job.metadata.name.clone().unwrap();
    assert_eq!(ready_count(job), (0, 2), "0/2 Error");
    assert_eq!(
        status_of(job, "containerStatuses", "full-recovery")["state"]["terminated"]["reason"],
        "Error"
    );
    let main = container_log(&pods, &name, Some("full-recovery")).await;
    let sidecar = container_log(&pods, &name, Some(PLUGIN_CONTAINER)).await;
    assert!(!main.contains("Expected empty archive"), "{main}");
    assert!(main.contains("Error while restoring a backup"), "{main}");
    assert!(main.contains("rpc error: code = Unknown"), "{main}");
    assert!(
        sidecar.contains("WAL archive check failed for server pg-reused: Expected empty archive"),
        "{sidecar}"
    );
    let after: Vec<&str> = sidecar
        .lines()
        .skip_while(|l| !l.contains("Expected empty archive"))
        .collect();
    assert!(
        after[1].contains("Error invoking barman-cloud-check-wal-archive"),
        "{sidecar}"
    );
    assert!(
        after[2].contains("Error while handling GRPC request"),
        "{sidecar}"
    );
    // Without `container`, the API answers the only main container.
    assert_eq!(container_log(&pods, &name, None).await, main);
}

/// The recovery as the live cluster plays it: `Setting up primary` while the Job's pod (already
/// completed here) is there; then the instance pod, the Job and its pod deleted, and only then
/// the healthy Cluster. Pod logs are per container.
async fn recovery_runs_its_job_then_deletes_it(plugin: bool) {
    let double = ApiServerDouble::start(SimulatedCnpg {
        // Long enough that the look below happens while the Job is still there.
        recovery_job_duration: Duration::from_secs(3),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = double.client();
    let ns = if plugin { "drill-rp" } else { "drill-r" };
    create_namespace(&client, ns, json!({})).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let applied = chrono::Utc::now();
    let cluster = if plugin {
        plugin_recovery_cluster("restore", "restore")
    } else {
        recovery_cluster("restore", "restore")
    };
    apply_cluster(&clusters, &cluster).await;
    let setting_up = await_phase(&clusters, "restore", "Setting up primary").await;
    assert!(
        setting_up
            .status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False")
    );
    match pods.get("restore-1").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "no instance pod before the Job ends"),
        other => panic!("no instance pod expected yet, got {other:?}"),
    }

    // The Job's pod: completed, CNPG's init container (and the plugin's sidecar) included.
    let jobs = job_pods(&pods, "restore").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let job_name = job.metadata.name.clone().unwrap();
    assert_eq!(
        job.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );
    let main = status_of(job, "containerStatuses", "full-recovery");
    let term = &main["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].clone(), term["reason"].clone()),
        (json!(0), json!("Completed"))
    );
    assert_whole_seconds(&term["startedAt"]);
    assert_whole_seconds(&term["finishedAt"]);
    let (started, finished) = (time(&term["startedAt"]), time(&term["finishedAt"]));
    assert!(applied <= started, "the container starts after the apply");
    let boot = status_of(job, "initContainerStatuses", "bootstrap-controller");
    assert_eq!(boot["state"]["terminated"]["exitCode"], 0);
    assert_eq!(boot["state"]["terminated"]["reason"], "Completed");
    assert!(time(&boot["state"]["terminated"]["finishedAt"]) <= started);
    let spec = serde_json::to_value(job).unwrap()["spec"].clone();
    assert_eq!(spec["initContainers"][0]["image"], OPERATOR_IMAGE);
    assert_eq!(
        spec["initContainers"][1]["restartPolicy"],
        if plugin { json!("Always") } else { Value::Null },
        "{spec:#}"
    );

    // `?container=` selects one container's log; without it, the main container's.
    let main_log = container_log(&pods, &job_name, Some("full-recovery")).await;
    let boot_log = container_log(&pods, &job_name, Some("bootstrap-controller")).await;
    assert_eq!(container_log(&pods, &job_name, None).await, main_log);
    assert!(boot_log.contains("Bootstrap completed"), "{boot_log}");
    assert!(!boot_log.contains("Restore"), "{boot_log}");
    assert!(!main_log.contains("Bootstrap completed"), "{main_log}");
    for needle in [
        "starting archive recovery",
        "restored log file",
        "consistent recovery state reached",
        "database system is ready to accept connections",
        "restore command execution completed without errors",
    ] {
        assert!(main_log.contains(needle), "{needle} in {main_log}");
    }
    // In-tree the instance manager runs barman-cloud-restore; with the plugin its sidecar does.
    let restorer_log = if plugin {
        let sidecar = container_log(&pods, &job_name, Some(PLUGIN_CONTAINER)).await;
        assert!(
            main_log.contains("Restore through plugin detected"),
            "{main_log}"
        );
        assert!(!main_log.contains("Restore completed"), "{main_log}");
        sidecar
    } else {
        match pods
            .logs(
                &job_name,
                &LogParams {
                    container: Some(PLUGIN_CONTAINER.into()),
                    ..Default::default()
                },
            )
            .await
        {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 400, "{s:?}");
                assert!(s.message.contains("is not valid for pod"), "{s:?}");
            }
            other => panic!("no sidecar in-tree, got {other:?}"),
        }
        main_log.clone()
    };
    assert!(restorer_log.contains("Restore completed"), "{restorer_log}");
    // Every line of the main container inside its lifetime, in order.
    let times = log_times(&main_log);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{main_log}");
    assert!(
        started <= times[0] && *times.last().unwrap() <= finished,
        "{started}..{finished}: {main_log}"
    );

    // Healthy: the Job and its pod are gone by then.
    let healthy = await_phase(&clusters, "restore", "Cluster in healthy state").await;
    assert_eq!(healthy.status.unwrap().ready_instances, Some(1));
    for res in [
        pods.get(&job_name).await.map(|_| ()),
        pods.logs(&job_name, &LogParams::default())
            .await
            .map(|_| ()),
    ] {
        match res {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
            other => panic!("the Job pod is deleted, got {other:?}"),
        }
    }
    assert!(
        double
            .object("jobs.batch", ns, "restore-1-full-recovery")
            .is_none()
    );
    let events = double.events();
    let rv_of = |pred: &dyn Fn(&kube_api_double::StoreEvent) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .map(|e| e.rv)
            .unwrap_or_else(|| panic!("no such event in {events:#?}"))
    };
    let pod_deleted = rv_of(&|e| {
        e.typ == "DELETED" && e.resource == "pods" && e.object["metadata"]["name"] == job_name
    });
    let instance_added = rv_of(&|e| {
        e.typ == "ADDED" && e.resource == "pods" && e.object["metadata"]["name"] == "restore-1"
    });
    let job_added = rv_of(&|e| {
        e.typ == "ADDED" && e.resource == "pods" && e.object["metadata"]["name"] == job_name
    });
    let turned_healthy = rv_of(&|e| {
        e.resource == "clusters.postgresql.cnpg.io"
            && e.object["status"]["phase"] == "Cluster in healthy state"
    });
    assert!(
        job_added < instance_added && instance_added < pod_deleted && pod_deleted < turned_healthy,
        "job pod {job_added}, instance pod {instance_added}, job pod deleted {pod_deleted}, \
         healthy {turned_healthy}"
    );
    // What was logged stays readable for tests after the pod is gone.
    let written = double.written_logs();
    assert!(
        written
            .iter()
            .any(|w| w.pod == job_name && w.container == "full-recovery" && w.text == main_log)
    );

    // The instance pod: ready after the Job finished; 2/2 with the plugin's sidecar.
    let instance = pods.get("restore-1").await.unwrap();
    let ready = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .unwrap();
    assert_eq!(ready.status, "True");
    let ready_at = time(&serde_json::to_value(ready).unwrap()["lastTransitionTime"]);
    assert!(
        ready_at >= finished,
        "ready {ready_at} before the Job finished {finished}"
    );
    assert_eq!(ready_count(&instance), if plugin { (2, 2) } else { (1, 1) });
    let boot = status_of(&instance, "initContainerStatuses", "bootstrap-controller");
    assert_eq!(boot["state"]["terminated"]["reason"], "Completed");
    let boot_log = container_log(&pods, "restore-1", Some("bootstrap-controller")).await;
    assert!(
        boot_log.contains("Installing the manager executable"),
        "{boot_log}"
    );
    assert!(
        container_log(&pods, "restore-1", None)
            .await
            .contains("Starting CloudNativePG Instance Manager")
    );
}

#[tokio::test]
async fn an_in_tree_recovery_runs_its_job_then_deletes_it_once_the_instance_is_up() {
    recovery_runs_its_job_then_deletes_it(false).await;
}

#[tokio::test]
async fn a_plugin_recovery_runs_its_job_then_deletes_it_once_the_instance_is_up() {
    recovery_runs_its_job_then_deletes_it(true).await;
}

/// The messages of a log that tell a recovery's story, in order, a run of equal ones counted
/// once: the instance manager's `msg` or a PostgreSQL record's `message`, by prefix.
fn story(log: &str, keys: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let text = v["record"]["message"]
            .as_str()
            .or(v["msg"].as_str())
            .unwrap_or_default();
        if let Some(k) = keys.iter().find(|k| text.starts_with(*k))
            && out.last().map(String::as_str) != Some(*k)
        {
            out.push(k.to_string());
        }
    }
    out
}

/// The double's Job logs tell the story the live cluster's did (CNPG 1.30.0; in-tree:
/// `src/backend/kube/fixtures/logs-full-recovery-crc.jsonl`, plugin v0.14.0:
/// `tests/fixtures/logs-plugin-job-*.jsonl`), message for message where it matters.
#[tokio::test]
async fn the_job_logs_follow_the_live_cluster_captures() {
    const IN_TREE_MAIN: &str =
        include_str!("../src/backend/kube/fixtures/logs-full-recovery-crc.jsonl");
    const PLUGIN_MAIN: &str = include_str!("fixtures/logs-plugin-job-full-recovery.jsonl");
    const PLUGIN_SIDECAR: &str = include_str!("fixtures/logs-plugin-job-plugin-barman-cloud.jsonl");
    const BOOTSTRAP: &str = include_str!("fixtures/logs-plugin-job-bootstrap-controller.jsonl");
    let main_keys = [
        "Starting webserver",
        "Restore through plugin detected",
        "barman-cloud-check-wal-archive checking the first wal",
        "Recovering from external cluster",
        "Target backup found",
        "Starting barman-cloud-restore",
        "Restore completed",
        "Creating new data directory",
        "Generated recovery configuration",
        "Starting up instance",
        "starting archive recovery",
        "restored log file",
        "redo starts at",
        "consistent recovery state reached",
        "database system is ready to accept read-only connections",
        "redo done at",
        "selected new timeline ID",
        "archive recovery complete",
        "database system is ready to accept connections",
        "Configuring new PostgreSQL instance",
        "Shutting down instance",
        "database system is shut down",
        "restore command execution completed without errors",
        "Wait completed, proceeding to shutdown the manager",
    ];
    let sidecar_keys = [
        "Starting plugin listener",
        "Checking backup destination with barman-cloud-wal-archive",
        "barman-cloud-check-wal-archive checking the first wal",
        "Recovering from external cluster",
        "Downloading backup catalog",
        "Downloaded backup catalog",
        "Target backup found",
        "Starting barman-cloud-restore",
        "Restore completed",
        "sending restore response",
        "Restored WAL file",
        "Wait completed, proceeding to shutdown the manager",
    ];
    let double = ApiServerDouble::start(SimulatedCnpg {
        recovery_job_duration: Duration::from_secs(30),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = double.client();
    create_namespace(&client, "drill-f", json!({})).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "drill-f");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "drill-f");
    apply_cluster(&clusters, &recovery_cluster("intree", "intree")).await;
    apply_cluster(&clusters, &plugin_recovery_cluster("plugin", "plugin")).await;
    await_phase(&clusters, "intree", "Setting up primary").await;
    await_phase(&clusters, "plugin", "Setting up primary").await;
    let in_tree = job_pods(&pods, "intree").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let plugin = job_pods(&pods, "plugin").await[0]
        .metadata
        .name
        .clone()
        .unwrap();

    let ours = container_log(&pods, &in_tree, Some("full-recovery")).await;
    assert_eq!(story(&ours, &main_keys), story(IN_TREE_MAIN, &main_keys));
    let ours = container_log(&pods, &plugin, Some("full-recovery")).await;
    assert_eq!(story(&ours, &main_keys), story(PLUGIN_MAIN, &main_keys));
    let ours = container_log(&pods, &plugin, Some(PLUGIN_CONTAINER)).await;
    assert_eq!(
        story(&ours, &sidecar_keys),
        story(PLUGIN_SIDECAR, &sidecar_keys)
    );
    let msgs = |log: &str| -> Vec<String> {
        log.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["msg"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    for pod in [&in_tree, &plugin] {
        let ours = container_log(&pods, pod, Some("bootstrap-controller")).await;
        assert_eq!(msgs(&ours), msgs(BOOTSTRAP));
    }
    // The same segments counted both ways: what the backend reads as `restored log file`.
    let ours = container_log(&pods, &plugin, Some("full-recovery")).await;
    let sidecar = container_log(&pods, &plugin, Some(PLUGIN_CONTAINER)).await;
    assert_eq!(
        ours.matches("restored log file").count(),
        sidecar.matches("\"Restored WAL file\"").count()
    );
}

/// A `method: plugin` Backup's status as the live cluster's operator wrote it: no
/// serverName/destinationPath, the plugin's metadata instead.
#[tokio::test]
async fn a_plugin_backup_has_the_plugin_status_fields() {
    let double = ApiServerDouble::start(SimulatedCnpg::default())
        .await
        .unwrap();
    let client = double.client();
    create_namespace(&client, "drill-pb", json!({})).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "drill-pb");
    let mut source = source_cluster("src");
    source.spec.backup = None;
    let mut source = serde_json::to_value(&source).unwrap();
    source["spec"]["plugins"] = json!([{"name": PLUGIN_NAME, "isWALArchiver": true,
        "parameters": {"barmanObjectName": "store", "serverName": "src"}}]);
    let source: Cluster = serde_json::from_value(source).unwrap();
    apply_cluster(&clusters, &source).await;
    let healthy = await_phase(&clusters, "src", "Cluster in healthy state").await;
    let uid = healthy.metadata.uid.clone().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "drill-pb");
    assert_eq!(ready_count(&pods.get("src-1").await.unwrap()), (2, 2));

    let backups: Api<Backup> = Api::namespaced(client.clone(), "drill-pb");
    for (name, method) in [("plug", "plugin"), ("tree", "barmanObjectStore")] {
        let b: Backup = serde_json::from_value(json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup",
            "metadata": {"name": name},
            "spec": {"cluster": {"name": "src"}, "method": method},
        }))
        .unwrap();
        backups.create(&PostParams::default(), &b).await.unwrap();
        within(
            &format!("backup {name} completed"),
            await_condition(backups.clone(), name, |b: Option<&Backup>| {
                b.and_then(|b| b.status.as_ref())
                    .and_then(|s| s.phase.as_deref())
                    == Some("completed")
            }),
        )
        .await
        .unwrap();
    }
    let plug = double
        .object("backups.postgresql.cnpg.io", "drill-pb", "plug")
        .unwrap();
    let s = &plug["status"];
    assert!(
        s.get("serverName").is_none() && s.get("destinationPath").is_none(),
        "{s:#}"
    );
    assert_eq!(s["method"], "plugin");
    assert_eq!(s["online"], true);
    assert_eq!(s["pluginMetadata"]["pluginName"], PLUGIN_NAME);
    assert_eq!(s["pluginMetadata"]["displayName"], "BarmanCloudInstance");
    assert_eq!(s["pluginMetadata"]["version"], "0.14.0");
    assert_eq!(s["pluginMetadata"]["clusterUID"], uid.as_str());
    assert_eq!(s["pluginMetadata"]["timeline"], "1");
    assert_eq!(s["instanceID"]["podName"], "src-1");
    assert!(
        s["instanceID"]["ContainerID"]
            .as_str()
            .is_some_and(|c| c.starts_with("containerd://")),
        "{s:#}"
    );
    for f in [
        "startedAt",
        "stoppedAt",
        "reconciliationStartedAt",
        "reconciliationTerminatedAt",
    ] {
        assert_whole_seconds(&s[f]);
    }
    for f in [
        "backupId",
        "backupName",
        "beginLSN",
        "endLSN",
        "beginWal",
        "endWal",
    ] {
        assert!(s[f].as_str().is_some_and(|v| !v.is_empty()), "{f}: {s:#}");
    }
    // The in-tree method keeps where it went.
    let tree = double
        .object("backups.postgresql.cnpg.io", "drill-pb", "tree")
        .unwrap();
    assert_eq!(tree["status"]["serverName"], "src", "{tree:#}");
    assert!(tree["status"].get("pluginMetadata").is_none(), "{tree:#}");
}

#[tokio::test]
async fn hibernation_deletes_the_pods_and_sets_the_condition() {
    let double = ApiServerDouble::start(SimulatedCnpg::default())
        .await
        .unwrap();
    let client = double.client();
    create_namespace(&client, "drill-d", json!({})).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "drill-d");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "drill-d");
    apply_cluster(&clusters, &source_cluster("src")).await;
    await_phase(&clusters, "src", "Cluster in healthy state").await;
    pods.get("src-1").await.unwrap();

    let hibernating = |on: bool| {
        move |c: Option<&Cluster>| {
            c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "cnpg.io/hibernation" && c.status == "True")
                    == on
            })
        }
    };
    clusters
        .patch(
            "src",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cnpg.io/hibernation": "on"}}})),
        )
        .await
        .unwrap();
    within(
        "hibernation",
        await_condition(clusters.clone(), "src", hibernating(true)),
    )
    .await
    .unwrap();
    let left = pods
        .list(&ListParams::default().labels("cnpg.io/cluster=src"))
        .await
        .unwrap();
    assert!(left.items.is_empty(), "{:?}", left.items);
    assert!(
        double
            .object("secrets", "drill-d", "src-superuser")
            .is_some()
    );

    clusters
        .patch(
            "src",
            &PatchParams::apply("pgdrill").force(),
            &Patch::Apply(json!({
                "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                "metadata": {"name": "src", "annotations": {"cnpg.io/hibernation": "off"}},
            })),
        )
        .await
        .unwrap();
    within(
        "waking up",
        await_condition(clusters.clone(), "src", hibernating(false)),
    )
    .await
    .unwrap();
    pods.get("src-1").await.unwrap();
}

#[tokio::test]
async fn rest_semantics_watches_and_streaming_lists() {
    let double = ApiServerDouble::start_without_operator().await.unwrap();
    let client = double.client();
    create_namespace(&client, "drill-e", json!({})).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "drill-e");

    match cms.get("missing").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert!(
                s.message.contains("configmaps \"missing\" not found"),
                "{s:?}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }

    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "a", "labels": {"k": "v"}}, "data": {"x": "1"}}),
    )
    .unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    // A raw watch from the created object's resourceVersion sees later changes only.
    let mut events = cms
        .watch(&WatchParams::default().labels("k=v").timeout(20), &rv1)
        .await
        .unwrap()
        .boxed();
    let patched = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": null, "y": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched
            .data
            .clone()
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [("y".to_string(), "2".to_string())]
    );
    match within("a MODIFIED event", events.try_next()).await.unwrap() {
        Some(WatchEvent::Modified(o)) => {
            assert_eq!(
                o.metadata.resource_version,
                patched.metadata.resource_version
            )
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    // Replacing with a stale resourceVersion is a Conflict.
    let mut stale = created.clone();
    stale.data = Some([("z".to_string(), "3".to_string())].into());
    match cms.replace("a", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // A JSON patch (raw request: kube's `Patch::Json` needs its `jsonpatch` feature).
    let req = hyper::Request::patch("/api/v1/namespaces/drill-e/configmaps/a")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&json!([{"op": "add", "path": "/data/z", "value": "3"}])).unwrap())
        .unwrap();
    let after: ConfigMap = client.request(req).await.unwrap();
    assert_eq!(after.data.unwrap().get("z").map(String::as_str), Some("3"));

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let mut saw_delete = false;
    while let Some(ev) = within("the DELETED event", events.try_next())
        .await
        .unwrap()
    {
        if let WatchEvent::Deleted(o) = ev {
            assert_eq!(o.metadata.name.as_deref(), Some("a"));
            saw_delete = true;
            break;
        }
    }
    assert!(saw_delete);

    // kube-runtime's watcher in streaming-list mode (sendInitialEvents + initial-events-end
    // bookmark) sees an existing object, then a new one.
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap(),
    )
    .await
    .unwrap();
    let mut w = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    let mut created_c = false;
    within("the streaming watcher", async {
        while let Some(ev) = w.try_next().await.unwrap() {
            match ev {
                watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                    seen.push(o.metadata.name.unwrap())
                }
                watcher::Event::InitDone if !created_c => {
                    created_c = true;
                    cms.create(
                        &PostParams::default(),
                        &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
                    )
                    .await
                    .unwrap();
                }
                _ => {}
            }
            if seen.contains(&"c".to_string()) {
                break;
            }
        }
    })
    .await;
    assert_eq!(seen, ["b", "c"]);
    let watches: Vec<Call> = double.calls().into_iter().filter(Call::is_watch).collect();
    assert!(
        watches
            .iter()
            .any(|c| c.query.get("sendInitialEvents").map(String::as_str) == Some("true")),
        "{watches:?}"
    );
}
