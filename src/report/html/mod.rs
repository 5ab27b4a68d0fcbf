//! `report.html`: one self-contained page per run (from events only) and per game day (from
//! its record), and the history section and page; never fetches anything from outside the
//! page (inline CSS and SVG only) and never reads or writes a file but its own.

mod gameday;
mod history;
mod page;
mod run;

pub use gameday::gameday_html;
pub use history::history_html;
pub use run::HtmlReporter;
