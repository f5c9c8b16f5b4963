//! The command line: `bank-master [OPTIONS] [FILE]`, plus hidden roles for child processes.

use crate::output::Arrow;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// A multi-process bank: Chandy–Lamport snapshots over local sockets.
///
/// Reads commands from FILE (or standard input when FILE is absent or '-') and runs them
/// one after another; each node is its own process. stdout carries only the specified
/// output; logs go to stderr (RUST_LOG=info shows the seed and the run's progress).
#[derive(Debug, Parser)]
#[command(name = "bank-master", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// The command file; standard input when absent or '-'.
    pub file: Option<PathBuf>,

    /// Fix every random choice (Receive without a sender, ReceiveAll): same file and seed,
    /// same output. Without it a fresh seed is drawn and logged at info level.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Write every event as one JSON object per line to FILE.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// How channel lines draw their arrow.
    #[arg(long, value_enum, default_value_t = Arrow::Ascii)]
    pub arrow: Arrow,

    /// Keep each node's write-ahead log as DIR/node-ID.wal (default: unnamed temporary
    /// files that vanish with the run).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// A child process role (used by the master itself).
    #[command(subcommand)]
    pub role: Option<Role>,
}

/// The roles a child process runs.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// A node process.
    #[command(hide = true)]
    Node {
        /// Node id.
        #[arg(long)]
        id: u32,
        /// Opening balance.
        #[arg(long)]
        balance: u64,
        /// The run's socket-name prefix.
        #[arg(long)]
        run: String,
        /// The run's nonce.
        #[arg(long)]
        nonce: u64,
        /// The master's pid.
        #[arg(long)]
        master_pid: u32,
    },
    /// The observer process.
    #[command(hide = true)]
    Observer {
        /// The run's nonce.
        #[arg(long)]
        nonce: u64,
        /// The master's pid.
        #[arg(long)]
        master_pid: u32,
    },
}
