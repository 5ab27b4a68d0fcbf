//! The S3 API the embedded endpoint serves: `s3s-fs` underneath, with request normalisation
//! where real clients and `s3s-fs` disagree, and the behaviour-fault layer drills switch on
//! per bucket prefix (checksum-header rejection as Oracle Object Storage does, latency, error
//! windows: 503 SlowDown, 403 InvalidAccessKeyId, 404 NoSuchBucket for a while, over every
//! request, WAL uploads, or recovery's reads), and the probes a drill reads back (what an error
//! window failed, requests held until the drill releases them). Never stores anything itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::wal::{SegmentName, segment_of_key};

/// How the endpoint misbehaves for requests under one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Answer `501 NotImplemented` to requests carrying the flexible-checksum headers newer
    /// AWS SDKs send by default (`x-amz-checksum-*`, `x-amz-sdk-checksum-algorithm`,
    /// `x-amz-trailer`, streaming trailer payloads), as Oracle Object Storage does (seed 000).
    pub reject_checksum_headers: bool,
    /// Delay every request.
    pub latency: Option<Duration>,
    /// Answer with an error until a deadline.
    pub errors: Option<ActiveErrors>,
    /// Count what the error window fails and serves, and hold requests, for the drill to read.
    pub probe: Option<Probe>,
}

/// Requests fail with `error` until `until`, at most `budget` of them when it is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveErrors {
    pub error: crate::scenario::StoreError,
    pub until: Instant,
    /// Which requests fail.
    pub scope: ErrorScope,
    /// How many more requests may fail (shared by the clones of one window); `None`: any number.
    pub budget: Option<FailureBudget>,
}

/// The failures an error window has left, shared by every clone of it.
#[derive(Debug, Clone)]
pub struct FailureBudget(Arc<std::sync::atomic::AtomicU64>);

impl FailureBudget {
    pub fn new(failures: u64) -> Self {
        Self(Arc::new(std::sync::atomic::AtomicU64::new(failures)))
    }

    /// Spend one failure; false when none is left.
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Two budgets are equal when they are the same window's.
impl PartialEq for FailureBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for FailureBudget {}

/// Which requests an error window fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorScope {
    All,
    /// WAL uploads (`PutObject` and multipart parts under `.../wals/`).
    WalPuts,
    /// Reads (Get, Head, List) under `.../wals/`; with a segment, only those naming that
    /// segment or a later one (a listing of one segment's keys names it).
    WalReads(Option<SegmentName>),
    /// Reads under `.../base/` (the base backup).
    BackupReads,
}

fn is_read(op: &str) -> bool {
    matches!(
        op,
        "GetObject" | "HeadObject" | "ListObjectsV2" | "ListObjects"
    )
}

impl ActiveErrors {
    /// Whether a request of operation `op` on `path` fails now.
    pub fn applies(&self, op: &str, path: &str, now: Instant) -> bool {
        now < self.until
            && match &self.scope {
                ErrorScope::All => true,
                ErrorScope::WalPuts => is_wal_put(op, path),
                ErrorScope::WalReads(from) => {
                    is_read(op)
                        && path.contains("/wals/")
                        && from.is_none_or(|f| {
                            segment_of_key(path).is_some_and(|s| (s.log, s.seg) >= (f.log, f.seg))
                        })
                }
                ErrorScope::BackupReads => is_read(op) && path.contains("/base/"),
            }
    }

    /// Whether this request fails: it [`applies`](Self::applies), and the window's failure
    /// budget, if any, has one left (spent here).
    pub fn fails(&self, op: &str, path: &str, now: Instant) -> bool {
        self.applies(op, path, now) && self.budget.as_ref().is_none_or(FailureBudget::take)
    }

    /// The error S3 would answer with.
    pub fn s3_error(&self) -> s3s::S3Error {
        use crate::scenario::StoreError;
        match self.error {
            StoreError::SlowDown => s3s::s3_error!(SlowDown, "Please reduce your request rate."),
            StoreError::WrongCredentials => s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            ),
            StoreError::MissingBucket => {
                s3s::s3_error!(NoSuchBucket, "The specified bucket does not exist")
            }
        }
    }
}

