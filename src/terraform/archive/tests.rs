//! Unit tests of the unpacker: one per rejection rule, archives built in
//! memory from raw headers (the tar crate's builder refuses most of them).

use super::*;

/// A tar entry with any name, type and link target.
fn entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

fn tar_of(entries: &[(&str, EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        entry(&mut b, name, *kind, link, data);
    }
    b.into_inner().expect("tar")
}

fn unpack_into(
    data: &[u8],
    limits: Limits,
) -> (tempfile::TempDir, Result<UnpackStats, ArchiveError>) {
    let root = tempfile::tempdir().expect("dir");
    let dest = root.path().join("work");
    fs::create_dir(&dest).expect("work dir");
    let result = unpack(data, &dest, &limits);
    (root, result)
}

/// Asserts the archive is rejected with a message containing `needle`, and
/// that nothing appeared next to the work directory.
fn rejects(data: &[u8], limits: Limits, needle: &str) {
    let (root, result) = unpack_into(data, limits);
    let err = result.expect_err("archive must be rejected").to_string();
    assert!(err.contains(needle), "error {err:?} should mention {needle:?}");
    let outside: Vec<_> = fs::read_dir(root.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("work")],
        "nothing written outside the work dir"
    );
}

#[test]
fn unpacks_nested_files_and_keeps_exec_bit() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o4755);
    h.set_cksum();
    b.append_data(&mut h, "bin/run.sh", &b"echo\n"[..]).expect("append");
    entry(&mut b, "main.tf", EntryType::Regular, "", b"# hi\n");
    entry(&mut b, "modules/", EntryType::Directory, "", b"");
    entry(&mut b, "modules/link.tf", EntryType::Symlink, "../main.tf", b"");
    entry(&mut b, "copy.tf", EntryType::Link, "main.tf", b"");
    let (root, result) = unpack_into(&b.into_inner().expect("tar"), Limits::default());
    let stats = result.expect("unpacks");
    let work = root.path().join("work");
    assert_eq!(fs::read_to_string(work.join("modules/link.tf")).expect("link"), "# hi\n");
    assert_eq!(fs::read_to_string(work.join("copy.tf")).expect("hardlink"), "# hi\n");
    let mode = fs::metadata(work.join("bin/run.sh")).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "setuid dropped, exec kept");
    assert_eq!(stats.entries, 5);
}

#[test]
fn unpacks_gzip() {
    let plain = tar_of(&[("main.tf", EntryType::Regular, "", b"x")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    io::Write::write_all(&mut gz, &plain).expect("gzip");
    let (_root, result) = unpack_into(&gz.finish().expect("gzip"), Limits::default());
    assert_eq!(result.expect("unpacks").bytes, 1);
}

#[test]
fn rejects_absolute_paths() {
    rejects(&tar_of(&[("/etc/evil", EntryType::Regular, "", b"x")]), Limits::default(), "absolute");
}

#[test]
fn rejects_parent_components() {
    rejects(
        &tar_of(&[("a/../../evil", EntryType::Regular, "", b"x")]),
        Limits::default(),
        "escapes",
    );
}

#[test]
fn rejects_symlink_leaving_the_directory() {
    rejects(&tar_of(&[("up", EntryType::Symlink, "../../etc", b"")]), Limits::default(), "outside");
    rejects(
        &tar_of(&[("abs", EntryType::Symlink, "/etc/passwd", b"")]),
        Limits::default(),
        "outside",
    );
    rejects(
        &tar_of(&[("a/b", EntryType::Symlink, "x/../../..", b"")]),
        Limits::default(),
        "outside",
    );
}

#[test]
fn rejects_writes_through_a_symlink() {
    let data = tar_of(&[
        ("dir", EntryType::Symlink, ".", b""),
        ("dir/evil", EntryType::Regular, "", b"x"),
    ]);
    rejects(&data, Limits::default(), "symbolic link");
}

#[test]
fn rejects_hardlink_leaving_the_directory() {
    rejects(
        &tar_of(&[("h", EntryType::Link, "../../etc/passwd", b"")]),
        Limits::default(),
        "outside",
    );
    rejects(&tar_of(&[("h", EntryType::Link, "/etc/passwd", b"")]), Limits::default(), "outside");
}

#[test]
fn rejects_devices_and_fifos() {
    rejects(&tar_of(&[("c", EntryType::Char, "", b"")]), Limits::default(), "character device");
    rejects(&tar_of(&[("b", EntryType::Block, "", b"")]), Limits::default(), "block device");
    rejects(&tar_of(&[("f", EntryType::Fifo, "", b"")]), Limits::default(), "fifo");
}

#[test]
fn enforces_limits() {
    let many = tar_of(&[
        ("a", EntryType::Regular, "", b"1"),
        ("b", EntryType::Regular, "", b"2"),
        ("c", EntryType::Regular, "", b"3"),
    ]);
    rejects(&many, Limits { max_entries: 2, ..Limits::default() }, "more than 2 entries");
    let big = tar_of(&[("big", EntryType::Regular, "", &[7u8; 100])]);
    rejects(&big, Limits { max_file_bytes: 10, ..Limits::default() }, "per-file limit");
    let total = tar_of(&[
        ("a", EntryType::Regular, "", &[1u8; 60]),
        ("b", EntryType::Regular, "", &[1u8; 60]),
    ]);
    rejects(&total, Limits { max_total_bytes: 100, ..Limits::default() }, "limit of 100 bytes");
}

#[test]
fn rejects_truncated_and_corrupt_archives() {
    let data = tar_of(&[("main.tf", EntryType::Regular, "", &[b'x'; 2000])]);
    let (_root, result) = unpack_into(&data[..1000], Limits::default());
    assert!(matches!(result, Err(ArchiveError::Corrupt(_))), "truncated: {result:?}");
    let err = result.expect_err("truncated").to_string();
    assert!(err.contains("\"main.tf\" is truncated: 488 of 2000 bytes"), "names the entry: {err}");
    let mut garbage = data.clone();
    garbage[100..200].fill(0xff);
    let (_root, result) = unpack_into(&garbage, Limits::default());
    assert!(result.is_err(), "corrupt header: {result:?}");
    let (_root, result) = unpack_into(&[0x1f, 0x8b, 8, 0, 1, 2, 3], Limits::default());
    assert!(matches!(result, Err(ArchiveError::Corrupt(_))), "bad gzip: {result:?}");
}
