//! The audit's reasoning over an `ArchiveListing`: pure, no I/O, no clock (`now` is passed in).
//!
//! The model of recovery it checks against (what `restore_command = barman-cloud-wal-restore`
//! plus `recovery_target_timeline = latest` does from one base backup):
//!
//! - A WAL segment is *present* on a timeline when `wals/<first 16 hex>/<24 hex name>` exists,
//!   optionally with one compression suffix (`.gz .bz2 .xz .snappy .zst .lz4`). `.partial`
//!   segments and `.backup` labels are not segments recovery replays; objects in the wrong
//!   `wals/<dir>/` (where `barman-cloud-wal-restore` will never look) are ignored with a warning.
//! - Segments are counted by *position* (`log * segments_per_log + seg`, PostgreSQL's segment
//!   number), so the segment size (from `backup.info`'s `xlog_segment_size`) decides where a
//!   "log" rolls over.
//! - Target timeline: like PostgreSQL's `findNewestTimeLine`, start at the backup's timeline B
//!   and probe `B+1`, `B+2`, … while `<TLI>.history` exists; the last one found is the target.
//!   The target's history must list B with a switch point after the backup's start, otherwise
//!   PostgreSQL refuses ("requested timeline is not a child of this server's history") and the
//!   backup is checked on its own timeline only (warning).
//! - Path: timeline B from `begin_wal` to the segment *before* the one containing B's switch
//!   point, then each later timeline of the target's history from the segment containing the
//!   previous switch point, up to the newest segment archived on the path (at least `end_wal`).
//!   PostgreSQL would also accept the parent's copy of the switch segment; requiring the child's
//!   copy is the simpler, stricter rule (that segment holds the new timeline's first records).
//! - A missing segment on an abandoned branch (a parent timeline past its switch point) is not
//!   on any path, so it is never a gap.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::model::*;
use crate::wal::{DEFAULT_SEGMENT_SIZE, Lsn, SegmentName, strip_compression, valid_segment_size};

/// At most this many missing segments are listed in `AuditReport::gaps` (findings name runs).
const MAX_LISTED_GAPS: usize = 10_000;

/// What an object under `wals/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WalObject {
    Segment(SegmentName),
    Partial(SegmentName),
    BackupLabel,
    History(u32),
    /// A well-formed name in a `wals/<dir>/` that does not match it: restore never finds it.
    Misplaced,
    Unknown,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Classify a key relative to `wals/`.
fn classify_wal(rel: &str) -> WalObject {
    let Some((dir, file)) = rel.split_once('/') else {
        let name = strip_compression(rel);
        return match name.strip_suffix(".history") {
            Some(t) if is_hex(t, 8) => match u32::from_str_radix(t, 16) {
                Ok(tli) if tli > 0 => WalObject::History(tli),
                _ => WalObject::Unknown,
            },
            _ => WalObject::Unknown,
        };
    };
    if file.contains('/') {
        return WalObject::Unknown;
    }
    let name = strip_compression(file);
    let (segment, kind): (&str, fn(SegmentName) -> WalObject) =
        if let Some(s) = name.strip_suffix(".partial") {
            (s, WalObject::Partial)
        } else if let Some(s) = name.strip_suffix(".backup") {
            match s.split_once('.') {
                Some((seg, offset)) if is_hex(offset, 8) => (seg, |_| WalObject::BackupLabel),
                _ => return WalObject::Unknown,
            }
        } else {
            (name, WalObject::Segment)
        };
    let Some(parsed) = SegmentName::parse(segment) else {
        return WalObject::Unknown;
    };
    if !dir.eq_ignore_ascii_case(&segment[..16]) {
        return WalObject::Misplaced;
    }
    kind(parsed)
}

/// `key=value` lines as barman writes them (`#` comments, `None` meaning unset).
fn parse_info(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            if !v.is_empty() && v != "None" {
                fields.insert(k.trim().to_string(), v.to_string());
            }
        }
    }
    fields
}

/// `2026-11-22 02:48:30.409835+00:00` (Python's `str(datetime)`), RFC 3339, or a naive time
/// (taken as UTC; barman would take the local zone).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

/// One line of a timeline history file: `parent` was left at LSN `switch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HistoryEntry {
    parent: u32,
    switch: u64,
}

/// Parse `<tli>.history`: `parentTLI<TAB>switchpoint<TAB>reason` lines, oldest ancestor first.
fn parse_history(tli: u32, text: &str) -> Result<Vec<HistoryEntry>, String> {
    let mut entries: Vec<HistoryEntry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let parent = fields
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or_else(|| format!("line {}: no parent timeline number", n + 1))?;
        let switch = fields
            .next()
            .and_then(|l| Lsn::parse(l).map(|l| l.0))
            .ok_or_else(|| format!("line {}: no switch point LSN", n + 1))?;
        if parent == 0 || parent >= tli {
            return Err(format!(
                "line {}: parent timeline {parent} is not older than {tli}",
                n + 1
            ));
        }
        if let Some(last) = entries.last()
            && (parent <= last.parent || switch < last.switch)
        {
            return Err(format!("line {}: entries out of order", n + 1));
        }
        entries.push(HistoryEntry { parent, switch });
    }
    if entries.is_empty() {
        return Err("no entries".into());
    }
    Ok(entries)
}

/// A backup as read from `base/<id>/`.
#[derive(Debug, Clone)]
struct Backup {
    id: String,
    status: String,
    has_info: bool,
    has_data: bool,
    timeline: Option<u32>,
    begin_wal: String,
    end_wal: String,
    begin: Option<SegmentName>,
    end: Option<SegmentName>,
    begin_lsn: Option<u64>,
    begin_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    segment_size: Option<String>,
}

impl Backup {
    fn read(id: &str, info: Option<&String>, has_data: bool) -> Self {
        let f = info.map(|t| parse_info(t)).unwrap_or_default();
        let get = |k: &str| f.get(k).cloned();
        let begin = get("begin_wal").and_then(|w| SegmentName::parse(&w));
        let end = get("end_wal").and_then(|w| SegmentName::parse(&w));
        let timeline = begin
            .map(|b| b.timeline)
            .or_else(|| get("timeline").and_then(|t| t.parse().ok()));
        Self {
            id: id.to_string(),
            status: match info {
                None => "UNKNOWN".into(),
                Some(_) => get("status").unwrap_or_else(|| "EMPTY".into()),
            },
            has_info: info.is_some(),
            has_data,
            timeline,
            begin_wal: get("begin_wal").unwrap_or_default(),
            end_wal: get("end_wal").unwrap_or_default(),
            begin,
            end,
            begin_lsn: get("begin_xlog").and_then(|l| Lsn::parse(&l).map(|l| l.0)),
            begin_time: get("begin_time").and_then(|t| parse_time(&t)),
            end_time: get("end_time").and_then(|t| parse_time(&t)),
            segment_size: get("xlog_segment_size"),
        }
    }

    fn complete(&self) -> bool {
        self.has_info && self.has_data
    }

    /// Chronological report order: by start (else end) time, unknown times last, then id.
    fn sort_key(&self) -> (bool, Option<DateTime<Utc>>, String) {
        let t = self.begin_time.or(self.end_time);
        (t.is_none(), t, self.id.clone())
    }
}

/// A stretch of the recovery path on one timeline; `to` is inclusive, `None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leg {
    timeline: u32,
    from: u64,
    to: Option<u64>,
}

/// Why a backup's path stays on its own timeline although newer timelines exist.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RouteProblem {
    /// The target's history does not pass through the backup (or left it before it started).
    NotAChild { target: u32, fork: Option<u64> },
    /// The target's history file is missing or unreadable (reported globally).
    Unreadable,
}

/// Consecutive missing segments on one timeline, positions inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    timeline: u32,
    from: u64,
    to: u64,
}

/// How far recovery from one backup gets along its path.
#[derive(Debug, Clone, Default)]
struct Walk {
    missing: Vec<Run>,
    /// (timeline, position) of the last segment replayed before the first gap, or the path's end.
    until: Option<(u32, u64)>,
    to_end: bool,
}

/// Everything the analysis knows about the WAL side of the archive.
struct Wal {
    segment_size: u64,
    /// timeline → position → newest last_modified among that segment's objects.
    present: BTreeMap<u32, BTreeMap<u64, Option<DateTime<Utc>>>>,
    /// (timeline, position) → file name of a `.partial` object.
    partials: BTreeMap<(u32, u64), String>,
    /// timeline → key of its history object.
    history_keys: BTreeMap<u32, String>,
    /// timeline → parsed content of its history file.
    histories: BTreeMap<u32, Result<Vec<HistoryEntry>, String>>,
}

impl Wal {
    fn history_exists(&self, tli: u32) -> bool {
        self.history_keys.contains_key(&tli) || self.histories.contains_key(&tli)
    }

    fn has_wal(&self, tli: u32) -> bool {
        self.present.contains_key(&tli) || self.partials.keys().any(|(t, _)| *t == tli)
    }

    fn name(&self, tli: u32, pos: u64) -> String {
        SegmentName::from_position(tli, pos, self.segment_size).to_string()
    }

    /// Where `latest` leads from timeline `b` (PostgreSQL probes `b+1`, `b+2`, … for history).
    fn probe_latest(&self, b: u32) -> u32 {
        let mut target = b;
        while let Some(next) = target.checked_add(1) {
            if !self.history_exists(next) {
                break;
            }
            target = next;
        }
        target
    }

