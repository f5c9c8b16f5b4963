//! The write side of one link: frames are buffered and written with one `write_all`.

use super::{connect_stream, Conn, Shared};
use crate::wire::{encode_frame, Hello, Message, Peer};
use std::io::{self, Write};

/// Flush on its own once this much is buffered, so memory stays bounded.
const FLUSH_AT: usize = 64 * 1024;

/// The write side of a link to `peer`. Frames are buffered until [`Link::flush`].
#[derive(Debug)]
pub struct Link {
    peer: Peer,
    stream: Shared,
    buf: Vec<u8>,
    /// How much of `buf` a non-blocking write already took (see [`Link::try_flush`]).
    sent: usize,
    /// A TCP link: `buf`'s frames sealed into records, waiting to be written (then
    /// `sent` counts what of this was written), and the next record's nonce.
    sealed: Vec<u8>,
    nonce: u64,
}

impl Link {
    /// The write side of `stream`, a link to `peer`.
    pub fn new(peer: Peer, stream: Shared) -> Self {
        Link { peer, stream, buf: Vec::new(), sent: 0, sealed: Vec::new(), nonce: 0 }
    }

    /// Connects to the listener `name` of `peer` and sends `hello` at once.
    /// Returns the link and the stream it shares with the [`super::Hub`] that reads it.
    ///
    /// # Errors
    /// Connecting or writing the hello failed.
    pub fn connect(name: &str, peer: Peer, hello: Hello) -> io::Result<(Link, Shared)> {
        let conn = match name.strip_prefix("tcp:") {
            Some(addr) => {
                let id = super::noise::identity().ok_or_else(|| {
                    io::Error::other("a TCP link needs the cluster key (no identity installed)")
                })?;
                // The handshake's answer is read when the link is first flushed.
                super::tcp::dial_deferred(addr, &id.key, id.nonce, &id.me, &peer.to_string())?
            }
            None => Conn::Local(connect_stream(name)?),
        };
        let stream = Shared::new(conn);
        let reader = stream.clone();
        let mut link = Link::new(peer, stream);
        link.push(&Message::Hello(hello));
        if !link.stream.is_tcp() {
            link.flush()?;
        }
        Ok((link, reader))
    }

    /// Who is at the other end.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Buffers one frame; writes everything buffered once it passes 64 KiB.
    ///
    /// # Errors
    /// Writing failed (the peer closed).
    pub fn send(&mut self, msg: &Message) -> io::Result<()> {
        self.push(msg);
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Buffers one frame and never writes: the caller decides when frames leave (a node
    /// must write its log first). See [`Link::is_full`].
    pub fn push(&mut self, msg: &Message) {
        encode_frame(msg, &mut self.buf);
    }

    /// Whether the buffer has reached the size at which it should be flushed.
    pub fn is_full(&self) -> bool {
        self.buffered() >= FLUSH_AT
    }

    /// How many bytes of frames wait for [`Link::flush`].
    pub fn buffered(&self) -> usize {
        if self.sealed.is_empty() {
            self.buf.len() - self.sent
        } else {
            self.buf.len() + self.sealed.len() - self.sent
        }
    }

    /// Whether frames are waiting for [`Link::flush`].
    pub fn is_dirty(&self) -> bool {
        !self.buf.is_empty() || !self.sealed.is_empty()
    }

    /// Writes every buffered frame, waiting for a full socket to take them (a non-blocking
    /// one too: only a peer that reads while it waits to write may be written this way).
    ///
    /// # Errors
    /// Writing failed (the peer closed); the buffer is dropped.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.is_dirty() {
            return Ok(());
        }
        let res = self.write_all_waiting();
        self.buf.clear();
        self.sealed.clear();
        self.sent = 0;
        res
    }

    /// Writes the rest of the buffer, waiting (without reading) whenever a non-blocking
    /// socket is full.
    fn write_all_waiting(&mut self) -> io::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        while !self.try_flush()? {
            let mut fds = [PollFd::new(self.fd(), PollFlags::POLLOUT)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes what a non-blocking socket takes now: `Ok(true)` when nothing is left,
    /// `Ok(false)` when the socket is full (the rest stays buffered; wait until
    /// [`Link::fd`] is writable, and read meanwhile: the peer may be waiting to write).
    ///
    /// # Errors
    /// Writing failed (the peer closed); the buffer is dropped.
    pub fn try_flush(&mut self) -> io::Result<bool> {
        if self.stream.is_tcp() {
            // A dialled link's handshake completes before its first frame leaves.
            if let Err(e) = self.stream.secure() {
                self.buf.clear();
                return Err(e);
            }
        }
        let out = if let Some(keys) = self.stream.keys() {
            if !self.buf.is_empty() {
                super::noise::seal(keys, &mut self.nonce, &self.buf, &mut self.sealed)?;
                self.buf.clear();
            }
            &mut self.sealed
        } else {
            &mut self.buf
        };
        while self.sent < out.len() {
            match (&*self.stream).write(&out[self.sent..]) {
                Ok(0) => {
                    out.clear();
                    self.sent = 0;
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => {
                    out.clear();
                    self.sent = 0;
                    return Err(e);
                }
            }
        }
        out.clear();
        self.sent = 0;
        Ok(true)
    }

    /// The socket, to wait until it is writable.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        super::hub::stream_fd(&self.stream)
    }
}
