//! The master process: reads commands, runs them serially, prints their output.
//!
//! `run` walks the command lines; `system` owns the processes and links of a running
//! system; `ledger` knows what every channel holds; `observer` is the observer process's
//! own loop (a child role, here because it serves the master).
//!
//! Commands run *serially* in meaning but not in time: the master sends a command as
//! soon as what it needs to know is known, without waiting for earlier answers, and
//! prints every answer in command order. Each node runs its commands in the order given,
//! and a node waits for a message it was told to receive, so the result is the same as
//! running one command at a time, and the output is too.

mod ledger;
pub mod observer;
mod prompt;
mod run;
mod system;

pub use ledger::{ChannelId, Delivery, Ledger};
pub use run::{run, Config, Input};

/// An error that ends the run: a process died or stopped answering, or a bug showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Fatal {
    fn from(e: std::io::Error) -> Self {
        Fatal(e.to_string())
    }
}
