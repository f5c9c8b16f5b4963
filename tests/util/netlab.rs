//! A network lab on one machine for the several-hosts tests (SPEC chapter 10): network
//! namespaces on a bridge that sits in its own "switch" namespace, one host agent in
//! each host namespace, the master in a namespace of its own, and a fourth, a stranger's.
//! Loss and cuts are nftables rules on the switch (this kernel has no netem).
//!
//! Everything is made under a prefix holding the test process's pid and removed on
//! drop, a failing test included; a lab whose process died (SIGKILL) is removed by the
//! next lab made on this machine.

use super::{bin, run_command, Run, TempDir};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The lab's subnet.
pub const NET: &str = "10.77.0";
/// OpenSSH's server.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The port every agent listens on.
pub const PORT: u16 = 7070;
/// The master's and the stranger's host numbers in the subnet.
pub const MASTER: u8 = 100;
pub const STRANGER: u8 = 200;

/// Whether the lab can run here; prints a visible skip line when it cannot (and fails
/// under `CI=true`, where everything must run).
pub fn available(what: &str) -> bool {
    let why = if unsafe { nix::libc::geteuid() } != 0 {
        Some("not root".to_string())
    } else if !ok(Command::new("ip").args(["netns", "list"])) {
        Some("`ip netns` does not work".to_string())
    } else if !ok(Command::new("nft").arg("--version")) {
        Some("nft (nftables) is not installed".to_string())
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => skip(what, &why),
    }
}

/// Prints a visible skip line for `what` (fails under `CI=true`, where `.ci/run` has
/// installed what it needs); false.
fn skip(what: &str, why: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}: {why}, and CI=true must run it (.ci/run installs what it needs)");
    }
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("SKIPPED {what}: {why}\n").as_bytes());
    false
}

