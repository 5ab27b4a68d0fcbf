//! `pgdrill list`: one line per scenario (name, tags, first line of its description). Never
//! runs anything.

use std::path::{Path, PathBuf};

use pgdrill::error::{Error, exit};
use pgdrill::scenario::load_all;

/// Arguments of `pgdrill list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    paths: Vec<PathBuf>,
}

pub fn run(args: ListArgs) -> anyhow::Result<i32> {
    let loaded = load_all(&args.paths, Path::new("fixtures")).map_err(Error::from)?;
    for l in &loaded {
        let s = &l.scenario;
        println!(
            "{:<28} [{}] {}",
            s.name,
            s.tags.join(","),
            s.description.lines().next().unwrap_or("")
        );
    }
    Ok(exit::PASSED)
}
