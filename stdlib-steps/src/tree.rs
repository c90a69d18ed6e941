//! Walking a file or a directory tree on disk the way a snapshot sees it,
//! and the copies and digests built on that walk.
//!
//! A snapshot holds regular files and directories. Symbolic links are
//! followed (as `sha256sum` and `cp -L` do), so a snapshot holds what they
//! point to; a link back into a directory that holds it is an error rather
//! than an endless walk. Anything else (a link to nothing, a socket, a
//! device) is reported to the visitor as [`Node::Other`], for the caller
//! to refuse or to list as changed.

use runbook_engine::step::StepError;
use std::fs::{self, File, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

use crate::file_work::{check, digest_stream, io_error, stream_error};
use crate::manifest::Manifest;

/// What a path in a walked tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File,
    /// Neither, in words: `a socket`, `a symbolic link to nothing`.
    Other(&'static str),
}

/// One path met on a walk.
#[derive(Debug)]
pub(crate) struct Found<'a> {
    pub path: &'a Path,
    /// The path relative to the walk's start, `/`-separated, starting with
    /// the name the walk was given.
    pub rel: &'a str,
    pub node: Node,
    /// The metadata of what the path points to; `None` for a link to nothing.
    pub meta: Option<&'a Metadata>,
}

/// Visits `path` and, if it is a directory, everything under it, parents
/// before children and names in byte order. `rel` is the name `path` gets.
pub(crate) fn walk(
    path: &Path,
    rel: &str,
    cancel: &CancellationToken,
    visit: &mut dyn FnMut(&Found<'_>) -> Result<(), StepError>,
) -> Result<(), StepError> {
    walk_below(path, rel, cancel, &mut Vec::new(), visit)
}

fn walk_below(
    path: &Path,
    rel: &str,
    cancel: &CancellationToken,
    ancestors: &mut Vec<(u64, u64)>,
    visit: &mut dyn FnMut(&Found<'_>) -> Result<(), StepError>,
) -> Result<(), StepError> {
    check(cancel)?;
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound && path.symlink_metadata().is_ok() => {
            let node = Node::Other("a symbolic link to nothing");
            return visit(&Found {
                path,
                rel,
                node,
                meta: None,
            });
        }
        Err(e) => return Err(io_error("read", path, &e)),
    };
    if meta.is_file() {
        return visit(&Found {
            path,
            rel,
            node: Node::File,
            meta: Some(&meta),
        });
    }
    if !meta.is_dir() {
        let kind = meta.file_type();
        let what = if kind.is_fifo() {
            "a named pipe"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "neither a file nor a directory"
        };
        return visit(&Found {
            path,
            rel,
            node: Node::Other(what),
            meta: Some(&meta),
        });
    }
    let id = (meta.dev(), meta.ino());
    if ancestors.contains(&id) {
        return Err(StepError::new(format!(
            "`{}` is a symbolic link to a directory that holds it",
            path.display()
        )));
    }
    visit(&Found {
        path,
        rel,
        node: Node::Dir,
        meta: Some(&meta),
    })?;
    let mut children = Vec::new();
    for entry in fs::read_dir(path).map_err(|e| io_error("read", path, &e))? {
        let entry = entry.map_err(|e| io_error("read", path, &e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(StepError::new(format!(
                "`{}` has a name that is not valid UTF-8",
                entry.path().display()
            )));
        };
        children.push((name.to_string(), entry.path()));
    }
    children.sort();
    ancestors.push(id);
    for (name, child) in children {
        walk_below(&child, &format!("{rel}/{name}"), cancel, ancestors, visit)?;
    }
    ancestors.pop();
    Ok(())
}

/// Adds the SHA-256 of every file at or under `path` to `into`, named
/// `rel/...`. What is neither a file nor a directory goes in with `-` for a
/// digest, so that it shows as changed or extra.
pub(crate) fn digest_tree(
    path: &Path,
    rel: &str,
    cancel: &CancellationToken,
    into: &mut Manifest,
) -> Result<(), StepError> {
    walk(path, rel, cancel, &mut |found| {
        match found.node {
            Node::Dir => {}
            Node::File => {
                let mut file = File::open(found.path).map_err(|e| io_error("read", found.path, &e))?;
                let (digest, _) =
                    digest_stream(&mut file, cancel, |_| Ok(())).map_err(|e| stream_error("read", found.path, &e))?;
                into.insert(found.rel.to_string(), digest);
            }
            Node::Other(_) => into.insert(found.rel.to_string(), "-".to_string()),
        }
        Ok(())
    })
}

/// How many files are at or under `path`.
pub(crate) fn count_files(path: &Path, cancel: &CancellationToken) -> Result<u64, StepError> {
    let mut files = 0;
    walk(path, "", cancel, &mut |found| {
        files += u64::from(found.node == Node::File);
        Ok(())
    })?;
    Ok(files)
}

/// Copies the file or tree at `from` to `to` (which must not exist), with
/// its permissions, each file and directory made durable. Returns how many
/// files were copied.
pub(crate) fn copy_tree(from: &Path, to: &Path, cancel: &CancellationToken) -> Result<u64, StepError> {
    let mut files = 0;
    let mut dirs = DirModes::default();
    walk(from, "", cancel, &mut |found| {
        // The walk names what is under `from` `/a`, `/a/b`, and `from` itself ``.
        let target = match found.rel.strip_prefix('/') {
            Some(rel) => to.join(rel),
            None => to.to_path_buf(),
        };
        match found.node {
            Node::Dir => {
                fs::create_dir(&target).map_err(|e| io_error("create", &target, &e))?;
                if let Some(meta) = found.meta {
                    dirs.push(target, meta.permissions());
                }
            }
            Node::File => {
                fs::copy(found.path, &target).map_err(|e| io_error("copy", found.path, &e))?;
                File::open(&target)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| io_error("sync", &target, &e))?;
                files += 1;
            }
            Node::Other(what) => {
                return Err(StepError::new(format!(
                    "cannot copy `{}`: it is {what}",
                    found.path.display()
                )));
            }
        }
        Ok(())
    })?;
    dirs.apply()?;
    Ok(files)
}

/// Directories made by a copy, whose permissions are set (and entries made
/// durable) only once they are filled, so that a read-only directory can
/// still be copied.
#[derive(Default)]
pub(crate) struct DirModes {
    dirs: Vec<(PathBuf, Permissions)>,
}

impl DirModes {
    pub(crate) fn push(&mut self, dir: PathBuf, permissions: Permissions) {
        self.dirs.push((dir, permissions));
    }

    /// Sets each directory's permissions, children first, and syncs it.
    pub(crate) fn apply(self) -> Result<(), StepError> {
        for (dir, permissions) in self.dirs.into_iter().rev() {
            crate::file_work::sync_dir(&dir)?;
            let mode = Permissions::from_mode(permissions.mode() & 0o7777);
            fs::set_permissions(&dir, mode).map_err(|e| io_error("set the permissions of", &dir, &e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn walks_in_order_and_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("b/c/d.txt"), "d").unwrap();
        symlink(root.join("a.txt"), root.join("link")).unwrap();
        symlink(dir.path().join("nowhere"), root.join("dangling")).unwrap();
        let mut seen = Vec::new();
        walk(&root, "data", &CancellationToken::new(), &mut |found| {
            seen.push(format!("{} {:?}", found.rel, found.node));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                "data Dir",
                "data/a.txt File",
                "data/b Dir",
                "data/b/c Dir",
                "data/b/c/d.txt File",
                "data/dangling Other(\"a symbolic link to nothing\")",
                "data/link File",
            ]
        );
        let mut manifest = Manifest::default();
        digest_tree(&root, "data", &CancellationToken::new(), &mut manifest).unwrap();
        assert_eq!(manifest.len(), 4);
        assert_eq!(count_files(&root, &CancellationToken::new()).unwrap(), 3);
    }

    #[test]
    fn a_link_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        fs::create_dir_all(root.join("sub")).unwrap();
        symlink(&root, root.join("sub/up")).unwrap();
        let error = walk(&root, "data", &CancellationToken::new(), &mut |_| Ok(())).unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "`{}` is a symbolic link to a directory that holds it",
                root.join("sub/up").display()
            )
        );
    }

    #[test]
    fn copies_a_tree_with_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        fs::create_dir_all(from.join("ro")).unwrap();
        fs::write(from.join("ro/x"), "x").unwrap();
        fs::write(from.join("secret"), "s").unwrap();
        fs::set_permissions(from.join("secret"), Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(from.join("ro"), Permissions::from_mode(0o555)).unwrap();
        let to = dir.path().join("to");
        assert_eq!(copy_tree(&from, &to, &CancellationToken::new()).unwrap(), 2);
        assert_eq!(fs::read_to_string(to.join("ro/x")).unwrap(), "x");
        let mode = |p: &str| fs::metadata(to.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("secret"), mode("ro")), (0o600, 0o555));
        // A single file copies too.
        let one = dir.path().join("one");
        assert_eq!(
            copy_tree(&from.join("secret"), &one, &CancellationToken::new()).unwrap(),
            1
        );
        assert_eq!(fs::read_to_string(one).unwrap(), "s");
        fs::set_permissions(from.join("ro"), Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(to.join("ro"), Permissions::from_mode(0o755)).unwrap();
    }
}
