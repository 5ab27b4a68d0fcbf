//! Logical backups on the local backend: `pg_dump` of the source at the runner's exported
//! snapshot, uploaded to the drill's prefix; and logical recovery into a fresh instance,
//! restored by pgdrill (`psql`/`pg_restore`) or by the user's own restore script run with seed
//! 004's environment contract. Never touches objects outside the drill's prefix, never writes
//! credentials anywhere but a child's environment.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::backend::objstore::ObjectStore;
use crate::backend::{
    BackendError, LogicalBackupDone, LogicalBackupRequest, LogicalRestoreOutcome,
    LogicalRestoreRequest, Phase, PhaseName, RecoveryAttempt, RestoreScript, Rto,
    SCRIPT_OUTPUT_LIMIT, ScriptRun, Server,
};
use crate::scenario::{DumpCompression, DumpFormat};

use super::barman::{Barman, Cloud};
use super::postgres::{NotReady, PgInstance};
use super::process::{self, Ended};
use super::toolchain::Toolchain;

/// The database and role a restore script restores into (`DB_NAME`, `DB_USER`).
pub const SCRIPT_DB: &str = "restored";
pub const SCRIPT_USER: &str = "restorer";

/// A bin directory of PostgreSQL client tools (`psql`, `pg_restore`): the target major's,
/// else the source's (client tools of an older major restore into a newer server).
fn client_bin(toolchain: &Toolchain, majors: &[u32]) -> Result<PathBuf, BackendError> {
    for m in majors {
        if let Ok(bin) = toolchain.pg_bin(*m)
            && bin.join("psql").is_file()
            && bin.join("pg_restore").is_file()
        {
            return Ok(bin);
        }
    }
    Err(BackendError::infra(format!(
        "no PostgreSQL client tools (psql, pg_restore) for major {majors:?}: install the postgresql-client package of one of them"
    )))
}

/// `pg_dump` the source (listening on its socket, port 5432) and upload the result.
pub async fn dump(
    toolchain: &Toolchain,
    src: &PgInstance,
    source_major: u32,
    store: &ObjectStore,
    req: &LogicalBackupRequest,
) -> Result<LogicalBackupDone, BackendError> {
    let bin = client_bin(toolchain, &[source_major])?;
    let work = src.dir().join("logical");
    std::fs::create_dir_all(&work)
        .map_err(|e| BackendError::io(format!("cannot create {}", work.display()), e))?;
    toolchain.run_as.chown(&work)?;
    let raw = work.join(format!("{}.raw", req.step_id));
    let mut c = src.command(bin.join("pg_dump"));
    c.arg("-h")
        .arg(src.socket_dir())
        .args([
            "-p",
            "5432",
            "-U",
            "postgres",
            "--no-owner",
            "--no-privileges",
        ])
        .arg("-d")
        .arg(&req.database)
        .arg("-f")
        .arg(&raw);
    match (req.format, req.compression) {
        (DumpFormat::Plain, _) => c.arg("-Fp"),
        (DumpFormat::Custom, DumpCompression::Gzip) => c.arg("-Fc"),
        (DumpFormat::Custom, DumpCompression::None) => c.args(["-Fc", "-Z0"]),
    };
    if let Some(snap) = &req.snapshot {
        c.arg(format!("--snapshot={snap}"));
    }
    let began = Instant::now();
    let out = process::run(c, "pg_dump", Duration::from_secs(req.timeout_seconds)).await?;
    if !out.success {
        return Err(out.failure(format!("pg_dump of database `{}` failed", req.database)));
    }
    let dump_seconds = began.elapsed().as_secs_f64();
    let mut bytes =
        std::fs::read(&raw).map_err(|e| BackendError::io(raw.display().to_string(), e))?;
    if (req.format, req.compression) == (DumpFormat::Plain, DumpCompression::Gzip) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes)
            .and_then(|()| gz.finish())
            .map(|b| bytes = b)
            .map_err(|e| BackendError::io(format!("gzip of {}", raw.display()), e))?;
    }
    let n = bytes.len() as u64;
    store.put(&req.key, bytes).await?;
    if let Err(e) = std::fs::remove_file(&raw) {
        tracing::debug!("cannot remove {}: {e}", raw.display());
    }
    Ok(LogicalBackupDone {
        bytes: n,
        dump_seconds,
    })
}

