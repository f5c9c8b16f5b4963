//! Nodes on several hosts (SPEC chapter 10): the cluster key, the hosts file, the host
//! agent (`bank-master host`), the master's side of an agent, and agents started over
//! ssh.
//!
//! The master stays the only writer of stdout and drives every command as on one
//! machine; only where a node runs changes. Each run opens a session with every agent;
//! an agent starts, kills, stops and continues the node processes of that session on
//! its host, keeps their logs there, and kills what is left when the session ends (the
//! master's link closes, or its host goes silent past TCP's limits).

pub mod agent;
pub mod ssh;

use crate::cli::{CannotStart, KeygenArgs};
use crate::ids::{Amount, NodeId};
use crate::transport::noise::Key;
use crate::transport::tcp::{self, Channel};
use crate::wire::agent::{FromAgent, ToAgent};
use std::path::Path;
use std::time::Duration;

/// How long the master waits for an agent's answer.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The port an agent started over ssh listens on when its line names none.
pub const DEFAULT_PORT: u16 = 7070;

/// Reads the cluster key: from `file` (which must not be readable by group or others),
/// else from the `BANK_KEY` environment variable.
///
/// # Errors
/// No key, a file others can read, or not a key.
pub fn load_key(file: Option<&Path>) -> Result<Key, String> {
    use std::os::unix::fs::PermissionsExt;
    match file {
        Some(path) => {
            let shown = path.display();
            let meta = std::fs::metadata(path)
                .map_err(|e| format!("cannot read key file {shown}: {e}"))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "key file {shown} is readable by others (mode {mode:o}): chmod 600 {shown}"
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read key file {shown}: {e}"))?;
            Key::from_hex(&text).map_err(|e| format!("key file {shown}: {e}"))
        }
        None => match std::env::var(crate::process::KEY_ENV) {
            Ok(text) => Key::from_hex(&text).map_err(|e| format!("BANK_KEY: {e}")),
            Err(_) => Err("no cluster key: give --key FILE or set BANK_KEY".into()),
        },
    }
}

/// `bank-master keygen FILE`: writes a new key, mode 0600, refusing to replace a file.
///
/// # Errors
/// Not one FILE (the usage), no random key to be had, or a file that exists or cannot
/// be written.
pub fn keygen(args: &KeygenArgs) -> Result<(), CannotStart> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (Some(path), []) = (&args.file, args.more.as_slice()) else {
        return Err(CannotStart::Usage(KeygenArgs::USAGE));
    };
    let key = Key::generate().map_err(|e| format!("cannot draw a random key: {e}"))?;
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{}\n", key.to_hex()).as_bytes()));
    match made {
        Ok(()) => {
            eprintln!(
                "bank-master: wrote a new cluster key to {} (mode 0600); copy it to every host",
                path.display()
            );
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(format!("{} exists; keygen never replaces a key (remove it first)", path.display())
                .into())
        }
        Err(e) => Err(format!("cannot write {}: {e}", path.display()).into()),
    }
}

/// One line of a hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The name `CreateNode … on <name>` uses.
    pub name: String,
    /// Where its agent listens: `address:port`.
    pub addr: String,
    /// `ssh` lines: the `[user@]host` the master starts the agent on.
    pub ssh: Option<String>,
}

/// The hosts of a run and the cluster key.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// The key every link proves.
    pub key: Key,
    /// The hosts, in file order.
    pub list: Vec<Host>,
}

impl Hosts {
    /// Reads the hosts file and the key.
    ///
    /// # Errors
    /// A line that is not a host (naming the line), no host, or no usable key.
    pub fn load(file: &Path, key: Option<&Path>) -> Result<Hosts, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read hosts file {}: {e}", file.display()))?;
        let list = parse_hosts(&text).map_err(|e| format!("hosts file {}: {e}", file.display()))?;
        Ok(Hosts { key: load_key(key)?, list })
    }

    /// The index of host `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|h| h.name == name)
    }

    /// The host names, in order, for messages.
    pub fn names(&self) -> String {
        self.list.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Parses a hosts file: `<name> <address>:<port>` or `<name> ssh <[user@]host>
/// [<address>:<port>]`, `#` comments, blank lines.
///
/// # Errors
/// `line N: <why>` for the first bad line; no host at all.
pub fn parse_hosts(text: &str) -> Result<Vec<Host>, String> {
    let mut list: Vec<Host> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: String| format!("line {}: {line}: {why}", i + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let host = match words.as_slice() {
            [name, "ssh", target] => {
                let at = target.rsplit('@').next().unwrap_or(target);
                Host {
                    name: name.to_string(),
                    addr: format!("{at}:{DEFAULT_PORT}"),
                    ssh: Some(target.to_string()),
                }
            }
            [name, "ssh", target, addr] => {
                check_addr(addr).map_err(bad)?;
                Host {
                    name: name.to_string(),
                    addr: addr.to_string(),
                    ssh: Some(target.to_string()),
                }
            }
            [name, addr] => {
                check_addr(addr).map_err(bad)?;
                Host { name: name.to_string(), addr: addr.to_string(), ssh: None }
            }
            _ => return Err(bad(
                "expected <name> <address>:<port> or <name> ssh <[user@]host> [<address>:<port>]"
                    .into(),
            )),
        };
        if list.iter().any(|h| h.name == host.name) {
            return Err(bad(format!("host {} is listed twice", host.name)));
        }
        list.push(host);
    }
    if list.is_empty() {
        return Err("no host in it".into());
    }
    Ok(list)
}

fn check_addr(addr: &str) -> Result<(), String> {
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => Ok(()),
        _ => Err(format!("{addr} is not <address>:<port>")),
    }
}

