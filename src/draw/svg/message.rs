//! Messages: each an arrow from its send to its delivery in its class's colour, a line
//! ending in a cross where it was lost, or a short stub ending in a ring while it is still
//! in its channel (or delivered below the part drawn). A message that crosses a snapshot's
//! cut backwards is drawn red.

use super::glyph::cross;
use super::layout::{Frame, ROW};
use super::{colour, escape};
use crate::draw::model::{End, Message, Run};
use std::fmt::Write;

/// How a message's arrow ends in the part drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Delivered.
    Delivered,
    /// Delivered, but sent after its sender recorded for a snapshot and taken before its
    /// receiver recorded: the cut is not consistent (never so in a correct run).
    Inconsistent,
    /// Lost from its channel.
    Lost,
    /// Not delivered in the part drawn.
    InFlight,
}

impl Fate {
    /// The word in the message's CSS classes.
    fn word(self) -> &'static str {
        match self {
            Fate::Delivered => "delivered",
            Fate::Inconsistent => "inconsistent",
            Fate::Lost => "lost",
            Fate::InFlight => "inflight",
        }
    }

    /// Whether the arrow reaches the receiver's line.
    fn delivered(self) -> bool {
        matches!(self, Fate::Delivered | Fate::Inconsistent)
    }
}

/// Where and how an arrow ends.
struct Arrow {
    /// How.
    fate: Fate,
    /// Where.
    end: (i64, i64),
    /// The tooltip's account of it.
    what: String,
}

/// The end of message `m`'s arrow.
fn arrow(run: &Run, m: &Message, f: &Frame) -> Arrow {
    let (x0, y0) = (f.x(m.from), f.y(run.events[m.send].row));
    let tx = f.x(m.to);
    // An undelivered message's stub points toward its receiver, a row down.
    let stub = (x0 + (tx - x0) * 2 / 5, y0 + ROW);
    match m.end {
        End::Delivered(d) if d < f.shown => {
            let e = &run.events[d];
            let fate = if backwards(run, m, d) { Fate::Inconsistent } else { Fate::Delivered };
            Arrow {
                fate,
                end: (tx, f.y(e.row)),
                what: format!("delivered at trace line {}", e.line),
            }
        }
        End::Lost(d) if d < f.shown => {
            let e = &run.events[d];
            let what = format!("lost from the channel at trace line {}", e.line);
            Arrow { fate: Fate::Lost, end: (tx, f.y(e.row)), what }
        }
        End::InFlight => {
            let what = "still in the channel when the trace ends".to_string();
            Arrow { fate: Fate::InFlight, end: stub, what }
        }
        _ => {
            // Delivered or lost past the events drawn; the tooltip says delivered either way.
            let what = "delivered after the part drawn".to_string();
            Arrow { fate: Fate::InFlight, end: stub, what }
        }
    }
}

/// Whether message `m`, delivered by event `d`, crosses some snapshot's cut backwards:
/// sent after its sender recorded and taken before its receiver recorded. A snapshot's
/// own marker always looks so (sent after a record, it is what makes its receiver
/// record), so it is exempt.
fn backwards(run: &Run, m: &Message, d: usize) -> bool {
    run.snapshots.iter().any(|sn| {
        matches!((sn.records.get(&m.from), sn.records.get(&m.to)),
            (Some(&rf), Some(&rt)) if m.send > rf && d < rt)
            && m.snapshot != Some(sn.id)
    })
}

/// Message `m` (number `i` of the run): its arrow and its label, with the whole story in
/// the tooltip.
pub(super) fn draw(s: &mut String, run: &Run, i: usize, m: &Message, f: &Frame) {
    let send = &run.events[m.send];
    let (from, to) = (run.nodes[m.from], run.nodes[m.to]);
    let (x0, y0) = (f.x(m.from), f.y(send.row));
    let Arrow { fate, end, what } = arrow(run, m, f);
    let (colour_of, head) = match fate {
        Fate::Inconsistent => ("#e03131", "url(#ah-bad)".to_string()),
        _ => (colour(m.class), format!("url(#ah-{})", m.class.word())),
    };
    // Stop the line at the event circle's edge so the arrowhead shows.
    let (dx, dy) = ((end.0 - x0) as f64, (end.1 - y0) as f64);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let shorten = if fate.delivered() { 4.5 } else { 0.0 };
    let (x1, y1) = (end.0 as f64 - dx / len * shorten, end.1 as f64 - dy / len * shorten);
    let label = m.label();
    let tip = format!(
        "{} from node {from} to node {to}: sent at trace line {}, {what} (message {} on {from} \
         -> {to})",
        label, send.line, m.seq
    );
    let _ = write!(
        s,
        "<g class=\"msg {} {}\" data-i=\"{i}\" data-from=\"{from}\" data-to=\"{to}\" \
         data-seq=\"{}\"><title>{}</title>",
        m.class.word(),
        fate.word(),
        m.seq,
        escape(&tip)
    );
    let marker = if fate.delivered() { format!(" marker-end=\"{head}\"") } else { String::new() };
    let _ = write!(
        s,
        "<line class=\"m\" x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\" \
         stroke=\"{colour_of}\"{marker}/>"
    );
    match fate {
        Fate::Lost => cross(s, end.0, end.1, 5, "#e03131"),
        Fate::InFlight => {
            let _ = write!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#fff\" stroke=\"{colour_of}\"/>",
                end.0, end.1
            );
        }
        Fate::Delivered | Fate::Inconsistent => {}
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
