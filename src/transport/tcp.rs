//! The two kinds of connection a link can ride on: a local socket (one host) or a TCP
//! connection secured by [`super::noise`] (several hosts). The hub and the links see
//! one [`Conn`]; only reading and writing bytes differ.

use super::noise::{self, Opener};
use snow::StatelessTransportState;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;
use std::time::Duration;

/// How long unacknowledged data may sit on a TCP link before the kernel gives up on it
/// (`TCP_USER_TIMEOUT`): longer than the 10 s after which a script reports a node
/// unreachable, so a host cut off for a while comes back on the same links.
pub const USER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a dial keeps trying to reach the other end.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a retransmission timer may back off to (Linux's `TCP_RTO_MAX_MS`, from
/// 6.15; 1 s is the least it takes). The kernel's own ceiling is 120 s: after five
/// losses in a row of one segment (10% loss makes that once in 10^5) a link would
/// stall 12.6 s, past the 10 s after which a script reports a node unreachable.
const RTO_MAX_MS: i32 = 1000;

/// One connection.
#[derive(Debug)]
pub enum Conn {
    /// A local socket.
    Local(interprocess::local_socket::Stream),
    /// A TCP connection; its transport keys once the handshake is done.
    Tcp {
        /// The socket.
        sock: TcpStream,
        /// Set once, when the handshake succeeds.
        keys: OnceLock<Box<StatelessTransportState>>,
        /// A dialled link whose handshake answer has not been read yet.
        pending: std::sync::Mutex<Option<Box<snow::HandshakeState>>>,
        /// Who is at the other end, for logs.
        remote: String,
    },
}

impl Conn {
    /// A TCP connection to `remote` without keys yet: its handshake is `pending` (a link
    /// this process dialled) or still to be answered (one it accepted).
    pub fn tcp(
        sock: TcpStream,
        remote: String,
        pending: Option<Box<snow::HandshakeState>>,
    ) -> Conn {
        Conn::Tcp { sock, keys: OnceLock::new(), pending: std::sync::Mutex::new(pending), remote }
    }

    /// Gives an accepted TCP connection the keys its handshake made.
    pub fn set_keys(&self, state: Box<StatelessTransportState>) {
        if let Conn::Tcp { keys, .. } = self {
            let _ = keys.set(state);
        }
    }

    /// The socket's fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Local(interprocess::local_socket::Stream::UdSocket(s)) => s.as_fd(),
            Conn::Tcp { sock, .. } => sock.as_fd(),
        }
    }

    /// A TCP connection's transport keys (`None` on a local socket, or before the
    /// handshake).
    pub fn keys(&self) -> Option<&StatelessTransportState> {
        match self {
            Conn::Local(_) => None,
            Conn::Tcp { keys, .. } => keys.get().map(|k| &**k),
        }
    }

    /// Completes a deferred handshake ([`dial_deferred`]); nothing to do otherwise.
    ///
    /// # Errors
    /// The other end did not answer, or does not hold the key.
    pub fn secure(&self) -> io::Result<()> {
        let Conn::Tcp { sock, keys, pending, remote } = self else { return Ok(()) };
        if keys.get().is_some() {
            return Ok(());
        }
        let mut slot = pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hs) = slot.take() {
            let state = noise::finish(sock, *hs)
                .map_err(|e| io::Error::new(e.kind(), format!("{remote}: {e}")))?;
            let _ = keys.set(Box::new(state));
        }
        Ok(())
    }

    /// Whether this is a TCP connection.
    pub fn is_tcp(&self) -> bool {
        matches!(self, Conn::Tcp { .. })
    }

    /// The remote address of a TCP connection, for logs.
    pub fn remote(&self) -> &str {
        match self {
            Conn::Local(_) => "a local socket",
            Conn::Tcp { remote, .. } => remote,
        }
    }
}

impl Read for &Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Local(s) => (&*s).read(buf),
            Conn::Tcp { sock, .. } => (&*sock).read(buf),
        }
    }
}

impl Write for &Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Local(s) => (&*s).write(buf),
            Conn::Tcp { sock, .. } => (&*sock).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A listener of either kind.
#[derive(Debug)]
pub enum Listener {
    /// A local socket listener.
    Local(interprocess::local_socket::Listener),
    /// A TCP listener.
    Tcp(std::net::TcpListener),
}

impl Listener {
    /// The listener's fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Local(interprocess::local_socket::Listener::UdSocket(l)) => l.as_fd(),
            Listener::Tcp(l) => l.as_fd(),
        }
    }

    /// Accepts one connection (a TCP one not yet secured: the hub runs the handshake).
    ///
    /// # Errors
    /// The OS error.
    pub fn accept(&self) -> io::Result<Conn> {
        use interprocess::local_socket::traits::Listener as _;
        match self {
            Listener::Local(l) => l.accept().map(Conn::Local),
            Listener::Tcp(l) => {
                let (sock, addr) = l.accept()?;
                configure(&sock)?;
                Ok(Conn::tcp(sock, addr.to_string(), None))
            }
        }
    }
}

