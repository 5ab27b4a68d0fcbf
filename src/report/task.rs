//! The reporter task: a run's events go down a channel to reporters on their own task, which
//! collects what could not be written. Never formats anything itself and never stops a run.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::runner::Event;

use super::{ReportError, Reporter, Reporters};

/// Reporters listening on their own task; [`ReporterTask::finish`] waits for them.
pub struct ReporterTask {
    handle: JoinHandle<Vec<ReportError>>,
}

impl ReporterTask {
    /// Feed every event sent on the returned sender to `reporters`, in order, then call
    /// `finish` on them once every sender is dropped.
    pub fn spawn(mut reporters: Reporters) -> (mpsc::UnboundedSender<Event>, Self) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let handle = tokio::spawn(async move {
            let mut errors = Vec::new();
            while let Some(ev) = rx.recv().await {
                if let Err(e) = reporters.on_event(&ev) {
                    errors.push(e);
                }
            }
            if let Err(e) = reporters.finish() {
                errors.push(e);
            }
            errors
        });
        (tx, ReporterTask { handle })
    }

    /// Wait until the reporters have seen the last event and written their files; what failed
    /// on the way, in order (nothing when the task itself died).
    pub async fn finish(self) -> Vec<ReportError> {
        self.handle.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records what it is called with.
    struct Probe(Arc<Mutex<Vec<String>>>);

    impl Reporter for Probe {
        fn on_event(&mut self, _: &Event) -> Result<(), ReportError> {
            self.0.lock().unwrap().push("event".into());
            Err(ReportError::NoRun)
        }
        fn finish(&mut self) -> Result<(), ReportError> {
            self.0.lock().unwrap().push("finish".into());
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_event_then_finish_and_the_errors_on_the_way() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, task) = ReporterTask::spawn(Reporters::new().with(Probe(seen.clone())));
        for ev in crate::report::fixture::events().into_iter().take(2) {
            tx.send(ev).unwrap();
        }
        drop(tx);
        let errors = task.finish().await;
        assert_eq!(errors.len(), 2);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, ["event", "event", "finish"]);
    }
}