fn ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a lab command");
    assert!(out.status.success(), "{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Removes the labs of test processes that no longer run.
fn sweep_dead_labs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("bk") else { continue };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// One lab.
pub struct Lab {
    prefix: String,
    hosts: usize,
    agents: Vec<Option<Child>>,
    /// The hosts whose agent the master starts over ssh, and their sshd.
    ssh: Vec<usize>,
    sshds: Vec<Child>,
    /// The key, the hosts file, the agents' logs.
    pub dir: TempDir,
    pub key: PathBuf,
    pub hosts_file: PathBuf,
}

impl Lab {
    /// A lab of `hosts` hosts, the master's namespace and the stranger's, agents
    /// running; `None` (after a skip line) where labs cannot run.
    pub fn new(what: &str, hosts: usize) -> Option<Lab> {
        Lab::with_ssh(what, hosts, &[])
    }

    /// A lab where hosts `ssh` run OpenSSH's sshd (with a host key and an authorized
    /// key made here) instead of an agent: the master starts theirs over ssh.
    pub fn with_ssh(what: &str, hosts: usize, ssh: &[usize]) -> Option<Lab> {
        if !available(what) {
            return None;
        }
        if !ssh.is_empty() && !std::path::Path::new(SSHD).exists() {
            skip(what, "OpenSSH's sshd is not installed (apt-get install openssh-server)");
            return None;
        }
        sweep_dead_labs();
        let prefix = format!(
            "bk{}{}",
            std::process::id(),
            (b'a' + (super::check::unique() % 26) as u8) as char
        );
        let dir = TempDir::new("netlab");
        let mut lab = Lab {
            prefix,
            hosts,
            agents: Vec::new(),
            ssh: ssh.to_vec(),
            sshds: Vec::new(),
            key: dir.0.join("cluster.key"),
            hosts_file: dir.0.join("hosts.txt"),
            dir,
        };
        lab.build();
        let key = lab.key.to_str().unwrap().to_string();
        must(&[bin().to_str().unwrap(), "keygen", &key]);
        let mut hosts_text = String::from("# the lab's hosts\n");
        for i in 1..=hosts {
            if ssh.contains(&i) {
                hosts_text.push_str(&format!("h{i} ssh root@{NET}.{i} {NET}.{i}:{PORT}\n"));
            } else {
                hosts_text.push_str(&format!("h{i} {NET}.{i}:{PORT}\n"));
            }
        }
        std::fs::write(&lab.hosts_file, hosts_text).unwrap();
        if !ssh.is_empty() {
            lab.make_ssh_keys();
        }
        for i in 1..=hosts {
            if ssh.contains(&i) {
                let d = lab.start_sshd(i);
                lab.sshds.push(d);
                lab.agents.push(None);
            } else {
                let agent = lab.start_agent(i);
                lab.agents.push(Some(agent));
            }
        }
        Some(lab)
    }

    /// The name of a namespace: `n1`…, `m` (master), `s` (stranger), `sw`.
    pub fn ns(&self, which: &str) -> String {
        format!("{}{which}", self.prefix)
    }

    fn build(&self) {
        let sw = self.ns("sw");
        must(&["ip", "netns", "add", &sw]);
        let br = format!("{}br", self.prefix);
        must(&["ip", "-n", &sw, "link", "add", &br, "type", "bridge"]);
        must(&["ip", "-n", &sw, "link", "set", &br, "up"]);
        let t = self.prefix.clone();
        must(&["ip", "netns", "exec", &sw, "nft", "add", "table", "bridge", &t]);
        must(&[
            "ip",
            "netns",
            "exec",
            &sw,
            "nft",
            "add",
            "chain",
            "bridge",
            &t,
            "xfer",
            "{ type filter hook forward priority 0; policy accept; }",
        ]);
        let mut members: Vec<(String, u8)> =
            (1..=self.hosts).map(|i| (format!("n{i}"), i as u8)).collect();
        members.push(("m".into(), MASTER));
        members.push(("s".into(), STRANGER));
        for (tag, num) in members {
            let ns = self.ns(&tag);
            let (v, p) = (format!("{}v{tag}", self.prefix), format!("{}p{tag}", self.prefix));
            must(&["ip", "netns", "add", &ns]);
            must(&[
                "ip", "link", "add", &v, "netns", &ns, "type", "veth", "peer", "name", &p, "netns",
                &sw,
            ]);
            must(&["ip", "-n", &sw, "link", "set", &p, "master", &br]);
            must(&["ip", "-n", &sw, "link", "set", &p, "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            must(&["ip", "-n", &ns, "addr", "add", &format!("{NET}.{num}/24"), "dev", &v]);
            must(&["ip", "-n", &ns, "link", "set", &v, "up"]);
        }
    }

    /// Starts host `i`'s agent and waits until it listens.
    fn start_agent(&self, i: usize) -> Child {
        let mut child = self
            .command_in(&format!("n{i}"), &bin())
            .args(["host", "--listen", &format!("{NET}.{i}:{PORT}"), "--key"])
            .arg(&self.key)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start an agent");
        self.follow(child.stderr.take().unwrap(), format!("agent{i}.log"), "listening on");
        child
    }

    fn make_ssh_keys(&self) {
        let d = &self.dir.0;
        for k in ["hostkey", "id"] {
            let path = d.join(k);
            must(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path.to_str().unwrap()]);
        }
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        let client = format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
            d.join("id").display()
        );
        std::fs::write(d.join("ssh_config"), client).unwrap();
        // sshd's privilege-separation directory, as the package's service would make it.
        let _ = std::fs::create_dir_all("/run/sshd");
    }

    /// Starts sshd in host `i`'s namespace and waits until it listens.
    fn start_sshd(&self, i: usize) -> Child {
        let d = &self.dir.0;
        let cfg = d.join(format!("sshd{i}.conf"));
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress {NET}.{i}\nPort 22\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile none\nStrictModes no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n",
                d.join("hostkey").display(),
                d.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let mut child = self
            .command_in(&format!("n{i}"), std::path::Path::new(SSHD))
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sshd");
        self.follow(child.stderr.take().unwrap(), format!("sshd{i}.log"), "Server listening on");
        child
    }

    /// Copies `err` into the log file `name`, and returns once a line holds `ready`.
    fn follow(&self, err: std::process::ChildStderr, name: String, ready: &'static str) {
        let log = self.dir.0.join(name);
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(&log).unwrap();
            let mut tx = Some(tx);
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if line.contains(ready) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("{ready}: not seen"));
    }

    /// The `BANK_SSH` command the master uses to reach the lab's sshd.
    pub fn ssh_command(&self) -> String {
        format!("ssh -F {}", self.dir.0.join("ssh_config").display())
    }

    /// The processes in host `i`'s namespace whose command line names bank-master (an
    /// agent an ssh session started, and its nodes).
    pub fn bank_processes_in(&self, i: usize) -> Vec<u32> {
        use std::os::unix::fs::MetadataExt;
        let path = format!("/var/run/netns/{}", self.ns(&format!("n{i}")));
        let ino = std::fs::metadata(path).expect("the namespace").ino();
        let want = format!("net:[{ino}]");
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(ns) = std::fs::read_link(e.path().join("ns/net")) else { continue };
            if ns.to_string_lossy() != want {
                continue;
            }
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if !is_zombie(pid) && String::from_utf8_lossy(&cmd).contains("bank-master") {
                out.push(pid);
            }
        }
        out
    }

    /// What agent `i` logged so far.
    pub fn agent_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.0.join(format!("agent{i}.log"))).unwrap_or_default()
    }

    /// Agent `i`'s pid.
    pub fn agent_pid(&self, i: usize) -> u32 {
        self.agents[i - 1].as_ref().expect("running").id()
    }

    /// The processes agent `i` started that still run (its nodes).
    pub fn nodes_on(&self, i: usize) -> Vec<u32> {
        children_of(self.agent_pid(i))
    }

    /// A command run in namespace `which`.
    pub fn command_in(&self, which: &str, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(which)]).arg(program);
        cmd
    }

    /// The master on `file` (or stdin) with the lab's hosts, `--seed seed` and `args`.
    pub fn run(&self, seed: u64, args: &[&str], stdin: Option<&str>, limit: Duration) -> Run {
        let mut cmd = self.master_command(seed, args);
        cmd.env("RUST_LOG", "warn");
        run_command(cmd, stdin, limit)
    }

    /// The master's command line, to start it by hand.
    pub fn master_command(&self, seed: u64, args: &[&str]) -> Command {
        let mut cmd = self.command_in("m", &bin());
        cmd.arg("--hosts").arg(&self.hosts_file).arg("--key").arg(&self.key);
        if !self.ssh.is_empty() {
            cmd.env("BANK_SSH", self.ssh_command());
        }
        cmd.args(["--seed", &seed.to_string()]).args(args);
        cmd
    }

    /// Adds an nftables rule on the switch (`iifname`/`oifname` take port names from
    /// [`Lab::port`]).
    pub fn rule(&self, rule: &str) {
        let mut args = vec!["ip", "netns", "exec"];
        let sw = self.ns("sw");
        args.push(&sw);
        let words: Vec<&str> = rule.split_whitespace().collect();
        args.extend(["nft", "add", "rule", "bridge", &self.prefix, "xfer"]);
        args.extend(words);
        must(&args);
    }

    /// `pct` % random loss on every port of the switch.
    pub fn loss_everywhere(&self, pct: u32) {
        let mut tags: Vec<String> = (1..=self.hosts).map(|i| format!("n{i}")).collect();
        tags.push("m".into());
        for t in tags {
            self.rule(&format!("oifname {} numgen random mod 100 < {pct} drop", self.port(&t)));
        }
    }

    /// Removes every rule.
    pub fn heal(&self) {
        must(&[
            "ip",
            "netns",
            "exec",
            &self.ns("sw"),
            "nft",
            "flush",
            "chain",
            "bridge",
            &self.prefix,
            "xfer",
        ]);
    }

    /// The switch port of member `tag` (`n1`, `m`, `s`).
    pub fn port(&self, tag: &str) -> String {
        format!("{}p{tag}", self.prefix)
    }

    /// Cuts member `tag` off (its switch port down) or brings it back.
    pub fn cable(&self, tag: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        must(&["ip", "-n", &self.ns("sw"), "link", "set", &self.port(tag), state]);
    }

    /// Runs `f` on a thread inside namespace `which` (for a stranger's connections).
    pub fn in_ns<T: Send + 'static>(
        &self,
        which: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/var/run/netns/{}", self.ns(which));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open the namespace");
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("the namespace thread")
    }
}

