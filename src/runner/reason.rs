//! Stable failure reason codes: what a failed drill, random target or game day came down to, as
//! one snake_case word dashboards can group by (JUnit `type`, `rto.json`, `gameday.json`,
//! metrics labels). Pure: classifies results and messages already gathered, never runs or reads
//! anything. The codes are a public contract: add new ones, never rename or reuse one.

use serde::{Deserialize, Serialize};

use crate::ledger::FaultRecord;
use crate::verify::Verification;

/// Why a recovery test failed. `Display` and serde give the same snake_case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// WAL recovery needed is not in the archive (a missing segment, a gap, WAL never
    /// archived): recovery failed or stopped early and rows are missing.
    WalUnavailable,
    /// WAL in the archive is damaged (checksum, decompression): replay stops at the damage.
    WalCorrupt,
    /// A timeline history file recovery needs is missing, or the timeline is not a child of
    /// the backup's.
    TimelineUnavailable,
    /// The object store refused the credentials (AccessDenied, InvalidAccessKeyId, 403).
    ArchiveAccessDenied,
    /// The bucket does not exist.
    BucketMissing,
    /// The object store could not be reached (connection refused, DNS, TLS, 5xx).
    ArchiveUnreachable,
    /// The object store rejected what the client sent (NotImplemented, checksum headers).
    ObjectStoreIncompatible,
    /// barman-cloud refused to archive into a serverName folder that already holds WAL.
    ExpectedEmptyArchive,
    /// The restored data directory belongs to another PostgreSQL major version.
    VersionMismatch,
    /// A base backup is incomplete: its data files or `backup.info` are missing.
    BackupDataMissing,
    /// The archive holds no base backup recovery can use for the target.
    NoBackup,
    /// Taking the base backup failed.
    BackupFailed,
    /// Recovery did not finish within its deadline.
    RecoveryTimeout,
    /// Recovered, but the data differs from what the ledger says must be there: rows missing
    /// without a WAL cause, extra or changed rows.
    Diverged,
    /// A game day's check query did not return what it expects.
    CheckFailed,
    /// Recovered within expectations, but slower than the RTO budget.
    RtoBudgetExceeded,
    /// Recovered, but more data was lost than the RPO budget allows.
    RpoBudgetExceeded,
    /// The scenario expects recovery to fail, and it succeeded.
    UnexpectedRecovery,
    /// Another expectation of the scenario was not met (the backup restored, the audit).
    ExpectationUnmet,
    /// Recovered with the right rows, but `pg_amcheck` found corruption the scenario does not
    /// expect (heap pages, indexes out of step with their tables), or expected corruption is
    /// not there.
    AmcheckFindings,
    /// The harness or its infrastructure broke; nothing was learnt about recovery.
    Infrastructure,
    /// A failure that matches none of the codes above.
    Unknown,
    /// Restoring a logical backup failed (psql or pg_restore stopped on an error: a truncated
    /// or damaged dump, a dump the target cannot load).
    LogicalRestoreFailed,
    /// The backup object recovery needs is not in the object store (deleted, never uploaded).
    BackupObjectMissing,
    /// The scenario's own restore script (`recovery.command`) failed: non-zero exit, a
    /// signal, or killed at its deadline.
    RestoreScriptFailed,
}

impl Reason {
    /// Every code, in declaration order (for documentation and exhaustive tests).
    pub const ALL: [Reason; 25] = [
        Reason::WalUnavailable,
        Reason::WalCorrupt,
        Reason::TimelineUnavailable,
        Reason::ArchiveAccessDenied,
        Reason::BucketMissing,
        Reason::ArchiveUnreachable,
        Reason::ObjectStoreIncompatible,
        Reason::ExpectedEmptyArchive,
        Reason::VersionMismatch,
        Reason::BackupDataMissing,
        Reason::NoBackup,
        Reason::BackupFailed,
        Reason::RecoveryTimeout,
        Reason::Diverged,
        Reason::CheckFailed,
        Reason::RtoBudgetExceeded,
        Reason::RpoBudgetExceeded,
        Reason::UnexpectedRecovery,
        Reason::ExpectationUnmet,
        Reason::AmcheckFindings,
        Reason::Infrastructure,
        Reason::Unknown,
        Reason::LogicalRestoreFailed,
        Reason::BackupObjectMissing,
        Reason::RestoreScriptFailed,
    ];

