//! The run's `report.html`: per scenario a timeline of its steps (writes with their WAL
//! segment, base backups, faults, the gap, the recovery target), the RTO phases as bars, the
//! verdict, unmet expectations and the loss explanation; plus history when given earlier runs.
//! Built from events only; it never reads another run's directory (earlier history is handed in).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use maud::{Markup, html};

use crate::history::{Entries, History, Sample};
use crate::runner::{Event, ScenarioResult, StepOutcome, TargetResult};

use super::super::dir::write_file;
use super::super::record::{self, RunRecord, Unfinished};
use super::super::{ReportError, Reporter};
use super::page::{self, opt, secs, status_verdict, time};

/// Writes `dir/report.html` on `finish`.
#[derive(Debug)]
pub struct HtmlReporter {
    path: PathBuf,
    run: RunRecord,
    steps: Vec<StepRow>,
    earlier: Option<Earlier>,
}

#[derive(Debug)]
struct StepRow {
    scenario: String,
    step: String,
    kind: String,
    seconds: f64,
    outcome: StepOutcome,
}

/// Runs and game days read before this run started, for the history section.
#[derive(Debug)]
struct Earlier {
    entries: Entries,
    max_gameday_age_seconds: u64,
}

impl HtmlReporter {
    /// The file name under the run directory.
    pub const FILE: &'static str = "report.html";

    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(Self::FILE),
            run: RunRecord::default(),
            steps: Vec::new(),
            earlier: None,
        }
    }

    /// Add a history section over `earlier` (read by the caller from sibling run directories)
    /// and this run's own results, when `earlier` holds any run.
    pub fn with_history(mut self, earlier: Entries, max_gameday_age_seconds: u64) -> Self {
        self.earlier = Some(Earlier {
            entries: earlier,
            max_gameday_age_seconds,
        });
        self
    }

    fn render(&self) -> Result<String, ReportError> {
        let info = self.run.info()?;
        let results = self.run.results();
        let unfinished = self.run.unfinished();
        let body = html! {
            header {
                h1 { "pgdrill run " (info.run_id) }
                p {
                    strong { (self.run.totals().sentence()) }
                    " · backend " (info.backend) " · started " (time(info.started_at))
                    @match self.run.finished() {
                        Some((at, s)) => { " · finished " (time(at)) " (" (format!("{s:.1}")) " s)" }
                        None => { " · " strong { "interrupted" } }
                    }
                }
                nav {
                    ul {
                        @for r in &results {
                            li { a href=(format!("#scenario-{}", r.scenario.name)) { (r.scenario.name) } " " (status_verdict(&r.status, r.reason.map(|c| c.code()))) }
                        }
                        @for u in &unfinished {
                            li { a href=(format!("#scenario-{}", u.name)) { (u.name) } " " (page::verdict("not-finished", u.verdict(), None)) }
                        }
                    }
                }
            }
            @for r in &results { (self.scenario(r)) }
            @for u in &unfinished { (unfinished_section(u)) }
            @if let Some(h) = self.history(&results) { (super::history::section(&h)) }
        };
        Ok(page::document(
            &format!("pgdrill run {}", info.run_id),
            body,
        ))
    }

    fn scenario(&self, r: &ScenarioResult) -> Markup {
        let name = &r.scenario.name;
        let steps: Vec<&StepRow> = self.steps.iter().filter(|s| s.scenario == *name).collect();
        let reasons = record::reasons(&r.status);
        html! {
            section.card.scenario id=(format!("scenario-{name}")) data-scenario=(name) data-verdict=(record::status_key(&r.status)) {
                h2 { (name) " " (status_verdict(&r.status, r.reason.map(|c| c.code()))) }
                @if !r.scenario.description.is_empty() { p.muted { (r.scenario.description) } }
                div.grid {
                    div {
                        h3 { "Timeline" }
                        (timeline(r, &steps))
                    }
                    div {
                        h3 { "Verdict" }
                        p { (status_verdict(&r.status, r.reason.map(|c| c.code()))) " expected: " (r.recovery.expected_outcome) }
                        @if !reasons.is_empty() {
                            p.small.muted { @if matches!(r.status, crate::runner::Status::Error { .. }) { "Error:" } @else { "Unmet expectations:" } }
                            ul.tight.reasons { @for x in &reasons { li { pre { (x) } } } }
                        }
                        (loss(r))
                        (facts(r))
                    }
                }
                @if let Some(rto) = &r.outcome.rto {
                    h3 { "Recovery time" }
                    (page::rto_bars(rto))
                }
                @if !r.targets.is_empty() { (targets(r.scenario.seed, &r.targets)) }
            }
        }
    }

    /// Earlier runs plus this one, when there are earlier runs.
    fn history(&self, results: &[&ScenarioResult]) -> Option<History> {
        let earlier = self
            .earlier
            .as_ref()
            .filter(|e| !e.entries.runs.is_empty())?;
        let info = self.run.info().ok()?;
        let mut entries = earlier.entries.clone();
        entries
            .runs
            .extend(results.iter().map(|r| sample(&info.run_id, r)));
        let now = self
            .run
            .finished()
            .map(|(at, _)| at)
            .or_else(|| results.iter().map(|r| r.scenario.started_at).max())
            .unwrap_or(info.started_at);
        Some(History::build(
            &entries,
            now,
            earlier.max_gameday_age_seconds,
        ))
    }
}

