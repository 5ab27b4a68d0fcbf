//! The embedded S3 endpoint: `s3s` + `s3s-fs` on a loopback port, data under a directory.
//! It listens on loopback unless told another address (`pgdrill serve-s3 --address`, which the
//! live cluster uses for its pods) and never logs credentials.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::BackendError;
use crate::backend::credentials::KeyPair;

/// A running embedded endpoint. Owner of the listener task: `shutdown` stops it; dropping it
/// aborts the task.
pub struct S3Server {
    pub endpoint: String,
    pub addr: SocketAddr,
    pub root: PathBuf,
    /// Every S3 operation served, in order (`ListObjectsV2 bucket/key`), for audits of what a
    /// client did: a read-only client must leave only Get/Head/List entries here.
    pub operations: OperationLog,
    /// Behaviour faults by prefix (see `s3layer::Behaviour`).
    pub faults: super::s3layer::FaultSwitch,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Names and paths of the S3 operations a server handled.
#[derive(Debug, Clone, Default)]
pub struct OperationLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl OperationLog {
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
    pub fn clear(&self) {
        if let Ok(mut v) = self.0.lock() {
            v.clear();
        }
    }
}

/// Records each operation, applies the behaviour faults switched on for its prefix, then the
/// default rule (a signed request is required).
struct RecordingAccess(OperationLog, super::s3layer::FaultSwitch);

#[async_trait::async_trait]
impl s3s::access::S3Access for RecordingAccess {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        let path = match cx.s3_path() {
            s3s::path::S3Path::Root => String::new(),
            s3s::path::S3Path::Bucket { bucket } => bucket.to_string(),
            s3s::path::S3Path::Object { bucket, key } => format!("{bucket}/{key}"),
        };
        if let Ok(mut v) = (self.0).0.lock()
            && v.len() < 100_000
        {
            v.push(format!("{} {path}", cx.s3_op().name()));
        }
        let b = self
            .1
            .lookup(&super::s3layer::request_scope(&path, cx.uri().query()));
        if let Some(d) = b.latency {
            tokio::time::sleep(d).await;
        }
        let op = cx.s3_op().name();
        // A listing's scope names what it lists (a WAL segment's keys, say).
        let scope = super::s3layer::request_scope(&path, cx.uri().query());
        if let Some(p) = &b.probe {
            p.hold(op, &scope).await;
        }
        if let Some(w) = &b.errors
            && w.fails(op, &scope, std::time::Instant::now())
        {
            if let Some(p) = &b.probe {
                p.failed(&scope);
            }
            return Err(w.s3_error());
        }
        if let Some(p) = &b.probe {
            p.served(op, &scope);
        }
        if b.reject_checksum_headers
            && let Some(h) = super::s3layer::checksum_header(cx.headers())
        {
            return Err(s3s::s3_error!(
                NotImplemented,
                "this store does not implement the flexible-checksum header {h}"
            ));
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3s::s3_error!(AccessDenied, "Signature is required")),
        }
    }
}

/// What `s3s_fs::FileSystem::new` failed on, as the I/O error it was: s3s-fs's error has only a
/// debug form and keeps its cause private (an I/O error: the directory, or its leftover
/// temporary files), reachable only through `S3Error`.
fn fs_cause(e: s3s_fs::Error) -> std::io::Error {
    let e = s3s::S3Error::from(e);
    match e.source().and_then(|c| c.downcast_ref::<std::io::Error>()) {
        Some(io) => io.raw_os_error().map_or_else(
            || std::io::Error::new(io.kind(), io.to_string()),
            std::io::Error::from_raw_os_error,
        ),
        None => std::io::Error::other(format!("{e}")),
    }
}

impl S3Server {
    /// Serve `root` on `127.0.0.1:port` (0 picks a free port). Every top-level directory of
    /// `root` is a bucket; `buckets` are created if missing.
    pub async fn start(
        root: &Path,
        port: u16,
        creds: &KeyPair,
        buckets: &[&str],
    ) -> Result<Self, BackendError> {
        Self::start_on(IpAddr::from([127, 0, 0, 1]), root, port, creds, buckets).await
    }

