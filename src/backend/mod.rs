//! Backends: where a plan's side effects happen. The `Backend`/`Drill` traits are the only
//! interface the runner sees; SQL against the source and recovered servers goes through
//! `tokio_postgres` clients the drill hands out, so the ledger logic is shared by all backends.

pub mod amcheck;
pub mod azure;
pub mod credentials;
mod error;
pub mod kube;
pub mod local;
pub mod objstore;
pub mod objstore_content;
pub mod pg_log;
mod rto;
pub mod support;
mod traits;
pub mod wal_content;

pub use error::BackendError;
pub use rto::{Phase, PhaseName, Rto, WalPrefetch};
pub use traits::*;