/// The fresh target: where it listens and who owns the database the script restores into.
struct ScriptTarget {
    port: u16,
    password: String,
}

/// A free TCP port on loopback (bound, then released for the server to take).
fn free_port() -> Result<u16, BackendError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BackendError::io("binding a loopback port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BackendError::io("binding a loopback port", e))
}

fn password() -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

fn not_ready(e: NotReady, deadline: Duration) -> BackendError {
    match e {
        NotReady::Exited(log) => BackendError::Exited {
            what: "the logical restore's target PostgreSQL exited at start".into(),
            log,
        },
        NotReady::Timeout(t) => BackendError::timeout(
            "the logical restore's target PostgreSQL not ready",
            deadline,
            format!(":\n{t}"),
        ),
    }
}

/// initdb and start the fresh target; with a script, TCP on loopback with password auth and
/// an empty database owned by the script's user.
async fn start_target(
    inst: &mut PgInstance,
    script: bool,
    deadline: Duration,
) -> Result<(tokio_postgres::Client, Option<ScriptTarget>), BackendError> {
    inst.initdb().await?;
    let mut settings = inst.base_settings();
    let target = if script {
        let t = ScriptTarget {
            port: free_port()?,
            password: password(),
        };
        settings.extend([
            ("listen_addresses", "127.0.0.1".to_string()),
            ("port", t.port.to_string()),
            ("password_encryption", "scram-sha-256".to_string()),
        ]);
        // pgdrill over the socket; everyone else over TCP with a password.
        inst.write_file(
            "data/pg_hba.conf",
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
            0o600,
        )?;
        Some(t)
    } else {
        None
    };
    inst.append_conf(&settings)?;
    inst.start(&[])?;
    let port = target.as_ref().map_or(5432, |t| t.port);
    let client = inst
        .wait_ready_on(port, deadline)
        .await
        .map_err(|e| not_ready(e, deadline))?;
    if let Some(t) = &target {
        // The password is a literal in the statement only, sent over the socket.
        client
            .batch_execute(&format!(
                "CREATE ROLE {SCRIPT_USER} LOGIN PASSWORD '{}'",
                t.password
            ))
            .await?;
        // CREATE DATABASE refuses to run in the implicit transaction of a multi-statement query.
        client
            .batch_execute(&format!("CREATE DATABASE {SCRIPT_DB} OWNER {SCRIPT_USER}"))
            .await?;
    }
    Ok((client, target))
}

/// Remove credentials from text a tool or script printed.
fn redact(barman: &Barman, extra: &[&str], text: &str) -> String {
    let mut t = barman.redact(text);
    for secret in extra.iter().filter(|s| !s.is_empty()) {
        t = t.replace(secret, "<redacted>");
    }
    t
}

