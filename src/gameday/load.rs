//! Loads a game-day file with file:line:column errors and checks what serde cannot: URLs,
//! check shapes, SQL files, and a scratch archive that could write into the source.
//! Reads the game-day file and the SQL files it names; nothing else.

use std::path::{Path, PathBuf};

use crate::backend::objstore::{parse_s3_url, scratch_overlaps_source};
use crate::scenario::{
    Problem, ScenarioError, SpanIndex, check_limits, problem_from_yaml_error, read_bounded,
};

use super::model::{CheckSpec, Gameday};

/// A game-day file, parsed and validated, with its checks' SQL read in.
#[derive(Debug, Clone)]
pub struct LoadedGameday {
    pub path: PathBuf,
    pub gameday: Gameday,
    /// The SQL of each check, in order (inline or read from its file).
    pub sql: Vec<String>,
}

/// Read (at most 1 MiB), parse and validate the game-day file at `path`.
pub fn load_file(path: &Path) -> Result<LoadedGameday, ScenarioError> {
    let text = read_bounded(path, "game-day file")?;
    load_str(path, &text)
}

/// Parse and validate `text` as the game-day file `path` (SQL files resolve next to it),
/// after the scenario files' size and nesting limits.
pub fn load_str(path: &Path, text: &str) -> Result<LoadedGameday, ScenarioError> {
    check_limits(path, text, "game-day file")?;
    let de = yaml_serde::Deserializer::from_str(text);
    let g: Gameday = yaml_serde::with::singleton_map_recursive::deserialize(de)
        .map_err(|e| ScenarioError::new(vec![problem_from_yaml_error(path, text, &e)]))?;
    let mut v = Validator {
        path,
        spans: SpanIndex::parse(text),
        name: g.name.clone(),
        problems: Vec::new(),
    };
    let sql = v.check(&g);
    if v.problems.is_empty() {
        Ok(LoadedGameday {
            path: path.to_path_buf(),
            gameday: g,
            sql,
        })
    } else {
        Err(ScenarioError::new(v.problems))
    }
}

/// An RPO budget needs a reference point: `random` targets (an LSN) have none.
pub fn rpo_without_reference(g: &Gameday) -> Option<String> {
    (g.rpo_budget_seconds.is_some() && g.target == super::model::GamedayTarget::Random).then(|| {
        "`rpo_budget_seconds` cannot be judged for `target: random`: the target is a WAL position, \
         so there is no point in time to measure the recovery point against"
            .to_string()
    })
}

