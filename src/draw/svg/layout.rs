//! Where everything goes: the page's width and height, each run's frame of rows and
//! columns, how many events fit under [`MAX_EVENTS`], the pieces of each node's line, the
//! points of a cut and where an arrow crosses it. Numbers only: the drawing modules turn
//! them into SVG.

use super::MAX_EVENTS;
use crate::draw::model::{Model, Run, Snapshot, What};

/// Height of one row of events.
pub(super) const ROW: i64 = 28;
/// The margin left of the first column.
pub(super) const LEFT: i64 = 30;
/// Room right of the last column, for labels at the lines' ends.
pub(super) const RIGHT: i64 = 170;
/// Room at the top for the title and the legend.
pub(super) const LEGEND_H: i64 = 140;
/// Room above a run's first row: its title and the node headers.
const RUN_HEAD: i64 = 64;
/// Room below a run, before the next.
const RUN_FOOT: i64 = 34;

/// Where a run's rows and columns are on the page.
pub(super) struct Frame {
    /// The run's top edge.
    pub top: i64,
    /// Width of a node's column.
    pub col: i64,
    /// Rows drawn.
    pub rows: u32,
    /// Events drawn: the run's first `shown` (the rest are past [`MAX_EVENTS`]).
    pub shown: usize,
}

impl Frame {
    /// The x of node `node`'s line.
    pub fn x(&self, node: usize) -> i64 {
        LEFT + self.col * node as i64 + self.col / 2
    }
    /// The y of row `row`.
    pub fn y(&self, row: u32) -> i64 {
        self.top + RUN_HEAD + i64::from(row) * ROW + ROW / 2
    }
    /// Where the lines start: half a row above the first.
    pub fn first_y(&self) -> i64 {
        self.y(0) - ROW / 2
    }
    /// Where the lines end.
    pub fn bottom(&self) -> i64 {
        self.top + RUN_HEAD + i64::from(self.rows) * ROW + 6
    }
}

/// The note at the bottom of a picture that stops at [`MAX_EVENTS`].
pub(super) struct Cap {
    /// Its baseline.
    pub y: i64,
    /// Events drawn.
    pub drawn: usize,
    /// Events in the trace.
    pub total: usize,
}

/// The whole page.
pub(super) struct Page {
    /// Width.
    pub width: i64,
    /// Height.
    pub height: i64,
    /// One frame per run drawn, in order; runs past [`MAX_EVENTS`] have none.
    pub frames: Vec<Frame>,
    /// The note, when not every event is drawn.
    pub cap: Option<Cap>,
}

/// Lays out a model's runs one below the other, under the legend.
pub(super) fn page(model: &Model) -> Page {
    let widest = model.runs.iter().map(|r| r.nodes.len()).max().unwrap_or(1).max(1);
    // Columns share a slide's width when there are few nodes, and stay readable when
    // there are many (the picture then scrolls sideways).
    let col = ((800 - LEFT - RIGHT) / widest as i64).clamp(84, 200);
    let width = (LEFT + col * widest as i64 + RIGHT).max(800);
    let mut frames = Vec::new();
    let mut top = LEGEND_H;
    let mut budget = MAX_EVENTS;
    let mut drawn = 0;
    for run in &model.runs {
        if budget == 0 {
            break;
        }
        let shown = run.events.len().min(budget);
        budget -= shown;
        drawn += shown;
        let rows = run.events[..shown].iter().map(|e| e.row + 1).max().unwrap_or(0);
        let f = Frame { top, col, rows, shown };
        top = f.bottom() + RUN_FOOT;
        frames.push(f);
    }
    let total: usize = model.runs.iter().map(|r| r.events.len()).sum();
    let mut cap = None;
    if drawn < total {
        cap = Some(Cap { y: top - 8, drawn, total });
        top += 20;
    }
    Page { width, height: top, frames, cap }
}

/// How a node's line looks between two rows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// Running.
    Up,
    /// Crashed, until it restarts.
    Down,
    /// Paused, until it resumes.
    Paused,
}

/// Node `node`'s line as pieces `(y0, y1, life)`, top to bottom: a new piece starts at
/// each crash, restart, pause and resume drawn, and the line starts at the node's
/// creation (or the top, for a node the run did not create).
pub(super) fn life(run: &Run, node: usize, f: &Frame) -> Vec<(i64, i64, Life)> {
    let mut pieces = Vec::new();
    let mut life = Life::Up;
    let mut from = None;
    for e in run.events[..f.shown].iter().filter(|e| e.node == Some(node)) {
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
        let y0 = *from.get_or_insert(f.first_y());
        pieces.push((y0, y, life));
        life = next;
        from = Some(y);
    }
    pieces.push((from.unwrap_or(f.first_y()), f.bottom(), life));
    pieces
}

/// The cut's points: each recorded node's record event drawn, in column order.
pub(super) fn cut_points(run: &Run, snap: &Snapshot, f: &Frame) -> Vec<(i64, i64)> {
    snap.records
        .iter()
        .filter(|(_, &e)| e < f.shown)
        .map(|(&n, &e)| (f.x(n), f.y(run.events[e].row)))
        .collect()
}

/// Where segment a→b first crosses the polyline.
pub(super) fn crossing(a: (f64, f64), b: (f64, f64), line: &[(i64, i64)]) -> Option<(f64, f64)> {
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
