//! `summary.md`: a human record of the run for a game-day log or a pull request, in plain
//! GitHub Markdown; never carries anything the events did not.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::audit::AuditVerdict;
use crate::backend::Rto;
use crate::runner::{Event, RecoveryObservation, ScenarioResult, Status, TargetResult};

use super::dir::write_file;
use super::record::{self, RunRecord};
use super::{ReportError, Reporter};

/// Writes `dir/summary.md` on `finish`.
#[derive(Debug)]
pub struct MarkdownReporter {
    path: PathBuf,
    run: RunRecord,
}

impl MarkdownReporter {
    /// The file name under the run directory.
    pub const FILE: &'static str = "summary.md";

    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(Self::FILE),
            run: RunRecord::default(),
        }
    }

    fn render(&self) -> Result<String, ReportError> {
        let info = self.run.info()?;
        let results = self.run.results();
        let unfinished = self.run.unfinished();
        let mut md = Md::default();

        md.line(format!("# pgdrill run {}", info.run_id));
        md.blank();
        md.line(format!("- **Result:** {}", self.run.totals().sentence()));
        md.line(format!("- **Backend:** {}", info.backend));
        md.line(format!("- **Started:** {}", time(info.started_at)));
        match self.run.finished() {
            Some((at, seconds)) => {
                md.line(format!("- **Finished:** {} ({seconds:.1} s)", time(at)))
            }
            None => md.line("- **Finished:** no, the run was interrupted"),
        }
        md.blank();
        md.line("| Scenario | Verdict | Target | Rows expected / observed | Lost | RTO (s) |");
        md.line("|---|---|---|---|---:|---:|");
        for r in &results {
            md.line(format!(
                "| {} | {} | {} | {} / {} | {} | {} |",
                cell(&r.scenario.name),
                record::verdict(&r.status),
                cell(&code(&r.recovery.recovery_target)),
                opt(r.outcome.rows_expected),
                opt(r.outcome.rows_observed),
                opt(record::rows_lost(r)),
                r.outcome
                    .rto
                    .as_ref()
                    .map_or_else(|| "–".to_string(), |t| format!("{:.1}", t.seconds)),
            ));
            for t in &r.targets {
                md.line(format!(
                    "| ↳ {} | {} | {} | {} / {} | {} | {} |",
                    cell(&format!("[{}/{}]", t.index, t.count)),
                    record::verdict(&t.status),
                    cell(&code(&t.target)),
                    opt(t.rows_expected),
                    opt(t.rows_observed),
                    opt(t.verification.as_ref().map(|v| v.rows_lost)),
                    t.rto
                        .as_ref()
                        .map_or_else(|| "–".to_string(), |x| format!("{:.1}", x.seconds)),
                ));
            }
        }
        for u in &unfinished {
            md.line(format!(
                "| {} | {} | | – / – | – | – |",
                cell(&u.name),
                u.verdict()
            ));
        }

        for r in &results {
            md.blank();
            scenario(&mut md, r);
        }
        if !unfinished.is_empty() {
            md.blank();
            md.line("## Not finished");
            md.blank();
            for u in &unfinished {
                md.line(format!("- **{}**: {}", u.name, u.sentence()));
            }
        }
        Ok(md.0)
    }
}

impl Reporter for MarkdownReporter {
    fn on_event(&mut self, event: &Event) -> Result<(), ReportError> {
        self.run.record(event);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        let md = self.render()?;
        write_file(&self.path, md.as_bytes())
    }
}

/// A Markdown document being written, line by line.
#[derive(Default)]
struct Md(String);

impl Md {
    fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }
}

