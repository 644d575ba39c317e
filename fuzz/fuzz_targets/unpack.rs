//! Fuzz target for `terraform::archive::unpack`: arbitrary bytes, plain or
//! gzipped, are unpacked into a fresh `<tempdir>/work` with small limits.
//!
//! Rejection is the expected outcome for most inputs; what must never happen
//! is a panic, a file appearing next to `work` (a write outside the work
//! directory), a symlink left in `work` that resolves outside it, or a
//! success that exceeds the limits. This target is its own crate in its own
//! workspace; the main crate neither depends on it nor builds it.
#![no_main]

use std::fs;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use provisionerd::terraform::archive::{unpack, Limits};

const LIMITS: Limits =
    Limits { max_entries: 64, max_total_bytes: 1 << 20, max_file_bytes: 256 << 10 };

fuzz_target!(|data: &[u8]| {
    let root = tempfile::tempdir().expect("temp dir");
    let work = root.path().join("work");
    fs::create_dir(&work).expect("work dir");
    let result = unpack(data, &work, &LIMITS);
    let outside: Vec<_> = fs::read_dir(root.path())
        .expect("list temp dir")
        .map(|e| e.expect("dir entry").file_name())
        .filter(|name| name != "work")
        .collect();
    assert!(outside.is_empty(), "wrote outside the work dir: {outside:?} ({result:?})");
    let work = work.canonicalize().expect("canonical work dir");
    check_links_stay_inside(&work, &work);
    if let Ok(stats) = result {
        assert!(stats.entries <= LIMITS.max_entries, "entry limit not enforced: {stats:?}");
        assert!(stats.bytes <= LIMITS.max_total_bytes, "byte limit not enforced: {stats:?}");
    }
});

/// Every symlink under `dir` that resolves at all must resolve inside `work`.
fn check_links_stay_inside(work: &Path, dir: &Path) {
    for e in fs::read_dir(dir).expect("list work dir") {
        let path = e.expect("dir entry").path();
        let meta = fs::symlink_metadata(&path).expect("metadata");
        if meta.file_type().is_symlink() {
            if let Ok(resolved) = path.canonicalize() {
                assert!(resolved.starts_with(work), "{path:?} resolves outside: {resolved:?}");
            }
        } else if meta.is_dir() {
            check_links_stay_inside(work, &path);
        }
    }
}
