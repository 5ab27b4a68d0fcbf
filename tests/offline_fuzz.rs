//! Bounded fuzzing of what pgdrill reads from others: scenario files (load, validate, plan),
//! game-day files, and an archive as the audit reads it (object keys, `backup.info`,
//! `.history`; then the game-day choice made from the audit). Offline: no PostgreSQL, no S3.
//!
//! Inputs are the shipped files (`scenarios/`, `tests/scenarios/`, `gamedays/`, the seeds in
//! `tests/fuzz/`) mutated by a seeded generator: byte flips, truncation, deletion, duplication,
//! splicing, deep nesting, huge numbers, unicode, YAML anchors and aliases, words from the
//! corpus. Case `n` of seed `s` is the same input on every machine. The property: no panic,
//! and no input takes more than 1 s of CPU time (the thread's own, so a loaded machine does not
//! make it flaky); a hang is caught by a 30 s watchdog. Inputs once found are kept in
//! `tests/fuzz/regressions/<target>/` and replayed first, every run.
//!
//! About 24 s in all by default. `PGDRILL_FUZZ_SECONDS` sets the total (`make fuzz`),
//! `PGDRILL_FUZZ_SEED` the seed (default fixed), `PGDRILL_FUZZ_CASE` replays one case. A failure
//! prints the seed, the case, its mutations and the file the input was saved to.

use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The property: CPU time one input may take.
const CPU_BUDGET: Duration = Duration::from_secs(1);
/// Wall time after which an input counts as hung.
const WATCHDOG: Duration = Duration::from_secs(30);
/// Default seed of `make test`, so its runs explore the same inputs; `make fuzz` varies it.
const DEFAULT_SEED: u64 = 0x00D1_5A57_E5ED;
/// Default total seconds, shared by the targets in proportion to their weights.
const DEFAULT_SECONDS: f64 = 24.0;
/// Copies and repeats stop at this size; only the huge-input mutation goes past it, to just
/// over the 1 MiB limit, and no input is kept longer than `MAX_INPUT * 8`.
const MAX_INPUT: usize = 256 << 10;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---- The targets.

/// One thing to fuzz: its seed inputs, its words, and the function run on each input.
struct Target {
    name: &'static str,
    /// File extension of saved inputs.
    ext: &'static str,
    /// Its seconds of [`DEFAULT_SECONDS`] (the weights add up to it).
    weight: f64,
    seeds: Vec<(String, Vec<u8>)>,
    /// Words spliced in by the word mutation (taken from the seeds, plus `extra_words`).
    words: Vec<Vec<u8>>,
    run: fn(&[u8]),
}

/// Load, validate and plan a scenario; render every problem.
fn scenario(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let path = repo().join("scenarios/fuzz-input.yaml");
    match pgdrill::scenario::load_str(&path, &text) {
        Err(e) => {
            black_box(e.to_string());
        }
        Ok(loaded) => match pgdrill::scenario::validate(&loaded, &repo().join("fixtures")) {
            Err(e) => {
                black_box(e.to_string());
            }
            Ok(()) => {
                black_box(pgdrill::plan::build(&loaded.scenario));
            }
        },
    }
}

/// Load and validate a game-day file (its SQL files resolve in `gamedays/`).
fn gameday(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let path = repo().join("gamedays/fuzz-input.yaml");
    match pgdrill::gameday::load_str(&path, &text) {
        Err(e) => {
            black_box(e.to_string());
        }
        Ok(g) => {
            black_box(pgdrill::gameday::load::rpo_without_reference(&g.gameday));
        }
    }
}

/// An archive in the seed format (see `tests/fuzz/audit/clean-timeline1.txt`), read leniently:
/// whatever the bytes, some listing comes out.
fn listing(text: &str) -> pgdrill::audit::ArchiveListing {
    use pgdrill::audit::{ArchiveListing, ArchiveObject};
    enum Part {
        Objects,
        Info(String),
        History(u32),
    }
    let mut l = ArchiveListing::default();
    let mut into = Part::Objects;
    for line in text.split_inclusive('\n') {
        if let Some(id) = line.strip_prefix("@backup.info ") {
            into = Part::Info(id.trim().to_string());
            l.backup_infos.entry(id.trim().to_string()).or_default();
            continue;
        }
        if let Some(tli) = line.strip_prefix("@history ") {
            let tli = tli.trim().parse().unwrap_or(u32::MAX);
            l.histories.entry(tli).or_default();
            into = Part::History(tli);
            continue;
        }
        match &into {
            Part::Objects => {
                let mut f = line.split_whitespace();
                let Some(key) = f.next().filter(|k| !k.starts_with('#')) else {
                    continue;
                };
                let size = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let last_modified = f
                    .next()
                    .and_then(|s| s.parse().ok())
                    .and_then(|s| Utc.timestamp_opt(s, 0).single());
                l.objects.push(ArchiveObject {
                    key: key.to_string(),
                    size,
                    last_modified,
                });
            }
            Part::Info(id) => l.backup_infos.get_mut(id).unwrap().push_str(line),
            Part::History(t) => l.histories.get_mut(t).unwrap().push_str(line),
        }
    }
    l
}

