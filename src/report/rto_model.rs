//! The RTO model: RTO ≈ fixed + size/restore_rate + WAL/replay_rate, fitted by least squares
//! over the recoveries recorded in `rto.json` and `gameday.json` files, with standard errors,
//! and the RTO it predicts for a given size and WAL volume. Pure: it is handed file texts and
//! returns numbers and text; it never reads files, runs drills or prints.

use std::fmt::Write as _;

use serde_json::Value;

use super::record::bytes;

/// Bytes per GB, the unit the fit works in (its coefficients are seconds per GB).
const GB: f64 = 1e9;

/// One recovery with its bytes: where it came from, its RTO and what it moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The file and scenario (or target) it was read from.
    pub source: String,
    pub seconds: f64,
    /// The base backup as restored (`base_backup_bytes`).
    pub size_bytes: u64,
    /// The WAL distance replayed (`wal_replayed_bytes`).
    pub wal_bytes: u64,
}

/// The recoveries of one report: those carrying both byte counts, and how many did not.
#[derive(Debug, Default, PartialEq)]
pub struct Read {
    pub points: Vec<Point>,
    pub without_bytes: usize,
}

/// Not a report pgdrill wrote.
#[derive(Debug, thiserror::Error)]
#[error("{label}: not JSON: {source}")]
pub struct ReadError {
    label: String,
    source: serde_json::Error,
}

/// Every `rto` object in a report (`rto.json`'s scenarios and random targets, a game day's
/// `gameday.json`): one point each when it carries `base_backup_bytes` and
/// `wal_replayed_bytes`.
pub fn read_report(label: &str, text: &str) -> Result<Read, ReadError> {
    let v: Value = serde_json::from_str(text).map_err(|source| ReadError {
        label: label.to_string(),
        source,
    })?;
    let mut read = Read::default();
    collect(&v, label, &mut read);
    Ok(read)
}

fn collect(v: &Value, at: &str, read: &mut Read) {
    match v {
        Value::Object(map) => {
            // Name the point by its scenario, or by a random target's index.
            let here = match (map.get("name"), map.get("index")) {
                (Some(Value::String(n)), _) => format!("{at} {n}"),
                (_, Some(Value::Number(i))) => format!("{at} target {i}"),
                _ => at.to_string(),
            };
            for (k, child) in map {
                if k == "rto"
                    && let Some(seconds) = child.get("seconds").and_then(Value::as_f64)
                {
                    let size = child.get("base_backup_bytes").and_then(Value::as_u64);
                    let wal = child.get("wal_replayed_bytes").and_then(Value::as_u64);
                    match (size, wal) {
                        (Some(size_bytes), Some(wal_bytes)) => read.points.push(Point {
                            source: here.clone(),
                            seconds,
                            size_bytes,
                            wal_bytes,
                        }),
                        _ => read.without_bytes += 1,
                    }
                } else {
                    collect(child, &here, read);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, at, read)),
        _ => {}
    }
}

/// Why the points cannot be fitted: said instead of printing numbers that mean nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unfit {
    #[error(
        "too few recoveries with bytes to fit: {0}; the model has 3 parameters and needs at least 4 recoveries (one more for its uncertainty)"
    )]
    TooFew(usize),
    #[error(
        "every recovery restored about the same size ({0}): the restore rate cannot be told from the fixed time; drill at other sizes"
    )]
    SameSize(String),
    #[error(
        "every recovery replayed about the same WAL ({0}): the replay rate cannot be told from the fixed time; drill with other WAL volumes"
    )]
    SameWal(String),
    #[error(
        "size and WAL grew together in every recovery: their effects cannot be told apart; vary one without the other"
    )]
    Collinear,
}

/// A coefficient with its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub std_error: f64,
}

