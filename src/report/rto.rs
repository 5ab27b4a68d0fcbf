//! `rto.json`: recovery time and data loss per scenario, for dashboards and trend tracking;
//! never judges a budget itself, it only records what the events measured.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::audit::AuditVerdict;
use crate::backend::Rto;
use crate::runner::pick::TargetKind;
use crate::runner::{Event, Reason, RecoveryObservation, ScenarioResult, TargetResult};
use crate::verify::{MissingWrite, ObservedRpo};

use super::dir::write_file;
use super::record::{self, RunRecord};
use super::{ReportError, Reporter};

/// Writes `dir/rto.json` on `finish`.
#[derive(Debug)]
pub struct RtoJsonReporter {
    path: PathBuf,
    run: RunRecord,
}

// The document. Keys come out in field order, so the file is stable and diffable.

#[derive(Serialize)]
struct Document<'a> {
    run_id: &'a str,
    backend: &'a str,
    #[serde(serialize_with = "millis")]
    started_at: DateTime<Utc>,
    /// `null` when the run did not finish.
    #[serde(serialize_with = "opt_millis")]
    finished_at: Option<DateTime<Utc>>,
    seconds: Option<f64>,
    scenarios: Vec<ScenarioDoc<'a>>,
    /// Planned or started scenarios without a result (an interrupted run).
    not_finished: Vec<NotFinishedDoc<'a>>,
}

#[derive(Serialize)]
struct ScenarioDoc<'a> {
    name: &'a str,
    /// `passed`, `failed` or `error`.
    status: &'static str,
    /// The failure's unmet expectations or the error's message; empty when passed.
    reasons: Vec<String>,
    /// Stable code of what the failure came down to (`wal_unavailable`, …); `null` when passed.
    reason: Option<Reason>,
    #[serde(serialize_with = "millis")]
    started_at: DateTime<Utc>,
    seconds: f64,
    seed: u64,
    backup_id: Option<&'a str>,
    /// The `base_backup` step that took it.
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_step: Option<&'a str>,
    /// Why recovery restored an older backup than the newest fitting one, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_fallback: Option<&'a str>,
    recovery_target: &'a str,
    resolved_target: Option<&'a str>,
    observation: &'a RecoveryObservation,
    /// `null` when recovery did not get as far as answering a query.
    rto: Option<RtoDoc<'a>>,
    rows_expected: Option<u64>,
    rows_observed: Option<u64>,
    rows_lost: Option<u64>,
    /// What verification read and how long it took; `null` when nothing was verified.
    verification: Option<VerificationDoc<'a>>,
    loss_explanation: &'a [String],
    missing: &'a [MissingWrite],
    /// Recovery point observed from the ledger; `null` when nothing was verified.
    rpo: Option<&'a ObservedRpo>,
    /// The pre-recovery archive audit; `null` when recovery was never reached.
    audit: Option<&'a AuditVerdict>,
    /// `verify.amcheck`: what `pg_amcheck` found on the recovered instance (`status: ran` with
    /// its findings, or `not_run` and why); absent when not asked for or never reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    amcheck: Option<&'a crate::backend::amcheck::AmcheckOutcome>,
    /// Faults injected, with their measured effect on archiving.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    faults: &'a [crate::ledger::FaultRecord],
    /// Each wait for a segment to reach the archive.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    archive_waits: &'a [crate::runner::ArchiveWait],
    /// `target: random`: each picked target, recovered and verified on its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    targets: Vec<TargetDoc<'a>>,
}

#[derive(Serialize)]
struct TargetDoc<'a> {
    index: u32,
    count: u32,
    /// `time`, `lsn` or `xid`.
    kind: TargetKind,
    target: &'a str,
    around: &'a str,
    server_name: &'a str,
    backup_id: Option<&'a str>,
    status: &'static str,
    reasons: Vec<String>,
    reason: Option<Reason>,
    observation: &'a RecoveryObservation,
    rto: Option<RtoDoc<'a>>,
    rows_expected: Option<u64>,
    rows_observed: Option<u64>,
    rows_lost: Option<u64>,
    loss_explanation: &'a [String],
    missing: &'a [MissingWrite],
    rpo: Option<&'a ObservedRpo>,
}

fn target_doc(t: &TargetResult) -> TargetDoc<'_> {
    let v = t.verification.as_ref();
    TargetDoc {
        index: t.index,
        count: t.count,
        kind: t.kind,
        target: &t.target,
        around: &t.around,
        server_name: &t.server_name,
        backup_id: t.backup_id.as_deref(),
        status: record::status_key(&t.status),
        reasons: record::reasons(&t.status),
        reason: t.reason,
        observation: &t.observation,
        rto: t.rto.as_ref().map(rto_doc),
        rows_expected: t.rows_expected,
        rows_observed: t.rows_observed,
        rows_lost: v.map(|v| v.rows_lost),
        loss_explanation: v.map_or(&[], |v| v.explanation.as_slice()),
        missing: v.map_or(&[], |v| v.missing.as_slice()),
        rpo: v.and_then(|v| v.rpo.as_ref()),
    }
}

