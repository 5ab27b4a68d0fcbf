//! `junit.xml`: one test suite per run, one test case per scenario (plus one per target of a
//! `target: random` drill), for CI test-result views; never decides a verdict, it only renders
//! the one in the events.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::runner::{Event, Reason, ScenarioResult, Status, TargetResult};

use super::dir::write_file;
use super::record::{self, RunRecord, Unfinished};
use super::{ReportError, Reporter};

/// Writes `dir/junit.xml` on `finish`.
#[derive(Debug)]
pub struct JunitReporter {
    path: PathBuf,
    run: RunRecord,
}

impl JunitReporter {
    /// The file name under the run directory.
    pub const FILE: &'static str = "junit.xml";

    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(Self::FILE),
            run: RunRecord::default(),
        }
    }

    fn render(&self) -> Result<String, ReportError> {
        let info = self.run.info()?;
        let classname = format!("pgdrill.{}", info.backend);
        let mut suite = TestSuite::new(classname.as_str());
        suite.set_timestamp(info.started_at.fixed_offset());
        suite.add_property(("run_id", info.run_id.as_str()));
        suite.add_property(("backend", info.backend.as_str()));
        for r in self.run.results() {
            suite.add_test_case(test_case(r));
            for t in &r.targets {
                suite.add_test_case(target_case(r, t));
            }
        }
        for u in self.run.unfinished() {
            suite.add_test_case(unfinished_case(&u, &classname));
        }

        let mut report = Report::new("pgdrill");
        report.set_timestamp(info.started_at.fixed_offset());
        if let Some(d) = self.run.finished().and_then(|(_, s)| duration(s)) {
            suite.set_time(d);
            report.set_time(d);
        }
        report.add_test_suite(suite);
        report.to_string().map_err(|source| ReportError::Junit {
            path: self.path.clone(),
            source,
        })
    }
}

impl Reporter for JunitReporter {
    fn on_event(&mut self, event: &Event) -> Result<(), ReportError> {
        self.run.record(event);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        let xml = self.render()?;
        write_file(&self.path, xml.as_bytes())
    }
}

fn test_case(r: &ScenarioResult) -> TestCase {
    let explanation = record::explanation(r);
    let status = case_status(&r.status, r.reason, explanation, "drill failed");
    let mut case = TestCase::new(r.scenario.name.as_str(), status);
    case.set_classname(format!("pgdrill.{}", r.scenario.backend));
    case.set_timestamp(r.scenario.started_at.fixed_offset());
    if let Some(d) = duration(r.scenario.seconds) {
        case.set_time(d);
    }
    case.add_properties(properties(r));

    let mut out = r.log.join("\n");
    if let Some((line, output)) = record::script_run(r) {
        out.push_str(&format!("\n\nrestore script {line}; output:\n{output}"));
    }
    if !explanation.is_empty() {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&explanation.join("\n"));
    }
    if !out.is_empty() {
        case.set_system_out(out);
    }
    case
}

/// The JUnit status of a verdict: a failure carries its first reason as the message and every
/// reason plus the loss explanation as the description; an error its first line and, when it
/// has more, the whole text. Both carry the stable reason code as their `type`.
fn case_status(
    status: &Status,
    reason: Option<Reason>,
    explanation: &[String],
    failed: &str,
) -> TestCaseStatus {
    let mut s = plain_case_status(status, explanation, failed);
    if let (Some(r), TestCaseStatus::NonSuccess { .. }) = (reason, &s) {
        s.set_type(r.code());
    }
    s
}

fn plain_case_status(status: &Status, explanation: &[String], failed: &str) -> TestCaseStatus {
    match status {
        Status::Passed => TestCaseStatus::success(),
        Status::Failed { reasons } => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(reasons.first().map(String::as_str).unwrap_or(failed));
            let mut description = reasons.join("\n");
            if !explanation.is_empty() {
                description.push_str("\n\n");
                description.push_str(&explanation.join("\n"));
            }
            s.set_description(description);
            s
        }
        Status::Error { message } => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(message.lines().next().unwrap_or("harness error"));
            if message.lines().nth(1).is_some() {
                s.set_description(message.as_str());
            }
            s
        }
    }
}

