//! Report writers. Each consumes run events only. (Placeholder: to be completed.)

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReportError(pub String);
