//! Errors a backend reports. Never prints; never carries credentials.

/// What went wrong outside the drill's expectations.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The harness or its infrastructure broke: a tool is missing, a process would not start,
    /// object storage refused a request, a deadline passed in a step that must not fail.
    #[error("{0}")]
    Infra(String),
    /// The run was interrupted (Ctrl-C).
    #[error("interrupted")]
    Cancelled,
}

impl BackendError {
    pub fn infra(msg: impl Into<String>) -> Self {
        BackendError::Infra(msg.into())
    }
}

impl From<tokio_postgres::Error> for BackendError {
    fn from(e: tokio_postgres::Error) -> Self {
        let detail = e
            .as_db_error()
            .map(|d| format!("{}: {}", d.severity(), d.message()))
            .unwrap_or_else(|| e.to_string());
        BackendError::Infra(format!("SQL: {detail}"))
    }
}
