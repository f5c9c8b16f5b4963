//! `bank-master draw` (SPEC chapter 9) on real traces: golden SVG files for small runs,
//! structural checks on every `testcases/` run (one arrow per delivery, one cut per
//! snapshot, the money where each cut crosses an arrow equal to what the snapshot
//! recorded, no arrow going up), the ShiViz rules on every export, and a self-contained
//! page.
//!
//! `BLESS=1 cargo test --test draw` rewrites `tests/golden/draw/*.svg`.

mod util;

use bank::draw::shiviz;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use util::check::{parse_trace_line, Checker};
use util::{run_file, run_with, shared, TempDir};

/// Runs a command file with `--trace` and returns the trace.
fn trace_of(file: &Path, seed: u64, dir: &Path) -> PathBuf {
    let name = file.file_stem().unwrap().to_string_lossy().to_string();
    let trace = dir.join(format!("{name}.trace"));
    let run = run_file(file, seed, &["--trace", trace.to_str().unwrap()]);
    assert!(run.status <= 1, "{name}: {}", run.stderr);
    trace
}

/// `bank-master draw TRACE -o OUT`, returning what it wrote.
fn draw(trace: &Path, out: &Path) -> String {
    let run = run_with(
        &["draw", trace.to_str().unwrap(), "-o", out.to_str().unwrap()],
        None,
        Duration::from_secs(60),
    );
    assert_eq!(run.status, 0, "draw {}: {}", trace.display(), run.stderr);
    assert!(run.stdout.is_empty(), "draw -o writes nothing to stdout");
    fs::read_to_string(out).unwrap()
}

/// The seed a testcase names (`# seed: N`), else 1.
fn seed_of(file: &Path) -> u64 {
    let text = String::from_utf8_lossy(&fs::read(file).unwrap()).into_owned();
    text.lines().find_map(|l| l.strip_prefix("# seed: ")?.trim().parse().ok()).unwrap_or(1)
}

/// The value of attribute `name` in an element's text.
fn attr<'a>(el: &'a str, name: &str) -> Option<&'a str> {
    let pat = format!(" {name}=\"");
    let at = el.find(&pat)? + pat.len();
    el[at..].split('"').next()
}

/// Every opening tag of `tag` with class starting `class` in `svg`.
fn elements<'a>(svg: &'a str, tag: &str, class: &str) -> Vec<&'a str> {
    let pat = format!("<{tag} class=\"{class}");
    svg.match_indices(&pat).map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()]).collect()
}

