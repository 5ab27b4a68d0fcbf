//! Object-storage content faults: damage an archived WAL segment in place (CRC or
//! undecompressable), delete part of a base backup, delete a timeline's history file. Each
//! acts through the drill's `ObjectStore` (so on every backend) and records in the ledger what
//! it did and from where replay is cut, for verification to attribute the loss. Never touches
//! anything outside the drill's prefix and never decides a verdict.

use crate::backend::objstore_content::Codec;
use crate::backend::wal_content::{Segment, flip_record_data};
use crate::backend::{BackendError, Drill};
use crate::ledger::{DeletedBackupPart, FaultRecord, LedgerEntry};
use crate::scenario::{
    BackupPart, CorruptMode, CorruptWal, DeleteBackup, DeleteHistory, OneSegment, Scenario,
};
use crate::wal::Lsn;
use crate::wal::SegmentName;

use super::super::outcome::{Corruption, Damage, DamagedRecord, StepOutcome};
use super::super::state::DrillState;

fn infra(e: impl std::fmt::Display) -> BackendError {
    BackendError::infra(e.to_string())
}

/// `corrupt_wal`: rewrite one archived segment under the same key.
pub(super) async fn corrupt_wal<D: Drill>(
    drill: &mut D,
    id: &str,
    cw: &CorruptWal,
    s: &Scenario,
    st: &mut DrillState,
) -> Result<StepOutcome, BackendError> {
    let server = &s.backup.server_name;
    // The write whose commit record is damaged (crc), and the segment to rewrite.
    let (segment, entry) = match &cw.segment {
        OneSegment::Segment(seg) => (*seg, None),
        OneSegment::HoldingStep(step) => {
            let e = st.ledger.entry_for_step(step).map_err(infra)?.clone();
            let seg = match cw.mode {
                // The record starts where the insert position was just before COMMIT; usually
                // in the segment holding its end, sometimes in the one before.
                CorruptMode::Crc => SegmentName::containing(
                    e.pre_commit_lsn.0,
                    e.segment.timeline,
                    crate::wal::DEFAULT_SEGMENT_SIZE,
                ),
                CorruptMode::Undecompressable => e.segment,
            };
            (seg, Some(e))
        }
    };
    // The segment must be in the archive before its archived copy can be damaged.
    let newest = entry.as_ref().map_or(segment, |e| e.segment.max(segment));
    // (A crashed source archives nothing more: the segment is there or never will be.)
    if !st.crashed {
        st.switch_and_wait(id, s.timeouts.archive_seconds, Some(newest))
            .await?;
    }
    let store = drill.store();
    let object = store.wal_object(server, &segment).await?;
    let codec = Codec::of_key(&object.key).map_err(infra)?;
    let original = store.get(&object.key).await?;
    let (damaged, from, damage) = match cw.mode {
        CorruptMode::Crc => flip_a_record(codec, &original, &object.key, segment, entry.as_ref())?,
        CorruptMode::Undecompressable => scramble(codec, &original, &object.key, segment)?,
    };
    store.put(&object.key, damaged).await?;
    st.ledger.faults.push(FaultRecord {
        step_id: id.to_string(),
        action: format!(
            "corrupted WAL segment {segment} in the archive ({})",
            cw.mode.label()
        ),
        segments_damaged: vec![segment],
        damaged_from_lsn: Some(Lsn(from)),
        damage: Some(cw.mode.label().to_string()),
        ..FaultRecord::default()
    });
    Ok(StepOutcome::WalCorrupted(Corruption {
        key: object.key,
        segment,
        damage,
    }))
}

/// `crc`: flip bytes in the commit record of `entry` (or the segment's first record) of the
/// object `key` holding `segment`; the object recompressed, the damaged record's LSN, and what
/// was done.
fn flip_a_record(
    codec: Codec,
    original: &[u8],
    key: &str,
    segment: SegmentName,
    entry: Option<&LedgerEntry>,
) -> Result<(Vec<u8>, u64, Damage), BackendError> {
    let mut raw = codec
        .decompress(original)
        .map_err(|e| BackendError::io(format!("decompressing {key}"), e))?;
    let copy = raw.clone();
    let seg = Segment::new(segment, &copy).map_err(infra)?;
    let record = match entry {
        Some(e) => seg
            .commit_record(e.txid as u32, e.pre_commit_lsn.0, e.commit_lsn.0)
            .map_err(infra)?,
        None => seg.first_record().map_err(infra)?,
    };
    let flipped = flip_record_data(&mut raw, &seg, &record).map_err(infra)?;
    let again = codec
        .compress(&raw)
        .map_err(|e| BackendError::io(format!("recompressing {key}"), e))?;
    let damage = Damage::Crc {
        bytes_flipped: flipped.len() as u64,
        record: if entry.is_some() {
            DamagedRecord::Commit
        } else {
            DamagedRecord::First
        },
        record_lsn: Lsn(record.lsn),
        offset: flipped.first().map_or(0, |p| p - seg.start),
    };
    Ok((again, record.lsn, damage))
}

