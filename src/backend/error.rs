//! Errors a backend reports. Never prints; never carries credentials.
//!
//! One variant per kind of cause, each keeping the underlying error as its `source()`. The
//! `Display` text is what reports show and scenarios match (`error_contains`), and it already
//! ends with the cause's own text: print it with `{}`, not as a chain (anyhow's `{:#}` would
//! repeat the cause).

use std::error::Error as StdError;
use std::time::Duration;

/// An underlying error of any type (the aws-sdk's, kube-runtime's, a module's above this one).
pub type Cause = Box<dyn StdError + Send + Sync>;

/// What went wrong outside the drill's expectations.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A statement with no underlying error: a tool is missing, a step came out of order, an
    /// object is not where it must be, a request is refused, an answer is not what was asked.
    #[error("{0}")]
    Infra(String),
    /// PostgreSQL refused a statement, or the connection to it broke.
    #[error("SQL: {}", sql_detail(source))]
    Sql {
        #[from]
        source: tokio_postgres::Error,
    },
    /// A connection to PostgreSQL could not be opened (`what`: to which server).
    #[error("{what}: {source}")]
    Connect {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Object storage refused or failed a request (an aws-sdk error, or the `object_store`
    /// crate's on Azure). The text is the whole chain of causes and their debug form, as the
    /// SDK's `DisplayErrorContext` gives it.
    #[error("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&**source))]
    S3 {
        what: String,
        #[source]
        source: Cause,
    },
    /// A file, directory, socket, pipe or an object's body stream could not be read, written
    /// or created.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A command could not be started (`what`: its name).
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed: `output` is its stderr and stdout, trimmed.
    #[error("{what}: {output}")]
    Tool {
        what: String,
        code: Option<i32>,
        output: String,
    },
    /// A server process exited when it had to keep running: `log` is what it said last.
    #[error("{what}:\n{log}")]
    Exited { what: String, log: String },
    /// What a command printed could not be understood.
    #[error("{what}: {source}")]
    Parse {
        what: String,
        #[source]
        source: Cause,
    },
    /// A deadline passed: `{what} within {after}s{detail}`.
    #[error("{what} within {}s{detail}", after.as_secs())]
    Timeout {
        what: String,
        after: Duration,
        detail: String,
    },
    /// The Kubernetes API server refused a request, or a watch on it failed.
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: Cause,
    },
    /// The ledger cannot answer what a step asks of it (a target, a backup, a write).
    #[error("{}{source}", prefix(what))]
    Ledger {
        what: Option<String>,
        #[source]
        source: Cause,
    },
    /// The run was interrupted (Ctrl-C).
    #[error("interrupted")]
    Cancelled,
}

fn sql_detail(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| format!("{}: {}", d.severity(), d.message()))
        .unwrap_or_else(|| e.to_string())
}

fn prefix(what: &Option<String>) -> String {
    what.as_ref().map(|w| format!("{w}: ")).unwrap_or_default()
}

impl BackendError {
    /// A statement with no underlying error (see [`BackendError::Infra`]).
    pub fn infra(msg: impl Into<String>) -> Self {
        BackendError::Infra(msg.into())
    }

    pub fn connect(what: impl Into<String>, source: tokio_postgres::Error) -> Self {
        BackendError::Connect {
            what: what.into(),
            source,
        }
    }