#[derive(Serialize)]
struct RtoDoc<'a> {
    seconds: f64,
    budget_seconds: Option<f64>,
    phases: Vec<PhaseDoc<'a>>,
    wal_segments_replayed: u64,
    bytes_downloaded: u64,
    /// The phase that took longest.
    slowest_phase: Option<&'a str>,
    /// The base backup as restored (download and unpack), and its rate; `null` when unknown.
    base_backup_bytes: Option<u64>,
    base_backup_mb_per_second: Option<f64>,
    /// WAL objects fetched from the archive, at their rate over the replay phases.
    wal_fetched_bytes: Option<u64>,
    wal_fetched_mb_per_second: Option<f64>,
    /// The WAL distance (LSNs) replayed, at its rate over the replay phases.
    wal_replayed_bytes: Option<u64>,
    wal_replayed_mb_per_second: Option<f64>,
    /// Why replay ended, in PostgreSQL's words, when it said (a damaged record).
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_end: Option<&'a str>,
    /// What the parallel WAL fetch did (`recovery.wal_max_parallel` above 1, local backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    wal_prefetch: Option<&'a crate::backend::WalPrefetch>,
}

#[derive(Serialize)]
struct PhaseDoc<'a> {
    name: &'a str,
    #[serde(serialize_with = "millis")]
    started_at: DateTime<Utc>,
    #[serde(serialize_with = "millis")]
    finished_at: DateTime<Utc>,
    seconds: f64,
    /// What the phase moved and its rate (MB = 10^6 bytes); `null` where it moves no data or
    /// the backend does not know.
    bytes: Option<u64>,
    mb_per_second: Option<f64>,
}

#[derive(Serialize)]
struct NotFinishedDoc<'a> {
    name: &'a str,
    #[serde(serialize_with = "opt_millis")]
    started_at: Option<DateTime<Utc>>,
    reason: &'static str,
}

/// RFC 3339 with exactly three fractional digits (`2026-11-22T10:00:09.000Z`), so every
/// timestamp in the file has the same shape.
fn millis<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn opt_millis<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => millis(t, s),
        None => s.serialize_none(),
    }
}

/// Seconds to the millisecond: measurements are not more precise, and `2.1` reads better than
/// `2.0999999999999996`.
fn ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Throughput to three decimals (1 kB/s): finer is noise.
fn rate(mb_per_second: Option<f64>) -> Option<f64> {
    mb_per_second.map(ms)
}

fn rto_doc(rto: &Rto) -> RtoDoc<'_> {
    RtoDoc {
        seconds: ms(rto.seconds),
        budget_seconds: rto.budget_seconds,
        phases: rto
            .phases
            .iter()
            .map(|p| PhaseDoc {
                name: p.name.as_str(),
                started_at: p.started_at,
                finished_at: p.finished_at,
                seconds: ms(p.seconds),
                bytes: p.bytes,
                mb_per_second: rate(p.mb_per_second()),
            })
            .collect(),
        wal_segments_replayed: rto.wal_segments_replayed,
        bytes_downloaded: rto.bytes_downloaded,
        slowest_phase: rto.slowest_phase().map(|p| p.name.as_str()),
        base_backup_bytes: rto.base_backup_bytes,
        base_backup_mb_per_second: rate(rto.base_backup_mb_per_second()),
        wal_fetched_bytes: rto.wal_fetched_bytes,
        wal_fetched_mb_per_second: rate(rto.wal_fetched_mb_per_second()),
        wal_replayed_bytes: rto.wal_replayed_bytes,
        wal_replayed_mb_per_second: rate(rto.wal_replayed_mb_per_second()),
        replay_end: rto.replay_end.as_deref(),
        wal_prefetch: rto.wal_prefetch.as_ref(),
    }
}

#[derive(Serialize)]
struct VerificationDoc<'a> {
    #[serde(flatten)]
    cost: &'a crate::verify::VerifyCost,
    /// `seconds` over the recovery's RTO.
    share_of_rto: Option<f64>,
}

fn verification_doc(r: &ScenarioResult) -> Option<VerificationDoc<'_>> {
    let cost = r.outcome.verification.as_ref()?.cost.as_ref()?;
    Some(VerificationDoc {
        cost,
        share_of_rto: cost.share_of(r.outcome.rto.as_ref().map(|t| t.seconds)),
    })
}

fn scenario_doc(r: &ScenarioResult) -> ScenarioDoc<'_> {
    ScenarioDoc {
        name: &r.scenario.name,
        status: record::status_key(&r.status),
        reasons: record::reasons(&r.status),
        reason: r.reason,
        started_at: r.scenario.started_at,
        seconds: ms(r.scenario.seconds),
        seed: r.scenario.seed,
        backup_id: r.recovery.backup_id.as_deref(),
        backup_step: r.recovery.backup_step.as_deref(),
        backup_fallback: r.recovery.backup_fallback.as_deref(),
        recovery_target: &r.recovery.recovery_target,
        resolved_target: r.recovery.resolved_target.as_deref(),
        observation: &r.recovery.observation,
        rto: r.outcome.rto.as_ref().map(rto_doc),
        rows_expected: r.outcome.rows_expected,
        rows_observed: r.outcome.rows_observed,
        rows_lost: record::rows_lost(r),
        verification: verification_doc(r),
        loss_explanation: record::explanation(r),
        missing: r
            .outcome
            .verification
            .as_ref()
            .map(|v| v.missing.as_slice())
            .unwrap_or(&[]),
        rpo: record::rpo(r),
        audit: r.recovery.audit.as_ref(),
        amcheck: r.outcome.amcheck.as_ref(),
        faults: &r.archive.faults,
        archive_waits: &r.archive.archive_waits,
        targets: r.targets.iter().map(target_doc).collect(),
    }
}