struct Validator<'a> {
    path: &'a Path,
    spans: SpanIndex,
    name: String,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn report(&mut self, at: &str, message: String, hint: Option<String>) {
        let m = self.spans.locate(at);
        let (line, column) = m.map_or((1, 1), |m| (m.line, m.column));
        self.problems.push(Problem {
            file: self.path.to_path_buf(),
            line,
            column,
            scenario: Some(self.name.clone()).filter(|n| !n.is_empty()),
            step: None,
            message,
            hint,
        });
    }

    fn check(&mut self, g: &Gameday) -> Vec<String> {
        if g.name.is_empty()
            || !g
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.report(
                "name",
                format!("`{}` is not a usable game-day name", g.name),
                Some("letters, digits, `-` and `_` only: it names the report folder".into()),
            );
        }
        if let Err(e) = parse_s3_url(&g.archive.destination) {
            self.report(
                "archive.destination",
                e,
                Some("the barmanObjectStore destinationPath, e.g. `s3://backups/prod`".into()),
            );
        }
        if g.archive.server_name.trim().is_empty() || g.archive.server_name.contains('/') {
            self.report(
                "archive.server_name",
                format!("`{}` is not a serverName", g.archive.server_name),
                Some("the folder under destinationPath, e.g. `pg-prod`".into()),
            );
        }
        if let Some(ep) = &g.archive.endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            self.report(
                "archive.endpoint",
                format!("`{ep}` is not an http(s) URL"),
                Some("e.g. `https://s3.eu-west-1.amazonaws.com`".into()),
            );
        }
        if !(10..=99).contains(&g.postgres) {
            self.report(
                "postgres",
                format!("`{}` is not a PostgreSQL major version", g.postgres),
                Some("e.g. `postgres: 15`".into()),
            );
        }
        for (key, v) in [
            ("rpo_budget_seconds", g.rpo_budget_seconds),
            ("rto_budget_seconds", g.rto_budget_seconds),
        ] {
            if let Some(b) = v
                && !(b.is_finite() && b > 0.0)
            {
                self.report(
                    key,
                    format!("`{key}` must be a positive number of seconds, not {b}"),
                    None,
                );
            }
        }
        if let Some(why) = rpo_without_reference(g) {
            self.report(
                "rpo_budget_seconds",
                why,
                Some("use `target: latest` or a time target, or remove the budget".into()),
            );
        }
        if let Some(x) = &g.scratch.archive {
            if let Err(e) = parse_s3_url(&x.destination) {
                self.report("scratch.archive.destination", e, None);
            } else if let Some(why) = scratch_overlaps_source(
                &g.archive.destination,
                &g.archive.server_name,
                &x.destination,
                &x.server_name,
            ) {
                self.report(
                    "scratch.archive",
                    format!("refusing this configuration: {why}"),
                    Some(
                        "remove `scratch.archive` (archiving off), or give it its own prefix or serverName"
                            .into(),
                    ),
                );
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let mut sql = Vec::new();
        for (i, c) in g.checks.iter().enumerate() {
            let at = format!("checks[{i}]");
            if !names.insert(c.name.as_str()) {
                self.report(
                    &format!("{at}.name"),
                    format!("two checks are named `{}`", c.name),
                    Some("check names become JUnit test cases: make them unique".into()),
                );
            }
            sql.push(self.check_sql(&at, c));
            let set = [
                c.equals.is_some(),
                c.at_least.is_some(),
                c.at_most.is_some(),
                c.max_age_seconds.is_some(),
            ];
            if !set.iter().any(|s| *s) {
                self.report(
                    &at,
                    format!("check `{}` expects nothing of its result", c.name),
                    Some("add `equals`, `at_least`, `at_most` or `max_age_seconds`".into()),
                );
            }
        }
        sql
    }

    fn check_sql(&mut self, at: &str, c: &CheckSpec) -> String {
        match (&c.sql, &c.file) {
            (Some(s), None) if !s.trim().is_empty() => s.clone(),
            (Some(_), None) => {
                self.report(&format!("{at}.sql"), "the query is empty".into(), None);
                String::new()
            }
            (None, Some(f)) => {
                let rel = Path::new(f);
                if rel.is_absolute() || f.contains("..") {
                    self.report(
                        &format!("{at}.file"),
                        format!("`{f}` must be a path relative to the game-day file, without `..`"),
                        None,
                    );
                    return String::new();
                }
                let full = self.path.parent().unwrap_or(Path::new(".")).join(rel);
                // Bounded like the game-day file itself: a check is a query, not a dump.
                match read_bounded(&full, "check's SQL file") {
                    Ok(s) => s,
                    Err(e) => {
                        self.report(&format!("{at}.file"), e.to_string(), None);
                        String::new()
                    }
                }
            }
            (Some(_), Some(_)) => {
                self.report(
                    &format!("{at}.file"),
                    format!("check `{}` sets both `sql` and `file`", c.name),
                    Some("keep one of them".into()),
                );
                String::new()
            }
            (None, None) => {
                self.report(
                    at,
                    format!("check `{}` has no query", c.name),
                    Some("set `sql: select ...` or `file: checks/x.sql`".into()),
                );
                String::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::MAX_FILE_BYTES;

    const GOOD: &str = "\
name: orders-quarterly
archive:
  destination: s3://backups/prod
  server_name: pg-prod
  endpoint: http://127.0.0.1:9000
postgres: 15
target: random
checks:
  - name: orders
    sql: select count(*) from orders
    at_least: 100
";

    fn problems(text: &str) -> String {
        load_str(Path::new("gameday.yaml"), text)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn a_check_file_larger_than_the_limit_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let checks = dir.path().join("checks");
        std::fs::create_dir(&checks).unwrap();
        std::fs::write(checks.join("big.sql"), "-- x\n".repeat(MAX_FILE_BYTES)).unwrap();
        std::fs::write(checks.join("ok.sql"), "select 1").unwrap();
        let text =
            |f: &str| GOOD.replace("sql: select count(*) from orders", &format!("file: {f}"));
        let file = dir.path().join("gameday.yaml");
        let p = load_str(&file, &text("checks/big.sql"))
            .expect_err("too large")
            .to_string();
        assert!(p.contains("checks.0.file") || p.contains("big.sql"), "{p}");
        assert!(p.contains("larger than"), "{p}");
        let ok = load_str(&file, &text("checks/ok.sql")).expect("a small check file loads");
        assert_eq!(ok.sql, vec!["select 1".to_string()]);
    }

    #[test]
    fn an_rpo_budget_with_a_random_target_is_refused() {
        let t = GOOD.replace(
            "target: random\n",
            "target: random\nrpo_budget_seconds: 300\n",
        );
        let p = problems(&t);
        assert!(
            p.contains("gameday.yaml:8:") && p.contains("cannot be judged"),
            "{p}"
        );
    }

    #[test]
    fn a_good_file_loads() {
        let g = load_str(Path::new("gameday.yaml"), GOOD).expect("valid");
        assert_eq!(g.gameday.target, super::super::model::GamedayTarget::Random);
        assert_eq!(g.sql, ["select count(*) from orders"]);
        let t = GOOD.replace(
            "target: random",
            "target: { time: \"2026-11-22T10:00:00Z\" }",
        );
        let g = load_str(Path::new("gameday.yaml"), &t).expect("valid");
        assert!(matches!(
            g.gameday.target,
            super::super::model::GamedayTarget::Time(_)
        ));
    }

    #[test]
    fn errors_name_file_line_and_game_day() {
        let t = GOOD.replace("    at_least: 100\n", "    at_lest: 100\n");
        insta::assert_snapshot!("unknown_key", problems(&t));
        let t = GOOD
            .replace(
                "    sql: select count(*) from orders\n",
                "    file: ../etc/passwd\n",
            )
            .replace("    at_least: 100\n", "");
        insta::assert_snapshot!("check_problems", problems(&t));
    }

    #[test]
    fn a_scratch_archive_inside_the_source_is_refused() {
        let t = format!(
            "{GOOD}scratch:\n  archive: {{ destination: s3://backups/prod/pg-prod, server_name: scratch }}\n"
        );
        let p = problems(&t);
        assert!(p.contains("gameday.yaml:13:"), "{p}");
        assert!(p.contains("refusing this configuration"), "{p}");
        let ok = format!(
            "{GOOD}scratch:\n  archive: {{ destination: s3://backups/gameday, server_name: pg-prod }}\n"
        );
        load_str(Path::new("gameday.yaml"), &ok).expect("own prefix is fine");
    }

    #[test]
    fn the_shipped_example_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("gamedays/example.yaml");
        let g = load_file(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.sql.len(), 3);
        assert!(g.sql[1].contains("order_lines"), "the file check was read");
    }
}
