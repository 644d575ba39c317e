//! The archive corpus: hostile and broken template archives under
//! `testdata/archives/`, each unpacked by `terraform::archive::unpack` in its
//! own test, which checks the error names the entry or the limit and that
//! nothing was written next to the work directory.
//!
//! The archives are built by `archive_corpus/build.rs`, never edited by hand.
//! `committed_files_match_the_generator` fails if the files drift from it;
//! regenerate them with
//! `cargo test --test archive_corpus -- --ignored regenerate`.
//! The same files seed the fuzz target in `fuzz/`.

use std::fs;
use std::path::{Path, PathBuf};

use provisionerd::terraform::archive::{unpack, ArchiveError, Limits, UnpackStats};

#[path = "archive_corpus/build.rs"]
mod build;

/// A corpus file, relative to `testdata/archives/`, and the function that builds it.
type Archive = (&'static str, fn() -> Vec<u8>);

const DEFAULT: Limits =
    Limits { max_entries: 10_000, max_total_bytes: 1 << 30, max_file_bytes: 256 << 20 };

/// Declares the corpus once: every line becomes a test of its file, and an
/// entry in `CORPUS` for the drift check and the regenerator.
macro_rules! corpus {
    ($($test:ident: $file:literal = $build:path, $limits:expr, [$($needle:literal),+];)+) => {
        const CORPUS: &[Archive] = &[$(($file, $build)),+];
        $(
            #[test]
            fn $test() {
                rejects($file, $limits, &[$($needle),+]);
            }
        )+
    };
}

corpus! {
    absolute_path: "hostile/absolute_path.tar" = build::absolute_path, DEFAULT,
        ["\"/etc/evil\"", "absolute path"];
    dotdot_start: "hostile/dotdot_start.tar" = build::dotdot_start, DEFAULT,
        ["\"../evil\"", "escapes"];
    dotdot_start_gz: "hostile/dotdot_start.tar.gz" = build::dotdot_start_gz, DEFAULT,
        ["\"../evil\"", "escapes"];
    dotdot_middle: "hostile/dotdot_middle.tar" = build::dotdot_middle, DEFAULT,
        ["\"a/../../evil\"", "escapes"];
    symlink_to_etc: "hostile/symlink_to_etc.tar" = build::symlink_to_etc, DEFAULT,
        ["\"etc\"", "\"/etc\"", "outside"];
    symlink_dotdot: "hostile/symlink_dotdot.tar" = build::symlink_dotdot, DEFAULT,
        ["\"up\"", "\"../..\"", "outside"];
    symlink_write_through: "hostile/symlink_write_through.tar" = build::symlink_write_through,
        DEFAULT, ["\"link/evil.tf\"", "symbolic link"];
    symlink_chain_escape: "hostile/symlink_chain_escape.tar" = build::symlink_chain_escape,
        DEFAULT, ["\"b\"", "\"a/up/..\"", "outside"];
    hardlink_to_etc_passwd: "hostile/hardlink_to_etc_passwd.tar" = build::hardlink_to_etc_passwd,
        DEFAULT, ["\"passwd\"", "\"/etc/passwd\"", "outside"];
    hardlink_dotdot: "hostile/hardlink_dotdot.tar" = build::hardlink_dotdot, DEFAULT,
        ["\"h\"", "\"../../etc/passwd\"", "outside"];
    char_device: "hostile/char_device.tar" = build::char_device, DEFAULT,
        ["\"null\"", "character device"];
    block_device: "hostile/block_device.tar" = build::block_device, DEFAULT,
        ["\"sda\"", "block device"];
    fifo: "hostile/fifo.tar" = build::fifo, DEFAULT, ["\"pipe\"", "fifo"];
    too_many_entries: "hostile/too_many_entries.tar" = build::too_many_entries,
        Limits { max_entries: 10, ..DEFAULT }, ["more than 10 entries"];
    file_too_large: "hostile/file_too_large.tar" = build::file_too_large,
        Limits { max_file_bytes: 1024, ..DEFAULT }, ["\"big.bin\"", "per-file limit of 1024 bytes"];
    total_too_large: "hostile/total_too_large.tar" = build::total_too_large,
        Limits { max_total_bytes: 3000, ..DEFAULT }, ["limit of 3000 bytes"];
    truncated: "hostile/truncated.tar" = build::truncated, DEFAULT,
        ["corrupt or truncated", "\"main.tf\" is truncated"];
    bad_checksum: "hostile/bad_checksum.tar" = build::bad_checksum, DEFAULT,
        ["corrupt or truncated", "checksum"];
    truncated_gz: "hostile/truncated.tar.gz" = build::truncated_gz, DEFAULT,
        ["corrupt or truncated"];
    garbage_gz: "hostile/garbage.tar.gz" = build::garbage_gz, DEFAULT,
        ["corrupt or truncated"];
    pax_path_dotdot: "hostile/pax_path_dotdot.tar" = build::pax_path_dotdot, DEFAULT,
        ["\"../../evil.tf\"", "escapes"];
    gnu_longname_dotdot: "hostile/gnu_longname_dotdot.tar" = build::gnu_longname_dotdot,
        DEFAULT, ["\"../aaaa", "escapes"];
}

/// Well-formed archives, kept with the corpus as a baseline and as fuzz seeds.
const VALID: &[Archive] = &[
    ("valid/template.tar", build::valid_template),
    ("valid/template.tar.gz", build::valid_template_gz),
];

fn archives_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/archives")
}

