//! The terminal side of a run: the live view and line-per-event output
//! (reporters of the engine's events), and the transcript (`--log`).

use anstyle::AnsiColor;
use indicatif::{ProgressBar, ProgressStyle};
use runbook_engine::execute::{Event, EventLine, Failure, Reporter, RunStatus, RunSummary, StepStatus};
use runbook_engine::paint::Paint;
use runbook_engine::step::OutputStream;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How run events are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A live view with a spinner line (a terminal).
    Live,
    /// One line per event (pipes, CI logs).
    Plain,
    /// One JSON object per event on stdout.
    Json,
}

/// A step that is running, as the live view shows it.
struct Running {
    /// When its first attempt started.
    started: Instant,
    /// How it is getting on (a probe's status, the attempt), if it said.
    note: Option<String>,
    /// When something happens next (a probe, a retry, the end of a sleep).
    next: Option<Instant>,
}

struct ViewState {
    running: BTreeMap<String, Running>,
    done: usize,
    total: usize,
    /// Why each rollback that failed failed, and what tells why: the
    /// summary has no place for it, and the operator must see it there.
    rollback_failures: BTreeMap<String, (String, Option<String>)>,
}

/// Prints events; shared with the prompts so that they can pause the live view.
///
/// Lines are gathered and written in batches (at the latest every
/// [`BATCH`], and at once before anything else is shown), so that a step
/// printing millions of lines costs a few writes, not two per line.
pub struct Console {
    style: Style,
    paint: Paint,
    /// The live view's line; taken down while a question is on the screen.
    bar: Mutex<Option<ProgressBar>>,
    state: Mutex<ViewState>,
    pending: Mutex<String>,
    /// A question is on the screen: output waits until it is answered.
    held: std::sync::atomic::AtomicBool,
    /// Lines left out while a question was on the screen, past [`HELD_MAX`].
    dropped: std::sync::atomic::AtomicUsize,
    /// `--log FILE`: everything shown, as plain text.
    log: Option<Mutex<std::fs::File>>,
}

/// How much output waits while a question is on the screen; beyond it,
/// lines are counted and left out.
const HELD_MAX: usize = 4 << 20;

/// How long gathered output may wait before it is written.
const BATCH: Duration = Duration::from_millis(40);

/// How often (in batches) the live view's clocks are redrawn: 5 times a second.
const REFRESH_TICKS: u32 = 5;

/// How many running steps the live view lists, one line each.
const RUNNING_SHOWN: usize = 8;

impl Console {
    pub fn new(style: Style, color: bool, log: Option<std::fs::File>) -> Arc<Self> {
        let console = Arc::new(Self {
            style,
            paint: Paint::new(color),
            bar: Mutex::new((style == Style::Live).then(new_bar)),
            held: std::sync::atomic::AtomicBool::new(false),
            dropped: std::sync::atomic::AtomicUsize::new(0),
            log: log.map(Mutex::new),
            state: Mutex::new(ViewState {
                running: BTreeMap::new(),
                done: 0,
                total: 0,
                rollback_failures: BTreeMap::new(),
            }),
            pending: Mutex::new(String::new()),
        });
        // Writes what was gathered, until the console is gone.
        let weak = Arc::downgrade(&console);
        std::thread::spawn(move || {
            let mut ticks = 0u32;
            while let Some(console) = weak.upgrade() {
                console.flush();
                // The running steps' clocks and countdowns move on.
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(REFRESH_TICKS) && !console.is_held() {
                    console.refresh();
                }
                drop(console);
                std::thread::sleep(BATCH);
            }
        });
        console
    }

    /// A line above the live view (or on stderr for plain output), soon.
    fn line(&self, text: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            if pending.len() > HELD_MAX && self.is_held() {
                self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            pending.push_str(text);
            pending.push('\n');
        }
    }

