//! Run locks: two runs with the same lock key never overlap on one machine.
//! The lock is an OS file lock, so a lock held by a process that died is
//! released by the OS, never by guessing from a stale file.
//!
//! Lock files live in one place per user on the machine, whatever state
//! directory a run uses: `$RUNBOOK_LOCK_DIR`, else `$XDG_RUNTIME_DIR/runbook/locks`,
//! else `/run/user/UID/runbook/locks`, else `/tmp/runbook-UID/locks`
//! (made private to the user, and refused if someone else owns it).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another run holds the lock `{key}`: {holder}")]
    Held { key: String, holder: String },
    #[error("cannot take the lock `{key}` ({}): {source}", path.display())]
    Io {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lock directory {} is not safe to use: {why}", dir.display())]
    UnsafeDir { dir: PathBuf, why: String },
}

impl LockError {
    /// What to do about it.
    pub fn help(&self) -> String {
        match self {
            LockError::Held { .. } => {
                "two runs with the same lock key never overlap; wait for the other run, or check `runbook runs`".into()
            }
            LockError::Io { .. } => {
                "this is not another run: the lock file could not be used; check that the lock directory \
                 exists and is writable, or set RUNBOOK_LOCK_DIR"
                    .into()
            }
            LockError::UnsafeDir { .. } => {
                "remove it, or set RUNBOOK_LOCK_DIR (or XDG_RUNTIME_DIR) to a directory only you can write".into()
            }
        }
    }
}

/// Where this user's lock files are kept on this machine.
pub fn lock_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, LockError> {
    if let Some(dir) = env("RUNBOOK_LOCK_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(runtime) = env("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())
        && Path::new(&runtime).is_dir()
    {
        return Ok(Path::new(&runtime).join("runbook").join("locks"));
    }
    let uid = nix::unistd::getuid();
    let runtime = PathBuf::from(format!("/run/user/{uid}"));
    if runtime.is_dir() {
        return Ok(runtime.join("runbook").join("locks"));
    }
    // A shared folder: ours only if we made it (or own it) and no one else can write it.
    let base = PathBuf::from(format!("/tmp/runbook-{uid}"));
    let unsafe_dir = |why: String| LockError::UnsafeDir { dir: base.clone(), why };
    match std::fs::DirBuilder::new().mode(0o700).create(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(unsafe_dir(e.to_string())),
    }
    let meta = std::fs::symlink_metadata(&base).map_err(|e| unsafe_dir(e.to_string()))?;
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    if meta.uid() != uid.as_raw() {
        return Err(unsafe_dir(format!("it belongs to user {}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir("others can write to it".into()));
    }
    Ok(base.join("locks"))
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub key: String,
}

fn file_name(key: &str) -> String {
    let readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{readable}-{}.lock", &super::sha256(key.as_bytes())[..12])
}

/// Takes the lock `key` for `run_id` in the lock directory `dir`, or says who holds it.
pub fn acquire(dir: &Path, key: &str, run_id: &str) -> Result<RunLock, LockError> {
    let path = dir.join(file_name(key));
    let io = |source| LockError::Io {
        key: key.to_string(),
        path: path.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            writeln!(file, "run {run_id} (pid {})", std::process::id()).map_err(io)?;
            file.sync_data().map_err(io)?;
            Ok(RunLock {
                _file: file,
                key: key.to_string(),
            })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            Err(LockError::Held {
                key: key.to_string(),
                holder: if holder.is_empty() {
                    "a run that is starting".into()
                } else {
                    holder.to_string()
                },
            })
        }
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "dns-failover-api.example.com", "run-1").unwrap();
        let error = acquire(dir.path(), "dns-failover-api.example.com", "run-2").unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("run run-1 (pid {})", std::process::id())),
            "{error}"
        );
        assert!(acquire(dir.path(), "another key", "run-3").is_ok());
        drop(first);
        assert!(acquire(dir.path(), "dns-failover-api.example.com", "run-2").is_ok());
    }
}
