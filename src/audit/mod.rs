//! Read-only audit of a barman-cloud archive: WAL continuity per timeline, backup coverage,
//! freshness. `analysis` is pure; `reader` lists and reads objects and can never write.

pub mod analysis;
pub mod model;
pub mod output;
pub mod predict;
pub mod reader;
pub mod run;

pub use analysis::analyze;
pub use model::*;
pub use predict::AuditVerdict;
