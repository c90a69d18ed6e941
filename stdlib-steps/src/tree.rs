//! Walking a file or a directory tree on disk the way a snapshot sees it,
//! and the copies and digests built on that walk.
//!
//! A snapshot holds regular files, directories and symbolic links. A link
//! is never followed: it is kept as a link (what it points to, as text), so
//! a link to a secret outside the tree does not copy the secret, and a link
//! back up the tree is not an endless walk. Anything else (a socket, a
//! device, a named pipe) is reported to the visitor as [`Node::Other`], for
//! the caller to refuse or to list as changed.

use runbook_engine::step::StepError;
use std::fs::{self, File, Metadata, Permissions};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

use crate::file_work::{check, digest_stream, io_error, stream_error};
use crate::manifest::Manifest;

/// What a path in a walked tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File,
    /// A symbolic link; [`Found::link`] says what it points to.
    Link,
    /// None of those, in words: `a socket`, `a device`.
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
    /// The path's own metadata (a link's, not its target's).
    pub meta: &'a Metadata,
    /// What a link points to, as stored in the link.
    pub link: Option<&'a Path>,
}

/// Visits `path` and, if it is a directory, everything under it, parents
/// before children and names in byte order. `rel` is the name `path` gets.
pub(crate) fn walk(
    path: &Path,
    rel: &str,
    cancel: &CancellationToken,
    visit: &mut dyn FnMut(&Found<'_>) -> Result<(), StepError>,
) -> Result<(), StepError> {
    check(cancel)?;
    let meta = fs::symlink_metadata(path).map_err(|e| io_error("read", path, &e))?;
    let kind = meta.file_type();
    let found = |node, link| Found {
        path,
        rel,
        node,
        meta: &meta,
        link,
    };
    if kind.is_symlink() {
        let target = fs::read_link(path).map_err(|e| io_error("read the link", path, &e))?;
        return visit(&found(Node::Link, Some(&target)));
    }
    if kind.is_file() {
        return visit(&found(Node::File, None));
    }
    if !kind.is_dir() {
        let what = if kind.is_fifo() {
            "a named pipe"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "neither a file, a directory nor a link"
        };
        return visit(&found(Node::Other(what), None));
    }
    visit(&found(Node::Dir, None))?;
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
    for (name, child) in children {
        walk(&child, &format!("{rel}/{name}"), cancel, visit)?;
    }
    Ok(())
}

/// Adds the SHA-256 of every file at or under `path` to `into`, named
/// `rel/...`, and every link with the digest of what it points to. What is
/// none of those goes in with `-` for a digest, so that it shows as changed
/// or extra.
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
            Node::Link => into.insert_link(found.rel.to_string(), found.link.unwrap_or(Path::new(""))),
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
/// its permissions, each file and directory made durable; links are copied
/// as links. Returns how many files were copied.
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
                dirs.push(target, found.meta.permissions());
            }
            Node::Link => {
                let link = found.link.unwrap_or(Path::new(""));
                std::os::unix::fs::symlink(link, &target).map_err(|e| io_error("create the link", &target, &e))?;
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
    fn walks_in_order_and_keeps_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("b/c/d.txt"), "d").unwrap();
        symlink("a.txt", root.join("link")).unwrap();
        symlink(dir.path().join("nowhere"), root.join("dangling")).unwrap();
        // A link up the tree is a link like any other, not a loop.
        symlink("..", root.join("b/up")).unwrap();
        let mut seen = Vec::new();
        walk(&root, "data", &CancellationToken::new(), &mut |found| {
            let link = found.link.map(|l| format!(" -> {}", l.display())).unwrap_or_default();
            seen.push(format!("{} {:?}{link}", found.rel, found.node));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                "data Dir".to_string(),
                "data/a.txt File".to_string(),
                "data/b Dir".to_string(),
                "data/b/c Dir".to_string(),
                "data/b/c/d.txt File".to_string(),
                "data/b/up Link -> ..".to_string(),
                format!("data/dangling Link -> {}", dir.path().join("nowhere").display()),
                "data/link Link -> a.txt".to_string(),
            ]
        );
        let mut manifest = Manifest::default();
        digest_tree(&root, "data", &CancellationToken::new(), &mut manifest).unwrap();
        assert_eq!((manifest.len(), manifest.links()), (2, 3));
        assert_eq!(count_files(&root, &CancellationToken::new()).unwrap(), 2);
    }

    #[test]
    fn a_socket_is_other() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let mut seen = Vec::new();
        walk(&socket, "s", &CancellationToken::new(), &mut |found| {
            seen.push(found.node);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [Node::Other("a socket")]);
    }

    #[test]
    fn copies_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        fs::create_dir_all(&from).unwrap();
        fs::write(dir.path().join("secret"), "SECRET").unwrap();
        symlink(dir.path().join("secret"), from.join("link")).unwrap();
        let to = dir.path().join("to");
        assert_eq!(copy_tree(&from, &to, &CancellationToken::new()).unwrap(), 0);
        assert!(to.join("link").symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(fs::read_link(to.join("link")).unwrap(), dir.path().join("secret"));
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
