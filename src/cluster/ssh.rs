//! Agents the master starts itself over ssh (`<name> ssh <[user@]host> [addr:port]`
//! lines), as Open MPI and Spark start their daemons: the system's OpenSSH client and the
//! user's keys. The agent reads the cluster key from its standard input (never an
//! argument: the remote `ps` would show it) and ends when that input ends, which is when
//! the ssh session does: at the end of the run, or when the master dies (its ssh client
//! dies with it, by the parent-death signal). Its log comes back on stderr, each line
//! prefixed with the host's name.
//!
//! `BANK_SSH` replaces the client command (`ssh -F my_config`); `BANK_REMOTE_EXE` the
//! path of `bank-master` on the hosts (default: this binary's own path, the same on
//! every host as with mpirun).

use super::{Host, Hosts};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// How long an agent may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The agents this run started; dropping it ends their sessions and reaps the clients.
#[derive(Debug, Default)]
pub struct Launched {
    agents: Vec<(String, Child, Option<ChildStdin>)>,
}

impl Drop for Launched {
    fn drop(&mut self) {
        // Closing stdin ends each agent; each client exits with its session. Whatever
        // has not exited within 5 s is killed.
        let (done_tx, done) = crossbeam_channel::unbounded();
        let mut left = Vec::new();
        for (name, mut child, stdin) in self.agents.drain(..) {
            drop(stdin);
            left.push((name.clone(), child.id()));
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                let _ = child.wait();
                let _ = done_tx.send(name);
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !left.is_empty() {
            match done.recv_deadline(deadline) {
                Ok(name) => left.retain(|(n, _)| *n != name),
                Err(_) => break,
            }
        }
        for (name, pid) in left {
            log::warn!("master: the ssh session of host {name} did not end; killed");
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// Starts the agent of every `ssh` line and waits until each listens.
///
/// # Errors
/// ssh failed, or an agent did not start (its stderr is in the log).
pub fn launch_all(hosts: &Hosts) -> Result<Launched, String> {
    let mut launched = Launched::default();
    for h in hosts.list.iter().filter(|h| h.ssh.is_some()) {
        let (child, stdin) = launch(h, hosts)?;
        launched.agents.push((h.name.clone(), child, Some(stdin)));
    }
    Ok(launched)
}

fn launch(h: &Host, hosts: &Hosts) -> Result<(Child, ChildStdin), String> {
    let target = h.ssh.as_deref().unwrap_or_default();
    let client = std::env::var("BANK_SSH").unwrap_or_else(|_| "ssh".into());
    let mut words = client.split_whitespace();
    let program = words.next().unwrap_or("ssh").to_string();
    let exe = std::env::var("BANK_REMOTE_EXE").unwrap_or_else(|_| {
        std::env::current_exe().map(|p| p.display().to_string()).unwrap_or("bank-master".into())
    });
    let (host_part, port) = h.addr.rsplit_once(':').unwrap_or((&h.addr, "7070"));
    let remote = format!("{exe} host --listen 0.0.0.0:{port} --advertise {host_part} --key -",);
    let mut cmd = Command::new(&program);
    cmd.args(words)
        .args(["-o", "BatchMode=yes", "-T", target, "--"])
        .arg(&remote)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; the client dies with the master.
    unsafe {
        cmd.pre_exec(|| {
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child =
        cmd.spawn().map_err(|e| format!("host {}: cannot run {program}: {e}", h.name))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    stdin
        .write_all(format!("{}\n", hosts.key.to_hex()).as_bytes())
        .map_err(|e| format!("host {}: ssh: {e}", h.name))?;
    let (ready_tx, ready) = crossbeam_channel::bounded(1);
    let name = h.name.clone();
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("bank-master host: listening on") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            eprintln!("[{name}] {line}");
        }
        if let Some(tx) = ready_tx.take() {
            let _ = tx.send(Err(()));
        }
    });
    match ready.recv_timeout(START_TIMEOUT) {
        Ok(Ok(())) => Ok((child, stdin)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "host {}: the agent did not start over ssh on {target} (its messages are above)",
                h.name
            ))
        }
    }
}
