//! The processes of one step attempt, found however they try to leave, and
//! stopped together: on timeout, on cancellation, when the step's future
//! is dropped, when the command ends and leaves something behind, and, after
//! `runbook` itself died, on resume or rollback ([`recover`]).
//!
//! An attempt's processes are
//! - its command's process group (the command is started as a group leader);
//! - every process whose environment holds its token, `RUNBOOK_STEP_TOKEN`,
//!   which children inherit: this finds those that left the group or the
//!   session (`setsid`, a daemon's double fork), and those of an attempt
//!   whose `runbook` died;
//! - every descendant of those, which finds a process that also cleared its
//!   environment while its parent still runs.
//!
//! `runbook` is made a child subreaper, so that what a command leaves
//! behind is re-parented to `runbook` rather than to init: the zombies it
//! becomes are reaped here, one known pid at a time (never `waitpid(-1)`,
//! which would take exit statuses from tokio's own children). Every signal
//! goes to a pid whose start time was just checked, or to the group while it
//! is provably the attempt's, so a reused pid is never signalled.
//!
//! Right after spawning, the `shell` kind journals the group, its leader's
//! start time and the token ([`ProcessCheckpoint`]); if `runbook` dies, the
//! command gets SIGKILL ([`self::parent_death`]), and on resume [`recover`]
//! stops whatever else survived, before the step runs again.

use crate::step::StepContext;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Once;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use self::table::ProcessInfo;

pub mod output;
mod parent_death;
pub mod table;

/// The environment variable that carries an attempt's token.
pub const TOKEN_VARIABLE: &str = "RUNBOOK_STEP_TOKEN";

/// How often processes being stopped are checked again.
const POLL: Duration = Duration::from_millis(20);

/// How long killed processes get to be gone before the step ends anyway.
/// Only a process stuck in the kernel (such as on a dead NFS mount)
/// outlasts this.
const KILL_WAIT: Duration = Duration::from_secs(1);

/// How long processes left by a run that died get between SIGTERM and
/// SIGKILL: the `--grace` that `runbook` gives by default.
pub const RECOVER_GRACE: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// The token of the attempt whose nested steps are running (a `wait`'s
    /// probes): processes they start carry it, so that the enclosing
    /// step's [`recover`] finds them.
    static ENCLOSING: ProcessToken;
}

/// What marks every process of one attempt, in its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcessToken(String);

impl ProcessToken {
    /// A new token: the run, step and attempt, for a person who finds it
    /// with `ps e`, and 64 random bits, so that no other attempt has it.
    pub fn new(cx: &StepContext) -> Self {
        Self(format!(
            "{}/{}/{}/{:016x}",
            cx.run_id,
            cx.step_id,
            cx.attempt,
            fastrand::u64(..)
        ))
    }

    /// The token of the step this attempt runs inside (a `wait`'s probe),
    /// else a new one.
    pub fn for_attempt(cx: &StepContext) -> Self {
        ENCLOSING.try_with(Clone::clone).unwrap_or_else(|_| Self::new(cx))
    }

    /// Runs `nested` (steps run inside this attempt) so that the processes
    /// they start carry this token.
    pub async fn enclose<F: Future>(self, nested: F) -> F::Output {
        ENCLOSING.scope(self, nested).await
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The environment entry, `RUNBOOK_STEP_TOKEN=...`.
    fn entry(&self) -> Vec<u8> {
        format!("{TOKEN_VARIABLE}={}", self.0).into_bytes()
    }
}

/// What an attempt journals about its processes right after starting them,
/// so that [`recover`] can find them if `runbook` dies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessCheckpoint {
    /// The command's process group: the pid of its leader, the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<i32>,
    /// The leader's start time (field 22 of `/proc/PID/stat`), which tells
    /// it from a later process given the same pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    pub token: ProcessToken,
    /// Start times count from boot: after a restart nothing of the attempt
    /// runs, and its start times mean nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl ProcessCheckpoint {
    /// For an attempt that starts processes only through nested steps.
    pub fn token_only(token: &ProcessToken) -> Self {
        Self {
            pgid: None,
            start_time: None,
            token: token.clone(),
            boot_id: table::boot_id(),
        }
    }

    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

/// How the processes of an attempt came to an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing was running any more.
    AlreadyGone,
    /// They ended on SIGTERM, within the grace period.
    Terminated,
    /// They were still running at the end of the grace period.
    Killed,
}