/// An upload of a WAL file: `PutObject` or a multipart step under a `wals/` folder.
pub fn is_wal_put(op: &str, path: &str) -> bool {
    matches!(
        op,
        "PutObject" | "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload"
    ) && path.contains("/wals/")
}

/// What a drill holds back: requests matching this wait until the probe is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldRule {
    /// The first upload of a base backup's `backup.info` (barman-cloud-backup announcing a
    /// STARTED backup).
    BackupInfoPut,
    /// Reads of WAL segments after this one.
    WalReadsAfter(SegmentName),
}

impl HoldRule {
    pub fn applies(&self, op: &str, path: &str) -> bool {
        match self {
            HoldRule::BackupInfoPut => {
                op == "PutObject" && path.contains("/base/") && path.ends_with("/backup.info")
            }
            HoldRule::WalReadsAfter(x) => {
                is_read(op)
                    && path.contains("/wals/")
                    && segment_of_key(path).is_some_and(|s| (s.log, s.seg) > (x.log, x.seg))
            }
        }
    }
}

/// What a probe saw, for the drill that switched it on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeReadings {
    /// Requests the error window failed.
    pub errors_answered: u64,
    /// WAL segments whose reads the error window failed.
    pub failed_wal: BTreeSet<SegmentName>,
    /// WAL segments read successfully (a `GetObject` answered).
    pub served_wal: BTreeSet<SegmentName>,
    /// Requests held now (waiting for `release`).
    pub held_now: u64,
    /// Requests held in total.
    pub held_total: u64,
}

/// A drill's view into the endpoint: readings, and an optional hold it releases once.
#[derive(Debug, Clone)]
pub struct Probe(Arc<ProbeInner>);

#[derive(Debug)]
struct ProbeInner {
    hold: Option<HoldRule>,
    readings: Mutex<ProbeReadings>,
    released: tokio::sync::watch::Sender<bool>,
}

impl PartialEq for Probe {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Probe {}

impl Probe {
    pub fn new(hold: Option<HoldRule>) -> Self {
        Probe(Arc::new(ProbeInner {
            hold,
            readings: Mutex::new(ProbeReadings::default()),
            released: tokio::sync::watch::channel(false).0,
        }))
    }

    pub fn readings(&self) -> ProbeReadings {
        self.0
            .readings
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Let every held request (and every later one) through.
    pub fn release(&self) {
        self.0.released.send_replace(true);
    }

    fn update(&self, f: impl FnOnce(&mut ProbeReadings)) {
        if let Ok(mut r) = self.0.readings.lock() {
            f(&mut r);
        }
    }

    /// Hold a request matching the rule until released.
    pub async fn hold(&self, op: &str, path: &str) {
        if !self.0.hold.as_ref().is_some_and(|h| h.applies(op, path)) {
            return;
        }
        let mut rx = self.0.released.subscribe();
        if *rx.borrow() {
            return;
        }
        self.update(|r| {
            r.held_now += 1;
            r.held_total += 1;
        });
        let _ = rx.wait_for(|released| *released).await;
        self.update(|r| r.held_now -= 1);
    }

    /// Record a failed request.
    pub fn failed(&self, path: &str) {
        self.update(|r| {
            r.errors_answered += 1;
            if path.contains("/wals/")
                && let Some(s) = segment_of_key(path)
            {
                r.failed_wal.insert(s);
            }
        });
    }

    /// Record an answered request.
    pub fn served(&self, op: &str, path: &str) {
        if op == "GetObject"
            && path.contains("/wals/")
            && let Some(s) = segment_of_key(path)
        {
            self.update(|r| {
                r.served_wal.insert(s);
            });
        }
    }
}

/// Behaviours by `bucket/prefix`, shared between the endpoint and the drills that switch them.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<Mutex<BTreeMap<String, Behaviour>>>);

impl FaultSwitch {
    /// Apply `b` to every request under `bucket/prefix` (replacing what was set there).
    pub fn set(&self, scope: &str, b: Behaviour) {
        let scope = scope.trim_matches('/').to_string();
        if let Ok(mut m) = self.0.lock() {
            if b == Behaviour::default() {
                m.remove(&scope);
            } else {
                m.insert(scope, b);
            }
        }
    }

