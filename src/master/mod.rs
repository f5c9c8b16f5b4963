//! The master process: reads commands, runs them serially, prints their output.
//!
//! Commands run *serially* in meaning but not in time: the master sends a command as
//! soon as what it needs to know is known, without waiting for earlier answers, and
//! prints every answer in command order. Each node runs its commands in the order given,
//! and a node waits for a message it was told to receive, so the result is the same as
//! running one command at a time, and the output is too.
//!
//! | module | owns |
//! |---|---|
//! | [`run`] | the walk over the input: a file, standard input (a prompt), or with `web` |
//! | `session` | the running system and what is printed: slots, answers, waits |
//! | `dispatch` | which family runs a command, in a script or in live mode |
//! | `snapshots`, `txn`, `faults`, `check`, `live` | the command families |
//! | `rules` | whether a command makes sense against the ledger (shared with `replay`) |
//! | `expect` | what a waiting slot expects, and what each answer does |
//! | `book` | transactions, snapshots and costs as the nodes reported them |
//! | [`Ledger`] | what every channel holds and what every answer should be |
//! | `system` | the processes and links of a running system, and who owes which answer |
//! | `slots`, `printer` | command order, and where finished output goes |
//! | `load`, `prompt`, `web`, `fatal` | live mode's load, the terminal, the page, errors |
//! | [`observer`] | the observer process's own loop (a child role that serves the master) |
//!
//! The arrows point down: `run` and `web` use the families, the families use `session`,
//! and `session` uses the parts below it; nothing below imports a family.

mod accounts;
mod book;
mod check;
mod dispatch;
mod expect;
mod fatal;
mod faults;
mod holdings;
mod ledger;
mod live;
mod load;
pub mod observer;
mod printer;
mod prompt;
mod resume;
pub mod rules;
mod run;
pub mod saved;
mod session;
mod slots;
mod snapshots;
mod system;
mod txn;
mod web;

pub use book::Counts;
pub use fatal::Fatal;
pub use ledger::{ChannelId, Delivery, Ledger};
pub use run::{run, Config, Input};
