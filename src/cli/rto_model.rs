//! `pgdrill rto-model`: reads the RTOs recorded in run directories and game-day reports,
//! prints the fitted restore and replay rates and, given a size and a WAL volume, the RTO they
//! predict and whether an objective holds. Never runs a drill; the fit is
//! `pgdrill::report::rto_model`.

use std::path::{Path, PathBuf};

use pgdrill::error::{Error, exit};
use pgdrill::report::rto_model::{self, Verdict};

use super::args::parse_age;

/// Arguments of `pgdrill rto-model`.
#[derive(Debug, clap::Args)]
pub struct RtoModelArgs {
    /// Reports to read: run directories (their `rto.json`), game-day directories (their
    /// `gameday.json`), or those files themselves.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// The production database's size: bytes, or with a unit (kB, MB, GB, TB, KiB, MiB, GiB,
    /// TiB), e.g. `200GiB`.
    #[arg(long, value_parser = parse_bytes, requires = "wal")]
    size: Option<u64>,
    /// The WAL written since the last base backup, in the same form as --size.
    #[arg(long, value_parser = parse_bytes, requires = "size")]
    wal: Option<u64>,
    /// An RTO objective (`5m`, `300s`): exit 1 unless the predicted RTO's whole 95 % interval
    /// is within it. Needs --size and --wal.
    #[arg(long, value_parser = parse_age, requires = "size")]
    objective: Option<u64>,
}

/// `1234`, `512MiB`, `1.5GB`: a byte count, parsed as scenario sizes are.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            format!(
                "`{s}`: expected a number of bytes with an optional unit \
                 (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 512MiB or 2GB"
            )
        })
}

/// The report file a path names: itself, or the `rto.json` / `gameday.json` in it.
fn report_file(p: &Path) -> Result<PathBuf, Error> {
    if !p.is_dir() {
        return Ok(p.to_path_buf());
    }
    ["rto.json", "gameday.json"]
        .iter()
        .map(|f| p.join(f))
        .find(|f| f.is_file())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}: neither rto.json nor gameday.json in this directory",
                p.display()
            ))
        })
}

pub fn run(args: RtoModelArgs) -> anyhow::Result<i32> {
    let mut points = Vec::new();
    let mut without_bytes = 0;
    for p in &args.reports {
        let file = report_file(p)?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
        let read = rto_model::read_report(&file.display().to_string(), &text)
            .map_err(|e| Error::Usage(e.to_string()))?;
        points.extend(read.points);
        without_bytes += read.without_bytes;
    }
    println!(
        "{} recoveries with bytes in {} report(s){}",
        points.len(),
        args.reports.len(),
        if without_bytes > 0 {
            format!(
                "; {without_bytes} without bytes left out (older reports, or the backend did not measure them)"
            )
        } else {
            String::new()
        }
    );
    let fit = match rto_model::fit(&points) {
        Ok(f) => f,
        Err(why) => return Err(Error::Usage(format!("no RTO model: {why}")).into()),
    };
    print!("{}", rto_model::render_fit(&fit));
    let (Some(size), Some(wal)) = (args.size, args.wal) else {
        return Ok(exit::PASSED);
    };
    let p = fit.predict(size, wal);
    print!("{}", rto_model::render_prediction(&fit, size, wal, &p));
    let Some(objective) = args.objective else {
        return Ok(exit::PASSED);
    };
    let objective = objective as f64;
    print!("{}", rto_model::render_verdict(objective, &p));
    Ok(match p.verdict(objective) {
        Verdict::Holds => exit::PASSED,
        Verdict::Uncertain | Verdict::Fails => exit::DRILL_FAILED,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_bytes("1234"), Ok(1234));
        assert_eq!(parse_bytes("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_bytes("64 MB"), Ok(64_000_000));
        assert!(parse_bytes("GiB").is_err());
        assert!(
            parse_bytes("5 parsecs")
                .unwrap_err()
                .contains("expected a number of bytes with an optional unit")
        );
        assert!(parse_bytes("-1GB").is_err());
    }
}
