//! Who holds what, as the master's ledger predicts it between the nodes' reports: each
//! node's money (all of it, what transactions hold, what a `Send` may take), the money
//! created at each node (its opening balance and its accounts'), and the directory of
//! named accounts (SPEC chapter 11). Pure bookkeeping; the ledger decides when it changes.

use crate::ids::{AccountName, Amount, NodeId};
use crate::wire::Money;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// The nodes, their money and their accounts.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    /// Every node with its opening balance, by id.
    opening: BTreeMap<NodeId, Amount>,
    /// Money created at each node so far: its opening balance and its accounts'.
    created_at: HashMap<NodeId, Amount>,
    money: HashMap<NodeId, Money>,
    created: Amount,
    /// Every named account and the node that holds it.
    accounts: BTreeMap<AccountName, NodeId>,
}

impl Holdings {
    /// Node `id` with `amount` of new money.
    ///
    /// # Panics
    /// If the total would pass [`Amount::MAX`]: the master checks it.
    pub fn add_node(&mut self, id: NodeId, amount: Amount) {
        self.created = self.created.checked_add(amount).expect("the master checks the total");
        self.opening.insert(id, amount);
        self.created_at.insert(id, amount);
        self.money.insert(id, Money { balance: amount, held: Amount::ZERO, spare: amount });
    }

    /// Account `name` at `node` with `amount` of new money (not a node account's: a
    /// `Send` cannot take it).
    ///
    /// # Panics
    /// If the total would pass [`Amount::MAX`]: the master checks it.
    pub fn open_account(&mut self, name: AccountName, node: NodeId, amount: Amount) {
        let add = |a: &mut Amount| *a = a.checked_add(amount).expect("the master checks the total");
        add(&mut self.created);
        add(self.created_at.entry(node).or_default());
        add(&mut self.money.entry(node).or_default().balance);
        self.accounts.insert(name, node);
    }

    /// Whether node `id` exists.
    pub fn has_node(&self, id: NodeId) -> bool {
        self.opening.contains_key(&id)
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.opening.keys().copied()
    }

    /// The node holding account `name`, if it exists.
    pub fn node_of(&self, name: &AccountName) -> Option<NodeId> {
        self.accounts.get(name).copied()
    }

    /// Every named account with its node, by name.
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountName, NodeId)> {
        self.accounts.iter().map(|(a, &n)| (a, n))
    }

    /// Whether any named account exists.
    pub fn has_accounts(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// All money created so far.
    pub fn created(&self) -> Amount {
        self.created
    }

    /// Node `id`'s opening balance (what its process starts with on an empty log).
    pub fn opening(&self, id: NodeId) -> Amount {
        self.opening.get(&id).copied().unwrap_or(Amount::ZERO)
    }

    /// Money created at `node` so far.
    pub fn created_at(&self, node: NodeId) -> Amount {
        self.created_at.get(&node).copied().unwrap_or(Amount::ZERO)
    }

    /// `node`'s money.
    pub fn money(&self, node: NodeId) -> Money {
        self.money.get(&node).copied().unwrap_or_default()
    }

    /// `node`'s money as it reported it.
    pub fn set(&mut self, node: NodeId, money: Money) {
        self.money.insert(node, money);
    }

    /// A plain `Send` takes `amount` from `node`'s account if it can spare it; false
    /// (nothing changes) if not.
    pub fn withdraw(&mut self, node: NodeId, amount: Amount) -> bool {
        let m = self.money.entry(node).or_default();
        let Some(spare) = m.spare.checked_sub(amount) else { return false };
        m.spare = spare;
        m.balance = m.balance.checked_sub(amount).expect("spare money is owned");
        true
    }

    /// `amount` arrives in `node`'s account (a Transfer, or a driven payment).
    pub fn deposit(&mut self, node: NodeId, amount: Amount) {
        let m = self.money.entry(node).or_default();
        m.balance = m.balance.checked_add(amount).expect("total money is bounded");
        m.spare = m.spare.checked_add(amount).expect("total money is bounded");
    }
}