    fn is_held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Writes text shown on the terminal by a prompt to the transcript.
    pub fn transcript(&self, text: &str) {
        if let Some(log) = &self.log
            && let Ok(mut log) = log.lock()
        {
            let _ = log.write_all(anstream::adapter::strip_str(text).to_string().as_bytes());
        }
    }

    /// Runs `f` (a question) with the live view taken down and output held
    /// back, then shows what was held.
    pub fn hold<T>(&self, f: impl FnOnce() -> T) -> T {
        self.flush();
        self.held.store(true, std::sync::atomic::Ordering::Release);
        if let Ok(mut bar) = self.bar.lock()
            && let Some(bar) = bar.take()
        {
            bar.finish_and_clear();
        }
        let answer = f();
        if self.style == Style::Live
            && let Ok(mut bar) = self.bar.lock()
        {
            *bar = Some(new_bar());
        }
        self.held.store(false, std::sync::atomic::Ordering::Release);
        let dropped = self.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            self.line(&format!(
                "  ({dropped} lines of output left out while the question was open)"
            ));
        }
        self.flush();
        self.refresh();
        answer
    }

    /// Writes the lines gathered so far.
    pub fn flush(&self) {
        if self.is_held() {
            return;
        }
        let text = match self.pending.lock() {
            Ok(mut pending) if !pending.is_empty() => std::mem::take(&mut *pending),
            _ => return,
        };
        self.transcript(&text);
        let bar = self.bar.lock().ok().and_then(|bar| bar.clone());
        match (&bar, self.style) {
            (Some(bar), _) => bar.println(text.strip_suffix('\n').unwrap_or(&text)),
            (None, Style::Json) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
            }
            (None, _) => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }

    fn refresh(&self) {
        let Some(bar) = self.bar.lock().ok().and_then(|bar| bar.clone()) else {
            return;
        };
        let Ok(state) = self.state.lock() else { return };
        bar.set_message(view_message(&state, Instant::now()));
    }

    pub fn finish(&self) {
        self.flush();
        if let Ok(mut bar) = self.bar.lock()
            && let Some(bar) = bar.take()
        {
            bar.finish_and_clear();
        }
    }

    fn seconds(ms: u64) -> String {
        if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{:.1}s", ms as f64 / 1000.0)
        }
    }

    /// The final table: each step's status and duration, what was rolled back, total time.
    pub fn summary(&self, summary: &RunSummary) {
        self.flush();
        if self.style == Style::Json {
            return;
        }
        let mut summary = summary.clone();
        summary.each_text(&mut |text| escape(text), &mut |_| {});
        let summary = &summary;
        let rollback_failures = self
            .state
            .lock()
            .map(|state| state.rollback_failures.clone())
            .unwrap_or_default();
        let mut out = String::new();
        out.push_str(&format!("\nsummary of run {} ({})\n", summary.run_id, summary.runbook));
        for step in &summary.steps {
            let mark = match step.status {
                StepStatus::Succeeded => self.paint.fg(AnsiColor::Green, "✓"),
                StepStatus::Failed | StepStatus::RollbackFailed => self.paint.fg(AnsiColor::Red, "✗"),
                StepStatus::RolledBack => self.paint.fg(AnsiColor::Cyan, "↶"),
                StepStatus::Skipped => self.paint.dim("○"),
                StepStatus::Cancelled => self.paint.fg(AnsiColor::Yellow, "■"),
                _ => self.paint.dim("·"),
            };
            let mut line = format!("  {mark} {:<24} {:<16}", step.id, step.status.as_str());
            if step.attempts > 0 {
                line.push_str(&format!(" {:>7}", Self::seconds(step.duration_ms)));
            }
            if step.attempts > 1 {
                line.push_str(&format!(" ({} attempts)", step.attempts));
            }
            if step.is_finally {
                line.push_str(" [finally]");
            }
            if let Some(error) = &step.error
                && step.status != StepStatus::Succeeded
            {
                line.push_str(&format!("  {error}"));
            }
            let rollback_failure = rollback_failures
                .get(&step.id)
                .filter(|_| step.status == StepStatus::RollbackFailed);
            if let Some((error, _)) = rollback_failure {
                line.push_str(&format!("  rollback: {error}"));
            }
            out.push_str(line.trim_end());
            out.push('\n');
            let details = [
                step.failure.as_ref().and_then(Failure::detail),
                rollback_failure.and_then(|(_, detail)| detail.clone()),
            ];
            for detail in details.iter().flatten() {
                out.push_str(&format!("      {}\n", self.paint.dim(detail)));
            }
        }
        if !summary.rolled_back.is_empty() {
            out.push_str(&format!("  rolled back: {}\n", summary.rolled_back.join(", ")));
        }
        if let Some(reason) = &summary.reason {
            out.push_str(&format!("  reason: {reason}\n"));
        }
        let status = match summary.status {
            RunStatus::Succeeded => self.paint.bold_fg(AnsiColor::Green, "succeeded"),
            RunStatus::RollbackFailed => self
                .paint
                .bold_fg(AnsiColor::Red, "ROLLBACK FAILED: a person must look at this"),
            RunStatus::Cancelled => self.paint.bold_fg(AnsiColor::Yellow, "cancelled"),
            RunStatus::Failed => self.paint.bold_fg(AnsiColor::Red, "failed, rolled back"),
            RunStatus::FailedWithoutRollback => self.paint.bold_fg(AnsiColor::Red, "failed, not rolled back"),
            RunStatus::RolledBack => self.paint.bold_fg(AnsiColor::Cyan, "rolled back"),
            RunStatus::Aborted => self
                .paint
                .bold_fg(AnsiColor::Red, "ABORTED, not rolled back: a person must take over"),
            RunStatus::JournalFailed => self.paint.bold_fg(
                AnsiColor::Red,
                "STOPPED: the journal could not be written; nothing more was started, nothing rolled back",
            ),
            RunStatus::Running => "running".into(),
        };
        out.push_str(&format!("run {status} in {}\n", Self::seconds(summary.duration_ms)));
        self.transcript(&out);
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(out.as_bytes());
    }
}

