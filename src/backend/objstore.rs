//! Object storage, S3 (`aws-sdk-s3`) or Azure Blob Storage (the `object_store` crate's
//! `MicrosoftAzure`) behind one type, scoped to one drill's prefix: fault injection and
//! audits for every backend. It refuses any key outside its prefix, so a drill can never
//! delete what it did not create; the audit gets a [`ReadOnlyStore`], which can only list
//! and read.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStore as _;
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as BlobPath;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_smithy_http_client::tls;

use super::BackendError;
use super::azure::{AzureTarget, SAS_VERSION};
use super::credentials::KeyPair;
use crate::wal::{SegmentName, segment_of_key};

/// Where and how to reach object storage. `Debug` redacts the secret.
#[derive(Clone)]
pub struct S3Target {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl S3Target {
    /// Object storage at `endpoint`, signed with `keys`: every target is made here.
    pub fn new(
        endpoint: impl Into<String>,
        region: impl Into<String>,
        bucket: impl Into<String>,
        keys: KeyPair,
    ) -> Self {
        S3Target {
            endpoint: endpoint.into(),
            region: region.into(),
            bucket: bucket.into(),
            access_key: keys.access_key,
            secret_key: keys.secret_key,
        }
    }

    /// AWS's own endpoint for `region`: the default of commands that read a real archive.
    pub fn aws_endpoint(region: &str) -> String {
        format!("https://s3.{region}.amazonaws.com")
    }
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
}

/// A client confined to `s3://bucket/root/` or `azure://container/root/`.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    backing: Backing,
    root: String,
}

/// The provider's client and its bucket or container.
#[derive(Clone)]
enum Backing {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    Azure {
        client: Arc<MicrosoftAzure>,
        container: String,
    },
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::S3 { bucket, .. } => write!(f, "S3({bucket})"),
            Backing::Azure { container, .. } => write!(f, "Azure({container})"),
        }
    }
}

/// A view of an [`ObjectStore`] that can only list and read: what the audit holds.
#[derive(Clone, Debug)]
pub struct ReadOnlyStore(ObjectStore);

impl ReadOnlyStore {
    /// Every object under `root/sub`.
    pub async fn list(&self, sub: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.0.list(sub).await
    }

    /// One object's bytes (inside the prefix).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, BackendError> {
        self.0.get(key).await
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    pub fn root(&self) -> &str {
        &self.0.root
    }
}

/// Every object under `prefix` in `bucket`, all pages of ListObjectsV2; `what` names the
/// listing in an error.
pub async fn list_all(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    what: &str,
) -> Result<Vec<aws_sdk_s3::types::Object>, BackendError> {
    let mut out = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| BackendError::s3(what, e))?;
        out.extend(page.contents().iter().cloned());
    }
    Ok(out)
}

/// An aws-sdk-s3 client for `target` (path-style, rustls with ring).
pub fn s3_client(target: &S3Target) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&target.endpoint)
        .region(Region::new(target.region.clone()))
        .credentials_provider(Credentials::new(
            &target.access_key,
            &target.secret_key,
            None,
            None,
            "pgdrill",
        ))
        .force_path_style(true)
        // Seed 000: S3-compatible stores (Oracle Object Storage among them) reject the
        // flexible-checksum headers newer SDKs send by default. pgdrill's own reads and
        // fault injections send them only where the API requires them.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// An Azure Blob client for `target` (shared key; the emulator's path-style URLs when the
/// endpoint is not Azure's own domain).
pub fn azure_client(target: &AzureTarget) -> Result<MicrosoftAzure, BackendError> {
    let mut b = MicrosoftAzureBuilder::new()
        .with_account(&target.account)
        .with_access_key(&target.key)
        .with_container_name(&target.container);
    if !target.is_azure_domain() {
        b = b
            .with_endpoint(target.endpoint.clone())
            .with_allow_http(target.endpoint.starts_with("http://"));
    }
    // The builder's errors name settings, never the key.
    b.build()
        .map_err(|e| BackendError::s3(format!("an Azure client for {}", target.endpoint), e))
}

impl ObjectStore {
    pub fn new(target: &S3Target, root: &str) -> Self {
        Self {
            backing: Backing::S3 {
                client: s3_client(target),
                bucket: target.bucket.clone(),
            },
            root: root.trim_matches('/').to_string(),
        }
    }

    /// `azure://container/root` on `target`.
    pub fn azure(target: &AzureTarget, root: &str) -> Result<Self, BackendError> {
        Ok(Self {
            backing: Backing::Azure {
                client: Arc::new(azure_client(target)?),
                container: target.container.clone(),
            },
            root: root.trim_matches('/').to_string(),
        })
    }

    /// What the audit holds: list and get only.
    pub fn read_only(&self) -> ReadOnlyStore {
        ReadOnlyStore(self.clone())
    }

    /// The same bucket or container, confined to `root` instead (`root` inside this one's).
    pub fn narrowed(&self, sub: &str) -> Self {
        Self {
            backing: self.backing.clone(),
            root: format!("{}/{}", self.root, sub.trim_matches('/')),
        }
    }

