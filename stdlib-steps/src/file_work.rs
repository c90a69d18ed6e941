//! What the file kinds (`file.*`, `json.*`) share: running blocking file
//! work off the async runtime so that it can still be cancelled, and the
//! small pieces every atomic update is built from (a unique sibling name,
//! a timestamp for names, fsync of a directory, errors in words).
//!
//! File work runs on tokio's blocking pool. A blocking task cannot be
//! stopped from outside, so it checks a cancellation token between files
//! and between chunks of a file, and cleans up what it made before it ends.
//! The step's future waits for it even when cancelled: a rollback that
//! starts next must find the files in a known state, not half-written.

use runbook_engine::step::StepError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// Runs `work` on the blocking pool with a token that is cancelled when
/// `cancel` is, or when the step's future is dropped.
pub(crate) async fn blocking<T, F>(cancel: &CancellationToken, work: F) -> Result<T, StepError>
where
    T: Send + 'static,
    F: FnOnce(&CancellationToken) -> Result<T, StepError> + Send + 'static,
{
    let token = cancel.child_token();
    let _cancel_on_drop = token.clone().drop_guard();
    match tokio::task::spawn_blocking(move || work(&token)).await {
        Ok(outcome) => outcome,
        Err(e) => Err(StepError::new(format!("the file work stopped unexpectedly: {e}"))),
    }
}

/// `Err(cancelled)` once `cancel` is cancelled: called at the points where
/// file work can stop cleanly.
pub(crate) fn check(cancel: &CancellationToken) -> Result<(), StepError> {
    if cancel.is_cancelled() {
        Err(crate::cancelled())
    } else {
        Ok(())
    }
}

/// The time now for a file name, as `20261122T010203Z` (UTC; sorts as time).
pub(crate) fn stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    runbook_engine::execute::format_timestamp(secs).replace(['-', ':'], "")
}

/// Four random hex digits, so that two names made in one second differ.
pub(crate) fn unique() -> String {
    format!("{:04x}", fastrand::u16(..))
}

/// `base`, or `base-2`, `base-3`, ... : the first of them that does not exist.
pub(crate) fn free_name(base: PathBuf) -> PathBuf {
    let mut candidate = base.clone();
    let mut n = 2;
    while candidate.symlink_metadata().is_ok() {
        let mut name = base.clone().into_os_string();
        name.push(format!("-{n}"));
        candidate = name.into();
        n += 1;
    }
    candidate
}

/// The directory holding `path`: `.` for a bare name.
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The last component of `path` as text, or why it has none that can be used.
pub(crate) fn base_name(path: &Path) -> Result<&str, String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("`{}` has no file name", path.display()))?;
    name.to_str()
        .ok_or_else(|| format!("`{}` is not valid UTF-8", path.display()))
}

/// Makes a directory's entries (a rename, a new file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StepError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync", dir, &e))
}

/// `cannot read `/x`: permission denied`.
pub(crate) fn io_error(action: &str, path: &Path, error: &io::Error) -> StepError {
    StepError::new(format!(
        "cannot {action} `{}`: {}",
        path.display(),
        crate::os_error_words(&error.to_string())
    ))
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, as hex.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// How much is read at a time; cancellation is checked between chunks.
const CHUNK: usize = 1 << 20;

/// Reads `reader` to its end in chunks, passing each to `sink`, and returns
/// the SHA-256 of everything read and how many bytes it was.
pub(crate) fn digest_stream(
    reader: &mut dyn Read,
    cancel: &CancellationToken,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(String, u64), io::Error> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; CHUNK];
    let mut total = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        sink(&buffer[..n])?;
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// Turns an error of [`digest_stream`] into the step's error: cancellation
/// as such, anything else as `cannot {action} `path`: ...`.
pub(crate) fn stream_error(action: &str, path: &Path, error: &io::Error) -> StepError {
    if error.kind() == io::ErrorKind::Interrupted {
        crate::cancelled()
    } else {
        io_error(action, path, error)
    }
}

/// A file or directory being built under a temporary name: removed when
/// dropped, unless [`Scratch::keep`] was called once it was moved into
/// place.
pub(crate) struct Scratch {
    path: Option<PathBuf>,
}

impl Scratch {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().expect("a scratch path until kept")
    }

    /// The path has been renamed into place (or handed on): leave it.
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_any(&path);
        }
    }
}