/// This run's result as history counts it (what `rto.json` would give back).
fn sample(run_id: &str, r: &ScenarioResult) -> Sample {
    Sample {
        key: r.scenario.name.clone(),
        source: run_id.to_string(),
        at: r.scenario.started_at,
        status: record::status_key(&r.status).to_string(),
        rto_seconds: r.outcome.rto.as_ref().map(|t| t.seconds),
        rpo_seconds: record::rpo(r).map(|p| p.seconds),
    }
}

/// What a step is on the timeline, and the WAL segment it names.
fn classify(o: &StepOutcome) -> (&'static str, Option<String>) {
    match o {
        StepOutcome::Written(w) => ("write", Some(w.commit.segment.to_string())),
        StepOutcome::Seeded(c) => ("write", Some(c.segment.to_string())),
        StepOutcome::BaseBackup { end_wal, .. } => ("backup", Some(end_wal.clone())),
        StepOutcome::WalDeleted { .. }
        | StepOutcome::WalCorrupted(_)
        | StepOutcome::BackupPartDeleted { .. }
        | StepOutcome::HistoryDeleted { .. }
        | StepOutcome::IndexMadeStale { .. }
        | StepOutcome::Crashed(_)
        | StepOutcome::ErrorWindowOpened { .. }
        | StepOutcome::ArchiveFailing { .. }
        | StepOutcome::BackupInterrupted(_)
        | StepOutcome::RecoveryFaultsArmed { .. }
        | StepOutcome::DumpDamaged { .. } => ("fault", None),
        StepOutcome::LogicalBackup(_) => ("backup", None),
        StepOutcome::Audited { .. } => ("audit", None),
        StepOutcome::Recovered(_)
        | StepOutcome::RecoveredUnderFaults { .. }
        | StepOutcome::RecoveryFailed { .. }
        | StepOutcome::TargetsPicked(_)
        | StepOutcome::TargetRecovered { .. }
        | StepOutcome::TargetsRecovered { .. }
        | StepOutcome::LogicalRecovery(_) => ("recovery", None),
        StepOutcome::Verified { .. }
        | StepOutcome::TargetVerified(_)
        | StepOutcome::Amchecked(_) => ("verify", None),
        _ => ("source", None),
    }
}

/// Segments missing from the archive: the verification's, the pre-recovery audit's, and those
/// a fault deleted.
fn gap_segments(r: &ScenarioResult, steps: &[&StepRow]) -> BTreeSet<String> {
    let mut gap = BTreeSet::new();
    if let Some(v) = &r.outcome.verification {
        gap.extend(
            v.missing
                .iter()
                .filter(|m| !m.segment_in_archive)
                .map(|m| m.segment.to_string()),
        );
    }
    if let Some(a) = &r.recovery.audit {
        gap.extend(a.gaps.iter().cloned());
    }
    for s in steps {
        if let StepOutcome::WalDeleted { segments, .. } = &s.outcome {
            gap.extend(segments.iter().map(ToString::to_string));
        }
    }
    gap
}

