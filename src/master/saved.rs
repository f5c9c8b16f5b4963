//! What a `--data-dir` holds, read before `--resume` starts a process (SPEC chapter 11):
//! which nodes have a log, the money each created (its node account and its named
//! accounts), and the highest transaction number any log names. A directory with no log,
//! a file that is not a bank log, and a damaged record each stop the resume before it
//! starts, with the directory, the file and the byte offset named.

use crate::ids::{AccountName, Amount, NodeId, TxnId};
use crate::protocol::record::{LegRecord, PaxosRecord, Record, ThreeRecord, TwoPcRecord};
use crate::wal::LogEnd;
use crate::wire::commit::{Protocol, TxSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One node's log, as `--resume` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedNode {
    /// The node.
    pub id: NodeId,
    /// Its opening balance (the log's first record).
    pub opening: Amount,
    /// The accounts it opened, with their new money, in the order it opened them.
    pub accounts: Vec<(AccountName, Amount)>,
}

/// Every node log in a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The directory.
    pub dir: PathBuf,
    /// Its nodes, by id.
    pub nodes: Vec<SavedNode>,
    /// The highest `T<n>` any log names (0 when none does).
    pub last_tx: u64,
    /// Every transaction a log names, with its protocol and Paxos Commit's acceptors
    /// (`TxStatus` asks its nodes about it after the resume).
    pub txs: BTreeMap<TxnId, Known>,
}

/// A transaction as the logs know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// What it does.
    pub spec: TxSpec,
    /// The protocol it ran by (two-phase commit when no record says otherwise).
    pub protocol: Protocol,
    /// Its acceptors, under Paxos Commit.
    pub acceptors: Option<[NodeId; 3]>,
}

/// Reads every `node-<id>.wal` in `dir`.
///
/// # Errors
/// `dir` cannot be read or holds no node log; a log is empty, is not a bank log, or has
/// a damaged record: the sentence names the directory, the file and the offset.
pub fn read(dir: &Path) -> Result<Saved, String> {
    let cannot = |why: String| format!("cannot resume from {}: {why}", dir.display());
    let entries = std::fs::read_dir(dir).map_err(|e| cannot(e.to_string()))?;
    let mut files: Vec<(NodeId, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| crate::logdump::node_of(&p).map(|id| (id, p)))
        .collect();
    if files.is_empty() {
        return Err(cannot(
            "it holds no node log (node-<id>.wal; run with --data-dir first)".into(),
        ));
    }
    files.sort();
    let mut saved =
        Saved { dir: dir.to_path_buf(), nodes: Vec::new(), last_tx: 0, txs: BTreeMap::new() };
    for (id, path) in files {
        let bytes = std::fs::read(&path).map_err(|e| cannot(format!("{}: {e}", path.display())))?;
        let node = read_one(id, &bytes, &mut saved)
            .map_err(|why| cannot(format!("{}: {why}", path.display())))?;
        saved.nodes.push(node);
    }
    Ok(saved)
}

/// One log's bytes: its opening balance first, its accounts, the transactions it names.
fn read_one(id: NodeId, bytes: &[u8], saved: &mut Saved) -> Result<SavedNode, String> {
    let scan = crate::logdump::scan(bytes)?;
    if let LogEnd::Corrupt { offset, fault } = &scan.end {
        return Err(format!("the record at byte {offset} is damaged ({fault})"));
    }
    let mut records = scan.records.iter().map(|r| &r.record);
    let opening = match records.next() {
        Some(Record::Opened { balance }) => *balance,
        Some(_) => return Err("not a bank node's log (its first record opens no node)".into()),
        None => return Err("an empty log (the node never wrote a record)".into()),
    };
    let mut node = SavedNode { id, opening, accounts: Vec::new() };
    for r in records {
        if let Record::AccountOpened { name, amount } = r {
            node.accounts.push((name.clone(), *amount));
        }
        if let Some(tx) = r.tx() {
            saved.last_tx = saved.last_tx.max(tx.0);
        }
        if let Some((spec, protocol, acceptors)) = spec_of(r) {
            let known = saved.txs.entry(spec.tx).or_insert_with(|| Known {
                spec: spec.clone(),
                protocol: Protocol::TwoPc,
                acceptors: None,
            });
            if let Some(p) = protocol {
                known.protocol = p;
            }
            known.acceptors = known.acceptors.or(acceptors);
        }
    }
    Ok(node)
}

