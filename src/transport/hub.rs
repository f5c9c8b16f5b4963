//! The hub's loop: wait on every link and the listener with epoll, answer the
//! handshakes of accepted TCP connections, open their records, decode frames, and
//! forward events to the owner's inbox. It writes nothing but handshake replies: messages
//! go out through each link's owner. epoll, not poll(2): its cost follows the ready links.

use super::noise::{self, Answer, Opener};
use super::{Conn, Link, Listener, Shared};
use crate::wire::{DecodeError, FrameDecoder, Hello, Message, Peer, MAX_FRAME, MAX_MESSAGE};
use crossbeam_channel::{unbounded, Receiver, Sender};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use rustc_hash::FxHashMap as HashMap;
use std::io::{self, Read, Write};
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
    Watch(Peer, Shared),
}

/// What reads a process's links: a thread of its own, or (inline) the thread that owns
/// the hub, between its other work. Dropping it stops the thread and closes what it reads.
pub struct Hub(Reader);

enum Reader {
    Thread { reg: Option<Sender<Registration>>, wake: OwnedFd, thread: Option<JoinHandle<()>> },
    Inline(Box<PollLoop>),
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Reader::Thread { .. } => write!(f, "Hub(thread)"),
            Reader::Inline(l) => write!(f, "Hub(inline, {} links)", l.links.len()),
        }
    }
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
        let (wake_r, wake_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let (reg_tx, reg_rx) = unbounded();
        let mut state = PollLoop::new(listener, nonce, inbox, Some((reg_rx, wake_r)))?;
        let thread = std::thread::Builder::new().name("hub".into()).spawn(move || state.run())?;
        Ok(Hub(Reader::Thread { reg: Some(reg_tx), wake: wake_w, thread: Some(thread) }))
    }

    /// A hub without a thread: [`Hub::wait`] reads the links. A process whose one thread
    /// waits on nothing but its links saves a thread hand-off (a futex wake, tens of
    /// microseconds on an idle machine) on every message that way.
    ///
    /// # Errors
    /// Creating the epoll instance failed.
    pub fn inline(listener: Option<Listener>, nonce: u64, inbox: Sender<Event>) -> io::Result<Hub> {
        Ok(Hub(Reader::Inline(Box::new(PollLoop::new(listener, nonce, inbox, None)?))))
    }

    /// Reads `stream` (a connection this process made to `peer`) from now on. The
    /// stream is shared with the link that writes it: one descriptor per connection.
    pub fn watch(&mut self, peer: Peer, stream: Shared) {
        match &mut self.0 {
            Reader::Thread { reg: Some(reg), wake, .. } => {
                // The thread only stops when the Hub is dropped, so this cannot fail.
                let _ = reg.send(Registration::Watch(peer, stream));
                let _ = nix::unistd::write(&*wake, &[1]);
            }
            Reader::Thread { reg: None, .. } => {}
            Reader::Inline(l) => l.watch(Some(peer), stream),
        }
    }

    /// An inline hub: blocks until a link or the listener is ready (at most `timeout`),
    /// and reads what is there; the events go to the inbox. A threaded hub: returns at once.
    ///
    /// # Errors
    /// epoll failed.
    pub fn wait(&mut self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        match &mut self.0 {
            Reader::Thread { .. } => Ok(()),
            Reader::Inline(l) => l.poll_once(timeout).map(|_| ()),
        }
    }

    /// The epoll fd of an inline hub (readable when a link is): to wait on it together
    /// with something else.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.0 {
            Reader::Thread { .. } => None,
            Reader::Inline(l) => Some(l.epoll.0.as_fd()),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Reader::Thread { reg, wake, thread } = &mut self.0 {
            *reg = None;
            let _ = nix::unistd::write(&*wake, &[1]);
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

struct Watched {
    /// `None` until the hello arrives on an accepted connection.
    peer: Option<Peer>,
    stream: Shared,
    decoder: FrameDecoder,
    /// A TCP link: the handshake's bytes so far (until it is done), then the record
    /// reader and the name the peer proved.
    secure: Option<Secure>,
}

enum Secure {
    Handshake(Vec<u8>),
    Open { opener: Opener, claimed: String, plain: Vec<u8> },
}

impl Watched {
    /// Takes bytes just read: into the decoder as they are on a local link, opened on a
    /// TCP link, or into the handshake until it is done. `Err` when the link must close
    /// (`why`, `None` for a refused connection, which is logged here).
    fn take_bytes(&mut self, bytes: &[u8]) -> Result<(), Option<String>> {
        match &mut self.secure {
            None => self.decoder.extend(bytes),
            Some(Secure::Open { opener, plain, .. }) => {
                let Some(keys) = self.stream.keys() else {
                    return Err(Some("a link without keys".into()));
                };
                plain.clear();
                if let Err(e) = opener.open(keys, bytes, plain) {
                    let who = self.peer.map_or("an unidentified peer".into(), |p| p.to_string());
                    log::error!("hub: {who} ({}) sent {e}; closing the link", self.stream.remote());
                    return Err(Some(e));
                }
                self.decoder.extend(plain);
            }
            Some(Secure::Handshake(got)) => {
                got.extend_from_slice(bytes);
                if let Some(open) = answer_handshake(&self.stream, got)? {
                    if let Secure::Open { plain, .. } = &open {
                        self.decoder.extend(plain);
                    }
                    self.secure = Some(open);
                }
            }
        }
        Ok(())
    }
}

/// Answers the handshake of a TCP connection this process accepted on `stream`, `got`
/// being its bytes so far: `None` until they are a whole handshake; then, once the
/// reply is sent, the open link, its `plain` the records that came behind the handshake.
/// `Err(None)` when the connection is refused (logged here).
fn answer_handshake(stream: &Shared, got: &[u8]) -> Result<Option<Secure>, Option<String>> {
    let Some(id) = noise::identity() else {
        return Err(Some("no key to answer a handshake".into()));
    };
    let remote = stream.remote().to_string();
    let refuse = |why: &dyn std::fmt::Display| {
        log::warn!("hub: refused a connection from {remote}: {why}");
        Err(None)
    };
    let (claimed, reply, used, state) = match noise::respond(got, &id.key, id.nonce, &id.me) {
        Ok(Answer::More) if got.len() <= noise::MAX_HANDSHAKE => return Ok(None),
        Ok(Answer::More) => return refuse(&"not a bank handshake"),
        Err(why) => return refuse(&why),
        Ok(Answer::Accepted { claimed, reply, used, state }) => (claimed, reply, used, state),
    };
    if let Err(e) = (&**stream).write_all(&reply) {
        log::warn!("hub: a handshake with {remote} failed: {e}");
        return Err(None);
    }
    stream.set_keys(state);
    let mut opener = Opener::default();
    let mut plain = Vec::new();
    let keys = stream.keys().expect("just set");
    if let Err(e) = opener.open(keys, &got[used..], &mut plain) {
        return refuse(&format!("it sent {e}"));
    }
    Ok(Some(Secure::Open { opener, claimed, plain }))
}

/// epoll tokens: the wake pipe, the listener, then one per link.
const WAKE: u64 = 0;
const LISTEN: u64 = 1;

struct PollLoop {
    epoll: Epoll,
    listener: Option<Listener>,
    nonce: u64,
    inbox: Sender<Event>,
    /// A threaded hub's registrations and wake-up pipe.
    reg: Option<(Receiver<Registration>, OwnedFd)>,
    links: HashMap<u64, Watched>,
    next_token: u64,
    buf: Vec<u8>,
    events: Vec<EpollEvent>,
}

pub(super) fn stream_fd(s: &Conn) -> BorrowedFd<'_> {
    s.fd()
}

