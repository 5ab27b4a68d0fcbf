//! Pure conditions over CloudNativePG objects and their pods: is a Cluster ready, stuck or
//! failed, is a Backup finished, what did a completed Backup record, has a recovery failed for
//! good and why, how long did each recovery phase take. Never does I/O and never reads a clock:
//! callers fetch objects and logs and pass them in.
//!
//! Modelled on `kube::runtime::wait::conditions`. CNPG facts relied on (CloudNativePG 1.30):
//! - phases are the strings of `api/v1/cluster_types.go`; the `Ready` condition is `True` exactly
//!   when the phase is `Cluster in healthy state` (`SetClusterReadyCondition`), and stays `True`
//!   while hibernated with zero pods, hence the extra `readyInstances` check;
//! - a recovery runs in a Job `<cluster>-<serial>-full-recovery` (pods labelled
//!   `cnpg.io/jobRole=full-recovery`, `restartPolicy: Never`, so every retry is a new pod) that
//!   restores the base backup, replays WAL and promotes; then the instance pod `<cluster>-<serial>`
//!   (`cnpg.io/podRole=instance`) starts on the recovered PGDATA;
//! - since 1.30 a Job that exhausted its backoff limit puts the Cluster in
//!   `Cluster is unrecoverable and needs manual intervention` with the phase reason
//!   `Instance creation failed for the following jobs: ...`.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::wait::Condition as WaitCondition;
use serde_json::Value;

use crate::backend::Phase;
use crate::backend::PhaseName;
use crate::backend::kube::resources::{Backup, Cluster, ClusterStatus};
use crate::ledger::BackupRecord;
use crate::wal::Lsn;

/// `PhaseHealthy`.
pub const PHASE_HEALTHY: &str = "Cluster in healthy state";
/// `PhaseFirstPrimary`: the bootstrap (initdb or recovery) Job is running.
pub const PHASE_SETTING_UP_PRIMARY: &str = "Setting up primary";
/// `PhaseUnrecoverable`: set for a failed instance-creation Job, for "no pods are active"
/// (every instance pod crash-looping or gone), for PVCs lost after initialisation and for a bad
/// promotion token. CNPG says it needs manual intervention.
pub const PHASE_UNRECOVERABLE: &str = "Cluster is unrecoverable and needs manual intervention";
/// `PhaseDefinitionInvalid`: the admission guard rejected the spec.
pub const PHASE_DEFINITION_INVALID: &str = "Invalid cluster definition";
/// `PhaseImageCatalogError`: no image can be chosen until the catalog is fixed.
pub const PHASE_IMAGE_CATALOG_ERROR: &str = "Cluster has incomplete or invalid image catalog";
/// `PhaseArchitectureBinaryMissing`.
pub const PHASE_ARCHITECTURE_BINARY_MISSING: &str =
    "Cluster cannot execute instance online upgrade due to missing architecture binary";

/// Phases that only a human can leave; everything else CNPG retries by itself.
///
/// Deliberately not terminal: `Unable to create required cluster objects` and the two plugin
/// phases (`... unknown plugin being required`, `... error while interacting with plugins`) are
/// registered on errors the reconciler retries (a plugin that is still loading, an API error);
/// `Waiting for user action` is a supervised-update pause, not an error. A drill that stays in
/// one of them is caught by the caller's timeout, with the phase in `Progressing`.
const TERMINAL_PHASES: &[&str] = &[
    PHASE_UNRECOVERABLE,
    PHASE_DEFINITION_INVALID,
    PHASE_IMAGE_CATALOG_ERROR,
    PHASE_ARCHITECTURE_BINARY_MISSING,
];

/// What `ClusterState::Progressing` carries before the operator wrote any phase.
pub const NO_STATUS: &str = "no status yet";

/// Condition types (`ClusterConditionType`) and the hibernation condition.
pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_CONTINUOUS_ARCHIVING: &str = "ContinuousArchiving";
pub const CONDITION_HIBERNATION: &str = "cnpg.io/hibernation";

/// Pod labels CNPG sets (`pkg/utils/labels_annotations.go`).
pub const LABEL_CLUSTER: &str = "cnpg.io/cluster";
pub const LABEL_JOB_ROLE: &str = "cnpg.io/jobRole";
pub const LABEL_POD_ROLE: &str = "cnpg.io/podRole";
pub const LABEL_INSTANCE_NAME: &str = "cnpg.io/instanceName";
/// `cnpg.io/jobRole` of the Job that restores a base backup (`jobRoleFullRecovery`).
pub const JOB_ROLE_FULL_RECOVERY: &str = "full-recovery";

/// Restarts after which a crash-looping instance container, or failed attempts after which the
/// full-recovery Job, count as a failed recovery even when no known signature is in the logs.
///
/// With the kubelet's back-off (10 s doubling to 5 min) five restarts take about five minutes,
/// long enough that a transient failure (image pull, node pressure, an OOM kill while replaying)
/// has had its chance, and earlier than the Job's default `backoffLimit` of 6 or the operator's
/// own `Unrecoverable` verdict. A container that is ready again does not count.
pub const CRASHLOOP_LIMIT: i32 = 5;

/// A Cluster as the drill sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// Healthy phase, `Ready` condition `True`, every requested instance ready.
    Ready,
    /// Anything else CNPG may still leave by itself: the phase as written in the status
    /// (exactly, e.g. `Setting up primary`), or [`NO_STATUS`].
    Progressing { phase: String },
    /// A phase only a human can leave (see `TERMINAL_PHASES`): `<phase>: <phaseReason>`.
    Failed { reason: String },
}

/// Ready = `status.phase == "Cluster in healthy state"` and condition `Ready=True` and
/// `readyInstances >= spec.instances`. Failed for the phases CNPG leaves only by manual
/// intervention. Otherwise Progressing with the phase (or [`NO_STATUS`]).
pub fn cluster_state(c: &Cluster) -> ClusterState {
    let Some(status) = c.status.as_ref() else {
        return progressing(NO_STATUS);
    };
    let phase = status.phase.as_deref().map(str::trim).unwrap_or_default();
    if phase.is_empty() {
        return progressing(NO_STATUS);
    }
    if TERMINAL_PHASES.contains(&phase) {
        let reason = match status.phase_reason.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => format!("{phase}: {r}"),
            _ => phase.to_string(),
        };
        return ClusterState::Failed { reason };
    }
    let ready_condition = condition_status(status, CONDITION_READY) == Some("True");
    let enough_instances = status.ready_instances.unwrap_or(0) >= c.spec.instances;
    if phase == PHASE_HEALTHY && ready_condition && enough_instances {
        ClusterState::Ready
    } else {
        progressing(phase)
    }
}

fn progressing(phase: &str) -> ClusterState {
    ClusterState::Progressing {
        phase: phase.to_string(),
    }
}

fn condition_status<'a>(status: &'a ClusterStatus, type_: &str) -> Option<&'a str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// For `kube::runtime::wait::await_condition`: the Cluster is no longer progressing, i.e.
/// [`ClusterState::Ready`] or [`ClusterState::Failed`], or it is gone (deleted under the
/// waiter, e.g. with its namespace: waiting on would only run into the deadline).
pub fn is_cluster_settled() -> impl WaitCondition<Cluster> {
    |obj: Option<&Cluster>| {
        obj.is_none_or(|c| !matches!(cluster_state(c), ClusterState::Progressing { .. }))
    }
}

/// The `cnpg.io/hibernation` condition is `True` (reason `Hibernated`: every pod deleted). While
/// hibernation is under way the condition is `False` (`DeletingPods`, `WaitingPodsDeletion`,
/// `WaitingForHealthy`), so this is false.
pub fn is_hibernated(c: &Cluster) -> bool {
    c.status
        .as_ref()
        .and_then(|s| condition_status(s, CONDITION_HIBERNATION))
        == Some("True")
}

/// The `ContinuousArchiving` condition the instance manager sets after each `wal-archive`:
/// `Some(true)` for `True`, `Some(false)` for `False` (its message is the archiver's error),
/// `None` when absent (nothing archived yet, or no archiving configured) or `Unknown`.
pub fn continuous_archiving(c: &Cluster) -> Option<bool> {
    match c
        .status
        .as_ref()
        .and_then(|s| condition_status(s, CONDITION_CONTINUOUS_ARCHIVING))
    {
        Some("True") => Some(true),
        Some("False") => Some(false),
        _ => None,
    }
}

/// A Backup as the drill sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupState {
    /// Not finished: the phase as written (`pending`, `started`, `running`, `finalizing`,
    /// `walArchivingFailing`), or [`NO_STATUS`].
    Pending {
        phase: String,
    },
    Completed,
    /// `status.error` (or a sentence saying it was empty).
    Failed {
        error: String,
    },
}

