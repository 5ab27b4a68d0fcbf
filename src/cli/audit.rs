//! `pgdrill audit`: parses the archive's address and thresholds, calls the library's read-only
//! audit, prints the table or JSON, writes the JUnit file, maps the verdict to an exit code.
//! Never reads the archive or judges it itself.

use std::path::PathBuf;

use anyhow::Context;

use pgdrill::audit::run::{AuditError, AuditRequest, audit_archive};
use pgdrill::audit::{Thresholds, output};
use pgdrill::error::{Error, exit};

use chrono::Utc;
use pgdrill::report::metrics;
use pgdrill::runner::reason::{self, Reason};

use super::args::parse_age;
use super::metrics::MetricsArgs;

/// Arguments of `pgdrill audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// `s3://BUCKET/PATH`, or on Azure `azure://CONTAINER/PATH`,
    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH` or an emulator's
    /// `http://HOST:PORT/ACCOUNT/CONTAINER/PATH`: the folder holding the serverName folders
    /// (CNPG's destinationPath).
    pub url: String,
    pub server_name: String,
    /// S3 endpoint (default, or empty: AWS). Credentials from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY. With `azure://`: the blob endpoint (default
    /// `https://ACCOUNT.blob.core.windows.net`); the account and key from
    /// AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_KEY.
    #[arg(long, env = "PGDRILL_S3_ENDPOINT")]
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
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Read the archive, judge it, print it.
pub async fn run(a: AuditArgs) -> anyhow::Result<i32> {
    let destination = a.url.trim_end_matches('/').to_string();
    let server_name = a.server_name.clone();
    let req = AuditRequest {
        url: a.url,
        server_name: a.server_name,
        endpoint: a.endpoint.filter(|e| !e.is_empty()),
        region: a.region,
        profile: a.profile,
        thresholds: Thresholds {
            max_backup_age_seconds: a.max_backup_age,
            max_wal_age_seconds: a.max_wal_age,
        },
    };
    let group = [("server_name", server_name.as_str())];
    let audited = match audit_archive(req).await {
        Ok(a) => a,
        Err(AuditError::Request(m)) => return Err(Error::Usage(m).into()),
        Err(AuditError::Read(e)) => {
            // The archive could not be read: that is itself what the metrics must say.
            let message = e.to_string();
            let why = reason::of_message(&message).unwrap_or(Reason::ArchiveUnreachable);
            let x = metrics::audit_unreachable(&server_name, &destination, Utc::now(), why);
            if let Err(pe) = a.metrics.publish(&x, "pgdrill_audit", &group).await {
                eprintln!("pgdrill: {pe:#}");
            }
            return Err(Error::Infrastructure(message).into());
        }
    };
    let report = &audited.report;
    a.metrics
        .publish(
            &metrics::audit(report, &destination),
            "pgdrill_audit",
            &group,
        )
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", output::table(report, &audited.url));
    }
    if let Some(path) = a.junit {
        let xml =
            output::junit(report).map_err(|e| Error::Infrastructure(format!("JUnit: {e}")))?;
        std::fs::write(&path, xml).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if report.ok() {
        exit::PASSED
    } else {
        exit::DRILL_FAILED
    })
}
