//! WAL page and record geometry for content faults: where a record's bytes lie in a segment
//! file, finding a transaction's commit record or a segment's first record, and flipping bytes
//! covered by a record's CRC. Pure: works on a decompressed segment in memory, never reads
//! object storage and never decides what to damage.

use crate::wal::SegmentName;

/// `XLOG_BLCKSZ`: WAL page size.
pub const PAGE: u64 = 8192;
/// `SizeOfXLogShortPHD` (MAXALIGNed).
const SHORT_HEADER: u64 = 24;
/// `SizeOfXLogLongPHD` (MAXALIGNed): the first page of every segment.
const LONG_HEADER: u64 = 40;
/// `SizeOfXLogRecord`.
const RECORD_HEADER: u64 = 24;
/// `XLP_FIRST_IS_CONTRECORD`.
const FIRST_IS_CONTRECORD: u16 = 0x0001;
/// `RM_XACT_ID`: the transaction manager, which writes commit records.
const RM_XACT_ID: u8 = 1;

/// A segment file held in memory with where it starts in the WAL.
pub struct Segment<'a> {
    pub name: SegmentName,
    pub bytes: &'a [u8],
    /// Segment size, from the first page's long header.
    pub size: u64,
    /// LSN of the segment's first byte.
    pub start: u64,
}

/// A WAL record found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    pub lsn: u64,
    pub tot_len: u32,
    pub xid: u32,
    pub rmid: u8,
}

