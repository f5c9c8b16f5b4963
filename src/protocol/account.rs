//! A node's money: its node account (named by its id, what `Send` and `Receive` move) and
//! its named accounts (`CreateAccount`), each with a balance and what unfinished
//! transactions hold of it. Plain `Send`s and deposits move the node account directly;
//! the commit protocols move money only through a participant's legs (`participant`),
//! which hold, debit, credit and release it.
//!
//! Escrow is per account (O'Neil, "The Escrow Transactional Method", TODS 1986): a
//! transaction's debits are held only if each account's money not held by other
//! unfinished transactions covers its own debit, all at once or none. Nothing bounds an
//! account from above but the total, which SPEC chapter 3 caps at 2^63−1, so a credit
//! never overflows (the supremum test of O'Neil's method is not needed).

use crate::ids::{AccountName, Amount};
use crate::wire::AccountKey;
use std::collections::BTreeMap;

/// One account: its balance and the money held by prepared transactions (escrow:
/// reservations are amounts, not locks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Account {
    /// All money the account owns, held money included.
    balance: Amount,
    /// Money reserved by prepared debits.
    held: Amount,
}

impl Account {
    /// An account with `balance` and nothing held.
    pub fn new(balance: Amount) -> Account {
        Account { balance, held: Amount::ZERO }
    }

    /// All money the account owns, held money included.
    pub fn balance(&self) -> Amount {
        self.balance
    }

    /// Money reserved by prepared debits.
    pub fn held(&self) -> Amount {
        self.held
    }

    /// Money available to spend: the balance less what transactions hold.
    pub fn available(&self) -> Amount {
        self.balance.checked_sub(self.held).expect("held never exceeds balance")
    }

    /// Takes `amount` if it is available (held money is not); false changes nothing.
    pub fn withdraw(&mut self, amount: Amount) -> bool {
        if amount > self.available() {
            return false;
        }
        self.balance = self.balance.checked_sub(amount).expect("checked above");
        true
    }

    /// Adds `amount`.
    pub fn deposit(&mut self, amount: Amount) {
        self.balance = self.balance.checked_add(amount).expect("total money is bounded");
    }

    /// Reserves `amount` (the caller checked it is available).
    pub fn hold(&mut self, amount: Amount) {
        self.held = self.held.checked_add(amount).expect("held is at most the balance");
        debug_assert!(self.held <= self.balance, "held more than the balance");
    }

    /// Lets a reservation go.
    pub fn release(&mut self, amount: Amount) {
        self.held = self.held.checked_sub(amount).expect("only held money is released");
    }

    /// A reservation leaves: released and debited.
    pub fn debit_held(&mut self, amount: Amount) {
        self.release(amount);
        self.balance = self.balance.checked_sub(amount).expect("held money is owned");
    }
}

/// Every account of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Accounts {
    own: Account,
    named: BTreeMap<AccountName, Account>,
}

impl Accounts {
    /// A node whose node account has `balance` and no named account.
    pub fn new(balance: Amount) -> Accounts {
        Accounts { own: Account::new(balance), named: BTreeMap::new() }
    }

    /// Opens account `name` with `amount` (new money); false if the name is taken here.
    pub fn open(&mut self, name: AccountName, amount: Amount) -> bool {
        if self.named.contains_key(&name) {
            return false;
        }
        self.named.insert(name, Account::new(amount));
        true
    }

    /// The node account.
    pub fn own(&self) -> &Account {
        &self.own
    }

    /// The node account, to move by `Send` and `Receive`.
    pub fn own_mut(&mut self) -> &mut Account {
        &mut self.own
    }

    /// The account `key`, if this node holds it.
    pub fn get(&self, key: &AccountKey) -> Option<&Account> {
        match key {
            AccountKey::Own => Some(&self.own),
            AccountKey::Named(name) => self.named.get(name),
        }
    }

    fn get_mut(&mut self, key: &AccountKey) -> Option<&mut Account> {
        match key {
            AccountKey::Own => Some(&mut self.own),
            AccountKey::Named(name) => self.named.get_mut(name),
        }
    }

