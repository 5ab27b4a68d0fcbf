//! What the pre-recovery audit of a drill's archive means for that drill: which ledger writes
//! it predicts lost before recovery starts, and whether it found the gaps the scenario expects.
//! Pure: never reads object storage or the database.

use serde::{Deserialize, Serialize};

use crate::ledger::{Ledger, LedgerEntry};
use crate::scenario::{ExpectAudit, OneSegment, WalSelectorSpec};

use super::model::AuditReport;
use crate::wal::SegmentName;

/// The audit's verdict as a drill records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditVerdict {
    /// `s3://bucket/prefix/serverName` that was audited.
    pub url: String,
    /// No finding of severity `error`.
    pub ok: bool,
    /// Segments missing on the path recovery from the oldest usable backup takes to the newest
    /// timeline (the archive's gaps, `AuditReport::gaps`), ascending. The chosen backup's own
    /// first gap is `first_gap`.
    pub gaps: Vec<String>,
    /// The backup recovery will restore.
    pub backup_id: String,
    /// The backup reaches consistency from archived WAL.
    pub recoverable_to_end: bool,
    /// Last segment replay can reach from that backup.
    pub recoverable_until: Option<String>,
    /// First segment replay from that backup needs and cannot find.
    pub first_gap: Option<String>,
    /// Ledger writes expected at the target whose commit lies at or past `first_gap`.
    pub predicted_lost_steps: Vec<String>,
    pub predicted_lost_rows: u64,
    /// One sentence: what recovery will find, said before it starts.
    pub prediction: String,
    /// Every finding, as `severity: message`.
    pub findings: Vec<String>,
    /// Backups the audit found not usable for recovery (no backup.info, a status other than
    /// DONE, no data files), ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unusable_backups: Vec<String>,
}

fn at_or_after(s: SegmentName, gap: &str) -> bool {
    match SegmentName::parse(gap) {
        // Positions are comparable across timelines; the segment size does not matter for order.
        Some(g) => (s.log, s.seg) >= (g.log, g.seg),
        None => s.to_string().as_str() >= gap,
    }
}

/// Judge `report` for a recovery from `backup_id` that should find `expected` (the ledger's
/// writes at the target).
pub fn verdict(
    url: &str,
    report: &AuditReport,
    backup_id: &str,
    expected: &[&LedgerEntry],
) -> AuditVerdict {
    let b = report.backups.iter().find(|b| b.id == backup_id);
    let first_gap = b
        .and_then(|b| b.first_gap.as_ref())
        .map(|g| g.segment.clone());
    let lost: Vec<&&LedgerEntry> = match &first_gap {
        Some(g) => expected
            .iter()
            .filter(|e| at_or_after(e.segment, g))
            .collect(),
        None => Vec::new(),
    };
    // Writes on a later timeline than the one replay from this backup ends on (a history file
    // recovery needs is missing or unreadable, or the backup is not on that timeline's
    // history): recovery never replays them.
    let end_timeline = b
        .and_then(|b| b.recoverable_until.as_ref())
        .map(|g| g.timeline);
    let stranded: Vec<&&LedgerEntry> = match end_timeline {
        Some(t) => expected
            .iter()
            .filter(|e| e.segment.timeline > t)
            .filter(|e| !lost.iter().any(|l| l.seq == e.seq))
            .collect(),
        None => Vec::new(),
    };
    let gap_rows: u64 = lost.iter().map(|e| e.rows).sum();
    let mut lost = lost;
    lost.extend(stranded.iter().copied());
    lost.sort_by_key(|e| e.seq);
    let rows: u64 = lost.iter().map(|e| e.rows).sum();
    let steps: Vec<String> = lost.iter().map(|e| e.step_id.clone()).collect();
    let prediction = match (b, &first_gap) {
        (None, _) => {
            format!("the audit does not see backup {backup_id} in the archive: restore will fail")
        }
        (Some(b), _) if !b.complete => {
            format!("backup {backup_id} is incomplete in the archive: restore will fail")
        }
        (Some(b), Some(g)) if !b.recoverable_to_end => format!(
            "backup {backup_id} cannot reach consistency: segment {g} between its begin and end WAL is missing"
        ),
        (Some(_), _) if gap_rows == 0 && !stranded.is_empty() => format!(
            "predicted loss: replay from backup {backup_id} ends on timeline {}, because it cannot \
             follow a newer timeline (see the findings); {rows} row(s) of the writes made on later \
             timelines will be absent ({})",
            end_timeline.unwrap_or_default(),
            steps.join(", ")
        ),
        (Some(_), Some(g)) if rows > 0 => format!(
            "predicted loss: replay from backup {backup_id} stops before segment {g}, which is missing; \
             {rows} row(s) of {} expected at the target will be absent ({})",
            if steps.len() == 1 {
                "1 write"
            } else {
                "the writes"
            },
            steps.join(", ")
        ),
        (Some(_), Some(g)) => format!(
            "segment {g} is missing, but every write expected at the target commits before it: no loss predicted"
        ),
        (Some(_), None) => format!("no gap on the path from backup {backup_id}: no loss predicted"),
    };
    let mut unusable_backups: Vec<String> = report
        .backups
        .iter()
        .filter(|b| b.status != "DONE" || !b.complete)
        .map(|b| b.id.clone())
        .collect();
    unusable_backups.sort();
    AuditVerdict {
        unusable_backups,
        url: url.to_string(),
        ok: report.ok(),
        gaps: report.gaps.iter().map(|g| g.segment.clone()).collect(),
        backup_id: backup_id.to_string(),
        recoverable_to_end: b.is_some_and(|b| b.recoverable_to_end),
        recoverable_until: b
            .and_then(|b| b.recoverable_until.as_ref())
            .map(|g| g.segment.clone()),
        first_gap,
        predicted_lost_steps: steps,
        predicted_lost_rows: rows,
        prediction,
        findings: report
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.severity, f.message))
            .collect(),
    }
}

