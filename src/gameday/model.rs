//! The game-day file: which real archive to restore, to what target, and which checks the
//! restored database must pass. Plain serde data (`deny_unknown_fields`); no I/O.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// A game day: one restore test of a real barman-cloud archive.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gameday {
    /// Short name, used in report names (letters, digits, `-`).
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub archive: ArchiveSource,
    /// PostgreSQL major version of the archived cluster (the restore uses the same).
    pub postgres: u32,
    /// `latest` (default), `random` (a random LSN in the recoverable window, seeded) or
    /// `{ time: RFC 3339 }`.
    #[serde(default)]
    pub target: GamedayTarget,
    /// Restore this backup id instead of letting pgdrill choose the newest that fits.
    #[serde(default)]
    pub backup: Option<String>,
    /// Seed for `target: random` (default: drawn at run time and recorded).
    #[serde(default)]
    pub seed: Option<u64>,
    /// The restore misses its RPO when the recovered data is older than the reference point
    /// (target time, or the newest archived WAL for `latest`) by more than this.
    #[serde(default)]
    pub rpo_budget_seconds: Option<f64>,
    /// From the start of the restore to the first answered query.
    #[serde(default)]
    pub rto_budget_seconds: Option<f64>,
    /// Deadline for restore and replay.
    #[serde(default = "default_recovery_timeout")]
    pub recovery_timeout_seconds: u64,
    #[serde(default)]
    pub scratch: Scratch,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Check the restored instance with `pg_amcheck` (heap pages, B-tree indexes against their
    /// tables) after the checks. On by default; where the backend has no `pg_amcheck` for
    /// this major, the record says it did not run and why. `false` turns it off.
    #[serde(default = "default_amcheck")]
    pub amcheck: bool,
}

fn default_amcheck() -> bool {
    true
}

fn default_recovery_timeout() -> u64 {
    3600
}

/// The archive as a CNPG `barmanObjectStore` (or plugin `ObjectStore`) names it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSource {
    /// `destinationPath`, e.g. `s3://backups/prod`.
    pub destination: String,
    /// `serverName` (the folder under `destination`).
    pub server_name: String,
    /// S3 endpoint URL; default `https://s3.<region>.amazonaws.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// A profile in the AWS shared credentials file, instead of `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GamedayTarget {
    #[default]
    Latest,
    Random,
    Time(DateTime<FixedOffset>),
}

/// Where the scratch instance archives. Default: nowhere (`archive_mode = off`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scratch {
    #[serde(default)]
    pub archive: Option<ScratchArchive>,
}

/// A separate archive for the scratch instance; pgdrill refuses one that overlaps the source.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchArchive {
    pub destination: String,
    pub server_name: String,
}

/// One check on the restored database: a query and what its result must be.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub name: String,
    /// Inline SQL; the first column of the last row returned is the result.
    #[serde(default)]
    pub sql: Option<String>,
    /// An SQL file, relative to the game-day file.
    #[serde(default)]
    pub file: Option<String>,
    /// The result, as text, must equal this.
    #[serde(default)]
    pub equals: Option<String>,
    /// The result, as a number, must be at least this.
    #[serde(default)]
    pub at_least: Option<f64>,
    /// The result, as a number, must be at most this.
    #[serde(default)]
    pub at_most: Option<f64>,
    /// The result is a timestamp no older than the reference point minus this many seconds
    /// (reference: the target time; for `latest` the newest archived WAL; for `random` the
    /// last transaction replayed).
    #[serde(default)]
    pub max_age_seconds: Option<f64>,
}
