//! The `file.snapshot` step kind: copies files and directories into a new
//! timestamped snapshot, a folder (or a `.tar.gz` of it) with a
//! `MANIFEST.sha256` that `file.verify` and `file.restore` check against.
//!
//! A snapshot appears whole or not at all: it is built under a hidden
//! `.partial-…` name beside its final place, made durable, and then renamed.
//! Each file is read once, hashed as it is copied, so the manifest describes
//! exactly the bytes the snapshot holds even if the live file changes
//! meanwhile. Symbolic links are stored as links and never read through,
//! so a link to a file outside the paths does not copy that file.

use flate2::Compression;
use flate2::write::GzEncoder;
use runbook_engine::kit::{Kind, Templated};
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

use crate::file_work::{Scratch, base_name, blocking, digest_stream, hex, io_error, stream_error, sync_dir};
use crate::is_template;
use crate::manifest::{MANIFEST, Manifest};
use crate::path_problem::PathProblem;
use crate::tree::{DirModes, Found, Node, walk};
use crate::words::{code, series};

/// Copies files and directories into a new snapshot with a SHA-256 manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSnapshot;

/// Parameters of a `file.snapshot` step. The snapshot is a new folder
/// `INTO/NAME-YYYYMMDDTHHMMSSZ-XXXX` (or that name with `.tar.gz`), holding
/// each path under its own name and a `MANIFEST.sha256` in `sha256sum`
/// format. Check it with `file.verify`; put a path back with `file.restore`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSnapshotParams {
    /// The files and directories to copy. Each is stored under its own name
    /// (`/srv/ledger/data` as `data`), so no two may share a name; `/` and
    /// paths whose last part is `.` or `..` are refused. Symbolic links
    /// (a path itself, or anything under it) are stored as links and never
    /// followed: the snapshot records where each points, not what it points
    /// to, and `file.restore` puts the link back.
    #[schemars(with = "Templated<Vec<String>>", length(min = 1))]
    pub paths: Templated<Vec<String>>,

    /// The directory that keeps the snapshots; it is made if missing.
    #[schemars(length(min = 1))]
    pub into: String,

    /// How the snapshot's name starts.
    #[serde(default = "default_name")]
    #[schemars(length(min = 1))]
    pub name: String,

    /// `dir`: a folder; `tar.gz`: one compressed archive of that folder.
    #[serde(default)]
    pub format: Templated<SnapshotFormat>,

    /// Keep the snapshot when the run rolls back (evidence, a restore point); by default a rollback deletes it.
    #[serde(default)]
    #[schemars(with = "Templated<bool>")]
    pub keep: Templated<bool>,
}

fn default_name() -> String {
    "snapshot".to_string()
}

/// How a snapshot is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(inline)]
pub enum SnapshotFormat {
    #[default]
    #[serde(rename = "dir")]
    Dir,
    #[serde(rename = "tar.gz")]
    TarGz,
}

impl Kind for FileSnapshot {
    type Params = FileSnapshotParams;
    const NAME: &'static str = "file.snapshot";
    const SUMMARY: &'static str = "Copy files and directories into a new timestamped snapshot with a SHA-256 manifest.";

    fn params_rules(&self) -> Vec<Json> {
        // A path that names a folder above, or that would be stored under
        // the manifest's name; a name that `bad_name` refuses.
        let path = r"^$|^/+$|(^|/)(\.\.?|MANIFEST\.sha256)/*$";
        vec![
            runbook_engine::kit::param_rule("paths", json!({ "items": { "not": { "pattern": path } } })),
            runbook_engine::kit::param_rule("name", json!({ "pattern": "^[^./][^/]*$" })),
        ]
    }

