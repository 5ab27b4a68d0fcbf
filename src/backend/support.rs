//! A backend's refusal of a scenario it cannot run as written (`Backend::supports`), with the
//! reason a user can act on, and the split of a run's scenarios into supported and refused.
//! Never decides what is supported: each backend names what it lacks.

use std::fmt;
use std::path::PathBuf;

use crate::scenario::LoadedScenario;

use super::Backend;

/// `scenario` uses `feature`, which `backend` cannot do yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The backend that refuses (`kube`).
    pub backend: &'static str,
    /// What it lacks, as the scenario spells it, e.g. ``"`crash` (step `c1`)"``.
    pub feature: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uses {}, which the {} backend does not support yet; run it with --backend local",
            self.feature, self.backend
        )
    }
}

impl std::error::Error for Unsupported {}

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