/// `status.phase` → [`BackupState`].
///
/// `walArchivingFailing` is Pending, not Failed: CNPG's own `BackupStatus.IsDone()` counts only
/// `completed` and `failed`, the operator never turns `walArchivingFailing` into `failed`, and
/// the phase is set before barman-cloud-backup runs, because a base backup is useless without
/// the WAL that makes it consistent. It can stay there indefinitely (cloudnative-pg#1985), so the
/// caller's timeout ends the wait, and [`continuous_archiving`] on the Cluster names the cause.
///
/// `invalid backup definition` (the admission guard's phase, reason in `status.error`) is Failed:
/// the guard only clears it when the spec changes, and pgdrill never changes a Backup's spec.
/// `status.commandError` is not read: `BackupStatus` in `resources.rs` does not carry it (CNPG
/// fills it only when exec'ing into the pod fails; barman-cloud-backup's own failures land in
/// `status.error` as `exit status N`, with barman's stderr in the instance pod's log).
pub fn backup_state(b: &Backup) -> BackupState {
    let status = b.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.as_deref())
        .map(str::trim)
        .unwrap_or_default();
    let error = status
        .and_then(|s| s.error.as_deref())
        .map(str::trim)
        .filter(|e| !e.is_empty());
    match phase {
        "" => BackupState::Pending {
            phase: NO_STATUS.to_string(),
        },
        "completed" => BackupState::Completed,
        "failed" => BackupState::Failed {
            error: error
                .unwrap_or("the backup failed and CNPG recorded no error")
                .to_string(),
        },
        "invalid backup definition" => BackupState::Failed {
            error: match error {
                Some(e) => format!("invalid backup definition: {e}"),
                None => "invalid backup definition".to_string(),
            },
        },
        other => BackupState::Pending {
            phase: other.to_string(),
        },
    }
}

/// For `await_condition`: the Backup is Completed or Failed, or it is gone (deleted under the
/// waiter).
pub fn is_backup_finished() -> impl WaitCondition<Backup> {
    |obj: Option<&Backup>| {
        obj.is_none_or(|b| {
            matches!(
                backup_state(b),
                BackupState::Completed | BackupState::Failed { .. }
            )
        })
    }
}

/// A completed Backup's status as the ledger's record: `backupId`, `beginLSN`/`endLSN` parsed,
/// `beginWal`/`endWal`, `stoppedAt` (RFC 3339, barman's end time) as `end_time`, and the
/// timeline from the first 8 hex digits of `beginWal`. `Err` names the Backup and the missing or
/// invalid field.
pub fn backup_record(step_id: &str, b: &Backup) -> Result<BackupRecord, String> {
    let name = b.name_any();
    let status = b
        .status
        .as_ref()
        .ok_or_else(|| format!("Backup {name} has no status"))?;
    let phase = status.phase.as_deref().unwrap_or_default();
    if phase != "completed" {
        return Err(format!(
            "Backup {name} is not completed (status.phase is `{phase}`)"
        ));
    }
    let field = |value: &Option<String>, field: &str| -> Result<String, String> {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("Backup {name}: status.{field} is missing"))
    };
    let lsn = |value: &Option<String>, f: &str| -> Result<Lsn, String> {
        field(value, f)?
            .parse()
            .map_err(|e| format!("Backup {name}: status.{f}: {e}"))
    };
    let wal = |value: &Option<String>, f: &str| -> Result<String, String> {
        let w = field(value, f)?;
        if w.len() == 24 && w.bytes().all(|c| c.is_ascii_hexdigit()) {
            Ok(w)
        } else {
            Err(format!(
                "Backup {name}: status.{f} `{w}` is not a WAL segment name (24 hex digits)"
            ))
        }
    };

    let backup_id = field(&status.backup_id, "backupId")?;
    let begin_lsn = lsn(&status.begin_lsn, "beginLSN")?;
    let end_lsn = lsn(&status.end_lsn, "endLSN")?;
    let begin_wal = wal(&status.begin_wal, "beginWal")?;
    let end_wal = wal(&status.end_wal, "endWal")?;
    let stopped_at = field(&status.stopped_at, "stoppedAt")?;
    let end_time = DateTime::parse_from_rfc3339(&stopped_at)
        .map_err(|e| {
            format!("Backup {name}: status.stoppedAt `{stopped_at}` is not an RFC 3339 time: {e}")
        })?
        .with_timezone(&Utc);
    let timeline = u32::from_str_radix(&begin_wal[..8], 16)
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| {
            format!("Backup {name}: status.beginWal `{begin_wal}` does not start with a timeline")
        })?;

    Ok(BackupRecord {
        step_id: step_id.to_string(),
        backup_id,
        begin_lsn,
        end_lsn,
        begin_wal,
        end_wal,
        end_time,
        timeline,
    })
}

/// A text that, in a recovery's logs, means the recovery will never become ready.
struct Signature {
    needle: &'static str,
    /// Why it is fatal; documentation only.
    #[allow(dead_code)]
    meaning: &'static str,
}

/// Matched case-sensitively against each rendered log line (see `render_log_line`).
const SIGNATURES: &[Signature] = &[
    Signature {
        needle: "Expected empty archive",
        meaning: "barman-cloud-check-wal-archive found WAL under the recovered cluster's \
                  serverName: the serverName is reused (CNPG refuses to overwrite an archive)",
    },
    Signature {
        needle: "database files are incompatible with server",
        meaning: "the image's PostgreSQL major differs from the backup's (PG_VERSION mismatch)",
    },
    Signature {
        needle: "could not locate required checkpoint record",
        meaning: "the WAL holding the backup's checkpoint is not in the archive",
    },
    Signature {
        needle: "could not locate a valid checkpoint record",
        meaning: "PANIC at startup: no usable checkpoint in pg_wal or the archive",
    },
    Signature {
        needle: "recovery ended before configured recovery target was reached",
        meaning: "the archived WAL ends before the target (missing segments, or a target in \
                  the future)",
    },
    Signature {
        needle: "requested timeline",
        meaning: "`requested timeline N is not a child of this server's history` or `... does \
                  not contain minimum recovery point`: the target timeline cannot be reached \
                  from the backup",
    },
    Signature {
        needle: "WAL ends before end of online backup",
        meaning: "WAL needed to make the base backup consistent is missing",
    },
    Signature {
        needle: "WAL ends before consistent recovery point",
        meaning: "WAL needed to reach consistency is missing",
    },
    Signature {
        needle: "requested recovery stop point is before consistent recovery point",
        meaning: "the target lies inside the base backup (before its end LSN)",
    },
    Signature {
        needle: "no target backup found",
        meaning: "CNPG found no backup in the catalog that ends before the target",
    },
    Signature {
        needle: "Missing file",
        meaning: "barman-cloud-restore: a file of the chosen base backup (data.tar*) is not in \
                  the archive, though its backup.info still lists it",
    },
    Signature {
        needle: "no backup found with ID",
        meaning: "recoveryTarget.backupID names a backup the archive's catalogue does not have",
    },
    Signature {
        needle: "no backup found on the remote object storage",
        meaning: "the archive has no base backup under the serverName recovery reads",
    },
    Signature {
        needle: "checking the presence of first needed WAL in the archive",
        meaning: "CNPG could not fetch the backup's beginWal from the archive",
    },
];

