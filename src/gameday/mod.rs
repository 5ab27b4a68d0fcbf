//! Game days: restore tests of real barman-cloud archives. Audits the archive, restores into
//! something disposable, runs the user's checks, reports RTO/RPO. Never writes to the archive
//! under test.

pub mod load;
pub mod model;
pub mod plan;
pub mod record;
pub mod report;
pub mod run;

pub use load::{LoadedGameday, load_file, load_str};
pub use model::*;
pub use record::{GamedayRecord, RestoreOutcome};
pub use run::{GamedayOptions, run_gameday};
