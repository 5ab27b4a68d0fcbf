//! `pgdrill gameday`: command-line edge of a game day. Resolves credentials and the backend,
//! handles Ctrl-C, writes the reports, maps the verdict to an exit code.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;

use pgdrill::backend::credentials;
use pgdrill::backend::kube::KubeScratch;
use pgdrill::backend::local::scratch::LocalScratch;
use pgdrill::backend::objstore::S3Target;
use pgdrill::backend::{Keep, ScratchRestore};
use pgdrill::error::{Error, exit};
use pgdrill::gameday::{self, GamedayOptions, GamedayRecord, GamedayTarget, LoadedGameday};
use pgdrill::report;
use pgdrill::runner::Status;

use super::args::{BackendKind, Common, KubeArgs, parse_age};
use super::metrics::MetricsArgs;

/// Arguments of `pgdrill gameday`.
#[derive(Debug, clap::Args)]
pub struct GamedayArgs {
    /// The game-day file (YAML): archive, PostgreSQL major, target, checks.
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendKind,
    /// Override the file's target: `latest`, `random`, or an RFC 3339 time.
    #[arg(long)]
    pub target: Option<String>,
    /// Seed for `random` (default: the file's, else drawn now; always recorded).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Who runs the game day, for the record (default: $USER, then $LOGNAME).
    #[arg(long)]
    pub operator: Option<String>,
    /// AWS shared-credentials profile (default: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then AWS_PROFILE).
    #[arg(long)]
    pub profile: Option<String>,
    /// Override the file's S3 endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Reports go to `<report-dir>/gameday-<name>-<UTC time>/`.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
    /// Keep the scratch instance and its directory, and print where they are.
    #[arg(long, env = "PGDRILL_KEEP", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub keep: bool,
    /// Audit threshold: newest base backup older than this fails the audit suite.
    #[arg(long, default_value = "25h", value_parser = parse_age)]
    pub max_backup_age: u64,
    /// Audit threshold: newest WAL older than this fails the audit suite.
    #[arg(long, default_value = "10m", value_parser = parse_age)]
    pub max_wal_age: u64,
    #[command(flatten)]
    pub common: Common,
    /// `--backend kube`: the scratch namespace's recovery Cluster. Its pods reach the archive
    /// at `--cluster-s3-endpoint` (pgdrill's own audit uses the file's `archive.endpoint`).
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

fn parse_target(s: &str) -> Result<GamedayTarget, Error> {
    match s {
        "latest" => Ok(GamedayTarget::Latest),
        "random" => Ok(GamedayTarget::Random),
        t => chrono::DateTime::parse_from_rfc3339(t)
            .map(GamedayTarget::Time)
            .map_err(|e| {
                Error::Usage(format!(
                    "--target `{t}`: not `latest`, `random` or an RFC 3339 time ({e})"
                ))
            }),
    }
}

pub async fn run(a: GamedayArgs) -> anyhow::Result<i32> {
    let mut loaded = gameday::load_file(&a.file).map_err(Error::Scenario)?;
    if let Some(t) = &a.target {
        loaded.gameday.target = parse_target(t)?;
        if let Some(why) = gameday::load::rpo_without_reference(&loaded.gameday) {
            return Err(Error::Usage(format!("--target {t}: {why}")).into());
        }
    }
    let g = &loaded.gameday;
    let keys = credentials::resolve(
        a.profile.as_deref().or(g.archive.profile.as_deref()),
        "gameday",
    )
    .map_err(Error::Usage)?;
    let region = g
        .archive
        .region
        .clone()
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = a
        .endpoint
        .clone()
        .or_else(|| g.archive.endpoint.clone())
        .unwrap_or_else(|| S3Target::aws_endpoint(&region));
    let (bucket, _) =
        pgdrill::backend::objstore::parse_s3_url(&g.archive.destination).map_err(Error::Usage)?;
    let s3 = S3Target::new(endpoint, region, bucket, keys);
    let seed = a.seed.or(g.seed).unwrap_or_else(rand::random);
    let operator = a
        .operator
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let id = format!("gameday-{}-{stamp}", g.name);
    let report_dir = a.report_dir.join(&id);
    let opts = GamedayOptions {
        s3: s3.clone(),
        operator,
        seed,
        thresholds: pgdrill::audit::Thresholds {
            max_backup_age_seconds: a.max_backup_age,
            max_wal_age_seconds: a.max_wal_age,
        },
        keep: Keep::from(a.keep),
    };

    // Everything this machine or the cluster must provide is checked before the report
    // directory is written.
    match a.backend {
        BackendKind::Local => {
            let tc = a.common.toolchain()?;
            tc.check_barman()
                .map_err(|e| Error::Infrastructure(e.to_string()))?;
            tc.pg_bin(g.postgres)
                .map_err(|e| Error::Infrastructure(e.to_string()))?;
            super::clean::sweep_before(&tc.home, None).await;
            create_report_dir(&report_dir)?;
            let work = tc.home.join("runs").join(&id);
            let restorer = LocalScratch::new(tc.clone(), work, s3, &g.archive.destination)
                .map_err(|e| Error::Infrastructure(e.to_string()))?;
            drive(restorer, &loaded, &opts, &report_dir, &a.metrics).await
        }
        BackendKind::Kube => {
            let options = a.kube.options(&report::new_run_id(), s3, None).await?;
            let settings = &options.settings;
            println!(
                "kube: namespace {} ({} flavour); the pods reach the archive at {}",
                pgdrill::backend::kube::render_scratch::gameday_namespace_name(
                    &settings.run_id,
                    &g.name
                ),
                settings.flavour.as_str(),
                settings.cluster_s3_endpoint
            );
            let restorer = KubeScratch::new(options, &g.name, &g.archive.destination);
            create_report_dir(&report_dir)?;
            drive(restorer, &loaded, &opts, &report_dir, &a.metrics).await
        }
    }
}

fn create_report_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Run the game day through `restorer` with Ctrl-C handling, write the reports, map the verdict.
async fn drive<R: ScratchRestore>(
    restorer: R,
    loaded: &LoadedGameday,
    opts: &GamedayOptions,
    report_dir: &Path,
    metrics: &MetricsArgs,
) -> anyhow::Result<i32> {
    let g = &loaded.gameday;
    let cancel_rx = super::interrupt::cancel_on_ctrl_c();
    let cancelled = cancel_rx.clone();
    println!(
        "game day `{}`: {}/{} via {} (seed {})",
        g.name, g.archive.destination, g.archive.server_name, opts.s3.endpoint, opts.seed
    );
    let rec = gameday::run_gameday(restorer, loaded, opts, cancel_rx).await;
    write_reports(report_dir, &rec)?;
    print_summary(&rec, report_dir);
    // The newest earlier success of this archive, from the game days beside this one.
    let last_success =
        report_dir.parent().and_then(|root| {
            match pgdrill::history::read_report_dirs(&[root.to_path_buf()]) {
                Ok(entries) => entries.last_gameday_successes().remove(&rec.archive),
                Err(e) => {
                    eprintln!("pgdrill: metrics without the last success: {e}");
                    None
                }
            }
        });
    let exposition = report::metrics::gameday(&rec, last_success);
    std::fs::write(report_dir.join("metrics.prom"), exposition.encode())?;
    if let Err(e) = metrics
        .publish(
            &exposition,
            "pgdrill_gameday",
            &[("gameday", g.name.as_str())],
        )
        .await
    {
        // The verdict stands; a push that failed is an infrastructure problem on top.
        eprintln!("pgdrill: metrics: {e:#}");
        if matches!(rec.status, Status::Passed) {
            return Ok(exit::INFRASTRUCTURE);
        }
    }
    Ok(match rec.status {
        _ if *cancelled.borrow() => exit::INTERRUPTED,
        Status::Passed => exit::PASSED,
        Status::Failed { .. } => exit::DRILL_FAILED,
        Status::Error { .. } => exit::INFRASTRUCTURE,
    })
}

fn write_reports(dir: &Path, rec: &GamedayRecord) -> anyhow::Result<()> {
    let xml =
        gameday::report::junit(rec).map_err(|e| Error::Infrastructure(format!("JUnit: {e}")))?;
    std::fs::write(dir.join("gameday.xml"), xml)?;
    std::fs::write(
        dir.join("gameday.json"),
        serde_json::to_string_pretty(rec)? + "\n",
    )?;
    std::fs::write(dir.join("gameday.md"), gameday::report::markdown(rec))?;
    std::fs::write(dir.join("report.html"), report::gameday_html(rec))?;
    Ok(())
}

fn print_summary(rec: &GamedayRecord, dir: &Path) {
    if let Some(b) = &rec.backup_id {
        println!(
            "restored backup {b} to {}",
            rec.resolved_target.as_deref().unwrap_or(&rec.target)
        );
    }
    if let Some(rto) = &rec.rto {
        println!("RTO {:.1}s", rto.seconds);
    }
    if let Some(s) = rec.rpo.as_ref().and_then(|r| r.seconds) {
        println!(
            "RPO {s:.1}s behind the {}",
            rec.rpo.as_ref().unwrap().reference
        );
    }
    for c in &rec.checks {
        println!(
            "check {}: {}",
            c.name,
            if c.passed {
                "pass".to_string()
            } else {
                format!("FAIL ({})", c.message.as_deref().unwrap_or(""))
            }
        );
    }
    match &rec.status {
        Status::Passed => println!("game day: PASSED"),
        Status::Failed { reasons } => {
            println!("game day: FAILED");
            for r in reasons {
                println!("  - {r}");
            }
        }
        Status::Error { message } => println!("game day: ERROR: {message}"),
    }
    for k in &rec.kept {
        println!("kept: {k}");
    }
    println!("reports: {}", dir.display());
}