/// One scenario's section.
fn scenario(md: &mut Md, r: &ScenarioResult) {
    verdict_section(md, r);
    details_section(md, r);
    outcome_lines(md, r);
    if let Some(a) = &r.recovery.audit {
        md.blank();
        audit_section(md, a);
    }
    item_section(md, "Faults", &record::fault_lines(r));
    if let Some((headline, findings)) = record::amcheck_lines(r) {
        md.blank();
        md.line("### Integrity after recovery (pg_amcheck)");
        md.blank();
        md.line(format!("- **amcheck:** {}", one_line(&headline)));
        for f in &findings {
            md.line(item(&format!("Finding: {f}")));
        }
    }
    if let Some((n, mean, max)) = record::archive_lag(r) {
        md.blank();
        md.line(format!(
            "- **Archive lag:** {n} wait(s), mean {mean:.2} s, max {max:.2} s"
        ));
    }
    if let Some((line, output)) = record::script_run(r) {
        md.blank();
        md.line(format!("- **Restore script:** {}", code(&line)));
        md.blank();
        md.line(fenced(output));
    }
    if let Some(rto) = &r.outcome.rto {
        md.blank();
        rto_section(md, rto);
    }
    data_loss_section(md, r);
    if !r.targets.is_empty() {
        md.blank();
        targets_section(md, r.scenario.seed, &r.targets);
    }
    item_section(md, "Kept resources", &r.kept);
}

/// The scenario's heading, description and verdict with its reasons.
fn verdict_section(md: &mut Md, r: &ScenarioResult) {
    md.line(format!(
        "## {}: {}",
        r.scenario.name,
        record::verdict(&r.status)
    ));
    md.blank();
    if !r.scenario.description.trim().is_empty() {
        md.line(r.scenario.description.trim());
        md.blank();
    }
    match &r.status {
        Status::Passed => md.line("**Verdict: PASSED.** Every expectation was met."),
        Status::Failed { reasons } => {
            md.line(format!(
                "**Verdict: FAILED{}.** Not what the scenario expects:",
                r.reason.map(|c| format!(" (`{c}`)")).unwrap_or_default()
            ));
            md.blank();
            for reason in reasons {
                md.line(item(reason));
            }
        }
        Status::Error { message } => {
            md.line(format!(
                "**Verdict: ERROR{}.** The harness or its infrastructure broke; \
                 this says nothing about recovery:",
                r.reason.map(|c| format!(" (`{c}`)")).unwrap_or_default()
            ));
            md.blank();
            md.line(fenced(message));
        }
    }
    md.blank();
}

/// The first lines of the details list: what ran, where, from which backup.
fn details_section(md: &mut Md, r: &ScenarioResult) {
    md.line("### Details");
    md.blank();
    md.line(format!(
        "- **Scenario file:** {}",
        code(&r.scenario.file.display().to_string())
    ));
    if !r.scenario.tags.is_empty() {
        let tags: Vec<String> = r.scenario.tags.iter().map(|t| code(t)).collect();
        md.line(format!("- **Tags:** {}", tags.join(", ")));
    }
    md.line(format!("- **Seed:** {}", r.scenario.seed));
    md.line(format!(
        "- **Started:** {}, took {:.1} s",
        time(r.scenario.started_at),
        r.scenario.seconds
    ));
    md.line(format!(
        "- **PostgreSQL:** {} → {}",
        r.servers.source_postgres.as_deref().unwrap_or("unknown"),
        r.servers
            .recovery_postgres
            .as_deref()
            .unwrap_or("not started")
    ));
    md.line(format!(
        "- **Server names:** {} → {}",
        code(&r.servers.server_name),
        code(&r.servers.recovery_server_name)
    ));
    md.line(format!(
        "- **Destination:** {}",
        code(&r.servers.destination)
    ));
    md.line(format!(
        "- **Base backup:** {}{}",
        match r.recovery.backup_id.as_deref() {
            Some(b) => code(b),
            None if !r.targets.is_empty() => "one per target (below)".to_string(),
            None => "none".to_string(),
        },
        r.recovery
            .backup_step
            .as_deref()
            .map_or(String::new(), |s| format!(" (step {})", code(s)))
    ));
    if let Some(f) = &r.recovery.backup_fallback {
        md.line(format!("- **Backup fallback:** {}", one_line(f)));
    }
}