    /// `s3://bucket/root` or `azure://container/root`
    pub fn url(&self) -> String {
        self.location(&self.root)
    }

    /// This store's prefix, without slashes at either end.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The bucket (S3) or container (Azure).
    pub fn container(&self) -> &str {
        match &self.backing {
            Backing::S3 { bucket, .. } => bucket,
            Backing::Azure { container, .. } => container,
        }
    }

    /// `key` as a URL: `s3://bucket/key` or `azure://container/key`.
    pub fn location(&self, key: &str) -> String {
        match &self.backing {
            Backing::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            Backing::Azure { container, .. } => format!("azure://{container}/{key}"),
        }
    }

    pub(super) fn scoped(&self, key: &str) -> Result<(), BackendError> {
        let inside = key.starts_with(&format!("{}/", self.root)) && !key.contains("/../");
        if inside {
            Ok(())
        } else {
            Err(BackendError::infra(format!(
                "refusing to touch {}: outside this drill's prefix {}",
                self.location(key),
                self.url()
            )))
        }
    }

    /// Every object under `root/sub`.
    pub async fn list(&self, sub: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let prefix = format!("{}/{}", self.root, sub.trim_start_matches('/'));
        let what = format!("listing {}", self.location(&prefix));
        match &self.backing {
            Backing::S3 { client, bucket } => {
                let objects = list_all(client, bucket, &prefix, &what).await?;
                Ok(objects
                    .iter()
                    .filter_map(|o| {
                        o.key().map(|k| ObjectInfo {
                            key: k.to_string(),
                            size: o.size().unwrap_or(0).max(0) as u64,
                            last_modified: o.last_modified().and_then(|t| {
                                DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())
                            }),
                        })
                    })
                    .collect())
            }
            Backing::Azure { client, .. } => {
                // object_store lists by whole path segments; filter to the string prefix.
                let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let metas: Vec<object_store::ObjectMeta> = client
                    .list(Some(&BlobPath::from(dir)))
                    .try_collect()
                    .await
                    .map_err(|e| BackendError::s3(what, e))?;
                Ok(metas
                    .into_iter()
                    .map(|m| ObjectInfo {
                        key: m.location.to_string(),
                        size: m.size,
                        last_modified: Some(m.last_modified),
                    })
                    .filter(|o| o.key.starts_with(&prefix))
                    .collect())
            }
        }
    }

    /// One object's bytes (inside the prefix).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, BackendError> {
        self.scoped(key)?;
        let what = format!("reading {}", self.location(key));
        match &self.backing {
            Backing::S3 { client, bucket } => {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| BackendError::s3(&what, e))?;
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| BackendError::io(&what, e.into()))?;
                Ok(body.into_bytes().to_vec())
            }
            Backing::Azure { client, .. } => {
                let got = client
                    .get(&BlobPath::from(key))
                    .await
                    .map_err(|e| BackendError::s3(&what, e))?;
                let bytes = got.bytes().await.map_err(|e| BackendError::s3(&what, e))?;
                Ok(bytes.to_vec())
            }
        }
    }

    /// Write one object inside the prefix (replacing it).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackendError> {
        self.scoped(key)?;
        let what = format!("writing {}", self.location(key));
        match &self.backing {
            Backing::S3 { client, bucket } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(bytes.into())
                    .send()
                    .await
                    .map_err(|e| BackendError::s3(what, e))?;
            }
            Backing::Azure { client, .. } => {
                client
                    .put(&BlobPath::from(key), bytes::Bytes::from(bytes).into())
                    .await
                    .map_err(|e| BackendError::s3(what, e))?;
            }
        }
        Ok(())
    }

    /// Archived WAL segments of `server_name`: segment name → object.
    pub async fn wal_segments(
        &self,
        server_name: &str,
    ) -> Result<BTreeMap<SegmentName, ObjectInfo>, BackendError> {
        Ok(self
            .list(&format!("{server_name}/wals/"))
            .await?
            .into_iter()
            .filter_map(|o| segment_of_key(&o.key).map(|s| (s, o)))
            .collect())
    }

    /// The archived objects of one WAL segment (any compression; not its `.partial` or
    /// `.backup` files).
    pub async fn wal_segment_objects(
        &self,
        server_name: &str,
        segment: &SegmentName,
    ) -> Result<Vec<ObjectInfo>, BackendError> {
        let dir = format!(
            "{server_name}/wals/{:08X}{:08X}/{segment}",
            segment.timeline, segment.log
        );
        Ok(self
            .list(&dir)
            .await?
            .into_iter()
            .filter(|o| segment_of_key(&o.key) == Some(*segment))
            .collect())
    }

    /// Delete one object inside the prefix.
    pub async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.scoped(key)?;
        let what = format!("deleting {}", self.location(key));
        match &self.backing {
            Backing::S3 { client, bucket } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| BackendError::s3(what, e))?;
            }
            Backing::Azure { client, .. } => {
                client
                    .delete(&BlobPath::from(key))
                    .await
                    .map_err(|e| BackendError::s3(what, e))?;
            }
        }
        Ok(())
    }

    /// Delete the archived copy of one WAL segment; returns the keys deleted.
    pub async fn delete_wal_segment(
        &self,
        server_name: &str,
        segment: &SegmentName,
    ) -> Result<Vec<String>, BackendError> {
        let found = self.wal_segment_objects(server_name, segment).await?;
        if found.is_empty() {
            return Err(BackendError::infra(format!(
                "WAL segment {segment} is not in the archive {}/{server_name}",
                self.url()
            )));
        }
        let mut keys = Vec::new();
        for o in found {
            self.delete(&o.key).await?;
            keys.push(o.key);
        }
        Ok(keys)
    }

    /// Delete everything under the prefix (teardown on external endpoints).
    pub async fn delete_all(&self) -> Result<usize, BackendError> {
        let all = self.list("").await?;
        for o in &all {
            self.delete(&o.key).await?;
        }
        Ok(all.len())
    }
}

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

