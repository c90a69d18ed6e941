//! End-to-end tests that nothing a step starts outlives it (issue #8, item
//! 18): processes that leave the step's session (`setsid`, a daemon's double
//! fork) are stopped on timeout and on Ctrl-C; when `runbook` itself is
//! killed with SIGKILL, the step's command dies with it, and `resume` stops
//! the survivors before it runs the step again, so two copies never run.
//!
//! Every process the steps start has the sandbox's marker path among its
//! arguments, or the sandbox in its environment; the tests look for them in
//! `/proc`, not in `runbook`'s report, and kill whatever is left when they
//! end, passed or failed.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Sandbox, processes, running, wait_at_most};

/// The step: checks that no copy of itself runs (any running process, not
/// its own child, with the marker `$1` among its arguments), starts three
/// loops with the marker (one that leaves the session with `setsid`, one
/// that does so from a double fork, one in the background of the group),
/// then ends at once once `$SANDBOX/resumed` exists, else sleeps.
const STEP: &str = r#"
M="$1"
echo $$ >> "$SANDBOX/copies"
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  { read -r stat < "$d/stat"; } 2>/dev/null || continue
  rest=${stat##*") "}
  state=${rest%% *}
  ppid=${rest#* }
  ppid=${ppid%% *}
  [ "$state" = Z ] && continue
  [ "$ppid" = "$$" ] && continue
  if tr '\0' '\n' < "$d/cmdline" 2>/dev/null | grep -qxF -e "$M"; then
    echo "copy $$ found $p running" >> "$SANDBOX/overlap"
  fi
done
L='while :; do sleep 1; done'
setsid sh -c "$L" "$M" & echo $! >> "$SANDBOX/lingerers"
(setsid sh -c "$L" "$M" & echo $! >> "$SANDBOX/lingerers")
sh -c "$L" "$M" & echo $! >> "$SANDBOX/lingerers"
touch "$SANDBOX/started.$$"
if [ -e "$SANDBOX/resumed" ]; then exit 0; fi
sleep 300
"#;

/// A sandbox with `step.sh` beside the runbook, whose processes are all
/// killed when it is dropped.
struct Guarded {
    sandbox: Sandbox,
    marker: PathBuf,
}

impl Guarded {
    fn new(runbook: &str) -> Self {
        let sandbox = Sandbox::new(runbook);
        std::fs::write(sandbox.file("step.sh"), STEP).unwrap();
        let marker = sandbox.file("linger");
        Self { sandbox, marker }
    }

    /// The running processes with the marker among their arguments.
    fn lingering(&self) -> Vec<u32> {
        let marker = self.marker.as_os_str().as_encoded_bytes();
        processes()
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == marker))
            })
            .collect()
    }

    /// Waits up to `within` for no process with the marker to run.
    fn none_left_within(&self, within: Duration) -> Result<(), Vec<u32>> {
        let started = Instant::now();
        loop {
            let left = self.lingering();
            if left.is_empty() {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(left);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `count` processes with the marker to run.
    fn wait_for_lingering(&self, count: usize) {
        let started = Instant::now();
        while self.lingering().len() < count {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the step did not start its {count} processes: {:?}",
                self.lingering()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for_file(&self, name: &str) {
        let started = Instant::now();
        while !self.sandbox.file(name).exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "{name} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pids of the step's copies, in the order they started.
    fn copies(&self) -> Vec<u32> {
        self.sandbox
            .read("copies")
            .lines()
            .map(|line| line.trim().parse().unwrap())
            .collect()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let marker = self.marker.as_os_str().as_encoded_bytes().to_vec();
        let mut sandbox = b"SANDBOX=".to_vec();
        sandbox.extend_from_slice(self.sandbox.path().as_os_str().as_encoded_bytes());
        let ours = |pid: u32| {
            let holds = |file: &str, entry: &[u8]| {
                std::fs::read(format!("/proc/{pid}/{file}"))
                    .is_ok_and(|list| list.split(|b| *b == 0).any(|item| item == entry))
            };
            holds("cmdline", &marker) || holds("environ", &sandbox)
        };
        for pid in processes().filter(|&pid| ours(pid)) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

const RUN_STEP: &str = r#"exec sh "$SANDBOX/step.sh" "$SANDBOX/linger""#;

fn single_step(extra: &str) -> String {
    format!(
        "runbook: 1\nname: escapes\nsteps:\n  - id: serve\n    uses: shell\n    idempotent: true\n    with: {{ run: '{RUN_STEP}' }}\n{extra}"
    )
}

#[test]
fn a_timeout_stops_processes_that_left_the_session() {
    let guarded = Guarded::new(&single_step("    timeout: 2s\n"));
    let outcome = guarded.sandbox.run(&["--grace", "1s"]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert!(
        outcome.stderr.contains("timed out after 2s"),
        "{}",
        outcome.transcript()
    );
    assert_eq!(guarded.copies().len(), 1, "{}", outcome.transcript());
    if let Err(left) = guarded.none_left_within(Duration::from_secs(2)) {
        panic!("{left:?} outlived the step: {}", outcome.transcript());
    }
}

#[test]
fn ctrl_c_stops_processes_that_left_the_session() {
    let guarded = Guarded::new(&single_step(""));
    let mut runbook = guarded
        .sandbox
        .run_command(&["--grace", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    guarded.wait_for_lingering(4);
    let status = Command::new("kill")
        .args(["-INT", &runbook.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = wait_at_most(&mut runbook, Duration::from_secs(20));
    assert_eq!(code, Some(130));
    if let Err(left) = guarded.none_left_within(Duration::from_secs(2)) {
        panic!("{left:?} outlived the interrupted step");
    }
}

/// Starts the run, waits until the step's processes run, kills `runbook`
/// with SIGKILL, and checks that the step's command died with it while the
/// processes it started in the background live on. Returns the run's id.
fn kill_runbook_mid_step(guarded: &Guarded) -> String {
    let mut runbook = guarded
        .sandbox
        .run_command(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    guarded.wait_for_lingering(4);
    let first = guarded.copies()[0];
    guarded.wait_for_file(&format!("started.{first}"));
    runbook.kill().unwrap();
    assert_eq!(wait_at_most(&mut runbook, Duration::from_secs(5)), None);

    // The command itself got SIGKILL when `runbook` died...
    let started = Instant::now();
    while running(first) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the step's command {first} outlived `runbook`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...and what it started in the background did not: resume must stop it.
    let lingerers: Vec<u32> = guarded
        .sandbox
        .read("lingerers")
        .lines()
        .map(|line| line.trim().parse().unwrap())
        .collect();
    assert_eq!(lingerers.len(), 3);
    assert!(lingerers.iter().all(|&pid| running(pid)), "{lingerers:?}");
    guarded.sandbox.run_ids().pop().expect("the run has a journal")
}

fn assert_resumed_without_a_second_copy(guarded: &Guarded, run: &str) {
    std::fs::write(guarded.sandbox.file("resumed"), "").unwrap();
    let resumed = guarded.sandbox.runbook(&["resume", run, "--yes"], &[]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.transcript());
    assert_eq!(
        guarded.sandbox.read("overlap"),
        "",
        "the step ran beside a copy of itself: {}",
        resumed.transcript()
    );
    assert_eq!(guarded.copies().len(), 2, "{}", resumed.transcript());
    let said = format!("{}{}", resumed.stdout, resumed.stderr);
    assert!(
        said.contains("put right after the run died: stopped ")
            && said.contains(" processes left running by the interrupted attempt (pids "),
        "{}",
        resumed.transcript()
    );
    let shown = guarded.sandbox.runbook(&["show", run], &[]);
    assert!(
        shown.stdout.contains("left running by the interrupted attempt"),
        "{}",
        shown.transcript()
    );
    if let Err(left) = guarded.none_left_within(Duration::from_secs(2)) {
        panic!("{left:?} outlived the resumed run: {}", resumed.transcript());
    }
}

#[test]
fn after_sigkill_resume_stops_the_survivors_before_running_the_step_again() {
    let guarded = Guarded::new(&single_step(""));
    let run = kill_runbook_mid_step(&guarded);
    assert_resumed_without_a_second_copy(&guarded, &run);
}

#[test]
fn after_sigkill_resume_stops_what_a_wait_probe_left() {
    let guarded = Guarded::new(&format!(
        "runbook: 1\nname: probe-escapes\nsteps:\n  - id: ready\n    uses: wait\n    with:\n      probe: {{ uses: shell, with: {{ run: '{RUN_STEP}' }} }}\n      until: \"result.exit_code == 0\"\n      interval: 100ms\n      timeout: 10m\n"
    ));
    let run = kill_runbook_mid_step(&guarded);
    assert_resumed_without_a_second_copy(&guarded, &run);
}
