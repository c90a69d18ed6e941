//! The operator's questions, on the controlling terminal.
//!
//! Prompts read from and write to `/dev/tty`, not stdin and stderr, so that
//! `runbook run X 2>&1 | tee run.log` still asks. A line is read with the
//! terminal's own echo and signals off: Ctrl-C at a prompt is an answer
//! (one decision, to stop and roll back), not a signal that would ask a
//! second question. The read waits in short slices, so that a question
//! withdrawn by the run (a step failed meanwhile) or left unanswered past
//! `--answer-timeout` ends at once.

use crate::console::Console;
use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices};
use runbook_engine::execute::{
    ConfirmAnswer, FailureAnswer, InterruptAnswer, Operator, Question, Reply, Setback, StepAnswer, Undoing,
};
use runbook_engine::parse::raw::OnFailure;
use std::fs::File;
use std::io::{Read as _, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The controlling terminal.
pub struct Tty {
    file: File,
}

/// How reading an answer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Line(String),
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D on an empty line, or the terminal went away.
    Closed,
    /// Nobody answered within the limit.
    Silence,
    /// The question no longer matters.
    Withdrawn,
}

/// How often a waiting read looks whether it should stop waiting.
const SLICE_MS: u16 = 100;

impl Tty {
    /// The process's controlling terminal, if it has one.
    pub fn open() -> Option<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        termios::tcgetattr(file.as_fd()).ok()?;
        Some(Self { file })
    }

    pub fn write(&self, text: &str) {
        let mut file = &self.file;
        let _ = file.write_all(text.as_bytes());
        let _ = file.flush();
    }

    /// Takes the keys as they come, without the terminal's echo, line
    /// editing or signals, until the guard is dropped: the terminal is then
    /// given back as it was, however the question ended.
    pub fn keys(&self) -> Restore<'_> {
        let fd = self.file.as_fd();
        let original = termios::tcgetattr(fd).ok();
        if let Some(original) = &original {
            let mut raw = original.clone();
            raw.local_flags
                .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN);
            raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
            raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
            let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &raw);
        }
        Restore { tty: self, original }
    }

    /// Reads one line, echoing it, until Enter, Ctrl-C or Ctrl-D; or until
    /// `deadline` passes or `withdrawn` says to stop.
    pub fn read_line(&self, deadline: Option<Instant>, withdrawn: &dyn Fn() -> bool) -> Read {
        let fd = self.file.as_fd();
        let _keys = self.keys();
        let mut line = Vec::new();
        let mut escape = Escape::None;
        loop {
            if withdrawn() {
                self.write("\n");
                return Read::Withdrawn;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.write("\n");
                return Read::Silence;
            }
            let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, SLICE_MS) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Read::Closed,
            }
            let mut bytes = [0u8; 256];
            let n = match (&self.file).read(&mut bytes) {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(n) => n,
            };
            for &byte in &bytes[..n] {
                // The rest of an arrow key's sequence, or the like: ignored.
                match escape {
                    Escape::Start => {
                        escape = if byte == b'[' || byte == b'O' {
                            Escape::Sequence
                        } else {
                            Escape::None
                        };
                        continue;
                    }
                    Escape::Sequence => {
                        if (0x40..=0x7e).contains(&byte) {
                            escape = Escape::None;
                        }
                        continue;
                    }
                    Escape::None => {}
                }
                match byte {
                    b'\r' | b'\n' => {
                        self.write("\n");
                        return Read::Line(String::from_utf8_lossy(&line).into_owned());
                    }
                    0x03 => {
                        self.write("^C\n");
                        return Read::Interrupted;
                    }
                    0x04 if line.is_empty() => {
                        self.write("\n");
                        return Read::Closed;
                    }
                    0x7f | 0x08 => {
                        // One character back (a UTF-8 character may be several bytes).
                        while let Some(last) = line.pop() {
                            if last & 0xc0 != 0x80 {
                                break;
                            }
                        }
                        self.write("\x08 \x08");
                    }
                    0x15 => {
                        let chars = String::from_utf8_lossy(&line).chars().count();
                        line.clear();
                        self.write(&"\x08 \x08".repeat(chars));
                    }
                    0x1b => escape = Escape::Start,
                    byte if byte >= 0x20 => {
                        line.push(byte);
                        let mut file = &self.file;
                        let _ = file.write_all(&[byte]);
                        let _ = file.flush();
                    }
                    _ => {}
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Escape {
    None,
    Start,
    Sequence,
}

pub struct Restore<'a> {
    tty: &'a Tty,
    original: Option<termios::Termios>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Some(original) = &self.original {
            let _ = termios::tcsetattr(self.tty.file.as_fd(), SetArg::TCSANOW, original);
        }
    }
}

