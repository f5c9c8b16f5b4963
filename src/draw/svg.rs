//! The space-time diagram as SVG: one vertical line per node, time down, every message an
//! arrow from its send to its delivery, each snapshot's cut through its records with the
//! past shaded and the money it recorded in channels labelled where the arrow crosses.
//!
//! Every coordinate is a whole number or printed with one decimal, and everything is
//! written in model order, so the same trace gives the same bytes. Every drawn element
//! carries a `<title>` (the tooltip) and `data-` attributes the tests and the HTML page
//! read. Past [`MAX_EVENTS`] events the picture stops and says so at the bottom.

use super::model::{Class, End, Message, Model, Run, What};
use std::fmt::Write;

/// The most events one picture draws: beyond it the picture ends with a note (the
/// ShiViz export keeps every event).
pub const MAX_EVENTS: usize = 4000;

const ROW: i64 = 28;
const LEFT: i64 = 30;
const RIGHT: i64 = 170;
const LEGEND_H: i64 = 140;
const RUN_HEAD: i64 = 64;
const RUN_FOOT: i64 = 34;

/// Stroke colour of a message class.
pub fn colour(c: Class) -> &'static str {
    match c {
        Class::Transfer => "#212529",
        Class::Marker => "#e8590c",
        Class::Credit => "#0c8599",
        Class::TwoPc => "#1c7ed6",
        Class::ThreePc => "#7048e8",
        Class::Paxos => "#2f9e44",
    }
}

fn legend_name(c: Class) -> &'static str {
    match c {
        Class::Transfer => "Transfer (Send)",
        Class::Marker => "snapshot marker",
        Class::Credit => "Credit (committed $)",
        Class::TwoPc => "2PC message",
        Class::ThreePc => "3PC message",
        Class::Paxos => "Paxos Commit message",
    }
}

const SNAP_COLOURS: [&str; 5] = ["#f59f00", "#15aabf", "#e64980", "#74b816", "#845ef7"];

fn snap_colour(id: u64) -> &'static str {
    SNAP_COLOURS[(id % SNAP_COLOURS.len() as u64) as usize]
}

/// `text` made safe inside XML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Where a run's rows and columns are on the page.
struct Frame {
    top: i64,
    col: i64,
    rows: u32,
}

impl Frame {
    fn x(&self, node: usize) -> i64 {
        LEFT + self.col * node as i64 + self.col / 2
    }
    fn y(&self, row: u32) -> i64 {
        self.top + RUN_HEAD + i64::from(row) * ROW + ROW / 2
    }
    fn bottom(&self) -> i64 {
        self.top + RUN_HEAD + i64::from(self.rows) * ROW + 6
    }
}

/// The whole picture of a model.
pub fn render(model: &Model) -> String {
    let widest = model.runs.iter().map(|r| r.nodes.len()).max().unwrap_or(1).max(1);
    // Columns share a slide's width when there are few nodes, and stay readable when
    // there are many (the picture then scrolls sideways).
    let col = ((800 - LEFT - RIGHT) / widest as i64).clamp(84, 200);
    let width = (LEFT + col * widest as i64 + RIGHT).max(800);
    let mut body = String::new();
    let mut top = LEGEND_H;
    let mut budget = MAX_EVENTS;
    let mut drawn = 0;
    for (k, run) in model.runs.iter().enumerate() {
        if budget == 0 {
            break;
        }
        let shown = run.events.len().min(budget);
        budget -= shown;
        drawn += shown;
        let rows = run.events[..shown].iter().map(|e| e.row + 1).max().unwrap_or(0);
        let f = Frame { top, col, rows };
        draw_run(&mut body, run, k, model.runs.len(), &f, shown);
        top = f.bottom() + RUN_FOOT;
    }
    let total: usize = model.runs.iter().map(|r| r.events.len()).sum();
    if drawn < total {
        let _ = writeln!(
            body,
            "<text class=\"cap\" x=\"{LEFT}\" y=\"{}\" fill=\"#c92a2a\">This picture stops after \
             {drawn} of the trace's {} events (the limit is {MAX_EVENTS}); `draw -o \
             run.shiviz` exports them all.</text>",
            top - 8,
            total
        );
        top += 20;
    }
    let height = top;
    let mut s = String::with_capacity(body.len() + 4096);
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\" \
         font-size=\"12\">"
    );
    s.push_str(STYLE);
    defs(&mut s);
    let _ = writeln!(s, "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>");
    legend(&mut s, model, width);
    s.push_str(&body);
    s.push_str("</svg>\n");
    s
}

