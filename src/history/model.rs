//! Pure aggregation of earlier runs and game days: per scenario and per archive, runs, passes,
//! pass rate, last run and last success, RTO and RPO trends, and whether the last game day is
//! older than allowed. `now` is passed in; it never reads the clock or a file.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One scenario result of a run, or one game day, as history needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The scenario's name (runs) or the archive, `s3://bucket/path/serverName` (game days).
    pub key: String,
    /// Where it comes from: the run id, or the game day's directory name. A sample seen twice
    /// from the same source (a run directory reached through a `latest` link and by its own
    /// name) counts once.
    pub source: String,
    pub at: DateTime<Utc>,
    /// `passed`, `failed` or `error`.
    pub status: String,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
}

impl Sample {
    pub fn passed(&self) -> bool {
        self.status == "passed"
    }
}

/// What was read: scenario results of runs, and game days.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Entries {
    pub runs: Vec<Sample>,
    pub gamedays: Vec<Sample>,
}

impl Entries {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.gamedays.is_empty()
    }

    pub fn extend(&mut self, other: Entries) {
        self.runs.extend(other.runs);
        self.gamedays.extend(other.gamedays);
    }

    /// The newest passed run of each scenario (by name).
    pub fn last_run_successes(&self) -> BTreeMap<String, DateTime<Utc>> {
        last_successes(&self.runs)
    }

    /// The newest passed game day of each archive (`s3://…/serverName`).
    pub fn last_gameday_successes(&self) -> BTreeMap<String, DateTime<Utc>> {
        last_successes(&self.gamedays)
    }
}

fn last_successes(samples: &[Sample]) -> BTreeMap<String, DateTime<Utc>> {
    let mut last = BTreeMap::new();
    for s in samples.iter().filter(|s| s.passed()) {
        let t = last.entry(s.key.clone()).or_insert(s.at);
        *t = (*t).max(s.at);
    }
    last
}

/// A measure over time: the series oldest first, the latest, the median, and the latest's
/// change against the median as a fraction (`0.25` is 25 % slower or further behind).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trend {
    pub series: Vec<f64>,
    pub latest: Option<f64>,
    pub median: Option<f64>,
    pub latest_vs_median: Option<f64>,
}

impl Trend {
    fn of(series: Vec<f64>) -> Self {
        let latest = series.last().copied();
        let median = median(&series);
        let latest_vs_median = match (latest, median) {
            (Some(l), Some(m)) if m > 0.0 => Some((l - m) / m),
            _ => None,
        };
        Trend {
            series,
            latest,
            median,
            latest_vs_median,
        }
    }
}

fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// One scenario (or archive) over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioHistory {
    pub name: String,
    pub runs: usize,
    pub passes: usize,
    /// `passes / runs`, 0 to 1.
    pub pass_rate: f64,
    pub last_run: DateTime<Utc>,
    /// The last run's status: `passed`, `failed` or `error`.
    pub last_status: String,
    pub last_success: Option<DateTime<Utc>>,
    pub rto: Trend,
    pub rpo: Trend,
}

/// One archive's game days, and whether the last is too old (ADR 007's quarterly drill).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveHistory {
    #[serde(flatten)]
    pub history: ScenarioHistory,
    /// Days from the last game day to `generated_at`.
    pub last_gameday_age_days: f64,
    /// The last game day is older than `max_gameday_age_days`.
    pub gameday_overdue: bool,
}

/// Every scenario's and archive's history as of `generated_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub generated_at: DateTime<Utc>,
    pub max_gameday_age_days: f64,
    /// By scenario name.
    pub scenarios: Vec<ScenarioHistory>,
    /// By archive.
    pub archives: Vec<ArchiveHistory>,
    /// The newest game day of any archive; `null` when none was found.
    pub last_gameday: Option<DateTime<Utc>>,
    /// No game day at all, or the newest older than `max_gameday_age_days`.
    pub gameday_overdue: bool,
}

impl History {
    /// Aggregate `entries` as of `now`; a game day older than `max_gameday_age_seconds` is
    /// overdue.
    pub fn build(entries: &Entries, now: DateTime<Utc>, max_gameday_age_seconds: u64) -> Self {
        let max_days = max_gameday_age_seconds as f64 / 86_400.0;
        let scenarios = group(&entries.runs);
        let archives: Vec<ArchiveHistory> = group(&entries.gamedays)
            .into_iter()
            .map(|h| {
                let age = (now - h.last_run).num_seconds() as f64 / 86_400.0;
                ArchiveHistory {
                    last_gameday_age_days: age,
                    gameday_overdue: age > max_days,
                    history: h,
                }
            })
            .collect();
        let last_gameday = archives.iter().map(|a| a.history.last_run).max();
        let gameday_overdue =
            last_gameday.is_none_or(|t| (now - t).num_seconds() as f64 / 86_400.0 > max_days);
        History {
            generated_at: now,
            max_gameday_age_days: max_days,
            scenarios,
            archives,
            last_gameday,
            gameday_overdue,
        }
    }
}

