//! Random fault scripts on the real binary (`util::faults`): every run must end by itself
//! within seconds, reject only the lines it may, keep every `Check` from failing, end with
//! `CHECK OK` and balances that add up once every node is up, and leave a trace that
//! replays through the snapshot checker.
//!
//! `FAULT_SCRIPTS=10000 cargo test --release --test faults` runs more (300 by default);
//! `FAULT_SCRIPT=n` replays one and prints it.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use util::faults::{fault_script, judge};
use util::{run_with, TempDir};

/// Lines per script.
const LENGTH: usize = 80;

/// Seeds of scripts that found a bug (see the commits that fixed them).
const REGRESSIONS: [u64; 3] = [636, 2843, 7367];

#[test]
fn random_fault_scripts_end_and_balance() {
    let mut seeds = util::seeds("FAULT_SCRIPT", "FAULT_SCRIPTS", 300);
    if std::env::var_os("FAULT_SCRIPT").is_none() {
        // Scripts that once failed, beyond the first 300: a held channel splitting 3PC
        // (636), transfers PENDING for ever after a Paxos Commit coordinator's restart
        // (2843, 7367).
        seeds.extend(REGRESSIONS.iter().filter(|s| !seeds.contains(s)).collect::<Vec<_>>());
    }
    let tmp = TempDir::new("fault-scripts");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let slowest = Mutex::new((Duration::ZERO, 0u64));
    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { return };
                if !failures.lock().unwrap().is_empty() {
                    return;
                }
                let script = fault_script(seed, LENGTH);
                let file = tmp.0.join(format!("faults-{seed}.txt"));
                let trace = tmp.0.join(format!("faults-{seed}.trace"));
                std::fs::write(&file, &script.text).unwrap();
                let seed_s = seed.to_string();
                let args = [
                    "--seed",
                    &seed_s,
                    "--watchdog",
                    "5",
                    "--trace",
                    trace.to_str().unwrap(),
                    file.to_str().unwrap(),
                ];
                let t = Instant::now();
                let run = run_with(&args, None, Duration::from_secs(60));
                let took = t.elapsed();
                {
                    let mut slow = slowest.lock().unwrap();
                    if took > slow.0 {
                        *slow = (took, seed);
                    }
                }
                let verdict = judge(&script, &run.stdout, &run.stderr, run.status)
                    .and_then(|()| util::check_trace(&trace, &run.stdout, false).map(|_| ()));
                if seeds.len() == 1 {
                    eprintln!(
                        "--- script\n{}--- stdout\n{}--- stderr\n{}--- end",
                        script.text, run.stdout, run.stderr
                    );
                }
                let _ = std::fs::remove_file(&file);
                let _ = std::fs::remove_file(&trace);
                if let Err(why) = verdict {
                    failures.lock().unwrap().push(format!(
                        "fault script {seed} (FAULT_SCRIPT={seed} replays it): {why}\n{}\n\
                         --- stdout\n{}--- stderr\n{}",
                        script.text, run.stdout, run.stderr
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let (slow, slow_seed) = *slowest.lock().unwrap();
    eprintln!(
        "fault scripts: {} in {:.1?}, the slowest {slow:.1?} (seed {slow_seed})",
        seeds.len(),
        started.elapsed()
    );
    if let Some(first) = failures.first() {
        panic!("{first}");
    }
}
