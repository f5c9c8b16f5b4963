//! What the benchmarks measure the same way: medians and percentiles, the disk's price
//! of one promise (a 64-byte record forced with fdatasync), the baseline of every figure
//! that waits for a force; and the comparison with an older commit's build
//! (`BENCH_BASELINE`, see [`Bins`]): its release binary built once in a `git worktree`,
//! both binaries timed on the same inputs, run by run in turn, and every figure printed
//! beside its baseline with a verdict against 5% worse.

// Each bench compiles this module for itself and uses part of it.
#![allow(dead_code)]

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The binaries a bench times: this build's, and, with `BENCH_BASELINE=<commit>`, that
/// commit's release build.
///
/// With a baseline, both are timed from copies made for this run in the same way
/// (`bench-baseline/run-<pid>/`, removed at the end): a file as the linker wrote it
/// sits in the page cache differently from a copied one, and took about 10% more page
/// faults to start here, which is not a difference between the commits.
pub struct Bins {
    /// This build's `bank-master` (or its copy).
    pub new: PathBuf,
    /// The baseline's, if `BENCH_BASELINE` names a commit that built.
    pub base: Option<Baseline>,
    /// The copies' directory, removed on drop.
    run_dir: Option<PathBuf>,
}

impl Drop for Bins {
    fn drop(&mut self) {
        if let Some(d) = &self.run_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Bins {
    /// This build's binary and, if `BENCH_BASELINE` is set, the baseline's (built now, or
    /// taken from the cache of an earlier run). A baseline that cannot be had is reported
    /// on stdout and left out: the bench goes on with its own figures.
    pub fn from_env() -> Bins {
        let new = PathBuf::from(env!("CARGO_BIN_EXE_bank-master"));
        let mut bins = Bins { new, base: None, run_dir: None };
        let rev = match std::env::var("BENCH_BASELINE") {
            Ok(rev) if !rev.trim().is_empty() => rev.trim().to_string(),
            _ => return bins,
        };
        let got = Baseline::get(&rev).and_then(|mut b| {
            let dir = cache_dir().join(format!("run-{}", std::process::id()));
            bins.run_dir = Some(dir.clone());
            let copy = |from: &Path, name: &str| {
                std::fs::create_dir_all(&dir)
                    .and_then(|_| std::fs::copy(from, dir.join(name)))
                    .map(|_| dir.join(name))
                    .map_err(|e| {
                        format!("cannot copy {} into {}: {e}", from.display(), dir.display())
                    })
            };
            b.bin = copy(&b.bin, "baseline")?;
            bins.new = copy(&bins.new, "new")?;
            Ok(b)
        });
        match got {
            Ok(b) => {
                println!(
                    "baseline: {} = {} ({}), timed from {}",
                    b.rev,
                    b.short(),
                    b.subject,
                    b.bin.display()
                );
                bins.base = Some(b);
            }
            Err(why) => {
                println!("baseline: BENCH_BASELINE={rev}: {why}; no comparison in this run");
                bins.new = PathBuf::from(env!("CARGO_BIN_EXE_bank-master"));
            }
        }
        bins
    }

    /// The baseline's binary, if any.
    pub fn base_bin(&self) -> Option<&Path> {
        self.base.as_ref().map(|b| b.bin.as_path())
    }

    /// `runs` results of `f` on the new binary and as many on the baseline's (none
    /// without one), taken in turn (new, base, base, new, new, base, …), so both see the
    /// same moments of a noisy machine and neither always goes first.
    pub fn paired<T>(&self, runs: usize, mut f: impl FnMut(&Path) -> T) -> (Vec<T>, Vec<T>) {
        let (mut new, mut base) = (Vec::new(), Vec::new());
        for i in 0..runs {
            match self.base_bin() {
                None => new.push(f(&self.new)),
                Some(b) if i % 2 == 0 => {
                    new.push(f(&self.new));
                    base.push(f(b));
                }
                Some(b) => {
                    base.push(f(b));
                    new.push(f(&self.new));
                }
            }
        }
        (new, base)
    }
}

/// An older commit's release build, to compare against (`BENCH_BASELINE=<rev>`).
///
/// Built once per commit: `git worktree add --detach` of the commit under
/// `CARGO_TARGET_TMPDIR/bench-baseline/`, a release build there with a target directory
/// of its own that later baselines reuse (so the dependencies compile once), the binary
/// copied to `bench-baseline/<commit>/bank-master`, and the worktree removed (`git
/// worktree remove`) whether the build worked or not. Later bench binaries and later runs
/// find the copy and build nothing. A worktree left by a bench that was killed is
/// removed, and pruned, by the next one.
///
/// The build is `cargo build --profile bench --bin bank-master --bench e2e`: the binary
/// as `cargo bench` builds this side's. A bench target brings in the dev-dependencies,
/// whose features change how tokio, libc and serde are built (resolver 2), so a plain
/// `cargo build --release` gives a different binary than the one it is held against.
/// A commit without an `e2e` bench is built with `--release` alone, and says so.
pub struct Baseline {
    /// What `BENCH_BASELINE` said.
    pub rev: String,
    /// The full commit hash.
    pub commit: String,
    /// Its subject line.
    pub subject: String,
    /// Its `bank-master`.
    pub bin: PathBuf,
}

impl Baseline {
    /// The first 9 digits of the commit.
    pub fn short(&self) -> &str {
        &self.commit[..9.min(self.commit.len())]
    }

    /// Resolves `rev`, and builds its binary unless an earlier run did.
    ///
    /// # Errors
    /// Why there is no baseline: `rev` is not a commit, git or the build failed.
    fn get(rev: &str) -> Result<Baseline, String> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let commit =
            git(&repo, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
                .map_err(|_| "not a commit of this repository".to_string())?;
        let subject = git(&repo, &["log", "-1", "--format=%s", &commit]).unwrap_or_default();
        let subject = subject.chars().take(60).collect();
        let cache = cache_dir();
        remove_stale_worktrees(&repo, &cache);
        let bin = cache.join(&commit).join("bank-master");
        let b = Baseline { rev: rev.to_string(), commit, subject, bin };
        if !b.bin.exists() {
            b.build(&repo, &cache)?;
        }
        Ok(b)
    }

    fn build(&self, repo: &Path, cache: &Path) -> Result<(), String> {
        std::fs::create_dir_all(cache)
            .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
        let tree = Worktree::add(
            repo,
            &cache.join(format!("worktree-{}", std::process::id())),
            &self.commit,
        )?;
        let log = cache.join(format!("build-{}.log", self.short()));
        println!(
            "baseline: building {} in {} (once; its log: {})",
            self.short(),
            tree.path.display(),
            log.display()
        );
        let target = cache.join("target");
        std::fs::File::create(&log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let build = |args: &[&str]| -> Result<(), String> {
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let mut cmd = Command::new(&cargo);
            cmd.args(args)
                .current_dir(&tree.path)
                .env("CARGO_TARGET_DIR", &target)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let (status, int) =
                run_interruptible(cmd).map_err(|e| format!("cannot run cargo: {e}"))?;
            if let Interrupted::Yes = int {
                return Err(INTERRUPTED.into());
            }
            if !status.success() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!("the build failed ({status}):\n  {}", tail.join("\n  ")));
            }
            Ok(())
        };
        let has_e2e = std::fs::read_to_string(tree.path.join("Cargo.toml"))
            .is_ok_and(|t| t.contains("name = \"e2e\""));
        let built = if has_e2e {
            build(&["build", "--profile", "bench", "--bin", "bank-master", "--bench", "e2e"])
        } else {
            println!("baseline: no e2e bench at {}: built with --release alone", self.short());
            build(&["build", "--release", "--bin", "bank-master"])
        };
        if let Err(why) = built {
            if why == INTERRUPTED {
                drop(tree);
                println!("baseline: build interrupted; worktree removed");
                std::process::exit(130);
            }
            return Err(why);
        }
        let dir = self.bin.parent().expect("a directory per commit");
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        // Copied, then renamed: another bench never sees half a binary.
        let part = dir.join(format!("bank-master.part-{}", std::process::id()));
        std::fs::copy(target.join("release/bank-master"), &part)
            .and_then(|_| std::fs::rename(&part, &self.bin))
            .map_err(|e| format!("cannot keep the built binary: {e}"))?;
        Ok(())
    }
}

/// What a build stopped by Ctrl-C reports.
const INTERRUPTED: &str = "interrupted";

/// Whether a child was ended by an interrupt (the terminal's Ctrl-C goes to the whole
/// process group: cargo and this bench).
enum Interrupted {
    Yes,
    No,
}

/// Runs `cmd` to its end with SIGINT ignored in this process (and left at its default in
/// the child), so that a Ctrl-C during the build ends the build, and this process lives on
/// to remove the worktree before it exits.
fn run_interruptible(mut cmd: Command) -> std::io::Result<(std::process::ExitStatus, Interrupted)> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    // SAFETY: SIG_IGN and SIG_DFL install no handler; the closure runs between fork and
    // exec and only calls signal(2), which is async-signal-safe.
    let before =
        unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) }.map_err(std::io::Error::from)?;
    unsafe {
        cmd.pre_exec(|| {
            signal(Signal::SIGINT, SigHandler::SigDfl).map(|_| ()).map_err(std::io::Error::from)
        });
    }
    let status = cmd.status();
    // SAFETY: puts back what was there (the default, in a bench).
    let _ = unsafe { signal(Signal::SIGINT, before) };
    let status = status?;
    let int = if status.signal() == Some(Signal::SIGINT as i32) {
        Interrupted::Yes
    } else {
        Interrupted::No
    };
    Ok((status, int))
}