/// Unmet audit expectations (empty when the audit found exactly the expected gaps).
pub fn check_expectation(
    expect: &ExpectAudit,
    ledger: &Ledger,
    verdict: &AuditVerdict,
) -> Vec<String> {
    let mut want = Vec::new();
    for one in expect.gaps.iter().filter_map(WalSelectorSpec::one) {
        match one {
            OneSegment::Segment(s) => want.push(s.to_string()),
            OneSegment::HoldingStep(step) => match ledger.entry_for_step(&step) {
                Ok(e) => want.push(e.segment.to_string()),
                Err(e) => return vec![format!("audit.gaps: {e}")],
            },
        }
    }
    want.sort();
    want.dedup();
    let mut unmet = Vec::new();
    if want != verdict.gaps {
        unmet.push(format!(
            "the archive audit found gaps [{}], the scenario expects [{}]",
            verdict.gaps.join(", "),
            want.join(", ")
        ));
    }
    if let Some(steps) = &expect.unusable_backups {
        unmet.extend(check_unusable(steps, ledger, verdict));
    }
    unmet
}

/// The backup id of a `base_backup` step: taken (the ledger's backups) or interrupted (its fault
/// record).
fn backup_id_of(ledger: &Ledger, step: &str) -> Option<String> {
    ledger
        .backups
        .iter()
        .find(|b| b.step_id == step)
        .map(|b| b.backup_id.clone())
        .or_else(|| {
            ledger
                .faults
                .iter()
                .filter_map(|f| f.backup_interrupted.as_ref())
                .find(|i| i.step_id == step)
                .and_then(|i| i.backup_id.clone())
        })
}

