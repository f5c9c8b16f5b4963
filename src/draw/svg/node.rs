//! Each node's column: its header and its line, grey while up, dashed red while
//! crashed, dotted orange while paused; and partitions, a line across every column with
//! the cut-off nodes' lines banded until the heal.

use super::escape;
use super::layout::{self, Frame, Life, LEFT};
use crate::draw::model::{Run, What};
use std::fmt::Write;

/// Node `n`'s header and line.
pub(super) fn column(s: &mut String, run: &Run, n: usize, f: &Frame) {
    let (x, id) = (f.x(n), run.nodes[n]);
    let _ = writeln!(
        s,
        "<g class=\"node\" data-node=\"{id}\"><rect x=\"{}\" y=\"{}\" width=\"70\" \
         height=\"22\" rx=\"11\" fill=\"#343a40\"/><text x=\"{x}\" y=\"{}\" \
         text-anchor=\"middle\" fill=\"#fff\" font-weight=\"bold\">node {id}</text></g>",
        x - 35,
        f.top + 24,
        f.top + 39
    );
    for (y0, y1, life) in layout::life(run, n, f) {
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

/// Every partition and heal drawn, each a labelled line across the run; a partition's
/// cut-off lines are banded until the next partition or heal, or to the bottom.
pub(super) fn partitions(s: &mut String, run: &Run, f: &Frame) {
    let mut open: Option<(i64, Vec<usize>)> = None;
    for e in run.events[..f.shown].iter().filter(|e| e.node.is_none()) {
        let y = f.y(e.row);
        let x1 = LEFT + f.col * run.nodes.len() as i64;
        if let Some((y0, cut)) = open.take() {
            bands(s, f, &cut, y0, y);
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
        bands(s, f, &cut, y0, f.bottom());
    }
}

/// The cut-off nodes' lines from `y0` to `y1`, under a wide pale red band.
fn bands(s: &mut String, f: &Frame, cut: &[usize], y0: i64, y1: i64) {
    for &n in cut {
        let x = f.x(n);
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{y0}\" x2=\"{x}\" y2=\"{y1}\" stroke=\"#ff8787\" \
             stroke-opacity=\"0.45\" stroke-width=\"9\"/>"
        );
    }
}