/// Audit an archive, render the report, choose a game day's backup and target from it; and
/// parse every key and word as the WAL primitives do.
fn audit(input: &[u8]) {
    use pgdrill::gameday::GamedayTarget;
    use pgdrill::wal::{Lsn, SegmentName, segment_of_file, segment_of_key, strip_compression};
    let text = String::from_utf8_lossy(input);
    let l = listing(&text);
    for word in text.split(|c: char| c.is_whitespace() || c == '=') {
        black_box((
            Lsn::parse(word),
            SegmentName::parse(word),
            segment_of_file(word),
        ));
        black_box((segment_of_key(word), strip_compression(word)));
    }
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let r = pgdrill::audit::analyze("pg-src", &l, now, Default::default());
    black_box(pgdrill::audit::output::table(
        &r,
        "s3://bucket/prefix/pg-src",
    ));
    black_box(pgdrill::audit::output::junit(&r).expect("the JUnit file of any audit"));
    black_box(serde_json::to_string(&r).expect("the JSON of any audit"));
    let time = GamedayTarget::Time(now.fixed_offset());
    for target in [GamedayTarget::Latest, GamedayTarget::Random, time] {
        let _ = black_box(pgdrill::gameday::plan::choose(&r, &target, None, 7));
    }
    if let Some(b) = r.backups.first() {
        let _ = black_box(pgdrill::gameday::plan::choose(
            &r,
            &GamedayTarget::Latest,
            Some(&b.id),
            7,
        ));
    }
}