/// Why a recovery will never become ready, or `None` while it still may.
///
/// Looks, in order, for:
/// 1. a known fatal signature (`SIGNATURES`) in the logs, counted only when the pod it came from
///    is failing (phase `Failed`, a container terminated with a non-zero exit code, in
///    `CrashLoopBackOff` with `restartCount >= 2`, or restarted twice after a non-zero exit)
///    or is not in `pods` any more: PostgreSQL and the instance manager exit right after these
///    messages, so a pod still running is seen failing on the next poll, while a healthy pod
///    that merely logged one (e.g. a plugin archiver retrying its empty-archive check after a
///    successful recovery) is not a failed recovery. Also searched: the Cluster's `phaseReason`
///    and the messages of its non-`True` conditions, when the Cluster is not Ready;
/// 2. without a signature, a crash loop that went on long enough: an instance container
///    restarted [`CRASHLOOP_LIMIT`] times and not ready, or [`CRASHLOOP_LIMIT`] failed
///    full-recovery pods;
/// 3. a Cluster in a terminal phase ([`cluster_state`] Failed).
///
/// Returns one line per distinct signature (the first occurrence; a retried Job repeats them),
/// as `<pod>: <line>` where `<line>` is the rendered log line: for the instance manager's JSON
/// lines, `SEVERITY:  message` (and a `DETAIL:  ...` line) of an embedded PostgreSQL `record`,
/// else `msg` (`: error` appended when present); other lines trimmed. A PostgreSQL `DETAIL`
/// that follows on the next line (pg_ctl's stderr) is included. Lines are joined with `\n`.
/// `logs` is `(pod name, log text)`; pods labelled for another cluster, and their logs, are ignored.
pub fn recovery_failure(
    cluster: &Cluster,
    pods: &[Pod],
    logs: &[(String, String)],
) -> Option<String> {
    let cluster_name = cluster.name_any();
    let ours = |p: &Pod| label(p, LABEL_CLUSTER).is_none_or(|c| c == cluster_name);
    let state = cluster_state(cluster);

    let mut found = vec![false; SIGNATURES.len()];
    let mut out: Vec<String> = Vec::new();

    for (pod_name, text) in logs {
        let counts = match pods.iter().find(|p| p.name_any() == *pod_name) {
            Some(p) => ours(p) && pod_is_failing(p),
            None => true,
        };
        if !counts {
            continue;
        }
        let rendered: Vec<Vec<String>> = text.lines().map(render_log_line).collect();
        // A DETAIL already reported with its message is not searched again.
        let mut skip_line = None;
        for (i, sub_lines) in rendered.iter().enumerate() {
            if skip_line == Some(i) {
                continue;
            }
            for (j, sub) in sub_lines.iter().enumerate() {
                let Some(k) = match_signature(sub, &found) else {
                    continue;
                };
                found[k] = true;
                out.push(format!("{pod_name}: {sub}"));
                for detail in sub_lines[j + 1..].iter().filter(|l| is_detail(l)) {
                    out.push(format!("{pod_name}: {detail}"));
                }
                if j + 1 == sub_lines.len()
                    && let Some(next) = rendered.get(i + 1).and_then(|n| n.first())
                    && is_detail(next)
                {
                    out.push(format!("{pod_name}: {next}"));
                    skip_line = Some(i + 1);
                }
                break;
            }
        }
    }

    if state != ClusterState::Ready
        && let Some(status) = cluster.status.as_ref()
    {
        let texts = status.phase_reason.iter().chain(
            status
                .conditions
                .iter()
                .filter(|c| c.status != "True")
                .filter_map(|c| c.message.as_ref()),
        );
        for text in texts {
            let text = text.trim();
            if let Some(k) = match_signature(text, &found) {
                found[k] = true;
                out.push(format!("Cluster {cluster_name}: {text}"));
            }
        }
    }
    if !out.is_empty() {
        return Some(out.join("\n"));
    }

    let pods: Vec<&Pod> = pods.iter().filter(|p| ours(p)).collect();
    if let Some(crash) = crash_loop(&pods) {
        return Some(crash);
    }
    match state {
        ClusterState::Failed { reason } => Some(format!("Cluster {cluster_name}: {reason}")),
        _ => None,
    }
}

fn match_signature(text: &str, found: &[bool]) -> Option<usize> {
    SIGNATURES
        .iter()
        .enumerate()
        .find(|(k, s)| !found[*k] && text.contains(s.needle))
        .map(|(k, _)| k)
}

fn is_detail(line: &str) -> bool {
    line.contains("DETAIL:  ")
}

/// One log line as text. The instance manager writes JSON lines (`level`, `ts`, `logger`, `msg`,
/// `logging_pod`, ...); PostgreSQL's csvlog arrives as `"msg":"record"` with the fields under
/// `record`. `kubectl logs --timestamps` prefixes are skipped.
fn render_log_line(raw: &str) -> Vec<String> {
    let trimmed = raw.trim();
    let json = trimmed.find('{').and_then(|i| {
        let prefix = trimmed[..i].trim();
        if prefix.contains(char::is_whitespace) {
            return None;
        }
        serde_json::from_str::<Value>(&trimmed[i..])
            .ok()
            .filter(Value::is_object)
    });
    let Some(obj) = json else {
        return vec![trimmed.to_string()];
    };
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(record) = obj.get("record").filter(|r| r.is_object()) {
        let severity = text(record, "error_severity").unwrap_or_else(|| "LOG".to_string());
        let mut lines = vec![format!(
            "{severity}:  {}",
            text(record, "message").unwrap_or_default()
        )];
        if let Some(detail) = text(record, "detail") {
            lines.push(format!("DETAIL:  {detail}"));
        }
        return lines;
    }
    match (text(&obj, "msg"), text(&obj, "error")) {
        (Some(msg), Some(err)) => vec![format!("{msg}: {err}")],
        (Some(msg), None) => vec![msg],
        (None, Some(err)) => vec![err],
        (None, None) => vec![trimmed.to_string()],
    }
}

fn crash_loop(pods: &[&Pod]) -> Option<String> {
    let failed_jobs: Vec<&&Pod> = pods
        .iter()
        .filter(|p| is_full_recovery_pod(p) && pod_is_failing(p))
        .collect();
    if let Some(last) = failed_jobs.last()
        && failed_jobs.len() >= CRASHLOOP_LIMIT as usize
    {
        let exit = main_statuses(last)
            .find_map(|cs| cs.state.as_ref()?.terminated.as_ref())
            .map(|t| {
                format!(
                    ", the last one ({}) exited with code {}",
                    last.name_any(),
                    t.exit_code
                )
            })
            .unwrap_or_default();
        return Some(format!(
            "{} full-recovery pods failed{exit}",
            failed_jobs.len()
        ));
    }
    for pod in pods.iter().filter(|p| !is_full_recovery_pod(p)) {
        for cs in all_statuses(pod) {
            if cs.ready || cs.restart_count < CRASHLOOP_LIMIT {
                continue;
            }
            let last = cs
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| {
                    let mut s = format!(" (last exit code {}", t.exit_code);
                    if let Some(r) = t.reason.as_deref() {
                        s.push_str(&format!(", {r}"));
                    }
                    if let Some(m) = t
                        .message
                        .as_deref()
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                    {
                        s.push_str(&format!(": {m}"));
                    }
                    s.push(')');
                    s
                })
                .unwrap_or_default();
            return Some(format!(
                "{}: container {} restarted {} times without becoming ready{last}",
                pod.name_any(),
                cs.name,
                cs.restart_count
            ));
        }
    }
    None
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

pub fn is_full_recovery_pod(pod: &Pod) -> bool {
    label(pod, LABEL_JOB_ROLE) == Some(JOB_ROLE_FULL_RECOVERY)
}

fn is_instance_pod(pod: &Pod) -> bool {
    label(pod, LABEL_POD_ROLE) == Some("instance")
}

fn main_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
}

fn init_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
}

fn all_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    init_statuses(pod).chain(main_statuses(pod))
}

fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn terminated_nonzero(cs: &ContainerStatus) -> bool {
    cs.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code != 0)
}

fn last_terminated_nonzero(cs: &ContainerStatus) -> bool {
    cs.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code != 0)
}

fn crash_looping(cs: &ContainerStatus) -> bool {
    cs.state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        == Some("CrashLoopBackOff")
}

/// Phase `Failed`, a container terminated non-zero, or one crash-looping / restarted at least
/// twice after a non-zero exit.
fn pod_is_failing(pod: &Pod) -> bool {
    pod_phase(pod) == Some("Failed")
        || all_statuses(pod).any(|cs| {
            terminated_nonzero(cs)
                || (cs.restart_count >= 2 && (crash_looping(cs) || last_terminated_nonzero(cs)))
        })
}

fn to_utc(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

fn phase(name: PhaseName, started_at: DateTime<Utc>, finished_at: DateTime<Utc>) -> Phase {
    Phase {
        name,
        started_at,
        finished_at,
        seconds: (finished_at - started_at).num_milliseconds() as f64 / 1000.0,
        // The pods' logs carry LSNs: `ready_rto` gives the replay phases their bytes.
        bytes: None,
    }
}

/// The full-recovery container of a Job pod (named after the role), else its first container.
fn recovery_container(pod: &Pod) -> Option<&ContainerStatus> {
    main_statuses(pod)
        .find(|cs| cs.name == JOB_ROLE_FULL_RECOVERY)
        .or_else(|| main_statuses(pod).next())
}

fn container_started_at(cs: &ContainerStatus) -> Option<DateTime<Utc>> {
    let state = cs.state.as_ref()?;
    let t = state
        .terminated
        .as_ref()
        .and_then(|t| t.started_at.as_ref())
        .or_else(|| state.running.as_ref().and_then(|r| r.started_at.as_ref()))?;
    to_utc(t)
}

/// What the log of a full-recovery Job's `full-recovery` container says about the recovery:
/// when the restore of the base backup started and completed (the instance manager's
/// `Starting barman-cloud-restore` and `Restore completed`), when PostgreSQL reached a
/// consistent state and when it first accepted connections after promotion, and the log as
/// plain PostgreSQL-style lines (`LOG:  restored log file ...`) for [`crate::backend::pg_log`].
/// Times are the instance manager's `ts` (the node's clock, like the pods' timestamps).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RecoveryLog {
    pub restore_started: Option<DateTime<Utc>>,
    pub restore_completed: Option<DateTime<Utc>>,
    pub consistent: Option<DateTime<Utc>>,
    pub promoted: Option<DateTime<Utc>>,
    pub text: String,
}