/// The fitted model: seconds = fixed + size_gb × per_gb_size + wal_gb × per_gb_wal.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub points: usize,
    /// Seconds.
    pub fixed: Estimate,
    /// Seconds per GB (10^9 bytes) restored.
    pub per_gb_size: Estimate,
    /// Seconds per GB of WAL replayed.
    pub per_gb_wal: Estimate,
    /// The drills' standard deviation around the fit, in seconds.
    pub residual_seconds: f64,
    /// Degrees of freedom of the residual (points − 3).
    pub dof: usize,
    /// (XᵀX)⁻¹ in GB units, for prediction intervals.
    inverse: [[f64; 3]; 3],
    size_range: (u64, u64),
    wal_range: (u64, u64),
}

/// A rate in MB/s (10^6 bytes) from seconds per GB, with its standard error (first order);
/// `None` when the coefficient is not positive: the drills show no cost to divide.
pub fn rate(per_gb: Estimate) -> Option<Estimate> {
    (per_gb.value > 0.0).then(|| Estimate {
        value: 1000.0 / per_gb.value,
        std_error: 1000.0 * per_gb.std_error / (per_gb.value * per_gb.value),
    })
}

/// Relative spread (max − min) / max below which a column cannot be fitted.
const SAME: f64 = 0.01;
/// |correlation| of size and WAL above which their effects cannot be separated.
const COLLINEAR: f64 = 0.995;

fn spread(xs: &[u64]) -> (u64, u64) {
    let lo = xs.iter().copied().min().unwrap_or(0);
    let hi = xs.iter().copied().max().unwrap_or(0);
    (lo, hi)
}

fn too_similar((lo, hi): (u64, u64)) -> bool {
    hi == 0 || (hi - lo) as f64 / hi as f64 <= SAME
}

/// Least squares over the points, or why not.
pub fn fit(points: &[Point]) -> Result<Fit, Unfit> {
    let n = points.len();
    if n < 4 {
        return Err(Unfit::TooFew(n));
    }
    let sizes: Vec<u64> = points.iter().map(|p| p.size_bytes).collect();
    let wals: Vec<u64> = points.iter().map(|p| p.wal_bytes).collect();
    let (size_range, wal_range) = (spread(&sizes), spread(&wals));
    if too_similar(size_range) {
        return Err(Unfit::SameSize(bytes(size_range.1)));
    }
    if too_similar(wal_range) {
        return Err(Unfit::SameWal(bytes(wal_range.1)));
    }
    let x: Vec<[f64; 3]> = points
        .iter()
        .map(|p| [1.0, p.size_bytes as f64 / GB, p.wal_bytes as f64 / GB])
        .collect();
    let y: Vec<f64> = points.iter().map(|p| p.seconds).collect();
    if correlation(&x, 1, 2).abs() > COLLINEAR {
        return Err(Unfit::Collinear);
    }
    let mut xtx = [[0.0; 3]; 3];
    let mut xty = [0.0; 3];
    for (row, yi) in x.iter().zip(&y) {
        for i in 0..3 {
            xty[i] += row[i] * yi;
            for j in 0..3 {
                xtx[i][j] += row[i] * row[j];
            }
        }
    }
    let inverse = invert(&xtx).ok_or(Unfit::Collinear)?;
    let beta: Vec<f64> = (0..3)
        .map(|i| (0..3).map(|j| inverse[i][j] * xty[j]).sum())
        .collect();
    let rss: f64 = x
        .iter()
        .zip(&y)
        .map(|(row, yi)| {
            let fitted: f64 = (0..3).map(|i| row[i] * beta[i]).sum();
            (yi - fitted).powi(2)
        })
        .sum();
    let dof = n - 3;
    let variance = rss / dof as f64;
    let est = |i: usize| Estimate {
        value: beta[i],
        std_error: (variance * inverse[i][i]).max(0.0).sqrt(),
    };
    Ok(Fit {
        points: n,
        fixed: est(0),
        per_gb_size: est(1),
        per_gb_wal: est(2),
        residual_seconds: variance.sqrt(),
        dof,
        inverse,
        size_range,
        wal_range,
    })
}