/// One choice of a question: the key that picks it and what it does.
struct Choice {
    key: &'static str,
    words: &'static str,
}

/// How many lines of what a step will do are shown before "v: see all".
const DETAIL_LINES: usize = 12;

/// Prompts on the controlling terminal.
pub struct TerminalOperator {
    pub console: Arc<Console>,
    pub tty: Tty,
    /// `--answer-timeout`: how long a question waits before silence counts as "no".
    pub limit: Option<Duration>,
}

/// How a question ended.
enum Picked {
    Choice(usize),
    Interrupted,
    Silence(Duration),
    Withdrawn,
    Closed,
}

impl TerminalOperator {
    /// Shows `text` on the terminal and in the transcript.
    fn show(&self, text: &str) {
        self.tty.write(text);
        self.console.transcript(text);
    }

    /// Asks until one of `choices` is picked (by its key or its first
    /// word), or the question ends otherwise. `detail` can be shown in full.
    fn pick(&self, question: &str, choices: &[Choice], detail: Option<&str>, withdrawn: &dyn Fn() -> bool) -> Picked {
        let started = Instant::now();
        let deadline = self.limit.and_then(|limit| started.checked_add(limit));
        let keys: Vec<&str> = choices.iter().map(|c| c.key).collect();
        let mut menu = format!("  {question}\n");
        for choice in choices {
            menu.push_str(&format!("    {}  {}\n", choice.key, choice.words));
        }
        let mut show_menu = true;
        loop {
            if show_menu {
                self.show(&menu);
            }
            show_menu = false;
            let ask = format!("  answer [{}]: ", keys.join("/"));
            self.show(&ask);
            match self.tty.read_line(deadline, withdrawn) {
                Read::Line(line) => {
                    self.console.transcript(&format!("{line}\n"));
                    let answer = line.trim().to_lowercase();
                    if answer == "v"
                        && let Some(detail) = detail
                    {
                        self.show(&indent(detail, "    "));
                        show_menu = true;
                        continue;
                    }
                    let found = choices.iter().position(|c| {
                        answer == c.key
                            || (!answer.is_empty() && c.words.split([' ', ':', ',']).next() == Some(&*answer))
                    });
                    match found {
                        Some(index) => return Picked::Choice(index),
                        None => self.show(&format!("  please answer one of: {}\n", keys.join(", "))),
                    }
                }
                Read::Interrupted => return Picked::Interrupted,
                Read::Silence => {
                    let waited = started.elapsed();
                    self.show(&format!(
                        "  no answer within {}: counted as no\n",
                        runbook_engine::words::format_duration(self.limit.unwrap_or(waited))
                    ));
                    return Picked::Silence(self.limit.unwrap_or(waited));
                }
                Read::Withdrawn => {
                    self.show("  (question withdrawn: the run is stopping)\n");
                    return Picked::Withdrawn;
                }
                Read::Closed => return Picked::Closed,
            }
        }
    }