/// Every file of `dir` (not recursive) with one of `exts`, sorted; none if `dir` is missing.
fn files(dir: &Path, exts: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && exts.contains(&p.extension().and_then(|e| e.to_str()).unwrap_or(""))
        })
        .map(|p| {
            let name = p.strip_prefix(repo()).unwrap_or(&p).display().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Inputs found before, replayed first: the files in `tests/fuzz/regressions/<target>/`, and
/// those too large to keep as files, made here.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut found = files(
        &repo().join("tests/fuzz/regressions").join(target),
        &["yaml", "txt"],
    );
    let made = |name: &str, text: String| (format!("made: {name}"), text.into_bytes());
    if target == "scenario" || target == "gameday" {
        // Quadratic in libyaml's scanner and in the position index: minutes, 23 GB, killed.
        let depth = 100_000;
        let deep = format!("name: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        found.push(made("nesting 100,000 deep", deep));
        // An unknown key of 370,000 characters: a second of CPU in the typo suggestion.
        let key = format!(
            "name: x\nchecks:\n  - {{ name: a, eq{}=: 1 }}\n",
            "x".repeat(370_000)
        );
        found.push(made("a 370 KB unknown key", key));
    }
    if target == "scenario" {
        // 4,000 tables and 4,000 writes each naming a misspelt one: every write measured
        // against every table (12,000 of each took more than 5 minutes).
        let n = 4_000;
        let mut t = String::from("name: typos\npostgres: 15\nseed_data:\n  tables:\n");
        (0..n).for_each(|i| t.push_str(&format!("    - {{ name: table{i:05}, rows: 1 }}\n")));
        t.push_str("steps:\n  - base_backup: { id: base }\n");
        (0..n)
            .for_each(|i| t.push_str(&format!("  - write: {{ id: w{i}, table: tabel{i:05} }}\n")));
        t.push_str("recovery: { target: latest }\nexpect: { recovered: {} }\n");
        found.push(made("4,000 misspelt tables", t));
    }
    found
}

/// Words of the seeds (identifier-like runs of 2+ bytes), each once, plus `extra`.
fn words(seeds: &[(String, Vec<u8>)], extra: &[&str]) -> Vec<Vec<u8>> {
    let mut set = std::collections::BTreeSet::new();
    for (_, s) in seeds {
        for w in s.split(|b| !(b.is_ascii_alphanumeric() || b"_-./".contains(b))) {
            if w.len() >= 2 {
                set.insert(w.to_vec());
            }
        }
    }
    set.extend(extra.iter().map(|w| w.as_bytes().to_vec()));
    set.into_iter().collect()
}

/// Values that sit on edges: number limits, LSNs, times, YAML's special scalars.
const EDGE_WORDS: &[&str] = &[
    "0",
    "-1",
    "1",
    "255",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999999999999",
    "1e308",
    "-1e309",
    ".nan",
    ".inf",
    "-.inf",
    "0x7fffffff",
    "0o777",
    "-0",
    "1_000",
    "0/0",
    "FFFFFFFF/FFFFFFFF",
    "0/3000060",
    "000000000000000000000000",
    "FFFFFFFFFFFFFFFFFFFFFFFF",
    "00000001FFFFFFFFFFFFFFFF",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-02-30 25:61:61+99:99",
    "None",
    "null",
    "~",
    "true",
    "latest",
    "immediate",
    "random",
    "\"\"",
    "''",
];

/// A target whose seeds are the files with extension `ext` in `dirs`, then its regressions.
fn target(
    name: &'static str,
    ext: &'static str,
    weight: f64,
    dirs: &[&str],
    run: fn(&[u8]),
) -> Target {
    let mut seeds: Vec<(String, Vec<u8>)> = dirs
        .iter()
        .flat_map(|d| files(&repo().join(d), &[ext]))
        .collect();
    seeds.extend(regressions(name));
    Target {
        name,
        ext,
        weight,
        words: words(&seeds, EDGE_WORDS),
        seeds,
        run,
    }
}

fn scenario_target() -> Target {
    target(
        "scenario",
        "yaml",
        10.0,
        &["scenarios", "tests/scenarios"],
        scenario,
    )
}

fn gameday_target() -> Target {
    target(
        "gameday",
        "yaml",
        6.0,
        &["gamedays", "tests/fuzz/gameday"],
        gameday,
    )
}

fn audit_target() -> Target {
    target("audit", "txt", 8.0, &["tests/fuzz/audit"], audit)
}

// ---- The mutator.

/// An input and how it was made.
struct Case {
    input: Vec<u8>,
    how: Vec<String>,
}

/// Bytes YAML and the seed formats give meaning to.
const SPECIAL: &[u8] = b"[]{}:-,#&*!|>'\"%@`? \n\t\r/=.";

/// Unicode that parsers trip on: BOM, NEL, line and paragraph separators, a bidi override, a
/// combining mark, a wide character, the replacement character, a non-BMP character.
const UNICODE: &[&str] = &[
    "\u{FEFF}",
    "\u{85}",
    "\u{2028}",
    "\u{2029}",
    "\u{202E}",
    "e\u{301}",
    "\u{4E2D}",
    "\u{FFFD}",
    "\u{1F980}",
    "\r\n",
    "\0",
];

/// YAML constructs worth putting anywhere.
const YAML_BITS: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!custom ",
    "\n---\n",
    "\n...\n",
    "? ",
    "|\n  x\n",
    ">-\n  y\n",
    "%YAML 1.2\n---\n",
    "{a: &x [*x]}",
];

/// Case `n` of `seed`: a seed input with 1 to 4 mutations. Deterministic.
fn make_case(t: &Target, seed: u64, n: u64) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n);
    let (name, first) = &t.seeds[rng.random_range(0..t.seeds.len())];
    let mut input = first.clone();
    let mut how = vec![name.clone()];
    for _ in 0..rng.random_range(1..=4) {
        let step = mutate(t, &mut rng, &mut input);
        how.push(step);
        input.truncate(MAX_INPUT * 8);
    }
    Case { input, how }
}

/// A position in `v` (0..=len).
fn pos(rng: &mut ChaCha8Rng, v: &[u8]) -> usize {
    rng.random_range(0..=v.len())
}

