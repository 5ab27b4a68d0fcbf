//! One local run's own resources, around its drills: the run directory
//! (`<home>/runs/<run-id>/`, owned by the PostgreSQL user) and the S3 endpoint, embedded or
//! external, the Azure endpoint when the run has Azure drills (embedded Azurite or external),
//! and the lock that says which process owns them (`lock.rs`; a later run sweeps
//! them if that process dies without tearing down). `finish` is their explicit teardown. Never
//! touches a drill's directory or objects (each `LocalDrill` removes its own) and never prints.

use std::path::{Path, PathBuf};

use crate::backend::azure::AzureTarget;
use crate::backend::credentials::KeyPair;
use crate::backend::objstore::S3Target;
use crate::backend::{BackendError, Keep};

use super::azurite::Azurite;
use super::drill::{LocalBackend, LocalOptions};
use super::lock::{CreatedPrefix, RunKind, RunLock};
use super::s3layer::FaultSwitch;
use super::s3server::S3Server;
use super::toolchain::Toolchain;

/// The object storage a local run archives to.
pub enum S3Endpoint {
    /// The embedded server, started for this run with fresh random keys (data under
    /// `<run dir>/s3`) and stopped by [`S3Endpoint::shutdown`].
    Embedded { server: S3Server, target: S3Target },
    /// An endpoint pgdrill only uses (`--s3-endpoint`): nothing to stop; the bucket must exist
    /// and each drill deletes its own objects.
    External(S3Target),
}

impl S3Endpoint {
    /// Start the embedded endpoint on a free loopback port, serving `bucket` from `dir`.
    pub async fn start_embedded(
        dir: &Path,
        region: &str,
        bucket: &str,
    ) -> Result<Self, BackendError> {
        let creds = KeyPair::random();
        let server = S3Server::start(dir, 0, &creds, &[bucket]).await?;
        let keys = KeyPair {
            access_key: creds.access_key,
            secret_key: creds.secret_key,
        };
        let target = S3Target::new(&server.endpoint, region, bucket, keys);
        Ok(S3Endpoint::Embedded { server, target })
    }

    /// Where and how drills reach it.
    pub fn target(&self) -> &S3Target {
        match self {
            S3Endpoint::Embedded { target, .. } | S3Endpoint::External(target) => target,
        }
    }

    pub fn is_external(&self) -> bool {
        matches!(self, S3Endpoint::External(_))
    }

    /// Behaviour faults (errors, latency); only the embedded endpoint has them.
    pub fn faults(&self) -> Option<FaultSwitch> {
        match self {
            S3Endpoint::Embedded { server, .. } => Some(server.faults.clone()),
            S3Endpoint::External(_) => None,
        }
    }

    /// Stop the embedded server (waiting for requests in flight); an external one is left be.
    pub async fn shutdown(self) {
        if let S3Endpoint::Embedded { server, .. } = self {
            server.shutdown().await;
        }
    }
}

/// The Azure Blob Storage a local run's Azure drills archive to.
pub enum AzureEndpoint {
    /// Azurite, started for this run (data under `<run dir>/azurite`), stopped by
    /// [`AzureEndpoint::shutdown`].
    Embedded(Box<Azurite>),
    /// An account pgdrill only uses (`--azure-endpoint`): the container must exist and each
    /// drill deletes its own blobs.
    External(AzureTarget),
}

impl AzureEndpoint {
    pub fn target(&self) -> &AzureTarget {
        match self {
            AzureEndpoint::Embedded(a) => &a.target,
            AzureEndpoint::External(t) => t,
        }
    }

    pub async fn shutdown(self) {
        if let AzureEndpoint::Embedded(a) = self {
            a.shutdown().await;
        }
    }
}

/// Why a local run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalRunError {
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The run directory and the endpoint of one `pgdrill run --backend local`.
pub struct LocalRun {
    toolchain: Toolchain,
    dir: PathBuf,
    bucket_prefix: String,
    endpoint: S3Endpoint,
    azure: Option<AzureEndpoint>,
    lock: RunLock,
}