    /// An aws-sdk error (`SdkError`) of a request about `what`.
    pub fn s3(what: impl Into<String>, source: impl StdError + Send + Sync + 'static) -> Self {
        BackendError::S3 {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BackendError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn spawn(what: impl Into<String>, source: std::io::Error) -> Self {
        BackendError::Spawn {
            what: what.into(),
            source,
        }
    }

    pub fn parse(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        BackendError::Parse {
            what: what.into(),
            source: source.into(),
        }
    }

    /// `{what} within {after}s{detail}`; `detail` starts with its own separator, or is empty.
    pub fn timeout(what: impl Into<String>, after: Duration, detail: impl Into<String>) -> Self {
        BackendError::Timeout {
            what: what.into(),
            after,
            detail: detail.into(),
        }
    }

    pub fn kube(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        BackendError::Kube {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A ledger's (or a pick over it) refusal, after `what: `.
    pub fn ledger(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        BackendError::Ledger {
            what: Some(what.into()),
            source: source.into(),
        }
    }
}

impl From<crate::ledger::LedgerError> for BackendError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        BackendError::Ledger {
            what: None,
            source: Box::new(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::Duration;

    use super::BackendError;
    use crate::ledger::LedgerError;

    fn io(msg: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, msg.to_string())
    }

    /// The cause `e.source()` returns, as text (each variant's source is a different type).
    fn source_text(e: &BackendError) -> String {
        e.source().expect("the cause is kept").to_string()
    }

    #[test]
    fn a_statement_has_no_cause() {
        let e = BackendError::infra("delete_wal names no segment");
        assert_eq!(e.to_string(), "delete_wal names no segment");
        assert!(e.source().is_none());
        assert_eq!(BackendError::Cancelled.to_string(), "interrupted");
    }

    #[test]
    fn sql_keeps_the_driver_error() {
        let cause = "port=x".parse::<tokio_postgres::Config>().unwrap_err();
        let text = cause.to_string();
        let e = BackendError::from(cause);
        assert_eq!(e.to_string(), format!("SQL: {text}"));
        assert!(e.source().unwrap().is::<tokio_postgres::Error>());
        assert_eq!(source_text(&e), text);

        let cause = "port=x".parse::<tokio_postgres::Config>().unwrap_err();
        let e = BackendError::connect("connecting to pod-1", cause);
        assert_eq!(e.to_string(), format!("connecting to pod-1: {text}"));
        assert_eq!(source_text(&e), text);
    }

    #[test]
    fn s3_shows_the_whole_sdk_context_and_keeps_the_sdk_error() {
        use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
        use aws_sdk_s3::operation::get_object::GetObjectError;
        let make = || -> SdkError<GetObjectError> { SdkError::construction_failure(io("no key")) };
        let e = BackendError::s3("reading s3://b/k", make());
        assert_eq!(
            e.to_string(),
            format!("reading s3://b/k: {}", DisplayErrorContext(&make()))
        );
        assert!(e.to_string().contains("no key"));
        let sdk = e.source().unwrap();
        assert!(sdk.is::<SdkError<GetObjectError>>());
        assert_eq!(sdk.source().unwrap().to_string(), "no key");
    }

    #[test]
    fn io_and_spawn_keep_the_os_error() {
        let e = BackendError::io("cannot create /x", io("denied"));
        assert_eq!(e.to_string(), "cannot create /x: denied");
        assert!(e.source().unwrap().is::<std::io::Error>());
        assert_eq!(source_text(&e), "denied");

        let e = BackendError::spawn("initdb", io("No such file or directory"));
        assert_eq!(
            e.to_string(),
            "cannot start initdb: No such file or directory"
        );
        assert_eq!(source_text(&e), "No such file or directory");
    }

    #[test]
    fn a_failed_tool_says_what_it_printed() {
        let e = BackendError::Tool {
            what: "barman-cloud-backup failed".into(),
            code: Some(1),
            output: "ERROR: no bucket".into(),
        };
        assert_eq!(
            e.to_string(),
            "barman-cloud-backup failed: ERROR: no bucket"
        );
        assert!(e.source().is_none());
    }

    #[test]
    fn an_exited_server_shows_its_last_words() {
        let e = BackendError::Exited {
            what: "source PostgreSQL exited at start".into(),
            log: "FATAL:  could not bind".into(),
        };
        assert_eq!(
            e.to_string(),
            "source PostgreSQL exited at start:\nFATAL:  could not bind"
        );
        assert!(e.source().is_none());
    }

    #[test]
    fn parse_keeps_the_parser_error() {
        let cause = serde_json::from_str::<u32>("[").unwrap_err();
        let text = cause.to_string();
        let e = BackendError::parse("barman-cloud-backup-list printed unexpected JSON", cause);
        assert_eq!(
            e.to_string(),
            format!("barman-cloud-backup-list printed unexpected JSON: {text}")
        );
        assert!(e.source().unwrap().is::<serde_json::Error>());
    }

    #[test]
    fn a_timeout_names_its_deadline() {
        let e = BackendError::timeout("npm pack did not finish", Duration::from_secs(600), "");
        assert_eq!(e.to_string(), "npm pack did not finish within 600s");
        let e = BackendError::timeout(
            "cluster c not ready",
            Duration::from_millis(90_500),
            " (phase `Setting up primary`)",
        );
        assert_eq!(
            e.to_string(),
            "cluster c not ready within 90s (phase `Setting up primary`)"
        );
        assert!(matches!(e, BackendError::Timeout { after, .. } if after.as_secs() == 90));
        assert!(e.source().is_none());
    }

    #[test]
    fn kube_keeps_the_api_error() {
        let e = BackendError::kube("reading secret s", kube::Error::ReadEvents(io("reset")));
        assert_eq!(
            e.to_string(),
            "reading secret s: Error reading events stream: reset"
        );
        let api = e.source().unwrap();
        assert!(api.is::<kube::Error>());
        assert_eq!(api.source().unwrap().to_string(), "reset");
    }

    #[test]
    fn the_ledger_refusal_keeps_its_reason() {
        let e = BackendError::ledger("cannot choose a base backup", LedgerError::NoBackup);
        assert_eq!(
            e.to_string(),
            "cannot choose a base backup: no base backup in the ledger"
        );
        assert_eq!(
            e.source().unwrap().downcast_ref::<LedgerError>(),
            Some(&LedgerError::NoBackup)
        );
        let e = BackendError::from(LedgerError::NoCommit("w1".into()));
        assert_eq!(e.to_string(), "step `w1` has no commit in the ledger");
        assert!(e.source().unwrap().is::<LedgerError>());
    }
}
