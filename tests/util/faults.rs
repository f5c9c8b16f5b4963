//! Random fault scripts for the real binary: every command of chapters 2–5 and 11
//! (accounts, transactions of 2 to 5 parts) mixed with
//! crashes and restarts that leave nodes down across many commands, two at a time, a
//! coordinator down while its participants restart, a node restarted while the one it
//! waits on is still down, and nodes paused across many commands.
//!
//! The generator keeps a small model (which nodes are surely up, surely down, paused, or
//! may have died at an armed crash point; which channels are held) so that it knows which lines
//! may be rejected and why: [`Script::allowed`] lists, per line, the reasons that line
//! may give. Any other rejection is a bug. The script ends by restarting every node that
//! may be down, releasing every held channel and delivering everything, so its last
//! `Check` must be OK and its last `Balances` must add up to the money created.

use bank::rng::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// The crash points of chapters 5 and 8.
pub const CRASH_POINTS: [&str; 10] = [
    "before-vote",
    "after-vote",
    "before-decision",
    "after-decision",
    "mid-commit",
    "before-ack",
    "before-precommit",
    "mid-precommit",
    "after-precommit",
    "after-accept",
];

/// `protocol` options a Transfer may carry (none: the `Protocol` in force).
const PROTOCOLS: [&str; 4] = ["", " protocol 2pc", " protocol 3pc", " protocol paxos"];

/// A generated script.
#[derive(Debug, Clone)]
pub struct Script {
    /// The command file.
    pub text: String,
    /// Per 1-based line number: the reasons (substrings of the error) it may be rejected
    /// with. A line not listed must not be rejected.
    pub allowed: BTreeMap<usize, Vec<&'static str>>,
    /// All money created.
    pub created: u64,
    /// Where the final `Check` is (1-based line); the `Balances` follows it.
    pub final_check: usize,
    /// Three-phase commit ran in a script that pauses, cuts off, holds or loses: a split
    /// decision (and the money it loses) is what that protocol may do when a slow node
    /// is taken for a dead one, and what `Check` must report.
    pub may_split: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Up,
    Down,
    /// A `CrashAt` is armed: the node may have died at it.
    Maybe,
    /// Stopped by `Pause` (only a node surely up is paused, so this is sure too).
    Paused,
}

struct Gen {
    rng: Rng,
    n: usize,
    life: Vec<Life>,
    held: BTreeSet<(usize, usize)>,
    txs: usize,
    lines: Vec<String>,
    allowed: BTreeMap<usize, Vec<&'static str>>,
    /// A 3PC transfer may have run (the `Protocol` in force, or an option).
    three_pc: bool,
    /// A node was paused or cut off, or a channel held or a message lost: a wrong
    /// suspicion, which three-phase commit's failure detector takes for a crash.
    cut: bool,
    /// All money created.
    created: u64,
    /// The named accounts (SPEC chapter 11), opened at the start.
    accounts: Vec<String>,
}

const DOWN: &str = "is down";
const ALREADY: &str = "is already down";
const PAUSED: &str = "is paused";

impl Gen {
    fn push(&mut self, line: String, allowed: Vec<&'static str>) {
        self.lines.push(line);
        if !allowed.is_empty() {
            self.allowed.insert(self.lines.len(), allowed);
        }
    }

    fn node(&mut self) -> usize {
        1 + self.rng.below(self.n)
    }

    fn other(&mut self, a: usize) -> usize {
        1 + (a + self.rng.below(self.n - 1)) % self.n
    }

    /// A node in state `want`, if any.
    fn pick(&mut self, want: Life) -> Option<usize> {
        let v: Vec<usize> = (1..=self.n).filter(|&i| self.life[i] == want).collect();
        (!v.is_empty()).then(|| v[self.rng.below(v.len())])
    }

    fn not_up(&self) -> usize {
        (1..=self.n).filter(|&i| self.life[i] != Life::Up).count()
    }

    /// How many nodes are down or may be (a restart's candidates).
    fn not_running(&self) -> usize {
        (1..=self.n).filter(|&i| matches!(self.life[i], Life::Down | Life::Maybe)).count()
    }

    /// Whether a node other than `x` is paused (a process started now must link to it).
    fn paused_besides(&self, x: usize) -> bool {
        (1..=self.n).any(|i| i != x && self.life[i] == Life::Paused)
    }