impl LocalRun {
    /// Create `<home>/runs/<run_id>/` for the PostgreSQL user and lock it for this process
    /// (recording the bucket prefix the run will write on an external endpoint), then start the
    /// embedded endpoint under it, or use `external` (an endpoint and its keys) when given.
    pub async fn start(
        toolchain: &Toolchain,
        run_id: &str,
        region: &str,
        bucket: &str,
        external: Option<(String, KeyPair)>,
    ) -> Result<Self, LocalRunError> {
        let runs = toolchain.home.join("runs");
        let dir = runs.join(run_id);
        std::fs::create_dir_all(&runs)
            .and_then(|()| std::fs::create_dir(&dir))
            .map_err(|source| LocalRunError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        toolchain.run_as.chown(&dir)?;
        let bucket_prefix = format!("pgdrill/{run_id}");
        let created = match &external {
            Some((endpoint, _)) => vec![CreatedPrefix {
                endpoint: endpoint.clone(),
                region: region.to_string(),
                bucket: bucket.to_string(),
                prefix: bucket_prefix.clone(),
            }],
            None => Vec::new(),
        };
        let lock = RunLock::create(&dir, RunKind::Run, created)?;
        let endpoint = match external {
            Some((endpoint, keys)) => {
                S3Endpoint::External(S3Target::new(&endpoint, region, bucket, keys))
            }
            None => S3Endpoint::start_embedded(&dir.join("s3"), region, bucket).await?,
        };
        Ok(LocalRun {
            toolchain: toolchain.clone(),
            dir,
            bucket_prefix,
            endpoint,
            azure: None,
            lock,
        })
    }

    /// Give the run an Azure endpoint: `external` when given, else Azurite started under the
    /// run directory with `container` created.
    pub async fn start_azure(
        &mut self,
        container: &str,
        external: Option<AzureTarget>,
    ) -> Result<(), BackendError> {
        let endpoint = match external {
            Some(t) => AzureEndpoint::External(t),
            None => AzureEndpoint::Embedded(Box::new(
                Azurite::start(&self.toolchain, &self.dir.join("azurite"), container).await?,
            )),
        };
        self.azure = Some(endpoint);
        Ok(())
    }

    /// The backend whose drills live under this run's directory and bucket prefix.
    pub fn backend(&self) -> LocalBackend {
        LocalBackend::new(LocalOptions {
            toolchain: self.toolchain.clone(),
            s3: self.endpoint.target().clone(),
            run_dir: self.dir.clone(),
            bucket_prefix: self.bucket_prefix.clone(),
            external_s3: self.endpoint.is_external(),
            faults: self.endpoint.faults(),
            azure: self.azure.as_ref().map(|a| a.target().clone()),
            external_azure: matches!(self.azure, Some(AzureEndpoint::External(_))),
        })
    }

    /// Stop the endpoint, then remove the run directory (the lock last); with `keep`, leave
    /// it, mark it kept so no sweep takes it, and return what to tell the user about it.
    pub async fn finish(mut self, keep: Keep) -> Result<Vec<String>, RemoveError> {
        let external = self.endpoint.is_external();
        self.endpoint.shutdown().await;
        if let Some(azure) = self.azure.take() {
            azure.shutdown().await;
        }
        if keep == Keep::Nothing {
            return std::fs::remove_dir_all(&self.dir)
                .map(|()| Vec::new())
                .map_err(|error| RemoveError {
                    path: self.dir,
                    error,
                });
        }
        if let Err(e) = self.lock.mark_kept() {
            tracing::warn!("{e}: the next run may sweep {}", self.dir.display());
        }
        let mut kept = vec![format!(
            "kept (PGDRILL_KEEP): run directory {} (`pgdrill clean --kept` stops and removes it)",
            self.dir.display()
        )];
        if !external {
            kept.push(format!(
                "  its archive can be served again: pgdrill serve-s3 --dir {}",
                self.dir.join("s3").display()
            ));
        }
        Ok(kept)
    }
}

/// The run directory could not be removed (the run itself is over).
#[derive(Debug, thiserror::Error)]
#[error("cannot remove {}: {error}", path.display())]
pub struct RemoveError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

#[cfg(test)]
mod tests {
    use super::super::lock::{self, Tried};
    use super::super::process::RunAs;
    use super::*;

    fn toolchain(home: &Path) -> Toolchain {
        let me = RunAs {
            name: "current user".into(),
            ids: None,
        };
        Toolchain::new(home.to_path_buf(), me)
    }

    #[tokio::test]
    async fn an_embedded_run_is_kept_with_its_archive_or_removed() {
        let home = tempfile::tempdir().unwrap();
        let tc = toolchain(home.path());
        for keep in [true, false] {
            let id = format!("run-{keep}");
            let run = LocalRun::start(&tc, &id, "us-east-1", "pgdrill", None)
                .await
                .unwrap();
            let dir = home.path().join("runs").join(&id);
            let o = run.backend().opts;
            assert_eq!((o.run_dir.as_path(), o.external_s3), (dir.as_path(), false));
            assert_eq!(o.bucket_prefix, format!("pgdrill/{id}"));
            assert!(o.faults.is_some() && o.s3.endpoint.starts_with("http://127.0.0.1:"));
            assert!(dir.join("s3/pgdrill").is_dir());
            assert!(matches!(lock::try_lock(&dir).unwrap(), Tried::Held { .. }));
            let kept = run.finish(Keep::from(keep)).await.unwrap();
            assert_eq!(dir.exists(), keep);
            if keep {
                let record = lock::record_when_free(&dir).unwrap();
                assert!(record.kept, "a kept run is marked kept");
            }
            let said = kept.join("\n");
            assert_eq!(said.contains("pgdrill serve-s3 --dir"), keep, "{said}");
        }
    }

    #[tokio::test]
    async fn an_external_endpoint_is_only_used() {
        let home = tempfile::tempdir().unwrap();
        let keys = KeyPair {
            access_key: "ak".into(),
            secret_key: "sk".into(),
        };
        let external = Some(("http://s3.example:9000".to_string(), keys));
        let run = LocalRun::start(&toolchain(home.path()), "ext", "eu-west-1", "b", external)
            .await
            .unwrap();
        let o = run.backend().opts;
        assert!(o.external_s3 && o.faults.is_none());
        assert_eq!(
            (
                o.s3.endpoint.as_str(),
                o.s3.region.as_str(),
                o.s3.bucket.as_str()
            ),
            ("http://s3.example:9000", "eu-west-1", "b")
        );
        assert!(!home.path().join("runs/ext/s3").exists());
        let created = &run.lock.record().prefixes;
        assert_eq!(created.len(), 1, "{created:?}");
        assert_eq!(created[0].url(), "s3://b/pgdrill/ext");
        assert_eq!(created[0].endpoint, "http://s3.example:9000");
        let kept = run.finish(Keep::Everything).await.unwrap();
        assert_eq!(kept.len(), 1, "{kept:?}");
    }
}
