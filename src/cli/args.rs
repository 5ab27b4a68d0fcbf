//! The clap types the commands share (the command tree, `--backend`, the local and kube option
//! groups, durations) and what they turn into: a toolchain, kube settings and options. Parses
//! and converts only; never runs a command.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use pgdrill::backend::azure::AzureTarget;
use pgdrill::backend::kube::KubeOptions;
use pgdrill::backend::kube::render::{ClusterAzure, Flavour, RenderSettings};
use pgdrill::backend::local::process::RunAs;
use pgdrill::backend::local::toolchain::{Toolchain, default_home};
use pgdrill::backend::objstore::S3Target;
use pgdrill::error::Error;

use super::{
    audit, clean, gameday, history, list, render, rto_model, run, serve_s3, setup, validate,
};

#[derive(Debug, Parser)]
#[command(
    name = "pgdrill",
    version,
    about = "Disaster-recovery drills for PostgreSQL backed up with barman-cloud"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More diagnostics on stderr: -v what the harness does, -vv its details (RUST_LOG, when
    /// set, decides instead). Warnings are always shown.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run drills: every scenario file in PATHS (files or directories; default `scenarios/`).
    Run(run::RunArgs),
    /// Write every manifest a kube drill would apply, in order, without a cluster.
    Render(render::RenderArgs),
    /// Audit a barman-cloud archive, read-only: WAL continuity per timeline, which backups can
    /// be recovered how far, base backup and WAL freshness. Exit 1 when a check fails.
    Audit(audit::AuditArgs),
    /// Restore test of a real barman-cloud archive: audit it, restore into a scratch instance
    /// (never writing to the archive), run the checks, report RTO/RPO.
    Gameday(gameday::GamedayArgs),
    /// Check scenario files without running anything.
    Validate(validate::ValidateArgs),
    /// List the scenarios in PATHS (default `scenarios/`).
    List(list::ListArgs),
    /// Install barman-cloud (Python venv) and PostgreSQL server binaries for the local backend.
    Setup(setup::SetupArgs),
    /// Print the JSON Schema of scenario files.
    Schema,
    /// Serve a directory as an S3 endpoint on loopback (the embedded endpoint, standalone).
    ServeS3(serve_s3::ServeS3Args),
    /// Stop and remove what local runs and game days killed mid-way left under the pgdrill
    /// home (every local `run` and `gameday` does this first); runs still going are never
    /// touched.
    Clean(clean::CleanArgs),
    /// Fit RTO ≈ fixed + size/restore_rate + WAL/replay_rate over the recoveries in REPORTS
    /// (run or game-day directories, or their JSON files); with --size and --wal predict the
    /// RTO, with --objective say whether it holds (exit 1 when not shown to).
    RtoModel(rto_model::RtoModelArgs),
    /// Per scenario (runs) and per archive (game days) across REPORT_DIRS (default `reports`):
    /// runs, pass rate, last run and success, RTO/RPO trends, and whether the last game day is
    /// older than --max-gameday-age (ADR 007's quarterly drill).
    History(history::HistoryArgs),
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

#[derive(Debug, clap::Args)]
pub struct Common {
    /// Unprivileged OS user for PostgreSQL and barman when pgdrill runs as root.
    #[arg(long, env = "PGDRILL_PG_USER", default_value = "postgres")]
    pub pg_user: String,
    /// Where tools and run directories live (must be reachable by the PostgreSQL user).
    #[arg(long, env = "PGDRILL_HOME")]
    pub home: Option<PathBuf>,
    #[arg(long, default_value = "fixtures")]
    pub fixtures: PathBuf,
}

impl Common {
    /// The tools under `--home` (default: [`default_home`]), run as `--pg-user` when root.
    pub fn toolchain(&self) -> Result<Toolchain, Error> {
        let home = self.home.clone().unwrap_or_else(default_home);
        let run_as =
            RunAs::detect(&self.pg_user).map_err(|e| Error::Infrastructure(e.to_string()))?;
        Ok(Toolchain::new(home, run_as))
    }
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
    /// The Azure blob endpoint as pods in the cluster reach it, for `object_store: azure`
    /// drills (default: `--azure-endpoint`, when pods and pgdrill reach it by the same URL).
    #[arg(long)]
    cluster_azure_endpoint: Option<String>,
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

/// CNPG's PostgreSQL images that still carry barman-cloud (needed by the in-tree integration).
const DEFAULT_IN_TREE_IMAGE: &str = "ghcr.io/cloudnative-pg/postgresql:{major}-system-bookworm";
/// Without barman-cloud: the plugin's sidecar brings it.
const DEFAULT_PLUGIN_IMAGE: &str = "ghcr.io/cloudnative-pg/postgresql:{major}-standard-bookworm";

impl KubeArgs {
    /// What every object of run `run_id` is rendered with; archives go to `bucket`.
    pub fn settings(&self, run_id: &str, bucket: &str) -> RenderSettings {
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
            azure: None,
        }
    }

    /// What the kube backend (drills and game days) needs, with the Kubernetes client of the
    /// current kubeconfig context (or the in-cluster configuration): an infrastructure error
    /// (exit 3) when there is none, so call it before writing any report. `s3` is object
    /// storage as pgdrill reaches it, with the credentials the clusters get too; `azure` the
    /// Azure account for `object_store: azure` drills, as pgdrill reaches it.
    pub async fn options(
        &self,
        run_id: &str,
        s3: S3Target,
        azure: Option<AzureTarget>,
    ) -> Result<KubeOptions, Error> {
        let client = kube::Client::try_default().await.map_err(|e| {
            Error::Infrastructure(format!(
                "no usable Kubernetes client (KUBECONFIG / ~/.kube/config, current context): {e}"
            ))
        })?;
        let mut settings = self.settings(run_id, &s3.bucket);
        settings.azure = azure.as_ref().map(|t| ClusterAzure {
            endpoint: self
                .cluster_azure_endpoint
                .clone()
                .unwrap_or_else(|| t.endpoint.clone()),
            container: t.container.clone(),
        });
        Ok(KubeOptions {
            client,
            settings,
            s3,
            azure,
            ready_timeout: Duration::from_secs(self.ready_timeout),
            poll_interval: Duration::from_secs(1),
            sweep: !self.no_sweep,
        })
    }
}

/// `25h`, `90m`, `600s`, `2d` or plain seconds → seconds.
pub fn parse_age(s: &str) -> Result<u64, String> {
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
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}`: more seconds than pgdrill can count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_in_every_unit() {
        assert_eq!(parse_age("600"), Ok(600));
        assert_eq!(parse_age("600s"), Ok(600));
        assert_eq!(parse_age("90m"), Ok(5400));
        assert_eq!(parse_age("25h"), Ok(90_000));
        assert_eq!(parse_age("2d"), Ok(172_800));
        assert_eq!(parse_age("0m"), Ok(0));
    }

    #[test]
    fn ages_that_are_refused() {
        let no_number = "expected a number with s, m, h or d";
        assert_eq!(parse_age(""), Err(format!("``: {no_number}")));
        assert_eq!(parse_age("h"), Err(format!("`h`: {no_number}")));
        assert_eq!(parse_age("-5m"), Err(format!("`-5m`: {no_number}")));
        for bad_unit in ["1.5h", "10w", "10 m", "10mh", "10M"] {
            let want = format!("`{bad_unit}`: unit must be s, m, h or d");
            assert_eq!(parse_age(bad_unit), Err(want));
        }
        let huge = format!("{}d", u64::MAX / 2);
        assert_eq!(
            parse_age(&huge),
            Err(format!("`{huge}`: more seconds than pgdrill can count"))
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// Azure Blob Storage for `object_store: azure` drills and `pgdrill audit` of Azure archives.
/// The account and key come from `AZURE_STORAGE_ACCOUNT` and `AZURE_STORAGE_KEY` (never a
/// flag: secrets stay off command lines and out of logs).
#[derive(Debug, Clone, clap::Args)]
pub struct AzureArgs {
    /// Use this Azure blob endpoint instead of an embedded Azurite, e.g.
    /// `https://ACCOUNT.blob.core.windows.net` or `http://HOST:PORT/ACCOUNT`. On the local
    /// backend the container must exist (the kube backend creates it when missing); pgdrill
    /// writes only under its run prefix. On the kube backend the pods must reach it too.
    #[arg(long)]
    pub azure_endpoint: Option<String>,
    /// The container Azure drills archive to.
    #[arg(long, default_value = "pgdrill")]
    pub azure_container: String,
}

impl AzureArgs {
    /// The external account (`--azure-endpoint` with `AZURE_STORAGE_ACCOUNT` and
    /// `AZURE_STORAGE_KEY`), or `None` for the embedded Azurite.
    pub fn external(&self) -> Result<Option<pgdrill::backend::azure::AzureTarget>, String> {
        let Some(endpoint) = &self.azure_endpoint else {
            return Ok(None);
        };
        let (account, key) = azure_account_key("--azure-endpoint")?;
        Ok(Some(pgdrill::backend::azure::AzureTarget::external(
            Some(endpoint),
            &account,
            &key,
            &self.azure_container,
        )))
    }
}

/// `AZURE_STORAGE_ACCOUNT` and `AZURE_STORAGE_KEY`, both required by `what`.
pub fn azure_account_key(what: &str) -> Result<(String, String), String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("AZURE_STORAGE_ACCOUNT"), get("AZURE_STORAGE_KEY")) {
        (Some(a), Some(k)) => Ok((a, k)),
        _ => Err(format!(
            "{what} needs AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY in the environment"
        )),
    }
}
