//! What leaves a node, and in which order: its write-ahead log and its links. Records are
//! appended as the machines push them; frames wait in the links' buffers; a flush writes
//! the log first, then lets each link go in the round [`plan`] gives it, syncing the log
//! between the rounds when a forced record waits (persist-then-send, with group commit:
//! one `fdatasync` for every record forced since the last flush).
//!
//! The node driver (`node`) decides what is appended and pushed; this module only keeps
//! the promise that nothing leaves before what it relies on is on disk.

use crate::ids::NodeId;
use crate::protocol::Record;
use crate::transport::{self, Hub, Link};
use crate::wal::{WalError, WalFile};
use crate::wire::{Hello, Message, Peer};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;
use std::io;

/// Which links leave in which round of a flush: round 0 before the sync, round 1 right
/// after it, round 2 last.
///
/// * Links to nodes leave before the sync (round 0) unless they carry a message pushed
///   while a forced record waited (`after_sync`): that message may promise what the
///   record says. Without a sync they all leave in round 1.
/// * Links to the master and the observer leave last (round 2), so that an answer never
///   overtakes the messages it reports; in live mode (`answers_early`), where nothing
///   relies on that order, they leave in round 0 unless they carry a decision.
pub fn plan(links: &[(Peer, bool)], sync: bool, answers_early: bool) -> [Vec<Peer>; 3] {
    let mut rounds: [Vec<Peer>; 3] = Default::default();
    for &(peer, after_sync) in links {
        let round = match peer {
            Peer::Node(_) if sync && !after_sync => 0,
            Peer::Node(_) => 1,
            Peer::Master | Peer::Observer if sync && answers_early => 0,
            Peer::Master | Peer::Observer => 2,
        };
        rounds[round].push(peer);
    }
    rounds
}

/// A payee's commit, written and not synced, and its ack held back in the link to the
/// coordinator that paid it (that link's only frames): the sync and the ack wait for the
/// next forced record (the next transfer's `Prepared`, usually on its way), so
/// back-to-back driven transfers pay one sync less each. They wait only while nothing
/// else happens here; the coordinator needs the ack for nothing but forgetting the
/// transaction, which it answered already.
#[derive(Debug, Clone, Copy)]
struct LazyAck {
    /// The coordinator.
    peer: NodeId,
    /// How much its link held then.
    buffered: usize,
}

/// The node's log and links.
pub struct Outbox {
    hub: Hub,
    links: HashMap<Peer, Link>,
    wal: WalFile<Record>,
    /// Force every record (SPEC chapter 10's durability: plain Sends too).
    durable: bool,
    /// A forced record was appended: the next flush syncs before any promise leaves.
    sync_due: bool,
    /// Peers whose link holds a message pushed while a forced record waited.
    after_sync: BTreeSet<NodeId>,
    /// Live mode: a decision (or a count of them) was pushed to the master since the last
    /// flush, so its link waits for the sync too.
    told_decision: bool,
    /// A payee's ack held back with its sync (see [`LazyAck`]).
    lazy: Option<LazyAck>,
    /// The links pushed to since the last flush: a flush (and the checks before one)
    /// looks at these only, not at every link (a thousand-node mesh wakes a node for a
    /// few markers at a time; measured, scanning every link cost 12% of such a run).
    dirty: BTreeSet<Peer>,
}

