//! JUnit files pgdrill wrote, parsed with quick-junit (the crate that writes them): the
//! testcases of a report and what each says, as fields (status, message, description,
//! properties, system-out), never by searching the XML text. Runs nothing.

#![allow(dead_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus};

/// A parsed JUnit file.
pub struct Junit {
    pub report: Report,
    path: PathBuf,
}

impl Junit {
    /// Read and parse `path`; panics with the file's text when it is not JUnit.
    pub fn read(path: &Path) -> Self {
        let xml =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let report = Report::deserialize_from_str(&xml)
            .unwrap_or_else(|e| panic!("{} is not JUnit: {e}\n{xml}", path.display()));
        Self {
            report,
            path: path.to_path_buf(),
        }
    }

    /// Every testcase, suite after suite, in file order.
    pub fn cases(&self) -> impl Iterator<Item = Case<'_>> {
        self.report
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .map(Case)
    }

    /// The testcase called `name`; panics, listing the report, when there is none.
    pub fn case(&self, name: &str) -> Case<'_> {
        self.cases()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("no testcase {name} in {}:\n{self}", self.path.display()))
    }

    /// The testcases that failed or errored (a skipped one is neither).
    pub fn failed_or_errored(&self) -> Vec<Case<'_>> {
        self.cases()
            .filter(|c| c.is_failure() || c.is_error())
            .collect()
    }
}

impl fmt::Display for Junit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.report.test_suites {
            writeln!(f, "testsuite {}", s.name.as_str())?;
            for c in &s.test_cases {
                write!(f, "{}", Case(c))?;
            }
        }
        Ok(())
    }
}

/// One testcase of a [`Junit`] report.
#[derive(Clone, Copy)]
pub struct Case<'a>(pub &'a TestCase);

impl std::ops::Deref for Case<'_> {
    type Target = TestCase;
    fn deref(&self) -> &TestCase {
        self.0
    }
}

impl<'a> Case<'a> {
    /// A property's value, if the testcase has it.
    pub fn property(&self, name: &str) -> Option<String> {
        self.0
            .properties
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| p.value.as_str().to_string())
    }

    fn non_success(&self) -> Option<(&'a NonSuccessKind, Option<&'a str>, Option<&'a str>)> {
        match &self.0.status {
            TestCaseStatus::NonSuccess {
                kind,
                message,
                description,
                ..
            } => Some((
                kind,
                message.as_ref().map(|m| m.as_str()),
                description.as_ref().map(|d| d.as_str()),
            )),
            _ => None,
        }
    }

    /// A `<failure>`: the verdict went against the scenario's expectations.
    pub fn is_failure(&self) -> bool {
        matches!(self.non_success(), Some((NonSuccessKind::Failure, _, _)))
    }

    /// An `<error>`: the harness could not reach a verdict.
    pub fn is_error(&self) -> bool {
        matches!(self.non_success(), Some((NonSuccessKind::Error, _, _)))
    }

    /// The failure's or error's message (its first reason), empty when it passed.
    pub fn message(&self) -> &'a str {
        self.non_success().and_then(|(_, m, _)| m).unwrap_or("")
    }

    /// The failure's or error's description (every reason, then the loss explanation), empty
    /// when it passed.
    pub fn description(&self) -> &'a str {
        self.non_success().and_then(|(_, _, d)| d).unwrap_or("")
    }

    /// `<system-out>`: the step log, then the loss explanation; empty when there is none.
    pub fn out(&self) -> &'a str {
        self.0.system_out.as_ref().map_or("", |o| o.as_str())
    }

    /// Everything the testcase says in words: message, description, system-out and -err, and
    /// every property value, one per line. For what must be said nowhere.
    pub fn text(&self) -> String {
        let err = self.0.system_err.as_ref().map_or("", |e| e.as_str());
        [self.message(), self.description(), self.out(), err]
            .into_iter()
            .chain(self.0.properties.iter().map(|p| p.value.as_str()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Case<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.non_success() {
            Some((NonSuccessKind::Failure, ..)) => "failure",
            Some((NonSuccessKind::Error, ..)) => "error",
            None if matches!(self.0.status, TestCaseStatus::Skipped { .. }) => "skipped",
            None => "passed",
        };
        writeln!(f, "testcase {} ({status})", self.0.name.as_str())?;
        if !self.message().is_empty() {
            writeln!(f, "  message: {}", self.message())?;
        }
        if !self.description().is_empty() {
            writeln!(f, "  description:\n{}", self.description())?;
        }
        for p in &self.0.properties {
            writeln!(f, "  {} = {}", p.name.as_str(), p.value.as_str())?;
        }
        if !self.out().is_empty() {
            writeln!(f, "  system-out:\n{}", self.out())?;
        }
        Ok(())
    }
}