    /// The legs recovery from a backup on `b` starting at `begin` walks, and what went wrong.
    fn route(&self, b: u32, begin: u64, begin_lsn: u64) -> (u32, Vec<Leg>, Option<RouteProblem>) {
        let target = self.probe_latest(b);
        let stay = vec![Leg {
            timeline: b,
            from: begin,
            to: None,
        }];
        if target == b {
            return (target, stay, None);
        }
        let Some(Ok(entries)) = self.histories.get(&target) else {
            return (target, stay, Some(RouteProblem::Unreadable));
        };
        let Some(i) = entries.iter().position(|e| e.parent == b) else {
            return (
                target,
                stay,
                Some(RouteProblem::NotAChild { target, fork: None }),
            );
        };
        if begin_lsn >= entries[i].switch {
            let fork = Some(entries[i].switch);
            return (target, stay, Some(RouteProblem::NotAChild { target, fork }));
        }
        let mut legs = Vec::new();
        let (mut tli, mut from) = (b, begin);
        for (j, e) in entries.iter().enumerate().skip(i) {
            let switch_seg = e.switch / self.segment_size;
            if let Some(to) = switch_seg.checked_sub(1)
                && to >= from
            {
                legs.push(Leg {
                    timeline: tli,
                    from,
                    to: Some(to),
                });
            }
            tli = entries.get(j + 1).map_or(target, |n| n.parent);
            from = from.max(switch_seg);
        }
        legs.push(Leg {
            timeline: tli,
            from,
            to: None,
        });
        (target, legs, None)
    }

    /// Walk `legs` from `begin` to the newest segment archived on them (at least `end`).
    fn walk(&self, legs: &[Leg], begin: u64, end: Option<u64>) -> (Vec<Run>, (u32, u64)) {
        let empty = BTreeMap::new();
        let on = |leg: &Leg| self.present.get(&leg.timeline).unwrap_or(&empty);
        let mut last = begin.max(end.unwrap_or(0));
        for leg in legs {
            let from = leg.from.max(begin);
            let to = leg.to.unwrap_or(u64::MAX);
            if from <= to
                && let Some((&p, _)) = on(leg).range(from..=to).next_back()
            {
                last = last.max(p);
            }
        }
        let mut missing = Vec::new();
        let mut end_tli = legs.last().map_or(0, |l| l.timeline);
        for leg in legs {
            let from = leg.from.max(begin);
            let to = leg.to.unwrap_or(u64::MAX).min(last);
            if from > to {
                continue;
            }
            end_tli = leg.timeline;
            let mut cursor = from;
            for (&p, _) in on(leg).range(from..=to) {
                if p > cursor {
                    missing.push(Run {
                        timeline: leg.timeline,
                        from: cursor,
                        to: p - 1,
                    });
                }
                cursor = p + 1;
            }
            if cursor <= to {
                missing.push(Run {
                    timeline: leg.timeline,
                    from: cursor,
                    to,
                });
            }
        }
        (missing, (end_tli, last))
    }

    fn leg_timeline(legs: &[Leg], pos: u64) -> u32 {
        legs.iter()
            .find(|l| l.from <= pos && l.to.is_none_or(|t| pos <= t))
            .or(legs.last())
            .map_or(0, |l| l.timeline)
    }
}

/// Findings of one check in the order they were found; errors are moved first at the end.
struct Findings(Vec<Finding>, Check);

impl Findings {
    fn new(check: Check) -> Self {
        Self(Vec::new(), check)
    }

    fn error(&mut self, message: String) {
        self.0.push(Finding {
            check: self.1,
            severity: "error".into(),
            message,
        });
    }

    fn warn(&mut self, message: String) {
        self.0.push(Finding {
            check: self.1,
            severity: "warning".into(),
            message,
        });
    }

    fn sorted(mut self) -> Vec<Finding> {
        self.0.sort_by_key(|f| f.severity != "error");
        self.0
    }
}

/// A duration the way the table prints ages.
fn human(secs: i64) -> String {
    match secs {
        s if s.abs() < 120 => format!("{s}s"),
        s if s.abs() < 7200 => format!("{}m", s / 60),
        s => format!("{:.1}h", s as f64 / 3600.0),
    }
}

fn examples(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    let more = items.len().saturating_sub(shown.len());
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{} and {more} more", shown.join(", "))
    }
}

/// Every backup: each folder under `base/` and each `backup.info` read, in report order.
fn read_backups(listing: &ArchiveListing) -> Vec<Backup> {
    let mut folders: BTreeMap<&str, bool> = BTreeMap::new();
    for o in &listing.objects {
        let parts: Vec<&str> = o.key.split('/').collect();
        if let ["base", id, file] = parts.as_slice()
            && !id.is_empty()
        {
            let data = *file == "data.tar" || file.starts_with("data.tar.");
            *folders.entry(*id).or_default() |= data;
        }
    }
    let ids: BTreeSet<&str> = folders
        .keys()
        .copied()
        .chain(listing.backup_infos.keys().map(String::as_str))
        .collect();
    let mut backups: Vec<Backup> = ids
        .iter()
        .map(|id| {
            let data = folders.get(id).copied().unwrap_or(false);
            Backup::read(id, listing.backup_infos.get(*id), data)
        })
        .collect();
    backups.sort_by_key(Backup::sort_key);
    backups
}

/// The segment size the newest `backup.info` that states a valid one gives, else the default.
fn choose_segment_size(backups: &[Backup], findings: &mut Findings) -> u64 {
    let mut segment_size = None;
    let mut sizes = BTreeSet::new();
    for b in backups.iter().rev() {
        let Some(raw) = &b.segment_size else { continue };
        match raw.parse::<u64>() {
            Ok(s) if valid_segment_size(s) => {
                sizes.insert(s);
                segment_size.get_or_insert(s);
            }
            _ => findings.warn(format!(
                "backup {} states xlog_segment_size={raw}, which PostgreSQL cannot have: ignored",
                b.id
            )),
        }
    }
    let segment_size = segment_size.unwrap_or(DEFAULT_SEGMENT_SIZE);
    if sizes.len() > 1 {
        findings.warn(format!(
            "backups disagree on the WAL segment size ({:?} bytes): using {segment_size}",
            sizes
        ));
    }
    segment_size
}

/// Keys under `wals/` recovery will not use, sorted.
#[derive(Default)]
struct Unused {
    /// Not WAL that `barman-cloud-wal-restore` would find.
    ignored: Vec<String>,
    /// Segments of 0 bytes.
    empty: Vec<String>,
}

impl Wal {
    /// Everything under `wals/` in `listing`, and the keys recovery will not use.
    fn read(listing: &ArchiveListing, segment_size: u64) -> (Self, Unused) {
        let mut wal = Wal {
            segment_size,
            present: BTreeMap::new(),
            partials: BTreeMap::new(),
            history_keys: BTreeMap::new(),
            histories: listing
                .histories
                .iter()
                .map(|(t, text)| (*t, parse_history(*t, text)))
                .collect(),
        };
        let mut unused = Unused::default();
        for o in &listing.objects {
            if let Some(rel) = o.key.strip_prefix("wals/") {
                wal.add(o, rel, &mut unused);
            }
        }
        unused.ignored.sort();
        unused.empty.sort();
        (wal, unused)
    }

    /// Record one object under `wals/` (`rel` is its key below `wals/`).
    fn add(&mut self, o: &ArchiveObject, rel: &str, unused: &mut Unused) {
        match classify_wal(rel) {
            WalObject::Segment(s) => match s.position(self.segment_size) {
                Some(p) => {
                    let seen = self
                        .present
                        .entry(s.timeline)
                        .or_default()
                        .entry(p)
                        .or_default();
                    *seen = (*seen).max(o.last_modified);
                    if o.size == 0 {
                        unused.empty.push(o.key.clone());
                    }
                }
                None => unused.ignored.push(o.key.clone()),
            },
            WalObject::Partial(s) => match s.position(self.segment_size) {
                Some(p) => {
                    let file = rel.rsplit('/').next().unwrap_or(rel).to_string();
                    let e = self.partials.entry((s.timeline, p)).or_insert(file.clone());
                    *e = e.clone().min(file);
                }
                None => unused.ignored.push(o.key.clone()),
            },
            WalObject::BackupLabel => {}
            WalObject::History(t) => {
                let e = self.history_keys.entry(t).or_insert(o.key.clone());
                *e = e.clone().min(o.key.clone());
            }
            WalObject::Misplaced | WalObject::Unknown => unused.ignored.push(o.key.clone()),
        }
    }

