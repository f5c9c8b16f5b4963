//! A multi-process distributed bank for learning Chandy–Lamport snapshots and atomic
//! commit (two-phase commit, three-phase commit and Paxos Commit over write-ahead logs).
//!
//! # Processes, threads, links
//!
//! `bank-master FILE` is the **master**: it reads the command file and runs it. On
//! `StartMaster` it starts the **observer** process and on every `CreateNode` a **node**
//! process, both by re-running its own binary with a role passed in the environment
//! ([`cli::ChildRole`]). Every pair of nodes shares one link (a FIFO channel each way);
//! every node also has a link to the master and one to the observer. On one machine the
//! links are local sockets in Linux's abstract namespace; with `--hosts` the nodes run
//! under host agents ([`cluster`]) and every link is TCP secured by a Noise handshake
//! ([`transport::noise`]). Each process reads all of its links through one epoll set
//! ([`transport::Hub`]): the master and the nodes on the one thread that owns their
//! state, the observer on a reader thread of its own. Children die with the master (a
//! parent-death signal; on other hosts the agent kills a run's nodes when its session
//! with the master ends), and local socket names are abstract, so nothing outlives a run.
//!
//! # Protocols
//!
//! * Money and Chandy–Lamport snapshots: [`protocol::bank`] and [`protocol::snapshot`].
//! * Atomic transfers: [`protocol::two_pc`], [`protocol::three_pc`] and
//!   [`protocol::paxos_commit`], each behind one trait
//!   ([`protocol::commit::CommitProtocol`]) over one shared participant
//!   ([`protocol::participant`]: escrow holds, and the `Credit` that carries the money).
//! * Every machine is pure. A node's [`protocol::Branch`] runs them all; [`node`] feeds
//!   it commands and messages and carries out its effects in order, each forced record
//!   on disk before the messages that rely on it leave ([`wal`]).
//! * Scheduling: the master's [`master::Ledger`] predicts what every channel holds and
//!   what most commands do, so many commands are in flight at once while the output
//!   stays that of a serial run; a node that does other than predicted stops the run as
//!   a bug.
//!
//! `docs/design.md` draws the layers and follows one `Transfer` from the command line to
//! the log and back.
//!
//! # Module map
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line, its checks before a run ([`cli::config`]), a child's role |
//! | [`command`] | the command language and its parser |
//! | [`master`] | the master process (session, command families, ledger); the observer's loop |
//! | [`node`] | the node process: a thin driver around one branch, its log and its links |
//! | [`protocol`] | the pure state machines: snapshots, the branch, the three commit protocols |
//! | [`wire`] | every message between the processes, and its framing |
//! | [`transport`] | links (local sockets, or TCP with Noise) and the epoll hub |
//! | [`wal`] | write-ahead logs: checksummed records, group commit |
//! | [`output`] | every stdout line |
//! | [`trace`] | `--trace` JSON lines |
//! | [`draw`] | pictures of a trace: SVG, HTML, ShiViz |
//! | [`web`] | `--web`: the live page's server |
//! | [`cluster`] | `--hosts`: the cluster key, host agents, agents started over ssh |
//! | [`process`] | spawning and ending child processes |
//! | [`logdump`] | `bank-master log`: a node's log in plain words |
//! | [`replay`] | a command file run in one process, with no processes (baseline, fuzzing) |
//! | [`ids`] | id and amount newtypes |
//! | [`rng`] | seeded randomness |

#![warn(missing_docs)]

pub mod cli;
pub mod cluster;
pub mod command;
pub mod draw;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod logdump;
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