/// A random target's own testcase, `<scenario> [3/6 lsn 0/3000060]`, with the seed that
/// picked it so a failure can be replayed with `pgdrill run --seed`.
fn target_case(r: &ScenarioResult, t: &TargetResult) -> TestCase {
    let explanation: &[String] = t
        .verification
        .as_ref()
        .map_or(&[], |v| v.explanation.as_slice());
    let status = case_status(&t.status, t.reason, explanation, "target failed");
    let mut case = TestCase::new(format!("{} [{}]", r.scenario.name, t.label()), status);
    case.set_classname(format!("pgdrill.{}", r.scenario.backend));
    if let Some(d) = t.rto.as_ref().and_then(|x| duration(x.seconds)) {
        case.set_time(d);
    }
    let some = |name: &str, value: Option<String>| value.map(|v| Property::new(name, v));
    let rpo = t.verification.as_ref().and_then(|v| v.rpo.as_ref());
    case.add_properties(
        [
            some("backend", Some(r.scenario.backend.clone())),
            some("seed", Some(r.scenario.seed.to_string())),
            some("recovery.target", Some(t.target.clone())),
            some("recovery.target.kind", Some(t.kind.to_string())),
            some("recovery.target.around", Some(t.around.clone())),
            some(
                "recovery.target.index",
                Some(format!("{}/{}", t.index, t.count)),
            ),
            some("recovery.server_name", Some(t.server_name.clone())),
            some("backup_id", t.backup_id.clone()),
            some("rows.expected", t.rows_expected.map(|n| n.to_string())),
            some("rows.observed", t.rows_observed.map(|n| n.to_string())),
            some(
                "rows.lost",
                t.verification.as_ref().map(|v| v.rows_lost.to_string()),
            ),
            some(
                "rto.seconds",
                t.rto.as_ref().map(|x| format!("{:.3}", x.seconds)),
            ),
            some("rpo.seconds", rpo.map(|x| format!("{:.3}", x.seconds))),
            some(
                "rpo.transactions_lost",
                rpo.map(|x| x.transactions_lost.to_string()),
            ),
            some("observation", Some(record::observation(&t.observation))),
            some("failure.reason", t.reason.map(|x| x.code().to_string())),
        ]
        .into_iter()
        .flatten(),
    );
    if !explanation.is_empty() {
        case.set_system_out(explanation.join("\n"));
    }
    case
}

/// The testcase properties; absent values are left out rather than written empty.
fn properties(r: &ScenarioResult) -> Vec<Property> {
    let some = |name: &str, value: Option<String>| value.map(|v| Property::new(name, v));
    [
        some("backend", Some(r.scenario.backend.clone())),
        some("failure.reason", r.reason.map(|x| x.code().to_string())),
        some("postgres.source", r.servers.source_postgres.clone()),
        some("postgres.recovery", r.servers.recovery_postgres.clone()),
        some("server_name", Some(r.servers.server_name.clone())),
        some(
            "recovery.server_name",
            Some(r.servers.recovery_server_name.clone()),
        ),
        some("destination", Some(r.servers.destination.clone())),
        some("backup_id", r.recovery.backup_id.clone()),
        some(
            "restore_script",
            record::script_run(r).map(|(line, _)| line),
        ),
        some("backup.step", r.recovery.backup_step.clone()),
        some("backup.fallback", r.recovery.backup_fallback.clone()),
        some("recovery.target", Some(r.recovery.recovery_target.clone())),
        some(
            "recovery.target.resolved",
            r.recovery.resolved_target.clone(),
        ),
        some(
            "rows.expected",
            r.outcome.rows_expected.map(|n| n.to_string()),
        ),
        some(
            "rows.observed",
            r.outcome.rows_observed.map(|n| n.to_string()),
        ),
        some("rows.lost", record::rows_lost(r).map(|n| n.to_string())),
        some("amcheck", record::amcheck_lines(r).map(|(h, _)| h)),
        some(
            "amcheck.findings",
            r.outcome.amcheck.as_ref().map(|a| a.findings_label()),
        ),
        some(
            "rto.seconds",
            r.outcome.rto.as_ref().map(|t| format!("{:.3}", t.seconds)),
        ),
        some(
            "recovery.replay_end",
            r.outcome.rto.as_ref().and_then(|t| t.replay_end.clone()),
        ),
        some(
            "audit.gaps",
            r.recovery.audit.as_ref().map(|a| {
                if a.gaps.is_empty() {
                    "none".to_string()
                } else {
                    a.gaps.join(",")
                }
            }),
        ),
        some(
            "audit.predicted_rows_lost",
            r.recovery
                .audit
                .as_ref()
                .map(|a| a.predicted_lost_rows.to_string()),
        ),
        some(
            "audit.prediction",
            r.recovery.audit.as_ref().map(|a| a.prediction.clone()),
        ),
        some(
            "rpo.seconds",
            record::rpo(r).map(|x| format!("{:.3}", x.seconds)),
        ),
        some(
            "rpo.transactions_lost",
            record::rpo(r).map(|x| x.transactions_lost.to_string()),
        ),
        some(
            "archive.waits",
            record::archive_lag(r).map(|(n, _, _)| n.to_string()),
        ),
        some(
            "archive.lag.mean_seconds",
            record::archive_lag(r).map(|(_, m, _)| format!("{m:.3}")),
        ),
        some(
            "archive.lag.max_seconds",
            record::archive_lag(r).map(|(_, _, x)| format!("{x:.3}")),
        ),
        some("seed", Some(r.scenario.seed.to_string())),
        some(
            "expected_outcome",
            Some(r.recovery.expected_outcome.clone()),
        ),
        some(
            "observation",
            Some(record::observation(&r.recovery.observation)),
        ),
    ]
    .into_iter()
    .flatten()
    .chain(rto_properties(r))
    .chain(fault_properties(r))
    .collect()
}

