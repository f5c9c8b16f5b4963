//! One running system: its processes, its links, its ledger, and who owes which answer.
//!
//! Created by `StartMaster`, dropped by `KillAll` or at the end of the run. Dropping it
//! SIGKILLs and reaps every child, whatever path led there (an error, a panic unwinding),
//! so no process of the system outlives it; the socket names are abstract and vanish with
//! their processes.

use super::fatal::Fatal;
use super::ledger::Ledger;
use crate::cli::ChildRole;
use crate::cluster::Agent;
use crate::ids::{Amount, NodeId};
use crate::process::{kill_and_reap, spawn_self};
use crate::rng::Rng;
use crate::transport::noise::{install, Identity};
use crate::transport::{self, Directory, Event, Hub, Link, Names};
use crate::wire::{Control, Message, ObserverRequest, Peer};
use crossbeam_channel::{unbounded, Receiver};
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

/// A running system.
pub(crate) struct System {
    names: Names,
    nonce: u64,
    pub(crate) inbox: Receiver<Event>,
    observer: Option<Link>,
    links: HashMap<NodeId, Link>,
    /// The node links written to since the last flush (a flush looks at these only).
    dirty: std::collections::BTreeSet<NodeId>,
    procs: Procs,
    pub(crate) ledger: Ledger,
    /// Who owes which answer.
    pub(crate) owed: Owed,
    /// Where node logs are kept (`--data-dir`), or `None` for unnamed temporary files,
    /// and each node's log, kept open for the node's lifetime.
    logs: (Option<PathBuf>, HashMap<NodeId, File>),
    /// On several hosts: the agents, where each node runs, and where all listen.
    cluster: Option<Cluster>,
    // Declared last: dropped after the children are killed.
    hub: Hub,
}

/// The processes of a run.
#[derive(Default)]
struct Procs {
    /// The observer's process, then every live node process.
    children: Vec<Child>,
    /// Each node's current process id (its entry in `children`).
    pid_of: HashMap<NodeId, u32>,
    /// How many processes each node has had (1 + its restarts): the generation of its
    /// newest link to the observer.
    starts: HashMap<NodeId, u32>,
    /// Nodes killed on purpose whose link has not reported its close yet.
    closing: std::collections::HashSet<NodeId>,
}

/// Who owes the master which answer: per node, the commands waiting for its answers in
/// command order; the observer's requests; the nodes given commands they do not answer.
#[derive(Default)]
pub(crate) struct Owed {
    next_seq: HashMap<NodeId, u64>,
    /// Per node: (the command's sequence number, its slot), in command order.
    nodes: HashMap<NodeId, VecDeque<(u64, u64)>>,
    /// Nodes given commands they do not answer since the last barrier.
    unanswered: std::collections::BTreeSet<NodeId>,
    /// The slots waiting for the observer's answers, in request order.
    observer: VecDeque<u64>,
}

impl Owed {
    /// The next sequence number of `node`'s commands.
    pub(crate) fn alloc_seq(&mut self, node: NodeId) -> u64 {
        let seq = self.next_seq.entry(node).or_insert(0);
        *seq += 1;
        *seq - 1
    }

    /// The slot `node`'s answer to command `seq` completes, if it is the one owed next.
    pub(crate) fn answered(&mut self, node: NodeId, seq: u64) -> Option<u64> {
        let queue = self.nodes.entry(node).or_default();
        match queue.front() {
            Some(&(s, slot)) if s == seq => {
                queue.pop_front();
                Some(slot)
            }
            _ => None,
        }
    }

    /// The slot the observer's next answer completes.
    pub(crate) fn observer_answered(&mut self) -> Option<u64> {
        self.observer.pop_front()
    }

    /// Whether any answer is still owed.
    pub(crate) fn any(&self) -> bool {
        !self.observer.is_empty() || self.nodes.values().any(|q| !q.is_empty())
    }

    /// The nodes that owe answers, by id.
    pub(crate) fn owing(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> =
            self.nodes.iter().filter(|(_, q)| !q.is_empty()).map(|(n, _)| *n).collect();
        v.sort();
        v
    }

