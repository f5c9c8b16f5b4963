//! The secure channel every TCP link speaks (SPEC chapter 10): a Noise handshake,
//! `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, with the cluster key as the pre-shared key
//! and `"bank-master/1" || run nonce || initiator || responder` as the prologue, then
//! one AEAD record per chunk of at most [`MAX_CHUNK`] bytes of the link's ordinary
//! frame stream.
//!
//! On the wire, the initiator first sends a cleartext preface (one length byte and the
//! name it claims, `node 3`, `master`, …) and the handshake's first message; the
//! responder builds the same prologue from its own run nonce and name and the claimed
//! name, so a peer without the key, of another run, or lying about who it is fails the
//! first decryption. Every later record is `u16 length || ciphertext`, sealed with an
//! implicit counter nonce on each side: a record tampered with, dropped, replayed or
//! reordered fails to open, and the link is closed. Nothing else is read from a peer
//! before its handshake succeeds, and the handshake's own payloads are empty (psk0's
//! first message can be replayed; it is never acted on).

use snow::{Builder, HandshakeState, StatelessTransportState};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// The most plaintext one record carries (a Noise message is at most 65535 bytes,
/// 16 of them the tag).
pub const MAX_CHUNK: usize = 65535 - TAG;
const TAG: usize = 16;
/// A handshake message of NNpsk0 is 48 bytes (an ephemeral key and a tag).
const HANDSHAKE_MSG: usize = 48;
/// The most a connection may send before its handshake is complete.
pub const MAX_HANDSHAKE: usize = 256;
/// The longest name a preface may claim.
const MAX_NAME: usize = 64;
/// How long an initiator waits for the responder's half of the handshake (TCP
/// retransmits what a lossy link drops meanwhile).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// A 32-byte cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A new random key from the kernel's generator.
    ///
    /// # Errors
    /// `/dev/urandom` could not be read.
    pub fn generate() -> io::Result<Key> {
        let mut k = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut k)?;
        Ok(Key(k))
    }

    /// The key as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads 64 hex digits (surrounding white space ignored).
    ///
    /// # Errors
    /// The text is not 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Key, String> {
        let t = text.trim();
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a cluster key is 64 hex digits (make one with bank-master keygen)".into());
        }
        let mut k = [0u8; 32];
        for (i, byte) in k.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Key(k))
    }
}

/// This process's key, the name it answers to and its run: set by a process that speaks
/// TCP (the master again for each run), read by every link it opens or accepts.
#[derive(Debug)]
pub struct Identity {
    /// The cluster key.
    pub key: Key,
    /// Who this process is, as peers name it in their prologue (`node 3`, `observer`).
    pub me: String,
    /// The run nonce (0 for a host agent, which belongs to no run).
    pub nonce: u64,
}

static IDENTITY: RwLock<Option<Arc<Identity>>> = RwLock::new(None);

/// Sets this process's identity (replacing any earlier one).
pub fn install(id: Identity) {
    let mut slot = IDENTITY.write().unwrap_or_else(|e| e.into_inner());
    *slot = Some(Arc::new(id));
}

/// This process's identity, if it speaks TCP.
pub fn identity() -> Option<Arc<Identity>> {
    IDENTITY.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn prologue(nonce: u64, initiator: &str, responder: &str) -> Vec<u8> {
    let mut p = b"bank-master/1".to_vec();
    p.extend_from_slice(&nonce.to_le_bytes());
    p.extend_from_slice(initiator.as_bytes());
    p.push(0);
    p.extend_from_slice(responder.as_bytes());
    p
}

fn noise_err(e: snow::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("handshake failed ({e})"))
}

fn builder<'a>(key: &'a Key, prologue: &'a [u8]) -> Result<Builder<'a>, snow::Error> {
    Builder::new(PATTERN.parse()?).psk(0, &key.0)?.prologue(prologue)
}

