//! The ShiViz log of a model, and a checker of the rules ShiViz enforces when it opens one.
//!
//! Line 1 is the parse regex, line 2 the execution delimiter (empty for one run, else
//! `=== (?<trace>.*) ===` and a `=== Run k ===` line before each run), then two lines per
//! event: `node<id> {"node<id>":n, ...}` and the event text. Clocks follow GoVector's rule:
//! every event ticks its node's own entry; a delivery then takes the entry-wise maximum
//! with its send's clock. A loss is the channel's doing, not a node's, so it is no event
//! here (its send stays a local event, as ShiViz shows an unanswered send).

use super::model::{End, Model, Run, What};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The regex on line 1.
pub const REGEX: &str = r"(?<host>\S*) (?<clock>{.*})\n(?<event>.*)";
/// The delimiter on line 2 when there are several runs.
pub const DELIMITER: &str = r"=== (?<trace>.*) ===";

type Clock = BTreeMap<u32, u64>;

/// The whole log.
pub fn render(model: &Model) -> String {
    let mut s = String::new();
    let several = model.runs.len() > 1;
    let _ = writeln!(s, "{REGEX}");
    let _ = writeln!(s, "{}", if several { DELIMITER } else { "" });
    for (k, run) in model.runs.iter().enumerate() {
        if several {
            let _ = writeln!(s, "=== Run {} ===", k + 1);
        }
        run_log(&mut s, run);
    }
    s
}

fn run_log(s: &mut String, run: &Run) {
    let mut clocks: Vec<Clock> = vec![Clock::new(); run.nodes.len()];
    let mut at_send: BTreeMap<usize, Clock> = BTreeMap::new();
    for e in &run.events {
        let nodes: Vec<usize> = match (&e.what, e.node) {
            (What::Lose(_), _) => continue,
            (What::Partition { cut }, None) => cut.clone(),
            (What::Heal, None) => (0..run.nodes.len()).filter(|&n| !clocks[n].is_empty()).collect(),
            (_, Some(n)) => vec![n],
            (_, None) => continue,
        };
        for n in nodes {
            let id = run.nodes[n];
            *clocks[n].entry(id).or_insert(0) += 1;
            if let What::Deliver(m) = e.what {
                let msg = &run.messages[m];
                if let Some(sent) = at_send.get(&msg.send) {
                    for (&h, &v) in sent {
                        let mine = clocks[n].entry(h).or_insert(0);
                        *mine = (*mine).max(v);
                    }
                }
            }
            if let What::Send(m) = e.what {
                // Only a delivered message's clock is merged anywhere.
                if matches!(run.messages[m].end, End::Delivered(_)) {
                    at_send.insert(run.messages[m].send, clocks[n].clone());
                }
            }
            let entries: Vec<String> =
                clocks[n].iter().map(|(h, v)| format!("\"node{h}\":{v}")).collect();
            let _ = writeln!(s, "node{id} {{{}}}", entries.join(", "));
            let _ = writeln!(s, "{}", describe(run, &e.what, n));
        }
    }
}

fn describe(run: &Run, what: &What, n: usize) -> String {
    let id = run.nodes[n];
    match what {
        What::Create { balance } => format!("create node{id} balance=${balance}"),
        What::Send(m) => {
            let m = &run.messages[*m];
            format!("send {} node{id}->node{}", m.label(), run.nodes[m.to])
        }
        What::Deliver(m) => {
            let m = &run.messages[*m];
            format!("deliver {} node{}->node{id}", m.label(), run.nodes[m.from])
        }
        What::Lose(_) => String::new(),
        What::ErrSend { to, amount } => {
            format!("err_send ${amount} node{id}->node{} refused", run.nodes[*to])
        }
        What::Crash => "crash".to_string(),
        What::Restart => "restart from the log".to_string(),
        What::Pause => "pause".to_string(),
        What::Resume => "resume".to_string(),
        What::Held { amount } => format!("held ${amount}"),
        What::Drop { tx, amount } => format!("drop ${amount} of T{tx}: aborted here (split)"),
        What::Record { snapshot, balance } => {
            format!("record snapshot S{snapshot} balance=${balance}")
        }
        What::Partition { .. } => "partition: cut off from the rest".to_string(),
        What::Heal => "heal".to_string(),
    }
}

