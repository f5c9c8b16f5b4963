//! A multi-process distributed bank for learning Chandy–Lamport snapshots.
//!
//! # Processes, threads, channels
//!
//! `bank-master FILE` is the **master**: it reads the command file and runs it. On
//! `StartMaster` it starts the **observer** process and on every `CreateNode` a **node**
//! process, both by re-running its own binary with a hidden role. Every pair of nodes
//! shares one local socket (a FIFO channel each way); every node also has a socket to the
//! master and one to the observer. Each process has one reader thread ([`transport::Hub`])
//! that polls all its sockets and passes decoded messages to the one thread that owns the
//! process's state. Children die with the master (parent-death signal), and socket names
//! live in the abstract namespace, so nothing outlives a run.
//!
//! # Protocols
//!
//! * Money and Chandy–Lamport snapshots: [`protocol::bank`] and [`protocol::snapshot`],
//!   pure machines run by [`node`].
//! * Scheduling: the master's [`master::Ledger`] mirrors channel contents so that many
//!   commands are in flight at once while the output stays that of a serial run.
//!
//! # Module map
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line |
//! | [`command`] | the command language and its parser |
//! | [`ids`] | id and amount newtypes |
//! | [`wire`] | messages and framing |
//! | [`protocol`] | the pure state machines |
//! | [`transport`] | local sockets, the reader thread |
//! | [`node`] | the node process |
//! | [`master`] | the master process, its ledger, and the observer process |
//! | [`output`] | every stdout line |
//! | [`trace`] | `--trace` JSON lines |
//! | [`draw`] | pictures of a trace: SVG, HTML, ShiViz |
//! | [`web`] | `--web`: the live page's server |
//! | [`process`] | spawning and ending child processes |
//! | [`rng`] | seeded randomness |
//! | [`wal`] | write-ahead logs (for the transfers of SPEC chapter 5) |
//! | [`replay`] | a command file run in one process, with no processes (baseline, fuzzing) |

#![warn(missing_docs)]

pub mod cli;
pub mod cluster;
pub mod command;
pub mod draw;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod master;
pub mod node;
pub mod output;
pub mod process;
pub mod protocol;
pub mod replay;
pub mod rng;
pub mod trace;
pub mod transport;
pub mod wal;
pub mod web;
pub mod wire;
