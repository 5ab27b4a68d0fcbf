//! Scenario → ordered steps, pure and deterministic: the same scenario always yields the same
//! plan, with row ids already allocated. Never does I/O.

mod build;

pub use build::{
    Plan, PlanStep, PlannedWrite, RestoreCommand, build, default_recovery_server_name,
    random_target_server_name,
};
