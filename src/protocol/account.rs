//! A node's money: its balance and what unfinished transactions hold of it. Plain
//! `Send`s and deposits move it directly; the commit protocols move it only through a
//! participant's legs (`participant`), which hold, debit, credit and release it.

use crate::ids::Amount;

/// A node's balance and the money held by prepared transactions (escrow: reservations
/// are amounts, not locks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Account {
    /// All money the node owns, held money included.
    balance: Amount,
    /// Money reserved by prepared debits.
    held: Amount,
}

impl Account {
    /// An account with `balance` and nothing held.
    pub fn new(balance: Amount) -> Account {
        Account { balance, held: Amount::ZERO }
    }

    /// All money the node owns, held money included.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
