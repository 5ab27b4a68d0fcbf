//! Game day → the Kubernetes objects a kube game day applies, in order: a scratch namespace, the
//! S3 credentials Secret, (plugin flavour) the `ObjectStore`s, and a recovery `Cluster` that
//! restores the archive under test. Pure: no API calls, no clock.
//!
//! Never renders a Cluster that could write into the archive under test: the archive is only
//! ever an `externalClusters` entry (read side); without a scratch archive the Cluster has no
//! `backup` section and no WAL-archiver plugin, and a scratch archive that overlaps the archive
//! under test is refused ([`check_scratch_archive`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::backend::ScratchRequest;
use crate::backend::objstore::{parse_s3_url, scratch_overlaps_source};
use crate::scenario::Compression;

use super::render::{
    Flavour, MANAGED_BY, Manifest, ORIGIN, PLUGIN_NAME, RUN_ID_LABEL, RenderSettings, S3_SECRET,
    barman_store, checksum_env, label_value, namespace_name, object_store_parameters, placeholder,
    recovery_target, s3_secret,
};
use super::resources::*;

/// Label naming the game day on every object of a kube game day (instead of the scenario label,
/// so the sweep of drills never selects a game day's namespace, nor the other way round).
pub const GAMEDAY_LABEL: &str = "pgdrill.io/gameday";
/// The recovery Cluster of a game day.
pub const SCRATCH_CLUSTER: &str = "scratch";
/// Plugin flavour: the `ObjectStore` holding the archive under test (only ever read).
pub const ORIGIN_OBJECT_STORE: &str = "pgdrill-origin";
/// Plugin flavour: the `ObjectStore` of the scratch archive, when the game day has one.
pub const SCRATCH_OBJECT_STORE: &str = "pgdrill-scratch-archive";
/// Plan step of the Cluster (the other objects belong to `setup`).
pub const RESTORE_STEP: &str = "restore";
/// Compression of the scratch archive's WAL and base backups (what the local backend uses).
const SCRATCH_COMPRESSION: Compression = Compression::Gzip;

/// Why a game day's restore was refused before anything was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to restore: {0}")]
pub struct ScratchRefused(pub String);

/// The namespace of one game day in one run: `pgdrill-gameday-<name>-<run suffix>`, a DNS label.
pub fn gameday_namespace_name(run_id: &str, gameday: &str) -> String {
    namespace_name(run_id, &format!("gameday-{gameday}"))
}

/// Labels every object of a game day carries: pgdrill's managed-by and run id, and the game day.
pub fn gameday_labels(run_id: &str, gameday: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), "pgdrill".to_string()),
        (RUN_ID_LABEL.to_string(), label_value(run_id)),
        (GAMEDAY_LABEL.to_string(), label_value(gameday)),
    ])
}

/// Refuse a scratch archive that could write into the archive under test
/// (`source_destination`/`source_server`): one of the two folders inside the other, in the same
/// bucket. Also refuses what cannot be checked (a destination that is no `s3://` URL, a
/// serverName with a `/`). `None` (no scratch archive: archiving off) always passes.
pub fn check_scratch_archive(
    source_destination: &str,
    source_server: &str,
    archive: Option<&(String, String)>,
) -> Result<(), ScratchRefused> {
    let Some((destination, server)) = archive else {
        return Ok(());
    };
    for (what, url) in [
        ("the archive under test", source_destination),
        ("the scratch archive", destination.as_str()),
    ] {
        parse_s3_url(url).map_err(|e| {
            ScratchRefused(format!(
                "cannot tell whether the scratch archive overlaps the archive under test: \
                 {what}: {e}"
            ))
        })?;
    }
    if server.trim().is_empty() || server.contains('/') {
        return Err(ScratchRefused(format!(
            "`{server}` is not a serverName for the scratch archive"
        )));
    }
    match scratch_overlaps_source(source_destination, source_server, destination, server) {
        Some(why) => Err(ScratchRefused(why)),
        None => Ok(()),
    }
}