    /// Who owes what, in words (for a hung run's error).
    pub(crate) fn describe(&self) -> String {
        let mut owed: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(n, q)| format!("node {n} owes {}", q.len()))
            .collect();
        owed.sort();
        if !self.observer.is_empty() {
            owed.push(format!("the observer owes {}", self.observer.len()));
        }
        if owed.is_empty() {
            "a load".to_string()
        } else {
            owed.join(", ")
        }
    }

    /// The nodes given unanswered commands since this was last asked: a barrier must
    /// ask each something it answers, to know they have run.
    pub(crate) fn take_unanswered(&mut self) -> Vec<NodeId> {
        std::mem::take(&mut self.unanswered).into_iter().collect()
    }

    /// A new process for `node`: its numbering starts again, and nothing is owed by it.
    fn restart(&mut self, node: NodeId) {
        self.next_seq.remove(&node);
        self.nodes.remove(&node);
    }
}

/// A run's nodes on several hosts (SPEC chapter 10).
struct Cluster {
    hosts: crate::cluster::Hosts,
    /// One session per host, in the hosts file's order.
    agents: Vec<Agent>,
    /// The host of each node.
    place: HashMap<NodeId, usize>,
    /// The host the next node without `on` goes to.
    next: usize,
    /// Where the observer and every node listen.
    dir: Directory,
}

impl System {
    /// Starts the observer (and, with `hosts`, opens a session with every agent).
    pub(crate) fn start(
        data_dir: Option<PathBuf>,
        hosts: Option<&crate::cluster::Hosts>,
    ) -> Result<System, Fatal> {
        let nonce = Rng::fresh_seed();
        let names = Names::new(std::process::id(), nonce);
        let cluster = match hosts {
            None => None,
            Some(hosts) => {
                let agents = hosts
                    .list
                    .iter()
                    .map(|h| Agent::open(h, &hosts.key, nonce))
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(Fatal::Setup)?;
                install(Identity { key: hosts.key.clone(), me: "master".into(), nonce });
                Some(Cluster {
                    hosts: hosts.clone(),
                    agents,
                    place: HashMap::default(),
                    next: 0,
                    dir: Directory::default(),
                })
            }
        };
        let (tx, inbox) = unbounded();
        // Read on the master's own thread: each answer saves a thread hand-off. Its writes
        // may block on a full socket: a node always reads while it waits to write.
        let hub = Hub::inline(None, nonce, tx)?;
        let mut sys = System {
            names,
            nonce,
            inbox,
            observer: None,
            links: HashMap::default(),
            dirty: Default::default(),
            procs: Procs::default(),
            ledger: Ledger::new(),
            owed: Owed::default(),
            logs: (data_dir, HashMap::default()),
            cluster,
            hub,
        };
        let tcp = sys.cluster.is_some();
        let role = ChildRole::Observer { nonce, master_pid: std::process::id(), tcp };
        let listener = match &mut sys.cluster {
            None => {
                let name = sys.names.observer();
                transport::listen(&name)
                    .map_err(|e| Fatal::Setup(format!("cannot listen on {name}: {e}")))?
            }
            Some(c) => {
                // Beside the master, on the address the first host reaches it at.
                let ip = c.agents[0]
                    .local_ip()
                    .ok_or_else(|| Fatal::Setup("no local address".into()))?;
                let l = std::net::TcpListener::bind((ip, 0))
                    .map_err(|e| Fatal::Setup(format!("cannot listen on {ip}: {e}")))?;
                c.dir.observer = l.local_addr()?.to_string();
                transport::Listener::Tcp(l)
            }
        };
        let link = sys.spawn(Peer::Observer, listener, &role, None)?;
        sys.observer = Some(link);
        log::info!("master: run {} started", sys.names.prefix());
        Ok(sys)
    }