const STYLE: &str = "<style>\n\
.lbl{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}\n\
.small{font-size:10px;fill:#495057}\n\
.m{stroke-width:1.6;fill:none}\n\
.marker .m{stroke-dasharray:6 3}\n\
.inflight .m,.lost .m{stroke-dasharray:2 3}\n\
.msg:hover .m,.ev:hover{filter:drop-shadow(0 0 2px #ffd43b)}\n\
</style>\n";

fn defs(s: &mut String) {
    s.push_str("<defs>\n");
    for c in Class::ALL {
        let _ = writeln!(
            s,
            "<marker id=\"ah-{}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
             markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" \
             fill=\"{}\"/></marker>",
            c.word(),
            colour(c)
        );
    }
    s.push_str(
        "<marker id=\"ah-bad\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" \
         fill=\"#e03131\"/></marker>\n</defs>\n",
    );
}

fn legend(s: &mut String, model: &Model, width: i64) {
    let runs = model.runs.len();
    let nodes: usize = model.runs.iter().map(|r| r.nodes.len()).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Space-time \
         diagram: {nodes} nodes, {} events{}; time flows down</text>",
        model.events,
        if runs > 1 { format!(", {runs} runs") } else { String::new() }
    );
    let _ = writeln!(
        s,
        "<g class=\"legend\"><rect x=\"{}\" y=\"32\" width=\"{}\" height=\"{}\" rx=\"4\" \
         fill=\"#f8f9fa\" stroke=\"#dee2e6\"/>",
        LEFT - 8,
        width - 2 * LEFT + 16,
        LEGEND_H - 44
    );
    let step = 186;
    for (i, c) in Class::ALL.iter().enumerate() {
        let (x, y) = (LEFT + (i as i64 % 4) * step, 50 + (i as i64 / 4) * 20);
        let dash = if *c == Class::Marker { " stroke-dasharray=\"6 3\"" } else { "" };
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"1.6\"\
             {dash} marker-end=\"url(#ah-{})\"/><text x=\"{}\" y=\"{}\">{}</text>",
            x + 34,
            colour(*c),
            c.word(),
            x + 42,
            y + 4,
            legend_name(*c)
        );
    }
    let y = 110;
    let items: [(&str, &str); 8] = [
        ("record", "record (S: balance)"),
        ("crash", "crash"),
        ("restart", "restart"),
        ("pause", "pause / resume"),
        ("refused", "refused Send"),
        ("lost", "lost message"),
        ("inflight", "still in flight"),
        ("cut", "snapshot cut, past shaded"),
    ];
    for (i, (sym, text)) in items.iter().enumerate() {
        let (x, y) = (LEFT + (i as i64 % 4) * step, y - 20 + (i as i64 / 4) * 20);
        let sx = x + 10;
        match *sym {
            "record" => square(s, sx, y, SNAP_COLOURS[0]),
            "crash" => cross(s, sx, y, 5, "#e03131"),
            "restart" => triangle(s, sx, y, "#2f9e44"),
            "pause" => pause_bars(s, sx, y),
            "refused" => refused(s, sx, y),
            "lost" => cross(s, sx, y, 4, "#e03131"),
            "inflight" => {
                let _ = write!(
                    s,
                    "<circle cx=\"{sx}\" cy=\"{y}\" r=\"4\" fill=\"#fff\" stroke=\"#495057\"/>"
                );
            }
            _ => {
                let _ = write!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"30\" height=\"12\" fill=\"{}\" \
                     fill-opacity=\"0.16\"/><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" \
                     stroke=\"{}\" stroke-width=\"2\"/>",
                    x - 2,
                    y - 10,
                    SNAP_COLOURS[0],
                    x - 2,
                    y + 2,
                    x + 28,
                    y - 4,
                    SNAP_COLOURS[0]
                );
            }
        }
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\">{text}</text>", x + 42, y + 4);
    }
    s.push_str("</g>\n");
}