impl RtoJsonReporter {
    /// The file name under the run directory.
    pub const FILE: &'static str = "rto.json";

    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(Self::FILE),
            run: RunRecord::default(),
        }
    }

    fn render(&self) -> Result<String, ReportError> {
        let info = self.run.info()?;
        let unfinished = self.run.unfinished();
        let doc = Document {
            run_id: &info.run_id,
            backend: &info.backend,
            started_at: info.started_at,
            finished_at: self.run.finished().map(|(at, _)| at),
            seconds: self.run.finished().map(|(_, s)| ms(s)),
            scenarios: self.run.results().into_iter().map(scenario_doc).collect(),
            not_finished: unfinished
                .iter()
                .map(|u| NotFinishedDoc {
                    name: &u.name,
                    started_at: u.started_at,
                    reason: u.sentence(),
                })
                .collect(),
        };
        let mut json = serde_json::to_string_pretty(&doc).map_err(|source| ReportError::Json {
            path: self.path.clone(),
            source,
        })?;
        json.push('\n');
        Ok(json)
    }
}

impl Reporter for RtoJsonReporter {
    fn on_event(&mut self, event: &Event) -> Result<(), ReportError> {
        self.run.record(event);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        let json = self.render()?;
        write_file(&self.path, json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn write(events: &[Event]) -> String {
        fixture::written(RtoJsonReporter::new, RtoJsonReporter::FILE, events)
    }

    #[test]
    fn snapshot() {
        // The file itself, byte for byte: key order is part of the format.
        insta::assert_snapshot!("rto.json", write(&fixture::events()));
    }

    #[test]
    fn reads_back_as_json() {
        let v: serde_json::Value = serde_json::from_str(&write(&fixture::events())).unwrap();
        assert_eq!(v["run_id"], fixture::RUN_ID);
        let s = &v["scenarios"];
        assert_eq!(s.as_array().unwrap().len(), 3);
        assert_eq!(s[0]["rto"]["seconds"], 2.1);
        assert_eq!(s[0]["rto"]["phases"].as_array().unwrap().len(), 4);
        assert_eq!(s[0]["rto"]["slowest_phase"], "restore_base_backup");
        assert_eq!(s[0]["rto"]["base_backup_mb_per_second"], 20.0);
        assert_eq!(s[0]["rto"]["wal_replayed_mb_per_second"], 60.0);
        assert_eq!(s[0]["rto"]["phases"][1]["bytes"], 16_000_000);
        assert!(s[1]["rto"]["wal_replayed_bytes"].is_null());
        assert_eq!(s[1]["status"], "failed");
        assert_eq!(s[1]["rows_lost"], 2);
        assert_eq!(s[1]["missing"][0]["segment"], "000000010000000000000009");
        assert_eq!(s[1]["missing"][0]["segment_in_archive"], false);
        assert_eq!(s[1]["missing"][1]["segment_in_archive"], true);
        assert_eq!(s[2]["status"], "error");
        assert!(s[2]["rto"].is_null());
        assert!(v["not_finished"].as_array().unwrap().is_empty());
    }

    #[test]
    fn random_targets_are_listed_each() {
        let json = write(&fixture::random_events());
        insta::assert_snapshot!("rto-random.json", json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let s = &v["scenarios"][0];
        assert_eq!(s["seed"], 42);
        let t = s["targets"].as_array().unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0]["kind"], "time");
        assert_eq!(t[0]["rto"]["seconds"], 2.4);
        assert_eq!(t[1]["status"], "failed");
        assert_eq!(t[1]["rows_lost"], 1);
        assert!(t[2]["rto"].is_null());
        assert_eq!(t[2]["observation"]["kind"], "failed");
        // Scenarios without random targets have no `targets` key at all.
        let plain: serde_json::Value = serde_json::from_str(&write(&fixture::events())).unwrap();
        assert!(plain["scenarios"][0].get("targets").is_none());
    }

    #[test]
    fn an_interrupted_run_says_so() {
        let v: serde_json::Value =
            serde_json::from_str(&write(&fixture::interrupted_events())).unwrap();
        assert!(v["finished_at"].is_null());
        assert_eq!(v["scenarios"].as_array().unwrap().len(), 1);
        assert_eq!(v["not_finished"][0]["name"], "wal-gap-silent-loss");
        assert!(v["not_finished"][1]["started_at"].is_null());
    }
}
