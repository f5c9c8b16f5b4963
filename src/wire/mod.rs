//! What travels on the local sockets: the message enums and their framing.
//!
//! `message` defines one enum per conversation inside the top-level [`Message`];
//! `codec` turns messages into length-prefixed postcard frames and back. Nothing here
//! touches a socket: `transport` moves the bytes.

pub mod codec;
pub mod message;

pub use codec::{encode_frame, DecodeError, FrameDecoder, MAX_FRAME, MAX_MESSAGE, MORE};
pub use message::*;