fn correlation(x: &[[f64; 3]], a: usize, b: usize) -> f64 {
    let n = x.len() as f64;
    let mean = |c: usize| x.iter().map(|r| r[c]).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for r in x {
        let (da, db) = (r[a] - ma, r[b] - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if saa == 0.0 || sbb == 0.0 {
        return 1.0;
    }
    sab / (saa * sbb).sqrt()
}

/// The inverse of a symmetric 3×3 matrix, `None` when it is (nearly) singular.
fn invert(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let c = |i: usize, j: usize| {
        let (r0, r1) = ((i + 1) % 3, (i + 2) % 3);
        let (c0, c1) = ((j + 1) % 3, (j + 2) % 3);
        m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    let scale = m[0][0] * m[1][1] * m[2][2];
    if !det.is_finite() || scale <= 0.0 || det.abs() <= 1e-12 * scale {
        return None;
    }
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // The adjugate is the transpose of the cofactors.
            *v = c(j, i) / det;
        }
    }
    Some(inv)
}

/// Student's t at 97.5 % (two-sided 95 %) for `dof` degrees of freedom, rounded up between
/// the tabulated values.
fn t975(dof: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => f64::INFINITY,
        1..=30 => T[dof - 1],
        31..=40 => 2.042,
        41..=60 => 2.021,
        61..=120 => 2.000,
        _ => 1.980,
    }
}

/// The RTO predicted for a size and a WAL volume, with its 95 % prediction interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub seconds: f64,
    pub low: f64,
    pub high: f64,
}

/// Whether a stated objective holds for a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is within the objective.
    Holds,
    /// The estimate is within it, the interval's top is not.
    Uncertain,
    /// The estimate is over it.
    Fails,
}

impl Fit {
    pub fn predict(&self, size_bytes: u64, wal_bytes: u64) -> Prediction {
        let x0 = [1.0, size_bytes as f64 / GB, wal_bytes as f64 / GB];
        let b = [
            self.fixed.value,
            self.per_gb_size.value,
            self.per_gb_wal.value,
        ];
        let seconds: f64 = (0..3).map(|i| x0[i] * b[i]).sum();
        let leverage: f64 = (0..3)
            .map(|i| {
                (0..3)
                    .map(|j| x0[i] * self.inverse[i][j] * x0[j])
                    .sum::<f64>()
            })
            .sum();
        let half = t975(self.dof) * self.residual_seconds * (1.0 + leverage.max(0.0)).sqrt();
        Prediction {
            seconds,
            low: (seconds - half).max(0.0),
            high: seconds + half,
        }
    }
}

impl Prediction {
    pub fn verdict(&self, objective_seconds: f64) -> Verdict {
        if self.high <= objective_seconds {
            Verdict::Holds
        } else if self.seconds <= objective_seconds {
            Verdict::Uncertain
        } else {
            Verdict::Fails
        }
    }
}

fn rate_line(o: &mut String, what: &str, per_gb: Estimate) {
    let _ = match rate(per_gb) {
        Some(r) => writeln!(
            o,
            "  {what:<13} {:.1} MB/s ± {:.1}  ({:.2} s/GB ± {:.2})",
            r.value, r.std_error, per_gb.value, per_gb.std_error
        ),
        None => writeln!(
            o,
            "  {what:<13} no cost measured ({:.2} s/GB ± {:.2}: not positive)",
            per_gb.value, per_gb.std_error
        ),
    };
}

/// The fit as printed by `pgdrill rto-model`.
pub fn render_fit(fit: &Fit) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "RTO ≈ fixed + size/restore_rate + WAL/replay_rate, least squares over {} recoveries \
         (± standard errors, MB = 10^6 bytes)",
        fit.points
    );
    let _ = writeln!(
        o,
        "  {:<13} {:.2} s ± {:.2}",
        "fixed", fit.fixed.value, fit.fixed.std_error
    );
    rate_line(&mut o, "restore rate", fit.per_gb_size);
    rate_line(&mut o, "replay rate", fit.per_gb_wal);
    let _ = writeln!(
        o,
        "  {:<13} {:.2} s (the recoveries' spread around the fit, {} degree(s) of freedom)",
        "residual", fit.residual_seconds, fit.dof
    );
    let _ = writeln!(
        o,
        "  sizes seen {} .. {}, WAL seen {} .. {}",
        bytes(fit.size_range.0),
        bytes(fit.size_range.1),
        bytes(fit.wal_range.0),
        bytes(fit.wal_range.1)
    );
    o
}

