//! `pgdrill setup`: chooses the PostgreSQL majors, then has the local backend create its OS user
//! and install its toolchain, printing their progress. Never installs anything itself.

use pgdrill::backend::local::os_user;
use pgdrill::error::{Error, exit};
use pgdrill::scenario::load_all;

use super::args::Common;

/// Arguments of `pgdrill setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// PostgreSQL majors to make available (default: every major the scenarios use).
    #[arg(long = "postgres")]
    majors: Vec<u32>,
    #[command(flatten)]
    common: Common,
}

pub async fn run(args: SetupArgs) -> anyhow::Result<i32> {
    let SetupArgs { mut majors, common } = args;
    if majors.is_empty() {
        if let Ok(loaded) = load_all(&[], &common.fixtures) {
            for l in &loaded {
                majors.push(l.scenario.postgres);
                majors.extend(l.scenario.recovery.postgres);
            }
        }
        if majors.is_empty() {
            majors.push(15);
        }
    }
    majors.sort();
    majors.dedup();
    let mut log = |line: String| println!("setup: {line}");
    os_user::ensure_pg_user(&common.pg_user, &mut log)
        .map_err(|e| Error::Infrastructure(e.to_string()))?;
    let tc = common.toolchain()?;
    tc.setup(&majors, &mut log)
        .await
        .map_err(|e| Error::Infrastructure(e.to_string()))?;
    println!(
        "setup: ready in {} (PostgreSQL runs as {})",
        tc.home.display(),
        tc.run_as.name
    );
    Ok(exit::PASSED)
}
