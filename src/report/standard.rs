//! The standard set of reporters a run writes: progress lines, `junit.xml`, `rto.json`,
//! `summary.md`, `report.html` and `metrics.prom`. Only assembles them; each format lives in its own file.

use std::io::Write;
use std::path::Path;

use crate::history::Entries;

use super::{
    HtmlReporter, JunitReporter, MarkdownReporter, MetricsReporter, ProgressReporter, Reporters,
    RtoJsonReporter,
};

/// Progress on `progress_out`, and `junit.xml`, `rto.json`, `summary.md`, `report.html` and
/// `metrics.prom` in `dir` (usually the directory [`prepare_run_dir`](super::prepare_run_dir)
/// returned). `earlier`: the runs and game days read before this run, and the game-day age
/// allowed, for the HTML history section and each scenario's last success in the metrics.
pub fn standard_reporters(
    dir: &Path,
    progress_out: Box<dyn Write + Send>,
    is_terminal: bool,
    earlier: Option<(Entries, u64)>,
) -> Reporters {
    let (html, metrics) = match earlier {
        Some((entries, max_age)) => (
            HtmlReporter::new(dir).with_history(entries.clone(), max_age),
            MetricsReporter::new(dir).with_last_success(entries.last_run_successes()),
        ),
        None => (HtmlReporter::new(dir), MetricsReporter::new(dir)),
    };
    Reporters::new()
        .with(ProgressReporter::new(progress_out, is_terminal))
        .with(JunitReporter::new(dir))
        .with(RtoJsonReporter::new(dir))
        .with(MarkdownReporter::new(dir))
        .with(html)
        .with(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn standard_reporters_write_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = fixture::SharedBuf::default();
        let mut all = standard_reporters(dir.path(), Box::new(out.clone()), false, None);
        assert_eq!(all.len(), 6);
        fixture::feed(&mut all, &fixture::events()).unwrap();
        for f in [
            JunitReporter::FILE,
            RtoJsonReporter::FILE,
            MarkdownReporter::FILE,
            HtmlReporter::FILE,
            MetricsReporter::FILE,
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let progress = out.contents();
        assert!(
            progress.contains("[wal-gap-silent-loss] FAILED"),
            "{progress}"
        );
    }
}
