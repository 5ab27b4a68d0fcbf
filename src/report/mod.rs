//! Report writers (JUnit XML, RTO JSON, Markdown summary, HTML, Prometheus metrics, live progress) built from run events
//! only, and the RTO model fitted over RTO JSON read back; this module never runs drills,
//! touches backends or sees credentials.

mod dir;
mod error;
mod html;
mod junit;
mod markdown;
pub mod metrics;
mod progress;
mod record;
mod reporter;
mod rto;
pub mod rto_model;
mod standard;
mod task;

#[cfg(test)]
mod fixture;

pub use dir::{LATEST, new_run_id, prepare_run_dir};
pub use error::ReportError;
pub use html::{HtmlReporter, gameday_html, history_html};
pub use junit::JunitReporter;
pub use markdown::MarkdownReporter;
pub use metrics::MetricsReporter;
pub use progress::ProgressReporter;
pub use reporter::{Reporter, Reporters};
pub use rto::RtoJsonReporter;
pub use standard::standard_reporters;
pub use task::ReporterTask;
