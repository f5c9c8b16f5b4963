//! Child processes: start them, tie their life to the master's, end them.
//!
//! The parent-death signal is armed between fork and exec ([`spawn_self`]) and again by
//! the child's first act, [`die_with_parent`]: the kernel SIGKILLs a child when the master
//! dies (even by SIGKILL), and the `getppid` check closes the race where the master died
//! before the fork. Children are spawned from the master's main thread only,
//! because PDEATHSIG fires when the *thread* that forked the child exits.

use crate::cli::ChildRole;
use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// Asks the kernel to SIGKILL this process when its parent dies, then checks that the
/// parent is still `parent`; exits at once if it is not (the master already died).
///
/// # Errors
/// The `prctl` call failed.
pub fn die_with_parent(parent: u32) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        std::process::exit(0);
    }
    Ok(())
}

/// The executable to re-run for a child role: this very binary, through procfs so that
/// a binary rebuilt during the run still starts the same code.
pub fn self_exe() -> std::path::PathBuf {
    let proc_exe = std::path::PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        proc_exe
    } else {
        std::env::current_exe().unwrap_or(proc_exe)
    }
}

/// The environment variable that carries the cluster key (SPEC chapter 10).
pub const KEY_ENV: &str = "BANK_KEY";

/// The fd a child finds its control link on.
pub const CONTROL_FD: RawFd = 3;
/// The fd a child finds its listener on.
pub const LISTEN_FD: RawFd = 4;
/// The fd a node finds its write-ahead log on.
pub const WAL_FD: RawFd = 5;

/// Starts this binary in a child `role` (passed in the environment; its arguments are
/// only what `ps` shows: `bank-master node 3`), with `control` as fd 3, `listener` as fd 4
/// and `wal` (if any) as fd 5, stdin and stdout closed (only the master writes stdout),
/// stderr inherited so that logs reach the user. The parent-death signal is armed before
/// the child's `exec`, so a master killed at any moment takes the child with it.
///
/// # Errors
/// The spawn failed.
pub fn spawn_self(
    role: &ChildRole,
    control: Option<OwnedFd>,
    listener: OwnedFd,
    wal: Option<&std::fs::File>,
    key: Option<&crate::transport::noise::Key>,
) -> io::Result<Child> {
    let l = listener.as_raw_fd();
    let c = control.as_ref().map_or(-1, |c| c.as_raw_fd());
    let w = wal.map_or(-1, |f| f.as_raw_fd());
    let mut cmd = Command::new(self_exe());
    cmd.arg0("bank-master")
        .args(role.display_args())
        .env(ChildRole::ENV, role.to_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(key) = key {
        // The environment, not the arguments: /proc/PID/environ is the owner's only.
        cmd.env(KEY_ENV, key.to_hex());
    }
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (fcntl, dup2, close, prctl) on fds it owns.
    unsafe {
        cmd.pre_exec(move || {
            // Any fd may already sit at 3, 4 or 5: move them all above 9 first.
            let c2 = if c >= 0 { libc::fcntl(c, libc::F_DUPFD, 10) } else { 0 };
            let l2 = libc::fcntl(l, libc::F_DUPFD, 10);
            let w2 = if w >= 0 { libc::fcntl(w, libc::F_DUPFD, 10) } else { 0 };
            if c2 < 0
                || l2 < 0
                || w2 < 0
                || (c >= 0 && libc::dup2(c2, CONTROL_FD) < 0)
                || libc::dup2(l2, LISTEN_FD) < 0
                || (w >= 0 && libc::dup2(w2, WAL_FD) < 0)
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0
            {
                return Err(io::Error::last_os_error());
            }
            if c >= 0 {
                libc::close(c2);
            }
            libc::close(l2);
            if w >= 0 {
                libc::close(w2);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The write-ahead log a node inherited from [`spawn_self`].
///
/// # Safety
/// Call once, in a node started by [`spawn_self`] (the master always passes one): fd 5
/// is then that file.
pub unsafe fn inherited_wal() -> std::fs::File {
    // SAFETY: per this function's contract.
    unsafe { std::fs::File::from_raw_fd(WAL_FD) }
}

/// The control link (if `control`: a child started with one) and listener a child
/// inherited from [`spawn_self`].
///
/// # Safety
/// Call once, in a child started by [`spawn_self`] (with a control link iff `control`):
/// fds 3 and 4 are then sockets that nothing else in the process owns.
pub unsafe fn inherited_fds(control: bool) -> (Option<OwnedFd>, OwnedFd) {
    // SAFETY: per this function's contract.
    unsafe { (control.then(|| OwnedFd::from_raw_fd(CONTROL_FD)), OwnedFd::from_raw_fd(LISTEN_FD)) }
}

/// SIGKILLs every child and waits for each, so no process or zombie is left.
pub fn kill_and_reap(children: &mut Vec<Child>) {
    for c in children.iter() {
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
    }
    for mut c in children.drain(..) {
        let _ = c.wait();
    }
}

/// Raises this process's soft limit on open files to its hard limit (children inherit
/// it), and returns the limit now in force. A mesh of N nodes needs about 3N open files
/// in the master and 2N in each node.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return 1024 };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// How many nodes a run can hold when every process may open `limit` files: the master
/// keeps a link (two descriptors) and a log per node, a node two descriptors per peer,
/// and each has a few more of its own.
pub fn nodes_that_fit(limit: u64) -> u64 {
    limit.saturating_sub(32) / 3
}
