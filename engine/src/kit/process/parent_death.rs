//! The one place in the workspace that runs code in a child process between
//! `fork` and `exec`, which Rust can only do through the `unsafe`
//! `pre_exec`: it asks the kernel to send the command SIGKILL when
//! `runbook` dies, so that a `runbook` killed with SIGKILL (or by the OOM
//! killer) does not leave a step's command running on its own while a
//! resumed run starts it again.
//!
//! No maintained crate offers this safely (process-wrap and command-group
//! set process groups and sessions, not the parent-death signal), and
//! the code is two system calls, so it lives here rather than behind a new
//! dependency. The workspace denies `unsafe_code`; this module alone
//! expects it.
//!
//! What it does not cover, and why the supervisor in
//! [`crate::kit::process`] journals the group and a token as well:
//! - The signal reaches the direct child only; its children, and anything
//!   it starts in the background, live on.
//! - The kernel clears it when the command executes a set-user-id or
//!   set-group-id program (`sudo`), or one with file capabilities.
//! - "Parent" is the thread that spawned the child: the signal also comes if
//!   that thread ends while `runbook` lives on. Commands are spawned by the
//!   runtime's worker threads (or the thread of a current-thread runtime),
//!   which live as long as the runtime; never spawn a step's command from
//!   `spawn_blocking`, whose threads end when idle.

use nix::sys::signal::Signal;
use nix::unistd::{Pid, getpid, getppid};
use tokio::process::Command;

/// Makes `command` receive SIGKILL when this process dies. (Tested end to
/// end: `tests/hardening_processes.rs` kills `runbook` with SIGKILL and sees
/// the step's command die.)
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "`pre_exec` is the only way to set the parent-death signal of a child before it executes"
)]
pub fn die_with_parent(command: &mut Command) {
    let parent: Pid = getpid();
    let in_child = move || -> std::io::Result<()> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
        // The parent may have died between `fork` and the call above, and
        // then the signal will never come: give up rather than run unwatched.
        if getppid() != parent {
            return Err(std::io::Error::from(nix::errno::Errno::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child, where only
    // async-signal-safe functions may be called. It makes two system calls,
    // prctl(2) and getppid(2), through nix's thin wrappers, which read
    // `errno` and nothing else; it does not allocate (an `io::Error` made
    // from an errno is a plain number), take a lock, or panic; it only
    // copies `parent`, a plain integer captured before the fork.
    unsafe {
        command.pre_exec(in_child);
    }
}

/// Elsewhere there is no parent-death signal; the supervisor's group and
/// token still stop what a step started.
#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_command: &mut Command) {}
