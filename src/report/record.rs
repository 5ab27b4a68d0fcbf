//! What the file reporters remember of a run's events, and wording shared by every format;
//! never writes anything and never sees anything but events.

use chrono::{DateTime, Utc};

use crate::ledger::Moment;
use crate::runner::{Event, RecoveryObservation, RunInfo, ScenarioResult, Status};

use super::ReportError;

/// The events of one run, folded into what the reports need.
#[derive(Debug, Default)]
pub(super) struct RunRecord {
    info: Option<RunInfo>,
    /// Scenarios in the order they started.
    started: Vec<(String, DateTime<Utc>)>,
    /// Results in the order they finished; a repeated name replaces the earlier result.
    results: Vec<ScenarioResult>,
    finished: Option<(DateTime<Utc>, f64)>,
}

/// A scenario the run planned or started but never reported a result for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Unfinished {
    pub name: String,
    /// `Some` when it started (the run stopped while it ran), `None` when it never started.
    pub started_at: Option<DateTime<Utc>>,
}

impl Unfinished {
    pub fn verdict(&self) -> &'static str {
        if self.started_at.is_some() {
            "NOT FINISHED"
        } else {
            "NOT RUN"
        }
    }

    pub fn sentence(&self) -> &'static str {
        if self.started_at.is_some() {
            "did not finish: the run ended while this scenario was running"
        } else {
            "not run: the run ended before this scenario started"
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub unfinished: usize,
}

impl Totals {
    /// `1 passed, 1 failed, 1 error`, plus `, 1 not finished` when some are.
    pub fn sentence(&self) -> String {
        let mut s = format!(
            "{} passed, {} failed, {} {}",
            self.passed,
            self.failed,
            self.errors,
            if self.errors == 1 { "error" } else { "errors" }
        );
        if self.unfinished > 0 {
            s.push_str(&format!(", {} not finished", self.unfinished));
        }
        s
    }

    pub fn count(&mut self, status: &Status) {
        match status {
            Status::Passed => self.passed += 1,
            Status::Failed { .. } => self.failed += 1,
            Status::Error { .. } => self.errors += 1,
        }
    }
}

impl RunRecord {
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => self.info = Some(info.clone()),
            Event::ScenarioStarted { scenario, at } => {
                if !self.started.iter().any(|(n, _)| n == scenario) {
                    self.started.push((scenario.clone(), *at));
                }
            }
            Event::StepStarted { .. } | Event::StepFinished { .. } => {}
            Event::ScenarioFinished(result) => {
                self.results
                    .retain(|r| r.scenario.name != result.scenario.name);
                self.results.push(result.as_ref().clone());
            }
            Event::RunFinished { at, seconds } => self.finished = Some((*at, *seconds)),
        }
    }

    pub fn info(&self) -> Result<&RunInfo, ReportError> {
        self.info.as_ref().ok_or(ReportError::NoRun)
    }

    /// When the run finished and how long it took, if it got that far.
    pub fn finished(&self) -> Option<(DateTime<Utc>, f64)> {
        self.finished
    }

    /// Results in plan order (the order of `RunInfo::scenarios`), then any others as they finished.
    pub fn results(&self) -> Vec<&ScenarioResult> {
        let mut out: Vec<&ScenarioResult> = self.results.iter().collect();
        out.sort_by_key(|r| self.plan_position(&r.scenario.name));
        out
    }

    /// Planned or started scenarios without a result, in plan order.
    pub fn unfinished(&self) -> Vec<Unfinished> {
        let mut names: Vec<&str> = self
            .info
            .iter()
            .flat_map(|i| i.scenarios.iter().map(String::as_str))
            .collect();
        for (name, _) in &self.started {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names
            .into_iter()
            .filter(|n| !self.results.iter().any(|r| r.scenario.name == *n))
            .map(|name| Unfinished {
                name: name.to_string(),
                started_at: self
                    .started
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, at)| *at),
            })
            .collect()
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in &self.results {
            t.count(&r.status);
        }
        t.unfinished = self.unfinished().len();
        t
    }

    fn plan_position(&self, name: &str) -> usize {
        self.info
            .as_ref()
            .and_then(|i| i.scenarios.iter().position(|s| s == name))
            .unwrap_or(usize::MAX)
    }
}