fn square(s: &mut String, x: i64, y: i64, fill: &str) {
    let _ = write!(
        s,
        "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{fill}\" stroke=\"#343a40\" \
         stroke-width=\"0.8\"/>",
        x - 5,
        y - 5
    );
}

fn cross(s: &mut String, x: i64, y: i64, r: i64, stroke: &str) {
    let _ = write!(
        s,
        "<path d=\"M{},{} L{},{} M{},{} L{},{}\" stroke=\"{stroke}\" stroke-width=\"2.4\"/>",
        x - r,
        y - r,
        x + r,
        y + r,
        x - r,
        y + r,
        x + r,
        y - r
    );
}

fn triangle(s: &mut String, x: i64, y: i64, fill: &str) {
    let _ = write!(
        s,
        "<path d=\"M{},{} L{},{} L{},{} z\" fill=\"{fill}\"/>",
        x,
        y - 6,
        x + 6,
        y + 5,
        x - 6,
        y + 5
    );
}

fn pause_bars(s: &mut String, x: i64, y: i64) {
    let _ = write!(
        s,
        "<rect x=\"{}\" y=\"{}\" width=\"3\" height=\"10\" fill=\"#f08c00\"/><rect x=\"{}\" \
         y=\"{}\" width=\"3\" height=\"10\" fill=\"#f08c00\"/>",
        x - 4,
        y - 5,
        x + 1,
        y - 5
    );
}

fn refused(s: &mut String, x: i64, y: i64) {
    let _ = write!(
        s,
        "<circle cx=\"{x}\" cy=\"{y}\" r=\"5\" fill=\"#fff\" stroke=\"#e03131\" \
         stroke-width=\"1.8\"/><path d=\"M{},{} L{},{}\" stroke=\"#e03131\" \
         stroke-width=\"1.8\"/>",
        x - 3,
        y + 3,
        x + 3,
        y - 3
    );
}

/// How each node's line looks between two rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Life {
    Up,
    Down,
    Paused,
}

