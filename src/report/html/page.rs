//! The layout every HTML report shares: the document with its inline CSS and the one inline
//! script, verdict badges, RTO phase bars and trend lines. Never loads anything from outside
//! the page, and never builds markup by concatenating strings: maud escapes every value.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::backend::Rto;
use crate::runner::Status;

/// Readable from 320 px up: fluid widths, long tokens (segment names, keys) wrap.
const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;padding:0 .75rem 2rem;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232b;background:#f6f7f9;overflow-wrap:anywhere}
main{max-width:72rem;margin:0 auto}
h1{font-size:1.35rem;margin:1rem 0 .25rem}h2{font-size:1.15rem;margin:0 0 .4rem}h3{font-size:1rem;margin:.9rem 0 .3rem}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;background:#eef0f3;padding:.5rem;border-radius:4px;margin:.3rem 0}
section.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:.8rem;margin:.9rem 0}
.muted{color:#5b6470}.small{font-size:.85rem}
dl.facts{display:grid;grid-template-columns:minmax(6rem,max-content) 1fr;gap:.15rem .7rem;margin:.3rem 0}
dl.facts dt{color:#5b6470}dl.facts dd{margin:0;min-width:0}
.verdict{display:inline-block;font-weight:700;font-size:.8rem;padding:.05rem .45rem;border-radius:3px;color:#fff;vertical-align:middle}
.verdict.passed{background:#1f7a3a}.verdict.failed{background:#b42318}.verdict.error{background:#8a5a00}.verdict.not-finished{background:#5b6470}
.reason{display:inline-block;font-size:.8rem;margin-left:.3rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,22rem),1fr));gap:.3rem 1.2rem}
ol.timeline{list-style:none;margin:.2rem 0;padding:0 0 0 .9rem;border-left:3px solid #c9ced6}
ol.timeline li{position:relative;margin:.15rem 0 .35rem;padding-left:.3rem}
ol.timeline li::before{content:"";position:absolute;left:-1.38rem;top:.4rem;width:.7rem;height:.7rem;border-radius:50%;background:#8b95a1;border:2px solid #fff}
li.write::before{background:#2a6fdb!important}li.backup::before{background:#7a3fc1!important}
li.fault::before{background:#d92d20!important}li.audit::before{background:#b8860b!important}
li.recovery::before,li.verify::before{background:#1f7a3a!important}li.target::before{background:#111!important;border-radius:0!important}
li.gap{background:repeating-linear-gradient(135deg,#fde2e1 0 6px,#fff 6px 12px);border:1px dashed #d92d20;border-radius:4px;padding:.25rem .4rem!important}
li.gap::before{background:#fff!important;border:2px dashed #d92d20!important}
li.lost .what{text-decoration:line-through;text-decoration-color:#d92d20}
.tag{font-size:.72rem;font-weight:600;text-transform:uppercase;letter-spacing:.03em;color:#5b6470;margin-right:.3rem}
.seg{background:#eef0f3;border-radius:3px;padding:0 .2rem}.seg.missing{background:#fde2e1;color:#b42318}
.bars{margin:.3rem 0}.phase{margin:.2rem 0}
.phase .label{display:flex;justify-content:space-between;gap:.5rem;font-size:.85rem}
.track{position:relative;height:.8rem;background:#eef0f3;border-radius:3px;overflow:hidden}
.bar{height:100%;background:#2a6fdb;border-radius:3px;min-width:2px}
.budget{position:absolute;top:0;bottom:0;border-left:2px dashed #b42318}
ul.tight{margin:.2rem 0;padding-left:1.2rem}
nav ul{list-style:none;padding:0;margin:.4rem 0;display:flex;flex-wrap:wrap;gap:.3rem .8rem}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{text-align:left;padding:.2rem .35rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
svg.spark{width:100%;max-width:14rem;height:1.6rem;display:block}
.overdue{color:#b42318;font-weight:700}
"#;

/// Tells a headless browser (and its test) whether the page scrolls sideways; the page reads
/// the same without it.
const SCRIPT: &str = "document.body.setAttribute('data-overflow',String(document.documentElement.scrollWidth>window.innerWidth));";

/// A complete, self-contained HTML document.
pub(super) fn document(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content="pgdrill";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
    .into_string()
}

/// The verdict badge, and next to it the slot for a stable failure reason code
/// (`wal_unavailable`, …): `reason` is `None` until results carry one.
pub(super) fn verdict(key: &str, word: &str, reason: Option<&str>) -> Markup {
    html! {
        span class={"verdict " (key)} data-verdict=(key) { (word) }
        @if let Some(code) = reason {
            span.reason data-reason=(code) { code { (code) } }
        }
    }
}

/// `passed`/`failed`/`error` and its badge.
pub(super) fn status_verdict(status: &Status, reason: Option<&str>) -> Markup {
    let (key, word) = match status {
        Status::Passed => ("passed", "PASSED"),
        Status::Failed { .. } => ("failed", "FAILED"),
        Status::Error { .. } => ("error", "ERROR"),
    };
    verdict(key, word, reason)
}

/// The RTO's phases as bars on one time axis (each starts where it started), with the budget
/// as a dashed line; widths are percentages of the RTO, so they fit any screen.
pub(super) fn rto_bars(rto: &Rto) -> Markup {
    let origin = rto.phases.first().map(|p| p.started_at);
    let span = rto
        .phases
        .iter()
        .map(|p| {
            origin.map_or(0.0, |o| {
                (p.finished_at - o).num_milliseconds() as f64 / 1000.0
            })
        })
        .fold(rto.seconds, f64::max)
        .max(1e-9);
    // The budget line only where it falls on the axis; beyond it the sentence says so.
    let budget_on_axis = rto.budget_seconds.filter(|b| *b <= span);
    let pct = |s: f64| (100.0 * s / span).clamp(0.0, 100.0);
    html! {
        div.bars data-rto=(format!("{:.3}", rto.seconds)) {
            @for p in &rto.phases {
                @let offset = origin.map_or(0.0, |o| (p.started_at - o).num_milliseconds() as f64 / 1000.0);
                div.phase data-phase=(p.name.as_str()) {
                    div.label {
                        span { (p.name.as_str()) }
                        span { (secs(p.seconds)) }
                    }
                    div.track {
                        div.bar style=(format!("margin-left:{:.2}%;width:{:.2}%", pct(offset), pct(p.seconds).min(100.0 - pct(offset)))) {}
                        @if let Some(b) = budget_on_axis {
                            div.budget style=(format!("left:{:.2}%", pct(b).min(99.5))) title="budget" {}
                        }
                    }
                }
            }
            p.small {
                "RTO " strong { (secs(rto.seconds)) }
                @if let Some(b) = rto.budget_seconds {
                    @if rto.seconds > b { span.overdue { ", over the budget of " (secs(b)) } }
                    @else { ", within the budget of " (secs(b)) }
                }
                ", " (rto.wal_segments_replayed) " WAL segment(s) replayed"
                @if let Some(why) = &rto.replay_end { "; replay ended: " code { (why) } }
            }
        }
    }
}

/// A series as a line scaled to its own range, oldest on the left; nothing under two points.
pub(super) fn sparkline(series: &[f64], label: &str) -> Markup {
    if series.len() < 2 {
        return html! {};
    }
    let (lo, hi) = series
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let range = (hi - lo).max(1e-9);
    let step = 100.0 / (series.len() - 1) as f64;
    let points: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                18.0 - 16.0 * (v - lo) / range
            )
        })
        .collect();
    html! {
        svg.spark viewBox="0 0 100 20" preserveAspectRatio="none" role="img" aria-label=(label) {
            polyline points=(points.join(" ")) fill="none" stroke="#2a6fdb" stroke-width="1.5" vector-effect="non-scaling-stroke" {}
        }
    }
}

/// `2.10 s`.
pub(super) fn secs(s: f64) -> String {
    format!("{s:.2} s")
}

/// `2026-11-22 10:00:00 UTC`.
pub(super) fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A number or `–`.
pub(super) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}
