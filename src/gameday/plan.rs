//! Decides a game day from the archive audit: which backup to restore, which target
//! (a seeded random LSN for `random`), and judges check results and the RPO. Pure.

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::audit::AuditReport;
use crate::ledger::ResolvedTarget;
use crate::wal::Lsn;
use crate::wal::SegmentName;

use super::model::{CheckSpec, GamedayTarget};

/// What to restore and where to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub backup_id: String,
    pub target: ResolvedTarget,
    /// For `random`: the LSN window `[from, to)` the target was drawn from.
    pub window: Option<(String, String)>,
}

/// A backup restore can start from: finished, complete, and consistent from archived WAL.
fn usable(report: &AuditReport) -> Vec<&crate::audit::BackupAudit> {
    report
        .backups
        .iter()
        .filter(|b| b.status == "DONE" && b.complete && b.recoverable_to_end)
        .collect()
}

/// The LSN window a random target may fall in for one backup: from the first segment after
/// its end WAL to the start of the last segment replay can reach. Any LSN in it is followed
/// by a WAL record replay will read, so recovery always reaches it.
fn window(report: &AuditReport, b: &crate::audit::BackupAudit) -> Option<(u64, u64)> {
    let size = report.wal_segment_size;
    let from = SegmentName::parse(&b.end_wal)?
        .next(size)?
        .start_lsn(size)?;
    let until = b.recoverable_until.as_ref()?;
    let to = SegmentName::parse(&until.segment)?.start_lsn(size)?;
    (to > from).then_some((from, to))
}