    /// Every timeline found (from segment names and history files), ascending.
    fn timelines(&self) -> Vec<u32> {
        self.present
            .keys()
            .copied()
            .chain(self.partials.keys().map(|(t, _)| *t))
            .chain(self.history_keys.keys().copied())
            .chain(self.histories.keys().copied())
            .filter(|t| *t > 0)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// How far recovery along `legs` from `begin` gets, and whether it gets past `end`.
    fn recover(&self, legs: &[Leg], begin: u64, end: Option<u64>) -> Walk {
        let (missing, last) = self.walk(legs, begin, end);
        let until = match missing.first() {
            Some(g) if g.from > begin => Some((Wal::leg_timeline(legs, g.from - 1), g.from - 1)),
            Some(_) => None,
            None => Some(last),
        };
        let to_end = end.is_some_and(|e| missing.iter().all(|r| r.from > e));
        Walk {
            missing,
            until,
            to_end,
        }
    }

    /// The error when `latest` stops at `target` short of a newer timeline recovery from
    /// `start` should reach, because probing for history files stops at the first missing one.
    fn stranded(&self, start: Start, target: u32) -> Option<String> {
        let Start {
            id,
            timeline: tli,
            begin_lsn,
        } = start;
        let skipped = target.saturating_add(1);
        let newer = self
            .histories
            .iter()
            .filter(|(t, _)| **t > skipped)
            .filter_map(|(t, h)| h.as_ref().ok().map(|h| (*t, h)))
            .filter(|(_, h)| {
                h.iter().any(|e| e.parent == tli && begin_lsn < e.switch)
                    && h.iter().any(|e| e.parent == target)
            })
            .map(|(t, _)| t)
            .max()?;
        if self.has_wal(skipped) {
            return None;
        }
        Some(format!(
            "recovery from {id} with recovery_target_timeline=latest stops at \
             timeline {target}: {skipped:08X}.history is missing, so it never \
             reaches timeline {newer} (PostgreSQL looks for history files one \
             timeline at a time)"
        ))
    }

    /// What a gap finding says is missing.
    fn describe_gap(&self, run: &Run) -> String {
        if run.from == run.to {
            format!(
                "WAL gap: {} (timeline {}) is missing",
                self.name(run.timeline, run.from),
                run.timeline
            )
        } else {
            format!(
                "WAL gap: {} to {} ({} segments, timeline {}) are missing",
                self.name(run.timeline, run.from),
                self.name(run.timeline, run.to),
                run.to - run.from + 1,
                run.timeline
            )
        }
    }

    /// The `.partial` files archived within `run`, as a gap finding mentions them.
    fn partial_note(&self, run: &Run) -> String {
        let partial: Vec<String> = self
            .partials
            .range((run.timeline, run.from)..=(run.timeline, run.to))
            .map(|(_, f)| f.clone())
            .collect();
        if partial.is_empty() {
            String::new()
        } else {
            format!(" (only {} is archived)", examples(&partial))
        }
    }
}

/// Errors for timelines whose history file recovery needs but cannot read.
fn history_findings(wal: &Wal, timelines: &[u32]) -> Findings {
    let mut history_findings = Findings::new(Check::WalContinuity);
    for &t in timelines.iter().filter(|t| **t > 1) {
        if !wal.history_exists(t) {
            if wal.has_wal(t) {
                history_findings.error(format!(
                    "timeline {t} has WAL but no {t:08X}.history: recovery cannot follow it"
                ));
            }
            continue;
        }
        match wal.histories.get(&t) {
            None => history_findings.error(format!(
                "{} is archived but its content was not read (compressed history files are \
                 not decoded): recovery's path onto timeline {t} cannot be checked",
                wal.history_keys.get(&t).map_or("", String::as_str)
            )),
            Some(Err(why)) => history_findings.error(format!(
                "{t:08X}.history is unreadable ({why}): recovery cannot follow timeline {t}"
            )),
            Some(Ok(_)) => {}
        }
    }
    history_findings
}

/// Where recovery from one backup starts.
#[derive(Debug, Clone, Copy)]
struct Start<'a> {
    id: &'a str,
    timeline: u32,
    begin_lsn: u64,
}

/// Every backup's audit and how far recovery from it gets, with the findings on the way.
struct Audited {
    audits: Vec<BackupAudit>,
    /// Per backup (same index), `None` where its begin_wal is unreadable.
    walks: Vec<Option<Walk>>,
    /// Indices of the usable backups, in report order.
    usable: Vec<usize>,
    /// Why backups are not usable.
    warnings: Findings,
    /// Where `recovery_target_timeline=latest` goes wrong for a usable backup.
    routes: Findings,
}

impl Audited {
    /// The usable backups' indices and walks, in report order.
    fn usable_walks(&self) -> impl Iterator<Item = (usize, &Walk)> {
        self.usable
            .iter()
            .filter_map(|&i| self.walks[i].as_ref().map(|w| (i, w)))
    }

    /// For each usable backup whose path misses part of `run`: where its recovery stops.
    fn hurt(&self, run: &Run) -> Vec<String> {
        let mut hurt = Vec::new();
        for (i, w) in self.usable_walks() {
            if !w
                .missing
                .iter()
                .any(|r| r.timeline == run.timeline && r.from <= run.to && run.from <= r.to)
            {
                continue;
            }
            let a = &self.audits[i];
            let mut clause = match &a.recoverable_until {
                None => format!("recovery from {} cannot start", a.id),
                Some(u) => format!("recovery from {} stops at {}", a.id, u.segment),
            };
            if !a.recoverable_to_end && a.recoverable_until.is_some() {
                clause.push_str(&format!(
                    ", before the backup is consistent (it ends at {})",
                    a.end_wal
                ));
            }
            hurt.push(clause);
        }
        hurt
    }
}

/// Audit each backup in turn: walk its recovery path and say why it is not usable.
fn audit_backups(backups: &[Backup], wal: &Wal) -> Audited {
    let segment_size = wal.segment_size;
    let mut out = Audited {
        audits: Vec::new(),
        walks: Vec::new(),
        usable: Vec::new(),
        warnings: Findings::new(Check::Backups),
        routes: Findings::new(Check::WalContinuity),
    };
    for (i, b) in backups.iter().enumerate() {
        let begin = b.begin.and_then(|s| s.position(segment_size));
        let end = b
            .end
            .and_then(|s| s.position(segment_size))
            .filter(|e| begin.is_some_and(|b| *e >= b));
        let walk = match (b.timeline, begin) {
            (Some(timeline), Some(begin)) => {
                let start = Start {
                    id: &b.id,
                    timeline,
                    begin_lsn: b.begin_lsn.unwrap_or(begin.saturating_mul(segment_size)),
                };
                let (target, legs, problem) = wal.route(timeline, begin, start.begin_lsn);
                let walk = wal.recover(&legs, begin, end);
                if b.status == "DONE" && b.complete() && end.is_some() {
                    if let Some(RouteProblem::NotAChild { target, fork }) = problem {
                        out.routes.warn(not_a_child(start, target, fork));
                    }
                    if let Some(error) = wal.stranded(start, target) {
                        out.routes.error(error);
                    }
                    out.usable.push(i);
                }
                Some(walk)
            }
            _ => None,
        };
        if let Some(why) = unusable(b, walk.is_some() && end.is_some()) {
            out.warnings.warn(why);
        }
        out.audits.push(backup_audit(b, walk.as_ref(), wal));
        out.walks.push(walk);
    }
    out
}

/// The warning for a backup the target timeline's history does not pass through.
fn not_a_child(start: Start, target: u32, fork: Option<u64>) -> String {
    let Start {
        id,
        timeline: tli,
        begin_lsn,
    } = start;
    let when = fork.map_or(String::new(), |f| {
        format!(
            " (timeline {target} left timeline {tli} at {}, before the \
             backup started at {})",
            Lsn(f),
            Lsn(begin_lsn)
        )
    });
    format!(
        "backup {id} (timeline {tli}) is not on the history of timeline \
         {target}{when}: recovery_target_timeline=latest would fail \
         with \"requested timeline {target} is not a child of this \
         server's history\"; its WAL was checked on timeline {tli} only"
    )
}

/// Why a backup is not usable for recovery, if it is not (`readable`: its begin_wal and
/// end_wal were understood).
fn unusable(b: &Backup, readable: bool) -> Option<String> {
    if !b.has_info {
        Some(format!(
            "base/{}/ has no backup.info: the backup is not usable (upload interrupted or \
             still running?)",
            b.id
        ))
    } else if b.status != "DONE" {
        Some(format!(
            "backup {} has status {}: it is not usable for recovery",
            b.id, b.status
        ))
    } else if !b.has_data {
        Some(format!(
            "backup {} is DONE but base/{}/ has no data.tar*: it is not usable for recovery, \
             yet barman still lists it, so a recovery that picks it (CloudNativePG picks the \
             newest) fails in barman-cloud-restore",
            b.id, b.id
        ))
    } else if !readable {
        Some(format!(
            "backup {} has no readable begin_wal/end_wal in its backup.info: it is not usable \
             for recovery",
            b.id
        ))
    } else {
        None
    }
}

/// A backup's line in the report.
fn backup_audit(b: &Backup, walk: Option<&Walk>, wal: &Wal) -> BackupAudit {
    let gap = |(t, p): (u32, u64)| Gap {
        segment: wal.name(t, p),
        timeline: t,
    };
    BackupAudit {
        id: b.id.clone(),
        status: b.status.clone(),
        timeline: b.timeline.unwrap_or(0),
        begin_wal: b.begin_wal.clone(),
        end_wal: b.end_wal.clone(),
        begin_time: b.begin_time,
        end_time: b.end_time,
        complete: b.complete(),
        recoverable_to_end: walk.is_some_and(|w| w.to_end),
        recoverable_until: walk.and_then(|w| w.until).map(gap),
        first_gap: walk
            .and_then(|w| w.missing.first())
            .map(|r| gap((r.timeline, r.from))),
    }
}

/// The gaps list: on the oldest usable backup's path, each missing segment once, at most
/// `MAX_LISTED_GAPS` (a warning in `findings` says when more are missing).
fn listed_gaps(wal: &Wal, audited: &Audited, findings: &mut Findings) -> Vec<Gap> {
    let mut gaps = Vec::new();
    let Some(w) = audited
        .usable
        .first()
        .and_then(|i| audited.walks[*i].as_ref())
    else {
        return gaps;
    };
    let total: u64 = w.missing.iter().map(|r| r.to - r.from + 1).sum();
    'runs: for r in &w.missing {
        for p in r.from..=r.to {
            if gaps.len() >= MAX_LISTED_GAPS {
                break 'runs;
            }
            gaps.push(Gap {
                segment: wal.name(r.timeline, p),
                timeline: r.timeline,
            });
        }
    }
    if total > gaps.len() as u64 {
        findings.warn(format!(
            "{total} segments are missing; the gaps list shows the first {}",
            gaps.len()
        ));
    }
    gaps
}

