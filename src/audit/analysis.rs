//! The audit's reasoning over an `ArchiveListing`: pure, no I/O, no clock (`now` is passed in).

use chrono::{DateTime, Utc};

use super::model::*;

/// Audit one serverName's archive.
pub fn analyze(
    server_name: &str,
    listing: &ArchiveListing,
    now: DateTime<Utc>,
    thresholds: Thresholds,
) -> AuditReport {
    let _ = (server_name, listing, now, thresholds);
    unimplemented!("being written")
}
