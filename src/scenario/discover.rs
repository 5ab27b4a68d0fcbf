//! Scenario discovery: the files and directories named on a command line → the scenario files
//! they hold → loaded and validated scenarios with unique names. Reads files; never runs anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::load::{LoadedScenario, Problem, ScenarioError, load_file};
use super::validate::validate;

/// Where scenarios are looked for when no path is given.
pub const DEFAULT_DIR: &str = "scenarios";

/// Why no scenario list came out of the paths.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// A path names nothing, a directory cannot be read, or no scenario file was found.
    #[error("{0}")]
    Paths(String),
    /// Every problem of every file, and names used twice.
    #[error(transparent)]
    Invalid(#[from] ScenarioError),
}

/// Scenario files named by `paths` (directories contribute their *.yaml / *.yml, sorted);
/// no path at all means [`DEFAULT_DIR`].
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoverError> {
    let default = [PathBuf::from(DEFAULT_DIR)];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| DiscoverError::Paths(format!("{}: {e}", p.display())))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
            found.sort();
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(DiscoverError::Paths(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    if files.is_empty() {
        return Err(DiscoverError::Paths("no scenario files found".into()));
    }
    Ok(files)
}

/// Load and validate every file of `paths`; all problems of all files are reported together,
/// and a scenario name used twice is one of them.
pub fn load_all(paths: &[PathBuf], fixtures: &Path) -> Result<Vec<LoadedScenario>, DiscoverError> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut loaded: Vec<LoadedScenario> = Vec::new();
    for f in scenario_files(paths)? {
        match load_file(&f).and_then(|l| validate(&l, fixtures).map(|_| l)) {
            Ok(l) => loaded.push(l),
            Err(e) => problems.extend(e.problems),
        }
    }
    let mut seen = BTreeMap::new();
    for l in &loaded {
        if let Some(first) = seen.insert(l.scenario.name.clone(), l.path.clone()) {
            problems.push(Problem {
                file: l.path.clone(),
                line: 1,
                column: 1,
                scenario: Some(l.scenario.name.clone()),
                step: None,
                message: format!(
                    "scenario name `{}` is also used by {}",
                    l.scenario.name,
                    first.display()
                ),
                hint: Some("scenario names must be unique within a run: rename one".into()),
            });
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(ScenarioError { problems }.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_is_named() {
        let err = scenario_files(&[PathBuf::from("no/such/place")]).unwrap_err();
        assert_eq!(err.to_string(), "no/such/place: no such file or directory");
    }

    #[test]
    fn a_directory_without_yaml_holds_no_scenario() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a scenario").unwrap();
        let err = scenario_files(&[dir.path().to_path_buf()]).unwrap_err();
        assert_eq!(err.to_string(), "no scenario files found");
    }

    #[test]
    fn directories_contribute_their_yaml_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yml", "a.yaml", "c.txt"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let files = scenario_files(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yml"]);
    }

    #[test]
    fn a_name_used_twice_is_a_problem() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let first = scenario_files(&[root.join(DEFAULT_DIR)]).unwrap().remove(0);
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.yaml", "b.yaml"] {
            std::fs::copy(&first, dir.path().join(f)).unwrap();
        }
        let err = load_all(&[dir.path().to_path_buf()], &root.join("fixtures")).unwrap_err();
        let DiscoverError::Invalid(e) = err else {
            panic!("not a scenario problem: {err}");
        };
        assert_eq!(e.problems.len(), 1);
        assert!(e.problems[0].file.ends_with("b.yaml"));
        assert!(e.problems[0].message.contains("is also used by"));
    }

    #[test]
    fn the_shipped_scenarios_load_with_unique_names() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let loaded = load_all(&[root.join(DEFAULT_DIR)], &root.join("fixtures")).unwrap();
        assert!(!loaded.is_empty());
    }
}
