//! `--resume --data-dir DIR` (SPEC chapter 11): the bank a data directory holds, back
//! before the command file's first line. Every node with a log there starts on it and
//! recovers as `Restart` does; they link in live mode, so each channel's two ends resync
//! (what was sent and never received is sent again, once: the logs number each
//! channel's Transfers) and every unfinished transaction ends; then, once nothing moves,
//! scripted delivery again with the ledger read from the nodes, as after `Live off`.

use super::fatal::Fatal;
use super::load::Live;
use super::saved::Saved;
use super::session::Session;
use crate::ids::NodeId;
use crate::wire::Control;

impl Session {
    /// Starts the system `saved` describes and waits until it is quiet.
    pub fn resume(&mut self, saved: Saved) -> Result<(), Fatal> {
        self.start_master()?;
        let mut up: Vec<NodeId> = Vec::new();
        for node in &saved.nodes {
            let id = node.id;
            self.sys().spawn_saved(id, node.opening)?;
            let ledger = &mut self.sys().ledger;
            ledger.add_node(id, node.opening);
            for (name, amount) in &node.accounts {
                ledger.open_account(name.clone(), id, *amount);
            }
            // Live from the first link: each link's two ends resync, whichever comes up
            // first, and what is owed to a node not up yet waits for its link.
            let setup = Control::Setup {
                peers: up.clone(),
                join: Vec::new(),
                down: Vec::new(),
                resend: Vec::new(),
                live: true,
            };
            self.ask(id, setup, super::expect::Expect::Ready(Vec::new()))?;
            for &x in &up {
                self.tell(x, Control::AddPeer { peer: id, join: Vec::new() })?;
            }
            up.push(id);
        }
        self.barrier()?;
        self.book.txns.next = saved.last_tx;
        self.book.txns.resumed = saved.last_tx;
        for known in saved.txs.values() {
            let acceptors = known.acceptors.unwrap_or([known.spec.coord; 3]);
            self.book.txns.add(&known.spec, known.protocol, acceptors);
        }
        self.live = Some(Live::default());
        match self.live_off()? {
            Ok(()) => Ok(()),
            Err(why) => Err(Fatal::Bug(format!("resume could not leave live mode: {why}"))),
        }
    }
}
