//! Walks a plan through a backend, records the ledger, and emits typed events; reporters
//! listen. Never formats reports and never touches processes or object storage directly.

mod backup_choice;
mod bulk;
mod events;
mod execute;
pub mod failure;
mod monitor;
mod outcome;
pub mod pick;
pub mod reason;
mod run;
mod sql;
mod state;
mod steps;
pub mod target;

pub use crate::backend::{Phase, PhaseName, Rto};
pub use events::*;
pub use execute::{Emitter, cancelled, run_scenario};
pub use outcome::*;
pub use reason::Reason;
pub use run::{RunOptions, RunSummary, run_all};
/// The ledger-recorded write and the bulk-table reading every backend shares, for the local
/// tier's tests that check them on a real server.
pub use sql::{Write, create_tables, read_bulk, write_rows};