    /// The behaviour for a request on `path` (`bucket/key`, or `bucket/` plus a listing's
    /// `prefix`): the longest matching scope wins.
    pub fn lookup(&self, path: &str) -> Behaviour {
        let Ok(m) = self.0.lock() else {
            return Behaviour::default();
        };
        m.iter()
            .filter(|(scope, _)| path == scope.as_str() || path.starts_with(&format!("{scope}/")))
            .max_by_key(|(scope, _)| scope.len())
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }
}

/// The flexible-checksum header or payload mode a request carries, if any.
pub fn checksum_header(headers: &hyper::HeaderMap) -> Option<String> {
    for (name, value) in headers {
        let n = name.as_str();
        if n.starts_with("x-amz-checksum-")
            || n == "x-amz-sdk-checksum-algorithm"
            || n == "x-amz-trailer"
        {
            return Some(n.to_string());
        }
        if n == "x-amz-content-sha256" && value.to_str().is_ok_and(|v| v.contains("TRAILER")) {
            return Some(format!("{n}: {}", value.to_str().unwrap_or_default()));
        }
    }
    None
}

/// The path a request addresses for fault scoping: `bucket/key`, or for a listing
/// `bucket/<prefix query parameter>`.
pub fn request_scope(path: &str, query: Option<&str>) -> String {
    if path.contains('/') {
        return path.to_string();
    }
    let prefix = query
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("prefix="))
        .map(|p| p.replace("%2F", "/").replace("%2f", "/"))
        .unwrap_or_default();
    format!("{path}/{prefix}")
}

/// `s3s_fs::FileSystem` as barman-cloud and aws-sdk-s3 expect it to behave.
pub struct DrillS3 {
    inner: s3s_fs::FileSystem,
}

impl DrillS3 {
    pub fn new(inner: s3s_fs::FileSystem) -> Self {
        Self { inner }
    }
}

/// botocore sends `delimiter=` (empty) for a recursive listing; S3 treats an empty delimiter
/// as none, `s3s-fs` 0.14 as a delimiter that matches at every position.
fn no_empty(d: Option<Delimiter>) -> Option<Delimiter> {
    d.filter(|d| !d.is_empty())
}

#[async_trait::async_trait]
impl S3 for DrillS3 {
    async fn list_objects_v2(
        &self,
        mut req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        req.input.delimiter = no_empty(req.input.delimiter.take());
        self.inner.list_objects_v2(req).await
    }

