//! Builds a `Plan` from a validated `Scenario`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::scenario::{
    Compression, CrashMode, DumpCompression, DumpFormat, Fault, RecoveryErrorWindow, ReplayRestart,
    Scenario, Step, Target,
};

/// One thing the runner does, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum PlanStep {
    /// initdb, configure archiving to `server_name`, start.
    StartSource {
        major: u32,
        server_name: String,
        compression: Compression,
        #[serde(skip_serializing_if = "Option::is_none")]
        archive_timeout_seconds: Option<u64>,
        /// Parallel upload jobs of each base backup; `None`: barman-cloud's default.
        #[serde(skip_serializing_if = "Option::is_none")]
        backup_jobs: Option<u32>,
    },
    /// Create the generated tables (id, step, payload).
    CreateTables {
        tables: Vec<String>,
    },
    /// Run an SQL file from `fixtures/` and snapshot the tables it creates.
    LoadFixture {
        path: String,
    },
    /// Insert `rows` generated rows with ids from `first_id` in one transaction (ledger step `seed`).
    Seed {
        table: String,
        first_id: u64,
        rows: u64,
        /// A bulk table's payload bytes per row: the server generates the rows.
        #[serde(skip_serializing_if = "Option::is_none")]
        row_bytes: Option<u32>,
    },
    BaseBackup {
        id: String,
    },
    /// A base backup with the source crashed in the middle of it, then restarted from its own
    /// disk (`base_backup: { crash_source }`).
    InterruptedBackup {
        id: String,
        crash: CrashMode,
    },
    /// Arm the faults of the recovery that follows: an error window over its reads (opened
    /// when the restore starts), a kill of the recovering server mid-replay.
    ArmRecoveryFaults {
        #[serde(skip_serializing_if = "Option::is_none")]
        object_store_errors: Option<RecoveryErrorWindow>,
        #[serde(skip_serializing_if = "Option::is_none")]
        restart: Option<ReplayRestart>,
    },
    Write {
        id: String,
        table: String,
        first_id: u64,
        rows: u64,
        /// A bulk table's payload bytes per row: the server generates the rows.
        #[serde(skip_serializing_if = "Option::is_none")]
        row_bytes: Option<u32>,
        own_segment: bool,
    },
    RestorePoint {
        id: String,
        name: String,
    },
    Checkpoint {
        id: String,
    },
    SwitchWal {
        id: String,
    },
    /// Poll until the segment holding `write`'s commit is archived, without switching.
    WaitArchived {
        id: String,
        write: String,
    },
    /// Poll until `pg_stat_archiver` counts a failure since the last error window opened.
    WaitArchiveFailure {
        id: String,
    },
    Fault {
        id: String,
        fault: Fault,
    },
    /// Switch and archive, fast stop, archive recovery from the source's own archive,
    /// promotion onto the next timeline (a failover).
    Failover {
        id: String,
    },
    /// A closing marker commit, then switch and wait until every segment is archived, as a
    /// live primary would keep committing and archiving.
    FlushArchive,
    /// Fast shutdown of the source.
    StopSource,
    /// Audit the source's archive (read-only) and predict what recovery will lose.
    AuditArchive {
        server_name: String,
    },
    /// Bootstrap a new server from the archive.
    Recover {
        target: Target,
        exclusive: bool,
        major: u32,
        source_server_name: String,
        server_name: String,
        backup: Option<String>,
        compression: Compression,
        /// WAL segments fetched in parallel during recovery; `None`: one at a time.
        #[serde(skip_serializing_if = "Option::is_none")]
        wal_max_parallel: Option<u32>,
    },
    /// Read the recovered tables and compare with the ledger.
    Verify,
    /// `verify.amcheck`: `pg_amcheck` of PostgreSQL `major` over the recovered instance.
    Amcheck {
        major: u32,
    },
    /// `target: random`: pick `count` targets from the ledger's recoverable range with `seed`.
    PickTargets {
        count: u32,
        seed: u64,
        source_server_name: String,
        backup: Option<String>,
    },
    /// Recover random target `index` of `count` into its own instance and serverName.
    RecoverTarget {
        index: u32,
        count: u32,
        exclusive: bool,
        major: u32,
        source_server_name: String,
        server_name: String,
        backup: Option<String>,
        compression: Compression,
        /// WAL segments fetched in parallel during recovery; `None`: one at a time.
        #[serde(skip_serializing_if = "Option::is_none")]
        wal_max_parallel: Option<u32>,
    },
    /// Recover every random target at once (`parallel: true`), each into its own instance and
    /// serverName `<server_name_prefix>-<index>`.
    RecoverTargets {
        count: u32,
        exclusive: bool,
        major: u32,
        source_server_name: String,
        server_name_prefix: String,
        backup: Option<String>,
        compression: Compression,
        /// WAL segments fetched in parallel during recovery; `None`: one at a time.
        #[serde(skip_serializing_if = "Option::is_none")]
        wal_max_parallel: Option<u32>,
    },
    /// Verify random target `index` against the ledger, then release its instance.
    VerifyTarget {
        index: u32,
        count: u32,
    },
    /// `pg_dump` of `database` at a snapshot held open while it runs, uploaded as
    /// `<prefix>/logical/<file>`; `in_flight` is begun before the snapshot and committed after
    /// it, before the dump starts.
    LogicalBackup {
        id: String,
        format: DumpFormat,
        compression: DumpCompression,
        /// `None`: the drill's own database.
        #[serde(skip_serializing_if = "Option::is_none")]
        database: Option<String>,
        file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        in_flight: Option<PlannedWrite>,
    },
    /// A fresh instance of `major` with a logical backup restored into it: by pgdrill, or by
    /// the scenario's own restore script (`command`).
    RecoverLogical {
        /// The `logical_backup` step; `None`: the newest.
        #[serde(skip_serializing_if = "Option::is_none")]
        backup: Option<String>,
        major: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<RestoreCommand>,
    },
}

