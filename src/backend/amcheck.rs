//! `pg_amcheck` after recovery, the pure part: the options pgdrill runs it with, the parser of
//! its report into typed findings (relation, block, offset, message), and the comparison of
//! findings with the relations a scenario expects. Never runs a process or opens a connection;
//! never sees a password (backends pass those in the environment, never on the command line).

use serde::{Deserialize, Serialize};

/// The checks pgdrill asks for, every one of them sensible on a freshly promoted instance:
/// heap pages and B-tree indexes of every connectable database, each index's tuples matched
/// against its table's heap (`--heapallindexed`), parent/child invariants and a search from the
/// root for every leaf tuple (`--parent-check --rootdescend`, which take a ShareLock: nothing
/// else writes there yet), the amcheck extension installed where it is missing.
pub const OPTIONS: [&str; 5] = [
    "--all",
    "--install-missing",
    "--heapallindexed",
    "--parent-check",
    "--rootdescend",
];

/// The kind of relation a finding is about, as `pg_amcheck` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// `heap table "db.schema.table", block B, offset O[, attribute A]:`
    HeapTable,
    /// `btree index "db.schema.index":`
    BtreeIndex,
}

impl RelationKind {
    pub fn label(self) -> &'static str {
        match self {
            RelationKind::HeapTable => "heap table",
            RelationKind::BtreeIndex => "btree index",
        }
    }
}

/// One corruption `pg_amcheck` reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: RelationKind,
    pub database: String,
    pub schema: String,
    /// The table or index name, unqualified.
    pub relation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<u32>,
    /// The first line of what it said, without an `ERROR:` prefix.
    pub message: String,
    /// Further lines (`DETAIL:`, `HINT:`), as printed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
}

impl Finding {
    /// `schema.relation`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.relation)
    }

    /// Whether a scenario's name for a relation names this finding's: `relation`,
    /// `schema.relation` or `database.schema.relation`.
    pub fn is_named(&self, name: &str) -> bool {
        name == self.relation
            || name == self.qualified()
            || name == format!("{}.{}", self.database, self.qualified())
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}.{}",
            self.kind.label(),
            self.database,
            self.qualified()
        )?;
        if let Some(b) = self.block {
            write!(f, ", block {b}")?;
        }
        if let Some(o) = self.offset {
            write!(f, ", offset {o}")?;
        }
        if let Some(a) = self.attribute {
            write!(f, ", attribute {a}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// `pg_amcheck`'s standard output, read: the findings, and any line that is neither a finding's
/// header nor its indented text (kept, never dropped: an unknown line is a reason to look).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub findings: Vec<Finding>,
    pub unparsed: Vec<String>,
}

/// Parse `pg_amcheck`'s report (its standard output).
pub fn parse(stdout: &str) -> Parsed {
    let mut out = Parsed::default();
    // The header of the finding being read, and its text lines so far.
    let mut current: Option<(Header, Vec<String>)> = None;
    let flush = |current: &mut Option<(Header, Vec<String>)>, out: &mut Parsed| {
        if let Some((h, lines)) = current.take() {
            out.findings.push(h.finding(lines));
        }
    };
    for line in stdout.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(text) = line.strip_prefix("    ") {
            match &mut current {
                Some((_, lines)) => lines.push(text.trim().to_string()),
                None => out.unparsed.push(line.to_string()),
            }
            continue;
        }
        flush(&mut current, &mut out);
        match Header::parse(line) {
            Some(h) => current = Some((h, Vec::new())),
            None => out.unparsed.push(line.to_string()),
        }
    }
    flush(&mut current, &mut out);
    out
}

/// A finding's header line, e.g. `heap table "db.public.t", block 0, offset 3:`.
struct Header {
    kind: RelationKind,
    database: String,
    schema: String,
    relation: String,
    block: Option<u64>,
    offset: Option<u32>,
    attribute: Option<u32>,
}