/// Everything the object builders need about one game day.
///
/// Of the [`RenderSettings`] it uses the run id, flavour, cluster-side S3 endpoint, image
/// template and storage size; `bucket` and `bucket_prefix` (a drill's own archive) play no part:
/// the archive comes from the game day.
#[derive(Debug, Clone)]
pub struct ScratchContext {
    pub settings: RenderSettings,
    pub gameday: String,
    pub namespace: String,
    /// `destinationPath` of the archive under test (its serverName comes with each request).
    pub source_destination: String,
}

impl ScratchContext {
    pub fn new(settings: &RenderSettings, gameday: &str, source_destination: &str) -> Self {
        Self {
            settings: settings.clone(),
            gameday: gameday.to_string(),
            namespace: gameday_namespace_name(&settings.run_id, gameday),
            source_destination: source_destination.to_string(),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        gameday_labels(&self.settings.run_id, &self.gameday)
    }

    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            ..Default::default()
        }
    }

    fn endpoint(&self) -> &str {
        &self.settings.cluster_s3_endpoint
    }

    /// The pre-flight check of a request ([`check_scratch_archive`]).
    pub fn check(&self, req: &ScratchRequest) -> Result<(), ScratchRefused> {
        check_scratch_archive(
            &self.source_destination,
            &req.server_name,
            req.archive.as_ref(),
        )
    }

    pub fn namespace(&self) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                labels: Some(self.labels()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The S3 credentials the Cluster reads the archive with (same keys as a drill's).
    pub fn s3_secret(&self, access_key: &str, secret_key: &str) -> Secret {
        s3_secret(self.meta(S3_SECRET), access_key, secret_key)
    }

    /// Plugin flavour: the archive under test (no compression settings: it is only read) and,
    /// with a scratch archive, the scratch archive's store. In-tree: none.
    pub fn object_stores(&self, req: &ScratchRequest) -> Vec<ObjectStore> {
        if self.settings.flavour != Flavour::Plugin {
            return Vec::new();
        }
        let store = |name: &str, destination: &str, compression: Option<Compression>| ObjectStore {
            metadata: self.meta(name),
            spec: ObjectStoreSpec {
                configuration: barman_store(destination, self.endpoint(), None, compression),
                instance_sidecar_configuration: Some(InstanceSidecarConfiguration {
                    env: checksum_env(),
                }),
            },
        };
        let mut out = vec![store(ORIGIN_OBJECT_STORE, &self.source_destination, None)];
        if let Some((destination, _)) = &req.archive {
            out.push(store(
                SCRATCH_OBJECT_STORE,
                destination,
                Some(SCRATCH_COMPRESSION),
            ));
        }
        out
    }

    /// The recovery Cluster: bootstrapped from `externalClusters[origin]` (the archive under
    /// test) to the request's target and backup; archiving only into the scratch archive, if
    /// any. Refused when the scratch archive overlaps the archive under test.
    pub fn cluster(&self, req: &ScratchRequest) -> Result<Cluster, ScratchRefused> {
        self.check(req)?;
        let image = self
            .settings
            .image_template
            .replace("{major}", &req.major.to_string());
        let mut spec = ClusterSpec {
            instances: 1,
            image_name: Some(image),
            enable_superuser_access: Some(true),
            storage: StorageConfiguration {
                size: self.settings.storage_size.clone(),
            },
            bootstrap: Some(Bootstrap {
                initdb: None,
                recovery: Some(BootstrapRecovery {
                    source: Some(ORIGIN.into()),
                    recovery_target: Some(recovery_target(&req.target, false, &req.backup_id)),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        match self.settings.flavour {
            Flavour::InTree => {
                // barman-cloud runs in the instance image: it reads the archive with this env.
                spec.env = checksum_env();
                spec.external_clusters = vec![ExternalCluster {
                    name: ORIGIN.into(),
                    barman_object_store: Some(barman_store(
                        &self.source_destination,
                        self.endpoint(),
                        Some(&req.server_name),
                        None,
                    )),
                    plugin: None,
                }];
                spec.backup =
                    req.archive
                        .as_ref()
                        .map(|(destination, server)| BackupConfiguration {
                            barman_object_store: Some(barman_store(
                                destination,
                                self.endpoint(),
                                Some(server),
                                Some(SCRATCH_COMPRESSION),
                            )),
                        });
            }
            Flavour::Plugin => {
                spec.external_clusters = vec![ExternalCluster {
                    name: ORIGIN.into(),
                    barman_object_store: None,
                    plugin: Some(PluginConfiguration {
                        name: PLUGIN_NAME.into(),
                        enabled: None,
                        is_wal_archiver: None,
                        parameters: object_store_parameters(ORIGIN_OBJECT_STORE, &req.server_name),
                    }),
                }];
                spec.plugins = req
                    .archive
                    .iter()
                    .map(|(_, server)| PluginConfiguration {
                        name: PLUGIN_NAME.into(),
                        enabled: None,
                        is_wal_archiver: Some(true),
                        parameters: object_store_parameters(SCRATCH_OBJECT_STORE, server),
                    })
                    .collect();
            }
        }
        Ok(Cluster {
            metadata: self.meta(SCRATCH_CLUSTER),
            spec,
            status: None,
        })
    }

    /// Every object of the game day in apply order, the Secret holding the given credentials.
    pub fn manifests(
        &self,
        req: &ScratchRequest,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Vec<Manifest>, ScratchRefused> {
        let cluster = self.cluster(req)?;
        let mut out = vec![
            Manifest::new("setup", "Namespace", &self.namespace, &self.namespace()),
            Manifest::new(
                "setup",
                "Secret",
                S3_SECRET,
                &self.s3_secret(access_key, secret_key),
            ),
        ];
        for store in self.object_stores(req) {
            let name = store.metadata.name.clone().unwrap_or_default();
            out.push(Manifest::new("setup", "ObjectStore", &name, &store));
        }
        out.push(Manifest::new(
            RESTORE_STEP,
            "Cluster",
            SCRATCH_CLUSTER,
            &cluster,
        ));
        Ok(out)
    }
}

/// Every object a kube game day applies for `req`, in order, credentials as placeholders.
pub fn render_gameday(
    settings: &RenderSettings,
    gameday: &str,
    source_destination: &str,
    req: &ScratchRequest,
) -> Result<Vec<Manifest>, ScratchRefused> {
    ScratchContext::new(settings, gameday, source_destination).manifests(
        req,
        &placeholder("AWS_ACCESS_KEY_ID at run time"),
        &placeholder("AWS_SECRET_ACCESS_KEY at run time"),
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::Value;

    use super::*;
    use crate::backend::kube::render::{SCENARIO_LABEL, to_yaml};
    use crate::ledger::ResolvedTarget;
    use crate::wal::Lsn;

    const SOURCE: &str = "s3://backups/prod";

    fn settings(flavour: Flavour) -> RenderSettings {
        RenderSettings {
            run_id: "20261122T024830Z-0a1f".into(),
            flavour,
            bucket: "backups".into(),
            bucket_prefix: "pgdrill/20261122T024830Z-0a1f".into(),
            cluster_s3_endpoint: "https://s3.eu-west-1.amazonaws.com".into(),
            image_template: match flavour {
                Flavour::InTree => "ghcr.io/cloudnative-pg/postgresql:{major}-system-bookworm",
                Flavour::Plugin => "ghcr.io/cloudnative-pg/postgresql:{major}-standard-bookworm",
            }
            .into(),
            storage_size: "20Gi".into(),
            azure: None,
        }
    }

    fn request(target: ResolvedTarget, archive: Option<(&str, &str)>) -> ScratchRequest {
        ScratchRequest {
            major: 16,
            server_name: "pg-prod".into(),
            backup_id: "20261121T020000".into(),
            target,
            archive: archive.map(|(d, s)| (d.to_string(), s.to_string())),
            timeout_seconds: 3600,
        }
    }

    fn time_target() -> ResolvedTarget {
        ResolvedTarget::Time(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 21, 14, 30, 0)
                .unwrap(),
        )
    }

    fn rendered(flavour: Flavour, req: &ScratchRequest) -> Vec<Manifest> {
        render_gameday(&settings(flavour), "orders_weekly", SOURCE, req).expect("renders")
    }

    fn as_yaml(ms: &[Manifest]) -> String {
        ms.iter()
            .enumerate()
            .map(|(i, m)| {
                format!(
                    "# {} (step {})\n{}",
                    m.file_name(i),
                    m.step,
                    to_yaml(&m.object)
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn cluster(ms: &[Manifest]) -> &Value {
        &ms.iter()
            .find(|m| m.kind == "Cluster")
            .expect("a Cluster")
            .object
    }

    #[test]
    fn in_tree_gameday_without_scratch_archive() {
        let ms = rendered(Flavour::InTree, &request(ResolvedTarget::Latest, None));
        insta::assert_snapshot!(as_yaml(&ms));
    }

    #[test]
    fn in_tree_gameday_with_scratch_archive() {
        let req = request(
            time_target(),
            Some(("s3://backups/gameday", "pg-prod-scratch")),
        );
        insta::assert_snapshot!(as_yaml(&rendered(Flavour::InTree, &req)));
    }

    #[test]
    fn plugin_gameday_without_scratch_archive() {
        let req = request(ResolvedTarget::Lsn(Lsn(0x3_0000_0060)), None);
        insta::assert_snapshot!(as_yaml(&rendered(Flavour::Plugin, &req)));
    }

    #[test]
    fn plugin_gameday_with_scratch_archive() {
        let req = request(
            ResolvedTarget::Latest,
            Some(("s3://backups/prod", "pg-prod-gameday")),
        );
        insta::assert_snapshot!(as_yaml(&rendered(Flavour::Plugin, &req)));
    }

    #[test]
    fn without_a_scratch_archive_nothing_archives() {
        for flavour in [Flavour::InTree, Flavour::Plugin] {
            let ms = rendered(flavour, &request(ResolvedTarget::Latest, None));
            let c = cluster(&ms);
            assert!(c["spec"].get("backup").is_none(), "{flavour:?}: {c:#}");
            assert!(c["spec"].get("plugins").is_none(), "{flavour:?}: {c:#}");
            let kinds: Vec<(&str, &str)> = ms
                .iter()
                .map(|m| (m.kind.as_str(), m.name.as_str()))
                .collect();
            assert!(
                !kinds.contains(&("ObjectStore", SCRATCH_OBJECT_STORE)),
                "{kinds:?}"
            );
        }
    }

    #[test]
    fn the_origin_is_the_archive_under_test_and_only_read() {
        let req = request(ResolvedTarget::Latest, Some(("s3://scratch/x", "y")));
        let ms = rendered(Flavour::InTree, &req);
        let origin = &cluster(&ms)["spec"]["externalClusters"][0];
        assert_eq!(origin["name"], ORIGIN);
        let store = &origin["barmanObjectStore"];
        assert_eq!(store["destinationPath"], SOURCE);
        assert_eq!(store["serverName"], "pg-prod");
        assert_eq!(store["endpointURL"], "https://s3.eu-west-1.amazonaws.com");
        // No compression settings: nothing is written through the origin.
        assert!(
            store.get("wal").is_none() && store.get("data").is_none(),
            "{store:#}"
        );
        let backup = &cluster(&ms)["spec"]["backup"]["barmanObjectStore"];
        assert_eq!(backup["destinationPath"], "s3://scratch/x");
        assert_eq!(backup["serverName"], "y");

        let ms = rendered(Flavour::Plugin, &req);
        let c = cluster(&ms);
        let params = &c["spec"]["externalClusters"][0]["plugin"]["parameters"];
        assert_eq!(params["barmanObjectName"], ORIGIN_OBJECT_STORE);
        assert_eq!(params["serverName"], "pg-prod");
        assert_eq!(c["spec"]["plugins"][0]["isWALArchiver"], true);
        assert_eq!(
            c["spec"]["plugins"][0]["parameters"]["barmanObjectName"],
            SCRATCH_OBJECT_STORE
        );
        let origin_store = ms
            .iter()
            .find(|m| m.name == ORIGIN_OBJECT_STORE)
            .expect("origin ObjectStore");
        assert_eq!(
            origin_store.object["spec"]["configuration"]["destinationPath"],
            SOURCE
        );
        assert!(
            origin_store.object["spec"]["configuration"]
                .get("wal")
                .is_none()
        );
    }

    #[test]
    fn targets_and_backup_id_are_the_chosen_ones() {
        let target_of = |t: ResolvedTarget| {
            let ms = rendered(Flavour::InTree, &request(t, None));
            cluster(&ms)["spec"]["bootstrap"]["recovery"]["recoveryTarget"].clone()
        };
        assert_eq!(
            target_of(ResolvedTarget::Latest),
            serde_json::json!({"backupID": "20261121T020000"})
        );
        assert_eq!(
            target_of(time_target()),
            serde_json::json!({"backupID": "20261121T020000",
                               "targetTime": "2026-11-21 14:30:00.000000+00"})
        );
        assert_eq!(
            target_of(ResolvedTarget::Lsn(Lsn(0x3_0000_0060))),
            serde_json::json!({"backupID": "20261121T020000", "targetLSN": "3/60"})
        );
    }

    #[test]
    fn overlapping_scratch_archives_are_refused() {
        let refused = |dest: &str, server: &str| {
            check_scratch_archive(
                SOURCE,
                "pg-prod",
                Some(&(dest.to_string(), server.to_string())),
            )
        };
        assert!(check_scratch_archive(SOURCE, "pg-prod", None).is_ok());
        assert!(refused("s3://backups/prod", "pg-prod").is_err());
        assert!(refused("s3://backups/prod/pg-prod", "x").is_err());
        assert!(refused("s3://backups", "prod").is_err());
        assert!(refused("s3://backups/prod", "pg-prod-gameday").is_ok());
        assert!(refused("s3://other/prod", "pg-prod").is_ok());
        assert!(refused("/tmp/prod", "pg-prod").is_err());
        assert!(refused("s3://backups/gameday", "a/b").is_err());
        let e = refused("s3://backups/prod", "pg-prod").unwrap_err();
        assert!(e.to_string().contains("overlaps the source archive"), "{e}");

        // The renderer refuses too, so no Cluster can be built that writes into the source.
        let req = request(
            ResolvedTarget::Latest,
            Some(("s3://backups/prod", "pg-prod")),
        );
        for flavour in [Flavour::InTree, Flavour::Plugin] {
            let ctx = ScratchContext::new(&settings(flavour), "g", SOURCE);
            assert!(ctx.cluster(&req).is_err());
            assert!(render_gameday(&settings(flavour), "g", SOURCE, &req).is_err());
        }
    }

    #[test]
    fn namespace_and_labels_name_the_game_day() {
        let ms = rendered(Flavour::InTree, &request(ResolvedTarget::Latest, None));
        assert_eq!(ms[0].kind, "Namespace");
        assert_eq!(ms[0].name, "pgdrill-gameday-orders-weekly-0a1f");
        for m in &ms {
            let labels = &m.object["metadata"]["labels"];
            assert_eq!(labels[MANAGED_BY], "pgdrill", "{}", m.name);
            assert_eq!(labels[RUN_ID_LABEL], "20261122T024830Z-0a1f");
            assert_eq!(labels[GAMEDAY_LABEL], "orders_weekly");
            assert!(labels.get(SCENARIO_LABEL).is_none(), "{labels}");
        }
        for m in &ms[1..] {
            assert_eq!(m.object["metadata"]["namespace"], ms[0].name.as_str());
        }
        let long = gameday_namespace_name("20261122T024830Z-0a1f", &"Y_".repeat(60));
        assert!(long.len() <= 63 && long.ends_with("-0a1f"), "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{long}"
        );
    }

    #[test]
    fn secrets_never_render_real_credentials() {
        let ms = rendered(Flavour::Plugin, &request(ResolvedTarget::Latest, None));
        let secret = ms.iter().find(|m| m.kind == "Secret").expect("secret");
        for key in ["ACCESS_KEY_ID", "ACCESS_SECRET_KEY"] {
            assert!(
                secret.object["stringData"][key]
                    .as_str()
                    .unwrap()
                    .starts_with('<')
            );
        }
    }
}