/// A detached worktree of the repository, removed (and pruned) on drop.
struct Worktree {
    repo: PathBuf,
    path: PathBuf,
}

impl Worktree {
    fn add(repo: &Path, path: &Path, commit: &str) -> Result<Worktree, String> {
        let p = path.to_str().ok_or("a temporary path that is not UTF-8")?;
        git(repo, &["worktree", "add", "--detach", "--quiet", p, commit])?;
        Ok(Worktree { repo: repo.to_path_buf(), path: path.to_path_buf() })
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let p = self.path.to_string_lossy().into_owned();
        if git(&self.repo, &["worktree", "remove", "--force", &p]).is_err() {
            let _ = std::fs::remove_dir_all(&self.path);
            let _ = git(&self.repo, &["worktree", "prune"]);
        }
    }
}

/// Where baselines are built and kept: `CARGO_TARGET_TMPDIR/bench-baseline`.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-baseline")
}

/// Removes what benches that were killed left (a worktree, copies of binaries: their pid
/// is gone), and prunes git's record of the worktrees.
fn remove_stale_worktrees(repo: &Path, cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else { return };
    let mut any = false;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((kind, pid)) = name.split_once('-') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if matches!(kind, "worktree" | "run") && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
            any |= kind == "worktree";
        }
    }
    if any {
        let _ = git(repo, &["worktree", "prune"]);
    }
}

