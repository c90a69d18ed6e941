//! `StoredSnapshot`: a snapshot made by `file.snapshot`, as `file.verify`
//! and `file.restore` read it: a folder with `MANIFEST.sha256` at its top,
//! or a `.tar.gz` holding one such folder.
//!
//! An archive is read as a stream, never unpacked whole: checking it hashes
//! each member as it goes by, and restoring writes out only the members
//! under the one name asked for. Member paths must be plain relative paths,
//! so an archive cannot write outside the place it is restored to; a
//! symbolic link is made as a link, and a member below a link (which would
//! be written through it) is refused.

use flate2::read::GzDecoder;
use runbook_engine::step::StepError;
use std::collections::BTreeSet;
use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use tokio_util::sync::CancellationToken;

use crate::file_work::{check, digest_stream, io_error, sha256, stream_error};
use crate::manifest::{MANIFEST, Manifest};
use crate::tree::{DirModes, copy_tree, digest_tree};

/// A snapshot on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoredSnapshot {
    Dir(PathBuf),
    Archive(PathBuf),
}

/// What a snapshot holds.
#[derive(Debug, Clone)]
pub(crate) struct Contents {
    pub manifest: Manifest,
    /// SHA-256 of the manifest file: one value that stands for the whole
    /// snapshot.
    pub digest: String,
    /// The names stored at the top, beside the manifest.
    pub top_level: BTreeSet<String>,
    /// The digests of the files the snapshot actually holds, when asked for.
    pub files: Option<Manifest>,
}

impl StoredSnapshot {
    /// The snapshot at `path`: a folder, or else an archive.
    pub(crate) fn open(path: &Path) -> Result<Self, StepError> {
        let meta = fs::metadata(path).map_err(|e| io_error("open the snapshot", path, &e))?;
        if meta.is_dir() {
            Ok(Self::Dir(path.to_path_buf()))
        } else if meta.is_file() {
            Ok(Self::Archive(path.to_path_buf()))
        } else {
            Err(StepError::new(format!(
                "`{}` is not a snapshot: it is neither a folder nor an archive",
                path.display()
            )))
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Self::Dir(path) | Self::Archive(path) => path,
        }
    }

    /// Reads the manifest and the names the snapshot holds, and with
    /// `digest_files` the digest of every file it holds.
    pub(crate) fn read(&self, digest_files: bool, cancel: &CancellationToken) -> Result<Contents, StepError> {
        match self {
            Self::Dir(path) => read_dir_snapshot(path, digest_files, cancel),
            Self::Archive(path) => read_archive(path, digest_files, cancel),
        }
    }

    /// Writes what the snapshot holds under `name` (a file or a tree) to
    /// `to`, which must not exist. Returns how many files were written.
    pub(crate) fn extract(&self, name: &str, to: &Path, cancel: &CancellationToken) -> Result<u64, StepError> {
        match self {
            Self::Dir(path) => copy_tree(&path.join(name), to, cancel),
            Self::Archive(path) => extract_member(path, name, to, cancel),
        }
    }

    /// The error for a snapshot without a manifest.
    fn no_manifest(&self) -> StepError {
        StepError::new(format!(
            "`{}` is not a snapshot: it has no {MANIFEST}",
            self.path().display()
        ))
    }
}

/// Reads the manifest's text; an error names the snapshot.
fn parse_manifest(snapshot: &Path, bytes: &[u8]) -> Result<(Manifest, String), StepError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| StepError::new(format!("the manifest of `{}` is not UTF-8 text", snapshot.display())))?;
    let manifest = Manifest::parse(text)
        .map_err(|e| StepError::new(format!("the manifest of `{}` does not read: {e}", snapshot.display())))?;
    Ok((manifest, sha256(bytes)))
}

fn read_dir_snapshot(path: &Path, digest_files: bool, cancel: &CancellationToken) -> Result<Contents, StepError> {
    let manifest_path = path.join(MANIFEST);
    let bytes = match fs::read(&manifest_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoredSnapshot::Dir(path.to_path_buf()).no_manifest());
        }
        Err(e) => return Err(io_error("read", &manifest_path, &e)),
    };
    let (manifest, digest) = parse_manifest(path, &bytes)?;
    let mut top_level = BTreeSet::new();
    for entry in fs::read_dir(path).map_err(|e| io_error("read", path, &e))? {
        let entry = entry.map_err(|e| io_error("read", path, &e))?;
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            StepError::new(format!(
                "`{}` has a name that is not valid UTF-8",
                entry.path().display()
            ))
        })?;
        if name != MANIFEST {
            top_level.insert(name.to_string());
        }
    }
    let files = if digest_files {
        let mut files = Manifest::default();
        for name in &top_level {
            digest_tree(&path.join(name), name, cancel, &mut files)?;
        }
        Some(files)
    } else {
        None
    };
    Ok(Contents {
        manifest,
        digest,
        top_level,
        files,
    })
}

/// The plain components of a member's path, without a leading `./`; an
/// error for anything that could point outside the archive's folder.
fn member_parts(archive: &Path, member: &Path) -> Result<Vec<String>, StepError> {
    let mut parts = Vec::new();
    for component in member.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part.to_string()),
                None => {
                    return Err(StepError::new(format!(
                        "`{}` holds `{}`, a name that is not valid UTF-8",
                        archive.display(),
                        member.display()
                    )));
                }
            },
            _ => {
                return Err(StepError::new(format!(
                    "`{}` is not a safe snapshot archive: it holds `{}`",
                    archive.display(),
                    member.display()
                )));
            }
        }
    }
    Ok(parts)
}

