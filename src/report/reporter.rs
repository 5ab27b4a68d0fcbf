//! The `Reporter` trait and the fan-out that feeds one event stream to several reporters; never
//! formats anything itself and knows no report format.

use crate::runner::Event;

use super::ReportError;

/// Something that turns run events into a report.
///
/// `on_event` is called for every event, in order; `finish` once after the last one (also when
/// the run was interrupted) and writes whatever files the reporter produces.
pub trait Reporter {
    fn on_event(&mut self, event: &Event) -> Result<(), ReportError>;
    fn finish(&mut self) -> Result<(), ReportError>;
}

/// Forwards every call to each of its reporters, in order.
///
/// One reporter failing never keeps the others from seeing the event or from writing their
/// files: every reporter is called, and the errors are returned together afterwards.
#[derive(Default)]
pub struct Reporters {
    reporters: Vec<Box<dyn Reporter + Send>>,
}

impl Reporters {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, reporter: Box<dyn Reporter + Send>) {
        self.reporters.push(reporter);
    }

    /// Builder form of [`push`](Self::push).
    pub fn with(mut self, reporter: impl Reporter + Send + 'static) -> Self {
        self.reporters.push(Box::new(reporter));
        self
    }

    pub fn len(&self) -> usize {
        self.reporters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reporters.is_empty()
    }

    fn each(
        &mut self,
        mut call: impl FnMut(&mut (dyn Reporter + Send)) -> Result<(), ReportError>,
    ) -> Result<(), ReportError> {
        let mut errors: Vec<ReportError> = self
            .reporters
            .iter_mut()
            .filter_map(|r| call(r.as_mut()).err())
            .collect();
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ReportError::Several(errors)),
        }
    }
}

impl Reporter for Reporters {
    fn on_event(&mut self, event: &Event) -> Result<(), ReportError> {
        self.each(|r| r.on_event(event))
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        self.each(|r| r.finish())
    }
}

impl std::fmt::Debug for Reporters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporters")
            .field("len", &self.reporters.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::report::fixture;

    /// Counts calls; fails every call when `fail` is set.
    struct Probe {
        seen: Arc<Mutex<Vec<String>>>,
        fail: bool,
    }

    impl Reporter for Probe {
        fn on_event(&mut self, _: &Event) -> Result<(), ReportError> {
            self.seen.lock().unwrap().push("event".into());
            if self.fail {
                Err(ReportError::NoRun)
            } else {
                Ok(())
            }
        }
        fn finish(&mut self) -> Result<(), ReportError> {
            self.seen.lock().unwrap().push("finish".into());
            if self.fail {
                Err(ReportError::NoRun)
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn one_failing_reporter_does_not_starve_the_others() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut all = Reporters::new()
            .with(Probe {
                seen: Arc::new(Mutex::new(Vec::new())),
                fail: true,
            })
            .with(Probe {
                seen: seen.clone(),
                fail: false,
            });
        let events = fixture::events();
        assert!(all.on_event(&events[0]).is_err());
        assert!(matches!(all.finish(), Err(ReportError::NoRun)));
        assert_eq!(*seen.lock().unwrap(), ["event", "finish"]);

        let mut two_bad = Reporters::new()
            .with(Probe {
                seen: seen.clone(),
                fail: true,
            })
            .with(Probe { seen, fail: true });
        let err = two_bad.finish().unwrap_err();
        assert!(
            matches!(&err, ReportError::Several(e) if e.len() == 2),
            "{err}"
        );
    }
}
