//! Which stable reason code a finished drill, random target or game day gets: its verdict,
//! what recovery observed, and the verification's loss, mapped with `reason`. Pure; never
//! reads anything, and never decides the verdict itself.

use crate::ledger::FaultRecord;
use crate::verify::Verification;

use super::events::{RecoveryObservation, ScenarioResult, Status, TargetResult};
use super::reason::{Reason, of_text, of_verification};

/// How every failure reason about `pg_amcheck`'s findings begins (`backend::amcheck::unmet`).
const AMCHECK_REASON: &str = "amcheck: ";

/// One failed verdict: what recovery observed first, then the data, then amcheck's findings,
/// then the budgets.
fn of_verdict(
    status: &Status,
    observation: &RecoveryObservation,
    verification: Option<&Verification>,
    faults: &[FaultRecord],
) -> Option<Reason> {
    let reasons = match status {
        Status::Passed => return None,
        Status::Error { message } => return Some(of_text(message, Reason::Infrastructure)),
        Status::Failed { reasons } => reasons,
    };
    let joined = reasons.join("\n");
    Some(match observation {
        RecoveryObservation::Failed { message } => of_text(message, Reason::Unknown),
        RecoveryObservation::StepFailed { message, .. } => of_text(message, Reason::BackupFailed),
        RecoveryObservation::NotAttempted => of_text(&joined, Reason::Unknown),
        RecoveryObservation::Recovered => {
            if joined.contains("expected recovery to fail") {
                Reason::UnexpectedRecovery
            } else if let Some(r) = verification.and_then(|v| of_verification(v, faults)) {
                r
            } else if reasons.iter().any(|r| r.starts_with(AMCHECK_REASON)) {
                Reason::AmcheckFindings
            } else if reasons.iter().any(|r| r.starts_with("RPO ")) {
                Reason::RpoBudgetExceeded
            } else if reasons.iter().any(|r| r.starts_with("RTO ")) {
                Reason::RtoBudgetExceeded
            } else {
                Reason::ExpectationUnmet
            }
        }
    })
}

/// The reason a scenario failed (`None` when it passed). A random-target drill takes its first
/// failed target's reason.
pub fn of_scenario(res: &ScenarioResult) -> Option<Reason> {
    if let Some(t) = res
        .targets
        .iter()
        .find(|t| !matches!(t.status, Status::Passed))
        && !matches!(res.status, Status::Error { .. })
    {
        return of_target(t, &res.archive.faults);
    }
    of_verdict(
        &res.status,
        &res.recovery.observation,
        res.outcome.verification.as_ref(),
        &res.archive.faults,
    )
}

/// The reason one random target failed (`None` when it passed).
pub fn of_target(t: &TargetResult, faults: &[FaultRecord]) -> Option<Reason> {
    of_verdict(&t.status, &t.observation, t.verification.as_ref(), faults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::reason::tests::missing;
    use crate::verify::MissingWrite;

    #[test]
    fn amcheck_findings_come_after_the_data_and_before_the_budgets() {
        let rec = RecoveryObservation::Recovered;
        let failed = |rs: &[&str]| Status::Failed {
            reasons: rs.iter().map(|r| r.to_string()).collect(),
        };
        let amcheck = "amcheck: unexpected corruption in btree index postgres.public.orders_sort_key: heap tuple (0,1) from table \"orders\" lacks matching index tuple within index \"orders_sort_key\"";
        assert_eq!(
            of_verdict(
                &failed(&["RTO 130.0s is over the budget of 120.0s", amcheck]),
                &rec,
                None,
                &[]
            ),
            Some(Reason::AmcheckFindings)
        );
        let lost = Verification {
            missing: vec![MissingWrite {
                segment_in_archive: false,
                ..missing("w2")
            }],
            ..Verification::default()
        };
        assert_eq!(
            of_verdict(
                &failed(&["2 rows missing", amcheck]),
                &rec,
                Some(&lost),
                &[]
            ),
            Some(Reason::WalUnavailable)
        );
        // A reason that merely mentions amcheck elsewhere is no amcheck finding.
        assert_eq!(
            of_verdict(&failed(&["the audit: amcheck: x"]), &rec, None, &[]),
            Some(Reason::ExpectationUnmet)
        );
    }

    #[test]
    fn verdicts_pick_observation_then_data_then_budgets() {
        let failed = |r: &str| Status::Failed {
            reasons: vec![r.to_string()],
        };
        let rec = RecoveryObservation::Recovered;
        assert_eq!(of_verdict(&Status::Passed, &rec, None, &[]), None);
        assert_eq!(
            of_verdict(
                &Status::Error {
                    message: "spawn postgres: No such file".into()
                },
                &RecoveryObservation::NotAttempted,
                None,
                &[]
            ),
            Some(Reason::Infrastructure)
        );
        assert_eq!(
            of_verdict(
                &failed("expected recovery to fail with `x`, but it succeeded"),
                &rec,
                None,
                &[]
            ),
            Some(Reason::UnexpectedRecovery)
        );
        assert_eq!(
            of_verdict(
                &failed("RTO 130.0s is over the budget of 120.0s"),
                &rec,
                None,
                &[]
            ),
            Some(Reason::RtoBudgetExceeded)
        );
        assert_eq!(
            of_verdict(
                &failed("RPO 30.0s (2 transaction(s) lost) is over"),
                &rec,
                None,
                &[]
            ),
            Some(Reason::RpoBudgetExceeded)
        );
        assert_eq!(
            of_verdict(
                &failed("recovery restored the backup of step `b1`"),
                &rec,
                None,
                &[]
            ),
            Some(Reason::ExpectationUnmet)
        );
        let v = Verification {
            missing: vec![MissingWrite {
                segment_in_archive: false,
                ..missing("w2")
            }],
            ..Verification::default()
        };
        assert_eq!(
            of_verdict(&failed("2 rows missing"), &rec, Some(&v), &[]),
            Some(Reason::WalUnavailable)
        );
        assert_eq!(
            of_verdict(
                &failed("recovery failed: boom"),
                &RecoveryObservation::Failed {
                    message: "FATAL:  database files are incompatible with server".into()
                },
                None,
                &[]
            ),
            Some(Reason::VersionMismatch)
        );
        assert_eq!(
            of_verdict(
                &failed("x"),
                &RecoveryObservation::StepFailed {
                    step: "b1".into(),
                    message: "exit status 1".into()
                },
                None,
                &[]
            ),
            Some(Reason::BackupFailed)
        );
    }
}