/// A transaction a record carries whole, with its protocol and acceptors when it says.
type Carried<'a> = (&'a TxSpec, Option<Protocol>, Option<[NodeId; 3]>);

/// The transaction a record carries whole, with its protocol when the record says it.
fn spec_of(r: &Record) -> Option<Carried<'_>> {
    Some(match r {
        Record::Leg(LegRecord::Committed { spec } | LegRecord::Credited { spec, .. }) => {
            (spec, None, None)
        }
        Record::TwoPc(TwoPcRecord::Prepared { spec } | TwoPcRecord::Decision { spec, .. }) => {
            (spec, Some(Protocol::TwoPc), None)
        }
        Record::ThreePc(
            ThreeRecord::Prepared { spec }
            | ThreeRecord::PreCommitting { spec }
            | ThreeRecord::PreCommitted { spec }
            | ThreeRecord::Decision { spec, .. },
        ) => (spec, Some(Protocol::ThreePc), None),
        Record::Paxos(
            PaxosRecord::Prepared { spec, acceptors }
            | PaxosRecord::Promise { spec, acceptors, .. }
            | PaxosRecord::Accept { spec, acceptors, .. }
            | PaxosRecord::Ballot { spec, acceptors, .. }
            | PaxosRecord::Decision { spec, acceptors, .. },
        ) => (spec, Some(Protocol::Paxos), Some(*acceptors)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TxnId;
    use crate::protocol::record::LegRecord;
    use crate::wal::encode_record;

    fn empty() -> Saved {
        Saved { dir: PathBuf::new(), nodes: Vec::new(), last_tx: 0, txs: BTreeMap::new() }
    }

    fn log(records: &[Record]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for r in records {
            encode_record(r, &mut bytes).unwrap();
        }
        bytes.resize(bytes.len() + 4096, 0); // the zeros a log writes ahead
        bytes
    }

    #[test]
    fn a_log_gives_its_opening_accounts_and_last_transaction() {
        let name = AccountName::parse("ACC001").unwrap();
        let bytes = log(&[
            Record::Opened { balance: Amount(7) },
            Record::AccountOpened { name: name.clone(), amount: Amount(100) },
            Record::Leg(LegRecord::Aborted { tx: TxnId(12) }),
            Record::Leg(LegRecord::Aborted { tx: TxnId(3) }),
        ]);
        let mut saved = empty();
        let node = read_one(NodeId(2), &bytes, &mut saved).unwrap();
        assert_eq!(node.opening, Amount(7));
        assert_eq!(node.accounts, vec![(name, Amount(100))]);
        assert_eq!(saved.last_tx, 12);
    }

    #[test]
    fn empty_foreign_and_damaged_logs_are_refused_with_the_reason() {
        let mut last = empty();
        let e = read_one(NodeId(1), &[0; 4096], &mut last).unwrap_err();
        assert!(e.contains("empty log"), "{e}");
        let foreign = log(&[Record::Sent { to: NodeId(2), amount: Amount(1) }]);
        let e = read_one(NodeId(1), &foreign, &mut last).unwrap_err();
        assert!(e.contains("not a bank node's log"), "{e}");
        let mut bytes = log(&[
            Record::Opened { balance: Amount(7) },
            Record::Sent { to: NodeId(2), amount: Amount(1) },
            Record::Sent { to: NodeId(2), amount: Amount(2) },
        ]);
        bytes[13] ^= 1;
        let e = read_one(NodeId(1), &bytes, &mut last).unwrap_err();
        assert!(e.contains("the record at byte 10 is damaged"), "{e}");
    }
}
