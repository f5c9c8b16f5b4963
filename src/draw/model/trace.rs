//! A `--trace` file read into the [`Model`](super::Model), one line at a time, rows placed
//! as it goes (a Lamport clock that ticks by one row).
//!
//! Pairing needs no message ids: channels are FIFO, so the k-th `send` on a channel is
//! the one the k-th `deliver` or `lose` on that channel took (a crash drops nothing: the
//! trace shows a message once, however often its sender resends it after a restart).
//! Each message gets that number as its `seq`. A `deliver` with no send before it, or
//! with another kind than its send, makes the trace invalid and names the line.

use super::{Class, End, Event, Message, Model, Run, Snapshot, What};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Builds the model of a whole trace.
///
/// # Errors
/// A line that is not a trace event, or a delivery no send explains, naming the line.
pub fn build(trace: &str) -> Result<Model, String> {
    let mut model = Model::default();
    let mut lines: Vec<(usize, serde_json::Value)> = Vec::new();
    for (i, text) in trace.lines().enumerate() {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("trace line {}: not a JSON object: {e}", i + 1))?;
        if !v.is_object() {
            return Err(format!("trace line {}: not a JSON object", i + 1));
        }
        if v["ev"] == "start" && !lines.is_empty() {
            model.runs.push(build_run(&lines)?);
            lines.clear();
        }
        lines.push((i + 1, v));
        model.events += 1;
    }
    if !lines.is_empty() {
        model.runs.push(build_run(&lines)?);
    }
    Ok(model)
}

fn field(v: &serde_json::Value, line: usize, key: &str) -> Result<u64, String> {
    v[key].as_u64().ok_or_else(|| format!("trace line {line}: no whole number {key:?}"))
}

/// Which commit protocol each transaction ran, from the messages only one protocol
/// sends: 3PC's PreCommit/DoCommit/StateReq/State, Paxos Commit's phases and votes.
/// A transaction that aborted before such a message looks like 2PC.
fn protocols(lines: &[(usize, serde_json::Value)]) -> BTreeMap<u64, Class> {
    let mut by_tx = BTreeMap::new();
    for (_, v) in lines {
        let (Some(kind), Some(tx)) = (v["kind"].as_str(), v["tx"].as_u64()) else { continue };
        let class = match kind {
            "PreCommit" | "PreCommitAck" | "DoCommit" | "StateReq" | "State" => Class::ThreePc,
            "Phase1a" | "Phase1b" | "Phase2a" | "Phase2b" => Class::Paxos,
            "Prepare" if v.get("vote").is_some() => Class::Paxos,
            _ => continue,
        };
        by_tx.insert(tx, class);
    }
    by_tx
}

/// Builds one run from its lines (its `start` to the next): the node ids first, since
/// they fix the columns, then one step per line.
fn build_run(lines: &[(usize, serde_json::Value)]) -> Result<Run, String> {
    let nodes = node_ids(lines)?;
    let mut builder = Builder {
        rows: Rows { last: vec![None; nodes.len()], floor: 0 },
        run: Run { start_line: 0, nodes, ..Run::default() },
        protocol: protocols(lines),
        channels: BTreeMap::new(),
        creating: false,
        snapshots: BTreeMap::new(),
    };
    for (line, v) in lines {
        builder.on_line(*line, v)?;
    }
    Ok(builder.finish())
}

/// Every node id the run's lines name, ascending.
fn node_ids(lines: &[(usize, serde_json::Value)]) -> Result<Vec<u32>, String> {
    let mut ids = BTreeSet::new();
    for (line, v) in lines {
        for key in ["node", "from", "to"] {
            if let Some(n) = v.get(key) {
                let n = n.as_u64().filter(|&n| n <= u64::from(u32::MAX));
                let n = n.ok_or_else(|| format!("trace line {line}: {key:?} is not a node id"))?;
                ids.insert(n as u32);
            }
        }
    }
    Ok(ids.into_iter().collect())
}

/// One channel `from → to` as the pairing reads it.
#[derive(Default)]
struct Channel {
    /// Messages sent on it so far: the next one's `seq`.
    sent: u64,
    /// Messages sent and not yet delivered or lost, oldest first (FIFO: the next
    /// `deliver` or `lose` takes the front).
    queue: VecDeque<usize>,
}

/// A run being built, one trace line at a time.
struct Builder {
    /// What is built so far.
    run: Run,
    /// Each transaction's commit protocol, which colours its messages.
    protocol: BTreeMap<u64, Class>,
    /// Every channel a message was sent on.
    channels: BTreeMap<(usize, usize), Channel>,
    /// Where each node's next event goes.
    rows: Rows,
    /// Whether the previous line was a `create` too: a batch of creates starts at one floor.
    creating: bool,
    /// Snapshots by id, as their records arrive.
    snapshots: BTreeMap<u64, Snapshot>,
}

