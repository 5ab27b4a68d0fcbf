//! Reads scenario YAML into the model, turning YAML and serde errors into located problems
//! (`file:line:column`, scenario name, step id) with a rewritten message and a hint.
//!
//! Steps, targets and expectations are one-key maps (`- write: { ... }`), which `yaml_serde`
//! only reads through `with::singleton_map_recursive`; loading always goes through it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::limits;
use super::model::Scenario;
use super::span::{Mark, SpanIndex, step_index};

/// One thing wrong with a scenario file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (the file could not be read).
    pub line: usize,
    /// 1-based; 0 when the problem has no position.
    pub column: usize,
    /// The scenario's `name`, when the file says it.
    pub scenario: Option<String>,
    /// The id of the step the problem is in, if it is inside one.
    pub step: Option<String>,
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    /// `FILE:LINE:COLUMN: scenario `NAME`, step `ID`: MESSAGE`, then `  hint: ...` on its
    /// own line when there is a hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        match (&self.scenario, &self.step) {
            (Some(s), Some(st)) => write!(f, "scenario `{s}`, step `{st}`: ")?,
            (Some(s), None) => write!(f, "scenario `{s}`: ")?,
            (None, Some(st)) => write!(f, "step `{st}`: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Everything wrong with one scenario file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub problems: Vec<Problem>,
}

impl ScenarioError {
    /// Sorts the problems by position, keeping the check order for equal positions.
    pub fn new(mut problems: Vec<Problem>) -> ScenarioError {
        problems.sort_by_key(|p| (p.file.clone(), p.line, p.column));
        ScenarioError { problems }
    }
}

impl fmt::Display for ScenarioError {
    /// Every problem, one after the other (see [`Problem`]'s `Display`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return f.write_str("invalid scenario");
        }
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub path: PathBuf,
    pub text: String,
    pub scenario: Scenario,
}

/// A refusal of `limits.rs` as the problem of the file `path`.
fn refused(path: &Path, r: limits::Refusal) -> ScenarioError {
    ScenarioError::new(vec![Problem {
        file: path.to_path_buf(),
        line: r.line,
        column: r.column,
        scenario: None,
        step: None,
        message: r.message,
        hint: r.hint,
    }])
}

/// Refuses `text`, the `what` (`game-day file`) at `path`, over the size or nesting limits
/// of `limits.rs`.
pub fn check_limits(path: &Path, text: &str, what: &str) -> Result<(), ScenarioError> {
    limits::check(text, what).map_err(|r| refused(path, r))
}

/// Reads the `what` at `path`, at most `limits::MAX_FILE_BYTES` of it, as UTF-8.
pub fn read_bounded(path: &Path, what: &str) -> Result<String, ScenarioError> {
    limits::read_bounded(path, what).map_err(|r| refused(path, r))
}

/// Parse `text` as the scenario file `path` (used only in problems), after the size and
/// nesting limits (`limits.rs`).
pub fn load_str(path: &Path, text: &str) -> Result<LoadedScenario, ScenarioError> {
    check_limits(path, text, "scenario file")?;
    let de = yaml_serde::Deserializer::from_str(text);
    let scenario: Scenario = yaml_serde::with::singleton_map_recursive::deserialize(de)
        .map_err(|e| ScenarioError::new(vec![problem_from_yaml_error(path, text, &e)]))?;
    Ok(LoadedScenario {
        path: path.to_path_buf(),
        text: text.to_string(),
        scenario,
    })
}

/// Read (at most `limits::MAX_FILE_BYTES`) and parse the scenario file at `path`.
pub fn load_file(path: &Path) -> Result<LoadedScenario, ScenarioError> {
    let text = read_bounded(path, "scenario file")?;
    load_str(path, &text)
}