    /// The step and what it will do: one line, then its parameters (the
    /// first lines; `v` shows them all).
    fn describe(&self, question: &Question<'_>) -> Option<String> {
        let step = shown(question.step);
        let mut text = format!("\n  step `{step}` will: {}\n", shown(question.action));
        let detail = shown(question.detail);
        let lines: Vec<&str> = detail.lines().collect();
        for line in lines.iter().take(DETAIL_LINES) {
            text.push_str(&format!("    {line}\n"));
        }
        let more = lines.len().saturating_sub(DETAIL_LINES);
        if more > 0 {
            text.push_str(&format!("    … {more} more line(s): answer v to see them all\n"));
        }
        self.show(&text);
        (more > 0).then_some(detail)
    }

    /// Runs a question: the live view down, and Ctrl-C a key from the
    /// moment the question starts to show.
    fn held<T>(&self, f: impl FnOnce() -> T) -> T {
        self.console.hold(|| {
            let _keys = self.tty.keys();
            f()
        })
    }
}

/// Text from a runbook or a step, safe to put on the terminal (escapes shown).
fn shown(text: &str) -> String {
    runbook_engine::printable::lines(text).into_owned()
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|line| format!("{by}{line}\n")).collect()
}

const YES_NO: &[Choice] = &[
    Choice {
        key: "y",
        words: "yes, go on",
    },
    Choice { key: "n", words: "no" },
];

const SKIP: Choice = Choice {
    key: "s",
    words: "skip this step and go on",
};
const ROLLBACK: Choice = Choice {
    key: "b",
    words: "back out: stop and roll back what the run did",
};
const STOP: Choice = Choice {
    key: "q",
    words: "quit here for a person: stop, nothing is rolled back (exit 3)",
};

impl Operator for TerminalOperator {
    fn is_interactive(&self) -> bool {
        true
    }

    fn confirm(&self, question: &Question<'_>) -> Reply<ConfirmAnswer> {
        let withdrawn = || question.withdrawn.is_cancelled();
        self.held(|| {
            let detail = if question.detail.is_empty() && question.action == "approval step" {
                self.show(&format!("\n  step `{}` asks:\n", shown(question.step)));
                None
            } else {
                self.describe(question)
            };
            let message = shown(question.message.trim());
            match self.pick(&message, YES_NO, detail.as_deref(), &withdrawn) {
                Picked::Choice(0) => return Reply::Given(ConfirmAnswer::Yes),
                Picked::Choice(_) | Picked::Closed => {}
                other => return reply(other, ConfirmAnswer::Rollback),
            }
            let choices: Vec<Choice> = if question.can_skip {
                vec![SKIP, ROLLBACK, STOP]
            } else {
                vec![ROLLBACK, STOP]
            };
            let answers: Vec<ConfirmAnswer> = if question.can_skip {
                vec![ConfirmAnswer::Skip, ConfirmAnswer::Rollback, ConfirmAnswer::Stop]
            } else {
                vec![ConfirmAnswer::Rollback, ConfirmAnswer::Stop]
            };
            match self.pick("not confirmed. what now?", &choices, None, &withdrawn) {
                Picked::Choice(index) => Reply::Given(answers[index]),
                other => reply(other, ConfirmAnswer::Rollback),
            }
        })
    }

    fn before_step(&self, question: &Question<'_>) -> Reply<StepAnswer> {
        let withdrawn = || question.withdrawn.is_cancelled();
        self.held(|| {
            let detail = self.describe(question);
            let choices = [
                Choice {
                    key: "y",
                    words: "yes, run it",
                },
                SKIP,
                Choice {
                    key: "c",
                    words: "continue: run it, and the rest without asking",
                },
                ROLLBACK,
                STOP,
            ];
            let answers = [
                StepAnswer::Yes,
                StepAnswer::Skip,
                StepAnswer::Continue,
                StepAnswer::Rollback,
                StepAnswer::Stop,
            ];
            match self.pick(&shown(question.message), &choices, detail.as_deref(), &withdrawn) {
                Picked::Choice(index) => Reply::Given(answers[index]),
                other => reply(other, StepAnswer::Rollback),
            }
        })
    }

