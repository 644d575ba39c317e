//! Repository hygiene that review would otherwise have to catch: every Rust
//! file under `src/` opens with a `//!` paragraph saying what it owns, and
//! none grows past the size where it should be split.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_has_a_module_doc_and_a_sane_size() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 10, "found the sources");
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        if !text.starts_with("//!") {
            problems.push(format!("{} does not start with a //! paragraph", f.display()));
        }
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems
                .push(format!("{} has {lines} lines; split it (limit {MAX_LINES})", f.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
