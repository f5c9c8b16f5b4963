//! Replays a `--trace` file through the test suite's snapshot checker and holds the
//! snapshots printed in a run's stdout against it:
//! `cargo run --example check_trace -- TRACE [STDOUT]`. Prints `ok` or what is wrong.

#[path = "../tests/util/check.rs"]
#[allow(dead_code)]
mod check;

use check::{parse_blocks, parse_trace_line, Checker};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(trace) = args.first() else {
        eprintln!("usage: check_trace TRACE [STDOUT]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(trace).expect("read the trace");
    let mut c = Checker::new();
    for (i, line) in text.lines().enumerate() {
        let ev = parse_trace_line(line).unwrap_or_else(|e| fail(&format!("line {}: {e}", i + 1)));
        c.on_event(ev).unwrap_or_else(|e| fail(&format!("line {}: {e}", i + 1)));
    }
    if let Some(out) = args.get(1) {
        let stdout = std::fs::read_to_string(out).expect("read stdout");
        let mut next = 0;
        for (i, got) in parse_blocks(&stdout).iter().enumerate() {
            match c.collected.get(next) {
                Some(Ok(want)) if want == got => next += 1,
                Some(Err(e)) => fail(&format!("gathered {next}: {e}")),
                _ if c.collected[..next].iter().any(|w| w.as_ref().ok() == Some(got)) => {}
                want => fail(&format!("block {i} printed {got:?}\nexpected {want:?}")),
            }
        }
    }
    println!("ok ({} events)", c.events);
}

fn fail(why: &str) -> ! {
    println!("FAILED {why}");
    std::process::exit(1);
}