/// `git -C repo args`, its stdout trimmed.
fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Which way a figure gets worse.
#[derive(Clone, Copy)]
pub enum Better {
    /// A time: more is worse.
    Lower,
    /// A rate: less is worse.
    Higher,
}

/// A figure and its baseline: the medians of the same number of runs, taken in turn, and
/// the ratios of the runs taken side by side.
pub struct Row {
    name: String,
    unit: &'static str,
    better: Better,
    new: f64,
    base: f64,
    /// new / baseline of each pair of runs taken one after the other: the median, and the
    /// quartiles (the noise).
    ratio: (f64, f64, f64),
    runs: usize,
    note: String,
}

/// The figures a bench compared with the baseline, printed together at its end.
#[derive(Default)]
pub struct Comparison {
    rows: Vec<Row>,
}

/// How much worse a figure may get: 5%.
pub const WORSE_AT_MOST: f64 = 1.05;

impl Comparison {
    /// Adds a figure, from the runs of [`Bins::paired`] (nothing without a baseline):
    /// `new[i]` and `base[i]` were taken one right after the other.
    pub fn add(
        &mut self,
        name: &str,
        unit: &'static str,
        better: Better,
        new: &[f64],
        base: &[f64],
    ) {
        self.add_noted(name, unit, better, new, base, String::new());
    }

