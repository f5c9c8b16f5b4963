//! `bank-master host`: the agent on one host. It accepts a master holding the cluster
//! key, and for that master's run starts node processes there (their links TCP, their
//! logs on this host), SIGKILLs, stops and continues them, and kills every one left
//! when the run's session ends. A connection that cannot prove the key is refused and
//! logged; the agent goes on serving.
//!
//! Each session is a thread; a node is forked from its session's thread, so its
//! parent-death signal fires when the session ends or the agent dies, however.

use crate::cli::ChildRole;
use crate::ids::NodeId;
use crate::process::{kill_and_reap, spawn_self};
use crate::transport::noise::{self, Key};
use crate::transport::tcp::{self, Channel};
use crate::wire::agent::{FromAgent, ToAgent};
use clap::Parser;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;

/// Runs a host agent: starts and stops node processes on this host for a master
/// holding the same cluster key (SPEC chapter 10).
#[derive(Debug, Parser)]
#[command(name = "bank-master host")]
struct HostCli {
    /// Where to listen for masters, e.g. 0.0.0.0:7070.
    #[arg(long, value_name = "ADDR")]
    listen: String,

    /// The address others dial to reach this host, when --listen is a wildcard.
    #[arg(long, value_name = "ADDR")]
    advertise: Option<String>,

    /// The cluster key file (mode 0600), or '-' to read it from standard input (then
    /// the agent ends when its input does: how the master runs it over ssh). Without
    /// it, the BANK_KEY environment variable holds the key.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,

    /// Keep node logs as DIR/run-<nonce>/node-<id>.wal (default: unnamed temporary files).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

struct Setup {
    key: Key,
    ip: IpAddr,
    data_dir: Option<PathBuf>,
}

/// `bank-master host …`: returns the exit status.
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    let cli = match HostCli::try_parse_from(
        std::iter::once(std::ffi::OsString::from("bank-master host")).chain(args.iter().cloned()),
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let from_stdin = cli.key.as_deref().is_some_and(|k| k.as_os_str() == "-");
    let key = if from_stdin {
        let mut line = String::new();
        match io::stdin().read_line(&mut line) {
            Ok(_) => Key::from_hex(&line).map_err(|e| format!("standard input: {e}")),
            Err(e) => Err(format!("cannot read the key from standard input: {e}")),
        }
    } else {
        super::load_key(cli.key.as_deref())
    };
    let key = match key {
        Ok(k) => k,
        Err(why) => {
            eprintln!("error: {why}");
            return 2;
        }
    };
    let listener = match TcpListener::bind(&cli.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", cli.listen);
            return 2;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let ip = match cli.advertise.as_deref() {
        Some(a) => {
            match a.parse::<std::net::SocketAddr>().map(|s| s.ip()).or(a.parse::<IpAddr>()) {
                Ok(ip) => ip,
                Err(_) => {
                    eprintln!(
                        "error: --advertise {a} is not an address (10.0.0.5 or 10.0.0.5:7070)"
                    );
                    return 2;
                }
            }
        }
        None if local.ip().is_unspecified() => {
            eprintln!(
                "error: --listen {} is a wildcard: give --advertise with the address others dial",
                cli.listen
            );
            return 2;
        }
        None => local.ip(),
    };
    if let Some(dir) = &cli.data_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create the data directory {}: {e}", dir.display());
            return 2;
        }
    }
    if from_stdin {
        // Started over ssh: the session that started it ends, so does the agent (and,
        // by their death signal, its nodes).
        std::thread::spawn(|| {
            let mut sink = [0u8; 64];
            while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            log::info!("host: standard input closed; stopping");
            std::process::exit(0);
        });
    }
    eprintln!("bank-master host: listening on {local}, nodes on {ip}");
    let setup = Arc::new(Setup { key, ip, data_dir: cli.data_dir });
    for sock in listener.incoming() {
        match sock {
            Ok(sock) => {
                let setup = setup.clone();
                let spawned = std::thread::Builder::new().name("session".into()).spawn(move || {
                    session(sock, &setup);
                });
                if let Err(e) = spawned {
                    log::error!("host: cannot start a session: {e}");
                }
            }
            Err(e) => log::warn!("host: accept failed: {e}"),
        }
    }
    0
}

/// Runs the responder's handshake on a fresh connection; a channel to a master that
/// proved the key, or `None` (refused and logged).
fn accept(sock: TcpStream, key: &Key) -> Option<Channel> {
    let remote = sock.peer_addr().map_or("?".to_string(), |a| a.to_string());
    let refuse = |why: &str| {
        log::warn!("host: refused a connection from {remote}: {why}");
        None
    };
    match tcp::respond_blocking(sock, key, 0, "agent") {
        Err(why) => refuse(&why),
        Ok((_, claimed, _)) if claimed != "master" => {
            refuse(&format!("{claimed:?} is not a master"))
        }
        Ok((conn, _, rest)) => match Channel::new(conn, &rest) {
            Ok(ch) => Some(ch),
            Err(e) => refuse(&e.to_string()),
        },
    }
}

/// One master's run on this host.
struct Session<'a> {
    setup: &'a Setup,
    nonce: u64,
    /// Each node's current process.
    procs: HashMap<NodeId, Child>,
    /// Each node's log, kept open across its restarts.
    logs: HashMap<NodeId, std::fs::File>,
}