/// The children of process `pid` (every thread's) that still run: an exited child its
/// parent has not reaped yet (a zombie, for the moment between the two) is not counted.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in tasks.flatten() {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|w| w.parse::<u32>().ok()));
    }
    out.retain(|&c| !is_zombie(c));
    out
}

/// Whether process `pid` has exited and waits to be reaped (or is gone).
pub fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().is_none_or(|r| r.trim_start().starts_with('Z') || r.is_empty())
}

/// Waits (at most `limit`) until process `pid` has exited: true if it did. Waits on a
/// pidfd, not by polling.
pub fn wait_exit(pid: u32, limit: Duration) -> bool {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid as nix::libc::c_int, 0) };
    if fd < 0 {
        return true; // no such process: it is gone
    }
    // SAFETY: a new fd this function owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut fds =
        [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&fd), nix::poll::PollFlags::POLLIN)];
    let ms = nix::poll::PollTimeout::try_from(limit).unwrap_or(nix::poll::PollTimeout::MAX);
    matches!(nix::poll::poll(&mut fds, ms), Ok(n) if n > 0)
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mut d in self.sshds.drain(..) {
            let _ = d.kill();
            let _ = d.wait();
        }
        for a in self.agents.iter_mut() {
            if let Some(mut c) = a.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let mut tags: Vec<String> = (1..=self.hosts).map(|i| format!("n{i}")).collect();
        tags.extend(["m".to_string(), "s".to_string(), "sw".to_string()]);
        for t in tags {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(&t)]).status();
        }
    }
}