/// `audit.unusable_backups`: the audit flagged exactly the backups of these steps.
fn check_unusable(steps: &[String], ledger: &Ledger, verdict: &AuditVerdict) -> Vec<String> {
    let mut want = Vec::new();
    for step in steps {
        match backup_id_of(ledger, step) {
            Some(id) => want.push(id),
            None => {
                return vec![format!(
                    "audit.unusable_backups: base backup step `{step}` left no backup in the archive for the audit to flag"
                )];
            }
        }
    }
    want.sort();
    want.dedup();
    if want == verdict.unusable_backups {
        Vec::new()
    } else {
        vec![format!(
            "the archive audit found unusable backups [{}], the scenario expects [{}] (steps {})",
            verdict.unusable_backups.join(", "),
            want.join(", "),
            steps.join(", ")
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::model::{BackupAudit, Gap, Thresholds};
    use crate::ledger::LedgerEntry;
    use crate::wal::Lsn;
    use chrono::Utc;

    fn seg(name: &str) -> SegmentName {
        SegmentName::parse(name).unwrap()
    }

    fn entry(seq: u64, step: &str, seg: u8) -> LedgerEntry {
        LedgerEntry {
            seq,
            step_id: step.into(),
            table: "events".into(),
            first_id: seq + 1,
            rows: 1,
            digest: String::new(),
            row_bytes: None,
            txid: 700 + seq,
            pre_commit_lsn: Lsn(u64::from(seg) << 24),
            commit_lsn: Lsn((u64::from(seg) << 24) + 0x100),
            segment: SegmentName::parse(&format!("0000000100000000000000{seg:02X}")).unwrap(),
            commit_time: Utc::now(),
        }
    }

    fn report(first_gap: Option<&str>) -> AuditReport {
        let gap = |s: &str| Gap {
            segment: s.into(),
            timeline: 1,
        };
        AuditReport {
            server_name: "pg".into(),
            checked_at: Utc::now(),
            wal_segment_size: 16 << 20,
            timelines: vec![1],
            backups: vec![BackupAudit {
                id: "B1".into(),
                status: "DONE".into(),
                timeline: 1,
                begin_wal: "000000010000000000000002".into(),
                end_wal: "000000010000000000000002".into(),
                begin_time: None,
                end_time: None,
                complete: true,
                recoverable_to_end: true,
                recoverable_until: Some(gap("000000010000000000000003")),
                first_gap: first_gap.map(gap),
            }],
            gaps: first_gap.map(gap).into_iter().collect(),
            newest_backup: Some("B1".into()),
            newest_backup_age_seconds: Some(1),
            newest_wal: None,
            newest_wal_age_seconds: None,
            wal_segments: 0,
            thresholds: Thresholds::default(),
            findings: Vec::new(),
        }
    }

    #[test]
    fn a_gap_predicts_the_loss_of_every_later_write() {
        let es = [entry(0, "w1", 3), entry(1, "w2", 4), entry(2, "w3", 5)];
        let expected: Vec<&LedgerEntry> = es.iter().collect();
        let v = verdict(
            "s3://b/p/pg",
            &report(Some("000000010000000000000004")),
            "B1",
            &expected,
        );
        assert_eq!(v.predicted_lost_steps, ["w2", "w3"]);
        assert_eq!(v.predicted_lost_rows, 2);
        assert!(
            v.prediction.starts_with("predicted loss"),
            "{}",
            v.prediction
        );
        assert!(v.prediction.contains("000000010000000000000004"));
    }

    #[test]
    fn a_gap_after_the_target_predicts_nothing() {
        let es = [entry(0, "w1", 3)];
        let expected: Vec<&LedgerEntry> = es.iter().collect();
        let v = verdict(
            "u",
            &report(Some("000000010000000000000004")),
            "B1",
            &expected,
        );
        assert_eq!(v.predicted_lost_rows, 0);
        assert!(
            v.prediction.contains("no loss predicted"),
            "{}",
            v.prediction
        );
        let clean = verdict("u", &report(None), "B1", &expected);
        assert_eq!(clean.first_gap, None);
        assert!(clean.gaps.is_empty());
        let unknown = verdict("u", &report(None), "B9", &expected);
        assert!(
            unknown.prediction.contains("does not see backup B9"),
            "{}",
            unknown.prediction
        );
        let mut incomplete = report(None);
        incomplete.backups[0].complete = false;
        let v = verdict("u", &incomplete, "B1", &expected);
        assert!(v.prediction.contains("incomplete"), "{}", v.prediction);
        let mut short = report(Some("000000010000000000000002"));
        short.backups[0].recoverable_to_end = false;
        let v = verdict("u", &short, "B1", &expected);
        assert!(
            v.prediction.contains("cannot reach consistency"),
            "{}",
            v.prediction
        );
        assert!(!v.recoverable_to_end);
    }

    #[test]
    fn writes_on_a_timeline_recovery_cannot_follow_are_predicted_lost() {
        let mut es = [entry(0, "w1", 3), entry(1, "w2", 5), entry(2, "w3", 6)];
        es[1].segment = seg("000000020000000000000005");
        es[2].segment = seg("000000020000000000000006");
        let expected: Vec<&LedgerEntry> = es.iter().collect();
        // Replay from B1 ends on timeline 1 (no 00000002.history): w2 and w3 are stranded.
        let v = verdict("u", &report(None), "B1", &expected);
        assert_eq!(v.predicted_lost_steps, ["w2", "w3"]);
        assert_eq!(v.predicted_lost_rows, 2);
        assert!(
            v.prediction
                .starts_with("predicted loss: replay from backup B1 ends on timeline 1"),
            "{}",
            v.prediction
        );
        // When replay reaches timeline 2, nothing is stranded.
        let mut followed = report(None);
        followed.backups[0].recoverable_until = Some(Gap {
            segment: "000000020000000000000007".into(),
            timeline: 2,
        });
        let v = verdict("u", &followed, "B1", &expected);
        assert_eq!(v.predicted_lost_rows, 0, "{}", v.prediction);
    }

    #[test]
    fn positions_compare_across_timelines() {
        // A write on timeline 2 past a gap found on timeline 1's segment position is lost;
        // one before it is not.
        assert!(at_or_after(
            seg("000000020000000000000005"),
            "000000010000000000000004"
        ));
        assert!(!at_or_after(
            seg("000000020000000000000003"),
            "000000010000000000000004"
        ));
        assert!(at_or_after(
            seg("000000010000000100000000"),
            "0000000100000000000000FF"
        ));
    }

    #[test]
    fn expectations_resolve_steps_through_the_ledger() {
        let ledger = Ledger {
            entries: vec![entry(0, "w1", 3), entry(1, "w2", 4)],
            ..Ledger::default()
        };
        let es: Vec<&LedgerEntry> = ledger.entries.iter().collect();
        let v = verdict("u", &report(Some("000000010000000000000004")), "B1", &es);
        let by_step = ExpectAudit {
            gaps: vec![WalSelectorSpec {
                segment: None,
                holding_step: Some("w2".into()),
                last: None,
            }],
            unusable_backups: None,
        };
        assert!(check_expectation(&by_step, &ledger, &v).is_empty());
        let wrong = ExpectAudit {
            gaps: vec![WalSelectorSpec {
                segment: None,
                holding_step: Some("w1".into()),
                last: None,
            }],
            unusable_backups: None,
        };
        let f = check_expectation(&wrong, &ledger, &v);
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("000000010000000000000003"), "{f:?}");
        let clean = ExpectAudit {
            gaps: vec![],
            unusable_backups: None,
        };
        assert_eq!(check_expectation(&clean, &ledger, &v).len(), 1);
    }

    #[test]
    fn unusable_backups_resolve_interrupted_steps_through_the_fault_records() {
        use crate::ledger::{FaultRecord, InterruptedBackup};
        let ledger = Ledger {
            entries: vec![entry(0, "w1", 3)],
            faults: vec![FaultRecord {
                step_id: "b2".into(),
                backup_interrupted: Some(InterruptedBackup {
                    step_id: "b2".into(),
                    backup_id: Some("B2".into()),
                    status: Some("FAILED".into()),
                    tool_said: String::new(),
                }),
                ..FaultRecord::default()
            }],
            ..Ledger::default()
        };
        let es: Vec<&LedgerEntry> = ledger.entries.iter().collect();
        let mut v = verdict("u", &report(None), "B1", &es);
        let want = ExpectAudit {
            gaps: vec![],
            unusable_backups: Some(vec!["b2".into()]),
        };
        let f = check_expectation(&want, &ledger, &v);
        assert_eq!(f.len(), 1, "nothing flagged yet: {f:?}");
        assert!(f[0].contains("[B2]"), "{f:?}");
        v.unusable_backups = vec!["B2".into()];
        assert!(check_expectation(&want, &ledger, &v).is_empty());
        let unknown = ExpectAudit {
            gaps: vec![],
            unusable_backups: Some(vec!["w1".into()]),
        };
        assert!(check_expectation(&unknown, &ledger, &v)[0].contains("left no backup"));
    }
}