/// Why a scratch archive at `scratch`/`scratch_server` could write into the source archive at
/// `source`/`source_server`, if it could. Same bucket and one folder inside the other counts.
pub fn scratch_overlaps_source(
    source: &str,
    source_server: &str,
    scratch: &str,
    scratch_server: &str,
) -> Option<String> {
    let (sb, sp) = parse_s3_url(source).ok()?;
    let (xb, xp) = parse_s3_url(scratch).ok()?;
    if sb != xb {
        return None;
    }
    let folder = |p: &str, s: &str| {
        [p, s]
            .iter()
            .filter(|x| !x.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("/")
            + "/"
    };
    let src = folder(&sp, source_server);
    let dst = folder(&xp, scratch_server);
    (dst.starts_with(&src) || src.starts_with(&dst)).then(|| {
        format!(
            "the scratch archive s3://{xb}/{dst} overlaps the source archive s3://{sb}/{src}: \
             the restored instance would write into the archive under test"
        )
    })
}

/// Create `target.container` (an existing one is fine, and nothing in it is touched),
/// authorised by a SAS signed with the account key; retried until `deadline` while the service
/// finishes starting.
pub async fn create_azure_container(
    target: &AzureTarget,
    deadline: std::time::Duration,
) -> Result<(), BackendError> {
    let sas = target
        .account_sas(chrono::Utc::now(), 1)
        .map_err(BackendError::infra)?;
    let url = format!(
        "{}/{}?restype=container&{sas}",
        target.endpoint, target.container
    );
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        let sent = client
            .put(&url)
            .header("x-ms-version", SAS_VERSION)
            .header("content-length", "0")
            .send()
            .await;
        let failure = match sent {
            Ok(r) if r.status().is_success() || r.status().as_u16() == 409 => return Ok(()),
            Ok(r) => format!("HTTP {}", r.status()),
            // reqwest's error names the URL, which carries the SAS: keep only its kind.
            Err(e) if e.is_connect() => "connection refused".to_string(),
            Err(_) => "request failed".to_string(),
        };
        if started.elapsed() > deadline {
            return Err(BackendError::timeout(
                format!(
                    "creating container `{}` on {}",
                    target.container, target.endpoint
                ),
                deadline,
                failure,
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_outside_the_prefix_are_refused() {
        let t = S3Target {
            endpoint: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            access_key: "a".into(),
            secret_key: "s".into(),
        };
        let s = ObjectStore::new(&t, "pgdrill/run1/scn");
        let a = ObjectStore::azure(
            &AzureTarget::azurite("http://127.0.0.1:1", "c"),
            "pgdrill/run1/scn",
        )
        .unwrap();
        assert_eq!(a.url(), "azure://c/pgdrill/run1/scn");
        let e = a.scoped("pgdrill/run1/other/x").unwrap_err().to_string();
        assert!(e.contains("azure://c/pgdrill/run1/other/x"), "{e}");
        assert!(s.scoped("pgdrill/run1/scn/src/wals/x").is_ok());
        assert!(s.scoped("pgdrill/run1/scn2/src/wals/x").is_err());
        assert!(s.scoped("pgdrill/run1/scn").is_err());
        assert!(s.scoped("pgdrill/run1/scn/../other/x").is_err());
        assert!(!format!("{t:?}").contains("\"s\""));
    }

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

    #[test]
    fn overlap_rules() {
        let o = |a, b, c, d| scratch_overlaps_source(a, b, c, d).is_some();
        assert!(o("s3://b/p", "pg", "s3://b/p", "pg"));
        assert!(o("s3://b/p", "pg", "s3://b/p/pg", "x"));
        assert!(
            o("s3://b/p/pg", "x", "s3://b/p", "pg"),
            "source inside scratch"
        );
        assert!(o("s3://b", "pg", "s3://b/", "pg"));
        assert!(!o("s3://b/p", "pg", "s3://b/p", "pg-restore"));
        assert!(!o("s3://b/p", "pg", "s3://other/p", "pg"));
        assert!(!o("s3://b/p", "pg", "s3://b/p2", "pg"));
    }
}