fn read(file: &str) -> Vec<u8> {
    let path = archives_dir().join(file);
    fs::read(&path).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}; regenerate the corpus (see its README)", path.display())
    })
}

/// Unpacks into `<tempdir>/work` and returns the result with every name found
/// in the temp dir itself, which must be just `work`.
fn unpack_file(file: &str, limits: Limits) -> (Result<UnpackStats, ArchiveError>, Vec<String>) {
    let root = tempfile::tempdir().expect("temp dir");
    let work = root.path().join("work");
    fs::create_dir(&work).expect("work dir");
    let result = unpack(&read(file), &work, &limits);
    let mut names: Vec<String> = fs::read_dir(root.path())
        .expect("list temp dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (result, names)
}

fn rejects(file: &str, limits: Limits, needles: &[&str]) {
    let (result, names) = unpack_file(file, limits);
    let err = result.expect_err("archive must be rejected").to_string();
    for needle in needles {
        assert!(err.contains(needle), "{file}: error {err:?} should mention {needle:?}");
    }
    assert_eq!(names, ["work"], "{file}: nothing may be written outside the work dir");
}

#[test]
fn valid_archives_unpack() {
    for (file, _) in VALID {
        let (result, names) = unpack_file(file, DEFAULT);
        let stats = result.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(stats.entries, 5, "{file}");
        assert_eq!(names, ["work"], "{file}");
    }
}

#[test]
fn committed_files_match_the_generator() {
    for (file, build) in CORPUS.iter().chain(VALID) {
        assert!(read(file) == build(), "{file} differs from its generator; regenerate the corpus");
    }
    let mut committed = Vec::new();
    for sub in ["hostile", "valid"] {
        for e in fs::read_dir(archives_dir().join(sub)).expect("list corpus") {
            let name = e.expect("dir entry").file_name().to_string_lossy().into_owned();
            committed.push(format!("{sub}/{name}"));
        }
    }
    committed.sort();
    let mut generated: Vec<String> =
        CORPUS.iter().chain(VALID).map(|(f, _)| f.to_string()).collect();
    generated.sort();
    assert_eq!(committed, generated, "files in testdata/archives without a generator");
}

/// Rewrites every corpus file from its generator.
#[test]
#[ignore = "writes testdata/archives; run it to regenerate the corpus"]
fn regenerate() {
    for (file, build) in CORPUS.iter().chain(VALID) {
        let path = archives_dir().join(file);
        fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
        fs::write(&path, build()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