/// The structural rules of one picture against its trace; returns the deliveries seen and
/// the recorded channel amounts compared.
fn check_picture(what: &str, trace: &str, svg: &str) -> (usize, usize) {
    // One run group per StartMaster; check each against its own part of the trace.
    let mut parts: Vec<Vec<&str>> = Vec::new();
    for line in trace.lines() {
        if line.contains("\"ev\":\"start\"") || parts.is_empty() {
            parts.push(Vec::new());
        }
        parts.last_mut().unwrap().push(line);
    }
    let groups: Vec<&str> = svg.split("<g class=\"run\"").skip(1).collect();
    assert_eq!(groups.len(), parts.len(), "{what}: one drawn run per StartMaster");
    let mut delivered = 0;
    let mut compared = 0;
    for (k, (lines, g)) in parts.iter().zip(&groups).enumerate() {
        let mut checker = Checker::new();
        for line in lines {
            checker.on_event(parse_trace_line(line).unwrap()).unwrap();
        }
        let deliveries = lines.iter().filter(|l| l.contains("\"ev\":\"deliver\"")).count();
        let arrows = elements(g, "g", "msg ");
        let got: Vec<&&str> = arrows.iter().filter(|a| a.contains(" delivered\"")).collect();
        assert_eq!(got.len(), deliveries, "{what} run {k}: one arrow per delivery");
        delivered += got.len();
        let sends = lines.iter().filter(|l| l.contains("\"ev\":\"send\"")).count();
        assert_eq!(arrows.len(), sends, "{what} run {k}: one arrow or stub per send");
        assert!(!g.contains("inconsistent"), "{what} run {k}: a message crosses a cut backwards");
        // No arrow goes up: every message line ends below where it starts.
        for line in elements(g, "line", "m\"") {
            let y = |a: &str| attr(line, a).unwrap().parse::<f64>().unwrap();
            assert!(y("y2") > y("y1"), "{what} run {k}: an arrow goes back in time: {line}");
        }
        // One cut per snapshot that any node recorded.
        let mut ids: Vec<u32> = lines
            .iter()
            .filter(|l| l.contains("\"ev\":\"record\""))
            .map(|l| l.split("\"snapshot\":").nth(1).unwrap().split([',', '}']).next().unwrap())
            .map(|s| s.parse().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        let cuts: Vec<u32> = elements(g, "g", "cut\"")
            .iter()
            .map(|c| attr(c, "data-snapshot").unwrap().parse().unwrap())
            .collect();
        assert_eq!(cuts, ids, "{what} run {k}: one cut per snapshot");
        // Where a complete cut crosses money, the amounts are the snapshot's channels.
        for &id in &ids {
            if !checker.is_complete(id) {
                continue;
            }
            let want: BTreeMap<(u32, u32), u64> = checker
                .expected(id)
                .unwrap()
                .channels
                .into_iter()
                .filter(|c| c.2 > 0)
                .map(|(f, t, a)| ((f, t), a))
                .collect();
            let mut drawn: BTreeMap<(u32, u32), u64> = BTreeMap::new();
            for r in elements(g, "g", "recorded\"") {
                if attr(r, "data-snapshot").unwrap().parse::<u32>().unwrap() != id {
                    continue;
                }
                let n = |a: &str| attr(r, a).unwrap().parse::<u64>().unwrap();
                *drawn.entry((n("data-from") as u32, n("data-to") as u32)).or_default() +=
                    n("data-amount");
            }
            assert_eq!(drawn, want, "{what} run {k}: snapshot {id}'s recorded channels");
            compared += want.len();
        }
    }
    (delivered, compared)
}

// Every testcase run draws as SVG, HTML and ShiViz; each picture holds its structure,
// each ShiViz log passes ShiViz's rules, each page needs no network.
#[test]
fn every_testcase_draws_in_three_formats() {
    let tmp = TempDir::new("draw-all");
    let mut files: Vec<PathBuf> = fs::read_dir(util::root().join("testcases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() > 50);
    let (mut deliveries, mut recorded) = (0, 0);
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let trace = trace_of(file, seed_of(file), &tmp.0);
        let text = fs::read_to_string(&trace).unwrap();
        let svg = draw(&trace, &tmp.0.join(format!("{name}.svg")));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"), "{name}");
        let (d, r) = check_picture(&name, &text, &svg);
        deliveries += d;
        recorded += r;
        let log = draw(&trace, &tmp.0.join(format!("{name}.shiviz")));
        shiviz::check(&log).unwrap_or_else(|e| panic!("{name}.shiviz: {e}"));
        let page = draw(&trace, &tmp.0.join(format!("{name}.html")));
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains(&svg), "{name}.html");
        for far in ["src=\"http", "href=\"http", "<link", "@import", "url(http"] {
            assert!(!page.contains(far), "{name}.html reaches the network: {far}");
        }
    }
    assert!(deliveries > 500, "the testcases deliver messages ({deliveries})");
    assert!(recorded >= 5, "snapshots recorded money in channels ({recorded})");
    eprintln!("{} runs drawn: {deliveries} deliveries, {recorded} recorded channels", files.len());
}

/// Golden pictures: (name, command file, seed).
fn goldens() -> Vec<(&'static str, PathBuf, u64)> {
    let t = |f: &str| util::root().join("testcases").join(f);
    let mut v = vec![
        ("arg", t("arg.txt"), 1),
        ("concurrent", t("concurrent.txt"), 1),
        ("two_pc_crash", t("s06_crash_after_vote.txt"), 1),
        ("partition", t("nb09_minority_partition_3pc.txt"), 1),
    ];
    if let Some(dir) = shared("the course's example 1 golden picture") {
        v.push(("example1", dir.join("peer-testcases/spec-examples/example1.txt"), 1));
    }
    v
}

// Small runs draw byte for byte as their golden files, and twice the same.
#[test]
fn small_runs_draw_as_their_golden_files() {
    let tmp = TempDir::new("draw-golden");
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    for (name, file, seed) in goldens() {
        let trace = trace_of(&file, seed, &tmp.0);
        let svg = draw(&trace, &tmp.0.join(format!("{name}.svg")));
        let again = run_with(&["draw", trace.to_str().unwrap()], None, Duration::from_secs(60));
        assert_eq!(again.stdout, svg, "{name}: the same trace gives the same bytes on stdout");
        let golden = util::root().join(format!("tests/golden/draw/{name}.svg"));
        if bless {
            fs::create_dir_all(golden.parent().unwrap()).unwrap();
            fs::write(&golden, &svg).unwrap();
            continue;
        }
        let want = fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (BLESS=1 writes it)", golden.display()));
        assert!(want == svg, "{name}: the picture differs from {}", golden.display());
    }
}

// A big run: the picture stops at its limit and says so; the ShiViz log keeps everything.
#[test]
fn a_big_run_is_capped_with_a_note_and_exported_whole() {
    let Some(dir) = shared("large8 drawing") else { return };
    let tmp = TempDir::new("draw-big");
    let trace = trace_of(&dir.join("peer-testcases/generated/large8.txt"), 1, &tmp.0);
    let text = fs::read_to_string(&trace).unwrap();
    let svg = draw(&trace, &tmp.0.join("large8.svg"));
    assert!(svg.contains("class=\"cap\""), "the picture says where it stops");
    let drawn = elements(&svg, "g", "msg ").len();
    assert!(drawn > 1000 && drawn < text.lines().count(), "{drawn} messages drawn");
    let log = draw(&trace, &tmp.0.join("large8.shiviz"));
    let events = shiviz::check(&log).unwrap();
    // Every trace event that happens at one node is one ShiViz event: all but `start`,
    // `collect` and `lose` (and large8 has no partitions, which span several nodes).
    let count = |ev: &str| {
        let tag = format!("\"ev\":\"{ev}\"");
        text.lines().filter(|l| l.contains(&tag)).count()
    };
    assert_eq!(count("partition") + count("heal"), 0);
    let at_nodes = text.lines().count() - count("start") - count("collect") - count("lose");
    assert_eq!(events, at_nodes, "every node event is exported");
}

// Bad input: a missing trace, a broken line, an unknown option.
#[test]
fn draw_refuses_bad_input_plainly() {
    let tmp = TempDir::new("draw-bad");
    let missing = run_with(&["draw", "/nonexistent/trace"], None, Duration::from_secs(20));
    assert_eq!(missing.status, 2);
    assert!(
        missing.stderr.contains("cannot read the trace /nonexistent/trace"),
        "{}",
        missing.stderr
    );
    let bad = tmp.0.join("bad.trace");
    fs::write(&bad, "{\"ev\":\"start\"}\n{\"ev\":\"deliver\",\"from\":1,\"to\":2,\"kind\":\"Transfer\",\"amount\":1}\n").unwrap();
    let run = run_with(&["draw", bad.to_str().unwrap()], None, Duration::from_secs(20));
    assert_eq!(run.status, 1);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("trace line 2: deliver on channel 1 -> 2 with nothing sent"),
        "{}",
        run.stderr
    );
    let opt = run_with(&["draw", "--bogus"], None, Duration::from_secs(20));
    assert_eq!(opt.status, 2);
}
