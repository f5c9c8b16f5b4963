//! The space-time diagram as SVG: one vertical line per node, time down, every message an
//! arrow from its send to its delivery, each snapshot's cut through its records with the
//! past shaded and the money it recorded in channels labelled where the arrow crosses.
//!
//! `layout` places everything first, in numbers only; then one module per kind of element
//! writes it (`node`, `message`, `event`, `cut`, `legend`, sharing the shapes in `glyph`).
//! This file owns the page and the order of its layers. Everything is written in model
//! order with whole or one-decimal coordinates, so the same trace gives the same bytes.
//! Every element carries a `<title>` (the tooltip) and `data-` attributes the tests and
//! the HTML page read. Past [`MAX_EVENTS`] events the picture stops and says so.

mod cut;
mod event;
mod glyph;
mod layout;
mod legend;
mod message;
mod node;

use super::model::{Class, Model, Run};
use layout::{Frame, LEFT};
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

/// Run `k` of `runs` in its frame, in layers: what is drawn later lies on top. The
/// shaded pasts go under everything; the cuts and their amounts over the arrows, so that
/// where a cut crosses money stays readable.
fn draw_run(s: &mut String, run: &Run, k: usize, runs: usize, f: &Frame) {
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
    for (snap, pts) in run.snapshots.iter().zip(&cuts) {
        if pts.len() == run.nodes.len() && !pts.is_empty() {
            cut::past(s, run, snap, pts, f);
        }
    }
    for n in 0..run.nodes.len() {
        node::column(s, run, n, f);
    }
    node::partitions(s, run, f);
    for (i, m) in run.messages.iter().enumerate() {
        if m.send < f.shown {
            message::draw(s, run, i, m, f);
        }
    }
    for e in &run.events[..f.shown] {
        event::draw(s, run, e, f);
    }
    for (snap, pts) in run.snapshots.iter().zip(&cuts) {
        if !pts.is_empty() {
            cut::draw(s, run, snap, pts, f);
        }
    }
    s.push_str("</g>\n");
}
