//! Game-day reports from a `GamedayRecord`: JUnit (the game day's cases plus the audit's
//! suite), JSON, and a one-page Markdown record. Pure formatting; the caller writes files.

use std::fmt::Write;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::backend::amcheck::{self, AmcheckOutcome};
use crate::runner::{Reason, Status};

/// Most amcheck findings a report lists one by one; the rest are counted.
pub const AMCHECK_LISTED: usize = 20;

use super::record::{GamedayRecord, RestoreOutcome};

/// A testcase; a failure carries its reason code as its `type`.
fn case(name: &str, failure: Option<String>, code: Reason) -> TestCase {
    let status = match failure {
        None => TestCaseStatus::success(),
        Some(msg) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_type(code.code());
            s.set_message(msg.lines().next().unwrap_or_default().to_string());
            s.set_description(msg);
            s
        }
    };
    TestCase::new(name, status)
}

/// JUnit: suite `gameday <name>` (restore, RTO, RPO, one case per check) and the audit suite.
pub fn junit(r: &GamedayRecord) -> Result<String, quick_junit::SerializeError> {
    let mut suite = TestSuite::new(format!("gameday {}", r.name));
    suite.set_timestamp(r.started_at);
    suite.set_time(Duration::from_secs_f64(r.seconds.max(0.0)));
    let props = [
        ("operator", Some(r.operator.clone())),
        ("backend", Some(r.backend.clone())),
        ("archive", Some(r.archive.clone())),
        ("backup_id", r.backup_id.clone()),
        ("target", Some(r.target.clone())),
        ("target.resolved", r.resolved_target.clone()),
        ("seed", Some(r.seed.to_string())),
        ("failure.reason", r.reason.map(|c| c.code().to_string())),
        ("postgres", r.postgres_version.clone()),
        ("amcheck", r.amcheck.as_ref().map(AmcheckOutcome::headline)),
        (
            "amcheck.findings",
            r.amcheck.as_ref().map(AmcheckOutcome::findings_label),
        ),
        ("recovered_to", r.recovered_to.map(|t| t.to_rfc3339())),
        (
            "rto.seconds",
            r.rto.as_ref().map(|x| format!("{:.3}", x.seconds)),
        ),
        (
            "rpo.seconds",
            r.rpo
                .as_ref()
                .and_then(|x| x.seconds)
                .map(|s| format!("{s:.3}")),
        ),
    ];
    for (k, v) in props {
        if let Some(v) = v {
            suite.add_property(Property::new(k, v));
        }
    }
    let classname = format!("pgdrill.gameday.{}", r.backend);
    let mut add = |mut tc: TestCase| {
        tc.set_classname(classname.clone());
        suite.add_test_case(tc);
    };
    let restore_failure = match (&r.restore, &r.status) {
        (RestoreOutcome::Failed { message }, _) => Some(message.clone()),
        (RestoreOutcome::NotAttempted, Status::Error { message }) => Some(message.clone()),
        (RestoreOutcome::NotAttempted, Status::Failed { reasons }) => Some(reasons.join("\n")),
        (RestoreOutcome::NotAttempted, Status::Passed) => Some("not attempted".into()),
        (RestoreOutcome::Recovered, Status::Failed { reasons }) => reasons
            .iter()
            .find(|x| x.starts_with("the archive has a gap"))
            .cloned(),
        (RestoreOutcome::Recovered, _) => None,
    };
    let mut restore = case(
        &format!(
            "restore {} to {}",
            r.backup_id.as_deref().unwrap_or("(no backup)"),
            r.resolved_target.as_deref().unwrap_or(&r.target)
        ),
        restore_failure,
        r.reason.unwrap_or(Reason::Unknown),
    );
    if let Some(rto) = &r.rto {
        restore.set_time(Duration::from_secs_f64(rto.seconds.max(0.0)));
    }
    add(restore);
    if let Some(rto) = &r.rto
        && let Some(b) = rto.budget_seconds
    {
        add(case(
            "RTO budget",
            (rto.seconds > b)
                .then(|| format!("RTO {:.1}s is over the budget of {b:.1}s", rto.seconds)),
            Reason::RtoBudgetExceeded,
        ));
    }
    if let Some(rpo) = &r.rpo
        && rpo.budget_seconds.is_some()
    {
        add(case("RPO budget", rpo.missed(), Reason::RpoBudgetExceeded));
    }
    for c in &r.checks {
        add(case(
            &format!("check: {}", c.name),
            (!c.passed).then(|| c.message.clone().unwrap_or_default()),
            Reason::CheckFailed,
        ));
    }
    if let Some(a @ AmcheckOutcome::Ran(run)) = &r.amcheck {
        let unexpected = amcheck::unmet(run, &[]);
        let mut tc = case(
            "amcheck",
            (!unexpected.is_empty()).then(|| {
                let mut text = unexpected.join("\n");
                text.push_str("\n\n");
                text.push_str(&a.finding_lines(AMCHECK_LISTED).join("\n"));
                text
            }),
            Reason::AmcheckFindings,
        );
        tc.set_time(Duration::from_secs_f64(run.seconds.max(0.0)));
        add(tc);
    }
    let mut report = Report::new(format!("pgdrill-gameday-{}", r.name));
    report.add_test_suite(suite);
    if let Some(a) = &r.audit {
        report.add_test_suite(crate::audit::output::suite(a));
    }
    report.to_string()
}

fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

/// The one-page game-day record.
pub fn markdown(r: &GamedayRecord) -> String {
    let mut o = String::new();
    let verdict = match &r.status {
        Status::Passed => "PASSED",
        Status::Failed { .. } => "FAILED",
        Status::Error { .. } => "ERROR",
    };
    let _ = writeln!(o, "# Game day `{}`: {verdict}\n", r.name);
    if !r.description.trim().is_empty() {
        let _ = writeln!(o, "{}\n", r.description.trim());
    }
    match &r.status {
        Status::Passed => {
            let _ = writeln!(o, "The restore met every check and budget.\n");
        }
        Status::Failed { reasons } => {
            let _ = writeln!(o, "Not met:\n");
            for x in reasons {
                let _ = writeln!(o, "- {}", x.replace('\n', " "));
            }
            o.push('\n');
        }
        Status::Error { message } => {
            let _ = writeln!(
                o,
                "The game day could not run to the end (this says nothing about the backups):\n\n```\n{message}\n```\n"
            );
        }
    }
    if let Some(c) = r.reason {
        let _ = writeln!(o, "Reason code: `{c}`.\n");
    }
    let _ = writeln!(o, "| | |\n|---|---|");
    let rows = [
        ("Who", r.operator.clone()),
        (
            "When",
            r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ),
        ("Backend", r.backend.clone()),
        ("Archive", code(&r.archive)),
        ("Endpoint", code(&r.endpoint)),
        ("Backup", r.backup_id.as_deref().map_or("none".into(), code)),
        (
            "Target",
            match &r.resolved_target {
                Some(t) if *t != r.target => format!("{} → {}", code(&r.target), code(t)),
                _ => code(&r.target),
            },
        ),
        ("Seed", r.seed.to_string()),
        (
            "PostgreSQL",
            r.postgres_version
                .clone()
                .unwrap_or_else(|| format!("{} (not started)", r.postgres_major)),
        ),
        (
            "Recovered to",
            r.recovered_to
                .map_or("no transaction replayed".into(), |t| t.to_rfc3339()),
        ),
        (
            "RTO",
            r.rto.as_ref().map_or("not measured".into(), |x| {
                format!(
                    "{:.1} s{}",
                    x.seconds,
                    x.budget_seconds
                        .map_or(String::new(), |b| format!(" (budget {b:.0} s)"))
                )
            }),
        ),
        (
            "RPO",
            r.rpo.as_ref().map_or("not measured".into(), |x| {
                format!(
                    "{} behind the {} ({}){}",
                    x.seconds.map_or("unknown".into(), |s| format!("{s:.1} s")),
                    x.reference,
                    x.reference_at.to_rfc3339(),
                    x.budget_seconds
                        .map_or(String::new(), |b| format!(", budget {b:.0} s"))
                )
            }),
        ),
        ("Took", format!("{:.1} s", r.seconds)),
    ];
    for (k, v) in rows {
        let _ = writeln!(o, "| {k} | {} |", v.replace('|', "\\|"));
    }
    o.push('\n');
    if let Some(rto) = &r.rto
        && !rto.phases.is_empty()
    {
        let _ = writeln!(o, "## Recovery time\n\n| Phase | Seconds |\n|---|---:|");
        for p in &rto.phases {
            let _ = writeln!(o, "| {} | {:.2} |", p.name, p.seconds);
        }
        o.push('\n');
    }
    if !r.checks.is_empty() {
        let _ = writeln!(
            o,
            "## Checks\n\n| Check | Expected | Observed | Result |\n|---|---|---|---|"
        );
        for c in &r.checks {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                c.name.replace('|', "\\|"),
                c.expected.replace('|', "\\|"),
                c.observed.as_deref().unwrap_or("–").replace('|', "\\|"),
                if c.passed {
                    "pass".to_string()
                } else {
                    format!(
                        "FAIL: {}",
                        c.message.as_deref().unwrap_or("").replace('|', "\\|")
                    )
                }
            );
        }
        o.push('\n');
    }
    if let Some(a) = &r.amcheck {
        let _ = writeln!(o, "## Integrity (pg_amcheck)\n\n{}\n", a.headline());
        for f in a.finding_lines(AMCHECK_LISTED) {
            let _ = writeln!(o, "- {f}");
        }
        o.push('\n');
    }
    if let Some(a) = &r.audit {
        let _ = writeln!(o, "## Archive audit\n");
        let _ = writeln!(
            o,
            "{} backup(s), timelines {:?}, gaps on recovery's path: {}.",
            a.backups.len(),
            a.timelines,
            if a.gaps.is_empty() {
                "none".to_string()
            } else {
                a.gaps
                    .iter()
                    .map(|g| code(&g.segment))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        for f in &a.findings {
            let _ = writeln!(o, "- {}: {}", f.severity, f.message);
        }
        o.push('\n');
    }
    if !r.kept.is_empty() {
        let _ = writeln!(o, "## Kept\n");
        for k in &r.kept {
            let _ = writeln!(o, "- {k}");
        }
    }
    o
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::Rto;
    use crate::backend::{Phase, PhaseName};
    use crate::gameday::plan::{CheckResult, Rpo};
    use chrono::{TimeZone, Utc};

    /// A failed game day (RTO over budget, one check failed); other formats' tests use it too.
    pub(crate) fn record() -> GamedayRecord {
        let at = |s: u32| Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, s).unwrap();
        GamedayRecord {
            name: "orders-quarterly".into(),
            description: "Quarterly restore test.".into(),
            file: "gamedays/orders.yaml".into(),
            operator: "dr-team".into(),
            started_at: at(0),
            seconds: 42.0,
            backend: "local".into(),
            archive: "s3://backups/prod/orders-pg".into(),
            endpoint: "https://s3.example".into(),
            postgres_major: 16,
            postgres_version: Some("16.6".into()),
            seed: 7,
            target: "latest".into(),
            resolved_target: Some("latest".into()),
            random_window: None,
            backup_id: Some("20261122T020000".into()),
            audit: None,
            restore: RestoreOutcome::Recovered,
            recovered_to: Some(at(30)),
            rto: Some(Rto {
                seconds: 12.5,
                phases: vec![Phase {
                    name: PhaseName::RestoreBaseBackup,
                    started_at: at(1),
                    finished_at: at(9),
                    seconds: 8.0,
                    bytes: None,
                }],
                wal_segments_replayed: 3,
                bytes_downloaded: 0,
                budget_seconds: Some(10.0),
                ..Default::default()
            }),
            rpo: Some(Rpo::measure(
                "newest archived WAL",
                at(40),
                Some(at(30)),
                Some(60.0),
            )),
            checks: vec![
                CheckResult {
                    name: "orders".into(),
                    query: "select count(*) from orders".into(),
                    expected: ">= 100".into(),
                    observed: Some("120".into()),
                    passed: true,
                    message: None,
                },
                CheckResult {
                    name: "orphans".into(),
                    query: "file: checks/orphans.sql".into(),
                    expected: "= 0".into(),
                    observed: Some("3".into()),
                    passed: false,
                    message: Some("expected `0`, got `3`".into()),
                },
            ],
            amcheck: None,
            status: Status::Failed {
                reasons: vec![
                    "RTO 12.5s is over the budget of 10.0s".into(),
                    "check `orphans` failed: expected `0`, got `3`".into(),
                ],
            },
            reason: Some(crate::runner::Reason::RtoBudgetExceeded),
            kept: vec![],
        }
    }

    #[test]
    fn amcheck_findings_are_a_case_of_their_own() {
        let mut r = record();
        r.amcheck = Some(AmcheckOutcome::Ran(
            crate::backend::amcheck::AmcheckRun::from_output(
                "pg_amcheck (PostgreSQL) 15.15".into(),
                vec![],
                2,
                0.5,
                "btree index \"orders.public.orders_sort_key\":\n    ERROR:  heap tuple (0,1) from table \"orders\" lacks matching index tuple within index \"orders_sort_key\"\n",
            ),
        ));
        let xml = junit(&r).unwrap();
        assert!(
            xml.contains(r#"name="amcheck.findings" value="1""#),
            "{xml}"
        );
        assert!(xml.contains(r#"<testcase name="amcheck""#), "{xml}");
        assert!(xml.contains(r#"type="amcheck_findings""#), "{xml}");
        assert!(
            xml.contains(
                "amcheck: unexpected corruption in btree index orders.public.orders_sort_key"
            ),
            "{xml}"
        );
        let md = markdown(&r);
        assert!(md.contains("## Integrity (pg_amcheck)"), "{md}");
        assert!(
            md.contains("- btree index orders.public.orders_sort_key: heap tuple (0,1)"),
            "{md}"
        );
        r.amcheck = Some(AmcheckOutcome::NotRun {
            why: "no pg_amcheck for PostgreSQL 16".into(),
        });
        let xml = junit(&r).unwrap();
        assert!(
            !xml.contains(r#"<testcase name="amcheck""#),
            "no case when it did not run: {xml}"
        );
        assert!(
            xml.contains("not run: no pg_amcheck for PostgreSQL 16"),
            "{xml}"
        );
        assert!(markdown(&r).contains("not run: no pg_amcheck for PostgreSQL 16"));
    }

    #[test]
    fn markdown_and_junit() {
        let r = record();
        insta::assert_snapshot!("gameday_md", markdown(&r));
        let xml = junit(&r).unwrap();
        insta::assert_snapshot!("gameday_junit", xml);
        assert_eq!(
            xml.matches("<failure").count(),
            2,
            "RTO budget and one check"
        );
        assert!(xml.contains(r#"name="check: orders""#));
    }
}
