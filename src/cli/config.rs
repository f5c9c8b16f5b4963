//! From a run's command line to the master's [`Config`] (ripgrep's low to high
//! arguments): the checks clap cannot make (`--web FILE`, `--step`, one file, the word
//! `help`), then what must be there before the first command: the command file read,
//! the data directory, the live page, the hosts and the agents started over ssh.
//!
//! Each step refuses with a [`CannotStart`] (exit status 2). They run in this order and
//! the first refusal is what the user sees, so the order is part of the behaviour. Only
//! `main` calls [`master`], once; it prints, the master's run does not start.

use super::{CannotStart, Cli};
use crate::cluster::ssh::{self, Launched};
use crate::cluster::Hosts;
use crate::master::{Config, Input};
use crate::rng::Rng;
use crate::web::Web;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a run's command line comes to.
pub enum Start {
    /// A run.
    Run {
        /// The master's configuration (boxed: it is large, and made once).
        config: Box<Config>,
        /// The agents started over ssh for `--hosts`: dropping the guard stops them, so
        /// it must outlive the run.
        agents: Option<Launched>,
    },
    /// `bank-master help` with no file of that name: what the user wants is the help.
    Help,
}

/// Checks `cli` (a run's: no tool) and starts what the run needs before its first
/// command.
///
/// # Errors
/// The first thing that keeps the run from starting, in the order the steps run.
pub fn master(mut cli: Cli) -> Result<Start, CannotStart> {
    take_web_file(&mut cli);
    if cli.step && (cli.web.is_none() || cli.file.as_ref().is_none_or(|f| f.as_os_str() == "-")) {
        let why = "--step runs a FILE one line per click of the live page: give --web and a FILE";
        return Err(CannotStart::Error(why.into()));
    }
    let file = one_file(&cli)?;
    if file.as_deref().is_some_and(|f| f == Path::new("help") && !f.exists()) {
        return Ok(Start::Help);
    }
    let input = read_input(file.as_deref(), cli.web.is_some())?;
    let seed = cli.seed.unwrap_or_else(|| {
        let seed = Rng::fresh_seed();
        log::info!("seed={seed} (pass --seed {seed} to repeat this run)");
        seed
    });
    let resume = resume(&cli)?;
    if let Some(dir) = cli.data_dir.as_ref().filter(|_| resume.is_none()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    }
    let web = start_web(cli.web.as_deref())?;
    let input = match (web.is_some(), input) {
        (true, Input::Text(text)) => {
            Input::Web { file: Some(text), step: cli.step, interactive: false }
        }
        (true, Input::Stdin { interactive }) => Input::Web { file: None, step: false, interactive },
        (_, input) => input,
    };
    let hosts = load_hosts(cli.hosts.as_deref(), cli.key.as_deref())?;
    let agents = hosts.as_ref().map(ssh::launch_all).transpose()?;
    let config = Config {
        hosts,
        web,
        input,
        seed,
        trace: cli.trace,
        arrow: cli.arrow,
        data_dir: cli.data_dir,
        resume,
        watchdog: Duration::from_secs(cli.watchdog),
    };
    Ok(Start::Run { config: Box::new(config), agents })
}

/// `--resume`: what the data directory holds, read before anything starts.
fn resume(cli: &Cli) -> Result<Option<crate::master::saved::Saved>, CannotStart> {
    if !cli.resume {
        return Ok(None);
    }
    let Some(dir) = &cli.data_dir else {
        return Err(CannotStart::Error(
            "--resume brings back the bank a data directory holds: give --data-dir DIR".into(),
        ));
    };
    if cli.hosts.is_some() {
        let why = "--resume runs the nodes on this machine (not with --hosts)";
        return Err(CannotStart::Error(why.into()));
    }
    if cli.trace.is_some() {
        let why = "--resume writes no trace (the nodes recover in live mode)";
        return Err(CannotStart::Error(why.into()));
    }
    crate::master::saved::read(dir).map(Some).map_err(CannotStart::Error)
}

/// `--web FILE` (or `--web -`): clap gives the optional address the file's name. A value
/// that is no address but names a file that exists (or standard input) is the command
/// file, and the page takes the default address.
fn take_web_file(cli: &mut Cli) {
    let Some(addr) = cli.web.clone() else { return };
    let not_addr =
        addr.parse::<std::net::SocketAddr>().is_err() && addr.parse::<std::net::IpAddr>().is_err();
    if !addr.is_empty() && not_addr && (addr == "-" || Path::new(&addr).exists()) {
        if let Some(f) = cli.file.take() {
            cli.more.insert(0, f);
        }
        cli.file = Some(addr.into());
        cli.web = Some(String::new());
    }
}

/// The one command file (`None`: standard input). Several are refused plainly rather
/// than run one after another, which would mix their systems.
fn one_file(cli: &Cli) -> Result<Option<PathBuf>, CannotStart> {
    if cli.more.is_empty() {
        return Ok(cli.file.clone());
    }
    let names: Vec<String> =
        cli.file.iter().chain(&cli.more).map(|p| p.display().to_string()).collect();
    Err(CannotStart::Error(format!(
        "bank-master runs one command file, got {}: {} (run it once per file, or join them \
         into one)",
        names.len(),
        names.join(" ")
    )))
}

/// The command lines: the whole file read now, or standard input (`None` or `-`) read
/// as it comes. `web`: the live page takes commands too (the prompt says so).
fn read_input(file: Option<&Path>, web: bool) -> Result<Input, CannotStart> {
    let Some(path) = file.filter(|p| p.as_os_str() != "-") else {
        let interactive = std::io::stdin().is_terminal();
        if interactive && !web {
            eprintln!("bank-master: type commands, 'help' for the list, Ctrl-D to end");
        } else if interactive {
            eprintln!(
                "bank-master: type commands here or on the live page, 'help' for the list; \
                 Ctrl-D ends the typing, Ctrl-C the run"
            );
        }
        // Read on the master's own thread (a reader thread would cost a hand-off per line);
        // with --web, on a thread of its own, as the master waits for the page too.
        return Ok(Input::Stdin { interactive });
    };
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(CannotStart::Error(format!(
            "{} is not a command file: it holds binary data (a NUL byte at offset {at})",
            path.display()
        )));
    }
    // Commands are ASCII; a stray non-UTF-8 byte (a Latin-1 comment) must not make the
    // whole file unreadable, and any such byte in a command makes that line an error.
    let text = String::from_utf8_lossy(&bytes);
    // A byte-order mark, as some editors write, is not part of the first line.
    Ok(Input::Text(text.strip_prefix('\u{feff}').unwrap_or(&text).to_string()))
}

/// Starts the live page for `--web [ADDR]` (an empty address: the default) and says
/// where it is on stderr.
fn start_web(addr: Option<&str>) -> Result<Option<Web>, CannotStart> {
    let Some(addr) = addr else { return Ok(None) };
    let web = Web::start((!addr.is_empty()).then_some(addr))?;
    eprintln!("bank-master: live page at {}", web.url());
    Ok(Some(web))
}

/// `--hosts FILE` and its `--key`; a key alone is a mistake worth naming.
fn load_hosts(file: Option<&Path>, key: Option<&Path>) -> Result<Option<Hosts>, CannotStart> {
    match file {
        None if key.is_some() => Err(CannotStart::Error(
            "--key goes with --hosts FILE (the hosts to run the nodes on)".into(),
        )),
        None => Ok(None),
        Some(file) => Ok(Some(Hosts::load(file, key)?)),
    }
}
