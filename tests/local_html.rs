//! `report.html` of real drills, rendered by a real browser: two shipped scenarios (a clean
//! restore and ADR 007's missing WAL segment) run into one reports root, then headless Debian
//! Chromium dumps the DOM and takes a phone-width screenshot; `pgdrill history` counts the runs.
//! Needs `make setup` (which installs chromium as root); without chromium it says it did not
//! run, and fails when CI is set.

#[path = "support/cli.rs"]
mod cli;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cli::{pgdrill, text};

const CHROMIUM: &str = "/usr/bin/chromium";
const CLEAN: &str = "clean-restore-latest";
const GAP: &str = "adr007-missing-wal-segment";

/// Chromium, or why not: `None` (with a banner) when it is missing outside CI.
fn chromium_or_skip() -> Option<&'static str> {
    if Path::new(CHROMIUM).is_file() {
        return Some(CHROMIUM);
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{CHROMIUM} not found and CI is set: `make setup` as root installs it");
    }
    use std::io::Write;
    let line = "!".repeat(78);
    let _ = std::io::stderr().write_all(
        format!(
            "\n{line}\n!! {CHROMIUM} not found: tests/local_html.rs DID NOT RUN.\n!! \
             `apt-get install chromium` (make setup does it as root). With CI set this fails.\n{line}\n"
        )
        .as_bytes(),
    );
    None
}

/// Headless chromium on `page` with `args`, killed (its whole process group) after 60 s.
fn chromium(bin: &str, page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("chromium starts");
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("chromium ran"),
        Err(_) => {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            panic!("chromium did not finish within 60 s on {}", page.display());
        }
    }
}

/// Run `scenarios` into `root`; the new run directory.
fn run_into(root: &Path, scenarios: &[&str]) -> PathBuf {
    let before: Vec<PathBuf> = dirs(root);
    let mut args = vec!["run", "--jobs", "2", "--report-dir", root.to_str().unwrap()];
    args.extend(scenarios);
    let out = pgdrill(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let new: Vec<PathBuf> = dirs(root)
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    new[0].clone()
}

fn dirs(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().unwrap() != "latest" && p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// The opening tag of the element with `attr` (e.g. `data-scenario="x"`) in `dom`.
fn tag_with<'a>(dom: &'a str, attr: &str) -> &'a str {
    let at = dom
        .find(attr)
        .unwrap_or_else(|| panic!("no {attr} in the DOM:\n{dom}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    &dom[start..=end]
}

#[test]
fn real_drills_render_in_a_browser_and_history_counts_them() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let both = run_into(
        root.path(),
        &[
            "scenarios/01-clean-restore-latest.yaml",
            "scenarios/03-adr007-missing-wal-segment.yaml",
        ],
    );
    let page = both.join("report.html");
    assert!(page.is_file(), "{}", page.display());

    let out = chromium(bin, &page, &["--window-size=390,1400", "--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [CLEAN, GAP] {
        let section = tag_with(&dom, &format!("data-scenario=\"{name}\""));
        assert!(
            section.contains(&format!("id=\"scenario-{name}\"")),
            "{section}"
        );
        // Both drills pass: 03 passes by catching the loss its scenario expects.
        assert!(section.contains("data-verdict=\"passed\""), "{section}");
        assert!(dom.contains(&format!("<h2>{name} <span")), "{dom}");
    }
    // Scenario 03's gap: one missing segment, drawn before the first write it held, and the
    // two writes it cost struck through.
    let adr = &dom[dom.find(&format!("data-scenario=\"{GAP}\"")).unwrap()..];
    let gap = tag_with(adr, "<li class=\"gap\"");
    let segment = gap
        .split("data-gap=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(segment.len(), 24, "{gap}");
    assert!(tag_with(adr, "data-step=\"w2\"").contains("lost"), "{adr}");
    assert!(tag_with(adr, "data-step=\"w3\"").contains("lost"), "{adr}");
    assert!(
        !dom.contains("<li class=\"write lost\" data-step=\"w1\""),
        "{dom}"
    );
    assert!(
        dom.contains("data-phase=\"restore_base_backup\""),
        "RTO bars: {dom}"
    );
    // Phone width: the page does not scroll sideways (the page's script measured it).
    let body = tag_with(&dom, "<body");
    assert!(body.contains("data-overflow=\"false\""), "{body}");

    let shot = root.path().join("phone.png");
    let out = chromium(
        bin,
        &page,
        &[
            "--window-size=390,1400",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "{} bytes", png.len());

    // A second run under the same root: its page has a history section counting both runs.
    let again = run_into(root.path(), &["scenarios/01-clean-restore-latest.yaml"]);
    let html = std::fs::read_to_string(again.join("report.html")).unwrap();
    assert!(
        html.contains(&format!(
            "data-name=\"{CLEAN}\" data-runs=\"2\" data-passes=\"2\""
        )),
        "{html}"
    );
    // With the history section too, nothing overflows at phone width.
    let out = chromium(
        bin,
        &again.join("report.html"),
        &["--window-size=390,1400", "--dump-dom"],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("id=\"history\""), "{dom}");
    let body = tag_with(&dom, "<body");
    assert!(body.contains("data-overflow=\"false\""), "{body}");

    let out = pgdrill(&["history", root.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = |name: &str| {
        v["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"))["runs"]
            .clone()
    };
    assert_eq!(runs(CLEAN), 2, "{v}");
    assert_eq!(runs(GAP), 1, "{v}");
}