    /// Adds a figure with a note (e.g. whether both printed the same stdout).
    pub fn add_noted(
        &mut self,
        name: &str,
        unit: &'static str,
        better: Better,
        new: &[f64],
        base: &[f64],
        note: String,
    ) {
        let runs = new.len().min(base.len());
        if runs == 0 {
            return;
        }
        // A run's ratio to its neighbour, not the ratio of the two medians: on a machine
        // whose load comes and goes, two runs taken one after the other see the same
        // load, and the median of their ratios does not jump with it.
        let mut ratios: Vec<f64> = new.iter().zip(base).map(|(n, b)| n / b).collect();
        ratios.sort_by(f64::total_cmp);
        let q = |p: usize| ratios[(ratios.len() * p / 100).min(ratios.len() - 1)];
        self.rows.push(Row {
            name: name.to_string(),
            unit,
            better,
            new: median_f(new.to_vec()),
            base: median_f(base.to_vec()),
            ratio: (q(50), q(25), q(75)),
            runs,
            note,
        });
    }

    /// Prints every figure beside its baseline: the medians, the median of the ratios of
    /// the runs taken side by side (with their quartiles), and the verdict: `ok` when that
    /// says at most 5% worse, `better` when more than 5% better, else `WORSE`.
    pub fn print(&self, bins: &Bins) {
        let Some(b) = &bins.base else { return };
        println!(
            "against the baseline {} ({}): medians of runs taken in turn; new/base is the \
             median [quartiles] of each run's ratio to the baseline's run beside it; \
             verdict: at most {:.0}% worse",
            b.short(),
            b.rev,
            (WORSE_AT_MOST - 1.0) * 100.0
        );
        println!(
            "{:44} {:>4} {:>13} {:>13} {:>22}  verdict",
            "figure", "N", "new", "baseline", "new/base [quartiles]"
        );
        let mut worse = 0;
        for r in &self.rows {
            let (ratio, lo, hi) = r.ratio;
            // How much worse: a time that grew, a rate that fell.
            let worse_by = match r.better {
                Better::Lower => ratio,
                Better::Higher => 1.0 / ratio,
            };
            let verdict = if !worse_by.is_finite() {
                "n/a"
            } else if worse_by > WORSE_AT_MOST {
                worse += 1;
                "WORSE"
            } else if worse_by < 1.0 / WORSE_AT_MOST {
                "better"
            } else {
                "ok"
            };
            let dir = match r.better {
                Better::Lower => "",
                Better::Higher => " (higher is better)",
            };
            println!(
                "{:44} {:>4} {:>10} {:<2} {:>10} {:<2} {:>7.3} [{:.2}-{:.2}]  {verdict}{dir}{}",
                r.name,
                r.runs,
                fmt_figure(r.new),
                r.unit,
                fmt_figure(r.base),
                r.unit,
                ratio,
                lo,
                hi,
                if r.note.is_empty() { String::new() } else { format!("; {}", r.note) }
            );
        }
        println!(
            "{} figures compared: {} more than {:.0}% worse",
            self.rows.len(),
            worse,
            (WORSE_AT_MOST - 1.0) * 100.0
        );
    }
}