/// A copy of the event safe to show on a terminal: control characters and
/// escape sequences in its texts are shown escaped, not interpreted.
fn printable(event: &Event) -> Event {
    let mut event = event.clone();
    event.each_text(&mut |text| escape(text), &mut |_| {});
    event
}

fn escape(text: &mut String) {
    if let std::borrow::Cow::Owned(escaped) = runbook_engine::printable::line(text) {
        *text = escaped;
    }
}

impl Reporter for Console {
    fn event(&self, event: &Event) {
        if self.style == Style::Json {
            if let Ok(text) = serde_json::to_string(&EventLine::now(event)) {
                self.line(&text);
            }
            if !matches!(event, Event::StepOutput { .. }) {
                self.flush();
            }
            return;
        }
        let event = &printable(event);
        let text = {
            let Ok(mut state) = self.state.lock() else { return };
            match event {
                Event::RunStarted {
                    run_id, runbook, steps, ..
                } => {
                    state.total = *steps;
                    Some(format!("run {run_id} of {runbook}: {steps} steps"))
                }
                Event::StepStarted {
                    step,
                    name,
                    attempt,
                    action,
                } => {
                    let now = Instant::now();
                    let running = state.running.entry(step.clone()).or_insert(Running {
                        started: now,
                        note: None,
                        next: None,
                    });
                    (running.note, running.next) = (None, None);
                    let title = name.as_ref().map_or_else(|| step.clone(), |n| format!("{step} ({n})"));
                    let again = if *attempt > 1 {
                        format!(" [attempt {attempt}]")
                    } else {
                        String::new()
                    };
                    Some(format!(
                        "{} {title}{again}: {action}",
                        self.paint.bold_fg(AnsiColor::Blue, "▶")
                    ))
                }
                Event::StepOutput { step, stream, line } => {
                    let bar = if *stream == OutputStream::Stderr {
                        self.paint.fg(AnsiColor::Yellow, "│")
                    } else {
                        "│".into()
                    };
                    Some(if state.running.len() > 1 {
                        format!("  {bar} {step}: {line}")
                    } else {
                        format!("  {bar} {line}")
                    })
                }
                Event::Log { step, level, message } => Some(match level.as_str() {
                    "warn" => format!("  {} {step}: {message}", self.paint.fg(AnsiColor::Yellow, "warning:")),
                    "error" => format!("  {} {step}: {message}", self.paint.fg(AnsiColor::Red, "error:")),
                    _ => format!("  {} {message}", self.paint.fg(AnsiColor::Cyan, "log:")),
                }),
                Event::StepProgress { step, note, next_in_ms } => {
                    let next = next_in_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
                    if let Some(running) = state.running.get_mut(step) {
                        (running.note, running.next) = (Some(note.clone()), next);
                    }
                    // Without a live view, one line for each.
                    (self.style == Style::Plain).then(|| {
                        let next =
                            next_in_ms.map_or_else(String::new, |ms| format!(" (next in {})", Self::seconds(ms)));
                        format!("  {} {step}: {note}{next}", self.paint.dim("…"))
                    })
                }
                Event::StepRetrying {
                    step,
                    attempt,
                    error,
                    delay_ms,
                    failure,
                } => {
                    if let Some(running) = state.running.get_mut(step) {
                        running.note = Some(format!("attempt {attempt} failed; retrying"));
                        running.next = Some(Instant::now() + Duration::from_millis(*delay_ms));
                    }
                    Some(format!(
                        "{} {step}: attempt {attempt} failed ({}); retrying in {}",
                        self.paint.fg(AnsiColor::Yellow, "↻"),
                        Failure::with_detail(error, failure.as_ref()),
                        Self::seconds(*delay_ms)
                    ))
                }
                Event::StepSucceeded { step, duration_ms, .. } => {
                    state.running.remove(step);
                    state.done += 1;
                    Some(format!(
                        "{} {step} succeeded in {}",
                        self.paint.fg(AnsiColor::Green, "✓"),
                        Self::seconds(*duration_ms)
                    ))
                }
                Event::StepFailed {
                    step,
                    duration_ms,
                    error,
                    on_failure,
                    failure,
                } => {
                    state.running.remove(step);
                    state.done += 1;
                    let mut line = format!(
                        "{} {step} failed after {}: {error} (on failure: {})",
                        self.paint.bold_fg(AnsiColor::Red, "✗"),
                        Self::seconds(*duration_ms),
                        on_failure.describe()
                    );
                    // What the attempt produced that tells why, on a line of its own.
                    if let Some(detail) = failure.as_ref().and_then(Failure::detail) {
                        line.push_str(&format!("\n    {}", self.paint.dim(&detail)));
                    }
                    Some(line)
                }
                Event::StepSkipped { step, reason } => {
                    state.done += 1;
                    Some(format!("{} {step} skipped: {reason}", self.paint.dim("○")))
                }
                Event::StepCancelled { step, reason, .. } => {
                    state.running.remove(step);
                    Some(format!(
                        "{} {step} cancelled: {reason}",
                        self.paint.fg(AnsiColor::Yellow, "■")
                    ))
                }
                Event::Interrupted { signal } => Some(format!(
                    "{} {signal}: stopping; running steps get SIGTERM, then SIGKILL",
                    self.paint.bold_fg(AnsiColor::Yellow, "interrupted:")
                )),
                Event::RollbackStarted { step, action } => Some(format!(
                    "{} rolling back {step}: {action}",
                    self.paint.fg(AnsiColor::Cyan, "↶")
                )),
                Event::RollbackSucceeded { step, duration_ms } => Some(format!(
                    "{} rolled back {step} in {}",
                    self.paint.fg(AnsiColor::Cyan, "✓"),
                    Self::seconds(*duration_ms)
                )),
                Event::RollbackFailed {
                    step, error, failure, ..
                } => {
                    let detail = failure.as_ref().and_then(Failure::detail);
                    state
                        .rollback_failures
                        .insert(step.clone(), (error.clone(), detail.clone()));
                    let mut line = format!(
                        "{} rollback of {step} FAILED: {error}",
                        self.paint.bold_fg(AnsiColor::Red, "✗✗")
                    );
                    if let Some(detail) = detail {
                        line.push_str(&format!("\n    {}", self.paint.dim(&detail)));
                    }
                    Some(line)
                }
                Event::FinallyStarted { steps } => Some(format!("finally: {steps} step(s)")),
                Event::RunResumed { run_id, rerun } => Some(if rerun.is_empty() {
                    format!("resuming run {run_id}")
                } else {
                    format!("resuming run {run_id}; running again: {}", rerun.join(", "))
                }),
                Event::RollbackRequested { reason } => {
                    Some(format!("{} {reason}", self.paint.fg(AnsiColor::Cyan, "rollback:")))
                }
                Event::Decision { .. } => runbook_engine::report::decision_words(event)
                    .map(|words| format!("  {} {words}", self.paint.fg(AnsiColor::Magenta, "decided:"))),
                Event::StepCheckpoint { .. } | Event::RunFinished { .. } => None,
                Event::StepRecovered { step, action } => Some(format!(
                    "{} {step}: put right after the run died: {action}",
                    self.paint.fg(AnsiColor::Cyan, "↺")
                )),
            }
        };
        if let Some(text) = text {
            self.line(&text);
        }
        // Output waits for its batch; what the run does is shown at once.
        if !matches!(event, Event::StepOutput { .. }) {
            self.flush();
            self.refresh();
        }
    }
}

