//! `bank-master host`: the agent on one host. It accepts a master holding the cluster
//! key, and for that master's run starts node processes there (their links TCP, their
//! logs on this host), SIGKILLs, stops and continues them, and kills every one left
//! when the run's session ends. A connection that cannot prove the key is refused and
//! logged; the agent goes on serving.
//!
//! Each session is a thread; a node is forked from its session's thread, so its
//! parent-death signal fires when the session ends or the agent dies, however. The
//! options are [`HostArgs`] (clap's, in `cli`); `main` prints what keeps the agent from
//! starting.

use crate::cli::{CannotStart, ChildRole, HostArgs};
use crate::ids::NodeId;
use crate::process::{kill_and_reap, spawn_self};
use crate::transport::noise::{self, Key};
use crate::transport::tcp::{self, Channel};
use crate::wire::agent::{FromAgent, ToAgent};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;

/// What every session of this agent shares.
struct Setup {
    key: Key,
    /// The address the nodes listen on (what masters and other nodes dial).
    ip: IpAddr,
    data_dir: Option<PathBuf>,
}

/// `bank-master host …`: serves masters until the agent is killed, or, with the key
/// read from standard input, until that input ends.
///
/// # Errors
/// What keeps the agent from starting: no usable key, an address it cannot listen on
/// or does not know how to advertise, a data directory it cannot create.
pub fn run(args: HostArgs) -> Result<(), CannotStart> {
    let from_stdin = args.key.as_deref().is_some_and(|k| k.as_os_str() == "-");
    let key = if from_stdin { key_from_stdin()? } else { super::load_key(args.key.as_deref())? };
    let listener = TcpListener::bind(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let ip = advertised_ip(&args, local)?;
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    }
    if from_stdin {
        end_with_stdin();
    }
    eprintln!("bank-master host: listening on {local}, nodes on {ip}");
    serve(listener, Setup { key, ip, data_dir: args.data_dir });
    Ok(())
}

/// The key as one line of standard input (how the master passes it over ssh: never
/// on a command line, which the remote `ps` would show).
fn key_from_stdin() -> Result<Key, String> {
    let mut line = String::new();
    match io::stdin().read_line(&mut line) {
        Ok(_) => Key::from_hex(&line).map_err(|e| format!("standard input: {e}")),
        Err(e) => Err(format!("cannot read the key from standard input: {e}")),
    }
}

/// The address nodes listen on: `--advertise` (an address, or an address and port
/// whose port is ignored), else the one listened on, which must not be a wildcard
/// (others could not dial it).
fn advertised_ip(args: &HostArgs, local: SocketAddr) -> Result<IpAddr, String> {
    match args.advertise.as_deref() {
        Some(a) => {
            a.parse::<SocketAddr>().map(|s| s.ip()).or(a.parse::<IpAddr>()).map_err(|_| {
                format!("--advertise {a} is not an address (10.0.0.5 or 10.0.0.5:7070)")
            })
        }
        None if local.ip().is_unspecified() => Err(format!(
            "--listen {} is a wildcard: give --advertise with the address others dial",
            args.listen
        )),
        None => Ok(local.ip()),
    }
}

/// Started over ssh, the agent ends when the session that started it does (and, by
/// their death signal, so do its nodes): a thread waits for standard input to close.
fn end_with_stdin() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        log::info!("host: standard input closed; stopping");
        std::process::exit(0);
    });
}

/// Accepts masters for ever, each session on a thread of its own.
fn serve(listener: TcpListener, setup: Setup) {
    let setup = Arc::new(setup);
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