/// `undecompressable`: scramble the compressed stream of the object `key` holding `segment`;
/// the damaged object, the segment's first LSN (replay ends before it), and what was done.
fn scramble(
    codec: Codec,
    original: &[u8],
    key: &str,
    segment: SegmentName,
) -> Result<(Vec<u8>, u64, Damage), BackendError> {
    let start = segment
        .start_lsn(crate::wal::DEFAULT_SEGMENT_SIZE)
        .ok_or_else(|| infra(format!("`{segment}` is not a valid segment")))?;
    let d = codec
        .damage(original)
        .map_err(|e| infra(format!("{key}: {e}")))?;
    let damage = Damage::Undecompressable {
        kept: d.len() as u64,
        of: original.len() as u64,
    };
    Ok((d, start, damage))
}

/// `delete_backup`: delete a base backup's `data.tar*` objects or its `backup.info`.
pub(super) async fn delete_backup<D: Drill>(
    drill: &mut D,
    id: &str,
    db: &DeleteBackup,
    s: &Scenario,
    st: &mut DrillState,
) -> Result<StepOutcome, BackendError> {
    let server = &s.backup.server_name;
    let backup = st.ledger.backup_for_step(&db.step).map_err(infra)?.clone();
    let store = drill.store();
    let objects = store.backup_objects(server, &backup.backup_id).await?;
    let wanted: Vec<String> = objects
        .into_iter()
        .map(|o| o.key)
        .filter(|k| {
            let file = k.rsplit('/').next().unwrap_or_default();
            match db.part {
                BackupPart::Data => file == "data.tar" || file.starts_with("data.tar."),
                BackupPart::Info => file == "backup.info",
            }
        })
        .collect();
    if wanted.is_empty() {
        return Err(infra(format!(
            "backup {} (step `{}`) has no {} object under {}/{server}/base/{}/",
            backup.backup_id,
            db.step,
            match db.part {
                BackupPart::Data => "data.tar*",
                BackupPart::Info => "backup.info",
            },
            store.url(),
            backup.backup_id
        )));
    }
    for k in &wanted {
        store.delete(k).await?;
    }
    st.ledger.faults.push(FaultRecord {
        step_id: id.to_string(),
        action: format!(
            "deleted the {} of base backup {} (step `{}`)",
            match db.part {
                BackupPart::Data => "data files",
                BackupPart::Info => "backup.info",
            },
            backup.backup_id,
            db.step
        ),
        objects_deleted: wanted.clone(),
        backup_deleted: Some(DeletedBackupPart {
            step_id: db.step.clone(),
            backup_id: backup.backup_id.clone(),
            part: db.part.label().to_string(),
        }),
        ..FaultRecord::default()
    });
    Ok(StepOutcome::BackupPartDeleted {
        step: db.step.clone(),
        backup_id: backup.backup_id,
        part: db.part,
        keys: wanted,
    })
}

/// `delete_history`: delete `<TLI>.history` (any compression) from the archive.
pub(super) async fn delete_history<D: Drill>(
    drill: &mut D,
    id: &str,
    dh: &DeleteHistory,
    s: &Scenario,
    st: &mut DrillState,
) -> Result<StepOutcome, BackendError> {
    let server = &s.backup.server_name;
    // A promoted server archives its history file first: wait for everything so far.
    if !st.crashed {
        st.switch_and_wait(id, s.timeouts.archive_seconds, None)
            .await?;
    }
    let store = drill.store();
    let found = store.history_objects(server, dh.timeline).await?;
    if found.is_empty() {
        return Err(infra(format!(
            "{:08X}.history is not in the archive {}/{server}: did a `failover` step run before this fault?",
            dh.timeline,
            store.url()
        )));
    }
    let mut keys = Vec::new();
    for o in found {
        store.delete(&o.key).await?;
        keys.push(o.key);
    }
    st.ledger.faults.push(FaultRecord {
        step_id: id.to_string(),
        action: format!(
            "deleted {:08X}.history (timeline {}) from the archive",
            dh.timeline, dh.timeline
        ),
        objects_deleted: keys.clone(),
        history_removed: Some(dh.timeline),
        ..FaultRecord::default()
    });
    Ok(StepOutcome::HistoryDeleted {
        timeline: dh.timeline,
        keys,
    })
}
