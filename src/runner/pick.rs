//! Seeded random recovery targets for `target: random`: times, LSNs and xids picked inside the
//! ledger's recoverable range. Pure and deterministic (same seed and ledger, same picks); never
//! reads a clock and never uses an unseeded random number generator.
//!
//! The recoverable range runs from the end of the earliest base backup (or the one pinned in
//! `recovery.backup`) to the last write the ledger recorded; the runner's closing marker commit
//! is archived after it, so every target in the range is reachable. Picks sit on or between the
//! ledger's commits, never inside a commit record, so the ledger's rules in `expected_at` say
//! exactly which writes PostgreSQL keeps.

use std::fmt;

use chrono::{Duration, SubsecRound};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ledger::{BackupRecord, Ledger, LedgerEntry, ResolvedTarget};
use crate::wal::Lsn;

/// The target kinds a pick can be, in the order they are cycled through.
pub const KINDS: [TargetKind; 3] = [TargetKind::Time, TargetKind::Lsn, TargetKind::Xid];

/// What a picked target is: a commit time, an LSN or a transaction id. Serialised, and
/// printed, as `time`, `lsn` and `xid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Time,
    Lsn,
    Xid,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Time => "time",
            TargetKind::Lsn => "lsn",
            TargetKind::Xid => "xid",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Attempts at drawing a target no earlier pick has, before a repeat is accepted.
const DRAWS: usize = 16;

/// One picked target.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// 1-based position among the picks.
    pub index: u32,
    pub kind: TargetKind,
    /// A target of that kind.
    pub target: ResolvedTarget,
    /// Where it falls among the writes, e.g. "between the commits of `w3` and `w4`".
    pub around: String,
}

/// Where targets may be picked: after `floor` ended, up to the last write.
#[derive(Debug, Clone, PartialEq)]
pub struct Range<'a> {
    /// The earliest base backup recovery may start from (or the pinned one).
    pub floor: &'a BackupRecord,
    /// Every write committed after `floor` ended, in commit order; never empty.
    pub writes: Vec<&'a LedgerEntry>,
    /// Every base backup, to keep LSN picks out of a backup's own WAL span.
    pub backups: &'a [BackupRecord],
}

/// Why no target can be picked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    #[error("no base backup in the ledger")]
    NoBackup,
    #[error("base backup step `{0}` is not in the ledger")]
    UnknownBackup(String),
    #[error(
        "no write committed after base backup `{step}` ended at {end}: there is nothing to pick a target from"
    )]
    NoWrites { step: String, end: Lsn },
}

/// The recoverable range of `ledger`, starting at the pinned backup or the earliest one.
pub fn recoverable_range<'a>(
    ledger: &'a Ledger,
    pinned: Option<&str>,
) -> Result<Range<'a>, PickError> {
    let floor = match pinned {
        Some(step) => ledger
            .backups
            .iter()
            .find(|b| b.step_id == step)
            .ok_or_else(|| PickError::UnknownBackup(step.to_string()))?,
        None => ledger
            .backups
            .iter()
            .min_by_key(|b| b.end_lsn)
            .ok_or(PickError::NoBackup)?,
    };
    let mut writes: Vec<&LedgerEntry> = ledger
        .entries
        .iter()
        .filter(|e| e.commit_lsn > floor.end_lsn && e.commit_time > floor.end_time)
        .collect();
    writes.sort_by_key(|e| e.seq);
    if writes.is_empty() {
        return Err(PickError::NoWrites {
            step: floor.step_id.clone(),
            end: floor.end_lsn,
        });
    }
    Ok(Range {
        floor,
        writes,
        backups: &ledger.backups,
    })
}

/// Pick `count` targets from `range` with `seed`. The kinds cycle through a seeded order of
/// time, LSN and xid, so any two picks or more mix kinds; a target an earlier pick already has
/// is drawn again (a few times) so the picks differ where the range allows.
pub fn pick(range: &Range<'_>, count: u32, seed: u64) -> Vec<Pick> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut kinds = KINDS;
    kinds.shuffle(&mut rng);
    let mut out: Vec<Pick> = Vec::new();
    for k in 0..count {
        let kind = kinds[k as usize % kinds.len()];
        let mut p = draw(range, kind, &mut rng);
        for _ in 1..DRAWS {
            if !out.iter().any(|o| o.target == p.0) {
                break;
            }
            p = draw(range, kind, &mut rng);
        }
        out.push(Pick {
            index: k + 1,
            kind,
            target: p.0,
            around: p.1,
        });
    }
    out
}

