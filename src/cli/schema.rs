//! `pgdrill schema`: prints the JSON Schema of scenario files (the library derives it). Never
//! reads a scenario.

use pgdrill::error::exit;
use pgdrill::scenario;

pub fn run() -> anyhow::Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&scenario::json_schema())?
    );
    Ok(exit::PASSED)
}
