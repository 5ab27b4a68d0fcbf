//! Fault steps: breaks the drill's own archive or source on purpose and records what it did in
//! the ledger, so verification can attribute every lost row. Never touches anything outside the
//! drill's prefix and never decides a verdict.

use crate::backend::{BackendError, Drill};
use crate::ledger::FaultRecord;
use crate::scenario::{Fault, Scenario};

use super::execute::{State, switch_and_wait};

/// Inject one fault; returns the step log's detail line.
pub(super) async fn inject<D: Drill>(
    drill: &mut D,
    id: &str,
    fault: &Fault,
    s: &Scenario,
    st: &mut State,
) -> Result<String, BackendError> {
    let archive_timeout = s.timeouts.archive_seconds;
    match fault {
        Fault::DeleteWal(sel) => {
            let seg = match (&sel.segment, &sel.holding_step) {
                (Some(seg), _) => seg.clone(),
                (None, Some(step)) => st
                    .ledger
                    .entry_for_step(step)
                    .map_err(|e| BackendError::infra(e.to_string()))?
                    .segment
                    .clone(),
                (None, None) => return Err(BackendError::infra("delete_wal names no segment")),
            };
            // The segment must be in the archive before it can go missing from it.
            switch_and_wait(st, archive_timeout, Some(&seg)).await?;
            let keys = drill
                .store()
                .delete_wal_segment(&s.backup.server_name, &seg)
                .await?;
            st.ledger.faults.push(FaultRecord {
                step_id: id.to_string(),
                action: format!("deleted WAL segment {seg} from the archive"),
                segments_removed: vec![seg.clone()],
                objects_deleted: keys.clone(),
                ..FaultRecord::default()
            });
            Ok(format!("deleted {}", keys.join(", ")))
        }
        Fault::CorruptWal(cw) => super::fault_content::corrupt_wal(drill, id, cw, s, st).await,
        Fault::DeleteBackup(db) => super::fault_content::delete_backup(drill, id, db, s, st).await,
        Fault::DeleteHistory(dh) => {
            super::fault_content::delete_history(drill, id, dh, s, st).await
        }
    }
}
