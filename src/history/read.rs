//! Finds run and game-day directories under the paths it is given and parses their `rto.json`
//! and `gameday.json` into history samples: the history layer's only I/O. Never writes, never
//! follows a `latest` link, never aggregates.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::model::{Entries, Sample};

/// A run directory's report.
const RUN_FILE: &str = "rto.json";
/// A game-day directory's report.
const GAMEDAY_FILE: &str = "gameday.json";
/// The link to the newest run, which would count it twice.
const LATEST: &str = "latest";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a report pgdrill wrote: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

// Only the fields history needs; everything else in the files is ignored.

#[derive(Deserialize)]
struct RunDoc {
    run_id: String,
    scenarios: Vec<ScenarioDoc>,
}

#[derive(Deserialize)]
struct ScenarioDoc {
    name: String,
    status: String,
    started_at: DateTime<Utc>,
    rto: Option<Seconds>,
    rpo: Option<Seconds>,
}

#[derive(Deserialize)]
struct Seconds {
    seconds: Option<f64>,
}

#[derive(Deserialize)]
struct GamedayDoc {
    archive: String,
    started_at: DateTime<Utc>,
    status: StatusDoc,
    rto: Option<Seconds>,
    rpo: Option<Seconds>,
}

#[derive(Deserialize)]
struct StatusDoc {
    status: String,
}

/// Every run and game day in `paths`: each a run or game-day directory, or a directory holding
/// them (one level down). `latest` links are skipped; directories without either file are
/// skipped silently; a file that does not parse is an error naming it.
pub fn read_report_dirs(paths: &[PathBuf]) -> Result<Entries, HistoryError> {
    let mut entries = Entries::default();
    for p in paths {
        if read_one(p, &mut entries)? {
            continue;
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|source| io(p, source))?
            .map(|e| e.map(|e| e.path()).map_err(|source| io(p, source)))
            .collect::<Result<_, _>>()?;
        children.sort();
        for c in children {
            if c.file_name().is_some_and(|n| n == LATEST) || c.is_symlink() || !c.is_dir() {
                continue;
            }
            read_one(&c, &mut entries)?;
        }
    }
    Ok(entries)
}

fn io(path: &Path, source: std::io::Error) -> HistoryError {
    HistoryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads `dir` when it is a run or game-day directory; false when it is neither.
fn read_one(dir: &Path, entries: &mut Entries) -> Result<bool, HistoryError> {
    let run = dir.join(RUN_FILE);
    if run.is_file() {
        let doc: RunDoc = parse(&run)?;
        entries
            .runs
            .extend(doc.scenarios.into_iter().map(|s| Sample {
                key: s.name,
                source: doc.run_id.clone(),
                at: s.started_at,
                status: s.status,
                rto_seconds: s.rto.and_then(|r| r.seconds),
                rpo_seconds: s.rpo.and_then(|r| r.seconds),
            }));
        return Ok(true);
    }
    let gameday = dir.join(GAMEDAY_FILE);
    if gameday.is_file() {
        let doc: GamedayDoc = parse(&gameday)?;
        entries.gamedays.push(Sample {
            key: doc.archive,
            source: dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            at: doc.started_at,
            status: doc.status.status,
            rto_seconds: doc.rto.and_then(|r| r.seconds),
            rpo_seconds: doc.rpo.and_then(|r| r.seconds),
        });
        return Ok(true);
    }
    Ok(false)
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, HistoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| io(path, source))?;
    serde_json::from_str(&text).map_err(|source| HistoryError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"{"run_id": "r1", "scenarios": [
        {"name": "a", "status": "passed", "started_at": "2026-01-01T00:00:00.000Z",
         "rto": {"seconds": 2.5}, "rpo": {"seconds": 0.0}, "other": 1},
        {"name": "b", "status": "error", "started_at": "2026-01-01T00:01:00.000Z",
         "rto": null, "rpo": null}]}"#;

    #[test]
    fn a_root_with_a_latest_link_counts_each_run_once() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("r1");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join(RUN_FILE), RUN).unwrap();
        std::os::unix::fs::symlink("r1", root.path().join(LATEST)).unwrap();
        std::fs::create_dir(root.path().join("empty")).unwrap();
        std::fs::write(root.path().join("stray.txt"), "x").unwrap();

        let e = read_report_dirs(&[root.path().to_path_buf()]).unwrap();
        assert_eq!(e.runs.len(), 2, "{e:?}");
        assert_eq!(e.runs[0].rto_seconds, Some(2.5));
        assert_eq!(e.runs[1].status, "error");
        assert!(e.gamedays.is_empty());

        // Naming the run directory itself reads it too.
        let e = read_report_dirs(&[run]).unwrap();
        assert_eq!(e.runs.len(), 2);
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let gd = root.path().join("gameday-x");
        std::fs::create_dir(&gd).unwrap();
        std::fs::write(gd.join(GAMEDAY_FILE), "{ not json").unwrap();
        let err = read_report_dirs(&[root.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("gameday-x/gameday.json"), "{err}");
        assert!(err.contains("not a report pgdrill wrote"), "{err}");
    }
}
