//! `bank-master`: parse the command line, start logging, run the master or a child role,
//! and turn the outcome into an exit status (0 ok, 1 a line was rejected, 2 cannot start).

use bank::cli::{Cli, Role};
use bank::ids::{Amount, NodeId};
use bank::master::{self, Config, Input};
use bank::rng::Rng;
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let role = match &cli.role {
        None => "master".to_string(),
        Some(Role::Node { id, .. }) => format!("node {id}"),
        Some(Role::Observer { .. }) => "observer".to_string(),
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |buf, record| {
            use std::io::Write;
            writeln!(buf, "[{} {role}] {}", record.level(), record.args())
        })
        .init();
    match cli.role {
        Some(Role::Node { id, balance, run, nonce, master_pid }) => {
            let args = bank::node::NodeArgs {
                id: NodeId(id),
                balance: Amount(balance),
                run,
                nonce,
                master_pid,
            };
            child_exit(bank::node::run(args))
        }
        Some(Role::Observer { nonce, master_pid }) => {
            child_exit(master::observer::run(master::observer::ObserverArgs { nonce, master_pid }))
        }
        None => run_master(cli),
    }
}

fn child_exit(res: std::io::Result<()>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_master(cli: Cli) -> ExitCode {
    let input = match cli.file.as_deref() {
        // Commands are ASCII; a stray non-UTF-8 byte (a Latin-1 comment) must not make the
        // whole file unreadable, and any such byte in a command makes that line an error.
        Some(path) if path.as_os_str() != "-" => match std::fs::read(path) {
            Ok(bytes) => Input::Text(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        _ => {
            let interactive = std::io::stdin().is_terminal();
            if interactive {
                eprintln!("bank-master: type commands, 'help' for the list, Ctrl-D to end");
            }
            // Read on the master's own thread (a reader thread would cost a hand-off per line).
            Input::Stdin { interactive }
        }
    };
    let seed = cli.seed.unwrap_or_else(|| {
        let seed = Rng::fresh_seed();
        log::info!("seed={seed} (pass --seed {seed} to repeat this run)");
        seed
    });
    if let Some(dir) = &cli.data_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    let config = Config { input, seed, trace: cli.trace, arrow: cli.arrow, data_dir: cli.data_dir };
    let status = master::run(config);
    ExitCode::from(status as u8)
}
