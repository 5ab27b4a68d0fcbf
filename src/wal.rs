//! WAL primitives every layer shares: LSNs, segment names and their arithmetic, timelines, the
//! compression suffixes barman-cloud appends. One parser and one rule for each, the ones
//! PostgreSQL itself applies. Pure: never reads a file, a clock or a server.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// PostgreSQL's default WAL segment size (16 MiB), used when no `backup.info` states one.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// Suffixes `barman-cloud-wal-archive` appends to compressed WAL, history and label files.
pub const COMPRESSION_SUFFIXES: &[&str] = &[".gz", ".bz2", ".xz", ".snappy", ".zst", ".lz4"];

/// `name` without the compression suffix barman-cloud appended, if any.
pub fn strip_compression(name: &str) -> &str {
    COMPRESSION_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// A PostgreSQL log sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `X/Y` as PostgreSQL's `pg_lsn` input accepts it (1 to 8 hex digits each side, either
    /// case), surrounding blanks ignored; `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        s.trim().parse().ok()
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not an LSN (expected the form 0/3000060)"))?;
        let half = |p: &str| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                Err(format!("`{s}` is not an LSN"))
            } else if p.len() > 8 {
                Err(format!(
                    "`{s}` is not an LSN (each half is at most FFFFFFFF)"
                ))
            } else {
                u64::from_str_radix(p, 16).map_err(|_| format!("`{s}` is not an LSN"))
            }
        };
        Ok(Lsn((half(hi)? << 32) | half(lo)?))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Segments in one "log" file (the middle 8 hex digits of a segment name): 256 for 16 MiB.
pub fn segments_per_log(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size
}

/// A segment size PostgreSQL accepts (`initdb --wal-segsize`): a power of two, 1 MiB to 1 GiB.
pub fn valid_segment_size(segment_size: u64) -> bool {
    segment_size.is_power_of_two() && (1 << 20..=1 << 30).contains(&segment_size)
}

/// A WAL segment name, `TTTTTTTTLLLLLLLLSSSSSSSS`: timeline, log, segment within the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    pub timeline: u32,
    pub log: u32,
    pub seg: u32,
}

impl SegmentName {
    /// PostgreSQL's rule (`IsXLogFileName`): exactly 24 uppercase hex digits; and a timeline
    /// PostgreSQL can have (not 0). A lowercase name is not a segment `restore_command` is ever
    /// asked for.
    pub fn parse(name: &str) -> Option<Self> {
        if name.len() != 24
            || !name
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        {
            return None;
        }
        let field = |r: std::ops::Range<usize>| u32::from_str_radix(&name[r], 16).ok();
        let timeline = field(0..8)?;
        (timeline != 0).then_some(Self {
            timeline,
            log: field(8..16)?,
            seg: field(16..24)?,
        })
    }

    /// The segment at `position` (PostgreSQL's segment number) on `timeline`.
    pub fn from_position(timeline: u32, position: u64, segment_size: u64) -> Self {
        let per_log = segments_per_log(segment_size);
        Self {
            timeline,
            log: (position / per_log) as u32,
            seg: (position % per_log) as u32,
        }
    }

    /// The segment holding `lsn` on `timeline`.
    pub fn containing(lsn: u64, timeline: u32, segment_size: u64) -> Self {
        Self::from_position(timeline, lsn / segment_size, segment_size)
    }

    /// PostgreSQL's segment number; `None` when `seg` cannot exist with this segment size.
    pub fn position(&self, segment_size: u64) -> Option<u64> {
        let per_log = segments_per_log(segment_size);
        (u64::from(self.seg) < per_log).then(|| u64::from(self.log) * per_log + u64::from(self.seg))
    }

    /// The segment after this one on the same timeline, rolling into the next log.
    pub fn next(&self, segment_size: u64) -> Option<Self> {
        let pos = self.position(segment_size)?.checked_add(1)?;
        let next = Self::from_position(self.timeline, pos, segment_size);
        (u64::from(next.log) * segments_per_log(segment_size) + u64::from(next.seg) == pos)
            .then_some(next)
    }

    /// Names, comma-separated, as messages list segments.
    pub fn list(segments: &[SegmentName]) -> String {
        segments
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// First LSN in this segment.
    pub fn start_lsn(&self, segment_size: u64) -> Option<u64> {
        self.position(segment_size)?.checked_mul(segment_size)
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

impl FromStr for SegmentName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("`{s}` is not a WAL segment name"))
    }
}

