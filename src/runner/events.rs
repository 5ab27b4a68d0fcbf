//! The typed events a run emits. Reporters consume these and nothing else; the runner never
//! formats a report itself.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditVerdict;
use crate::backend::Rto;
use crate::backend::amcheck::AmcheckOutcome;
use crate::verify::Verification;
use crate::wal::SegmentName;

use super::outcome::{StepOutcome, TargetRef};
use super::pick::TargetKind;
use super::reason::Reason;

/// Something that happened during a run, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted(RunInfo),
    ScenarioStarted {
        scenario: String,
        at: DateTime<Utc>,
    },
    StepStarted {
        scenario: String,
        step: String,
        kind: String,
        at: DateTime<Utc>,
    },
    StepFinished {
        scenario: String,
        step: String,
        kind: String,
        seconds: f64,
        /// What the step did; its `Display` is the step log's line, e.g. `1 row(s) into events,
        /// txid 745 committed at 0/8000200 in 000000010000000000000008 (10:00:01.000000)`.
        outcome: StepOutcome,
    },
    ScenarioFinished(Box<ScenarioResult>),
    RunFinished {
        at: DateTime<Utc>,
        seconds: f64,
    },
}

/// Facts about the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub backend: String,
    pub started_at: DateTime<Utc>,
    pub scenarios: Vec<String>,
    pub report_dir: PathBuf,
}

/// The verdict on one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Every expectation met.
    Passed,
    /// The drill ran, and what it observed is not what the scenario expects.
    Failed { reasons: Vec<String> },
    /// The harness or its infrastructure broke; the drill says nothing about recovery.
    Error { message: String },
}

/// How the recovery attempt ended, as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecoveryObservation {
    /// The new instance promoted and answered queries.
    Recovered,
    /// Recovery failed; `message` is what the server or tool said (FATAL lines, stderr).
    Failed { message: String },
    /// A step before recovery failed (e.g. the base backup); `message` is what it said.
    StepFailed { step: String, message: String },
    /// Recovery was not attempted (the drill broke before).
    NotAttempted,
}

/// Everything known about one scenario when it finished, in parts a reader can take one at a
/// time. Serialised flat, as one object with every part's fields (`#[serde(flatten)]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    #[serde(flatten)]
    pub scenario: ScenarioInfo,
    #[serde(flatten)]
    pub servers: Servers,
    #[serde(flatten)]
    pub recovery: RecoveryFacts,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub status: Status,
    /// The stable code of what the failure came down to; `None` when the scenario passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(flatten)]
    pub archive: ArchiveFacts,
    /// The step log, one line per step, for JUnit system-out.
    pub log: Vec<String>,
    /// Resources kept because of `--keep`, with where they are.
    pub kept: Vec<String>,
    /// `target: random`: one result per picked target, in pick order (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetResult>,
}

/// Which scenario ran, on which backend, when and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    pub tags: Vec<String>,
    pub seed: u64,
    pub backend: String,
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
}

/// The servers of the drill and where it archived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Servers {
    /// Full server versions, e.g. `15.18`.
    pub source_postgres: Option<String>,
    pub recovery_postgres: Option<String>,
    pub server_name: String,
    pub recovery_server_name: String,
    /// Object-store location of the drill: `s3://bucket/prefix`.
    pub destination: String,
}

/// What recovery started from and aimed at, and how the attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryFacts {
    pub backup_id: Option<String>,
    /// The `base_backup` step that took the restored backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_step: Option<String>,
    /// Set when recovery could not use the newest backup that fits the target (the archive's
    /// catalogue does not list it) and fell back to an older one: which, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_fallback: Option<String>,
    /// The target as written in the scenario.
    pub recovery_target: String,
    /// The target as given to PostgreSQL after resolving step references.
    pub resolved_target: Option<String>,
    pub expected_outcome: String,
    pub observation: RecoveryObservation,
    /// The read-only audit of the source archive made just before recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditVerdict>,
    /// `recovery.command`: what the restore script did and printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<crate::backend::ScriptRun>,
}

/// What recovery gave: the rows expected and read back, their verification against the
/// ledger, and the recovery time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub rows_expected: Option<u64>,
    pub rows_observed: Option<u64>,
    pub verification: Option<Verification>,
    pub rto: Option<Rto>,
    /// `verify.amcheck`: what `pg_amcheck` found on the recovered instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amcheck: Option<AmcheckOutcome>,
}

/// What the source's archive went through: the faults injected, with what they did to
/// archiving (error windows, crashes), and every wait for a segment to be archived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiveFacts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::ledger::FaultRecord>,
    /// The archive lag the source showed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archive_waits: Vec<ArchiveWait>,
}

/// One random recovery target of a `target: random` drill, recovered and verified on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetResult {
    /// 1-based position among the picks, and how many were picked.
    pub index: u32,
    pub count: u32,
    pub kind: TargetKind,
    /// As given to PostgreSQL, its kind first, e.g. `lsn 0/3000060`.
    pub target: String,
    /// Where it falls among the writes, e.g. "between the commits of `w3` and `w4`".
    pub around: String,
    /// serverName the recovered cluster archives to.
    pub server_name: String,
    pub backup_id: Option<String>,
    pub observation: RecoveryObservation,
    pub rows_expected: Option<u64>,
    pub rows_observed: Option<u64>,
    pub verification: Option<Verification>,
    pub rto: Option<Rto>,
    pub status: Status,
    /// The stable code of what this target's failure came down to; `None` when it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl TargetResult {
    /// `3/6 lsn 0/3000060`: how reports name the target.
    pub fn label(&self) -> String {
        self.reference().to_string()
    }

    /// The target as a step's outcome names it.
    pub fn reference(&self) -> TargetRef {
        TargetRef {
            index: self.index,
            count: self.count,
            target: self.target.clone(),
        }
    }
}

/// One wait for a WAL segment to reach the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveWait {
    pub step: String,
    pub segment: SegmentName,
    pub how: WaitHow,
    pub seconds: f64,
}

/// How a segment reached the archive, and so what an [`ArchiveWait`]'s seconds measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitHow {
    /// After `pg_switch_wal()`, host-measured.
    Switch,
    /// No switch: from the write's server-side commit time to
    /// `pg_stat_archiver.last_archived_time`.
    ArchiveTimeout,
}
