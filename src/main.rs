//! `bank-master`: parse the command line, start logging, run the master, a tool or a
//! child role, and turn the outcome into an exit status (0 ok, 1 a line was rejected, 2
//! cannot start). What each step means lives in the library: [`bank::cli`] for the
//! command line and its checks, the roles in their modules.

use bank::cli::config::{self, Start};
use bank::cli::{CannotStart, ChildRole, Cli, Tool};
use bank::ids::{Amount, NodeId};
use bank::master::observer::{self, ObserverArgs};
use clap::CommandFactory;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A child learns its role from the environment, never from its arguments (they are
    // for `ps`): no command file, whatever its name, can run one.
    if let Some(role) = std::env::var_os(ChildRole::ENV) {
        std::env::remove_var(ChildRole::ENV);
        return match ChildRole::from_env(&role.to_string_lossy()) {
            Ok(role) => {
                init_logging(role.log_name());
                run_child(role)
            }
            Err(why) => exit(Err(CannotStart::Error(why))),
        };
    }
    let mut cli = match Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and end with 0; a bad option ends with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(cli.log_name().to_string());
    match cli.tool.take() {
        // draw parses its own options and says why it fails (1: a bad trace, 2: files).
        Some(Tool::Draw { args }) => ExitCode::from(bank::draw::run(&args) as u8),
        Some(Tool::Keygen(args)) => exit(bank::cluster::keygen(&args).map(|()| 0)),
        Some(Tool::Host(args)) => exit(bank::cluster::agent::run(args).map(|()| 0)),
        Some(Tool::Log { path }) => exit(bank::logdump::run(&path)),
        None => exit(run_master(cli)),
    }
}

/// Logs go to stderr, each line naming the process (`master`, `node 3`, `host`), at
/// `warn` unless `RUST_LOG` says otherwise (children inherit it).
fn init_logging(role: String) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |buf, record| {
            use std::io::Write;
            writeln!(buf, "[{} {role}] {}", record.level(), record.args())
        })
        .init();
}

/// The master: its exit status, 0 or 1, once the run is over.
fn run_master(cli: Cli) -> Result<u8, CannotStart> {
    match config::master(cli)? {
        Start::Help => {
            let _ = Cli::command().print_long_help();
            Ok(0)
        }
        Start::Run { config, agents } => {
            let status = bank::master::run(*config);
            // Only now: the agents' nodes served the run.
            drop(agents);
            Ok(status as u8)
        }
    }
}

/// A node or the observer, as the master started it.
fn run_child(role: ChildRole) -> ExitCode {
    let ran = match role {
        ChildRole::Node { id, balance, run, nonce, master_pid, tcp, durable } => {
            let args = bank::node::NodeArgs {
                id: NodeId(id),
                balance: Amount(balance),
                run,
                nonce,
                master_pid,
                tcp,
                durable,
            };
            install_key(tcp, format!("node {id}"), nonce).and_then(|()| bank::node::run(args))
        }
        ChildRole::Observer { nonce, master_pid, tcp } => {
            let args = ObserverArgs { nonce, master_pid, tcp };
            install_key(tcp, "observer".into(), nonce).and_then(|()| observer::run(args))
        }
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// A child on TCP links takes the cluster key from its environment (and removes it
/// there, so its own children never see it).
fn install_key(tcp: bool, me: String, nonce: u64) -> std::io::Result<()> {
    use bank::transport::noise::{install, Identity, Key};
    if !tcp {
        return Ok(());
    }
    let hex = std::env::var(bank::process::KEY_ENV)
        .map_err(|_| std::io::Error::other("no cluster key in the environment"))?;
    std::env::remove_var(bank::process::KEY_ENV);
    let key = Key::from_hex(&hex).map_err(std::io::Error::other)?;
    install(Identity { key, me, nonce });
    Ok(())
}

/// An exit status, or what could not start on stderr and status 2.
fn exit(status: Result<u8, CannotStart>) -> ExitCode {
    match status {
        Ok(status) => ExitCode::from(status),
        Err(why) => {
            eprintln!("{why}");
            ExitCode::from(2)
        }
    }
}