/// Checks a log against what ShiViz requires before it draws one: the two header lines,
/// every event in the regex's shape with a JSON clock, the host's own entry present and
/// counting 1, 2, 3, … over its events, no entry of 0, every host in a clock having
/// events, no value above that host's event count, and each host's clock never going
/// back. Returns the number of events.
///
/// # Errors
/// The first rule broken, with the line.
pub fn check(log: &str) -> Result<usize, String> {
    let lines: Vec<&str> = log.lines().collect();
    let delimited = header(&lines)?;
    let runs = executions(&lines, delimited)?;
    for run in &runs {
        clocks_count_their_events(run)?;
    }
    Ok(runs.iter().map(Vec::len).sum())
}

/// One event of a log, as the checker reads it.
struct Logged {
    /// The line of its clock (from 1).
    line: usize,
    /// The host it happened on.
    host: String,
    /// Its vector clock, by node id.
    clock: Clock,
}

/// Rule: line 1 is the parse regex and line 2 the delimiter, or empty for one execution.
/// Returns whether the log is delimited.
fn header(lines: &[&str]) -> Result<bool, String> {
    if lines.len() < 2 || lines[0] != REGEX {
        return Err("line 1 is not the parse regex".to_string());
    }
    match lines[1] {
        "" => Ok(false),
        DELIMITER => Ok(true),
        other => Err(format!("line 2 is not a delimiter regex: {other:?}")),
    }
}

/// The events after the header, split into executions at each `=== name ===` line of a
/// delimited log. Rules: execution names are unique, and every event is two lines.
fn executions(lines: &[&str], delimited: bool) -> Result<Vec<Vec<Logged>>, String> {
    let mut executions = Vec::new();
    let mut current = Vec::new();
    let mut names = BTreeSet::new();
    let mut i = 2;
    while i < lines.len() {
        let line = lines[i];
        if delimited && line.starts_with("=== ") && line.ends_with(" ===") && line.len() > 8 {
            if !names.insert(line) {
                return Err(format!("line {}: execution names must be unique", i + 1));
            }
            executions.push(std::mem::take(&mut current));
            i += 1;
            continue;
        }
        if i + 1 >= lines.len() {
            return Err(format!("line {}: a clock line with no event line after it", i + 1));
        }
        current.push(clock_line(i + 1, line)?);
        i += 2;
    }
    executions.push(current);
    Ok(executions)
}

/// Rules of one clock line (line `n`): `host {clock}`, the clock a JSON object of
/// `node<id>` names to counts above 0.
fn clock_line(n: usize, line: &str) -> Result<Logged, String> {
    let (host, clock) = line
        .split_once(' ')
        .filter(|(h, c)| {
            !h.is_empty()
                && !h.contains(char::is_whitespace)
                && c.starts_with('{')
                && c.ends_with('}')
        })
        .ok_or_else(|| format!("line {n}: not `host {{clock}}`: {line:?}"))?;
    let value: serde_json::Value =
        serde_json::from_str(clock).map_err(|e| format!("line {n}: the clock is not JSON: {e}"))?;
    let obj = value.as_object().ok_or_else(|| format!("line {n}: the clock is not an object"))?;
    let mut parsed = Clock::new();
    for (h, v) in obj {
        let v = v.as_u64().ok_or_else(|| format!("line {n}: {h} is not a count"))?;
        if v == 0 {
            return Err(format!("line {n}: {h} has the value 0"));
        }
        let num = h.strip_prefix("node").and_then(|n| n.parse().ok());
        let num = num.ok_or_else(|| format!("line {n}: host name {h:?} is not node<id>"))?;
        parsed.insert(num, v);
    }
    Ok(Logged { line: n, host: host.to_string(), clock: parsed })
}

/// The rules between the clocks of one execution, each event in log order: its own
/// entry counts its host's events, and no entry goes back; then, once every host's
/// events are counted, each entry for another host names one with that many events.
fn clocks_count_their_events(execution: &[Logged]) -> Result<(), String> {
    let mut count: BTreeMap<&str, u64> = BTreeMap::new();
    let mut last: BTreeMap<&str, &Clock> = BTreeMap::new();
    for e in execution {
        let n = count.entry(e.host.as_str()).or_insert(0);
        *n += 1;
        own_entry_counts(e, *n)?;
        if let Some(prev) = last.get(e.host.as_str()) {
            never_goes_back(e, prev)?;
        }
        last.insert(e.host.as_str(), &e.clock);
    }
    for e in execution {
        names_hosts_with_events(e, &count)?;
    }
    Ok(())
}