    /// Starts a child for `peer` with `listener` and a control link.
    /// The child may still be starting when this returns: whatever is sent on the link
    /// waits in the socket, and a child that dies shows up as a closed link.
    fn spawn(
        &mut self,
        peer: Peer,
        listener: transport::Listener,
        role: &ChildRole,
        wal: Option<&File>,
    ) -> Result<Link, Fatal> {
        let (ours, theirs) = transport::control_pair()?;
        let key = self.cluster.as_ref().map(|c| &c.hosts.key);
        let child = spawn_self(role, Some(theirs), transport::listener_into_fd(listener), wal, key)
            .map_err(|e| Fatal::Setup(format!("cannot start {peer}: {e}")))?;
        if let Peer::Node(id) = peer {
            self.procs.pid_of.insert(id, child.id());
        }
        self.procs.children.push(child);
        let ours = transport::Shared::new(transport::Conn::Local(ours));
        self.hub.watch(peer, ours.clone());
        Ok(Link::new(peer, ours))
    }

    /// Whether the nodes run on several hosts.
    pub(crate) fn on_hosts(&self) -> bool {
        self.cluster.is_some()
    }

    /// Chooses node `id`'s host: `on`, or the next in the hosts file's order. On one
    /// machine there is no host to name.
    ///
    /// # Errors
    /// The reason to reject the line: an unknown host.
    pub(crate) fn place(&mut self, id: NodeId, on: Option<&str>) -> Result<(), String> {
        match (&mut self.cluster, on) {
            (None, None) => Ok(()),
            (None, Some(name)) => Err(format!(
                "no host named {name}: this run is on one machine (--hosts FILE places nodes)"
            )),
            (Some(c), Some(name)) => match c.hosts.index(name) {
                Some(i) => {
                    c.place.insert(id, i);
                    Ok(())
                }
                None => Err(format!("no host named {name} (hosts: {})", c.hosts.names())),
            },
            (Some(c), None) => {
                c.place.insert(id, c.next);
                c.next = (c.next + 1) % c.agents.len();
                Ok(())
            }
        }
    }

    /// Starts node `id`'s process on a new log; commands can be given to it at once.
    pub(crate) fn spawn_node(&mut self, id: NodeId, balance: Amount) -> Result<(), Fatal> {
        if self.cluster.is_some() {
            return self.start_remote(id, balance, true);
        }
        let wal = self.open_wal(id)?;
        self.logs.1.insert(id, wal);
        self.start_node(id, balance)
    }

