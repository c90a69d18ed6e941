//! What `/proc` says about the system's processes: for each its parent,
//! process group, whether it is a zombie, and when it started; and whether
//! its environment holds a given entry. The `shell` kind's process
//! supervisor ([`crate::kit::process`]) finds an attempt's processes with
//! it.
//!
//! A pid alone does not name a process for long: pids are reused, after as
//! few as 32,768 processes where `pid_max` is low. A pid together with the
//! start time does, so everything here carries both.

use std::path::Path;

/// One process, as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// It has ended and waits to be reaped by its parent.
    pub zombie: bool,
    /// When it started, in clock ticks after boot (field 22 of `stat`).
    pub start_time: u64,
}

impl ProcessInfo {
    /// Process `pid` as it is now, if it exists (a zombie still does).
    pub fn read(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Self::parse(pid, &stat)
    }

    /// Reads `pid (name) state ppid pgrp session ... starttime ...`, where
    /// the name may hold spaces and parentheses: the fields start after its
    /// last `)`.
    fn parse(pid: i32, stat: &str) -> Option<Self> {
        let (_, fields) = stat.rsplit_once(')')?;
        let mut fields = fields.split_ascii_whitespace();
        let state = fields.next()?;
        let ppid = fields.next()?.parse().ok()?;
        let pgid = fields.next()?.parse().ok()?;
        // After pgrp (field 5) come 16 fields before starttime (field 22).
        let start_time = fields.nth(16)?.parse().ok()?;
        Some(Self {
            pid,
            ppid,
            pgid,
            zombie: matches!(state, "Z" | "X" | "x"),
            start_time,
        })
    }

    /// Whether this is still the process that was seen at `start_time`.
    pub fn is(&self, start_time: u64) -> bool {
        self.start_time == start_time
    }
}

/// Every process on the system but this one, as it is now. Empty where
/// there is no `/proc`.
pub fn scan() -> Vec<ProcessInfo> {
    let this = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != this)
        .filter_map(|pid| ProcessInfo::read(i32::try_from(pid).ok()?))
        .collect()
}

/// The children of this process, from `/proc/self/task/*/children`; `None`
/// where the kernel does not list them.
pub fn own_children() -> Option<Vec<i32>> {
    if !Path::new("/proc/thread-self/children").exists() {
        return None;
    }
    let mut children = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        // A thread that ended meanwhile has no list any more.
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(list.split_ascii_whitespace().filter_map(|pid| pid.parse::<i32>().ok()));
        }
    }
    Some(children)
}

/// Whether the environment process `pid` started with holds `entry`
/// (`NAME=value`) exactly. False when it cannot be read: another user's
/// process, a zombie, a kernel thread.
pub fn environment_holds(pid: i32, entry: &[u8]) -> bool {
    let Ok(environ) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("environ")) else {
        return false;
    };
    environ.split(|b| *b == 0).any(|item| item == entry)
}

/// This boot's id: start times count from boot, so they compare only
/// within one.
pub fn boot_id() -> Option<String> {
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
            Some(id.trim().to_string())
        })
        .clone()
}

/// Kills, when dropped, every process whose arguments hold `marker`: a
/// failed test of a kind that starts processes leaves nothing running.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in with_marker(&self.0) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The running processes with `marker` among their arguments (for tests).
pub fn with_marker(marker: &str) -> Vec<i32> {
    scan()
        .into_iter()
        .filter(|p| !p.zombie)
        .filter(|p| {
            std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == marker.as_bytes()))
        })
        .map(|p| p.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stat_line_whatever_the_name() {
        let line = "4242 (a) b (c)) S 4000 4241 4000 34816 4241 4194304 93 0 0 0 0 0 0 0 20 0 1 0 123456 2457600 220 18446744073709551615 0 0 0 0 0 0 0 0 65536 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            ProcessInfo::parse(4242, line),
            Some(ProcessInfo {
                pid: 4242,
                ppid: 4000,
                pgid: 4241,
                zombie: false,
                start_time: 123456,
            })
        );
        let zombie = line.replace(") S ", ") Z ");
        assert!(ProcessInfo::parse(4242, &zombie).unwrap().zombie);
        assert_eq!(ProcessInfo::parse(1, "1 (init"), None);
    }

    #[test]
    fn sees_this_process_and_its_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .env("RUNBOOK_TABLE_TEST", "yes")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // Until it has executed `sleep`, the child's environment is ours.
        for _ in 0..200 {
            if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let info = ProcessInfo::read(pid).unwrap();
        assert_eq!(info.ppid, i32::try_from(std::process::id()).unwrap());
        assert!(info.start_time > 0);
        assert!(scan().iter().any(|p| p.pid == pid && p.is(info.start_time)));
        assert!(own_children().unwrap().contains(&pid));
        assert!(environment_holds(pid, b"RUNBOOK_TABLE_TEST=yes"));
        assert!(!environment_holds(pid, b"RUNBOOK_TABLE_TEST=ye"));
        assert!(!environment_holds(pid, b"RUNBOOK_TABLE_TEST=yes!"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(boot_id().is_some_and(|id| id.len() > 10));
    }
}
