//! Command line: `args.rs` (the clap types the commands share) and one file per command, each
//! parsing, calling the library and mapping the result to an exit code. The only place (with
//! main.rs) that uses anyhow; never implements drill logic itself. Declarations only; main.rs dispatches.

pub mod args;
pub mod audit;
pub mod clean;
pub mod gameday;
pub mod history;
pub mod interrupt;
pub mod list;
pub mod metrics;
pub mod render;
pub mod rto_model;
pub mod run;
pub mod schema;
pub mod serve_s3;
pub mod setup;
pub mod validate;

pub use args::{Cli, Command};