/// Read a full-recovery container's log (JSON lines, see [`render_log_line`]).
pub fn recovery_log(raw: &str) -> RecoveryLog {
    let mut log = RecoveryLog::default();
    for line in raw.lines() {
        let ts = line
            .find('{')
            .and_then(|i| serde_json::from_str::<Value>(&line[i..]).ok())
            .and_then(|v| v.get("ts").and_then(Value::as_str).map(str::to_string))
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        for rendered in render_log_line(line) {
            let first = |slot: &mut Option<DateTime<Utc>>, needle: &str| {
                if slot.is_none() && rendered.contains(needle) {
                    *slot = ts;
                }
            };
            first(&mut log.restore_started, "Starting barman-cloud-restore");
            // In-tree, the instance manager restores and logs `Restore completed`; with the
            // plugin that line is in the plugin's sidecar, and `full-recovery` goes on with
            // `Creating new data directory` (observed with CNPG 1.30.0, plugin v0.14.0).
            first(&mut log.restore_completed, "Restore completed");
            first(&mut log.restore_completed, "Creating new data directory");
            first(&mut log.consistent, "consistent recovery state reached");
            if log.consistent.is_some() {
                first(
                    &mut log.promoted,
                    "database system is ready to accept connections",
                );
            }
            log.text.push_str(&rendered);
            log.text.push('\n');
        }
    }
    log
}

/// RTO phases from the time the recovery Cluster was applied (`applied_at`) to the instance
/// pod's readiness, read from pod timestamps and, when it was read in time, the successful
/// full-recovery container's log ([`recovery_log`]):
/// - `job_scheduling`: applied → the first full-recovery container started (volume, pod, the
///   bootstrap-controller init container copying the instance manager);
/// - with the Job's log: `restore_base_backup` (container start → the restore's end: the
///   archive check, choosing the backup, barman-cloud-restore), `replay_until_consistent`,
///   `replay_and_promotion` (→ first `ready to accept connections`), `job_wrap_up` (CNPG
///   restarts the server to configure it, checkpoints and stops it; → the container's
///   `finishedAt`); without it, one `recovery_job` phase from container start to `finishedAt`.
///   Failed attempts count from the first one: they are part of the time to recover;
/// - `instance_start`: `finishedAt` → `lastTransitionTime` of the `Ready=True` condition of the
///   instance pod the Job created (`cnpg.io/instanceName`).
///
/// The kubelet's times are whole seconds, the apply time and the log's are not: a container
/// is taken to run from its `startedAt` to the end of the second of its `finishedAt`, and a
/// phase never runs backwards (it is empty instead).
///
/// CNPG deletes the completed Job (and its pod) once the instance reports status, often before
/// the Cluster is Ready, so callers pass every full-recovery pod they saw, as last seen.
/// Phases whose timestamps are missing or out of order are left out.
pub fn recovery_phases(
    pods: &[Pod],
    log: Option<&RecoveryLog>,
    applied_at: DateTime<Utc>,
) -> Vec<Phase> {
    let jobs: Vec<&Pod> = pods.iter().filter(|p| is_full_recovery_pod(p)).collect();
    let started = jobs
        .iter()
        .filter_map(|p| recovery_container(p).and_then(container_started_at))
        .min();
    let succeeded = jobs.iter().find_map(|p| {
        let t = recovery_container(p)?
            .state
            .as_ref()?
            .terminated
            .as_ref()
            .filter(|t| t.exit_code == 0)?;
        Some((*p, to_utc(t.finished_at.as_ref()?)?))
    });
    let mut phases = Vec::new();
    let Some((job_pod, finished)) = succeeded else {
        return phases;
    };
    let mut job_end = finished;
    if let Some(started) = started.filter(|s| *s <= finished) {
        let start = started.max(applied_at);
        if applied_at <= started + chrono::Duration::seconds(1) {
            phases.push(phase(PhaseName::JobScheduling, applied_at, start));
        }
        // The log's marks, kept only when they run in order inside the container's lifetime.
        let lifetime_end = finished + chrono::Duration::seconds(1);
        let marks = log.and_then(|l| {
            let m = [l.restore_completed?, l.consistent?, l.promoted?];
            let ordered = start <= m[0] && m[0] <= m[1] && m[1] <= m[2] && m[2] < lifetime_end;
            ordered.then_some(m)
        });
        match marks {
            Some([restored, consistent, promoted]) => {
                job_end = finished.max(promoted);
                phases.push(phase(PhaseName::RestoreBaseBackup, start, restored));
                phases.push(phase(
                    PhaseName::ReplayUntilConsistent,
                    restored,
                    consistent,
                ));
                phases.push(phase(PhaseName::ReplayAndPromotion, consistent, promoted));
                phases.push(phase(PhaseName::JobWrapUp, promoted, job_end));
            }
            None => phases.push(phase(PhaseName::RecoveryJob, start, finished)),
        }
    }

    let instance_name = label(job_pod, LABEL_INSTANCE_NAME).map(str::to_string);
    let ready_at = pods
        .iter()
        .filter(|p| is_instance_pod(p))
        .filter(|p| match &instance_name {
            Some(n) => label(p, LABEL_INSTANCE_NAME) == Some(n) || p.name_any() == *n,
            None => true,
        })
        .find_map(|p| {
            let cond = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")?;
            to_utc(cond.last_transition_time.as_ref()?)
        });
    if let Some(ready) = ready_at.filter(|r| *r >= finished) {
        phases.push(phase(PhaseName::InstanceStart, job_end, ready.max(job_end)));
    }
    phases
}

/// A full-recovery Job pod whose recovery container exited 0: its log tells the whole recovery.
pub fn is_successful_recovery_job(pod: &Pod) -> bool {
    is_full_recovery_pod(pod)
        && recovery_container(pod)
            .and_then(|cs| cs.state.as_ref()?.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
}

/// A pod's container names: the main containers first, then init containers (which include
/// native sidecars such as the barman-cloud plugin's).
pub fn container_names(pod: &Pod) -> Vec<String> {
    let spec = pod.spec.as_ref();
    let main = spec.map(|s| s.containers.iter()).into_iter().flatten();
    let init = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten();
    main.chain(init).map(|c| c.name.clone()).collect()
}

/// Annotation a run renews on each namespace it owns while it runs (RFC 3339, the run's clock).
pub const HEARTBEAT_ANNOTATION: &str = "pgdrill.io/heartbeat";

/// Why a namespace another run made must be left alone, or `None` when it may be swept: its
/// run last renewed the heartbeat more than `stale` ago, or, for a namespace without one
/// (made by a pgdrill without heartbeats), it was created more than `stale` ago. Two runs of
/// the same scenario at once (two flavours, two users of one cluster) each sweep only what a
/// dead run left. `now` and the heartbeat are the two runs' clocks: `stale` must exceed their
/// skew and the renewal interval.
pub fn sweep_blocker(
    ns: &k8s_openapi::api::core::v1::Namespace,
    now: DateTime<Utc>,
    stale: std::time::Duration,
) -> Option<String> {
    let stale = chrono::Duration::from_std(stale).unwrap_or(chrono::Duration::MAX);
    let heartbeat = ns
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HEARTBEAT_ANNOTATION))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let (what, at) = match heartbeat {
        Some(t) => ("its run's heartbeat", t),
        None => (
            "it was created",
            ns.metadata.creation_timestamp.as_ref().and_then(to_utc)?,
        ),
    };
    let age = now - at;
    (age < stale).then(|| {
        format!(
            "{what} {}s ago: its run is alive (a namespace is swept {}s after its run stops)",
            age.num_seconds().max(0),
            stale.num_seconds()
        )
    })
}

