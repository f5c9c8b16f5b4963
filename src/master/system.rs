//! One running system: its processes, its links, its ledger, and who owes which answer.
//!
//! Created by `StartMaster`, dropped by `KillAll` or at the end of the run. Dropping it
//! SIGKILLs and reaps every child, whatever path led there (an error, a panic unwinding),
//! so no process of the system outlives it; the socket names are abstract and vanish with
//! their processes.

use super::ledger::Ledger;
use super::Fatal;
use crate::ids::{Amount, NodeId};
use crate::process::{has_exited, kill_and_reap, spawn_self};
use crate::rng::Rng;
use crate::transport::{self, Event, Hub, Link, Names};
use crate::wire::{Control, Message, ObserverRequest, Peer};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError};
use std::collections::{HashMap, VecDeque};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a child may take to start and say hello.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running system.
pub(crate) struct System {
    names: Names,
    nonce: u64,
    pub(crate) inbox: Receiver<Event>,
    observer: Option<Link>,
    links: HashMap<NodeId, Link>,
    children: Vec<Child>,
    pub(crate) ledger: Ledger,
    next_seq: HashMap<NodeId, u64>,
    /// Per node, the slots waiting for that node's answers, in command order.
    pub(crate) awaiting_node: HashMap<NodeId, VecDeque<u64>>,
    /// The slots waiting for the observer's answers, in request order.
    pub(crate) awaiting_observer: VecDeque<u64>,
    // Declared last: dropped after the children are killed.
    _hub: Hub,
}

impl System {
    /// Starts the observer and waits for its hello.
    pub(crate) fn start() -> Result<System, Fatal> {
        let pid = std::process::id();
        let nonce = Rng::fresh_seed();
        let names = Names::new(pid, nonce);
        let listener = transport::listen(&names.master())
            .map_err(|e| Fatal(format!("cannot listen on {}: {e}", names.master())))?;
        let (tx, inbox) = unbounded();
        let hub = Hub::start(Some(listener), nonce, tx)?;
        let mut sys = System {
            names,
            nonce,
            inbox,
            observer: None,
            links: HashMap::new(),
            children: Vec::new(),
            ledger: Ledger::new(),
            next_seq: HashMap::new(),
            awaiting_node: HashMap::new(),
            awaiting_observer: VecDeque::new(),
            _hub: hub,
        };
        let args = ["observer".to_string(), "--run".into(), sys.names.prefix().into()];
        sys.spawn(&args)?;
        log::info!("master: run {} started", sys.names.prefix());
        Ok(sys)
    }

    fn child_args(&self, role: &[String]) -> Vec<String> {
        let mut args = role.to_vec();
        args.extend([
            "--nonce".to_string(),
            self.nonce.to_string(),
            "--master-pid".to_string(),
            std::process::id().to_string(),
        ]);
        args
    }

    fn spawn(&mut self, role: &[String]) -> Result<(), Fatal> {
        let args = self.child_args(role);
        let child = spawn_self(&args).map_err(|e| Fatal(format!("cannot start a process: {e}")))?;
        self.children.push(child);
        Ok(())
    }

    /// Starts node `id`'s process. Its hello arrives later as an [`Event::Connected`];
    /// see [`System::wait_started`].
    pub(crate) fn spawn_node(&mut self, id: NodeId, balance: Amount) -> Result<(), Fatal> {
        let role = [
            "node".to_string(),
            "--id".into(),
            id.to_string(),
            "--balance".into(),
            balance.to_string(),
            "--run".into(),
            self.names.prefix().into(),
        ];
        self.spawn(&role)
    }

    /// Whether the newest child has said hello as `peer`; a fatal error if it died or
    /// took longer than [`START_TIMEOUT`] since `since`.
    pub(crate) fn check_started(&mut self, peer: Peer, since: Instant) -> Result<bool, Fatal> {
        let up = match peer {
            Peer::Observer => self.observer.is_some(),
            Peer::Node(id) => self.links.contains_key(&id),
            Peer::Master => true,
        };
        if up {
            return Ok(true);
        }
        let child = self.children.last().expect("a child was spawned");
        if has_exited(child) {
            return Err(Fatal(format!("{peer} exited while starting")));
        }
        if since.elapsed() > START_TIMEOUT {
            return Err(Fatal(format!("{peer} did not start within {START_TIMEOUT:?}")));
        }
        Ok(false)
    }

    /// Waits up to `timeout` for one event.
    pub(crate) fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Fatal> {
        self.flush_all()?;
        match self.inbox.recv_timeout(timeout) {
            Ok(ev) => Ok(Some(ev)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Fatal("the reader thread stopped".into())),
        }
    }

    /// Takes the write side of a link that said hello.
    pub(crate) fn on_connected(&mut self, link: Link) {
        match link.peer() {
            Peer::Observer => self.observer = Some(link),
            Peer::Node(id) => {
                self.links.insert(id, link);
            }
            Peer::Master => log::warn!("master: a process claims to be the master; ignored"),
        }
    }

    /// The next sequence number of `node`'s commands.
    pub(crate) fn alloc_seq(&mut self, node: NodeId) -> u64 {
        let seq = self.next_seq.entry(node).or_insert(0);
        *seq += 1;
        *seq - 1
    }

    /// Gives `node` a command; its answer completes `slot`.
    pub(crate) fn command(&mut self, node: NodeId, cmd: Control, slot: u64) -> Result<(), Fatal> {
        let seq = self.alloc_seq(node);
        let link =
            self.links.get_mut(&node).ok_or_else(|| Fatal(format!("no link to node {node}")))?;
        link.send(&Message::Control { seq, cmd })
            .map_err(|e| Fatal(format!("node {node} is unreachable: {e}")))?;
        self.awaiting_node.entry(node).or_default().push_back(slot);
        Ok(())
    }

    /// Asks the observer; its answer completes `slot`.
    pub(crate) fn observe(&mut self, req: ObserverRequest, slot: u64) -> Result<(), Fatal> {
        let link = self.observer.as_mut().ok_or_else(|| Fatal("no link to the observer".into()))?;
        link.send(&Message::ObserverRequest(req))
            .map_err(|e| Fatal(format!("the observer is unreachable: {e}")))?;
        self.awaiting_observer.push_back(slot);
        Ok(())
    }

    /// Writes every buffered frame.
    pub(crate) fn flush_all(&mut self) -> Result<(), Fatal> {
        for (id, link) in self.links.iter_mut() {
            if link.is_dirty() {
                link.flush().map_err(|e| Fatal(format!("node {id} is unreachable: {e}")))?;
            }
        }
        if let Some(o) = self.observer.as_mut() {
            o.flush().map_err(|e| Fatal(format!("the observer is unreachable: {e}")))?;
        }
        Ok(())
    }

    /// Whether any answer is still owed.
    pub(crate) fn owes_answers(&self) -> bool {
        !self.awaiting_observer.is_empty() || self.awaiting_node.values().any(|q| !q.is_empty())
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.links.clear();
        self.observer = None;
        kill_and_reap(&mut self.children);
        log::info!("master: run {} ended", self.names.prefix());
    }
}
