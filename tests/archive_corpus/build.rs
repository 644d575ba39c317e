//! Builders for the archive corpus: each function returns the bytes of one
//! hostile or broken template archive, made from raw tar headers because the
//! tar crate's builder refuses most of these on purpose.
//!
//! Output is deterministic (zero mtimes, uids and gzip timestamps), so the
//! committed files under `testdata/archives/` can be compared byte for byte
//! with a fresh build. This module only builds bytes; writing the files and
//! checking them against the unpacker is done in `archive_corpus.rs`.

use std::io::Write;

use tar::{EntryType, Header};

/// A tar being assembled entry by entry from hand-made headers.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    /// Appends an entry with any name (up to 100 bytes), type and link target.
    fn raw(mut self, name: &str, kind: EntryType, link: &str, data: &[u8]) -> Self {
        let mut h = Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_cksum();
        self.0.append(&h, data).expect("append");
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name, EntryType::Regular, "", data)
    }

    fn dir(self, name: &str) -> Self {
        self.raw(name, EntryType::Directory, "", b"")
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(name, EntryType::Symlink, target, b"")
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(name, EntryType::Link, target, b"")
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("tar")
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// One pax record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record including its own digits.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// A well-formed template: directories, an executable, an inner symlink and
/// a hard link. The unpacker must accept it.
pub fn valid_template() -> Vec<u8> {
    let mut h = Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o755);
    h.set_cksum();
    let mut t = Tar::new().dir("modules/").file("main.tf", b"# main\n");
    t.0.append_data(&mut h, "bin/run.sh", &b"echo\n"[..]).expect("append");
    t.symlink("modules/main.tf", "../main.tf").hardlink("copy.tf", "main.tf").finish()
}

pub fn valid_template_gz() -> Vec<u8> {
    gzip(&valid_template())
}

pub fn absolute_path() -> Vec<u8> {
    Tar::new().file("main.tf", b"ok\n").file("/etc/evil", b"x").finish()
}

pub fn dotdot_start() -> Vec<u8> {
    Tar::new().file("../evil", b"x").finish()
}

pub fn dotdot_start_gz() -> Vec<u8> {
    gzip(&dotdot_start())
}

pub fn dotdot_middle() -> Vec<u8> {
    Tar::new().dir("a/").file("a/../../evil", b"x").finish()
}

pub fn symlink_to_etc() -> Vec<u8> {
    Tar::new().symlink("etc", "/etc").finish()
}

pub fn symlink_dotdot() -> Vec<u8> {
    Tar::new().symlink("up", "../..").finish()
}

/// An in-tree symlink, then a file whose path goes through it: the link is
/// harmless on its own, the write is what must be refused.
pub fn symlink_write_through() -> Vec<u8> {
    Tar::new().dir("sub/").symlink("link", "sub").file("link/evil.tf", b"x").finish()
}

/// `a/up` points at the work directory (allowed); `b` then points at
/// `a/up/..`, which would resolve to the work directory's parent.
pub fn symlink_chain_escape() -> Vec<u8> {
    Tar::new().dir("a/").symlink("a/up", "..").symlink("b", "a/up/..").finish()
}

pub fn hardlink_to_etc_passwd() -> Vec<u8> {
    Tar::new().hardlink("passwd", "/etc/passwd").finish()
}

pub fn hardlink_dotdot() -> Vec<u8> {
    Tar::new().file("main.tf", b"ok\n").hardlink("h", "../../etc/passwd").finish()
}

pub fn char_device() -> Vec<u8> {
    Tar::new().raw("null", EntryType::Char, "", b"").finish()
}

pub fn block_device() -> Vec<u8> {
    Tar::new().raw("sda", EntryType::Block, "", b"").finish()
}

pub fn fifo() -> Vec<u8> {
    Tar::new().raw("pipe", EntryType::Fifo, "", b"").finish()
}

/// Eleven files; the test allows ten.
pub fn too_many_entries() -> Vec<u8> {
    (0..11).fold(Tar::new(), |t, i| t.file(&format!("f{i:02}.tf"), b"x")).finish()
}

/// One 4 KiB file; the test allows 1 KiB per file.
pub fn file_too_large() -> Vec<u8> {
    Tar::new().file("big.bin", &[7u8; 4096]).finish()
}

/// Five 1000-byte files; the test allows 3000 bytes in total.
pub fn total_too_large() -> Vec<u8> {
    (0..5).fold(Tar::new(), |t, i| t.file(&format!("part{i}.bin"), &[1u8; 1000])).finish()
}

/// Cut off in the middle of the only file's data.
pub fn truncated() -> Vec<u8> {
    let mut data = Tar::new().file("main.tf", &[b'x'; 2000]).finish();
    data.truncate(1000);
    data
}

/// The first header's name changed after its checksum was computed.
pub fn bad_checksum() -> Vec<u8> {
    let mut data = Tar::new().file("main.tf", b"ok\n").finish();
    data[0] = b'M';
    data
}

/// A gzip stream cut off halfway.
pub fn truncated_gz() -> Vec<u8> {
    let mut data = gzip(&Tar::new().file("main.tf", &[b'x'; 2000]).file("b.tf", b"y").finish());
    data.truncate(data.len() / 2);
    data
}

/// The gzip magic followed by bytes that are not a gzip stream.
pub fn garbage_gz() -> Vec<u8> {
    let mut data = vec![0x1f, 0x8b];
    data.extend((0u32..512).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    data
}

/// A pax extended header whose `path` record overrides the safe name in the
/// following entry's own header.
pub fn pax_path_dotdot() -> Vec<u8> {
    Tar::new()
        .raw("PaxHeaders/safe.tf", EntryType::XHeader, "", &pax_record("path", "../../evil.tf"))
        .file("safe.tf", b"x")
        .finish()
}

/// A GNU long-name entry (`././@LongLink`) carrying a path with `..` for
/// the following entry, whose own header name is harmless.
pub fn gnu_longname_dotdot() -> Vec<u8> {
    let long = format!("../{}/evil.tf\0", "a".repeat(120));
    Tar::new()
        .raw("././@LongLink", EntryType::GNULongName, "", long.as_bytes())
        .file("safe.tf", b"x")
        .finish()
}