impl Stopped {
    pub fn words(self) -> &'static str {
        match self {
            Stopped::AlreadyGone => "already gone",
            Stopped::Terminated => "stopped with SIGTERM",
            Stopped::Killed => "killed with SIGKILL after SIGTERM",
        }
    }
}

/// What stopping an attempt's processes came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    pub how: Stopped,
    /// Every process that was signalled, in the order found.
    pub pids: Vec<i32>,
    /// Those still running at the end: they could not be signalled (another
    /// user's) or did not die of SIGKILL in time.
    pub left: Vec<i32>,
}

/// Which processes belong to one attempt.
#[derive(Debug, Clone)]
struct Members {
    /// The process group and its leader's start time.
    group: Option<(i32, Option<u64>)>,
    /// The group is the attempt's whether or not its leader still runs: so
    /// in the process that started it, which has not yet reaped the leader
    /// or has seen the group since. Otherwise the group counts only while
    /// its leader is there with the journaled start time (its id could be
    /// another group's by now).
    group_held: bool,
    token: ProcessToken,
    /// Only processes started at or after this (clock ticks after boot)
    /// can carry the token: the others' environments need not be read.
    not_before: u64,
}

impl Members {
    /// Whether the group's members are the attempt's, as of `table`.
    fn group_counts(&self, table: &[ProcessInfo]) -> Option<i32> {
        let (pgid, start) = self.group?;
        if self.group_held {
            return Some(pgid);
        }
        let start = start?;
        table.iter().any(|p| p.pid == pgid && p.is(start)).then_some(pgid)
    }

    /// The attempt's processes in `table`, zombies included.
    fn find(&self, table: &[ProcessInfo]) -> Vec<ProcessInfo> {
        let group = self.group_counts(table);
        let entry = self.token.entry();
        let mut ours: HashSet<i32> = table
            .iter()
            .filter(|p| {
                Some(p.pgid) == group
                    || (!p.zombie
                        && p.start_time >= self.not_before
                        && !is_kernel_thread(p)
                        && table::environment_holds(p.pid, &entry))
            })
            .map(|p| p.pid)
            .collect();
        // And everything they started.
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in table {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        let mut stack: Vec<i32> = ours.iter().copied().collect();
        while let Some(pid) = stack.pop() {
            for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
                if ours.insert(child) {
                    stack.push(child);
                }
            }
        }
        table.iter().filter(|p| ours.contains(&p.pid)).copied().collect()
    }

    /// Whether the attempt may have processes left, judged cheaply once its
    /// command has ended and been reaped: its group has members, or a child
    /// of this process (a process re-parented here) carries the token. Any
    /// other process of the attempt descends from one of those.
    fn may_remain(&self) -> bool {
        if let Some((pgid, _)) = self.group
            && killpg(Pid::from_raw(pgid), None) != Err(Errno::ESRCH)
        {
            return true;
        }
        let entry = self.token.entry();
        match table::own_children() {
            Some(children) => children.iter().any(|&pid| table::environment_holds(pid, &entry)),
            None => true,
        }
    }
}

fn is_kernel_thread(p: &ProcessInfo) -> bool {
    p.pid == 2 || p.ppid == 2
}

/// Stops an attempt's processes and reaps those re-parented here.
struct Sweep {
    members: Members,
    /// Tokio's child, which tokio reaps: never waited for here.
    leader: Option<i32>,
    /// The attempt's processes seen running, by pid and start time; zombies
    /// among them that are this process's children are reaped.
    seen: HashMap<i32, u64>,
    /// The order they were found in, for the report.
    order: Vec<i32>,
    /// Reap zombies: only in the process that started the attempt, where a
    /// zombie child of ours among its processes was re-parented here. (In a
    /// resumed run none is, and in a test the processes may be the test's
    /// own children.)
    reap: bool,
    /// The group, as of the last look, when it is the attempt's.
    group: Option<i32>,
}