/// The rest of the details list: target, expected and observed outcome, rows, RPO.
fn outcome_lines(md: &mut Md, r: &ScenarioResult) {
    match &r.recovery.resolved_target {
        Some(resolved) if *resolved != r.recovery.recovery_target => md.line(format!(
            "- **Recovery target:** {}, resolved to {}",
            code(&r.recovery.recovery_target),
            code(resolved)
        )),
        Some(_) => md.line(format!(
            "- **Recovery target:** {}",
            code(&r.recovery.recovery_target)
        )),
        None => md.line(format!(
            "- **Recovery target:** {} (never resolved)",
            code(&r.recovery.recovery_target)
        )),
    }
    md.line(format!("- **Expected:** {}", r.recovery.expected_outcome));
    observed_line(md, &r.recovery.observation);
    if r.outcome.rows_expected.is_some() || r.outcome.rows_observed.is_some() {
        md.line(format!(
            "- **Rows:** {} expected, {} observed",
            opt(r.outcome.rows_expected),
            opt(r.outcome.rows_observed)
        ));
    }
    if let Some(c) = r
        .outcome
        .verification
        .as_ref()
        .and_then(|v| v.cost.as_ref())
    {
        let server = if c.rows_digested_by_server > 0 {
            format!(
                "; the server digested {} bulk row(s) ({} scanned) without sending them",
                c.rows_digested_by_server,
                bytesize::ByteSize(c.bytes_scanned_by_server)
                    .display()
                    .iec()
            )
        } else {
            String::new()
        };
        md.line(format!(
            "- **Verification:** {:.2} s, read {} row(s) ({} bytes) from {} table(s){server}{}",
            c.seconds,
            c.rows_read,
            c.bytes_read,
            c.tables,
            c.share_of(r.outcome.rto.as_ref().map(|t| t.seconds))
                .map_or(String::new(), |s| format!(
                    ", {:.1} % of the RTO",
                    s * 100.0
                ))
        ));
    }
    if let Some(rpo) = record::rpo(r) {
        md.line(format!(
            "- **RPO observed:** {:.3} s, {} transaction(s) lost (last expected {}, last present {}){}",
            rpo.seconds,
            rpo.transactions_lost,
            rpo.last_expected,
            rpo.last_present,
            rpo.budget_seconds
                .map_or(String::new(), |b| format!("; budget {b:.1} s"))
        ));
    }
}

/// What recovery did; a server's message of several lines goes in verbatim, fenced.
fn observed_line(md: &mut Md, observation: &RecoveryObservation) {
    match observation {
        // What the server said goes in verbatim: FATAL lines are the point of the record.
        RecoveryObservation::Failed { message } if message.contains('\n') => {
            md.line("- **Observed:** recovery failed:");
            md.blank();
            md.line(indent(&fenced(message), 2));
            md.blank();
        }
        RecoveryObservation::StepFailed { step, message } if message.contains('\n') => {
            md.line(format!("- **Observed:** step {} failed:", code(step)));
            md.blank();
            md.line(indent(&fenced(message), 2));
            md.blank();
        }
        o => md.line(format!(
            "- **Observed:** {}",
            one_line(&record::observation(o))
        )),
    }
}

