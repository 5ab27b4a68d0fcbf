//! pgdrill: disaster-recovery drills for PostgreSQL backed up with barman-cloud.
//!
//! Pipeline, pure core first (on the ground floor, `wal`: LSNs and segment names): `scenario` (parse, validate) → `plan` (ordered steps) →
//! `runner` (walks a plan through a `backend`, records the `ledger`, emits events) →
//! `verify` (ledger vs recovered data) → `report` (JUnit, RTO JSON, Markdown from events).

pub mod audit;
pub mod backend;
pub mod error;
pub mod gameday;
pub mod history;
pub mod ledger;
pub mod plan;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod verify;
pub mod wal;
