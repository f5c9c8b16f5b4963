//! What travels on the links (local sockets or TCP): the message enums and their framing.
//!
//! `message` holds the top-level [`Message`] and the link's hello; `commit` the
//! vocabulary of atomic transactions and `commit_msg` their protocols' messages; `channel` what nodes send each other; `control` the
//! commands to a node and its answers; `observer` the snapshot reports; `codec` turns
//! messages into length-prefixed postcard frames and back. Nothing here touches a socket
//! (`transport` moves the bytes), and nothing here imports a protocol: they import this.

pub mod agent;
pub mod channel;
pub mod codec;
pub mod commit;
pub mod commit_msg;
pub mod control;
pub mod message;
pub mod observer;

pub use codec::{encode_frame, DecodeError, FrameDecoder, MAX_FRAME, MAX_MESSAGE, MORE};
pub use message::*;