/// What the archive audit before recovery found.
fn audit_section(md: &mut Md, a: &AuditVerdict) {
    md.line("### Archive audit before recovery");
    md.blank();
    md.line(format!(
        "- **Audited:** {} ({})",
        code(&a.url),
        if a.ok {
            "no failing check"
        } else {
            "failing checks"
        }
    ));
    md.line(format!(
        "- **Gaps (recovery from the oldest usable backup):** {}",
        if a.gaps.is_empty() {
            "none".to_string()
        } else {
            a.gaps
                .iter()
                .map(|g| code(g))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    md.line(format!("- **Prediction:** {}", one_line(&a.prediction)));
    for f in &a.findings {
        md.line(item(&format!("Finding: {f}")));
    }
}

/// Which rows were lost and why, and what verification found wrong; nothing when neither.
fn data_loss_section(md: &mut Md, r: &ScenarioResult) {
    let problems = r
        .outcome
        .verification
        .as_ref()
        .map_or(&[][..], |v| &v.problems[..]);
    let lines: Vec<String> = record::explanation(r)
        .iter()
        .cloned()
        .chain(
            problems
                .iter()
                .map(|p| format!("{}: {} (ids {:?})", p.table, p.what, p.ids)),
        )
        .collect();
    item_section(md, "Data loss", &lines);
}

/// A `### title` section listing `items`; nothing when there are none.
fn item_section(md: &mut Md, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    md.blank();
    md.line(format!("### {title}"));
    md.blank();
    for i in items {
        md.line(item(i));
    }
}

/// The random targets of a `target: random` drill: one row each, then what went wrong.
fn targets_section(md: &mut Md, seed: u64, targets: &[TargetResult]) {
    md.line(format!("### Random targets (seed {seed})"));
    md.blank();
    md.line(format!(
        "Replay these picks with `pgdrill run --seed {seed}` on the same scenario."
    ));
    md.blank();
    md.line("| # | Kind | Target | Where | Backup | Rows expected / observed | Lost | RTO (s) | Verdict |");
    md.line("|---:|---|---|---|---|---|---:|---:|---|");
    for t in targets {
        md.line(format!(
            "| {}/{} | {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            t.index,
            t.count,
            t.kind,
            cell(&code(&t.target)),
            cell(&t.around),
            t.backup_id.as_deref().map_or("–".to_string(), code),
            opt(t.rows_expected),
            opt(t.rows_observed),
            opt(t.verification.as_ref().map(|v| v.rows_lost)),
            t.rto
                .as_ref()
                .map_or_else(|| "–".to_string(), |x| format!("{:.2}", x.seconds)),
            record::verdict(&t.status),
        ));
    }
    for t in targets {
        let reasons = record::reasons(&t.status);
        if reasons.is_empty() {
            continue;
        }
        md.blank();
        md.line(format!("**Target {}:**", t.label()));
        md.blank();
        for reason in reasons {
            md.line(item(&one_line(&reason)));
        }
        for e in t.verification.iter().flat_map(|v| v.explanation.iter()) {
            md.line(item(e));
        }
    }
}

/// MB/s to one decimal, or three below 1 MB/s (a few kilobytes of WAL are not `0.0`).
fn rate(mb_per_second: f64) -> String {
    if mb_per_second < 1.0 {
        format!("{mb_per_second:.3}")
    } else {
        format!("{mb_per_second:.1}")
    }
}

fn rto_section(md: &mut Md, rto: &Rto) {
    md.line("### Recovery time");
    md.blank();
    md.line("| Phase | Started | Finished | Seconds | Bytes | MB/s |");
    md.line("|---|---|---|---:|---:|---:|");
    for p in &rto.phases {
        md.line(format!(
            "| {} | {} | {} | {:.2} | {} | {} |",
            cell(p.name.as_str()),
            p.started_at.format("%H:%M:%S%.3f"),
            p.finished_at.format("%H:%M:%S%.3f"),
            p.seconds,
            p.bytes.map(record::bytes).unwrap_or_default(),
            p.mb_per_second().map(rate).unwrap_or_default(),
        ));
    }
    md.line(format!("| **RTO** | | | **{:.2}** | | |", rto.seconds));
    md.blank();
    if let Some(p) = rto.slowest_phase().filter(|_| rto.seconds > 0.0) {
        md.line(format!(
            "Slowest phase: {} ({:.2} s, {:.0} % of the RTO).",
            code(p.name.as_str()),
            p.seconds,
            100.0 * p.seconds / rto.seconds
        ));
        md.blank();
    }
    let moved: Vec<String> = [
        (
            "base backup restored",
            rto.base_backup_bytes,
            rto.base_backup_mb_per_second(),
        ),
        (
            "WAL fetched",
            rto.wal_fetched_bytes,
            rto.wal_fetched_mb_per_second(),
        ),
        (
            "WAL replayed",
            rto.wal_replayed_bytes,
            rto.wal_replayed_mb_per_second(),
        ),
    ]
    .into_iter()
    .filter_map(|(what, b, r)| {
        let b = record::bytes(b?);
        Some(match r {
            Some(r) => format!("{what} {b} at {} MB/s", rate(r)),
            None => format!("{what} {b}"),
        })
    })
    .collect();
    if !moved.is_empty() {
        md.line(format!("Throughput: {}.", moved.join("; ")));
        md.blank();
    }
    let budget = match rto.budget_seconds {
        Some(b) if rto.seconds > b => format!(", **over the budget of {b:.1} s**"),
        Some(b) => format!(", within the budget of {b:.1} s"),
        None => String::new(),
    };
    md.line(format!(
        "{} WAL segment(s) replayed, {} downloaded{budget}.",
        rto.wal_segments_replayed,
        record::bytes(rto.bytes_downloaded)
    ));
    if let Some(why) = &rto.replay_end {
        md.blank();
        md.line(format!(
            "Replay ended where PostgreSQL logged: {}.",
            code(why)
        ));
    }
}

/// `2026-11-22 10:00:00 UTC`.
fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), |n| n.to_string())
}

