//! What ends a run: a process went away or stopped answering, something the run needs
//! could not be made, the output could not be written, or the master's rules and a
//! node's disagreed (a bug). Each is a variant, so `main` and the tests can tell them
//! apart; the text is what the user reads after `error: `.

use std::fmt;

/// An error that ends the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fatal {
    /// A process of the run exited or could not be reached.
    Gone(String),
    /// No process answered for the watchdog's time.
    Hung {
        /// How long the master waited, in seconds.
        secs: u64,
        /// Who owed what.
        owed: String,
    },
    /// Something the run needs could not be made: a process, a socket, a log.
    Setup(String),
    /// Standard output or the trace could not be written.
    Output(String),
    /// The master's rules and a node's disagree, or a loop did not end: a bug.
    Bug(String),
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fatal::Gone(why) | Fatal::Setup(why) | Fatal::Output(why) => f.write_str(why),
            Fatal::Hung { secs, owed } => {
                write!(f, "no process answered for {secs}s (waiting on {owed}); giving up")
            }
            Fatal::Bug(why) => write!(f, "bug: {why}"),
        }
    }
}

impl From<std::io::Error> for Fatal {
    fn from(e: std::io::Error) -> Self {
        Fatal::Gone(e.to_string())
    }
}

/// Standard output cannot be written (a closed pipe).
pub fn stdout_gone(e: std::io::Error) -> Fatal {
    Fatal::Output(format!("cannot write standard output: {e}"))
}
