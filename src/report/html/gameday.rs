//! A game day's `report.html`, rendered from its `GamedayRecord` with the run page's look:
//! audit summary, target, restore outcome, RTO phases as bars, RPO, checks, verdict. Pure
//! formatting; the caller writes the file.

use maud::html;

use crate::gameday::{GamedayRecord, RestoreOutcome};

use super::page::{self, opt, secs, status_verdict, time};

/// The page for one game day.
pub fn gameday_html(r: &GamedayRecord) -> String {
    let reasons = match &r.status {
        crate::runner::Status::Passed => Vec::new(),
        crate::runner::Status::Failed { reasons } => reasons.clone(),
        crate::runner::Status::Error { message } => vec![message.clone()],
    };
    let body = html! {
        section.card.gameday id=(format!("gameday-{}", r.name)) data-gameday=(r.name) data-verdict=(match r.status { crate::runner::Status::Passed => "passed", crate::runner::Status::Failed { .. } => "failed", crate::runner::Status::Error { .. } => "error" }) {
            h1 { "Game day " (r.name) " " (status_verdict(&r.status, r.reason.map(|c| c.code()))) }
            @if !r.description.is_empty() { p.muted { (r.description) } }
            @if !reasons.is_empty() { ul.tight.reasons { @for x in &reasons { li { pre { (x) } } } } }
            div.grid {
                div {
                    h3 { "Archive" }
                    dl.facts {
                        dt { "Archive" } dd { code { (r.archive) } }
                        dt { "Endpoint" } dd { (r.endpoint) }
                        @if let Some(a) = &r.audit {
                            dt { "Backups" } dd { (a.backups.len()) @if let Some(b) = &a.newest_backup { ", newest " code { (b) } } @if let Some(s) = a.newest_backup_age_seconds { " (" (age(s)) " old)" } }
                            dt { "Gaps" } dd.audit-gaps data-gaps=(a.gaps.len()) {
                                @if a.gaps.is_empty() { "none" }
                                @for (i, g) in a.gaps.iter().enumerate() { @if i > 0 { ", " } code.seg.missing { (g.segment) } }
                            }
                            dt { "Newest WAL" } dd { (opt(a.newest_wal.as_deref())) @if let Some(s) = a.newest_wal_age_seconds { " (" (age(s)) " old)" } }
                            @for f in &a.findings { dt { (f.severity) } dd { (f.message) } }
                        } @else {
                            dt { "Audit" } dd { "not made" }
                        }
                    }
                }
                div {
                    h3 { "Restore" }
                    dl.facts {
                        dt { "Operator" } dd { (r.operator) }
                        dt { "Started" } dd { (time(r.started_at)) ", took " (format!("{:.1} s", r.seconds)) }
                        dt { "Backend" } dd { (r.backend) ", PostgreSQL " (r.postgres_version.as_deref().unwrap_or(&r.postgres_major.to_string())) }
                        dt { "Target" } dd { code { (r.target) } @if let Some(t) = &r.resolved_target { " → " code { (t) } } }
                        @if let Some((from, to)) = &r.random_window { dt { "Window" } dd { (from) " … " (to) " (seed " (r.seed) ")" } }
                        dt { "Backup" } dd { (opt(r.backup_id.as_deref())) }
                        dt { "Outcome" } dd.restore {
                            @match &r.restore {
                                RestoreOutcome::Recovered => { "recovered" }
                                RestoreOutcome::Failed { message } => { "failed: " pre { (message) } }
                                RestoreOutcome::NotAttempted => { "not attempted" }
                            }
                        }
                        @if let Some(t) = r.recovered_to { dt { "Recovered to" } dd { (time(t)) } }
                        @if let Some(rpo) = &r.rpo {
                            dt { "RPO" } dd {
                                (rpo.seconds.map_or_else(|| "–".to_string(), secs)) " behind the " (rpo.reference)
                                @if let Some(b) = rpo.budget_seconds { " (budget " (secs(b)) ")" }
                            }
                        }
                    }
                }
            }
            @if let Some(rto) = &r.rto {
                h3 { "Recovery time" }
                (page::rto_bars(rto))
            }
            @if !r.checks.is_empty() {
                h3 { "Checks" }
                ul.tight.checks {
                    @for c in &r.checks {
                        li data-check=(c.name) data-passed=(c.passed) {
                            @if c.passed { (page::verdict("passed", "PASS", None)) } @else { (page::verdict("failed", "FAIL", None)) }
                            " " strong { (c.name) } ": expected " (c.expected) ", observed " (opt(c.observed.as_deref()))
                            @if let Some(m) = &c.message { br; span.small { (m) } }
                        }
                    }
                }
            }
            @if let Some(a) = &r.amcheck {
                h3 { "Integrity (pg_amcheck)" }
                p data-amcheck=(a.findings_label()) { (a.headline()) }
                @let lines = a.finding_lines(crate::gameday::report::AMCHECK_LISTED);
                @if !lines.is_empty() { ul.tight { @for f in &lines { li { code { (f) } } } } }
            }
            @for k in &r.kept { p.small { "kept: " (k) } }
        }
    };
    page::document(&format!("pgdrill game day {}", r.name), body)
}

/// `3h 20m`, `4d 2h`, `45s`.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_game_day_page() {
        let mut r = crate::gameday::report::tests::record();
        r.description = "<img src=x onerror=alert(1)>".into();
        let html = gameday_html(&r);
        insta::assert_snapshot!("gameday-report.html", html.replace("><", ">\n<"));
        assert!(html.contains(r#"data-gameday="orders-quarterly" data-verdict="failed""#));
        assert!(
            html.contains(r#"data-phase="restore_base_backup""#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-check="orphans" data-passed="false""#),
            "{html}"
        );
        assert!(html.contains("over the budget"), "{html}");
        assert!(html.contains("&lt;img src=x"), "escaped: {html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("href="), "{html}");
        assert_eq!(age(59), "59s");
        assert_eq!(age(3_700), "1h 1m");
        assert_eq!(age(90_000), "1d 1h");
    }
}