/// Removes a file, a symbolic link or a whole directory, as best it can.
pub(crate) fn remove_any(path: &Path) {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// What the file kinds' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use crate::tests::{FakeHost, run};
    use serde_json::{Value as Json, json};
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    /// A live tree under `dir/live`: `data/` with `ledger.db` and
    /// `blocks/0001`, and `config.yaml`. Returns the paths of `data` and
    /// `config.yaml`.
    pub(crate) fn live(dir: &Path) -> (PathBuf, PathBuf) {
        let data = dir.join("live/data");
        fs::create_dir_all(data.join("blocks")).unwrap();
        fs::write(data.join("ledger.db"), "ledger v1").unwrap();
        fs::write(data.join("blocks/0001"), "block one").unwrap();
        let config = dir.join("live/config.yaml");
        fs::write(&config, "mode: normal\n").unwrap();
        (data, config)
    }

    /// Takes a snapshot of the live tree of [`live`] into `dir/backups` in
    /// `format`, and returns the step's result.
    pub(crate) async fn snapshot(dir: &Path, format: &str) -> Json {
        let (data, config) = (dir.join("live/data"), dir.join("live/config.yaml"));
        let host = Arc::new(FakeHost::new());
        let params = json!({"paths": [data, config], "into": dir.join("backups"), "format": format});
        run("file.snapshot", &host, params).await.expect("a snapshot")
    }

    /// Every file under `dir` with its contents, `path=contents` per line.
    pub(crate) fn listing(dir: &Path) -> String {
        let mut lines = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in fs::read_dir(&path).unwrap() {
                    stack.push(entry.unwrap().path());
                }
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                lines.push(format!("{rel}={}", fs::read_to_string(&path).unwrap_or_default()));
            }
        }
        lines.sort();
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_as_time_and_fit_in_names() {
        let stamp = stamp();
        assert_eq!(stamp.len(), 16, "{stamp}");
        assert!(stamp.starts_with("20") && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T');
        assert!(stamp.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(unique().len(), 4);
    }

    #[test]
    fn free_names_skip_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("x.bak");
        assert_eq!(free_name(base.clone()), base);
        std::fs::write(&base, "").unwrap();
        assert_eq!(free_name(base.clone()), dir.path().join("x.bak-2"));
        std::fs::write(dir.path().join("x.bak-2"), "").unwrap();
        assert_eq!(free_name(base), dir.path().join("x.bak-3"));
    }

    #[test]
    fn names_and_parents() {
        assert_eq!(parent_of(Path::new("x")), Path::new("."));
        assert_eq!(parent_of(Path::new("/a/x")), Path::new("/a"));
        assert_eq!(base_name(Path::new("/a/x/")), Ok("x"));
        assert_eq!(base_name(Path::new("/")), Err("`/` has no file name".to_string()));
        assert_eq!(base_name(Path::new("a/..")), Err("`a/..` has no file name".to_string()));
    }

    #[test]
    fn digests_streams() {
        let mut seen = Vec::new();
        let (digest, n) = digest_stream(&mut &b"abc"[..], &CancellationToken::new(), |chunk| {
            seen.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!((n, seen.as_slice()), (3, &b"abc"[..]));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let error = digest_stream(&mut &b"abc"[..], &cancel, |_| Ok(())).unwrap_err();
        assert!(matches!(
            stream_error("read", Path::new("x"), &error).message.as_str(),
            "cancelled"
        ));
    }
}