/// `PASSED`, `FAILED`, `ERROR`.
pub(super) fn verdict(status: &Status) -> &'static str {
    match status {
        Status::Passed => "PASSED",
        Status::Failed { .. } => "FAILED",
        Status::Error { .. } => "ERROR",
    }
}

/// `passed`, `failed`, `error`: the machine-readable form.
pub(super) fn status_key(status: &Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed { .. } => "failed",
        Status::Error { .. } => "error",
    }
}

/// The verdict's reasons: a failure's unmet expectations, an error's message, nothing for a pass.
pub(super) fn reasons(status: &Status) -> Vec<String> {
    match status {
        Status::Passed => Vec::new(),
        Status::Failed { reasons } => reasons.clone(),
        Status::Error { message } => vec![message.clone()],
    }
}

/// `recovered`, `recovery failed: <message>`, `recovery not attempted`.
pub(super) fn observation(o: &RecoveryObservation) -> String {
    match o {
        RecoveryObservation::Recovered => "recovered".to_string(),
        RecoveryObservation::Failed { message } => format!("recovery failed: {message}"),
        RecoveryObservation::StepFailed { step, message } => {
            format!("step `{step}` failed: {message}")
        }
        RecoveryObservation::NotAttempted => "recovery not attempted".to_string(),
    }
}

/// The loss explanation lines of a result, if it was verified.
pub(super) fn explanation(r: &ScenarioResult) -> &[String] {
    r.outcome
        .verification
        .as_ref()
        .map(|v| v.explanation.as_slice())
        .unwrap_or(&[])
}

/// The observed RPO, when recovery was verified.
pub(super) fn rpo(r: &ScenarioResult) -> Option<&crate::verify::ObservedRpo> {
    r.outcome.verification.as_ref().and_then(|v| v.rpo.as_ref())
}

/// One sentence per injected fault, with what it did to archiving when that was measured.
pub(super) fn fault_lines(r: &ScenarioResult) -> Vec<String> {
    r.archive.faults
        .iter()
        .map(|f| {
            let mut line = format!("`{}`: {}", f.step_id, f.action);
            if let Some(a) = &f.archiver {
                let mut parts = Vec::new();
                if a.stand.as_ref().is_none_or(|s| s.moment != Moment::Crash)
                    || a.failed_attempts > 0
                {
                    parts.push(match a.failing_after_seconds {
                        Some(s) => format!(
                            "pg_stat_archiver showed failures after {s:.1}s ({} failed attempt(s))",
                            a.failed_attempts
                        ),
                        None => "pg_stat_archiver showed no failure".to_string(),
                    });
                }
                if let Some(s) = &a.stand {
                    parts.push(format!(
                        "at the {}: last archived {}, {} transaction(s) exposed{}, oldest {:.1}s old",
                        s.moment,
                        s.last_archived_wal.as_deref().unwrap_or("nothing"),
                        s.exposed_transactions,
                        if s.exposed_steps.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", s.exposed_steps.join(", "))
                        },
                        s.exposure_seconds
                    ));
                }
                if let Some(c) = a.caught_up_after_seconds {
                    parts.push(format!("archiving caught up {c:.1}s after the window"));
                } else if a.stand.as_ref().is_some_and(|s| s.moment == Moment::WindowEnd) {
                    parts.push("catching up was not observed".to_string());
                }
                line.push_str("; ");
                line.push_str(&parts.join("; "));
            }
            line
        })
        .collect()
}

/// Archive lag over the scenario's waits: (waits, mean seconds, max seconds).
/// Most findings a report lists one by one; the rest are counted.
const AMCHECK_LISTED: usize = 20;