impl Sweep {
    /// In the process that started the attempt, whose command `leader` is.
    fn started_here(members: Members, leader: i32) -> Self {
        Self {
            members,
            leader: Some(leader),
            seen: HashMap::new(),
            order: Vec::new(),
            reap: true,
            group: None,
        }
    }

    /// For an attempt of a run that died.
    fn left_over(members: Members) -> Self {
        Self {
            members,
            leader: None,
            seen: HashMap::new(),
            order: Vec::new(),
            reap: false,
            group: None,
        }
    }

    /// The attempt's processes still running; reaps those that ended here.
    fn running(&mut self) -> Vec<ProcessInfo> {
        let table = table::scan();
        let group = self.members.group_counts(&table);
        self.group = group;
        let mut running = Vec::new();
        for p in self.members.find(&table) {
            if !p.zombie {
                if self.seen.insert(p.pid, p.start_time).is_none() {
                    self.order.push(p.pid);
                }
                running.push(p);
            }
        }
        if self.reap {
            // A zombie's environment cannot be read: it is known by its
            // group, or from when it ran.
            let this = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
            for p in table.iter().filter(|p| p.zombie && p.ppid == this) {
                if Some(p.pid) != self.leader && (self.seen.get(&p.pid) == Some(&p.start_time) || Some(p.pgid) == group)
                {
                    let _ = waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG));
                }
            }
        }
        running
    }

    /// Sends `signal` to each process of `running` that is still the one
    /// seen, and to the group while it is the attempt's.
    fn signal(&self, running: &[ProcessInfo], signal: Signal) {
        if let Some(pgid) = self.group {
            let _ = killpg(Pid::from_raw(pgid), signal);
        }
        for p in running {
            if ProcessInfo::read(p.pid).is_some_and(|now| now.is(p.start_time)) {
                let _ = kill(Pid::from_raw(p.pid), signal);
            }
        }
    }

    /// SIGTERM, up to `grace` for the processes to end, then SIGKILL and up
    /// to [`KILL_WAIT`] for them to be gone. `tick` runs before each look
    /// (to reap tokio's child).
    async fn stop(&mut self, grace: Duration, tick: &mut (dyn FnMut() + Send)) -> StopReport {
        tick();
        let mut running = self.running();
        if running.is_empty() {
            return self.report(Stopped::AlreadyGone, running);
        }
        self.signal(&running, Signal::SIGTERM);
        let mut termed: HashSet<(i32, u64)> = running.iter().map(|p| (p.pid, p.start_time)).collect();
        let deadline = Instant::now() + grace;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
            tick();
            running = self.running();
            if running.is_empty() {
                return self.report(Stopped::Terminated, running);
            }
            // Started meanwhile: they get their SIGTERM too.
            let new: Vec<ProcessInfo> = running
                .iter()
                .filter(|p| termed.insert((p.pid, p.start_time)))
                .copied()
                .collect();
            if !new.is_empty() {
                self.signal(&new, Signal::SIGTERM);
            }
        }
        // A killed process ends when it is next scheduled, which on a busy
        // machine is not at once: wait for that, so that the step does not
        // end before its processes do.
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            self.signal(&running, Signal::SIGKILL);
            tokio::time::sleep(POLL).await;
            tick();
            running = self.running();
            if running.is_empty() || Instant::now() >= deadline {
                return self.report(Stopped::Killed, running);
            }
        }
    }

    /// SIGKILL to everything at once, for a step being dropped; a thread
    /// reaps what ends.
    fn kill_now(mut self) {
        let running = self.running();
        self.signal(&running, Signal::SIGKILL);
        if self.seen.is_empty() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("runbook-reaper".into())
            .spawn(move || {
                let deadline = std::time::Instant::now() + KILL_WAIT;
                while std::time::Instant::now() < deadline {
                    std::thread::sleep(POLL);
                    let running = self.running();
                    if running.is_empty() {
                        break;
                    }
                    self.signal(&running, Signal::SIGKILL);
                }
            });
    }

    fn report(&self, how: Stopped, left: Vec<ProcessInfo>) -> StopReport {
        StopReport {
            how,
            pids: self.order.clone(),
            left: left.iter().map(|p| p.pid).collect(),
        }
    }
}