fn draw_run(s: &mut String, run: &Run, k: usize, runs: usize, f: &Frame, shown: usize) {
    let events = &run.events[..shown];
    let _ = writeln!(s, "<g class=\"run\" data-run=\"{k}\">");
    if runs > 1 {
        let _ = writeln!(
            s,
            "<text x=\"{LEFT}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">Run {} \
             (StartMaster at trace line {})</text>",
            f.top + 14,
            k + 1,
            run.start_line
        );
    }
    // Each snapshot's cut goes through the records drawn so far.
    let cuts: Vec<Vec<(i64, i64)>> =
        run.snapshots.iter().map(|snap| cut_points(run, snap, f, shown)).collect();
    let first_y = f.y(0) - ROW / 2;
    // The past of each complete snapshot, shaded under everything else.
    for (snap, pts) in run.snapshots.iter().zip(&cuts) {
        if pts.len() == run.nodes.len() && !pts.is_empty() {
            let (x0, x1) = (LEFT - 4, LEFT + f.col * run.nodes.len() as i64 + 4);
            let mut d = format!("M{x0},{first_y} L{x0},{}", pts[0].1);
            for (x, y) in pts {
                let _ = write!(d, " L{x},{y}");
            }
            let _ = write!(d, " L{x1},{} L{x1},{first_y} z", pts[pts.len() - 1].1);
            let _ = writeln!(
                s,
                "<path class=\"past\" data-snapshot=\"{}\" d=\"{d}\" fill=\"{}\" \
                 fill-opacity=\"0.11\"/>",
                snap.id,
                snap_colour(snap.id)
            );
        }
    }
    // Node headers and lines.
    let last_y = f.bottom();
    for (i, id) in run.nodes.iter().enumerate() {
        let x = f.x(i);
        let _ = writeln!(
            s,
            "<g class=\"node\" data-node=\"{id}\"><rect x=\"{}\" y=\"{}\" width=\"70\" \
             height=\"22\" rx=\"11\" fill=\"#343a40\"/><text x=\"{x}\" y=\"{}\" \
             text-anchor=\"middle\" fill=\"#fff\" font-weight=\"bold\">node {id}</text></g>",
            x - 35,
            f.top + 24,
            f.top + 39
        );
        let mut segs: Vec<(i64, i64, Life)> = Vec::new();
        let mut life = Life::Up;
        let mut from = None;
        for e in events.iter().filter(|e| e.node == Some(i)) {
            let y = f.y(e.row);
            let next = match e.what {
                What::Create { .. } => {
                    from = Some(y);
                    continue;
                }
                What::Crash => Life::Down,
                What::Restart | What::Resume => Life::Up,
                What::Pause => Life::Paused,
                _ => continue,
            };
            let y0 = *from.get_or_insert(first_y);
            segs.push((y0, y, life));
            life = next;
            from = Some(y);
        }
        segs.push((from.unwrap_or(first_y), last_y, life));
        for (y0, y1, life) in segs {
            let style = match life {
                Life::Up => "stroke=\"#adb5bd\" stroke-width=\"2\"",
                Life::Down => {
                    "stroke=\"#e03131\" stroke-opacity=\"0.5\" stroke-width=\"2\" \
                               stroke-dasharray=\"3 5\""
                }
                Life::Paused => "stroke=\"#f08c00\" stroke-width=\"2\" stroke-dasharray=\"1 4\"",
            };
            let _ = writeln!(s, "<line x1=\"{x}\" y1=\"{y0}\" x2=\"{x}\" y2=\"{y1}\" {style}/>");
        }
    }
    // Partitions: a line across the run, and the cut-off nodes' lines marked until Heal.
    let mut open: Option<(i64, Vec<usize>)> = None;
    for e in events.iter().filter(|e| e.node.is_none()) {
        let y = f.y(e.row);
        let x1 = LEFT + f.col * run.nodes.len() as i64;
        if let Some((y0, cut)) = open.take() {
            partition_bars(s, f, &cut, y0, y);
        }
        let (label, stroke) = match &e.what {
            What::Partition { cut } => {
                open = Some((y, cut.clone()));
                let ids: Vec<String> = cut.iter().map(|&n| run.nodes[n].to_string()).collect();
                (format!("Partition: {} cut off", ids.join(" ")), "#c92a2a")
            }
            _ => ("Heal".to_string(), "#2f9e44"),
        };
        let _ = writeln!(
            s,
            "<g class=\"ev partition\" data-line=\"{}\"><title>trace line {}: {}</title><line \
             x1=\"{LEFT}\" y1=\"{y}\" x2=\"{x1}\" y2=\"{y}\" stroke=\"{stroke}\" \
             stroke-width=\"1.4\" stroke-dasharray=\"8 4\"/><text class=\"lbl small\" \
             x=\"{}\" y=\"{}\" fill=\"{stroke}\">{}</text></g>",
            e.line,
            e.line,
            escape(&label),
            x1 + 6,
            y + 4,
            escape(&label)
        );
    }
    if let Some((y0, cut)) = open {
        partition_bars(s, f, &cut, y0, last_y);
    }
    // Messages.
    for (i, m) in run.messages.iter().enumerate() {
        if m.send < shown {
            draw_message(s, run, i, m, f, shown);
        }
    }
    // Events on the lines.
    for e in events {
        let Some(n) = e.node else { continue };
        let (x, y) = (f.x(n), f.y(e.row));
        let id = run.nodes[n];
        // What the tooltip says, the mark on the line, the label beside it, its class
        // and its colour.
        let mut mark = String::new();
        let (tip, note, cls, colour) = match &e.what {
            What::Send(_) | What::Deliver(_) => {
                let _ = write!(s, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3.2\" fill=\"#495057\"/>");
                continue;
            }
            What::Lose(_) | What::Partition { .. } | What::Heal => continue,
            What::Create { balance } => (
                format!("node {id} created with ${balance}"),
                format!("${balance}"),
                "create",
                "#212529",
            ),
            What::ErrSend { to, amount } => {
                refused(&mut mark, x, y);
                let to = run.nodes[*to];
                (
                    format!("node {id} refused Send {id} {to} {amount}: not enough money"),
                    format!("refused ${amount} to {to}"),
                    "fault",
                    "#e03131",
                )
            }
            What::Crash => {
                cross(&mut mark, x, y, 6, "#e03131");
                (format!("node {id} crashed"), "crash".to_string(), "fault", "#e03131")
            }
            What::Restart => {
                triangle(&mut mark, x, y, "#2f9e44");
                let tip = format!("node {id} restarted from its log");
                (tip, "restart".to_string(), "fault", "#495057")
            }
            What::Pause => {
                pause_bars(&mut mark, x, y);
                (format!("node {id} paused"), "pause".to_string(), "fault", "#495057")
            }
            What::Resume => {
                triangle(&mut mark, x, y, "#f08c00");
                (format!("node {id} resumed"), "resume".to_string(), "fault", "#495057")
            }
            What::Drop { tx, amount } => {
                cross(&mut mark, x, y, 4, "#e03131");
                (
                    format!(
                        "node {id} had aborted T{tx}, whose coordinator committed (a \
                         three-phase commit split): the ${amount} its credit carried is lost"
                    ),
                    format!("lost ${amount}: T{tx} split"),
                    "fault",
                    "#e03131",
                )
            }
            What::Held { amount } => {
                let _ = write!(
                    mark,
                    "<path d=\"M{x},{} L{},{y} L{x},{} L{},{y} z\" fill=\"#868e96\"/>",
                    y - 4,
                    x + 4,
                    y + 4,
                    x - 4
                );
                (
                    format!("node {id} now holds ${amount} for unfinished transfers"),
                    format!("held ${amount}"),
                    "held",
                    "#868e96",
                )
            }
            What::Record { snapshot, balance } => {
                square(&mut mark, x, y, snap_colour(*snapshot));
                (
                    format!("node {id} recorded its state for snapshot {snapshot}: ${balance}"),
                    format!("S{snapshot}: ${balance}"),
                    "record",
                    snap_colour(*snapshot),
                )
            }
        };
        let weight = if cls == "record" { " font-weight=\"bold\"" } else { "" };
        // A record's label sits above its square: the cut runs through the square.
        let (lx, ly) = if cls == "record" { (x + 7, y - 7) } else { (x + 9, y + 4) };
        let _ = writeln!(
            s,
            "<g class=\"ev {cls}\" data-line=\"{}\"><title>trace line {}: {}</title>{mark}<text \
             class=\"lbl\" x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{colour}\"{weight}>{}</text></g>",
            e.line,
            e.line,
            escape(&tip),
            lx,
            ly,
            escape(&note)
        );
    }
    // Cuts, over the arrows, and the money each snapshot recorded where it crosses.
    for (snap, pts) in run.snapshots.iter().zip(&cuts) {
        if pts.is_empty() {
            continue;
        }
        let c = snap_colour(snap.id);
        let complete = pts.len() == run.nodes.len();
        let mut line = vec![(pts[0].0 - f.col / 2, pts[0].1)];
        line.extend(pts.iter().copied());
        line.push((pts[pts.len() - 1].0 + f.col / 2, pts[pts.len() - 1].1));
        let pl: Vec<String> = line.iter().map(|(x, y)| format!("{x},{y}")).collect();
        let missing: Vec<String> = (0..run.nodes.len())
            .filter(|n| !snap.records.contains_key(n))
            .map(|n| run.nodes[n].to_string())
            .collect();
        let state = if complete {
            if snap.collected { "gathered by CollectState" } else { "complete" }.to_string()
        } else {
            format!("incomplete: node {} did not record", missing.join(", "))
        };
        let dash = if complete { "" } else { " stroke-dasharray=\"5 4\"" };
        let (ex, ey) = line[line.len() - 1];
        let _ = writeln!(
            s,
            "<g class=\"cut\" data-snapshot=\"{}\"><title>snapshot {}: {}</title><polyline \
             points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2.2\"{dash}/><text \
             class=\"lbl\" x=\"{}\" y=\"{}\" fill=\"{c}\" font-weight=\"bold\">S{}{}</text></g>",
            snap.id,
            snap.id,
            escape(&state),
            pl.join(" "),
            ex + 4,
            ey + 4,
            snap.id,
            if complete { "" } else { " (incomplete)" }
        );
        for &mi in &snap.recorded {
            let m = &run.messages[mi];
            let End::Delivered(d) = m.end else { continue };
            if d >= shown {
                continue;
            }
            let a = (f.x(m.from) as f64, f.y(run.events[m.send].row) as f64);
            let b = (f.x(m.to) as f64, f.y(run.events[d].row) as f64);
            let Some((cx, cy)) = crossing(a, b, &line) else { continue };
            let amount = m.money().unwrap_or(0);
            let (from, to) = (run.nodes[m.from], run.nodes[m.to]);
            // The label goes on the side the arrow heads to, so that two crossings side by
            // side keep their labels apart.
            let (anchor, lx, ly) = if b.0 > a.0 {
                ("start", cx + 7.0, cy + 15.0)
            } else {
                ("end", cx - 7.0, cy - 6.0)
            };
            let _ = writeln!(
                s,
                "<g class=\"recorded\" data-snapshot=\"{}\" data-from=\"{from}\" \
                 data-to=\"{to}\" data-amount=\"{amount}\"><title>snapshot {} recorded ${amount} \
                 in channel ({from} -&gt; {to})</title><circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" \
                 r=\"4\" fill=\"{c}\" stroke=\"#fff\"/><text class=\"lbl\" x=\"{:.1}\" \
                 y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"{c}\" font-weight=\"bold\" \
                 font-size=\"12\">${amount} in S{}</text></g>",
                snap.id, snap.id, lx, ly, snap.id
            );
        }
    }
    s.push_str("</g>\n");
}