/// Text safe inside a table cell: `|` escaped, line breaks as `<br>`.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// Inline code, with a fence longer than any backtick run inside.
fn code(s: &str) -> String {
    let s = one_line(s);
    let longest = longest_run(&s, '`');
    let fence = "`".repeat(longest + 1);
    if longest > 0 || s.starts_with(' ') || s.ends_with(' ') {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// A fenced code block for multi-line tool output.
fn fenced(s: &str) -> String {
    let fence = "`".repeat(longest_run(s, '`').max(2) + 1);
    format!("{fence}text\n{}\n{fence}", s.trim_end())
}

/// A list item; continuation lines are indented so they stay in the item.
fn item(s: &str) -> String {
    format!("- {}", s.trim_end().replace('\n', "\n  "))
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn longest_run(s: &str, c: char) -> usize {
    s.split(|x| x != c).map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn write(events: &[Event]) -> String {
        fixture::written(MarkdownReporter::new, MarkdownReporter::FILE, events)
    }

    #[test]
    fn snapshot() {
        insta::assert_snapshot!("summary.md", write(&fixture::events()));
    }

    #[test]
    fn random_targets_snapshot() {
        let md = write(&fixture::random_events());
        insta::assert_snapshot!("summary-random.md", md);
        assert!(md.contains("### Random targets (seed 42)"), "{md}");
        assert!(md.contains("pgdrill run --seed 42"), "{md}");
        assert_eq!(md.matches("| ↳ [").count(), 3, "{md}");
        assert!(md.contains("**Target 2/3 lsn 0/4000200:**"), "{md}");
    }

    #[test]
    fn interrupted_snapshot() {
        insta::assert_snapshot!(
            "summary-interrupted.md",
            write(&fixture::interrupted_events())
        );
    }

    #[test]
    fn table_cells_cannot_break_the_table() {
        let md = write(&fixture::events());
        assert!(md.contains(r"`name: pre-migration\|v2`"), "{md}");
        for line in md.lines().filter(|l| l.starts_with("| ")) {
            // The scenario table and the phase tables have 6 columns, the others 4.
            let cols = line.replace(r"\|", "").matches('|').count();
            assert!(cols == 7 || cols == 5, "{line}");
        }
    }

    #[test]
    fn server_messages_stay_verbatim_inside_the_list() {
        let mut events = fixture::events();
        for e in &mut events {
            if let Event::ScenarioFinished(r) = e {
                r.recovery.observation = RecoveryObservation::Failed {
                    message: "FATAL:  could not locate required checkpoint record\n\
                              HINT:  If you are restoring from a backup, ..."
                        .into(),
                };
            }
        }
        let md = write(&events);
        assert!(
            md.contains(
                "- **Observed:** recovery failed:\n\n  ```text\n  FATAL:  could not locate \
                 required checkpoint record\n  HINT:"
            ),
            "{md}"
        );
    }

    #[test]
    fn helpers_escape() {
        assert_eq!(cell("a|b\nc"), r"a\|b<br>c");
        assert_eq!(code("x`y"), "`` x`y ``");
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(item("one\ntwo"), "- one\n  two");
        assert_eq!(fenced("a ``` b"), "````text\na ``` b\n````");
    }
}