fn timeline(r: &ScenarioResult, steps: &[&StepRow]) -> Markup {
    let gap = gap_segments(r, steps);
    let lost: BTreeSet<&str> = r
        .outcome
        .verification
        .iter()
        .flat_map(|v| v.missing.iter().map(|m| m.step_id.as_str()))
        .collect();
    let kinds: Vec<(&str, Option<String>)> = steps.iter().map(|s| classify(&s.outcome)).collect();
    let first_recovery = kinds
        .iter()
        .position(|(k, _)| *k == "recovery")
        .unwrap_or(steps.len());
    // The gap goes where the first write into a missing segment is, else before recovery.
    let gap_at = kinds
        .iter()
        .position(|(_, seg)| seg.as_ref().is_some_and(|s| gap.contains(s)))
        .unwrap_or_else(|| {
            kinds
                .iter()
                .position(|(k, _)| *k == "audit")
                .unwrap_or(first_recovery)
        });
    let gap_item = html! {
        li.gap data-gap=(gap.iter().cloned().collect::<Vec<_>>().join(" ")) {
            span.tag { "gap" }
            "WAL missing from the archive: "
            @for (i, g) in gap.iter().enumerate() { @if i > 0 { ", " } code.seg.missing { (g) } }
            @if !lost.is_empty() { " — replay stops here; later writes are lost" }
        }
    };
    let target_item = html! {
        li.target data-target=(r.recovery.recovery_target) {
            span.tag { "target" }
            "recover to " code { (r.recovery.recovery_target) }
            @if let Some(t) = r.recovery.resolved_target.as_ref().filter(|t| **t != r.recovery.recovery_target) {
                " → " code { (t) }
            }
        }
    };
    html! {
        ol.timeline {
            @for (i, (s, (kind, seg))) in steps.iter().zip(&kinds).enumerate() {
                @if i == gap_at && !gap.is_empty() { (gap_item) }
                @if i == first_recovery { (target_item) }
                @let is_lost = lost.contains(s.step.as_str());
                li class=(if is_lost { format!("{kind} lost") } else { (*kind).to_string() }) data-step=(s.step) data-kind=(s.kind) {
                    span.tag { (s.kind) }
                    strong { (s.step) } " "
                    @if let Some(seg) = seg {
                        code class=(if gap.contains(seg) { "seg missing" } else { "seg" }) title="WAL segment" { (seg) } " "
                    }
                    @if is_lost { strong.overdue { "lost " } }
                    span.what.small { (s.outcome.to_string()) }
                    span.muted.small { " (" (format!("{:.2}", s.seconds)) " s)" }
                }
            }
            @if gap_at >= steps.len() && !gap.is_empty() { (gap_item) }
            @if first_recovery >= steps.len() { (target_item) }
        }
    }
}

/// Which rows are missing and why.
fn loss(r: &ScenarioResult) -> Markup {
    let explanation = record::explanation(r);
    let missing = r
        .outcome
        .verification
        .as_ref()
        .map_or(&[][..], |v| &v.missing[..]);
    html! {
        @if !explanation.is_empty() || !missing.is_empty() {
            h3 { "Data loss" }
            ul.tight.loss { @for e in explanation { li { (e) } } }
            @if !missing.is_empty() {
                ul.tight.missing {
                    @for m in missing {
                        li data-missing=(m.step_id) {
                            strong { (m.step_id) } ": " (m.rows) " row(s) of " code { (m.table) } " from id " (m.first_id)
                            " (txid " (m.txid) ", commit " (m.commit_lsn) ") in "
                            code class=(if m.segment_in_archive { "seg" } else { "seg missing" }) { (m.segment.to_string()) }
                            @if !m.segment_in_archive { ", absent from the archive" }
                            @if let Some(f) = &m.removed_by { ", deleted by " strong { (f) } }
                        }
                    }
                }
            }
        }
    }
}