    fn validate(&self, params: &FileSnapshotParams) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        let name = &params.name;
        if !is_template(name)
            && let Some(why) = bad_name(name)
        {
            problems.push(
                ParamProblem::new("/name", format!("`{name}` cannot start a snapshot's name: {why}"))
                    .with_help("use plain words such as `ledger` or `nightly`"),
            );
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let paths = params.paths.known().map(Vec::as_slice).unwrap_or_default();
        for (i, path) in paths.iter().enumerate() {
            if is_template(path) {
                continue;
            }
            let pointer = format!("/paths/{i}");
            if let Some(problem) = PathProblem::of(path).filter(|p| *p != PathProblem::TrailingSlash) {
                problems.push(problem.param(&pointer, "snapshot", path));
                continue;
            }
            match base_name(Path::new(path)) {
                Err(why) => problems.push(
                    ParamProblem::new(pointer, format!("cannot snapshot: {why}"))
                        .with_help("name a file or a directory, such as `/srv/ledger/data`"),
                ),
                Ok(MANIFEST) => problems.push(ParamProblem::new(
                    pointer,
                    format!("cannot snapshot `{path}`: the snapshot's manifest has that name"),
                )),
                Ok(name) => {
                    if let Some(first) = seen.insert(name.to_string(), path.to_string()) {
                        problems.push(
                            ParamProblem::new(
                                pointer,
                                format!("`{first}` and `{path}` would both be stored as `{name}`"),
                            )
                            .with_help("take a snapshot of each in a step of its own"),
                        );
                    }
                }
            }
        }
        problems
    }

    fn describe(&self, params: &FileSnapshotParams) -> String {
        let paths: Vec<String> = match &params.paths {
            Templated::Value(paths) => paths.iter().map(|p| code(p)).collect(),
            Templated::Later(text) => vec![code(text)],
        };
        let paths = match paths.len() {
            n if n > 4 => format!("{} and {} more", paths[..3].join(", "), n - 3),
            _ => series(&paths, "and"),
        };
        let folder = format!("{}/{}-<time>-<id>", params.into.trim_end_matches('/'), params.name);
        match params.format {
            Templated::Value(SnapshotFormat::TarGz) => format!(
                "copy {paths} into a new archive {} with a SHA-256 manifest",
                code(&format!("{folder}.tar.gz"))
            ),
            _ => format!(
                "copy {paths} into a new folder {} with a SHA-256 manifest",
                code(&folder)
            ),
        }
    }

    /// Result: `{"path": "<the snapshot>", "manifest": "<its manifest>",
    /// "digest": "<SHA-256 of the manifest>", "files": n, "bytes": n}`.
    /// For a `tar.gz`, `manifest` is the manifest's name inside the archive.
    /// `files` and `bytes` count regular files and their contents; `links`
    /// counts symbolic links.
    fn undo_summary(&self, params: &FileSnapshotParams) -> Option<String> {
        (params.keep != Templated::Value(true)).then(|| "delete the snapshot it made".to_string())
    }

    fn undo(&self, params: &FileSnapshotParams, result: &Json) -> Option<runbook_engine::step::Undo> {
        if params.keep == Templated::Value(true) {
            return None;
        }
        let path = result.get("path")?.as_str()?;
        Some(crate::file_remove::undo_by_removing(path, "the snapshot"))
    }

    async fn run(&self, params: FileSnapshotParams, cx: StepContext) -> Result<Json, StepError> {
        blocking(&cx.cancel, move |cancel| take(&params, cancel)).await
    }
}

/// Why `name` cannot start a snapshot's name, if it cannot.
fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') {
        Some("it holds a `/`")
    } else if name.starts_with('.') {
        Some("names starting with `.` are kept for snapshots being made")
    } else {
        None
    }
}

/// A path to copy and the name it is stored under.
struct Source {
    path: PathBuf,
    name: String,
}

/// What a snapshot being written has taken in so far.
#[derive(Default)]
struct Tally {
    manifest: Manifest,
    bytes: u64,
}

fn take(params: &FileSnapshotParams, cancel: &CancellationToken) -> Result<Json, StepError> {
    if let Some(why) = bad_name(&params.name) {
        return Err(StepError::new(format!(
            "`{}` cannot start a snapshot's name: {why}",
            params.name
        )));
    }
    let into = PathBuf::from(&params.into);
    let sources = sources(params.paths.get()?, &into)?;
    fs::create_dir_all(&into).map_err(|e| io_error("create", &into, &e))?;
    let folder = format!(
        "{}-{}-{}",
        params.name,
        crate::file_work::stamp(),
        crate::file_work::unique()
    );
    let (path, manifest_name, tally, manifest_text) = match params.format.get()? {
        SnapshotFormat::Dir => {
            let (tally, text) = write_folder(&sources, &into, &folder, cancel)?;
            let path = into.join(&folder);
            (path.clone(), path.join(MANIFEST).display().to_string(), tally, text)
        }
        SnapshotFormat::TarGz => {
            let (tally, text) = write_archive(&sources, &into, &folder, cancel)?;
            let path = into.join(format!("{folder}.tar.gz"));
            (path, format!("{folder}/{MANIFEST}"), tally, text)
        }
    };
    Ok(json!({
        "path": path.display().to_string(),
        "manifest": manifest_name,
        "digest": crate::file_work::sha256(manifest_text.as_bytes()),
        "files": tally.manifest.len(),
        "links": tally.manifest.links(),
        "bytes": tally.bytes,
    }))
}

