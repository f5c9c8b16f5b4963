//! The protocols as pure state machines: inputs in, effects out.
//!
//! Nothing here opens a socket, starts a thread, reads a clock, touches a file or prints:
//! the node process (`node`) feeds these machines and carries out their [`Effect`]s in
//! order, and the tests drive them directly (`tests/sim.rs`, `tests/commit_sim.rs`).
//!
//! | module | owns |
//! |---|---|
//! | [`effect`] | what a machine asks the world to do, in order (a leaf) |
//! | [`record`] | the write-ahead log's records (a leaf) |
//! | [`account`] | a node's balance and held money |
//! | [`participant`] | what every commit protocol's participant does alike: escrow, payments |
//! | [`commit`] | the [`commit::CommitProtocol`] trait, and one node running one protocol |
//! | [`two_pc`], [`three_pc`], [`paxos_commit`] | each protocol's rules, messages and records |
//! | [`snapshot`] | Chandy–Lamport snapshots |
//! | [`bank`] | [`Branch`]: a whole node, routing every input to the machine that owns it |
//!
//! Imports point up the table (towards the leaves): a protocol imports the trait, the participant and the
//! leaves; `bank` imports every machine; nothing imports `bank` but the drivers.

pub mod account;
pub mod bank;
pub mod commit;
pub mod effect;
pub mod participant;
pub mod paxos_commit;
pub mod record;
pub mod snapshot;
pub mod three_pc;
pub mod two_pc;

pub use bank::{Branch, ErrSend};
pub use effect::{Effect, Force};
pub use record::Record;
pub use snapshot::{LocalSnapshot, Snapshots};