    fn failed(&self, setback: &Setback<'_>) -> Reply<FailureAnswer> {
        let withdrawn = || setback.withdrawn.is_cancelled();
        self.held(|| {
            let step = shown(setback.step);
            let mut text = format!(
                "\n  step `{step}` failed after {} attempt(s): {}\n",
                setback.attempts,
                shown(setback.error)
            );
            if let Some(detail) = setback.detail {
                text.push_str(&indent(&shown(detail), "    "));
            }
            if !setback.output.is_empty() {
                text.push_str("  its last lines of output:\n");
                for line in setback.output {
                    text.push_str(&format!("    │ {}\n", runbook_engine::printable::line(line)));
                }
            }
            text.push_str(&format!(
                "  without a person, `on_failure: {}` would decide: {}\n",
                setback.on_failure.as_str(),
                FailureAnswer::from(setback.on_failure).words()
            ));
            self.show(&text);
            let choices = [
                Choice {
                    key: "r",
                    words: "retry the step",
                },
                Choice {
                    key: "s",
                    words: "skip it: count it as failed and go on",
                },
                ROLLBACK,
                STOP,
            ];
            let answers = [
                FailureAnswer::Retry,
                FailureAnswer::Skip,
                FailureAnswer::Rollback,
                FailureAnswer::Stop,
            ];
            match self.pick("what now?", &choices, None, &withdrawn) {
                Picked::Choice(index) => Reply::Given(answers[index]),
                Picked::Closed => Reply::Given(FailureAnswer::from(setback.on_failure)),
                other => reply(other, FailureAnswer::from(OnFailure::Rollback)),
            }
        })
    }

    fn interrupted(&self) -> InterruptAnswer {
        self.held(|| {
            let choices = [
                Choice {
                    key: "b",
                    words: "back out: roll back what was done",
                },
                Choice {
                    key: "c",
                    words: "continue the run",
                },
                Choice {
                    key: "q",
                    words: "quit, leaving things as they are",
                },
            ];
            self.show("\n");
            match self.pick("interrupted. what now?", &choices, None, &|| false) {
                Picked::Choice(1) => InterruptAnswer::Continue,
                Picked::Choice(2) => InterruptAnswer::Quit,
                _ => InterruptAnswer::Rollback,
            }
        })
    }

    fn abandon_rollback(&self) -> bool {
        self.held(|| {
            let choices = [
                Choice {
                    key: "n",
                    words: "no, go on rolling back",
                },
                Choice {
                    key: "y",
                    words: "yes, abandon it: steps not yet rolled back stay as they are",
                },
            ];
            self.show("\n");
            matches!(
                self.pick("abandon the rollback?", &choices, None, &|| false),
                Picked::Choice(1)
            )
        })
    }

    fn approve_rollback(&self, undoing: &Undoing<'_>) -> Reply<bool> {
        self.held(|| {
            let count = undoing.steps.len();
            let mut text = format!(
                "\n  rolling back run {} undoes {count} step{}, in this order:\n",
                shown(undoing.run_id),
                if count == 1 { "" } else { "s" }
            );
            for (n, (step, action)) in undoing.steps.iter().enumerate() {
                text.push_str(&format!("    {}. `{}`: {}\n", n + 1, shown(step), shown(action)));
            }
            self.show(&text);
            let choices = [
                Choice {
                    key: "y",
                    words: "yes, roll back",
                },
                Choice {
                    key: "n",
                    words: "no, leave everything as it is",
                },
            ];
            match self.pick("roll back?", &choices, None, &|| false) {
                Picked::Choice(0) => Reply::Given(true),
                Picked::Choice(_) | Picked::Closed => Reply::Given(false),
                other => reply(other, false),
            }
        })
    }
}

/// A question that ended without a choice, as the engine hears it.
fn reply<T>(picked: Picked, closed: T) -> Reply<T> {
    match picked {
        Picked::Interrupted => Reply::Interrupted,
        Picked::Silence(waited) => Reply::Silence { waited },
        Picked::Withdrawn => Reply::Withdrawn,
        Picked::Closed | Picked::Choice(_) => Reply::Given(closed),
    }
}
