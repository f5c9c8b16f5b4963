//! The space-time diagram as SVG: one vertical line per node, time down, every message an
//! arrow from its send to its delivery, each snapshot's cut through its records with the
//! past shaded and the money it recorded in channels labelled where the arrow crosses.
//!
//! `layout` places everything first, in numbers only; this file then writes the page and
//! each run, with the legend in `legend` and the small shapes both draw in `glyph`.
//! Everything is written in model order with whole or one-decimal coordinates, so the
//! same trace gives the same bytes. Every element carries a `<title>` (the tooltip) and
//! `data-` attributes the tests and the HTML page read. Past [`MAX_EVENTS`] events the
//! picture stops and says so.

mod glyph;
mod layout;
mod legend;

use super::model::{Class, End, Message, Model, Run, What};
use glyph::{cross, pause_bars, refused, square, triangle};
use layout::{Frame, Life, LEFT, ROW};
use std::fmt::Write;

/// The most events one picture draws: beyond it the picture ends with a note (the
/// ShiViz export keeps every event).
pub const MAX_EVENTS: usize = 4000;

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

/// Snapshot colours, taken in turn by id.
const SNAP_COLOURS: [&str; 5] = ["#f59f00", "#15aabf", "#e64980", "#74b816", "#845ef7"];

/// The colour of snapshot `id`'s records, cut and past.
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

/// The whole picture of a model.
pub fn render(model: &Model) -> String {
    let page = layout::page(model);
    let (width, height) = (page.width, page.height);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\" \
         font-size=\"12\">"
    );
    s.push_str(STYLE);
    defs(&mut s);
    let _ = writeln!(s, "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>");
    legend::draw(&mut s, model, width);
    for (k, (run, f)) in model.runs.iter().zip(&page.frames).enumerate() {
        draw_run(&mut s, run, k, model.runs.len(), f);
    }
    if let Some(cap) = page.cap {
        let _ = writeln!(
            s,
            "<text class=\"cap\" x=\"{LEFT}\" y=\"{}\" fill=\"#c92a2a\">This picture stops after \
             {} of the trace's {} events (the limit is {MAX_EVENTS}); `draw -o \
             run.shiviz` exports them all.</text>",
            cap.y, cap.drawn, cap.total
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The CSS the picture carries: label halos, dashes by message state, hover glow.
const STYLE: &str = "<style>\n\
.lbl{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}\n\
.small{font-size:10px;fill:#495057}\n\
.m{stroke-width:1.6;fill:none}\n\
.marker .m{stroke-dasharray:6 3}\n\
.inflight .m,.lost .m{stroke-dasharray:2 3}\n\
.msg:hover .m,.ev:hover{filter:drop-shadow(0 0 2px #ffd43b)}\n\
</style>\n";

/// Arrowheads: one per message class in its colour, and a red one for a message that
/// crosses a cut backwards.
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

/// Run `k` of `runs` in its frame.
fn draw_run(s: &mut String, run: &Run, k: usize, runs: usize, f: &Frame) {
    let shown = f.shown;
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
        run.snapshots.iter().map(|snap| layout::cut_points(run, snap, f)).collect();
    let first_y = f.first_y();
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
        let segs = layout::life(run, i, f);
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
            draw_message(s, run, i, m, f);
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
            let Some((cx, cy)) = layout::crossing(a, b, &line) else { continue };
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

fn draw_message(s: &mut String, run: &Run, i: usize, m: &Message, f: &Frame) {
    let shown = f.shown;
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
