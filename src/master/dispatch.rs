//! Which family runs a command: the system's lifecycle first (`StartMaster`, a command
//! with no system), then live mode's refusals and its own versions, then the family of
//! the command (`snapshots`, `txn`, `faults`, `check`, `live`). Each family checks what
//! it needs against the ledger (`rules`) and rejects the line, or runs it.

use super::fatal::Fatal;
use super::rules::{self, Rejection};
use super::session::Session;
use crate::command::{help, Command};
use crate::ids::NodeId;
use crate::output::TxWord;

/// Why a command is refused in live mode: it needs scripted delivery.
fn scripted_only(what: &str) -> Rejection {
    let verb = if what.contains(" and ") { "are" } else { "is" };
    format!(
        "{what} {verb} not available in live mode (messages are delivered as they arrive; \
         Live off first)"
    )
    .into()
}

impl Session {
    /// Runs command `cmd` (line `line`, `text`).
    pub fn execute(&mut self, line: usize, text: &str, cmd: Command) -> Result<(), Fatal> {
        let ran = match cmd {
            Command::Help => {
                eprintln!("{}", help());
                Ok(())
            }
            Command::StartMaster if self.sys.is_some() => {
                Err("a system is already running (KillAll ends it)".into())
            }
            Command::StartMaster => self.start_master().map(Ok)?,
            _ if self.sys.is_none() => Err("no system is running (StartMaster starts one)".into()),
            cmd if self.is_live() => self.live_command(line, text, cmd)?,
            cmd => self.scripted_command(line, text, cmd)?,
        };
        if let Err(why) = ran {
            self.reject(line, text, why);
        }
        Ok(())
    }

    /// A command in live mode: refused, run its live way, or as in a script.
    fn live_command(
        &mut self,
        line: usize,
        text: &str,
        cmd: Command,
    ) -> Result<Result<(), Rejection>, Fatal> {
        match cmd {
            Command::CreateNode { .. } => Ok(Err(scripted_only("CreateNode"))),
            Command::CreateAccount { .. } => Ok(Err(scripted_only("CreateAccount"))),
            Command::Receive { .. } => Ok(Err(scripted_only("Receive"))),
            Command::ReceiveAll => Ok(Err(scripted_only("ReceiveAll"))),
            Command::Hold { .. } | Command::Release { .. } | Command::Lose { .. } => {
                Ok(Err(scripted_only("Hold, Release and Lose")))
            }
            Command::CrashAt { .. } => Ok(Err(scripted_only("CrashAt"))),
            Command::Pause { .. } | Command::Resume { .. } => {
                Ok(Err(scripted_only("Pause and Resume")))
            }
            Command::Partition { .. } | Command::Heal => {
                Ok(Err(scripted_only("Partition and Heal")))
            }
            Command::Live { on: true } => Ok(Err("live mode is already on".into())),
            Command::Live { on: false } => self.live_off(),
            Command::Load { count, kind, parts, seed, background } => {
                self.load(count, kind, parts, seed, background)
            }
            Command::Wait => self.wait_load().map(Ok),
            Command::Send { from, to, amount } => self.send_live(from, to, amount),
            Command::Crash { node } => self.guard(&[node], |s| {
                if s.sys().ledger.is_down(node) {
                    return Ok(Err(format!("node {node} is already down").into()));
                }
                s.crash_live(node).map(Ok)
            }),
            Command::Restart { node } => self.guard(&[node], |s| s.restart_live(node).map(Ok)),
            // The same in both modes: they ask the nodes, or print what the master has.
            other => self.common_command(line, text, other),
        }
    }

    /// A command in a script.
    fn scripted_command(
        &mut self,
        line: usize,
        text: &str,
        cmd: Command,
    ) -> Result<Result<(), Rejection>, Fatal> {
        match cmd {
            Command::Live { on: true } => self.live_on(),
            Command::Live { on: false } => Ok(Err("live mode is not on".into())),
            Command::Load { .. } => Ok(Err("Load runs in live mode only (Live on first)".into())),
            Command::Wait => Ok(Ok(())), // no load runs outside live mode
            Command::CreateNode { id, amount, on } => self.create_node(id, amount, on.as_deref()),
            Command::CreateAccount { name, node, amount } => {
                self.create_account(name, node, amount)
            }
            Command::Send { from, to, amount } => self.send(from, to, amount),
            Command::Receive { to, from } => self.receive(to, from),
            Command::ReceiveAll => self.receive_all().map(Ok),
            other => self.fault_command(line, text, other),
        }
    }

