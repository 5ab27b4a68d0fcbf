//! A synthetic run with fixed timestamps for the reporters' tests: one passed, one failed with a
//! two-row loss across a WAL gap, one errored scenario. Test-only; never touches a database.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::audit::AuditVerdict;
use crate::backend::Phase;
use crate::backend::PhaseName;
use crate::backend::Rto;
use crate::ledger::ResolvedTarget;
use crate::runner::pick::TargetKind;
use crate::runner::{
    ArchiveFacts, Commit, Event, Outcome, PickRange, PickedTarget, Picks, RecoveryFacts,
    RecoveryObservation, Release, RunInfo, ScenarioInfo, ScenarioResult, Servers, Status,
    StepOutcome, TargetAttempt, TargetCheck, TargetRef, TargetResult, TargetVerification, WriteAt,
    Written,
};
use crate::verify::{MissingWrite, ObservedRpo, Verification, VerifyCost};
use crate::wal::Lsn;

use super::{ReportError, Reporter};

pub const RUN_ID: &str = "20261122T100000Z-7f3a";
pub const SCENARIOS: [&str; 3] = [
    "pitr-after-step",
    "wal-gap-silent-loss",
    "archive-unreachable",
];

/// 2026-11-22 10:00:00 UTC plus `ms` milliseconds.
pub fn at(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + Duration::milliseconds(ms)
}

fn phases(start_ms: i64, durations_ms: [i64; 4]) -> Vec<Phase> {
    let names = [
        PhaseName::RestoreBaseBackup,
        PhaseName::ReplayUntilConsistent,
        PhaseName::ReplayAndPromotion,
        PhaseName::FirstQuery,
    ];
    let mut t = start_ms;
    names
        .iter()
        .zip(durations_ms)
        .map(|(name, d)| {
            let p = Phase {
                name: *name,
                started_at: at(t),
                finished_at: at(t + d),
                seconds: d as f64 / 1000.0,
                bytes: None,
            };
            t += d;
            p
        })
        .collect()
}

fn run_info() -> RunInfo {
    RunInfo {
        run_id: RUN_ID.into(),
        backend: "local".into(),
        started_at: at(0),
        scenarios: SCENARIOS.map(String::from).into(),
        report_dir: PathBuf::from("reports").join(RUN_ID),
    }
}

/// The `ScenarioFinished` event of `r`, with the reason codes the runner would give it.
fn finished(mut r: ScenarioResult) -> Event {
    for t in &mut r.targets {
        t.reason = crate::runner::failure::of_target(t, &r.archive.faults);
    }
    r.reason = crate::runner::failure::of_scenario(&r);
    Event::ScenarioFinished(Box::new(r))
}

fn base_result(name: &str, started_ms: i64, seconds: f64) -> ScenarioResult {
    ScenarioResult {
        scenario: ScenarioInfo {
            name: name.into(),
            file: PathBuf::from(format!("scenarios/{name}.yaml")),
            description: String::new(),
            tags: vec![],
            seed: 7,
            backend: "local".into(),
            started_at: at(started_ms),
            seconds,
        },
        servers: Servers {
            source_postgres: Some("16.6".into()),
            recovery_postgres: Some("16.6".into()),
            server_name: "source".into(),
            recovery_server_name: "source-restored".into(),
            destination: format!("s3://pgdrill/drills/{RUN_ID}/{name}"),
        },
        recovery: RecoveryFacts {
            backup_id: Some("20261122T100003".into()),
            backup_step: None,
            backup_fallback: None,
            recovery_target: "latest".into(),
            resolved_target: Some("latest".into()),
            expected_outcome: "recovered with no data loss".into(),
            observation: RecoveryObservation::Recovered,
            audit: None,
            script: None,
        },
        outcome: Outcome::default(),
        status: Status::Passed,
        reason: None,
        archive: ArchiveFacts::default(),
        log: vec![],
        kept: vec![],
        targets: vec![],
    }
}

/// (step, kind, seconds, outcome)
type StepLine = (&'static str, &'static str, f64, StepOutcome);

