//! The library's error types and the process exit codes they map to. Never prints.

use crate::scenario::{DiscoverError, ScenarioError};

/// Exit codes, stable for CI.
pub mod exit {
    /// Every drill met its expectations.
    pub const PASSED: i32 = 0;
    /// At least one drill ran and did not observe what its scenario expects.
    pub const DRILL_FAILED: i32 = 1;
    /// A scenario file or the command line is invalid; nothing ran.
    pub const INVALID: i32 = 2;
    /// The harness or its infrastructure broke (tools missing, S3 or PostgreSQL would not start).
    pub const INFRASTRUCTURE: i32 = 3;
    /// Interrupted by Ctrl-C (everything torn down first, unless Ctrl-C came twice).
    pub const INTERRUPTED: i32 = 130;
}

/// Errors that stop pgdrill before or outside a drill verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("{0}")]
    Usage(String),
    #[error("infrastructure: {0}")]
    Infrastructure(String),
    #[error("report: {0}")]
    Report(#[from] crate::report::ReportError),
}

impl From<DiscoverError> for Error {
    /// Paths that hold no scenario are a usage error; invalid scenarios stay themselves.
    fn from(e: DiscoverError) -> Self {
        match e {
            DiscoverError::Paths(m) => Error::Usage(m),
            DiscoverError::Invalid(e) => Error::Scenario(e),
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Scenario(_) | Error::Usage(_) => exit::INVALID,
            Error::Infrastructure(_) | Error::Report(_) => exit::INFRASTRUCTURE,
        }
    }
}
