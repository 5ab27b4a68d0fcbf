//! `pg_amcheck` against a local instance: the recovered major's binary from the toolchain, run
//! as the PostgreSQL OS user over the instance's Unix socket (trust, no password), with a
//! deadline. What its output means is `backend::amcheck`'s; this file only runs it, and never
//! touches any instance but the one it is given.

use std::time::{Duration, Instant};

use crate::backend::amcheck::{AmcheckOutcome, AmcheckRun, OPTIONS};
use crate::backend::{AmcheckRequest, BackendError};

use super::postgres::PgInstance;
use super::process;
use super::toolchain::Toolchain;

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
    let mut c = inst.command(&tool);
    c.arg("--version");
    let version = process::run(c, "pg_amcheck --version", Duration::from_secs(30)).await?;
    let mut c = inst.command(&tool);
    c.arg("--host")
        .arg(inst.socket_dir())
        .args(["--port", "5432", "--username", "postgres", "--no-password"])
        .args(OPTIONS);
    let t0 = Instant::now();
    let out = process::run(c, "pg_amcheck", Duration::from_secs(req.timeout_seconds)).await?;
    match out.code {
        // 0: nothing found; 2: corruption found (its report is on stdout).
        Some(code @ (0 | 2)) => Ok(AmcheckOutcome::Ran(AmcheckRun::from_output(
            version.stdout.trim().to_string(),
            OPTIONS.iter().map(|o| o.to_string()).collect(),
            code,
            t0.elapsed().as_secs_f64(),
            &out.stdout,
        ))),
        _ => Err(out.failure(format!("pg_amcheck on instance {}", inst.name))),
    }
}