fn facts(r: &ScenarioResult) -> Markup {
    html! {
        h3 { "Details" }
        dl.facts {
            dt { "Observed" } dd { (record::observation(&r.recovery.observation)) }
            dt { "Target" } dd { code { (r.recovery.recovery_target) } @if let Some(t) = &r.recovery.resolved_target { " → " code { (t) } } }
            dt { "Backup" } dd { (opt(r.recovery.backup_id.as_deref())) }
            dt { "Rows" } dd { (opt(r.outcome.rows_expected)) " expected, " (opt(r.outcome.rows_observed)) " observed, " (opt(record::rows_lost(r))) " lost" }
            @if let Some(rpo) = record::rpo(r) {
                dt { "RPO" } dd { (secs(rpo.seconds)) ", " (rpo.transactions_lost) " transaction(s) lost" }
            }
            @if let Some(a) = &r.recovery.audit {
                dt { "Audit" } dd { (a.prediction) }
            }
            @for f in record::fault_lines(r) { dt { "Fault" } dd { (f) } }
            @if let Some((line, output)) = record::script_run(r) {
                dt { "Restore script" } dd { code { (line) } pre.script { (output) } }
            }
            @if let Some((headline, findings)) = record::amcheck_lines(r) {
                dt { "amcheck" } dd data-amcheck-findings=(findings.len()) {
                    (headline)
                    @if !findings.is_empty() { ul.tight { @for f in &findings { li { code { (f) } } } } }
                }
            }
            dt { "PostgreSQL" } dd { (opt(r.servers.source_postgres.as_deref())) " → " (opt(r.servers.recovery_postgres.as_deref())) }
            dt { "Seed" } dd { (r.scenario.seed) }
            dt { "Took" } dd { (format!("{:.1} s", r.scenario.seconds)) }
        }
    }
}

fn targets(seed: u64, targets: &[TargetResult]) -> Markup {
    html! {
        h3 { "Random targets (seed " (seed) ")" }
        ol.tight.targets {
            @for t in targets {
                li data-target-index=(t.index) data-verdict=(record::status_key(&t.status)) {
                    (status_verdict(&t.status, t.reason.map(|c| c.code()))) " " code { (t.label()) } " " span.muted { (t.around) }
                    br;
                    span.small {
                        (opt(t.rows_expected)) " expected, " (opt(t.rows_observed)) " observed, "
                        (opt(t.verification.as_ref().map(|v| v.rows_lost))) " lost; RTO "
                        (t.rto.as_ref().map_or_else(|| "–".to_string(), |x| secs(x.seconds)))
                    }
                    @for reason in record::reasons(&t.status) { pre { (reason) } }
                    @for e in t.verification.iter().flat_map(|v| v.explanation.iter()) { p.small { (e) } }
                }
            }
        }
    }
}

fn unfinished_section(u: &Unfinished) -> Markup {
    html! {
        section.card.scenario id=(format!("scenario-{}", u.name)) data-scenario=(u.name) data-verdict="not-finished" {
            h2 { (u.name) " " (page::verdict("not-finished", u.verdict(), None)) }
            p.muted { (u.sentence()) }
            @if let Some(at) = u.started_at { p.small { "Started " (time(at)) } }
        }
    }
}