    /// The named accounts, by name.
    pub fn named(&self) -> impl Iterator<Item = (&AccountName, &Account)> {
        self.named.iter()
    }

    /// All the node's money: every account's balance, held money included.
    pub fn total(&self) -> Amount {
        self.named
            .values()
            .map(Account::balance)
            .fold(self.own.balance, |sum, b| sum.checked_add(b).expect("total money is bounded"))
    }

    /// All the money transactions hold here.
    pub fn held(&self) -> Amount {
        self.named
            .values()
            .map(Account::held)
            .fold(self.own.held, |sum, h| sum.checked_add(h).expect("held is at most the total"))
    }

    /// Whether every debit can be held: each account exists here and its available money
    /// covers its debit.
    pub fn covers<'a>(&self, mut debits: impl Iterator<Item = (&'a AccountKey, Amount)>) -> bool {
        debits.all(|(k, d)| self.get(k).is_some_and(|a| a.available() >= d))
    }

    /// Holds every debit (the caller checked [`Accounts::covers`]).
    pub fn hold<'a>(&mut self, debits: impl Iterator<Item = (&'a AccountKey, Amount)>) {
        for (k, d) in debits {
            if let Some(a) = self.get_mut(k) {
                a.hold(d);
            }
        }
    }

    /// Lets every debit's reservation go.
    pub fn release<'a>(&mut self, debits: impl Iterator<Item = (&'a AccountKey, Amount)>) {
        for (k, d) in debits {
            if let Some(a) = self.get_mut(k) {
                a.release(d);
            }
        }
    }

    /// Every held debit leaves its account.
    pub fn debit_held<'a>(&mut self, debits: impl Iterator<Item = (&'a AccountKey, Amount)>) {
        for (k, d) in debits {
            if let Some(a) = self.get_mut(k) {
                a.debit_held(d);
            }
        }
    }

    /// Adds `amount` to account `key` (an account the master checked exists here; an
    /// unknown one takes the money on the node account, so none is ever lost).
    pub fn credit(&mut self, key: &AccountKey, amount: Amount) {
        debug_assert!(self.get(key).is_some(), "a credit to an account not held here");
        match self.get_mut(key) {
            Some(a) => a.deposit(amount),
            None => self.own.deposit(amount),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> AccountKey {
        AccountKey::Named(AccountName::parse(s).unwrap())
    }

    // Escrow: held money cannot be sent; the rest can.
    #[test]
    fn held_money_is_not_available() {
        let mut a = Account::new(Amount(100));
        a.hold(Amount(70));
        assert_eq!(a.available(), Amount(30));
        assert!(!a.withdraw(Amount(31)));
        assert!(a.withdraw(Amount(30)));
        a.debit_held(Amount(70));
        assert_eq!((a.balance(), a.held()), (Amount(0), Amount(0)));
    }

    // Escrow per account: one account's money never covers another's debit, and a
    // transaction's debits are covered all together or not at all.
    #[test]
    fn escrow_is_per_account() {
        let mut acc = Accounts::new(Amount(10));
        assert!(acc.open(AccountName::parse("A").unwrap(), Amount(300)));
        assert!(!acc.open(AccountName::parse("A").unwrap(), Amount(1)), "a name once");
        let (a, own) = (name("A"), AccountKey::Own);
        assert!(acc.covers([(&a, Amount(300)), (&own, Amount(10))].into_iter()));
        assert!(!acc.covers([(&a, Amount(301))].into_iter()));
        assert!(!acc.covers([(&name("B"), Amount(1))].into_iter()), "unknown account");
        acc.hold([(&a, Amount(200))].into_iter());
        assert!(!acc.covers([(&a, Amount(101))].into_iter()), "held money is not available");
        assert!(acc.covers([(&a, Amount(100))].into_iter()));
        assert_eq!((acc.total(), acc.held()), (Amount(310), Amount(200)));
        acc.debit_held([(&a, Amount(200))].into_iter());
        acc.credit(&own, Amount(200));
        assert_eq!((acc.total(), acc.held()), (Amount(310), Amount(0)));
        assert_eq!(acc.own().balance(), Amount(210));
    }
}