/// A range of `v`, mostly short.
fn range(rng: &mut ChaCha8Rng, v: &[u8]) -> std::ops::Range<usize> {
    let a = pos(rng, v);
    let len = if rng.random_bool(0.8) {
        rng.random_range(0..=16)
    } else {
        rng.random_range(0..=v.len())
    };
    a..(a + len).min(v.len())
}

fn insert(v: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    v.splice(at..at, bytes.iter().copied());
}

/// One mutation of `v`, and what it did.
fn mutate(t: &Target, rng: &mut ChaCha8Rng, v: &mut Vec<u8>) -> String {
    match rng.random_range(0..13) {
        0 if !v.is_empty() => {
            let i = rng.random_range(0..v.len());
            v[i] ^= 1 << rng.random_range(0..8);
            format!("flip bit at {i}")
        }
        1 if !v.is_empty() => {
            let i = rng.random_range(0..v.len());
            v[i] = SPECIAL[rng.random_range(0..SPECIAL.len())];
            format!("set byte {i} to {:?}", v[i] as char)
        }
        2 => {
            let at = pos(rng, v);
            v.truncate(at);
            format!("truncate at {at}")
        }
        3 => {
            let r = range(rng, v);
            v.drain(r.clone());
            format!("delete {r:?}")
        }
        4 => {
            let r = range(rng, v);
            let copy = v[r.clone()].to_vec();
            let most = (MAX_INPUT / copy.len().max(1)).max(1);
            let times = if rng.random_bool(0.9) {
                1
            } else {
                rng.random_range(1..=most.min(2000))
            };
            let at = pos(rng, v);
            for _ in 0..times {
                insert(v, at, &copy);
            }
            format!("copy {r:?} to {at} {times} times")
        }
        5 => {
            let (name, other) = &t.seeds[rng.random_range(0..t.seeds.len())];
            let r = range(rng, other);
            let at = pos(rng, v);
            insert(v, at, &other[r.clone()]);
            format!("splice {name}[{r:?}] at {at}")
        }
        6 => {
            // Mostly around the limit; now and then far past it (those inputs are slow to make).
            let depth = [8, 63, 64, 65, 200, 65, 5_000, 100_000][rng.random_range(0..8)];
            let (open, close) = if rng.random_bool(0.5) {
                ("[", "]")
            } else {
                ("{a: ", "}")
            };
            let at = pos(rng, v);
            let nest = open.repeat(depth) + &close.repeat(depth);
            insert(v, at, nest.as_bytes());
            format!("nest {open}…{close} {depth} deep at {at}")
        }
        7 => {
            let word = &t.words[rng.random_range(0..t.words.len())];
            let at = pos(rng, v);
            // Replace the word-like run at `at`, if any, else insert.
            let is_word = |b: &u8| b.is_ascii_alphanumeric() || b"_-./".contains(b);
            let start = v[..at]
                .iter()
                .rposition(|b| !is_word(b))
                .map_or(0, |i| i + 1);
            let end = at
                + v[at..]
                    .iter()
                    .position(|b| !is_word(b))
                    .unwrap_or(v.len() - at);
            v.splice(start..end, word.iter().copied());
            format!("word {:?} at {start}", String::from_utf8_lossy(word))
        }
        8 => {
            let u = UNICODE[rng.random_range(0..UNICODE.len())];
            let at = pos(rng, v);
            insert(v, at, u.as_bytes());
            format!("unicode {u:?} at {at}")
        }
        9 => {
            let y = YAML_BITS[rng.random_range(0..YAML_BITS.len())];
            let at = pos(rng, v);
            insert(v, at, y.as_bytes());
            format!("yaml {y:?} at {at}")
        }
        10 => {
            // Swap, repeat or re-indent a line.
            let lines: Vec<usize> = std::iter::once(0)
                .chain(
                    v.iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .filter(|i| *i < v.len())
                .collect();
            if lines.is_empty() {
                return "no line".into();
            }
            let line = |i: usize| {
                let end = v[i..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(v.len(), |e| i + e + 1);
                i..end
            };
            let a = line(lines[rng.random_range(0..lines.len())]);
            let text = v[a.clone()].to_vec();
            match rng.random_range(0..3) {
                0 => {
                    let at = lines[rng.random_range(0..lines.len())];
                    insert(v, at, &text);
                    format!("repeat line {a:?} at {at}")
                }
                1 => {
                    let indent = rng.random_range(0..6);
                    insert(v, a.start, &b"  ".repeat(indent));
                    format!("indent line {a:?} by {indent}")
                }
                _ => {
                    v.drain(a.clone());
                    format!("drop line {a:?}")
                }
            }
        }
        11 if rng.random_bool(0.2) => {
            // One of the huge inputs a file or bucket may hold: over the size limit, or
            // many short items.
            let (what, bytes) = if rng.random_bool(0.5) {
                (
                    "a long scalar",
                    vec![b'x'; (1 << 20) + rng.random_range(0..2)],
                )
            } else {
                (
                    "many items",
                    b"- a\n".repeat(rng.random_range(1_000..60_000)),
                )
            };
            let at = pos(rng, v);
            insert(v, at, &bytes);
            format!("{what} ({} bytes) at {at}", bytes.len())
        }
        _ => {
            let at = pos(rng, v);
            let b: u8 = rng.random();
            insert(v, at, &[b]);
            format!("byte {b:#04x} at {at}")
        }
    }
}

// ---- The loop.

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant libc defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `t.run` on `input`: the CPU time it took, or what it panicked with.
fn run_one(t: &Target, input: &[u8]) -> Result<Duration, String> {
    let before = thread_cpu();
    let r = catch_unwind(AssertUnwindSafe(|| (t.run)(input)));
    let cpu = thread_cpu() - before;
    r.map(|()| cpu).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a whole number")),
    )
}

/// What a run found.
struct Figures {
    cases: u64,
    elapsed: Duration,
    slowest: (Duration, String),
}

/// Saves the input of a failing case and returns the failure message.
fn failure(t: &Target, seed: u64, case: &str, how: &[String], input: &[u8], what: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
    std::fs::create_dir_all(&dir).unwrap();
    let slug: String = case.chars().filter(char::is_ascii_alphanumeric).collect();
    let file: PathBuf = dir.join(format!("{}-seed{seed}-{slug}.{}", t.name, t.ext));
    let n = case.strip_prefix("case ").unwrap_or("<n>");
    std::fs::write(&file, input).unwrap();
    format!(
        "fuzz target `{}`, seed {seed}, {case}: {what}\n  made by: {}\n  input ({} bytes) saved to {}\n  \
         replay: PGDRILL_FUZZ_SEED={seed} PGDRILL_FUZZ_CASE={n} cargo test --test offline_fuzz {}; \
         keep it: copy the file to tests/fuzz/regressions/{}/",
        t.name,
        how.join(" | "),
        input.len(),
        file.display(),
        t.name,
        t.name,
    )
}

/// Checks one input against the property.
fn check(
    t: &Target,
    seed: u64,
    case: &str,
    how: &[String],
    input: &[u8],
) -> Result<Duration, String> {
    match run_one(t, input) {
        Err(panic) => Err(failure(
            t,
            seed,
            case,
            how,
            input,
            &format!("panicked: {panic}"),
        )),
        Ok(cpu) if cpu > CPU_BUDGET => Err(failure(
            t,
            seed,
            case,
            how,
            input,
            &format!("took {cpu:.2?} of CPU, more than {CPU_BUDGET:?}"),
        )),
        Ok(cpu) => Ok(cpu),
    }
}

/// The seeds and regressions as they are, then mutated cases until `budget` is spent (or the
/// one case `PGDRILL_FUZZ_CASE` names). `current` is the case running, for the watchdog.
fn fuzz_loop(
    t: &Target,
    seed: u64,
    budget: Duration,
    current: &AtomicU64,
) -> Result<Figures, String> {
    let start = Instant::now();
    let mut slowest = (Duration::ZERO, String::new());
    let mut note = |cpu: Duration, what: &dyn Fn() -> String| {
        if cpu > slowest.0 {
            slowest = (cpu, what());
        }
    };
    for (name, input) in &t.seeds {
        let cpu = check(t, seed, "seed", std::slice::from_ref(name), input)?;
        note(cpu, &|| name.clone());
    }
    let only = env_u64("PGDRILL_FUZZ_CASE");
    let mut n = only.unwrap_or(0);
    let mut cases = 0;
    loop {
        if only.map_or(start.elapsed() >= budget, |o| n > o) {
            break;
        }
        current.store(n, Ordering::SeqCst);
        let c = make_case(t, seed, n);
        let cpu = check(t, seed, &format!("case {n}"), &c.how, &c.input)?;
        note(cpu, &|| format!("case {n}: {}", c.how.join(" | ")));
        n += 1;
        cases += 1;
    }
    Ok(Figures {
        cases,
        elapsed: start.elapsed(),
        slowest,
    })
}

/// Fuzzes `t` for its share of the time budget on a worker thread, watched for hangs.
fn fuzz(t: Target) {
    let seed = env_u64("PGDRILL_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let total = std::env::var("PGDRILL_FUZZ_SECONDS")
        .ok()
        .map(|s| {
            s.parse::<f64>()
                .expect("PGDRILL_FUZZ_SECONDS: a number of seconds")
        })
        .unwrap_or(DEFAULT_SECONDS);
    let budget = Duration::from_secs_f64(total * t.weight / DEFAULT_SECONDS);
    assert!(!t.seeds.is_empty(), "no seeds for `{}`", t.name);

    let t = Arc::new(t);
    let current = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let (t, current, done) = (t.clone(), current.clone(), done.clone());
        std::thread::spawn(move || {
            let r = fuzz_loop(&t, seed, budget, &current);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    // Watch the case running: poll until the worker is done, failing a case that hangs.
    let mut watched = (u64::MAX, Instant::now());
    while !done.load(Ordering::SeqCst) {
        let n = current.load(Ordering::SeqCst);
        if n != watched.0 {
            watched = (n, Instant::now());
        } else if n != u64::MAX && watched.1.elapsed() > WATCHDOG {
            let c = make_case(&t, seed, n);
            panic!(
                "{}",
                failure(
                    &t,
                    seed,
                    &format!("case {n}"),
                    &c.how,
                    &c.input,
                    &format!("still running after {WATCHDOG:?}")
                )
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match worker.join().expect("the fuzz loop catches panics") {
        Err(e) => panic!("{e}"),
        Ok(f) => println!(
            "fuzz {}: seed {seed}, {} seeds and regressions, {} mutated cases in {:.1?} ({:.0}/s); \
             slowest input {:.1?} CPU: {}",
            t.name,
            t.seeds.len(),
            f.cases,
            f.elapsed,
            f.cases as f64 / f.elapsed.as_secs_f64().max(1e-9),
            f.slowest.0,
            f.slowest.1,
        ),
    }
}

#[test]
fn fuzz_scenario_files() {
    fuzz(scenario_target());
}

#[test]
fn fuzz_gameday_files() {
    fuzz(gameday_target());
}

#[test]
fn fuzz_archive_audit() {
    fuzz(audit_target());
}

/// The seeds are what the mutations start from: valid files and archives with backups in
/// them, so the cases stay near what the parsers really accept.
#[test]
fn the_seeds_are_valid_inputs() {
    let shipped = |(name, _): &(String, Vec<u8>)| {
        !name.starts_with("tests/fuzz/regressions") && !name.starts_with("made: ")
    };
    for (name, text) in scenario_target().seeds.into_iter().filter(shipped) {
        let text = String::from_utf8(text).unwrap();
        let r = pgdrill::scenario::load_str(Path::new(&name), &text)
            .and_then(|l| pgdrill::scenario::validate(&l, &repo().join("fixtures")));
        assert_eq!(r.is_ok(), !name.contains("invalid"), "{name}: {r:?}");
    }
    for (name, text) in gameday_target().seeds.into_iter().filter(shipped) {
        let text = String::from_utf8(text).unwrap();
        let path = repo()
            .join("gamedays")
            .join(Path::new(&name).file_name().unwrap());
        pgdrill::gameday::load_str(&path, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, text) in audit_target().seeds.into_iter().filter(shipped) {
        let l = listing(&String::from_utf8(text).unwrap());
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        let r = pgdrill::audit::analyze("pg-src", &l, now, Default::default());
        assert!(
            !l.backup_infos.is_empty() && !r.backups.is_empty(),
            "{name}: {r:?}"
        );
        assert!(
            r.backups.iter().all(|b| b.status != "UNKNOWN"),
            "{name}: {r:?}"
        );
    }
}

/// The same seed and case make the same input, wherever and whenever they run.
#[test]
fn cases_are_reproducible_from_seed_and_number() {
    let t = scenario_target();
    let a = make_case(&t, 42, 1_000);
    let b = make_case(&t, 42, 1_000);
    assert_eq!((a.input, a.how), (b.input, b.how));
    assert_ne!(make_case(&t, 42, 1_001).how, make_case(&t, 42, 1_000).how);
}