/// A prediction as printed, with a warning when it extrapolates past the drills' sizes.
pub fn render_prediction(fit: &Fit, size_bytes: u64, wal_bytes: u64, p: &Prediction) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Predicted RTO for {} restored and {} of WAL: {:.1} s ({}), 95 % interval {:.1} .. {:.1} s",
        bytes(size_bytes),
        bytes(wal_bytes),
        p.seconds,
        minutes(p.seconds),
        p.low,
        p.high
    );
    for (what, asked, (_, hi)) in [
        ("size", size_bytes, fit.size_range),
        ("WAL", wal_bytes, fit.wal_range),
    ] {
        if asked > hi {
            let _ = writeln!(
                o,
                "  extrapolated: that {what} is {:.1}× the largest drilled; the interval assumes the rates hold there",
                asked as f64 / hi as f64
            );
        }
    }
    o
}

/// `3m 35s`, `45s`.
fn minutes(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

/// The objective's verdict as printed.
pub fn render_verdict(objective_seconds: f64, p: &Prediction) -> String {
    let v = p.verdict(objective_seconds);
    let what = match v {
        Verdict::Holds => "holds: the whole 95 % interval is within it",
        Verdict::Uncertain => {
            "not shown to hold: the estimate is within it, the top of the 95 % interval is not"
        }
        Verdict::Fails => "does not hold: the estimate is over it",
    };
    format!(
        "Objective {objective_seconds:.0} s ({}): {what}\n",
        minutes(objective_seconds)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known model: 5 s fixed, 50 MB/s restore (20 s/GB), 100 MB/s replay (10 s/GB).
    fn truth(size: u64, wal: u64) -> f64 {
        5.0 + size as f64 / 50e6 + wal as f64 / 100e6
    }

    fn point(size: u64, wal: u64, noise: f64) -> Point {
        Point {
            source: format!("{size}/{wal}"),
            seconds: truth(size, wal) + noise,
            size_bytes: size,
            wal_bytes: wal,
        }
    }

    fn sweep(noise: &[f64]) -> Vec<Point> {
        let grid = [
            (64_000_000, 16_000_000),
            (512_000_000, 16_000_000),
            (2_000_000_000, 16_000_000),
            (64_000_000, 512_000_000),
            (512_000_000, 1_000_000_000),
            (2_000_000_000, 256_000_000),
        ];
        grid.iter()
            .zip(noise.iter().cycle())
            .map(|(&(s, w), &e)| point(s, w, e))
            .collect()
    }

    #[test]
    fn exact_points_give_back_the_rates_they_were_made_with() {
        let f = fit(&sweep(&[0.0])).unwrap();
        assert!((f.fixed.value - 5.0).abs() < 1e-6, "{f:?}");
        let restore = rate(f.per_gb_size).unwrap();
        let replay = rate(f.per_gb_wal).unwrap();
        assert!((restore.value - 50.0).abs() < 1e-6, "{restore:?}");
        assert!((replay.value - 100.0).abs() < 1e-6, "{replay:?}");
        assert!(f.residual_seconds < 1e-6);
        assert_eq!(f.dof, 3);
        let p = f.predict(100_000_000_000, 10_000_000_000);
        assert!((p.seconds - truth(100_000_000_000, 10_000_000_000)).abs() < 1e-3);
    }

    #[test]
    fn noisy_points_recover_the_rates_within_their_standard_errors() {
        let f = fit(&sweep(&[0.4, -0.3, 0.1, -0.5, 0.2, 0.3])).unwrap();
        for (est, want) in [(f.fixed, 5.0), (f.per_gb_size, 20.0), (f.per_gb_wal, 10.0)] {
            assert!(est.std_error > 0.0, "{est:?}");
            assert!(
                (est.value - want).abs() < 3.0 * est.std_error,
                "{est:?} vs {want}"
            );
        }
        let p = f.predict(1_000_000_000, 100_000_000);
        let want = truth(1_000_000_000, 100_000_000);
        assert!(p.low < want && want < p.high, "{p:?} vs {want}");
        assert!(p.low < p.seconds && p.seconds < p.high);
        // Far outside the drills, the interval widens.
        let far = f.predict(50_000_000_000, 100_000_000);
        assert!(far.high - far.low > p.high - p.low);
    }

    #[test]
    fn degenerate_inputs_are_named_not_fitted() {
        assert_eq!(fit(&[point(1, 1, 0.0)]), Err(Unfit::TooFew(1)));
        assert_eq!(fit(&sweep(&[0.0])[..3]), Err(Unfit::TooFew(3)));
        let same_size: Vec<Point> = [16_000_000, 64_000_000, 256_000_000, 512_000_000]
            .iter()
            .map(|&w| point(100_000_000, w, 0.0))
            .collect();
        assert!(matches!(fit(&same_size), Err(Unfit::SameSize(_))));
        let same_wal: Vec<Point> = [16_000_000, 64_000_000, 256_000_000, 512_000_000]
            .iter()
            .map(|&s| point(s, 50_000_000, 0.0))
            .collect();
        assert!(matches!(fit(&same_wal), Err(Unfit::SameWal(_))));
        let together: Vec<Point> = [16_000_000, 64_000_000, 256_000_000, 512_000_000]
            .iter()
            .map(|&s| point(s, s / 4, 0.0))
            .collect();
        assert_eq!(fit(&together), Err(Unfit::Collinear));
    }

    #[test]
    fn durations_print_in_minutes() {
        assert_eq!(minutes(45.2), "45s");
        assert_eq!(minutes(215.1), "3m 35s");
        assert_eq!(minutes(300.0), "5m 00s");
    }

    #[test]
    fn objectives_hold_only_when_the_whole_interval_does() {
        let p = Prediction {
            seconds: 200.0,
            low: 150.0,
            high: 250.0,
        };
        assert_eq!(p.verdict(300.0), Verdict::Holds);
        assert_eq!(p.verdict(220.0), Verdict::Uncertain);
        assert_eq!(p.verdict(180.0), Verdict::Fails);
    }

    #[test]
    fn reports_yield_one_point_per_recovery_with_bytes() {
        let text = r#"{"scenarios":[
          {"name":"a","rto":{"seconds":6.0,"base_backup_bytes":100,"wal_replayed_bytes":50},
           "targets":[{"index":1,"rto":{"seconds":7.0,"base_backup_bytes":200,"wal_replayed_bytes":60}},
                      {"index":2,"rto":null}]},
          {"name":"b","rto":{"seconds":3.0,"base_backup_bytes":null}}]}"#;
        let r = read_report("r1", text).unwrap();
        assert_eq!(r.without_bytes, 1);
        let got: Vec<(&str, f64, u64, u64)> = r
            .points
            .iter()
            .map(|p| (p.source.as_str(), p.seconds, p.size_bytes, p.wal_bytes))
            .collect();
        assert_eq!(
            got,
            [("r1 a", 6.0, 100, 50), ("r1 a target 1", 7.0, 200, 60)]
        );
        assert!(read_report("x", "not json").is_err());
    }

    #[test]
    fn a_positive_cost_inverts_to_a_rate_and_a_negative_one_does_not() {
        let r = rate(Estimate {
            value: 20.0,
            std_error: 2.0,
        })
        .unwrap();
        assert_eq!((r.value, r.std_error), (50.0, 5.0));
        assert_eq!(
            rate(Estimate {
                value: -0.1,
                std_error: 1.0
            }),
            None
        );
    }
}
