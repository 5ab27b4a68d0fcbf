//! Tests of the Kubernetes API server double (`tests/support/kube_api_double.rs`) that need a
//! real PostgreSQL 15 behind it, started with pgdrill's local backend (`make setup` installs
//! it): a port-forward reaching it, and Backups completed with its WAL positions. The other
//! tests of the double run offline (`offline_kube_api_double.rs`). The simulated operator is a
//! fake: these tests prove the double speaks the protocol kube 5 expects, nothing about CNPG.

#[path = "support/kube_api_double.rs"]
mod kube_api_double;
#[path = "support/kube_double_client.rs"]
mod kube_double_client;
#[path = "support/test_pg.rs"]
mod test_pg;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use pgdrill::backend::kube::resources::{Backup, Cluster};
use serde_json::json;

use kube_api_double::{ApiServerDouble, Call, PgTarget, SimulatedCnpg};
use kube_double_client::{apply_cluster, await_phase, create_namespace, source_cluster, within};
use test_pg::TestPg;

/// `X/Y` → u64.
fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap_or_else(|| panic!("LSN {s}"));
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// Each `(method, path, query key=value)` appears in `calls`, in this order.
/// (method, path, one query `key=value` the call must carry).
type Expected<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>);

fn assert_in_order(calls: &[Call], want: &[Expected]) {
    let mut i = 0;
    for (method, path, q) in want {
        let found = calls[i..].iter().position(|c| {
            c.method == *method
                && c.path == *path
                && q.is_none_or(|(k, v)| c.query.get(k).map(String::as_str) == Some(v))
        });
        match found {
            Some(p) => i += p + 1,
            None => panic!(
                "no {method} {path} {q:?} after call #{i} in:\n{}",
                calls
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_becomes_healthy_and_port_forward_reaches_postgres() {
    let pg = TestPg::start("double-pf", &[]).await;
    let double = ApiServerDouble::start(SimulatedCnpg {
        postgres: Some(PgTarget::of(&pg.inst)),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = double.client();
    create_namespace(&client, "drill-a", json!({"pgdrill.io/run": "r1"})).await;

    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "drill-a");
    apply_cluster(&clusters, &source_cluster("src")).await;
    let healthy = await_phase(&clusters, "src", "Cluster in healthy state").await;
    let status = healthy.status.unwrap();
    assert_eq!(status.instances, Some(1));
    assert_eq!(status.ready_instances, Some(1));
    assert_eq!(status.current_primary.as_deref(), Some("src-1"));
    assert_eq!(status.timeline_id, Some(1));
    for t in ["Ready", "ContinuousArchiving"] {
        let c = status.conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(c.status, "True", "{t}");
        assert!(c.last_transition_time.is_some());
    }

    // The primary pod, as CNPG labels it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "drill-a");
    let primary = pods
        .list(&ListParams::default().labels("cnpg.io/cluster=src,cnpg.io/instanceRole=primary"))
        .await
        .unwrap();
    assert_eq!(primary.items.len(), 1);
    let pod = &primary.items[0];
    assert_eq!(pod.metadata.name.as_deref(), Some("src-1"));
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .unwrap();
    assert_eq!(ready.status, "True");
    assert!(ready.last_transition_time.is_some());

    // The superuser secret.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "drill-a");
    let secret = secrets.get("src-superuser").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    let data = secret.data.unwrap();
    let user = String::from_utf8(data["username"].0.clone()).unwrap();
    let password = String::from_utf8(data["password"].0.clone()).unwrap();
    assert_eq!(user, "postgres");

    // Port-forward to the real PostgreSQL.
    let mut pf = pods.portforward("src-1", &[5432]).await.unwrap();
    let stream = pf.take_stream(5432).unwrap();
    let (pgc, conn) = tokio_postgres::Config::new()
        .user(&user)
        .password(&password)
        .dbname("postgres")
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let one: i32 = pgc.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let sock: String = pgc
        .query_one("SELECT current_setting('unix_socket_directories')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sock, pg.inst.socket_dir().display().to_string());
    drop(pgc);
    within("the PostgreSQL connection to end", conn)
        .await
        .unwrap()
        .unwrap();
    within("the port-forward to close", pf.join())
        .await
        .unwrap();

    // A port-forward to a missing pod is a NotFound Status.
    match pods.portforward("nope-1", &[5432]).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{s:?}"),
        Err(e) => panic!("expected an API error, got {e}"),
        Ok(_) => panic!("expected an API error, got a port-forward"),
    }

    // (4) The call log.
    let calls = double.calls();
    assert_in_order(
        &calls,
        &[
            ("POST", "/api/v1/namespaces", None),
            (
                "PATCH",
                "/apis/postgresql.cnpg.io/v1/namespaces/drill-a/clusters/src",
                Some(("fieldManager", "pgdrill")),
            ),
            (
                "GET",
                "/apis/postgresql.cnpg.io/v1/namespaces/drill-a/clusters",
                Some(("fieldSelector", "metadata.name=src")),
            ),
            (
                "GET",
                "/api/v1/namespaces/drill-a/pods",
                Some((
                    "labelSelector",
                    "cnpg.io/cluster=src,cnpg.io/instanceRole=primary",
                )),
            ),
            (
                "GET",
                "/api/v1/namespaces/drill-a/secrets/src-superuser",
                None,
            ),
            (
                "GET",
                "/api/v1/namespaces/drill-a/pods/src-1/portforward",
                Some(("ports", "5432")),
            ),
            (
                "GET",
                "/api/v1/namespaces/drill-a/pods/nope-1/portforward",
                None,
            ),
        ],
    );
    let apply = calls
        .iter()
        .find(|c| c.method == "PATCH")
        .expect("the apply");
    assert_eq!(
        apply.patch_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(apply.status, 201, "an apply that creates answers 201");
    let pf_call = calls
        .iter()
        .find(|c| c.path.ends_with("/src-1/portforward"))
        .unwrap();
    assert_eq!(pf_call.status, 101);
    assert!(
        calls
            .iter()
            .any(|c| c.path.ends_with("/nope-1/portforward") && c.status == 404)
    );
    // Every watch `await_condition` opened is scoped to the object by a name field selector.
    for c in calls.iter().filter(|c| c.is_watch()) {
        assert_eq!(
            c.query.get("fieldSelector").map(String::as_str),
            Some("metadata.name=src"),
            "{c}"
        );
    }

    drop(double);
    pg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_completes_with_wal_positions_from_the_real_postgres() {
    let pg = TestPg::start("double-backup", &[]).await;
    let double = ApiServerDouble::start(SimulatedCnpg {
        postgres: Some(PgTarget::of(&pg.inst)),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = double.client();
    create_namespace(&client, "drill-b", json!({})).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "drill-b");
    apply_cluster(&clusters, &source_cluster("src")).await;
    await_phase(&clusters, "src", "Cluster in healthy state").await;

    let direct = pg.inst.connect().await.unwrap();
    direct
        .batch_execute("CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 1000)")
        .await
        .unwrap();
    let before: String = direct
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);

    let backups: Api<Backup> = Api::namespaced(client.clone(), "drill-b");
    let mut ids = Vec::new();
    for name in ["base-1", "base-2"] {
        let b: Backup = serde_json::from_value(json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup",
            "metadata": {"name": name},
            "spec": {"cluster": {"name": "src"}, "method": "barmanObjectStore"},
        }))
        .unwrap();
        // One created with POST, one with server-side apply (as the drill does).
        if name == "base-1" {
            backups.create(&PostParams::default(), &b).await.unwrap();
        } else {
            backups
                .patch(
                    name,
                    &PatchParams::apply("pgdrill").force(),
                    &Patch::Apply(&b),
                )
                .await
                .unwrap();
        }
        let done = within(
            &format!("backup {name} completed"),
            await_condition(backups.clone(), name, |b: Option<&Backup>| {
                b.and_then(|b| b.status.as_ref())
                    .and_then(|s| s.phase.as_deref())
                    == Some("completed")
            }),
        )
        .await
        .unwrap()
        .unwrap();
        let s = done.status.unwrap();
        let begin = parse_lsn(s.begin_lsn.as_deref().unwrap());
        let end = parse_lsn(s.end_lsn.as_deref().unwrap());
        assert!(begin >= parse_lsn(&before), "{s:?}");
        assert!(end >= begin, "{s:?}");
        let now: String = direct
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        assert!(end <= parse_lsn(&now), "{s:?}");
        let wal = s.begin_wal.unwrap();
        assert_eq!(wal.len(), 24, "{wal}");
        assert!(wal.starts_with("00000001"), "{wal}");
        assert_eq!(s.end_wal.unwrap().len(), 24);
        for t in [s.started_at.unwrap(), s.stopped_at.unwrap()] {
            chrono::DateTime::parse_from_rfc3339(&t).unwrap();
        }
        assert_eq!(s.server_name.as_deref(), Some("src"));
        assert_eq!(
            s.destination_path.as_deref(),
            Some("s3://pgdrill/run-1/src")
        );
        let id = s.backup_id.unwrap();
        assert_eq!(id.len(), 15, "{id}");
        chrono::NaiveDateTime::parse_from_str(&id, "%Y%m%dT%H%M%S").unwrap();
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "backup ids are unique");
    let c = clusters.get("src").await.unwrap().status.unwrap();
    assert!(c.last_successful_backup.is_some());
    assert!(c.first_recoverability_point.is_some());

    // A hook can dictate the status; a configured failure fails the backup.
    double.on_backup(|ctx| {
        (ctx.name == "hooked").then(|| {
            json!({"phase": "completed", "backupId": ctx.backup_id,
                                              "beginLSN": "0/1", "endLSN": "0/2"})
        })
    });
    double.fail_backup("broken", "can't upload: access denied");
    for name in ["hooked", "broken"] {
        let b: Backup = serde_json::from_value(json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup",
            "metadata": {"name": name}, "spec": {"cluster": {"name": "src"}},
        }))
        .unwrap();
        backups.create(&PostParams::default(), &b).await.unwrap();
    }
    let hooked = within(
        "hooked backup",
        await_condition(backups.clone(), "hooked", |b: Option<&Backup>| {
            b.and_then(|b| b.status.as_ref()).is_some()
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(hooked.status.unwrap().end_lsn.as_deref(), Some("0/2"));
    let broken = within(
        "broken backup",
        await_condition(backups.clone(), "broken", |b: Option<&Backup>| {
            b.and_then(|b| b.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("failed")
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        broken
            .status
            .unwrap()
            .error
            .unwrap()
            .contains("access denied")
    );

    drop(direct);
    drop(double);
    pg.stop().await;
}