/// The initiator's first half: sends the preface and the first message. The answer is
/// read by [`finish`], when the link is first used: a master starting many nodes does
/// not wait for each process to be up before it starts the next.
///
/// # Errors
/// The socket failed.
pub fn begin(
    sock: &mut TcpStream,
    key: &Key,
    nonce: u64,
    me: &str,
    them: &str,
) -> io::Result<HandshakeState> {
    let (hs, first) = first_message(key, nonce, me, them).map_err(noise_err)?;
    sock.write_all(&first)?;
    Ok(hs)
}

/// The preface (`me`'s name) and the handshake's first message, and the state that
/// reads the answer.
fn first_message(
    key: &Key,
    nonce: u64,
    me: &str,
    them: &str,
) -> Result<(HandshakeState, Vec<u8>), snow::Error> {
    let pro = prologue(nonce, me, them);
    let mut hs = builder(key, &pro)?.build_initiator()?;
    let mut first = vec![me.len() as u8];
    first.extend_from_slice(me.as_bytes());
    let mut msg = [0u8; 128];
    let n = hs.write_message(&[], &mut msg)?;
    first.extend_from_slice(&(n as u16).to_be_bytes());
    first.extend_from_slice(&msg[..n]);
    Ok((hs, first))
}

/// The initiator's second half: reads the responder's answer (exactly its bytes, at most
/// [`HANDSHAKE_TIMEOUT`]; the socket may be non-blocking) and returns the transport state.
///
/// # Errors
/// The socket failed or timed out, or the responder does not hold the key.
pub fn finish(sock: &TcpStream, mut hs: HandshakeState) -> io::Result<StatelessTransportState> {
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut answer = [0u8; 2 + HANDSHAKE_MSG];
    let mut got = 0;
    while got < answer.len() {
        match (&*sock).read(&mut answer[got..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the handshake (refused?)",
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no handshake answer"));
                }
                let mut fds = [nix::poll::PollFd::new(sock.as_fd(), nix::poll::PollFlags::POLLIN)];
                let t =
                    nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
                let _ = nix::poll::poll(&mut fds, t);
            }
            Err(e) => return Err(e),
        }
    }
    if u16::from_be_bytes([answer[0], answer[1]]) as usize != HANDSHAKE_MSG {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a handshake answer"));
    }
    let mut payload = [0u8; 128];
    hs.read_message(&answer[2..], &mut payload).map_err(noise_err)?;
    hs.into_stateless_transport_mode().map_err(noise_err)
}

/// What the responder made of the bytes a connection sent so far.
#[derive(Debug)]
pub enum Answer {
    /// Not all of the preface and first message yet.
    More,
    /// The peer proved the key: send `reply`; `used` bytes of the input were the
    /// handshake, the rest is transport records.
    Accepted {
        /// The name the peer claimed (and proved, as far as one key proves anything).
        claimed: String,
        /// The handshake's second message, to write back.
        reply: Vec<u8>,
        /// How many input bytes the handshake took.
        used: usize,
        /// The link's transport state.
        state: Box<StatelessTransportState>,
    },
}

