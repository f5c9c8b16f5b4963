//! The command slots: one per command, in command order. A slot is done (its stdout
//! lines, stderr errors and trace events are known) or waits for one answer; answers fill
//! slots in any order, and lines leave only from the front, so the output is a serial
//! run's while many commands are in flight. Generic over what a waiting slot expects, so
//! it knows nothing of the answers.

use crate::trace::TraceEvent;
use std::collections::VecDeque;

/// One piece of a command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A stdout line (made by `output`).
    Line(String),
    /// A stderr line (made by `output`).
    Error(String),
    /// A trace event.
    Trace(TraceEvent),
}

enum Slot<E> {
    Done(Vec<Out>),
    Await(E),
}

/// The slots of the commands not yet written out.
pub struct Slots<E> {
    queue: VecDeque<Slot<E>>,
    /// The id of `queue[0]`.
    first: u64,
}

impl<E> Default for Slots<E> {
    fn default() -> Self {
        Slots { queue: VecDeque::new(), first: 0 }
    }
}

impl<E> Slots<E> {
    /// A done slot.
    pub fn push_done(&mut self, outs: Vec<Out>) {
        self.queue.push_back(Slot::Done(outs));
    }

    /// A waiting slot; returns its id.
    pub fn push_await(&mut self, e: E) -> u64 {
        self.queue.push_back(Slot::Await(e));
        self.first + self.queue.len() as u64 - 1
    }

    /// Whether slot `id` still waits.
    pub fn waits(&self, id: u64) -> bool {
        id >= self.first
            && matches!(self.queue.get((id - self.first) as usize), Some(Slot::Await(_)))
    }

    /// Takes what slot `id` waits for (it is done, with no output, until `fill`), or
    /// `None` if it waits for nothing.
    pub fn take(&mut self, id: u64) -> Option<E> {
        let slot = self.queue.get_mut(id.checked_sub(self.first)? as usize)?;
        match std::mem::replace(slot, Slot::Done(Vec::new())) {
            Slot::Await(e) => Some(e),
            done => {
                *slot = done;
                None
            }
        }
    }

    /// Slot `id` is done with `outs`.
    pub fn fill(&mut self, id: u64, outs: Vec<Out>) {
        if let Some(slot) = id.checked_sub(self.first).and_then(|i| self.queue.get_mut(i as usize))
        {
            *slot = Slot::Done(outs);
        }
    }

    /// The outputs of the done slots at the front, in order, taken out of the queue.
    pub fn ready(&mut self) -> Vec<Out> {
        let mut outs = Vec::new();
        while let Some(Slot::Done(_)) = self.queue.front() {
            let Some(Slot::Done(o)) = self.queue.pop_front() else { unreachable!("matched") };
            self.first += 1;
            outs.extend(o);
        }
        outs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines leave in command order, whatever order the answers come in.
    #[test]
    fn answers_fill_slots_in_any_order_and_leave_in_order() {
        let mut s: Slots<&str> = Slots::default();
        let a = s.push_await("a");
        s.push_done(vec![Out::Line("b".into())]);
        let c = s.push_await("c");
        assert!(s.ready().is_empty(), "the first slot waits");
        assert_eq!(s.take(c), Some("c"));
        s.fill(c, vec![Out::Line("c".into())]);
        assert!(s.ready().is_empty());
        assert_eq!(s.take(a), Some("a"));
        assert_eq!(s.take(a), None, "taken once");
        s.fill(a, vec![Out::Line("a".into())]);
        let lines: Vec<Out> = ["a", "b", "c"].map(|l| Out::Line(l.into())).to_vec();
        assert_eq!(s.ready(), lines);
        assert!(!s.waits(c));
    }
}
