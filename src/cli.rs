//! The command line: `bank-master [OPTIONS] [FILE]`, the tools beside a run (`draw`,
//! `keygen`, `host`: SPEC chapters 9–10), and how a child process learns its role.
//!
//! The parsing is clap's derive; [`config`] checks a run's options further and starts
//! what the run needs. A user's argument is always a command file: a child role (a
//! node, the observer) is never named on the command line, so no file name can run
//! one. The master passes a child its role in the environment ([`ChildRole::ENV`])
//! and gives it a short argument list for `ps` only (`bank-master node 3`, `bank-master
//! observer`). A tool's word is taken only when no file of that name exists
//! ([`Cli::parse_args`]): a path that exists is always a file.

pub mod config;

use crate::output::Arrow;
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// What `--help` says of the tools, after the options (clap's list of subcommands would
/// show a second usage line).
const TOOLS: &str = "\
Tools, each with its own --help (a file of the same name still runs as commands):
  bank-master draw TRACE [-o OUT]            a picture of a --trace file (SVG, HTML, ShiViz)
  bank-master keygen FILE                    a new cluster key, for --hosts
  bank-master host --listen ADDR --key FILE  an agent that runs nodes for a master";

/// A multi-process bank: Chandy–Lamport snapshots and atomic transfers between node
/// processes.
///
/// Reads commands from FILE (or standard input when FILE is absent or '-') and runs them
/// one after another; each node is its own process. stdout carries only the specified
/// output; logs go to stderr (RUST_LOG=info shows the seed and the run's progress).
#[derive(Debug, Parser)]
#[command(
    name = "bank-master",
    version,
    // A tool's word only counts first: `bank-master --seed 1 draw` runs a file `draw`.
    args_conflicts_with_subcommands = true,
    // `help` is a file name first; `config` shows the help when no such file exists.
    disable_help_subcommand = true,
    after_help = TOOLS
)]
pub struct Cli {
    /// A tool instead of a run. The tools are hidden from clap's own list (the help
    /// lists them) so that the help shows one usage: a run's.
    #[command(subcommand)]
    pub tool: Option<Tool>,

    /// The command file; standard input when absent or '-'.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// More file names, only to say plainly that one is run at a time.
    #[arg(hide = true)]
    pub more: Vec<PathBuf>,

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

    /// Bring back the bank whose logs --data-dir DIR holds (every node recovers from
    /// its log, what was in the channels is delivered once), then run FILE against it.
    #[arg(long)]
    pub resume: bool,

    /// Serve a live page of the run (default 127.0.0.1 on a free port); its address, with
    /// a token made for this run, goes to stderr. With FILE, the file runs first and the
    /// page stays up for more commands until Ctrl-C or a KillAll from the page.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub web: Option<String>,

    /// With --web and FILE: run the file one line per click of the page's Step button.
    #[arg(long)]
    pub step: bool,

    /// Run the nodes on the hosts listed in FILE (SPEC chapter 10), one a line:
    /// `<name> <address>:<port>` for a running `bank-master host`, or
    /// `<name> ssh [user@]host [<address>:<port>]` to start one over ssh. Needs --key.
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,

    /// The cluster key file (mode 0600, made by `bank-master keygen`); with --hosts.
    /// The BANK_KEY environment variable may hold the key instead.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Give up (error, exit status 1) when no process has answered for this many
    /// seconds: a bug, never a wait of the protocols (their timeouts are logical).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub watchdog: u64,
}

impl Cli {
    /// Parses a command line, the program's name first. A first word that names a tool
    /// is the tool, unless a file or directory of that name exists: a path that exists
    /// is always the command file, whatever its name.
    ///
    /// # Errors
    /// clap's: a bad option, or `--help` and `--version` (which print and end with 0).
    pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
        let mut args: Vec<OsString> = args.into_iter().collect();
        let is_tool = |a: &OsString| a.to_str().is_some_and(Tool::has_subcommand);
        let shadowed = args.get(1).filter(|a| is_tool(a) && Path::new(a).exists()).cloned();
        if let Some(name) = &shadowed {
            // clap takes a tool's name before a file's, but `./draw` is no tool's name;
            // the user's spelling comes back for the messages that name the file.
            args[1] = Path::new(".").join(name).into_os_string();
        }
        let mut cli = Cli::try_parse_from(args)?;
        if let Some(name) = shadowed {
            cli.file = Some(name.into());
        }
        Ok(cli)
    }

    /// The name this process's logs go by: `host` for an agent, else `master`.
    pub fn log_name(&self) -> &'static str {
        match self.tool {
            Some(Tool::Host(_)) => "host",
            _ => "master",
        }
    }
}

