//! Why a report could not be written. Never writes anything itself.

use std::io;
use std::path::PathBuf;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file-system operation on a report file or directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing to the progress output (usually stdout) failed.
    #[error("writing progress output: {0}")]
    Output(#[source] io::Error),
    #[error("serializing {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("serializing {}: {source}", path.display())]
    Junit {
        path: PathBuf,
        #[source]
        source: quick_junit::SerializeError,
    },
    /// `reports/latest` exists and is a real file or directory, which pgdrill never deletes.
    #[error(
        "{} exists and is not a symlink; move it away so pgdrill can point `latest` at the newest run",
        path.display()
    )]
    LatestNotSymlink { path: PathBuf },
    /// The run directory already exists: a run id is never reused, reports are never overwritten.
    #[error("report directory {} already exists", path.display())]
    RunDirExists { path: PathBuf },
    /// The run id cannot name a directory under the reports root.
    #[error("run id {0:?} cannot name a report directory")]
    InvalidRunId(String),
    /// `finish` was called on a file reporter that never saw `RunStarted`.
    #[error("no RunStarted event was reported; nothing to write")]
    NoRun,
    /// Several reporters failed; each error in order.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ReportError>),
}
