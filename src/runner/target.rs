//! Turns a scenario's recovery target into what PostgreSQL is given, using only what the
//! ledger recorded from the server (commit times, LSNs, xids). Pure; never reads a clock.

use chrono::{SubsecRound, Utc};

use crate::ledger::{Ledger, LedgerError, ResolvedTarget};
use crate::scenario::Target;

/// Resolve step references to server-side facts.
pub fn resolve(target: &Target, ledger: &Ledger) -> Result<ResolvedTarget, LedgerError> {
    Ok(match target {
        Target::Latest => ResolvedTarget::Latest,
        Target::Immediate => ResolvedTarget::Immediate,
        Target::Time(t) => {
            if let Some(at) = t.at {
                ResolvedTarget::Time(at.with_timezone(&Utc))
            } else if let Some(s) = &t.after_step {
                ResolvedTarget::Time(ledger.entry_for_step(s)?.commit_time)
            } else if let Some([a, b]) = &t.between {
                let (a, b) = (
                    ledger.entry_for_step(a)?.commit_time,
                    ledger.entry_for_step(b)?.commit_time,
                );
                // PostgreSQL compares microseconds: truncate so the ledger and the server agree.
                let mid = a + (b - a) / 2;
                ResolvedTarget::Time(mid.trunc_subsecs(6))
            } else {
                ResolvedTarget::Latest
            }
        }
        Target::Lsn(l) => match (&l.at, &l.after_step) {
            (Some(at), _) => {
                ResolvedTarget::Lsn(at.parse().map_err(|_| LedgerError::NoCommit(at.clone()))?)
            }
            (None, Some(s)) => ResolvedTarget::Lsn(ledger.entry_for_step(s)?.commit_lsn),
            (None, None) => ResolvedTarget::Latest,
        },
        Target::Xid(x) => match (x.at, &x.of_step) {
            (Some(at), _) => ResolvedTarget::Xid(at),
            (None, Some(s)) => ResolvedTarget::Xid(ledger.entry_for_step(s)?.txid),
            (None, None) => ResolvedTarget::Latest,
        },
        Target::Name(n) => ResolvedTarget::Name(n.clone()),
        Target::AfterStep(s) => ResolvedTarget::Lsn(ledger.entry_for_step(s)?.commit_lsn),
        // Several targets, picked at run time (`runner/pick.rs`).
        Target::Random => return Err(LedgerError::SeveralTargets),
    })
}

/// The target as the scenario wrote it, for reports.
pub fn describe(target: &Target, exclusive: bool) -> String {
    let t = match target {
        Target::Latest => "latest".to_string(),
        Target::Immediate => "immediate".to_string(),
        Target::Time(t) => match (&t.at, &t.after_step, &t.between) {
            (Some(at), _, _) => format!("time {}", at.to_rfc3339()),
            (_, Some(s), _) => format!("time of commit of `{s}`"),
            (_, _, Some([a, b])) => format!("time between `{a}` and `{b}`"),
            _ => "time".into(),
        },
        Target::Lsn(l) => match (&l.at, &l.after_step) {
            (Some(at), _) => format!("lsn {at}"),
            (_, Some(s)) => format!("lsn after `{s}`"),
            _ => "lsn".into(),
        },
        Target::Xid(x) => match (&x.at, &x.of_step) {
            (Some(at), _) => format!("xid {at}"),
            (_, Some(s)) => format!("xid of `{s}`"),
            _ => "xid".into(),
        },
        Target::Name(n) => format!("restore point `{n}`"),
        Target::AfterStep(s) => format!("after step `{s}`"),
        Target::Random => "random".to_string(),
    };
    if exclusive {
        format!("{t} (exclusive)")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerEntry;
    use crate::scenario::{LsnTarget, TimeTarget, XidTarget};
    use crate::wal::Lsn;
    use chrono::{DateTime, TimeZone};

    fn e(step: &str, sec: u32, micros: i64, lsn: u64) -> LedgerEntry {
        LedgerEntry {
            seq: 0,
            step_id: step.into(),
            table: "t".into(),
            first_id: 1,
            rows: 1,
            digest: String::new(),
            row_bytes: None,
            txid: 740 + sec as u64,
            pre_commit_lsn: Lsn(lsn - 8),
            commit_lsn: Lsn(lsn),
            segment: crate::wal::SegmentName::containing(lsn, 1, crate::wal::DEFAULT_SEGMENT_SIZE),
            commit_time: Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, sec).unwrap()
                + chrono::Duration::microseconds(micros),
        }
    }

    #[test]
    fn step_references_become_server_facts() {
        let l = Ledger {
            entries: vec![e("a", 1, 0, 0x100), e("b", 2, 1, 0x200)],
            ..Default::default()
        };
        let between = Target::Time(TimeTarget {
            between: Some(["a".into(), "b".into()]),
            ..Default::default()
        });
        let want: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 1).unwrap()
            + chrono::Duration::microseconds(500_000);
        assert_eq!(resolve(&between, &l).unwrap(), ResolvedTarget::Time(want));
        let after = Target::Lsn(LsnTarget {
            after_step: Some("b".into()),
            ..Default::default()
        });
        assert_eq!(
            resolve(&after, &l).unwrap(),
            ResolvedTarget::Lsn(Lsn(0x200))
        );
        assert_eq!(
            resolve(&Target::AfterStep("a".into()), &l).unwrap(),
            ResolvedTarget::Lsn(Lsn(0x100))
        );
        let xid = Target::Xid(XidTarget {
            of_step: Some("b".into()),
            ..Default::default()
        });
        assert_eq!(resolve(&xid, &l).unwrap(), ResolvedTarget::Xid(742));
        assert!(resolve(&Target::AfterStep("zz".into()), &l).is_err());
    }

    #[test]
    fn descriptions_read_as_written() {
        assert_eq!(describe(&Target::Latest, false), "latest");
        assert_eq!(
            describe(&Target::AfterStep("w2".into()), true),
            "after step `w2` (exclusive)"
        );
    }
}