impl Builder {
    /// The column of node `id`. Every `node`, `from` and `to` is a column (`node_ids`);
    /// an id only a partition's list names has none and takes the first.
    fn index(&self, id: u64) -> usize {
        self.run.nodes.binary_search(&(id as u32)).unwrap_or(0)
    }

    /// The column of the node in field `key`.
    fn node(&self, v: &serde_json::Value, line: usize, key: &str) -> Result<usize, String> {
        field(v, line, key).map(|id| self.index(id))
    }

    /// Puts an event on a node below its previous one.
    fn local(&mut self, node: usize, what: What, line: usize) -> usize {
        self.rows.place(&mut self.run, node, what, line, None)
    }

    /// Takes one trace line.
    fn on_line(&mut self, line: usize, v: &serde_json::Value) -> Result<(), String> {
        let ev = v["ev"].as_str().unwrap_or("");
        if ev != "create" {
            self.creating = false;
        }
        match ev {
            "start" => self.run.start_line = line,
            "create" => self.on_create(line, v)?,
            "send" => self.on_send(line, v)?,
            "deliver" | "lose" => self.on_end(line, v, ev)?,
            "err_send" => {
                let (from, to) = (self.node(v, line, "from")?, self.node(v, line, "to")?);
                let amount = field(v, line, "amount")?;
                self.local(from, What::ErrSend { to, amount }, line);
            }
            "crash" => _ = self.local(self.node(v, line, "node")?, What::Crash, line),
            "restart" => _ = self.local(self.node(v, line, "node")?, What::Restart, line),
            "pause" => _ = self.local(self.node(v, line, "node")?, What::Pause, line),
            "resume" => _ = self.local(self.node(v, line, "node")?, What::Resume, line),
            "held" => {
                let amount = field(v, line, "amount")?;
                self.local(self.node(v, line, "node")?, What::Held { amount }, line);
            }
            "drop" => {
                let (tx, amount) = (field(v, line, "tx")?, field(v, line, "amount")?);
                self.local(self.node(v, line, "node")?, What::Drop { tx, amount }, line);
            }
            "record" => self.on_record(line, v)?,
            "collect" => {
                let id = field(v, line, "snapshot")?;
                if let Some(s) = self.snapshots.get_mut(&id) {
                    s.collected = true;
                }
            }
            "partition" | "heal" => self.on_partition(line, v, ev)?,
            // New money on a node, as its creation's is; the picture shows node lines
            // and messages, not accounts.
            "account" => _ = self.node(v, line, "node")?,
            other => return Err(format!("trace line {line}: unknown event {other:?}")),
        }
        Ok(())
    }

    /// A node's creation, at the top of its line.
    fn on_create(&mut self, line: usize, v: &serde_json::Value) -> Result<(), String> {
        let n = self.node(v, line, "node")?;
        let balance = field(v, line, "balance")?;
        if !self.creating {
            // A batch of CreateNode lines starts below everything drawn so far.
            self.rows.floor = self.run.rows;
            self.creating = true;
        }
        // A node created again (a later batch) starts afresh at the floor.
        self.rows.last[n] = None;
        self.local(n, What::Create { balance }, line);
        Ok(())
    }

    /// A send: a new message at the back of its channel, not yet delivered.
    fn on_send(&mut self, line: usize, v: &serde_json::Value) -> Result<(), String> {
        let (from, to) = (self.node(v, line, "from")?, self.node(v, line, "to")?);
        let kind = v["kind"].as_str().unwrap_or("?").to_string();
        let tx = v["tx"].as_u64();
        let class = match kind.as_str() {
            "Transfer" => Class::Transfer,
            "Marker" => Class::Marker,
            "Credit" => Class::Credit,
            _ => tx.and_then(|t| self.protocol.get(&t).copied()).unwrap_or(Class::TwoPc),
        };
        let msg = self.run.messages.len();
        let chan = self.channels.entry((from, to)).or_default();
        let seq = chan.sent;
        chan.sent += 1;
        chan.queue.push_back(msg);
        let send = self.local(from, What::Send(msg), line);
        self.run.messages.push(Message {
            from,
            to,
            seq,
            kind,
            tx,
            amount: v["amount"].as_u64(),
            snapshot: v["snapshot"].as_u64(),
            class,
            send,
            end: End::InFlight,
        });
        Ok(())
    }

