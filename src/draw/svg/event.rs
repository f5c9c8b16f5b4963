//! Events on the lines: a dot at each end of a message, and for everything else a mark
//! (the `glyph` shapes), a short label beside it and the full sentence as its
//! tooltip. Losses are drawn with their arrows and partitions across the lines, not here.

use super::glyph::{cross, pause_bars, refused, square, triangle};
use super::layout::Frame;
use super::{escape, snap_colour};
use crate::draw::model::{Event, Run, What};
use std::fmt::Write;

/// What an event says.
struct Words {
    /// The tooltip: the whole sentence.
    tip: String,
    /// The label beside the mark.
    note: String,
    /// Its CSS class after `ev`.
    class: &'static str,
    /// The label's colour.
    colour: &'static str,
}

/// Event `e`, if it is drawn on a node's line.
pub(super) fn draw(s: &mut String, run: &Run, e: &Event, f: &Frame) {
    let Some(n) = e.node else { return };
    let (x, y) = (f.x(n), f.y(e.row));
    if matches!(e.what, What::Send(_) | What::Deliver(_)) {
        // The arrow between them tells the rest.
        let _ = write!(s, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3.2\" fill=\"#495057\"/>");
        return;
    }
    let Some(Words { tip, note, class, colour }) = words(run, run.nodes[n], &e.what) else {
        return;
    };
    let mut mark = String::new();
    draw_mark(&mut mark, &e.what, x, y);
    let weight = if class == "record" { " font-weight=\"bold\"" } else { "" };
    // A record's label sits above its square: the cut runs through the square.
    let (lx, ly) = if class == "record" { (x + 7, y - 7) } else { (x + 9, y + 4) };
    let _ = writeln!(
        s,
        "<g class=\"ev {class}\" data-line=\"{}\"><title>trace line {}: {}</title>{mark}<text \
         class=\"lbl\" x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{colour}\"{weight}>{}</text></g>",
        e.line,
        e.line,
        escape(&tip),
        lx,
        ly,
        escape(&note)
    );
}

/// The mark of an event on its line at `(x, y)`; a creation has none, its label is
/// enough.
fn draw_mark(s: &mut String, what: &What, x: i64, y: i64) {
    match what {
        What::ErrSend { .. } => refused(s, x, y),
        What::Crash => cross(s, x, y, 6, "#e03131"),
        What::Restart => triangle(s, x, y, "#2f9e44"),
        What::Pause => pause_bars(s, x, y),
        What::Resume => triangle(s, x, y, "#f08c00"),
        What::Drop { .. } => cross(s, x, y, 4, "#e03131"),
        What::Held { .. } => {
            // A small grey diamond: held money is bookkeeping, not a fault.
            let _ = write!(
                s,
                "<path d=\"M{x},{} L{},{y} L{x},{} L{},{y} z\" fill=\"#868e96\"/>",
                y - 4,
                x + 4,
                y + 4,
                x - 4
            );
        }
        What::Record { snapshot, .. } => square(s, x, y, snap_colour(*snapshot)),
        _ => {}
    }
}

/// What an event on node `id` says, or `None` for the events drawn elsewhere.
fn words(run: &Run, id: u32, what: &What) -> Option<Words> {
    let fixed = |tip: String, note: &str, class, colour| Words {
        tip,
        note: note.to_string(),
        class,
        colour,
    };
    Some(match what {
        What::Send(_) | What::Deliver(_) | What::Lose(_) | What::Partition { .. } | What::Heal => {
            return None
        }
        What::Create { balance } => Words {
            tip: format!("node {id} created with ${balance}"),
            note: format!("${balance}"),
            class: "create",
            colour: "#212529",
        },
        What::ErrSend { to, amount } => {
            let to = run.nodes[*to];
            Words {
                tip: format!("node {id} refused Send {id} {to} {amount}: not enough money"),
                note: format!("refused ${amount} to {to}"),
                class: "fault",
                colour: "#e03131",
            }
        }
        What::Crash => fixed(format!("node {id} crashed"), "crash", "fault", "#e03131"),
        What::Restart => {
            fixed(format!("node {id} restarted from its log"), "restart", "fault", "#495057")
        }
        What::Pause => fixed(format!("node {id} paused"), "pause", "fault", "#495057"),
        What::Resume => fixed(format!("node {id} resumed"), "resume", "fault", "#495057"),
        What::Drop { tx, amount } => Words {
            tip: format!(
                "node {id} had aborted T{tx}, whose coordinator committed (a three-phase \
                 commit split): the ${amount} its credit carried is lost"
            ),
            note: format!("lost ${amount}: T{tx} split"),
            class: "fault",
            colour: "#e03131",
        },
        What::Held { amount } => Words {
            tip: format!("node {id} now holds ${amount} for unfinished transfers"),
            note: format!("held ${amount}"),
            class: "held",
            colour: "#868e96",
        },
        What::Record { snapshot, balance } => Words {
            tip: format!("node {id} recorded its state for snapshot {snapshot}: ${balance}"),
            note: format!("S{snapshot}: ${balance}"),
            class: "record",
            colour: snap_colour(*snapshot),
        },
    })
}
