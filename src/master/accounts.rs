//! The commands of SPEC chapter 11 that name accounts: `CreateAccount`, and `Transfer`
//! and `Transaction` placed on their nodes (each account's node is a participant) and
//! booked as one transaction of N parts. How a transaction then runs is `txn`'s (in a
//! script) and `live`'s.

use super::expect::Expect;
use super::fatal::Fatal;
use super::rules::{self, Rejection};
use super::session::Session;
use super::txn::PAXOS_NEEDS_THREE;
use crate::command::AccountRef;
use crate::ids::{AccountName, Amount, NodeId};
use crate::output::TxWord;
use crate::trace::TraceEvent;
use crate::wire::{AccountKey, Control, Protocol, TxSpec};

impl Session {
    /// `CreateAccount name node amount`: the node logs it (forced) and holds it.
    pub fn create_account(
        &mut self,
        name: AccountName,
        node: NodeId,
        amount: Amount,
    ) -> Result<Result<(), Rejection>, Fatal> {
        if let Err(why) = rules::create_account(&self.sys().ledger, &name, node, amount) {
            return Ok(Err(why));
        }
        let trace = match self.tracing() {
            true => vec![TraceEvent::Account { node, name: name.clone(), balance: amount }],
            false => Vec::new(),
        };
        self.ask(node, Control::OpenAccount { name: name.clone(), amount }, Expect::Ready(trace))?;
        self.sys().ledger.open_account(name, node, amount);
        Ok(Ok(()))
    }

    /// `Transfer` or `Transaction` (`word`): its changes placed on their nodes, numbered
    /// `T<n>`, and run by `protocol` in a script or live.
    pub fn transaction_cmd(
        &mut self,
        word: TxWord,
        changes: &[(AccountRef, i64)],
        via: Option<NodeId>,
        nowait: bool,
        protocol: Protocol,
    ) -> Result<Result<(), Rejection>, Fatal> {
        let (placed, coord) = match rules::transaction(&self.sys().ledger, changes, via) {
            Ok(placed) => placed,
            Err(why) => return Ok(Err(why)),
        };
        if protocol == Protocol::Paxos && self.sys().ledger.nodes().count() < 3 {
            return Ok(Err(PAXOS_NEEDS_THREE.into()));
        }
        let spec = self.book_tx(word, &placed, coord, protocol);
        if self.is_live() {
            return self.transfer_live(spec, nowait, protocol).map(Ok);
        }
        self.transfer(spec, nowait, protocol).map(Ok)
    }

    /// A new transaction of `changes` (node, account, change) coordinated by `coord`:
    /// numbered `T<n>`, booked with its word, its protocol (and Paxos Commit's
    /// acceptors).
    pub fn book_tx(
        &mut self,
        word: TxWord,
        changes: &[(NodeId, AccountKey, i64)],
        coord: NodeId,
        protocol: Protocol,
    ) -> TxSpec {
        let tx = self.book.txns.next_id();
        let spec = TxSpec::of_changes(tx, coord, changes);
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        let acceptors = crate::protocol::paxos_commit::acceptors(&spec, &nodes);
        self.book.txns.add(&spec, protocol, acceptors);
        if word == TxWord::Transaction {
            self.book.txns.transactions.insert(tx);
            self.book.txns.many_parts = true;
        }
        spec
    }
}
