//! History as HTML: the section a run's page and `pgdrill history --html` show (per scenario
//! and per archive: runs, pass rate, last run and success, RTO and RPO trends, overdue game
//! days). Renders a `History` it is given; never reads report directories itself.

use maud::{Markup, html};

use crate::history::{History, ScenarioHistory, Trend};

use super::page::{self, secs, time};

/// `pgdrill history --html FILE`: the section as a page of its own.
pub fn history_html(h: &History) -> String {
    page::document(
        "pgdrill history",
        html! {
            h1 { "pgdrill history" }
            p.muted { "As of " (time(h.generated_at)) }
            (section(h))
        },
    )
}

/// The history section: one card per scenario, then per archive.
pub(super) fn section(h: &History) -> Markup {
    html! {
        section.card #history {
            h2 { "History" }
            p.small {
                @match h.last_gameday {
                    Some(t) => { "Last game day " (time(t)) }
                    None => { "No game day recorded" }
                }
                @if h.gameday_overdue {
                    span.overdue data-gameday-overdue="true" { " — older than " (format!("{:.0}", h.max_gameday_age_days)) " days: a game day is due (ADR 007)" }
                }
            }
            @if !h.scenarios.is_empty() {
                h3 { "Scenarios" }
                div.grid { @for s in &h.scenarios { (card(s, "scenario", html! {})) } }
            }
            @if !h.archives.is_empty() {
                h3 { "Game days per archive" }
                div.grid {
                    @for a in &h.archives {
                        (card(&a.history, "archive", html! {
                            dt { "Last game day" }
                            dd {
                                (format!("{:.0}", a.last_gameday_age_days)) " days ago"
                                @if a.gameday_overdue { " " span.overdue { "overdue" } }
                            }
                        }))
                    }
                }
            }
        }
    }
}

fn card(s: &ScenarioHistory, what: &str, extra: Markup) -> Markup {
    html! {
        div.history data-history=(what) data-name=(s.name) data-runs=(s.runs) data-passes=(s.passes) {
            strong { (s.name) }
            dl.facts {
                dt { "Runs" } dd { (s.runs) ", " (s.passes) " passed (" (format!("{:.0}", s.pass_rate * 100.0)) " %)" }
                dt { "Last run" } dd { (time(s.last_run)) " " (page::verdict(&s.last_status, &s.last_status.to_uppercase(), None)) }
                dt { "Last success" } dd { (s.last_success.map_or_else(|| "never".to_string(), time)) }
                dt { "RTO" } dd { (trend(&s.rto, "RTO")) }
                dt { "RPO" } dd { (trend(&s.rpo, "RPO")) }
                (extra)
            }
        }
    }
}

fn trend(t: &Trend, what: &str) -> Markup {
    html! {
        @match (t.latest, t.median) {
            (Some(l), Some(m)) => {
                (secs(l)) " latest, median " (secs(m))
                @if let Some(c) = t.latest_vs_median { " (" (format!("{:+.0} %", c * 100.0)) ")" }
                (page::sparkline(&t.series, &format!("{what} over {} runs, oldest first", t.series.len())))
            }
            _ => { "–" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::read_report_dirs;
    use crate::report::{Reporter, RtoJsonReporter, fixture};

    /// `rto.json` as the real reporter writes it, read back by history: the format cannot drift.
    #[test]
    fn history_reads_what_the_rto_reporter_writes() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join(fixture::RUN_ID);
        std::fs::create_dir(&run).unwrap();
        let mut r: Box<dyn Reporter> = Box::new(RtoJsonReporter::new(&run));
        fixture::feed(r.as_mut(), &fixture::events()).unwrap();
        std::os::unix::fs::symlink(fixture::RUN_ID, root.path().join("latest")).unwrap();

        let entries = read_report_dirs(&[root.path().to_path_buf()]).unwrap();
        assert_eq!(entries.runs.len(), 3, "{entries:?}");
        let h = History::build(&entries, fixture::at(60_000), 92 * 86_400);
        let names: Vec<&str> = h.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "archive-unreachable",
                "pitr-after-step",
                "wal-gap-silent-loss"
            ]
        );
        let pitr = &h.scenarios[1];
        assert_eq!((pitr.runs, pitr.passes), (1, 1));
        assert_eq!(pitr.rto.latest, Some(2.1));
        assert_eq!(h.scenarios[2].last_status, "failed");

        let page = history_html(&h);
        assert!(
            page.contains(r#"data-name="wal-gap-silent-loss" data-runs="1" data-passes="0""#),
            "{page}"
        );
        assert!(page.contains("a game day is due"), "{page}");
        for external in ["http://", "https://", "src="] {
            assert!(!page.contains(external), "{page}");
        }
    }
}
