//! `pgdrill validate`: loads and checks scenario files, prints one line per valid file. Never
//! runs anything; every problem of every file comes back as one error (exit 2).

use std::path::PathBuf;

use pgdrill::error::{Error, exit};
use pgdrill::scenario::load_all;

/// Arguments of `pgdrill validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<i32> {
    let loaded = load_all(&args.paths, &args.fixtures).map_err(Error::from)?;
    for l in &loaded {
        println!("ok: {} ({})", l.path.display(), l.scenario.name);
    }
    Ok(exit::PASSED)
}
