//! Semantic checks on a loaded scenario: everything serde cannot express (names, dangling step
//! references, targets recovery cannot reach). Every problem is collected, located at the
//! offending YAML node, and carries a hint.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Component, Path};

use super::load::{LoadedScenario, Problem, ScenarioError, closest, list};
use super::model::{
    Compression, CorruptMode, DEFAULT_ROW_BYTES, DataSize, ErrorWindow, Expect, FaultStep,
    LogicalBackupStep, LsnTarget, Recovery, RecoveryMethod, RestorePointStep, Scenario, SeedTable,
    Step, Target, TimeTarget, WaitArchivedStep, WalSelectorSpec, WriteStep, XidTarget,
};
use super::span::{SpanIndex, step_index};
use crate::scenario::SEED_STEP;
use crate::wal::Lsn;

/// PostgreSQL majors pgdrill drives.
pub const SUPPORTED_POSTGRES: std::ops::RangeInclusive<u32> = 13..=18;
/// Most rows one `write` step may insert.
pub const MAX_WRITE_ROWS: u64 = 1_000_000;
/// Most rows one `seed_data` table may start with (row ids of every table fit a `u64`, and the
/// seeding ends in minutes).
pub const MAX_SEED_ROWS: u64 = 10_000_000;
/// Payload bytes per row a bulk table may have.
pub const ROW_BYTES: std::ops::RangeInclusive<u32> = 64..=8192;
/// Most payload a bulk table may be seeded with, or one bulk write may insert.
pub const MAX_BULK_BYTES: u64 = 64 << 30;
/// Most targets `target: random` may pick (each is a full recovery).
pub const MAX_RANDOM_TARGETS: u32 = 32;
/// PostgreSQL identifiers and restore point names are at most 63 bytes.
const MAX_NAME: usize = 63;
/// Longest object-store error window a scenario may ask for.
const MAX_ERROR_WINDOW: u64 = 600;
/// Longest `archive_timeout` a scenario may set (scale ADR 007's 5 minutes down).
const MAX_ARCHIVE_TIMEOUT: u64 = 600;
/// The most parallel base backup jobs or parallel WAL fetches a scenario may ask for.
const MAX_PARALLEL: u32 = 32;

/// Check everything serde cannot. `fixtures_dir` is where `seed_data.sql` files are looked up.
pub fn validate(loaded: &LoadedScenario, fixtures_dir: &Path) -> Result<(), ScenarioError> {
    let mut v = Validator::new(loaded, fixtures_dir);
    v.run();
    if v.problems.is_empty() {
        Ok(())
    } else {
        Err(ScenarioError::new(v.problems))
    }
}

/// A step as the checks see it: index, id, kind.
#[derive(Clone, Copy)]
struct StepRef<'a> {
    index: usize,
    id: &'a str,
    kind: &'static str,
}

struct Validator<'a> {
    loaded: &'a LoadedScenario,
    s: &'a Scenario,
    spans: SpanIndex,
    fixtures_dir: &'a Path,
    /// First step with each id.
    by_id: HashMap<&'a str, StepRef<'a>>,
    problems: Vec<Problem>,
}

/// The step that first used `key` in `seen`, unless that is step `i` itself (then `key` is
/// recorded as first used by `i`).
fn earlier<'a>(seen: &mut HashMap<&'a str, usize>, key: &'a str, i: usize) -> Option<usize> {
    let first = *seen.entry(key).or_insert(i);
    (first != i).then_some(first)
}

/// Steps a recovery target refers to, each with the path of the reference.
type Refs<'a> = Vec<(String, StepRef<'a>)>;

/// What `check_steps` remembers of the steps before the current one.
#[derive(Default)]
struct SeenSteps<'a> {
    /// First step with each id.
    ids: HashMap<&'a str, usize>,
    /// First step creating each restore point.
    points: HashMap<&'a str, usize>,
    /// The first step that crashed the source.
    crashed_at: Option<usize>,
}

/// An environment variable name: upper-case letters, digits and `_`, not starting with a digit.
fn is_env_name(k: &str) -> bool {
    k.chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_lower_name(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_sql_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && s.len() <= MAX_NAME
}

fn is_server_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_step_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_segment_name(s: &str) -> bool {
    crate::wal::SegmentName::parse(s).is_some()
}

/// The fault keys a fault step sets, in the model's order (exactly one is valid).
fn faults_set(f: &FaultStep) -> Vec<&'static str> {
    fields_set([
        ("delete_wal", f.delete_wal.is_some()),
        ("crash", f.crash.is_some()),
        ("object_store_errors", f.object_store_errors.is_some()),
        ("corrupt_wal", f.corrupt_wal.is_some()),
        ("delete_backup", f.delete_backup.is_some()),
        ("delete_history", f.delete_history.is_some()),
        ("truncate_dump", f.truncate_dump.is_some()),
        ("delete_dump", f.delete_dump.is_some()),
        ("stale_expression_index", f.stale_expression_index.is_some()),
    ])
}