/// Restore a logical backup into a fresh instance pushed onto `recovered` (so teardown stops
/// it), by pgdrill or by the request's script; then connect to the restored database.
pub async fn restore(
    toolchain: &Toolchain,
    drill_dir: &Path,
    store: &ObjectStore,
    barman: &Barman,
    source_major: Option<u32>,
    recovered: &mut Vec<PgInstance>,
    req: &LogicalRestoreRequest,
) -> Result<LogicalRestoreOutcome, BackendError> {
    let deadline = Duration::from_secs(req.timeout_seconds);
    let bin = toolchain.pg_bin(req.major)?;
    let majors: Vec<u32> = std::iter::once(req.major).chain(source_major).collect();
    let tools = client_bin(toolchain, &majors)?;
    let inst = PgInstance::new(
        &req.instance,
        &drill_dir.join(&req.instance),
        &bin,
        &toolchain.run_as,
    )?;
    recovered.push(inst);
    let inst = recovered.last_mut().expect("just pushed");
    let t0 = Utc::now();
    let (client, target) = start_target(inst, req.script.is_some(), deadline).await?;
    let t1 = Utc::now();
    let mut rto = Rto::of_phases(vec![Phase::new(PhaseName::InstanceInit, t0, t1)]);
    let finish = |rto: &mut Rto| {
        rto.seconds = rto.phases.iter().map(|p| p.seconds).sum();
    };
    if let (Some(script), Some(t)) = (&req.script, &target) {
        let (run, failure) =
            run_script(toolchain, inst, &tools, store, barman, req, script, t).await?;
        let end = Utc::now();
        rto.phases
            .push(Phase::new(PhaseName::RestoreScript, t1, end));
        finish(&mut rto);
        let attempt = match failure {
            Some(message) => RecoveryAttempt::Failed {
                message,
                rto: Some(rto),
            },
            None => {
                drop(client);
                let c = inst.connect_to(t.port, SCRIPT_DB).await?;
                RecoveryAttempt::Recovered {
                    server: Server::from_client(c).await?,
                    rto,
                }
            }
        };
        return Ok(LogicalRestoreOutcome {
            attempt,
            script: Some(run),
        });
    }
    // pgdrill restores it: download, then psql or pg_restore.
    let key = req.key.clone();
    let listed = store.list("logical/").await?;
    let Some(object) = listed.iter().find(|o| o.key == key) else {
        return Ok(LogicalRestoreOutcome {
            attempt: RecoveryAttempt::Failed {
                message: format!(
                    "backup object missing: {} is not in the object store",
                    store.location(&key)
                ),
                rto: None,
            },
            script: None,
        });
    };
    let bytes = store.get(&key).await?;
    let file = inst.dir().join(key.rsplit('/').next().unwrap_or("dump"));
    std::fs::write(&file, &bytes).map_err(|e| BackendError::io(file.display().to_string(), e))?;
    toolchain.run_as.chown(&file)?;
    let t2 = Utc::now();
    let mut download = Phase::new(PhaseName::DownloadDump, t1, t2);
    download.bytes = Some(object.size);
    rto.phases.push(download);
    rto.bytes_downloaded = object.size;
    let sock = inst.socket_dir().display().to_string();
    let file_s = file.display().to_string();
    let psql = tools.join("psql").display().to_string();
    let mut c = match req.format {
        DumpFormat::Plain => {
            let mut c = inst.command("/bin/bash");
            let reader = match req.compression {
                DumpCompression::Gzip => "gzip -dc -- \"$1\"",
                DumpCompression::None => "cat -- \"$1\"",
            };
            c.arg("-c")
                .arg(format!(
                    "set -o pipefail; {reader} | \"$2\" -X -q -v ON_ERROR_STOP=1 -h \"$3\" -p 5432 -U postgres -d postgres"
                ))
                .args(["restore", &file_s, &psql, &sock]);
            c
        }
        DumpFormat::Custom => {
            let mut c = inst.command(tools.join("pg_restore"));
            c.args(["--exit-on-error", "--no-owner", "-h", &sock, "-p", "5432"])
                .args(["-U", "postgres", "-d", "postgres", &file_s]);
            c
        }
    };
    c.current_dir(inst.dir());
    let out = process::run(c, "logical restore", deadline).await?;
    let t3 = Utc::now();
    let mut restored = Phase::new(PhaseName::RestoreDump, t2, t3);
    restored.bytes = Some(bytes.len() as u64);
    rto.phases.push(restored);
    finish(&mut rto);
    if !out.success {
        return Ok(LogicalRestoreOutcome {
            attempt: RecoveryAttempt::Failed {
                message: format!(
                    "logical restore failed: {}",
                    redact(barman, &[], &out.failure("").to_string()).trim_start_matches(": ")
                ),
                rto: Some(rto),
            },
            script: None,
        });
    }
    Ok(LogicalRestoreOutcome {
        attempt: RecoveryAttempt::Recovered {
            server: Server::from_client(client).await?,
            rto,
        },
        script: None,
    })
}

