//! `bank-master draw TRACE [-o OUT]` (SPEC chapter 9): a `--trace` file turned into a
//! picture of the run. One [`model`] is built from the trace and drawn three ways:
//! [`svg`] (the space-time diagram), [`html`] (the same picture with zoom, pan and event
//! details, in one page with no network) and [`shiviz`] (a log the ShiViz visualiser
//! opens, vector clocks included). The live page of `--web` draws with the same code.

pub mod html;
pub mod model;
pub mod shiviz;
pub mod svg;

use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Draws a `--trace` file: a space-time diagram with every message, fault and snapshot
/// cut.
#[derive(Debug, Parser)]
#[command(name = "bank-master draw")]
pub struct DrawCli {
    /// The trace, as written by `bank-master --trace FILE`.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
    /// Where to write: NAME.html is a page with zoom and details, NAME.shiviz (or
    /// NAME.shiviz.log) a ShiViz log, anything else SVG; '-' or none: SVG to stdout.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: Option<PathBuf>,
}

/// What a file name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The SVG picture.
    Svg,
    /// The self-contained page.
    Html,
    /// The ShiViz log.
    Shiviz,
}

impl Format {
    /// The format for an output name.
    pub fn of(path: &Path) -> Format {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.ends_with(".html") || name.ends_with(".htm") {
            Format::Html
        } else if name.ends_with(".shiviz") || name.ends_with(".shiviz.log") {
            Format::Shiviz
        } else {
            Format::Svg
        }
    }
}

/// Renders a trace's text in a format.
///
/// # Errors
/// The trace is not valid (the line and the reason).
pub fn render(trace: &str, format: Format, title: &str) -> Result<String, String> {
    let model = model::build(trace)?;
    Ok(match format {
        Format::Svg => svg::render(&model),
        Format::Html => html::render(&model, title),
        Format::Shiviz => shiviz::render(&model),
    })
}

/// Runs `draw` with the arguments after the word `draw`; returns the exit status (0 drawn,
/// 1 the trace is not valid, 2 a file could not be read or written, or bad options).
pub fn run(args: &[std::ffi::OsString]) -> i32 {
    let argv =
        std::iter::once(std::ffi::OsString::from("bank-master draw")).chain(args.iter().cloned());
    let cli = match DrawCli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let text = match std::fs::read(&cli.trace) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("error: cannot read the trace {}: {e}", cli.trace.display());
            return 2;
        }
    };
    let out = cli.out.filter(|p| p.as_os_str() != "-");
    let format = out.as_deref().map_or(Format::Svg, Format::of);
    let title = format!("bank-master run: {}", cli.trace.display());
    let started = std::time::Instant::now();
    let drawn = match render(&text, format, &title) {
        Ok(d) => d,
        Err(why) => {
            eprintln!("error: {}: {why}", cli.trace.display());
            return 1;
        }
    };
    log::info!("drew {} in {:?}", cli.trace.display(), started.elapsed());
    let written = match &out {
        Some(path) => std::fs::write(path, drawn.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(drawn.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("cannot write standard output: {e}"))
        }
    };
    match written {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("error: {why}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_name_picks_the_format() {
        for (name, want) in [
            ("run.svg", Format::Svg),
            ("run", Format::Svg),
            ("a/run.HTML", Format::Html),
            ("run.shiviz", Format::Shiviz),
            ("run.shiviz.log", Format::Shiviz),
            ("run.log", Format::Svg),
        ] {
            assert_eq!(Format::of(Path::new(name)), want, "{name}");
        }
    }
}
