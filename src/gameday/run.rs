//! Runs one game day: audit the archive (read-only), choose backup and target, restore through
//! a `ScratchRestore` backend, run the checks, measure RTO and RPO, tear down. Knows nothing
//! about processes, Kubernetes or report formats.

use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::audit::reader::ArchiveReader;
use crate::audit::{AuditReport, Thresholds, analyze};
use crate::backend::Keep;
use crate::backend::amcheck::{self, AmcheckOutcome};
use crate::backend::objstore::S3Target;
use crate::backend::objstore::parse_s3_url;
use crate::backend::{
    AmcheckRequest, BackendError, RecoveryAttempt, ScratchRequest, ScratchRestore,
};
use crate::ledger::ResolvedTarget;
use crate::runner::reason::{self, Reason};
use crate::runner::{Status, cancelled};
use crate::wal::segment_of_key;

use super::load::LoadedGameday;
use super::model::GamedayTarget;
use super::plan::{self, Rpo};
use super::record::{GamedayRecord, RestoreOutcome};

/// The name a scratch restore's one instance goes by in an `AmcheckRequest`.
const SCRATCH_INSTANCE: &str = "scratch";

/// Everything a game day needs besides the restoring backend.
#[derive(Debug, Clone)]
pub struct GamedayOptions {
    /// Endpoint, region and credentials; the bucket comes from the archive's destination.
    pub s3: S3Target,
    pub operator: String,
    pub seed: u64,
    pub thresholds: Thresholds,
    pub keep: Keep,
}

/// Run the game day; failures become the record's status, never a panic.
pub async fn run_gameday<R: ScratchRestore>(
    restorer: R,
    loaded: &LoadedGameday,
    opts: &GamedayOptions,
    cancel: watch::Receiver<bool>,
) -> GamedayRecord {
    let g = &loaded.gameday;
    let t0 = Instant::now();
    let mut rec = GamedayRecord {
        name: g.name.clone(),
        description: g.description.clone(),
        file: loaded.path.clone(),
        operator: opts.operator.clone(),
        started_at: Utc::now(),
        seconds: 0.0,
        backend: restorer.name().to_string(),
        archive: format!(
            "{}/{}",
            g.archive.destination.trim_end_matches('/'),
            g.archive.server_name
        ),
        endpoint: opts.s3.endpoint.clone(),
        postgres_major: g.postgres,
        postgres_version: None,
        seed: opts.seed,
        target: match &g.target {
            GamedayTarget::Latest => "latest".into(),
            GamedayTarget::Random => "random".into(),
            GamedayTarget::Time(t) => format!("time {}", t.to_rfc3339()),
        },
        resolved_target: None,
        random_window: None,
        backup_id: None,
        audit: None,
        restore: RestoreOutcome::NotAttempted,
        recovered_to: None,
        rto: None,
        rpo: None,
        checks: Vec::new(),
        amcheck: None,
        status: Status::Passed,
        reason: None,
        kept: Vec::new(),
    };
    let mut restorer = restorer;
    let outcome = tokio::select! {
        r = execute(&mut restorer, loaded, opts, &mut rec) => r,
        _ = cancelled(cancel) => Err(BackendError::Cancelled),
    };
    rec.kept = restorer.teardown(opts.keep).await;
    rec.status = match outcome {
        Err(e) => {
            let message = e.to_string();
            rec.reason = Some(reason::of_message(&message).unwrap_or(Reason::Infrastructure));
            Status::Error { message }
        }
        Ok(reasons) if reasons.is_empty() => Status::Passed,
        Ok(reasons) => {
            rec.reason = reasons.first().map(|(code, _)| *code);
            Status::Failed {
                reasons: reasons.into_iter().map(|(_, text)| text).collect(),
            }
        }
    };
    rec.seconds = t0.elapsed().as_secs_f64();
    rec
}

/// Newest last-modified time of an archived WAL segment: the object store's clock, not ours.
fn newest_wal_time(listing: &crate::audit::ArchiveListing) -> Option<DateTime<Utc>> {
    listing
        .objects
        .iter()
        .filter(|o| o.key.starts_with("wals/") && segment_of_key(&o.key).is_some())
        .filter_map(|o| o.last_modified)
        .max()
}