/// Pods worth reading the logs of when looking for failure signatures: the failing ones
/// ([`recovery_failure`] only counts their logs): every failed full-recovery Job pod (each
/// retry is a pod), and instance pods in phase `Failed`, with a container terminated non-zero,
/// or restarting after non-zero exits. A healthy or still-running pod is not read: a signature
/// it logged counts once the pod fails, on a later look. Input order, no duplicates.
pub fn pods_to_inspect(pods: &[Pod]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in pods
        .iter()
        .filter(|p| is_full_recovery_pod(p) || is_instance_pod(p))
        .filter(|p| pod_is_failing(p))
    {
        let name = p.name_any();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A pod whose every container has terminated: its logs will not change any more.
pub fn is_finished_pod(pod: &Pod) -> bool {
    matches!(pod_phase(pod), Some("Failed" | "Succeeded"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::kube::resources::Condition;
    use k8s_openapi::api::core::v1::ContainerStateTerminated;

    const CLUSTER_HEALTHY: &str = include_str!("fixtures/cluster-healthy.json");
    /// Captured from CloudNativePG 1.30.0 on the live cluster (cluster/up.sh).
    const LOGS_FULL_RECOVERY_CRC: &str = include_str!("fixtures/logs-full-recovery-crc.jsonl");
    const CLUSTER_SETTING_UP_PRIMARY: &str =
        include_str!("fixtures/cluster-setting-up-primary.json");
    const CLUSTER_UNRECOVERABLE: &str = include_str!("fixtures/cluster-unrecoverable.json");
    const CLUSTER_HIBERNATED: &str = include_str!("fixtures/cluster-hibernated.json");
    const CLUSTER_ARCHIVING_FAILING: &str = include_str!("fixtures/cluster-archiving-failing.json");
    const BACKUP_COMPLETED: &str = include_str!("fixtures/backup-completed.json");
    const BACKUP_RUNNING: &str = include_str!("fixtures/backup-running.json");
    const BACKUP_FAILED: &str = include_str!("fixtures/backup-failed.json");
    const POD_FULL_RECOVERY_COMPLETED: &str =
        include_str!("fixtures/pod-full-recovery-completed.json");
    const POD_FULL_RECOVERY_FAILED: &str = include_str!("fixtures/pod-full-recovery-failed.json");
    const POD_INSTANCE_READY: &str = include_str!("fixtures/pod-instance-ready.json");
    const POD_CRASHLOOP: &str = include_str!("fixtures/pod-crashloop.json");
    const LOGS_EXPECTED_EMPTY_ARCHIVE: &str =
        include_str!("fixtures/logs-expected-empty-archive.jsonl");
    const LOGS_INCOMPATIBLE_MAJOR: &str = include_str!("fixtures/logs-incompatible-major.jsonl");
    const LOGS_RECOVERY_TARGET_NOT_REACHED: &str =
        include_str!("fixtures/logs-recovery-target-not-reached.jsonl");
    const LOGS_MISSING_CHECKPOINT: &str = include_str!("fixtures/logs-missing-checkpoint.jsonl");
    const LOGS_REQUESTED_TIMELINE: &str = include_str!("fixtures/logs-requested-timeline.jsonl");
    const LOGS_HEALTHY_RECOVERY: &str = include_str!("fixtures/logs-healthy-recovery.jsonl");

    const JOB_OK: &str = "recovered-1-full-recovery-7dpxq";
    const JOB_FAILED: &str = "recovered-1-full-recovery-kq4zd";

    fn cluster(json: &str) -> Cluster {
        serde_json::from_str(json).expect("cluster fixture")
    }
    fn backup(json: &str) -> Backup {
        serde_json::from_str(json).expect("backup fixture")
    }
    fn pod(json: &str) -> Pod {
        serde_json::from_str(json).expect("pod fixture")
    }
    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }
    fn log(pod: &str, text: &str) -> (String, String) {
        (pod.to_string(), text.to_string())
    }
    fn set_condition(c: &mut Cluster, type_: &str, status: &str, message: &str) {
        let st = c.status.as_mut().unwrap();
        st.conditions.retain(|c| c.type_ != type_);
        st.conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: None,
            message: Some(message.to_string()),
            last_transition_time: None,
        });
    }

    #[test]
    fn fixtures_are_what_a_cnpg_api_server_returns() {
        assert_eq!(cluster(CLUSTER_HEALTHY).name_any(), "source");
        assert_eq!(cluster(CLUSTER_SETTING_UP_PRIMARY).name_any(), "recovered");
        assert_eq!(cluster(CLUSTER_UNRECOVERABLE).spec.instances, 1);
        assert!(cluster(CLUSTER_HIBERNATED).status.is_some());
        assert!(cluster(CLUSTER_ARCHIVING_FAILING).status.is_some());
        assert_eq!(backup(BACKUP_RUNNING).spec.cluster.name, "source");
        assert_eq!(pod(POD_FULL_RECOVERY_COMPLETED).name_any(), JOB_OK);
        assert_eq!(pod(POD_FULL_RECOVERY_FAILED).name_any(), JOB_FAILED);
        assert_eq!(pod(POD_CRASHLOOP).name_any(), "recovered-1");
        for logs in [
            LOGS_EXPECTED_EMPTY_ARCHIVE,
            LOGS_INCOMPATIBLE_MAJOR,
            LOGS_RECOVERY_TARGET_NOT_REACHED,
            LOGS_MISSING_CHECKPOINT,
            LOGS_REQUESTED_TIMELINE,
            LOGS_HEALTHY_RECOVERY,
        ] {
            for line in logs.lines() {
                let v: Value = serde_json::from_str(line).expect("instance manager JSON line");
                assert!(
                    v["logging_pod"].is_string() && v["msg"].is_string(),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn healthy_cluster_is_ready() {
        let c = cluster(CLUSTER_HEALTHY);
        assert_eq!(cluster_state(&c), ClusterState::Ready);
        assert!(is_cluster_settled().matches_object(Some(&c)));
        assert!(
            is_cluster_settled().matches_object(None),
            "a deleted Cluster ends the wait"
        );
    }

    #[test]
    fn cluster_setting_up_primary_is_progressing() {
        let c = cluster(CLUSTER_SETTING_UP_PRIMARY);
        assert_eq!(
            cluster_state(&c),
            ClusterState::Progressing {
                phase: PHASE_SETTING_UP_PRIMARY.to_string()
            }
        );
        assert!(!is_cluster_settled().matches_object(Some(&c)));
    }

    #[test]
    fn unrecoverable_cluster_has_failed_with_the_phase_reason() {
        let c = cluster(CLUSTER_UNRECOVERABLE);
        let ClusterState::Failed { reason } = cluster_state(&c) else {
            panic!("expected Failed, got {:?}", cluster_state(&c));
        };
        assert!(reason.starts_with(PHASE_UNRECOVERABLE), "{reason}");
        assert!(
            reason.contains(
                "Instance creation failed for the following jobs: recovered-1-full-recovery"
            ),
            "{reason}"
        );
        // Failed is settled: the wait ends and the caller reports the reason.
        assert!(is_cluster_settled().matches_object(Some(&c)));
    }

    #[test]
    fn invalid_definition_has_failed() {
        let mut c = cluster(CLUSTER_HEALTHY);
        let st = c.status.as_mut().unwrap();
        st.phase = Some(PHASE_DEFINITION_INVALID.to_string());
        st.phase_reason = Some("spec.instances: Invalid value: 0".to_string());
        assert_eq!(
            cluster_state(&c),
            ClusterState::Failed {
                reason: "Invalid cluster definition: spec.instances: Invalid value: 0".to_string()
            }
        );
    }

    #[test]
    fn cluster_without_status_is_progressing() {
        let mut c = cluster(CLUSTER_HEALTHY);
        c.status = None;
        assert_eq!(cluster_state(&c), progressing(NO_STATUS));
        c.status = Some(ClusterStatus::default());
        assert_eq!(cluster_state(&c), progressing(NO_STATUS));
    }

    #[test]
    fn healthy_phase_is_not_ready_without_ready_condition_or_enough_instances() {
        let mut short = cluster(CLUSTER_HEALTHY);
        short.spec.instances = 3;
        assert_eq!(cluster_state(&short), progressing(PHASE_HEALTHY));

        let mut not_ready = cluster(CLUSTER_HEALTHY);
        set_condition(&mut not_ready, "Ready", "False", "Cluster Is Not Ready");
        assert_eq!(cluster_state(&not_ready), progressing(PHASE_HEALTHY));

        let mut waiting = cluster(CLUSTER_HEALTHY);
        waiting.status.as_mut().unwrap().phase =
            Some("Waiting for the instances to become active".to_string());
        assert_eq!(
            cluster_state(&waiting),
            progressing("Waiting for the instances to become active")
        );
    }

    #[test]
    fn hibernated_cluster_is_hibernated_and_not_ready() {
        let c = cluster(CLUSTER_HIBERNATED);
        assert!(is_hibernated(&c));
        // CNPG keeps the healthy phase and Ready=True with zero pods.
        assert_eq!(cluster_state(&c), progressing(PHASE_HEALTHY));
        assert!(!is_hibernated(&cluster(CLUSTER_HEALTHY)));

        let mut ongoing = cluster(CLUSTER_HIBERNATED);
        set_condition(
            &mut ongoing,
            CONDITION_HIBERNATION,
            "False",
            "Hibernation is in progress",
        );
        assert!(!is_hibernated(&ongoing));
    }

    #[test]
    fn continuous_archiving_reads_the_condition() {
        assert_eq!(continuous_archiving(&cluster(CLUSTER_HEALTHY)), Some(true));
        let failing = cluster(CLUSTER_ARCHIVING_FAILING);
        assert_eq!(continuous_archiving(&failing), Some(false));
        // Archiving failing does not make the cluster unready.
        assert_eq!(cluster_state(&failing), ClusterState::Ready);
        assert_eq!(
            continuous_archiving(&cluster(CLUSTER_SETTING_UP_PRIMARY)),
            None
        );
        let mut unknown = cluster(CLUSTER_HEALTHY);
        set_condition(&mut unknown, CONDITION_CONTINUOUS_ARCHIVING, "Unknown", "");
        assert_eq!(continuous_archiving(&unknown), None);
    }

    #[test]
    fn backup_states_follow_the_phase() {
        assert_eq!(
            backup_state(&backup(BACKUP_COMPLETED)),
            BackupState::Completed
        );
        assert_eq!(
            backup_state(&backup(BACKUP_RUNNING)),
            BackupState::Pending {
                phase: "running".to_string()
            }
        );
        assert_eq!(
            backup_state(&backup(BACKUP_FAILED)),
            BackupState::Failed {
                error: "exit status 4".to_string()
            }
        );

        let mut b = backup(BACKUP_RUNNING);
        b.status.as_mut().unwrap().phase = Some("walArchivingFailing".to_string());
        assert_eq!(
            backup_state(&b),
            BackupState::Pending {
                phase: "walArchivingFailing".to_string()
            }
        );
        b.status = None;
        assert_eq!(
            backup_state(&b),
            BackupState::Pending {
                phase: NO_STATUS.to_string()
            }
        );

        let mut silent = backup(BACKUP_FAILED);
        silent.status.as_mut().unwrap().error = None;
        let BackupState::Failed { error } = backup_state(&silent) else {
            panic!("expected Failed");
        };
        assert!(error.contains("no error"), "{error}");

        let mut invalid = backup(BACKUP_RUNNING);
        let st = invalid.status.as_mut().unwrap();
        st.phase = Some("invalid backup definition".to_string());
        st.error = Some("cannot find cluster".to_string());
        assert_eq!(
            backup_state(&invalid),
            BackupState::Failed {
                error: "invalid backup definition: cannot find cluster".to_string()
            }
        );
    }

    #[test]
    fn backup_is_finished_when_completed_or_failed() {
        assert!(is_backup_finished().matches_object(Some(&backup(BACKUP_COMPLETED))));
        assert!(is_backup_finished().matches_object(Some(&backup(BACKUP_FAILED))));
        assert!(!is_backup_finished().matches_object(Some(&backup(BACKUP_RUNNING))));
        assert!(
            is_backup_finished().matches_object(None),
            "a deleted Backup ends the wait"
        );
    }

    #[test]
    fn completed_backup_becomes_a_ledger_record() {
        let record = backup_record("base", &backup(BACKUP_COMPLETED)).unwrap();
        assert_eq!(
            record,
            BackupRecord {
                step_id: "base".to_string(),
                backup_id: "20261122T024830".to_string(),
                begin_lsn: Lsn(0x0600_0028),
                end_lsn: Lsn(0x0600_0120),
                begin_wal: "000000010000000000000006".to_string(),
                end_wal: "000000010000000000000006".to_string(),
                end_time: at("2026-11-22T02:48:33Z"),
                timeline: 1,
            }
        );

        let mut later = backup(BACKUP_COMPLETED);
        let st = later.status.as_mut().unwrap();
        st.begin_wal = Some("0000000A0000000100000003".to_string());
        st.begin_lsn = Some("1/3000028".to_string());
        let record = backup_record("base", &later).unwrap();
        assert_eq!(record.timeline, 10);
        assert_eq!(record.begin_lsn, Lsn(0x1_0300_0028));
    }

    #[test]
    fn backup_record_names_the_missing_or_invalid_field() {
        let err = backup_record("base", &backup(BACKUP_RUNNING)).unwrap_err();
        assert!(
            err.contains("pgdrill-base") && err.contains("not completed"),
            "{err}"
        );

        let broken = |edit: fn(&mut crate::backend::kube::resources::BackupStatus)| {
            let mut b = backup(BACKUP_COMPLETED);
            edit(b.status.as_mut().unwrap());
            backup_record("base", &b).unwrap_err()
        };
        assert!(broken(|s| s.backup_id = None).contains("status.backupId is missing"));
        assert!(broken(|s| s.begin_lsn = None).contains("status.beginLSN is missing"));
        assert!(broken(|s| s.end_lsn = Some("6000120".into())).contains("status.endLSN"));
        assert!(
            broken(|s| s.begin_wal = Some("00000001000000000006".into()))
                .contains("status.beginWal")
        );
        assert!(broken(|s| s.end_wal = Some(String::new())).contains("status.endWal is missing"));
        assert!(broken(|s| s.stopped_at = Some("22/11/2026".into())).contains("status.stoppedAt"));
        assert!(
            broken(|s| s.begin_wal = Some("000000000000000000000006".into())).contains("timeline")
        );
    }

    // --- recovery_failure: one test per signature -----------------------------------------

    fn failed_recovery(logs: &str) -> Option<String> {
        recovery_failure(
            &cluster(CLUSTER_SETTING_UP_PRIMARY),
            &[pod(POD_FULL_RECOVERY_FAILED)],
            &[log(JOB_FAILED, logs)],
        )
    }

    #[test]
    fn expected_empty_archive_is_a_failure() {
        let msg = failed_recovery(LOGS_EXPECTED_EMPTY_ARCHIVE).expect("failure");
        assert_eq!(
            msg,
            "recovered-1-full-recovery-kq4zd: 2026-11-22 02:50:12,172 [24] ERROR: WAL archive \
             check failed for server pg-src: Expected empty archive"
        );
    }

    #[test]
    fn incompatible_major_is_a_failure_with_its_detail() {
        let msg = failed_recovery(LOGS_INCOMPATIBLE_MAJOR).expect("failure");
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 2, "{msg}");
        assert!(
            lines[0].ends_with("FATAL:  database files are incompatible with server"),
            "{msg}"
        );
        assert!(
            lines[1].contains(
                "DETAIL:  The data directory was initialized by PostgreSQL version 15, which is \
                 not compatible with this version 16.11"
            ),
            "{msg}"
        );
    }

    #[test]
    fn recovery_target_not_reached_is_a_failure() {
        let msg = failed_recovery(LOGS_RECOVERY_TARGET_NOT_REACHED).expect("failure");
        assert_eq!(
            msg,
            "recovered-1-full-recovery-kq4zd: FATAL:  recovery ended before configured recovery \
             target was reached"
        );
    }

    #[test]
    fn missing_checkpoint_record_is_a_failure() {
        let msg = failed_recovery(LOGS_MISSING_CHECKPOINT).expect("failure");
        assert_eq!(
            msg,
            "recovered-1-full-recovery-kq4zd: FATAL:  could not locate required checkpoint record"
        );
    }

    #[test]
    fn requested_timeline_is_a_failure_with_its_detail() {
        let msg = failed_recovery(LOGS_REQUESTED_TIMELINE).expect("failure");
        assert!(
            msg.starts_with(
                "recovered-1-full-recovery-kq4zd: FATAL:  requested timeline 3 is not a child of \
                 this server's history\n"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("DETAIL:  Latest checkpoint is at 0/6000060 on timeline 1"),
            "{msg}"
        );
    }

    #[test]
    fn a_detail_is_reported_once_even_when_it_matches_another_signature() {
        let text = "2026-11-22 02:50:17.621 UTC [35] FATAL:  WAL ends before consistent recovery point\n\
                    2026-11-22 02:50:17.621 UTC [35] DETAIL:  while replaying the requested timeline 2";
        let msg = failed_recovery(text).expect("failure");
        assert_eq!(msg.lines().count(), 2, "{msg}");
        assert!(
            msg.lines()
                .nth(1)
                .unwrap()
                .contains("DETAIL:  while replaying"),
            "{msg}"
        );
    }

    #[test]
    fn cnpg_restore_errors_are_failures() {
        let no_backup = r#"{"level":"error","ts":"2026-11-22T02:50:12.1Z","msg":"Error while restoring a backup","logging_pod":"recovered-1-full-recovery","error":"no target backup found"}"#;
        assert_eq!(
            failed_recovery(no_backup).as_deref(),
            Some(
                "recovered-1-full-recovery-kq4zd: Error while restoring a backup: no target backup found"
            )
        );
        let first_wal = r#"{"level":"error","ts":"2026-11-22T02:50:12.1Z","msg":"Error while restoring a backup","logging_pod":"recovered-1-full-recovery","error":"encountered an error while checking the presence of first needed WAL in the archive: object storage or file not found 000000010000000000000006: WAL not found"}"#;
        assert!(
            failed_recovery(first_wal)
                .unwrap()
                .contains("first needed WAL")
        );
    }

    #[test]
    fn plain_and_timestamped_lines_are_searched_too() {
        let plain = "2026-11-22 02:50:18.244 UTC [35] FATAL:  WAL ends before end of online backup\n\
                     2026-11-22 02:50:18.244 UTC [35] HINT:  All WAL generated while online backup was taken must be available at recovery.";
        assert_eq!(
            failed_recovery(plain).as_deref(),
            Some(
                "recovered-1-full-recovery-kq4zd: 2026-11-22 02:50:18.244 UTC [35] FATAL:  WAL ends before end of online backup"
            )
        );
        let stamped: String = LOGS_RECOVERY_TARGET_NOT_REACHED
            .lines()
            .map(|l| format!("2026-11-22T02:50:18.244004000Z {l}\n"))
            .collect();
        assert!(
            failed_recovery(&stamped)
                .unwrap()
                .contains("recovery ended before")
        );
    }

    #[test]
    fn healthy_recovery_logs_are_no_failure() {
        let c = cluster(CLUSTER_SETTING_UP_PRIMARY);
        let pods = [pod(POD_FULL_RECOVERY_COMPLETED), pod(POD_INSTANCE_READY)];
        assert_eq!(
            recovery_failure(&c, &pods, &[log(JOB_OK, LOGS_HEALTHY_RECOVERY)]),
            None
        );
        // Even when the pod had failed, nothing in these logs is a signature.
        assert_eq!(failed_recovery(LOGS_HEALTHY_RECOVERY), None);
        assert_eq!(recovery_failure(&cluster(CLUSTER_HEALTHY), &[], &[]), None);
    }

    #[test]
    fn signature_in_a_running_pod_waits_for_the_pod_to_fail() {
        let c = cluster(CLUSTER_HEALTHY);
        let pods = [pod(POD_INSTANCE_READY)];
        let logs = [log("recovered-1", LOGS_EXPECTED_EMPTY_ARCHIVE)];
        let mut running_cluster = c.clone();
        running_cluster.metadata.name = Some("recovered".to_string());
        assert_eq!(recovery_failure(&running_cluster, &pods, &logs), None);
        // Logs of a pod that is gone count.
        assert!(recovery_failure(&running_cluster, &[], &logs).is_some());
    }

    #[test]
    fn crash_loop_with_a_signature_is_a_failure() {
        let c = cluster(CLUSTER_SETTING_UP_PRIMARY);
        let pods = [pod(POD_FULL_RECOVERY_COMPLETED), pod(POD_CRASHLOOP)];
        let msg = recovery_failure(&c, &pods, &[log("recovered-1", LOGS_REQUESTED_TIMELINE)])
            .expect("failure");
        assert!(
            msg.starts_with("recovered-1: FATAL:  requested timeline 3"),
            "{msg}"
        );
    }

    #[test]
    fn crash_loop_without_a_signature_fails_only_at_the_limit() {
        let c = cluster(CLUSTER_SETTING_UP_PRIMARY);
        let quiet = [log("recovered-1", LOGS_HEALTHY_RECOVERY)];
        let looping = pod(POD_CRASHLOOP);
        assert!(main_statuses(&looping).next().unwrap().restart_count < CRASHLOOP_LIMIT);
        assert_eq!(
            recovery_failure(&c, std::slice::from_ref(&looping), &quiet),
            None
        );

        let mut at_limit = looping;
        at_limit
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .restart_count = CRASHLOOP_LIMIT;
        assert_eq!(
            recovery_failure(&c, &[at_limit], &quiet).as_deref(),
            Some(
                "recovered-1: container postgres restarted 5 times without becoming ready \
                 (last exit code 1, Error)"
            )
        );
    }

    #[test]
    fn repeated_failed_recovery_jobs_fail_at_the_limit() {
        let c = cluster(CLUSTER_SETTING_UP_PRIMARY);
        let attempts = |n: usize| -> Vec<Pod> {
            (0..n)
                .map(|i| {
                    let mut p = pod(POD_FULL_RECOVERY_FAILED);
                    p.metadata.name = Some(format!("recovered-1-full-recovery-try{i}"));
                    p
                })
                .collect()
        };
        assert_eq!(
            recovery_failure(&c, &attempts(CRASHLOOP_LIMIT as usize - 1), &[]),
            None
        );
        let msg = recovery_failure(&c, &attempts(CRASHLOOP_LIMIT as usize), &[]).unwrap();
        assert_eq!(
            msg,
            "5 full-recovery pods failed, the last one (recovered-1-full-recovery-try4) exited with code 1"
        );
    }

    #[test]
    fn unrecoverable_cluster_is_a_failure_and_signatures_come_first() {
        let c = cluster(CLUSTER_UNRECOVERABLE);
        let msg = recovery_failure(&c, &[pod(POD_FULL_RECOVERY_FAILED)], &[]).unwrap();
        assert!(
            msg.starts_with("Cluster recovered: Cluster is unrecoverable"),
            "{msg}"
        );

        let msg = recovery_failure(
            &c,
            &[pod(POD_FULL_RECOVERY_FAILED)],
            &[log(JOB_FAILED, LOGS_EXPECTED_EMPTY_ARCHIVE)],
        )
        .unwrap();
        assert!(msg.ends_with("Expected empty archive"), "{msg}");
    }

    #[test]
    fn signature_in_a_cluster_condition_is_a_failure() {
        let mut c = cluster(CLUSTER_SETTING_UP_PRIMARY);
        set_condition(
            &mut c,
            CONDITION_CONTINUOUS_ARCHIVING,
            "False",
            "ERROR: WAL archive check failed for server pg-src: Expected empty archive",
        );
        assert_eq!(
            recovery_failure(&c, &[], &[]).as_deref(),
            Some(
                "Cluster recovered: ERROR: WAL archive check failed for server pg-src: Expected empty archive"
            )
        );
    }

    #[test]
    fn a_signature_repeated_by_retries_is_reported_once() {
        let c = cluster(CLUSTER_SETTING_UP_PRIMARY);
        let mut second = pod(POD_FULL_RECOVERY_FAILED);
        second.metadata.name = Some("recovered-1-full-recovery-m2v8s".to_string());
        let msg = recovery_failure(
            &c,
            &[pod(POD_FULL_RECOVERY_FAILED), second],
            &[
                log(JOB_FAILED, LOGS_EXPECTED_EMPTY_ARCHIVE),
                log(
                    "recovered-1-full-recovery-m2v8s",
                    LOGS_EXPECTED_EMPTY_ARCHIVE,
                ),
            ],
        )
        .unwrap();
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(msg.starts_with(JOB_FAILED), "{msg}");
    }

    #[test]
    fn pods_of_another_cluster_are_ignored() {
        let c = cluster(CLUSTER_HEALTHY); // "source"; the pods are "recovered"'s
        let msg = recovery_failure(
            &c,
            &[pod(POD_FULL_RECOVERY_FAILED)],
            &[log(JOB_FAILED, LOGS_EXPECTED_EMPTY_ARCHIVE)],
        );
        assert_eq!(msg, None);
        let mut looping = pod(POD_CRASHLOOP);
        looping
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .restart_count = CRASHLOOP_LIMIT;
        assert_eq!(recovery_failure(&c, &[looping], &[]), None);
    }

    // --- recovery_phases ----------------------------------------------------------------------

    #[test]
    fn recovery_phases_from_job_and_instance_pods() {
        let pods = [pod(POD_FULL_RECOVERY_COMPLETED), pod(POD_INSTANCE_READY)];
        let phases = recovery_phases(&pods, None, at("2026-11-22T02:50:02Z"));
        assert_eq!(
            phases,
            vec![
                Phase {
                    name: PhaseName::JobScheduling,
                    started_at: at("2026-11-22T02:50:02Z"),
                    finished_at: at("2026-11-22T02:50:10Z"),
                    seconds: 8.0,
                    bytes: None,
                },
                Phase {
                    name: PhaseName::RecoveryJob,
                    started_at: at("2026-11-22T02:50:10Z"),
                    finished_at: at("2026-11-22T02:50:41Z"),
                    seconds: 31.0,
                    bytes: None,
                },
                Phase {
                    name: PhaseName::InstanceStart,
                    started_at: at("2026-11-22T02:50:41Z"),
                    finished_at: at("2026-11-22T02:50:52Z"),
                    seconds: 11.0,
                    bytes: None,
                },
            ]
        );
    }

    #[test]
    fn recovery_phases_skip_what_cannot_be_computed() {
        // Job done, instance not ready yet.
        let applied = at("2026-11-22T02:50:02Z");
        let phases = recovery_phases(
            &[pod(POD_FULL_RECOVERY_COMPLETED), pod(POD_CRASHLOOP)],
            None,
            applied,
        );
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["job_scheduling", "recovery_job"]);

        // A log whose marks fall outside the container's lifetime is not used.
        let log = recovery_log(LOGS_FULL_RECOVERY_CRC);
        let phases = recovery_phases(&[pod(POD_FULL_RECOVERY_COMPLETED)], Some(&log), applied);
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["job_scheduling", "recovery_job"]);

        // Job still running: nothing.
        let mut running = pod(POD_FULL_RECOVERY_COMPLETED);
        let cs = &mut running
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0];
        cs.state = Some(k8s_openapi::api::core::v1::ContainerState {
            running: Some(k8s_openapi::api::core::v1::ContainerStateRunning {
                started_at: Some(time("2026-11-22T02:50:10Z")),
            }),
            ..Default::default()
        });
        assert!(recovery_phases(&[running, pod(POD_INSTANCE_READY)], None, applied).is_empty());

        // Only failed attempts: nothing.
        assert!(recovery_phases(&[pod(POD_FULL_RECOVERY_FAILED)], None, applied).is_empty());
        assert!(recovery_phases(&[], None, applied).is_empty());
    }

    #[test]
    fn recovery_phases_start_at_the_first_attempt() {
        let mut failed = pod(POD_FULL_RECOVERY_FAILED);
        let cs = &mut failed
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0];
        cs.state = Some(k8s_openapi::api::core::v1::ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 1,
                reason: Some("Error".to_string()),
                started_at: Some(time("2026-11-22T02:49:40Z")),
                finished_at: Some(time("2026-11-22T02:49:44Z")),
                ..Default::default()
            }),
            ..Default::default()
        });
        let phases = recovery_phases(
            &[
                failed,
                pod(POD_FULL_RECOVERY_COMPLETED),
                pod(POD_INSTANCE_READY),
            ],
            None,
            at("2026-11-22T02:49:30Z"),
        );
        assert_eq!(
            phases[0].seconds, 10.0,
            "applied → the first attempt's start"
        );
        assert_eq!(phases[1].started_at, at("2026-11-22T02:49:40Z"));
        assert_eq!(phases[1].seconds, 61.0);
        assert_eq!(phases[2].seconds, 11.0);
    }

    /// The completed full-recovery Job pod fixture, its container running from `started` to
    /// `finished` (whole seconds, as the kubelet writes them).
    fn job_ran(started: &str, finished: &str) -> Pod {
        let mut job = pod(POD_FULL_RECOVERY_COMPLETED);
        let cs = &mut job
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0];
        cs.state = Some(k8s_openapi::api::core::v1::ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 0,
                reason: Some("Completed".to_string()),
                started_at: Some(time(started)),
                finished_at: Some(time(finished)),
                ..Default::default()
            }),
            ..Default::default()
        });
        job
    }

    /// The kubelet's whole seconds against the precise apply time and log marks: a Job that
    /// starts in the second it was applied, and marks logged in the container's last second,
    /// still give every phase, none of them negative.
    #[test]
    fn recovery_phases_allow_for_whole_second_pod_times() {
        let log = recovery_log(LOGS_FULL_RECOVERY_CRC);
        let job = job_ran("2026-12-02T05:28:25Z", "2026-12-02T05:28:40Z");
        let phases = recovery_phases(&[job], Some(&log), at("2026-12-02T05:28:25.400Z"));
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "job_scheduling",
                "restore_base_backup",
                "replay_until_consistent",
                "replay_and_promotion",
                "job_wrap_up"
            ]
        );
        assert!(phases.iter().all(|p| p.seconds >= 0.0), "{phases:?}");
        assert_eq!(
            phases[0].seconds, 0.0,
            "started in the second it was applied"
        );
    }

    /// A real full-recovery log (CNPG 1.30.0 on the live cluster, scenario 20: a CRC-damaged
    /// record in segment 5): the marks, the restored segments and why replay ended.
    #[test]
    fn a_full_recovery_log_gives_its_marks_segments_and_replay_end() {
        let log = recovery_log(LOGS_FULL_RECOVERY_CRC);
        assert_eq!(
            log.restore_started,
            Some(at("2026-12-02T05:28:29.380695289Z"))
        );
        assert_eq!(
            log.restore_completed,
            Some(at("2026-12-02T05:28:30.758586177Z"))
        );
        assert_eq!(log.consistent, Some(at("2026-12-02T05:28:36.311314196Z")));
        assert_eq!(log.promoted, Some(at("2026-12-02T05:28:40.142533024Z")));
        assert_eq!(
            crate::backend::pg_log::restored_segments(&log.text)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "000000010000000000000003",
                "000000010000000000000004",
                "000000010000000000000005",
                // PostgreSQL reads the last segment again when it leaves recovery.
                "000000010000000000000005",
            ]
        );
        assert_eq!(crate::backend::pg_log::replayed_segment_count(&log.text), 3);
        assert_eq!(
            crate::backend::pg_log::replay_end(&log.text).as_deref(),
            Some("incorrect resource manager data checksum in record at 0/50000D0")
        );
        assert_eq!(
            crate::backend::pg_log::last_replayed_commit(&log.text),
            Some(at("2026-12-02T05:28:14.008801Z"))
        );

        // With the Job's pod as it was when it finished, the phases split the Job at the marks.
        let job = job_ran("2026-12-02T05:28:25Z", "2026-12-02T05:28:47Z");
        let phases = recovery_phases(&[job], Some(&log), at("2026-12-02T05:28:15Z"));
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "job_scheduling",
                "restore_base_backup",
                "replay_until_consistent",
                "replay_and_promotion",
                "job_wrap_up"
            ]
        );
        assert_eq!(phases[0].started_at, at("2026-12-02T05:28:15Z"));
        assert_eq!(phases[4].finished_at, at("2026-12-02T05:28:47Z"));
        for pair in phases.windows(2) {
            assert_eq!(
                pair[0].finished_at, pair[1].started_at,
                "contiguous: {phases:?}"
            );
        }
        assert_eq!(phases[2].finished_at, at("2026-12-02T05:28:36.311314196Z"));
    }

    /// With the barman-cloud plugin the restore runs in the sidecar; `full-recovery` marks its
    /// end with `Creating new data directory` (captured on the live cluster).
    #[test]
    fn the_plugin_flavours_recovery_log_marks_the_restore_too() {
        let log = recovery_log(
            "{\"level\":\"info\",\"ts\":\"2026-12-02T05:43:32.103Z\",\"msg\":\"Restore through plugin detected, proceeding...\"}\n\
             {\"level\":\"info\",\"ts\":\"2026-12-02T05:43:50.255Z\",\"msg\":\"Creating new data directory\"}\n",
        );
        assert_eq!(log.restore_completed, Some(at("2026-12-02T05:43:50.255Z")));
    }

    // --- sweep_blocker ------------------------------------------------------------------------

    #[test]
    fn only_namespaces_of_dead_runs_are_swept() {
        use k8s_openapi::api::core::v1::Namespace;
        let now = at("2026-12-02T06:00:00Z");
        let stale = std::time::Duration::from_secs(180);
        let ns = |heartbeat: Option<&str>, created: &str| {
            let mut n = Namespace::default();
            n.metadata.creation_timestamp = Some(time(created));
            n.metadata.annotations = heartbeat.map(|h| {
                [(HEARTBEAT_ANNOTATION.to_string(), h.to_string())]
                    .into_iter()
                    .collect()
            });
            n
        };
        // A run renewing its heartbeat: alive, whatever the namespace's age.
        let alive = sweep_blocker(
            &ns(Some("2026-12-02T05:59:30Z"), "2026-12-02T05:00:00Z"),
            now,
            stale,
        );
        assert!(
            alive
                .as_deref()
                .is_some_and(|w| w.contains("heartbeat 30s ago")),
            "{alive:?}"
        );
        // Heartbeat gone stale: the run died.
        assert_eq!(
            sweep_blocker(
                &ns(Some("2026-12-02T05:56:00Z"), "2026-12-02T05:55:00Z"),
                now,
                stale
            ),
            None
        );
        // No heartbeat (an older pgdrill): judged by age.
        assert!(sweep_blocker(&ns(None, "2026-12-02T05:59:00Z"), now, stale).is_some());
        assert_eq!(
            sweep_blocker(&ns(None, "2026-12-02T05:40:00Z"), now, stale),
            None
        );
        // An unreadable heartbeat counts as none.
        assert_eq!(
            sweep_blocker(&ns(Some("yesterday"), "2026-12-02T05:40:00Z"), now, stale),
            None
        );
    }

    // --- pods_to_inspect ----------------------------------------------------------------------

    #[test]
    fn pods_to_inspect_are_recovery_jobs_and_troubled_instances() {
        // Nothing failing: no log is worth a request.
        assert!(
            pods_to_inspect(&[pod(POD_FULL_RECOVERY_COMPLETED), pod(POD_INSTANCE_READY)])
                .is_empty()
        );
        assert_eq!(
            pods_to_inspect(&[pod(POD_CRASHLOOP), pod(POD_FULL_RECOVERY_COMPLETED)]),
            vec!["recovered-1".to_string()]
        );
        assert_eq!(
            pods_to_inspect(&[
                pod(POD_FULL_RECOVERY_FAILED),
                pod(POD_FULL_RECOVERY_COMPLETED)
            ]),
            vec![JOB_FAILED.to_string()]
        );
        assert!(is_finished_pod(&pod(POD_FULL_RECOVERY_FAILED)));
        assert!(!is_finished_pod(&pod(POD_CRASHLOOP)));
        assert!(pods_to_inspect(&[pod(POD_INSTANCE_READY)]).is_empty());
    }
}