impl Header {
    fn parse(line: &str) -> Option<Header> {
        let line = line.strip_suffix(':')?;
        let (kind, rest) = [RelationKind::HeapTable, RelationKind::BtreeIndex]
            .into_iter()
            .find_map(|k| Some((k, line.strip_prefix(k.label())?.strip_prefix(" \"")?)))?;
        let (name, rest) = rest.split_once('"')?;
        let mut parts = name.splitn(3, '.');
        let (database, schema, relation) = (parts.next()?, parts.next()?, parts.next()?);
        let mut h = Header {
            kind,
            database: database.to_string(),
            schema: schema.to_string(),
            relation: relation.to_string(),
            block: None,
            offset: None,
            attribute: None,
        };
        for part in rest.split(", ").filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once(' ')?;
            match key {
                "block" => h.block = Some(value.parse().ok()?),
                "offset" => h.offset = Some(value.parse().ok()?),
                "attribute" => h.attribute = Some(value.parse().ok()?),
                _ => return None,
            }
        }
        Some(h)
    }

    fn finding(self, lines: Vec<String>) -> Finding {
        let mut lines = lines.into_iter();
        let first = lines.next().unwrap_or_default();
        let message = first
            .strip_prefix("ERROR:")
            .map_or(first.as_str(), str::trim_start)
            .to_string();
        Finding {
            kind: self.kind,
            database: self.database,
            schema: self.schema,
            relation: self.relation,
            block: self.block,
            offset: self.offset,
            attribute: self.attribute,
            message,
            detail: lines.collect(),
        }
    }
}

/// One run of `pg_amcheck` against a recovered instance, as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmcheckRun {
    /// The binary's `--version` line, e.g. `pg_amcheck (PostgreSQL) 15.15`.
    pub tool: String,
    /// The options it ran with (never a password or a connection string).
    pub options: Vec<String>,
    pub exit_code: i32,
    pub seconds: f64,
    pub findings: Vec<Finding>,
    /// Output lines that are no finding pgdrill knows how to read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unparsed: Vec<String>,
}

impl AmcheckRun {
    /// From the process's exit code and standard output.
    pub fn from_output(
        tool: String,
        options: Vec<String>,
        exit_code: i32,
        seconds: f64,
        stdout: &str,
    ) -> AmcheckRun {
        let Parsed { findings, unparsed } = parse(stdout);
        AmcheckRun {
            tool,
            options,
            exit_code,
            seconds,
            findings,
            unparsed,
        }
    }

    /// Relations with findings, qualified (`schema.relation`), each once, in report order.
    pub fn relations(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for f in &self.findings {
            let q = f.qualified();
            if !seen.contains(&q) {
                seen.push(q);
            }
        }
        seen
    }

    /// One line for step logs and reports.
    pub fn summary(&self) -> String {
        if self.findings.is_empty() && self.exit_code == 0 {
            return format!("pg_amcheck found no corruption ({:.1}s)", self.seconds);
        }
        let mut s = format!(
            "pg_amcheck reported {} finding(s) in {}",
            self.findings.len(),
            self.relations().join(", ")
        );
        if let Some(first) = self.findings.first() {
            s.push_str(&format!(": {first}"));
        }
        if !self.unparsed.is_empty() {
            s.push_str(&format!(" ({} unparsed line(s))", self.unparsed.len()));
        }
        s
    }
}

/// What came of the integrity check a drill or game day asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AmcheckOutcome {
    Ran(AmcheckRun),
    /// It could not run, and why (`no pg_amcheck for PostgreSQL 16`), said honestly rather
    /// than counted as clean.
    NotRun {
        why: String,
    },
}

impl AmcheckOutcome {
    /// One line for reports: the tool, how many findings in which relations, how long; or
    /// why it did not run.
    pub fn headline(&self) -> String {
        match self {
            AmcheckOutcome::NotRun { why } => format!("not run: {why}"),
            AmcheckOutcome::Ran(run) if run.findings.is_empty() => format!(
                "{}: no corruption found in heap pages or B-tree indexes ({:.1} s)",
                run.tool, run.seconds
            ),
            AmcheckOutcome::Ran(run) => format!(
                "{}: {} finding(s) in {} ({:.1} s); row verification cannot see these",
                run.tool,
                run.findings.len(),
                run.relations().join(", "),
                run.seconds
            ),
        }
    }

    /// Each finding on one line, at most `max`, then a count of the rest; then any line that
    /// was no finding.
    pub fn finding_lines(&self, max: usize) -> Vec<String> {
        let AmcheckOutcome::Ran(run) = self else {
            return Vec::new();
        };
        let mut lines: Vec<String> = run
            .findings
            .iter()
            .take(max)
            .map(ToString::to_string)
            .collect();
        if run.findings.len() > max {
            lines.push(format!(
                "… and {} more finding(s)",
                run.findings.len() - max
            ));
        }
        lines.extend(run.unparsed.iter().map(|l| format!("unparsed: {l}")));
        lines
    }

    /// The number of findings, or `not_run` (a JUnit property, a metrics-friendly value).
    pub fn findings_label(&self) -> String {
        match self {
            AmcheckOutcome::Ran(run) => run.findings.len().to_string(),
            AmcheckOutcome::NotRun { .. } => "not_run".to_string(),
        }
    }
}