/// `Some Text_1` → `some-text-1`: a suggestion for a name that must be lowercase and dashed.
/// The names of the fields that are set, in the order given.
fn fields_set<const N: usize>(fields: [(&'static str, bool); N]) -> Vec<&'static str> {
    fields
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n)
        .collect()
}

fn slug(s: &str, sep: char) -> String {
    let mut out = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with(sep) && !out.is_empty() {
            out.push(sep);
        }
    }
    while out.ends_with(sep) {
        out.pop();
    }
    out
}

impl<'a> Validator<'a> {
    fn new(loaded: &'a LoadedScenario, fixtures_dir: &'a Path) -> Self {
        let s = &loaded.scenario;
        let mut by_id = HashMap::new();
        for (index, step) in s.steps.iter().enumerate() {
            by_id.entry(step.id()).or_insert(StepRef {
                index,
                id: step.id(),
                kind: step.kind(),
            });
        }
        Validator {
            loaded,
            s,
            spans: SpanIndex::parse(&loaded.text),
            fixtures_dir,
            by_id,
            problems: Vec::new(),
        }
    }

    /// Record a problem at the node `path`.
    fn report(&mut self, path: &str, message: String, hint: impl Into<Option<String>>) {
        self.push(path, false, message, hint.into());
    }

    /// Record a problem at the key of the map entry `path` (for problems with the key itself).
    fn report_key(&mut self, path: &str, message: String, hint: impl Into<Option<String>>) {
        self.push(path, true, message, hint.into());
    }

    fn push(&mut self, path: &str, key: bool, message: String, hint: Option<String>) {
        let at = if key {
            self.spans.locate_key(path)
        } else {
            self.spans.locate(path)
        };
        let (line, column) = at.map_or((1, 1), |m| (m.line, m.column));
        let step = step_index(path)
            .and_then(|i| self.s.steps.get(i))
            .map(|st| st.id().to_string());
        let scenario = Some(self.s.name.clone()).filter(|n| !n.is_empty());
        self.problems.push(Problem {
            file: self.loaded.path.clone(),
            line,
            column,
            scenario,
            step,
            message,
            hint,
        });
    }

    fn step_path(&self, index: usize) -> String {
        format!("steps[{index}].{}", self.s.steps[index].kind())
    }

    fn write_ids(&self) -> Vec<&'a str> {
        self.s
            .steps
            .iter()
            .filter(|st| matches!(st, Step::Write(_)))
            .map(Step::id)
            .collect()
    }

    fn table_names(&self) -> Vec<&'a str> {
        self.s
            .seed_data
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .collect()
    }

    fn run(&mut self) {
        self.check_top();
        self.check_seed_data();
        self.check_steps();
        self.check_recovery();
        self.check_random();
        self.check_recovery_faults();
        self.check_expect();
        self.check_amcheck();
        self.check_env();
        self.check_object_store();
        self.check_timeouts();
    }

    /// `object_store`: Azure settings only with `provider: azure`, and on Azure none of the
    /// faults the embedded S3 endpoint injects (it is not in the path to Azurite or Azure).
    fn check_object_store(&mut self) {
        let o = &self.s.object_store;
        if !o.is_azure() {
            if o.azure.is_some() {
                self.report_key(
                    "object_store.azure",
                    "`object_store.azure` is set but the provider is `s3`".to_string(),
                    "add `provider: azure`, or remove `azure`".to_string(),
                );
            }
            return;
        }
        let hint = "the embedded S3 endpoint injects it, and Azure drills do not go through it: \
                    run this fault on S3 (remove `provider: azure`)";
        for key in o.s3_behaviour_keys() {
            self.report_key(
                &format!("object_store.{key}"),
                format!("`object_store.{key}` is an S3 endpoint behaviour; it cannot apply to `provider: azure`"),
                hint.to_string(),
            );
        }
        let steps: Vec<(usize, &'static str)> = self
            .s
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, st)| match st {
                Step::Fault(f) if f.object_store_errors.is_some() => {
                    Some((i, "fault.object_store_errors"))
                }
                Step::BaseBackup(b) if b.crash_source.is_some() => {
                    Some((i, "base_backup.crash_source"))
                }
                _ => None,
            })
            .collect();
        for (i, key) in steps {
            self.report_key(
                &format!("{}.{key}", self.step_path(i)),
                format!(
                    "`{key}` needs the embedded S3 endpoint; this scenario uses `provider: azure`"
                ),
                hint.to_string(),
            );
        }
        let r = &self.s.recovery;
        for (key, set) in [
            ("object_store_errors", r.object_store_errors.is_some()),
            ("restart", r.restart.is_some()),
        ] {
            if set {
                self.report_key(
                    &format!("recovery.{key}"),
                    format!("`recovery.{key}` needs the embedded S3 endpoint; this scenario uses `provider: azure`"),
                    hint.to_string(),
                );
            }
        }
    }

    fn check_top(&mut self) {
        let name = &self.s.name;
        if name.is_empty() || name.len() > 48 || !is_lower_name(name) {
            let suggestion = slug(name, '-');
            let hint = if suggestion.is_empty() || suggestion.len() > 48 {
                "use 1 to 48 lowercase letters, digits and dashes, e.g. `pitr-between-writes`"
                    .to_string()
            } else {
                format!("use lowercase letters, digits and dashes, e.g. `{suggestion}`")
            };
            self.report(
                "name",
                format!(
                    "scenario name `{name}` must be 1 to 48 lowercase letters, digits and dashes"
                ),
                hint,
            );
        }
        for (i, tag) in self.s.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                self.report(
                    &format!("tags[{i}]"),
                    format!("tag {} is empty", i + 1),
                    "remove it or give it a name".to_string(),
                );
            }
        }
        self.check_postgres("postgres", self.s.postgres);
        if let Some(v) = self.s.recovery.postgres {
            self.check_postgres("recovery.postgres", v);
        }
        let server = self.s.backup.server_name.clone();
        self.check_server_name("backup.server_name", &server);
        if let Some(t) = self.s.backup.archive_timeout_seconds
            && (t == 0 || t > MAX_ARCHIVE_TIMEOUT)
        {
            self.report(
                "backup.archive_timeout_seconds",
                format!("`archive_timeout_seconds` is 1 to {MAX_ARCHIVE_TIMEOUT}, not {t}"),
                "leave it out for no timeout; scale ADR 007's 5 minutes down to a few seconds"
                    .to_string(),
            );
        }
        if let Some(server) = self.s.recovery.server_name.clone() {
            self.check_server_name("recovery.server_name", &server);
        }
        self.check_parallel(
            "backup.jobs",
            self.s.backup.jobs,
            "leave it out for barman-cloud's default of 2 upload jobs",
        );
        self.check_parallel(
            "recovery.wal_max_parallel",
            self.s.recovery.wal_max_parallel,
            "leave it out to fetch one WAL segment at a time",
        );
    }

    fn check_parallel(&mut self, path: &str, v: Option<u32>, default: &str) {
        if let Some(n) = v
            && (n == 0 || n > MAX_PARALLEL)
        {
            self.report(
                path,
                format!("`{path}` is 1 to {MAX_PARALLEL}, not {n}"),
                format!("{default}, or set a value from 1 to {MAX_PARALLEL}"),
            );
        }
    }

    fn check_postgres(&mut self, path: &str, v: u32) {
        if !SUPPORTED_POSTGRES.contains(&v) {
            self.report(
                path,
                format!("PostgreSQL {v} is not supported"),
                format!(
                    "use a major version from {} to {}",
                    SUPPORTED_POSTGRES.start(),
                    SUPPORTED_POSTGRES.end()
                ),
            );
        }
    }

    fn check_server_name(&mut self, path: &str, name: &str) {
        if !is_server_name(name) {
            self.report(
                path,
                if name.is_empty() {
                    format!("`{path}` is empty")
                } else {
                    format!("`{path}` `{name}` must be 1 to 63 letters, digits, `_`, `.` or `-`")
                },
                "barman uses it as a folder name, e.g. `source`".to_string(),
            );
        }
    }

    fn check_seed_data(&mut self) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, t) in self.s.seed_data.tables.iter().enumerate() {
            let path = format!("seed_data.tables[{i}].name");
            let name = t.name.as_str();
            if !is_sql_identifier(name) {
                let suggestion = slug(name, '_');
                let suggestion = if suggestion.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("t_{suggestion}")
                } else {
                    suggestion
                };
                let hint = if suggestion.is_empty() || suggestion.len() > MAX_NAME {
                    "use a lowercase SQL identifier, e.g. `events`".to_string()
                } else {
                    format!("use a lowercase SQL identifier, e.g. `{suggestion}`")
                };
                self.report(
                    &path,
                    format!(
                        "table name `{name}` must be a lowercase SQL identifier: a letter or `_`, then up to 62 letters, digits or `_`"
                    ),
                    hint,
                );
            } else if name.starts_with("pgdrill") {
                self.report(
                    &path,
                    format!("table name `{name}` starts with `pgdrill`, which is reserved for pgdrill's own tables"),
                    "pick another name".to_string(),
                );
            }
            if let Some(&first) = seen.get(name) {
                let line = self
                    .spans
                    .locate(&format!("seed_data.tables[{first}].name"))
                    .map_or(String::new(), |m| format!(" (first on line {})", m.line));
                self.report(
                    &path,
                    format!("table `{name}` is declared twice{line}"),
                    "declare each table once; set its `rows` there".to_string(),
                );
            } else {
                seen.insert(name, i);
            }
            if t.rows > MAX_SEED_ROWS {
                self.report(
                    &format!("seed_data.tables[{i}].rows"),
                    format!(
                        "a table is seeded with 0 to {MAX_SEED_ROWS} rows, not {}",
                        t.rows
                    ),
                    if t.bulk_row_bytes().is_some() {
                        "give a bulk table its `size` instead, e.g. `size: 1GiB`".to_string()
                    } else {
                        "a drill needs a few rows per table; add `write` steps for more, or make it a bulk table with `size: 1GiB`".to_string()
                    },
                );
            }
            self.check_bulk_table(i, t);
        }
        if let Some(sql) = self.s.seed_data.sql.clone() {
            self.check_fixture("seed_data.sql", &sql);
        }
    }

    fn check_fixture(&mut self, path: &str, sql: &str) {
        let p = Path::new(sql);
        if sql.trim().is_empty() {
            self.report(
                path,
                "`seed_data.sql` is empty".to_string(),
                "name an SQL file under the fixtures directory, or remove the key".to_string(),
            );
        } else if p.is_absolute() || p.has_root() {
            self.report(
                path,
                format!(
                    "`seed_data.sql` `{sql}` must be a path relative to the fixtures directory"
                ),
                format!(
                    "put the file under the fixtures directory and name it from there, e.g. `{}`",
                    p.file_name()
                        .map_or("seed.sql".into(), |f| f.to_string_lossy())
                ),
            );
        } else if p.components().any(|c| c == Component::ParentDir) {
            self.report(
                path,
                format!("`seed_data.sql` `{sql}` must stay inside the fixtures directory"),
                "remove the `..` parts and move the file under the fixtures directory".to_string(),
            );
        } else if !self.fixtures_dir.join(p).is_file() {
            self.report(
                path,
                format!(
                    "`seed_data.sql` `{sql}` does not exist under `{}`",
                    self.fixtures_dir.display()
                ),
                format!(
                    "create `{}` or fix the path",
                    self.fixtures_dir.join(p).display()
                ),
            );
        }
    }

    fn check_steps(&mut self) {
        let s = self.s;
        let tables = self.table_names();
        let known: HashSet<&str> = tables.iter().copied().collect();
        let bulk: HashMap<&str, u32> = s
            .seed_data
            .tables
            .iter()
            .filter_map(|t| Some((t.name.as_str(), t.bulk_row_bytes()?)))
            .collect();
        let mut seen = SeenSteps::default();
        for (i, step) in s.steps.iter().enumerate() {
            let base = self.step_path(i);
            let id = step.id();
            self.check_step_id(&base, id, earlier(&mut seen.ids, id, i));
            if let Some(c) = seen.crashed_at {
                self.check_after_crash(&base, step, c);
            }
            match step {
                Step::Write(w) => self.check_write(&base, w, &tables, (&known, &bulk)),
                Step::RestorePoint(rp) => {
                    let first = earlier(&mut seen.points, &rp.name, i);
                    self.check_restore_point(&base, rp, first);
                }
                Step::Fault(f) => self.check_fault(&base, i, f, &mut seen.crashed_at),
                Step::WaitArchiveFailure(_) => self.check_wait_archive_failure(&base, i, id),
                Step::WaitArchived(w) => self.check_wait_archived(&base, i, w),
                Step::BaseBackup(_) | Step::Checkpoint(_) | Step::SwitchWal(_) => {}
                Step::Failover(_) => {}
                Step::LogicalBackup(l) => self.check_logical_backup(&base, l, &known, &bulk),
            }
        }
        if !self.s.recovery.is_logical()
            && !self
                .s
                .steps
                .iter()
                .any(|st| matches!(st, Step::BaseBackup(_)))
        {
            self.report(
                "steps",
                "no `base_backup` step: there is nothing to recover from".to_string(),
                "add `- base_backup: { id: base }` before the writes recovery should find"
                    .to_string(),
            );
        }
    }

    /// A step's id: its form, not reserved, not used by the `earlier` step.
    fn check_step_id(&mut self, base: &str, id: &str, earlier: Option<usize>) {
        let id_path = format!("{base}.id");
        if id == SEED_STEP {
            self.report(
                &id_path,
                format!("step id `{SEED_STEP}` is reserved for the rows loaded from `seed_data`"),
                "pick another id; the ledger records the seed rows under `seed`".to_string(),
            );
        } else if !is_step_id(id) {
            let s = slug(id, '-');
            let hint = if s.is_empty() {
                "use lowercase letters, digits, `_` and `-`, e.g. `w1`".to_string()
            } else {
                format!("use lowercase letters, digits, `_` and `-`, e.g. `{s}`")
            };
            self.report(
                &id_path,
                format!("step id `{id}` may only hold lowercase letters, digits, `_` and `-`"),
                hint,
            );
        }
        if let Some(first) = earlier {
            let line = self
                .spans
                .locate(&format!("{}.id", self.step_path(first)))
                .map_or(String::new(), |m| format!(" on line {}", m.line));
            self.report(
                &id_path,
                format!(
                    "step id `{id}` is already used by the `{}` step{line}",
                    self.s.steps[first].kind()
                ),
                "give every step its own id".to_string(),
            );
        }
    }

    /// A step after the source crashed at step `crashed_at`: only some faults may follow.
    fn check_after_crash(&mut self, base: &str, step: &Step, crashed_at: usize) {
        // A second crash gets its own message in `check_fault`.
        let later_ok = matches!(step, Step::Fault(f)
            if f.crash.is_some() || matches!(faults_set(f)[..], [one] if one != "object_store_errors" && one != "stale_expression_index"));
        if !later_ok {
            self.report(
                base,
                format!(
                    "step `{}` ({}) comes after the source crashed at step `{}`",
                    step.id(),
                    step.kind(),
                    self.s.steps[crashed_at].id()
                ),
                "only object-storage faults such as `delete_wal` can follow a crash; move this step before it".to_string(),
            );
        }
    }

    /// A bulk table: a row width in range, `size` or `rows` but not both, a size in range.
    fn check_bulk_table(&mut self, i: usize, t: &SeedTable) {
        if let Some(b) = t.row_bytes
            && !ROW_BYTES.contains(&b)
        {
            self.report(
                &format!("seed_data.tables[{i}].row_bytes"),
                format!(
                    "`row_bytes` is {} to {} payload bytes per row, not {b}",
                    ROW_BYTES.start(),
                    ROW_BYTES.end()
                ),
                format!("leave it out for {DEFAULT_ROW_BYTES}"),
            );
        }
        if let Some(size) = t.size {
            if t.rows > 0 {
                self.report(
                    &format!("seed_data.tables[{i}].size"),
                    format!("table `{}` sets both `rows` and `size`", t.name),
                    "a bulk table is seeded by `size`; remove `rows`".to_string(),
                );
            }
            if size.bytes() == 0 || size.bytes() > MAX_BULK_BYTES {
                self.report(
                    &format!("seed_data.tables[{i}].size"),
                    format!(
                        "a bulk table is seeded with 1 byte to {} of payload, not {size}",
                        DataSize(bytesize::ByteSize(MAX_BULK_BYTES))
                    ),
                    "the size sweep of `make bench` stops at a few GiB; larger runs belong on real hardware".to_string(),
                );
            }
        }
    }

    /// A `write` step: a declared table (one of `tables`, looked up in `known`: thousands of
    /// steps and tables must not cost their product) and a row count in range.
    /// `known` holds every table, `bulk_tables` the bulk ones with their row width.
    fn check_write(
        &mut self,
        base: &str,
        w: &WriteStep,
        tables: &[&str],
        (known, bulk_tables): (&HashSet<&str>, &HashMap<&str, u32>),
    ) {
        let bulk = bulk_tables.get(w.table.as_str()).copied();
        if let Some(size) = w.size {
            if w.rows.is_some() {
                self.report(
                    &format!("{base}.size"),
                    format!("write `{}` sets both `rows` and `size`", w.id),
                    "keep one of them".to_string(),
                );
            }
            if known.contains(w.table.as_str()) && bulk.is_none() {
                self.report(
                    &format!("{base}.size"),
                    format!(
                        "`size` needs a bulk table, and `{}` is not one (it has no `size` or `row_bytes` in `seed_data.tables`)",
                        w.table
                    ),
                    format!(
                        "use `rows`, or declare the table as bulk, e.g. `{{ name: {}, row_bytes: 1024 }}`",
                        w.table
                    ),
                );
            }
            if size.bytes() == 0 || size.bytes() > MAX_BULK_BYTES {
                self.report(
                    &format!("{base}.size"),
                    format!(
                        "a bulk write inserts 1 byte to {} of payload, not {size}",
                        DataSize(bytesize::ByteSize(MAX_BULK_BYTES))
                    ),
                    "split it over several write steps".to_string(),
                );
            }
        }
        if !known.contains(w.table.as_str()) {
            let hint = if tables.is_empty() {
                format!(
                    "declare it under `seed_data.tables`, e.g. `tables: [{{ name: {}, rows: 0 }}]`",
                    w.table
                )
            } else if let Some(c) = closest(&w.table, tables.iter().copied()) {
                format!(
                    "did you mean `{c}`? The seed_data tables are {}",
                    list(tables)
                )
            } else {
                format!(
                    "write to one of {}, or declare `{}` under `seed_data.tables`",
                    list(tables),
                    w.table
                )
            };
            self.report(
                &format!("{base}.table"),
                format!("table `{}` is not one of the `seed_data.tables`", w.table),
                hint,
            );
        }
        let rows = w.rows.unwrap_or(1);
        let max = if bulk.is_some() {
            MAX_SEED_ROWS
        } else {
            MAX_WRITE_ROWS
        };
        if rows == 0 || rows > max {
            self.report(
                &format!("{base}.rows"),
                format!("a write inserts 1 to {max} rows, not {rows}"),
                if rows == 0 {
                    "remove `rows` for a single row, or set it to 1 or more".to_string()
                } else {
                    "split the rows over several write steps".to_string()
                },
            );
        }
    }

    /// A `restore_point` step: a name PostgreSQL keeps whole, not already created by the
    /// `earlier` step.
    fn check_restore_point(&mut self, base: &str, rp: &RestorePointStep, earlier: Option<usize>) {
        let path = format!("{base}.name");
        let name = rp.name.as_str();
        if name.is_empty() {
            self.report(
                &path,
                "restore point name is empty".to_string(),
                "name it so a target can refer to it, e.g. `before-w3`".to_string(),
            );
        } else if name.len() > MAX_NAME {
            self.report(
                &path,
                format!(
                    "restore point name `{name}` is {} bytes long, more than PostgreSQL's {MAX_NAME}",
                    name.len()
                ),
                "PostgreSQL truncates longer names; pick a short one such as `before-w3`".to_string(),
            );
        }
        if let Some(first) = earlier {
            self.report(
                &path,
                format!(
                    "restore point `{name}` is also created by step `{}`",
                    self.s.steps[first].id()
                ),
                "give each restore point its own name so `target: { name: ... }` is unambiguous"
                    .to_string(),
            );
        }
    }

    /// A `fault` step at index `i`: exactly one fault, each checked; a crash is recorded in
    /// `crashed_at` (the first one).
    fn check_fault(&mut self, base: &str, i: usize, f: &FaultStep, crashed_at: &mut Option<usize>) {
        self.check_fault_count(base, f);
        if let Some(sel) = &f.delete_wal {
            let path = format!("{base}.delete_wal");
            if sel.last.is_some() && crashed_at.is_none() {
                self.report(
                    &format!("{path}.last"),
                    "`delete_wal: { last: N }` (tail loss) needs the source crashed first".to_string(),
                    "put `- fault: { id: crash, crash: immediate }` before it: a running source would archive new segments after the deleted tail".to_string(),
                );
            }
            self.wal_selector(&path, "delete_wal", sel, Some(i));
        }
        if let Some(w) = &f.object_store_errors {
            self.check_error_window(base, w);
        }
        if f.crash.is_some() {
            if let Some(first) = *crashed_at {
                self.report(
                    &format!("{base}.crash"),
                    format!(
                        "the source already crashed at step `{}`",
                        self.s.steps[first].id()
                    ),
                    "crash it once; recovery uses what the archive holds".to_string(),
                );
            }
            crashed_at.get_or_insert(i);
        }
        self.check_content_fault(base, i, f);
        if let Some(t) = &f.truncate_dump {
            self.logical_backup_before(&format!("{base}.truncate_dump.step"), &t.step, i);
        }
        if let Some(d) = &f.delete_dump {
            self.logical_backup_before(&format!("{base}.delete_dump.step"), &d.step, i);
        }
        self.check_stale_index(base, i, f);
    }

    /// `stale_expression_index`: a seed table, each table at most once.
    fn check_stale_index(&mut self, base: &str, i: usize, f: &FaultStep) {
        let Some(si) = &f.stale_expression_index else {
            return;
        };
        let path = format!("{base}.stale_expression_index.table");
        let tables = self.table_names();
        if !tables.contains(&si.table.as_str()) {
            let hint = match closest(&si.table, tables.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None if tables.is_empty() => {
                    "declare the table in `seed_data.tables` first".to_string()
                }
                None => format!("name one of the `seed_data.tables`: {}", list(&tables)),
            };
            self.report(
                &path,
                format!(
                    "`stale_expression_index` names table `{}`, which is not one of the `seed_data.tables`",
                    si.table
                ),
                hint,
            );
            return;
        }
        let earlier = self.s.steps[..i].iter().find_map(|st| match st {
            Step::Fault(g) if g.stale_expression_index.as_ref() == Some(si) => Some(g.id.clone()),
            _ => None,
        });
        if let Some(first) = earlier {
            self.report(
                &path,
                format!(
                    "table `{}` already got a stale expression index at step `{first}`",
                    si.table
                ),
                "make each table's index stale once".to_string(),
            );
        }
    }

    /// `verify.amcheck` and `expect.recovered.amcheck`: the expectation needs the check, names
    /// relations once, and the check runs on one recovered instance (not `target: random`).
    fn check_amcheck(&mut self) {
        let on = self.s.verify.amcheck;
        if on && self.s.recovery.target == Target::Random {
            self.report(
                "verify.amcheck",
                "`verify.amcheck` is not supported with `target: random` yet".to_string(),
                "run amcheck in a scenario with one recovery target".to_string(),
            );
        }
        let Expect::Recovered(r) = &self.s.expect else {
            return;
        };
        let Some(a) = &r.amcheck else {
            return;
        };
        if !on {
            self.report(
                "expect.recovered.amcheck",
                "`expect.recovered.amcheck` expects pg_amcheck findings, but `verify.amcheck` is off".to_string(),
                "add `verify: { amcheck: true }` at the top level of the scenario".to_string(),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, name) in a.findings.iter().enumerate() {
            let p = format!("expect.recovered.amcheck.findings[{i}]");
            let parts: Vec<&str> = name.split('.').collect();
            if parts.len() > 3 || parts.iter().any(|x| x.is_empty()) {
                self.report(
                    &p,
                    format!("`{name}` is no relation name"),
                    "name a table or index: `orders_sort_key`, `public.orders_sort_key` or `postgres.public.orders_sort_key`".to_string(),
                );
            } else if !seen.insert(name.as_str()) {
                self.report(
                    &p,
                    format!("`amcheck.findings` lists `{name}` twice"),
                    "list each relation once".to_string(),
                );
            }
        }
    }

    /// A fault step sets exactly one fault.
    fn check_fault_count(&mut self, base: &str, f: &FaultStep) {
        let set = faults_set(f);
        let id = &f.id;
        match set.len() {
            0 => self.report(
                base,
                format!("fault step `{id}` injects no fault"),
                "set one fault, e.g. `delete_wal: { holding_step: w2 }`".to_string(),
            ),
            1 => {}
            _ => self.report(
                &format!("{base}.{}", set[1]),
                format!(
                    "fault step `{id}` sets {} faults: {}",
                    set.len(),
                    list(&set)
                ),
                "one fault per step: split them into several `fault` steps".to_string(),
            ),
        }
    }

    /// An `object_store_errors` window: short, and shorter than archiving may take.
    fn check_error_window(&mut self, base: &str, w: &ErrorWindow) {
        let path = format!("{base}.object_store_errors.seconds");
        if w.seconds == 0 || w.seconds > MAX_ERROR_WINDOW {
            self.report(
                &path,
                format!(
                    "an error window lasts 1 to {MAX_ERROR_WINDOW} seconds, not {}",
                    w.seconds
                ),
                "scale the outage down: a few seconds show the same effects".to_string(),
            );
        } else if w.seconds >= self.s.timeouts.archive_seconds {
            self.report(
                &path,
                format!(
                    "the error window ({}s) is not shorter than `timeouts.archive_seconds` ({}s), so archiving cannot catch up in time",
                    w.seconds, self.s.timeouts.archive_seconds
                ),
                format!(
                    "raise `timeouts.archive_seconds` to at least {}",
                    w.seconds + 30
                ),
            );
        }
    }

    /// A `wait_archive_failure` step at index `i` needs an error window opened before it.
    fn check_wait_archive_failure(&mut self, base: &str, i: usize, id: &str) {
        let window_before = self.s.steps[..i]
            .iter()
            .any(|st| matches!(st, Step::Fault(f) if f.object_store_errors.is_some()));
        if !window_before {
            self.report(
                base,
                format!(
                    "step `{id}` waits for an archive failure, but no `object_store_errors` fault comes before it"
                ),
                "open an error window first, e.g. `- fault: { id: outage, object_store_errors: { error: slow_down, seconds: 20 } }`".to_string(),
            );
        }
    }

    /// A `wait_archived` step at index `i`: an earlier write, and an `archive_timeout` to wait on.
    fn check_wait_archived(&mut self, base: &str, i: usize, w: &WaitArchivedStep) {
        let wpath = format!("{base}.write");
        if let Some(r) = self.write_ref(&wpath, &w.write, "`write`")
            && r.index > i
        {
            self.report(
                &wpath,
                format!("`write` names `{}`, which comes after this step", w.write),
                "wait for a write that already happened".to_string(),
            );
        }
        if self.s.backup.archive_timeout_seconds.is_none() {
            self.report(
                base,
                format!(
                    "step `{}` waits for archiving without a WAL switch, but `backup.archive_timeout_seconds` is not set",
                    w.id
                ),
                "set e.g. `backup: { archive_timeout_seconds: 2 }`, or use `own_segment: true` on the write".to_string(),
            );
        }
    }

    /// `corrupt_wal`, `delete_backup`, `delete_history` of the fault step at index `i`.
    fn check_content_fault(&mut self, base: &str, i: usize, f: &FaultStep) {
        if let Some(cw) = &f.corrupt_wal {
            let path = format!("{base}.corrupt_wal");
            self.wal_selector(&path, "corrupt_wal", &cw.selector(), Some(i));
            if cw.mode == CorruptMode::Undecompressable
                && self.s.backup.compression == Compression::None
            {
                self.report(
                    &format!("{path}.mode"),
                    "`corrupt_wal` mode `undecompressable` needs a compressed archive, but `backup.compression` is `none`".to_string(),
                    "set `backup.compression` to gzip, bzip2 or snappy, or use `mode: crc`".to_string(),
                );
            }
        }
        if let Some(db) = &f.delete_backup {
            let path = format!("{base}.delete_backup.step");
            let backups: Vec<&str> = self.s.steps[..i]
                .iter()
                .filter(|st| matches!(st, Step::BaseBackup(_)))
                .map(Step::id)
                .collect();
            let found = self.by_id.get(db.step.as_str()).copied();
            let problem = match found {
                Some(r) if r.kind == "base_backup" && r.index < i => None,
                Some(r) if r.kind == "base_backup" => Some(format!(
                    "`delete_backup` names backup `{}`, which is taken after this fault",
                    db.step
                )),
                Some(r) => Some(format!(
                    "`delete_backup` names `{}`, a `{}` step, not a `base_backup` step",
                    db.step, r.kind
                )),
                None => Some(format!(
                    "`delete_backup` names step `{}`, which does not exist",
                    db.step
                )),
            };
            if let Some(message) = problem {
                let hint = match closest(&db.step, backups.iter().copied()) {
                    Some(c) if found.is_none() => format!("did you mean `{c}`?"),
                    _ if backups.is_empty() => {
                        "a fault can only delete a backup taken before it: move it after a `base_backup` step".to_string()
                    }
                    _ => format!("name a base backup taken before this fault: {}", list(&backups)),
                };
                self.report(&path, message, hint);
            }
        }
        if let Some(dh) = &f.delete_history {
            let path = format!("{base}.delete_history.timeline");
            let failovers = self.s.steps[..i]
                .iter()
                .filter(|st| matches!(st, Step::Failover(_)))
                .count() as u32;
            if dh.timeline < 2 {
                self.report(
                    &path,
                    format!("timeline {} has no history file", dh.timeline),
                    "history files start with timeline 2, written when a failover promotes the source".to_string(),
                );
            } else if dh.timeline > failovers + 1 {
                self.report(
                    &path,
                    format!(
                        "`delete_history` names timeline {}, but {} `failover` step(s) come before this fault, so the source reaches timeline {} at most",
                        dh.timeline,
                        failovers,
                        failovers + 1
                    ),
                    "add `- failover: { id: f1 }` before this fault, or name an earlier timeline".to_string(),
                );
            }
        }
    }

    /// Checks a WAL selector at `path`. With `before`, a `holding_step` must come before
    /// step index `before` (a fault can only act on WAL that exists).
    fn wal_selector(
        &mut self,
        path: &str,
        what: &str,
        sel: &WalSelectorSpec,
        before: Option<usize>,
    ) {
        if let Some(n) = sel.last {
            let lpath = format!("{path}.last");
            if what != "delete_wal" {
                self.report(
                    &lpath,
                    format!("`{what}` cannot name segments with `last`"),
                    "name the segment with `segment:` or `holding_step:`".to_string(),
                );
            } else if sel.segment.is_some() || sel.holding_step.is_some() {
                self.report(
                    &lpath,
                    format!("`{what}` sets `last` together with `segment` or `holding_step`"),
                    "keep only one of them".to_string(),
                );
            } else if n == 0 {
                self.report(
                    &lpath,
                    "`last: 0` deletes nothing".to_string(),
                    "delete at least one segment, e.g. `last: 2`".to_string(),
                );
            }
            return;
        }
        match (&sel.segment, &sel.holding_step) {
            (None, None) => self.report(
                path,
                format!("`{what}` names no segment"),
                "set `holding_step: <write step id>` or `segment: <24 hex digits>`".to_string(),
            ),
            (Some(_), Some(_)) => self.report(
                &format!("{path}.holding_step"),
                format!("`{what}` sets both `segment` and `holding_step`"),
                "keep only one of them".to_string(),
            ),
            (Some(seg), None) => {
                if !is_segment_name(seg) {
                    let upper = seg.to_ascii_uppercase();
                    let hint = if is_segment_name(&upper) {
                        format!("write it in uppercase: `{upper}`")
                    } else {
                        "a WAL segment file name is 24 uppercase hex digits with a timeline from 1, e.g. `000000010000000000000009`".to_string()
                    };
                    self.report(
                        &format!("{path}.segment"),
                        format!("`{seg}` is not a WAL segment file name"),
                        hint,
                    );
                }
            }
            (None, Some(h)) => {
                let hpath = format!("{path}.holding_step");
                if let Some(r) = self.write_ref(&hpath, h, "`holding_step`")
                    && let Some(i) = before
                    && r.index > i
                {
                    self.report(
                        &hpath,
                        format!("`holding_step` names write `{h}`, which comes after this fault"),
                        "a fault can only delete WAL that already exists: move the fault after the write".to_string(),
                    );
                }
            }
        }
    }

    /// Checks that `id` (found at `path`, described as `what`) names a write step.
    fn write_ref(&mut self, path: &str, id: &str, what: &str) -> Option<StepRef<'a>> {
        match self.by_id.get(id).copied() {
            Some(r) if r.kind == "write" => Some(r),
            Some(r) => {
                let writes = self.write_ids();
                self.report(
                    path,
                    format!(
                        "{what} names `{id}`, a `{}` step, not a `write` step",
                        r.kind
                    ),
                    if writes.is_empty() {
                        "add a `write` step and name it here".to_string()
                    } else {
                        format!("name a write step: {}", list(&writes))
                    },
                );
                None
            }
            None => {
                let writes = self.write_ids();
                let hint = if let Some(c) = closest(id, writes.iter().copied()) {
                    format!("did you mean `{c}`?")
                } else if writes.is_empty() {
                    "add a `write` step with this id".to_string()
                } else {
                    format!("name a write step: {}", list(&writes))
                };
                self.report(
                    path,
                    format!("{what} names step `{id}`, which does not exist"),
                    hint,
                );
                None
            }
        }
    }

    /// The base backup recovery starts from at the earliest: `recovery.backup` if it names a
    /// base backup, else the first one.
    fn backup_floor(&mut self) -> Option<StepRef<'a>> {
        if let Some(b) = self.s.recovery.backup.as_deref() {
            return self.base_backup_named("recovery.backup", b, "`recovery.backup`");
        }
        self.s.steps.iter().enumerate().find_map(|(index, st)| {
            matches!(st, Step::BaseBackup(_)).then(|| StepRef {
                index,
                id: st.id(),
                kind: st.kind(),
            })
        })
    }

    fn check_recovery(&mut self) {
        if self.s.recovery.is_logical() || self.s.recovery.command.is_some() {
            self.check_logical_recovery();
            return;
        }
        self.check_command_options();
        let floor = self.backup_floor();
        let target = self.s.recovery.target.clone();
        let refs = self.target_refs(&target);
        // Recovery cannot stop before the backup it starts from is consistent.
        if let Some(floor) = floor {
            for (path, r) in &refs {
                if r.index < floor.index {
                    self.report_before_backup(path, *r, floor);
                }
            }
        }
        if self.s.recovery.exclusive {
            self.check_exclusive(&target);
        }
    }

    /// Checks the target's own fields; returns the steps it refers to, with the path of each
    /// reference.
    fn target_refs(&mut self, target: &Target) -> Refs<'a> {
        let mut refs = Vec::new();
        match target {
            Target::Latest | Target::Immediate | Target::Random => {}
            Target::Time(t) => self.check_time_target(t, &mut refs),
            Target::Lsn(l) => self.check_lsn_target(l, &mut refs),
            Target::Xid(x) => self.check_xid_target(x, &mut refs),
            Target::Name(n) => {
                let p = "recovery.target.name";
                if let Some(r) = self.restore_point_ref(p, n) {
                    refs.push((p.to_string(), r));
                }
            }
            Target::AfterStep(s) => {
                let p = "recovery.target.after_step";
                self.add_write_ref(&mut refs, p.to_string(), s, "`target.after_step`");
            }
        }
        refs
    }

    /// `write_ref` at `path`; a write found is added to `refs`.
    fn add_write_ref(&mut self, refs: &mut Refs<'a>, path: String, id: &str, what: &str) {
        if let Some(r) = self.write_ref(&path, id, what) {
            refs.push((path, r));
        }
    }

    /// `target: { time: ... }`: one of its forms, with writes in the right order.
    fn check_time_target(&mut self, t: &TimeTarget, refs: &mut Refs<'a>) {
        let base = "recovery.target.time";
        self.exactly_one(
            base,
            [
                ("at", t.at.is_some()),
                ("after_step", t.after_step.is_some()),
                ("between", t.between.is_some()),
            ],
        );
        if let Some(s) = &t.after_step {
            self.add_write_ref(refs, format!("{base}.after_step"), s, "`time.after_step`");
        }
        if let Some([a, b]) = &t.between {
            let pa = format!("{base}.between[0]");
            let pb = format!("{base}.between[1]");
            let ra = self.write_ref(&pa, a, "`time.between`");
            let rb = self.write_ref(&pb, b, "`time.between`");
            if let (Some(ra), Some(rb)) = (ra, rb) {
                if ra.index >= rb.index {
                    self.report(
                        &pb,
                        if ra.index == rb.index {
                            format!("`time.between` names `{a}` twice")
                        } else {
                            format!(
                                "`time.between` names `{b}` after `{a}`, but `{b}` is written first"
                            )
                        },
                        if ra.index == rb.index {
                            "name two different write steps, the earlier first".to_string()
                        } else {
                            format!("name the earlier write first: `between: [{b}, {a}]`")
                        },
                    );
                }
                refs.push((pa, ra));
                refs.push((pb, rb));
            }
        }
    }

    /// `target: { lsn: ... }`: one of its forms, a parseable LSN.
    fn check_lsn_target(&mut self, l: &LsnTarget, refs: &mut Refs<'a>) {
        let base = "recovery.target.lsn";
        self.exactly_one(
            base,
            [
                ("at", l.at.is_some()),
                ("after_step", l.after_step.is_some()),
            ],
        );
        if let Some(at) = &l.at
            && let Err(e) = at.parse::<Lsn>()
        {
            self.report(
                &format!("{base}.at"),
                format!("`lsn.at`: {e}"),
                "an LSN is two hex numbers separated by `/`, e.g. `0/3000060`".to_string(),
            );
        }
        if let Some(s) = &l.after_step {
            self.add_write_ref(refs, format!("{base}.after_step"), s, "`lsn.after_step`");
        }
    }

    /// `target: { xid: ... }`: one of its forms, a transaction id that can be real.
    fn check_xid_target(&mut self, x: &XidTarget, refs: &mut Refs<'a>) {
        let base = "recovery.target.xid";
        self.exactly_one(
            base,
            [("at", x.at.is_some()), ("of_step", x.of_step.is_some())],
        );
        if let Some(at) = x.at
            && at < 3
        {
            self.report(
                &format!("{base}.at"),
                format!("transaction id {at} is reserved by PostgreSQL, never a real transaction"),
                "normal transaction ids start at 3; prefer `of_step: <write step id>`".to_string(),
            );
        }
        if let Some(s) = &x.of_step {
            self.add_write_ref(refs, format!("{base}.of_step"), s, "`xid.of_step`");
        }
    }

    /// The `restore_point` step creating the restore point `name`; a problem at `path` when
    /// none does.
    fn restore_point_ref(&mut self, path: &str, name: &str) -> Option<StepRef<'a>> {
        let s = self.s;
        let found = s.steps.iter().enumerate().find_map(|(index, st)| match st {
            Step::RestorePoint(rp) if rp.name == name => Some(StepRef {
                index,
                id: st.id(),
                kind: st.kind(),
            }),
            _ => None,
        });
        if found.is_none() {
            let mut names: Vec<&str> = Vec::new();
            for st in &s.steps {
                if let Step::RestorePoint(rp) = st
                    && !rp.name.is_empty()
                    && !names.contains(&rp.name.as_str())
                {
                    names.push(&rp.name);
                }
            }
            let hint = if let Some(c) = closest(name, names.iter().copied()) {
                format!("did you mean `{c}`?")
            } else if names.is_empty() {
                format!(
                    "add a step `- restore_point: {{ id: rp1, name: {name} }}` after the base backup"
                )
            } else {
                format!("name one of the restore points: {}", list(&names))
            };
            self.report(
                path,
                format!("no `restore_point` step creates the restore point `{name}`"),
                hint,
            );
        }
        found
    }

    /// The target at `path` refers to step `r`, which comes before the backup recovery starts
    /// from (`floor`).
    fn report_before_backup(&mut self, path: &str, r: StepRef<'a>, floor: StepRef<'a>) {
        let named_backup = self.s.recovery.backup.is_some();
        let what = if r.kind == "restore_point" {
            format!("restore point step `{}`", r.id)
        } else {
            format!("write `{}`", r.id)
        };
        let backup = if named_backup {
            format!("base backup `{}` named in `recovery.backup`", floor.id)
        } else {
            format!("the first base backup, `{}`", floor.id)
        };
        let hint = if named_backup {
            format!(
                "target a step after `{}`, or name an earlier backup in `recovery.backup`",
                floor.id
            )
        } else {
            format!(
                "target a step after `{}`, or add a `base_backup` step before `{}`",
                floor.id, r.id
            )
        };
        self.report(
            path,
            format!(
                "the target is unreachable: {what} comes before {backup}, and recovery cannot stop before the backup is consistent"
            ),
            hint,
        );
    }

    /// `exclusive: true` only with a target it applies to.
    fn check_exclusive(&mut self, target: &Target) {
        let kind = match target {
            Target::Latest => Some("latest"),
            Target::Immediate => Some("immediate"),
            Target::Name(_) => Some("name"),
            Target::AfterStep(_) => Some("after_step"),
            Target::Time(_) | Target::Lsn(_) | Target::Xid(_) | Target::Random => None,
        };
        if let Some(kind) = kind {
            self.report(
                "recovery.exclusive",
                format!("`exclusive: true` means nothing with a `{kind}` target"),
                "remove `exclusive`; it only applies to `time`, `lsn` and `xid` targets"
                    .to_string(),
            );
        }
    }

    /// The base backup steps that crash the source in the middle (`crash_source`).
    fn interrupted_backups(&self) -> Vec<&'a str> {
        self.s
            .steps
            .iter()
            .filter(|st| matches!(st, Step::BaseBackup(b) if b.crash_source.is_some()))
            .map(Step::id)
            .collect()
    }

    /// The `base_backup` step `id` (named at `path` by `what`), or a problem reported: no such
    /// step, or one of another kind.
    fn base_backup_named(&mut self, path: &str, id: &str, what: &str) -> Option<StepRef<'a>> {
        let found = self.by_id.get(id).copied();
        if let Some(r) = found.filter(|r| r.kind == "base_backup") {
            return Some(r);
        }
        let backups: Vec<&str> = self
            .s
            .steps
            .iter()
            .filter(|st| matches!(st, Step::BaseBackup(_)))
            .map(Step::id)
            .collect();
        let message = match found {
            Some(r) => format!(
                "{what} names `{id}`, a `{}` step, not a `base_backup` step",
                r.kind
            ),
            None => format!("{what} names step `{id}`, which does not exist"),
        };
        let hint = match closest(id, backups.iter().copied()) {
            Some(c) if found.is_none() => format!("did you mean `{c}`?"),
            _ if backups.is_empty() => "add a `base_backup` step and name it here".to_string(),
            _ => format!("name a base backup step: {}", list(&backups)),
        };
        self.report(path, message, hint);
        None
    }

    /// Checks that `id` (at `path`) names a `base_backup` step; `finished`: one that completes
    /// (no `crash_source`).
    fn backup_ref(&mut self, path: &str, id: &str, what: &str, finished: bool) {
        if self.base_backup_named(path, id, what).is_some()
            && finished
            && self.interrupted_backups().contains(&id)
        {
            self.report(
                path,
                format!("{what} names `{id}`, a base backup the source crashes in the middle of (`crash_source`): it never finishes"),
                "name a base backup that completes".to_string(),
            );
        }
    }

    /// Faults during a base backup or a recovery: `crash_source`, `recovery.object_store_errors`
    /// and `recovery.restart`.
    fn check_recovery_faults(&mut self) {
        let interrupted = self.interrupted_backups();
        let finished = self
            .s
            .steps
            .iter()
            .filter(|st| matches!(st, Step::BaseBackup(_)))
            .count()
            - interrupted.len();
        if !interrupted.is_empty() && finished == 0 {
            let i = self
                .s
                .steps
                .iter()
                .position(|st| st.id() == interrupted[0])
                .unwrap_or_default();
            self.report(
                &format!("{}.base_backup.crash_source", self.step_path(i)),
                "every `base_backup` crashes the source in the middle: recovery has no backup to restore".to_string(),
                "take a base backup without `crash_source` first".to_string(),
            );
        }
        if let Some(b) = self.s.recovery.backup.clone()
            && interrupted.contains(&b.as_str())
        {
            self.backup_ref("recovery.backup", &b, "`recovery.backup`", true);
        }
        let r = &self.s.recovery;
        let random = r.target == Target::Random;
        let (errors, restart) = (r.object_store_errors.clone(), r.restart.clone());
        if let Some(w) = &errors {
            let base = "recovery.object_store_errors";
            if w.seconds == 0 || w.seconds > MAX_ERROR_WINDOW {
                self.report(
                    &format!("{base}.seconds"),
                    format!(
                        "an error window lasts 1 to {MAX_ERROR_WINDOW} seconds, not {}",
                        w.seconds
                    ),
                    "a window a little longer than the tools' retries ends recovery early; a shorter one is ridden out".to_string(),
                );
            }
            if w.failures == Some(0) {
                self.report(
                    &format!("{base}.failures"),
                    "`failures: 0` fails no request".to_string(),
                    "remove `failures` (no limit), or set it to 1 or more".to_string(),
                );
            }
            if let Some(from) = &w.from {
                if w.requests != crate::scenario::RecoveryReads::WalGets {
                    self.report(
                        &format!("{base}.from"),
                        "`from` narrows reads of WAL only, and `requests` is not `wal_gets`"
                            .to_string(),
                        "remove `from`, or set `requests: wal_gets`".to_string(),
                    );
                } else {
                    self.wal_selector(&format!("{base}.from"), "from", from, None);
                }
            }
            if random {
                self.report(
                    base,
                    "`recovery.object_store_errors` with `target: random`: several recoveries would share one window".to_string(),
                    "recover to one target, or drop the window".to_string(),
                );
            }
        }
        if let Some(rs) = &restart {
            self.write_ref(
                "recovery.restart.after_step",
                &rs.after_step,
                "`restart.after_step`",
            );
            if random {
                self.report(
                    "recovery.restart",
                    "`recovery.restart` with `target: random`: which of the recoveries would be killed?".to_string(),
                    "recover to one target, or drop the restart".to_string(),
                );
            }
            if errors.is_some() {
                self.report(
                    "recovery.restart",
                    "`recovery.restart` together with `recovery.object_store_errors`: one recovery fault at a time".to_string(),
                    "split them into two scenarios".to_string(),
                );
            }
        }
        if let Expect::Recovered(e) = &self.s.expect
            && let Some(b) = e.backup.clone()
        {
            self.backup_ref(
                "expect.recovered.backup",
                &b,
                "`expect.recovered.backup`",
                true,
            );
        }
        let outcome = match &self.s.expect {
            Expect::Recovered(_) => "recovered",
            Expect::Failed(_) => "failed",
        };
        if let Some(steps) = self
            .s
            .expect
            .audit()
            .and_then(|a| a.unusable_backups.clone())
        {
            for (i, b) in steps.iter().enumerate() {
                let p = format!("expect.{outcome}.audit.unusable_backups[{i}]");
                self.backup_ref(&p, b, "`audit.unusable_backups`", false);
            }
        }
    }

    /// `target: random` and its settings: `count` and `parallel` only with it, a sane count,
    /// writes to pick from, and no expectation that only means something for one target.
    fn check_random(&mut self) {
        let r = &self.s.recovery;
        let random = r.target == Target::Random;
        if !random {
            for (key, set) in [("count", r.count.is_some()), ("parallel", r.parallel)] {
                if set {
                    self.report(
                        &format!("recovery.{key}"),
                        format!("`recovery.{key}` only applies to `target: random`"),
                        "remove it, or set `target: random` to recover to several seeded random targets".to_string(),
                    );
                }
            }
            return;
        }
        match r.count {
            None => self.report(
                "recovery.target",
                "`target: random` needs `recovery.count`, how many targets to pick".to_string(),
                format!("add `count: 6` under `recovery` (1 to {MAX_RANDOM_TARGETS})"),
            ),
            Some(n) if n == 0 || n > MAX_RANDOM_TARGETS => self.report(
                "recovery.count",
                format!("`recovery.count` must be 1 to {MAX_RANDOM_TARGETS}, not {n}"),
                if n == 0 {
                    "pick at least one target, e.g. `count: 6`".to_string()
                } else {
                    format!(
                        "every target is a full recovery: pick at most {MAX_RANDOM_TARGETS}, or run the scenario again with another `--seed`"
                    )
                },
            ),
            Some(n) => {
                let prefix = r
                    .server_name
                    .clone()
                    .unwrap_or_else(|| format!("{}-restored", self.s.backup.server_name));
                let longest = format!("{prefix}-{n}");
                if is_server_name(&prefix) && !is_server_name(&longest) {
                    self.report(
                        if r.server_name.is_some() {
                            "recovery.server_name"
                        } else {
                            "backup.server_name"
                        },
                        format!(
                            "random target {n} would archive to serverName `{longest}`, longer than {MAX_NAME} characters"
                        ),
                        "use a shorter server name".to_string(),
                    );
                }
            }
        }
        // Targets are picked from the writes after the backup recovery may start from.
        let floor = match r.backup.as_deref() {
            Some(b) => self
                .by_id
                .get(b)
                .filter(|s| s.kind == "base_backup")
                .copied(),
            None => self.s.steps.iter().enumerate().find_map(|(index, st)| {
                matches!(st, Step::BaseBackup(_)).then(|| StepRef {
                    index,
                    id: st.id(),
                    kind: st.kind(),
                })
            }),
        };
        if let Some(floor) = floor
            && !self.s.steps[floor.index..]
                .iter()
                .any(|st| matches!(st, Step::Write(_)))
        {
            self.report(
                "recovery.target",
                format!(
                    "`target: random` has nothing to pick from: no `write` step comes after base backup `{}`",
                    floor.id
                ),
                format!(
                    "add write steps after `{}`, spread over WAL segments with `own_segment: true`",
                    floor.id
                ),
            );
        }
        match &self.s.expect {
            Expect::Failed(_) => self.report(
                "expect.failed",
                "`expect: failed` cannot be judged with `target: random`: every picked target must recover and match the ledger".to_string(),
                "use `expect: { recovered: {} }`; drill an expected failure with a single target".to_string(),
            ),
            Expect::Recovered(e) => {
                if e.rows.is_some() {
                    self.report(
                        "expect.recovered.rows",
                        "`expect.recovered.rows` cannot be checked with `target: random`: each picked target has its own row counts".to_string(),
                        "remove `rows`: every target is verified against the ledger's rows at that target".to_string(),
                    );
                }
                if e.data_loss.rows > 0 || e.data_loss.steps.is_some() {
                    self.report(
                        "expect.recovered.data_loss",
                        "`expect.recovered.data_loss` cannot be checked with `target: random`: which writes a target loses depends on where it falls".to_string(),
                        "remove `data_loss` (or write `data_loss: none`): every target must come back without loss".to_string(),
                    );
                }
            }
        }
    }

    /// Reports a target struct that sets none or several of its alternatives.
    fn exactly_one<const N: usize>(&mut self, base: &str, fields: [(&'static str, bool); N]) {
        let all = fields.map(|(n, _)| n);
        let set = fields_set(fields);
        let all = &all[..];
        let set = &set[..];
        let field = base.rsplit('.').next().unwrap_or(base);
        match set.len() {
            1 => {}
            0 => self.report(
                base,
                format!("`{field}` target sets none of {}", list(all)),
                format!("set exactly one of {}", list(all)),
            ),
            _ => self.report_key(
                &format!("{base}.{}", set[1]),
                format!("`{field}` target sets {}; only one is allowed", list(set)),
                format!("keep exactly one of {}", list(set)),
            ),
        }
    }

    fn check_env(&mut self) {
        let keys: Vec<String> = self.s.env.keys().cloned().collect();
        for k in keys {
            let path = format!("env.{k}");
            if !is_env_name(&k) {
                self.report_key(
                    &path,
                    format!("`{k}` is not an environment variable name"),
                    "use upper-case letters, digits and `_`, e.g. `AWS_REQUEST_CHECKSUM_CALCULATION`"
                        .to_string(),
                );
            } else if matches!(
                k.as_str(),
                "AWS_ACCESS_KEY_ID"
                    | "AWS_SECRET_ACCESS_KEY"
                    | "AWS_SESSION_TOKEN"
                    | "AWS_CONFIG_FILE"
                    | "AWS_SHARED_CREDENTIALS_FILE"
                    | "AWS_PROFILE"
                    | "AZURE_STORAGE_CONNECTION_STRING"
                    | "AZURE_STORAGE_ACCOUNT"
                    | "AZURE_STORAGE_KEY"
                    | "AZURE_STORAGE_SAS_TOKEN"
                    | "HOME"
                    | "PATH"
            ) {
                self.report_key(
                    &path,
                    format!("`env` cannot set `{k}`: pgdrill owns credentials and tool paths"),
                    "remove it; credentials never belong in scenario files".to_string(),
                );
            }
        }
    }

    fn check_expect(&mut self) {
        if let Some(a) = self.s.expect.audit() {
            let outcome = match &self.s.expect {
                Expect::Recovered(_) => "recovered",
                Expect::Failed(_) => "failed",
            };
            let mut seen = BTreeSet::new();
            for (i, sel) in a.gaps.iter().enumerate() {
                let p = format!("expect.{outcome}.audit.gaps[{i}]");
                self.wal_selector(&p, "gaps", sel, None);
                if !seen.insert((sel.segment.clone(), sel.holding_step.clone())) {
                    self.report(
                        &p,
                        "`audit.gaps` lists the same segment twice".to_string(),
                        "list each expected gap once".to_string(),
                    );
                }
            }
        }
        match &self.s.expect {
            Expect::Recovered(r) => {
                let tables = self.table_names();
                if let Some(rows) = &r.rows {
                    for table in rows.keys() {
                        if !tables.contains(&table.as_str()) {
                            let hint = if let Some(c) = closest(table, tables.iter().copied()) {
                                format!("did you mean `{c}`?")
                            } else if tables.is_empty() {
                                "row counts can only be expected for `seed_data.tables`; declare the table there".to_string()
                            } else {
                                format!("expect row counts of {}", list(&tables))
                            };
                            self.report_key(
                                &format!("expect.recovered.rows.{table}"),
                                format!("`expect.recovered.rows` counts table `{table}`, which is not one of the `seed_data.tables`"),
                                hint,
                            );
                        }
                    }
                }
                if let Some(steps) = &r.data_loss.steps {
                    let mut seen = BTreeSet::new();
                    for (i, s) in steps.iter().enumerate() {
                        let p = format!("expect.recovered.data_loss.steps[{i}]");
                        self.write_ref(&p, s, "`data_loss.steps`");
                        if !seen.insert(s.as_str()) {
                            self.report(
                                &p,
                                format!("`data_loss.steps` lists `{s}` twice"),
                                "list each lost write once".to_string(),
                            );
                        }
                    }
                }
                for (key, v, ok) in [
                    ("rto_budget_seconds", r.rto_budget_seconds, "positive"),
                    ("rpo_budget_seconds", r.rpo_budget_seconds, "non-negative"),
                ] {
                    if let Some(b) = v
                        && !(b.is_finite() && (b > 0.0 || (b == 0.0 && ok == "non-negative")))
                    {
                        self.report(
                            &format!("expect.recovered.{key}"),
                            format!("`{key}` must be a {ok} number of seconds, not {b}"),
                            format!("e.g. `{key}: 120`, or remove it for no budget"),
                        );
                    }
                }
            }
            Expect::Failed(f) => {
                if f.error_contains.trim().is_empty() {
                    self.report(
                        "expect.failed.error_contains",
                        "`error_contains` is empty, so any failure would match".to_string(),
                        "quote a distinctive part of the expected error, e.g. `error_contains: \"requested WAL segment\"`".to_string(),
                    );
                }
            }
        }
    }

    /// A `logical_backup` step: a database name PostgreSQL takes, an in-flight write into a
    /// plain table under an id of its own.
    fn check_logical_backup(
        &mut self,
        base: &str,
        l: &LogicalBackupStep,
        known: &HashSet<&str>,
        bulk: &HashMap<&str, u32>,
    ) {
        let base = format!("{base}.logical_backup");
        if let Some(db) = &l.database
            && (!is_sql_identifier(db) || db.len() > MAX_NAME)
        {
            self.report(
                &format!("{base}.database"),
                format!("`{db}` is not a database name pgdrill can dump"),
                "use lowercase letters, digits and `_`, e.g. `postgres` (the drill's own)"
                    .to_string(),
            );
        }
        let Some(w) = &l.in_flight else { return };
        let p = format!("{base}.in_flight");
        let others = self
            .s
            .steps
            .iter()
            .filter_map(|st| match st {
                Step::LogicalBackup(o) => o.in_flight.as_ref(),
                _ => None,
            })
            .filter(|o| o.id == w.id)
            .count();
        if !is_step_id(&w.id) || w.id == SEED_STEP {
            self.report(
                &format!("{p}.id"),
                format!("`{}` cannot be a write's id", w.id),
                "use lowercase letters, digits, `_` and `-`, e.g. `w-inflight`".to_string(),
            );
        } else if self.by_id.contains_key(w.id.as_str()) || others > 1 {
            self.report(
                &format!("{p}.id"),
                format!("step id `{}` is already used", w.id),
                "give the in-flight write an id of its own: the ledger records it under it"
                    .to_string(),
            );
        }
        if !known.contains(w.table.as_str()) {
            self.report(
                &format!("{p}.table"),
                format!("no table `{}` in `seed_data.tables`", w.table),
                "name one of the generated tables".to_string(),
            );
        } else if bulk.contains_key(w.table.as_str()) {
            self.report(
                &format!("{p}.table"),
                format!(
                    "`{}` is a bulk table; an in-flight write goes into a plain one",
                    w.table
                ),
                "name a table without `size` or `row_bytes`".to_string(),
            );
        }
        if w.rows == Some(0) {
            self.report(
                &format!("{p}.rows"),
                "an in-flight write inserts at least 1 row".to_string(),
                "leave `rows` out for 1".to_string(),
            );
        }
    }

    /// `path` names a `logical_backup` step before step `i`.
    fn logical_backup_before(&mut self, path: &str, id: &str, i: usize) {
        let dumps: Vec<&str> = self.s.steps[..i]
            .iter()
            .filter(|st| matches!(st, Step::LogicalBackup(_)))
            .map(Step::id)
            .collect();
        if !dumps.contains(&id) {
            let hint = if dumps.is_empty() {
                "add a `logical_backup` step before this fault".to_string()
            } else {
                format!("name one of {}", list(&dumps))
            };
            self.report(
                path,
                format!("`{id}` is not a `logical_backup` step before this fault"),
                hint,
            );
        }
    }

    /// `env` and `timeout_seconds` belong to `recovery.command`.
    fn check_command_options(&mut self) {
        let r = &self.s.recovery;
        if !r.env.is_empty() {
            self.report_key(
                "recovery.env",
                "`recovery.env` is the environment of `recovery.command`, which is not set"
                    .to_string(),
                "set `command:` to your restore script, or remove `env`".to_string(),
            );
        }
        if r.timeout_seconds.is_some() {
            self.report_key(
                "recovery.timeout_seconds",
                "`recovery.timeout_seconds` is the deadline of `recovery.command`, which is not set"
                    .to_string(),
                "use `timeouts.recovery_seconds` for physical recovery".to_string(),
            );
        }
    }

    /// `method: logical` or `command:`: a logical backup to restore, no physical-only option,
    /// the script present.
    fn check_logical_recovery(&mut self) {
        let r = self.s.recovery.clone();
        if r.method == Some(RecoveryMethod::Physical) {
            self.report(
                "recovery.method",
                "`recovery.command` restores a logical backup, `method: physical` does not"
                    .to_string(),
                "remove `method` or set `method: logical`".to_string(),
            );
        }
        let dumps: Vec<&str> = self
            .s
            .steps
            .iter()
            .filter(|st| matches!(st, Step::LogicalBackup(_)))
            .map(Step::id)
            .collect();
        let at = if r.command.is_some() {
            "recovery.command"
        } else {
            "recovery.method"
        };
        if dumps.is_empty() {
            self.report(
                at,
                "logical recovery, but no `logical_backup` step: there is nothing to restore"
                    .to_string(),
                "add `- logical_backup: { id: dump }` after the writes the restore should find"
                    .to_string(),
            );
        }
        if let Some(b) = &r.backup
            && !dumps.contains(&b.as_str())
        {
            let hint = if dumps.is_empty() {
                "add a `logical_backup` step".to_string()
            } else {
                format!("name one of {}", list(&dumps))
            };
            self.report(
                "recovery.backup",
                format!("`{b}` is not a `logical_backup` step: a logical recovery restores one"),
                hint,
            );
        }
        if r.target != Target::Latest {
            self.report(
                "recovery.target",
                "a logical backup restores the database as of its snapshot: a recovery target other than `latest` makes no sense for it".to_string(),
                "remove `target`, or use `method: physical` for point-in-time recovery".to_string(),
            );
        }
        for (key, set) in [
            ("exclusive", r.exclusive),
            ("server_name", r.server_name.is_some()),
            ("count", r.count.is_some()),
            ("parallel", r.parallel),
            ("object_store_errors", r.object_store_errors.is_some()),
            ("restart", r.restart.is_some()),
            ("wal_max_parallel", r.wal_max_parallel.is_some()),
        ] {
            if set {
                self.report_key(
                    &format!("recovery.{key}"),
                    format!("`recovery.{key}` is for physical recovery; a logical restore replays no WAL"),
                    "remove it".to_string(),
                );
            }
        }
        if let Some(v) = r.postgres
            && v < self.s.postgres
        {
            self.report(
                "recovery.postgres",
                format!(
                    "a logical backup of PostgreSQL {} restores into the same or a newer major, not {v}",
                    self.s.postgres
                ),
                format!("use {} or later", self.s.postgres),
            );
        }
        if let Expect::Recovered(e) = &self.s.expect
            && e.backup.is_some()
        {
            self.report(
                "expect.recovered.backup",
                "`expect.recovered.backup` names a base backup; a logical recovery restores a logical one".to_string(),
                "remove it; `recovery.backup` names the logical backup".to_string(),
            );
        }
        match &r.command {
            Some(cmd) => self.check_command(cmd, &r),
            None => self.check_command_options(),
        }
    }

    /// `recovery.command`: an executable file relative to the scenario file, a sane deadline,
    /// environment variable names.
    fn check_command(&mut self, cmd: &str, r: &Recovery) {
        let dir = self.loaded.path.parent().unwrap_or(Path::new("."));
        let file = dir.join(cmd);
        let meta = std::fs::metadata(&file);
        if cmd.trim().is_empty() || !meta.as_ref().is_ok_and(|m| m.is_file()) {
            self.report(
                "recovery.command",
                format!("restore script `{cmd}` not found ({})", file.display()),
                "the path is relative to the scenario file, e.g. `../fixtures/restore.sh`"
                    .to_string(),
            );
        } else if meta.is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o111 == 0
        }) {
            self.report(
                "recovery.command",
                format!("restore script `{cmd}` is not executable"),
                format!("chmod +x {}", file.display()),
            );
        }
        if let Some(t) = r.timeout_seconds
            && (t == 0 || t > 3600)
        {
            self.report(
                "recovery.timeout_seconds",
                format!("`recovery.timeout_seconds` is 1 to 3600, not {t}"),
                "leave it out for `timeouts.recovery_seconds`".to_string(),
            );
        }
        let keys: Vec<String> = r.env.keys().cloned().collect();
        for k in keys {
            if !is_env_name(&k) {
                self.report_key(
                    &format!("recovery.env.{k}"),
                    format!("`{k}` is not an environment variable name"),
                    "use upper-case letters, digits and `_`, e.g. `RESTORE_JOBS`".to_string(),
                );
            } else if matches!(
                k.as_str(),
                "AWS_ACCESS_KEY_ID"
                    | "AWS_SECRET_ACCESS_KEY"
                    | "AWS_SESSION_TOKEN"
                    | "DB_PASS"
                    | "AZURE_STORAGE_ACCOUNT_KEY"
                    | "AZURE_STORAGE_SAS_TOKEN"
                    | "AZURE_STORAGE_CONNECTION_STRING"
            ) {
                self.report_key(
                    &format!("recovery.env.{k}"),
                    format!("`recovery.env` cannot set `{k}`: pgdrill fills credentials itself"),
                    "remove it; credentials never belong in scenario files".to_string(),
                );
            }
        }
    }

    fn check_timeouts(&mut self) {
        let t = &self.s.timeouts;
        for (key, v, default) in [
            ("archive_seconds", t.archive_seconds, 60),
            ("backup_seconds", t.backup_seconds, 300),
            ("recovery_seconds", t.recovery_seconds, 300),
        ] {
            if v == 0 {
                self.report(
                    &format!("timeouts.{key}"),
                    format!("`timeouts.{key}` must be more than 0"),
                    format!(
                        "remove it for the default of {default} seconds, or set a longer deadline"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load::load_str;
    use crate::scenario::load::tests::{EXAMPLE, MINIMAL, edit, path};

    /// A fixtures directory holding the example's `schema.sql`.
    fn fixtures() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.sql"), "create table t (x int);\n").unwrap();
        dir
    }

    fn check(text: &str) -> Result<(), ScenarioError> {
        let loaded = load_str(path(), text).unwrap_or_else(|e| panic!("does not load:\n{e}"));
        validate(&loaded, Path::new("fixtures"))
    }

    fn problems(text: &str) -> String {
        match check(text) {
            Ok(()) => panic!("valid:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_example_is_valid() {
        let dir = fixtures();
        let loaded = load_str(path(), EXAMPLE).unwrap();
        validate(&loaded, dir.path()).unwrap();
    }

    #[test]
    fn the_shipped_scenarios_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(root.join("scenarios"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for f in files {
            let loaded = crate::scenario::load_file(&f).unwrap_or_else(|e| panic!("{e}"));
            validate(&loaded, &root.join("fixtures")).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn the_minimal_scenario_is_valid() {
        check(MINIMAL).unwrap();
    }

    #[test]
    fn every_valid_target_form_passes() {
        for target in [
            "immediate",
            "{ name: before-w2 }",
            "{ after_step: w1 }",
            "{ time: { at: \"2026-11-22T10:00:00Z\" } }",
            "{ time: { after_step: w2 } }",
            "{ time: { between: [w1, w2] } }",
            "{ lsn: { at: 0/3000060 } }",
            "{ lsn: { after_step: w1 } }",
            "{ xid: { at: 742 } }",
            "{ xid: { of_step: w2 } }",
        ] {
            let text = edit(MINIMAL, "target: latest", &format!("target: {target}"));
            let text = edit(
                &text,
                "  - write:\n",
                "  - restore_point: { id: rp, name: before-w2 }\n  - write:\n",
            );
            check(&text).unwrap_or_else(|e| panic!("{target}:\n{e}"));
        }
    }

    #[test]
    fn dangling_step_reference() {
        let text = edit(MINIMAL, "target: latest", "target: { after_step: w9 }");
        insta::assert_snapshot!("dangling_step_reference", problems(&text));
    }

    #[test]
    fn reference_to_a_step_that_is_not_a_write() {
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: { xid: { of_step: base } }",
        );
        insta::assert_snapshot!("reference_to_a_non_write_step", problems(&text));
    }

    #[test]
    fn between_in_wrong_order() {
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: { time: { between: [w2, w1] } }",
        );
        insta::assert_snapshot!("between_in_wrong_order", problems(&text));
    }

    #[test]
    fn target_before_the_first_backup() {
        let text = edit(
            MINIMAL,
            "  - base_backup: { id: base }\n  - write: { id: w1, table: events, own_segment: true }\n",
            "  - write: { id: w1, table: events, own_segment: true }\n  - base_backup: { id: base }\n",
        );
        let text = edit(
            &text,
            "target: latest",
            "target: { lsn: { after_step: w1 } }",
        );
        insta::assert_snapshot!("target_before_the_first_backup", problems(&text));
    }

    #[test]
    fn target_before_the_named_backup() {
        let text = edit(
            MINIMAL,
            "  - write:\n",
            "  - restore_point: { id: rp, name: before-w2 }\n  - base_backup: { id: late }\n  - write:\n",
        );
        let text = edit(
            &text,
            "target: latest",
            "target: { name: before-w2 }\n  backup: late",
        );
        insta::assert_snapshot!("target_before_the_named_backup", problems(&text));
    }

    #[test]
    fn exclusive_with_latest() {
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: latest\n  exclusive: true",
        );
        insta::assert_snapshot!("exclusive_with_latest", problems(&text));
    }

    #[test]
    fn fault_with_no_field() {
        let text = edit(MINIMAL, "recovery:", "  - fault: { id: f1 }\nrecovery:");
        insta::assert_snapshot!("fault_with_no_field", problems(&text));
    }

    #[test]
    fn fault_problems() {
        let text = edit(
            MINIMAL,
            "  - write: { id: w1",
            "  - fault: { id: f1, delete_wal: { holding_step: w2 } }\n  - fault: { id: f2, delete_wal: { segment: 00000001000000000000000a } }\n  - fault: { id: f3, delete_wal: {} }\n  - write: { id: w1",
        );
        insta::assert_snapshot!("fault_problems", problems(&text));
    }

    #[test]
    fn crash_and_archiving_fault_problems() {
        // After a crash only object-storage faults may follow; `last` needs a crash before it;
        // waits need archive_timeout or an error window; windows must fit the archive deadline.
        let text = edit(
            MINIMAL,
            "  - write: { id: w1",
            "  - fault: { id: tail, delete_wal: { last: 1 } }\n  - wait_archive_failure: { id: wf }\n  - fault: { id: window, object_store_errors: { error: slow_down, seconds: 60 } }\n  - wait_archived: { id: wa, write: w2 }\n  - fault: { id: boom, crash: sigkill }\n  - fault: { id: boom2, crash: immediate }\n  - fault: { id: z, delete_wal: { last: 0 } }\n  - write: { id: w1",
        );
        insta::assert_snapshot!("crash_and_archiving_fault_problems", problems(&text));
    }

    #[test]
    fn crash_then_tail_loss_is_valid() {
        let text = edit(
            MINIMAL,
            "      rows: 2\n",
            "      rows: 2\n  - fault: { id: boom, crash: immediate }\n  - fault: { id: tail, delete_wal: { last: 2 } }\n  - fault: { id: hole, delete_wal: { holding_step: w1 } }\n",
        );
        check(&text).unwrap();
        let text = edit(
            MINIMAL,
            "postgres: 17\n",
            "postgres: 17\nbackup: { archive_timeout_seconds: 0 }\n",
        );
        insta::assert_snapshot!("archive_timeout_zero", problems(&text));
    }

    #[test]
    fn amcheck_and_the_stale_index_fault() {
        let ok = edit(
            MINIMAL,
            "  recovered: {}\n",
            "  recovered:\n    amcheck: { findings: [events_sort_key, public.events] }\nverify: { amcheck: true }\n",
        );
        let ok = edit(
            &ok,
            "      rows: 2\n",
            "      rows: 2\n  - fault: { id: stale, stale_expression_index: { table: events } }\n",
        );
        check(&ok).unwrap();
        // The expectation without the check; relation names that are none, or twice; a table
        // that is not seeded, a table made stale twice, a stale index after a crash.
        let bad = edit(
            MINIMAL,
            "  recovered: {}\n",
            "  recovered:\n    amcheck: { findings: [a.b.c.d, x, x, .y] }\n",
        );
        let bad = edit(
            &bad,
            "      rows: 2\n",
            "      rows: 2\n  - fault: { id: s1, stale_expression_index: { table: evnts } }\n  - fault: { id: s2, stale_expression_index: { table: events } }\n  - fault: { id: s3, stale_expression_index: { table: events } }\n  - fault: { id: boom, crash: immediate }\n  - fault: { id: s4, stale_expression_index: { table: events } }\n",
        );
        let p = problems(&bad);
        for needle in [
            "`expect.recovered.amcheck` expects pg_amcheck findings, but `verify.amcheck` is off",
            "`a.b.c.d` is no relation name",
            "`.y` is no relation name",
            "`amcheck.findings` lists `x` twice",
            "`stale_expression_index` names table `evnts`, which is not one of the `seed_data.tables`",
            "did you mean `events`?",
            "table `events` already got a stale expression index at step `s2`",
            "step `s4` (fault) comes after the source crashed at step `boom`",
        ] {
            assert!(p.contains(needle), "{needle}\n{p}");
        }
        // Random targets get one amcheck each some day; not yet.
        let random = edit(
            MINIMAL,
            "  target: latest\n",
            "  target: random\n  count: 2\nverify: { amcheck: true }\n",
        );
        assert!(
            problems(&random)
                .contains("`verify.amcheck` is not supported with `target: random` yet"),
            "{}",
            problems(&random)
        );
    }

    #[test]
    fn parallelism_out_of_range() {
        let text = edit(
            MINIMAL,
            "postgres: 17\n",
            "postgres: 17\nbackup: { jobs: 0 }\n",
        );
        let text = edit(
            &text,
            "target: latest",
            "target: latest\n  wal_max_parallel: 33",
        );
        insta::assert_snapshot!("parallelism_out_of_range", problems(&text));
        for (jobs, parallel) in [(1, 1), (4, 8), (32, 32)] {
            let text = edit(
                MINIMAL,
                "postgres: 17\n",
                &format!("postgres: 17\nbackup: {{ jobs: {jobs} }}\n"),
            );
            let text = edit(
                &text,
                "target: latest",
                &format!("target: latest\n  wal_max_parallel: {parallel}"),
            );
            check(&text).unwrap_or_else(|e| panic!("{jobs}/{parallel}:\n{e}"));
        }
    }

    #[test]
    fn content_fault_problems() {
        let text = edit(
            MINIMAL,
            "steps:\n",
            "backup: { compression: none }\nsteps:\n  - fault: { id: f0, delete_backup: { step: base, part: info } }\n",
        );
        let text = edit(
            &text,
            "recovery:",
            "  - fault: { id: f1, corrupt_wal: { holding_step: w1, mode: undecompressable } }\n  - fault: { id: f2, corrupt_wal: { mode: crc } }\n  - fault: { id: f3, delete_backup: { step: w1, part: data } }\n  - fault: { id: f4, delete_backup: { step: bse, part: data } }\n  - fault: { id: f5, delete_history: { timeline: 1 } }\n  - failover: { id: fo }\n  - fault: { id: f6, delete_history: { timeline: 3 } }\n  - fault: { id: f7, delete_history: { timeline: 2 }, corrupt_wal: { segment: 000000010000000000000003, mode: crc } }\nrecovery:",
        );
        insta::assert_snapshot!("content_fault_problems", problems(&text));
        // The same faults, well formed, pass.
        let ok = edit(
            MINIMAL,
            "recovery:",
            "  - fault: { id: f1, corrupt_wal: { holding_step: w1, mode: undecompressable } }\n  - fault: { id: f2, corrupt_wal: { segment: 000000010000000000000003, mode: crc } }\n  - fault: { id: f3, delete_backup: { step: base, part: data } }\n  - failover: { id: fo }\n  - fault: { id: f4, delete_history: { timeline: 2 } }\nrecovery:",
        );
        check(&ok).unwrap();
    }

    #[test]
    fn write_to_unknown_table() {
        let text = edit(MINIMAL, "table: events, own", "table: event, own");
        insta::assert_snapshot!("write_to_unknown_table", problems(&text));
    }

    #[test]
    fn duplicate_step_id() {
        let text = edit(MINIMAL, "id: w2", "id: w1");
        insta::assert_snapshot!("duplicate_step_id", problems(&text));
    }

    #[test]
    fn bad_lsn() {
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: { lsn: { at: 3000060 } }",
        );
        insta::assert_snapshot!("bad_lsn", problems(&text));
    }

    #[test]
    fn several_values_for_one_target() {
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: { time: { after_step: w1, between: [w1, w2] } }",
        );
        insta::assert_snapshot!("several_values_for_one_target", problems(&text));
    }

    /// u64::MAX seed rows once validated, and planning the next write's row ids overflowed.
    #[test]
    fn seed_rows_are_bounded() {
        let text = edit(
            MINIMAL,
            "      rows: 10\n",
            "      rows: 18446744073709551615\n",
        );
        let p = problems(&text);
        assert!(
            p.starts_with(
                "scenarios/example.yaml:6:13: scenario `minimal`: a table is seeded with 0 to 10000000 rows"
            ),
            "{p}"
        );
        let text = edit(MINIMAL, "      rows: 10\n", "      rows: 10000000\n");
        check(&text).expect("at the limit");
    }

    #[test]
    fn bulk_tables_take_sizes_and_row_widths_in_range() {
        let bulk = edit(MINIMAL, "      rows: 10\n", "      size: 1GiB\n");
        check(&bulk).expect("a bulk table by size");
        let sized_write = edit(&bulk, "      rows: 2\n", "      size: 64MiB\n");
        check(&sized_write).expect("a bulk write by size");
        let text = edit(
            &sized_write,
            "      size: 64MiB\n",
            "      size: 64MiB\n      rows: 3\n",
        );
        assert!(
            problems(&text).contains("write `w2` sets both `rows` and `size`"),
            "{}",
            problems(&text)
        );
        let text = edit(
            &bulk,
            "      size: 1GiB\n",
            "      size: 1GiB\n      rows: 5\n",
        );
        assert!(problems(&text).contains("table `events` sets both `rows` and `size`"));
        let text = edit(
            &bulk,
            "      size: 1GiB\n",
            "      size: 1GiB\n      row_bytes: 16\n",
        );
        let p = problems(&text);
        assert!(
            p.contains(
                ":7:18: scenario `minimal`: `row_bytes` is 64 to 8192 payload bytes per row, not 16"
            ),
            "{p}"
        );
        let text = edit(&bulk, "      size: 1GiB\n", "      size: 65GiB\n");
        assert!(
            problems(&text).contains("1 byte to 64.0 GiB of payload, not 65.0 GiB"),
            "{}",
            problems(&text)
        );
        // `size` on a write needs a bulk table.
        let text = edit(MINIMAL, "      rows: 2\n", "      size: 1MiB\n");
        let p = problems(&text);
        assert!(p.contains(":13:13: scenario `minimal`, step `w2`: `size` needs a bulk table, and `events` is not one"), "{p}");
    }

    #[test]
    fn no_base_backup() {
        let text = edit(MINIMAL, "  - base_backup: { id: base }\n", "");
        insta::assert_snapshot!("no_base_backup", problems(&text));
    }

    /// Every rule that is not covered above, in one file: all problems are reported, in file
    /// order, each at its node.
    #[test]
    fn every_problem_is_collected() {
        let text = r#"name: Nightly PITR
tags: [pitr, ""]
postgres: 12
backup:
  server_name: "source cluster"
seed_data:
  tables:
    - name: Events
    - name: pgdrill_meta
    - name: audit
    - name: audit
  sql: ../outside.sql
steps:
  - base_backup: { id: seed }
  - write: { id: W1, table: audit, rows: 0 }
  - write: { id: w2, table: audit, rows: 2000000 }
  - restore_point: { id: rp1, name: "" }
  - restore_point: { id: rp2, name: here }
  - restore_point: { id: rp3, name: here }
recovery:
  target: { name: elsewhere }
  postgres: 19
  server_name: ""
  backup: w2
expect:
  recovered:
    rows: { events: 1, audti: 2 }
    data_loss: { rows: 2, steps: [w2, w2, rp1] }
    rto_budget_seconds: 0
timeouts:
  archive_seconds: 0
"#;
        insta::assert_snapshot!("every_problem_is_collected", problems(text));
    }

    #[test]
    fn random_targets_are_valid_with_a_count() {
        let text = edit(MINIMAL, "target: latest", "target: random\n  count: 6");
        check(&text).unwrap();
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: random\n  count: 32\n  parallel: true\n  exclusive: true\n  backup: base",
        );
        check(&text).unwrap();
    }

    #[test]
    fn random_target_problems() {
        let text = edit(MINIMAL, "target: latest", "target: random");
        insta::assert_snapshot!("random_without_count", problems(&text));
        let text = edit(MINIMAL, "target: latest", "target: random\n  count: 0");
        insta::assert_snapshot!("random_count_zero", problems(&text));
        let text = edit(MINIMAL, "target: latest", "target: random\n  count: 33");
        insta::assert_snapshot!("random_count_too_high", problems(&text));
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: latest\n  count: 3\n  parallel: true",
        );
        insta::assert_snapshot!("count_without_random", problems(&text));
        let text = edit(MINIMAL, "target: latest", "target: random\n  count: 3");
        let text = edit(
            &text,
            "recovered: {}",
            "recovered:\n    rows: { events: 13 }\n    data_loss: { rows: 1, steps: [w2] }",
        );
        insta::assert_snapshot!("random_with_rows_and_data_loss", problems(&text));
        let text = edit(MINIMAL, "target: latest", "target: random\n  count: 3");
        let text = edit(
            &text,
            "recovered: {}",
            "failed: { error_contains: \"FATAL\" }",
        );
        insta::assert_snapshot!("random_with_expect_failed", problems(&text));
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: random\n  count: 3\n  backup: late",
        );
        let text = format!(
            "{}  - base_backup: {{ id: late }}\n{}",
            &text[..text.find("recovery:").unwrap()],
            &text[text.find("recovery:").unwrap()..]
        );
        insta::assert_snapshot!("random_with_no_write_after_the_backup", problems(&text));
    }

    const RECOVERY_FAULTS: &str = "name: rf\npostgres: 15\nseed_data:\n  tables: [{ name: t, rows: 1 }]\nsteps:\n  - base_backup: { id: b1 }\n  - write: { id: w1, table: t }\n  - base_backup: { id: b2, crash_source: sigkill }\n  - write: { id: w2, table: t }\nrecovery:\n  target: latest\n";

    #[test]
    fn faults_during_backup_and_recovery_are_valid() {
        let ok = format!(
            "{RECOVERY_FAULTS}  object_store_errors: {{ error: slow_down, seconds: 40, from: {{ holding_step: w2 }} }}\nexpect:\n  recovered:\n    backup: b1\n    audit: {{ gaps: [], unusable_backups: [b2] }}\n"
        );
        check(&ok).unwrap_or_else(|e| panic!("{e}"));
        let restart = format!(
            "{RECOVERY_FAULTS}  restart: {{ after_step: w1, mode: immediate }}\nexpect:\n  recovered: {{ data_loss: none }}\n"
        );
        check(&restart).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn recovery_fault_problems() {
        let bad = RECOVERY_FAULTS.replace(
            "  - base_backup: { id: b1 }\n",
            "  - base_backup: { id: b1, crash_source: immediate }\n",
        ) + "  object_store_errors: { error: slow_down, seconds: 0, requests: backup_gets, from: { holding_step: w2 } }\n  restart: { after_step: b2 }\n  backup: b2\nexpect:\n  recovered:\n    backup: w1\n    audit: { gaps: [], unusable_backups: [b3] }\n";
        let p = problems(&bad);
        for want in [
            "every `base_backup` crashes the source in the middle",
            "an error window lasts 1 to 600 seconds, not 0",
            "`from` narrows reads of WAL only",
            "`restart.after_step` names `b2`, a `base_backup` step, not a `write` step",
            "one recovery fault at a time",
            "`recovery.backup` names `b2`, a base backup the source crashes in the middle of",
            "`expect.recovered.backup` names `w1`, a `write` step, not a `base_backup` step",
            "`audit.unusable_backups` names step `b3`, which does not exist",
        ] {
            assert!(p.contains(want), "missing {want:?} in:\n{p}");
        }
        insta::assert_snapshot!("recovery_fault_problems", p);
        let bad_from = format!(
            "{RECOVERY_FAULTS}  object_store_errors: {{ error: slow_down, seconds: 5, from: {{ segment: zz }} }}\n  restart: {{ after_step: w9 }}\nexpect:\n  recovered: {{ data_loss: none }}\n"
        );
        let p = problems(&bad_from);
        assert!(p.contains("`zz` is not a WAL segment file name"), "{p}");
        assert!(p.contains("names step `w9`, which does not exist"), "{p}");
        let no_failures = format!(
            "{RECOVERY_FAULTS}  object_store_errors: {{ error: slow_down, seconds: 5, failures: 0 }}\nexpect:\n  recovered: {{ data_loss: none }}\n"
        );
        let p = problems(&no_failures);
        assert!(
            p.contains(":12:66: scenario `rf`: `failures: 0` fails no request"),
            "{p}"
        );
        assert!(
            check(&no_failures.replace("failures: 0", "failures: 1")).is_ok(),
            "one failure is a blip"
        );
    }

    #[test]
    fn expect_failed_needs_text() {
        let text = edit(
            MINIMAL,
            "recovered: {}",
            "failed: { error_contains: \" \" }",
        );
        insta::assert_snapshot!("expect_failed_needs_text", problems(&text));
    }

    #[test]
    fn env_problems() {
        let text = format!(
            "{MINIMAL}env:\n  lower_case: x\n  AWS_SECRET_ACCESS_KEY: y\n  AWS_REQUEST_CHECKSUM_CALCULATION: when_required\n"
        );
        insta::assert_snapshot!("env_problems", problems(&text));
    }

    #[test]
    fn audit_gap_problems() {
        let text = edit(
            MINIMAL,
            "recovered: {}",
            "failed:\n    error_contains: x\n    audit:\n      gaps: [{ holding_step: nope }, { segment: 00000001000000000000000a }, {}, { segment: 000000010000000000000003 }, { segment: 000000010000000000000003 }]",
        );
        insta::assert_snapshot!("audit_gap_problems", problems(&text));
    }

    #[test]
    fn seed_sql_must_exist() {
        let text = edit(
            MINIMAL,
            "      rows: 10\n",
            "      rows: 10\n  sql: missing.sql\n",
        );
        insta::assert_snapshot!("seed_sql_must_exist", problems(&text));
        let text = edit(
            MINIMAL,
            "      rows: 10\n",
            "      rows: 10\n  sql: /etc/passwd\n",
        );
        insta::assert_snapshot!("seed_sql_must_be_relative", problems(&text));
    }

    #[test]
    fn problems_carry_scenario_and_step() {
        let text = edit(MINIMAL, "table: events, own", "table: nope, own");
        let e = check(&text).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        let p = &e.problems[0];
        assert_eq!(p.scenario.as_deref(), Some("minimal"));
        assert_eq!(p.step.as_deref(), Some("w1"));
        assert_eq!((p.line, p.column), (9, 29));
        assert!(p.hint.is_some());
    }

    #[test]
    fn azure_scenarios_refuse_what_only_the_s3_endpoint_can_do() {
        let azure = edit(MINIMAL, "recovery:\n", "object_store: azure\nrecovery:\n");
        check(&azure).unwrap();
        let sas = edit(
            MINIMAL,
            "recovery:\n",
            "object_store: { provider: azure, azure: { credentials: sas } }\nrecovery:\n",
        );
        check(&sas).unwrap();
        let e = problems(&edit(
            MINIMAL,
            "recovery:\n",
            "object_store: { provider: azure, latency_ms: 5, reject_checksum_headers: true }\nrecovery:\n",
        ));
        assert!(
            e.contains("`object_store.latency_ms` is an S3 endpoint behaviour"),
            "{e}"
        );
        assert!(e.contains("`object_store.reject_checksum_headers`"), "{e}");
        let e = problems(&edit(
            &azure,
            "  - write:\n      id: w2",
            "  - fault: { id: out, object_store_errors: { error: slow_down, seconds: 5 } }\n  - write:\n      id: w2",
        ));
        assert!(
            e.contains("`fault.object_store_errors` needs the embedded S3 endpoint"),
            "{e}"
        );
        assert!(
            e.contains("minimal") && e.contains("out"),
            "names scenario and step: {e}"
        );
        let e = problems(&edit(
            MINIMAL,
            "recovery:\n",
            "object_store: { azure: { credentials: sas } }\nrecovery:\n",
        ));
        assert!(e.contains("the provider is `s3`"), "{e}");
        let e = problems(&edit(
            MINIMAL,
            "recovery:\n",
            "env: { AZURE_STORAGE_KEY: x }\nrecovery:\n",
        ));
        assert!(e.contains("cannot set `AZURE_STORAGE_KEY`"), "{e}");
    }

    const LOGICAL: &str = "\
name: logical
postgres: 15
seed_data:
  tables:
    - { name: events, rows: 10 }
steps:
  - write: { id: w1, table: events }
  - logical_backup: { id: dump, in_flight: { id: wf, table: events } }
  - write: { id: w2, table: events }
recovery:
  method: logical
expect:
  recovered: {}
";

    #[test]
    fn a_logical_scenario_needs_no_base_backup() {
        check(LOGICAL).unwrap();
        let runbook = edit(
            LOGICAL,
            "  method: logical\n",
            "  command: ../fixtures/restore.sh\n  env: { RESTORE_JOBS: \"2\" }\n  timeout_seconds: 60\n",
        );
        check(&runbook).unwrap();
    }

    #[test]
    fn logical_recovery_refuses_a_target_other_than_latest() {
        let text = edit(
            LOGICAL,
            "  method: logical\n",
            "  method: logical\n  target: { time: { after_step: w1 } }\n",
        );
        let e = problems(&text);
        assert!(
            e.starts_with("scenarios/example.yaml:12:11: scenario `logical`"),
            "{e}"
        );
        assert!(e.contains("makes no sense for it"), "{e}");
        let e = problems(&edit(
            LOGICAL,
            "  method: logical\n",
            "  method: logical\n  wal_max_parallel: 4\n",
        ));
        assert!(
            e.contains("`recovery.wal_max_parallel` is for physical recovery"),
            "{e}"
        );
    }

    #[test]
    fn logical_recovery_needs_a_logical_backup_to_restore() {
        let text = edit(
            LOGICAL,
            "  - logical_backup: { id: dump, in_flight: { id: wf, table: events } }\n",
            "",
        );
        let e = problems(&text);
        assert!(
            e.contains("no `logical_backup` step: there is nothing to restore"),
            "{e}"
        );
        let e = problems(&edit(
            LOGICAL,
            "  method: logical\n",
            "  method: logical\n  backup: w1\n",
        ));
        assert!(e.contains("`w1` is not a `logical_backup` step"), "{e}");
        assert!(e.contains("name one of `dump`"), "{e}");
        let e = problems(&edit(
            LOGICAL,
            "  method: logical\n",
            "  method: logical\n  postgres: 14\n",
        ));
        assert!(
            e.contains("restores into the same or a newer major, not 14"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_misused_restore_command_is_named() {
        let e = problems(&edit(
            LOGICAL,
            "  method: logical\n",
            "  command: ../fixtures/nope.sh\n",
        ));
        assert!(
            e.contains("restore script `../fixtures/nope.sh` not found"),
            "{e}"
        );
        assert!(e.contains("relative to the scenario file"), "{e}");
        let e = problems(&edit(
            LOGICAL,
            "  method: logical\n",
            "  method: physical\n  command: ../fixtures/restore.sh\n",
        ));
        assert!(e.contains("`method: physical` does not"), "{e}");
        let e = problems(&edit(
            LOGICAL,
            "  method: logical\n",
            "  command: ../fixtures/shop.sql\n",
        ));
        assert!(e.contains("is not executable"), "{e}");
        let e = problems(&edit(
            MINIMAL,
            "  target: latest\n",
            "  target: latest\n  env: { X: y }\n  timeout_seconds: 5\n",
        ));
        assert!(
            e.contains("`recovery.env` is the environment of `recovery.command`"),
            "{e}"
        );
        assert!(
            e.contains("`recovery.timeout_seconds` is the deadline"),
            "{e}"
        );
        let e = problems(&edit(
            LOGICAL,
            "  method: logical\n",
            "  command: ../fixtures/restore.sh\n  env: { bad-name: x }\n  timeout_seconds: 0\n",
        ));
        assert!(
            e.contains("`bad-name` is not an environment variable name"),
            "{e}"
        );
        assert!(e.contains("1 to 3600, not 0"), "{e}");
    }

    #[test]
    fn logical_backup_steps_and_dump_faults_are_checked() {
        let e = problems(&edit(
            LOGICAL,
            "{ id: wf, table: events }",
            "{ id: w1, table: nope, rows: 0 }",
        ));
        assert!(e.contains("step id `w1` is already used"), "{e}");
        assert!(e.contains("no table `nope`"), "{e}");
        assert!(e.contains("at least 1 row"), "{e}");
        let e = problems(&edit(
            LOGICAL,
            "{ id: dump,",
            "{ id: dump, database: \"Bad-Db\",",
        ));
        assert!(e.contains("`Bad-Db` is not a database name"), "{e}");
        let text = edit(
            LOGICAL,
            "  - write: { id: w2, table: events }\n",
            "  - fault: { id: f1, truncate_dump: { step: w1 } }\n  - fault: { id: f2, delete_dump: { step: dump } }\n",
        );
        let e = problems(&text);
        assert!(
            e.contains("`w1` is not a `logical_backup` step before this fault"),
            "{e}"
        );
        assert!(e.contains("step `f1`"), "{e}");
        assert!(!e.contains("step `f2`"), "{e}");
    }
}
