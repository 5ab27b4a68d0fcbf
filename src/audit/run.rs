//! One audit of an archive named by its `s3://` or Azure URL (`azure://CONTAINER/PATH`,
//! `https://ACCOUNT.blob.core.windows.net/…`, an emulator's `http://HOST:PORT/ACCOUNT/…`)
//! (`pgdrill audit`): credentials resolved,
//! objects read through `reader`, the listing judged by `analysis`. Read-only like `reader`;
//! never prints or writes a report (the caller formats it with `output`).

use chrono::Utc;

use crate::backend::BackendError;
use crate::backend::credentials;
use crate::backend::objstore::S3Target;

use super::model::{AuditReport, Thresholds};
use super::reader::ArchiveReader;
use crate::backend::azure::{AzureTarget, parse_azure_url};
use crate::backend::objstore::parse_s3_url;

/// Which archive to audit and how to reach it.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    /// `s3://BUCKET/PATH` or an Azure URL: the folder holding the serverName folders (CNPG's
    /// destinationPath).
    pub url: String,
    pub server_name: String,
    /// S3 endpoint; `None`: AWS in `region`. With an `azure://` URL: the blob endpoint
    /// (`None`: `https://ACCOUNT.blob.core.windows.net`).
    pub endpoint: Option<String>,
    pub region: String,
    /// AWS shared-credentials profile; `None`: the `AWS_*` variables, then `AWS_PROFILE`.
    pub profile: Option<String>,
    pub thresholds: Thresholds,
}

/// Why there is no audit report.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The URL or the credentials are unusable; nothing was read.
    #[error("{0}")]
    Request(String),
    /// The archive could not be read.
    #[error(transparent)]
    Read(BackendError),
}

/// The report and the archive it speaks of.
#[derive(Debug)]
pub struct Audited {
    pub report: AuditReport,
    /// `s3://bucket/prefix/server`, as read.
    pub url: String,
}

/// Read the archive and judge it, as of now.
pub async fn audit_archive(req: AuditRequest) -> Result<Audited, AuditError> {
    if !req.url.starts_with("s3://") {
        return audit_azure(req).await;
    }
    let (bucket, prefix) = parse_s3_url(&req.url).map_err(AuditError::Request)?;
    let keys =
        credentials::resolve(req.profile.as_deref(), "audit").map_err(AuditError::Request)?;
    let endpoint = req
        .endpoint
        .unwrap_or_else(|| S3Target::aws_endpoint(&req.region));
    let target = S3Target::new(endpoint, req.region, &bucket, keys);
    let reader = ArchiveReader::new(&target, &bucket, &prefix, &req.server_name);
    let listing = reader.read().await.map_err(AuditError::Read)?;
    let report = super::analyze(&req.server_name, &listing, Utc::now(), req.thresholds);
    Ok(Audited {
        report,
        url: reader.url(),
    })
}

/// An Azure archive: the account and key from `AZURE_STORAGE_ACCOUNT` (unless the URL names
/// the account) and `AZURE_STORAGE_KEY`.
async fn audit_azure(req: AuditRequest) -> Result<Audited, AuditError> {
    let loc = parse_azure_url(&req.url).map_err(|e| {
        AuditError::Request(format!(
            "{e} (an archive is s3://BUCKET/PATH or an Azure URL)"
        ))
    })?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let account = loc
        .account
        .clone()
        .or_else(|| env("AZURE_STORAGE_ACCOUNT"))
        .ok_or_else(|| {
            AuditError::Request(
                "an azure:// audit needs AZURE_STORAGE_ACCOUNT (or the account in the URL)".into(),
            )
        })?;
    let key = env("AZURE_STORAGE_KEY")
        .ok_or_else(|| AuditError::Request("an Azure audit needs AZURE_STORAGE_KEY".into()))?;
    let endpoint = loc.endpoint.clone().or(req.endpoint.clone());
    let target = AzureTarget::external(endpoint.as_deref(), &account, &key, &loc.container);
    let reader =
        ArchiveReader::azure(&target, &loc.path, &req.server_name).map_err(AuditError::Read)?;
    let listing = reader.read().await.map_err(AuditError::Read)?;
    let report = super::analyze(&req.server_name, &listing, Utc::now(), req.thresholds);
    Ok(Audited {
        report,
        url: reader.url(),
    })
}