/// The processes of one running attempt: its command (tokio's child, the
/// leader of a new process group) and everything that belongs with it (see
/// the module's documentation). While armed, dropping it kills them all.
#[derive(Debug)]
pub struct StepProcesses {
    leader: i32,
    members: Members,
    armed: bool,
}

impl StepProcesses {
    /// Starts `command` as the leader of a new process group, carrying
    /// `token`, to be killed if this process dies. From the moment it
    /// returns, dropping the result kills everything the command started.
    pub fn spawn(command: &mut Command, token: &ProcessToken) -> std::io::Result<(Child, Self)> {
        adopt_orphans();
        command
            .env(TOKEN_VARIABLE, token.as_str())
            .process_group(0)
            .kill_on_drop(true);
        self::parent_death::die_with_parent(command);
        let child = command.spawn()?;
        let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
            return Err(std::io::Error::other("the command ended before it could be watched"));
        };
        // The child is not reaped yet, so its `stat` is there to read.
        let start_time = ProcessInfo::read(pid).map(|p| p.start_time);
        let processes = Self {
            leader: pid,
            members: Members {
                group: Some((pid, start_time)),
                group_held: true,
                token: token.clone(),
                not_before: start_time.unwrap_or(0),
            },
            armed: true,
        };
        Ok((child, processes))
    }

    pub fn checkpoint(&self) -> ProcessCheckpoint {
        ProcessCheckpoint {
            pgid: self.members.group.map(|(pgid, _)| pgid),
            start_time: self.members.group.and_then(|(_, start)| start),
            token: self.members.token.clone(),
            boot_id: table::boot_id(),
        }
    }

    /// Stops every process of the attempt: SIGTERM, up to `grace` for them
    /// to end, then SIGKILL. Reaps `child`, the leader, once it ends.
    pub async fn stop(&mut self, child: &mut Child, grace: Duration) -> Stopped {
        let leader_reaped = matches!(child.try_wait(), Ok(Some(_)));
        if leader_reaped && !self.members.may_remain() {
            self.armed = false;
            return Stopped::AlreadyGone;
        }
        let mut sweep = Sweep::started_here(self.members.clone(), self.leader);
        let report = sweep
            .stop(grace, &mut || {
                let _ = child.try_wait();
            })
            .await;
        self.armed = false;
        report.how
    }

    /// Kills every process of the attempt with SIGKILL, at once.
    pub fn kill_now(&mut self) {
        self.armed = false;
        Sweep::started_here(self.members.clone(), self.leader).kill_now();
    }
}

impl Drop for StepProcesses {
    fn drop(&mut self) {
        if self.armed {
            self.kill_now();
        }
    }
}

/// Makes this process the reaper of the orphans its descendants leave, so
/// that a process that leaves its session stays below `runbook` and its exit
/// status does not go to init. Once per process.
fn adopt_orphans() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // It cannot fail on Linux 3.4 or later; without it, orphans are
        // re-parented to init, and the token still finds them.
        #[cfg(target_os = "linux")]
        let _ = nix::sys::prctl::set_child_subreaper(true);
    });
}

/// Stops what an attempt cut short by the death of `runbook` left running,
/// from its [`ProcessCheckpoint`]: every process carrying its token, and its
/// group if the group's leader still runs (checked by its start time, so a
/// reused pid is left alone). SIGTERM, [`RECOVER_GRACE`], then SIGKILL.
pub async fn recover(checkpoint: &Json) -> Result<Option<String>, String> {
    let checkpoint: ProcessCheckpoint = serde_json::from_value(checkpoint.clone()).map_err(|e| {
        format!("its journaled process checkpoint does not read ({e}), so what it started cannot be found")
    })?;
    recover_from(&checkpoint, RECOVER_GRACE).await
}