/// Rule: the host's own entry is in its clock and is `n` at its `n`-th event.
fn own_entry_counts(e: &Logged, n: u64) -> Result<(), String> {
    let (line, host) = (e.line, &e.host);
    let own = host.strip_prefix("node").and_then(|h| h.parse::<u32>().ok());
    let Some(own) = own else {
        return Err(format!("line {line}: host {host:?} is not node<id>"));
    };
    match e.clock.get(&own) {
        None => Err(format!("line {line}: local host {host:?} is missing from its clock")),
        Some(&v) if v != n => Err(format!(
            "line {line}: the clock of {host} goes to {v} at its event {n}: it must count 1, \
             2, 3, …"
        )),
        _ => Ok(()),
    }
}

/// Rule: no entry of a host's clock is below its value at the host's previous event.
fn never_goes_back(e: &Logged, prev: &Clock) -> Result<(), String> {
    for (h, v) in prev {
        if e.clock.get(h).copied().unwrap_or(0) < *v {
            return Err(format!("line {}: {}'s entry for node{h} went back", e.line, e.host));
        }
    }
    Ok(())
}

/// Rule: every host a clock names has events, and at least as many as the clock says.
fn names_hosts_with_events(e: &Logged, count: &BTreeMap<&str, u64>) -> Result<(), String> {
    let (line, host) = (e.line, &e.host);
    for (h, v) in &e.clock {
        let name = format!("node{h}");
        match count.get(name.as_str()) {
            None => {
                return Err(format!(
                    "line {line}: {host}'s clock names {name}, which has no events"
                ))
            }
            Some(c) if v > c => {
                return Err(format!(
                    "line {line}: {host}'s clock gives {name} {v}, but it has {c} events"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"{"ev":"start"}
{"ev":"create","node":1,"balance":10}
{"ev":"create","node":2,"balance":10}
{"ev":"send","from":1,"to":2,"kind":"Transfer","amount":3}
{"ev":"send","from":1,"to":2,"kind":"Transfer","amount":4}
{"ev":"deliver","from":1,"to":2,"kind":"Transfer","amount":3}
{"ev":"lose","from":1,"to":2,"kind":"Transfer","amount":4}
{"ev":"partition","nodes":[2]}
{"ev":"heal"}
"#;

    #[test]
    fn export_follows_govector_and_passes_the_rules() {
        let model = super::super::model::build(TRACE).unwrap();
        let log = render(&model);
        let want = format!(
            "{REGEX}\n\nnode1 {{\"node1\":1}}\ncreate node1 balance=$10\n\
             node2 {{\"node2\":1}}\ncreate node2 balance=$10\n\
             node1 {{\"node1\":2}}\nsend $3 node1->node2\n\
             node1 {{\"node1\":3}}\nsend $4 node1->node2\n\
             node2 {{\"node1\":2, \"node2\":2}}\ndeliver $3 node1->node2\n\
             node2 {{\"node1\":2, \"node2\":3}}\npartition: cut off from the rest\n\
             node1 {{\"node1\":4}}\nheal\nnode2 {{\"node1\":2, \"node2\":4}}\nheal\n"
        );
        assert_eq!(log, want);
        assert_eq!(check(&log), Ok(8));
    }

    // Each rule ShiViz enforces is caught, including the broken sample's wrong value.
    #[test]
    fn the_checker_refuses_what_shiviz_refuses() {
        let head = format!("{REGEX}\n\n");
        let cases = [
            ("node1 {\"node1\":1}\na\nnode1 {\"node1\":3}\nb\n", "must count"),
            ("node1 {\"node2\":1}\na\n", "missing from its clock"),
            ("node1 {\"node1\":1, \"node2\":1}\na\n", "no events"),
            ("node1 {\"node1\":1}\na\nnode2 {\"node1\":2, \"node2\":1}\nb\n", "has 1 events"),
            ("node1 {\"node1\":1, \"node2\":0}\na\n", "the value 0"),
            ("node1 {node1:1}\na\n", "not JSON"),
            ("node1\na\n", "not `host {clock}`"),
            ("node1 {\"node1\":1}\n", "no event line"),
        ];
        for (body, want) in cases {
            let err = check(&format!("{head}{body}")).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
        assert!(check("x\n\n").is_err());
    }
}
