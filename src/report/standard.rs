//! The standard set of reporters a run writes: progress lines, `junit.xml`, `rto.json`,
//! `summary.md` and `metrics.prom`. Only assembles them; each format lives in its own file.

use std::io::Write;
use std::path::Path;

use super::{
    JunitReporter, MarkdownReporter, MetricsReporter, ProgressReporter, Reporters, RtoJsonReporter,
};

/// Progress on `progress_out`, and `junit.xml`, `rto.json` and `summary.md` in `dir`
/// (usually the directory [`prepare_run_dir`](super::prepare_run_dir) returned).
pub fn standard_reporters(
    dir: &Path,
    progress_out: Box<dyn Write + Send>,
    is_terminal: bool,
) -> Reporters {
    Reporters::new()
        .with(ProgressReporter::new(progress_out, is_terminal))
        .with(JunitReporter::new(dir))
        .with(RtoJsonReporter::new(dir))
        .with(MarkdownReporter::new(dir))
        .with(MetricsReporter::new(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn standard_reporters_write_all_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = fixture::SharedBuf::default();
        let mut all = standard_reporters(dir.path(), Box::new(out.clone()), false);
        assert_eq!(all.len(), 5);
        fixture::feed(&mut all, &fixture::events()).unwrap();
        for f in [
            JunitReporter::FILE,
            RtoJsonReporter::FILE,
            MarkdownReporter::FILE,
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