/// A write whose ids are allocated by the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWrite {
    pub id: String,
    pub table: String,
    pub first_id: u64,
    pub rows: u64,
}

/// `recovery.command`: the script (as the scenario file names it, relative to it), its extra
/// environment and its deadline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreCommand {
    pub path: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    pub timeout_seconds: u64,
}

impl PlanStep {
    /// The step id for events: the scenario's id, or a fixed name for implicit steps.
    pub fn id(&self) -> String {
        match self {
            PlanStep::StartSource { .. } => "start-source".into(),
            PlanStep::CreateTables { .. } => "create-tables".into(),
            PlanStep::LoadFixture { .. } => "load-fixture".into(),
            PlanStep::Seed { table, .. } => format!("seed-{table}"),
            PlanStep::BaseBackup { id }
            | PlanStep::InterruptedBackup { id, .. }
            | PlanStep::Write { id, .. }
            | PlanStep::RestorePoint { id, .. }
            | PlanStep::Checkpoint { id }
            | PlanStep::SwitchWal { id }
            | PlanStep::WaitArchived { id, .. }
            | PlanStep::WaitArchiveFailure { id }
            | PlanStep::Fault { id, .. }
            | PlanStep::Failover { id }
            | PlanStep::LogicalBackup { id, .. } => id.clone(),
            PlanStep::FlushArchive => "flush-archive".into(),
            PlanStep::StopSource => "stop-source".into(),
            PlanStep::AuditArchive { .. } => "audit-archive".into(),
            PlanStep::ArmRecoveryFaults { .. } => "arm-recovery-faults".into(),
            PlanStep::Recover { .. } => "recover".into(),
            PlanStep::Verify => "verify".into(),
            PlanStep::Amcheck { .. } => "amcheck".into(),
            PlanStep::PickTargets { .. } => "pick-targets".into(),
            PlanStep::RecoverTarget { index, .. } => format!("recover-{index}"),
            PlanStep::RecoverTargets { .. } => "recover-targets".into(),
            PlanStep::VerifyTarget { index, .. } => format!("verify-{index}"),
            PlanStep::RecoverLogical { .. } => "recover".into(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PlanStep::StartSource { .. } => "start_source",
            PlanStep::CreateTables { .. } => "create_tables",
            PlanStep::LoadFixture { .. } => "load_fixture",
            PlanStep::Seed { .. } => "seed",
            PlanStep::BaseBackup { .. } => "base_backup",
            PlanStep::InterruptedBackup { .. } => "interrupted_backup",
            PlanStep::ArmRecoveryFaults { .. } => "arm_recovery_faults",
            PlanStep::Write { .. } => "write",
            PlanStep::RestorePoint { .. } => "restore_point",
            PlanStep::Checkpoint { .. } => "checkpoint",
            PlanStep::SwitchWal { .. } => "switch_wal",
            PlanStep::WaitArchived { .. } => "wait_archived",
            PlanStep::WaitArchiveFailure { .. } => "wait_archive_failure",
            PlanStep::Fault { .. } => "fault",
            PlanStep::Failover { .. } => "failover",
            PlanStep::FlushArchive => "flush_archive",
            PlanStep::StopSource => "stop_source",
            PlanStep::AuditArchive { .. } => "audit_archive",
            PlanStep::Recover { .. } => "recover",
            PlanStep::Verify => "verify",
            PlanStep::Amcheck { .. } => "amcheck",
            PlanStep::PickTargets { .. } => "pick_targets",
            PlanStep::RecoverTarget { .. } => "recover_target",
            PlanStep::RecoverTargets { .. } => "recover_targets",
            PlanStep::VerifyTarget { .. } => "verify_target",
            PlanStep::LogicalBackup { .. } => "logical_backup",
            PlanStep::RecoverLogical { .. } => "recover_logical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub scenario: String,
    pub steps: Vec<PlanStep>,
}

/// The serverName a recovered cluster archives to when the scenario names none.
pub fn default_recovery_server_name(source: &str) -> String {
    format!("{source}-restored")
}

/// Build the plan. The scenario must have passed validation.
pub fn build(s: &Scenario) -> Plan {
    let mut steps = vec![PlanStep::StartSource {
        major: s.postgres,
        server_name: s.backup.server_name.clone(),
        compression: s.backup.compression,
        archive_timeout_seconds: s.backup.archive_timeout_seconds,
        backup_jobs: s.backup.jobs,
    }];
    // Always: it also creates pgdrill's marker table, which `FlushArchive` writes to.
    let tables: Vec<String> = s.seed_data.tables.iter().map(|t| t.name.clone()).collect();
    steps.push(PlanStep::CreateTables { tables });
    if let Some(sql) = &s.seed_data.sql {
        steps.push(PlanStep::LoadFixture { path: sql.clone() });
    }
    let mut next_id: BTreeMap<String, u64> = BTreeMap::new();
    let mut alloc = |table: &str, rows: u64| -> u64 {
        let n = next_id.entry(table.to_string()).or_insert(1);
        let first = *n;
        *n += rows;
        first
    };
    let bulk: BTreeMap<&str, u32> = s
        .seed_data
        .tables
        .iter()
        .filter_map(|t| Some((t.name.as_str(), t.bulk_row_bytes()?)))
        .collect();
    for t in &s.seed_data.tables {
        let rows = t.seed_rows();
        if rows > 0 {
            let first_id = alloc(t.name.as_str(), rows);
            steps.push(PlanStep::Seed {
                table: t.name.clone(),
                first_id,
                rows,
                row_bytes: t.bulk_row_bytes(),
            });
        }
    }
    let mut crashed = false;
    for step in &s.steps {
        if let Step::Fault(f) = step {
            crashed |= f.fault().is_some_and(|f| f.stops_source());
        }
        steps.push(match step {
            Step::BaseBackup(b) => match b.crash_source {
                Some(crash) => PlanStep::InterruptedBackup {
                    id: b.id.clone(),
                    crash,
                },
                None => PlanStep::BaseBackup { id: b.id.clone() },
            },
            Step::Write(w) => {
                let row_bytes = bulk.get(w.table.as_str()).copied();
                let rows = w.planned_rows(row_bytes);
                PlanStep::Write {
                    id: w.id.clone(),
                    table: w.table.clone(),
                    first_id: alloc(w.table.as_str(), rows),
                    rows,
                    row_bytes,
                    own_segment: w.own_segment,
                }
            }
            Step::RestorePoint(r) => PlanStep::RestorePoint {
                id: r.id.clone(),
                name: r.name.clone(),
            },
            Step::Checkpoint(c) => PlanStep::Checkpoint { id: c.id.clone() },
            Step::SwitchWal(c) => PlanStep::SwitchWal { id: c.id.clone() },
            Step::WaitArchived(w) => PlanStep::WaitArchived {
                id: w.id.clone(),
                write: w.write.clone(),
            },
            Step::WaitArchiveFailure(w) => PlanStep::WaitArchiveFailure { id: w.id.clone() },
            Step::Fault(f) => PlanStep::Fault {
                id: f.id.clone(),
                fault: f.fault().expect("validated: exactly one fault"),
            },
            Step::Failover(f) => PlanStep::Failover { id: f.id.clone() },
            Step::LogicalBackup(l) => PlanStep::LogicalBackup {
                id: l.id.clone(),
                format: l.format,
                compression: l.compression,
                database: l.database.clone(),
                file: l.file_name(),
                in_flight: l.in_flight.as_ref().map(|w| {
                    let rows = w.rows.unwrap_or(1);
                    PlannedWrite {
                        id: w.id.clone(),
                        table: w.table.clone(),
                        first_id: alloc(w.table.as_str(), rows),
                        rows,
                    }
                }),
            },
        });
    }
    // A crashed source has nothing left to flush or stop: recovery gets what was archived.
    if !crashed {
        steps.push(PlanStep::FlushArchive);
        steps.push(PlanStep::StopSource);
    }
    // The audit judges the physical archive recovery would read; a logical restore reads none.
    if !s.recovery.is_logical() {
        steps.push(PlanStep::AuditArchive {
            server_name: s.backup.server_name.clone(),
        });
    }
    let server_name = s
        .recovery
        .server_name
        .clone()
        .unwrap_or_else(|| default_recovery_server_name(&s.backup.server_name));
    if s.recovery.object_store_errors.is_some() || s.recovery.restart.is_some() {
        steps.push(PlanStep::ArmRecoveryFaults {
            object_store_errors: s.recovery.object_store_errors.clone(),
            restart: s.recovery.restart.clone(),
        });
    }
    if s.recovery.is_logical() {
        steps.push(PlanStep::RecoverLogical {
            backup: s.recovery.backup.clone(),
            major: s.recovery.postgres.unwrap_or(s.postgres),
            command: s.recovery.command.as_ref().map(|path| RestoreCommand {
                path: path.clone(),
                env: s.recovery.env.clone(),
                timeout_seconds: s
                    .recovery
                    .timeout_seconds
                    .unwrap_or(s.timeouts.recovery_seconds),
            }),
        });
        steps.push(PlanStep::Verify);
    } else if s.recovery.target == Target::Random {
        random_steps(s, server_name, &mut steps);
    } else {
        steps.push(PlanStep::Recover {
            target: s.recovery.target.clone(),
            exclusive: s.recovery.exclusive,
            major: s.recovery.postgres.unwrap_or(s.postgres),
            source_server_name: s.backup.server_name.clone(),
            server_name,
            backup: s.recovery.backup.clone(),
            compression: s.backup.compression,
            wal_max_parallel: s.recovery.wal_max_parallel,
        });
        steps.push(PlanStep::Verify);
        if s.verify.amcheck {
            steps.push(PlanStep::Amcheck {
                major: s.recovery.postgres.unwrap_or(s.postgres),
            });
        }
    }
    Plan {
        scenario: s.name.clone(),
        steps,
    }
}

/// The serverName random target `index` archives to: its own, so recoveries never collide.
pub fn random_target_server_name(prefix: &str, index: u32) -> String {
    format!("{prefix}-{index}")
}

/// `target: random`: pick, then recover and verify each target, one after the other (each
/// released once verified) or all recoveries at once followed by the verifications.
fn random_steps(s: &Scenario, server_name: String, steps: &mut Vec<PlanStep>) {
    let count = s.recovery.count.unwrap_or(1);
    let (major, source) = (
        s.recovery.postgres.unwrap_or(s.postgres),
        s.backup.server_name.clone(),
    );
    steps.push(PlanStep::PickTargets {
        count,
        seed: s.seed,
        source_server_name: source.clone(),
        backup: s.recovery.backup.clone(),
    });
    if s.recovery.parallel {
        steps.push(PlanStep::RecoverTargets {
            count,
            exclusive: s.recovery.exclusive,
            major,
            source_server_name: source,
            server_name_prefix: server_name,
            backup: s.recovery.backup.clone(),
            compression: s.backup.compression,
            wal_max_parallel: s.recovery.wal_max_parallel,
        });
        steps.extend((1..=count).map(|index| PlanStep::VerifyTarget { index, count }));
        return;
    }
    for index in 1..=count {
        steps.push(PlanStep::RecoverTarget {
            index,
            count,
            exclusive: s.recovery.exclusive,
            major,
            source_server_name: source.clone(),
            server_name: random_target_server_name(&server_name, index),
            backup: s.recovery.backup.clone(),
            compression: s.backup.compression,
            wal_max_parallel: s.recovery.wal_max_parallel,
        });
        steps.push(PlanStep::VerifyTarget { index, count });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADR007: &str = r#"
name: adr-007
postgres: 15
seed_data:
  tables: [{ name: events, rows: 24 }]
steps:
  - base_backup: { id: base }
  - write: { id: w1, table: events, own_segment: true }
  - write: { id: w2, table: events, own_segment: true }
  - write: { id: w3, table: events, rows: 2, own_segment: true }
  - fault: { id: drop-w2, delete_wal: { holding_step: w2 } }
recovery:
  target: { time: { between: [w1, w2] } }
expect:
  recovered: { data_loss: none }
"#;

    #[test]
    fn the_marker_table_is_created_even_without_generated_tables() {
        let text = ADR007
            .replace("seed_data:\n  tables: [{ name: events, rows: 24 }]\n", "")
            .replace(
                "  - write: { id: w1, table: events, own_segment: true }\n",
                "",
            )
            .replace(
                "  - write: { id: w2, table: events, own_segment: true }\n",
                "",
            )
            .replace(
                "  - write: { id: w3, table: events, rows: 2, own_segment: true }\n",
                "",
            )
            .replace(
                "  - fault: { id: drop-w2, delete_wal: { holding_step: w2 } }\n",
                "",
            )
            .replace("target: { time: { between: [w1, w2] } }", "target: latest");
        let s = crate::scenario::load_str(std::path::Path::new("x.yaml"), &text)
            .unwrap()
            .scenario;
        let p = build(&s);
        assert_eq!(p.steps[1], PlanStep::CreateTables { tables: vec![] });
        let flush = p.steps.iter().position(|s| *s == PlanStep::FlushArchive);
        assert!(flush.is_some_and(|f| f > 1), "{:?}", p.steps);
    }

    #[test]
    fn a_crashed_source_is_neither_flushed_nor_stopped() {
        let text = ADR007.replace(
            "  - fault: { id: drop-w2, delete_wal: { holding_step: w2 } }\n",
            "  - write: { id: w4, table: events }\n  - fault: { id: boom, crash: sigkill }\n  - fault: { id: tail, delete_wal: { last: 1 } }\n",
        )
        .replace("target: { time: { between: [w1, w2] } }", "target: latest")
;
        let text = text.replace(
            "postgres: 15\n",
            "postgres: 15\nbackup: { archive_timeout_seconds: 2 }\n",
        );
        let s = crate::scenario::load_str(std::path::Path::new("crash.yaml"), &text)
            .unwrap()
            .scenario;
        let p = build(&s);
        assert!(!p.steps.contains(&PlanStep::FlushArchive), "{:?}", p.steps);
        assert!(!p.steps.contains(&PlanStep::StopSource), "{:?}", p.steps);
        insta::assert_yaml_snapshot!(p);
    }

    #[test]
    fn random_targets_plan_one_recovery_and_verification_each() {
        let text = ADR007
            .replace(
                "  - fault: { id: drop-w2, delete_wal: { holding_step: w2 } }\n",
                "",
            )
            .replace(
                "target: { time: { between: [w1, w2] } }",
                "target: random\n  count: 2",
            )
            .replace("data_loss: none", "rto_budget_seconds: 60");
        let s = crate::scenario::load_str(std::path::Path::new("random.yaml"), &text)
            .unwrap()
            .scenario;
        let p = build(&s);
        let tail: Vec<&PlanStep> = p
            .steps
            .iter()
            .skip_while(|s| s.kind() != "audit_archive")
            .collect();
        insta::assert_yaml_snapshot!("random_sequential", tail);
        let parallel = build(
            &crate::scenario::load_str(
                std::path::Path::new("random.yaml"),
                &text.replace("count: 2", "count: 2\n  parallel: true"),
            )
            .unwrap()
            .scenario,
        );
        let ids: Vec<String> = parallel.steps.iter().map(PlanStep::id).collect();
        assert_eq!(
            ids[ids.len() - 4..],
            ["pick-targets", "recover-targets", "verify-1", "verify-2"]
        );
    }

    #[test]
    fn amcheck_follows_verification_with_the_recovered_major() {
        let plain = crate::scenario::load_str(std::path::Path::new("x.yaml"), ADR007)
            .unwrap()
            .scenario;
        assert!(!build(&plain).steps.iter().any(|s| s.kind() == "amcheck"));
        let text = ADR007
            .replace(
                "  - fault: { id: drop-w2, delete_wal: { holding_step: w2 } }\n",
                "  - fault: { id: stale, stale_expression_index: { table: events } }\n",
            )
            .replace(
                "target: { time: { between: [w1, w2] } }",
                "target: latest\n  postgres: 16\nverify: { amcheck: true }",
            );
        let s = crate::scenario::load_str(std::path::Path::new("x.yaml"), &text)
            .unwrap()
            .scenario;
        let p = build(&s);
        let n = p.steps.len();
        assert_eq!(p.steps[n - 2], PlanStep::Verify);
        assert_eq!(p.steps[n - 1], PlanStep::Amcheck { major: 16 });
        assert_eq!(p.steps[n - 1].id(), "amcheck");
        assert!(p.steps.iter().any(|st| matches!(
            st,
            PlanStep::Fault { fault: Fault::StaleExpressionIndex(si), .. } if si.table == "events"
        )));
    }

    #[test]
    fn a_failover_is_a_step_of_its_own_where_the_scenario_puts_it() {
        let text = ADR007.replace(
            "  - fault: { id: drop-w2, delete_wal: { holding_step: w2 } }\n",
            "  - failover: { id: f1 }\n  - fault: { id: h, delete_history: { timeline: 2 } }\n",
        );
        let s = crate::scenario::load_str(std::path::Path::new("x.yaml"), &text)
            .unwrap()
            .scenario;
        let p = build(&s);
        let at = p
            .steps
            .iter()
            .position(|s| *s == PlanStep::Failover { id: "f1".into() })
            .expect("a failover step");
        assert_eq!(p.steps[at - 1].id(), "w3");
        assert_eq!(p.steps[at].kind(), "failover");
        assert!(matches!(
            &p.steps[at + 1],
            PlanStep::Fault { fault: Fault::DeleteHistory(h), .. } if h.timeline == 2
        ));
    }

    #[test]
    fn faults_during_backup_and_recovery_are_steps_of_their_own() {
        let text = ADR007
            .replace(
                "  - fault: { id: drop-w2, delete_wal: { holding_step: w2 } }\n",
                "  - base_backup: { id: base2, crash_source: sigkill }\n",
            )
            .replace(
                "target: { time: { between: [w1, w2] } }",
                "target: latest\n  object_store_errors: { error: slow_down, seconds: 30, from: { holding_step: w2 } }",
            );
        let s = crate::scenario::load_str(std::path::Path::new("x.yaml"), &text)
            .unwrap()
            .scenario;
        let p = build(&s);
        let kinds: Vec<&str> = p.steps.iter().map(PlanStep::kind).collect();
        let at = kinds
            .iter()
            .position(|k| *k == "arm_recovery_faults")
            .unwrap();
        assert_eq!(
            kinds[at - 1..=at + 1],
            ["audit_archive", "arm_recovery_faults", "recover"]
        );
        let tail: Vec<&PlanStep> = p
            .steps
            .iter()
            .filter(|s| matches!(s.kind(), "interrupted_backup" | "arm_recovery_faults"))
            .collect();
        insta::assert_yaml_snapshot!("faults_during_backup_and_recovery", tail);
        let restart = build(
            &crate::scenario::load_str(
                std::path::Path::new("x.yaml"),
                &ADR007.replace(
                    "target: { time: { between: [w1, w2] } }",
                    "target: latest\n  restart: { after_step: w2 }",
                ),
            )
            .unwrap()
            .scenario,
        );
        assert!(restart.steps.iter().any(|s| matches!(
            s,
            PlanStep::ArmRecoveryFaults { restart: Some(r), object_store_errors: None }
                if r.after_step == "w2" && r.mode == CrashMode::Sigkill
        )));
    }

    #[test]
    fn plan_is_deterministic_and_allocates_ids() {
        let s = crate::scenario::load_str(std::path::Path::new("adr007.yaml"), ADR007)
            .unwrap()
            .scenario;
        let p = build(&s);
        assert_eq!(p, build(&s));
        insta::assert_yaml_snapshot!(p);
    }

    #[test]
    fn a_logical_backup_allocates_its_in_flight_write_and_recovery_restores_it() {
        let text = r#"
name: logical
postgres: 15
seed_data:
  tables: [{ name: events, rows: 4 }]
steps:
  - write: { id: w1, table: events, rows: 2 }
  - logical_backup: { id: d1, format: custom, in_flight: { id: wf, table: events, rows: 3 } }
  - write: { id: w2, table: events }
  - fault: { id: cut, truncate_dump: { step: d1, bytes: 100 } }
recovery:
  command: ../fixtures/restore.sh
  postgres: 16
  env: { PGCONNECT_TIMEOUT: "5" }
expect:
  recovered: {}
"#;
        let s = crate::scenario::load_str(std::path::Path::new("x.yaml"), text)
            .unwrap()
            .scenario;
        let p = build(&s);
        let kinds: Vec<&str> = p.steps.iter().map(PlanStep::kind).collect();
        // No audit of a physical archive a logical restore never reads.
        assert!(!kinds.contains(&"audit_archive"), "{kinds:?}");
        assert_eq!(kinds[kinds.len() - 2..], ["recover_logical", "verify"]);
        let tail: Vec<&PlanStep> = p
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s.kind(),
                    "logical_backup" | "recover_logical" | "write" | "fault"
                )
            })
            .collect();
        insta::assert_yaml_snapshot!("logical_backup_and_runbook", tail);
    }
}
