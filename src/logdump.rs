//! `bank-master log PATH` (SPEC chapter 11): a node's write-ahead log in plain words, one
//! record per line (`#17 forced prepared T4 ACC001:-300 held=300 (2pc)`), then where the
//! records end: cleanly, at a torn tail (which recovery cuts off), or at a damaged record
//! (exit status 1, naming its byte offset). It only reads.
//!
//! A log is a single file of framed records (what a node writes today) or a segment of a
//! checkpointed log (its first frame a [`crate::wal::SegmentHeader`]); both read alike.

use crate::cli::CannotStart;
use crate::ids::NodeId;
use crate::protocol::record::{LegRecord, PaxosRecord, Record, ThreeRecord, TwoPcRecord};
use crate::wal::{scan_plain, scan_segment, LogEnd, ScannedRecord, SegmentScan};
use crate::wire::commit::{AccountKey, TxSpec};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prints the log at `path` (a file, or a directory: every `node-<id>.wal` in it, by
/// id) on stdout. `Ok(0)` when every record reads, `Ok(1)` when one is damaged.
///
/// # Errors
/// `path` cannot be read, holds no log, or is not a log at all (exit status 2).
pub fn run(path: &Path) -> Result<u8, CannotStart> {
    let files = log_files(path)?;
    let mut out = crate::output::tool_stdout();
    let mut status = 0;
    for file in &files {
        if files.len() > 1 {
            let _ = writeln!(out, "== {}", file.display());
        }
        let bytes = std::fs::read(file)
            .map_err(|e| CannotStart::Error(format!("cannot read {}: {e}", file.display())))?;
        let scan =
            scan(&bytes).map_err(|why| CannotStart::Error(format!("{}: {why}", file.display())))?;
        let node = node_of(file);
        let mut line = String::with_capacity(128);
        for r in &scan.records {
            line.clear();
            describe(r, node, &mut line);
            if writeln!(out, "{line}").is_err() {
                return Ok(status); // stdout closed (`| head`): nothing more to say
            }
        }
        let _ = writeln!(out, "{}", ending(&scan.end));
        if let LogEnd::Corrupt { offset, fault } = &scan.end {
            let _ = out.flush();
            eprintln!("error: {}: the record at byte {offset} is damaged: {fault}", file.display());
            status = 1;
        }
    }
    let _ = out.flush();
    Ok(status)
}

/// The files `path` names: itself, or a directory's `node-<id>.wal` files by id.
fn log_files(path: &Path) -> Result<Vec<PathBuf>, CannotStart> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CannotStart::Error(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| CannotStart::Error(format!("cannot read {}: {e}", path.display())))?;
    let mut logs: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| node_of(&p).map(|n| (n.0, p)))
        .collect();
    if logs.is_empty() {
        return Err(CannotStart::Error(format!(
            "{} holds no node log (node-<id>.wal)",
            path.display()
        )));
    }
    logs.sort();
    Ok(logs.into_iter().map(|(_, p)| p).collect())
}

/// The node a log file belongs to, from its name `node-<id>.wal`.
pub fn node_of(file: &Path) -> Option<NodeId> {
    let name = file.file_name()?.to_str()?;
    let id = name.strip_prefix("node-")?.strip_suffix(".wal")?;
    id.parse().ok().map(NodeId)
}

/// Reads a log's bytes: a segment (header first) or a plain log of records from byte 0.
///
/// # Errors
/// The file's first whole frame is neither a segment header nor a record.
pub fn scan(bytes: &[u8]) -> Result<SegmentScan<Record>, String> {
    match scan_segment::<Record>(bytes) {
        Ok(scan) => Ok(scan),
        Err(not_segment) => {
            // A plain log: the same frames, with no header before them.
            let plain = scan_plain::<Record>(bytes);
            if plain.records.is_empty() && matches!(plain.end, LogEnd::Corrupt { .. }) {
                Err(format!("not a node log ({not_segment})"))
            } else {
                Ok(plain)
            }
        }
    }
}

/// How the records end, in words.
fn ending(end: &LogEnd) -> String {
    match end {
        LogEnd::Clean { valid_to, .. } => format!("end at byte {valid_to}"),
        LogEnd::Torn { offset, bytes, fault } => {
            format!("torn tail at byte {offset} ({bytes} bytes, cut off by recovery): {fault}")
        }
        LogEnd::Corrupt { offset, fault } => format!("damaged record at byte {offset}: {fault}"),
    }
}

