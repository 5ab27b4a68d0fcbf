//! `pgdrill history`: reads run and game-day directories, prints per scenario and per archive
//! the runs, pass rate, last run and success, RTO/RPO trends and whether a game day is overdue,
//! as a table, JSON or an HTML page. Never runs a drill; aggregation is `pgdrill::history`.

use std::path::PathBuf;

use chrono::Utc;

use pgdrill::error::{Error, exit};
use pgdrill::history::{self, History, Trend};

use super::args::parse_age;

/// Arguments of `pgdrill history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Run or game-day directories, or directories holding them (`latest` links are skipped).
    #[arg(default_value = "reports")]
    report_dirs: Vec<PathBuf>,
    /// Print JSON (field names documented in the README) instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// A game day older than this is overdue (ADR 007: quarterly).
    #[arg(long, default_value = "92d", value_parser = parse_age)]
    max_gameday_age: u64,
}

pub fn run(args: HistoryArgs) -> anyhow::Result<i32> {
    let entries =
        history::read_report_dirs(&args.report_dirs).map_err(|e| Error::Usage(e.to_string()))?;
    let h = History::build(&entries, Utc::now(), args.max_gameday_age);
    if let Some(file) = &args.html {
        std::fs::write(file, pgdrill::report::history_html(&h))
            .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&h)?);
    } else {
        print!("{}", table(&h));
    }
    Ok(exit::PASSED)
}

/// The table: one line per scenario, then per archive, then the game-day verdict.
fn table(h: &History) -> String {
    let mut out = String::new();
    let mut rows: Vec<[String; 7]> = vec![[
        "SCENARIO".into(),
        "RUNS".into(),
        "PASS".into(),
        "LAST RUN".into(),
        "LAST SUCCESS".into(),
        "RTO latest/median".into(),
        "RPO latest/median".into(),
    ]];
    let row = |s: &history::ScenarioHistory| {
        [
            s.name.clone(),
            format!("{}/{}", s.passes, s.runs),
            format!("{:.0}%", s.pass_rate * 100.0),
            format!("{} {}", s.last_run.format("%Y-%m-%d %H:%M"), s.last_status),
            s.last_success.map_or_else(
                || "never".into(),
                |t| t.format("%Y-%m-%d %H:%M").to_string(),
            ),
            trend(&s.rto),
            trend(&s.rpo),
        ]
    };
    rows.extend(h.scenarios.iter().map(row));
    if !h.archives.is_empty() {
        rows.push(Default::default());
        let mut head = rows[0].clone();
        head[0] = "ARCHIVE (game days)".into();
        rows.push(head);
        rows.extend(h.archives.iter().map(|a| row(&a.history)));
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push('\n');
    match h.last_gameday {
        None => out.push_str("game day: none recorded (overdue)\n"),
        Some(t) => out.push_str(&format!(
            "game day: last {}{}\n",
            t.format("%Y-%m-%d"),
            if h.gameday_overdue {
                format!(", older than {:.0} days (overdue)", h.max_gameday_age_days)
            } else {
                String::new()
            }
        )),
    }
    for a in h.archives.iter().filter(|a| a.gameday_overdue) {
        out.push_str(&format!(
            "overdue: {} (last game day {:.0} days ago)\n",
            a.history.name, a.last_gameday_age_days
        ));
    }
    out
}

/// `2.10s/2.00s (+5%)`, or `-`.
fn trend(t: &Trend) -> String {
    match (t.latest, t.median) {
        (Some(l), Some(m)) => format!(
            "{l:.2}s/{m:.2}s{}",
            t.latest_vs_median
                .map_or(String::new(), |c| format!(" ({:+.0}%)", c * 100.0))
        ),
        _ => "-".into(),
    }
}