    /// The fault commands (scripted only), or what is common to both modes.
    fn fault_command(
        &mut self,
        line: usize,
        text: &str,
        cmd: Command,
    ) -> Result<Result<(), Rejection>, Fatal> {
        match cmd {
            Command::Crash { node } => self.guard(&[node], |s| s.crash_cmd(node)),
            Command::CrashAt { node, point } => self.guard(&[node], |s| s.crash_at(node, point)),
            Command::Restart { node } => self.guard(&[node], |s| s.restart(node)),
            Command::Hold { from, to } | Command::Release { from, to } => {
                let hold = matches!(cmd, Command::Hold { .. });
                self.guard(&[from, to], |s| Ok(s.hold(from, to, hold)))
            }
            Command::Lose { from, to } => self.guard(&[from, to], |s| s.lose(from, to)),
            Command::Pause { node } => self.guard(&[node], |s| s.pause_cmd(node, true)),
            Command::Resume { node } => self.guard(&[node], |s| s.pause_cmd(node, false)),
            Command::Partition { nodes } => {
                self.guard(&nodes.clone(), |s| s.partition(&nodes).map(Ok))
            }
            Command::Heal => self.heal().map(Ok),
            other => self.common_command(line, text, other),
        }
    }

    /// The commands that work alike in both modes.
    fn common_command(
        &mut self,
        line: usize,
        text: &str,
        cmd: Command,
    ) -> Result<Result<(), Rejection>, Fatal> {
        match cmd {
            Command::CollectState => self.collect_state(line, text),
            Command::PrintSnapshot => self.print_snapshot().map(Ok),
            Command::BeginSnapshot { node } => self.guard(&[], |s| s.begin_snapshot_cmd(node)),
            Command::KillAll => {
                self.settle()?;
                self.sys = None;
                self.live = None;
                Ok(Ok(()))
            }
            Command::Transfer { from, to, amount, via, nowait, protocol } => {
                let protocol = protocol.unwrap_or(self.book.txns.protocol);
                let delta = amount.0 as i64;
                let changes = [(from, -delta), (to, delta)];
                self.transaction_cmd(TxWord::Transfer, &changes, via, nowait, protocol)
            }
            Command::Transaction { changes, via, nowait, protocol } => {
                let protocol = protocol.unwrap_or(self.book.txns.protocol);
                self.transaction_cmd(TxWord::Transaction, &changes, via, nowait, protocol)
            }
            Command::Protocol { protocol } => {
                self.book.txns.protocol = protocol;
                Ok(Ok(()))
            }
            Command::Balances => self.balances().map(Ok),
            Command::TxStatus { tx } if !self.book.txns.specs.contains_key(&tx) => {
                Ok(Err(format!("unknown transaction {tx}").into()))
            }
            Command::TxStatus { tx } => self.tx_status(tx).map(Ok),
            Command::Check => self.check().map(Ok),
            Command::Stats => self.stats().map(Ok),
            other => Err(Fatal::Bug(format!("{other:?} reached no family"))),
        }
    }

    /// Runs `f` if every node in `ids` exists; else the line names the first unknown one.
    fn guard(
        &mut self,
        ids: &[NodeId],
        f: impl FnOnce(&mut Session) -> Result<Result<(), Rejection>, Fatal>,
    ) -> Result<Result<(), Rejection>, Fatal> {
        match rules::known(&self.sys().ledger, ids) {
            Ok(()) => f(self),
            Err(why) => Ok(Err(why)),
        }
    }

    /// `BeginSnapshot node` (its checks are the family's).
    fn begin_snapshot_cmd(&mut self, node: NodeId) -> Result<Result<(), Rejection>, Fatal> {
        if let Err(why) = rules::acts(&self.sys().ledger, node, &[]) {
            return Ok(Err(why));
        }
        self.begin_snapshot(node).map(Ok)
    }
}
