//! The local backend: real PostgreSQL processes, real barman-cloud tools, a real S3 endpoint
//! on loopback (embedded, or any endpoint given). No containers, no Kubernetes.

pub mod amcheck;
pub mod azurite;
mod barman;
mod drill;
pub mod lock;
mod logical;
pub mod os_user;
pub mod postgres;
pub mod process;
pub mod run;
pub mod s3layer;
pub mod s3server;
pub mod scratch;
pub mod stale;
pub mod sweep;
pub mod toolchain;

pub use barman::{Barman, BarmanBackup, Cloud, sh_quote};
pub use drill::{LocalBackend, LocalDrill, LocalOptions};