/// `rto.phase.<name>` (seconds, in the order the phases ran), `rto.wal_segments_replayed`,
/// `rto.slowest_phase` and, where known, the throughputs `rto.<what>_mb_per_second`, so a CI
/// dashboard shows where a recovery's time went without opening rto.json.
fn rto_properties(r: &ScenarioResult) -> Vec<Property> {
    let Some(rto) = &r.outcome.rto else {
        return Vec::new();
    };
    let rates = [
        (
            "rto.base_backup_mb_per_second",
            rto.base_backup_mb_per_second(),
        ),
        (
            "rto.wal_fetched_mb_per_second",
            rto.wal_fetched_mb_per_second(),
        ),
        (
            "rto.wal_replayed_mb_per_second",
            rto.wal_replayed_mb_per_second(),
        ),
    ];
    rto.phases
        .iter()
        .map(|p| Property::new(format!("rto.phase.{}", p.name), format!("{:.3}", p.seconds)))
        .chain(std::iter::once(Property::new(
            "rto.wal_segments_replayed",
            rto.wal_segments_replayed.to_string(),
        )))
        .chain(
            rto.slowest_phase()
                .map(|p| Property::new("rto.slowest_phase", p.name.to_string())),
        )
        .chain(
            rates
                .into_iter()
                .filter_map(|(k, v)| Some(Property::new(k, format!("{:.3}", v?)))),
        )
        .collect()
}

/// `fault.<step>` and, when measured, what it did to archiving.
fn fault_properties(r: &ScenarioResult) -> Vec<Property> {
    let mut out = Vec::new();
    for f in &r.archive.faults {
        let key = |k: &str| format!("fault.{}.{k}", f.step_id);
        out.push(Property::new(
            format!("fault.{}", f.step_id),
            f.action.clone(),
        ));
        let Some(a) = &f.archiver else { continue };
        if let Some(s) = a.failing_after_seconds {
            out.push(Property::new(
                key("failing_after_seconds"),
                format!("{s:.3}"),
            ));
        }
        out.push(Property::new(
            key("failed_attempts"),
            a.failed_attempts.to_string(),
        ));
        if let Some(s) = &a.stand {
            out.push(Property::new(key("exposure.moment"), s.moment.to_string()));
            out.push(Property::new(
                key("exposure.seconds"),
                format!("{:.3}", s.exposure_seconds),
            ));
            out.push(Property::new(
                key("exposure.transactions"),
                s.exposed_transactions.to_string(),
            ));
        }
        if let Some(c) = a.caught_up_after_seconds {
            out.push(Property::new(
                key("caught_up_after_seconds"),
                format!("{c:.3}"),
            ));
        }
    }
    out
}

/// A scenario with no result: an error if it was running when the run stopped, skipped if it
/// never started.
fn unfinished_case(u: &Unfinished, classname: &str) -> TestCase {
    let mut status = match u.started_at {
        Some(_) => TestCaseStatus::non_success(NonSuccessKind::Error),
        None => TestCaseStatus::skipped(),
    };
    status.set_message(u.sentence());
    let mut case = TestCase::new(u.name.as_str(), status);
    case.set_classname(classname);
    if let Some(at) = u.started_at {
        case.set_timestamp(at.fixed_offset());
    }
    case
}