fn partition_bars(s: &mut String, f: &Frame, cut: &[usize], y0: i64, y1: i64) {
    for &n in cut {
        let x = f.x(n);
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{y0}\" x2=\"{x}\" y2=\"{y1}\" stroke=\"#ff8787\" \
             stroke-opacity=\"0.45\" stroke-width=\"9\"/>"
        );
    }
}

/// The cut's points: each recorded node's record event, in column order.
fn cut_points(
    run: &Run,
    snap: &super::model::Snapshot,
    f: &Frame,
    shown: usize,
) -> Vec<(i64, i64)> {
    snap.records
        .iter()
        .filter(|(_, &e)| e < shown)
        .map(|(&n, &e)| (f.x(n), f.y(run.events[e].row)))
        .collect()
}

/// Where segment a→b first crosses the polyline.
fn crossing(a: (f64, f64), b: (f64, f64), line: &[(i64, i64)]) -> Option<(f64, f64)> {
    let mut best: Option<(f64, (f64, f64))> = None;
    for w in line.windows(2) {
        let (p, q) = ((w[0].0 as f64, w[0].1 as f64), (w[1].0 as f64, w[1].1 as f64));
        let r = (b.0 - a.0, b.1 - a.1);
        let sv = (q.0 - p.0, q.1 - p.1);
        let den = r.0 * sv.1 - r.1 * sv.0;
        if den.abs() < 1e-9 {
            continue;
        }
        let t = ((p.0 - a.0) * sv.1 - (p.1 - a.1) * sv.0) / den;
        let u = ((p.0 - a.0) * r.1 - (p.1 - a.1) * r.0) / den;
        if (0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u) && best.is_none_or(|(bt, _)| t < bt)
        {
            best = Some((t, (a.0 + t * r.0, a.1 + t * r.1)));
        }
    }
    best.map(|(_, p)| p)
}

