//! Running `pg_amcheck` on this host: the recovered major's binary from the toolchain, with a
//! deadline, against a local instance (as the PostgreSQL OS user over its Unix socket, trust,
//! no password) or any host and port a caller relays (the kube backend's port-forward, its
//! password in the environment only). What the output means is `backend::amcheck`'s; this file
//! only runs it, and never touches any server but the one it is given.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use crate::backend::amcheck::{AmcheckOutcome, AmcheckRun, OPTIONS};
use crate::backend::{AmcheckRequest, BackendError};

use super::postgres::PgInstance;
use super::process::{self, RunAs};
use super::toolchain::{Toolchain, default_home};

/// Run `pg_amcheck` over every database of `inst`. `NotRun` when the toolchain has no
/// `pg_amcheck` for `req.major`; an error when it could not check (exit code 1: connection,
/// permissions) or ran out of time.
pub async fn check(
    toolchain: &Toolchain,
    inst: &PgInstance,
    req: &AmcheckRequest,
) -> Result<AmcheckOutcome, BackendError> {
    let tool = match toolchain.pg_amcheck(req.major) {
        Ok(t) => t,
        Err(why) => return Ok(AmcheckOutcome::NotRun { why }),
    };
    let connection: Vec<OsString> = vec![
        "--host".into(),
        inst.socket_dir().into(),
        "--port".into(),
        "5432".into(),
        "--username".into(),
        "postgres".into(),
    ];
    run(&|| inst.command(&tool), &connection, req, &inst.name).await
}

/// Run `pg_amcheck` as the current user against `host:port` (a loopback relay), with `user`
/// and its password in the environment. `NotRun` when this host has no `pg_amcheck` for
/// `req.major` (looked up in the pgdrill home's toolchain and the system's packages).
pub async fn check_remote(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    req: &AmcheckRequest,
    what: &str,
) -> Result<AmcheckOutcome, BackendError> {
    let me = RunAs {
        name: "current user".into(),
        ids: None,
    };
    let home = std::env::temp_dir();
    let toolchain = Toolchain::new(default_home(), me.clone());
    let tool = match toolchain.pg_amcheck(req.major) {
        Ok(t) => t,
        Err(why) => {
            return Ok(AmcheckOutcome::NotRun {
                why: format!("{why} on this host"),
            });
        }
    };
    let command = || {
        let mut c = process::command(&tool, &me, &home);
        c.env("PGPASSWORD", password);
        c
    };
    let connection: Vec<OsString> = vec![
        "--host".into(),
        host.into(),
        "--port".into(),
        port.to_string().into(),
        "--username".into(),
        user.into(),
    ];
    run(&command, &connection, req, what).await
}

/// `--version`, then the check with `connection` and pgdrill's options; exit codes 0 (clean)
/// and 2 (corruption reported) are a run, anything else an error with what it said.
async fn run(
    command: &(dyn Fn() -> tokio::process::Command + Sync),
    connection: &[OsString],
    req: &AmcheckRequest,
    what: &str,
) -> Result<AmcheckOutcome, BackendError> {
    let mut c = command();
    c.arg("--version");
    let version = process::run(c, "pg_amcheck --version", Duration::from_secs(30)).await?;
    let mut c = command();
    c.args(connection).arg("--no-password").args(OPTIONS);
    let t0 = Instant::now();
    let out = process::run(c, "pg_amcheck", Duration::from_secs(req.timeout_seconds)).await?;
    match out.code {
        Some(code @ (0 | 2)) => Ok(AmcheckOutcome::Ran(AmcheckRun::from_output(
            version.stdout.trim().to_string(),
            OPTIONS.iter().map(|o| o.to_string()).collect(),
            code,
            t0.elapsed().as_secs_f64(),
            &out.stdout,
        ))),
        _ => Err(out.failure(format!("pg_amcheck on {what}"))),
    }
}