/// Why the findings of `run` do not match a scenario's expected relations (`expected`:
/// relation names; empty: a clean instance): one sentence per mismatch, empty when they match.
/// `pg_amcheck` failing to check (exit code 1) or printing lines that are no finding is a
/// mismatch too: an unchecked instance is no clean one.
pub fn unmet(run: &AmcheckRun, expected: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    // One line per unexpected relation: a corrupt heap can yield thousands of findings.
    let mut said: Vec<(RelationKind, &str, String)> = Vec::new();
    for f in &run.findings {
        let key = (f.kind, f.database.as_str(), f.qualified());
        if expected.iter().any(|name| f.is_named(name)) || said.contains(&key) {
            continue;
        }
        let more = run
            .findings
            .iter()
            .filter(|g| (g.kind, g.database.as_str(), g.qualified()) == key)
            .count()
            - 1;
        let more = if more > 0 {
            format!(" (and {more} more there)")
        } else {
            String::new()
        };
        out.push(format!("amcheck: unexpected corruption in {f}{more}"));
        said.push(key);
    }
    for name in expected {
        if !run.findings.iter().any(|f| f.is_named(name)) {
            out.push(format!(
                "amcheck: expected findings in `{name}`, pg_amcheck reported none there"
            ));
        }
    }
    if let Some(first) = run.unparsed.first() {
        out.push(format!(
            "amcheck: pg_amcheck printed {} line(s) that are no finding pgdrill can read, first: {first}",
            run.unparsed.len()
        ));
    }
    match run.exit_code {
        0 => {}
        2 if !run.findings.is_empty() || !run.unparsed.is_empty() => {}
        2 => out.push(
            "amcheck: pg_amcheck exited with code 2 (corruption) but printed no finding".into(),
        ),
        code => out.push(format!(
            "amcheck: pg_amcheck exited with code {code}: some relations were not checked"
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from PostgreSQL 15.15's pg_amcheck with pgdrill's options, against an instance
    /// with a stale expression index (`orders_sort_key`), a B-tree leaf with two keys swapped
    /// (`bt_id`) and a heap page with a misaligned line pointer and a future xmin (`heapy`).
    const MIXED: &str = include_str!("fixtures/amcheck/pg15_index_and_heap.txt");
    /// Captured likewise: the stale expression index alone, as the shipped scenario makes it.
    const STALE: &str = include_str!("fixtures/amcheck/pg15_stale_expression_index.txt");

    fn run(stdout: &str, exit_code: i32) -> AmcheckRun {
        AmcheckRun::from_output(
            "pg_amcheck (PostgreSQL) 15.15".into(),
            vec![],
            exit_code,
            1.0,
            stdout,
        )
    }

    #[test]
    fn parses_captured_index_and_heap_findings() {
        let p = parse(MIXED);
        assert!(p.unparsed.is_empty(), "{:?}", p.unparsed);
        assert_eq!(p.findings.len(), 4);
        let stale = &p.findings[0];
        assert_eq!(
            (
                stale.kind,
                stale.database.as_str(),
                stale.schema.as_str(),
                stale.relation.as_str()
            ),
            (
                RelationKind::BtreeIndex,
                "postgres",
                "public",
                "orders_sort_key"
            )
        );
        assert_eq!(
            stale.message,
            "heap tuple (0,1) from table \"orders\" lacks matching index tuple within index \"orders_sort_key\""
        );
        assert_eq!((stale.block, stale.offset), (None, None));
        let swapped = &p.findings[1];
        assert_eq!(swapped.relation, "bt_id");
        assert_eq!(
            swapped.message,
            "could not find tuple using search from root page in index \"bt_id\""
        );
        assert_eq!(
            swapped.detail,
            vec!["DETAIL:  Index tid=(1,5) points to heap tid=(0,5) page lsn=0/181E0C8."]
        );
        let heap = &p.findings[2];
        assert_eq!(
            (heap.kind, heap.relation.as_str(), heap.block, heap.offset),
            (RelationKind::HeapTable, "heapy", Some(0), Some(3))
        );
        assert_eq!(
            heap.message,
            "line pointer to page offset 8190 is not maximally aligned"
        );
        assert_eq!(p.findings[3].offset, Some(5));
        assert!(
            p.findings[3]
                .message
                .starts_with("xmin 4294967280 precedes")
        );
    }

    #[test]
    fn headers_with_attributes_and_dotted_names() {
        let p = parse(
            "heap table \"app.db.pg_toast.pg_toast_16384\", block 7, offset 2, attribute 1:\n    toast value 16390 not found in toast table\n",
        );
        // The database is the first part; the relation keeps no dots of its own.
        let f = &p.findings[0];
        assert_eq!((f.database.as_str(), f.schema.as_str()), ("app", "db"));
        assert_eq!(f.relation, "pg_toast.pg_toast_16384");
        assert_eq!(
            (f.block, f.offset, f.attribute),
            (Some(7), Some(2), Some(1))
        );
    }

    #[test]
    fn unknown_lines_are_kept_not_dropped() {
        let p = parse("gist index \"db.public.g\":\n    something\nstray\n");
        assert!(p.findings.is_empty());
        assert_eq!(
            p.unparsed,
            vec!["gist index \"db.public.g\":", "    something", "stray"]
        );
        assert_eq!(parse(""), Parsed::default());
    }

    #[test]
    fn names_match_bare_schema_or_database_qualified() {
        let f = &parse(STALE).findings[0];
        for name in [
            "orders_sort_key",
            "public.orders_sort_key",
            "postgres.public.orders_sort_key",
        ] {
            assert!(f.is_named(name), "{name}");
        }
        for name in ["orders", "other.orders_sort_key", "sort_key"] {
            assert!(!f.is_named(name), "{name}");
        }
    }

    #[test]
    fn expected_findings_meet_and_unexpected_ones_do_not() {
        let stale = run(STALE, 2);
        assert!(unmet(&stale, &["orders_sort_key".into()]).is_empty());
        let u = unmet(&stale, &[]);
        assert_eq!(u.len(), 1);
        assert!(
            u[0].starts_with(
                "amcheck: unexpected corruption in btree index postgres.public.orders_sort_key"
            ),
            "{u:?}"
        );
        let clean = run("", 0);
        assert!(unmet(&clean, &[]).is_empty());
        assert_eq!(
            unmet(&clean, &["orders_sort_key".into()]),
            vec!["amcheck: expected findings in `orders_sort_key`, pg_amcheck reported none there"]
        );
        // Two findings in one heap collapse into one line; the index keeps its own.
        let mixed = run(MIXED, 2);
        let u = unmet(&mixed, &["bt_id".into()]);
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(u[0].contains("orders_sort_key: heap tuple (0,1)"), "{u:?}");
        assert!(
            u[1].contains("postgres.public.heapy, block 0, offset 3: line pointer")
                && u[1].ends_with("(and 1 more there)"),
            "{u:?}"
        );
    }

    #[test]
    fn a_check_that_did_not_finish_is_not_clean() {
        let failed = run("", 1);
        assert_eq!(
            unmet(&failed, &[]),
            vec!["amcheck: pg_amcheck exited with code 1: some relations were not checked"]
        );
        let odd = run("stray\n", 0);
        assert_eq!(unmet(&odd, &[]).len(), 1);
        assert_eq!(unmet(&run("", 2), &[]).len(), 1);
    }

    #[test]
    fn headlines_and_lines() {
        let not = AmcheckOutcome::NotRun {
            why: "no pg_amcheck for PostgreSQL 16".into(),
        };
        assert_eq!(not.headline(), "not run: no pg_amcheck for PostgreSQL 16");
        assert_eq!(not.findings_label(), "not_run");
        assert!(not.finding_lines(5).is_empty());
        let mixed = AmcheckOutcome::Ran(run(MIXED, 2));
        assert_eq!(
            mixed.headline(),
            "pg_amcheck (PostgreSQL) 15.15: 4 finding(s) in public.orders_sort_key, public.bt_id, public.heapy (1.0 s); row verification cannot see these"
        );
        assert_eq!(mixed.findings_label(), "4");
        let lines = mixed.finding_lines(2);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[2], "… and 2 more finding(s)");
        assert_eq!(
            AmcheckOutcome::Ran(run("", 0)).headline(),
            "pg_amcheck (PostgreSQL) 15.15: no corruption found in heap pages or B-tree indexes (1.0 s)"
        );
    }

    #[test]
    fn summaries() {
        assert_eq!(
            run("", 0).summary(),
            "pg_amcheck found no corruption (1.0s)"
        );
        let s = run(MIXED, 2).summary();
        assert!(
            s.starts_with("pg_amcheck reported 4 finding(s) in public.orders_sort_key, public.bt_id, public.heapy: btree index postgres.public.orders_sort_key: heap tuple (0,1)"),
            "{s}"
        );
    }
}