    /// The snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::WalUnavailable => "wal_unavailable",
            Reason::WalCorrupt => "wal_corrupt",
            Reason::TimelineUnavailable => "timeline_unavailable",
            Reason::ArchiveAccessDenied => "archive_access_denied",
            Reason::BucketMissing => "bucket_missing",
            Reason::ArchiveUnreachable => "archive_unreachable",
            Reason::ObjectStoreIncompatible => "object_store_incompatible",
            Reason::ExpectedEmptyArchive => "expected_empty_archive",
            Reason::VersionMismatch => "version_mismatch",
            Reason::BackupDataMissing => "backup_data_missing",
            Reason::NoBackup => "no_backup",
            Reason::BackupFailed => "backup_failed",
            Reason::RecoveryTimeout => "recovery_timeout",
            Reason::Diverged => "diverged",
            Reason::CheckFailed => "check_failed",
            Reason::RtoBudgetExceeded => "rto_budget_exceeded",
            Reason::RpoBudgetExceeded => "rpo_budget_exceeded",
            Reason::UnexpectedRecovery => "unexpected_recovery",
            Reason::ExpectationUnmet => "expectation_unmet",
            Reason::AmcheckFindings => "amcheck_findings",
            Reason::Infrastructure => "infrastructure",
            Reason::Unknown => "unknown",
            Reason::LogicalRestoreFailed => "logical_restore_failed",
            Reason::BackupObjectMissing => "backup_object_missing",
            Reason::RestoreScriptFailed => "restore_script_failed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What a server's, a tool's or the object store's message says went wrong, when it says
/// something these codes know. Order matters: the most specific phrases come first.
pub fn of_message(message: &str) -> Option<Reason> {
    let m = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    // pgdrill's own words for logical recovery come first: what a script or psql printed
    // after them may contain any of the phrases below.
    let reason = if m.starts_with("restore script ") {
        Reason::RestoreScriptFailed
    } else if m.starts_with("backup object missing") {
        Reason::BackupObjectMissing
    } else if m.starts_with("logical restore failed") {
        Reason::LogicalRestoreFailed
    } else if has(&["expected empty archive"]) {
        Reason::ExpectedEmptyArchive
    } else if has(&["database files are incompatible with server"]) {
        Reason::VersionMismatch
    } else if has(&[
        "accessdenied",
        "access denied",
        "invalidaccesskeyid",
        "signaturedoesnotmatch",
        "403 forbidden",
        "status code: 403",
    ]) {
        Reason::ArchiveAccessDenied
    } else if has(&["nosuchbucket", "bucket does not exist"]) {
        Reason::BucketMissing
    } else if has(&["notimplemented", "not implemented", "checksum header"]) {
        Reason::ObjectStoreIncompatible
    } else if has(&[
        "requested timeline",
        "not a child of this server's history",
        ".history",
    ]) {
        Reason::TimelineUnavailable
    } else if has(&[
        "incorrect resource manager data checksum",
        "invalid magic number",
        "invalid record length",
        "incorrect prev-link",
        "decompress",
        "not in gzip format",
        "crc error",
    ]) {
        Reason::WalCorrupt
    } else if has(&[
        "could not locate required checkpoint record",
        "wal ends before end of online backup",
        "wal ends before consistent recovery point",
        "recovery ended before configured recovery target",
        "could not find wal",
        "missing wal",
        "on recovery's path",
    ]) {
        Reason::WalUnavailable
    } else if has(&[
        "backup.info",
        "missing file",
        "data.tar",
        "backup label",
        "backup_label",
    ]) {
        Reason::BackupDataMissing
    } else if has(&["no backup", "nothing to restore", "no base backup"]) {
        Reason::NoBackup
    } else if has(&[
        "connection refused",
        "dispatch failure",
        "could not connect to the endpoint",
        "name or service not known",
        "endpointconnectionerror",
        "service unavailable",
        "internalerror",
    ]) {
        Reason::ArchiveUnreachable
    } else if has(&["timed out", "deadline"]) || names_a_deadline(&m) {
        Reason::RecoveryTimeout
    } else if has(&["barman-cloud-backup"]) {
        Reason::BackupFailed
    } else {
        return None;
    };
    Some(reason)
}

/// `… within 300s`: how `BackendError::Timeout` words a deadline that passed.
fn names_a_deadline(m: &str) -> bool {
    m.match_indices(" within ").any(|(i, w)| {
        let rest = &m[i + w.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with('s')
    })
}

/// Why the recovered data differs from the ledger: the WAL cause of the missing writes when
/// they have one, else a divergence. `None` when nothing is missing or wrong.
pub fn of_verification(v: &Verification, faults: &[FaultRecord]) -> Option<Reason> {
    let damaged = |step: &str| {
        faults
            .iter()
            .any(|f| f.step_id == step && !f.segments_damaged.is_empty())
    };
    let first_cause = v.missing.iter().find_map(|m| {
        if let Some(step) = &m.caused_by {
            Some(if damaged(step) {
                Reason::WalCorrupt
            } else {
                Reason::TimelineUnavailable
            })
        } else if !m.segment_in_archive
            || m.removed_by.is_some()
            || m.audit_gap
            || m.unarchived_at_crash.is_some()
        {
            Some(Reason::WalUnavailable)
        } else {
            None
        }
    });
    first_cause.or_else(|| {
        (!v.missing.is_empty() || !v.problems.is_empty() || v.rows_lost > 0)
            .then_some(Reason::Diverged)
    })
}

/// The code of a failure's or an error's text that no structure explains: the message's
/// phrases, else `fallback`.
pub fn of_text(text: &str, fallback: Reason) -> Reason {
    of_message(text).unwrap_or(fallback)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::verify::{MissingWrite, RowProblem};
    use crate::wal::SegmentName;

    #[test]
    fn codes_are_unique_and_match_serde() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.code()), "{r:?}");
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.code())
            );
            assert_eq!(r.to_string(), r.code());
            let back: Reason = serde_json::from_value(serde_json::json!(r.code())).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn logical_recovery_failures_have_their_own_codes() {
        for (msg, want) in [
            (
                "logical restore failed: (exit 1)\ngzip: stdin: unexpected end of file",
                Reason::LogicalRestoreFailed,
            ),
            (
                "backup object missing: s3://b/run/x/logical/d1.sql.gz is not in the object store",
                Reason::BackupObjectMissing,
            ),
            // What the script printed must not decide the code (here: a WAL phrase).
            (
                "restore script fixtures/restore.sh exited with code 3:\ncould not locate required checkpoint record",
                Reason::RestoreScriptFailed,
            ),
            (
                "restore script fixtures/restore.sh did not finish within 5s and was killed:\n",
                Reason::RestoreScriptFailed,
            ),
        ] {
            assert_eq!(of_message(msg), Some(want), "{msg}");
        }
        // The phrases only count at the start of pgdrill's own message.
        assert_ne!(
            of_message("FATAL: could not find WAL; restore script said nothing"),
            Some(Reason::RestoreScriptFailed)
        );
    }

    #[test]
    fn messages_the_shipped_scenarios_see() {
        for (msg, want) in [
            (
                "barman-cloud-wal-archive: ERROR: WAL archive check failed for server \
                 drill: Expected empty archive",
                Reason::ExpectedEmptyArchive,
            ),
            (
                "FATAL:  database files are incompatible with server\nDETAIL: The data \
                 directory was initialized by PostgreSQL version 15",
                Reason::VersionMismatch,
            ),
            (
                "An error occurred (AccessDenied) when calling the PutObject operation",
                Reason::ArchiveAccessDenied,
            ),
            (
                "An error occurred (InvalidAccessKeyId) when calling ListObjectsV2",
                Reason::ArchiveAccessDenied,
            ),
            (
                "An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation",
                Reason::BucketMissing,
            ),
            (
                "An error occurred (NotImplemented) when calling the PutObject operation",
                Reason::ObjectStoreIncompatible,
            ),
            (
                "FATAL:  requested timeline 2 is not a child of this server's history",
                Reason::TimelineUnavailable,
            ),
            (
                "LOG:  incorrect resource manager data checksum in record at 0/3000100",
                Reason::WalCorrupt,
            ),
            (
                "FATAL:  WAL ends before end of online backup",
                Reason::WalUnavailable,
            ),
            (
                "FATAL:  could not locate required checkpoint record",
                Reason::WalUnavailable,
            ),
            (
                "barman-cloud-restore: Missing file base/data.tar",
                Reason::BackupDataMissing,
            ),
            (
                "recovery did not finish within 300s",
                Reason::RecoveryTimeout,
            ),
            (
                "could not connect to the endpoint URL: Connection refused",
                Reason::ArchiveUnreachable,
            ),
        ] {
            assert_eq!(of_message(msg), Some(want), "{msg}");
        }
        assert_eq!(of_message("syntax error at or near \"SELEC\""), None);
    }

    /// A write of step `step` missing after recovery, its segment in the archive.
    pub(in crate::runner) fn missing(step: &str) -> MissingWrite {
        MissingWrite {
            step_id: step.into(),
            table: "t".into(),
            first_id: 1,
            rows: 1,
            txid: 700,
            commit_lsn: "0/3000100".into(),
            segment: SegmentName::parse("000000010000000000000003").unwrap(),
            segment_in_archive: true,
            removed_by: None,
            audit_gap: false,
            unarchived_at_crash: None,
            caused_by: None,
        }
    }

    fn fault(step: &str, damaged: bool) -> FaultRecord {
        let seg = SegmentName::parse("000000010000000000000003").unwrap();
        let mut f: FaultRecord = serde_json::from_value(serde_json::json!({
            "step_id": step, "action": "x", "segments_removed": [], "objects_deleted": []
        }))
        .unwrap();
        if damaged {
            f.segments_damaged = vec![seg];
        }
        f
    }

    #[test]
    fn missing_rows_take_their_wal_cause() {
        let mut v = Verification::default();
        assert_eq!(of_verification(&v, &[]), None);

        v.missing = vec![missing("w2")];
        assert_eq!(of_verification(&v, &[]), Some(Reason::Diverged));

        v.missing[0].removed_by = Some("drop-seg".into());
        assert_eq!(of_verification(&v, &[]), Some(Reason::WalUnavailable));

        v.missing[0].removed_by = None;
        v.missing[0].caused_by = Some("damage".into());
        assert_eq!(
            of_verification(&v, &[fault("damage", true)]),
            Some(Reason::WalCorrupt)
        );
        assert_eq!(
            of_verification(&v, &[fault("damage", false)]),
            Some(Reason::TimelineUnavailable)
        );

        let extra = Verification {
            problems: vec![RowProblem {
                table: "t".into(),
                ids: vec![9],
                what: "not written by the drill".into(),
                rows: None,
            }],
            ..Verification::default()
        };
        assert_eq!(of_verification(&extra, &[]), Some(Reason::Diverged));
    }
}