async fn recover_from(checkpoint: &ProcessCheckpoint, grace: Duration) -> Result<Option<String>, String> {
    if let (Some(then), Some(now)) = (&checkpoint.boot_id, table::boot_id())
        && *then != now
    {
        // The machine restarted: nothing the attempt started still runs.
        return Ok(None);
    }
    let members = Members {
        group: checkpoint.pgid.map(|pgid| (pgid, checkpoint.start_time)),
        group_held: false,
        token: checkpoint.token.clone(),
        not_before: checkpoint.start_time.unwrap_or(0),
    };
    let report = Sweep::left_over(members).stop(grace, &mut || {}).await;
    if !report.left.is_empty() {
        return Err(format!(
            "{} left running by the interrupted attempt could not be stopped (pids {}); stop them by hand, then resume or roll back again",
            processes(report.left.len()),
            pid_list(&report.left)
        ));
    }
    if report.how == Stopped::AlreadyGone {
        return Ok(None);
    }
    let mut words = format!(
        "stopped {} left running by the interrupted attempt (pids {})",
        processes(report.pids.len()),
        pid_list(&report.pids)
    );
    if report.how == Stopped::Killed {
        words.push_str(&format!(
            ", with SIGKILL after {} of SIGTERM",
            crate::words::HumanDuration(grace)
        ));
    }
    Ok(Some(words))
}

fn processes(n: usize) -> String {
    if n == 1 {
        "1 process".to_string()
    } else {
        format!("{n} processes")
    }
}