fn steps(scenario: &str, start_ms: i64, steps: Vec<StepLine>) -> (Vec<Event>, Vec<String>) {
    let mut events = Vec::new();
    let mut log = Vec::new();
    let mut t = start_ms;
    for (step, kind, seconds, outcome) in steps {
        events.push(Event::StepStarted {
            scenario: scenario.into(),
            step: step.to_string(),
            kind: kind.to_string(),
            at: at(t),
        });
        events.push(Event::StepFinished {
            scenario: scenario.into(),
            step: step.to_string(),
            kind: kind.to_string(),
            seconds,
            outcome: outcome.clone(),
        });
        log.push(format!("{step} ({kind}) {seconds:.2}s {outcome}"));
        t += (seconds * 1000.0) as i64;
    }
    (events, log)
}

/// A base backup's outcome: one segment, from `lsn - 0xD8` to `lsn`.
fn backup(id: &str, lsn: u64) -> StepOutcome {
    let wal = format!("0000000100000000{:08X}", lsn >> 24);
    StepOutcome::BaseBackup {
        backup_id: id.into(),
        begin_lsn: Lsn(lsn - 0xD8),
        end_lsn: Lsn(lsn),
        begin_wal: wal.clone(),
        end_wal: wal,
    }
}

/// A one-row write into `events`, committed at `lsn` at `ms`, without a switch.
fn write(txid: u64, lsn: u64, ms: i64) -> StepOutcome {
    StepOutcome::Written(Written {
        commit: Commit {
            table: "events".into(),
            rows: 1,
            txid,
            commit_lsn: Lsn(lsn),
            segment: crate::wal::SegmentName::containing(lsn, 1, crate::wal::DEFAULT_SEGMENT_SIZE),
            commit_time: at(ms),
        },
        switched: None,
    })
}

fn passed() -> Vec<Event> {
    let name = SCENARIOS[0];
    let (mut events, log) = steps(
        name,
        1_000,
        vec![
            (
                "base",
                "base_backup",
                3.10,
                backup("20261122T100003", 0x0700_0100),
            ),
            ("w1", "write", 0.21, write(745, 0x0800_0200, 4_310)),
            ("w2", "write", 0.19, write(746, 0x0800_0480, 4_500)),
        ],
    );
    let mut r = base_result(name, 1_000, 12.3);
    r.scenario.description = "Recover to the commit of w1 and find w1 but not w2.".into();
    r.scenario.tags = vec!["pitr".into(), "smoke".into()];
    r.recovery.recovery_target = "after_step: w1".into();
    r.recovery.resolved_target = Some("lsn 0/8000200 (inclusive)".into());
    r.recovery.expected_outcome = "recovered; rows as of w1".into();
    r.outcome.rows_expected = Some(25);
    r.outcome.rows_observed = Some(25);
    r.outcome.verification = Some(Verification {
        expected_rows: BTreeMap::from([("events".into(), 25)]),
        observed_rows: BTreeMap::from([("events".into(), 25)]),
        cost: Some(VerifyCost {
            seconds: 0.021,
            tables: 1,
            rows_read: 25,
            bytes_read: 1_150,
            ..Default::default()
        }),
        ..Default::default()
    });
    r.outcome.rto = Some(Rto {
        seconds: 2.1,
        phases: phases(9_000, [1_200, 600, 200, 100])
            .into_iter()
            .zip([Some(24_000_000), Some(16_000_000), Some(32_000_000), None])
            .map(|(p, bytes)| Phase { bytes, ..p })
            .collect(),
        wal_segments_replayed: 3,
        bytes_downloaded: 25_165_824,
        budget_seconds: Some(30.0),
        replay_end: None,
        last_replayed_commit: None,
        base_backup_bytes: Some(24_000_000),
        wal_fetched_bytes: Some(2_400_000),
        wal_replayed_bytes: Some(48_000_000),
        wal_prefetch: None,
    });
    r.log = log;
    let mut out = vec![Event::ScenarioStarted {
        scenario: name.into(),
        at: at(1_000),
    }];
    out.append(&mut events);
    out.push(finished(r));
    out
}

const GAP: &str = "000000010000000000000009";
const AFTER_GAP: &str = "00000001000000000000000A";