    /// A delivery or loss (`ev`): it ends the message at its channel's head, and is drawn
    /// on the receiver below the send.
    fn on_end(&mut self, line: usize, v: &serde_json::Value, ev: &str) -> Result<(), String> {
        let (from, to) = (self.node(v, line, "from")?, self.node(v, line, "to")?);
        let msg = self.head(line, v, ev, (from, to))?;
        let after = Some(self.run.events[self.run.messages[msg].send].row);
        if ev == "deliver" {
            let e = self.rows.place(&mut self.run, to, What::Deliver(msg), line, after);
            self.run.messages[msg].end = End::Delivered(e);
        } else {
            let e = self.rows.place(&mut self.run, to, What::Lose(msg), line, after);
            self.run.messages[msg].end = End::Lost(e);
        }
        Ok(())
    }

    /// The message a delivery or loss takes off `chan`: its oldest, which must be of the
    /// kind the line names, else the trace breaks FIFO and cannot be paired.
    fn head(
        &mut self,
        line: usize,
        v: &serde_json::Value,
        ev: &str,
        chan: (usize, usize),
    ) -> Result<usize, String> {
        let (from, to) = (self.run.nodes[chan.0], self.run.nodes[chan.1]);
        let head = self.channels.get_mut(&chan).and_then(|c| c.queue.pop_front());
        let Some(msg) = head else {
            return Err(format!(
                "trace line {line}: {ev} on channel {from} -> {to} with nothing sent on it"
            ));
        };
        let kind = v["kind"].as_str().unwrap_or("?");
        let sent = &self.run.messages[msg];
        if sent.kind != kind {
            return Err(format!(
                "trace line {line}: {ev} of a {kind} on channel {from} -> {to}, whose head is \
                 a {} (trace line {})",
                sent.kind, self.run.events[sent.send].line
            ));
        }
        Ok(msg)
    }

    /// A node's record for a snapshot, which joins that snapshot's cut.
    fn on_record(&mut self, line: usize, v: &serde_json::Value) -> Result<(), String> {
        let snapshot = field(v, line, "snapshot")?;
        let balance = field(v, line, "balance")?;
        let n = self.node(v, line, "node")?;
        let e = self.local(n, What::Record { snapshot, balance }, line);
        let s = self.snapshots.entry(snapshot).or_insert_with(|| Snapshot {
            id: snapshot,
            records: BTreeMap::new(),
            recorded: Vec::new(),
            collected: false,
        });
        s.records.insert(n, e);
        Ok(())
    }

    /// A partition or heal (`ev`): an event of no one node, on a row of its own.
    fn on_partition(&mut self, line: usize, v: &serde_json::Value, ev: &str) -> Result<(), String> {
        let cut = match v["nodes"].as_array() {
            Some(list) => list
                .iter()
                .map(|n| n.as_u64().map(|id| self.index(id)))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| format!("trace line {line}: \"nodes\" are not ids"))?,
            None => Vec::new(),
        };
        // Every node's line crosses it: it happens below everything before it.
        let row = self.run.rows;
        self.rows.floor = row + 1;
        self.run.rows = row + 1;
        let what = if ev == "heal" { What::Heal } else { What::Partition { cut } };
        self.run.events.push(Event { node: None, what, line, row });
        Ok(())
    }

    /// The run, with what each snapshot recorded in channels, now that every message's
    /// end is known.
    fn finish(mut self) -> Run {
        for mut s in self.snapshots.into_values() {
            s.recorded = recorded(&self.run, &s);
            self.run.snapshots.push(s);
        }
        self.run
    }
}

/// Where each node's next event may go.
struct Rows {
    /// Each node's last row.
    last: Vec<Option<u32>>,
    /// No event goes above this row (the last partition or heal, a batch of creates).
    floor: u32,
}

impl Rows {
    /// Puts an event on `node` below its previous one and below `after` (its send's row).
    fn place(
        &mut self,
        run: &mut Run,
        node: usize,
        what: What,
        line: usize,
        after: Option<u32>,
    ) -> usize {
        let own = self.last[node].map_or(self.floor, |r| (r + 1).max(self.floor));
        let row = own.max(after.map_or(0, |r| r + 1));
        self.last[node] = Some(row);
        run.rows = run.rows.max(row + 1);
        run.events.push(Event { node: Some(node), what, line, row });
        run.events.len() - 1
    }
}

