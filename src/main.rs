//! The `pgdrill` binary: parse, run, exit with the code the result maps to.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = cli::Cli::parse();
    let code = match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgdrill: {e:#}");
            cli::exit_code_of(&e)
        }
    };
    std::process::exit(code);
}