/// The JSON Schema of a scenario file, for editors and `pgdrill schema`.
///
/// Enums appear as serde writes them (one-key objects), which is what scenario files use.
/// `data_loss` also accepts the word `none`, which the derived schema does not know.
pub fn json_schema() -> serde_json::Value {
    let mut v = schemars::schema_for!(Scenario).to_value();
    if let Some(def) = v.pointer_mut("/$defs/DataLoss") {
        let description = def.as_object_mut().and_then(|o| o.remove("description"));
        let object = def.take();
        let mut wrapped = serde_json::json!({ "anyOf": [ { "const": "none" }, object ] });
        if let Some(d) = description {
            wrapped["description"] = d;
        }
        *def = wrapped;
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Turning yaml_serde errors into problems.

/// What a serde / yaml_serde error message says, taken apart.
#[derive(Debug, PartialEq)]
enum Says<'a> {
    UnknownField {
        field: &'a str,
        allowed: Vec<&'a str>,
    },
    UnknownVariant {
        variant: &'a str,
        allowed: Vec<&'a str>,
    },
    MissingField(&'a str),
    DuplicateField(&'a str),
    InvalidType {
        found: &'a str,
        expected: &'a str,
    },
    InvalidValue {
        found: &'a str,
        expected: &'a str,
    },
    InvalidLength {
        found: &'a str,
        expected: &'a str,
    },
    Other(&'a str),
}

/// The names in backticks in `s`, in order.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The first name in backticks in `m`, and what follows it.
fn first_and_rest(m: &str) -> Option<(&str, &str)> {
    m.split_once('`')?.1.split_once('`')
}

fn parse_message(msg: &str) -> Says<'_> {
    if let Some(m) = msg.strip_prefix("unknown field ")
        && let Some((field, rest)) = first_and_rest(m)
    {
        return Says::UnknownField {
            field,
            allowed: backticked(rest),
        };
    }
    if let Some(m) = msg.strip_prefix("unknown variant ")
        && let Some((variant, rest)) = first_and_rest(m)
    {
        return Says::UnknownVariant {
            variant,
            allowed: backticked(rest),
        };
    }
    if let Some(m) = msg.strip_prefix("missing field ")
        && let Some((field, _)) = first_and_rest(m)
    {
        return Says::MissingField(field);
    }
    if let Some(m) = msg.strip_prefix("duplicate field ")
        && let Some((field, _)) = first_and_rest(m)
    {
        return Says::DuplicateField(field);
    }
    if let Some(m) = msg.strip_prefix("invalid type: ")
        && let Some((found, expected)) = m.rsplit_once(", expected ")
    {
        return Says::InvalidType { found, expected };
    }
    if let Some(m) = msg.strip_prefix("invalid value: ")
        && let Some((found, expected)) = m.rsplit_once(", expected ")
    {
        return Says::InvalidValue { found, expected };
    }
    if let Some(m) = msg.strip_prefix("invalid length ")
        && let Some((found, expected)) = m.rsplit_once(", expected ")
    {
        return Says::InvalidLength { found, expected };
    }
    Says::Other(msg)
}

/// Removes every ` at line N column M` / ` at position N` from a yaml_serde message: the
/// position goes in the problem's own fields.
fn strip_positions(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        let skip = position_len(after);
        if skip == 0 {
            out.push_str(" at ");
            rest = after;
        } else {
            rest = &after[skip..];
        }
    }
    out.push_str(rest);
    out
}

/// Length of a `line N column M` or `position N` prefix of `s`, 0 if there is none.
fn position_len(s: &str) -> usize {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    if let Some(r) = s.strip_prefix("line ") {
        let d = digits(r);
        if d > 0
            && let Some(r2) = r[d..].strip_prefix(" column ")
        {
            let d2 = digits(r2);
            if d2 > 0 {
                return s.len() - r2.len() + d2;
            }
        }
    } else if let Some(r) = s.strip_prefix("position ") {
        let d = digits(r);
        if d > 0 {
            return "position ".len() + d;
        }
    }
    0
}

/// Splits yaml_serde's `path: message` into the path and the message.
fn split_path(msg: &str) -> (Option<&str>, &str) {
    if let Some((p, m)) = msg.split_once(": ")
        && !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.[]?".contains(c))
    {
        return (Some(p), m);
    }
    (None, msg)
}

/// `steps[3].write.rows` → `steps[].write.rows`, to match paths against patterns.
pub(super) fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            c => out.push(c),
        }
    }
    out
}

/// Where a node is, in words: `at the top level`, `in a `write` step`,
/// `in `delete_wal` of a `fault` step`, `under `recovery.target``.
pub(super) fn where_is(path: &str) -> String {
    if path.is_empty() {
        return "at the top level".to_string();
    }
    if let Some(i) = step_index(path) {
        let inner = path.split_once(']').map(|x| x.1).unwrap_or("");
        let inner = inner.strip_prefix('.').unwrap_or(inner);
        return match inner.split_once('.') {
            None if inner.is_empty() => format!("in step {}", i + 1),
            None => format!("in a `{inner}` step"),
            Some((kind, rest)) => format!("in `{rest}` of a `{kind}` step"),
        };
    }
    format!("under `{path}`")
}

/// A node named for a message: `postgres`, `rows` in a `write` step, `recovery.target`.
pub(super) fn name_of(path: &str) -> String {
    if step_index(path).is_some() {
        let inner = path.split_once(']').map(|x| x.1).unwrap_or("");
        let inner = inner.strip_prefix('.').unwrap_or(inner);
        return match inner.split_once('.') {
            None if inner.is_empty() => where_is(path).replacen("in ", "", 1),
            None => format!("the `{inner}` step"),
            Some((kind, rest)) => format!("`{rest}` in a `{kind}` step"),
        };
    }
    if path.is_empty() {
        "the document".to_string()
    } else {
        format!("`{path}`")
    }
}

/// serde's name of an expected type, in scenario-author words.
fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "`true` or `false`".into(),
        "a sequence" => "a list".into(),
        "a map" => "a map".into(),
        "enum Step" => "a one-key map such as `write: { id: w1, table: events }`".into(),
        "enum Target" => {
            "`latest`, `immediate`, `random` or a one-key map such as `time: { after_step: w1 }`"
                .into()
        }
        "enum Expect" => "`recovered: {...}` or `failed: { error_contains: ... }`".into(),
        "enum Compression" => "one of `gzip`, `bzip2`, `snappy`, `none`".into(),
        _ => {
            if e.starts_with("struct ") {
                "a map".into()
            } else if let Some(n) = e.strip_prefix("an array of length ") {
                format!("a list of {n} items")
            } else if e.starts_with("enum ") {
                "one of the allowed values".into()
            } else {
                e.to_string()
            }
        }
    }
}

