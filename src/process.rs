//! Child processes: start them, tie their life to the master's, end them.
//!
//! A child's first act is [`die_with_parent`]: the kernel SIGKILLs it when the master dies
//! (even by SIGKILL), and the `getppid` check closes the race where the master died
//! before the request was made. Children are spawned from the master's main thread only,
//! because PDEATHSIG fires when the *thread* that forked the child exits.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io;
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

/// Starts this binary with `args` (a hidden role), stdin and stdout closed: only the
/// master writes stdout. stderr is inherited so that logs reach the user.
///
/// # Errors
/// The spawn failed.
pub fn spawn_self(args: &[String]) -> io::Result<Child> {
    Command::new(self_exe())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
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

/// Whether `child` has exited (it is reaped if so).
pub fn has_exited(child: &Child) -> bool {
    let pid = Pid::from_raw(child.id() as i32);
    !matches!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Ok(WaitStatus::StillAlive))
}