    /// The reasons a command run by `node` may be rejected for, given what is known of it.
    fn by(&self, node: usize) -> Vec<&'static str> {
        match self.life[node] {
            Life::Up => vec![],
            Life::Paused => vec![PAUSED],
            _ => vec![DOWN],
        }
    }

    fn amount(&mut self) -> u64 {
        match self.rng.below(4) {
            0 => self.rng.below(400) as u64, // often more than a balance
            _ => 1 + self.rng.below(60) as u64,
        }
    }

    fn transfer(&mut self, a: usize, b: usize, via: Option<usize>, nowait: bool) {
        let amount = self.amount();
        let mut line = format!("Transfer {a} {b} {amount}");
        if let Some(c) = via {
            line.push_str(&format!(" via {c}"));
        }
        self.commit(line, nowait);
    }

    /// Pushes the transaction `line` with ` nowait` if asked and a random protocol option.
    fn commit(&mut self, mut line: String, nowait: bool) {
        if nowait {
            line.push_str(" nowait");
        }
        let protocol = PROTOCOLS[self.rng.below(PROTOCOLS.len())];
        line.push_str(protocol);
        self.three_pc |= protocol.contains("3pc");
        self.txs += 1;
        self.push(line, vec![]);
    }

    /// A `Transaction` of 2 to 5 parts over node accounts and named ones, one to all
    /// but one of them paying, summing to zero (SPEC chapter 11).
    fn transaction(&mut self) {
        let pool: Vec<String> =
            (1..=self.n).map(|i| i.to_string()).chain(self.accounts.iter().cloned()).collect();
        let k = 2 + self.rng.below(4).min(pool.len() - 2);
        let mut picked: Vec<String> = Vec::with_capacity(k);
        while picked.len() < k {
            let a = pool[self.rng.below(pool.len())].clone();
            if !picked.contains(&a) {
                picked.push(a);
            }
        }
        let payers = 1 + self.rng.below(k - 1);
        let mut parts = Vec::with_capacity(k);
        let mut left = 0;
        for a in &picked[..payers] {
            let m = self.amount();
            left += m;
            parts.push(format!("{a}:-{m}"));
        }
        let payees = &picked[payers..];
        for (i, a) in payees.iter().enumerate() {
            let m =
                if i + 1 == payees.len() { left } else { self.rng.below(left as usize + 1) as u64 };
            left -= m;
            parts.push(format!("{a}:+{m}"));
        }
        let nowait = self.rng.below(4) == 0;
        self.commit(format!("Transaction {}", parts.join(" ")), nowait);
    }

    fn crash(&mut self, x: usize) {
        let why = match self.life[x] {
            Life::Up | Life::Paused => vec![],
            _ => vec![ALREADY],
        };
        self.push(format!("Crash {x}"), why);
        self.life[x] = Life::Down;
    }

    fn crash_at(&mut self, x: usize) {
        let point = CRASH_POINTS[self.rng.below(CRASH_POINTS.len())];
        let why = match self.life[x] {
            Life::Up => vec![],
            Life::Paused => vec![PAUSED],
            _ => vec![ALREADY],
        };
        self.push(format!("CrashAt {x} {point}"), why);
        if self.life[x] == Life::Up {
            self.life[x] = Life::Maybe;
        }
    }

    /// `Restart x`: refused while another node is paused (every node links to the new
    /// process), and then nothing changes.
    fn restart(&mut self, x: usize) {
        if self.paused_besides(x) {
            self.push(format!("Restart {x}"), vec![PAUSED]);
        } else {
            self.push(format!("Restart {x}"), vec![]);
            self.life[x] = Life::Up;
        }
    }

    /// `CreateNode` of the next id: refused while a node is paused (every node links to
    /// the new process), and then nothing changes.
    fn create(&mut self) {
        let id = self.n + 1;
        let balance = 10 * self.rng.below(30) as u64;
        if self.pick(Life::Paused).is_some() {
            self.push(format!("CreateNode {id} {balance}"), vec![PAUSED]);
            return;
        }
        self.push(format!("CreateNode {id} {balance}"), vec![]);
        self.n = id;
        self.life.push(Life::Up);
        self.created += balance;
    }

    fn resume(&mut self, x: usize) {
        self.push(format!("Resume {x}"), vec![]);
        self.life[x] = Life::Up;
    }

    /// One random step (a line or a short pattern of lines).
    fn step(&mut self) {
        // Nodes stay down across many commands: each step restarts one with odds 1 in 9.
        if self.not_running() > 0 && self.rng.below(9) == 0 {
            let x = self.pick(Life::Down).or_else(|| self.pick(Life::Maybe)).expect("one is");
            self.restart(x);
            return;
        }
        // And paused: each step resumes one with odds 1 in 8.
        if let Some(x) = self.pick(Life::Paused) {
            if self.rng.below(8) == 0 {
                self.resume(x);
                return;
            }
        }
        if self.rng.below(8) == 0 {
            self.transaction();
            return;
        }
        let (a, c) = (self.node(), self.node());
        let b = self.other(a);
        match self.rng.below(44) {
            0..=4 => {
                let amount = self.amount();
                let why = self.by(a);
                if self.life[a] == Life::Down && self.rng.below(3) != 0 {
                    return; // mostly not by a node surely down, sometimes on purpose
                }
                self.push(format!("Send {a} {b} {amount}"), why);
            }
            5..=7 => {
                let mut why = vec!["no message is waiting"];
                why.extend(self.by(a));
                self.push(format!("Receive {a}"), why);
            }
            8 => {
                let mut why = vec!["is empty", "is held", "is down"];
                why.extend(self.by(a));
                self.push(format!("Receive {a} {b}"), why);
            }
            9..=10 => self.push("ReceiveAll".into(), vec![]),
            11..=17 => {
                let via = (self.rng.below(3) == 0).then_some(c);
                let nowait = self.rng.below(4) == 0;
                self.transfer(a, b, via, nowait);
            }
            18..=19 if self.not_up() < 2 || self.rng.below(3) == 0 => {
                if self.life[a] == Life::Up || self.rng.below(4) == 0 {
                    self.crash(a);
                }
            }
            20..=21 if self.not_up() < 3 => {
                if self.life[a] == Life::Up || self.rng.below(4) == 0 {
                    self.crash_at(a);
                }
            }
            22 => {
                // A coordinator down after deciding while its participants restart.
                if a != c && b != c && self.life[c] == Life::Up {
                    self.push(format!("CrashAt {c} after-decision"), vec![]);
                    self.life[c] = Life::Maybe;
                    self.transfer(a, b, Some(c), false);
                    self.restart(a);
                    if self.rng.below(2) == 0 {
                        self.restart(b);
                    }
                }
            }
            23 => {
                // A node restarted while the one it waits on is still down.
                if a != c && b != c && self.life[c] == Life::Up {
                    self.transfer(a, b, Some(c), true);
                    self.crash(c);
                    self.push("ReceiveAll".into(), vec![]);
                    self.restart(a);
                }
            }
            24 => {
                // Two down at a time.
                if self.not_up() == 0 && self.n >= 3 {
                    self.crash(a);
                    self.crash(b);
                }
            }
            25 => {
                if self.held.contains(&(a, b)) {
                    self.push(format!("Release {a} {b}"), vec![]);
                    self.held.remove(&(a, b));
                } else {
                    self.cut = true;
                    self.push(format!("Hold {a} {b}"), vec![]);
                    self.held.insert((a, b));
                }
            }
            26 => {
                if let Some(&(x, y)) = self.held.iter().next() {
                    self.push(format!("Release {x} {y}"), vec![]);
                    self.held.remove(&(x, y));
                }
            }
            27 => {
                self.cut = true;
                let mut why = vec!["is empty", "carries money or is a marker"];
                if self.life[b] == Life::Paused {
                    why.push(PAUSED);
                }
                self.push(format!("Lose {a} {b}"), why)
            }
            28..=29 => {
                let why = self.by(a);
                self.push(format!("BeginSnapshot {a}"), why);
            }
            30..=31 => {
                let mut why = vec!["is not complete", "is lost", "is down"];
                if self.pick(Life::Paused).is_some() {
                    why.push(PAUSED);
                }
                self.push("CollectState".into(), why)
            }
            32 => self.push("PrintSnapshot".into(), vec![]),
            33..=34 => self.push("Check".into(), vec![]),
            35..=36 => self.push("Balances".into(), vec![]),
            37..=38 if self.txs > 0 => {
                let t = 1 + self.rng.below(self.txs);
                self.push(format!("TxStatus T{t}"), vec![]);
            }
            39 if self.rng.below(2) == 0 => self.pause_pattern(a, b, c),
            39 => self.partition_pattern(a, b, c),
            43 if self.n < 10 => self.create(),
            41..=42 if self.life[a] == Life::Up => {
                // Paused across whatever comes next, until a Resume or a Restart.
                self.cut = true;
                self.push(format!("Pause {a}"), vec![]);
                self.life[a] = Life::Paused;
            }
            40 => {
                let p = ["2pc", "3pc", "paxos"][self.rng.below(3)];
                self.three_pc |= p == "3pc";
                self.push(format!("Protocol {p}"), vec![]);
            }
            _ => self.push("Stats".into(), vec![]),
        }
    }

    /// `Pause x`, a transfer and deliveries while it is stopped, `Resume x`.
    fn pause_pattern(&mut self, x: usize, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.cut = true;
        let why = match self.life[x] {
            Life::Up => vec![],
            Life::Paused => vec!["is already paused"],
            _ => vec![DOWN],
        };
        self.push(format!("Pause {x}"), why);
        let nowait = self.rng.below(2) == 0;
        self.transfer(a, b, None, nowait);
        self.push("ReceiveAll".into(), vec![]);
        self.push("Balances".into(), vec![]);
        self.push("Check".into(), vec![]);
        self.push(format!("Resume {x}"), vec![DOWN, "is not paused"]);
        if self.life[x] == Life::Paused {
            self.life[x] = Life::Up;
        }
    }

    /// `Partition` of one or two nodes, a transfer and deliveries across it, `Heal`.
    fn partition_pattern(&mut self, x: usize, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.cut = true;
        let mut cut = format!("Partition {x}");
        if self.rng.below(2) == 0 && self.n > 3 {
            cut.push_str(&format!(" {}", self.other(x)));
        }
        self.push(cut, vec![]);
        let nowait = self.rng.below(2) == 0;
        self.transfer(a, b, None, nowait);
        if self.rng.below(2) == 0 {
            let amount = self.amount();
            let why = self.by(a);
            self.push(format!("Send {a} {b} {amount}"), why);
        }
        self.push("ReceiveAll".into(), vec![]);
        self.push("Check".into(), vec![]);
        self.push("Heal".into(), vec![]);
        self.push("ReceiveAll".into(), vec![]);
    }
}