fn failed() -> Vec<Event> {
    let name = SCENARIOS[1];
    let (mut events, log) = steps(
        name,
        14_000,
        vec![
            (
                "base",
                "base_backup",
                2.90,
                backup("20261122T100014", 0x0700_0100),
            ),
            ("w1", "write", 0.22, write(746, 0x0800_0200, 27_000)),
            ("w2", "write", 0.20, write(747, 0x0900_0200, 27_200)),
            ("w3", "write", 0.18, write(748, 0x0A00_0200, 27_410)),
            (
                "drop-w2",
                "fault",
                0.05,
                StepOutcome::WalDeleted {
                    segments: vec![GAP.parse().unwrap()],
                    keys: vec![format!(
                        "drills/{RUN_ID}/{name}/source/wals/0000000100000000/{GAP}.gz"
                    )],
                },
            ),
        ],
    );
    let reasons = vec![
        "unexpected data loss: 2 rows missing".to_string(),
        "events: expected 27 rows, observed 25".to_string(),
    ];
    let mut r = base_result(name, 14_000, 20.6);
    r.scenario.description = "A WAL segment deleted from the archive must not go unnoticed: \
                     recovery to latest stops at the gap and promotes anyway."
        .into();
    r.scenario.tags = vec!["fault".into(), "wal".into()];
    r.recovery.backup_id = Some("20261122T100014".into());
    r.outcome.rows_expected = Some(27);
    r.outcome.rows_observed = Some(25);
    r.outcome.verification = Some(Verification {
        expected_rows: BTreeMap::from([("events".into(), 27)]),
        observed_rows: BTreeMap::from([("events".into(), 25)]),
        cost: None,
        missing: vec![
            MissingWrite {
                step_id: "w2".into(),
                table: "events".into(),
                first_id: 26,
                rows: 1,
                txid: 747,
                commit_lsn: "0/9000200".into(),
                segment: GAP.parse().unwrap(),
                segment_in_archive: false,
                removed_by: Some("drop-w2".into()),
                audit_gap: true,
                unarchived_at_crash: None,
                caused_by: None,
            },
            MissingWrite {
                step_id: "w3".into(),
                table: "events".into(),
                first_id: 27,
                rows: 1,
                txid: 748,
                commit_lsn: "0/A000200".into(),
                segment: AFTER_GAP.parse().unwrap(),
                segment_in_archive: true,
                removed_by: None,
                audit_gap: false,
                unarchived_at_crash: None,
                caused_by: None,
            },
        ],
        problems: vec![],
        rows_lost: 2,
        explanation: vec![
            format!(
                "2 rows lost: WAL replay stopped before segment {GAP}, which is absent from the \
                 archive (deleted by fault step `drop-w2`); recovery still promoted, so every \
                 later commit is gone. The archive audit reported this gap before recovery started."
            ),
            format!(
                "step `w2`: 1 row(s) of events (id 26), txid 747, commit at 0/9000200 in segment \
                 {GAP} (absent from the archive)"
            ),
            format!(
                "step `w3`: 1 row(s) of events (id 27), txid 748, commit at 0/A000200 in segment \
                 {AFTER_GAP} (present in the archive but unreachable past the gap at {GAP})"
            ),
        ],
        rpo: Some(ObservedRpo {
            transactions_lost: 2,
            seconds: 0.41,
            last_expected: "w3 (txid 748, committed 2026-11-22 10:00:27.410000 UTC)".into(),
            last_present: "w1 (txid 746, committed 2026-11-22 10:00:27.000000 UTC)".into(),
            budget_seconds: None,
        }),
        failures: reasons.clone(),
    });
    r.recovery.audit = Some(AuditVerdict {
        url: format!("s3://pgdrill/drills/{RUN_ID}/{name}/source"),
        ok: false,
        gaps: vec![GAP.into()],
        backup_id: "20261122T100014".into(),
        recoverable_to_end: true,
        recoverable_until: Some("000000010000000000000008".into()),
        first_gap: Some(GAP.into()),
        predicted_lost_steps: vec!["w2".into(), "w3".into()],
        predicted_lost_rows: 2,
        prediction: format!(
            "predicted loss: replay from backup 20261122T100014 stops before segment {GAP}, \
             which is missing; 2 row(s) of the writes expected at the target will be absent (w2, w3)"
        ),
        findings: vec![format!(
            "error: segment {GAP} is missing on timeline 1: recovery from backup 20261122T100014 stops before it"
        )],
        unusable_backups: vec![],
    });
    r.outcome.rto = Some(Rto {
        seconds: 3.0,
        phases: phases(29_000, [1_500, 1_000, 300, 200]),
        wal_segments_replayed: 1,
        bytes_downloaded: 16_777_216,
        ..Default::default()
    });
    r.status = Status::Failed { reasons };
    r.log = log;
    r.kept = vec![
        "recovery instance source-restored: data directory \
         /tmp/pgdrill/20261122T100000Z-7f3a/wal-gap-silent-loss/recovery, port 55433"
            .into(),
    ];
    let mut out = vec![Event::ScenarioStarted {
        scenario: name.into(),
        at: at(14_000),
    }];
    out.append(&mut events);
    out.push(finished(r));
    out
}

