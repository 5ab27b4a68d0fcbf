//! Live progress of a run on a terminal or in a CI log: step lines and verdicts as they happen;
//! never writes files and never decides anything.

use std::io::Write;

use crate::runner::{Event, Reason, ScenarioResult, Status};

use super::record::{self, Totals};
use super::{ReportError, Reporter};

/// Live lines are cut to this many characters so they never wrap on an 80-column terminal
/// (a wrapped line would break the cursor-up redraw).
const LIVE_WIDTH: usize = 79;

const GREEN: &str = "\x1b[32;1m";
const RED: &str = "\x1b[31;1m";
const YELLOW: &str = "\x1b[33;1m";
const RESET: &str = "\x1b[0m";

/// Writes progress to `out`.
///
/// Plain mode (not a terminal: CI logs, pipes) prints one line per finished step and the
/// verdicts, each prefixed with `[scenario]` so parallel scenarios stay readable. Terminal mode
/// keeps one live status line per running scenario, redrawn in place with ANSI escapes, and
/// prints the verdicts permanently above them.
pub struct ProgressReporter {
    out: Box<dyn Write + Send>,
    terminal: bool,
    run_id: Option<String>,
    totals: Totals,
    /// Running scenarios and what they are doing, in start order.
    running: Vec<(String, String)>,
    /// Terminal mode: how many live lines are on screen below the permanent output.
    drawn: usize,
}

