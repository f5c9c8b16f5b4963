//! The small shapes that mark events on a node's line, shared by the lines and the
//! legend so that the key shows exactly what the picture draws. Each is centred on
//! `(x, y)` and written with no line break.

use std::fmt::Write;

/// A record: a square in its snapshot's colour.
pub(super) fn square(s: &mut String, x: i64, y: i64, fill: &str) {
    let _ = write!(
        s,
        "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{fill}\" stroke=\"#343a40\" \
         stroke-width=\"0.8\"/>",
        x - 5,
        y - 5
    );
}

/// A crash, a lost message or lost money: a cross of half-width `r`.
pub(super) fn cross(s: &mut String, x: i64, y: i64, r: i64, stroke: &str) {
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

/// A restart or resume: a triangle pointing up.
pub(super) fn triangle(s: &mut String, x: i64, y: i64, fill: &str) {
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

/// A pause: two bars.
pub(super) fn pause_bars(s: &mut String, x: i64, y: i64) {
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

/// A refused Send: a struck-through circle.
pub(super) fn refused(s: &mut String, x: i64, y: i64) {
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