fn errored() -> Vec<Event> {
    let name = SCENARIOS[2];
    let (mut events, mut log) = steps(name, 35_000, vec![]);
    events.push(Event::StepStarted {
        scenario: name.into(),
        step: "base".into(),
        kind: "base_backup".into(),
        at: at(35_000),
    });
    log.push("base (base_backup) failed after 4.20s".into());
    let mut r = base_result(name, 35_000, 4.2);
    r.scenario.description =
        "Recover to a named restore point while the object store is unreachable.".into();
    // A `|` in a restore point name must not break the Markdown table.
    r.recovery.recovery_target = "name: pre-migration|v2".into();
    r.recovery.resolved_target = None;
    r.recovery.backup_id = None;
    r.servers.recovery_postgres = None;
    r.recovery.observation = RecoveryObservation::NotAttempted;
    r.status = Status::Error {
        message: "barman-cloud-backup exited with status 4\n\
                  ERROR: Barman cloud backup exception: Could not connect to the endpoint URL: \
                  \"http://127.0.0.1:9000/pgdrill\""
            .into(),
    };
    r.log = log;
    let mut out = vec![Event::ScenarioStarted {
        scenario: name.into(),
        at: at(35_000),
    }];
    out.append(&mut events);
    out.push(finished(r));
    out
}

/// The whole run: RunStarted, three scenarios, RunFinished.
pub fn events() -> Vec<Event> {
    let mut out = vec![Event::RunStarted(run_info())];
    out.extend(passed());
    out.extend(failed());
    out.extend(errored());
    out.push(Event::RunFinished {
        at: at(39_500),
        seconds: 39.5,
    });
    out
}

/// A run stopped during the second scenario: no result for it, the third never started, no
/// RunFinished.
pub fn interrupted_events() -> Vec<Event> {
    let mut out = vec![Event::RunStarted(run_info())];
    out.extend(passed());
    out.extend(
        failed()
            .into_iter()
            .take_while(|e| !matches!(e, Event::ScenarioFinished(_)))
            .take(4),
    );
    out
}

/// The scenario of `random_events`.
pub const RANDOM_SCENARIO: &str = "random-pitr-targets";

/// One random target's result: `rows` expected and observed, an RTO when it recovered.
fn target(
    index: u32,
    kind: TargetKind,
    value: &str,
    around: &str,
    rows: (u64, u64),
    rto_ms: Option<(i64, [i64; 4])>,
) -> TargetResult {
    TargetResult {
        index,
        count: 3,
        kind,
        target: format!("{kind} {value}"),
        around: around.into(),
        server_name: format!("source-restored-{index}"),
        backup_id: Some("20261122T100003".into()),
        observation: RecoveryObservation::Recovered,
        rows_expected: Some(rows.0),
        rows_observed: Some(rows.1),
        verification: Some(Verification {
            expected_rows: BTreeMap::from([("events".into(), rows.0)]),
            observed_rows: BTreeMap::from([("events".into(), rows.1)]),
            ..Default::default()
        }),
        rto: rto_ms.map(|(start, d)| Rto {
            seconds: d.iter().sum::<i64>() as f64 / 1000.0,
            phases: phases(start, d),
            wal_segments_replayed: 2,
            bytes_downloaded: 8_388_608,
            ..Default::default()
        }),
        status: Status::Passed,
        reason: None,
    }
}

