//! Links between the processes of one run: local sockets on one machine, TCP with a Noise
//! handshake across hosts; the only module naming `interprocess`.
//!
//! Every process has one [`Hub`], run on the thread that owns the process's state (the
//! observer's on a thread of its own), that polls all of the process's links
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
pub mod noise;
pub mod tcp;

pub use hub::{Event, Hub};
pub use link::Link;
pub use tcp::{Conn, Listener};

use crate::ids::NodeId;
use crate::wire::Peer;
use interprocess::local_socket::{prelude::*, GenericNamespaced, ListenerOptions};
use interprocess::os::unix::uds_local_socket as uds;
use std::io;
use std::os::fd::OwnedFd;

pub(crate) use interprocess::local_socket::Stream;

/// A connection shared by the link that writes it and the hub that reads it.
pub(crate) type Shared = std::sync::Arc<Conn>;

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

    /// Names with an explicit prefix (as passed to a child in its environment).
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

/// Where each process of a run listens when they are on several hosts: TCP addresses
/// the master hands out ([`crate::wire::Message::Directory`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// The observer's address.
    pub observer: String,
    /// Each node's address.
    pub nodes: std::collections::BTreeMap<NodeId, String>,
}

/// How a process finds its peers: by local socket name, or by TCP address.
#[derive(Debug, Clone)]
pub enum Book {
    /// One host: abstract socket names.
    Local(Names),
    /// Several hosts: the directory the master sent.
    Tcp(Directory),
}

impl Book {
    /// The address to dial for `peer` (a `tcp:` address, or a socket name).
    ///
    /// # Errors
    /// The directory does not know it.
    pub fn address(&self, peer: Peer) -> io::Result<String> {
        match (self, peer) {
            (Book::Local(n), Peer::Node(id)) => Some(n.node(id)),
            (Book::Local(n), _) => Some(n.observer()),
            (Book::Tcp(d), Peer::Node(id)) => d.nodes.get(&id).map(|a| format!("tcp:{a}")),
            (Book::Tcp(d), _) => Some(format!("tcp:{}", d.observer)),
        }
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no address for {peer} yet"))
        })
    }
}

/// Binds a listener on the abstract name `name`.
///
/// # Errors
/// The OS error, e.g. `AddrInUse` when another process holds the name.
pub fn listen(name: &str) -> io::Result<Listener> {
    ListenerOptions::new()
        .name(name.to_ns_name::<GenericNamespaced>()?)
        .create_sync()
        .map(Listener::Local)
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
    /// The write side of the link to the master; `None` for a node on another host
    /// (the master dials it: its link comes as [`Event::Connected`]).
    pub master: Option<Link>,
    /// Where the reader thread's events arrive.
    pub inbox: crossbeam_channel::Receiver<Event>,
}

/// How a child was started.
#[derive(Debug, Clone, Copy)]
pub struct ChildStart {
    /// The parent (the master, or a host agent) the child must die with.
    pub parent: u32,
    /// The run's nonce.
    pub nonce: u64,
    /// Its listener is TCP (several hosts), not a local socket.
    pub tcp: bool,
    /// It inherited a control link (all but a node a host agent started: the master
    /// dials that one, and its link comes as [`Event::Connected`]).
    pub control: bool,
    /// Its main thread reads the hub ([`Hub::wait`]) instead of a reader thread.
    pub inline: bool,
}

/// Sets a child process up: arms the parent-death signal, takes the control link and
/// listener it inherited, and starts its reader thread (or an inline hub).
///
/// # Errors
/// The parent check, or starting the reader thread, failed.
pub fn start_child(how: ChildStart) -> io::Result<ChildLinks> {
    let ChildStart { parent, nonce, tcp, control, inline } = how;
    crate::process::die_with_parent(parent)?;
    // SAFETY: every child is started by process::spawn_self, with a control link iff
    // `control`, and this runs once.
    let (control, listener) = unsafe { crate::process::inherited_fds(control) };
    let (tx, inbox) = crossbeam_channel::unbounded();
    let listener = Some(if tcp {
        Listener::Tcp(std::net::TcpListener::from(listener))
    } else {
        listener_from_fd(listener)
    });
    let mut hub =
        if inline { Hub::inline(listener, nonce, tx)? } else { Hub::start(listener, nonce, tx)? };
    let master = control.map(|control| {
        let control = Shared::new(Conn::Local(stream_from_fd(control)));
        hub.watch(crate::wire::Peer::Master, control.clone());
        Link::new(crate::wire::Peer::Master, control)
    });
    Ok(ChildLinks { hub, master, inbox })
}

