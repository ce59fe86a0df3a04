//! Bad input the user can fix, as one diagnostic that any layer's error can carry: what went
//! wrong, and how to fix it. Exit code 1.

use miette::Diagnostic;

/// `what` went wrong; `help` says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Diagnostic)]
#[error("{what}")]
#[diagnostic(code(mpfr::usage), help("{help}"))]
pub struct Usage {
    pub what: String,
    pub help: String,
}

impl Usage {
    pub fn new(what: impl Into<String>, help: impl Into<String>) -> Self {
        Usage {
            what: what.into(),
            help: help.into(),
        }
    }
}