/// A `target: random` drill with three picks: a time target that passed, an LSN target that
/// lost a row, and an xid target whose recovery failed.
pub fn random_events() -> Vec<Event> {
    let name = RANDOM_SCENARIO;
    let fatal = "FATAL:  recovery ended before configured recovery target was reached";
    let lost = "1 row lost: step `w2`: 1 row(s) of events (id 26), txid 746, commit at 0/4000200 in \
                segment 000000010000000000000004 (present in the archive)";
    let time = ResolvedTarget::Time(at(4_500));
    let (lsn, xid) = (
        ResolvedTarget::Lsn(Lsn(0x0400_0200)),
        ResolvedTarget::Xid(746),
    );
    let reference = |index: u32, t: &ResolvedTarget| TargetRef {
        index,
        count: 3,
        target: t.to_string(),
    };
    let recovered = |index: u32, t: &ResolvedTarget, seconds: f64| StepOutcome::TargetRecovered {
        attempt: TargetAttempt::Recovered {
            target: reference(index, t),
            backup_id: "20261122T100003".into(),
            seconds,
            wal_segments_replayed: 2,
        },
    };
    let verified = |index: u32, t: &ResolvedTarget, check: TargetCheck| {
        StepOutcome::TargetVerified(TargetVerification {
            target: reference(index, t),
            check,
            release: Release::Released(format!("recovered-{index}")),
        })
    };
    let rows = |expected: u64, lost: u64, explanation: Option<&str>| TargetCheck::Verified {
        rows_expected: expected,
        rows_observed: expected - lost,
        rows_lost: lost,
        passed: lost == 0,
        explanation: explanation.map(str::to_string),
    };
    let picked = |index: u32, target: &ResolvedTarget, around: &str| PickedTarget {
        index,
        target: target.clone(),
        around: around.into(),
        backup_step: "base".into(),
    };
    let picks = StepOutcome::TargetsPicked(Picks {
        seed: 42,
        count: 3,
        range: PickRange {
            backup_step: "base".into(),
            backup_end: Lsn(0x0200_0100),
            writes: 2,
            first: WriteAt {
                step: "w1".into(),
                commit_lsn: Lsn(0x0300_0200),
            },
            last: WriteAt {
                step: "w2".into(),
                commit_lsn: Lsn(0x0400_0200),
            },
        },
        picks: vec![
            picked(1, &time, "between the commits of `w1` and `w2`"),
            picked(2, &lsn, "right after the commit of `w2`"),
            picked(3, &xid, "the transaction of `w2`"),
        ],
    });
    let (mut events, log) = steps(
        name,
        1_000,
        vec![
            (
                "base",
                "base_backup",
                3.10,
                backup("20261122T100003", 0x0200_0100),
            ),
            ("w1", "write", 0.21, write(745, 0x0300_0200, 4_200)),
            ("w2", "write", 0.19, write(746, 0x0400_0200, 4_800)),
            ("pick-targets", "pick_targets", 0.01, picks),
            (
                "recover-1",
                "recover_target",
                2.40,
                recovered(1, &time, 2.4),
            ),
            (
                "verify-1",
                "verify_target",
                0.05,
                verified(1, &time, rows(25, 0, None)),
            ),
            ("recover-2", "recover_target", 2.60, recovered(2, &lsn, 2.6)),
            (
                "verify-2",
                "verify_target",
                0.05,
                verified(2, &lsn, rows(26, 1, Some(lost))),
            ),
            (
                "recover-3",
                "recover_target",
                1.10,
                StepOutcome::TargetRecovered {
                    attempt: TargetAttempt::Failed {
                        target: reference(3, &xid),
                        message: fatal.into(),
                    },
                },
            ),
            (
                "verify-3",
                "verify_target",
                0.01,
                verified(
                    3,
                    &xid,
                    TargetCheck::RecoveryFailed {
                        message: fatal.into(),
                    },
                ),
            ),
        ],
    );
    let mut r = base_result(name, 1_000, 14.2);
    r.scenario.description =
        "Recover to seeded random times, LSNs and xids; each must match the ledger.".into();
    r.scenario.tags = vec!["pitr".into(), "random".into()];
    r.scenario.seed = 42;
    r.servers.recovery_server_name = "source-restored-1 … source-restored-3".into();
    r.recovery.backup_id = None;
    r.recovery.recovery_target = "random: 3 target(s) (time, lsn, xid), seed 42".into();
    r.recovery.resolved_target =
        Some("1: time 2026-11-22 10:00:04.500000+00, 2: lsn 0/4000200, 3: xid 746".into());
    r.recovery.expected_outcome = "recovered, 0 rows lost".into();
    let t1 = target(
        1,
        TargetKind::Time,
        "2026-11-22 10:00:04.500000+00",
        "between the commits of `w1` and `w2`",
        (25, 25),
        Some((5_000, [1_200, 600, 500, 100])),
    );
    let mut t2 = target(
        2,
        TargetKind::Lsn,
        "0/4000200",
        "right after the commit of `w2`",
        (26, 25),
        Some((8_000, [1_300, 700, 500, 100])),
    );
    if let Some(v) = t2.verification.as_mut() {
        v.rows_lost = 1;
        v.explanation = vec![lost.into()];
        v.missing = vec![MissingWrite {
            step_id: "w2".into(),
            table: "events".into(),
            first_id: 26,
            rows: 1,
            txid: 746,
            commit_lsn: "0/4000200".into(),
            segment: "000000010000000000000004".parse().unwrap(),
            segment_in_archive: true,
            removed_by: None,
            audit_gap: false,
            unarchived_at_crash: None,
            caused_by: None,
        }];
        v.failures = vec!["unexpected data loss: 1 row missing".into()];
    }
    t2.status = Status::Failed {
        reasons: vec!["unexpected data loss: 1 row missing".into()],
    };
    let mut t3 = target(
        3,
        TargetKind::Xid,
        "746",
        "the transaction of `w2`",
        (0, 0),
        None,
    );
    t3.observation = RecoveryObservation::Failed {
        message: fatal.into(),
    };
    t3.rows_expected = None;
    t3.rows_observed = None;
    t3.verification = None;
    t3.status = Status::Failed {
        reasons: vec![format!("recovery failed: {fatal}")],
    };
    r.recovery.observation = RecoveryObservation::Failed {
        message: format!("1 of 3 recoveries failed; target 3/3 xid 746: {fatal}"),
    };
    r.status = Status::Failed {
        reasons: vec![
            "target 2/3 lsn 0/4000200 (right after the commit of `w2`): unexpected data loss: 1 row missing"
                .into(),
            format!("target 3/3 xid 746 (the transaction of `w2`): recovery failed: {fatal}"),
        ],
    };
    r.targets = vec![t1, t2, t3];
    r.log = log;
    let mut info = run_info();
    info.scenarios = vec![name.into()];
    let mut out = vec![
        Event::RunStarted(info),
        Event::ScenarioStarted {
            scenario: name.into(),
            at: at(1_000),
        },
    ];
    out.append(&mut events);
    out.push(finished(r));
    out.push(Event::RunFinished {
        at: at(15_500),
        seconds: 14.5,
    });
    out
}

/// Feed `events` to `reporter` and finish it.
pub fn feed(reporter: &mut dyn Reporter, events: &[Event]) -> Result<(), ReportError> {
    for e in events {
        reporter.on_event(e)?;
    }
    reporter.finish()
}

/// Feed `events` to the file reporter `make` builds in a fresh directory; return `file`'s text.
pub fn written<R: Reporter>(
    make: impl FnOnce(&std::path::Path) -> R,
    file: &str,
    events: &[Event],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut r = make(dir.path());
    feed(&mut r, events).unwrap();
    std::fs::read_to_string(dir.path().join(file)).unwrap()
}

/// A `Write` whose bytes a test can read afterwards, also through a clone.
#[derive(Clone, Default)]
pub struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn contents(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