/// The tools beside a run.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Draw a --trace file as a picture of the run (SPEC chapter 9).
    #[command(hide = true, disable_help_flag = true)]
    Draw {
        /// The words after `draw`, untouched: [`crate::draw::run`] parses its own
        /// options (and answers `--help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Writes a new cluster key to FILE, mode 0600; a file that exists is never
    /// replaced.
    // FILE is optional to clap only so that keygen can show its own usage line.
    #[command(hide = true, override_usage = "bank-master keygen FILE")]
    Keygen(KeygenArgs),
    /// Runs a host agent: starts and stops node processes on this host for a master
    /// holding the same cluster key (SPEC chapter 10).
    #[command(hide = true)]
    Host(HostArgs),
    /// Prints a node's write-ahead log (a file, or DIR for every node-ID.wal in it) one
    /// record per line in plain words; exits 1 naming the byte offset of a damaged
    /// record (SPEC chapter 11). It changes nothing.
    #[command(hide = true, override_usage = "bank-master log PATH")]
    Log {
        /// A log file, or a --data-dir directory.
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
}

/// The arguments of `bank-master keygen` (its help text is [`Tool::Keygen`]'s).
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// More names, only to show the usage: one key is written at a time.
    #[arg(hide = true)]
    pub more: Vec<PathBuf>,
}

impl KeygenArgs {
    /// What a `keygen` without exactly one FILE is told.
    pub const USAGE: &'static str = "bank-master keygen FILE (writes a new cluster key, mode 0600)";
}

/// The options of `bank-master host` (its help text is [`Tool::Host`]'s).
#[derive(Debug, Args)]
pub struct HostArgs {
    /// Where to listen for masters, e.g. 0.0.0.0:7070.
    #[arg(long, value_name = "ADDR")]
    pub listen: String,

    /// The address others dial to reach this host, when --listen is a wildcard.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<String>,

    /// The cluster key file (mode 0600), or '-' to read it from standard input (then
    /// the agent ends when its input does: how the master runs it over ssh). Without
    /// it, the BANK_KEY environment variable holds the key.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Keep node logs as `DIR/run-<nonce>/node-<id>.wal` (default: unnamed temporary
    /// files).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Why a command line cannot start what it asks for: `main` prints it on stderr and
/// ends with exit status 2 (SPEC chapter 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CannotStart {
    /// The arguments do not fit this usage line.
    Usage(&'static str),
    /// Anything else, said in a sentence.
    Error(String),
}

impl fmt::Display for CannotStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CannotStart::Usage(usage) => write!(f, "usage: {usage}"),
            CannotStart::Error(why) => write!(f, "error: {why}"),
        }
    }
}

impl std::error::Error for CannotStart {}

impl From<String> for CannotStart {
    fn from(why: String) -> CannotStart {
        CannotStart::Error(why)
    }
}

/// What a child process is: the master starts each with one, in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildRole {
    /// A node process.
    Node {
        /// Node id.
        id: u32,
        /// Opening balance.
        balance: u64,
        /// The run's socket-name prefix.
        run: String,
        /// The run's nonce.
        nonce: u64,
        /// The master's pid (a host agent's, on several hosts).
        master_pid: u32,
        /// Its links are TCP (several hosts): no control socket is inherited, the
        /// master dials it, and the cluster key is in `BANK_KEY`.
        tcp: bool,
        /// It forces every record before it tells anyone (plain Sends too).
        durable: bool,
    },
    /// The observer process.
    Observer {
        /// The run's nonce.
        nonce: u64,
        /// The master's pid.
        master_pid: u32,
        /// Its listener is TCP (several hosts); the cluster key is in `BANK_KEY`.
        tcp: bool,
    },
}