/// The master's side of one agent: a session for one run.
#[derive(Debug)]
pub struct Agent {
    /// The host's name in the hosts file.
    pub name: String,
    ch: Channel,
}

impl Agent {
    /// Dials host `host`'s agent with `key` and opens a session for run `nonce`.
    ///
    /// # Errors
    /// It cannot be reached, does not hold the key, or does not answer.
    pub fn open(host: &Host, key: &Key, nonce: u64) -> Result<Agent, String> {
        let conn = tcp::dial(&host.addr, key, 0, "master", "agent")
            .map_err(|e| format!("host {}: {e}", host.name))?;
        let ch = Channel::new(conn, &[]).map_err(|e| format!("host {}: {e}", host.name))?;
        let mut agent = Agent { name: host.name.clone(), ch };
        match agent.ask(&ToAgent::Open { nonce })? {
            FromAgent::Opened { host: h } => {
                log::info!("master: host {} ({h}) joined the run", agent.name);
                Ok(agent)
            }
            other => Err(format!("host {}: unexpected answer {other:?}", agent.name)),
        }
    }

    fn ask(&mut self, req: &ToAgent) -> Result<FromAgent, String> {
        let name = &self.name;
        self.ch.send(req).map_err(|e| format!("host {name} is unreachable: {e}"))?;
        match self.ch.recv(Some(AGENT_TIMEOUT)) {
            Ok(FromAgent::Failed { why }) => Err(format!("host {name}: {why}")),
            Ok(answer) => Ok(answer),
            Err(e) => Err(format!("host {name} is unreachable: {e}")),
        }
    }

    /// Starts node `id` there; returns the address it listens on.
    ///
    /// # Errors
    /// The agent could not, or is unreachable.
    pub fn start(
        &mut self,
        id: NodeId,
        balance: Amount,
        fresh: bool,
        durable: bool,
    ) -> Result<String, String> {
        match self.ask(&ToAgent::Start { id, balance, fresh, durable })? {
            FromAgent::Started { id: got, addr } if got == id => Ok(addr),
            other => Err(format!("host {}: unexpected answer {other:?}", self.name)),
        }
    }

    /// SIGKILLs node `id`'s process there and waits until it is reaped.
    ///
    /// # Errors
    /// The agent is unreachable.
    pub fn kill(&mut self, id: NodeId) -> Result<(), String> {
        self.ask(&ToAgent::Kill { id }).map(|_| ())
    }

    /// Stops or continues node `id`'s process there.
    ///
    /// # Errors
    /// The agent could not, or is unreachable.
    pub fn signal(&mut self, id: NodeId, stop: bool) -> Result<(), String> {
        self.ask(&ToAgent::Signal { id, stop }).map(|_| ())
    }

    /// The address of this end of the link: where the agent's host reaches the master.
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        match self.ch.conn() {
            crate::transport::Conn::Tcp { sock, .. } => sock.local_addr().ok().map(|a| a.ip()),
            crate::transport::Conn::Local(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_files_parse_and_bad_lines_are_named() {
        let text =
            "# lab\nh1 10.0.0.1:7000\n\nh2 ssh alice@lab2 # second\nh3 ssh lab3 10.0.0.3:7100\n";
        let l = parse_hosts(text).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0], Host { name: "h1".into(), addr: "10.0.0.1:7000".into(), ssh: None });
        assert_eq!((l[1].addr.as_str(), l[1].ssh.as_deref()), ("lab2:7070", Some("alice@lab2")));
        assert_eq!(l[2].addr, "10.0.0.3:7100");
        assert_eq!(
            parse_hosts("h1 a:1\nh1 b:2").unwrap_err(),
            "line 2: h1 b:2: host h1 is listed twice"
        );
        assert!(parse_hosts("h1 nowhere").unwrap_err().starts_with("line 1: "));
        assert!(parse_hosts("h1 a:0").is_err());
        assert!(parse_hosts("h1 ssh").is_err());
        assert_eq!(parse_hosts("# nothing\n").unwrap_err(), "no host in it");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("bank-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k");
        let key = Key::generate().unwrap();
        std::fs::write(&f, key.to_hex()).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = load_key(Some(&f));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let closed = load_key(Some(&f));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(open.unwrap_err().contains("readable by others (mode 644)"));
        assert_eq!(closed.unwrap(), key);
    }
}