/// One record in plain words, numbered from 1, with how it is made durable.
fn describe(r: &ScannedRecord<Record>, node: Option<NodeId>, out: &mut String) {
    let _ = write!(out, "#{} ", r.number + 1);
    let part = |spec: &TxSpec, out: &mut String| changes(spec, node, false, out);
    match &r.record {
        Record::Opened { balance } => {
            let _ = write!(out, "forced opened node account balance={balance}");
        }
        Record::AccountOpened { name, amount } => {
            let _ = write!(out, "forced opened account {name} balance={amount}");
        }
        Record::Sent { to, amount } => {
            let _ = write!(out, "written sent {amount} to node {to}");
        }
        Record::Deposited { from, amount } => {
            let _ = write!(out, "written received {amount} from node {from}");
        }
        Record::Leg(LegRecord::Committed { spec }) => {
            let _ = write!(out, "forced committed {}", spec.tx);
            part(spec, out);
        }
        Record::Leg(LegRecord::Credited { spec, from }) => {
            let _ = write!(out, "forced credited {} paid by node {from}", spec.tx);
            part(spec, out);
        }
        Record::Leg(LegRecord::Aborted { tx }) => {
            let _ = write!(out, "lazy aborted {tx} (its hold released)");
        }
        Record::TwoPc(rec) => two_pc(rec, node, out),
        Record::ThreePc(rec) => three_pc(rec, node, out),
        Record::Paxos(rec) => paxos(rec, node, out),
    }
}

fn two_pc(rec: &TwoPcRecord, node: Option<NodeId>, out: &mut String) {
    let held = |spec: &TxSpec, out: &mut String| changes(spec, node, true, out);
    match rec {
        TwoPcRecord::Prepared { spec } => {
            let _ = write!(out, "forced prepared {}", spec.tx);
            held(spec, out);
            out.push_str(" (2pc)");
        }
        TwoPcRecord::Decision { spec, commit } => {
            decision(spec, *commit, "2pc", node, out);
        }
        TwoPcRecord::End { tx } => {
            let _ = write!(out, "lazy ended {tx} (2pc; every ack in)");
        }
    }
}

fn three_pc(rec: &ThreeRecord, node: Option<NodeId>, out: &mut String) {
    let held = |spec: &TxSpec, out: &mut String| changes(spec, node, true, out);
    match rec {
        ThreeRecord::Prepared { spec } => {
            let _ = write!(out, "forced prepared {}", spec.tx);
            held(spec, out);
            out.push_str(" (3pc)");
        }
        ThreeRecord::PreCommitting { spec } => {
            let _ = write!(out, "forced pre-committing {} (3pc; every YES in)", spec.tx);
        }
        ThreeRecord::PreCommitted { spec } => {
            let _ = write!(out, "forced pre-committed {} (3pc)", spec.tx);
        }
        ThreeRecord::Decision { spec, commit } => {
            decision(spec, *commit, "3pc", node, out);
        }
        ThreeRecord::End { tx } => {
            let _ = write!(out, "lazy ended {tx} (3pc; every ack in)");
        }
        ThreeRecord::Refused { tx } => {
            let _ = write!(out, "forced refused {tx} (3pc; asked, it knew nothing: abort)");
        }
    }
}

fn paxos(rec: &PaxosRecord, node: Option<NodeId>, out: &mut String) {
    let held = |spec: &TxSpec, out: &mut String| changes(spec, node, true, out);
    match rec {
        PaxosRecord::Prepared { spec, .. } => {
            let _ = write!(out, "forced prepared {}", spec.tx);
            held(spec, out);
            out.push_str(" (paxos)");
        }
        PaxosRecord::Promise { spec, bal, .. } => {
            let _ =
                write!(out, "forced promised {} ballot {}.{} (paxos)", spec.tx, bal.n, bal.node);
        }
        PaxosRecord::Accept { spec, accept, .. } => {
            let vote = if accept.prepared { "prepared" } else { "aborted" };
            let _ = write!(
                out,
                "forced accepted {} instance {} = {vote} at ballot {}.{} (paxos)",
                spec.tx, accept.inst, accept.bal.n, accept.bal.node
            );
        }
        PaxosRecord::Ballot { spec, bal, .. } => {
            let _ =
                write!(out, "forced took ballot {}.{} for {} (paxos)", bal.n, bal.node, spec.tx);
        }
        PaxosRecord::Decision { spec, commit, .. } => {
            decision(spec, *commit, "paxos", node, out);
        }
        PaxosRecord::End { tx } => {
            let _ = write!(out, "lazy ended {tx} (paxos; every ack in)");
        }
    }
}

