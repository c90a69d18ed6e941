//! Asking a plugin what it provides (`describe`), bounded in time and
//! size, and remembering the answer per executable.

use super::protocol::{DescribeAnswer, read_describe};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long `describe` may take, unless `RUNBOOK_PLUGIN_DESCRIBE_TIMEOUT`
/// says otherwise (a duration such as `30s`, for a plugin slow to start).
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

fn describe_timeout() -> Duration {
    std::env::var("RUNBOOK_PLUGIN_DESCRIBE_TIMEOUT")
        .ok()
        .and_then(|text| crate::words::parse_timeout(&text).ok())
        .unwrap_or(DESCRIBE_TIMEOUT)
}

/// The most a `describe` answer may be.
const MAX_ANSWER: usize = 4 << 20;

/// Where describe answers are kept: `$RUNBOOK_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/runbook`, else `~/.cache/runbook`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("RUNBOOK_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("runbook")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("runbook")))
}

/// What the plugin at `path` answers to `describe`, from the cache when the
/// executable has not changed (same path, size and modification time).
pub fn describe(path: &Path, dir: &Path) -> Result<DescribeAnswer, String> {
    describe_cached_in(path, dir, cache_dir().as_deref())
}

/// [`describe`], with the answers kept in `cache` (none: always asked).
pub(super) fn describe_cached_in(path: &Path, dir: &Path, cache: Option<&Path>) -> Result<DescribeAnswer, String> {
    let cached = cache.and_then(|cache| cache_file(path, cache));
    if let Some(file) = &cached
        && let Ok(bytes) = std::fs::read(file)
        && let Ok(answer) = serde_json::from_slice::<DescribeAnswer>(&bytes)
    {
        return Ok(answer);
    }
    let answer = ask(path, dir)?;
    if let Some(file) = cached {
        store(&file, &answer);
    }
    Ok(answer)
}

/// The cache file for the executable at `path` as it is now.
fn cache_file(path: &Path, cache: &Path) -> Option<PathBuf> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&canonical).ok()?;
    let mut hash = Sha256::new();
    hash.update(canonical.as_os_str().as_encoded_bytes());
    hash.update(meta.len().to_le_bytes());
    hash.update(meta.mtime().to_le_bytes());
    hash.update(meta.mtime_nsec().to_le_bytes());
    hash.update(meta.ino().to_le_bytes());
    let name: String = hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(cache.join("plugins").join(format!("{name}.json")))
}

/// Keeps an answer; a cache that cannot be written is no error (the plugin
/// is asked again next time).
fn store(file: &Path, answer: &DescribeAnswer) {
    let Some(folder) = file.parent() else { return };
    if std::fs::create_dir_all(folder).is_err() {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(answer) else { return };
    let temporary = folder.join(format!(".{}.{}", std::process::id(), fastrand::u64(..)));
    if std::fs::write(&temporary, bytes).is_ok() && std::fs::rename(&temporary, file).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

/// Runs `PATH describe` in its own process group, for at most
/// [`DESCRIBE_TIMEOUT`], and reads its answer.
fn ask(path: &Path, dir: &Path) -> Result<DescribeAnswer, String> {
    let mut child = Command::new(path)
        .arg("describe")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot be started: {}", crate::kit::os_error_words(&e.to_string())))?;
    let group = nix::unistd::Pid::from_raw(child.id().cast_signed());
    let (sender, receiver) = mpsc::channel();
    let read = |stream: Option<Box<dyn Read + Send>>, which: u8| {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(stream) = stream {
                let _ = stream.take(MAX_ANSWER as u64 + 1).read_to_end(&mut bytes);
            }
            let _ = sender.send((which, bytes));
        });
    };
    read(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>), 0);
    read(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>), 1);
    let started = Instant::now();
    let limit = describe_timeout();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                // Still running (or lost): the whole group goes.
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
        }
    };
    // What it left behind in its group goes too, so the pipes close.
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        match receiver.recv_timeout(Duration::from_secs(1)) {
            Ok((0, bytes)) => stdout = bytes,
            Ok((_, bytes)) => stderr = bytes,
            Err(_) => break,
        }
    }
    let Some(status) = status else {
        return Err(format!(
            "did not answer `describe` within {} and was stopped",
            crate::words::format_duration(limit)
        ));
    };
    if !status.success() {
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "failed".to_string(),
        };
        return Err(format!("failed to `describe` itself: it {how}{}", stderr_tail(&stderr)));
    }
    if stdout.len() > MAX_ANSWER {
        return Err(format!("answered `describe` with more than {} MiB", MAX_ANSWER >> 20));
    }
    read_describe(&stdout)
}

/// The last line of what a plugin wrote on stderr, as `; its stderr ends: …`.
pub(super) fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => {
            let line: String = line.trim().chars().take(200).collect();
            format!("; its stderr ends: {line}")
        }
        None => String::new(),
    }
}