/// Sets what every TCP link needs: no Nagle delay (a frame leaves at once), a bound on
/// how long sent data may stay unacknowledged, and keepalive probes on idle links.
///
/// # Errors
/// The OS refused an option.
pub fn configure(sock: &TcpStream) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let s = socket2::SockRef::from(sock);
    bound_backoff(&s);
    s.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(2))
        .with_retries(5);
    s.set_tcp_keepalive(&ka)
}

/// Keeps a lost segment from stalling a link for long: retransmission timers back off
/// to at most [`RTO_MAX_MS`], and a link with few segments in flight (every link here:
/// one frame answers another) retransmits at a steady pace before it backs off at all
/// (`TCP_THIN_LINEAR_TIMEOUTS`). A kernel without the first gets the second alone;
/// neither is needed for correctness, so a refusal is only logged.
fn bound_backoff(s: &socket2::SockRef<'_>) {
    use std::os::fd::AsRawFd;
    const TCP_THIN_LINEAR_TIMEOUTS: nix::libc::c_int = 16;
    const TCP_RTO_MAX_MS: nix::libc::c_int = 44;
    for (opt, value, name) in [
        (TCP_RTO_MAX_MS, RTO_MAX_MS, "TCP_RTO_MAX_MS"),
        (TCP_THIN_LINEAR_TIMEOUTS, 1, "TCP_THIN_LINEAR_TIMEOUTS"),
    ] {
        // SAFETY: a valid socket fd, and a c_int option value that outlives the call.
        let rc = unsafe {
            nix::libc::setsockopt(
                s.as_raw_fd(),
                nix::libc::IPPROTO_TCP,
                opt,
                (&value as *const nix::libc::c_int).cast(),
                std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
            )
        };
        if rc != 0 {
            log::debug!("tcp: {name} not set: {}", io::Error::last_os_error());
        }
    }
}

/// How long connection attempt `k` (from 0) waits for an answer before a fresh one
/// starts. The kernel would resend a lost SYN after 1 s, 2 s, 4 s, 8 s, so four losses
/// in a row (10% loss each way makes that about once in 800 dials) would take 15 s;
/// fresh attempts a second apart take 4 s. Later attempts wait longer, for a network
/// slower than that.
fn attempt_timeout(k: u32) -> Duration {
    Duration::from_secs(match k {
        0..=5 => 1,
        6..=7 => 2,
        _ => 4,
    })
}

/// Connects to `sa`, a fresh attempt each [`attempt_timeout`] while the other end does
/// not answer, for at most [`CONNECT_TIMEOUT`].
///
/// # Errors
/// The other end refused, or nothing answered in time.
fn connect(sa: &std::net::SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let start = std::time::Instant::now();
    for k in 0.. {
        let left = CONNECT_TIMEOUT.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let sock = Socket::new(Domain::for_address(*sa), Type::STREAM, Some(Protocol::TCP))?;
        bound_backoff(&socket2::SockRef::from(&sock));
        match sock.connect_timeout(&(*sa).into(), attempt_timeout(k).min(left)) {
            Ok(()) => return Ok(sock.into()),
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                log::debug!("tcp: no answer from {sa} within {:?}; again", attempt_timeout(k));
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {CONNECT_TIMEOUT:?}")))
}

/// Dials `addr` (`host:port`) as `me` and runs the handshake with `them` of run
/// `nonce`.
///
/// # Errors
/// The address does not resolve, nobody answers within [`CONNECT_TIMEOUT`], or the
/// other end does not hold `key`.
pub fn dial(addr: &str, key: &noise::Key, nonce: u64, me: &str, them: &str) -> io::Result<Conn> {
    let conn = dial_deferred(addr, key, nonce, me, them)?;
    conn.secure()?;
    Ok(conn)
}

/// Dials as [`dial`] does, but leaves the handshake's answer to be read when the link
/// is first used ([`Conn::secure`]): the link writes nothing before it has its keys.
///
/// # Errors
/// The address does not resolve, or nobody answers within [`CONNECT_TIMEOUT`].
pub fn dial_deferred(
    addr: &str,
    key: &noise::Key,
    nonce: u64,
    me: &str,
    them: &str,
) -> io::Result<Conn> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr} does not resolve"));
    for sa in addr.to_socket_addrs()? {
        match connect(&sa) {
            Ok(mut sock) => {
                configure(&sock)?;
                let hs = noise::begin(&mut sock, key, nonce, me, them)
                    .map_err(|e| io::Error::new(e.kind(), format!("{them} at {addr}: {e}")))?;
                return Ok(Conn::tcp(sock, sa.to_string(), Some(Box::new(hs))));
            }
            Err(e) => last = e,
        }
    }
    Err(io::Error::new(last.kind(), format!("cannot reach {them} at {addr}: {last}")))
}