/// Samples by key (sorted by name), each key's samples oldest first, duplicates dropped.
fn group(samples: &[Sample]) -> Vec<ScenarioHistory> {
    let mut by_key: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for s in samples {
        if seen.insert((s.key.as_str(), s.source.as_str())) {
            by_key.entry(&s.key).or_default().push(s);
        }
    }
    by_key
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_by_key(|s| s.at);
            let last = v[v.len() - 1];
            let passes = v.iter().filter(|s| s.passed()).count();
            ScenarioHistory {
                name: name.to_string(),
                runs: v.len(),
                passes,
                pass_rate: passes as f64 / v.len() as f64,
                last_run: last.at,
                last_status: last.status.clone(),
                last_success: v.iter().filter(|s| s.passed()).map(|s| s.at).max(),
                rto: Trend::of(v.iter().filter_map(|s| s.rto_seconds).collect()),
                rpo: Trend::of(v.iter().filter_map(|s| s.rpo_seconds).collect()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn day(d: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(d)
    }

    fn sample(key: &str, source: &str, d: i64, status: &str, rto: Option<f64>) -> Sample {
        Sample {
            key: key.into(),
            source: source.into(),
            at: day(d),
            status: status.into(),
            rto_seconds: rto,
            rpo_seconds: rto.map(|r| r / 10.0),
        }
    }

    fn runs() -> Entries {
        Entries {
            // Out of order on purpose: the series is sorted by time.
            runs: vec![
                sample("a", "r3", 3, "failed", Some(4.0)),
                sample("a", "r1", 1, "passed", Some(2.0)),
                sample("a", "r2", 2, "passed", Some(3.0)),
                sample("b", "r1", 1, "error", None),
            ],
            gamedays: vec![sample(
                "s3://b/p/srv",
                "gameday-x-1",
                0,
                "passed",
                Some(60.0),
            )],
        }
    }

    #[test]
    fn pass_rate_last_success_and_trend() {
        let h = History::build(&runs(), day(10), 92 * 86_400);
        assert_eq!(h.scenarios.len(), 2);
        let a = &h.scenarios[0];
        assert_eq!((a.name.as_str(), a.runs, a.passes), ("a", 3, 2));
        assert!((a.pass_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.last_run, day(3));
        assert_eq!(a.last_status, "failed");
        assert_eq!(a.last_success, Some(day(2)));
        assert_eq!(a.rto.series, [2.0, 3.0, 4.0]);
        assert_eq!(a.rto.latest, Some(4.0));
        assert_eq!(a.rto.median, Some(3.0));
        assert!((a.rto.latest_vs_median.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.rpo.series, [0.2, 0.3, 0.4]);
        let b = &h.scenarios[1];
        assert_eq!((b.runs, b.passes, b.pass_rate), (1, 0, 0.0));
        assert_eq!(b.last_success, None);
        assert!(b.rto.series.is_empty() && b.rto.median.is_none());
    }

    #[test]
    fn median_of_an_even_series_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn gameday_overdue_or_not() {
        let fresh = History::build(&runs(), day(92), 92 * 86_400);
        assert!(!fresh.archives[0].gameday_overdue);
        assert!(!fresh.gameday_overdue);
        assert_eq!(fresh.archives[0].last_gameday_age_days, 92.0);
        assert_eq!(fresh.last_gameday, Some(day(0)));

        let late = History::build(&runs(), day(93), 92 * 86_400);
        assert!(late.archives[0].gameday_overdue);
        assert!(late.gameday_overdue);

        let none = History::build(
            &Entries {
                runs: runs().runs,
                gamedays: vec![],
            },
            day(1),
            92 * 86_400,
        );
        assert!(none.archives.is_empty());
        assert!(none.gameday_overdue, "no game day at all is overdue");
    }

    #[test]
    fn the_same_run_read_twice_counts_once() {
        // What `reports/latest` and `reports/<run-id>` both lead to.
        let mut e = runs();
        e.extend(runs());
        let h = History::build(&e, day(10), 92 * 86_400);
        assert_eq!(h.scenarios[0].runs, 3);
        assert_eq!(h.archives[0].history.runs, 1);
    }
}
