//! The split of a run's scenarios into those a backend runs and those it refuses
//! (`Backend::supports`), each refusal with the file and the reason a user can act on.
//! Never decides what is supported: each backend names what it lacks.

use std::fmt;
use std::path::PathBuf;

use crate::scenario::LoadedScenario;

use super::{Backend, Unsupported};

/// A scenario file a backend refuses; shown as `<file>: scenario `<name>`: uses …`.
#[derive(Debug, Clone)]
pub struct Refused {
    pub path: PathBuf,
    pub scenario: String,
    pub why: Unsupported,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: scenario `{}`: {}",
            self.path.display(),
            self.scenario,
            self.why
        )
    }
}

/// Split `loaded` into the scenarios backend `B` runs and those it refuses, both in order.
pub fn partition<B: Backend>(loaded: Vec<LoadedScenario>) -> (Vec<LoadedScenario>, Vec<Refused>) {
    let mut refused = Vec::new();
    let mut supported = Vec::new();
    for l in loaded {
        match B::supports(&l.scenario) {
            Ok(()) => supported.push(l),
            Err(why) => refused.push(Refused {
                path: l.path,
                scenario: l.scenario.name,
                why,
            }),
        }
    }
    (supported, refused)
}
