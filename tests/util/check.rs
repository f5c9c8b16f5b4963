//! A checker for the snapshot properties of `notes/snapshot-checks.md` §4.
//!
//! It replays events (from a `--trace` file or from the simulation) and keeps its own
//! account of balances and FIFO channels, independent of the code under test. For every
//! snapshot it computes what a correct Chandy–Lamport run must have recorded, and
//! [`Checker::verify`] compares a printed or assembled snapshot against it: conservation
//! (property 1), exact node states (2), a consistent cut, where nothing received before
//! the cut was sent after it (3), exact channel states (4), and marker discipline and
//! completion (6).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// A process-unique number.
pub fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    Transfer(u64),
    Marker(u32),
    /// A two-phase-commit credit: money, applied once per transaction.
    Credit(u64, u64),
    /// Any other two-phase-commit message (no money): its kind and transaction.
    Tx(&'static str, u64),
}

impl Msg {
    /// The money this message moves from its sender to its receiver.
    fn money(self) -> Option<u64> {
        match self {
            Msg::Transfer(a) | Msg::Credit(_, a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ev {
    Create {
        node: u32,
        balance: u64,
    },
    Send {
        from: u32,
        to: u32,
        msg: Msg,
    },
    ErrSend {
        from: u32,
        to: u32,
        amount: u64,
    },
    Deliver {
        from: u32,
        to: u32,
        msg: Msg,
    },
    Record {
        node: u32,
        snapshot: u32,
        balance: u64,
    },
    Collect {
        snapshot: u32,
    },
    Start,
    Held {
        node: u32,
        amount: u64,
    },
    Crash {
        node: u32,
    },
    Restart {
        node: u32,
    },
    /// A node stopped (SIGSTOP) or continued: nothing of its state changes.
    Pause {
        node: u32,
    },
    Resume {
        node: u32,
    },
    /// A partition made or healed: messages across it wait in their channels.
    Cut,
    Lose {
        from: u32,
        to: u32,
        msg: Msg,
    },
    /// A credit reached a node that had aborted its transfer (a three-phase commit
    /// split): the money it brought is gone.
    Drop {
        node: u32,
        amount: u64,
    },
    /// A named account opened on a node with new money (SPEC chapter 11).
    Account {
        node: u32,
        balance: u64,
    },
}

/// A snapshot as printed: nodes by id, every ordered pair of channels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    pub nodes: Vec<(u32, u64)>,
    pub channels: Vec<(u32, u32, u64)>,
}

#[derive(Debug, Default)]
struct Rec {
    balance: u64,
    /// Transfers sent on each outgoing channel before recording.
    sent: HashMap<u32, usize>,
    /// Transfers delivered from each incoming channel before recording.
    delivered: HashMap<u32, usize>,
    /// Money the node had dropped before recording (see [`Ev::Drop`]): missing from
    /// the snapshot, which holds that much less than its nodes created.
    dropped: u64,
    /// Money created at the node before it recorded (accounts opened later are after
    /// the cut).
    created: u64,
}

#[derive(Debug, Default)]
struct Snap {
    /// The nodes that existed when it started, and those created while it ran.
    members: BTreeSet<u32>,
    recs: BTreeMap<u32, Rec>,
    channel: BTreeMap<(u32, u32), u64>,
    closed: BTreeSet<(u32, u32)>,
    markers_sent: BTreeSet<(u32, u32)>,
    /// A member crashed after recording: this snapshot can never be gathered.
    lost: bool,
}

/// The replayed state of a run.
#[derive(Debug, Default)]
pub struct Checker {
    created: BTreeMap<u32, u64>,
    balances: BTreeMap<u32, u64>,
    /// Money held by unfinished transactions: owned, but not for sending.
    held: BTreeMap<u32, u64>,
    /// Nodes with named accounts: their total is not what a Send may take.
    with_accounts: std::collections::BTreeSet<u32>,
    /// Payments (transaction, payer, payee) sent, and delivered: a payment moves money
    /// once (a recovering node may send it again; the receiver applies it once).
    credit_sent: BTreeSet<(u64, u32, u32)>,
    credit_applied: BTreeSet<(u64, u32, u32)>,
    /// Money each node dropped so far (see [`Ev::Drop`]).
    dropped: BTreeMap<u32, u64>,
    queues: HashMap<(u32, u32), VecDeque<Msg>>,
    /// Transfers sent and delivered per channel (markers are not part of the cut).
    sent: HashMap<(u32, u32), usize>,
    delivered: HashMap<(u32, u32), usize>,
    snaps: BTreeMap<u32, Snap>,
    /// A first marker was delivered: the next event must be that node's record.
    trigger: Option<(u32, u32, u32)>,
    pub events: usize,
    /// What each snapshot gathered by `CollectState` must be, in gathering order
    /// (across systems: `Start` resets everything else).
    pub collected: Vec<Result<Block, String>>,
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Money created by all nodes.
    pub fn total(&self) -> u64 {
        self.created.values().sum()
    }

    /// Replays one event; `Err` names the broken rule.
    pub fn on_event(&mut self, ev: Ev) -> Result<(), String> {
        self.events += 1;
        if let Some((from, to, k)) = self.trigger.take() {
            match ev {
                Ev::Record { node, snapshot, .. } if node == to && snapshot == k => {
                    self.snap(k).closed.insert((from, to));
                }
                _ => return Err(format!("node {to} took its first marker {k} but did not record")),
            }
        }
        match ev {
            Ev::Create { node, balance } => {
                if self.created.insert(node, balance).is_some() {
                    return Err(format!("node {node} created twice"));
                }
                self.balances.insert(node, balance);
                let running: Vec<u32> =
                    self.snaps.keys().copied().filter(|&k| self.expected(k).is_err()).collect();
                for k in running {
                    self.snap(k).members.insert(node);
                }
            }
            Ev::Send { from, to, msg } => {
                if let (Msg::Transfer(a), Some(&h)) = (msg, self.held.get(&from)) {
                    if a + h > self.balances[&from] {
                        return Err(format!(
                            "node {from} sent {a} of money it holds for a transfer"
                        ));
                    }
                }
                let first = match msg {
                    Msg::Credit(tx, _) => self.credit_sent.insert((tx, from, to)),
                    _ => true,
                };
                if let Some(a) = msg.money().filter(|_| first) {
                    let b = self.balances.get_mut(&from).ok_or("send from unknown node")?;
                    *b = b
                        .checked_sub(a)
                        .ok_or_else(|| format!("node {from} sent {a} it did not have"))?;
                }
                match msg {
                    // A crashed node re-records a snapshot it forgot; lost ones are not checked.
                    Msg::Marker(k) if self.snaps.get(&k).is_some_and(|s| s.lost) => {}
                    Msg::Marker(k) => {
                        let s = self.snap(k);
                        if !s.recs.contains_key(&from) {
                            return Err(format!("node {from} sent marker {k} before recording"));
                        }
                        if !s.markers_sent.insert((from, to)) {
                            return Err(format!("two markers {k} on {from} -> {to}"));
                        }
                    }
                    _ => {}
                }
                self.queues.entry((from, to)).or_default().push_back(msg);
                if msg.money().is_some() {
                    *self.sent.entry((from, to)).or_default() += 1;
                }
            }
            Ev::ErrSend { from, amount, .. } => {
                // A Send takes the node account only; the trace gives a node's total. A
                // node with named accounts may refuse a Send its total would cover.
                let free = self.balances[&from] - self.held.get(&from).copied().unwrap_or(0);
                if amount <= free && !self.with_accounts.contains(&from) {
                    return Err(format!("ERR_SEND for {amount} but node {from} had {free} free"));
                }
            }
            Ev::Crash { node } => {
                // The process and what it recorded are gone; its money is in its log.
                for s in self.snaps.values_mut() {
                    if s.recs.remove(&node).is_some() {
                        s.lost = true;
                    }
                }
            }
            Ev::Restart { .. } | Ev::Pause { .. } | Ev::Resume { .. } | Ev::Cut => {}
            Ev::Lose { from, to, msg } => {
                let head = self.queues.get_mut(&(from, to)).and_then(|q| q.pop_front());
                if head != Some(msg) || msg.money().is_some() {
                    return Err(format!("{from} -> {to} lost {msg:?}; its head was {head:?}"));
                }
            }
            Ev::Account { node, balance } => {
                self.with_accounts.insert(node);
                *self.created.get_mut(&node).ok_or("an account on an unknown node")? += balance;
                *self.balances.entry(node).or_default() += balance;
            }
            Ev::Drop { node, amount } => {
                let b = self.balances.get_mut(&node).ok_or("drop at unknown node")?;
                *b = b
                    .checked_sub(amount)
                    .ok_or_else(|| format!("node {node} dropped {amount} it did not have"))?;
                *self.dropped.entry(node).or_default() += amount;
            }
            Ev::Held { node, amount } => {
                if amount > self.balances[&node] {
                    return Err(format!("node {node} holds {amount}, more than it owns"));
                }
                self.held.insert(node, amount);
            }
            Ev::Deliver { from, to, msg } => {
                let head = self.queues.get_mut(&(from, to)).and_then(|q| q.pop_front());
                if head != Some(msg) {
                    return Err(format!(
                        "{from} -> {to} delivered {msg:?}, FIFO head was {head:?}"
                    ));
                }
                match msg {
                    Msg::Tx(..) => {}
                    Msg::Credit(tx, _) if !self.credit_applied.insert((tx, from, to)) => {} // applied before
                    Msg::Transfer(a) | Msg::Credit(_, a) => {
                        *self.delivered.entry((from, to)).or_default() += 1;
                        *self.balances.get_mut(&to).ok_or("deliver to unknown node")? += a;
                        for s in self.snaps.values_mut() {
                            if s.recs.contains_key(&to) && !s.closed.contains(&(from, to)) {
                                *s.channel.entry((from, to)).or_default() += a;
                            }
                        }
                    }
                    Msg::Marker(k) if self.snaps.get(&k).is_some_and(|s| s.lost) => {}
                    Msg::Marker(k) => {
                        let s = self.snap(k);
                        if s.recs.contains_key(&to) {
                            if !s.closed.insert((from, to)) {
                                return Err(format!("marker {k} closed {from} -> {to} twice"));
                            }
                        } else {
                            self.trigger = Some((from, to, k));
                        }
                    }
                }
            }
            Ev::Collect { snapshot } => {
                let block = self.expected(snapshot);
                self.collected.push(block);
            }
            Ev::Start => {
                let collected = std::mem::take(&mut self.collected);
                *self = Checker { collected, events: self.events, ..Checker::default() };
            }
            Ev::Record { node, snapshot, balance } => {
                let real = *self.balances.get(&node).ok_or("record by unknown node")?;
                if balance != real {
                    return Err(format!(
                        "node {node} recorded {balance} in snapshot {snapshot}, held {real}"
                    ));
                }
                let sent = self
                    .sent
                    .iter()
                    .filter(|((s, _), _)| *s == node)
                    .map(|((_, d), n)| (*d, *n))
                    .collect();
                let delivered = self
                    .delivered
                    .iter()
                    .filter(|((_, d), _)| *d == node)
                    .map(|((s, _), n)| (*s, *n))
                    .collect();
                let nodes: Vec<u32> = self.created.keys().copied().collect();
                if self.snaps.get(&snapshot).is_some_and(|s| s.lost) {
                    return Ok(()); // a crashed member re-records a snapshot it forgot
                }
                let dropped = self.dropped.get(&node).copied().unwrap_or(0);
                let created = self.created.get(&node).copied().unwrap_or(0);
                let s = self.snap(snapshot);
                if s.recs.is_empty() {
                    s.members.extend(nodes);
                }
                if !s.members.contains(&node) {
                    return Err(format!(
                        "node {node} recorded snapshot {snapshot} it is not part of"
                    ));
                }
                let rec = Rec { balance, sent, delivered, dropped, created };
                if s.recs.insert(node, rec).is_some() {
                    return Err(format!("node {node} recorded snapshot {snapshot} twice"));
                }
            }
        }
        Ok(())
    }

    fn snap(&mut self, k: u32) -> &mut Snap {
        self.snaps.entry(k).or_default()
    }

    /// Whether snapshot `k` is complete: every member recorded and every channel closed.
    pub fn is_complete(&self, k: u32) -> bool {
        self.expected(k).is_ok()
    }

    /// The snapshot `k` a correct run records, checking the cut (property 3) on the way.
    pub fn expected(&self, k: u32) -> Result<Block, String> {
        let s = self.snaps.get(&k).ok_or_else(|| format!("snapshot {k} never started"))?;
        if s.lost {
            return Err(format!("snapshot {k} is lost: a member crashed after recording"));
        }
        let members: Vec<u32> = s.members.iter().copied().collect();
        if let Some(m) = members.iter().find(|m| !s.recs.contains_key(m)) {
            return Err(format!("snapshot {k}: node {m} has not recorded"));
        }
        let mut block = Block::default();
        for &d in &members {
            block.nodes.push((d, s.recs[&d].balance));
        }
        for &a in &members {
            for &b in &members {
                if a == b {
                    continue;
                }
                if !s.closed.contains(&(a, b)) {
                    return Err(format!("snapshot {k}: channel {a} -> {b} still open"));
                }
                let sent_before = s.recs[&a].sent.get(&b).copied().unwrap_or(0);
                let got_before = s.recs[&b].delivered.get(&a).copied().unwrap_or(0);
                if got_before > sent_before {
                    return Err(format!(
                        "snapshot {k}: inconsistent cut on {a} -> {b}: {got_before} received before \
                         the cut, {sent_before} sent before it"
                    ));
                }
                block.channels.push((a, b, s.channel.get(&(a, b)).copied().unwrap_or(0)));
            }
        }
        let held: u64 = block.nodes.iter().map(|n| n.1).sum::<u64>()
            + block.channels.iter().map(|c| c.2).sum::<u64>();
        let created: u64 = members.iter().map(|m| s.recs[m].created).sum();
        let dropped: u64 = members.iter().map(|m| s.recs[m].dropped).sum();
        if held != created - dropped {
            return Err(format!(
                "snapshot {k} holds {held}, its nodes created {created} and dropped {dropped}"
            ));
        }
        Ok(block)
    }

    /// Checks a printed or assembled snapshot `k` against what the run recorded.
    pub fn verify(&self, k: u32, got: &Block) -> Result<(), String> {
        let want = self.expected(k)?;
        if &want != got {
            return Err(format!("snapshot {k}: printed {got:?}\nbut the run recorded {want:?}"));
        }
        Ok(())
    }

    /// Conservation of the live state: balances plus Transfers in channels.
    pub fn conserved(&self) -> Result<(), String> {
        let in_flight: u64 =
            self.queues.values().flat_map(|q| q.iter()).map(|m| m.money().unwrap_or(0)).sum();
        let held = self.balances.values().sum::<u64>() + in_flight;
        let dropped: u64 = self.dropped.values().sum();
        if held != self.total() - dropped {
            return Err(format!("money: {held} held, {} created, {dropped} dropped", self.total()));
        }
        Ok(())
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat)? + pat.len();
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

fn num<T: std::str::FromStr>(line: &str, key: &str) -> Result<T, String> {
    field(line, key).and_then(|v| v.parse().ok()).ok_or_else(|| format!("no {key} in {line}"))
}

/// The commit protocols' messages without money (SPEC chapters 5 and 8).
const TX_KINDS: [&str; 15] = [
    "Prepare",
    "Vote",
    "Commit",
    "Abort",
    "Ack",
    "DecisionReq",
    "PreCommit",
    "PreCommitAck",
    "DoCommit",
    "StateReq",
    "State",
    "Phase1a",
    "Phase1b",
    "Phase2a",
    "Phase2b",
];

/// Parses one `--trace` line.
pub fn parse_trace_line(line: &str) -> Result<Ev, String> {
    let msg = |line: &str| -> Result<Msg, String> {
        match field(line, "kind") {
            Some("Transfer") => Ok(Msg::Transfer(num(line, "amount")?)),
            Some("Marker") => Ok(Msg::Marker(num(line, "snapshot")?)),
            Some("Credit") => Ok(Msg::Credit(num(line, "tx")?, num(line, "amount")?)),
            Some(k) if TX_KINDS.contains(&k) => {
                let kind = TX_KINDS.into_iter().find(|&x| x == k).expect("listed");
                Ok(Msg::Tx(kind, num(line, "tx")?))
            }
            other => Err(format!("kind {other:?} in {line}")),
        }
    };
    Ok(match field(line, "ev") {
        Some("create") => Ev::Create { node: num(line, "node")?, balance: num(line, "balance")? },
        Some("send") => {
            Ev::Send { from: num(line, "from")?, to: num(line, "to")?, msg: msg(line)? }
        }
        Some("err_send") => Ev::ErrSend {
            from: num(line, "from")?,
            to: num(line, "to")?,
            amount: num(line, "amount")?,
        },
        Some("deliver") => {
            Ev::Deliver { from: num(line, "from")?, to: num(line, "to")?, msg: msg(line)? }
        }
        Some("record") => Ev::Record {
            node: num(line, "node")?,
            snapshot: num(line, "snapshot")?,
            balance: num(line, "balance")?,
        },
        Some("collect") => Ev::Collect { snapshot: num(line, "snapshot")? },
        Some("start") => Ev::Start,
        Some("held") => Ev::Held { node: num(line, "node")?, amount: num(line, "amount")? },
        Some("crash") => Ev::Crash { node: num(line, "node")? },
        Some("restart") => Ev::Restart { node: num(line, "node")? },
        Some("pause") => Ev::Pause { node: num(line, "node")? },
        Some("resume") => Ev::Resume { node: num(line, "node")? },
        Some("partition" | "heal") => Ev::Cut,
        Some("lose") => {
            Ev::Lose { from: num(line, "from")?, to: num(line, "to")?, msg: msg(line)? }
        }
        Some("drop") => Ev::Drop { node: num(line, "node")?, amount: num(line, "amount")? },
        Some("account") => Ev::Account { node: num(line, "node")?, balance: num(line, "balance")? },
        other => return Err(format!("unknown event {other:?} in {line}")),
    })
}

/// The PrintSnapshot blocks in a run's stdout, in order.
pub fn parse_blocks(stdout: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut cur: Option<Block> = None;
    let mut in_channels = false;
    for line in stdout.lines() {
        if line == "---Node states" {
            blocks.extend(cur.take());
            cur = Some(Block::default());
            in_channels = false;
        } else if line == "---Channel states" {
            in_channels = true;
        } else if let (Some(b), Some(rest), false) =
            (cur.as_mut(), line.strip_prefix("node "), in_channels)
        {
            let (id, v) = rest.split_once(" = ").expect("node line");
            b.nodes.push((id.parse().expect("id"), v.parse().expect("balance")));
        } else if let (Some(b), Some(rest)) = (cur.as_mut(), line.strip_prefix("channel (")) {
            let (pair, v) = rest.split_once(") = ").expect("channel line");
            let (s, d) = pair.split_once(" -> ").expect("arrow");
            b.channels.push((
                s.parse().expect("src"),
                d.parse().expect("dst"),
                v.parse().expect("sum"),
            ));
        } else {
            blocks.extend(cur.take());
        }
    }
    blocks.extend(cur);
    blocks
}
