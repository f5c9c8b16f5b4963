//! The title line and the legend above the runs: a sample arrow per message class, then
//! a sample of each mark the lines carry, drawn with the same `glyph` shapes.

use super::glyph::{cross, pause_bars, refused, square, triangle};
use super::layout::{LEFT, LEGEND_H};
use super::{colour, SNAP_COLOURS};
use crate::draw::model::{Class, Model};
use std::fmt::Write;

/// Horizontal distance between legend entries (four to a line).
const STEP: i64 = 186;

/// What the legend calls a message class.
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

/// The title, and the legend in a box `width` wide.
pub(super) fn draw(s: &mut String, model: &Model, width: i64) {
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
    arrows(s);
    marks(s);
    s.push_str("</g>\n");
}

/// A sample arrow per message class, in its colour and dash.
fn arrows(s: &mut String) {
    for (i, c) in Class::ALL.iter().enumerate() {
        let (x, y) = (LEFT + (i as i64 % 4) * STEP, 50 + (i as i64 / 4) * 20);
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
}

/// A sample of each mark: records, faults, the ends of undelivered messages, a cut.
fn marks(s: &mut String) {
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
        let (x, y) = (LEFT + (i as i64 % 4) * STEP, 90 + (i as i64 / 4) * 20);
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
            _ => cut_sample(s, x, y),
        }
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\">{text}</text>", x + 42, y + 4);
    }
}

/// A cut's sample: a shaded band under a slanted line.
fn cut_sample(s: &mut String, x: i64, y: i64) {
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