/// The money messages snapshot `s` recorded: sent before the sender's record and
/// delivered after the receiver's record (both in each node's own order).
fn recorded(run: &Run, s: &Snapshot) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, m) in run.messages.iter().enumerate() {
        let (Some(&rf), Some(&rt), End::Delivered(d)) =
            (s.records.get(&m.from), s.records.get(&m.to), m.end)
        else {
            continue;
        };
        if m.money().is_some() && m.send < rf && d > rt {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARG: &str = r#"{"ev":"start"}
{"ev":"create","node":1,"balance":1000}
{"ev":"create","node":2,"balance":500}
{"ev":"send","from":1,"to":2,"kind":"Transfer","amount":300}
{"ev":"send","from":2,"to":1,"kind":"Transfer","amount":100}
{"ev":"record","node":1,"snapshot":0,"balance":700}
{"ev":"send","from":1,"to":2,"kind":"Marker","snapshot":0}
{"ev":"deliver","from":1,"to":2,"kind":"Transfer","amount":300}
{"ev":"deliver","from":1,"to":2,"kind":"Marker","snapshot":0}
{"ev":"record","node":2,"snapshot":0,"balance":700}
{"ev":"send","from":2,"to":1,"kind":"Marker","snapshot":0}
{"ev":"deliver","from":2,"to":1,"kind":"Transfer","amount":100}
{"ev":"deliver","from":2,"to":1,"kind":"Marker","snapshot":0}
{"ev":"collect","snapshot":0}
"#;

    // FIFO pairing, rows after sends, and the recorded channel messages of a snapshot.
    #[test]
    fn pairs_messages_and_finds_what_a_snapshot_recorded() {
        let m = build(ARG).unwrap();
        let run = &m.runs[0];
        assert_eq!(run.nodes, [1, 2]);
        assert_eq!(run.messages.len(), 4);
        for msg in &run.messages {
            let End::Delivered(d) = msg.end else { panic!("{msg:?} not delivered") };
            assert!(run.events[d].row > run.events[msg.send].row);
            assert_eq!(run.events[d].node, Some(msg.to));
        }
        let s = &run.snapshots[0];
        assert!(s.collected);
        assert_eq!(s.records.len(), 2);
        // 300 was delivered before 2 recorded (in its state); 100 after 1 recorded.
        let amounts: Vec<u64> =
            s.recorded.iter().map(|&i| run.messages[i].amount.unwrap()).collect();
        assert_eq!(amounts, [100]);
        assert_eq!(run.messages[2].seq, 1);
    }

    #[test]
    fn bad_traces_name_the_line() {
        let cases = [
            ("{\"ev\":\"start\"}\nnot json", "trace line 2"),
            (r#"{"ev":"deliver","from":1,"to":2,"kind":"Transfer","amount":1}"#, "nothing sent"),
            (
                "{\"ev\":\"send\",\"from\":1,\"to\":2,\"kind\":\"Transfer\",\"amount\":1}\n\
                 {\"ev\":\"deliver\",\"from\":1,\"to\":2,\"kind\":\"Marker\",\"snapshot\":0}",
                "whose head is a Transfer (trace line 1)",
            ),
            (r#"{"ev":"teleport"}"#, "unknown event"),
            (r#"{"ev":"crash","node":-1}"#, "not a node id"),
            (r#"[1]"#, "not a JSON object"),
        ];
        for (trace, want) in cases {
            let err = build(trace).unwrap_err();
            assert!(err.contains(want), "{trace}: {err}");
        }
    }

    // Each StartMaster is its own run; a partition is drawn below everything before it.
    #[test]
    fn runs_split_at_start_and_partitions_span_every_line() {
        let t = "{\"ev\":\"start\"}\n{\"ev\":\"create\",\"node\":1,\"balance\":5}\n\
                 {\"ev\":\"create\",\"node\":2,\"balance\":5}\n\
                 {\"ev\":\"crash\",\"node\":1}\n{\"ev\":\"partition\",\"nodes\":[2]}\n\
                 {\"ev\":\"held\",\"node\":1,\"amount\":3}\n{\"ev\":\"start\"}\n";
        let m = build(t).unwrap();
        assert_eq!(m.runs.len(), 2);
        let ev = &m.runs[0].events;
        assert_eq!(ev.iter().map(|e| e.row).collect::<Vec<_>>(), [0, 0, 1, 2, 3]);
        assert_eq!(ev[3].what, What::Partition { cut: vec![1] });
        assert_eq!(m.events, 7);
    }

    // A transaction is coloured by the protocol its messages show.
    #[test]
    fn commit_messages_take_their_protocols_colour() {
        let t = "{\"ev\":\"send\",\"from\":1,\"to\":2,\"kind\":\"Prepare\",\"tx\":1}\n\
                 {\"ev\":\"send\",\"from\":1,\"to\":2,\"kind\":\"PreCommit\",\"tx\":1}\n\
                 {\"ev\":\"send\",\"from\":1,\"to\":2,\"kind\":\"Prepare\",\"tx\":2}\n\
                 {\"ev\":\"send\",\"from\":1,\"to\":2,\"kind\":\"Phase2b\",\"tx\":3}\n";
        let run = &build(t).unwrap().runs[0];
        let classes: Vec<Class> = run.messages.iter().map(|m| m.class).collect();
        assert_eq!(classes, [Class::ThreePc, Class::ThreePc, Class::TwoPc, Class::Paxos]);
        assert!(run.messages.iter().all(|m| m.end == End::InFlight));
    }
}
