//! Prometheus metrics of what an audit, a run or a game day found, in the text exposition
//! format (node_exporter's textfile collector, a Pushgateway), encoded with prometheus-client:
//! the run's `metrics.prom` reporter and the audit and game-day expositions. Never sends them
//! anywhere and never reads the clock: every time comes from the results. Metric names and
//! labels are a contract with `deploy/prometheus/pgdrill-rules.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::audit::AuditReport;
use crate::gameday::GamedayRecord;
use crate::runner::{Event, Reason, ScenarioResult, Status};

use super::dir::write_file;
use super::{ReportError, Reporter};

type Labels = Vec<(String, String)>;
/// A family's help and its samples.
type Samples = (&'static str, Vec<(Labels, f64)>);

/// One exposition being built: gauge families by name, each with its help and samples, in
/// the order they were first set.
#[derive(Debug, Default)]
pub struct Exposition {
    families: BTreeMap<&'static str, Samples>,
}

impl Exposition {
    fn set(&mut self, name: &'static str, help: &'static str, labels: &Labels, value: f64) {
        self.families
            .entry(name)
            .or_insert_with(|| (help, Vec::new()))
            .1
            .push((labels.clone(), value));
    }

    /// The text exposition (Prometheus text format 0.0.4, which is also what OpenMetrics
    /// parsers read for gauges).
    pub fn encode(&self) -> String {
        let mut registry = Registry::default();
        for (name, (help, samples)) in &self.families {
            let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
            for (labels, value) in samples {
                family.get_or_create(labels).set(*value);
            }
            registry.register(*name, *help, family);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &registry)
            .expect("writing to a String cannot fail");
        samples_in_order(&out)
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }
}

/// The same exposition with each family's samples sorted: a `Family` keeps them in a hash
/// map, so without this two encodings of one result could differ (reports are diffed and
/// snapshot-tested). Only the order of whole sample lines changes.
fn samples_in_order(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut samples: Vec<&str> = Vec::new();
    let flush = |samples: &mut Vec<&str>, out: &mut String| {
        samples.sort_unstable();
        for l in samples.drain(..) {
            out.push_str(l);
            out.push('\n');
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut samples, &mut out);
            out.push_str(line);
            out.push('\n');
        } else {
            samples.push(line);
        }
    }
    flush(&mut samples, &mut out);
    out
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn bool01(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The audit of `server_name` under `destination` (`s3://bucket/path`, the folder holding the
/// serverName folders), read at `report.checked_at`.
pub fn audit(report: &AuditReport, destination: &str) -> Exposition {
    let l = labels(&[
        ("server_name", &report.server_name),
        ("destination", destination),
    ]);
    let mut x = Exposition::default();
    x.set(
        "pgdrill_audit_timestamp_seconds",
        "Unix time the audit read the archive",
        &l,
        unix(report.checked_at),
    );
    x.set(
        "pgdrill_archive_reachable",
        "1 when the archive could be listed and read, 0 when not",
        &l,
        1.0,
    );
    x.set(
        "pgdrill_audit_ok",
        "1 when the audit found no error",
        &l,
        bool01(report.ok()),
    );
    let completed: Vec<_> = report
        .backups
        .iter()
        .filter(|b| b.status == "DONE" && b.complete)
        .collect();
    x.set(
        "pgdrill_base_backups_completed",
        "Base backups with status DONE and their data present",
        &l,
        completed.len() as f64,
    );
    if let Some(age) = report.newest_backup_age_seconds {
        x.set(
            "pgdrill_base_backup_age_seconds",
            "Age at audit time of the newest completed base backup",
            &l,
            age as f64,
        );
    }
    if let Some(end) = completed.iter().filter_map(|b| b.end_time).max() {
        x.set(
            "pgdrill_base_backup_last_success_timestamp_seconds",
            "End time of the newest completed base backup",
            &l,
            unix(end),
        );
    }
    x.set(
        "pgdrill_base_backups_failed_consecutive",
        "How many of the newest base backups in a row are not DONE (one in progress not counted)",
        &l,
        failed_consecutive(report) as f64,
    );
    x.set(
        "pgdrill_wal_archived_segments",
        "WAL segments in the archive",
        &l,
        report.wal_segments as f64,
    );
    if let Some(age) = report.newest_wal_age_seconds {
        x.set(
            "pgdrill_wal_newest_age_seconds",
            "Age at audit time of the newest archived WAL segment",
            &l,
            age as f64,
        );
    }
    x.set(
        "pgdrill_wal_missing_segments",
        "WAL segments recovery needs and the archive lacks (gaps on recovery's path)",
        &l,
        report.gaps.len() as f64,
    );
    x
}

/// Newest backups in a row (by id, barman's start time) that are not DONE. The newest one in
/// progress (`STARTED`, no end time) is not a failure yet and is skipped.
fn failed_consecutive(report: &AuditReport) -> usize {
    let mut newest_first: Vec<_> = report.backups.iter().collect();
    newest_first.sort_by(|a, b| b.id.cmp(&a.id));
    let mut rest = newest_first.as_slice();
    if let [first, tail @ ..] = rest
        && first.status == "STARTED"
        && first.end_time.is_none()
    {
        rest = tail;
    }
    rest.iter()
        .take_while(|b| !(b.status == "DONE" && b.complete))
        .count()
}

/// An audit that could not read the archive: reachability 0 and why.
pub fn audit_unreachable(
    server_name: &str,
    destination: &str,
    at: DateTime<Utc>,
    reason: Reason,
) -> Exposition {
    let l = labels(&[("server_name", server_name), ("destination", destination)]);
    let mut x = Exposition::default();
    x.set(
        "pgdrill_audit_timestamp_seconds",
        "Unix time the audit read the archive",
        &l,
        unix(at),
    );
    x.set(
        "pgdrill_archive_reachable",
        "1 when the archive could be listed and read, 0 when not",
        &l,
        0.0,
    );
    let mut with_reason = l.clone();
    with_reason.push(("reason".into(), reason.code().into()));
    x.set(
        "pgdrill_archive_error",
        "1 for the reason the archive could not be read",
        &with_reason,
        1.0,
    );
    x
}

/// The metric names (and helps) of one kind of recovery test: drills or game days.
struct Names {
    success: Name,
    timestamp: Name,
    rto: Name,
    rpo: Name,
    last_success: Name,
    failure: Name,
}

type Name = (&'static str, &'static str);

const DRILL: Names = Names {
    success: (
        "pgdrill_drill_success",
        "1 when the drill met every expectation of its scenario",
    ),
    timestamp: (
        "pgdrill_drill_timestamp_seconds",
        "Unix time the drill finished",
    ),
    rto: (
        "pgdrill_drill_rto_seconds",
        "Recovery time the drill measured",
    ),
    rpo: (
        "pgdrill_drill_rpo_seconds",
        "Recovery point the drill observed: commit-time distance of the writes lost",
    ),
    last_success: (
        "pgdrill_drill_last_success_timestamp_seconds",
        "Unix time of the newest passed drill of this scenario",
    ),
    failure: (
        "pgdrill_drill_failure",
        "1 for the reason code of a failed drill",
    ),
};

const GAMEDAY: Names = Names {
    success: (
        "pgdrill_gameday_success",
        "1 when the game day's restore met every check and budget",
    ),
    timestamp: (
        "pgdrill_gameday_timestamp_seconds",
        "Unix time the game day finished",
    ),
    rto: (
        "pgdrill_gameday_rto_seconds",
        "Recovery time of the game day's restore",
    ),
    rpo: (
        "pgdrill_gameday_rpo_seconds",
        "Recovery point of the game day's restore: data lost, in seconds of commits",
    ),
    last_success: (
        "pgdrill_gameday_last_success_timestamp_seconds",
        "Unix time of the newest successful game day of this archive",
    ),
    failure: (
        "pgdrill_gameday_failure",
        "1 for the reason code of a failed game day",
    ),
};

/// A drill's or a game day's verdict and measures.
struct Verdict {
    passed: bool,
    finished: DateTime<Utc>,
    rto_seconds: Option<f64>,
    rpo_seconds: Option<f64>,
    /// The newest earlier success known.
    last_success: Option<DateTime<Utc>>,
    reason: Option<Reason>,
}

impl Verdict {
    fn new(status: &Status, started: DateTime<Utc>, seconds: f64, reason: Option<Reason>) -> Self {
        Self {
            passed: matches!(status, Status::Passed),
            finished: started + chrono::Duration::milliseconds((seconds * 1000.0) as i64),
            rto_seconds: None,
            rpo_seconds: None,
            last_success: None,
            reason,
        }
    }

    /// Success, finish time, RTO and RPO when measured, the newest success (this one when it
    /// passed) and, when it failed, `failure{reason}` = 1.
    fn set(&self, x: &mut Exposition, l: &Labels, n: &Names) {
        x.set(n.success.0, n.success.1, l, bool01(self.passed));
        x.set(n.timestamp.0, n.timestamp.1, l, unix(self.finished));
        if let Some(v) = self.rto_seconds {
            x.set(n.rto.0, n.rto.1, l, v);
        }
        if let Some(v) = self.rpo_seconds {
            x.set(n.rpo.0, n.rpo.1, l, v);
        }
        let last = if self.passed {
            Some(
                self.last_success
                    .map_or(self.finished, |t| t.max(self.finished)),
            )
        } else {
            self.last_success
        };
        if let Some(t) = last {
            x.set(n.last_success.0, n.last_success.1, l, unix(t));
        }
        if !self.passed {
            let mut with_reason = l.clone();
            let code = self.reason.unwrap_or(Reason::Unknown);
            with_reason.push(("reason".into(), code.code().into()));
            x.set(n.failure.0, n.failure.1, &with_reason, 1.0);
        }
    }
}

/// A game day's verdict; `last_success` is the newest passed game day of this archive known
/// from earlier records (this one counts when it passed).
pub fn gameday(r: &GamedayRecord, last_success: Option<DateTime<Utc>>) -> Exposition {
    let (destination, server_name) = r
        .archive
        .rsplit_once('/')
        .unwrap_or((r.archive.as_str(), ""));
    let l = labels(&[
        ("gameday", &r.name),
        ("server_name", server_name),
        ("destination", destination),
        ("backend", &r.backend),
    ]);
    let mut x = Exposition::default();
    Verdict {
        rto_seconds: r.rto.as_ref().map(|t| t.seconds),
        rpo_seconds: r.rpo.as_ref().and_then(|p| p.seconds),
        last_success,
        ..Verdict::new(&r.status, r.started_at, r.seconds, r.reason)
    }
    .set(&mut x, &l, &GAMEDAY);
    x
}

/// Adds one finished drill's metrics.
fn drill(x: &mut Exposition, r: &ScenarioResult, last_success: Option<DateTime<Utc>>) {
    let l = labels(&[
        ("scenario", &r.scenario.name),
        ("backend", &r.scenario.backend),
    ]);
    Verdict {
        rto_seconds: r.outcome.rto.as_ref().map(|t| t.seconds),
        rpo_seconds: r
            .outcome
            .verification
            .as_ref()
            .and_then(|v| v.rpo.as_ref())
            .map(|p| p.seconds),
        last_success,
        ..Verdict::new(
            &r.status,
            r.scenario.started_at,
            r.scenario.seconds,
            r.reason,
        )
    }
    .set(x, &l, &DRILL);
}

/// Writes `dir/metrics.prom` on `finish`: one set of drill metrics per finished scenario.
#[derive(Debug)]
pub struct MetricsReporter {
    path: PathBuf,
    results: Vec<ScenarioResult>,
    last_success: BTreeMap<String, DateTime<Utc>>,
}

impl MetricsReporter {
    pub const FILE: &'static str = "metrics.prom";

    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(Self::FILE),
            results: Vec::new(),
            last_success: BTreeMap::new(),
        }
    }

    /// The newest earlier success of each scenario (from the run history), so a failed drill
    /// still says when its scenario last passed.
    pub fn with_last_success(mut self, last: BTreeMap<String, DateTime<Utc>>) -> Self {
        self.last_success = last;
        self
    }

    /// The exposition of the scenarios finished so far.
    pub fn exposition(&self) -> Exposition {
        let mut x = Exposition::default();
        for r in &self.results {
            drill(&mut x, r, self.last_success.get(&r.scenario.name).copied());
        }
        x
    }
}

impl Reporter for MetricsReporter {
    fn on_event(&mut self, event: &Event) -> Result<(), ReportError> {
        if let Event::ScenarioFinished(r) = event {
            self.results.push((**r).clone());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        write_file(&self.path, self.exposition().encode().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn run_exposition() -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut m = MetricsReporter::new(dir.path());
        fixture::feed(&mut m, &fixture::events()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(MetricsReporter::FILE)).unwrap();
        assert_eq!(text, m.exposition().encode());
        text
    }

    #[test]
    fn run_snapshot() {
        insta::assert_snapshot!("metrics-run", run_exposition());
    }

    #[test]
    fn a_failed_drill_carries_its_reason_and_its_earlier_success() {
        let earlier: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let mut m = MetricsReporter::new(Path::new("/nonexistent")).with_last_success(
            BTreeMap::from([("wal-gap-silent-loss".to_string(), earlier)]),
        );
        for e in fixture::events() {
            m.on_event(&e).unwrap();
        }
        let text = m.exposition().encode();
        assert!(
            text.contains(
                "pgdrill_drill_failure{scenario=\"wal-gap-silent-loss\",backend=\"local\",reason=\"wal_unavailable\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "pgdrill_drill_last_success_timestamp_seconds{{scenario=\"wal-gap-silent-loss\",backend=\"local\"}} {}",
                earlier.timestamp()
            )),
            "{text}"
        );
        assert!(
            text.contains(
                "pgdrill_drill_success{scenario=\"wal-gap-silent-loss\",backend=\"local\"} 0"
            ),
            "{text}"
        );
    }

    fn backup(id: &str, status: &str, done: bool) -> crate::audit::BackupAudit {
        crate::audit::BackupAudit {
            id: id.into(),
            status: status.into(),
            timeline: 1,
            begin_wal: "000000010000000000000002".into(),
            end_wal: "000000010000000000000002".into(),
            begin_time: None,
            end_time: done.then(|| "2026-12-01T00:00:00Z".parse().unwrap()),
            complete: done,
            recoverable_to_end: done,
            recoverable_until: None,
            first_gap: None,
        }
    }

    #[test]
    fn consecutive_failed_backups_skip_the_one_in_progress() {
        let now: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().unwrap();
        let mut r = crate::audit::analyze(
            "pg",
            &crate::audit::ArchiveListing::default(),
            now,
            Default::default(),
        );
        r.backups = vec![
            backup("20261129T000000", "DONE", true),
            backup("20261130T000000", "FAILED", false),
            backup("20261201T000000", "FAILED", false),
            backup("20261202T000000", "STARTED", false),
        ];
        assert_eq!(failed_consecutive(&r), 2);
        r.backups.push(backup("20261202T010000", "DONE", true));
        assert_eq!(failed_consecutive(&r), 0);
        r.backups = vec![backup("20261202T000000", "STARTED", false)];
        assert_eq!(failed_consecutive(&r), 0);
    }

    #[test]
    fn audit_of_an_empty_archive_and_of_an_unreachable_one() {
        let now: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().unwrap();
        let r = crate::audit::analyze(
            "pg",
            &crate::audit::ArchiveListing::default(),
            now,
            Default::default(),
        );
        let text = audit(&r, "s3://b/p").encode();
        insta::assert_snapshot!("metrics-audit-empty", text);
        assert!(!text.contains("pgdrill_base_backup_age_seconds"), "{text}");
        let down = audit_unreachable("pg", "s3://b/p", now, Reason::ArchiveAccessDenied).encode();
        assert!(down.contains(
            "pgdrill_archive_error{server_name=\"pg\",destination=\"s3://b/p\",reason=\"archive_access_denied\"} 1"
        ), "{down}");
        assert!(
            down.contains(
                "pgdrill_archive_reachable{server_name=\"pg\",destination=\"s3://b/p\"} 0"
            ),
            "{down}"
        );
    }
}