/// The responder's handshake on a fresh connection, blocking (at most
/// [`noise::HANDSHAKE_TIMEOUT`] per read): the secured connection, the name the peer
/// proved, and what it sent after the handshake.
///
/// # Errors
/// Why the peer is refused, to log.
pub fn respond_blocking(
    mut sock: TcpStream,
    key: &noise::Key,
    nonce: u64,
    me: &str,
) -> Result<(Conn, String, Vec<u8>), String> {
    configure(&sock).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(noise::HANDSHAKE_TIMEOUT)).map_err(|e| e.to_string())?;
    let remote = sock.peer_addr().map_or("?".to_string(), |a| a.to_string());
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match noise::respond(&got, key, nonce, me)? {
            noise::Answer::More if got.len() <= noise::MAX_HANDSHAKE => {}
            noise::Answer::More => return Err("not a bank handshake".into()),
            noise::Answer::Accepted { claimed, reply, used, state } => {
                sock.write_all(&reply).map_err(|e| e.to_string())?;
                let conn = Conn::tcp(sock, remote, None);
                conn.set_keys(state);
                return Ok((conn, claimed, got[used..].to_vec()));
            }
        }
        match sock.read(&mut buf) {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("handshake: {e}")),
        }
    }
}

/// A blocking, secured TCP conversation outside the hub (the master and a host agent):
/// whole frames in, whole frames out.
#[derive(Debug)]
pub struct Channel {
    conn: Conn,
    send_nonce: u64,
    opener: Opener,
    /// Plaintext received and not yet taken: `u32 length || postcard` frames.
    plain: Vec<u8>,
}

/// The largest frame a [`Channel`] takes.
const MAX_CHANNEL_FRAME: usize = 1 << 20;

impl Channel {
    /// A channel over a connection whose handshake is done.
    ///
    /// # Errors
    /// The connection has no keys.
    pub fn new(conn: Conn, already: &[u8]) -> io::Result<Channel> {
        if conn.keys().is_none() {
            return Err(io::Error::other("a channel needs a secured connection"));
        }
        let mut ch = Channel { conn, send_nonce: 0, opener: Opener::default(), plain: Vec::new() };
        ch.take(already)?;
        Ok(ch)
    }

    fn take(&mut self, bytes: &[u8]) -> io::Result<()> {
        let keys = self.conn.keys().ok_or_else(|| io::Error::other("no keys"))?;
        self.opener
            .open(keys, bytes, &mut self.plain)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The next whole frame's body, if one is there.
    fn next_body(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(len) = self.plain.get(..4) else { return Ok(None) };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_CHANNEL_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an oversized frame"));
        }
        if self.plain.len() < 4 + len {
            return Ok(None);
        }
        let body = self.plain[4..4 + len].to_vec();
        self.plain.drain(..4 + len);
        Ok(Some(body))
    }

    /// Sends one value as one sealed frame.
    ///
    /// # Errors
    /// Writing failed.
    pub fn send<T: serde::Serialize>(&mut self, value: &T) -> io::Result<()> {
        let body = postcard::to_stdvec(value).map_err(io::Error::other)?;
        let mut plain = (body.len() as u32).to_le_bytes().to_vec();
        plain.extend_from_slice(&body);
        let keys = self.conn.keys().ok_or_else(|| io::Error::other("no keys"))?;
        let mut out = Vec::with_capacity(plain.len() + 32);
        noise::seal(keys, &mut self.send_nonce, &plain, &mut out)?;
        (&self.conn).write_all(&out)
    }

    /// Waits (at most `timeout`, for ever with `None`) for the next value.
    ///
    /// # Errors
    /// The peer closed (`UnexpectedEof`), the wait timed out (`WouldBlock` or
    /// `TimedOut`), or it sent something that does not open or decode.
    pub fn recv<T: serde::de::DeserializeOwned>(
        &mut self,
        timeout: Option<Duration>,
    ) -> io::Result<T> {
        let Conn::Tcp { sock, .. } = &self.conn else { return Err(io::Error::other("not tcp")) };
        sock.set_read_timeout(timeout)?;
        loop {
            if let Some(body) = self.next_body()? {
                return postcard::from_bytes(&body)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            }
            let mut buf = [0u8; 16 * 1024];
            let n = (&self.conn).read(&mut buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.take(&buf[..n])?;
        }
    }

    /// The connection (for its fd, to wait on it).
    pub fn conn(&self) -> &Conn {
        &self.conn
    }
}