    /// [`S3Server::start`] on `address` instead of loopback.
    pub async fn start_on(
        address: IpAddr,
        root: &Path,
        port: u16,
        creds: &KeyPair,
        buckets: &[&str],
    ) -> Result<Self, BackendError> {
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).map_err(|e| {
                BackendError::io(
                    format!("cannot create bucket dir under {}", root.display()),
                    e,
                )
            })?;
        }
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| {
            BackendError::io(format!("embedded S3 at {}", root.display()), fs_cause(e))
        })?;
        let mut b = S3ServiceBuilder::new(super::s3layer::DrillS3::new(fs));
        b.set_auth(SimpleAuth::from_single(
            creds.access_key.clone(),
            creds.secret_key.clone(),
        ));
        let operations = OperationLog::default();
        let faults = super::s3layer::FaultSwitch::default();
        b.set_access(RecordingAccess(operations.clone(), faults.clone()));
        let service = b.build();
        let listener = TcpListener::bind((address, port)).await.map_err(|e| {
            BackendError::io(format!("embedded S3 cannot bind {address}:{port}"), e)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| BackendError::io("embedded S3", e))?;
        let (stop_tx, mut stop_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            let graceful = hyper_util::server::graceful::GracefulShutdown::new();
            loop {
                tokio::select! {
                    res = listener.accept() => {
                        let Ok((socket, _)) = res else { continue };
                        let conn = http.serve_connection(TokioIo::new(socket), service.clone());
                        let conn = graceful.watch(conn.into_owned());
                        tokio::spawn(async move { let _ = conn.await; });
                    }
                    _ = &mut stop_rx => break,
                }
            }
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            addr,
            root: root.to_path_buf(),
            operations,
            faults,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// Stop accepting requests and wait for in-flight ones (at most 5 s).
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            tracing::warn!(
                "embedded S3 at {} dropped without shutdown; aborting it",
                self.endpoint
            );
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io::ErrorKind;

    use super::*;

    fn creds() -> KeyPair {
        KeyPair {
            access_key: "a".into(),
            secret_key: "b".into(),
        }
    }

    /// Why the endpoint did not start, or `None` if it did.
    async fn refusal(root: &Path, port: u16) -> BackendError {
        match S3Server::start(root, port, &creds(), &["pgdrill"]).await {
            Ok(s) => {
                s.shutdown().await;
                panic!("the endpoint started on {}", root.display())
            }
            Err(e) => e,
        }
    }

    /// The I/O error a start-up error keeps as its cause; its text ends the error's own.
    fn io_cause(e: &BackendError) -> &std::io::Error {
        let cause = e
            .source()
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .unwrap_or_else(|| panic!("no I/O cause kept: {e:?}"));
        assert!(e.to_string().ends_with(&format!(": {cause}")), "{e}");
        cause
    }

    #[tokio::test]
    async fn start_up_errors_keep_the_io_error_as_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = refusal(dir.path(), port).await;
        assert_eq!(io_cause(&e).kind(), ErrorKind::AddrInUse);
        assert!(
            e.to_string()
                .starts_with(&format!("embedded S3 cannot bind 127.0.0.1:{port}: ")),
            "{e}"
        );

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = refusal(&file, 0).await;
        assert_eq!(io_cause(&e).kind(), ErrorKind::NotADirectory);
        assert!(
            e.to_string().starts_with("cannot create bucket dir under"),
            "{e}"
        );

        // s3s-fs refuses a root holding a leftover temporary file it cannot remove; its error
        // has only a debug form, the cause is the I/O error underneath.
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(".tmp.1.internal.part")).unwrap();
        let e = refusal(&root, 0).await;
        assert_eq!(io_cause(&e).kind(), ErrorKind::IsADirectory);
        assert_eq!(
            e.to_string(),
            format!("embedded S3 at {}: {}", root.display(), io_cause(&e))
        );
    }
}
