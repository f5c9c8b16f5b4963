//! `bank-master`: parse the command line, start logging, run the master or a child role,
//! and turn the outcome into an exit status (0 ok, 1 a line was rejected, 2 cannot start).

use bank::cli::{ChildRole, Cli};
use bank::ids::{Amount, NodeId};
use bank::master::{self, Config, Input};
use bank::rng::Rng;
use clap::{CommandFactory, Parser};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    // A child learns its role from the environment, never from its arguments (they are
    // for `ps`): no command file, whatever its name, can run one.
    let child = std::env::var_os(ChildRole::ENV).map(|v| {
        std::env::remove_var(ChildRole::ENV);
        ChildRole::from_env(&v.to_string_lossy())
    });
    let first = std::env::args_os().nth(1);
    let role = match &child {
        Some(Ok(r)) => r.log_name(),
        _ if first.as_ref().is_some_and(|a| a == "host" && !Path::new(a).exists()) => {
            "host".to_string()
        }
        _ => "master".to_string(),
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |buf, record| {
            use std::io::Write;
            writeln!(buf, "[{} {role}] {}", record.level(), record.args())
        })
        .init();
    match child {
        Some(Ok(ChildRole::Node { id, balance, run, nonce, master_pid, tcp, durable })) => {
            if tcp {
                if let Err(e) = install_key(format!("node {id}"), nonce) {
                    return child_exit(Err(e));
                }
            }
            let args = bank::node::NodeArgs {
                id: NodeId(id),
                balance: Amount(balance),
                run,
                nonce,
                master_pid,
                tcp,
                durable,
            };
            child_exit(bank::node::run(args))
        }
        Some(Ok(ChildRole::Observer { nonce, master_pid, tcp })) => {
            if tcp {
                if let Err(e) = install_key("observer".into(), nonce) {
                    return child_exit(Err(e));
                }
            }
            child_exit(master::observer::run(master::observer::ObserverArgs {
                nonce,
                master_pid,
                tcp,
            }))
        }
        Some(Err(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
        None => run_master(),
    }
}

/// A child on TCP links takes the cluster key from its environment (and removes it
/// there, so its own children never see it).
fn install_key(me: String, nonce: u64) -> std::io::Result<()> {
    use bank::transport::noise::{install, Identity, Key};
    let hex = std::env::var(bank::process::KEY_ENV)
        .map_err(|_| std::io::Error::other("no cluster key in the environment"))?;
    std::env::remove_var(bank::process::KEY_ENV);
    let key = Key::from_hex(&hex).map_err(std::io::Error::other)?;
    install(Identity { key, me, nonce });
    Ok(())
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

fn run_master() -> ExitCode {
    // The visible subcommands of SPEC chapters 9-10, taken only when no file of that name
    // exists (a path that exists is always a command file).
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "draw" && !Path::new(a).exists()) {
        return ExitCode::from(bank::draw::run(&args[1..]) as u8);
    }
    if args.first().is_some_and(|a| a == "keygen" && !Path::new(a).exists()) {
        return ExitCode::from(bank::cluster::keygen_main(&args[1..]) as u8);
    }
    if args.first().is_some_and(|a| a == "host" && !Path::new(a).exists()) {
        return ExitCode::from(bank::cluster::agent::main(&args[1..]) as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and end with 0; a bad option ends with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let mut cli = cli;
    // `--web FILE` (or `--web -`): the optional address is a file that exists (or standard
    // input), not an address.
    if let Some(addr) = cli.web.clone() {
        let not_addr = addr.parse::<std::net::SocketAddr>().is_err()
            && addr.parse::<std::net::IpAddr>().is_err();
        if !addr.is_empty() && not_addr && (addr == "-" || Path::new(&addr).exists()) {
            if let Some(f) = cli.file.take() {
                cli.more.insert(0, f);
            }
            cli.file = Some(addr.into());
            cli.web = Some(String::new());
        }
    }
    if cli.step && (cli.web.is_none() || cli.file.as_ref().is_none_or(|f| f.as_os_str() == "-")) {
        eprintln!(
            "error: --step runs a FILE one line per click of the live page: give --web and a FILE"
        );
        return ExitCode::from(2);
    }
    let file = match (&cli.file, cli.more.as_slice()) {
        (file, []) => file.clone(),
        (first, more) => {
            let all = first.iter().chain(more);
            let names: Vec<String> = all.map(|p| p.display().to_string()).collect();
            eprintln!(
                "error: bank-master runs one command file, got {}: {} (run it once per file, \
                 or join them into one)",
                names.len(),
                names.join(" ")
            );
            return ExitCode::from(2);
        }
    };
    if file.as_deref().is_some_and(|f| f == Path::new("help") && !f.exists()) {
        // `bank-master help` with no file of that name: what the user wants is the help.
        let _ = Cli::command().print_long_help();
        return ExitCode::SUCCESS;
    }
    let input = match file.as_deref() {
        // Commands are ASCII; a stray non-UTF-8 byte (a Latin-1 comment) must not make the
        // whole file unreadable, and any such byte in a command makes that line an error.
        Some(path) if path.as_os_str() != "-" => match std::fs::read(path) {
            Ok(bytes) if bytes.contains(&0) => {
                let at = bytes.iter().position(|&b| b == 0).unwrap_or(0);
                eprintln!(
                    "error: {} is not a command file: it holds binary data (a NUL byte at \
                     offset {at})",
                    path.display()
                );
                return ExitCode::from(2);
            }
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                // A byte-order mark, as some editors write, is not part of the first line.
                Input::Text(text.strip_prefix('\u{feff}').unwrap_or(&text).to_string())
            }
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        _ => {
            let interactive = std::io::stdin().is_terminal();
            if interactive && cli.web.is_none() {
                eprintln!("bank-master: type commands, 'help' for the list, Ctrl-D to end");
            } else if interactive {
                eprintln!(
                    "bank-master: type commands here or on the live page, 'help' for the list; \
                     Ctrl-D ends the typing, Ctrl-C the run"
                );
            }
            // Read on the master's own thread (a reader thread would cost a hand-off per line);
            // with --web, on a thread of its own, as the master waits for the page too.
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
            eprintln!("error: cannot create the data directory {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    let web = match cli.web.as_deref() {
        None => None,
        Some(addr) => match bank::web::Web::start((!addr.is_empty()).then_some(addr)) {
            Ok(w) => {
                eprintln!("bank-master: live page at {}", w.url());
                Some(w)
            }
            Err(why) => {
                eprintln!("error: {why}");
                return ExitCode::from(2);
            }
        },
    };
    let input = match (web.is_some(), input) {
        (true, Input::Text(text)) => {
            Input::Web { file: Some(text), step: cli.step, interactive: false }
        }
        (true, Input::Stdin { interactive }) => Input::Web { file: None, step: false, interactive },
        (_, input) => input,
    };
    let hosts = match &cli.hosts {
        None if cli.key.is_some() => {
            eprintln!("error: --key goes with --hosts FILE (the hosts to run the nodes on)");
            return ExitCode::from(2);
        }
        None => None,
        Some(file) => match bank::cluster::Hosts::load(file, cli.key.as_deref()) {
            Ok(h) => Some(h),
            Err(why) => {
                eprintln!("error: {why}");
                return ExitCode::from(2);
            }
        },
    };
    // Agents started over ssh live as long as this process: the guard stops them.
    let launched = match hosts.as_ref().map(bank::cluster::ssh::launch_all) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(why)) => {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    };
    let config = Config {
        hosts,
        web,
        input,
        seed,
        trace: cli.trace,
        arrow: cli.arrow,
        data_dir: cli.data_dir,
        watchdog: Duration::from_secs(cli.watchdog),
    };
    let status = master::run(config);
    drop(launched);
    ExitCode::from(status as u8)
}
