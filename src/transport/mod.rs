//! Local-socket links between the processes of one run; the only module naming `interprocess`.
//!
//! Every process has one [`Hub`]: a reader thread that polls all of the process's links
//! (and its listener) with epoll, turns bytes into [`Message`](crate::wire::Message)s and hands them to the
//! process's main thread as [`Event`]s on one crossbeam channel, in arrival order per link.
//! One reader thread instead of a thread per link keeps a 256-node mesh (65,280 links) cheap.
//! The main thread owns the write side of every link ([`Link`]), buffers frames and
//! flushes before it waits, so a burst of commands costs one `write` per link.
//!
//! The master binds every child's listener and makes its control socket pair *before*
//! starting it, and hands both to the child as inherited fds: a node can connect to any
//! node that exists in the ledger without racing its start, and the master can send
//! commands to a child that is still starting. Names live in Linux's abstract socket
//! namespace (no socket file can be left behind), prefixed with the master's pid and a
//! random nonce; every named connection opens with a [`Hello`](crate::wire::Hello)
//! carrying that nonce, and one that does not is dropped and logged.
//! This module does not know protocols: it moves frames and reports links that close.

mod hub;
mod link;

pub use hub::{Event, Hub};
pub use link::Link;

use crate::ids::NodeId;
use interprocess::local_socket::{prelude::*, GenericNamespaced, ListenerOptions};
use interprocess::os::unix::uds_local_socket as uds;
use std::io;
use std::os::fd::OwnedFd;

pub(crate) use interprocess::local_socket::{Listener, Stream};

/// The socket names of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names for the run of master `pid` with `nonce`.
    pub fn new(pid: u32, nonce: u64) -> Self {
        Names { prefix: format!("bank-{pid}-{nonce:016x}") }
    }

    /// Names with an explicit prefix (as passed to a child on its command line).
    pub fn from_prefix(prefix: &str) -> Self {
        Names { prefix: prefix.to_string() }
    }

    /// The common prefix: `bank-<master pid>-<nonce>`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The observer's listener.
    pub fn observer(&self) -> String {
        format!("{}.o", self.prefix)
    }

    /// Node `id`'s listener.
    pub fn node(&self, id: NodeId) -> String {
        format!("{}.n{}", self.prefix, id.0)
    }
}

/// Binds a listener on the abstract name `name`.
///
/// # Errors
/// The OS error, e.g. `AddrInUse` when another process holds the name.
pub fn listen(name: &str) -> io::Result<Listener> {
    ListenerOptions::new().name(name.to_ns_name::<GenericNamespaced>()?).create_sync()
}

fn connect_stream(name: &str) -> io::Result<Stream> {
    Stream::connect(name.to_ns_name::<GenericNamespaced>()?)
}

/// What a child process starts with: its reader thread (already reading the master's
/// link and accepting on the inherited listener), the write side of the master's link,
/// and the events the reader thread produces.
pub struct ChildLinks {
    /// The reader thread.
    pub hub: Hub,
    /// The write side of the link to the master.
    pub master: Link,
    /// Where the reader thread's events arrive.
    pub inbox: crossbeam_channel::Receiver<Event>,
}

/// Sets a child process up: arms the parent-death signal, takes the control link and
/// listener it inherited from the master, and starts its reader thread (or, `inline`,
/// a hub its main thread reads with [`Hub::wait`]).
///
/// # Errors
/// The parent check, or starting the reader thread, failed.
pub fn start_child(master_pid: u32, nonce: u64, inline: bool) -> io::Result<ChildLinks> {
    crate::process::die_with_parent(master_pid)?;
    // SAFETY: every child is started by process::spawn_self, and this runs once.
    let (control, listener) = unsafe { crate::process::inherited_fds() };
    let (tx, inbox) = crossbeam_channel::unbounded();
    let listener = Some(listener_from_fd(listener));
    let mut hub =
        if inline { Hub::inline(listener, nonce, tx)? } else { Hub::start(listener, nonce, tx)? };
    let control = stream_from_fd(control);
    hub.watch(crate::wire::Peer::Master, interprocess::TryClone::try_clone(&control)?);
    let master = Link::new(crate::wire::Peer::Master, control);
    Ok(ChildLinks { hub, master, inbox })
}

/// A connected socket pair for a child's control link: the master keeps the stream, the
/// child inherits the fd.
///
/// # Errors
/// The OS refused the pair.
pub fn control_pair() -> io::Result<(Stream, OwnedFd)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    Ok((stream_from_fd(OwnedFd::from(ours)), OwnedFd::from(theirs)))
}

/// A stream from an inherited socket fd.
pub fn stream_from_fd(fd: OwnedFd) -> Stream {
    Stream::UdSocket(uds::Stream::from(fd))
}

/// A listener from an inherited socket fd.
pub fn listener_from_fd(fd: OwnedFd) -> Listener {
    Listener::UdSocket(uds::Listener::from(fd))
}

/// The fd of a listener, to hand to a child.
pub fn listener_into_fd(listener: Listener) -> OwnedFd {
    match listener {
        Listener::UdSocket(l) => OwnedFd::from(l),
    }
}
