//! One handler file per kind of step; each handler takes the step context and the step's
//! fields and returns what the step did, a typed `StepOutcome` (its `Display` is the step log's
//! line). Handlers never call `execute`, never format the step log and never decide a
//! scenario's verdict.

pub(super) mod amcheck;
pub(super) mod archive;
pub(super) mod fault;
mod fault_content;
pub(super) mod fault_recovery;
pub(super) mod logical;
pub(super) mod random;
pub(super) mod recover;
pub(super) mod source;