/// Serialised as its name, as reports always wrote segments.
impl Serialize for SegmentName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SegmentName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The segment a WAL file name is about: the segment itself, its `.partial` file or a `.backup`
/// label (their first 24 characters name it), as `pg_stat_archiver.last_archived_wal` reports
/// them; `None` for a history file.
pub fn segment_of_file(name: &str) -> Option<SegmentName> {
    name.get(..24).and_then(SegmentName::parse)
}

/// The WAL segment an archived object key holds (`…/wals/<dir>/<segment>[.gz…]`), if it is a
/// segment (not a history file, backup label or partial file).
pub fn segment_of_key(key: &str) -> Option<SegmentName> {
    SegmentName::parse(strip_compression(key.rsplit('/').next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_as_pg_lsn_does_and_print_as_postgresql_does() {
        assert_eq!(Lsn::parse("0/5000108"), Some(Lsn(0x500_0108)));
        assert_eq!(Lsn::parse("1/a0"), Some(Lsn(0x1_0000_00A0)));
        assert_eq!(Lsn::parse(" 2/82000168 "), Some(Lsn(0x2_8200_0168)));
        for bad in ["5000108", "0/", "/1", "0/123456789", "+1/0", "0/-1", "g/0"] {
            assert_eq!(Lsn::parse(bad), None, "{bad}");
        }
        assert_eq!(Lsn(0x2_8200_0168).to_string(), "2/82000168");
        assert!(
            "0/123456789"
                .parse::<Lsn>()
                .unwrap_err()
                .contains("each half is at most FFFFFFFF")
        );
        assert!(
            "0".parse::<Lsn>()
                .unwrap_err()
                .contains("expected the form")
        );
    }

    #[test]
    fn segment_names_follow_postgresql_rule() {
        let s = SegmentName::parse("00000002000000010000000A").unwrap();
        assert_eq!((s.timeline, s.log, s.seg), (2, 1, 10));
        assert_eq!(s.to_string(), "00000002000000010000000A");
        for bad in [
            "00000002000000010000000a",
            "000000000000000100000001",
            "00000002000000010000000",
            "00000002000000010000000AB",
        ] {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
        // Serialised as its name; a name that is not a segment does not deserialise.
        assert_eq!(serde_json::to_value(s).unwrap(), "00000002000000010000000A");
        assert_eq!(
            serde_json::from_value::<SegmentName>("00000002000000010000000A".into()).unwrap(),
            s
        );
        assert!(serde_json::from_value::<SegmentName>("00000002000000010000000a".into()).is_err());
    }

    #[test]
    fn segment_arithmetic_rolls_over_logs_by_segment_size() {
        let size = DEFAULT_SEGMENT_SIZE;
        let last = SegmentName::parse("0000000100000000000000FF").unwrap();
        assert_eq!(
            last.next(size).unwrap().to_string(),
            "000000010000000100000000"
        );
        assert_eq!(
            SegmentName::containing(0x1_0300_0028, 1, size).to_string(),
            "000000010000000100000003"
        );
        // 64 MiB segments: 64 per log, so seg 0x40 cannot exist.
        let big = 64 << 20;
        assert_eq!(
            SegmentName::parse("000000010000000000000040")
                .unwrap()
                .position(big),
            None
        );
        assert!(valid_segment_size(big) && !valid_segment_size(3 << 20));
    }

    #[test]
    fn keys_name_segments_only_for_whole_segments() {
        let key = "pgdrill/run/srv/wals/0000000100000000/000000010000000000000003.gz";
        assert_eq!(
            segment_of_key(key).unwrap().to_string(),
            "000000010000000000000003"
        );
        for other in [
            "srv/wals/00000002.history",
            "srv/wals/0000000100000000/000000010000000000000003.partial",
            "srv/wals/0000000100000000/000000010000000000000002.00000028.backup",
        ] {
            assert_eq!(segment_of_key(other), None, "{other}");
        }
        let nine = SegmentName::parse("000000010000000000000009");
        assert_eq!(segment_of_file("000000010000000000000009.partial"), nine);
        assert_eq!(
            segment_of_file("000000010000000000000009.00000028.backup"),
            nine
        );
        assert_eq!(segment_of_file("00000002.history"), None);
        assert_eq!(segment_of_file(""), None);
        assert_eq!(
            strip_compression("00000002.history.zst"),
            "00000002.history"
        );
    }
}
