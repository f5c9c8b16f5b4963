//! The observer process: starts snapshots and gathers them, on the master's behalf.
//!
//! It takes the master's requests one at a time, in order. `Begin` tells the initiator to
//! record (as the initiator's command number `seq`, so it runs exactly where the master
//! placed it among that node's commands) and answers once the node has recorded.
//! `Collect` asks every node, each at its own sequence number, for what it recorded, and
//! answers with the assembled global snapshots (`protocol::snapshot::assemble`).
//! It never writes stdout; it exits when the master's link closes.

use crate::ids::NodeId;
use crate::protocol::snapshot::assemble;
use crate::transport::{self, ChildLinks, Event, Hub, Link};
use crate::wire::{Control, Message, ObserverReply, ObserverRequest, Peer, Report};
use crossbeam_channel::Receiver;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;

/// What the observer process is started with.
#[derive(Debug, Clone)]
pub struct ObserverArgs {
    /// The run's nonce.
    pub nonce: u64,
    /// The master's pid.
    pub master_pid: u32,
    /// Its listener is TCP: the nodes are on several hosts.
    pub tcp: bool,
}

/// Runs the observer until the master goes away.
///
/// # Errors
/// Setting up failed, or a link broke mid-run.
pub fn run(args: ObserverArgs) -> io::Result<()> {
    let ChildLinks { hub, master, inbox } = transport::start_child(transport::ChildStart {
        parent: args.master_pid,
        nonce: args.nonce,
        tcp: args.tcp,
        control: true,
        inline: false,
    })?;
    let mut obs = Observer {
        inbox,
        master: master.ok_or_else(|| io::Error::other("the observer has no control link"))?,
        nodes: HashMap::new(),
        requests: VecDeque::new(),
        reports: HashMap::new(),
        gens: HashMap::new(),
        _hub: hub,
    };
    loop {
        while let Some(req) = obs.requests.pop_front() {
            let reply = obs.handle(req)?;
            obs.master.send(&Message::ObserverReply(reply))?;
        }
        obs.master.flush()?;
        if !obs.wait()? {
            return Ok(());
        }
    }
}

struct Observer {
    inbox: Receiver<Event>,
    master: Link,
    nodes: HashMap<NodeId, Link>,
    requests: VecDeque<ObserverRequest>,
    /// How many links each node has opened here (one per process it has had).
    gens: HashMap<NodeId, u32>,
    /// Reports received from each node, by sequence number, not yet consumed.
    reports: HashMap<NodeId, BTreeMap<u64, Report>>,
    _hub: Hub,
}

impl Observer {
    fn handle(&mut self, req: ObserverRequest) -> io::Result<ObserverReply> {
        match req {
            ObserverRequest::Begin { snapshot, node, seq } => {
                self.command(node, seq, Control::BeginSnapshot { snapshot })?;
                match self.report(node, seq)? {
                    Report::Recorded { balance } => Ok(ObserverReply::Started { balance }),
                    other => Err(unexpected(node, other)),
                }
            }
            ObserverRequest::Relink { node, gen } => {
                while self.gens.get(&node).copied().unwrap_or(0) < gen {
                    if !self.wait()? {
                        return Err(gone());
                    }
                }
                Ok(ObserverReply::Relinked)
            }
            ObserverRequest::Collect { snapshots, seqs, wait } => {
                let ids: Vec<_> = snapshots.iter().map(|(id, _)| *id).collect();
                for &(node, seq) in &seqs {
                    self.command(node, seq, Control::Collect { snapshots: ids.clone(), wait })?;
                }
                let mut reports = BTreeMap::new();
                for &(node, seq) in &seqs {
                    match self.report(node, seq)? {
                        Report::Collected(r) => reports.insert(node, r),
                        other => return Err(unexpected(node, other)),
                    };
                }
                Ok(assemble(&snapshots, &reports))
            }
        }
    }

    /// Sends `cmd` to `node` as its command `seq`, once the node's link is up.
    fn command(&mut self, node: NodeId, seq: u64, cmd: Control) -> io::Result<()> {
        while !self.nodes.contains_key(&node) {
            if !self.wait()? {
                return Err(gone());
            }
        }
        let link = self.nodes.get_mut(&node).expect("waited for the link");
        link.send(&Message::Control { seq, cmd })?;
        link.flush()
    }

    /// Waits for `node`'s report on its command `seq`.
    fn report(&mut self, node: NodeId, seq: u64) -> io::Result<Report> {
        loop {
            if let Some(r) = self.reports.get_mut(&node).and_then(|m| m.remove(&seq)) {
                return Ok(r);
            }
            if !self.wait()? {
                return Err(gone());
            }
        }
    }

    /// Handles one event (blocking). False when the master is gone.
    fn wait(&mut self) -> io::Result<bool> {
        let Ok(event) = self.inbox.recv() else {
            return Ok(false);
        };
        match event {
            Event::Connected(link) => match link.peer() {
                Peer::Node(id) => {
                    *self.gens.entry(id).or_default() += 1;
                    self.nodes.insert(id, link);
                }
                other => log::warn!("observer: unexpected connection from {other}"),
            },
            Event::Frames { peer, msgs } => {
                for msg in msgs {
                    match (peer, msg) {
                        (Peer::Master, Message::ObserverRequest(r)) => self.requests.push_back(r),
                        (Peer::Node(id), Message::Report { seq, report }) => {
                            self.reports.entry(id).or_default().insert(seq, report);
                        }
                        (peer, other) => log::warn!("observer: unexpected {other:?} from {peer}"),
                    }
                }
            }
            Event::Closed { peer: Peer::Master, .. } => return Ok(false),
            Event::Closed { peer, why } => {
                // A node died. Its link stays until a restarted process replaces it (this
                // event may even come after that); the master asks nothing of a down node.
                log::debug!("observer: link to {peer} closed ({why:?})");
            }
        }
        Ok(true)
    }
}

fn unexpected(node: NodeId, report: Report) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("node {node} answered {report:?}"))
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the master is gone")
}