/// One target of `kind`: a write is chosen, then either its commit itself or a point between
/// it and the next write. Every draw takes the same random numbers whatever the ledger's
/// times and LSNs, so two runs of one scenario with one seed pick the same places (the same
/// writes, kinds and gaps) even though their clocks and WAL positions differ.
fn draw(range: &Range<'_>, kind: TargetKind, rng: &mut ChaCha8Rng) -> (ResolvedTarget, String) {
    let w = &range.writes;
    let i = rng.random_range(0..w.len());
    let (this, next) = (w[i], w.get(i + 1).copied());
    let between = rng.random_bool(0.5) && next.is_some();
    // Where in the gap, as a fraction in [0, 1).
    let f: f64 = rng.random();
    match (kind, next) {
        (TargetKind::Time, Some(n)) if between => {
            // Strictly between the two commit times, whole microseconds as PostgreSQL compares.
            let gap = (n.commit_time - this.commit_time)
                .num_microseconds()
                .unwrap_or(0);
            if gap >= 2 {
                let offset = 1 + ((gap - 1) as f64 * f) as i64;
                let t = this.commit_time.trunc_subsecs(6) + Duration::microseconds(offset);
                if t > this.commit_time && t < n.commit_time {
                    return (
                        ResolvedTarget::Time(t),
                        format!(
                            "between the commits of `{}` and `{}`",
                            this.step_id, n.step_id
                        ),
                    );
                }
            }
            at_commit(this, TargetKind::Time)
        }
        (TargetKind::Lsn, Some(n)) if between => {
            // From the end of this commit record up to, not into, the next commit record, and
            // never inside a base backup's own WAL span.
            let (from, to) = (this.commit_lsn.0, n.pre_commit_lsn.0);
            if from < to {
                let l = Lsn((from + ((to - from) as f64 * f) as u64).min(to - 1));
                let in_backup = range
                    .backups
                    .iter()
                    .any(|b| b.begin_lsn <= l && l <= b.end_lsn);
                if !in_backup {
                    return (
                        ResolvedTarget::Lsn(l),
                        format!("between `{}` and `{}`", this.step_id, n.step_id),
                    );
                }
            }
            at_commit(this, TargetKind::Lsn)
        }
        (kind, _) => at_commit(this, kind),
    }
}