/// The responder's half, on the bytes received so far (non-blocking: called again with
/// more on [`Answer::More`]). `me` and `nonce` are this process's name and run.
///
/// # Errors
/// The peer does not hold `key`, belongs to another run, or sent something that is not
/// a handshake: the reason, to log; the connection is to be closed.
pub fn respond(input: &[u8], key: &Key, nonce: u64, me: &str) -> Result<Answer, String> {
    let Some(&name_len) = input.first() else { return Ok(Answer::More) };
    let name_len = name_len as usize;
    if name_len == 0 || name_len > MAX_NAME {
        return Err("not a bank handshake".into());
    }
    let Some(name) = input.get(1..1 + name_len) else { return Ok(Answer::More) };
    let claimed = std::str::from_utf8(name).map_err(|_| "not a bank handshake".to_string())?;
    let at = 1 + name_len;
    let Some(len) = input.get(at..at + 2) else { return Ok(Answer::More) };
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    if len != HANDSHAKE_MSG {
        return Err(format!("not a bank handshake (claims to be {claimed:?})"));
    }
    let Some(msg) = input.get(at + 2..at + 2 + len) else { return Ok(Answer::More) };
    let pro = prologue(nonce, claimed, me);
    let refused = |e: snow::Error| {
        format!("handshake failed ({e}): claims to be {claimed:?} but does not hold the key of this run")
    };
    let mut hs = builder(key, &pro).and_then(|b| b.build_responder()).map_err(refused)?;
    let mut payload = [0u8; 128];
    hs.read_message(msg, &mut payload).map_err(refused)?;
    let mut out = [0u8; 128];
    let n = hs.write_message(&[], &mut out).map_err(refused)?;
    let mut reply = (n as u16).to_be_bytes().to_vec();
    reply.extend_from_slice(&out[..n]);
    let state = hs.into_stateless_transport_mode().map_err(refused)?;
    Ok(Answer::Accepted {
        claimed: claimed.to_string(),
        reply,
        used: at + 2 + len,
        state: Box::new(state),
    })
}

/// Seals `plain` into records appended to `out`, counting `nonce` up.
///
/// # Errors
/// The cipher refused (never for a valid state).
pub fn seal(
    state: &StatelessTransportState,
    nonce: &mut u64,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    for chunk in plain.chunks(MAX_CHUNK) {
        let at = out.len();
        out.resize(at + 2 + chunk.len() + TAG, 0);
        let n = state
            .write_message(*nonce, chunk, &mut out[at + 2..])
            .map_err(|e| io::Error::other(format!("seal: {e}")))?;
        out[at..at + 2].copy_from_slice(&(n as u16).to_be_bytes());
        out.truncate(at + 2 + n);
        *nonce += 1;
    }
    Ok(())
}

/// The read side of a secure link: takes bytes as they come, gives the plaintext.
#[derive(Debug, Default)]
pub struct Opener {
    nonce: u64,
    raw: Vec<u8>,
    plain: Vec<u8>,
}

impl Opener {
    /// Opens every whole record in what arrived so far (`bytes` added), appending the
    /// plaintext to `out`.
    ///
    /// # Errors
    /// A record does not open: tampered with, replayed, reordered, or never sealed
    /// with this link's keys. The link must be closed.
    pub fn open(
        &mut self,
        state: &StatelessTransportState,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        self.raw.extend_from_slice(bytes);
        let mut at = 0;
        while let Some(len) = self.raw.get(at..at + 2) {
            let len = u16::from_be_bytes([len[0], len[1]]) as usize;
            if len < TAG {
                return Err("a record shorter than its tag".into());
            }
            let Some(rec) = self.raw.get(at + 2..at + 2 + len) else { break };
            self.plain.resize(len, 0);
            let n = state
                .read_message(self.nonce, rec, &mut self.plain)
                .map_err(|e| format!("a record that does not open ({e})"))?;
            out.extend_from_slice(&self.plain[..n]);
            self.nonce += 1;
            at += 2 + len;
        }
        self.raw.drain(..at);
        Ok(())
    }