/// The paths to copy, each checked: it exists, it has a name no other path
/// has, and it does not hold the place snapshots are kept.
fn sources(paths: &[String], into: &Path) -> Result<Vec<Source>, StepError> {
    let mut sources: Vec<Source> = Vec::new();
    for given in paths {
        if let Some(problem) = PathProblem::of(given).filter(|p| *p != PathProblem::TrailingSlash) {
            return Err(problem.error("snapshot", given));
        }
        let path = PathBuf::from(given);
        let name = base_name(&path).map_err(|why| StepError::new(format!("cannot snapshot: {why}")))?;
        if name == MANIFEST {
            return Err(StepError::new(format!(
                "cannot snapshot `{}`: the snapshot's manifest has that name",
                path.display()
            )));
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error("snapshot", &path, &e))?;
        if let Some(other) = sources.iter().find(|s| s.name == name) {
            return Err(StepError::new(format!(
                "`{}` and `{}` would both be stored as `{name}`; take a snapshot of each in a step of its own",
                other.path.display(),
                path.display()
            )));
        }
        // A snapshot kept inside what it copies would copy itself. A link
        // is stored as a link, so nothing under it is copied.
        if !meta.file_type().is_symlink()
            && let (Ok(source), Ok(keep)) = (path.canonicalize(), deepest_existing(into).canonicalize())
            && keep.starts_with(&source)
        {
            return Err(StepError::new(format!(
                "cannot keep snapshots in `{}`: it is inside `{}`, which the snapshot copies",
                into.display(),
                path.display()
            )));
        }
        let name = name.to_string();
        sources.push(Source { path, name });
    }
    Ok(sources)
}

/// `path` or its nearest ancestor that exists.
fn deepest_existing(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(Path::new("."))
}

fn write_folder(
    sources: &[Source],
    into: &Path,
    folder: &str,
    cancel: &CancellationToken,
) -> Result<(Tally, String), StepError> {
    let partial = Scratch::new(into.join(format!(".partial-{folder}")));
    let root = partial.path().to_path_buf();
    fs::create_dir(&root).map_err(|e| io_error("create", &root, &e))?;
    let mut tally = Tally::default();
    let mut dirs = DirModes::default();
    for source in sources {
        walk(&source.path, &source.name, cancel, &mut |found| {
            let target = root.join(found.rel);
            match found.node {
                Node::Dir => {
                    fs::create_dir(&target).map_err(|e| io_error("create", &target, &e))?;
                    dirs.push(target, found.meta.permissions());
                }
                Node::Link => {
                    let link = found.link.unwrap_or(Path::new(""));
                    std::os::unix::fs::symlink(link, &target).map_err(|e| io_error("create the link", &target, &e))?;
                    tally.manifest.insert_link(found.rel.to_string(), link);
                }
                Node::File => {
                    let mut from = open_no_follow(found.path)?;
                    let mut to = File::create_new(&target).map_err(|e| io_error("create", &target, &e))?;
                    let (digest, bytes) = digest_stream(&mut from, cancel, |chunk| to.write_all(chunk))
                        .map_err(|e| stream_error("copy", found.path, &e))?;
                    let mode = found.meta.permissions().mode() & 0o7777;
                    to.set_permissions(Permissions::from_mode(mode))
                        .and_then(|()| to.sync_all())
                        .map_err(|e| io_error("write", &target, &e))?;
                    tally.manifest.insert(found.rel.to_string(), digest);
                    tally.bytes += bytes;
                }
                Node::Other(what) => return Err(not_copyable(found, what)),
            }
            Ok(())
        })?;
    }
    dirs.apply()?;
    let text = tally.manifest.render();
    let manifest = root.join(MANIFEST);
    File::create_new(&manifest)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| io_error("write", &manifest, &e))?;
    sync_dir(&root)?;
    let done = into.join(folder);
    put_in_place(partial, &done, into)?;
    Ok((tally, text))
}

