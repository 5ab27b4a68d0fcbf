//! Command line: parses arguments, wires the library together, maps results to exit codes.
//! The only place (with main.rs) that uses anyhow; it never implements drill logic itself.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::{mpsc, watch};

use pgdrill::backend::local::process::{self, RunAs};
use pgdrill::backend::local::s3server::{S3Credentials, S3Server};
use pgdrill::backend::local::toolchain::{Toolchain, default_home};
use pgdrill::backend::local::{LocalBackend, LocalOptions};
use pgdrill::backend::objstore::S3Target;
use pgdrill::error::{Error, exit};
use pgdrill::report::{self, Reporter};
use pgdrill::runner::{self, RunOptions};
use pgdrill::scenario::{self, LoadedScenario, Problem, ScenarioError};

#[derive(Debug, Parser)]
#[command(
    name = "pgdrill",
    version,
    about = "Disaster-recovery drills for PostgreSQL backed up with barman-cloud"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendKind {
    Local,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run drills: every scenario file in PATHS (files or directories; default `scenarios/`).
    Run {
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "local")]
        backend: BackendKind,
        /// Scenarios run at the same time.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Only scenarios with this tag (repeatable: any of them).
        #[arg(long)]
        filter: Vec<String>,
        /// Where `<run-id>/` and the `latest` link are written.
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
        /// Keep servers, directories and archives after the run, and print where they are.
        #[arg(long, env = "PGDRILL_KEEP", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
        keep: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Check scenario files without running anything.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
    },
    /// List the scenarios in PATHS (default `scenarios/`).
    List { paths: Vec<PathBuf> },
    /// Install barman-cloud (Python venv) and PostgreSQL server binaries for the local backend.
    Setup {
        /// PostgreSQL majors to make available (default: every major the scenarios use).
        #[arg(long = "postgres")]
        majors: Vec<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Print the JSON Schema of scenario files.
    Schema,
    /// Serve a directory as an S3 endpoint on loopback (the embedded endpoint, standalone).
    ServeS3 {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 9000)]
        port: u16,
        #[arg(long, env = "AWS_ACCESS_KEY_ID")]
        access_key: String,
        #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_key: String,
        #[arg(long, default_value = "pgdrill")]
        bucket: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// Unprivileged OS user for PostgreSQL and barman when pgdrill runs as root.
    #[arg(long, env = "PGDRILL_PG_USER", default_value = "postgres")]
    pg_user: String,
    /// Where tools and run directories live (must be reachable by the PostgreSQL user).
    #[arg(long, env = "PGDRILL_HOME")]
    home: Option<PathBuf>,
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct S3Args {
    /// Use this S3 endpoint instead of the embedded one (credentials from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY). The bucket must exist; pgdrill writes only under its run prefix.
    #[arg(long)]
    s3_endpoint: Option<String>,
    #[arg(long, default_value = "pgdrill")]
    s3_bucket: String,
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    s3_region: String,
}

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run {
            paths,
            backend: BackendKind::Local,
            jobs,
            filter,
            report_dir,
            keep,
            common,
            s3,
        } => run_drills(paths, jobs, filter, report_dir, keep, common, s3).await,
        Command::Validate { paths, fixtures } => {
            let loaded = load_all(&paths, &fixtures)?;
            for l in &loaded {
                println!("ok: {} ({})", l.path.display(), l.scenario.name);
            }
            Ok(exit::PASSED)
        }
        Command::List { paths } => {
            let loaded = load_all(&paths, Path::new("fixtures"))?;
            for l in &loaded {
                let s = &l.scenario;
                println!(
                    "{:<28} [{}] {}",
                    s.name,
                    s.tags.join(","),
                    s.description.lines().next().unwrap_or("")
                );
            }
            Ok(exit::PASSED)
        }
        Command::Setup { majors, common } => setup(majors, common).await,
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&scenario::json_schema())?
            );
            Ok(exit::PASSED)
        }
        Command::ServeS3 {
            dir,
            port,
            access_key,
            secret_key,
            bucket,
        } => {
            let creds = S3Credentials {
                access_key,
                secret_key,
            };
            let buckets: Vec<&str> = bucket.iter().map(String::as_str).collect();
            let s = S3Server::start(&dir, port, &creds, &buckets).await?;
            println!("serving {} at {} (Ctrl-C stops)", dir.display(), s.endpoint);
            tokio::signal::ctrl_c().await?;
            s.shutdown().await;
            Ok(exit::PASSED)
        }
    }
}