fn draw_message(s: &mut String, run: &Run, i: usize, m: &Message, f: &Frame, shown: usize) {
    let send = &run.events[m.send];
    let (from, to) = (run.nodes[m.from], run.nodes[m.to]);
    let (x0, y0) = (f.x(m.from), f.y(send.row));
    let tx = f.x(m.to);
    let mut colour_of = colour(m.class);
    let mut head = format!("url(#ah-{})", m.class.word());
    let (state, end, what) = match m.end {
        End::Delivered(d) if d < shown => {
            let e = &run.events[d];
            // Sent after the sender recorded, taken before the receiver recorded: a cut
            // that is not consistent (never for a correct run); drawn red.
            let bad = run.snapshots.iter().any(|sn| {
                matches!((sn.records.get(&m.from), sn.records.get(&m.to)),
                    (Some(&rf), Some(&rt)) if m.send > rf && d < rt)
                    && m.snapshot != Some(sn.id)
            });
            if bad {
                colour_of = "#e03131";
                head = "url(#ah-bad)".to_string();
            }
            let state = if bad { "delivered inconsistent" } else { "delivered" };
            (state, (tx, f.y(e.row)), format!("delivered at trace line {}", e.line))
        }
        End::Lost(d) if d < shown => {
            let e = &run.events[d];
            ("lost", (tx, f.y(e.row)), format!("lost from the channel at trace line {}", e.line))
        }
        End::InFlight => {
            let x = x0 + (tx - x0) * 2 / 5;
            ("inflight", (x, y0 + ROW), "still in the channel when the trace ends".to_string())
        }
        _ => {
            let x = x0 + (tx - x0) * 2 / 5;
            ("inflight", (x, y0 + ROW), "delivered after the part drawn".to_string())
        }
    };
    // Stop the line at the event circle's edge so the arrowhead shows.
    let (dx, dy) = ((end.0 - x0) as f64, (end.1 - y0) as f64);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let shorten = if state.starts_with("delivered") { 4.5 } else { 0.0 };
    let (x1, y1) = (end.0 as f64 - dx / len * shorten, end.1 as f64 - dy / len * shorten);
    let label = m.label();
    let tip = format!(
        "{} from node {from} to node {to}: sent at trace line {}, {what} (message {} on {from} \
         -> {to})",
        label, send.line, m.seq
    );
    let cls = format!("msg {} {}", m.class.word(), state.split(' ').next_back().unwrap_or(state));
    let _ = write!(
        s,
        "<g class=\"{cls}\" data-i=\"{i}\" data-from=\"{from}\" data-to=\"{to}\" \
         data-seq=\"{}\"><title>{}</title>",
        m.seq,
        escape(&tip)
    );
    let marker = if state.starts_with("delivered") {
        format!(" marker-end=\"{head}\"")
    } else {
        String::new()
    };
    let _ = write!(
        s,
        "<line class=\"m\" x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\" \
         stroke=\"{colour_of}\"{marker}/>"
    );
    match state {
        "lost" => cross(s, end.0, end.1, 5, "#e03131"),
        "inflight" => {
            let _ = write!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#fff\" stroke=\"{colour_of}\"/>",
                end.0, end.1
            );
        }
        _ => {}
    }
    // The label sits on the arrow, a third of the way from its sender.
    let (lx, ly) = (x0 as f64 + dx * 0.36, y0 as f64 + dy * 0.36);
    let _ = writeln!(
        s,
        "<text class=\"lbl\" x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" \
         fill=\"{colour_of}\">{}</text></g>",
        ly - 3.0,
        escape(&label)
    );
}
