//! A real PostgreSQL 15 for tests that need one without a whole drill: initdb'd in a temporary
//! directory under the pgdrill home (reachable by the PostgreSQL OS user), Unix socket only;
//! and a test-owned embedded S3 endpoint with local drills into it. `make setup` installs what
//! it needs. Only tests of the local and live tiers declare this module; it knows nothing of
//! the API-server double (`PgTarget::of` in `support/kube_api_double.rs` points it at one).

#![allow(dead_code)]

use std::time::Duration;

use pgdrill::backend::local::postgres::{PgInstance, StopMode};
use pgdrill::backend::local::process::RunAs;
use pgdrill::backend::local::toolchain::{Toolchain, default_home};

const DEADLINE: Duration = Duration::from_secs(30);

/// A temporary directory under `<pgdrill home>/runs`, owned by the PostgreSQL OS user.
pub fn run_dir(prefix: &str) -> (Toolchain, tempfile::TempDir) {
    let run_as = RunAs::detect("postgres").expect("a PostgreSQL OS user (make setup)");
    let home = default_home();
    let runs = home.join("runs");
    std::fs::create_dir_all(&runs).expect("pgdrill runs directory");
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&runs)
        .expect("temp dir");
    run_as.chown(dir.path()).expect("chown temp dir");
    (Toolchain::new(home, run_as), dir)
}

pub struct TestPg {
    pub inst: PgInstance,
    _dir: tempfile::TempDir,
}

impl TestPg {
    /// Start PostgreSQL 15 with pgdrill's base settings plus `extra`.
    pub async fn start(name: &str, extra: &[(&str, &str)]) -> Self {
        let (toolchain, dir) = run_dir("test-pg-");
        let bin = toolchain
            .pg_bin(15)
            .expect("PostgreSQL 15 binaries (make setup)");
        let mut inst = PgInstance::new(name, &dir.path().join("pg"), &bin, &toolchain.run_as)
            .expect("instance dir");
        inst.initdb().await.expect("initdb");
        let mut conf = inst.base_settings();
        conf.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        inst.append_conf(&conf).expect("conf");
        inst.start(&[]).expect("start postgres");
        if let Err(e) = inst.wait_ready(DEADLINE).await {
            panic!("PostgreSQL did not start: {e:?}");
        }
        Self { inst, _dir: dir }
    }

    pub async fn stop(mut self) {
        let _ = self.inst.stop(StopMode::Fast, DEADLINE).await;
    }
}

/// An embedded S3 endpoint a test owns (so archives outlive the drills that write them), and
/// local drills that archive into it under `bucket_prefix`.
pub struct TestArchive {
    pub s3: pgdrill::backend::local::s3server::S3Server,
    pub creds: pgdrill::backend::credentials::KeyPair,
    pub target: pgdrill::backend::objstore::S3Target,
    pub toolchain: Toolchain,
    pub run_dir: tempfile::TempDir,
    _s3_dir: tempfile::TempDir,
}

impl TestArchive {
    /// Start the endpoint with bucket `pgdrill`; run directories are named `dir_prefix*`.
    pub async fn start(dir_prefix: &str) -> Self {
        Self::start_on(std::net::IpAddr::from([127, 0, 0, 1]), dir_prefix).await
    }

    /// [`TestArchive::start`] listening on `address` (the live cluster's pods reach the node's
    /// bridge address).
    pub async fn start_on(address: std::net::IpAddr, dir_prefix: &str) -> Self {
        use pgdrill::backend::credentials::KeyPair;
        use pgdrill::backend::local::s3server::S3Server;
        let (toolchain, run_dir) = run_dir(dir_prefix);
        let s3_dir = tempfile::tempdir().expect("s3 dir");
        let creds = KeyPair::random();
        let s3 = S3Server::start_on(address, s3_dir.path(), 0, &creds, &["pgdrill"])
            .await
            .expect("embedded S3");
        let target = pgdrill::backend::objstore::S3Target {
            endpoint: s3.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: "pgdrill".into(),
            access_key: creds.access_key.clone(),
            secret_key: creds.secret_key.clone(),
        };
        Self {
            s3,
            creds,
            target,
            toolchain,
            run_dir,
            _s3_dir: s3_dir,
        }
    }

    /// Run the scenario `file` on the local backend into this endpoint (180 s deadline).
    pub async fn drill(
        &self,
        bucket_prefix: &str,
        file: &str,
        keep: bool,
    ) -> pgdrill::runner::ScenarioResult {
        self.drill_into(None, bucket_prefix, file, keep).await
    }

    /// [`TestArchive::drill`], Azure scenarios archiving to `azure` (an Azurite the test owns:
    /// teardown leaves the archive in place).
    pub async fn drill_into(
        &self,
        azure: Option<&pgdrill::backend::azure::AzureTarget>,
        bucket_prefix: &str,
        file: &str,
        keep: bool,
    ) -> pgdrill::runner::ScenarioResult {
        use pgdrill::backend::local::{LocalBackend, LocalOptions};
        let backend = LocalBackend::new(LocalOptions {
            toolchain: self.toolchain.clone(),
            s3: self.target.clone(),
            run_dir: self.run_dir.path().to_path_buf(),
            bucket_prefix: bucket_prefix.into(),
            // The endpoint belongs to the test: teardown leaves the archive in place.
            external_s3: false,
            faults: Some(self.s3.faults.clone()),
            azure: azure.cloned(),
            external_azure: false,
        });
        let loaded = pgdrill::scenario::load_file(std::path::Path::new(file)).expect("scenario");
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let (_c, cancel) = tokio::sync::watch::channel(false);
        tokio::time::timeout(
            Duration::from_secs(180),
            pgdrill::runner::run_scenario(
                &backend,
                &loaded,
                std::path::Path::new("fixtures"),
                &pgdrill::runner::Emitter { tx },
                cancel,
                keep.into(),
            ),
        )
        .await
        .expect("drill finished within 180s")
    }

    /// Since the last `operations.clear()`, the endpoint served reads only (any write, batch
    /// delete or bucket-level change fails), and some of them read `folder`.
    pub fn assert_only_reads(&self, folder: &str) {
        let ops = self.s3.operations.entries();
        assert!(
            ops.iter().any(|o| o.contains(folder)),
            "nothing read {folder}: {ops:?}"
        );
        for op in &ops {
            let verb = op.split(' ').next().unwrap_or_default();
            assert!(
                matches!(
                    verb,
                    "ListObjectsV2" | "ListObjects" | "GetObject" | "HeadObject" | "HeadBucket"
                ),
                "only reads were expected, the endpoint served {op}"
            );
        }
    }
}
