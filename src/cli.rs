//! Command line: parses arguments, wires the library together, maps results to exit codes.
//! The only place (with main.rs) that uses anyhow; it never implements drill logic itself.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod gameday;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::{mpsc, watch};

use pgdrill::backend::kube::render::{Flavour, RenderSettings, render_scenario, to_yaml};
use pgdrill::backend::kube::{KubeBackend, KubeOptions};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Real PostgreSQL processes, barman-cloud and an S3 endpoint on this machine.
    Local,
    /// CloudNativePG on the current kubeconfig context, object storage at --s3-endpoint.
    Kube,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlavourArg {
    /// `spec.backup.barmanObjectStore` (in-tree barman-cloud).
    InTree,
    /// The barman-cloud plugin (`ObjectStore` resource, `spec.plugins`).
    Plugin,
}

impl From<FlavourArg> for Flavour {
    fn from(f: FlavourArg) -> Self {
        match f {
            FlavourArg::InTree => Flavour::InTree,
            FlavourArg::Plugin => Flavour::Plugin,
        }
    }
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
        /// Use this seed instead of each scenario's `seed` (row payloads and `target: random`
        /// picks), e.g. to replay a failed random target; reports record the seed used.
        #[arg(long)]
        seed: Option<u64>,
        /// Leave out (and list on stderr) scenarios the backend cannot run, instead of
        /// refusing the whole run; e.g. `--backend kube` on a folder with local-only faults.
        #[arg(long)]
        skip_unsupported: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        s3: S3Args,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Write every manifest a kube drill would apply, in order, without a cluster.
    Render {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "kube")]
        backend: BackendKind,
        /// Directory to write `<scenario>/NN-kind-name.yaml` into.
        #[arg(long)]
        out: PathBuf,
        /// Replace files an earlier render wrote into `<out>/<scenario>/`.
        #[arg(long)]
        force: bool,
        #[arg(long, default_value = "pgdrill")]
        s3_bucket: String,
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Audit a barman-cloud archive, read-only: WAL continuity per timeline, which backups can
    /// be recovered how far, base backup and WAL freshness. Exit 1 when a check fails.
    Audit(AuditArgs),
    /// Restore test of a real barman-cloud archive: audit it, restore into a scratch instance
    /// (never writing to the archive), run the checks, report RTO/RPO.
    Gameday(gameday::GamedayArgs),
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
        /// Address to listen on (the live cluster serves its pods on its bridge address).
        #[arg(long, default_value = "127.0.0.1")]
        address: std::net::IpAddr,
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
pub struct AuditArgs {
    /// `s3://BUCKET/PATH`: the folder holding the serverName folders (CNPG's destinationPath).
    pub url: String,
    pub server_name: String,
    /// S3 endpoint (default: AWS). Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    pub region: String,
    /// AWS shared-credentials profile (default: the AWS_* variables, then AWS_PROFILE).
    #[arg(long)]
    pub profile: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the checks as a JUnit file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Fail when the newest base backup is older (e.g. `25h`, `90m`).
    #[arg(long, default_value = "25h", value_parser = parse_age)]
    pub max_backup_age: u64,
    /// Fail when the newest archived WAL segment is older (e.g. `10m`).
    #[arg(long, default_value = "10m", value_parser = parse_age)]
    pub max_wal_age: u64,
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

#[derive(Debug, clap::Args)]
pub struct KubeArgs {
    /// Backup integration of the CloudNativePG clusters.
    #[arg(long, value_enum, default_value = "in-tree")]
    flavour: FlavourArg,
    /// The S3 endpoint as pods in the cluster reach it.
    #[arg(
        long,
        default_value = "http://localstack.pgdrill-system.svc.cluster.local:4566"
    )]
    cluster_s3_endpoint: String,
    /// PostgreSQL image, `{major}` replaced. Default: CNPG's `system` image (with barman-cloud)
    /// for in-tree, the `standard` image for the plugin flavour.
    #[arg(long)]
    image_template: Option<String>,
    #[arg(long, default_value = "1Gi")]
    storage_size: String,
    /// Seconds a source cluster may take to become ready (image pulls included).
    #[arg(long, default_value_t = 600)]
    ready_timeout: u64,
    /// Keep namespaces that crashed earlier runs of the same scenarios (or game day) left behind.
    #[arg(long)]
    no_sweep: bool,
}

impl KubeArgs {
    fn settings(&self, run_id: &str, bucket: &str) -> RenderSettings {
        let flavour: Flavour = self.flavour.into();
        let image_template = self
            .image_template
            .clone()
            .unwrap_or_else(|| match flavour {
                Flavour::InTree => DEFAULT_IN_TREE_IMAGE.to_string(),
                Flavour::Plugin => DEFAULT_PLUGIN_IMAGE.to_string(),
            });
        RenderSettings {
            run_id: run_id.to_string(),
            flavour,
            bucket: bucket.to_string(),
            bucket_prefix: format!("pgdrill/{run_id}"),
            cluster_s3_endpoint: self.cluster_s3_endpoint.clone(),
            image_template,
            storage_size: self.storage_size.clone(),
        }
    }

