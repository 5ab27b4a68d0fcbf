//! Integrity beyond rows: the `stale_expression_index` fault (an index on the source made to
//! disagree with its table, WAL-logged so every recovery inherits it) and the `verify.amcheck`
//! step (`pg_amcheck` over the recovered instance through the drill, after row verification),
//! with what its findings mean for the verdict. Never runs `pg_amcheck` itself (the backend
//! does) and never decides the verdict (`execute` adds these reasons to it).

use crate::backend::amcheck::{self, AmcheckOutcome};
use crate::backend::{AmcheckRequest, BackendError, Drill};
use crate::ledger::FaultRecord;
use crate::scenario::{Expect, Scenario, StaleExpressionIndex};

use super::super::events::ScenarioResult;
use super::super::outcome::StepOutcome;
use super::super::sql;
use super::super::state::{DrillState, StepCx};

/// The drill's name for the instance a single-target recovery creates (`recover.rs`).
const RECOVERED_INSTANCE: &str = "recovered";

/// `stale_expression_index`: index the table's payload through an IMMUTABLE function, then
/// redefine the function, and record it.
pub(in crate::runner) async fn stale_expression_index(
    id: &str,
    si: &StaleExpressionIndex,
    st: &mut DrillState,
) -> Result<StepOutcome, BackendError> {
    let (index, function) = (si.index_name(), si.function_name());
    let rows = sql::make_index_stale(&st.source()?.client, &si.table, &index, &function).await?;
    st.ledger.faults.push(FaultRecord {
        step_id: id.to_string(),
        action: format!(
            "made index {index} on {} stale: redefined its IMMUTABLE function {function}() after {rows} row(s) were indexed",
            si.table
        ),
        ..Default::default()
    });
    Ok(StepOutcome::IndexMadeStale {
        table: si.table.clone(),
        index,
        function,
        rows,
    })
}

/// `verify.amcheck`: check the recovered instance. An amcheck that cannot run is an error
/// (the scenario asked for it), recorded with its reason first.
pub(in crate::runner) async fn check<D: Drill>(
    cx: &mut StepCx<'_, D>,
    major: u32,
) -> Result<StepOutcome, BackendError> {
    if cx.state.recovered.is_none() {
        return Err(BackendError::infra(
            "nothing recovered to check with pg_amcheck",
        ));
    }
    let req = AmcheckRequest {
        instance: RECOVERED_INSTANCE.to_string(),
        major,
        timeout_seconds: cx.scenario.timeouts.recovery_seconds,
    };
    let outcome = cx.drill.amcheck(&req).await?;
    cx.result.outcome.amcheck = Some(outcome.clone());
    if let AmcheckOutcome::NotRun { why } = &outcome {
        return Err(BackendError::infra(format!(
            "`verify.amcheck` asks for pg_amcheck, which could not run: {why}"
        )));
    }
    Ok(StepOutcome::Amchecked(outcome))
}

/// Why the recovered instance's amcheck findings do not match the scenario's
/// `expect.recovered.amcheck` (none expected when it is omitted); empty when they match or no
/// check ran.
pub(in crate::runner) fn unmet(s: &Scenario, res: &ScenarioResult) -> Vec<String> {
    let Some(AmcheckOutcome::Ran(run)) = &res.outcome.amcheck else {
        return Vec::new();
    };
    let expected = match &s.expect {
        Expect::Recovered(r) => r.amcheck.as_ref().map(|a| a.findings.clone()),
        Expect::Failed(_) => None,
    };
    amcheck::unmet(run, &expected.unwrap_or_default())
}