fn write_archive(
    sources: &[Source],
    into: &Path,
    folder: &str,
    cancel: &CancellationToken,
) -> Result<(Tally, String), StepError> {
    let partial = Scratch::new(into.join(format!(".partial-{folder}.tar.gz")));
    let archive = partial.path().to_path_buf();
    let write_error = |e: &io::Error| io_error("write", &archive, e);
    let file = File::create_new(&archive).map_err(|e| write_error(&e))?;
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut root = header(tar::EntryType::Directory, 0o755, now, 0);
    builder
        .append_data(&mut root, format!("{folder}/"), io::empty())
        .map_err(|e| write_error(&e))?;
    let mut tally = Tally::default();
    for source in sources {
        walk(&source.path, &source.name, cancel, &mut |found| {
            let member = format!("{folder}/{}", found.rel);
            let meta = found.meta;
            let (mode, mtime) = (
                meta.permissions().mode() & 0o7777,
                u64::try_from(meta.mtime()).unwrap_or(0),
            );
            match found.node {
                Node::Dir => {
                    let mut header = header(tar::EntryType::Directory, mode, mtime, 0);
                    builder
                        .append_data(&mut header, format!("{member}/"), io::empty())
                        .map_err(|e| write_error(&e))?;
                }
                Node::Link => {
                    let link = found.link.unwrap_or(Path::new(""));
                    let mut header = header(tar::EntryType::Symlink, 0o777, mtime, 0);
                    builder
                        .append_link(&mut header, &member, link)
                        .map_err(|e| write_error(&e))?;
                    tally.manifest.insert_link(found.rel.to_string(), link);
                }
                Node::File => {
                    let size = meta.len();
                    let file = open_no_follow(found.path)?;
                    let mut reader = Hashing::new(file.take(size), cancel);
                    let mut header = header(tar::EntryType::Regular, mode, mtime, size);
                    builder.append_data(&mut header, &member, &mut reader).map_err(|e| {
                        if cancel.is_cancelled() {
                            crate::cancelled()
                        } else {
                            io_error("copy", found.path, &e)
                        }
                    })?;
                    if reader.bytes != size {
                        return Err(StepError::new(format!(
                            "`{}` shrank while it was being copied; take the snapshot again",
                            found.path.display()
                        )));
                    }
                    tally
                        .manifest
                        .insert(found.rel.to_string(), hex(&reader.hasher.finalize()));
                    tally.bytes += size;
                }
                Node::Other(what) => return Err(not_copyable(found, what)),
            }
            Ok(())
        })?;
    }
    let text = tally.manifest.render();
    let mut header = header(tar::EntryType::Regular, 0o644, now, text.len() as u64);
    builder
        .append_data(&mut header, format!("{folder}/{MANIFEST}"), text.as_bytes())
        .map_err(|e| write_error(&e))?;
    builder
        .into_inner()
        .and_then(GzEncoder::finish)
        .and_then(|file| file.sync_all())
        .map_err(|e| write_error(&e))?;
    let done = into.join(format!("{folder}.tar.gz"));
    put_in_place(partial, &done, into)?;
    Ok((tally, text))
}

/// Renames a finished snapshot from its partial name to `done`.
fn put_in_place(partial: Scratch, done: &Path, into: &Path) -> Result<(), StepError> {
    // `rename` would replace an empty folder of the same name; the random
    // part of the name makes that all but impossible, but never silently.
    if done.symlink_metadata().is_ok() {
        return Err(StepError::new(format!("`{}` already exists", done.display())));
    }
    fs::rename(partial.path(), done).map_err(|e| io_error("put in place", done, &e))?;
    partial.keep();
    sync_dir(into)
}

/// Opens a file the walk found to be a regular file, refusing to follow a
/// link that has taken its place since.
fn open_no_follow(path: &Path) -> Result<File, StepError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| io_error("read", path, &e))
}

fn not_copyable(found: &Found<'_>, what: &str) -> StepError {
    StepError::new(format!(
        "cannot snapshot `{}`: it is {what}; a snapshot holds files, directories and symbolic links",
        found.path.display()
    ))
}

fn header(kind: tar::EntryType, mode: u32, mtime: u64, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_size(size);
    header
}

/// A reader that hashes what passes through it and stops when cancelled.
struct Hashing<'a, R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    cancel: &'a CancellationToken,
}

impl<'a, R> Hashing<'a, R> {
    fn new(inner: R, cancel: &'a CancellationToken) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            cancel,
        }
    }
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