fn listener_fd(l: &Listener) -> BorrowedFd<'_> {
    l.fd()
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(|_| ())
}

/// What became of one link after reading it.
enum Outcome {
    Open,
    Drop(Option<String>),
}

impl PollLoop {
    fn new(
        listener: Option<Listener>,
        nonce: u64,
        inbox: Sender<Event>,
        reg: Option<(Receiver<Registration>, OwnedFd)>,
    ) -> io::Result<PollLoop> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        if let Some((_, wake)) = &reg {
            epoll.add(wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        }
        if let Some(l) = &listener {
            epoll.add(listener_fd(l), EpollEvent::new(EpollFlags::EPOLLIN, LISTEN))?;
        }
        Ok(PollLoop {
            epoll,
            listener,
            nonce,
            inbox,
            reg,
            links: HashMap::default(),
            next_token: 2,
            buf: vec![0u8; 64 * 1024],
            events: vec![EpollEvent::empty(); 256],
        })
    }

    fn run(&mut self) {
        loop {
            match self.poll_once(None) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    log::error!("hub: epoll_wait failed: {e}");
                    return;
                }
            }
        }
    }

    /// Waits (at most `timeout`, `None` for ever) and handles what is ready. False when
    /// the owner is gone (the Hub dropped, or the inbox's receiver).
    fn poll_once(&mut self, timeout: Option<std::time::Duration>) -> io::Result<bool> {
        let timeout = match timeout {
            None => EpollTimeout::NONE,
            Some(t) => EpollTimeout::try_from(t).unwrap_or(EpollTimeout::NONE),
        };
        let mut events = std::mem::take(&mut self.events);
        let n = match self.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => {
                self.events = events;
                return Err(e.into());
            }
        };
        let mut buf = std::mem::take(&mut self.buf);
        let mut keep_going = true;
        for ev in &events[..n] {
            let token = ev.data();
            keep_going = match token {
                WAKE => self.on_wake(),
                LISTEN => {
                    self.accept();
                    true
                }
                _ => self.on_readable(token, &mut buf),
            };
            if !keep_going {
                break;
            }
        }
        self.buf = buf;
        self.events = events;
        Ok(keep_going)
    }

    fn watch(&mut self, peer: Option<Peer>, stream: Shared) {
        if self.reg.is_none() {
            // Inline: the owner's thread reads and writes; it must never block on a full
            // socket while its peer blocks on a full socket the other way.
            if let Err(e) = set_nonblocking(stream_fd(&stream)) {
                log::error!("hub: cannot make a link non-blocking: {e}");
            }
        }
        let token = self.next_token;
        self.next_token += 1;
        match self.epoll.add(stream_fd(&stream), EpollEvent::new(EpollFlags::EPOLLIN, token)) {
            Ok(()) => {
                let mut decoder = FrameDecoder::new();
                if peer.is_none() {
                    // Until it says a valid hello, a connection gets one frame's worth.
                    decoder.set_limit(MAX_FRAME);
                }
                let secure = match (stream.is_tcp(), peer) {
                    (false, _) => None,
                    (true, None) => Some(Secure::Handshake(Vec::new())),
                    // A link this process dialled: its handshake is done.
                    (true, Some(p)) => Some(Secure::Open {
                        opener: Opener::default(),
                        claimed: p.to_string(),
                        plain: Vec::new(),
                    }),
                };
                self.links.insert(token, Watched { peer, stream, decoder, secure });
            }
            Err(e) => log::error!("hub: cannot watch a link: {e}"),
        }
    }

    /// Drains the wake pipe and takes new registrations. False when the Hub was dropped.
    fn on_wake(&mut self) -> bool {
        let Some((reg, wake)) = &self.reg else { return true };
        let mut sink = [0u8; 64];
        let _ = nix::unistd::read(wake, &mut sink);
        let reg = reg.clone();
        loop {
            let next = reg.try_recv();
            match next {
                Ok(Registration::Watch(peer, stream)) => self.watch(Some(peer), stream),
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        match l.accept() {
            Ok(stream) => self.watch(None, Shared::new(stream)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => log::warn!("hub: accept failed: {e}"),
        }
    }

    /// Reads link `token`; false when the main thread is gone.
    fn on_readable(&mut self, token: u64, buf: &mut [u8]) -> bool {
        if !self.links.contains_key(&token) {
            return true; // closed earlier in this batch of events
        }
        match self.read_link(token, buf) {
            Ok(Outcome::Open) => true,
            Ok(Outcome::Drop(why)) => {
                let w = self.links.remove(&token).expect("checked above");
                let _ = self.epoll.delete(stream_fd(&w.stream));
                match w.peer {
                    Some(peer) => self.inbox.send(Event::Closed { peer, why }).is_ok(),
                    None => true,
                }
            }
            Err(()) => false,
        }
    }

    /// Reads what is there on link `token`. `Err(())` when the main thread is gone.
    fn read_link(&mut self, token: u64, buf: &mut [u8]) -> Result<Outcome, ()> {
        let w = self.links.get_mut(&token).expect("caller checked");
        if let Err(e) = w.stream.secure() {
            log::warn!("hub: {e}");
            return Ok(Outcome::Drop(Some(e.to_string())));
        }
        let n = match (&*w.stream).read(buf) {
            Ok(0) => {
                let why = (w.decoder.pending() > 0).then(|| "closed inside a frame".to_string());
                return Ok(Outcome::Drop(why));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Outcome::Open),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Outcome::Open),
            Err(e) => return Ok(Outcome::Drop(Some(e.to_string()))),
        };
        if let Err(why) = w.take_bytes(&buf[..n]) {
            return Ok(Outcome::Drop(why));
        }
        // A handshake still under way has given the decoder nothing: it finds no frame.
        self.decode(token)
    }

    /// Passes on every whole message link `token`'s decoder holds: the hello of an
    /// accepted connection as [`Event::Connected`], the rest as one [`Event::Frames`].
    /// `Err(())` when the main thread is gone.
    fn decode(&mut self, token: u64) -> Result<Outcome, ()> {
        let mut msgs = Vec::new();
        loop {
            let w = self.links.get_mut(&token).expect("still here");
            let known = w.peer.is_some();
            match w.decoder.next_message() {
                Ok(Some(Message::Hello(hello))) if !known => {
                    let Some(link) = self.accept_hello(token, hello) else {
                        return Ok(Outcome::Drop(None));
                    };
                    self.inbox.send(Event::Connected(link)).map_err(|_| ())?;
                }
                Ok(Some(_)) if !known => {
                    log::warn!("hub: a connection spoke before its hello; dropped");
                    return Ok(Outcome::Drop(None));
                }
                Ok(Some(msg)) => msgs.push(msg),
                Ok(None) => break,
                Err(e) => return self.corrupt(token, e, msgs),
            }
        }
        if !msgs.is_empty() {
            let peer = self.links[&token].peer.expect("frames come after the hello");
            self.inbox.send(Event::Frames { peer, msgs }).map_err(|_| ())?;
        }
        Ok(Outcome::Open)
    }

    fn corrupt(&mut self, token: u64, e: DecodeError, msgs: Vec<Message>) -> Result<Outcome, ()> {
        let peer = self.links[&token].peer;
        let who = peer.map_or("an unidentified peer".to_string(), |p| p.to_string());
        log::error!("hub: {who} sent a bad frame ({e}); closing the link");
        if let (Some(peer), false) = (peer, msgs.is_empty()) {
            if self.inbox.send(Event::Frames { peer, msgs }).is_err() {
                return Err(());
            }
        }
        Ok(Outcome::Drop(Some(e.to_string())))
    }

    /// Checks the hello of accepted connection `token`; on success returns its write side.
    fn accept_hello(&mut self, token: u64, hello: Hello) -> Option<Link> {
        if hello.nonce != self.nonce {
            log::warn!("hub: refused a connection from another run (claims to be {})", hello.from);
            return None;
        }
        let w = self.links.get_mut(&token).expect("caller checked");
        if let Some(Secure::Open { claimed, .. }) = &w.secure {
            if *claimed != hello.from.to_string() {
                log::warn!(
                    "hub: refused a connection from {}: its handshake named {claimed:?}, its hello {}",
                    w.stream.remote(),
                    hello.from
                );
                return None;
            }
        }
        w.peer = Some(hello.from);
        w.decoder.set_limit(MAX_MESSAGE);
        Some(Link::new(hello.from, w.stream.clone()))
    }
}
