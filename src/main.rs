//! The `pgdrill` binary: parse, run, exit with the code the result maps to.

mod cli;

use clap::Parser;

use pgdrill::error::{Error, exit};

#[tokio::main]
async fn main() {
    let cli = cli::Cli::parse();
    let code = match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgdrill: {e:#}");
            exit_code_of(&e)
        }
    };
    std::process::exit(code);
}

/// The exit code for an error that reached `main`: typed errors keep their code, anything
/// else is an infrastructure problem.
fn exit_code_of(e: &anyhow::Error) -> i32 {
    if let Some(err) = e.downcast_ref::<Error>() {
        return err.exit_code();
    }
    exit::INFRASTRUCTURE
}