/// A decision: forced when commit, lazy when abort (presumed abort).
fn decision(spec: &TxSpec, commit: bool, protocol: &str, node: Option<NodeId>, out: &mut String) {
    let (force, what) = if commit { ("forced", "commit") } else { ("lazy", "abort") };
    let _ = write!(out, "{force} decided {what} {}", spec.tx);
    changes(spec, node, false, out);
    let nodes: Vec<String> = spec.parts.iter().map(|p| p.node.to_string()).collect();
    let _ =
        write!(out, " ({protocol}; coordinator node {}; nodes {})", spec.coord, nodes.join(","));
}

/// This node's changes in `spec` (`ACC001:-300 node1:+5`), with what it holds
/// (`held=300`) when `held` and it pays; every part's when the node is not known.
fn changes(spec: &TxSpec, node: Option<NodeId>, held: bool, out: &mut String) {
    for p in spec.parts.iter().filter(|p| node.is_none_or(|n| n == p.node)) {
        for (key, delta) in p.changes() {
            match key {
                AccountKey::Own => {
                    let _ = write!(out, " node{}:{delta:+}", p.node);
                }
                AccountKey::Named(name) => {
                    let _ = write!(out, " {name}:{delta:+}");
                }
            }
        }
        if held && node.is_some() && p.debited().0 > 0 {
            let _ = write!(out, " held={}", p.debited());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Amount, TxnId};
    use crate::wal::encode_record;
    use crate::wire::commit::Part;

    fn spec() -> TxSpec {
        TxSpec {
            tx: TxnId(4),
            coord: NodeId(1),
            parts: vec![Part::own(NodeId(1), -300), Part::own(NodeId(2), 300)],
        }
    }

    fn log(records: &[Record]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for r in records {
            encode_record(r, &mut bytes).unwrap();
        }
        bytes
    }

    fn lines(bytes: &[u8], node: Option<NodeId>) -> Vec<String> {
        let scan = scan(bytes).unwrap();
        let mut v: Vec<String> = scan
            .records
            .iter()
            .map(|r| {
                let mut s = String::new();
                describe(r, node, &mut s);
                s
            })
            .collect();
        v.push(ending(&scan.end));
        v
    }

    // A plain log reads as numbered lines in words, this node's part with its hold.
    #[test]
    fn a_plain_log_reads_in_words() {
        let bytes = log(&[
            Record::Opened { balance: Amount(1000) },
            Record::TwoPc(TwoPcRecord::Prepared { spec: spec() }),
            Record::Leg(LegRecord::Committed { spec: spec() }),
        ]);
        let got = lines(&bytes, Some(NodeId(1)));
        assert_eq!(got[0], "#1 forced opened node account balance=1000");
        assert_eq!(got[1], "#2 forced prepared T4 node1:-300 held=300 (2pc)");
        assert_eq!(got[2], "#3 forced committed T4 node1:-300");
        assert_eq!(got[3], format!("end at byte {}", bytes.len()));
    }

    // A torn last record is named with its offset; a flipped bit in the middle of the
    // log is damage, named with the offset of the record it hits.
    #[test]
    fn torn_tails_and_damage_are_named_by_offset() {
        let whole = log(&[
            Record::Opened { balance: Amount(5) },
            Record::Sent { to: NodeId(2), amount: Amount(1) },
            Record::Sent { to: NodeId(2), amount: Amount(2) },
        ]);
        let second = log(&[Record::Opened { balance: Amount(5) }]).len();
        let third = log(&[
            Record::Opened { balance: Amount(5) },
            Record::Sent { to: NodeId(2), amount: Amount(1) },
        ])
        .len();
        let torn = &whole[..whole.len() - 2];
        let got = lines(torn, None);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[2].starts_with(&format!("torn tail at byte {third}")), "{got:?}");
        let mut flipped = whole.clone();
        flipped[second + 9] ^= 0x10;
        let scan = scan(&flipped).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert!(
            matches!(scan.end, LogEnd::Corrupt { offset, .. } if offset == second as u64),
            "{:?}",
            scan.end
        );
    }

    #[test]
    fn a_log_file_is_named_node_id_wal() {
        assert_eq!(node_of(Path::new("/d/node-12.wal")), Some(NodeId(12)));
        assert_eq!(node_of(Path::new("/d/node-x.wal")), None);
        assert_eq!(node_of(Path::new("/d/notes.txt")), None);
    }
}
