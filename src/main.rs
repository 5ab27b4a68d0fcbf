//! The `pgdrill` binary: parse, run, exit with the code the result maps to.

mod cli;

use clap::Parser;

use cli::{
    Cli, Command, audit, clean, gameday, history, list, render, rto_model, run, schema, serve_s3,
    setup, validate,
};
use pgdrill::backend::BackendError;
use pgdrill::error::{Error, exit};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    diagnostics(cli.verbose);
    let code = match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgdrill: {}", describe(&e));
            exit_code_of(&e)
        }
    };
    std::process::exit(code);
}

/// The library's diagnostics (tracing) on stderr: warnings by default, more with -v/-vv, or
/// whatever RUST_LOG says. Only pgdrill's own: the libraries' logs (the embedded S3 server
/// logs every refused request) need RUST_LOG. Progress lines are not diagnostics: reporters
/// print them.
fn diagnostics(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("off,pgdrill={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Run the command; the exit code its result maps to.
async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(a) => run::run(a).await,
        Command::Render(a) => render::run(a),
        Command::Audit(a) => audit::run(a).await,
        Command::Gameday(a) => gameday::run(a).await,
        Command::Validate(a) => validate::run(a),
        Command::List(a) => list::run(a),
        Command::Setup(a) => setup::run(a).await,
        Command::Schema => schema::run(),
        Command::ServeS3(a) => serve_s3::run(a).await,
        Command::Clean(a) => clean::run(a).await,
        Command::RtoModel(a) => rto_model::run(a),
        Command::History(a) => history::run(a),
    }
}

/// The error and its causes on one line, as `{:#}` would print them, except that pgdrill's own
/// errors already end with what caused them: their causes are not repeated.
fn describe(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.is::<Error>() || cause.is::<BackendError>() {
            break;
        }
    }
    parts.join(": ")
}

/// The exit code for an error that reached `main`: typed errors keep their code, anything
/// else is an infrastructure problem.
fn exit_code_of(e: &anyhow::Error) -> i32 {
    if let Some(err) = e.downcast_ref::<Error>() {
        return err.exit_code();
    }
    exit::INFRASTRUCTURE
}
