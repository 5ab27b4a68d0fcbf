//! What PostgreSQL's own log says about a recovery, read by every backend: the WAL segments
//! `restore_command` brought back from the archive, the LSNs replay ran between and the reason
//! replay ended. Pure text
//! functions over log lines (`... LOG:  message`); they never read a file or a pod.

use crate::wal::{Lsn, SegmentName};

/// Where replay started, became consistent and ended, as PostgreSQL logged them (`redo starts
/// at 0/2000028`, `consistent recovery state reached at 0/2000100`, `redo done at 0/4000090`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayLsns {
    pub redo_start: Option<Lsn>,
    pub consistent: Option<Lsn>,
    pub redo_done: Option<Lsn>,
}

/// The LSNs of replay: the first start of redo and first consistent state (a restarted
/// recovery logs them again), the last end of redo.
pub fn replay_lsns(log: &str) -> ReplayLsns {
    let after = |marker: &'static str| {
        log.lines().filter_map(move |l| {
            let rest = l.split(marker).nth(1)?;
            let end = rest
                .find(|c: char| !(c.is_ascii_hexdigit() || c == '/'))
                .unwrap_or(rest.len());
            Lsn::parse(&rest[..end])
        })
    };
    ReplayLsns {
        redo_start: after("redo starts at ").next(),
        consistent: after("consistent recovery state reached at ").next(),
        redo_done: after("redo done at ").next_back(),
    }
}

/// Segments the server logged as `restored log file "X" from archive` (not history files).
pub fn restored_segments(log: &str) -> Vec<SegmentName> {
    log.lines()
        .filter_map(|l| l.split("restored log file \"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .filter_map(SegmentName::parse)
        .collect()
}

/// How many distinct WAL segments replay restored: PostgreSQL reads the last one again when it
/// leaves recovery, which is not another segment replayed.
pub fn replayed_segment_count(log: &str) -> u64 {
    let mut names = restored_segments(log);
    names.sort_unstable();
    names.dedup();
    names.len() as u64
}

/// What PostgreSQL logged as the reason replay ended, if it named one: the startup
/// process's complaint about a record, just before `redo done at`.
pub fn replay_end(log: &str) -> Option<String> {
    const REASONS: &[&str] = &[
        "checksum in record at",
        "invalid record length at",
        "invalid magic number",
        "incorrect prev-link",
        "invalid resource manager ID",
        "unexpected pageaddr",
        "contrecord",
        "invalid info bits",
        "record with invalid length",
        "out-of-sequence timeline ID",
    ];
    let done = log.lines().position(|l| l.contains("redo done at"))?;
    log.lines()
        .take(done)
        .filter_map(|l| {
            // `wanted 24, got 0`: zeroed space, the normal end of written WAL.
            if REASONS.iter().any(|r| l.contains(r)) && !l.ends_with("got 0") {
                l.split_once("LOG:").map(|(_, m)| m.trim().to_string())
            } else {
                // restore_command output: a segment it found but could not deliver.
                l.split_once("WAL restore exception:")
                    .map(|(_, m)| format!("barman-cloud-wal-restore failed: {}", m.trim()))
            }
        })
        .last()
}

/// The commit time of the last transaction replay applied, from PostgreSQL's end-of-recovery
/// line `last completed transaction was at log time 2026-12-02 05:28:14.008801+00`.
pub fn last_replayed_commit(log: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let at = log
        .lines()
        .filter_map(|l| {
            l.split("last completed transaction was at log time ")
                .nth(1)
        })
        .next_back()?
        .trim();
    chrono::DateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S%.f%#z")
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-11-22 10:00:01.200 UTC [9] LOG:  restored log file \"000000010000000000000003\" from archive\n\
2026-11-22 10:00:01.300 UTC [9] LOG:  consistent recovery state reached at 0/3000100\n\
2026-11-22 10:00:01.400 UTC [9] LOG:  restored log file \"000000010000000000000004\" from archive\n\
2026-11-22 10:00:01.500 UTC [9] LOG:  restored log file \"00000002.history\" from archive\n\
2026-11-22 10:00:01.550 UTC [9] LOG:  redo done at 0/4000090 system usage: CPU: user: 0.00 s\n\
2026-11-22 10:00:01.900 UTC [8] LOG:  database system is ready to accept connections\n";

    #[test]
    fn replay_lsns_are_read_from_redo_start_consistency_and_redo_done() {
        let log = format!("2026-11-22 10:00:01.100 UTC [9] LOG:  redo starts at 0/2000028\n{LOG}");
        assert_eq!(
            replay_lsns(&log),
            ReplayLsns {
                redo_start: Some(Lsn(0x200_0028)),
                consistent: Some(Lsn(0x300_0100)),
                redo_done: Some(Lsn(0x400_0090)),
            }
        );
        // CloudNativePG's JSON lines carry the same messages, quoted.
        let json = r#"{"record":{"message":"redo starts at 1/A0"}}"#;
        assert_eq!(replay_lsns(json).redo_start, Some(Lsn((1 << 32) | 0xA0)));
        assert_eq!(replay_lsns("no recovery here"), ReplayLsns::default());
    }

    #[test]
    fn the_last_replayed_commit_is_read_from_the_end_of_recovery_line() {
        let log = "2026-12-02 05:28:36.311 UTC [35] LOG:  redo done at 0/5000090\n\
2026-12-02 05:28:36.313 UTC [35] LOG:  last completed transaction was at log time 2026-12-02 05:28:14.008801+00\n";
        assert_eq!(
            last_replayed_commit(log),
            Some(
                chrono::DateTime::parse_from_rfc3339("2026-12-02T05:28:14.008801Z")
                    .unwrap()
                    .with_timezone(&chrono::Utc)
            )
        );
        assert_eq!(last_replayed_commit(LOG), None);
    }

    #[test]
    fn a_segment_read_again_at_the_end_of_recovery_counts_once() {
        let log = format!(
            "{LOG}2026-11-22 10:00:02.000 UTC [9] LOG:  restored log file \"000000010000000000000004\" from archive\n"
        );
        assert_eq!(restored_segments(&log).len(), 3);
        assert_eq!(replayed_segment_count(&log), 2);
    }

    #[test]
    fn restored_segments_are_the_wal_files_not_history_files() {
        let names: Vec<String> = restored_segments(LOG)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            ["000000010000000000000003", "000000010000000000000004"]
        );
    }

    #[test]
    fn replay_end_is_the_complaint_before_redo_done() {
        let log = "2026-11-22 06:22:30.442 UTC [4538] LOG:  consistent recovery state reached at 0/2000100\n\
2026-11-22 06:22:30.442 UTC [4538] LOG:  incorrect resource manager data checksum in record at 0/40000D0\n\
2026-11-22 06:22:30.443 UTC [4538] LOG:  redo done at 0/4000090 system usage: CPU: user: 0.00 s\n";
        assert_eq!(
            replay_end(log).as_deref(),
            Some("incorrect resource manager data checksum in record at 0/40000D0")
        );
        assert_eq!(
            replay_end(LOG),
            None,
            "ran out of archived WAL: no complaint"
        );
        let log = "2026-11-22 06:22:30,111 [4600] ERROR: Barman cloud WAL restore exception: Invalid data stream\n\
2026-11-22 06:22:30.443 UTC [4538] LOG:  redo done at 0/4000090 system usage: CPU: user: 0.00 s\n";
        assert_eq!(
            replay_end(log).as_deref(),
            Some("barman-cloud-wal-restore failed: Invalid data stream")
        );
    }
}
