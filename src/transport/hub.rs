//! The reader thread: poll every link and the listener, decode frames, forward events.

use super::{Link, Listener, Stream};
use crate::wire::{DecodeError, FrameDecoder, Hello, Message, Peer};
use crossbeam_channel::{unbounded, Receiver, Sender};
use interprocess::local_socket::traits::Listener as _;
use interprocess::TryClone;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;

/// What the reader thread tells the main thread, in order per link.
#[derive(Debug)]
pub enum Event {
    /// A connection to our listener said a valid hello; here is its write side.
    Connected(Link),
    /// Frames that arrived from `peer`, in order.
    Frames {
        /// The sender.
        peer: Peer,
        /// The messages.
        msgs: Vec<Message>,
    },
    /// The link to `peer` is gone: closed by the peer, or closed here because it sent
    /// bytes that do not decode (`why` says which).
    Closed {
        /// The peer.
        peer: Peer,
        /// `None` for an orderly close, else the reason.
        why: Option<String>,
    },
}

enum Registration {
    Watch(Peer, Stream),
}

/// A process's reader thread. Dropping it stops the thread and closes what it reads.
#[derive(Debug)]
pub struct Hub {
    reg: Option<Sender<Registration>>,
    wake: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Registration::Watch(p, _) => write!(f, "Watch({p})"),
        }
    }
}

impl Hub {
    /// Starts the reader thread. It accepts connections on `listener` (if any), checks
    /// their hello against `nonce`, and sends every [`Event`] to `inbox`.
    ///
    /// # Errors
    /// Creating the wake-up pipe or the thread failed.
    pub fn start(listener: Option<Listener>, nonce: u64, inbox: Sender<Event>) -> io::Result<Hub> {
        let (wake_r, wake_w) = nix::unistd::pipe().map_err(io::Error::from)?;
        let (reg_tx, reg_rx) = unbounded();
        let thread = std::thread::Builder::new().name("hub".into()).spawn(move || {
            let mut state =
                PollLoop { listener, nonce, inbox, reg: reg_rx, wake: wake_r, links: Vec::new() };
            state.run();
        })?;
        Ok(Hub { reg: Some(reg_tx), wake: wake_w, thread: Some(thread) })
    }

    /// Reads `stream` (a connection this process made to `peer`) from now on.
    pub fn watch(&self, peer: Peer, stream: Stream) {
        if let Some(reg) = &self.reg {
            // The thread only stops when the Hub is dropped, so this cannot fail.
            let _ = reg.send(Registration::Watch(peer, stream));
            self.wake();
        }
    }

    fn wake(&self) {
        let _ = nix::unistd::write(&self.wake, &[1]);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.reg = None;
        self.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Watched {
    /// `None` until the hello arrives on an accepted connection.
    peer: Option<Peer>,
    stream: Stream,
    decoder: FrameDecoder,
}

struct PollLoop {
    listener: Option<Listener>,
    nonce: u64,
    inbox: Sender<Event>,
    reg: Receiver<Registration>,
    wake: OwnedFd,
    links: Vec<Watched>,
}

fn stream_fd(s: &Stream) -> BorrowedFd<'_> {
    match s {
        Stream::UdSocket(s) => s.as_fd(),
    }
}

fn listener_fd(l: &Listener) -> BorrowedFd<'_> {
    match l {
        Listener::UdSocket(l) => l.as_fd(),
    }
}

/// What became of one link after reading it.
enum Outcome {
    Open,
    Drop(Option<String>),
}

