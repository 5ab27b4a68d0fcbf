//! Scenario files: the strict serde model, loading with file:line:column errors, and the
//! semantic validation serde cannot express. Never runs anything.

mod discover;
mod limits;
mod load;
mod model;
mod object_store;
mod span;
mod validate;

pub use discover::{DEFAULT_DIR, DiscoverError, load_all, scenario_files};
pub use limits::{MAX_FILE_BYTES, MAX_NESTING};
pub use load::{
    LoadedScenario, Problem, ScenarioError, check_limits, json_schema, load_file, load_str,
    problem_from_yaml_error, read_bounded,
};
pub use model::*;
pub use span::{Mark, SpanIndex};
pub use validate::validate;