fn fmt_figure(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A master reading commands from a pipe: the child, its input, its output by lines.
pub fn piped_master(bin: &Path) -> (Child, ChildStdin, BufReader<ChildStdout>) {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bank-master");
    let input = child.stdin.take().expect("piped");
    let output = BufReader::new(child.stdout.take().expect("piped"));
    (child, input, output)
}

/// 200 forced 64-byte writes on a fresh file in `tmp`, with `fdatasync`: each appended
/// (the file grows, so the force writes its size too), or (`ahead`) each overwriting
/// zeros written and forced beforehand.
pub fn fsync_costs(tmp: &Path, ahead: bool) -> Vec<Duration> {
    use std::os::unix::fs::FileExt;
    let n = 200;
    let mut log = Appender::new(tmp, if ahead { "ahead.dat" } else { "append.dat" });
    if ahead {
        log.file.write_all_at(&vec![0u8; 64 * n], 0).expect("zeros");
        log.file.sync_all().expect("sync");
    }
    (0..n).map(|_| log.force(true)).collect()
}

/// A file that grows by one 64-byte record per [`Appender::force`], as a log without
/// space written ahead would: the baseline the latency targets name.
pub struct Appender {
    file: std::fs::File,
    path: std::path::PathBuf,
    len: u64,
}

impl Appender {
    /// A fresh file `name` in `tmp`, removed on drop.
    pub fn new(tmp: &Path, name: &str) -> Appender {
        let path = tmp.join(name);
        let file = std::fs::File::create(&path).expect("create");
        Appender { file, path, len: 0 }
    }

    /// Appends one 64-byte record and forces it: `fsync`, or `fdatasync` when `data_only`.
    /// Returns how long both took.
    pub fn force(&mut self, data_only: bool) -> Duration {
        use std::os::unix::fs::FileExt;
        let t = Instant::now();
        self.file.write_all_at(&[7u8; 64], self.len).expect("write");
        if data_only {
            self.file.sync_data().expect("fdatasync");
        } else {
            self.file.sync_all().expect("fsync");
        }
        self.len += 64;
        t.elapsed()
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The `p`-th percentile.
pub fn percentile(mut v: Vec<Duration>, p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

/// The median.
pub fn median(v: Vec<Duration>) -> Duration {
    percentile(v, 50)
}

/// In milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `load` on `n` nodes in live mode `runs` times (and as many on the baseline's
/// binary, in turn), after the command lines `setup`; `pick` reads the figure from the
/// LOAD line.
pub fn figure(
    bins: &Bins,
    tmp: &Path,
    n: usize,
    setup: &str,
    load: &str,
    runs: usize,
    pick: fn(&str) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let file = tmp.join(format!("live{n}.txt"));
    let mut text = String::from("StartMaster\n");
    for i in 1..=n {
        text.push_str(&format!("CreateNode {i} 1000000000\n"));
    }
    text.push_str(&format!("{setup}Live on\n{load}\nCheck\n"));
    std::fs::write(&file, text).expect("write");
    bins.paired(runs, |bin| {
        let out = Command::new(bin)
            .args(["--seed", "1"])
            .arg(&file)
            .stderr(Stdio::null())
            .output()
            .expect("run bank-master");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("CHECK OK"), "{load} on {n} nodes: {stdout}");
        let line = stdout.lines().find(|l| l.starts_with("LOAD ")).expect("a LOAD line");
        pick(line)
    })
}

pub fn field(line: &str, name: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

pub fn per_s(line: &str) -> f64 {
    field(line, "per_s=")
}

pub fn committed_per_s(line: &str) -> f64 {
    field(line, "committed=") / (field(line, "elapsed_ms=").max(1.0) / 1000.0)
}

pub fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