impl PollLoop {
    fn run(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let ready = match self.poll_once() {
                Ok(r) => r,
                Err(e) => {
                    log::error!("hub: poll failed: {e}");
                    return;
                }
            };
            let (wake_ready, listen_ready, links_ready) = ready;
            if wake_ready && !self.on_wake() {
                return;
            }
            if listen_ready {
                self.accept();
            }
            let mut dead = Vec::new();
            for i in links_ready {
                match self.read_link(i, &mut buf) {
                    Ok(Outcome::Open) => {}
                    Ok(Outcome::Drop(why)) => {
                        if let Some(peer) = self.links[i].peer {
                            if self.inbox.send(Event::Closed { peer, why }).is_err() {
                                return;
                            }
                        }
                        dead.push(i);
                    }
                    Err(()) => return,
                }
            }
            for i in dead.into_iter().rev() {
                self.links.swap_remove(i);
            }
        }
    }

    /// Polls once; returns (wake pipe ready, listener ready, indices of ready links).
    fn poll_once(&self) -> io::Result<(bool, bool, Vec<usize>)> {
        let mut fds = Vec::with_capacity(2 + self.links.len());
        fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
        if let Some(l) = &self.listener {
            fds.push(PollFd::new(listener_fd(l), PollFlags::POLLIN));
        }
        let base = fds.len();
        for w in &self.links {
            fds.push(PollFd::new(stream_fd(&w.stream), PollFlags::POLLIN));
        }
        loop {
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        let wake = ready(&fds[0]);
        let listen = self.listener.is_some() && ready(&fds[1]);
        let links = (base..fds.len()).filter(|&i| ready(&fds[i])).map(|i| i - base).collect();
        Ok((wake, listen, links))
    }

    /// Drains the wake pipe and takes new registrations. False when the Hub was dropped.
    fn on_wake(&mut self) -> bool {
        let mut sink = [0u8; 64];
        let _ = nix::unistd::read(&self.wake, &mut sink);
        loop {
            match self.reg.try_recv() {
                Ok(Registration::Watch(peer, stream)) => self.links.push(Watched {
                    peer: Some(peer),
                    stream,
                    decoder: FrameDecoder::new(),
                }),
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        match l.accept() {
            Ok(stream) => {
                self.links.push(Watched { peer: None, stream, decoder: FrameDecoder::new() })
            }
            Err(e) => log::warn!("hub: accept failed: {e}"),
        }
    }

    /// Reads what is there on link `i`. `Err(())` when the main thread is gone.
    fn read_link(&mut self, i: usize, buf: &mut [u8]) -> Result<Outcome, ()> {
        let w = &mut self.links[i];
        let n = match (&w.stream).read(buf) {
            Ok(0) => {
                let why = (w.decoder.pending() > 0).then(|| "closed inside a frame".to_string());
                return Ok(Outcome::Drop(why));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Outcome::Open),
            Err(e) => return Ok(Outcome::Drop(Some(e.to_string()))),
        };
        w.decoder.extend(&buf[..n]);
        let mut msgs = Vec::new();
        loop {
            let next = self.links[i].decoder.next_message();
            let known = self.links[i].peer.is_some();
            match next {
                Ok(Some(Message::Hello(hello))) if !known => match self.accept_hello(i, hello) {
                    Some(link) => {
                        if self.inbox.send(Event::Connected(link)).is_err() {
                            return Err(());
                        }
                    }
                    None => return Ok(Outcome::Drop(None)),
                },
                Ok(Some(_)) if !known => {
                    log::warn!("hub: a connection spoke before its hello; dropped");
                    return Ok(Outcome::Drop(None));
                }
                Ok(Some(msg)) => msgs.push(msg),
                Ok(None) => break,
                Err(e) => return self.corrupt(i, e, msgs),
            }
        }
        if !msgs.is_empty() {
            let peer = self.links[i].peer.expect("frames come after the hello");
            if self.inbox.send(Event::Frames { peer, msgs }).is_err() {
                return Err(());
            }
        }
        Ok(Outcome::Open)
    }

    fn corrupt(&mut self, i: usize, e: DecodeError, msgs: Vec<Message>) -> Result<Outcome, ()> {
        let peer = self.links[i].peer;
        log::error!(
            "hub: link from {} sent a bad frame ({e}); closing it",
            peer.map_or("?".into(), |p| p.to_string())
        );
        if let (Some(peer), false) = (peer, msgs.is_empty()) {
            if self.inbox.send(Event::Frames { peer, msgs }).is_err() {
                return Err(());
            }
        }
        Ok(Outcome::Drop(Some(e.to_string())))
    }

    /// Checks the hello of accepted connection `i`; on success returns its write side.
    fn accept_hello(&mut self, i: usize, hello: Hello) -> Option<Link> {
        if hello.nonce != self.nonce {
            log::warn!("hub: refused a connection from another run (claims to be {})", hello.from);
            return None;
        }
        let w = &mut self.links[i];
        match w.stream.try_clone() {
            Ok(writer) => {
                w.peer = Some(hello.from);
                Some(Link::new(hello.from, writer))
            }
            Err(e) => {
                log::error!("hub: cannot clone the stream of {}: {e}", hello.from);
                None
            }
        }
    }
}