impl Reporter for HtmlReporter {
    fn on_event(&mut self, event: &Event) -> Result<(), ReportError> {
        self.run.record(event);
        if let Event::StepFinished {
            scenario,
            step,
            kind,
            seconds,
            outcome,
        } = event
        {
            self.steps.push(StepRow {
                scenario: scenario.clone(),
                step: step.clone(),
                kind: kind.clone(),
                seconds: *seconds,
                outcome: outcome.clone(),
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        let html = self.render()?;
        write_file(&self.path, html.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn write(events: &[Event]) -> String {
        fixture::written(HtmlReporter::new, HtmlReporter::FILE, events)
    }

    /// One tag a line, so a snapshot diff points at what changed.
    pub(crate) fn lines(html: &str) -> String {
        html.replace("><", ">\n<")
    }

    #[test]
    fn snapshot() {
        insta::assert_snapshot!("report.html", lines(&write(&fixture::events())));
    }

    #[test]
    fn every_scenario_has_its_section_and_verdict() {
        let html = write(&fixture::events());
        for (name, verdict) in fixture::SCENARIOS.iter().zip(["passed", "failed", "error"]) {
            let open = format!(
                r#"<section class="card scenario" id="scenario-{name}" data-scenario="{name}" data-verdict="{verdict}">"#
            );
            assert!(html.contains(&open), "{open}\n{html}");
        }
        assert!(html.contains(r#"<meta name="viewport""#), "{html}");
        // The failed drill: the gap before the lost write, the lost writes struck, the RTO bars.
        assert!(
            html.contains(r#"<li class="gap" data-gap="000000010000000000000009">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<li class="write lost" data-step="w2" data-kind="write">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-phase="restore_base_backup""#),
            "{html}"
        );
        assert!(html.contains("Unmet expectations:"), "{html}");
        assert!(
            html.contains("unexpected data loss: 2 rows missing"),
            "{html}"
        );
        assert!(
            !html.contains(r#"id="history""#),
            "no history without earlier runs"
        );
    }

    #[test]
    fn scenario_text_is_escaped() {
        let mut events = fixture::events();
        for e in &mut events {
            if let Event::ScenarioFinished(r) = e {
                r.scenario.description = "<script>alert('x')</script> & co".into();
                r.status = crate::runner::Status::Error {
                    message: "FATAL: <b>bad</b>".into(),
                };
            }
        }
        let html = write(&events);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>bad"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; co"),
            "{html}"
        );
        assert!(html.contains("FATAL: &lt;b&gt;bad&lt;/b&gt;"), "{html}");
        // The page's own script is the only one.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
    }

    #[test]
    fn nothing_is_loaded_from_outside_the_page() {
        for events in [
            fixture::events(),
            fixture::random_events(),
            fixture::interrupted_events(),
        ] {
            let html = write(&events);
            // A URL may be text (a server's message names its endpoint), never a resource.
            for external in [
                "src=", "<link", "url(", "@import", "=\"http", "<iframe", "<img",
            ] {
                assert!(!html.contains(external), "{external} in\n{html}");
            }
            for link in html.split("href=\"").skip(1) {
                assert!(link.starts_with('#'), "only links within the page: {link}");
            }
        }
    }

    #[test]
    fn random_targets_show_each_verdict() {
        let html = write(&fixture::random_events());
        assert_eq!(html.matches("data-target-index=").count(), 3, "{html}");
        assert!(
            html.contains(r#"data-target-index="2" data-verdict="failed""#),
            "{html}"
        );
    }

    #[test]
    fn an_interrupted_run_names_what_did_not_finish() {
        let html = write(&fixture::interrupted_events());
        assert!(html.contains("interrupted"), "{html}");
        assert_eq!(
            html.matches(r#"data-verdict="not-finished"><h2>"#).count(),
            2,
            "{html}"
        );
    }

    #[test]
    fn earlier_runs_add_a_history_section_with_this_run_counted() {
        let earlier = Entries {
            runs: vec![Sample {
                key: fixture::SCENARIOS[0].into(),
                source: "20261121T100000Z-0001".into(),
                at: fixture::at(-86_400_000),
                status: "failed".into(),
                rto_seconds: Some(3.0),
                rpo_seconds: Some(0.0),
            }],
            gamedays: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let mut r = HtmlReporter::new(dir.path()).with_history(earlier, 92 * 86_400);
        fixture::feed(&mut r, &fixture::events()).unwrap();
        let html = std::fs::read_to_string(dir.path().join(HtmlReporter::FILE)).unwrap();
        assert!(html.contains(r#"id="history""#), "{html}");
        let card = format!(
            r#"data-history="scenario" data-name="{}" data-runs="2" data-passes="1""#,
            fixture::SCENARIOS[0]
        );
        assert!(html.contains(&card), "{card}\n{html}");
        assert!(
            html.contains("<svg class=\"spark\""),
            "a trend line: {html}"
        );
        assert!(html.contains("No game day recorded"), "{html}");
    }
}
