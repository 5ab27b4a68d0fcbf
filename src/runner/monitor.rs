//! Watches the source's archiver while an object-store error window is open, on its own
//! connection, concurrently with the rest of the plan: when `pg_stat_archiver` first shows a
//! failure, where archiving stood when the window closed, when it caught up. Only reads.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::sql::{ArchiverStat, archiver_stat};

/// How often the watch reads `pg_stat_archiver`.
const POLL: Duration = Duration::from_millis(100);

/// What one watch saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// From the window's start until `failed_count` first rose.
    pub failing_after: Option<Duration>,
    /// `failed_count` increase while the window was open.
    pub failed_attempts: u64,
    /// `failed_count` just before the window opened.
    pub baseline_failed_count: i64,
    /// The reading taken as the window closed; `None` if the watch was stopped before.
    pub at_close: Option<ArchiverStat>,
    /// From the window's end until nothing was waiting to be archived.
    pub caught_up_after: Option<Duration>,
}

/// A running watch; `finish` stops it and returns what it saw.
pub struct Watch {
    stop: watch::Sender<bool>,
    task: JoinHandle<Seen>,
}

impl Watch {
    /// Watch from `started` (the window opening, `baseline` read just before it) for
    /// `window`, then up to `catch_up` for the queue to drain.
    pub fn spawn(
        client: Client,
        baseline: ArchiverStat,
        started: Instant,
        window: Duration,
        catch_up: Duration,
    ) -> Self {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(run(client, baseline, started, window, catch_up, rx));
        Watch { stop, task }
    }

    /// Let the watch end by itself within `grace` (it ends once archiving has caught up),
    /// else stop it; returns what it saw either way.
    pub async fn finish(mut self, grace: Duration) -> Seen {
        if let Ok(r) = tokio::time::timeout(grace, &mut self.task).await {
            return r.unwrap_or_default();
        }
        let _ = self.stop.send(true);
        (&mut self.task).await.unwrap_or_default()
    }
}

async fn run(
    client: Client,
    baseline: ArchiverStat,
    started: Instant,
    window: Duration,
    catch_up: Duration,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen {
        baseline_failed_count: baseline.failed_count,
        ..Seen::default()
    };
    let closes = started + window;
    let mut last = baseline.clone();
    // Phase 1: the window is open.
    while Instant::now() < closes {
        if !pause(&mut stop, POLL.min(closes - Instant::now())).await {
            // Stopped while the window is open (a crash comes next): one last reading, so a
            // failure that appeared since the last poll is not missed.
            if seen.failing_after.is_none()
                && let Ok(now) = archiver_stat(&client).await
                && now.failed_count > baseline.failed_count
            {
                seen.failing_after = Some(started.elapsed());
            }
            return seen;
        }
        let Ok(now) = archiver_stat(&client).await else {
            return seen;
        };
        if seen.failing_after.is_none() && now.failed_count > baseline.failed_count {
            seen.failing_after = Some(started.elapsed());
        }
        last = now;
    }
    // The window closed: where archiving stands now.
    let Ok(close) = archiver_stat(&client).await else {
        seen.failed_attempts = (last.failed_count - baseline.failed_count).max(0) as u64;
        return seen;
    };
    if seen.failing_after.is_none() && close.failed_count > baseline.failed_count {
        seen.failing_after = Some(started.elapsed());
    }
    seen.failed_attempts = (close.failed_count - baseline.failed_count).max(0) as u64;
    let closed = Instant::now();
    seen.at_close = Some(close.clone());
    // Phase 2: until the queue is empty.
    let mut ready = close.ready;
    loop {
        if ready == 0 {
            seen.caught_up_after = Some(closed.elapsed());
            return seen;
        }
        if closed.elapsed() >= catch_up || !pause(&mut stop, POLL).await {
            return seen;
        }
        match archiver_stat(&client).await {
            Ok(s) => ready = s.ready,
            Err(_) => return seen,
        }
    }
}

/// Sleep for `d` unless stopped first; `false` when stopped.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}
