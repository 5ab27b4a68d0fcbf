//! Reads scenario YAML into the model, turning parse errors into file:line:column problems.
//! (Placeholder: to be completed.)

use std::path::{Path, PathBuf};

use super::model::Scenario;

/// One thing wrong with a scenario file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub scenario: Option<String>,
    pub step: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid scenario")]
pub struct ScenarioError {
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub path: PathBuf,
    pub text: String,
    pub scenario: Scenario,
}

pub fn load_str(path: &Path, text: &str) -> Result<LoadedScenario, ScenarioError> {
    let scenario: Scenario = yaml_serde::from_str(text).map_err(|e| ScenarioError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: e.location().map(|l| l.line()).unwrap_or(0),
            column: e.location().map(|l| l.column()).unwrap_or(0),
            scenario: None,
            step: None,
            message: e.to_string(),
            hint: None,
        }],
    })?;
    Ok(LoadedScenario {
        path: path.to_path_buf(),
        text: text.to_string(),
        scenario,
    })
}

pub fn load_file(path: &Path) -> Result<LoadedScenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            scenario: None,
            step: None,
            message: format!("cannot read: {e}"),
            hint: None,
        }],
    })?;
    load_str(path, &text)
}
