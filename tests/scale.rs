//! Many nodes (issue 10, defect 3): a gathered snapshot of more than 500 nodes is larger
//! than one frame (it used to panic the observer's codec), and a run says how many nodes
//! fit when the limit of open files is too low. `SCALE_NODES=1024 cargo test --release
//! --test scale` runs the big case with that many nodes.

mod util;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::check::parse_blocks;

fn mesh_script(n: u64) -> String {
    let mut text = String::from("StartMaster\n");
    for i in 1..=n {
        text.push_str(&format!("CreateNode {i} {i}\n"));
    }
    text.push_str(&format!(
        "Send {n} 1 {n}\nBeginSnapshot 1\nReceiveAll\nCollectState\nPrintSnapshot\n"
    ));
    text
}

// 520 nodes (or SCALE_NODES): create, snapshot, drain, collect, print; the snapshot holds
// every node and channel and all the money.
#[test]
fn a_snapshot_of_hundreds_of_nodes_is_gathered_whole() {
    let n: u64 = std::env::var("SCALE_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(520);
    let t = Instant::now();
    let run = util::run_with(&["--seed", "1"], Some(&mesh_script(n)), Duration::from_secs(600));
    eprintln!("{n} nodes: {:.1?}", t.elapsed());
    assert_eq!(run.status, 0, "{}", run.stderr);
    let blocks = parse_blocks(&run.stdout);
    assert_eq!(blocks.len(), 1);
    let b = &blocks[0];
    assert_eq!((b.nodes.len() as u64, b.channels.len() as u64), (n, n * (n - 1)));
    let total: u64 =
        b.nodes.iter().map(|x| x.1).sum::<u64>() + b.channels.iter().map(|c| c.2).sum::<u64>();
    assert_eq!(total, n * (n + 1) / 2);
}

// With few open files allowed, a CreateNode that would not fit is refused and says how
// many fit and why; the nodes that fit work.
#[test]
fn too_few_open_files_says_how_many_nodes_fit() {
    let mut text = mesh_script(80);
    text.push_str("Balances\n");
    let mut cmd = Command::new(util::bin());
    cmd.args(["--seed", "1"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = nix::libc::rlimit { rlim_cur: 256, rlim_max: 256 };
            if nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fit = bank::process::nodes_that_fit(256);
    let first = format!(
        "error: line {}: CreateNode {} {}: {fit} nodes is the most",
        fit + 2,
        fit + 1,
        fit + 1
    );
    assert!(stderr.starts_with(&first), "{stderr}");
    assert!(stderr.contains("each process may open 256 files (ulimit -n)"), "{stderr}");
    assert_eq!(out.status.code(), Some(1));
    let balances = stdout.lines().filter(|l| l.starts_with("node ")).count() as u64;
    assert!(balances >= fit, "{stdout}");
}
