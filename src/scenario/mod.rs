//! Scenario files: the strict serde model, loading with file:line:column errors, and the
//! semantic validation serde cannot express. Never runs anything.

mod load;
mod model;
mod validate;

pub use load::{LoadedScenario, Problem, ScenarioError, load_file, load_str};
pub use model::*;
pub use validate::validate;