/// Choose the backup and resolve the target.
pub fn choose(
    report: &AuditReport,
    target: &GamedayTarget,
    backup: Option<&str>,
    seed: u64,
) -> Result<Choice, String> {
    let candidates = usable(report);
    if candidates.is_empty() {
        return Err(format!(
            "the archive of `{}` holds no usable base backup (finished, complete and consistent from archived WAL)",
            report.server_name
        ));
    }
    let pinned = match backup {
        Some(id) => Some(*candidates.iter().find(|b| b.id == id).ok_or_else(|| {
            format!(
                "backup `{id}` is not usable; usable backups: {}",
                candidates
                    .iter()
                    .map(|b| b.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?),
        None => None,
    };
    match target {
        GamedayTarget::Latest => Ok(Choice {
            backup_id: pinned
                .unwrap_or(candidates[candidates.len() - 1])
                .id
                .clone(),
            target: ResolvedTarget::Latest,
            window: None,
        }),
        GamedayTarget::Time(t) => {
            let t = t.with_timezone(&Utc);
            let b = match pinned {
                Some(b) => b,
                None => *candidates
                    .iter()
                    .rev()
                    .find(|b| b.end_time.is_some_and(|e| e <= t))
                    .ok_or_else(|| {
                        format!(
                            "no usable backup ended before {}; the oldest ended at {}",
                            t.to_rfc3339(),
                            candidates[0]
                                .end_time
                                .map_or("an unknown time".into(), |e| e.to_rfc3339())
                        )
                    })?,
            };
            Ok(Choice {
                backup_id: b.id.clone(),
                target: ResolvedTarget::Time(t),
                window: None,
            })
        }
        GamedayTarget::Random => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let with_window: Vec<(&crate::audit::BackupAudit, (u64, u64))> = match pinned {
                Some(b) => window(report, b).map(|w| (b, w)).into_iter().collect(),
                None => candidates
                    .iter()
                    .filter_map(|b| window(report, b).map(|w| (*b, w)))
                    .collect(),
            };
            if with_window.is_empty() {
                return Err(
                    "no usable backup has archived WAL past its end: there is no window to draw a random target from"
                        .into(),
                );
            }
            let (b, (from, to)) = with_window[rng.random_range(0..with_window.len())];
            let lsn = rng.random_range(from..to);
            Ok(Choice {
                backup_id: b.id.clone(),
                target: ResolvedTarget::Lsn(Lsn(lsn)),
                window: Some((
                    crate::wal::Lsn(from).to_string(),
                    crate::wal::Lsn(to).to_string(),
                )),
            })
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    /// The query, or `file: path`.
    pub query: String,
    /// What was expected, in words.
    pub expected: String,
    /// The result as text; `None` when the query failed or returned no row.
    pub observed: Option<String>,
    pub passed: bool,
    /// Why it failed.
    pub message: Option<String>,
}

/// PostgreSQL's text form of a timestamp (with `TimeZone=UTC`, `DateStyle=ISO`).
pub fn parse_pg_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Judge a check's result. `reference` is the point `max_age_seconds` counts back from.
pub fn judge_check(
    spec: &CheckSpec,
    query: &str,
    result: Result<Option<String>, String>,
    reference: Option<DateTime<Utc>>,
) -> CheckResult {
    let mut expected = Vec::new();
    if let Some(e) = &spec.equals {
        expected.push(format!("= {e}"));
    }
    if let Some(n) = spec.at_least {
        expected.push(format!(">= {n}"));
    }
    if let Some(n) = spec.at_most {
        expected.push(format!("<= {n}"));
    }
    if let Some(n) = spec.max_age_seconds {
        expected.push(format!("no older than reference - {n}s"));
    }
    let mut r = CheckResult {
        name: spec.name.clone(),
        query: query.to_string(),
        expected: expected.join(" and "),
        observed: None,
        passed: false,
        message: None,
    };
    let value = match result {
        Err(e) => {
            r.message = Some(format!("query failed: {e}"));
            return r;
        }
        Ok(None) => {
            r.message = Some("the query returned no row (or NULL)".into());
            return r;
        }
        Ok(Some(v)) => v,
    };
    r.observed = Some(value.clone());
    let mut why = Vec::new();
    if let Some(e) = &spec.equals
        && value.trim() != e.trim()
    {
        why.push(format!("expected `{e}`, got `{value}`"));
    }
    if spec.at_least.is_some() || spec.at_most.is_some() {
        match value.trim().parse::<f64>() {
            Err(_) => why.push(format!("`{value}` is not a number")),
            Ok(n) => {
                if let Some(min) = spec.at_least
                    && n < min
                {
                    why.push(format!("{n} is below the minimum {min}"));
                }
                if let Some(max) = spec.at_most
                    && n > max
                {
                    why.push(format!("{n} is above the maximum {max}"));
                }
            }
        }
    }
    if let Some(age) = spec.max_age_seconds {
        match (parse_pg_timestamp(&value), reference) {
            (None, _) => why.push(format!("`{value}` is not a timestamp")),
            (_, None) => why.push("no reference point to measure the age from".into()),
            (Some(t), Some(reference)) => {
                let old = (reference - t).num_milliseconds() as f64 / 1000.0;
                if old > age {
                    why.push(format!(
                        "{value} is {old:.1}s older than the reference {}, more than {age}s",
                        reference.to_rfc3339()
                    ));
                }
            }
        }
    }
    r.passed = why.is_empty();
    r.message = (!why.is_empty()).then(|| why.join("; "));
    r
}

/// Recovery point: how far the restored data lags behind the reference point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rpo {
    /// What the restore was measured against: the target time, or the newest archived WAL.
    pub reference: String,
    pub reference_at: DateTime<Utc>,
    /// The last transaction the restored server replayed (`pg_last_xact_replay_timestamp()`).
    pub last_replayed_at: Option<DateTime<Utc>>,
    /// `reference_at - last_replayed_at`; `None` when nothing was replayed past the backup.
    pub seconds: Option<f64>,
    pub budget_seconds: Option<f64>,
}

impl Rpo {
    pub fn measure(
        reference: &str,
        reference_at: DateTime<Utc>,
        last_replayed_at: Option<DateTime<Utc>>,
        budget_seconds: Option<f64>,
    ) -> Self {
        Rpo {
            reference: reference.to_string(),
            reference_at,
            last_replayed_at,
            seconds: last_replayed_at
                .map(|l| ((reference_at - l).num_milliseconds() as f64 / 1000.0).max(0.0)),
            budget_seconds,
        }
    }

    /// Over budget (or unmeasurable while a budget is set).
    pub fn missed(&self) -> Option<String> {
        let budget = self.budget_seconds?;
        match self.seconds {
            Some(s) if s <= budget => None,
            Some(s) => Some(format!(
                "RPO {s:.1}s is over the budget of {budget:.1}s (last replayed transaction {}, {} {})",
                self.last_replayed_at
                    .map_or("none".into(), |t| t.to_rfc3339()),
                self.reference,
                self.reference_at.to_rfc3339()
            )),
            None => Some(format!(
                "RPO cannot be measured (no transaction replayed) against a budget of {budget:.1}s"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{BackupAudit, Gap, Thresholds};
    use chrono::TimeZone;

    fn backup(id: &str, end_wal: &str, until: &str, end: i64) -> BackupAudit {
        BackupAudit {
            id: id.into(),
            status: "DONE".into(),
            timeline: 1,
            begin_wal: end_wal.into(),
            end_wal: end_wal.into(),
            begin_time: None,
            end_time: Some(Utc.timestamp_opt(end, 0).unwrap()),
            complete: true,
            recoverable_to_end: true,
            recoverable_until: Some(Gap {
                segment: until.into(),
                timeline: 1,
            }),
            first_gap: None,
        }
    }

    fn report(backups: Vec<BackupAudit>) -> AuditReport {
        AuditReport {
            server_name: "pg".into(),
            checked_at: Utc::now(),
            wal_segment_size: 16 << 20,
            timelines: vec![1],
            backups,
            gaps: vec![],
            newest_backup: None,
            newest_backup_age_seconds: None,
            newest_wal: None,
            newest_wal_age_seconds: None,
            wal_segments: 0,
            thresholds: Thresholds::default(),
            findings: vec![],
        }
    }

    #[test]
    fn latest_takes_the_newest_usable_backup() {
        let mut failed = backup(
            "B3",
            "000000010000000000000009",
            "00000001000000000000000A",
            300,
        );
        failed.status = "FAILED".into();
        let r = report(vec![
            backup(
                "B1",
                "000000010000000000000002",
                "000000010000000000000008",
                100,
            ),
            backup(
                "B2",
                "000000010000000000000005",
                "000000010000000000000008",
                200,
            ),
            failed,
        ]);
        let c = choose(&r, &GamedayTarget::Latest, None, 1).unwrap();
        assert_eq!(c.backup_id, "B2");
        let pinned = choose(&r, &GamedayTarget::Latest, Some("B1"), 1).unwrap();
        assert_eq!(pinned.backup_id, "B1");
        let e = choose(&r, &GamedayTarget::Latest, Some("B3"), 1).unwrap_err();
        assert!(e.contains("B1, B2"), "{e}");
    }

    #[test]
    fn time_takes_the_newest_backup_ended_before_it() {
        let r = report(vec![
            backup(
                "B1",
                "000000010000000000000002",
                "000000010000000000000008",
                100,
            ),
            backup(
                "B2",
                "000000010000000000000005",
                "000000010000000000000008",
                200,
            ),
        ]);
        let at = |s| GamedayTarget::Time(Utc.timestamp_opt(s, 0).unwrap().fixed_offset());
        assert_eq!(choose(&r, &at(150), None, 1).unwrap().backup_id, "B1");
        assert_eq!(choose(&r, &at(250), None, 1).unwrap().backup_id, "B2");
        assert!(
            choose(&r, &at(50), None, 1)
                .unwrap_err()
                .contains("no usable backup")
        );
    }

    #[test]
    fn random_lsns_stay_inside_the_window_and_replay_with_the_seed() {
        let r = report(vec![backup(
            "B1",
            "000000010000000000000002",
            "000000010000000000000008",
            100,
        )]);
        for seed in 0..200 {
            let c = choose(&r, &GamedayTarget::Random, None, seed).unwrap();
            let ResolvedTarget::Lsn(Lsn(l)) = c.target else {
                panic!("{c:?}")
            };
            assert!((0x0300_0000..0x0800_0000).contains(&l), "{l:X}");
            assert_eq!(c, choose(&r, &GamedayTarget::Random, None, seed).unwrap());
        }
        let a = choose(&r, &GamedayTarget::Random, None, 1).unwrap();
        let b = choose(&r, &GamedayTarget::Random, None, 2).unwrap();
        assert_ne!(a.target, b.target, "different seeds, different targets");
        let none = report(vec![backup(
            "B1",
            "000000010000000000000002",
            "000000010000000000000003",
            100,
        )]);
        assert!(choose(&none, &GamedayTarget::Random, None, 1).is_err());
    }

    #[test]
    fn checks_are_judged_by_value() {
        let spec = CheckSpec {
            name: "n".into(),
            at_least: Some(10.0),
            ..CheckSpec::default()
        };
        assert!(judge_check(&spec, "q", Ok(Some("12".into())), None).passed);
        let low = judge_check(&spec, "q", Ok(Some("9".into())), None);
        assert!(!low.passed && low.message.unwrap().contains("below"));
        let band = CheckSpec {
            name: "b".into(),
            at_most: Some(25.0),
            ..CheckSpec::default()
        };
        assert!(judge_check(&band, "q", Ok(Some("25".into())), None).passed);
        let high = judge_check(&band, "q", Ok(Some("26".into())), None);
        assert!(!high.passed && high.message.unwrap().contains("above"));
        assert!(!judge_check(&band, "q", Ok(Some("many".into())), None).passed);
        assert!(!judge_check(&spec, "q", Ok(None), None).passed);
        assert!(!judge_check(&spec, "q", Err("boom".into()), None).passed);
        let eq = CheckSpec {
            name: "e".into(),
            equals: Some("0".into()),
            ..CheckSpec::default()
        };
        assert!(judge_check(&eq, "q", Ok(Some("0".into())), None).passed);
        assert!(!judge_check(&eq, "q", Ok(Some("1".into())), None).passed);
        let fresh = CheckSpec {
            name: "f".into(),
            max_age_seconds: Some(60.0),
            ..CheckSpec::default()
        };
        let reference = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let ok = judge_check(
            &fresh,
            "q",
            Ok(Some("2026-11-22 09:59:30.5+00".into())),
            Some(reference),
        );
        assert!(ok.passed, "{ok:?}");
        let stale = judge_check(
            &fresh,
            "q",
            Ok(Some("2026-11-22 09:58:00+00".into())),
            Some(reference),
        );
        assert!(!stale.passed, "{stale:?}");
    }

    #[test]
    fn rpo_against_a_budget() {
        let r = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let l = Utc.with_ymd_and_hms(2026, 11, 22, 9, 59, 0).unwrap();
        let rpo = Rpo::measure("newest archived WAL", r, Some(l), Some(30.0));
        assert_eq!(rpo.seconds, Some(60.0));
        assert!(rpo.missed().unwrap().contains("over the budget"));
        assert!(Rpo::measure("t", r, Some(l), Some(90.0)).missed().is_none());
        assert!(Rpo::measure("t", r, None, None).missed().is_none());
        assert!(Rpo::measure("t", r, None, Some(1.0)).missed().is_some());
    }
}
