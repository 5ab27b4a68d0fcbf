//! Semantic checks on a loaded scenario. (Placeholder: to be completed.)

use std::path::Path;

use super::load::{LoadedScenario, ScenarioError};

/// Check everything serde cannot. `fixtures_dir` is where `seed_data.sql` files are looked up.
pub fn validate(_loaded: &LoadedScenario, _fixtures_dir: &Path) -> Result<(), ScenarioError> {
    Ok(())
}