/// Every run missing on any usable backup's path, overlapping and adjacent runs merged, by
/// position then timeline.
fn merged_runs(audited: &Audited) -> Vec<Run> {
    let mut by_tli: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for (_, w) in audited.usable_walks() {
        for r in &w.missing {
            by_tli.entry(r.timeline).or_default().push((r.from, r.to));
        }
    }
    let mut merged = Vec::new();
    for (tli, mut runs) in by_tli {
        runs.sort();
        let mut cur: Option<(u64, u64)> = None;
        for (from, to) in runs {
            cur = match cur {
                Some((f, t)) if from <= t.saturating_add(1) => Some((f, t.max(to))),
                Some(done) => {
                    merged.push(Run {
                        timeline: tli,
                        from: done.0,
                        to: done.1,
                    });
                    Some((from, to))
                }
                None => Some((from, to)),
            };
        }
        if let Some((from, to)) = cur {
            merged.push(Run {
                timeline: tli,
                from,
                to,
            });
        }
    }
    merged.sort_by_key(|r| (r.from, r.timeline));
    merged
}

/// Gap findings: every run missing on any usable backup's path, merged, with who it hurts.
fn gap_findings(wal: &Wal, audited: &Audited) -> Findings {
    let mut gap_findings = Findings::new(Check::WalContinuity);
    for run in &merged_runs(audited) {
        gap_findings.error(format!(
            "{}{}; {}",
            wal.describe_gap(run),
            wal.partial_note(run),
            audited.hurt(run).join("; ")
        ));
    }
    gap_findings
}

/// The newest backup or WAL segment, its age, and the findings on its freshness.
struct Newest {
    name: Option<String>,
    age_seconds: Option<i64>,
    findings: Findings,
}

/// Freshness of the newest usable backup.
fn backup_freshness(
    backups: &[Backup],
    usable: &[usize],
    now: DateTime<Utc>,
    thresholds: Thresholds,
) -> Newest {
    let newest = usable
        .iter()
        .filter(|i| backups[**i].end_time.is_some())
        .max_by_key(|i| (backups[**i].end_time, backups[**i].id.clone()))
        .or(usable.last())
        .copied();
    let newest_backup = newest.map(|i| backups[i].id.clone());
    let newest_backup_age_seconds = newest
        .and_then(|i| backups[i].end_time)
        .map(|t| (now - t).num_seconds());
    let mut fresh = Findings::new(Check::BackupAge);
    match (newest, newest_backup_age_seconds) {
        (None, _) => fresh.error(if backups.is_empty() {
            "no usable base backup: the archive has no backups under base/".to_string()
        } else {
            format!(
                "no usable base backup: none of the {} backups under base/ is DONE with its \
                 backup.info and data.tar*",
                backups.len()
            )
        }),
        (Some(i), None) => fresh.warn(format!(
            "newest base backup {} has no end_time: its age is unknown",
            backups[i].id
        )),
        (Some(i), Some(age)) if age > thresholds.max_backup_age_seconds as i64 => {
            fresh.error(format!(
                "newest base backup {} is {} old (ended {}), over the {} limit",
                backups[i].id,
                human(age),
                backups[i]
                    .end_time
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                human(thresholds.max_backup_age_seconds as i64)
            ))
        }
        _ => {}
    }
    Newest {
        name: newest_backup,
        age_seconds: newest_backup_age_seconds,
        findings: fresh,
    }
}

/// Freshness of the newest WAL: the newest timeline that has segments.
fn wal_freshness(
    wal: &Wal,
    timelines: &[u32],
    now: DateTime<Utc>,
    thresholds: Thresholds,
) -> Newest {
    let mut wal_fresh = Findings::new(Check::WalAge);
    let wal_tli = timelines
        .iter()
        .rev()
        .find(|t| wal.present.contains_key(t))
        .copied();
    let newest_wal_pos = wal_tli.and_then(|t| {
        let (p, m) = wal.present[&t].iter().next_back()?;
        Some((t, *p, *m))
    });
    let newest_wal = newest_wal_pos.map(|(t, p, _)| wal.name(t, p));
    let newest_wal_age_seconds = newest_wal_pos
        .and_then(|(_, _, m)| m)
        .map(|m| (now - m).num_seconds());
    match (newest_wal_pos, newest_wal_age_seconds) {
        (None, _) => wal_fresh.error(
            "no WAL is archived: point-in-time recovery is impossible and archiving may be broken"
                .into(),
        ),
        (Some((t, p, _)), None) => wal_fresh.warn(format!(
            "newest WAL segment {} (timeline {t}) has no last-modified time: its age is unknown",
            wal.name(t, p)
        )),
        (Some((t, p, _)), Some(age)) if age > thresholds.max_wal_age_seconds as i64 => wal_fresh
            .error(format!(
                "newest archived WAL is {} (timeline {t}), {} old, over the {} limit: WAL \
                 archiving may be stuck",
                wal.name(t, p),
                human(age),
                human(thresholds.max_wal_age_seconds as i64)
            )),
        _ => {}
    }
    Newest {
        name: newest_wal,
        age_seconds: newest_wal_age_seconds,
        findings: wal_fresh,
    }
}

/// Notes on objects recovery will not use.
fn object_notes(wal: &Wal, unused: &Unused) -> Findings {
    let mut notes = Findings::new(Check::Objects);
    for ((t, p), file) in &wal.partials {
        let continued = wal
            .present
            .range(t + 1..)
            .find(|(_, segs)| segs.contains_key(p))
            .map(|(child, _)| {
                format!(
                    " (normal after a promotion: timeline {child} continues with {})",
                    wal.name(*child, *p)
                )
            })
            .unwrap_or_default();
        notes.warn(format!(
            "{file} (timeline {t}) is a partial segment: recovery does not replay it{continued}"
        ));
    }
    if !unused.empty.is_empty() {
        notes.warn(format!(
            "{} WAL objects are empty (0 bytes) and will fail to restore: {}",
            unused.empty.len(),
            examples(&unused.empty)
        ));
    }
    if !unused.ignored.is_empty() {
        notes.warn(format!(
            "{} objects under wals/ are not WAL that barman-cloud-wal-restore would find with \
             {} MiB segments: {}",
            unused.ignored.len(),
            wal.segment_size >> 20,
            examples(&unused.ignored)
        ));
    }
    notes
}