/// The script of `seed`: 3 to 8 nodes, about `length` commands.
pub fn fault_script(seed: u64, length: usize) -> Script {
    let mut rng = Rng::new(seed);
    let n = 3 + rng.below(6);
    let mut g = Gen {
        rng,
        n,
        life: vec![Life::Up; n + 1],
        held: BTreeSet::new(),
        txs: 0,
        lines: Vec::new(),
        allowed: BTreeMap::new(),
        three_pc: false,
        cut: false,
        created: 0,
        accounts: Vec::new(),
    };
    g.push("StartMaster".into(), vec![]);
    for i in 1..=n {
        let balance = 10 * g.rng.below(30) as u64;
        g.created += balance;
        g.push(format!("CreateNode {i} {balance}"), vec![]);
    }
    for i in 1..=n {
        for k in 0..g.rng.below(3) {
            let (name, balance) = (format!("A{i}x{k}"), 10 * g.rng.below(30) as u64);
            g.created += balance;
            g.push(format!("CreateAccount {name} {i} {balance}"), vec![]);
            g.accounts.push(name);
        }
    }
    while g.lines.len() < length {
        g.step();
    }
    for x in 1..=g.n {
        if g.life[x] == Life::Paused {
            g.resume(x);
        }
    }
    for x in 1..=g.n {
        if g.life[x] != Life::Up {
            g.restart(x);
        }
    }
    for (x, y) in std::mem::take(&mut g.held) {
        g.push(format!("Release {x} {y}"), vec![]);
    }
    g.push("ReceiveAll".into(), vec![]);
    g.push("Check".into(), vec![]);
    let final_check = g.lines.len();
    g.push("Balances".into(), vec![]);
    for t in 1..=g.txs {
        g.push(format!("TxStatus T{t}"), vec![]);
    }
    g.push("Stats".into(), vec![]);
    let mut text = g.lines.join("\n");
    text.push('\n');
    let may_split = g.three_pc && g.cut;
    Script { text, allowed: g.allowed, created: g.created, final_check, may_split }
}