/// A log error as an I/O error (the node's loop ends on either).
pub fn io_err(e: WalError) -> io::Error {
    match e {
        WalError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl Outbox {
    /// The log and the reader of every link; `master`, the control link, if any.
    pub fn new(hub: Hub, master: Option<Link>, wal: WalFile<Record>, durable: bool) -> Outbox {
        Outbox {
            hub,
            links: master.into_iter().map(|m| (Peer::Master, m)).collect(),
            wal,
            durable,
            sync_due: false,
            after_sync: BTreeSet::new(),
            told_decision: false,
            lazy: None,
            dirty: BTreeSet::new(),
        }
    }

    /// Appends `rec`; `force`: durable before anything pushed from now on leaves.
    pub fn append(&mut self, rec: &Record, force: bool) -> io::Result<()> {
        self.wal.append(rec).map_err(io_err)?;
        self.sync_due |= force || self.durable;
        Ok(())
    }

    /// Makes what the log holds durable now (a restarted process, before it says
    /// anything).
    pub fn sync_log(&mut self) -> io::Result<()> {
        self.wal.sync().map_err(io_err)
    }

    /// Whether a link to `peer` is up.
    pub fn has(&self, peer: Peer) -> bool {
        self.links.contains_key(&peer)
    }

    /// The link to `peer`.
    ///
    /// # Errors
    /// There is none (the peer's link never came, or broke).
    pub fn link(&mut self, peer: Peer) -> io::Result<&mut Link> {
        self.links.get_mut(&peer).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, format!("no link to {peer}"))
        })
    }

    /// The nodes this node has a link with.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.links
            .keys()
            .filter_map(|p| match p {
                Peer::Node(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// A link that came in (`Event::Connected`).
    pub fn add(&mut self, link: Link) {
        if link.is_dirty() {
            self.dirty.insert(link.peer());
        }
        self.links.insert(link.peer(), link);
    }

    /// Dials `peer` at `name`.
    pub fn connect(&mut self, peer: Peer, name: &str, hello: Hello) -> io::Result<()> {
        let (link, reader) = Link::connect(name, peer, hello)?;
        self.hub.watch(peer, reader);
        // A TCP link's hello (and its handshake's last message) leave at the next flush.
        self.dirty.insert(peer);
        self.links.insert(peer, link);
        Ok(())
    }

    /// Pushes `msg` to `peer`; flushes everything when its buffer is full. `promise`: the
    /// message may promise what a forced record waiting for its sync says.
    pub fn push(&mut self, peer: Peer, msg: &Message, promise: bool) -> io::Result<()> {
        if let (Peer::Node(p), true) = (peer, self.sync_due && (promise || self.durable)) {
            self.after_sync.insert(p);
        }
        self.dirty.insert(peer);
        let link = self.link(peer)?;
        link.push(msg);
        if link.is_full() {
            // Peers first: an answer never overtakes what it reports.
            self.flush(false)?;
        }
        Ok(())
    }

    /// Pushes `msg` to `peer` as it is (a driver's own message: a hello's follow-up, an
    /// answer, a hurry), if a link to it is up.
    pub fn push_plain(&mut self, peer: Peer, msg: &Message) -> io::Result<()> {
        self.dirty.insert(peer);
        self.link(peer)?.push(msg);
        Ok(())
    }

    /// A decision was pushed to the master (live mode): its link waits for the sync.
    pub fn told_decision(&mut self) {
        self.told_decision = true;
    }

    /// Waits up to `timeout` for a link to be readable, and reads what is there.
    pub fn wait(&mut self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.hub.wait(timeout)
    }

    /// Whether nothing is buffered anywhere (log or links) and no sync is due: a payee's
    /// ack may then wait with its sync (see [`LazyAck`]).
    pub fn idle(&self) -> bool {
        !self.sync_due && !self.wal.is_dirty() && self.dirty.is_empty()
    }

    /// The step just pushed a payee's deferrable commit and its ack to `peer`: both wait
    /// for the next sync. The record is written now (a killed process leaves it in the
    /// page cache), not synced.
    pub fn defer_ack(&mut self, peer: NodeId) -> io::Result<()> {
        self.wal.write_ahead().map_err(io_err)?;
        let buffered = self.links.get(&Peer::Node(peer)).map_or(0, Link::buffered);
        self.lazy = Some(LazyAck { peer, buffered });
        self.sync_due = false;
        Ok(())
    }

    /// The held ack waits no more (the coordinator asks for it): the next flush syncs
    /// and sends it.
    pub fn release_ack(&mut self) {
        if self.lazy.take().is_some() {
            self.sync_due = true;
        }
    }

    /// Whether a held ack still waits: nothing happened here since (`quiet`: no command
    /// waits either).
    pub fn holds_ack(&self, quiet: bool) -> bool {
        let Some(l) = self.lazy else { return false };
        let coord = Peer::Node(l.peer);
        quiet
            && !self.wal.is_dirty()
            && self.dirty.iter().all(|&p| p == coord)
            && self.links.get(&coord).map_or(0, Link::buffered) == l.buffered
    }

    /// Writes every buffered record and frame, in [`plan`]'s rounds (`live`: answers
    /// may leave early). A peer found dead loses its link: the master has what was
    /// queued to it resent later.
    pub fn flush(&mut self, live: bool) -> io::Result<()> {
        // A held ack's record was written without a sync: it is forced now with it.
        let sync = std::mem::take(&mut self.sync_due) || self.lazy.take().is_some();
        let answers_early = live && !std::mem::take(&mut self.told_decision) && !self.durable;
        if sync {
            self.wal.write_ahead().map_err(io_err)?;
        } else {
            self.wal.write_buffered().map_err(io_err)?;
        }
        let dirty: Vec<(Peer, bool)> = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter(|p| self.links.get(p).is_some_and(Link::is_dirty))
            .map(|p| (p, matches!(p, Peer::Node(n) if self.after_sync.contains(&n))))
            .collect();
        let rounds = plan(&dirty, sync, answers_early);
        let mut dead = Vec::new();
        for (i, round) in rounds.iter().enumerate() {
            if i == 1 && sync {
                self.wal.sync().map_err(io_err)?;
            }
            let mut links: Vec<&mut Link> = Vec::with_capacity(round.len());
            // Each peer once: disjoint borrows of the map's values, in the round's order.
            for (p, l) in self.links.iter_mut() {
                if round.contains(p) {
                    links.push(l);
                }
            }
            for (peer, e) in transport::flush_reading(&mut self.hub, &mut links)? {
                match peer {
                    Peer::Node(_) => dead.push(peer),
                    _ => return Err(e),
                }
            }
        }
        self.after_sync.clear();
        for peer in dead {
            self.links.remove(&peer);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u32) -> Peer {
        Peer::Node(NodeId(i))
    }

    // With a force due: links that carry no new promise leave before the sync, those
    // that do after it, and the master last (an answer never overtakes its report).
    #[test]
    fn a_forced_record_holds_back_only_the_links_that_promise() {
        let links = [(node(1), false), (node(2), true), (Peer::Master, false)];
        let [before, after, last] = plan(&links, true, false);
        assert_eq!(before, vec![node(1)]);
        assert_eq!(after, vec![node(2)]);
        assert_eq!(last, vec![Peer::Master]);
    }

    // Nothing forced: the nodes, then the master and the observer.
    #[test]
    fn without_a_sync_answers_still_leave_last() {
        let links = [(Peer::Observer, false), (node(3), true), (Peer::Master, false)];
        let [before, after, last] = plan(&links, false, true);
        assert!(before.is_empty());
        assert_eq!(after, vec![node(3)]);
        assert_eq!(last, vec![Peer::Observer, Peer::Master]);
    }

    // Live mode: an answer that carries no decision does not wait for the log.
    #[test]
    fn live_answers_leave_before_the_sync() {
        let links = [(Peer::Master, false), (node(1), true)];
        let [before, after, last] = plan(&links, true, true);
        assert_eq!(before, vec![Peer::Master]);
        assert_eq!(after, vec![node(1)]);
        assert!(last.is_empty());
    }
}
