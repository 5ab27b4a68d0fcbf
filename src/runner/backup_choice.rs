//! Which base backup recovery restores, chosen from the archive's own catalogue the way
//! CloudNativePG and barman choose (backups whose `backup.info` is there with status DONE,
//! newest ending before the target), not from pgdrill's ledger alone; and the sentence that
//! says when this fell back from a newer backup. Reads the archive through the read-only audit
//! reader; never writes to it.

use std::collections::BTreeSet;

use chrono::Utc;

use crate::audit::AuditReport;
use crate::audit::reader::ArchiveReader;
use crate::backend::BackendError;
use crate::backend::objstore::ObjectStore;
use crate::ledger::{BackupRecord, Ledger, ResolvedTarget};
use crate::scenario::Target;

use super::target;

/// The backup to restore and, when the ledger alone would have picked a newer one, why not.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Chosen {
    pub backup: BackupRecord,
    pub fallback: Option<String>,
}

/// List and analyse `server_name`'s archive (listing, backup.info and history files only).
pub(super) async fn read(
    store: &ObjectStore,
    server_name: &str,
) -> Result<(String, AuditReport), BackendError> {
    let reader = ArchiveReader::for_store(store, server_name);
    let listing = reader.read().await?;
    let report = crate::audit::analyze(
        server_name,
        &listing,
        Utc::now(),
        crate::audit::Thresholds::default(),
    );
    Ok((reader.url(), report))
}

/// The ids barman lists as restorable: a `backup.info` with status DONE (its data files may
/// still be missing: barman does not look).
pub(super) fn catalogue(report: &AuditReport) -> BTreeSet<String> {
    report
        .backups
        .iter()
        .filter(|b| b.status == "DONE")
        .map(|b| b.id.clone())
        .collect()
}

fn why_not_listed(report: &AuditReport, b: &BackupRecord) -> String {
    match report.backups.iter().find(|a| a.id == b.backup_id) {
        None => "it is not in the archive at all".to_string(),
        Some(a) if a.status == "UNKNOWN" => "its backup.info is missing from the archive".into(),
        Some(a) => format!("its backup.info says status {}", a.status),
    }
}

/// Choose as CloudNativePG would from what `report` found; an error is the sentence a failed
/// recovery reports.
pub(super) fn choose(
    ledger: &Ledger,
    target: &ResolvedTarget,
    named: Option<&str>,
    report: &AuditReport,
) -> Result<Chosen, String> {
    let c = ledger
        .choose_backup_from(target, named, &catalogue(report))
        .map_err(|e| e.to_string())?;
    let fallback = c.passed_over.first().map(|newer| {
        let reasons: Vec<String> = c
            .passed_over
            .iter()
            .map(|b| {
                format!(
                    "{} (step `{}`): {}",
                    b.backup_id,
                    b.step_id,
                    why_not_listed(report, b)
                )
            })
            .collect();
        format!(
            "fell back from backup {} (step `{}`) to the older {} (step `{}`), the newest the archive's catalogue lists; not listed: {}",
            newer.backup_id,
            newer.step_id,
            c.backup.backup_id,
            c.backup.step_id,
            reasons.join("; ")
        )
    });
    Ok(Chosen {
        backup: c.backup.clone(),
        fallback,
    })
}

/// What the archive says about recovering `server_name` to a scenario's target: the resolved
/// target, the archive's URL and audit, and the backup CloudNativePG would restore (or the
/// sentence saying why none).
pub(super) struct ForTarget {
    pub resolved: ResolvedTarget,
    pub url: String,
    pub report: AuditReport,
    pub chosen: Result<Chosen, String>,
}

/// Resolve `target` from the ledger, read `server_name`'s archive, and choose its backup.
pub(super) async fn for_target(
    store: &ObjectStore,
    ledger: &Ledger,
    target: &Target,
    named: Option<&str>,
    server_name: &str,
) -> Result<ForTarget, BackendError> {
    let resolved = target::resolve(target, ledger)
        .map_err(|e| BackendError::ledger("cannot resolve the recovery target", e))?;
    let (url, report) = read(store, server_name).await?;
    let chosen = choose(ledger, &resolved, named, &report);
    Ok(ForTarget {
        resolved,
        url,
        report,
        chosen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ArchiveListing, Thresholds, analyze};
    use crate::wal::Lsn;

    fn record(step: &str, id: &str, end: u64) -> BackupRecord {
        BackupRecord {
            step_id: step.into(),
            backup_id: id.into(),
            begin_lsn: Lsn(end - 0x100),
            end_lsn: Lsn(end),
            begin_wal: String::new(),
            end_wal: String::new(),
            end_time: Utc::now(),
            timeline: 1,
        }
    }

    fn info(status: &str, wal: &str) -> String {
        format!(
            "backup_label=None\nbegin_wal={wal}\nend_wal={wal}\nbegin_xlog=0/2000028\nend_xlog=0/2000100\nstatus={status}\ntimeline=1\n"
        )
    }

    #[test]
    fn a_backup_without_its_info_is_passed_over_and_named() {
        let ledger = Ledger {
            backups: vec![
                record("base1", "20261122T100000", 0x0200_0100),
                record("base2", "20261122T100100", 0x0500_0100),
                record("base3", "20261122T100200", 0x0700_0100),
            ],
            ..Default::default()
        };
        let mut listing = ArchiveListing::default();
        for (id, st) in [("20261122T100000", "DONE"), ("20261122T100200", "FAILED")] {
            listing
                .backup_infos
                .insert(id.into(), info(st, "000000010000000000000002"));
        }
        // base2 left only its data behind.
        for id in ["20261122T100000", "20261122T100100", "20261122T100200"] {
            listing.objects.push(crate::audit::ArchiveObject {
                key: format!("base/{id}/data.tar.gz"),
                size: 10,
                last_modified: None,
            });
        }
        let report = analyze("pg", &listing, Utc::now(), Thresholds::default());
        assert_eq!(
            catalogue(&report),
            BTreeSet::from(["20261122T100000".to_string()])
        );
        let c = choose(&ledger, &ResolvedTarget::Latest, None, &report).unwrap();
        assert_eq!(c.backup.step_id, "base1");
        let f = c.fallback.unwrap();
        assert!(
            f.starts_with(
                "fell back from backup 20261122T100200 (step `base3`) to the older 20261122T100000 (step `base1`)"
            ),
            "{f}"
        );
        assert!(
            f.contains("20261122T100200 (step `base3`): its backup.info says status FAILED"),
            "{f}"
        );
        assert!(
            f.contains(
                "20261122T100100 (step `base2`): its backup.info is missing from the archive"
            ),
            "{f}"
        );
        let none = analyze(
            "pg",
            &ArchiveListing::default(),
            Utc::now(),
            Thresholds::default(),
        );
        let e = choose(&ledger, &ResolvedTarget::Latest, None, &none).unwrap_err();
        assert!(e.starts_with("no usable base backup"), "{e}");
    }
}