/// Holds a run of `script` to the rules: no line rejected but those it may be, for a
/// reason it may give; no `Check` failed; the last `Check` OK with all money created; the
/// last `Balances` summing to it with nothing held; every transaction ended; the exit status saying whether a line
/// was rejected. Returns what is wrong.
pub fn judge(script: &Script, stdout: &str, stderr: &str, status: i32) -> Result<(), String> {
    let mut rejected = 0;
    for line in stderr.lines() {
        if script.may_split && line.contains("a three-phase commit split lost the rest") {
            continue; // a snapshot after a split is short of the money lost
        }
        let rest = line.strip_prefix("error: line ").ok_or_else(|| format!("stderr: {line}"))?;
        let (n, why) = rest.split_once(": ").ok_or_else(|| format!("stderr: {line}"))?;
        let n: usize = n.parse().map_err(|_| format!("stderr: {line}"))?;
        let ok = script.allowed.get(&n).is_some_and(|a| a.iter().any(|r| why.contains(r)));
        if !ok {
            return Err(format!("line {n} was rejected, which it should not be: {line}"));
        }
        rejected += 1;
    }
    let split = stdout.lines().any(|l| l.starts_with("CHECK FAILED atomicity"));
    if split && script.may_split {
        // 3PC decided both ways under a pause or a partition: what it may do. Every
        // transaction must still end, and no other Check may fail.
        if let Some(l) = stdout
            .lines()
            .find(|l| l.starts_with("CHECK FAILED") && !l.starts_with("CHECK FAILED atomicity"))
        {
            return Err(format!("a Check failed: {l}"));
        }
        let last = stdout.lines().rfind(|l| l.starts_with("CHECK"));
        if last.is_some_and(|l| l.starts_with("CHECK UNAVAILABLE")) {
            return Err(format!("the last Check printed {last:?}"));
        }
        return ended(stdout, status, rejected, true);
    }
    if stdout.contains("CHECK FAILED") {
        return Err("a Check failed".into());
    }
    let checks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("CHECK")).collect();
    let want = format!("CHECK OK total={}", script.created);
    if checks.last() != Some(&want.as_str()) {
        return Err(format!("the last Check printed {:?}, not {want:?}", checks.last()));
    }
    let lines: Vec<&str> = stdout.lines().collect();
    let last = lines.iter().rposition(|l| l.starts_with("CHECK")).expect("found above");
    let mut sum = 0u64;
    for l in lines.iter().skip(last + 1).take_while(|l| l.starts_with("node ")) {
        let v = l.split(" = ").nth(1).ok_or_else(|| format!("balance line {l:?}"))?;
        sum += v.parse::<u64>().map_err(|_| format!("after every node is up: {l:?}"))?;
    }
    if sum != script.created {
        return Err(format!("the last Balances sum to {sum}, {} was created", script.created));
    }
    ended(stdout, status, rejected, false)
}

/// Every transaction has ended everywhere: decided, and nobody prepared or down. (A
/// coordinator still waiting for votes prints NONE, as one that never heard of it.) The
/// exit status says whether a line was rejected (or a Check failed: `split`).
fn ended(stdout: &str, status: i32, rejected: usize, split: bool) -> Result<(), String> {
    let lines: Vec<&str> = stdout.lines().collect();
    let last = lines.iter().rposition(|l| l.starts_with("CHECK")).unwrap_or(0);
    for l in lines.iter().skip(last + 1).filter(|l| l.starts_with('T')) {
        let ended = l.split(' ').nth(1).is_some_and(|s| s == "COMMITTED" || s == "ABORTED");
        let open = ["PREPARED", "PRECOMMITTED", "DOWN", "PAUSED"]
            .iter()
            .any(|w| l.contains(&format!("={w}")));
        if !ended || open {
            return Err(format!("once every node is up, a transaction has not ended: {l}"));
        }
    }
    let want_status = i32::from(rejected > 0 || split);
    if status != want_status {
        return Err(format!("exit status {status} with {rejected} lines rejected"));
    }
    Ok(())
}