fn maxalign(x: u64) -> u64 {
    (x + 7) & !7
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn header_len(pos: u64, seg_size: u64) -> u64 {
    if pos.is_multiple_of(seg_size) {
        LONG_HEADER
    } else {
        SHORT_HEADER
    }
}

/// Physical position of the `n`-th byte of record data that starts at `pos`, skipping the page
/// headers in between (a record continues right after the next page's header).
pub fn advance(mut pos: u64, mut n: u64, seg_size: u64) -> u64 {
    loop {
        let avail = PAGE - pos % PAGE;
        if n < avail {
            return pos + n;
        }
        n -= avail;
        pos += avail;
        pos += header_len(pos, seg_size);
    }
}

/// Where the next record starts after one that ends (exclusive) at `end`.
fn next_record_start(end: u64, seg_size: u64) -> u64 {
    let p = maxalign(end);
    if p.is_multiple_of(PAGE) {
        p + header_len(p, seg_size)
    } else {
        p
    }
}

impl<'a> Segment<'a> {
    /// Wrap a decompressed segment file; checks its long page header states its size.
    pub fn new(name: SegmentName, bytes: &'a [u8]) -> Result<Self, String> {
        let size = u32_at(bytes, 32).map(u64::from).unwrap_or(0);
        if size == 0 || !size.is_power_of_two() || bytes.len() as u64 != size {
            return Err(format!(
                "{name} is not a WAL segment file: {} bytes, its first page states a segment size of {size}",
                bytes.len()
            ));
        }
        // `xlp_magic` is version-specific, but a written page never has 0 there.
        if u16_at(bytes, 0).unwrap_or(0) == 0 {
            return Err(format!("{name} starts with an empty page"));
        }
        let start = name
            .start_lsn(size)
            .ok_or_else(|| format!("{name} cannot exist with {size}-byte segments"))?;
        Ok(Self {
            name,
            bytes,
            size,
            start,
        })
    }

    fn contains(&self, pos: u64) -> bool {
        pos >= self.start && pos < self.start + self.size
    }

    fn offset(&self, pos: u64) -> Result<usize, String> {
        if self.contains(pos) {
            Ok((pos - self.start) as usize)
        } else {
            Err(format!(
                "position {} is outside segment {}",
                crate::wal::Lsn(pos),
                self.name
            ))
        }
    }

    /// `n` bytes of record data from `pos`, across page headers, within this segment.
    fn read(&self, pos: u64, n: u64) -> Result<Vec<u8>, String> {
        (0..n)
            .map(|i| {
                let at = self.offset(advance(pos, i, self.size))?;
                Ok(self.bytes[at])
            })
            .collect()
    }

    /// The record header at `pos`; `None` where the WAL ends (zeroed space).
    pub fn record_at(&self, pos: u64) -> Result<Option<RecordAt>, String> {
        let h = self.read(pos, RECORD_HEADER)?;
        let tot_len = u32_at(&h, 0).unwrap_or(0);
        if tot_len == 0 {
            return Ok(None);
        }
        if u64::from(tot_len) < RECORD_HEADER || tot_len > 1 << 30 {
            return Err(format!(
                "no valid WAL record at {} in {}: length {tot_len}",
                crate::wal::Lsn(pos),
                self.name
            ));
        }
        Ok(Some(RecordAt {
            lsn: pos,
            tot_len,
            xid: u32_at(&h, 4).unwrap_or(0),
            rmid: h[17],
        }))
    }

    /// The first record that starts in this segment (after any record continued from the
    /// previous one).
    pub fn first_record(&self) -> Result<RecordAt, String> {
        let info = u16_at(self.bytes, 2).unwrap_or(0);
        let mut pos = self.start + LONG_HEADER;
        if info & FIRST_IS_CONTRECORD != 0 {
            let rem = u64::from(u32_at(self.bytes, 16).unwrap_or(0));
            pos = next_record_start(advance(pos, rem, self.size), self.size);
        }
        if !self.contains(pos) {
            return Err(format!(
                "no record starts in {}: a record continued from the previous segment fills it",
                self.name
            ));
        }
        self.record_at(pos)?
            .ok_or_else(|| format!("{} holds no WAL record", self.name))
    }

    /// The commit record of transaction `xid`: the first transaction-manager record of `xid`
    /// starting at or after `from` and before `until`, following the record chain.
    pub fn commit_record(&self, xid: u32, from: u64, until: u64) -> Result<RecordAt, String> {
        let mut pos = from;
        while pos < until && self.contains(pos) {
            let Some(r) = self.record_at(pos)? else { break };
            if r.rmid == RM_XACT_ID && r.xid == xid {
                return Ok(r);
            }
            pos = next_record_start(advance(pos, u64::from(r.tot_len), self.size), self.size);
        }
        Err(format!(
            "no commit record of transaction {xid} between {} and {} in {}",
            crate::wal::Lsn(from),
            crate::wal::Lsn(until),
            self.name
        ))
    }
}

/// Flip up to 8 bytes of `record`'s data (right after its header): the record keeps its
/// length and chain, and fails its CRC. Returns the positions flipped.
pub fn flip_record_data(
    bytes: &mut [u8],
    seg: &Segment<'_>,
    record: &RecordAt,
) -> Result<Vec<u64>, String> {
    let data = u64::from(record.tot_len) - RECORD_HEADER;
    if data == 0 {
        return Err(format!(
            "the record at {} has no data to damage",
            crate::wal::Lsn(record.lsn)
        ));
    }
    let mut flipped = Vec::new();
    for i in 0..data.min(8) {
        let pos = advance(record.lsn, RECORD_HEADER + i, seg.size);
        let at = seg.offset(pos)?;
        bytes[at] ^= 0xFF;
        flipped.push(pos);
    }
    Ok(flipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 << 20;

    /// A segment with a long header (size stated) and records laid out like PostgreSQL does.
    fn segment(first_contrecord: Option<u32>) -> Vec<u8> {
        let mut b = vec![0u8; SEG as usize];
        b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        b[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
        if let Some(rem) = first_contrecord {
            b[2..4].copy_from_slice(&(FIRST_IS_CONTRECORD | 2).to_le_bytes());
            b[16..20].copy_from_slice(&rem.to_le_bytes());
        }
        b
    }

    fn put_record(b: &mut [u8], start: u64, pos: u64, tot_len: u32, xid: u32, rmid: u8) {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&tot_len.to_le_bytes());
        h[4..8].copy_from_slice(&xid.to_le_bytes());
        h[17] = rmid;
        for (i, v) in h.iter().enumerate() {
            b[(advance(pos, i as u64, SEG) - start) as usize] = *v;
        }
        for i in 24..u64::from(tot_len) {
            b[(advance(pos, i, SEG) - start) as usize] = 0xAB;
        }
    }

    fn name(seg: u32) -> SegmentName {
        SegmentName {
            timeline: 1,
            log: 0,
            seg,
        }
    }

    #[test]
    fn record_data_skips_page_headers() {
        // 10 bytes before the end of the first page: byte 10 is right after page 2's header.
        let pos = 0x0600_0000 + PAGE - 10;
        assert_eq!(advance(pos, 9, SEG), pos + 9);
        assert_eq!(advance(pos, 10, SEG), 0x0600_0000 + PAGE + 24);
        // Crossing into the next segment skips its long header.
        assert_eq!(advance(0x0700_0000 - 8, 8, SEG), 0x0700_0000 + 40);
        assert_eq!(
            next_record_start(0x0600_0000 + PAGE, SEG),
            0x0600_0000 + PAGE + 24
        );
        assert_eq!(next_record_start(0x0600_0031, SEG), 0x0600_0038);
    }

    #[test]
    fn finds_a_commit_record_through_the_chain_and_across_a_page() {
        let start = 0x0600_0000;
        let mut b = segment(None);
        let r1 = start + 40;
        put_record(&mut b, start, r1, 70, 740, 10); // a heap record of the transaction
        let r2 = next_record_start(advance(r1, 70, SEG), SEG);
        assert_eq!(r2, start + 112);
        // Another transaction's record, filling the page up to 16 bytes before its end.
        put_record(&mut b, start, r2, (PAGE - 16 - 112) as u32, 741, 8);
        // The commit record straddles the first page boundary.
        let r3 = next_record_start(advance(r2, PAGE - 16 - 112, SEG), SEG);
        assert_eq!(r3, start + PAGE - 16);
        put_record(&mut b, start, r3, 46, 740, RM_XACT_ID);
        let seg = Segment::new(name(6), &b).unwrap();
        assert_eq!(seg.first_record().unwrap().lsn, r1);
        let c = seg.commit_record(740, r1, start + 2 * PAGE).unwrap();
        assert_eq!(c.lsn, r3);
        let mut copy = b.clone();
        let flipped = flip_record_data(&mut copy, &seg, &c).unwrap();
        assert_eq!(flipped.len(), 8);
        // 16 header bytes on the first page, 8 after the next page's 24-byte header, then data.
        assert_eq!(flipped[0], start + PAGE + 24 + 8);
        assert!(
            flipped
                .iter()
                .all(|p| copy[(p - start) as usize] == 0xAB ^ 0xFF)
        );
        // The header (length, xid) is untouched, so the chain still leads to the record.
        let seg2 = Segment::new(name(6), &copy).unwrap();
        assert_eq!(seg2.commit_record(740, r1, start + 2 * PAGE).unwrap(), c);
        assert!(seg.commit_record(999, r1, start + 2 * PAGE).is_err());
    }

    #[test]
    fn first_record_skips_a_continued_record() {
        let start = 0x0900_0000;
        let mut b = segment(Some(100));
        let first = next_record_start(advance(start + 40, 100, SEG), SEG);
        assert_eq!(first, start + 40 + 104);
        put_record(&mut b, start, first, 30, 7, RM_XACT_ID);
        let seg = Segment::new(name(9), &b).unwrap();
        assert_eq!(seg.first_record().unwrap().lsn, first);
    }

    #[test]
    fn refuses_what_is_not_a_segment() {
        assert!(Segment::new(name(6), &[0u8; 100]).is_err());
        let mut b = segment(None);
        b[32..36].copy_from_slice(&(8u32 << 20).to_le_bytes());
        assert!(Segment::new(name(6), &b).is_err(), "size mismatch");
        let b = segment(None);
        let seg = Segment::new(name(6), &b).unwrap();
        assert!(seg.first_record().is_err(), "no record at all");
    }
}
