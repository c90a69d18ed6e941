//! Fault injection for the crash tests: kill the process at a named point,
//! or make the journal fail as a full disk would. Compiled in only with the
//! `test-hooks` feature, which the test suites enable and release builds
//! do not: without it every hook is an empty function.

/// Dies here (SIGKILL, as a power cut would) when `RUNBOOK_TEST_CRASH_AT`
/// names this point: `NAME` for its first hit, `NAME#N` for its N-th.
/// Several points may be given, separated by commas.
pub fn crash_point(name: &str) {
    #[cfg(feature = "test-hooks")]
    hooks::crash_point(name);
    #[cfg(not(feature = "test-hooks"))]
    let _ = name;
}

/// Dies right after journal record `seq` was written, when
/// `RUNBOOK_TEST_CRASH_AFTER_EVENTS` is `seq`.
pub fn crash_after_event(seq: u64) {
    #[cfg(feature = "test-hooks")]
    hooks::crash_after_event(seq);
    #[cfg(not(feature = "test-hooks"))]
    let _ = seq;
}

/// The error a journal write gets as if the disk were full, once
/// `RUNBOOK_TEST_JOURNAL_FULL_AFTER` records (the header included) were
/// written by this process.
pub fn journal_write_fault() -> Option<std::io::Error> {
    #[cfg(feature = "test-hooks")]
    return hooks::journal_write_fault();
    #[cfg(not(feature = "test-hooks"))]
    None
}

#[cfg(feature = "test-hooks")]
mod hooks {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn die() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught; wait for it to land.
        loop {
            std::thread::park();
        }
    }

    pub fn crash_point(name: &str) {
        let Ok(wanted) = std::env::var("RUNBOOK_TEST_CRASH_AT") else {
            return;
        };
        static HITS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
        let hit = {
            let Ok(mut hits) = HITS.lock() else { return };
            let count = hits
                .get_or_insert_with(HashMap::new)
                .entry(name.to_string())
                .or_insert(0);
            *count += 1;
            *count
        };
        for point in wanted.split(',').map(str::trim) {
            let (point, nth) = match point.split_once('#') {
                Some((point, n)) => (point, n.parse().unwrap_or(1)),
                None => (point, 1),
            };
            if point == name && nth == hit {
                die();
            }
        }
    }

    pub fn crash_after_event(seq: u64) {
        let wanted = std::env::var("RUNBOOK_TEST_CRASH_AFTER_EVENTS")
            .ok()
            .and_then(|n| n.parse::<u64>().ok());
        if wanted == Some(seq) {
            die();
        }
    }

    pub fn journal_write_fault() -> Option<std::io::Error> {
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let limit: u64 = std::env::var("RUNBOOK_TEST_JOURNAL_FULL_AFTER").ok()?.parse().ok()?;
        let done = WRITES.fetch_add(1, Ordering::SeqCst);
        (done >= limit).then(|| std::io::Error::from_raw_os_error(nix::libc::ENOSPC))
    }
}