/// serde's description of what it found, in scenario-author words.
fn found_words(found: &str) -> String {
    let f = found.trim();
    let ticked = || backticked(f).first().map(|s| s.to_string());
    if let Some(s) = f.strip_prefix("string ") {
        return format!("the text {s}");
    }
    if f.starts_with("integer ") || f.starts_with("floating point ") {
        return ticked().map_or_else(|| f.to_string(), |n| format!("the number {n}"));
    }
    if f.starts_with("boolean ") {
        return ticked().map_or_else(|| f.to_string(), |b| format!("`{b}`"));
    }
    match f {
        "sequence" => "a list".into(),
        "map" => "a map".into(),
        "unit value" => "nothing (an empty value)".into(),
        "unit variant" => "a plain word".into(),
        "newtype variant" | "struct variant" => "a map".into(),
        _ => f.to_string(),
    }
}

/// Hints for wrongly typed nodes, by normalized path.
fn type_hint(norm: &str) -> Option<String> {
    let h = match norm {
        "steps" => {
            "`steps` is a list of one-key maps, e.g. `steps: [{ base_backup: { id: base } }]`"
        }
        "steps[]" => "each step is a one-key map, e.g. `- write: { id: w1, table: events }`",
        "recovery.target" => {
            "write `target: latest`, `target: immediate`, `target: random` (with `count`), or e.g. `target: { time: { after_step: w1 } }`"
        }
        "expect" => {
            "write `expect: { recovered: {} }` or `expect: { failed: { error_contains: \"...\" } }`"
        }
        "expect.recovered.data_loss" => {
            "write `data_loss: none` or `data_loss: { rows: 1, steps: [w3] }`"
        }
        "expect.recovered.rows" => "map table names to row counts, e.g. `rows: { events: 25 }`",
        "recovery.target.time.at" => {
            "use an RFC 3339 timestamp with a time zone, e.g. `2026-11-22T10:00:00Z`"
        }
        "recovery.target.lsn.at" => "write the LSN as text, e.g. `at: \"0/3000060\"`",
        "recovery.target.time.between" => {
            "name two write steps, the earlier first: `between: [w1, w2]`"
        }
        "tags" | "tags[]" => "tags are a list of words, e.g. `tags: [pitr, smoke]`",
        "backup.compression" => "one of `gzip`, `bzip2`, `snappy`, `none`",
        "postgres" | "recovery.postgres" => "a major version from 13 to 18, e.g. `17`",
        "steps[].write.rows" | "seed_data.tables[].rows" => "a row count, e.g. `rows: 10`",
        "steps[].write.size" | "seed_data.tables[].size" => {
            "an amount of data, e.g. `size: 512MiB`, `2GiB`, `64MB` or a number of bytes"
        }
        "steps[].write.own_segment" | "recovery.exclusive" => "write `true` or `false`",
        _ => return None,
    };
    Some(h.to_string())
}

/// An example line for a required key that is missing.
fn missing_hint(parent_norm: &str, field: &str, spans: &SpanIndex) -> String {
    let example = match (parent_norm, field) {
        ("", "name") => "name: my-drill".to_string(),
        ("", "postgres") => "postgres: 17".to_string(),
        ("", "steps") => "steps: [{ base_backup: { id: base } }]".to_string(),
        ("", "expect") => "expect: { recovered: {} }".to_string(),
        (p, "id") if p.starts_with("steps[]") => "id: <a unique step id>".to_string(),
        ("steps[].write", "table") => {
            let first = spans.scalar("seed_data.tables[0].name").unwrap_or("events");
            format!("table: {first}")
        }
        ("steps[].restore_point", "name") => "name: <restore point name>".to_string(),
        ("seed_data.tables[]", "name") => "name: <table name>".to_string(),
        ("expect.failed", "error_contains") => {
            "error_contains: \"<text the recovery error must contain>\"".to_string()
        }
        _ => format!("{field}: ..."),
    };
    format!("add `{example}`")
}

/// Levenshtein distance over chars.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    if a.is_ascii() && b.is_ascii() {
        return levenshtein(a.as_bytes(), b.as_bytes());
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    levenshtein(&a, &b)
}

