//! The protocols as pure state machines: inputs in, effects out.
//!
//! Nothing here opens a socket, starts a thread, reads a clock, touches a file or prints:
//! the node process (`node`) feeds these machines and carries out their [`Effect`]s in
//! order, and the tests drive them directly (`tests/sim.rs`).

pub mod bank;
pub mod commit;
pub mod effect;
pub mod legs;
pub mod paxos_commit;
pub mod record;
pub mod snapshot;
pub mod three_pc;
pub mod two_pc;

pub use bank::{Branch, ErrSend};
pub use effect::Effect;
pub use snapshot::{LocalSnapshot, Snapshots};