/// Audit one serverName's archive.
pub fn analyze(
    server_name: &str,
    listing: &ArchiveListing,
    now: DateTime<Utc>,
    thresholds: Thresholds,
) -> AuditReport {
    let mut findings = Findings::new(Check::Backups);
    let backups = read_backups(listing);
    let segment_size = choose_segment_size(&backups, &mut findings);
    let (wal, unused) = Wal::read(listing, segment_size);
    let timelines = wal.timelines();
    let history_findings = history_findings(&wal, &timelines);
    let audited = audit_backups(&backups, &wal);
    let gaps = listed_gaps(&wal, &audited, &mut findings);
    let gap_findings = gap_findings(&wal, &audited);
    let newest_backup = backup_freshness(&backups, &audited.usable, now, thresholds);
    let newest_wal = wal_freshness(&wal, &timelines, now, thresholds);
    let notes = object_notes(&wal, &unused);

    findings.0.splice(0..0, gap_findings.0);
    for group in [
        history_findings,
        audited.routes,
        newest_backup.findings,
        newest_wal.findings,
        audited.warnings,
        notes,
    ] {
        findings.0.extend(group.0);
    }

    AuditReport {
        server_name: server_name.to_string(),
        checked_at: now,
        wal_segment_size: segment_size,
        timelines,
        backups: audited.audits,
        gaps,
        newest_backup: newest_backup.name,
        newest_backup_age_seconds: newest_backup.age_seconds,
        newest_wal: newest_wal.name,
        newest_wal_age_seconds: newest_wal.age_seconds,
        wal_segments: wal.present.values().map(|p| p.len() as u64).sum(),
        thresholds,
        findings: findings.sorted(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{COMPRESSION_SUFFIXES, segments_per_log};
    use chrono::{Duration, TimeZone};

    const MIB16: u64 = 16 << 20;
    const MIB64: u64 = 64 << 20;
    const B1: &str = "20261122T024830";
    const B2: &str = "20261122T080000";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    /// Segment name at `pos` with 16 MiB segments.
    fn seg(tli: u32, pos: u64) -> String {
        SegmentName::from_position(tli, pos, MIB16).to_string()
    }

    fn gap(tli: u32, name: &str) -> Gap {
        Gap {
            segment: name.into(),
            timeline: tli,
        }
    }

    /// A backup.info the way barman writes it (sorted keys, `None` for unset fields).
    fn info(status: &str, begin: &str, end: &str, ended: DateTime<Utc>, size: u64) -> String {
        let b = SegmentName::parse(begin).unwrap();
        let e = SegmentName::parse(end).unwrap();
        let lsn = |s: SegmentName| Lsn(s.start_lsn(size).unwrap() + 0x28).to_string();
        let py = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string();
        format!(
            "backup_label=None\nbackup_name=None\nbegin_offset=40\nbegin_time={}\n\
             begin_wal={begin}\nbegin_xlog={}\ncompression=None\nend_offset=40\nend_time={}\n\
             end_wal={end}\nend_xlog={}\nerror=None\nmode=concurrent\nsize=31457280\n\
             status={status}\nsystemid=7312345678901234567\ntimeline={}\nversion=170002\n\
             xlog_segment_size={size}\n",
            py(ended - Duration::minutes(5)),
            lsn(b),
            py(ended),
            lsn(e),
            b.timeline
        )
    }

    /// A listing built object by object.
    struct Archive {
        listing: ArchiveListing,
        size: u64,
    }

    impl Archive {
        fn new() -> Self {
            Self::sized(MIB16)
        }

        fn sized(size: u64) -> Self {
            Self {
                listing: ArchiveListing::default(),
                size,
            }
        }

        fn object(mut self, key: &str, age_secs: Option<i64>) -> Self {
            self.listing.objects.push(ArchiveObject {
                key: key.into(),
                size: 4096,
                last_modified: age_secs.map(|a| now() - Duration::seconds(a)),
            });
            self
        }

        /// `wals/<dir>/<file>`, modified a minute ago.
        fn wal(self, file: &str) -> Self {
            self.wal_aged(file, Some(60))
        }

        fn wal_aged(self, file: &str, age_secs: Option<i64>) -> Self {
            let key = format!("wals/{}/{file}", &file[..16]);
            self.object(&key, age_secs)
        }

        /// Complete segments at positions `from..=to` on `tli` (older ones older).
        fn wals(mut self, tli: u32, from: u64, to: u64) -> Self {
            for p in from..=to {
                let name = SegmentName::from_position(tli, p, self.size).to_string();
                self = self.wal_aged(&name, Some(60 + (to - p) as i64 * 30));
            }
            self
        }

        fn backup_as(
            mut self,
            id: &str,
            status: &str,
            begin: &str,
            end: &str,
            ended_h: i64,
        ) -> Self {
            let text = info(
                status,
                begin,
                end,
                now() - Duration::hours(ended_h),
                self.size,
            );
            self.listing.backup_infos.insert(id.into(), text);
            self.object(&format!("base/{id}/backup.info"), Some(ended_h * 3600))
                .object(&format!("base/{id}/data.tar.gz"), Some(ended_h * 3600))
        }

        /// A DONE backup with its data, ended an hour ago.
        fn backup(self, id: &str, begin: &str, end: &str) -> Self {
            self.backup_as(id, "DONE", begin, end, 1)
        }

        fn history(mut self, tli: u32, text: &str) -> Self {
            self.listing.histories.insert(tli, text.into());
            self.object(&format!("wals/{tli:08X}.history"), Some(3600))
        }

        fn analyze(&self) -> AuditReport {
            analyze("pg", &self.listing, now(), Thresholds::default())
        }
    }

    fn errors(r: &AuditReport) -> Vec<&str> {
        r.findings
            .iter()
            .filter(|f| f.severity == "error")
            .map(|f| f.message.as_str())
            .collect()
    }

    fn warnings(r: &AuditReport) -> Vec<&str> {
        r.findings
            .iter()
            .filter(|f| f.severity == "warning")
            .map(|f| f.message.as_str())
            .collect()
    }

    fn backup<'a>(r: &'a AuditReport, id: &str) -> &'a BackupAudit {
        r.backups
            .iter()
            .find(|b| b.id == id)
            .expect("backup reported")
    }

    // ---- segment arithmetic ----

    #[test]
    fn segments_per_log_follows_the_segment_size() {
        assert_eq!(segments_per_log(MIB16), 256);
        assert_eq!(segments_per_log(MIB64), 64);
        assert_eq!(segments_per_log(1 << 20), 4096);
        assert_eq!(segments_per_log(1 << 30), 4);
        assert!(valid_segment_size(MIB16) && valid_segment_size(1 << 30));
        assert!(!valid_segment_size(0) && !valid_segment_size(3 << 20));
        assert!(!valid_segment_size(1 << 19) && !valid_segment_size(1 << 31));
    }

    #[test]
    fn segment_names_parse_print_and_roll_over() {
        // PostgreSQL's IsXLogFileName: uppercase only; restore never asks for a lowercase name.
        assert_eq!(SegmentName::parse("0000000A000000010000003f"), None);
        let s = SegmentName::parse("0000000A000000010000003F").unwrap();
        assert_eq!((s.timeline, s.log, s.seg), (10, 1, 0x3F));
        assert_eq!(s.to_string(), "0000000A000000010000003F");
        assert_eq!(
            SegmentName::parse("00000000000000010000003F"),
            None,
            "timeline 0"
        );
        assert_eq!(
            SegmentName::parse("000000010000000100000003F"),
            None,
            "25 digits"
        );
        assert_eq!(SegmentName::parse("00000001000000010000003G"), None);

        let next = |n: &str, size| {
            SegmentName::parse(n)
                .unwrap()
                .next(size)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            next("000000010000000000000004", MIB16),
            "000000010000000000000005"
        );
        assert_eq!(
            next("0000000100000000000000FF", MIB16),
            "000000010000000100000000"
        );
        assert_eq!(
            next("00000001000000000000003F", MIB64),
            "000000010000000100000000"
        );
        assert_eq!(
            next("000000010000000000000003", 1 << 30),
            "000000010000000100000000"
        );
        assert_eq!(
            next("0000000200000003000000FE", MIB16),
            "0000000200000003000000FF"
        );
        // Segment 0x40 cannot exist with 64 MiB segments.
        let bad = SegmentName::parse("000000010000000000000040").unwrap();
        assert_eq!(bad.position(MIB64), None);
        assert_eq!(bad.position(MIB16), Some(0x40));
        let last = SegmentName::parse("00000001FFFFFFFF000000FF").unwrap();
        assert_eq!(last.next(MIB16), None, "end of the WAL address space");

        let p = SegmentName::parse("000000010000000100000002").unwrap();
        assert_eq!(p.position(MIB16), Some(258));
        assert_eq!(p.position(MIB64), Some(66));
        assert_eq!(SegmentName::from_position(1, 66, MIB64), p);
        assert_eq!(p.start_lsn(MIB16), Some(0x1_0200_0000));
    }

    #[test]
    fn lsns_map_to_the_segment_that_holds_them() {
        let at = |lsn: &str, tli, size| {
            SegmentName::containing(Lsn::parse(lsn).map(|l| l.0).unwrap(), tli, size).to_string()
        };
        assert_eq!(at("0/5000108", 2, MIB16), "000000020000000000000005");
        assert_eq!(at("0/5000000", 1, MIB16), "000000010000000000000005");
        assert_eq!(at("0/4FFFFFF", 1, MIB16), "000000010000000000000004");
        assert_eq!(at("1/FF000000", 1, MIB16), "0000000100000001000000FF");
        assert_eq!(at("0/FC000000", 1, MIB64), "00000001000000000000003F");
        assert_eq!(at("3/4000000", 1, MIB64), "000000010000000300000001");
    }

    #[test]
    fn wal_keys_are_classified_like_barman_names_them() {
        use WalObject::*;
        let s = |n: &str| SegmentName::parse(n).unwrap();
        let c = classify_wal;
        assert_eq!(
            c("0000000100000000/000000010000000000000003"),
            Segment(s("000000010000000000000003"))
        );
        for ext in COMPRESSION_SUFFIXES {
            assert_eq!(
                c(&format!("0000000100000000/000000010000000000000003{ext}")),
                Segment(s("000000010000000000000003")),
                "{ext}"
            );
        }
        assert_eq!(
            c("0000000100000000/000000010000000000000003.partial.gz"),
            Partial(s("000000010000000000000003"))
        );
        assert_eq!(
            c("0000000100000000/000000010000000000000002.00000028.backup"),
            BackupLabel
        );
        assert_eq!(
            c("0000000100000000/000000010000000000000002.00000028.backup.zst"),
            BackupLabel
        );
        assert_eq!(c("00000002.history"), History(2));
        assert_eq!(c("0000000A.history.gz"), History(10));
        assert_eq!(c("0000000100000001/000000010000000000000003"), Misplaced);
        assert_eq!(c("000000010000000000000003"), Unknown, "no hash dir");
        assert_eq!(c("0000000100000000/000000010000000000000003.tmp"), Unknown);
        assert_eq!(
            c("0000000100000000/000000010000000000000003.gz.gz"),
            Unknown
        );
        assert_eq!(c("0000000100000000/x/000000010000000000000003"), Unknown);
        assert_eq!(c("00000000.history"), Unknown);
    }

    #[test]
    fn backup_info_and_history_files_parse() {
        let f = parse_info("# comment\n status = DONE \nerror=None\nbegin_xlog=0/2000028\n\nx\n");
        assert_eq!(f.get("status").map(String::as_str), Some("DONE"));
        assert_eq!(f.get("begin_xlog").map(String::as_str), Some("0/2000028"));
        assert!(!f.contains_key("error"), "None means unset");

        let want = Utc.with_ymd_and_hms(2026, 11, 22, 2, 48, 30).unwrap()
            + Duration::microseconds(409_835);
        assert_eq!(parse_time("2026-11-22 02:48:30.409835+00:00"), Some(want));
        assert_eq!(parse_time("2026-11-22 03:48:30.409835+01:00"), Some(want));
        assert_eq!(parse_time("2026-11-22T02:48:30.409835Z"), Some(want));
        assert_eq!(
            parse_time("2026-11-22 02:48:30.409835"),
            Some(want),
            "naive is UTC"
        );
        assert_eq!(
            parse_time("2026-11-22 02:48:30+00:00"),
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 2, 48, 30).unwrap())
        );
        assert_eq!(parse_time("yesterday"), None);

        let h = parse_history(3, "1\t0/5000108\tno recovery target specified\n\n2\t0/7000000\tbefore 2026-11-22 03:00:00+00\n")
            .unwrap();
        assert_eq!(
            h,
            vec![
                HistoryEntry {
                    parent: 1,
                    switch: 0x500_0108
                },
                HistoryEntry {
                    parent: 2,
                    switch: 0x700_0000
                }
            ]
        );
        assert!(parse_history(2, "").is_err());
        assert!(parse_history(2, "garbage\n").is_err());
        assert!(parse_history(2, "1\tnot-an-lsn\tx\n").is_err());
        assert!(
            parse_history(2, "2\t0/5000108\tx\n").is_err(),
            "parent must be older"
        );
        assert!(
            parse_history(3, "2\t0/7000000\tx\n1\t0/5000108\tx\n").is_err(),
            "order"
        );
    }

    // ---- archives ----

    #[test]
    fn a_clean_archive_passes_with_no_findings() {
        let r = Archive::new()
            .wals(1, 1, 6)
            .wal("000000010000000000000002.00000028.backup")
            .backup(B1, &seg(1, 2), &seg(1, 3))
            .analyze();
        assert!(r.ok(), "{:#?}", r.findings);
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert_eq!(r.server_name, "pg");
        assert_eq!(r.checked_at, now());
        assert_eq!(r.wal_segment_size, MIB16);
        assert_eq!(r.timelines, vec![1]);
        assert!(r.gaps.is_empty());
        let b = backup(&r, B1);
        assert_eq!(b.status, "DONE");
        assert_eq!(b.timeline, 1);
        assert_eq!(b.begin_wal, seg(1, 2));
        assert_eq!(b.end_wal, seg(1, 3));
        assert!(b.complete && b.recoverable_to_end);
        assert_eq!(b.first_gap, None);
        assert_eq!(
            b.recoverable_until,
            Some(gap(1, "000000010000000000000006"))
        );
        assert_eq!(b.end_time, Some(now() - Duration::hours(1)));
        assert_eq!(
            b.begin_time,
            Some(now() - Duration::hours(1) - Duration::minutes(5))
        );
        assert_eq!(r.newest_backup.as_deref(), Some(B1));
        assert_eq!(r.newest_backup_age_seconds, Some(3600));
        assert_eq!(r.newest_wal.as_deref(), Some("000000010000000000000006"));
        assert_eq!(r.newest_wal_age_seconds, Some(60));
    }

    #[test]
    fn adr007_a_gap_after_the_backup_end_is_an_error() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .wals(1, 5, 7)
            .backup(B1, &seg(1, 2), &seg(1, 3))
            .analyze();
        let b = backup(&r, B1);
        assert!(b.recoverable_to_end, "its own WAL is complete");
        assert_eq!(b.first_gap, Some(gap(1, "000000010000000000000004")));
        assert_eq!(
            b.recoverable_until,
            Some(gap(1, "000000010000000000000003"))
        );
        assert_eq!(r.gaps, vec![gap(1, "000000010000000000000004")]);
        assert!(!r.ok());
        assert_eq!(
            errors(&r),
            vec![
                "WAL gap: 000000010000000000000004 (timeline 1) is missing; recovery from \
                 20261122T024830 stops at 000000010000000000000003"
            ]
        );
        assert!(warnings(&r).is_empty(), "{:?}", warnings(&r));
    }

    #[test]
    fn a_gap_inside_the_backup_means_it_cannot_reach_consistency() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .wals(1, 5, 7)
            .backup(B1, &seg(1, 2), &seg(1, 5))
            .analyze();
        let b = backup(&r, B1);
        assert!(!b.recoverable_to_end);
        assert_eq!(b.first_gap, Some(gap(1, "000000010000000000000004")));
        assert_eq!(
            b.recoverable_until,
            Some(gap(1, "000000010000000000000003"))
        );
        let e = errors(&r);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].ends_with("before the backup is consistent (it ends at 000000010000000000000005)"),
            "{e:?}"
        );

        // Its very first segment missing: recovery cannot even start.
        let r = Archive::new()
            .wals(1, 3, 5)
            .backup(B1, &seg(1, 2), &seg(1, 3))
            .analyze();
        let b = backup(&r, B1);
        assert!(!b.recoverable_to_end);
        assert_eq!(b.first_gap, Some(gap(1, "000000010000000000000002")));
        assert_eq!(b.recoverable_until, None);
        assert!(
            errors(&r)[0].ends_with("recovery from 20261122T024830 cannot start"),
            "{r:#?}"
        );
    }

    #[test]
    fn wal_that_stops_before_the_backup_end_is_a_gap() {
        // The archive ends at 3 while the backup needs up to 4: nothing newer hides it.
        let r = Archive::new()
            .wals(1, 1, 3)
            .backup(B1, &seg(1, 2), &seg(1, 4))
            .analyze();
        let b = backup(&r, B1);
        assert!(!b.recoverable_to_end);
        assert_eq!(b.first_gap, Some(gap(1, "000000010000000000000004")));
        assert_eq!(
            b.recoverable_until,
            Some(gap(1, "000000010000000000000003"))
        );
        assert_eq!(r.gaps, vec![gap(1, "000000010000000000000004")]);
    }

    #[test]
    fn a_gap_right_after_the_first_segment_stops_recovery_there() {
        let r = Archive::new()
            .wals(1, 2, 2)
            .wals(1, 4, 5)
            .backup(B1, &seg(1, 2), &seg(1, 2))
            .analyze();
        let b = backup(&r, B1);
        assert!(b.recoverable_to_end);
        assert_eq!(b.first_gap, Some(gap(1, "000000010000000000000003")));
        assert_eq!(
            b.recoverable_until,
            Some(gap(1, "000000010000000000000002"))
        );
    }

    #[test]
    fn consecutive_missing_segments_are_one_finding_and_listed_each() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .wals(1, 7, 8)
            .backup(B1, &seg(1, 2), &seg(1, 2))
            .analyze();
        assert_eq!(
            r.gaps,
            vec![
                gap(1, "000000010000000000000004"),
                gap(1, "000000010000000000000005"),
                gap(1, "000000010000000000000006"),
            ]
        );
        assert_eq!(
            errors(&r),
            vec![
                "WAL gap: 000000010000000000000004 to 000000010000000000000006 (3 segments, \
                 timeline 1) are missing; recovery from 20261122T024830 stops at \
                 000000010000000000000003"
            ]
        );
    }

    #[test]
    fn a_gap_between_two_backups_hurts_only_the_older() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .wals(1, 5, 8)
            .backup_as(B1, "DONE", &seg(1, 2), &seg(1, 2), 9)
            .backup(B2, &seg(1, 6), &seg(1, 6))
            .analyze();
        assert_eq!(
            r.backups.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            [B1, B2]
        );
        let old = backup(&r, B1);
        assert!(old.recoverable_to_end);
        assert_eq!(old.first_gap, Some(gap(1, "000000010000000000000004")));
        let new = backup(&r, B2);
        assert!(new.recoverable_to_end);
        assert_eq!(new.first_gap, None);
        assert_eq!(
            new.recoverable_until,
            Some(gap(1, "000000010000000000000008"))
        );
        assert_eq!(r.gaps, vec![gap(1, "000000010000000000000004")]);
        assert_eq!(r.newest_backup.as_deref(), Some(B2));
        let e = errors(&r);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains(B1) && !e[0].contains(B2), "{e:?}");
    }

    #[test]
    fn a_gap_hurting_two_backups_names_both() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .wals(1, 5, 8)
            .backup_as(B1, "DONE", &seg(1, 1), &seg(1, 1), 9)
            .backup(B2, &seg(1, 2), &seg(1, 2))
            .analyze();
        assert_eq!(
            errors(&r),
            vec![
                "WAL gap: 000000010000000000000004 (timeline 1) is missing; recovery from \
                 20261122T024830 stops at 000000010000000000000003; recovery from \
                 20261122T080000 stops at 000000010000000000000003"
            ]
        );
    }

    fn promoted() -> Archive {
        // Recovery from B1 stopped at 0/5000108 and promoted: timeline 2 starts in segment 5.
        // Timeline 1 went on to 7 (6 is lost), an abandoned branch.
        Archive::new()
            .wals(1, 1, 5)
            .wal_aged("000000010000000000000007", Some(7200))
            .wals(2, 5, 9)
            .backup(B1, &seg(1, 2), &seg(1, 3))
    }

    #[test]
    fn recovery_follows_the_history_file_to_the_newest_timeline() {
        let r = promoted()
            .history(2, "1\t0/5000108\tno recovery target specified\n")
            .analyze();
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert_eq!(r.timelines, vec![1, 2]);
        assert!(
            r.gaps.is_empty(),
            "6 on timeline 1 is on the abandoned branch"
        );
        let b = backup(&r, B1);
        assert_eq!(b.first_gap, None);
        assert_eq!(
            b.recoverable_until,
            Some(gap(2, "000000020000000000000009"))
        );
        assert_eq!(r.newest_wal.as_deref(), Some("000000020000000000000009"));
    }

    #[test]
    fn the_switch_segment_must_exist_on_the_new_timeline() {
        let mut a = promoted().history(2, "1\t0/5000108\tno recovery target specified\n");
        a.listing
            .objects
            .retain(|o| !o.key.ends_with("000000020000000000000005"));
        let r = a.analyze();
        assert_eq!(r.gaps, vec![gap(2, "000000020000000000000005")]);
        assert_eq!(
            backup(&r, B1).recoverable_until,
            Some(gap(1, "000000010000000000000004")),
            "timeline 1 is replayed up to the segment before the switch"
        );
    }

    #[test]
    fn without_the_history_file_recovery_stays_on_the_old_timeline() {
        let r = promoted().analyze();
        assert!(!r.ok());
        assert_eq!(r.timelines, vec![1, 2]);
        let e = errors(&r);
        assert!(
            e.contains(&"timeline 2 has WAL but no 00000002.history: recovery cannot follow it"),
            "{e:?}"
        );
        let b = backup(&r, B1);
        assert_eq!(b.recoverable_until.as_ref().map(|g| g.timeline), Some(1));
        assert_eq!(
            b.recoverable_until,
            Some(gap(1, "000000010000000000000005"))
        );
        // Stuck on timeline 1, it does hit the hole there.
        assert_eq!(b.first_gap, Some(gap(1, "000000010000000000000006")));
    }

    #[test]
    fn a_missing_segment_on_the_new_timeline_is_a_gap_on_it() {
        let mut a = promoted().history(2, "1\t0/5000108\tno recovery target specified\n");
        a.listing
            .objects
            .retain(|o| !o.key.ends_with("000000020000000000000007"));
        let r = a.analyze();
        assert_eq!(r.gaps, vec![gap(2, "000000020000000000000007")]);
        let b = backup(&r, B1);
        assert_eq!(b.first_gap, Some(gap(2, "000000020000000000000007")));
        assert_eq!(
            b.recoverable_until,
            Some(gap(2, "000000020000000000000006"))
        );
        assert_eq!(
            errors(&r),
            vec![
                "WAL gap: 000000020000000000000007 (timeline 2) is missing; recovery from \
                 20261122T024830 stops at 000000020000000000000006"
            ]
        );
    }

    #[test]
    fn two_promotions_with_a_switch_on_a_segment_boundary() {
        // 1 → 2 at 0/5000108, 2 → 3 exactly at the start of segment 8.
        let a = Archive::new()
            .wals(1, 1, 4)
            .wals(2, 5, 7)
            .wals(3, 8, 10)
            .backup(B1, &seg(1, 2), &seg(1, 3))
            .history(2, "1\t0/5000108\tno recovery target specified\n")
            .history(
                3,
                "1\t0/5000108\tno recovery target specified\n2\t0/8000000\tpromoted\n",
            );
        let r = a.analyze();
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert_eq!(r.timelines, vec![1, 2, 3]);
        assert_eq!(
            backup(&r, B1).recoverable_until,
            Some(gap(3, "00000003000000000000000A"))
        );

        let mut a = a;
        a.listing
            .objects
            .retain(|o| !o.key.ends_with("000000020000000000000006"));
        let r = a.analyze();
        assert_eq!(r.gaps, vec![gap(2, "000000020000000000000006")]);
    }

    #[test]
    fn a_missing_intermediate_history_stops_latest_short() {
        // Timeline 2 left no WAL and no history behind, but timeline 3 descends from it:
        // PostgreSQL probes 00000002.history, misses it and stays on timeline 1.
        let r = Archive::new()
            .wals(1, 1, 5)
            .wals(3, 7, 9)
            .backup(B1, &seg(1, 2), &seg(1, 3))
            .history(3, "1\t0/5000108\tx\n2\t0/7000000\ty\n")
            .analyze();
        assert_eq!(r.timelines, vec![1, 3]);
        assert_eq!(
            backup(&r, B1).recoverable_until,
            Some(gap(1, "000000010000000000000005"))
        );
        assert_eq!(
            errors(&r),
            vec![
                "recovery from 20261122T024830 with recovery_target_timeline=latest stops at \
                 timeline 1: 00000002.history is missing, so it never reaches timeline 3 \
                 (PostgreSQL looks for history files one timeline at a time)"
            ]
        );
    }

    #[test]
    fn a_backup_on_an_abandoned_branch_is_checked_on_its_own_timeline() {
        // B2 started on timeline 1 after timeline 2 had forked off at 0/5000108.
        let r = Archive::new()
            .wals(1, 1, 10)
            .wals(2, 5, 7)
            .backup_as(B1, "DONE", &seg(1, 2), &seg(1, 2), 9)
            .backup(B2, &seg(1, 8), &seg(1, 8))
            .history(2, "1\t0/5000108\tno recovery target specified\n")
            .analyze();
        assert!(r.ok(), "{:#?}", r.findings);
        assert_eq!(
            backup(&r, B1).recoverable_until,
            Some(gap(2, "000000020000000000000007"))
        );
        assert_eq!(
            backup(&r, B2).recoverable_until,
            Some(gap(1, "00000001000000000000000A"))
        );
        let w = warnings(&r);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "backup 20261122T080000 (timeline 1) is not on the history of timeline 2 \
                 (timeline 2 left timeline 1 at 0/5000108, before the backup started at \
                 0/8000028)"
            ),
            "{w:?}"
        );
    }

    #[test]
    fn unread_or_unreadable_history_files_are_errors() {
        let mut a = promoted().object("wals/00000002.history.gz", Some(3600));
        let r = a.analyze();
        assert_eq!(r.timelines, vec![1, 2]);
        let e = errors(&r);
        assert!(
            e.iter().any(|m| m
                .starts_with("wals/00000002.history.gz is archived but its content was not read")),
            "{e:?}"
        );
        assert_eq!(
            backup(&r, B1).recoverable_until.as_ref().unwrap().timeline,
            1
        );

        a.listing
            .histories
            .insert(2, "this is not a history file\n".into());
        let r = a.analyze();
        let e = errors(&r);
        assert!(
            e.iter()
                .any(|m| m.starts_with("00000002.history is unreadable (line 1:")),
            "{e:?}"
        );
    }

    #[test]
    fn sixty_four_mib_segments_roll_over_after_segment_3f() {
        let a = Archive::sized(MIB64)
            .wals(1, 0x3C, 0x42) // 0000000100000000 0000003C … 00000001 00000002
            .backup(B1, "00000001000000000000003D", "00000001000000000000003E");
        let r = a.analyze();
        assert_eq!(r.wal_segment_size, MIB64);
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert_eq!(
            backup(&r, B1).recoverable_until,
            Some(gap(1, "000000010000000100000002"))
        );
        assert!(
            a.listing
                .objects
                .iter()
                .any(|o| o.key == "wals/0000000100000001/000000010000000100000000"),
            "the segment after 3F is in the next log"
        );

        let mut a = a;
        a.listing
            .objects
            .retain(|o| !o.key.ends_with("000000010000000100000000"));
        let r = a.analyze();
        assert_eq!(r.gaps, vec![gap(1, "000000010000000100000000")]);
        assert_eq!(
            backup(&r, B1).recoverable_until,
            Some(gap(1, "00000001000000000000003F"))
        );
    }

    #[test]
    fn segment_size_defaults_to_16_mib_and_impossible_names_are_ignored() {
        let mut a = Archive::sized(MIB64)
            .wals(1, 0x3C, 0x42)
            .wal("000000010000000000000040")
            .backup(B1, "00000001000000000000003D", "00000001000000000000003E");
        let r = a.analyze();
        assert!(r.gaps.is_empty());
        let w = warnings(&r);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("64 MiB segments")
                && w[0].contains("wals/0000000100000000/000000010000000000000040"),
            "{w:?}"
        );

        // Without xlog_segment_size, 16 MiB is assumed: 0x40..=0xFF would be missing.
        for text in a.listing.backup_infos.values_mut() {
            *text = text.replace("xlog_segment_size=67108864\n", "");
        }
        let r = a.analyze();
        assert_eq!(r.wal_segment_size, MIB16);
        assert_eq!(r.gaps.len(), 0x100 - 0x41, "0x41..=0xFF");
        assert_eq!(r.gaps[0], gap(1, "000000010000000000000041"));
    }

    #[test]
    fn compressed_partial_and_label_files_are_told_apart() {
        let r = Archive::new()
            .wal("000000010000000000000001.gz")
            .wal("000000010000000000000002.bz2")
            .wal("000000010000000000000002.00000028.backup.gz")
            .wal("000000010000000000000003.snappy")
            .wal("000000010000000000000004.partial")
            .wal("000000010000000000000005.xz")
            .wal("000000010000000000000006.zst")
            .wal("000000010000000000000007.lz4")
            .wal("000000010000000000000008.partial.gz")
            .backup(B1, &seg(1, 2), &seg(1, 2))
            .analyze();
        // 4 exists only as a partial: a gap. 8 is partial past the newest complete segment.
        assert_eq!(r.gaps, vec![gap(1, "000000010000000000000004")]);
        assert_eq!(
            errors(&r),
            vec![
                "WAL gap: 000000010000000000000004 (timeline 1) is missing (only \
                 000000010000000000000004.partial is archived); recovery from 20261122T024830 \
                 stops at 000000010000000000000003"
            ]
        );
        assert_eq!(
            warnings(&r),
            vec![
                "000000010000000000000004.partial (timeline 1) is a partial segment: recovery \
                 does not replay it",
                "000000010000000000000008.partial.gz (timeline 1) is a partial segment: \
                 recovery does not replay it",
            ]
        );
        assert_eq!(r.newest_wal.as_deref(), Some("000000010000000000000007"));
    }

    #[test]
    fn a_partial_left_by_a_promotion_is_explained() {
        let r = Archive::new()
            .wals(1, 1, 4)
            .wal("000000010000000000000005.partial")
            .wals(2, 5, 6)
            .backup(B1, &seg(1, 2), &seg(1, 2))
            .history(2, "1\t0/5000108\tfailover\n")
            .analyze();
        assert!(r.ok(), "{:#?}", r.findings);
        assert_eq!(
            warnings(&r),
            vec![
                "000000010000000000000005.partial (timeline 1) is a partial segment: recovery \
                 does not replay it (normal after a promotion: timeline 2 continues with \
                 000000020000000000000005)"
            ]
        );
    }

    #[test]
    fn stale_backup_and_stale_wal_are_errors() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .backup_as(B1, "DONE", &seg(1, 2), &seg(1, 2), 26)
            .wal_aged("000000010000000000000004", Some(11 * 60))
            .analyze();
        assert_eq!(r.newest_backup_age_seconds, Some(26 * 3600));
        assert_eq!(r.newest_wal_age_seconds, Some(660));
        let e = errors(&r);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(
            e[0],
            "newest base backup 20261122T024830 is 26.0h old (ended 2026-11-21T10:00:00+00:00), \
             over the 25.0h limit"
        );
        assert_eq!(
            e[1],
            "newest archived WAL is 000000010000000000000004 (timeline 1), 11m old, over the \
             10m limit: WAL archiving may be stuck"
        );

        // Just inside both limits.
        let r = Archive::new()
            .wals(1, 1, 3)
            .backup_as(B1, "DONE", &seg(1, 2), &seg(1, 2), 25)
            .wal_aged("000000010000000000000004", Some(10 * 60))
            .analyze();
        assert!(r.ok(), "{:#?}", r.findings);
    }

    #[test]
    fn a_wal_without_last_modified_has_unknown_age() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .wal_aged("000000010000000000000004", None)
            .backup(B1, &seg(1, 2), &seg(1, 2))
            .analyze();
        assert_eq!(r.newest_wal.as_deref(), Some("000000010000000000000004"));
        assert_eq!(r.newest_wal_age_seconds, None);
        assert!(r.ok());
        assert_eq!(
            warnings(&r),
            vec![
                "newest WAL segment 000000010000000000000004 (timeline 1) has no last-modified \
                 time: its age is unknown"
            ]
        );
    }

    #[test]
    fn a_failed_backup_is_a_warning_and_not_usable() {
        // The FAILED backup is the newest, and its WAL starts before the archive does.
        let r = Archive::new()
            .wals(1, 2, 6)
            .backup_as(B1, "DONE", &seg(1, 3), &seg(1, 3), 2)
            .backup_as(B2, "FAILED", &seg(1, 1), &seg(1, 1), 1)
            .analyze();
        assert!(r.ok(), "{:#?}", r.findings);
        assert_eq!(r.newest_backup.as_deref(), Some(B1));
        assert!(
            r.gaps.is_empty(),
            "the FAILED backup's missing segment 1 does not count"
        );
        assert_eq!(
            warnings(&r),
            vec!["backup 20261122T080000 has status FAILED: it is not usable for recovery"]
        );
        let failed = backup(&r, B2);
        assert_eq!(failed.status, "FAILED");
        assert_eq!(failed.first_gap, Some(gap(1, "000000010000000000000001")));

        // Alone, it leaves nothing to restore.
        let r = Archive::new()
            .wals(1, 1, 6)
            .backup_as(B2, "FAILED", &seg(1, 2), &seg(1, 2), 1)
            .analyze();
        assert!(!r.ok());
        assert_eq!(r.newest_backup, None);
        assert_eq!(
            errors(&r),
            vec![
                "no usable base backup: none of the 1 backups under base/ is DONE with its \
                 backup.info and data.tar*"
            ]
        );
    }

    #[test]
    fn incomplete_backups_are_warnings() {
        let mut a = Archive::new()
            .wals(1, 1, 6)
            .backup(B1, &seg(1, 2), &seg(1, 2))
            .backup(B2, &seg(1, 4), &seg(1, 4))
            .object("base/20261122T100000/data.tar", Some(60));
        a.listing
            .objects
            .retain(|o| o.key != format!("base/{B2}/data.tar.gz"));
        let r = a.analyze();
        assert!(r.ok(), "{:#?}", r.findings);
        assert_eq!(r.backups.len(), 3);
        assert!(!backup(&r, B2).complete);
        let none = backup(&r, "20261122T100000");
        assert_eq!(none.status, "UNKNOWN");
        assert!(!none.complete && !none.recoverable_to_end);
        assert_eq!(r.newest_backup.as_deref(), Some(B1));
        assert_eq!(
            warnings(&r),
            vec![
                "backup 20261122T080000 is DONE but base/20261122T080000/ has no data.tar*: it \
                 is not usable for recovery, yet barman still lists it, so a recovery that picks \
                 it (CloudNativePG picks the newest) fails in barman-cloud-restore",
                "base/20261122T100000/ has no backup.info: the backup is not usable (upload \
                 interrupted or still running?)",
            ]
        );
    }

    #[test]
    fn no_backups_at_all_is_an_error() {
        let r = Archive::new().wals(1, 1, 3).analyze();
        assert!(!r.ok());
        assert!(r.backups.is_empty() && r.gaps.is_empty());
        assert_eq!(r.newest_backup, None);
        assert_eq!(r.newest_backup_age_seconds, None);
        assert_eq!(
            errors(&r),
            vec!["no usable base backup: the archive has no backups under base/"]
        );

        let r = Archive::new().analyze();
        assert_eq!(r.timelines, Vec::<u32>::new());
        assert_eq!(r.newest_wal, None);
        assert_eq!(
            errors(&r),
            vec![
                "no usable base backup: the archive has no backups under base/",
                "no WAL is archived: point-in-time recovery is impossible and archiving may be \
                 broken",
            ]
        );
    }

    #[test]
    fn a_segment_in_the_wrong_folder_is_not_found_by_restore() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .wals(1, 5, 6)
            .object("wals/0000000100000001/000000010000000000000004", Some(60))
            .backup(B1, &seg(1, 2), &seg(1, 2))
            .analyze();
        assert_eq!(r.gaps, vec![gap(1, "000000010000000000000004")]);
        assert!(
            warnings(&r)
                .iter()
                .any(|w| w.contains("wals/0000000100000001/000000010000000000000004")),
            "{:#?}",
            r.findings
        );
    }

    #[test]
    fn a_16_mib_archive_rolls_over_from_ff_to_the_next_log() {
        let r = Archive::new()
            .wals(1, 0xFD, 0x102)
            .backup(B1, "0000000100000000000000FE", "0000000100000000000000FF")
            .analyze();
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert_eq!(
            backup(&r, B1).recoverable_until,
            Some(gap(1, "000000010000000100000002"))
        );
    }

    #[test]
    fn the_report_does_not_depend_on_listing_order() {
        let a = promoted()
            .history(2, "1\t0/5000108\tno recovery target specified\n")
            .wal("000000010000000000000005.partial")
            .backup_as(B2, "FAILED", &seg(2, 6), &seg(2, 6), 1);
        let mut b = Archive::new();
        b.listing = a.listing.clone();
        b.listing.objects.reverse();
        assert_eq!(a.analyze(), b.analyze());
        assert_eq!(a.analyze().backups[0].id, B1);
    }

    #[test]
    fn findings_put_errors_first() {
        let mut a = Archive::new()
            .wals(1, 1, 3)
            .wal_aged("000000010000000000000004", Some(3600))
            .wal("000000010000000000000005.partial")
            .backup(B1, &seg(1, 2), &seg(1, 2))
            .backup_as(B2, "FAILED", &seg(1, 3), &seg(1, 3), 1);
        for text in a.listing.backup_infos.values_mut() {
            *text = text.replace("xlog_segment_size=16777216", "xlog_segment_size=12345");
        }
        let r = a.analyze();
        let severities: Vec<&str> = r.findings.iter().map(|f| f.severity.as_str()).collect();
        assert_eq!(
            severities,
            ["error", "warning", "warning", "warning", "warning"],
            "{:#?}",
            r.findings
        );
        assert!(r.findings[0].message.starts_with("newest archived WAL is"));
        assert!(r.findings[1].message.contains("xlog_segment_size=12345"));
    }

    #[test]
    fn each_gap_names_only_the_backups_it_stops() {
        let r = Archive::new()
            .wals(1, 1, 3)
            .wals(1, 5, 8)
            .wals(1, 10, 11)
            .backup_as(B1, "DONE", &seg(1, 2), &seg(1, 2), 9)
            .backup(B2, &seg(1, 6), &seg(1, 6))
            .analyze();
        assert_eq!(
            r.gaps,
            vec![
                gap(1, "000000010000000000000004"),
                gap(1, "000000010000000000000009")
            ]
        );
        assert_eq!(
            errors(&r),
            vec![
                "WAL gap: 000000010000000000000004 (timeline 1) is missing; recovery from \
                 20261122T024830 stops at 000000010000000000000003",
                "WAL gap: 000000010000000000000009 (timeline 1) is missing; recovery from \
                 20261122T024830 stops at 000000010000000000000003; recovery from \
                 20261122T080000 stops at 000000010000000000000008",
            ]
        );
    }
}