fn session(sock: TcpStream, setup: &Setup) {
    let Some(mut ch) = accept(sock, &setup.key) else { return };
    let remote = ch.conn().remote().to_string();
    let mut s = Session { setup, nonce: 0, procs: HashMap::new(), logs: HashMap::new() };
    let mut opened = false;
    loop {
        // No timeout once open: TCP's keepalive and user timeout end a session whose
        // master's host went silent. Before, the handshake's timeout.
        let wait = (!opened).then_some(noise::HANDSHAKE_TIMEOUT);
        let req = match ch.recv::<ToAgent>(wait) {
            Ok(r) => r,
            Err(e) if !opened => {
                // A replayed handshake gets this far: its first record does not open.
                log::warn!("host: refused a connection from {remote}: {e}");
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                log::warn!("host: the session of {remote} ends: {e}");
                break;
            }
        };
        if !opened && !matches!(req, ToAgent::Open { .. }) {
            log::warn!("host: refused a connection from {remote}: it did not open a session");
            break;
        }
        opened = true;
        let (answer, then) = s.handle(req);
        if let Err(e) = ch.send(&answer) {
            log::warn!("host: the session of {remote} ends: {e}");
            break;
        }
        if let Some(start) = then {
            if let Err(why) = s.spawn(start) {
                // The master sees the node's link close.
                log::error!("host: {why}");
            }
        }
    }
    let mut left: Vec<Child> = s.procs.drain().map(|(_, c)| c).collect();
    kill_and_reap(&mut left);
    log::info!("host: run {:016x} of {remote} ended", s.nonce);
}

/// A node process to start once its address is answered.
struct Start {
    id: NodeId,
    balance: u64,
    durable: bool,
    listener: TcpListener,
}

impl Session<'_> {
    /// The answer to `req`, and the node to start after sending it: a start is answered
    /// as soon as the node's address is bound, and the process is started after; the
    /// master dials meanwhile (the kernel holds its connection until the node accepts),
    /// so nodes start side by side, not one after another.
    fn handle(&mut self, req: ToAgent) -> (FromAgent, Option<Start>) {
        let answer = match req {
            ToAgent::Open { nonce } => {
                self.nonce = nonce;
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_default();
                FromAgent::Opened { host }
            }
            ToAgent::Start { id, balance, fresh, durable } => {
                let bound = self.bind(id, fresh).and_then(|listener| {
                    let addr = listener.local_addr().map_err(|e| e.to_string())?;
                    Ok((addr, Start { id, balance: balance.0, durable, listener }))
                });
                return match bound {
                    Ok((addr, start)) => {
                        (FromAgent::Started { id, addr: addr.to_string() }, Some(start))
                    }
                    Err(why) => (FromAgent::Failed { why }, None),
                };
            }
            ToAgent::Kill { id } => {
                if let Some(c) = self.procs.remove(&id) {
                    kill_and_reap(&mut vec![c]);
                }
                FromAgent::Done
            }
            ToAgent::Signal { id, stop } => {
                use nix::sys::signal::{kill, Signal};
                let Some(c) = self.procs.get(&id) else {
                    let why = format!("node {id} has no process");
                    return (FromAgent::Failed { why }, None);
                };
                let sig = if stop { Signal::SIGSTOP } else { Signal::SIGCONT };
                match kill(nix::unistd::Pid::from_raw(c.id() as i32), sig) {
                    Ok(()) => FromAgent::Done,
                    Err(e) => FromAgent::Failed { why: format!("cannot signal node {id}: {e}") },
                }
            }
        };
        (answer, None)
    }

    /// Binds node `id`'s listener: the address the master may dial at once (the kernel
    /// queues its connection until the node accepts).
    fn bind(&mut self, id: NodeId, fresh: bool) -> Result<TcpListener, String> {
        if let Some(old) = self.procs.remove(&id) {
            kill_and_reap(&mut vec![old]);
        }
        if fresh || !self.logs.contains_key(&id) {
            let dir =
                self.setup.data_dir.as_ref().map(|d| d.join(format!("run-{:016x}", self.nonce)));
            if let Some(d) = &dir {
                std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            }
            let log = crate::wal::create_log(
                dir.as_deref(),
                &format!("node-{id}.wal"),
                &format!("host-{}-{:016x}", std::process::id(), self.nonce),
            )
            .map_err(|e| format!("cannot create the log of node {id}: {e}"))?;
            self.logs.insert(id, log);
        }
        TcpListener::bind((self.setup.ip, 0))
            .map_err(|e| format!("cannot listen on {}: {e}", self.setup.ip))
    }

    /// Starts node `id`'s process on `listener` and its log.
    fn spawn(&mut self, start: Start) -> Result<(), String> {
        let Start { id, balance, durable, listener } = start;
        let log = &self.logs[&id];
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let role = ChildRole::Node {
            id: id.0,
            balance,
            run: "tcp".into(),
            nonce: self.nonce,
            master_pid: std::process::id(),
            tcp: true,
            durable,
        };
        let child = spawn_self(&role, None, listener.into(), Some(log), Some(&self.setup.key))
            .map_err(|e| format!("cannot start node {id}: {e}"))?;
        self.procs.insert(id, child);
        log::info!("host: node {id} listens on {addr}");
        Ok(())
    }
}
