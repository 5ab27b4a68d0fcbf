//! `pgdrill run`: picks the scenarios, asks the backend which it can run, sets the backend's
//! run up, feeds the events to the standard reporters and maps the summary to an exit code.
//! Never implements a drill step, a report format or a resource's lifecycle itself.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgdrill::backend::credentials::{self, KeyPair};
use pgdrill::backend::kube::KubeBackend;
use pgdrill::backend::local::LocalBackend;
use pgdrill::backend::local::run::{LocalRun, LocalRunError};
use pgdrill::backend::objstore::S3Target;
use pgdrill::backend::{Backend, Keep, support};
use pgdrill::error::{Error, exit};
use pgdrill::history;
use pgdrill::report::{self, ReporterTask};
use pgdrill::runner::{self, RunOptions};
use pgdrill::scenario::{LoadedScenario, load_all};

use anyhow::Context;

use super::args::{AzureArgs, BackendKind, Common, KubeArgs};
use super::metrics::MetricsArgs;

/// Arguments of `pgdrill run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
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
    /// `report.html`'s history section: a game day older than this is overdue (ADR 007).
    #[arg(long, default_value = "92d", value_parser = super::args::parse_age)]
    max_gameday_age: u64,
    /// Leave out (and list on stderr) scenarios the backend cannot run, instead of
    /// refusing the whole run; e.g. `--backend kube` on a folder with local-only faults.
    #[arg(long)]
    skip_unsupported: bool,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    azure: AzureArgs,
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[derive(Debug, clap::Args)]
struct S3Args {
    /// Use this S3 endpoint instead of the embedded one (credentials from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY). The bucket must exist; pgdrill writes only under its run prefix.
    #[arg(long)]
    s3_endpoint: Option<String>,
    #[arg(long, default_value = "pgdrill")]
    s3_bucket: String,
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    s3_region: String,
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let mut loaded = load_all(&args.paths, &args.common.fixtures).map_err(Error::from)?;
    if let Some(seed) = args.seed {
        for l in &mut loaded {
            l.scenario.seed = seed;
        }
    }
    if !args.filter.is_empty() {
        loaded.retain(|l| l.scenario.tags.iter().any(|t| args.filter.contains(t)));
        if loaded.is_empty() {
            let filter = &args.filter;
            return Err(Error::Usage(format!("no scenario has a tag among {filter:?}")).into());
        }
    }
    let run_id = report::new_run_id();
    match args.backend {
        BackendKind::Local => {
            let loaded = supported::<LocalBackend>(loaded, args.skip_unsupported)?;
            run_local(loaded, &run_id, &args).await
        }
        BackendKind::Kube => {
            let loaded = supported::<KubeBackend>(loaded, args.skip_unsupported)?;
            run_kube(loaded, &run_id, &args).await
        }
    }
}

/// The scenarios backend `B` can run. What it cannot is refused before anything starts (exit
/// 2), rather than run as a different drill; with `skip`, it is left out and listed on stderr.
fn supported<B: Backend>(
    loaded: Vec<LoadedScenario>,
    skip: bool,
) -> Result<Vec<LoadedScenario>, Error> {
    let (loaded, refused) = support::partition::<B>(loaded);
    if !refused.is_empty() && !skip {
        let lines: Vec<String> = refused.iter().map(ToString::to_string).collect();
        return Err(Error::Usage(format!(
            "{}\n(--skip-unsupported leaves such scenarios out)",
            lines.join("\n")
        )));
    }
    for r in &refused {
        eprintln!("pgdrill: skipped {r}");
    }
    if loaded.is_empty() {
        return Err(Error::Usage(
            "every scenario was skipped: nothing to run".into(),
        ));
    }
    Ok(loaded)
}

/// Credentials for commands without `--profile`: the `AWS_*` keys, else `AWS_PROFILE`.
fn env_credentials(flag: &str) -> Result<KeyPair, Error> {
    credentials::resolve(None, flag).map_err(Error::Usage)
}

async fn run_local(
    loaded: Vec<LoadedScenario>,
    run_id: &str,
    args: &RunArgs,
) -> anyhow::Result<i32> {
    let tc = args.common.toolchain()?;
    tc.check_barman()
        .map_err(|e| Error::Infrastructure(e.to_string()))?;
    for l in &loaded {
        for m in std::iter::once(l.scenario.postgres).chain(l.scenario.recovery.postgres) {
            tc.pg_bin(m)
                .map_err(|e| Error::Infrastructure(e.to_string()))?;
        }
    }
    let s3 = &args.s3;
    let external = match &s3.s3_endpoint {
        Some(endpoint) => Some((endpoint.clone(), env_credentials("--s3-endpoint")?)),
        None => None,
    };
    super::clean::sweep_before(&tc.home, external.as_ref()).await;
    let report_dir = report::prepare_run_dir(&args.report_dir, run_id).map_err(Error::Report)?;
    let azure_external = args.azure.external().map_err(Error::Usage)?;
    let wants_azure = loaded.iter().any(|l| l.scenario.object_store.is_azure());
    if wants_azure && azure_external.is_none() {
        tc.check_azurite()
            .map_err(|e| Error::Infrastructure(e.to_string()))?;
    }
    let mut local = LocalRun::start(&tc, run_id, &s3.s3_region, &s3.s3_bucket, external)
        .await
        .map_err(|e| match e {
            LocalRunError::Backend(e) => Error::Infrastructure(e.to_string()).into(),
            other => anyhow::Error::from(other),
        })?;
    if wants_azure
        && let Err(e) = local
            .start_azure(&args.azure.azure_container, azure_external)
            .await
    {
        let _ = local.finish(Keep::Nothing).await;
        return Err(Error::Infrastructure(e.to_string()).into());
    }
    let outcome = drive(Arc::new(local.backend()), loaded, run_id, &report_dir, args).await;
    match local.finish(Keep::from(args.keep)).await {
        Ok(kept) => kept.iter().for_each(|k| println!("{k}")),
        Err(e) => eprintln!("pgdrill: {e}"),
    }
    outcome.finish(&report_dir)
}