    /// Bytes of an unfinished record.
    pub fn pending(&self) -> usize {
        self.raw.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node 1's first bytes to node 2 with `ka` in run `na`, and node 2's answer with
    /// `kb` in run `nb`.
    fn pair(
        ka: &Key,
        kb: &Key,
        na: u64,
        nb: u64,
    ) -> (HandshakeState, Vec<u8>, Result<Answer, String>) {
        let (hs, first) = first_message(ka, na, "node 1", "node 2").unwrap();
        let answer = respond(&first, kb, nb, "node 2");
        (hs, first, answer)
    }

    /// Both ends' transport states after a handshake that succeeds: (node 1's, node 2's).
    fn linked(k: &Key, nonce: u64) -> (StatelessTransportState, StatelessTransportState) {
        let (mut hs, _, answer) = pair(k, k, nonce, nonce);
        let Answer::Accepted { reply, state, .. } = answer.unwrap() else { panic!("not accepted") };
        hs.read_message(&reply[2..], &mut [0u8; 64]).unwrap();
        (hs.into_stateless_transport_mode().unwrap(), *state)
    }

    #[test]
    fn the_same_key_and_run_is_accepted_and_records_round_trip() {
        let k = Key::generate().unwrap();
        let (_, first, answer) = pair(&k, &k, 7, 7);
        // Byte by byte: More until the whole first message is there.
        for cut in 0..first.len() {
            assert!(matches!(respond(&first[..cut], &k, 7, "node 2"), Ok(Answer::More)), "{cut}");
        }
        let Answer::Accepted { claimed, used, .. } = answer.unwrap() else {
            panic!("not accepted")
        };
        assert_eq!((claimed.as_str(), used), ("node 1", first.len()));
        let (ours, theirs) = linked(&k, 7);
        // 100 KB crosses the chunk size; the opener gets it in odd-sized pieces.
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (mut wn, mut sealed) = (0u64, Vec::new());
        seal(&ours, &mut wn, &plain, &mut sealed).unwrap();
        assert_eq!(wn, 2);
        let (mut opener, mut got) = (Opener::default(), Vec::new());
        for piece in sealed.chunks(777) {
            opener.open(&theirs, piece, &mut got).unwrap();
        }
        assert_eq!(got, plain);
        assert_eq!(opener.pending(), 0);
    }

    #[test]
    fn a_wrong_key_another_run_or_garbage_is_refused() {
        let (k, other) = (Key::generate().unwrap(), Key::generate().unwrap());
        assert!(pair(&k, &other, 1, 1).2.is_err(), "wrong key");
        assert!(pair(&k, &k, 1, 2).2.is_err(), "another run");
        assert!(matches!(pair(&k, &k, 1, 1).2, Ok(Answer::Accepted { .. })));
        assert!(respond(b"GET / HTTP/1.1\r\n", &k, 1, "node 2").is_err());
        assert!(respond(&[0u8; 80], &k, 1, "node 2").is_err());
        let mut junk = vec![6u8];
        junk.extend_from_slice(b"node 1\x00\x30");
        junk.extend_from_slice(&[0xAA; 48]);
        assert!(respond(&junk, &k, 1, "node 2").is_err());
    }

    #[test]
    fn a_tampered_replayed_or_dropped_record_does_not_open() {
        let k = Key::generate().unwrap();
        let (ours, theirs) = linked(&k, 3);
        // A record sealed by the responder does not open as one from the initiator: the
        // two directions have their own keys.
        let (mut n, mut sealed) = (0u64, Vec::new());
        seal(&theirs, &mut n, b"transfer 10", &mut sealed).unwrap();
        assert!(Opener::default().open(&theirs, &sealed, &mut Vec::new()).is_err());
        let (mut wn, mut one, mut two) = (0u64, Vec::new(), Vec::new());
        seal(&ours, &mut wn, b"transfer 10", &mut one).unwrap();
        seal(&ours, &mut wn, b"transfer 20", &mut two).unwrap();
        let mut tampered = one.clone();
        tampered[5] ^= 1;
        assert!(Opener::default().open(&theirs, &tampered, &mut Vec::new()).is_err());
        let mut o = Opener::default();
        let mut got = Vec::new();
        o.open(&theirs, &one, &mut got).unwrap();
        assert_eq!(got, b"transfer 10");
        assert!(o.open(&theirs, &one, &mut got).is_err(), "replayed");
        let mut o = Opener::default();
        assert!(o.open(&theirs, &two, &mut Vec::new()).is_err(), "the first was dropped");
    }

    #[test]
    fn keys_read_back_from_hex() {
        let k = Key::generate().unwrap();
        assert_eq!(Key::from_hex(&format!("{}\n", k.to_hex())).unwrap(), k);
        assert!(Key::from_hex("abc").is_err());
        assert!(Key::from_hex(&"g".repeat(64)).is_err());
    }
}