impl ChildRole {
    /// The environment variable that carries a child's role.
    pub const ENV: &'static str = "BANK_MASTER_CHILD";

    /// The role as the value of [`ChildRole::ENV`]: space-separated words.
    pub fn to_env(&self) -> String {
        match self {
            ChildRole::Node { id, balance, run, nonce, master_pid, tcp, durable } => {
                let links = if *tcp { "tcp" } else { "local" };
                let force = if *durable { "durable" } else { "lazy" };
                format!("node {id} {balance} {run} {nonce} {master_pid} {links} {force}")
            }
            ChildRole::Observer { nonce, master_pid, tcp } => {
                let links = if *tcp { "tcp" } else { "local" };
                format!("observer {nonce} {master_pid} {links}")
            }
        }
    }

    /// Reads a role written by [`ChildRole::to_env`].
    ///
    /// # Errors
    /// The text is not a role.
    pub fn from_env(text: &str) -> Result<ChildRole, String> {
        let words: Vec<&str> = text.split(' ').collect();
        let bad = || format!("{} is not a child role: {text:?}", ChildRole::ENV);
        let num = |w: &str| w.parse::<u64>().map_err(|_| bad());
        let small = |w: &str| w.parse::<u32>().map_err(|_| bad());
        match words.as_slice() {
            ["node", id, balance, run, nonce, pid, links @ ("tcp" | "local"), force @ ("durable" | "lazy")] => {
                Ok(ChildRole::Node {
                    id: small(id)?,
                    balance: num(balance)?,
                    run: run.to_string(),
                    nonce: num(nonce)?,
                    master_pid: small(pid)?,
                    tcp: *links == "tcp",
                    durable: *force == "durable",
                })
            }
            ["observer", nonce, pid, links @ ("tcp" | "local")] => Ok(ChildRole::Observer {
                nonce: num(nonce)?,
                master_pid: small(pid)?,
                tcp: *links == "tcp",
            }),
            _ => Err(bad()),
        }
    }

    /// What `ps` shows after the program name: `node 3`, or `observer`.
    pub fn display_args(&self) -> Vec<String> {
        match self {
            ChildRole::Node { id, .. } => vec!["node".to_string(), id.to_string()],
            ChildRole::Observer { .. } => vec!["observer".to_string()],
        }
    }

    /// The name logs use for this process.
    pub fn log_name(&self) -> String {
        self.display_args().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A role survives the trip through the environment; anything else is refused.
    #[test]
    fn roles_round_trip_through_the_environment() {
        let node = ChildRole::Node {
            id: 7,
            balance: u64::MAX,
            run: "bank-1-00ff".into(),
            nonce: 9,
            master_pid: 42,
            tcp: true,
            durable: false,
        };
        let obs = ChildRole::Observer { nonce: 1, master_pid: 2, tcp: false };
        let remote = ChildRole::Observer { nonce: 1, master_pid: 2, tcp: true };
        for r in [node.clone(), obs.clone(), remote] {
            assert_eq!(ChildRole::from_env(&r.to_env()), Ok(r));
        }
        assert_eq!(node.display_args(), ["node", "7"]);
        assert_eq!(obs.log_name(), "observer");
        for bad in [
            "",
            "node",
            "node 1 2 r 3",
            "observer x 1",
            "master 1 2",
            "node -1 2 r 3 4 tcp lazy",
            "node 1 2 r 3 4 udp lazy",
            "observer 1 2",
        ] {
            assert!(ChildRole::from_env(bad).is_err(), "{bad:?}");
        }
    }

    // The options parse, and the watchdog has a floor of one second.
    #[test]
    fn options_parse() {
        let cli = Cli::try_parse_from(["bank-master", "--seed", "3", "f.txt"]).unwrap();
        assert_eq!((cli.seed, cli.file.is_some(), cli.watchdog), (Some(3), true, 30));
        let two = Cli::try_parse_from(["bank-master", "a", "b", "c"]).unwrap();
        assert_eq!(two.more.len(), 2);
        assert!(Cli::try_parse_from(["bank-master", "--watchdog", "0"]).is_err());
    }
}