fn pid_list(pids: &[i32]) -> String {
    pids.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    use super::table::{Cleanup, with_marker};

    fn marker(name: &str) -> String {
        format!("runbook-test-{name}-{:08x}", fastrand::u32(..))
    }

    /// `sh -c 'loop' MARKER`: a process that runs until killed, with the
    /// marker as its `$0`, in its own session when `setsid`, carrying `token`.
    fn linger(marker: &str, token: Option<&str>, setsid: bool) -> std::process::Child {
        let mut command = if setsid {
            let mut command = std::process::Command::new("setsid");
            command.arg("sh");
            command
        } else {
            std::process::Command::new("sh")
        };
        command
            .args(["-c", "while :; do sleep 1; done", marker])
            .stdin(Stdio::null())
            .env_remove(TOKEN_VARIABLE);
        if let Some(token) = token {
            command.env(TOKEN_VARIABLE, token);
        }
        command.spawn().expect("sh starts")
    }

    async fn found(marker: &str, count: usize) -> Vec<i32> {
        for _ in 0..200 {
            let pids = with_marker(marker);
            if pids.len() >= count {
                return pids;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("fewer than {count} processes with {marker} started");
    }

    /// `pid` once it leads its own group: `setsid` carries the marker in
    /// its arguments before it has called setsid(2), so finding the marker
    /// does not mean the new session exists yet.
    async fn own_group(pid: i32) -> ProcessInfo {
        for _ in 0..200 {
            if let Some(info) = ProcessInfo::read(pid).filter(|i| i.pgid == pid) {
                return info;
            }
            tokio::time::sleep(POLL).await;
        }
        ProcessInfo::read(pid).expect("the process runs")
    }

    fn checkpoint(token: &str, group: Option<(i32, u64)>) -> ProcessCheckpoint {
        ProcessCheckpoint {
            pgid: group.map(|g| g.0),
            start_time: group.map(|g| g.1),
            token: ProcessToken(token.into()),
            boot_id: table::boot_id(),
        }
    }

    #[tokio::test]
    async fn the_token_scan_finds_exactly_the_processes_that_carry_the_token() {
        let marker = marker("token");
        let _cleanup = Cleanup(marker.clone());
        let token = format!("run/step/1/{marker}");
        let mut carrier = linger(&marker, Some(&token), true);
        let mut other = linger(&marker, Some(&format!("{token}0")), true);
        let mut plain = linger(&marker, None, false);
        found(&marker, 3).await;
        let members = Members {
            group: None,
            group_held: false,
            token: ProcessToken(token.clone()),
            not_before: 0,
        };
        let pids: Vec<i32> = members
            .find(&table::scan())
            .iter()
            .filter(|p| !p.zombie)
            .map(|p| p.pid)
            .collect();
        let carrier_pid = i32::try_from(carrier.id()).unwrap();
        // `setsid` runs `sh` in its own process (or executes it): the
        // carrier and whatever `sleep` it runs now.
        assert!(pids.contains(&carrier_pid), "{pids:?}");
        assert!(!pids.contains(&i32::try_from(other.id()).unwrap()), "{pids:?}");
        assert!(!pids.contains(&i32::try_from(plain.id()).unwrap()), "{pids:?}");

        let stopped = recover_from(&checkpoint(&token, None), Duration::from_secs(1)).await;
        let words = stopped.unwrap().expect("it stopped the carrier");
        assert!(
            words.starts_with("stopped ") && words.contains(&carrier_pid.to_string()),
            "{words}"
        );
        assert!(
            words.contains("left running by the interrupted attempt (pids "),
            "{words}"
        );
        carrier.wait().unwrap();
        for child in [&mut other, &mut plain] {
            assert_eq!(child.try_wait().unwrap(), None, "only the carrier was stopped");
        }
        // Nothing carries the token any more.
        assert_eq!(
            recover_from(&checkpoint(&token, None), Duration::from_secs(1)).await,
            Ok(None)
        );
        for child in [&mut other, &mut plain] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    #[tokio::test]
    async fn a_group_whose_leader_has_another_start_time_is_left_alone() {
        let marker = marker("reuse");
        let _cleanup = Cleanup(marker.clone());
        // A group leader that is not the attempt's: same pid, later start.
        let mut leader = linger(&marker, None, true);
        let pid = i32::try_from(leader.id()).unwrap();
        found(&marker, 1).await;
        let info = own_group(pid).await;
        assert_eq!(info.pgid, pid, "setsid makes it a group leader");
        let earlier = info.start_time - 1;
        let left_alone = recover_from(
            &checkpoint("run/step/1/not-carried", Some((pid, earlier))),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(left_alone, Ok(None));
        assert!(
            ProcessInfo::read(pid).is_some_and(|p| !p.zombie),
            "the reused pid was signalled"
        );
        // The same checkpoint with the right start time stops the group.
        let stopped = recover_from(
            &checkpoint("run/step/1/not-carried", Some((pid, info.start_time))),
            Duration::from_secs(1),
        )
        .await;
        assert!(
            stopped
                .as_ref()
                .is_ok_and(|w| w.as_ref().is_some_and(|w| w.contains(&pid.to_string()))),
            "{stopped:?}"
        );
        leader.wait().unwrap();
    }

    #[tokio::test]
    async fn after_a_restart_nothing_is_signalled() {
        let marker = marker("boot");
        let _cleanup = Cleanup(marker.clone());
        let token = format!("run/step/1/{marker}");
        let mut carrier = linger(&marker, Some(&token), true);
        found(&marker, 1).await;
        let mut from_before = checkpoint(&token, None);
        from_before.boot_id = Some("another-boot".into());
        assert_eq!(recover_from(&from_before, Duration::from_secs(1)).await, Ok(None));
        assert_eq!(carrier.try_wait().unwrap(), None, "the carrier was signalled");
        carrier.kill().unwrap();
        carrier.wait().unwrap();
    }

    #[tokio::test]
    async fn a_checkpoint_that_does_not_read_stops_for_a_person() {
        let error = recover(&serde_json::json!({"pgid": "twelve"})).await.unwrap_err();
        assert!(
            error.starts_with("its journaled process checkpoint does not read"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_survivor_that_ignores_sigterm_is_killed_after_the_grace() {
        let marker = marker("stubborn");
        let _cleanup = Cleanup(marker.clone());
        let token = format!("run/step/1/{marker}");
        let mut stubborn = std::process::Command::new("setsid")
            .args(["sh", "-c", "trap '' TERM; while :; do sleep 1; done", &marker])
            .env(TOKEN_VARIABLE, &token)
            .spawn()
            .unwrap();
        // Its `sleep` runs once the trap is set.
        let members = Members {
            group: None,
            group_held: false,
            token: ProcessToken(token.clone()),
            not_before: 0,
        };
        for _ in 0..200 {
            if members.find(&table::scan()).len() >= 2 {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let words = recover_from(&checkpoint(&token, None), Duration::from_millis(200))
            .await
            .unwrap()
            .unwrap();
        assert!(words.ends_with(", with SIGKILL after 200ms of SIGTERM"), "{words}");
        stubborn.wait().unwrap();
        assert!(with_marker(&marker).is_empty());
    }
}
