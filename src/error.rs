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

    /// A run's exit code: 1 when any drill failed its expectations (a finding is never
    /// masked), else 3 when the harness broke (a scenario task that panicked counts), else 0.
    pub fn of_run(summary: &crate::runner::RunSummary) -> i32 {
        if summary.failed() > 0 {
            DRILL_FAILED
        } else if summary.errors() > 0 || summary.panicked > 0 {
            INFRASTRUCTURE
        } else {
            PASSED
        }
    }
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
    /// A backend's error, typed (the exit code follows it; its cause is `.0.source()`), with
    /// the text of `Infrastructure(e.to_string())`. Not this error's `source()`: the text
    /// already ends with the cause's, and the binary prints chains (`{:#}`).
    #[error("infrastructure: {0}")]
    Backend(crate::backend::BackendError),
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

impl From<crate::backend::BackendError> for Error {
    fn from(e: crate::backend::BackendError) -> Self {
        Error::Backend(e)
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Scenario(_) | Error::Usage(_) => exit::INVALID,
            Error::Backend(crate::backend::BackendError::Cancelled) => exit::INTERRUPTED,
            Error::Infrastructure(_) | Error::Backend(_) | Error::Report(_) => exit::INFRASTRUCTURE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exit;
    use crate::runner::RunSummary;

    #[test]
    fn a_panicked_scenario_is_never_a_pass() {
        let mut s = RunSummary::default();
        assert_eq!(exit::of_run(&s), exit::PASSED);
        s.panicked = 1;
        assert_eq!(exit::of_run(&s), exit::INFRASTRUCTURE);
    }

    #[test]
    fn a_backend_error_keeps_its_text_cause_and_exit_code() {
        use super::Error;
        use crate::backend::BackendError;
        use std::error::Error as _;
        let io = std::io::Error::other("denied");
        let e = Error::from(BackendError::io("cannot create /x", io));
        assert_eq!(e.to_string(), "infrastructure: cannot create /x: denied");
        // Printed as a chain (as the binary's `{:#}` does), the cause is not repeated.
        assert!(e.source().is_none());
        let Error::Backend(inner) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(inner.source().unwrap().to_string(), "denied");
        assert_eq!(e.exit_code(), exit::INFRASTRUCTURE);
        assert_eq!(
            Error::from(BackendError::Cancelled).exit_code(),
            exit::INTERRUPTED
        );
    }
}