/// Writes every buffered frame of `links` (their sockets non-blocking: watched by the
/// inline `hub`), and whenever some sockets are full, waits for one to take more while
/// reading every link of `hub` (the events go to its inbox, to be handled later, in
/// order). Two processes writing to each other this way never wait on each other, however
/// much each has to say. Returns the links whose write failed, with the error; their
/// buffers are dropped.
///
/// # Errors
/// `hub` is not inline, or waiting failed.
pub fn flush_reading(hub: &mut Hub, links: &mut [&mut Link]) -> io::Result<Vec<(Peer, io::Error)>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut failed = Vec::new();
    let mut left: Vec<usize> = (0..links.len()).collect();
    while !left.is_empty() {
        left.retain(|&i| match links[i].try_flush() {
            Ok(done) => !done,
            Err(e) => {
                failed.push((links[i].peer(), e));
                false
            }
        });
        if left.is_empty() {
            break;
        }
        let hub_ready = {
            let Some(hub_fd) = hub.fd() else {
                return Err(io::Error::other("flush_reading needs an inline hub"));
            };
            let mut fds: Vec<PollFd<'_>> =
                left.iter().map(|&i| PollFd::new(links[i].fd(), PollFlags::POLLOUT)).collect();
            fds.push(PollFd::new(hub_fd, PollFlags::POLLIN));
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            fds.last().and_then(|f| f.revents()).is_some_and(|r| !r.is_empty())
        };
        if hub_ready {
            hub.wait(Some(std::time::Duration::ZERO))?;
        }
    }
    Ok(failed)
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
    Listener::Local(interprocess::local_socket::Listener::UdSocket(uds::Listener::from(fd)))
}

/// The fd of a listener, to hand to a child.
pub fn listener_into_fd(listener: Listener) -> OwnedFd {
    match listener {
        Listener::Local(interprocess::local_socket::Listener::UdSocket(l)) => OwnedFd::from(l),
        Listener::Tcp(l) => OwnedFd::from(l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Amount;
    use crate::wire::{ChannelMsg, Message};
    use std::time::Duration;

    /// One end of a socket pair, as a node holds it: an inline hub reading it, a link
    /// writing it, and the inbox.
    fn end(stream: Stream, peer: Peer) -> (Hub, Link, crossbeam_channel::Receiver<Event>) {
        let (tx, inbox) = crossbeam_channel::unbounded();
        let mut hub = Hub::inline(None, 0, tx).unwrap();
        let stream = Shared::new(Conn::Local(stream));
        hub.watch(peer, stream.clone());
        (hub, Link::new(peer, stream), inbox)
    }

    // Two ends each write ~2 MB to the other (ten times what a socket holds) before either
    // reads anything on purpose: with blocking writes both would wait for ever; flushing
    // while reading, both finish and each gets every frame, in order. A watchdog turns a
    // hang into a failure.
    #[test]
    fn two_ends_flushing_at_each_other_both_finish() {
        let (a, b) = control_pair().unwrap();
        let n = 150_000u64;
        let side = move |stream: Stream, peer: Peer| {
            move || -> u64 {
                let (mut hub, mut link, inbox) = end(stream, peer);
                for i in 0..n {
                    link.push(&Message::Channel(ChannelMsg::Transfer { amount: Amount(i) }));
                }
                let failed = flush_reading(&mut hub, &mut [&mut link]).unwrap();
                assert!(failed.is_empty());
                let mut next = 0;
                while next < n {
                    while let Ok(ev) = inbox.try_recv() {
                        let Event::Frames { msgs, .. } = ev else { panic!("{ev:?}") };
                        for m in msgs {
                            assert_eq!(
                                m,
                                Message::Channel(ChannelMsg::Transfer { amount: Amount(next) })
                            );
                            next += 1;
                        }
                    }
                    if next < n {
                        hub.wait(None).unwrap();
                    }
                }
                next
            }
        };
        let (done_tx, done) = crossbeam_channel::unbounded();
        for (stream, peer) in
            [(a, Peer::Node(NodeId(2))), (stream_from_fd(b), Peer::Node(NodeId(1)))]
        {
            let work = side(stream, peer);
            let done_tx = done_tx.clone();
            std::thread::spawn(move || done_tx.send(work()));
        }
        for _ in 0..2 {
            let got = done.recv_timeout(Duration::from_secs(20)).expect("both ends finish");
            assert_eq!(got, n);
        }
    }
}