    async fn list_objects(
        &self,
        mut req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        req.input.delimiter = no_empty(req.input.delimiter.take());
        self.inner.list_objects(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.inner.delete_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.inner.put_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.inner.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.inner.copy_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.inner.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.inner.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.inner.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.inner.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_windows_expire_and_can_spare_everything_but_wal_puts() {
        let now = Instant::now();
        let w = ActiveErrors {
            error: crate::scenario::StoreError::SlowDown,
            until: now + Duration::from_secs(5),
            scope: ErrorScope::WalPuts,
            budget: None,
        };
        let wal = "b/p/srv/wals/0000000100000000/000000010000000000000003.gz";
        assert!(w.applies("PutObject", wal, now));
        assert!(w.applies("UploadPart", wal, now));
        assert!(!w.applies("GetObject", wal, now));
        assert!(!w.applies("PutObject", "b/p/srv/base/x/data.tar.gz", now));
        assert!(!w.applies("PutObject", wal, now + Duration::from_secs(5)));
        let all = ActiveErrors {
            scope: ErrorScope::All,
            ..w.clone()
        };
        assert!(all.applies("ListObjectsV2", "b/p/srv", now));
        assert_eq!(all.s3_error().code().as_str(), "SlowDown");
        let creds = ActiveErrors {
            error: crate::scenario::StoreError::WrongCredentials,
            ..w.clone()
        };
        assert_eq!(creds.s3_error().code().as_str(), "InvalidAccessKeyId");
        let gone = ActiveErrors {
            error: crate::scenario::StoreError::MissingBucket,
            ..w
        };
        assert_eq!(gone.s3_error().code().as_str(), "NoSuchBucket");
    }

    #[test]
    fn recovery_read_windows_spare_uploads_and_earlier_segments() {
        let now = Instant::now();
        let from = SegmentName::parse("000000010000000000000005");
        let w = ActiveErrors {
            error: crate::scenario::StoreError::SlowDown,
            until: now + Duration::from_secs(5),
            scope: ErrorScope::WalReads(from),
            budget: None,
        };
        let key = |n: u8| format!("b/p/srv/wals/0000000100000000/0000000100000000000000{n:02X}.gz");
        assert!(w.applies("GetObject", &key(5), now));
        assert!(
            w.applies("ListObjectsV2", &key(6), now),
            "a listing of one segment"
        );
        assert!(!w.applies("GetObject", &key(4), now), "before `from`");
        assert!(!w.applies("PutObject", &key(6), now), "uploads are spared");
        assert!(!w.applies("GetObject", "b/p/srv/wals/00000002.history", now));
        assert!(!w.applies("GetObject", "b/p/srv/base/x/data.tar.gz", now));
        let base = ActiveErrors {
            scope: ErrorScope::BackupReads,
            ..w
        };
        assert!(base.applies("GetObject", "b/p/srv/base/x/data.tar.gz", now));
        assert!(!base.applies("GetObject", &key(6), now));
    }

    #[test]
    fn a_failure_budget_is_spent_by_failing_requests_only_and_shared_by_clones() {
        let now = Instant::now();
        let w = ActiveErrors {
            error: crate::scenario::StoreError::SlowDown,
            until: now + Duration::from_secs(5),
            scope: ErrorScope::BackupReads,
            budget: Some(FailureBudget::new(2)),
        };
        let data = "b/p/srv/base/x/data.tar.gz";
        let wal = "b/p/srv/wals/0000000100000000/000000010000000000000006.gz";
        assert!(
            !w.fails("GetObject", wal, now),
            "out of scope: spends nothing"
        );
        assert!(w.fails("GetObject", data, now));
        assert!(
            w.clone().fails("GetObject", data, now),
            "a clone spends the same budget"
        );
        assert!(
            !w.fails("GetObject", data, now),
            "spent: the store answers again"
        );
        assert!(
            w.applies("GetObject", data, now),
            "although the window is open"
        );
        let unlimited = ActiveErrors { budget: None, ..w };
        assert!((0..100).all(|_| unlimited.fails("GetObject", data, now)));
    }

    #[test]
    fn holds_match_their_rule_only() {
        let info = HoldRule::BackupInfoPut;
        assert!(info.applies("PutObject", "b/p/srv/base/20260101T000000/backup.info"));
        assert!(!info.applies("GetObject", "b/p/srv/base/20260101T000000/backup.info"));
        assert!(!info.applies("PutObject", "b/p/srv/base/20260101T000000/data.tar.gz"));
        let after =
            HoldRule::WalReadsAfter(SegmentName::parse("000000010000000000000005").unwrap());
        assert!(after.applies(
            "GetObject",
            "b/p/srv/wals/0000000100000000/000000010000000000000006.gz"
        ));
        assert!(!after.applies(
            "GetObject",
            "b/p/srv/wals/0000000100000000/000000010000000000000005.gz"
        ));
    }

    #[tokio::test]
    async fn a_probe_counts_and_releases() {
        let p = Probe::new(Some(HoldRule::BackupInfoPut));
        p.failed("b/p/srv/wals/0000000100000000/000000010000000000000007.gz");
        p.served(
            "GetObject",
            "b/p/srv/wals/0000000100000000/000000010000000000000006.gz",
        );
        p.hold("GetObject", "b/p/x").await;
        let held = tokio::spawn({
            let p = p.clone();
            async move { p.hold("PutObject", "b/p/srv/base/i/backup.info").await }
        });
        while p.readings().held_now == 0 {
            tokio::task::yield_now().await;
        }
        p.release();
        held.await.unwrap();
        let r = p.readings();
        assert_eq!((r.errors_answered, r.held_now, r.held_total), (1, 0, 1));
        let seg = |n: &str| SegmentName::parse(n).unwrap();
        assert!(r.failed_wal.contains(&seg("000000010000000000000007")));
        assert!(r.served_wal.contains(&seg("000000010000000000000006")));
    }

    #[test]
    fn behaviours_apply_under_their_prefix_only() {
        let f = FaultSwitch::default();
        let on = Behaviour {
            reject_checksum_headers: true,
            ..Behaviour::default()
        };
        f.set("pgdrill/run/a", on.clone());
        assert_eq!(f.lookup("pgdrill/run/a/pg/wals/x.gz"), on);
        assert_eq!(f.lookup("pgdrill/run/a"), on);
        assert_eq!(
            f.lookup("pgdrill/run/ab/pg/x"),
            Behaviour::default(),
            "a sibling prefix"
        );
        assert_eq!(f.lookup("pgdrill/run/b/x"), Behaviour::default());
        let slow = Behaviour {
            reject_checksum_headers: false,
            latency: Some(Duration::from_millis(5)),
            errors: None,
            probe: None,
        };
        f.set("pgdrill/run/a/pg/", slow.clone());
        assert_eq!(
            f.lookup("pgdrill/run/a/pg/x"),
            slow,
            "the longest scope wins"
        );
        assert_eq!(f.lookup("pgdrill/run/a/other"), on);
        f.set("/pgdrill/run/a/pg/", Behaviour::default());
        assert_eq!(
            f.lookup("pgdrill/run/a/pg/x"),
            on,
            "switched off, slashes or not"
        );
        f.set("pgdrill/run/a", Behaviour::default());
        assert_eq!(
            f.lookup("pgdrill/run/a/x"),
            Behaviour::default(),
            "switched off"
        );
    }

    #[test]
    fn listings_are_scoped_by_their_prefix_parameter() {
        assert_eq!(request_scope("pgdrill/k/x", None), "pgdrill/k/x");
        assert_eq!(
            request_scope(
                "pgdrill",
                Some("list-type=2&prefix=run%2Fa%2Fpg%2F&delimiter=")
            ),
            "pgdrill/run/a/pg/"
        );
        assert_eq!(request_scope("pgdrill", None), "pgdrill/");
    }

    #[test]
    fn flexible_checksum_headers_are_recognised() {
        let mut h = hyper::HeaderMap::new();
        assert_eq!(checksum_header(&h), None);
        h.insert("content-md5", "x".parse().unwrap());
        assert_eq!(
            checksum_header(&h),
            None,
            "Content-MD5 is the old, accepted kind"
        );
        h.insert("x-amz-sdk-checksum-algorithm", "CRC32".parse().unwrap());
        assert!(checksum_header(&h).is_some());
        let mut t = hyper::HeaderMap::new();
        t.insert(
            "x-amz-content-sha256",
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER".parse().unwrap(),
        );
        assert!(checksum_header(&t).is_some());
        let mut m = hyper::HeaderMap::new();
        m.insert("x-amz-checksum-mode", "ENABLED".parse().unwrap());
        assert!(checksum_header(&m).is_some());
        let mut tr = hyper::HeaderMap::new();
        tr.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        assert_eq!(checksum_header(&tr).as_deref(), Some("x-amz-trailer"));
    }
}
