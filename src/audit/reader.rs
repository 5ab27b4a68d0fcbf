//! Reads a barman-cloud archive for the audit: lists objects and fetches `backup.info` and
//! `.history` files. Read-only by construction: the only S3 calls in this file are
//! ListObjectsV2 and GetObject, and no other audit module holds a client.

use chrono::{DateTime, Utc};

use crate::backend::BackendError;
use crate::backend::objstore::{S3Target, s3_client};

use super::model::{ArchiveListing, ArchiveObject};

/// `s3://bucket/path` split into bucket and prefix (no leading or trailing slash).
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{url}` is not an s3:// URL"))?;
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("`{url}` names no bucket"));
    }
    Ok((bucket.to_string(), path.trim_matches('/').to_string()))
}

/// A read-only view of `<prefix>/<server_name>/` in one bucket.
pub struct ArchiveReader {
    client: aws_sdk_s3::Client,
    bucket: String,
    root: String,
}

fn s3_err<E: std::error::Error + 'static>(what: &str, e: aws_sdk_s3::error::SdkError<E>) -> BackendError
where
    E: std::error::Error,
{
    BackendError::infra(format!(
        "{what}: {}",
        aws_sdk_s3::error::DisplayErrorContext(&e)
    ))
}

impl ArchiveReader {
    /// `target.bucket` is replaced by `bucket`; `prefix` may be empty.
    pub fn new(target: &S3Target, bucket: &str, prefix: &str, server_name: &str) -> Self {
        let root = [prefix.trim_matches('/'), server_name.trim_matches('/')]
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("/");
        Self {
            client: s3_client(target),
            bucket: bucket.to_string(),
            root,
        }
    }

    /// `s3://bucket/prefix/server`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.root)
    }

    async fn get_text(&self, key: &str) -> Result<String, BackendError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_err(&format!("reading s3://{}/{key}", self.bucket), e))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| BackendError::infra(format!("reading s3://{}/{key}: {e}", self.bucket)))?
            .into_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// List the archive and read every backup.info and history file.
    pub async fn read(&self) -> Result<ArchiveListing, BackendError> {
        let prefix = format!("{}/", self.root);
        let mut listing = ArchiveListing::default();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_err(&format!("listing {}", self.url()), e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let Some(rel) = key.strip_prefix(&prefix) else {
                    continue;
                };
                let last_modified = o
                    .last_modified()
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
                listing.objects.push(ArchiveObject {
                    key: rel.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified,
                });
            }
        }
        listing.objects.sort_by(|a, b| a.key.cmp(&b.key));
        for o in &listing.objects {
            let parts: Vec<&str> = o.key.split('/').collect();
            match parts.as_slice() {
                ["base", id, "backup.info"] => {
                    let text = self.get_text(&format!("{prefix}{}", o.key)).await?;
                    listing.backup_infos.insert(id.to_string(), text);
                }
                ["wals", name] if name.ends_with(".history") => {
                    let tli = name
                        .trim_end_matches(".history")
                        .get(..8)
                        .and_then(|h| u32::from_str_radix(h, 16).ok());
                    if let Some(tli) = tli {
                        let text = self.get_text(&format!("{prefix}{}", o.key)).await?;
                        listing.histories.insert(tli, text);
                    }
                }
                _ => {}
            }
        }
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_url("s3://backups/postgres/").unwrap(),
            ("backups".into(), "postgres".into())
        );
        assert_eq!(
            parse_s3_url("s3://backups").unwrap(),
            ("backups".into(), String::new())
        );
        assert!(parse_s3_url("https://backups/x").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
    }
}