    /// What the kube backend (drills and game days) needs: `s3` is object storage as pgdrill
    /// reaches it, with the credentials the clusters get too.
    fn options(&self, client: kube::Client, settings: RenderSettings, s3: S3Target) -> KubeOptions {
        KubeOptions {
            client,
            settings,
            s3,
            ready_timeout: std::time::Duration::from_secs(self.ready_timeout),
            poll_interval: std::time::Duration::from_secs(1),
            sweep: !self.no_sweep,
        }
    }
}

/// CNPG's PostgreSQL images that still carry barman-cloud (needed by the in-tree integration).
const DEFAULT_IN_TREE_IMAGE: &str = "ghcr.io/cloudnative-pg/postgresql:{major}-system-bookworm";
/// Without barman-cloud: the plugin's sidecar brings it.
const DEFAULT_PLUGIN_IMAGE: &str = "ghcr.io/cloudnative-pg/postgresql:{major}-standard-bookworm";

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run {
            paths,
            backend,
            jobs,
            filter,
            report_dir,
            keep,
            seed,
            skip_unsupported,
            common,
            s3,
            kube,
        } => {
            let run = RunArgs {
                jobs,
                keep,
                report_root: report_dir,
                fixtures: common.fixtures.clone(),
                skip_unsupported,
            };
            run_drills(backend, paths, filter, seed, run, common, s3, kube).await
        }
        Command::Render {
            paths,
            backend,
            out,
            force,
            s3_bucket,
            fixtures,
            kube,
        } => render(backend, &paths, &out, force, &s3_bucket, &fixtures, &kube),
        Command::Audit(a) => audit(a).await,
        Command::Gameday(args) => gameday::run(args).await,
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
            address,
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
            let s = S3Server::start_on(address, &dir, port, &creds, &buckets).await?;
            println!(
                "serving {} at {} (Ctrl-C or SIGTERM stops)",
                dir.display(),
                s.endpoint
            );
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
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

#[allow(clippy::too_many_arguments)]
async fn run_drills(
    kind: BackendKind,
    paths: Vec<PathBuf>,
    filter: Vec<String>,
    seed: Option<u64>,
    run: RunArgs,
    common: Common,
    s3: S3Args,
    kube_args: KubeArgs,
) -> anyhow::Result<i32> {
    let mut loaded = load_all(&paths, &common.fixtures)?;
    if let Some(seed) = seed {
        for l in &mut loaded {
            l.scenario.seed = seed;
        }
    }
    if !filter.is_empty() {
        loaded.retain(|l| l.scenario.tags.iter().any(|t| filter.contains(t)));
        if loaded.is_empty() {
            return Err(Error::Usage(format!("no scenario has a tag among {filter:?}")).into());
        }
    }
    let run_id = new_run_id();
    match kind {
        BackendKind::Local => run_local(loaded, run_id, run, common, s3).await,
        BackendKind::Kube => run_kube(loaded, run_id, run, s3, kube_args).await,
    }
}

/// What every backend's run shares.
struct RunArgs {
    jobs: usize,
    keep: bool,
    report_root: PathBuf,
    fixtures: PathBuf,
    skip_unsupported: bool,
}

/// Credentials for commands without `--profile`: the `AWS_*` keys, else `AWS_PROFILE`.
fn env_credentials(flag: &str) -> Result<(String, String), Error> {
    let k = pgdrill::backend::credentials::resolve(None, flag).map_err(Error::Usage)?;
    Ok((k.access_key, k.secret_key))
}

async fn run_local(
    loaded: Vec<LoadedScenario>,
    run_id: String,
    run: RunArgs,
    common: Common,
    s3: S3Args,
) -> anyhow::Result<i32> {
    let tc = toolchain(&common)?;
    tc.check_barman()
        .map_err(|e| Error::Infrastructure(e.to_string()))?;
    for l in &loaded {
        for m in std::iter::once(l.scenario.postgres).chain(l.scenario.recovery.postgres) {
            tc.pg_bin(m)
                .map_err(|e| Error::Infrastructure(e.to_string()))?;
        }
    }
    let external_creds = match &s3.s3_endpoint {
        Some(_) => Some(env_credentials("--s3-endpoint")?),
        None => None,
    };
    let report_dir = report::prepare_run_dir(&run.report_root, &run_id).map_err(Error::Report)?;
    let run_dir = tc.home.join("runs").join(&run_id);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    tc.run_as
        .chown(&run_dir)
        .map_err(|e| Error::Infrastructure(e.to_string()))?;

    let (server, target, external) = match (s3.s3_endpoint, external_creds) {
        (Some(endpoint), Some((ak, sk))) => {
            let t = S3Target {
                endpoint,
                region: s3.s3_region,
                bucket: s3.s3_bucket,
                access_key: ak,
                secret_key: sk,
            };
            (None, t, true)
        }
        _ => {
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
        faults: server.as_ref().map(|s| s.faults.clone()),
    }));
    let outcome = drive(backend, loaded, &run_id, &report_dir, &run).await;

    if let Some(s) = server {
        s.shutdown().await;
    }
    if run.keep {
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
    outcome.finish(&report_dir)
}