/// Goes through the members of a snapshot archive: `visit` gets each
/// member's path below the archive's one top folder, and the member.
fn each_member(
    archive: &Path,
    cancel: &CancellationToken,
    mut visit: impl FnMut(&[String], &mut tar::Entry<'_, GzDecoder<File>>) -> Result<(), StepError>,
) -> Result<(), StepError> {
    let read_error = |e: &io::Error| io_error("read the archive", archive, e);
    let file = File::open(archive).map_err(|e| io_error("open the snapshot", archive, &e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut root: Option<String> = None;
    for entry in tar.entries().map_err(|e| read_error(&e))? {
        check(cancel)?;
        let mut entry = entry.map_err(|e| read_error(&e))?;
        let member = entry.path().map_err(|e| read_error(&e))?.into_owned();
        let parts = member_parts(archive, &member)?;
        let Some((top, below)) = parts.split_first() else {
            continue;
        };
        match &root {
            None => root = Some(top.clone()),
            Some(root) if root != top => {
                return Err(StepError::new(format!(
                    "`{}` is not a snapshot archive: it holds both `{root}` and `{top}` at the top, not one folder",
                    archive.display()
                )));
            }
            Some(_) => {}
        }
        visit(below, &mut entry)?;
    }
    Ok(())
}

fn read_archive(path: &Path, digest_files: bool, cancel: &CancellationToken) -> Result<Contents, StepError> {
    let mut manifest = None;
    let mut top_level = BTreeSet::new();
    let mut files = Manifest::default();
    each_member(path, cancel, |below, entry| {
        let Some(top) = below.first() else {
            return Ok(());
        };
        let rel = below.join("/");
        let kind = entry.header().entry_type();
        if rel == MANIFEST && kind.is_file() {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| io_error("read the archive", path, &e))?;
            manifest = Some(parse_manifest(path, &bytes)?);
            return Ok(());
        }
        top_level.insert(top.clone());
        if !digest_files || kind.is_dir() {
            return Ok(());
        }
        if kind.is_file() {
            let (digest, _) =
                digest_stream(entry, cancel, |_| Ok(())).map_err(|e| stream_error("read the archive", path, &e))?;
            files.insert(rel, digest);
        } else if kind.is_symlink() {
            let target = entry.link_name_bytes().unwrap_or_default();
            files.insert_link_bytes(rel, &target);
        } else {
            files.insert(rel, "-".to_string());
        }
        Ok(())
    })?;
    let (manifest, digest) = manifest.ok_or_else(|| StoredSnapshot::Archive(path.to_path_buf()).no_manifest())?;
    Ok(Contents {
        manifest,
        digest,
        top_level,
        files: digest_files.then_some(files),
    })
}

/// `Err` when `to` or a folder between it and the member at `rest` is a
/// symbolic link: writing the member would write through the link.
fn not_through_a_link(archive: &Path, to: &Path, rest: &[String]) -> Result<(), StepError> {
    let mut path = to.to_path_buf();
    for part in std::iter::once(None).chain(rest.iter().map(Some)) {
        if let Some(part) = part {
            path.push(part);
        }
        match path.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(StepError::new(format!(
                    "`{}` is not a safe snapshot archive: it holds `{}` where a symbolic link was already made",
                    archive.display(),
                    rest.join("/")
                )));
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

fn extract_member(archive: &Path, name: &str, to: &Path, cancel: &CancellationToken) -> Result<u64, StepError> {
    let mut files = 0;
    let mut dirs = DirModes::default();
    let mut found = false;
    each_member(archive, cancel, |below, entry| {
        let Some((top, rest)) = below.split_first() else {
            return Ok(());
        };
        if top != name {
            return Ok(());
        }
        found = true;
        let target = rest.iter().fold(to.to_path_buf(), |path, part| path.join(part));
        not_through_a_link(archive, to, rest)?;
        let mode = Permissions::from_mode(entry.header().mode().unwrap_or(0o644) & 0o7777);
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let Some(link) = entry
                .link_name()
                .map_err(|e| io_error("read the archive", archive, &e))?
            else {
                return Err(StepError::new(format!(
                    "`{}` holds `{}`, a symbolic link without a target",
                    archive.display(),
                    below.join("/")
                )));
            };
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| io_error("create", parent, &e))?;
            }
            std::os::unix::fs::symlink(&link, &target).map_err(|e| io_error("create the link", &target, &e))?;
            return Ok(());
        }
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(|e| io_error("create", &target, &e))?;
            dirs.push(target, mode);
            return Ok(());
        }
        if !kind.is_file() {
            return Err(StepError::new(format!(
                "cannot restore `{}` from `{}`: it is not a file, a folder or a symbolic link",
                below.join("/"),
                archive.display()
            )));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error("create", parent, &e))?;
        }
        let mut out = File::create_new(&target).map_err(|e| io_error("create", &target, &e))?;
        digest_stream(entry, cancel, |chunk| out.write_all(chunk)).map_err(|e| stream_error("write", &target, &e))?;
        out.set_permissions(mode)
            .and_then(|()| out.sync_all())
            .map_err(|e| io_error("write", &target, &e))?;
        files += 1;
        Ok(())
    })?;
    if !found {
        return Err(StepError::new(format!(
            "the snapshot `{}` holds no `{name}`",
            archive.display()
        )));
    }
    dirs.apply()?;
    Ok(files)
}
