//! The interactive prompt: line editing, history and Ctrl-R search with `rustyline`, used
//! when standard input is a terminal.
//!
//! The prompt and the echo of what is typed go to the terminal itself (`/dev/tty`), never
//! to stdout, which carries only the specified output even when it is redirected. History
//! is kept in `$XDG_DATA_HOME/bank-master/history` (or `~/.local/share/bank-master/
//! history`), or where `BANK_MASTER_HISTORY` says; an empty value keeps none.

use rustyline::config::{Behavior, Config};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use std::path::PathBuf;

/// What the user sees before each command.
pub const PROMPT: &str = "bank> ";

/// A line editor on the terminal.
pub struct Prompt {
    editor: DefaultEditor,
    history: Option<PathBuf>,
}

/// Where the history file goes, if anywhere.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BANK_MASTER_HISTORY") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("bank-master").join("history"))
}

impl Prompt {
    /// A prompt with the saved history, or `None` when the terminal cannot be used.
    pub fn new() -> Option<Prompt> {
        let config = Config::builder().behavior(Behavior::PreferTerm).auto_add_history(true);
        let mut editor = match DefaultEditor::with_config(config.build()) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("master: no line editing ({e})");
                return None;
            }
        };
        let history = history_path();
        if let Some(p) = &history {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.load_history(p); // none yet the first time
        }
        Some(Prompt { editor, history })
    }

    /// The next line typed, or `None` at Ctrl-D or Ctrl-C (which end the run).
    pub fn read(&mut self) -> Option<String> {
        let line = match self.editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => return None,
            Err(e) => {
                log::error!("master: cannot read the terminal: {e}");
                return None;
            }
        };
        if let Some(p) = &self.history {
            if let Err(e) = self.editor.save_history(p) {
                log::warn!("master: cannot save the history to {}: {e}", p.display());
                self.history = None;
            }
        }
        Some(line)
    }
}
