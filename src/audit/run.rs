//! One audit of an archive named by its `s3://` URL (`pgdrill audit`): credentials resolved,
//! objects read through `reader`, the listing judged by `analysis`. Read-only like `reader`;
//! never prints or writes a report (the caller formats it with `output`).

use chrono::Utc;

use crate::backend::BackendError;
use crate::backend::credentials;
use crate::backend::objstore::S3Target;

use super::model::{AuditReport, Thresholds};
use super::reader::ArchiveReader;
use crate::backend::objstore::parse_s3_url;

/// Which archive to audit and how to reach it.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    /// `s3://BUCKET/PATH`: the folder holding the serverName folders (CNPG's destinationPath).
    pub url: String,
    pub server_name: String,
    /// S3 endpoint; `None`: AWS in `region`.
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