/// Scenario files named by `paths` (directories contribute their *.yaml / *.yml, sorted).
fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let default = [PathBuf::from("scenarios")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
            found.sort();
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(Error::Usage(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    if files.is_empty() {
        return Err(Error::Usage("no scenario files found".into()));
    }
    Ok(files)
}

/// Load and validate every file; all problems of all files are reported together.
fn load_all(paths: &[PathBuf], fixtures: &Path) -> Result<Vec<LoadedScenario>, Error> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut loaded: Vec<LoadedScenario> = Vec::new();
    for f in scenario_files(paths)? {
        match scenario::load_file(&f).and_then(|l| scenario::validate(&l, fixtures).map(|_| l)) {
            Ok(l) => loaded.push(l),
            Err(e) => problems.extend(e.problems),
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for l in &loaded {
        if let Some(first) = seen.insert(l.scenario.name.clone(), l.path.clone()) {
            problems.push(Problem {
                file: l.path.clone(),
                line: 1,
                column: 1,
                scenario: Some(l.scenario.name.clone()),
                step: None,
                message: format!(
                    "scenario name `{}` is also used by {}",
                    l.scenario.name,
                    first.display()
                ),
                hint: Some("scenario names must be unique within a run: rename one".into()),
            });
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(ScenarioError { problems }.into())
    }
}

fn toolchain(common: &Common) -> Result<Toolchain, Error> {
    let home = common.home.clone().unwrap_or_else(default_home);
    let run_as =
        RunAs::detect(&common.pg_user).map_err(|e| Error::Infrastructure(e.to_string()))?;
    Ok(Toolchain::new(home, run_as))
}

async fn setup(mut majors: Vec<u32>, common: Common) -> anyhow::Result<i32> {
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
    ensure_pg_user(&common.pg_user)?;
    let tc = toolchain(&common)?;
    let mut log = |line: String| println!("setup: {line}");
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

/// As root, create the unprivileged PostgreSQL user if it is missing.
fn ensure_pg_user(user: &str) -> Result<(), Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || process::lookup_user(user).is_some() {
        return Ok(());
    }
    println!("setup: creating system user `{user}` for PostgreSQL");
    let st = std::process::Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/bin/sh",
            user,
        ])
        .status()
        .map_err(|e| Error::Infrastructure(format!("useradd: {e}")))?;
    if !st.success() {
        return Err(Error::Infrastructure(format!(
            "useradd {user} failed ({st})"
        )));
    }
    Ok(())
}

fn new_run_id() -> String {
    use rand::Rng;
    let suffix: u16 = rand::rng().random();
    format!(
        "{}-{suffix:04x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    )
}

async fn run_drills(
    paths: Vec<PathBuf>,
    jobs: usize,
    filter: Vec<String>,
    report_root: PathBuf,
    keep: bool,
    common: Common,
    s3: S3Args,
) -> anyhow::Result<i32> {
    let mut loaded = load_all(&paths, &common.fixtures)?;
    if !filter.is_empty() {
        loaded.retain(|l| l.scenario.tags.iter().any(|t| filter.contains(t)));
        if loaded.is_empty() {
            return Err(Error::Usage(format!("no scenario has a tag among {filter:?}")).into());
        }
    }
    let tc = toolchain(&common)?;
    tc.check_barman()
        .map_err(|e| Error::Infrastructure(e.to_string()))?;
    for l in &loaded {
        for m in std::iter::once(l.scenario.postgres).chain(l.scenario.recovery.postgres) {
            tc.pg_bin(m)
                .map_err(|e| Error::Infrastructure(e.to_string()))?;
        }
    }
    let run_id = new_run_id();
    let report_dir = report::prepare_run_dir(&report_root, &run_id).map_err(Error::Report)?;
    let run_dir = tc.home.join("runs").join(&run_id);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    tc.run_as
        .chown(&run_dir)
        .map_err(|e| Error::Infrastructure(e.to_string()))?;

    let (server, target, external) = match s3.s3_endpoint {
        Some(endpoint) => {
            let (Ok(ak), Ok(sk)) = (
                std::env::var("AWS_ACCESS_KEY_ID"),
                std::env::var("AWS_SECRET_ACCESS_KEY"),
            ) else {
                return Err(Error::Usage(
                    "--s3-endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
                )
                .into());
            };
            let t = S3Target {
                endpoint,
                region: s3.s3_region,
                bucket: s3.s3_bucket,
                access_key: ak,
                secret_key: sk,
            };
            (None, t, true)
        }
        None => {
            let creds = S3Credentials::random();
            let server = S3Server::start(&run_dir.join("s3"), 0, &creds, &[&s3.s3_bucket])
                .await
                .map_err(|e| Error::Infrastructure(e.to_string()))?;
            let t = S3Target {
                endpoint: server.endpoint.clone(),
                region: s3.s3_region,
                bucket: s3.s3_bucket,
                access_key: creds.access_key,
                secret_key: creds.secret_key,
            };
            (Some(server), t, false)
        }
    };
    let backend = Arc::new(LocalBackend::new(LocalOptions {
        toolchain: tc.clone(),
        s3: target,
        run_dir: run_dir.clone(),
        bucket_prefix: format!("pgdrill/{run_id}"),
        external_s3: external,
    }));

    // First Ctrl-C: cancel and tear down. Second: kill every process group and leave.
    let (cancel_tx, cancel_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\npgdrill: interrupted; tearing down (Ctrl-C again to kill everything now)");
            let _ = cancel_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                process::kill_all_groups();
                std::process::exit(130);
            }
        }
    });

    let (tx, mut rx) = mpsc::unbounded_channel();
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut reporters = report::standard_reporters(&report_dir, Box::new(stdout), tty);
    let consumer = tokio::spawn(async move {
        let mut errors = Vec::new();
        while let Some(ev) = rx.recv().await {
            if let Err(e) = reporters.on_event(&ev) {
                errors.push(e);
            }
        }
        if let Err(e) = reporters.finish() {
            errors.push(e);
        }
        errors
    });
    let opts = RunOptions {
        run_id: run_id.clone(),
        jobs,
        keep,
        fixtures_dir: common.fixtures.clone(),
        report_dir: report_dir.clone(),
    };
    let summary = runner::run_all(backend, loaded, &opts, tx, cancel_rx.clone()).await;
    let report_errors = consumer.await.unwrap_or_default();

    if let Some(s) = server {
        s.shutdown().await;
    }
    if keep {
        println!("kept (PGDRILL_KEEP): run directory {}", run_dir.display());
        if !external {
            println!(
                "  its archive can be served again: pgdrill serve-s3 --dir {}",
                run_dir.join("s3").display()
            );
        }
    } else if let Err(e) = std::fs::remove_dir_all(&run_dir) {
        eprintln!("pgdrill: cannot remove {}: {e}", run_dir.display());
    }
    println!(
        "{} passed, {} failed, {} errors; reports in {}",
        summary.passed(),
        summary.failed(),
        summary.errors(),
        report_dir.display()
    );
    if *cancel_rx.borrow() {
        return Ok(130);
    }
    if let Some(e) = report_errors.into_iter().next() {
        return Err(Error::Report(e).into());
    }
    Ok(summary.exit_code())
}