/// Two rows, swapped, never reallocated: thousands of misspelt names measure thousands of
/// candidates.
fn levenshtein<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let n = b.len();
    let mut prev: Vec<usize> = (0..=n).collect();
    let mut cur = vec![0; n + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for j in 0..n {
            let sub = prev[j] + usize::from(*ca != b[j]);
            let del = prev[j + 1] + 1;
            let ins = cur[j] + 1;
            cur[j + 1] = if sub < del { sub } else { del }.min(ins);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[n]
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = (len / 3).max(2);
    candidates
        .into_iter()
        // The distance is at least the difference in length: candidates that cannot pass the
        // filter below are not measured (a 1 MiB unknown key once cost a second here).
        .filter(|c| {
            let gap = len.abs_diff(c.chars().count());
            gap <= limit && gap < c.chars().count().max(1)
        })
        .take(MAX_LISTED)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= limit && *d < c.chars().count().max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Most candidates [`closest`] measures, and most names [`list`] shows, with at most
/// [`MAX_LISTED_CHARS`] characters of each: a hostile file with thousands of names, each
/// misspelt once, would otherwise cost time and text quadratic in its size.
const MAX_LISTED: usize = 24;
const MAX_LISTED_CHARS: usize = 64;

/// `` `a`, `b` and `c` ``; past [`MAX_LISTED`] names, `` `a`, … `x` and 3 more ``.
pub(super) fn list(names: &[&str]) -> String {
    let ticked: Vec<String> = names
        .iter()
        .take(MAX_LISTED)
        .map(|n| match n.char_indices().nth(MAX_LISTED_CHARS) {
            Some((cut, _)) => format!("`{}…`", &n[..cut]),
            None => format!("`{n}`"),
        })
        .collect();
    let more = names.len() - ticked.len();
    match ticked.len() {
        0 => String::new(),
        _ if more > 0 => format!("{} and {more} more", ticked.join(", ")),
        1 => ticked[0].clone(),
        n => format!("{} and {}", ticked[..n - 1].join(", "), ticked[n - 1]),
    }
}

/// "did you mean `x`?", else the allowed names.
fn suggestion(word: &str, allowed: &[&str], what: &str) -> Option<String> {
    if let Some(c) = closest(word, allowed.iter().copied()) {
        Some(format!("did you mean `{c}`?"))
    } else if allowed.is_empty() {
        None
    } else {
        Some(format!("{what}: {}", list(allowed)))
    }
}

/// libyaml's `PROBLEM at line A column B, CONTEXT at line C column D`, without the problem's
/// position (the problem is located there) and with the context's as `(started at C:D)`.
fn syntax_message(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    let mut first = true;
    while let Some(i) = rest.find(" at ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        let skip = position_len(after);
        if skip == 0 {
            out.push_str(" at ");
        } else if !first {
            let pos = &after[..skip];
            let pos = pos
                .strip_prefix("line ")
                .map_or(pos.to_string(), |p| p.replacen(" column ", ":", 1));
            out.push_str(&format!(" (started at {pos})"));
        }
        first &= skip == 0;
        rest = &after[skip..];
    }
    out.push_str(rest);
    out
}

/// Message and hint for a YAML syntax error from libyaml.
fn syntax_problem(msg: &str) -> (String, String) {
    let hint = if msg.contains("mapping values are not allowed") {
        "a value that contains `: ` must be quoted, e.g. `error_contains: \"FATAL: could not\"`"
    } else if msg.contains("cannot start any token") || msg.contains("tab") {
        "YAML indents with spaces, never tabs; quote values that start with `@`, `` ` `` or `%`"
    } else if msg.contains("did not find expected") || msg.contains("could not find expected") {
        "check the indentation of this block and that every `[` and `{` is closed"
    } else {
        "check the indentation and quoting around this line"
    };
    (format!("YAML syntax error: {msg}"), hint.to_string())
}

/// Turns a yaml_serde error into a located problem with a clear message.
pub fn problem_from_yaml_error(file: &Path, text: &str, err: &yaml_serde::Error) -> Problem {
    let spans = SpanIndex::parse(text);
    let scenario = spans
        .scalar("name")
        .filter(|n| !n.trim().is_empty())
        .map(str::to_string);
    let location = err.location().map(|l| Mark {
        line: l.line(),
        column: l.column(),
    });
    let raw = strip_positions(&err.to_string());
    let (epath, msg) = split_path(&raw);
    let epath = epath.unwrap_or("");
    let norm = normalize(epath);

    let says = parse_message(msg);
    let mut at = location;
    // A syntax error has no path; serde's own messages win when yaml_serde stopped on one
    // before reaching the bad YAML.
    let (message, hint) = if !spans.is_complete()
        && epath.is_empty()
        && matches!(says, Says::Other(_))
    {
        let (m, h) = syntax_problem(&syntax_message(&err.to_string()));
        (m, Some(h))
    } else if spans.node("").is_none() {
        (
            "the file holds no scenario".to_string(),
            Some("a scenario needs at least `name`, `postgres`, `steps` and `expect`".to_string()),
        )
    } else {
        match says {
            Says::UnknownField { field, allowed } => {
                if let Some(n) = spans.node(&join(epath, field)) {
                    at = Some(n.key.unwrap_or(n.start));
                }
                (
                    format!("unknown key `{field}` {}", where_is(epath)),
                    suggestion(field, &allowed, "allowed keys"),
                )
            }
            Says::UnknownVariant { variant, allowed } => {
                if let Some(n) = spans.node(&join(epath, variant)) {
                    at = Some(n.key.unwrap_or(n.start));
                }
                let what = match norm.as_str() {
                    "steps[]" => "step kind".to_string(),
                    "recovery.target" => "recovery target".to_string(),
                    "expect" => "expectation".to_string(),
                    "backup.compression" => "compression".to_string(),
                    _ => format!("value for {}", name_of(epath)),
                };
                let choices = match norm.as_str() {
                    "steps[]" => "a step is one of",
                    "recovery.target" => "a target is one of",
                    _ => "allowed",
                };
                (
                    format!("unknown {what} `{variant}`"),
                    suggestion(variant, &allowed, choices),
                )
            }
            Says::MissingField(field) => (
                format!("missing key `{field}` {}", where_is(epath)),
                Some(missing_hint(&norm, field, &spans)),
            ),
            Says::DuplicateField(field) => {
                if let Some(m) = spans.repeated_key(&join(epath, field)) {
                    at = Some(m);
                }
                (
                    format!("key `{field}` appears twice {}", where_is(epath)),
                    Some("keep only one of them".to_string()),
                )
            }
            Says::InvalidType { found, expected }
                if found == "unit variant" && expected.ends_with(" variant") =>
            {
                let word = spans.scalar(epath).unwrap_or("this");
                let (message, example) = match norm.as_str() {
                    "steps[]" => (
                        format!("step `{word}` is missing its settings"),
                        format!("- {word}: {{ id: {word}1 }}"),
                    ),
                    "expect" => (
                        format!("expectation `{word}` is missing its settings"),
                        if word == "recovered" {
                            "recovered: {}".to_string()
                        } else {
                            "failed: { error_contains: \"...\" }".to_string()
                        },
                    ),
                    "recovery.target" => (
                        format!("recovery target `{word}` is missing its value"),
                        match word {
                            "time" => "target: { time: { after_step: w1 } }".to_string(),
                            "lsn" => "target: { lsn: { at: \"0/3000060\" } }".to_string(),
                            "xid" => "target: { xid: { of_step: w1 } }".to_string(),
                            "name" => "target: { name: before-w3 }".to_string(),
                            _ => format!("target: {{ {word}: w1 }}"),
                        },
                    ),
                    _ => (
                        format!("`{word}` {} is missing its value", where_is(epath)),
                        format!("{word}: ..."),
                    ),
                };
                (
                    message,
                    Some(format!("write it as a one-key map: `{example}`")),
                )
            }
            Says::InvalidType {
                expected: "unit variant",
                ..
            } => {
                let word = spans
                    .children(epath)
                    .first()
                    .and_then(|c| c.rsplit('.').next())
                    .unwrap_or("this");
                let (what, example) = match norm.as_str() {
                    "recovery.target" => ("recovery target", format!("target: {word}")),
                    "backup.compression" => ("compression", format!("compression: {word}")),
                    _ => ("value", word.to_string()),
                };
                (
                    format!("{what} `{word}` takes no settings"),
                    Some(format!("write just the word: `{example}`")),
                )
            }
            Says::InvalidValue { found, expected }
                if found.starts_with("integer ")
                    && expected_words(expected).starts_with("a whole number") =>
            {
                (
                    format!("{} is out of range: {}", name_of(epath), found_words(found)),
                    type_hint(&norm),
                )
            }
            Says::InvalidType { found, expected } | Says::InvalidValue { found, expected } => {
                let message = format!(
                    "{} must be {}, found {}",
                    name_of(epath),
                    expected_words(expected),
                    found_words(found)
                );
                (message, type_hint(&norm))
            }
            Says::InvalidLength { found, expected } => (
                format!(
                    "{} must be {}, found a list of {found}",
                    name_of(epath),
                    expected_words(expected)
                ),
                type_hint(&norm),
            ),
            Says::Other(m) => match m {
                "EOF while parsing a value" => (
                    "the file is empty".to_string(),
                    Some(
                        "a scenario needs at least `name`, `postgres`, `steps` and `expect`"
                            .to_string(),
                    ),
                ),
                _ if m.contains("more than one document") => (
                    "the file holds more than one YAML document".to_string(),
                    Some("keep one scenario per file: remove the second `---`".to_string()),
                ),
                _ if epath.is_empty() => (m.to_string(), None),
                _ => match spans.scalar(epath) {
                    Some(v) => (
                        format!("{} `{v}` is invalid: {m}", name_of(epath)),
                        type_hint(&norm),
                    ),
                    None => (format!("{}: {m}", name_of(epath)), type_hint(&norm)),
                },
            },
        }
    };
    let at = at.or_else(|| spans.locate(epath)).unwrap_or(Mark::START);
    let step = spans
        .step_at(at)
        .or_else(|| step_index(epath))
        .and_then(|i| spans.step_id(i))
        .map(str::to_string);
    Problem {
        file: file.to_path_buf(),
        line: at.line,
        column: at.column,
        scenario,
        step,
        message,
        hint,
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A complete scenario using every part of the format, with what each part means.
    pub(in crate::scenario) const EXAMPLE: &str = r#"# Point-in-time recovery to a moment between two commits: the first must survive,
# the second must be gone.
name: pitr-between-writes          # lowercase letters, digits, dashes; unique per run
description: >
  Recover to halfway between the commits of w1 and w2 and check that exactly
  the rows committed up to w1 come back.
tags: [pitr, smoke]                # select with `pgdrill run --filter pitr`
seed: 42                           # seeds every generated row payload
postgres: 17                       # major version of the source cluster (13 to 18)
backup:
  server_name: source              # barman serverName: a folder under the drill's prefix
  compression: gzip                # gzip, bzip2, snappy or none
seed_data:
  tables:                          # created by pgdrill: (id, step, payload)
    - name: events
      rows: 24                     # generated before the first step
    - name: audit                  # rows default to 0
  sql: schema.sql                  # run first; a file under the fixtures directory
steps:                             # run in order against the source cluster
  - write: { id: w0, table: events }          # one row, lands in the base backup
  - base_backup: { id: base }
  - write: { id: w1, table: events, rows: 10, own_segment: true }
  - checkpoint: { id: cp }
  - write:
      id: w2
      table: audit
      rows: 3
  - restore_point: { id: rp, name: before-w3 }  # usable as `target: { name: before-w3 }`
  - switch_wal: { id: sw }
  - write: { id: w3, table: events, own_segment: true }
  - fault:                                      # break the archive on purpose
      id: lose-w3
      delete_wal: { holding_step: w3 }          # or `segment: 000000010000000000000009`
recovery:
  target:                          # latest | immediate | time | lsn | xid | name | after_step
    time:
      between: [w1, w2]            # halfway between the two commit timestamps
  exclusive: false                 # true: stop just before the target instead of after it
  postgres: 17                     # major of the recovered cluster, default: the source's
  server_name: source-restored     # where the recovered cluster archives to
  backup: base                     # the base_backup step to restore from
expect:
  recovered:
    rows: { events: 35, audit: 0 } # 24 seed + w0 + w1's 10 rows; w2 is after the target
    data_loss: none                # the ledger and the recovered rows agree
    rto_budget_seconds: 120        # restore to promoted in at most two minutes
timeouts:
  archive_seconds: 60              # for a WAL segment to show up in the archive
  backup_seconds: 300              # for a base backup
  recovery_seconds: 300            # from restore start to a server answering queries
"#;

    /// The smallest useful scenario; bad inputs are edits of it.
    pub(in crate::scenario) const MINIMAL: &str = "\
name: minimal
postgres: 17
seed_data:
  tables:
    - name: events
      rows: 10
steps:
  - base_backup: { id: base }
  - write: { id: w1, table: events, own_segment: true }
  - write:
      id: w2
      table: events
      rows: 2
recovery:
  target: latest
expect:
  recovered: {}
";

    /// `text` with `from` replaced by `to`; panics if `from` is not there.
    pub(in crate::scenario) fn edit(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "`{from}` is not in the text");
        text.replacen(from, to, 1)
    }

    pub(in crate::scenario) fn path() -> &'static Path {
        Path::new("scenarios/example.yaml")
    }

    fn load_err(text: &str) -> String {
        match load_str(path(), text) {
            Ok(_) => panic!("loaded:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_size_that_is_no_amount_of_data_is_located_with_a_hint() {
        let text = edit(MINIMAL, "      rows: 10\n", "      size: lots\n");
        let e = load_err(&text);
        assert!(e.starts_with("scenarios/example.yaml:6:13: "), "{e}");
        assert!(e.contains("e.g. `size: 512MiB`"), "{e}");
        let text = edit(MINIMAL, "      rows: 10\n", "      size: 1.5GiB\n");
        let l = load_str(path(), &text).unwrap();
        assert_eq!(l.scenario.seed_data.tables[0].seed_rows(), 1_572_864);
    }

    #[test]
    fn the_example_loads_with_every_part() {
        use crate::scenario::{Compression, Step, Target};
        let l = load_str(path(), EXAMPLE).unwrap();
        let s = &l.scenario;
        assert_eq!(s.name, "pitr-between-writes");
        assert_eq!(s.tags, ["pitr", "smoke"]);
        assert_eq!(s.seed, 42);
        assert_eq!(s.backup.compression, Compression::Gzip);
        assert_eq!(s.seed_data.tables[1].rows, 0);
        assert_eq!(s.steps.len(), 9);
        assert!(matches!(&s.steps[2], Step::Write(w) if w.rows == Some(10) && w.own_segment));
        assert!(matches!(&s.steps[8], Step::Fault(f) if f.fault().is_some()));
        assert!(
            matches!(&s.recovery.target, Target::Time(t) if t.between == Some(["w1".into(), "w2".into()]))
        );
        assert_eq!(l.text, EXAMPLE);
    }

    #[test]
    fn every_target_form_loads() {
        use crate::scenario::Target;
        for (yaml, want) in [
            ("latest", Target::Latest),
            ("immediate", Target::Immediate),
            ("{ name: before-w3 }", Target::Name("before-w3".into())),
            ("{ after_step: w1 }", Target::AfterStep("w1".into())),
        ] {
            let text = edit(MINIMAL, "target: latest", &format!("target: {yaml}"));
            assert_eq!(
                load_str(path(), &text).unwrap().scenario.recovery.target,
                want
            );
        }
        for yaml in [
            "{ time: { at: \"2026-11-22T10:00:00Z\" } }",
            "{ time: { after_step: w1 } }",
            "{ lsn: { at: 0/3000060 } }",
            "{ lsn: { after_step: w1 } }",
            "{ xid: { at: 742 } }",
            "{ xid: { of_step: w1 } }",
        ] {
            let text = edit(MINIMAL, "target: latest", &format!("target: {yaml}"));
            load_str(path(), &text).unwrap();
        }
        let text = edit(
            MINIMAL,
            "recovered: {}",
            "failed: { error_contains: \"requested WAL segment\" }",
        );
        load_str(path(), &text).unwrap();
    }

    /// A typed form, when there is one, serialises (in plans) as the file wrote it.
    fn as_written(typed: Option<impl serde::Serialize>, spec: &impl serde::Serialize, yaml: &str) {
        if let Some(t) = typed {
            assert_eq!(
                serde_json::to_value(&t).unwrap(),
                serde_json::to_value(spec).unwrap(),
                "{yaml}"
            );
        }
    }

    /// Exactly one key makes a selector, which serialises (in plans) as the file wrote it.
    #[test]
    fn a_wal_selector_is_exactly_one_key() {
        use crate::scenario::{OneSegment, WalSelector, WalSelectorSpec};
        let seg = "000000010000000000000003";
        for (yaml, want) in [
            (
                format!("{{ segment: {seg} }}"),
                Some(WalSelector::One(OneSegment::Segment(seg.parse().unwrap()))),
            ),
            (
                "{ holding_step: w1 }".to_string(),
                Some(WalSelector::One(OneSegment::HoldingStep("w1".into()))),
            ),
            ("{ last: 2 }".to_string(), Some(WalSelector::Last(2))),
            ("{}".to_string(), None),
            ("{ last: 2, holding_step: w1 }".to_string(), None),
            (format!("{{ segment: {seg}, holding_step: w1 }}"), None),
            // Not a segment name (validation says so): no selector either.
            ("{ segment: 00000001000000000000000a }".to_string(), None),
        ] {
            let spec: WalSelectorSpec = yaml_serde::from_str(&yaml).unwrap();
            assert_eq!(spec.selector(), want, "{yaml}");
            as_written(want, &spec, &yaml);
        }
    }

    /// `corrupt_wal` names one segment, by a valid name or a write; its typed form serialises
    /// (in plans) as the file wrote it.
    #[test]
    fn corrupt_wal_names_one_segment() {
        use crate::scenario::{CorruptMode, CorruptWal, CorruptWalSpec, OneSegment};
        let seg = "000000010000000000000003";
        for (yaml, want) in [
            (
                format!("{{ segment: {seg}, mode: crc }}"),
                Some(CorruptWal {
                    segment: OneSegment::Segment(seg.parse().unwrap()),
                    mode: CorruptMode::Crc,
                }),
            ),
            (
                "{ holding_step: w2, mode: undecompressable }".to_string(),
                Some(CorruptWal {
                    segment: OneSegment::HoldingStep("w2".into()),
                    mode: CorruptMode::Undecompressable,
                }),
            ),
            ("{ mode: crc }".to_string(), None),
            (
                format!("{{ segment: {seg}, holding_step: w2, mode: crc }}"),
                None,
            ),
            (
                "{ segment: 00000001000000000000000a, mode: crc }".to_string(),
                None,
            ),
        ] {
            let spec: CorruptWalSpec = yaml_serde::from_str(&yaml).unwrap();
            assert_eq!(spec.corrupt_wal(), want, "{yaml}");
            as_written(want, &spec, &yaml);
        }
    }

    #[test]
    fn unknown_key_suggests_the_closest_one() {
        let text = edit(MINIMAL, "own_segment", "own_segement");
        insta::assert_snapshot!("unknown_key", load_err(&text));
    }

    #[test]
    fn unknown_top_level_key_lists_nothing_far_fetched() {
        let text = edit(MINIMAL, "postgres: 17\n", "postgres: 17\nretention: 7\n");
        insta::assert_snapshot!("unknown_top_level_key", load_err(&text));
    }

    #[test]
    fn wrong_type() {
        let text = edit(MINIMAL, "rows: 2", "rows: many");
        insta::assert_snapshot!("wrong_type", load_err(&text));
    }

    #[test]
    fn missing_field() {
        let text = edit(MINIMAL, "      table: events\n", "");
        insta::assert_snapshot!("missing_field", load_err(&text));
    }

    #[test]
    fn missing_top_level_field() {
        let text = edit(MINIMAL, "postgres: 17\n", "");
        insta::assert_snapshot!("missing_top_level_field", load_err(&text));
    }

    #[test]
    fn unknown_step_kind() {
        let text = edit(MINIMAL, "base_backup:", "base_bakup:");
        insta::assert_snapshot!("unknown_step_kind", load_err(&text));
    }

    #[test]
    fn step_without_settings() {
        let text = edit(
            MINIMAL,
            "  - base_backup: { id: base }\n",
            "  - base_backup: { id: base }\n  - checkpoint\n",
        );
        insta::assert_snapshot!("step_without_settings", load_err(&text));
    }

    #[test]
    fn unknown_target_kind() {
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: { tim: { after_step: w1 } }",
        );
        insta::assert_snapshot!("unknown_target_kind", load_err(&text));
    }

    #[test]
    fn between_needs_two_steps() {
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: { time: { between: [w1] } }",
        );
        insta::assert_snapshot!("between_needs_two_steps", load_err(&text));
    }

    #[test]
    fn bad_timestamp() {
        let text = edit(
            MINIMAL,
            "target: latest",
            "target: { time: { at: yesterday } }",
        );
        insta::assert_snapshot!("bad_timestamp", load_err(&text));
    }

    #[test]
    fn yaml_syntax_error() {
        let text = edit(
            MINIMAL,
            "{ id: w1, table: events, own_segment: true }",
            "{ id: w1, table: events",
        );
        insta::assert_snapshot!("yaml_syntax_error", load_err(&text));
    }

    #[test]
    fn empty_file() {
        insta::assert_snapshot!("empty_file", load_err(""));
    }

    #[test]
    fn unreadable_file() {
        let e = load_file(Path::new("/nonexistent/pgdrill/scenario.yaml")).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].line, 0);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/pgdrill/scenario.yaml: cannot read")
        );
    }

    #[test]
    fn problems_display_with_and_without_context() {
        let p = Problem {
            file: path().to_path_buf(),
            line: 3,
            column: 5,
            scenario: None,
            step: None,
            message: "m".into(),
            hint: None,
        };
        assert_eq!(p.to_string(), "scenarios/example.yaml:3:5: m");
        let p = Problem {
            step: Some("w1".into()),
            hint: Some("h".into()),
            ..p
        };
        assert_eq!(
            p.to_string(),
            "scenarios/example.yaml:3:5: step `w1`: m\n  hint: h"
        );
    }

    #[test]
    fn messages_are_taken_apart() {
        assert_eq!(
            parse_message("unknown field `x`, expected `a` or `b`"),
            Says::UnknownField {
                field: "x",
                allowed: vec!["a", "b"]
            }
        );
        assert_eq!(
            parse_message("unknown field `x`, there are no fields"),
            Says::UnknownField {
                field: "x",
                allowed: vec![]
            }
        );
        assert_eq!(
            strip_positions(
                "did not find expected key at line 3 column 5, while parsing a block mapping at line 1 column 1"
            ),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(
            split_path("steps[1].write: missing field `table`"),
            (Some("steps[1].write"), "missing field `table`")
        );
        assert_eq!(split_path("invalid type: map"), (None, "invalid type: map"));
        assert_eq!(
            closest("own_segement", ["id", "table", "rows", "own_segment"]),
            Some("own_segment")
        );
        assert_eq!(closest("retention", ["name", "seed", "steps"]), None);
        assert_eq!(closest(&"x".repeat(1 << 20), ["name", "xxxx"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(list(&["a", "b", "c"]), "`a`, `b` and `c`");
        let many: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(
            list(&many).ends_with("`t22`, `t23` and 76 more"),
            "{}",
            list(&many)
        );
        let long = "y".repeat(1000);
        assert_eq!(list(&[&long]), format!("`{}…`", "y".repeat(64)));
    }

    #[test]
    fn json_schema_describes_steps_and_faults() {
        let schema = json_schema();
        assert!(schema["properties"]["steps"].is_object());
        let text = schema.to_string();
        assert!(text.contains("\"delete_wal\""));
        let data_loss = &schema["$defs"]["DataLoss"];
        assert_eq!(data_loss["anyOf"][0]["const"], "none");
    }

    /// More shapes of serde and YAML errors, one snapshot: each message should say what is
    /// wrong in scenario words, at the right node.
    #[test]
    fn more_load_errors() {
        let cases = [
            ("recovered: {}", "recovered"),
            ("target: latest", "target: { latest: x }"),
            ("target: latest", "target: name"),
            ("  - base_backup: { id: base }\n", "  - 5\n"),
            ("postgres: 17", "postgres: 99999999999"),
            ("postgres: 17", "postgres: 17\npostgres: 16"),
            ("recovered: {}", "recovered: { data_loss: lots }"),
            ("recovered: {}", "recovered: {}\n---\nname: x"),
            ("own_segment: true", "own_segment: yes"),
            ("recovered: {}", "failed: {}"),
            (
                "  - base_backup: { id: base }\n",
                "  - fault: { id: f, delete_wal: { segmnt: x } }\n",
            ),
            ("      rows: 10\n", "      rows: 10\n  sqll: x\n"),
            ("name: minimal", "name: minimal\ndescription: \"a: b\"c\""),
        ];
        let mut out = String::new();
        for (from, to) in cases {
            out.push_str(&format!(
                "# {to:?}\n{}\n\n",
                load_err(&edit(MINIMAL, from, to))
            ));
        }
        insta::assert_snapshot!("more_load_errors", out);
    }
}