/// `verify.amcheck`'s headline and its findings, one line each (at most 20, then a count);
/// `None` when no check was asked for or reached.
pub(super) fn amcheck_lines(r: &ScenarioResult) -> Option<(String, Vec<String>)> {
    let a = r.outcome.amcheck.as_ref()?;
    Some((a.headline(), a.finding_lines(AMCHECK_LISTED)))
}

pub(super) fn archive_lag(r: &ScenarioResult) -> Option<(usize, f64, f64)> {
    let n = r.archive.archive_waits.len();
    if n == 0 {
        return None;
    }
    let sum: f64 = r.archive.archive_waits.iter().map(|w| w.seconds).sum();
    let max = r
        .archive
        .archive_waits
        .iter()
        .map(|w| w.seconds)
        .fold(0.0_f64, f64::max);
    Some((n, sum / n as f64, max))
}

pub(super) fn rows_lost(r: &ScenarioResult) -> Option<u64> {
    r.outcome.verification.as_ref().map(|v| v.rows_lost)
}

/// `24.0 MiB`.
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `recovery.command`: the script's run in one line (`fixtures/restore.sh: exit 0 in 0.23 s`)
/// and its captured output (already bounded and redacted by the backend).
pub fn script_run(r: &ScenarioResult) -> Option<(String, &str)> {
    let s = r.recovery.script.as_ref()?;
    let how = match (s.exit_code, s.timed_out) {
        (_, true) => "killed at its deadline".to_string(),
        (Some(c), false) => format!("exit {c}"),
        (None, false) => "ended by a signal".to_string(),
    };
    let elided = if s.output_elided > 0 {
        format!(", {} bytes of output left out", s.output_elided)
    } else {
        String::new()
    };
    Some((
        format!("{}: {how} in {:.2} s{elided}", s.command, s.seconds),
        s.output.as_str(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    /// A result is held in parts but serialised flat, as one object, and reads back.
    #[test]
    fn a_result_serialises_flat_and_reads_back() {
        let results = fixture::events()
            .into_iter()
            .chain(fixture::random_events())
            .filter_map(|e| match e {
                Event::ScenarioFinished(r) => Some(r),
                _ => None,
            });
        for r in results {
            let v = serde_json::to_value(&r).unwrap();
            for key in [
                "name",
                "server_name",
                "backup_id",
                "rows_expected",
                "status",
                "log",
            ] {
                assert!(v.get(key).is_some(), "{key} in {v}");
            }
            for part in ["scenario", "servers", "recovery", "outcome", "archive"] {
                assert!(v.get(part).is_none(), "{part} in {v}");
            }
            assert_eq!(serde_json::from_value::<ScenarioResult>(v).unwrap(), *r);
        }
    }

    #[test]
    fn results_come_in_plan_order_and_unfinished_are_named() {
        let mut rec = RunRecord::default();
        let events = fixture::events();
        // Feed the results in reverse finish order to show plan order wins.
        let (finished, others): (Vec<&Event>, Vec<&Event>) = events
            .iter()
            .partition(|e| matches!(e, Event::ScenarioFinished(_)));
        for e in others.iter().chain(finished.iter().rev()) {
            rec.record(e);
        }
        let names: Vec<&str> = rec
            .results()
            .iter()
            .map(|r| r.scenario.name.as_str())
            .collect();
        assert_eq!(names, fixture::SCENARIOS);
        assert!(rec.unfinished().is_empty());
        assert_eq!(
            rec.totals().sentence(),
            "1 passed, 1 failed, 1 error",
            "{:?}",
            rec.totals()
        );

        let mut rec = RunRecord::default();
        for e in fixture::interrupted_events() {
            rec.record(&e);
        }
        let unfinished = rec.unfinished();
        assert_eq!(unfinished.len(), 2);
        assert_eq!(unfinished[0].verdict(), "NOT FINISHED");
        assert_eq!(unfinished[1].verdict(), "NOT RUN");
        assert_eq!(
            rec.totals().sentence(),
            "1 passed, 0 failed, 0 errors, 2 not finished"
        );
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(25_165_824), "24.0 MiB");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
