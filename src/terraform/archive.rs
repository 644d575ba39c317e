//! Safe unpacking of template archives (tar, optionally gzipped) into a job's
//! work directory.
//!
//! Every entry is checked before anything is written: no absolute paths, no
//! `..`, no device or fifo entries, no links that lead outside, no path that
//! passes through a symlink, and caps on entry count and bytes. Nothing is
//! ever written outside `dest`. This module does not run terraform.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

/// Caps on what an archive may contain.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: u64,
    pub max_total_bytes: u64,
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_entries: 10_000, max_total_bytes: 1 << 30, max_file_bytes: 256 << 20 }
    }
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("entry {0:?} has an absolute path")]
    Absolute(String),
    #[error("entry {0:?} escapes the work directory")]
    Escapes(String),
    #[error("entry {entry:?} links to {target:?}, outside the work directory")]
    LinkEscapes { entry: String, target: String },
    #[error("entry {0:?} passes through a symbolic link")]
    ThroughSymlink(String),
    #[error("entry {entry:?} is a {kind}, which a template may not contain")]
    Forbidden { entry: String, kind: &'static str },
    #[error("archive has more than {0} entries")]
    TooManyEntries(u64),
    #[error("entry {entry:?} is larger than the per-file limit of {limit} bytes")]
    FileTooLarge { entry: String, limit: u64 },
    #[error("archive unpacks to more than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("archive is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error("failed to write {path}: {source}")]
    Io { path: String, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io { path: path.display().to_string(), source }
}

/// Unpacks `data` into the existing directory `dest`.
pub fn unpack(data: &[u8], dest: &Path, limits: &Limits) -> Result<UnpackStats, ArchiveError> {
    let reader: Box<dyn Read + '_> = if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(data))
    } else {
        Box::new(data)
    };
    let mut archive = tar::Archive::new(reader);
    let mut stats = UnpackStats::default();
    let entries = archive.entries().map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        stats.entries += 1;
        if stats.entries > limits.max_entries {
            return Err(ArchiveError::TooManyEntries(limits.max_entries));
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let Some(rel) = relative_path(&name)? else { continue };
        check_no_symlink_ancestor(dest, &rel, &name)?;
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_err(&target))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                    .map_err(io_err(&target))?;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                stats.bytes += write_file(&mut entry, &target, &name, limits, stats.bytes)?;
            }
            EntryType::Symlink => symlink(&entry, &rel, &target, &name)?,
            EntryType::Link => hardlink(&entry, dest, &target, &name)?,
            EntryType::Char => {
                return Err(ArchiveError::Forbidden { entry: name, kind: "character device" })
            }
            EntryType::Block => {
                return Err(ArchiveError::Forbidden { entry: name, kind: "block device" })
            }
            EntryType::Fifo => return Err(ArchiveError::Forbidden { entry: name, kind: "fifo" }),
            // Metadata entries (pax, GNU long names) are consumed by the tar
            // reader; anything else unknown is skipped, not written.
            _ => {}
        }
    }
    Ok(stats)
}

/// The entry's path relative to the work directory; `None` for `.`.
fn relative_path(name: &str) -> Result<Option<PathBuf>, ArchiveError> {
    let mut rel = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(ArchiveError::Escapes(name.to_owned())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::Absolute(name.to_owned()))
            }
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

/// Refuses entries whose parent directories include a symlink, so a link
/// planted earlier in the archive cannot redirect later writes.
fn check_no_symlink_ancestor(dest: &Path, rel: &Path, name: &str) -> Result<(), ArchiveError> {
    let mut at = dest.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ArchiveError::ThroughSymlink(name.to_owned()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes whatever is at `target` if it is a symlink, so a write never follows one.
fn remove_symlink(target: &Path) -> Result<(), ArchiveError> {
    if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(target).map_err(io_err(target))?;
    }
    Ok(())
}

fn write_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    target: &Path,
    name: &str,
    limits: &Limits,
    so_far: u64,
) -> Result<u64, ArchiveError> {
    let mode = entry.header().mode().unwrap_or(0o644);
    let expected = entry.size();
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    remove_symlink(target)?;
    let mut file = fs::File::create(target).map_err(io_err(target))?;
    let written = io::copy(&mut entry.take(limits.max_file_bytes + 1), &mut file)
        .map_err(|e| ArchiveError::Corrupt(format!("entry {name:?}: {e}")))?;
    if written > limits.max_file_bytes {
        return Err(ArchiveError::FileTooLarge {
            entry: name.to_owned(),
            limit: limits.max_file_bytes,
        });
    }
    // The tar reader ends an entry quietly at end of input; say which one
    // was cut short rather than failing later on the next header.
    if written < expected {
        return Err(ArchiveError::Corrupt(format!(
            "entry {name:?} is truncated: {written} of {expected} bytes"
        )));
    }
    if so_far + written > limits.max_total_bytes {
        return Err(ArchiveError::TooLarge(limits.max_total_bytes));
    }
    // Keep only the executable bit: no setuid, setgid or world-writable files.
    let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
    fs::set_permissions(target, fs::Permissions::from_mode(mode)).map_err(io_err(target))?;
    Ok(written)
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<String, ArchiveError> {
    let link = entry
        .link_name_bytes()
        .ok_or_else(|| ArchiveError::Corrupt(format!("link entry {name:?} has no target")))?;
    Ok(String::from_utf8_lossy(&link).into_owned())
}

/// A symlink may only point inside: a relative target made of leading `..`
/// (no deeper than the link's own directory) followed by plain names.
fn symlink<R: Read>(
    entry: &tar::Entry<'_, R>,
    rel: &Path,
    target: &Path,
    name: &str,
) -> Result<(), ArchiveError> {
    let link = link_name(entry, name)?;
    let escapes = || ArchiveError::LinkEscapes { entry: name.to_owned(), target: link.clone() };
    let depth = rel.components().count().saturating_sub(1);
    let mut ups = 0;
    let mut seen_name = false;
    for c in Path::new(&link).components() {
        match c {
            Component::ParentDir if !seen_name => ups += 1,
            Component::Normal(_) => seen_name = true,
            Component::CurDir => {}
            _ => return Err(escapes()),
        }
    }
    if ups > depth || link.is_empty() {
        return Err(escapes());
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    remove_symlink(target)?;
    std::os::unix::fs::symlink(&link, target).map_err(io_err(target))
}

/// A hard link may only point at a regular file unpacked earlier.
fn hardlink<R: Read>(
    entry: &tar::Entry<'_, R>,
    dest: &Path,
    target: &Path,
    name: &str,
) -> Result<(), ArchiveError> {
    let link = link_name(entry, name)?;
    let escapes = || ArchiveError::LinkEscapes { entry: name.to_owned(), target: link.clone() };
    let source_rel = relative_path(&link).map_err(|_| escapes())?.ok_or_else(escapes)?;
    check_no_symlink_ancestor(dest, &source_rel, name)?;
    let source = dest.join(source_rel);
    match fs::symlink_metadata(&source) {
        Ok(m) if m.file_type().is_file() => {}
        _ => return Err(escapes()),
    }
    remove_symlink(target)?;
    let _ = fs::remove_file(target);
    fs::hard_link(&source, target).map_err(io_err(target))
}

#[cfg(test)]
mod tests;