/// The target exactly at `e`'s commit: its commit time, the LSN right after its commit record,
/// or its xid.
fn at_commit(e: &LedgerEntry, kind: TargetKind) -> (ResolvedTarget, String) {
    match kind {
        TargetKind::Time => (
            ResolvedTarget::Time(e.commit_time.trunc_subsecs(6)),
            format!("at the commit of `{}`", e.step_id),
        ),
        TargetKind::Lsn => (
            ResolvedTarget::Lsn(e.commit_lsn),
            format!("right after the commit of `{}`", e.step_id),
        ),
        TargetKind::Xid => (
            ResolvedTarget::Xid(e.txid),
            format!("the transaction of `{}`", e.step_id),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::SEED_STEP;
    use chrono::{DateTime, TimeZone, Utc};

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + Duration::microseconds(ms * 1000)
    }

    fn entry(seq: u64, step: &str, first_id: u64, lsn: u64, ms: i64) -> LedgerEntry {
        LedgerEntry {
            seq,
            step_id: step.into(),
            table: "events".into(),
            first_id,
            rows: 1,
            digest: String::new(),
            row_bytes: None,
            txid: 740 + seq,
            pre_commit_lsn: Lsn(lsn - 0x40),
            commit_lsn: Lsn(lsn),
            segment: crate::wal::SegmentName::containing(lsn, 1, crate::wal::DEFAULT_SEGMENT_SIZE),
            // Odd microseconds, as real commit timestamps have.
            commit_time: t(ms) + Duration::microseconds(137),
        }
    }

    fn backup(step: &str, begin: u64, end: u64, ms: i64) -> BackupRecord {
        BackupRecord {
            step_id: step.into(),
            backup_id: format!("20261122T1000{:02}", ms / 1000),
            begin_lsn: Lsn(begin),
            end_lsn: Lsn(end),
            begin_wal: String::new(),
            end_wal: String::new(),
            end_time: t(ms),
            timeline: 1,
        }
    }

    /// Seed before the first backup, w1..w4 after it, a second backup, w5..w8 after that.
    fn ledger() -> Ledger {
        let mut entries = vec![entry(0, SEED_STEP, 1, 0x0200_1000, 100)];
        for i in 1..=8u64 {
            let lsn = if i <= 4 {
                0x0400_0000 + i * 0x0100_0000
            } else {
                0x0A00_0000 + i * 0x0100_0000
            };
            entries.push(entry(
                i,
                &format!("w{i}"),
                i + 1,
                lsn,
                1_000 * i as i64 + 5_000,
            ));
        }
        Ledger {
            entries,
            backups: vec![
                backup("base", 0x0300_0028, 0x0300_0100, 2_000),
                backup("base2", 0x0B00_0028, 0x0B00_0100, 10_000),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_range_starts_after_the_earliest_or_pinned_backup() {
        let l = ledger();
        let r = recoverable_range(&l, None).unwrap();
        assert_eq!(r.floor.step_id, "base");
        let steps: Vec<&str> = r.writes.iter().map(|e| e.step_id.as_str()).collect();
        assert_eq!(steps, ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"]);
        let r = recoverable_range(&l, Some("base2")).unwrap();
        let steps: Vec<&str> = r.writes.iter().map(|e| e.step_id.as_str()).collect();
        assert_eq!(steps, ["w5", "w6", "w7", "w8"]);
        assert_eq!(
            recoverable_range(&l, Some("nope")),
            Err(PickError::UnknownBackup("nope".into()))
        );
        let mut late = l.clone();
        late.backups[0].end_lsn = Lsn(0x7F00_0000);
        late.backups[0].end_time = t(99_000);
        late.backups.truncate(1);
        assert!(matches!(
            recoverable_range(&late, None),
            Err(PickError::NoWrites { .. })
        ));
        assert_eq!(
            recoverable_range(&Ledger::default(), None),
            Err(PickError::NoBackup)
        );
    }

    #[test]
    fn the_same_seed_and_ledger_give_the_same_picks() {
        let l = ledger();
        let r = recoverable_range(&l, None).unwrap();
        let a = pick(&r, 6, 42);
        assert_eq!(a, pick(&r, 6, 42));
        assert_eq!(a.len(), 6);
        assert_eq!(
            a.iter().map(|p| p.index).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        assert_ne!(a, pick(&r, 6, 43), "another seed, other picks");
        // A longer run starts with the same picks: the kth pick does not depend on the count.
        assert_eq!(a[..3], pick(&r, 3, 42)[..]);
    }

    /// Another run of the same scenario has other commit times and LSNs but the same writes:
    /// the same seed picks the same places.
    #[test]
    fn another_run_of_the_same_scenario_gets_the_same_places() {
        let l = ledger();
        let mut other = l.clone();
        for (k, e) in other.entries.iter_mut().enumerate() {
            e.commit_time += Duration::milliseconds(3_600_000 + 17 * k as i64);
            e.commit_lsn.0 += 0x1000 * k as u64;
            e.pre_commit_lsn.0 += 0x1000 * k as u64;
        }
        for b in &mut other.backups {
            b.end_time += Duration::milliseconds(3_600_000);
        }
        let (a, b) = (
            recoverable_range(&l, None).unwrap(),
            recoverable_range(&other, None).unwrap(),
        );
        for seed in 0..50 {
            let places = |r: &Range<'_>| -> Vec<(TargetKind, String)> {
                pick(r, 6, seed)
                    .into_iter()
                    .map(|p| (p.kind, p.around))
                    .collect()
            };
            assert_eq!(places(&a), places(&b), "seed {seed}");
        }
    }

    #[test]
    fn kinds_print_as_they_serialise() {
        for k in KINDS {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(k.to_string(), k.as_str());
        }
    }

    #[test]
    fn every_kind_appears_once_there_are_three_picks() {
        let l = ledger();
        let r = recoverable_range(&l, None).unwrap();
        for seed in 0..50 {
            let picks = pick(&r, 3, seed);
            let mut kinds: Vec<TargetKind> = picks.iter().map(|p| p.kind).collect();
            kinds.sort();
            assert_eq!(kinds, KINDS, "seed {seed}");
        }
    }

    /// The property the drill relies on: every pick lies inside the recoverable range, never
    /// inside a commit record or a backup's WAL span, and a backup ends before it.
    #[test]
    fn picks_stay_inside_the_recoverable_range() {
        let l = ledger();
        for pinned in [None, Some("base2")] {
            let r = recoverable_range(&l, pinned).unwrap();
            let (first, last) = (r.writes[0], *r.writes.last().unwrap());
            let mut between = 0;
            for seed in 0..200 {
                for p in pick(&r, 6, seed) {
                    match &p.target {
                        ResolvedTarget::Time(t) => {
                            assert!(*t >= first.commit_time.trunc_subsecs(6), "{p:?}");
                            assert!(*t <= last.commit_time, "{p:?}");
                            assert_eq!(*t, t.trunc_subsecs(6), "whole microseconds: {p:?}");
                        }
                        ResolvedTarget::Lsn(x) => {
                            assert!(*x >= first.commit_lsn && *x <= last.commit_lsn, "{p:?}");
                            for e in &l.entries {
                                assert!(
                                    !(e.pre_commit_lsn <= *x && *x < e.commit_lsn),
                                    "inside the commit record of {}: {p:?}",
                                    e.step_id
                                );
                            }
                            for b in &l.backups {
                                assert!(!(b.begin_lsn <= *x && *x <= b.end_lsn), "{p:?}");
                            }
                        }
                        ResolvedTarget::Xid(x) => {
                            assert!(r.writes.iter().any(|e| e.txid == *x), "{p:?}");
                        }
                        other => panic!("unexpected kind {other:?}"),
                    }
                    if p.around.starts_with("between") {
                        between += 1;
                    }
                    // The backup recovery starts from ends before the target.
                    let chosen = l.choose_backup(&p.target, pinned).unwrap();
                    match &p.target {
                        ResolvedTarget::Time(t) => assert!(chosen.end_time <= *t, "{p:?}"),
                        ResolvedTarget::Lsn(x) => assert!(chosen.end_lsn <= *x, "{p:?}"),
                        ResolvedTarget::Xid(x) => {
                            let e = l.entries.iter().find(|e| e.txid == *x).unwrap();
                            assert!(chosen.end_lsn < e.commit_lsn, "{p:?}");
                        }
                        _ => {}
                    }
                    // The ledger can say what must be there for every pick.
                    l.expected_at(&p.target, false, chosen).unwrap();
                }
            }
            assert!(between > 0, "some picks fall between commits");
        }
    }

    #[test]
    fn picks_from_the_second_backup_use_it() {
        let l = ledger();
        let r = recoverable_range(&l, None).unwrap();
        let used: std::collections::BTreeSet<String> = (0..100)
            .flat_map(|seed| pick(&r, 6, seed))
            .map(|p| l.choose_backup(&p.target, None).unwrap().step_id.clone())
            .collect();
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["base", "base2"],
            "targets on both sides of the second backup"
        );
    }

    #[test]
    fn a_single_write_still_gives_distinct_kinds() {
        let mut l = ledger();
        l.entries.truncate(2);
        l.backups.truncate(1);
        let r = recoverable_range(&l, None).unwrap();
        let picks = pick(&r, 4, 9);
        assert_eq!(picks.len(), 4);
        assert!(picks.iter().all(|p| p.around.contains("`w1`")), "{picks:?}");
        // Four picks of three possible targets: one repeats, after trying to avoid it.
        let distinct: std::collections::BTreeSet<String> =
            picks.iter().map(|p| p.target.to_string()).collect();
        assert_eq!(distinct.len(), 3, "{picks:?}");
    }
}