async fn run_kube(
    loaded: Vec<LoadedScenario>,
    run_id: String,
    run: RunArgs,
    s3: S3Args,
    kube_args: KubeArgs,
) -> anyhow::Result<i32> {
    // Refuse what the kube backend cannot do rather than run a different drill; with
    // --skip-unsupported, leave those scenarios out and say so.
    let mut loaded = loaded;
    let mut skipped = Vec::new();
    loaded.retain(|l| match pgdrill::backend::kube::unsupported(&l.scenario) {
        None => true,
        Some(why) => {
            skipped.push(format!(
                "{}: scenario `{}`: {why}",
                l.path.display(),
                l.scenario.name
            ));
            false
        }
    });
    if !skipped.is_empty() && !run.skip_unsupported {
        return Err(Error::Usage(format!(
            "{}
(--skip-unsupported leaves such scenarios out)",
            skipped.join("\n")
        ))
        .into());
    }
    for s in &skipped {
        eprintln!("pgdrill: skipped {s}");
    }
    if loaded.is_empty() {
        return Err(Error::Usage("every scenario was skipped: nothing to run".into()).into());
    }
    let (ak, sk) = env_credentials("--backend kube")?;
    let client = kube_client().await?;
    let settings = kube_args.settings(&run_id, &s3.s3_bucket);
    let target = S3Target {
        endpoint: s3
            .s3_endpoint
            .unwrap_or_else(|| "http://127.0.0.1:4566".to_string()),
        region: s3.s3_region,
        bucket: s3.s3_bucket,
        access_key: ak,
        secret_key: sk,
    };
    let report_dir = report::prepare_run_dir(&run.report_root, &run_id).map_err(Error::Report)?;
    let backend = Arc::new(KubeBackend::new(
        kube_args.options(client, settings, target),
    ));
    let outcome = drive(backend, loaded, &run_id, &report_dir, &run).await;
    outcome.finish(&report_dir)
}

/// The Kubernetes client of the current kubeconfig context (or the in-cluster configuration);
/// an infrastructure error (exit 3) when there is none. Call it before writing any report.
async fn kube_client() -> Result<kube::Client, Error> {
    kube::Client::try_default().await.map_err(|e| {
        Error::Infrastructure(format!(
            "no usable Kubernetes client (KUBECONFIG / ~/.kube/config, current context): {e}"
        ))
    })
}

/// What a finished run left to report.
struct Outcome {
    summary: runner::RunSummary,
    report_errors: Vec<report::ReportError>,
    cancelled: bool,
}

impl Outcome {
    fn finish(self, report_dir: &Path) -> anyhow::Result<i32> {
        let summary = self.summary;
        println!(
            "{} passed, {} failed, {} errors; reports in {}",
            summary.passed(),
            summary.failed(),
            summary.errors(),
            report_dir.display()
        );
        if self.cancelled {
            return Ok(exit::INTERRUPTED);
        }
        let code = exit::of_run(&summary);
        if let Some(e) = self.report_errors.into_iter().next() {
            // A drill finding (1) is never masked by a report that could not be written.
            eprintln!("pgdrill: {}", Error::Report(e));
            return Ok(if code == exit::DRILL_FAILED {
                code
            } else {
                exit::INFRASTRUCTURE
            });
        }
        Ok(code)
    }
}

/// The exit code for an error that reached `main`: typed errors keep their code, anything
/// else is an infrastructure problem.
pub fn exit_code_of(e: &anyhow::Error) -> i32 {
    if let Some(err) = e.downcast_ref::<Error>() {
        return err.exit_code();
    }
    exit::INFRASTRUCTURE
}