async fn run_kube(
    loaded: Vec<LoadedScenario>,
    run_id: &str,
    args: &RunArgs,
) -> anyhow::Result<i32> {
    // Azure drills need an account both pgdrill and the pods reach; without one they are
    // refused before any API call, or left out with --skip-unsupported.
    let azure = args.azure.external().map_err(Error::Usage)?;
    let mut loaded = loaded;
    if azure.is_none() {
        let (azure_drills, rest): (Vec<_>, Vec<_>) = loaded
            .into_iter()
            .partition(|l| l.scenario.object_store.is_azure());
        let why = |l: &LoadedScenario| {
            format!(
                "{}: scenario `{}` archives to Azure: on the kube backend give --azure-endpoint \
                 (with AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY), an endpoint the pods reach \
                 too (--cluster-azure-endpoint when they reach it by another URL)",
                l.path.display(),
                l.scenario.name
            )
        };
        if let Some(l) = azure_drills.first()
            && !args.skip_unsupported
        {
            return Err(Error::Usage(why(l)).into());
        }
        azure_drills
            .iter()
            .for_each(|l| eprintln!("pgdrill: skipped {}", why(l)));
        if rest.is_empty() {
            return Err(Error::Usage("every scenario was skipped: nothing to run".into()).into());
        }
        loaded = rest;
    }
    let keys = env_credentials("--backend kube")?;
    let s3 = &args.s3;
    let endpoint = s3
        .s3_endpoint
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:4566".to_string());
    let target = S3Target::new(endpoint, &s3.s3_region, &s3.s3_bucket, keys);
    let options = args.kube.options(run_id, target, azure).await?;
    let report_dir = report::prepare_run_dir(&args.report_dir, run_id).map_err(Error::Report)?;
    let backend = Arc::new(KubeBackend::new(options));
    let outcome = drive(backend, loaded, run_id, &report_dir, args).await;
    outcome.finish(&report_dir)
}

/// Run the scenarios through `backend` with Ctrl-C handling and the standard reporters.
async fn drive<B: Backend + 'static>(
    backend: Arc<B>,
    loaded: Vec<LoadedScenario>,
    run_id: &str,
    report_dir: &Path,
    args: &RunArgs,
) -> Outcome {
    let cancel_rx = super::interrupt::cancel_on_ctrl_c();
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let earlier = earlier_history(&args.report_dir, args.max_gameday_age);
    let reporters = report::standard_reporters(report_dir, Box::new(stdout), tty, earlier);
    let (tx, reporting) = ReporterTask::spawn(reporters);
    let opts = RunOptions {
        run_id: run_id.to_string(),
        jobs: args.jobs,
        keep: Keep::from(args.keep),
        fixtures_dir: args.common.fixtures.clone(),
        report_dir: report_dir.to_path_buf(),
    };
    let summary = runner::run_all(backend, loaded, &opts, tx, cancel_rx.clone()).await;
    let mut report_errors = reporting.finish().await;
    let cancelled = *cancel_rx.borrow();
    if let Err(e) = publish_metrics(report_dir, args).await {
        eprintln!("pgdrill: metrics: {e:#}");
        report_errors.push(report::ReportError::Io {
            action: "publishing",
            path: report_dir.join(report::MetricsReporter::FILE),
            source: std::io::Error::other(format!("{e:#}")),
        });
    }
    Outcome {
        summary,
        report_errors,
        cancelled,
    }
}

/// The run's `metrics.prom` to `--metrics-file` and `--pushgateway` (group: job
/// `pgdrill_drill` and the backend).
async fn publish_metrics(report_dir: &Path, args: &RunArgs) -> anyhow::Result<()> {
    let m = &args.metrics;
    if m.metrics_file.is_none() && m.pushgateway.is_none() {
        return Ok(());
    }
    let path = report_dir.join(report::MetricsReporter::FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let backend = match args.backend {
        BackendKind::Local => "local",
        BackendKind::Kube => "kube",
    };
    m.publish_text(&text, "pgdrill_drill", &[("backend", backend)])
        .await
}

/// The runs and game days already under the reports root, for `report.html`'s history
/// section (this run's own directory has no `rto.json` yet, so it is not among them). A root
/// that cannot be read costs the section, never the run.
fn earlier_history(root: &Path, max_gameday_age: u64) -> Option<(history::Entries, u64)> {
    match history::read_report_dirs(&[root.to_path_buf()]) {
        Ok(entries) => Some((entries, max_gameday_age)),
        Err(e) => {
            eprintln!("pgdrill: report.html without history: {e}");
            None
        }
    }
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
        let code = pgdrill::error::exit::of_run(&summary);
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
