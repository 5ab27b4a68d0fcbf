//! An `AuditReport` as a human table, JSON, or a JUnit file. Formatting only.

use std::fmt::Write;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::model::{AuditReport, Check, Gap};

fn gap(g: &Option<Gap>) -> String {
    g.as_ref()
        .map(|g| format!("{} (TL {})", g.segment, g.timeline))
        .unwrap_or_else(|| "-".into())
}

fn age(secs: Option<i64>) -> String {
    match secs {
        None => "unknown".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) => format!("{:.1}h", s as f64 / 3600.0),
    }
}

/// The human table `pgdrill audit` prints by default.
pub fn table(r: &AuditReport, url: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "archive {url}  (timelines {:?}, WAL segment size {} MiB)",
        r.timelines,
        r.wal_segment_size / (1024 * 1024)
    );
    let _ = writeln!(
        o,
        "{:<18} {:<7} {:>3} {:<25} {:<25} {:<9} {:<32} first gap",
        "backup", "status", "TL", "begin wal", "end wal", "to end", "recoverable until"
    );
    for b in &r.backups {
        let _ = writeln!(
            o,
            "{:<18} {:<7} {:>3} {:<25} {:<25} {:<9} {:<32} {}",
            b.id,
            b.status,
            b.timeline,
            b.begin_wal,
            b.end_wal,
            if b.recoverable_to_end { "yes" } else { "NO" },
            gap(&b.recoverable_until),
            gap(&b.first_gap)
        );
    }
    let _ = writeln!(
        o,
        "newest base backup: {} (age {}, limit {}s); newest WAL: {} (age {}, limit {}s)",
        r.newest_backup.as_deref().unwrap_or("none"),
        age(r.newest_backup_age_seconds),
        r.thresholds.max_backup_age_seconds,
        r.newest_wal.as_deref().unwrap_or("none"),
        age(r.newest_wal_age_seconds),
        r.thresholds.max_wal_age_seconds
    );
    for f in &r.findings {
        let _ = writeln!(o, "{}: {}", f.severity, f.message);
    }
    let _ = writeln!(o, "{}", if r.ok() { "audit: OK" } else { "audit: FAILED" });
    o
}

/// JUnit: one testsuite per audited serverName, one testcase per check.
pub fn junit(r: &AuditReport) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("pgdrill-audit");
    report.add_test_suite(suite(r));
    report.to_string()
}

/// The audit as one JUnit testsuite (also part of a game day's JUnit file).
pub fn suite(r: &AuditReport) -> TestSuite {
    let mut suite = TestSuite::new(format!("pgdrill audit {}", r.server_name));
    suite.set_timestamp(r.checked_at);
    let mut case = |name: String, failure: Option<String>| {
        let status = match failure {
            None => TestCaseStatus::success(),
            Some(msg) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(msg);
                s
            }
        };
        let mut tc = TestCase::new(name, status);
        tc.set_classname(format!("audit.{}", r.server_name));
        suite.add_test_case(tc);
    };
    let errors = |check: Check| -> Option<String> {
        let m: Vec<&str> = r
            .findings
            .iter()
            .filter(|f| f.check == check && f.severity == "error")
            .map(|f| f.message.as_str())
            .collect();
        (!m.is_empty()).then(|| m.join("\n"))
    };
    case("wal continuity".into(), errors(Check::WalContinuity));
    case("newest base backup age".into(), errors(Check::BackupAge));
    case("newest WAL age".into(), errors(Check::WalAge));
    for b in &r.backups {
        case(
            format!("backup {} recoverable to its end", b.id),
            (!b.recoverable_to_end)
                .then(|| format!("{} cannot reach consistency: {}", b.id, gap(&b.first_gap))),
        );
    }
    suite
}