fn duration(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use quick_junit::Report;

    use super::*;
    use crate::report::fixture;

    fn write(events: &[Event]) -> String {
        fixture::written(JunitReporter::new, JunitReporter::FILE, events)
    }

    #[test]
    fn snapshot() {
        insta::assert_snapshot!("junit.xml", write(&fixture::events()));
    }

    #[test]
    fn parses_back_with_one_failure_one_error_and_the_properties() {
        let xml = write(&fixture::events());
        let report = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((report.tests, report.failures, report.errors), (3, 1, 1));
        let suite = &report.test_suites[0];
        assert_eq!(report.test_suites.len(), 1);
        assert_eq!(suite.name.as_str(), "pgdrill.local");
        let run_id = suite
            .properties
            .iter()
            .find(|p| p.name.as_str() == "run_id");
        assert_eq!(run_id.unwrap().value.as_str(), fixture::RUN_ID);

        let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, fixture::SCENARIOS);
        let failed = &suite.test_cases[1];
        assert_eq!(failed.classname.as_ref().unwrap().as_str(), "pgdrill.local");
        let TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Failure,
            message,
            description,
            ..
        } = &failed.status
        else {
            panic!("{:?}", failed.status)
        };
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "unexpected data loss: 2 rows missing"
        );
        let description = description.as_ref().unwrap().as_str();
        assert!(description.contains("events: expected 27 rows, observed 25"));
        assert!(description.contains("absent from the archive"));
        let prop = |name: &str| {
            failed
                .properties
                .iter()
                .find(|p| p.name.as_str() == name)
                .map(|p| p.value.as_str().to_string())
        };
        assert_eq!(prop("rows.lost").as_deref(), Some("2"));
        assert_eq!(prop("rows.expected").as_deref(), Some("27"));
        assert_eq!(prop("rows.observed").as_deref(), Some("25"));
        assert_eq!(prop("seed").as_deref(), Some("7"));
        assert_eq!(prop("rto.seconds").as_deref(), Some("3.000"));
        let out = failed.system_out.as_ref().unwrap().as_str();
        assert!(out.starts_with("base (base_backup)"), "{out}");
        assert!(out.contains("unreachable past the gap"), "{out}");

        let errored = &suite.test_cases[2];
        assert!(matches!(
            errored.status,
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Error,
                ..
            }
        ));
        let prop_names: Vec<&str> = errored.properties.iter().map(|p| p.name.as_str()).collect();
        assert!(
            !prop_names.contains(&"backup_id"),
            "absent values are left out"
        );
        assert!(prop_names.contains(&"observation"));
    }

    #[test]
    fn random_targets_get_a_testcase_each_with_the_seed() {
        let xml = write(&fixture::random_events());
        insta::assert_snapshot!("junit-random.xml", xml);
        let report = Report::deserialize_from_str(&xml).unwrap();
        // The scenario, then its three targets; the scenario and two targets failed.
        assert_eq!((report.tests, report.failures, report.errors), (4, 3, 0));
        let cases = &report.test_suites[0].test_cases;
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                fixture::RANDOM_SCENARIO,
                "random-pitr-targets [1/3 time 2026-11-22 10:00:04.500000+00]",
                "random-pitr-targets [2/3 lsn 0/4000200]",
                "random-pitr-targets [3/3 xid 746]",
            ]
        );
        for c in cases {
            let seed = c.properties.iter().find(|p| p.name.as_str() == "seed");
            assert_eq!(seed.unwrap().value.as_str(), "42", "{:?}", c.name);
        }
        assert!(matches!(cases[1].status, TestCaseStatus::Success { .. }));
        let TestCaseStatus::NonSuccess { message, .. } = &cases[2].status else {
            panic!("{:?}", cases[2].status)
        };
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "unexpected data loss: 1 row missing"
        );
        let lost = cases[2]
            .properties
            .iter()
            .find(|p| p.name.as_str() == "rows.lost")
            .unwrap();
        assert_eq!(lost.value.as_str(), "1");
    }

    #[test]
    fn an_interrupted_run_still_lists_every_scenario() {
        let xml = write(&fixture::interrupted_events());
        let report = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((report.tests, report.failures, report.errors), (3, 0, 1));
        let cases = &report.test_suites[0].test_cases;
        assert!(matches!(cases[2].status, TestCaseStatus::Skipped { .. }));
        assert!(report.time.is_none(), "no RunFinished, no run time");
    }

    #[test]
    fn finish_without_run_started_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = JunitReporter::new(dir.path());
        assert!(matches!(r.finish(), Err(ReportError::NoRun)));
        assert!(!dir.path().join(JunitReporter::FILE).exists());
    }
}
