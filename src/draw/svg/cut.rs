//! Snapshots: each one's cut, a line through its records in its colour (dashed while a
//! node has not recorded), the past above a complete cut shaded, and a dot with the
//! amount where the cut crosses each message the snapshot recorded in a channel.

use super::layout::{crossing, Frame, LEFT};
use super::{escape, snap_colour};
use crate::draw::model::{End, Run, Snapshot};
use std::fmt::Write;

/// The past of a complete snapshot: the area above its cut, across the whole run.
pub(super) fn past(s: &mut String, run: &Run, snap: &Snapshot, pts: &[(i64, i64)], f: &Frame) {
    let first_y = f.first_y();
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

/// A snapshot's cut through `pts` (its records drawn, at least one), reaching half a
/// column past the first and last, and the money it recorded where the cut crosses it.
pub(super) fn draw(s: &mut String, run: &Run, snap: &Snapshot, pts: &[(i64, i64)], f: &Frame) {
    let c = snap_colour(snap.id);
    let complete = pts.len() == run.nodes.len();
    let mut line = vec![(pts[0].0 - f.col / 2, pts[0].1)];
    line.extend(pts.iter().copied());
    line.push((pts[pts.len() - 1].0 + f.col / 2, pts[pts.len() - 1].1));
    let pl: Vec<String> = line.iter().map(|(x, y)| format!("{x},{y}")).collect();
    let dash = if complete { "" } else { " stroke-dasharray=\"5 4\"" };
    let (ex, ey) = line[line.len() - 1];
    let _ = writeln!(
        s,
        "<g class=\"cut\" data-snapshot=\"{}\"><title>snapshot {}: {}</title><polyline \
         points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2.2\"{dash}/><text \
         class=\"lbl\" x=\"{}\" y=\"{}\" fill=\"{c}\" font-weight=\"bold\">S{}{}</text></g>",
        snap.id,
        snap.id,
        escape(&state(run, snap, complete)),
        pl.join(" "),
        ex + 4,
        ey + 4,
        snap.id,
        if complete { "" } else { " (incomplete)" }
    );
    recorded(s, run, snap, &line, f);
}

/// What the cut's tooltip says of the snapshot: gathered, complete, or who is missing.
fn state(run: &Run, snap: &Snapshot, complete: bool) -> String {
    if complete {
        return if snap.collected { "gathered by CollectState" } else { "complete" }.to_string();
    }
    let missing: Vec<String> = (0..run.nodes.len())
        .filter(|n| !snap.records.contains_key(n))
        .map(|n| run.nodes[n].to_string())
        .collect();
    format!("incomplete: node {} did not record", missing.join(", "))
}

/// The money the snapshot recorded in channels, each amount where its arrow crosses the
/// cut's `line` (a message whose arrow is not drawn, or misses the line, gets none).
fn recorded(s: &mut String, run: &Run, snap: &Snapshot, line: &[(i64, i64)], f: &Frame) {
    let c = snap_colour(snap.id);
    for &mi in &snap.recorded {
        let m = &run.messages[mi];
        let End::Delivered(d) = m.end else { continue };
        if d >= f.shown {
            continue;
        }
        let a = (f.x(m.from) as f64, f.y(run.events[m.send].row) as f64);
        let b = (f.x(m.to) as f64, f.y(run.events[d].row) as f64);
        let Some((cx, cy)) = crossing(a, b, line) else { continue };
        let amount = m.money().unwrap_or(0);
        let (from, to) = (run.nodes[m.from], run.nodes[m.to]);
        // The label goes on the side the arrow heads to, so that two crossings side by
        // side keep their labels apart.
        let (anchor, lx, ly) =
            if b.0 > a.0 { ("start", cx + 7.0, cy + 15.0) } else { ("end", cx - 7.0, cy - 6.0) };
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