fn new_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The live view: how far the run is, then each running step with how long
/// it has run, how it is getting on and a countdown to what comes next.
fn view_message(state: &ViewState, now: Instant) -> String {
    let mut text = format!("{}/{} steps done", state.done, state.total);
    for (step, running) in state.running.iter().take(RUNNING_SHOWN) {
        text.push_str(&format!(
            "\n  {step} · {}",
            clock(now.saturating_duration_since(running.started))
        ));
        if let Some(note) = &running.note {
            text.push_str(&format!(" · {note}"));
        }
        if let Some(next) = running.next {
            let left = next.saturating_duration_since(now);
            // Whole seconds, rounded up: "next in 1s" until it comes.
            let secs = left.as_millis().div_ceil(1000);
            text.push_str(&format!(" · next in {secs}s"));
        }
    }
    let more = state.running.len().saturating_sub(RUNNING_SHOWN);
    if more > 0 {
        text.push_str(&format!("\n  … and {more} more running"));
    }
    text
}

/// A running step's clock: `4s`, `2m05s`, `1h02m`.
fn clock(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_view_shows_each_running_step_with_its_clock_note_and_countdown() {
        let start = Instant::now();
        let mut running = BTreeMap::new();
        running.insert(
            "wait_healthy".to_string(),
            Running {
                started: start,
                note: Some("probe 3: status 503; `result.status == 200` not true yet".into()),
                next: Some(start + Duration::from_millis(7_500)),
            },
        );
        running.insert(
            "drain".to_string(),
            Running {
                started: start + Duration::from_secs(60),
                note: None,
                next: None,
            },
        );
        let state = ViewState {
            running,
            done: 2,
            total: 6,
            rollback_failures: BTreeMap::new(),
        };
        assert_eq!(
            view_message(&state, start + Duration::from_secs(125)),
            "2/6 steps done\n  drain · 1m05s\n  wait_healthy · 2m05s · probe 3: status 503; `result.status == 200` not true yet · next in 0s"
        );
        assert_eq!(
            view_message(&state, start + Duration::from_millis(5_100))
                .lines()
                .nth(2),
            Some("  wait_healthy · 5s · probe 3: status 503; `result.status == 200` not true yet · next in 3s")
        );
        assert_eq!(clock(Duration::from_secs(3_725)), "1h02m");
    }
}
