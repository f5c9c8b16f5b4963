//! Where a finished command's output goes: stdout (buffered, flushed when a terminal
//! needs it), stderr, the trace file and the live page. The lines themselves are made by
//! `output`; this module only writes them, never in the middle of a progress bar.

use super::fatal::{stdout_gone, Fatal};
use super::slots::Out;
use indicatif::ProgressBar;
use std::fs::File;
use std::io::{self, BufWriter, Stdout, Write};

/// The run's outputs.
pub struct Printer {
    stdout: BufWriter<Stdout>,
    trace: Option<BufWriter<File>>,
    /// The live page, fed every line and trace event.
    pub web: Option<crate::web::Web>,
}

impl Printer {
    /// Stdout, and the trace file and the page if the run has them.
    pub fn new(trace: Option<BufWriter<File>>, web: Option<crate::web::Web>) -> Printer {
        // The one writer of stdout: every line `output` makes passes here.
        let stdout = BufWriter::with_capacity(64 * 1024, io::stdout());
        Printer { stdout, trace, web }
    }

    /// Whether trace events are built: for `--trace`, and for the live page's diagram
    /// outside live mode (live mode writes no trace).
    pub fn tracing(&self, live: bool) -> bool {
        self.trace.is_some() || (self.web.is_some() && !live)
    }

    /// Whether a trace file is written.
    pub fn has_trace(&self) -> bool {
        self.trace.is_some()
    }

    /// Writes `outs` in order; `bar`, the load's progress bar, is kept out of the way.
    pub fn write(&mut self, outs: Vec<Out>, bar: Option<&ProgressBar>) -> Result<(), Fatal> {
        use Out::{Error, Line, Trace};
        for out in outs {
            match out {
                Line(l) => self.line(&l, bar)?,
                Error(e) => {
                    if let Some(w) = self.web.as_mut() {
                        w.output(&e, true);
                    }
                    self.stdout.flush().map_err(stdout_gone)?;
                    error_line(&e, bar);
                }
                Trace(ev) => {
                    let json = ev.to_json();
                    if let Some(w) = self.web.as_mut() {
                        w.trace(&json);
                    }
                    if let Some(t) = self.trace.as_mut() {
                        writeln!(t, "{json}")
                            .map_err(|e| Fatal::Output(format!("cannot write the trace: {e}")))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn line(&mut self, l: &str, bar: Option<&ProgressBar>) -> Result<(), Fatal> {
        if let Some(w) = self.web.as_mut() {
            w.output(l, false);
        }
        self.stdout.write_all(l.as_bytes()).map_err(stdout_gone)?;
        if !l.ends_with('\n') {
            self.stdout.write_all(b"\n").map_err(stdout_gone)?;
        }
        if let Some(bar) = bar {
            // On a terminal the line must not land inside the bar.
            let stdout = &mut self.stdout;
            bar.suspend(|| stdout.flush()).map_err(stdout_gone)?;
        }
        Ok(())
    }

    /// Makes what was written reach stdout (before a prompt, or a page's refresh).
    pub fn flush(&mut self) -> Result<(), Fatal> {
        self.stdout.flush().map_err(stdout_gone)
    }

    /// The run is over: whatever is buffered is written, errors ignored (the run's
    /// status is decided).
    pub fn finish(&mut self) {
        let _ = self.stdout.flush();
        if let Some(t) = self.trace.as_mut() {
            let _ = t.flush();
        }
    }
}

/// Writes a stderr line now, with `bar` (if drawn) out of the way.
pub fn error_line(line: &str, bar: Option<&ProgressBar>) {
    let write = || {
        let _ = writeln!(io::stderr(), "{line}");
    };
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}
