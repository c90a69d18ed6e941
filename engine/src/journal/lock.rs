//! Run locks: two runs with the same lock key never overlap on one machine.
//! The lock is an OS file lock, so a lock held by a process that died is
//! released by the OS, never by guessing from a stale file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
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

/// Takes the lock `key` for `run_id`, or says who holds it.
pub fn acquire(state_dir: &Path, key: &str, run_id: &str) -> Result<RunLock, LockError> {
    let dir = state_dir.join("locks");
    let path = dir.join(file_name(key));
    let io = |source| LockError::Io {
        key: key.to_string(),
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
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