impl std::fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressReporter")
            .field("terminal", &self.terminal)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl ProgressReporter {
    pub fn new(out: Box<dyn Write + Send>, is_terminal: bool) -> Self {
        Self {
            out,
            terminal: is_terminal,
            run_id: None,
            totals: Totals::default(),
            running: Vec::new(),
            drawn: 0,
        }
    }

    fn set_running(&mut self, scenario: &str, status: String) {
        match self.running.iter_mut().find(|(n, _)| n == scenario) {
            Some(entry) => entry.1 = status,
            None => self.running.push((scenario.to_string(), status)),
        }
    }

    /// Print `lines` permanently and, on a terminal, redraw the live block under them.
    fn emit(&mut self, lines: &[String]) -> Result<(), ReportError> {
        let mut buf = String::new();
        if self.terminal {
            if self.drawn > 0 {
                buf.push_str(&format!("\x1b[{}A", self.drawn));
            }
            buf.push_str("\r\x1b[J");
        }
        for l in lines {
            buf.push_str(l);
            buf.push('\n');
        }
        if self.terminal {
            for (name, status) in &self.running {
                buf.push_str(&truncate(&format!("[{name}] {status}"), LIVE_WIDTH));
                buf.push('\n');
            }
            self.drawn = self.running.len();
        }
        self.out
            .write_all(buf.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(ReportError::Output)
    }

    fn paint(&self, word: &str, color: &str) -> String {
        if self.terminal {
            format!("{color}{word}{RESET}")
        } else {
            word.to_string()
        }
    }

    /// The permanent lines for a finished scenario.
    fn verdict_lines(&self, r: &ScenarioResult) -> Vec<String> {
        let p = format!("[{}]", r.scenario.name);
        let mut lines = Vec::new();
        match &r.status {
            Status::Passed => {
                let rto = r
                    .outcome
                    .rto
                    .as_ref()
                    .map(|t| format!(" (RTO {:.1}s)", t.seconds))
                    .unwrap_or_default();
                lines.push(format!(
                    "{p} {} in {:.1}s{rto}",
                    self.paint("PASSED", GREEN),
                    r.scenario.seconds
                ));
            }
            Status::Failed { reasons } => {
                let first = reasons
                    .first()
                    .map(String::as_str)
                    .unwrap_or("drill failed");
                lines.push(format!(
                    "{p} {}{} in {:.1}s: {first}",
                    self.paint("FAILED", RED),
                    code(r.reason),
                    r.scenario.seconds
                ));
                // A random-target drill's reasons are its targets' lines, below.
                let more = if r.targets.is_empty() {
                    1
                } else {
                    reasons.len()
                };
                for reason in reasons.iter().skip(more) {
                    lines.push(format!("{p}   {reason}"));
                }
                for e in record::explanation(r) {
                    lines.push(format!("{p}   {e}"));
                }
            }
            Status::Error { message } => {
                let mut msg = message.lines();
                lines.push(format!(
                    "{p} {}{} in {:.1}s: {}",
                    self.paint("ERROR", YELLOW),
                    code(r.reason),
                    r.scenario.seconds,
                    msg.next().unwrap_or("harness error")
                ));
                for l in msg {
                    lines.push(format!("{p}   {l}"));
                }
            }
        }
        for t in &r.targets {
            let rows = match (t.rows_expected, t.rows_observed) {
                (Some(e), Some(o)) => format!(", {o}/{e} rows"),
                _ => String::new(),
            };
            let rto = t
                .rto
                .as_ref()
                .map(|x| format!(", RTO {:.1}s", x.seconds))
                .unwrap_or_default();
            let why = record::reasons(&t.status)
                .first()
                .map(|w| format!(": {}", w.lines().next().unwrap_or_default()))
                .unwrap_or_default();
            lines.push(format!(
                "{p}   target {} ({}): {}{rows}{rto}{why}",
                t.label(),
                t.around,
                record::verdict(&t.status)
            ));
        }
        if !r.targets.is_empty() {
            lines.push(format!(
                "{p}   replay these targets with --seed {}",
                r.scenario.seed
            ));
        }
        for k in &r.kept {
            lines.push(format!("{p}   kept: {k}"));
        }
        lines
    }
}

impl Reporter for ProgressReporter {
    fn on_event(&mut self, event: &Event) -> Result<(), ReportError> {
        match event {
            Event::RunStarted(info) => {
                self.run_id = Some(info.run_id.clone());
                let n = info.scenarios.len();
                let line = format!(
                    "pgdrill run {} on {}: {n} scenario{}, reports in {}",
                    info.run_id,
                    info.backend,
                    if n == 1 { "" } else { "s" },
                    info.report_dir.display()
                );
                self.emit(&[line])
            }
            Event::ScenarioStarted { scenario, .. } => {
                self.set_running(scenario, "starting".into());
                if self.terminal {
                    self.emit(&[])
                } else {
                    self.emit(&[format!("[{scenario}] started")])
                }
            }
            Event::StepStarted {
                scenario,
                step,
                kind,
                ..
            } => {
                self.set_running(scenario, format!("step {step} ({kind}) …"));
                if self.terminal {
                    self.emit(&[])
                } else {
                    Ok(())
                }
            }
            Event::StepFinished {
                scenario,
                step,
                kind,
                seconds,
                outcome,
            } => {
                let line = format!("[{scenario}] step {step} ({kind}) {seconds:.2}s {outcome}");
                let line = line.trim_end().to_string();
                self.set_running(
                    scenario,
                    format!("step {step} ({kind}) done in {seconds:.2}s"),
                );
                if self.terminal {
                    self.emit(&[])
                } else {
                    self.emit(&[line])
                }
            }
            Event::ScenarioFinished(r) => {
                self.running.retain(|(n, _)| *n != r.scenario.name);
                self.totals.count(&r.status);
                let lines = self.verdict_lines(r);
                self.emit(&lines)
            }
            Event::RunFinished { seconds, .. } => {
                let id = self.run_id.as_deref().unwrap_or("");
                let line = format!(
                    "pgdrill run {id} finished in {seconds:.1}s: {}",
                    self.totals.sentence()
                );
                self.emit(&[line])
            }
        }
    }

    /// Leaves a line for every scenario still running (an interrupted run), then flushes.
    fn finish(&mut self) -> Result<(), ReportError> {
        let lines: Vec<String> = std::mem::take(&mut self.running)
            .into_iter()
            .map(|(name, status)| format!("[{name}] did not finish (last: {status})"))
            .collect();
        self.emit(&lines)?;
        self.drawn = 0;
        Ok(())
    }
}

/// ` [wal_unavailable]`: the failure's reason code, as the verdict's suffix.
fn code(reason: Option<Reason>) -> String {
    reason.map(|r| format!(" [{r}]")).unwrap_or_default()
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{self, SharedBuf};

    fn run(events: &[Event], terminal: bool) -> String {
        let buf = SharedBuf::default();
        let mut p = ProgressReporter::new(Box::new(buf.clone()), terminal);
        fixture::feed(&mut p, events).unwrap();
        buf.contents()
    }

    #[test]
    fn plain_mode_prints_steps_and_verdicts() {
        let out = run(&fixture::events(), false);
        assert!(!out.contains('\x1b'), "no escapes in plain mode");
        insta::assert_snapshot!("progress-plain", out);
        assert!(out.contains(
            "[pitr-after-step] step w1 (write) 0.21s 1 row(s) into events, txid 745 committed at 0/8000200"
        ));
        assert!(out.contains("[pitr-after-step] PASSED in 12.3s (RTO 2.1s)\n"));
        assert!(out.contains(
            "[wal-gap-silent-loss] FAILED [wal_unavailable] in 20.6s: unexpected data loss: 2 rows missing\n"
        ));
        assert!(out.contains(
            "[archive-unreachable] ERROR [archive_unreachable] in 4.2s: barman-cloud-backup exited with status 4\n"
        ));
        assert!(out.ends_with("finished in 39.5s: 1 passed, 1 failed, 1 error\n"));
    }

    #[test]
    fn random_targets_get_a_line_each() {
        let out = run(&fixture::random_events(), false);
        insta::assert_snapshot!("progress-random", out);
        assert!(out.contains(
            "[random-pitr-targets]   target 1/3 time 2026-11-22 10:00:04.500000+00 \
             (between the commits of `w1` and `w2`): PASSED, 25/25 rows, RTO 2.4s\n"
        ));
        assert!(out.contains("[random-pitr-targets]   target 3/3 xid 746 (the transaction of `w2`): FAILED: recovery failed: FATAL:"));
        assert!(out.contains("replay these targets with --seed 42"));
    }

    #[test]
    fn plain_mode_names_scenarios_cut_short() {
        let out = run(&fixture::interrupted_events(), false);
        let last = out.lines().last().unwrap();
        assert!(
            last.starts_with("[wal-gap-silent-loss] did not finish (last: step w1 (write)"),
            "{out}"
        );
    }

    #[test]
    fn terminal_mode_redraws_live_lines_and_keeps_verdicts() {
        let out = run(&fixture::events(), true);
        assert!(out.contains("\r\x1b[J"), "clears the live block");
        assert!(out.contains("\x1b[1A"), "moves up over the live line");
        assert!(out.contains("[pitr-after-step] step w2 (write) …"));
        assert!(!out.contains("[pitr-after-step] step w1 (write) 0.21s 1 row(s)"));
        assert!(out.contains("[pitr-after-step] \x1b[32;1mPASSED\x1b[0m in 12.3s"));
        // Once the last verdict is printed there is no live line left to redraw.
        let tail = out.rsplit("\r\x1b[J").next().unwrap();
        assert_eq!(tail, "");
    }

    #[test]
    fn live_lines_never_wrap() {
        assert_eq!(truncate("short", 10), "short");
        let t = truncate(&"x".repeat(200), LIVE_WIDTH);
        assert_eq!(t.chars().count(), LIVE_WIDTH);
        assert!(t.ends_with('…'));
    }
}
