//! Command line: `args.rs` (the clap types the commands share) and one file per command, each
//! parsing, calling the library and mapping the result to an exit code. The only place (with
//! main.rs) that uses anyhow; never implements drill logic itself. Declarations and dispatch.

mod args;
mod audit;
mod gameday;
mod interrupt;
mod list;
mod render;
mod run;
mod schema;
mod serve_s3;
mod setup;
mod validate;

pub use args::{Cli, Command};

/// Run the command; the exit code its result maps to.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
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
    }
}
