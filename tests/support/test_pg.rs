//! A real PostgreSQL 15 for tests that need one without a whole drill: initdb'd in a temporary
//! directory under the pgdrill home (reachable by the PostgreSQL OS user), Unix socket only.
//! `make setup` installs what it needs.

#![allow(dead_code)]

use std::time::Duration;

use pgdrill::backend::local::postgres::{PgInstance, StopMode};
use pgdrill::backend::local::process::RunAs;
use pgdrill::backend::local::toolchain::{Toolchain, default_home};

use crate::kube_api_double::PgTarget;

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

    pub fn target(&self) -> PgTarget {
        PgTarget::Unix {
            socket_dir: self.inst.socket_dir(),
            port: 5432,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.inst.stop(StopMode::Fast, DEADLINE).await;
    }
}
