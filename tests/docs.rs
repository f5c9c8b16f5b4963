//! Every sample run in the README and in `docs/`: a ```console block holds `$ command`
//! lines, each followed by the stdout it prints. The commands run in the repository root
//! with the `bank-master` under test first on the PATH, and must print exactly that.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

/// (file, command, expected stdout) for every sample in `file`.
fn samples(file: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(file).expect("read a doc");
    let mut out = Vec::new();
    let mut in_block = false;
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if !in_block {
            in_block = line.trim_start() == "```console";
            continue;
        }
        if line.trim_start().starts_with("```") {
            in_block = false;
            out.extend(current.take().map(|(c, o)| (file.display().to_string(), c, o)));
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.extend(current.take().map(|(c, o)| (file.display().to_string(), c, o)));
            current = Some((cmd.to_string(), String::new()));
        } else if let Some((_, o)) = current.as_mut() {
            o.push_str(line);
            o.push('\n');
        }
    }
    out
}

#[test]
fn every_sample_output_in_the_docs_is_what_the_bank_prints() {
    let root = util::root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let bin_dir = util::bin().parent().expect("the binary's directory").to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut n = 0;
    for file in &files {
        for (doc, cmd, want) in samples(file) {
            let out = Command::new("sh")
                .args(["-c", &cmd])
                .current_dir(&root)
                .env("PATH", &path)
                .env_remove("RUST_LOG")
                .output()
                .expect("run sh");
            let got = String::from_utf8_lossy(&out.stdout);
            util::assert_same(&format!("{doc}: $ {cmd}"), &want, &got);
            n += 1;
        }
    }
    assert!(n >= 3, "{n} samples found");
}
