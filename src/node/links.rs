//! The node's links: messages enqueued per peer (held while a peer resynchronises or is
//! down), and the flush that writes the log first and syncs it before any promise leaves.
//! A child of the node driver: the same `Node`, its other concern.

use super::*;

impl Node {
    /// Enqueues `msg` on the channel to `to`. A peer that is down has no working link:
    /// the master keeps the message in its ledger and has it resent when the peer is back.
    /// Frames leave only through `flush_all`, which writes the log first.
    /// In live mode a Transfer goes numbered (it was just logged, so its number is the
    /// last in `sent`), and what goes to a peer being resynchronised waits.
    pub(super) fn send_to_peer(&mut self, to: NodeId, msg: ChannelMsg) -> io::Result<()> {
        let wire = match msg {
            ChannelMsg::Transfer { amount } if self.live => {
                let seq = self.sent.get(&to).map_or(0, |v| v.len() as u64).saturating_sub(1);
                Message::Numbered { seq, amount }
            }
            other => {
                if !matches!(other, ChannelMsg::Transfer { .. }) {
                    self.other_msgs.0 += 1;
                }
                Message::Channel(other)
            }
        };
        self.send_wire(to, wire)
    }

    pub(super) fn send_wire(&mut self, to: NodeId, wire: Message) -> io::Result<()> {
        if let Some(held) = self.resyncing.get_mut(&to) {
            held.push(wire);
            return Ok(());
        }
        if self.sync_due
            && (self.durable || matches!(wire, Message::Channel(ChannelMsg::Commit(_))))
        {
            self.after_sync.insert(to);
        }
        let Some(link) = self.links.get_mut(&Peer::Node(to)) else {
            if self.live {
                // The peer is down: what goes to it waits for its next link.
                self.resyncing.insert(to, vec![wire]);
            }
            return Ok(());
        };
        link.push(&wire);
        if link.is_full() {
            self.flush_all()?;
        }
        Ok(())
    }

    pub(super) fn connect(&mut self, peer: Peer, name: &str) -> io::Result<()> {
        let hello = Hello { nonce: self.nonce, from: Peer::Node(self.branch.id()) };
        let (link, reader) = Link::connect(name, peer, hello)?;
        if let Peer::Node(p) = peer {
            *self.link_gen.entry(p).or_default() += 1;
        }
        self.hub.watch(peer, reader);
        self.links.insert(peer, link);
        Ok(())
    }

    pub(super) fn link(&mut self, peer: Peer) -> io::Result<&mut Link> {
        let id = self.branch.id();
        self.links.get_mut(&peer).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, format!("node {id} has no link to {peer}"))
        })
    }

    /// Writes every buffered frame: links to nodes first, then to the master and the
    /// observer, so that an answer never overtakes the messages it reports (once the
    /// master reads an answer, what the step sent is in the peers' sockets). When a
    /// forced record waits, the log is written, the links to nodes that carry no
    /// two-phase-commit message pushed since leave, the log is synced (one `fdatasync`
    /// for every record forced meanwhile), and then the rest. In live mode nothing relies
    /// on an answer coming after what it reports (a crash's losses are made good by
    /// resync and timeouts), so the links to the master and the observer leave before the
    /// sync too, unless they carry a decision (see `told_decision`).
    pub(super) fn flush_all(&mut self) -> io::Result<()> {
        if self.live {
            self.tell_got(false);
        }
        // The log first: a money move is on file before any message about it leaves, and
        // a forced record is on disk before any message that promises something. Links
        // to nodes that carry no promise made since the force was due leave before it.
        let sync = std::mem::take(&mut self.sync_due);
        let answers_early = self.live && !std::mem::take(&mut self.told_decision) && !self.durable;
        let rounds: &[u8] = if sync {
            self.wal.write_ahead().map_err(io_err)?;
            &[0, 1, 2]
        } else {
            self.wal.write_buffered().map_err(io_err)?;
            &[1, 2]
        };
        let mut dead = Vec::new();
        for &round in rounds {
            if round == 1 && sync {
                self.wal.sync().map_err(io_err)?;
            }
            let after_sync = &self.after_sync;
            let mut dirty: Vec<&mut Link> = self
                .links
                .values_mut()
                .filter(|l| l.is_dirty())
                .filter(|l| match (round, l.peer()) {
                    (0, Peer::Node(p)) => !after_sync.contains(&p),
                    (0, Peer::Master | Peer::Observer) => answers_early,
                    (1, Peer::Node(_)) => true,
                    (2, Peer::Master | Peer::Observer) => true,
                    _ => false,
                })
                .collect();
            for (peer, e) in transport::flush_reading(&mut self.hub, &mut dirty)? {
                match peer {
                    // A dead peer: the master has what was queued to it resent later.
                    Peer::Node(_) => dead.push(peer),
                    _ => return Err(e),
                }
            }
        }
        self.after_sync.clear();
        self.lazy = None;
        for peer in dead {
            self.links.remove(&peer);
        }
        Ok(())
    }
}