/// Returns the failure reasons, each with its code, the one that decides the record's code
/// first (empty: passed).
async fn execute<R: ScratchRestore>(
    restorer: &mut R,
    loaded: &LoadedGameday,
    opts: &GamedayOptions,
    rec: &mut GamedayRecord,
) -> Result<Vec<(Reason, String)>, BackendError> {
    let g = &loaded.gameday;
    let (bucket, prefix) = parse_s3_url(&g.archive.destination).map_err(BackendError::infra)?;
    let reader = ArchiveReader::new(&opts.s3, &bucket, &prefix, &g.archive.server_name);
    let listing = reader.read().await?;
    let audit: AuditReport = analyze(
        &g.archive.server_name,
        &listing,
        Utc::now(),
        opts.thresholds,
    );
    let newest_wal = newest_wal_time(&listing);
    rec.audit = Some(audit.clone());

    let choice = match plan::choose(&audit, &g.target, g.backup.as_deref(), opts.seed) {
        Ok(c) => c,
        Err(why) => {
            return Ok(vec![(
                Reason::NoBackup,
                format!("nothing to restore: {why}"),
            )]);
        }
    };
    rec.backup_id = Some(choice.backup_id.clone());
    rec.resolved_target = Some(choice.target.to_string());
    rec.random_window = choice.window.clone();
    let mut reasons = Vec::new();
    let chosen = audit.backups.iter().find(|b| b.id == choice.backup_id);
    if choice.target == ResolvedTarget::Latest
        && let Some(b) = chosen
        && let Some(gap) = &b.first_gap
    {
        reasons.push((Reason::WalUnavailable, format!(
            "the archive has a gap on recovery's path: segment {} is missing, so a restore of backup {} \
             to latest stops at {} and everything archived after the gap is lost",
            gap.segment,
            b.id,
            b.recoverable_until
                .as_ref()
                .map_or("its end".to_string(), |u| u.segment.clone())
        )));
    }

    let req = ScratchRequest {
        major: g.postgres,
        server_name: g.archive.server_name.clone(),
        backup_id: choice.backup_id.clone(),
        target: choice.target.clone(),
        archive: g
            .scratch
            .archive
            .as_ref()
            .map(|a| (a.destination.clone(), a.server_name.clone())),
        timeout_seconds: g.recovery_timeout_seconds,
    };
    let (server, rto) = match restorer.restore(&req).await? {
        RecoveryAttempt::Failed { message, rto } => {
            rec.rto = rto;
            let code = reason::of_message(&message).unwrap_or(Reason::Unknown);
            reasons.insert(0, (code, format!("restore failed: {message}")));
            rec.restore = RestoreOutcome::Failed { message };
            return Ok(reasons);
        }
        RecoveryAttempt::Recovered { server, rto } => (server, rto),
    };
    // What the restore replayed up to. On the kube backend the server answering is a fresh
    // start of the data CNPG's recovery Job produced, so `pg_last_xact_replay_timestamp()` is
    // NULL there (observed with CNPG 1.30.0); the Job's log says it (`last completed
    // transaction was at log time …`), which the backend put in the RTO.
    let logged_commit = rto.last_replayed_commit;
    rec.restore = RestoreOutcome::Recovered;
    rec.postgres_version = Some(server.version.clone());
    let mut rto = rto;
    rto.budget_seconds = g.rto_budget_seconds;
    if let Some(b) = g.rto_budget_seconds
        && rto.seconds > b
    {
        reasons.push((
            Reason::RtoBudgetExceeded,
            format!("RTO {:.1}s is over the budget of {b:.1}s", rto.seconds),
        ));
    }
    rec.rto = Some(rto);

    let client = &server.client;
    client
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
        .await?;
    let replayed: Option<DateTime<Utc>> = client
        .query_one("SELECT pg_last_xact_replay_timestamp()", &[])
        .await?
        .get(0);
    let recovered_to = replayed.or(logged_commit);
    rec.recovered_to = recovered_to;
    let reference = match &choice.target {
        ResolvedTarget::Time(t) => Some(*t),
        ResolvedTarget::Latest => newest_wal,
        _ => recovered_to,
    };
    for (spec, sql) in g.checks.iter().zip(&loaded.sql) {
        let result = match client.simple_query(sql).await {
            Err(e) => Err(e
                .as_db_error()
                .map_or(e.to_string(), |d| d.message().to_string())),
            Ok(msgs) => Ok(msgs
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(String::from)),
                    _ => None,
                })
                .next_back()
                .flatten()),
        };
        let query = match &spec.file {
            Some(f) => format!("file: {f}"),
            None => sql.trim().to_string(),
        };
        let r = plan::judge_check(spec, &query, result, reference);
        if !r.passed {
            reasons.push((
                Reason::CheckFailed,
                format!(
                    "check `{}` failed: {}",
                    r.name,
                    r.message.as_deref().unwrap_or("")
                ),
            ));
        }
        rec.checks.push(r);
    }
    rec.rpo = match &choice.target {
        ResolvedTarget::Time(t) => Some(Rpo::measure(
            "target time",
            *t,
            recovered_to,
            g.rpo_budget_seconds,
        )),
        ResolvedTarget::Latest => newest_wal
            .map(|w| Rpo::measure("newest archived WAL", w, recovered_to, g.rpo_budget_seconds)),
        _ => None,
    };
    if let Some(missed) = rec.rpo.as_ref().and_then(Rpo::missed) {
        reasons.push((Reason::RpoBudgetExceeded, missed));
    }
    let amcheck = if g.amcheck {
        let req = AmcheckRequest {
            instance: SCRATCH_INSTANCE.to_string(),
            major: g.postgres,
            timeout_seconds: g.recovery_timeout_seconds,
        };
        restorer.amcheck(&req).await?
    } else {
        AmcheckOutcome::NotRun {
            why: "turned off in the game-day file (`amcheck: false`)".into(),
        }
    };
    if let AmcheckOutcome::Ran(run) = &amcheck {
        reasons.extend(
            amcheck::unmet(run, &[])
                .into_iter()
                .map(|u| (Reason::AmcheckFindings, u)),
        );
    }
    rec.amcheck = Some(amcheck);
    Ok(reasons)
}