/// Seed 004's restore script contract, filled for the fresh target and the drill's store.
fn script_env(
    store: &ObjectStore,
    barman: &Barman,
    req: &LogicalRestoreRequest,
    t: &ScriptTarget,
) -> Vec<(String, String)> {
    let bucket = store.container().to_string();
    let provider = match &barman.cloud {
        Cloud::S3(s3) => vec![
            ("STORAGE_PROVIDER", "s3".to_string()),
            ("AWS_ACCESS_KEY_ID", s3.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", s3.secret_key.clone()),
            ("AWS_DEFAULT_REGION", s3.region.clone()),
            ("LOGICAL_BACKUP_S3_BUCKET", bucket),
            ("LOGICAL_BACKUP_S3_ENDPOINT", s3.endpoint.clone()),
        ],
        // Seed 004's Azure names; the blob endpoint is pgdrill's addition, for emulators and
        // sovereign clouds (a script may default it to https://ACCOUNT.blob.core.windows.net).
        Cloud::Azure { target, .. } => vec![
            ("STORAGE_PROVIDER", "azure".to_string()),
            ("AZURE_STORAGE_ACCOUNT_NAME", target.account.clone()),
            ("AZURE_STORAGE_ACCOUNT_KEY", target.key.clone()),
            ("AZURE_STORAGE_CONTAINER_NAME", bucket),
            ("AZURE_STORAGE_BACKUP_PATH", req.key.clone()),
            ("AZURE_STORAGE_BLOB_ENDPOINT", target.endpoint.clone()),
        ],
    };
    [("RESTORE_MODE", "non-interactive".to_string())]
        .into_iter()
        .chain(provider)
        .chain([
            ("BACKUP_FILE_PATH", req.key.clone()),
            ("DB_NAME", SCRIPT_DB.to_string()),
            ("DB_USER", SCRIPT_USER.to_string()),
            ("DB_PASS", t.password.clone()),
            ("DB_HOST", "127.0.0.1".to_string()),
            ("DB_PORT", t.port.to_string()),
        ])
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Run the user's script against the target; its run, and the failure message when it failed.
#[allow(clippy::too_many_arguments)]
async fn run_script(
    toolchain: &Toolchain,
    inst: &PgInstance,
    tools: &Path,
    store: &ObjectStore,
    barman: &Barman,
    req: &LogicalRestoreRequest,
    script: &RestoreScript,
    t: &ScriptTarget,
) -> Result<(ScriptRun, Option<String>), BackendError> {
    let name = script.name.clone();
    let mut c = inst.command(&script.path);
    let path = format!(
        "{}:{}:/usr/local/bin:/usr/bin:/bin",
        inst.bin.display(),
        tools.display()
    );
    c.env("PATH", path).env("TMPDIR", inst.dir());
    c.current_dir(inst.dir());
    for (k, v) in script_env(store, barman, req, t)
        .into_iter()
        .chain(script.env.iter().cloned())
    {
        c.env(k, v);
    }
    let log = inst.dir().join("restore-script.log");
    std::fs::write(&log, b"").map_err(|e| BackendError::io(log.display().to_string(), e))?;
    toolchain.run_as.chown(&log)?;
    let deadline = Duration::from_secs(script.timeout_seconds);
    let began = Instant::now();
    let ended = process::run_logged(c, &format!("restore script {name}"), deadline, &log).await?;
    let seconds = began.elapsed().as_secs_f64();
    let (output, elided) = process::head_and_tail(&log, SCRIPT_OUTPUT_LIMIT)
        .map_err(|e| BackendError::io(log.display().to_string(), e))?;
    let output = redact(barman, &[&t.password], &output);
    let (exit_code, timed_out) = match ended {
        Ended::Exited { code } => (code, false),
        Ended::Killed => (None, true),
    };
    let last = |o: &str| {
        let lines: Vec<&str> = o.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    };
    let failure = match ended {
        Ended::Exited { code: Some(0) } => None,
        Ended::Exited { code: Some(n) } => Some(format!(
            "restore script {name} exited with code {n}:\n{}",
            last(&output)
        )),
        Ended::Exited { code: None } => Some(format!(
            "restore script {name} was ended by a signal:\n{}",
            last(&output)
        )),
        Ended::Killed => Some(format!(
            "restore script {name} did not finish within {}s and was killed:\n{}",
            script.timeout_seconds,
            last(&output)
        )),
    };
    Ok((
        ScriptRun {
            command: name,
            exit_code,
            timed_out,
            seconds,
            output,
            output_elided: elided,
        },
        failure,
    ))
}