    /// Starts node `id` on the log a earlier run left in the data directory
    /// (`--resume`): the process recovers from it as a restarted one does.
    pub(crate) fn spawn_saved(&mut self, id: NodeId, opening: Amount) -> Result<(), Fatal> {
        let dir =
            self.logs.0.as_ref().ok_or_else(|| Fatal::Bug("resume without a data dir".into()))?;
        let path = dir.join(format!("node-{id}.wal"));
        let wal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Fatal::Setup(format!("cannot open {}: {e}", path.display())))?;
        self.logs.1.insert(id, wal);
        self.start_node(id, opening)
    }

    /// Starts node `id` through its host's agent (a new log if `fresh`), dials it, and
    /// tells it where everyone listens before any command.
    fn start_remote(&mut self, id: NodeId, balance: Amount, fresh: bool) -> Result<(), Fatal> {
        *self.procs.starts.entry(id).or_default() += 1;
        let c = self.cluster.as_mut().ok_or_else(|| Fatal::Bug("not on several hosts".into()))?;
        let h = *c.place.get(&id).ok_or_else(|| Fatal::Bug(format!("node {id} has no host")))?;
        let addr = c.agents[h].start(id, balance, fresh, true).map_err(Fatal::Setup)?;
        c.dir.nodes.insert(id, addr.clone());
        let dir = Message::Directory {
            observer: c.dir.observer.clone(),
            nodes: c.dir.nodes.iter().map(|(k, v)| (*k, v.clone())).collect(),
        };
        let hello = crate::wire::Hello { nonce: self.nonce, from: Peer::Master };
        let (mut link, reader) = Link::connect(&format!("tcp:{addr}"), Peer::Node(id), hello)
            .map_err(|e| Fatal::Gone(format!("cannot reach node {id}: {e}")))?;
        link.push(&dir);
        self.hub.watch(Peer::Node(id), reader);
        self.links.insert(id, link);
        self.dirty.insert(id);
        Ok(())
    }

    /// Node `id`'s process was ended on purpose: its link's close is expected.
    pub(crate) fn expect_close(&mut self, id: NodeId) {
        self.procs.closing.insert(id);
    }

    /// Whether node `id`'s old link has not reported its close yet.
    pub(crate) fn closing(&self, id: NodeId) -> bool {
        self.procs.closing.contains(&id)
    }

    /// A node's link closed: true if that was expected (and is now done with).
    pub(crate) fn closed(&mut self, id: NodeId) -> bool {
        self.procs.closing.remove(&id)
    }

    /// Starts a new process for node `id` on its existing log (`Restart`).
    pub(crate) fn restart_node(&mut self, id: NodeId) -> Result<(), Fatal> {
        self.owed.restart(id);
        // The opening balance matters only if the log is still empty.
        let balance = self.ledger.holdings().opening(id);
        if self.cluster.is_some() {
            return self.start_remote(id, balance, false);
        }
        self.start_node(id, balance)
    }

    /// SIGKILLs node `id`'s process (if it still runs), reaps it, and forgets it, so
    /// that nothing signals that pid again once another process may have it.
    pub(crate) fn kill_node(&mut self, id: NodeId) {
        self.links.remove(&id);
        if let Some(c) = &mut self.cluster {
            if let Some(&h) = c.place.get(&id) {
                if let Err(why) = c.agents[h].kill(id) {
                    log::error!("master: {why}");
                }
            }
            return;
        }
        let Some(pid) = self.procs.pid_of.remove(&id) else { return };
        if let Some(i) = self.procs.children.iter().position(|c| c.id() == pid) {
            let mut gone = vec![self.procs.children.swap_remove(i)];
            kill_and_reap(&mut gone);
        }
    }

    /// Stops (`stop`: SIGSTOP) or continues (SIGCONT) node `id`'s process (`Pause`,
    /// `Resume`). A stopped process still dies with the master (its death signal is
    /// SIGKILL, which a stopped process takes).
    pub(crate) fn signal(&mut self, id: NodeId, stop: bool) -> Result<(), Fatal> {
        use nix::sys::signal::{kill, Signal};
        if let Some(c) = &mut self.cluster {
            let h =
                *c.place.get(&id).ok_or_else(|| Fatal::Bug(format!("node {id} has no host")))?;
            return c.agents[h].signal(id, stop).map_err(Fatal::Gone);
        }
        let pid = self
            .procs
            .pid_of
            .get(&id)
            .ok_or_else(|| Fatal::Gone(format!("node {id} has no process")))?;
        let sig = if stop { Signal::SIGSTOP } else { Signal::SIGCONT };
        let pid = nix::unistd::Pid::from_raw(*pid as i32);
        kill(pid, sig).map_err(|e| Fatal::Gone(format!("cannot signal node {id} ({sig}): {e}")))
    }

    /// How many processes node `id` has had so far.
    pub(crate) fn starts(&self, id: NodeId) -> u32 {
        self.procs.starts.get(&id).copied().unwrap_or(0)
    }

    fn start_node(&mut self, id: NodeId, balance: Amount) -> Result<(), Fatal> {
        *self.procs.starts.entry(id).or_default() += 1;
        let role = ChildRole::Node {
            id: id.0,
            balance: balance.0,
            run: self.names.prefix().to_string(),
            nonce: self.nonce,
            master_pid: std::process::id(),
            tcp: false,
            durable: self.logs.0.is_some(),
        };
        let wal =
            self.logs.1.get(&id).ok_or_else(|| Fatal::Setup(format!("node {id} has no log")))?;
        let wal = wal.try_clone().map_err(|e| Fatal::Setup(format!("node {id}'s log: {e}")))?;
        let name = self.names.node(id);
        let listener = transport::listen(&name)
            .map_err(|e| Fatal::Setup(format!("cannot listen on {name}: {e}")))?;
        let link = self.spawn(Peer::Node(id), listener, &role, Some(&wal))?;
        self.links.insert(id, link);
        Ok(())
    }

    /// A new, empty write-ahead log for node `id`: `DIR/node-<id>.wal` with `--data-dir`,
    /// else an unnamed file in the temporary directory (`O_TMPFILE`), which disappears
    /// with the last process holding it, so no run, however it ends, leaves one behind.
    fn open_wal(&self, id: NodeId) -> Result<File, Fatal> {
        crate::wal::create_log(
            self.logs.0.as_deref(),
            &format!("node-{id}.wal"),
            self.names.prefix(),
        )
        .map_err(|e| Fatal::Setup(format!("cannot create the log of node {id}: {e}")))
    }

    /// Waits up to `timeout` for one event.
    pub(crate) fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Fatal> {
        self.flush_all()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(ev) = self.inbox.try_recv() {
                return Ok(Some(ev));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.read_links(left)?;
        }
    }

    /// Reads what the links hold now, without waiting; the events go to the inbox.
    pub(crate) fn poll_now(&mut self) -> Result<(), Fatal> {
        self.read_links(Duration::ZERO)
    }

    /// Waits up to `timeout` for a link to be readable, and reads what is there.
    fn read_links(&mut self, timeout: Duration) -> Result<(), Fatal> {
        self.hub.wait(Some(timeout)).map_err(|e| Fatal::Gone(format!("cannot read the links: {e}")))
    }

    /// Gives `node` a command; its answer completes `slot`.
    pub(crate) fn command(&mut self, node: NodeId, cmd: Control, slot: u64) -> Result<(), Fatal> {
        let seq = self.send_command(node, cmd)?;
        self.owed.nodes.entry(node).or_default().push_back((seq, slot));
        Ok(())
    }

    /// Gives `node` a command it does not answer ([`Control::answered`]): one it
    /// answers only to disagree with a prediction, which ends the run.
    pub(crate) fn tell(&mut self, node: NodeId, cmd: Control) -> Result<(), Fatal> {
        debug_assert!(!cmd.answered());
        self.send_command(node, cmd)?;
        self.owed.unanswered.insert(node);
        Ok(())
    }

    fn send_command(&mut self, node: NodeId, cmd: Control) -> Result<u64, Fatal> {
        let seq = self.owed.alloc_seq(node);
        let link = self
            .links
            .get_mut(&node)
            .ok_or_else(|| Fatal::Gone(format!("no link to node {node}")))?;
        link.send(&Message::Control { seq, cmd })
            .map_err(|e| Fatal::Gone(format!("node {node} is unreachable: {e}")))?;
        self.dirty.insert(node);
        Ok(seq)
    }

    /// Sends `msg` to every node that is up, outside the command order.
    pub(crate) fn notify_nodes(&mut self, msg: &Message) -> Result<(), Fatal> {
        for (id, link) in self.links.iter_mut() {
            link.send(msg).map_err(|e| Fatal::Gone(format!("node {id} is unreachable: {e}")))?;
            self.dirty.insert(*id);
        }
        Ok(())
    }

    /// Asks the observer; its answer completes `slot`.
    pub(crate) fn observe(&mut self, req: ObserverRequest, slot: u64) -> Result<(), Fatal> {
        let link =
            self.observer.as_mut().ok_or_else(|| Fatal::Gone("no link to the observer".into()))?;
        link.send(&Message::ObserverRequest(req))
            .map_err(|e| Fatal::Gone(format!("the observer is unreachable: {e}")))?;
        self.owed.observer.push_back(slot);
        Ok(())
    }

    /// Writes every buffered frame.
    pub(crate) fn flush_all(&mut self) -> Result<(), Fatal> {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(link) = self.links.get_mut(&id) {
                link.flush().map_err(|e| Fatal::Gone(format!("node {id} is unreachable: {e}")))?;
            }
        }
        if let Some(o) = self.observer.as_mut() {
            o.flush().map_err(|e| Fatal::Gone(format!("the observer is unreachable: {e}")))?;
        }
        Ok(())
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.links.clear();
        self.observer = None;
        // Closing the sessions makes each agent kill the run's nodes.
        self.cluster = None;
        kill_and_reap(&mut self.procs.children);
        log::info!("master: run {} ended", self.names.prefix());
    }
}
