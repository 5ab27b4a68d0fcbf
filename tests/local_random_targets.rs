//! `target: random` for real: the shipped scenario 30 run through the binary on the local
//! backend (real PostgreSQL, barman-cloud, the embedded S3 endpoint), one recovery after the
//! other; then the same scenario with `parallel: true`, with the same seed (the same targets)
//! and with another `--seed` (other targets). Asserts verdicts, testcases, the seed in every
//! report, and the picks. Needs `make setup`.

use std::path::Path;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/junit.rs"]
mod junit;
use cli::{pgdrill, run_dir, text};
use junit::Junit;

const SCENARIO: &str = "scenarios/30-random-pitr-targets.yaml";
const NAME: &str = "random-pitr-targets";
/// The scenario's `seed` and `count`.
const SEED: u64 = 30;
const COUNT: usize = 6;

/// What one run reported about its picks.
struct Picked {
    /// `(kind, where)` per target, in pick order: the places the seed chose.
    places: Vec<(String, String)>,
    junit: Junit,
    rto: serde_json::Value,
    summary: String,
}

/// Run `file` (with `--seed` if given), expect every target to pass, and read the reports.
fn run(file: &str, seed: Option<u64>) -> Picked {
    let reports = tempfile::tempdir().unwrap();
    let seed_text = seed.map(|s| s.to_string());
    let mut args = vec!["run", "--report-dir", reports.path().to_str().unwrap()];
    if let Some(s) = &seed_text {
        args.extend(["--seed", s.as_str()]);
    }
    args.push(file);
    let out = pgdrill(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = run_dir(reports.path());
    let junit = Junit::read(&dir.join("junit.xml"));
    let rto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rto.json")).unwrap()).unwrap();
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let targets = rto["scenarios"][0]["targets"].as_array().unwrap().clone();
    let places = targets
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().to_string(),
                t["around"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Picked {
        places,
        junit,
        rto,
        summary,
    }
}

/// Every report says every target passed, names the seed used, and lists `COUNT` targets.
fn assert_reports(p: &Picked, seed: u64) {
    // One testcase for the scenario, one per target, none failed.
    let cases: Vec<&str> = p.junit.cases().map(|c| c.0.name.as_str()).collect();
    assert_eq!(cases.len(), COUNT + 1, "{cases:?}");
    assert_eq!(cases[0], NAME);
    for (k, case) in cases[1..].iter().enumerate() {
        let prefix = format!("{NAME} [{}/{COUNT} ", k + 1);
        assert!(case.starts_with(&prefix), "{case}");
    }
    assert!(p.junit.failed_or_errored().is_empty(), "{}", p.junit);
    let seed_props = p
        .junit
        .cases()
        .filter(|c| c.property("seed") == Some(seed.to_string()))
        .count();
    assert_eq!(seed_props, COUNT + 1, "every testcase carries the seed");

    let s = &p.rto["scenarios"][0];
    assert_eq!(s["status"], "passed", "{s}");
    assert_eq!(s["seed"], seed);
    let targets = s["targets"].as_array().unwrap();
    assert_eq!(targets.len(), COUNT);
    for t in targets {
        assert_eq!(t["status"], "passed", "{t}");
        assert_eq!(t["observation"]["kind"], "recovered", "{t}");
        assert_eq!(t["rows_lost"], 0, "{t}");
        assert_eq!(t["rows_expected"], t["rows_observed"], "{t}");
        assert!(t["rto"]["seconds"].as_f64().unwrap() > 0.0, "{t}");
        let target = t["target"].as_str().unwrap();
        assert!(target.starts_with(t["kind"].as_str().unwrap()), "{t}");
    }
    for t in targets {
        assert!(
            t["backup_id"].as_str().is_some_and(|b| !b.is_empty()),
            "{t}"
        );
    }
    assert!(
        p.summary
            .contains(&format!("### Random targets (seed {seed})")),
        "{}",
        p.summary
    );
    // Each recovered instance had a serverName of its own.
    let names: std::collections::BTreeSet<&str> = targets
        .iter()
        .map(|t| t["server_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), COUNT, "{names:?}");
    // The picks are in the step log (JUnit system-out of the scenario) with the seed.
    assert!(
        p.junit.case(NAME).out().contains(&format!(
            "pick-targets (pick_targets): seed {seed}: {COUNT} target(s)"
        )),
        "{}",
        p.junit
    );
}

#[test]
fn random_targets_recover_and_replay_with_their_seed() {
    // Three runs at once (each its own pgdrill process, drill prefix and directories): the
    // shipped scenario with its recoveries one after the other; a copy with `parallel: true`
    // and the same seed; the copy with another seed.
    let dir = tempfile::tempdir().unwrap();
    let parallel = dir.path().join("30-parallel.yaml");
    let yaml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCENARIO))
        .unwrap()
        .replace("  count: 6\n", "  count: 6\n  parallel: true\n");
    assert!(yaml.contains("parallel: true"));
    std::fs::write(&parallel, yaml).unwrap();
    let parallel = parallel.to_str().unwrap().to_string();
    let p2 = parallel.clone();
    let same = std::thread::spawn(move || run(&p2, Some(SEED)));
    let other = std::thread::spawn(move || run(&parallel, Some(SEED + 1)));
    let first = run(SCENARIO, None);
    let again = same.join().expect("the parallel run with the same seed");
    let other = other.join().expect("the parallel run with another seed");

    assert_reports(&first, SEED);
    let kinds: std::collections::BTreeSet<&str> =
        first.places.iter().map(|(k, _)| k.as_str()).collect();
    assert!(kinds.len() > 1, "a mix of target kinds: {:?}", first.places);
    assert!(
        first
            .junit
            .case(NAME)
            .out()
            .contains("recovered-1 released"),
        "sequential recoveries release each instance once verified"
    );

    // Same seed: the same places are picked (the same writes and gaps; times and LSNs are
    // that run's own).
    assert_reports(&again, SEED);
    assert!(
        again
            .junit
            .case(NAME)
            .out()
            .contains("recover-targets (recover_targets): 6 recoveries at once"),
        "{}",
        again.junit
    );
    assert_eq!(first.places, again.places, "same seed, same targets");

    // Another seed: other targets, and the reports show the seed actually used.
    assert_reports(&other, SEED + 1);
    assert_ne!(first.places, other.places, "another seed, other targets");
}
