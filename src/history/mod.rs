//! History across runs and game days: `read.rs` finds and parses `rto.json`/`gameday.json`
//! (the only I/O), `model.rs` aggregates them (pure). Declarations only; never runs a drill
//! and never renders anything.

mod model;
mod read;

pub use model::{ArchiveHistory, Entries, History, Sample, ScenarioHistory, Trend};
pub use read::{HistoryError, read_report_dirs};