/// First Ctrl-C: the returned receiver turns true (cancel and tear down). Second: kill every
/// process group and exit 130.
fn cancel_on_ctrl_c() -> watch::Receiver<bool> {
    let (cancel_tx, cancel_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\npgdrill: interrupted; tearing down (Ctrl-C again to kill everything now)");
            let _ = cancel_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                process::kill_all_groups();
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
    cancel_rx
}

/// Run the scenarios through `backend` with Ctrl-C handling and the standard reporters.
async fn drive<B: pgdrill::backend::Backend + 'static>(
    backend: Arc<B>,
    loaded: Vec<LoadedScenario>,
    run_id: &str,
    report_dir: &Path,
    run: &RunArgs,
) -> Outcome {
    let cancel_rx = cancel_on_ctrl_c();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut reporters = report::standard_reporters(report_dir, Box::new(stdout), tty);
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
        run_id: run_id.to_string(),
        jobs: run.jobs,
        keep: run.keep,
        fixtures_dir: run.fixtures.clone(),
        report_dir: report_dir.to_path_buf(),
    };
    let summary = runner::run_all(backend, loaded, &opts, tx, cancel_rx.clone()).await;
    let report_errors = consumer.await.unwrap_or_default();
    let cancelled = *cancel_rx.borrow();
    Outcome {
        summary,
        report_errors,
        cancelled,
    }
}

/// `25h`, `90m`, `600s` or plain seconds → seconds.
fn parse_age(s: &str) -> Result<u64, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a number with s, m, h or d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    Ok(n * mult)
}

/// `pgdrill audit`: read the archive, judge it, print it.
async fn audit(a: AuditArgs) -> anyhow::Result<i32> {
    let AuditArgs {
        url,
        server_name,
        endpoint,
        region,
        profile,
        json,
        junit,
        max_backup_age,
        max_wal_age,
    } = a;
    let (url, server_name) = (url.as_str(), server_name.as_str());
    let thresholds = pgdrill::audit::Thresholds {
        max_backup_age_seconds: max_backup_age,
        max_wal_age_seconds: max_wal_age,
    };
    let (bucket, prefix) = pgdrill::backend::objstore::parse_s3_url(url).map_err(Error::Usage)?;
    let keys = pgdrill::backend::credentials::resolve(profile.as_deref(), "audit")
        .map_err(Error::Usage)?;
    let (ak, sk) = (keys.access_key, keys.secret_key);
    let target = S3Target {
        endpoint: endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
        region,
        bucket: bucket.clone(),
        access_key: ak,
        secret_key: sk,
    };
    let reader = pgdrill::audit::reader::ArchiveReader::new(&target, &bucket, &prefix, server_name);
    let listing = reader
        .read()
        .await
        .map_err(|e| Error::Infrastructure(e.to_string()))?;
    let report = pgdrill::audit::analyze(server_name, &listing, chrono::Utc::now(), thresholds);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", pgdrill::audit::output::table(&report, &reader.url()));
    }
    if let Some(path) = junit {
        let xml = pgdrill::audit::output::junit(&report)
            .map_err(|e| Error::Infrastructure(format!("JUnit: {e}")))?;
        std::fs::write(&path, xml).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if report.ok() {
        exit::PASSED
    } else {
        exit::DRILL_FAILED
    })
}

/// `pgdrill render`: every manifest of every scenario, in apply order, one file each.
fn render(
    backend: BackendKind,
    paths: &[PathBuf],
    out: &Path,
    force: bool,
    bucket: &str,
    fixtures: &Path,
    kube_args: &KubeArgs,
) -> anyhow::Result<i32> {
    if backend != BackendKind::Kube {
        return Err(Error::Usage(
            "render writes Kubernetes manifests: use --backend kube (the local backend applies none)"
                .into(),
        )
        .into());
    }
    let loaded = load_all(paths, fixtures)?;
    for l in &loaded {
        if let Some(why) = pgdrill::backend::kube::unsupported(&l.scenario) {
            return Err(Error::Usage(format!(
                "{}: scenario `{}`: {why}",
                l.path.display(),
                l.scenario.name
            ))
            .into());
        }
    }
    let settings = kube_args.settings("preview", bucket);
    for l in &loaded {
        let dir = out.join(&l.scenario.name);
        let occupied = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
        if occupied && !force {
            return Err(Error::Usage(format!(
                "{} is not empty: pass --force to replace an earlier render",
                dir.display()
            ))
            .into());
        }
    }
    for l in &loaded {
        let dir = out.join(&l.scenario.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let manifests = render_scenario(&l.scenario, &settings);
        for (i, m) in manifests.iter().enumerate() {
            let f = dir.join(m.file_name(i));
            let text = format!(
                "# pgdrill render: {} ({} flavour), step `{}`\n{}",
                l.scenario.name,
                settings.flavour.as_str(),
                m.step,
                to_yaml(&m.object)
            );
            std::fs::write(&f, text).with_context(|| format!("writing {}", f.display()))?;
        }
        println!(
            "{}: {} manifests in {}",
            l.scenario.name,
            manifests.len(),
            dir.display()
        );
    }
    Ok(exit::PASSED)
}
