//! Stage 5, execute: runs a compiled runbook on tokio.
//!
//! Ready steps (all needs finished, guard true) start at once, up to
//! `max_parallel`. When a step fails with `on_failure: rollback`, no new
//! step starts, running ones are cancelled, the rollback of every step that
//! had succeeded runs in reverse order of completion, then `finally`. The
//! same happens on a run timeout, on Ctrl-C/SIGTERM (after asking) and when
//! the operator declines a confirmation. Everything is reported as
//! [`Event`]s; the terminal view and machine output are reporters.

pub mod context;
pub mod operator;

mod action;
mod asking;
mod child;
mod host;
mod prepare;
mod replay;
mod rollback;
mod schedule;

use action::*;
use asking::*;
use child::*;
use host::*;
use prepare::*;
use replay::*;
use schedule::*;

pub use crate::event::{
    Canceller, Event, EventLine, Failure, Reporter, Reporters, RunStatus, RunSummary, StepStatus, StepSummary, Trace,
};
pub use asking::in_full;
pub use operator::{
    ConfirmAnswer, FailureAnswer, InterruptAnswer, Operator, Question, Reply, Setback, StepAnswer, Unattended, Undoing,
};

use crate::compile::Compiled;
use crate::diagnostic::Diagnostic;
use crate::journal::redact::Redacting;
use crate::journal::{Header, Journal, JournalWriter, RunState};
use crate::parse::raw::{Backoff, OnFailure};
use crate::plan::resolve_inputs;
use crate::secrets::Redactor;
use crate::step::{Host, OutputStream, Registry, StepContext, StepError, StepFuture};
use crate::template;
use crate::validate::checked::{self, Param, Retry, SecretSource, Text};
use crate::words::format_duration;
use context::{ComputedVar, RunContext, explain, to_value};
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub mod codes {
    pub const MISSING_SECRET: &str = "runbook::run::missing_secret";
    pub const NEEDS_CONFIRMATION: &str = "runbook::run::needs_confirmation";
    pub const VARS: &str = "runbook::run::vars";
    pub const LOCKED: &str = "runbook::run::locked";
    pub const JOURNAL: &str = "runbook::run::journal";
    pub const NOTHING_TO_DO: &str = "runbook::run::nothing_to_do";
    /// The operator said no to `runbook rollback RUN`: nothing was done.
    pub const DECLINED: &str = "runbook::run::declined";
    /// A cut-short attempt could not be put right: a person must look.
    pub const RECOVER: &str = "runbook::run::recover";
    pub const MASKED_INPUT: &str = "runbook::run::masked_input";
    /// A step was in flight and nobody could say whether to run it again.
    pub const IN_FLIGHT: &str = "runbook::run::in_flight";
}

/// The environment a run reads: a variable's value by name. Injected, so
/// that an embedder (or a test) decides what a run sees.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process's own environment.
pub fn process_env() -> Env {
    Arc::new(|name: &str| std::env::var(name).ok())
}

/// How to run.
pub struct RunRequest {
    /// `--input NAME=VALUE`.
    pub inputs: Vec<(String, String)>,
    /// The environment (inputs with `env`, secrets, the lock directory);
    /// child runs get the same.
    pub env: Env,
    /// Relative secret files are read from here (the runbook's folder).
    pub base_dir: PathBuf,
    /// `--step`: ask before every step.
    pub step_mode: bool,
    /// `--yes`: answer yes to confirmations.
    pub yes: bool,
    /// `--no-rollback`: leave things as they are for inspection.
    pub no_rollback: bool,
    /// `--timeout`: for the whole run.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL for cancelled steps' processes.
    pub kill_grace: Duration,
    pub run_id: Option<String>,
    /// Where the run is journaled and locked; `None` runs without a journal.
    pub state: Option<StateRequest>,
    /// A new run, or one picked up from its journal.
    pub mode: Mode,
    /// Secrets this run must mask besides its own: a child run gets its
    /// parent's, so a secret passed in as an input stays one.
    pub secrets: Option<Arc<Redactor>>,
    /// Who answers the questions (`--operator`, else the login user and
    /// host), for the audit trail.
    pub operator: String,
}

/// Where runs are kept, and the runbook as read.
pub struct StateRequest {
    pub state_dir: PathBuf,
    pub runbook_path: PathBuf,
    pub runbook_text: Arc<[u8]>,
}

/// What to do.
pub enum Mode {
    Run,
    /// Continue a run that died, from its journal.
    Resume(Box<Journal>),
    /// Roll back what a run did, from its journal.
    Rollback(Box<Journal>),
}

impl Mode {
    fn journal(&self) -> Option<&Journal> {
        match self {
            Mode::Run => None,
            Mode::Resume(j) | Mode::Rollback(j) => Some(j),
        }
    }
}

/// A new run id: time-ordered and unique enough for one machine.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}-{:04x}",
        format_timestamp(now.as_secs()).replace([':', '-'], ""),
        fastrand::u16(..)
    )
}

/// `2026-11-22T01:02:03Z` from seconds since the epoch.
pub fn format_timestamp(secs: u64) -> String {
    crate::clock::seconds_text(secs)
}

/// Listens for Ctrl-C and SIGTERM, sending the signal's name for each.
pub fn listen_for_signals() -> mpsc::UnboundedReceiver<&'static str> {
    let (tx, rx) = mpsc::unbounded_channel();
    let interrupt = tx.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if interrupt.send("SIGINT").is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        while term.recv().await.is_some() {
            if tx.send("SIGTERM").is_err() {
                break;
            }
        }
    });
    rx
}

/// Why the run is stopping.
#[derive(Debug, Clone)]
enum Stop {
    /// A step failed: roll back unless told otherwise.
    Failure { reason: String, rollback: bool },
    /// The operator said no, or interrupted: roll back, then report cancelled.
    Cancel { reason: String, rollback: bool },
    /// The operator stopped the run for a person: nothing rolled back.
    Halt { reason: String },
    /// `runbook rollback RUN`: roll back a run that has ended.
    Requested,
    /// The journal cannot be written: start nothing more, not even a
    /// rollback or `finally`, since nothing more could be recorded.
    JournalFailed,
}

/// Runs a compiled runbook to the end. `Err` only when the run cannot start
/// (missing inputs or secrets, confirmations with nobody to ask).
pub async fn execute(
    compiled: Arc<Compiled>,
    registry: Arc<Registry>,
    request: RunRequest,
    operator: Arc<dyn Operator>,
    reporter: Arc<dyn Reporter>,
    interrupts: mpsc::UnboundedReceiver<&'static str>,
) -> Result<RunSummary, Vec<Diagnostic>> {
    let interactive = operator.is_interactive();
    // A run picked up from its journal: the state the journal leaves, replayed once.
    let replayed = request.mode.journal().map(Journal::state);
    // The run starts now, to the second: relative inputs count from here.
    let started = crate::validate::datetime::start_now();
    let (inputs, secrets) = prepare(&compiled, &registry, &request, replayed.as_ref(), interactive, started)?;
    if let Some(summary) = replayed.as_ref().and_then(RunState::summary)
        && matches!(request.mode, Mode::Resume(_))
    {
        return Err(vec![
            Diagnostic::error(
                codes::NOTHING_TO_DO,
                format!(
                    "run `{}` already finished ({}); there is nothing to resume",
                    summary.run_id,
                    summary.status.as_str()
                ),
            )
            .with_help(format!(
                "to undo what it did, run `runbook rollback {}`",
                summary.run_id
            )),
        ]);
    }
    let run_id = match request.mode.journal() {
        Some(journal) => journal.header.run_id.clone(),
        None => request.run_id.clone().unwrap_or_else(new_run_id),
    };
    let started_secs = u64::try_from(started.as_second()).unwrap_or_default();
    let mut ctx = RunContext::new(&run_id, &format_timestamp(started_secs), &inputs, &secrets);
    let runbook = &compiled.runbook;

    // Secrets never leave the process: every event is masked first. A child
    // run shares its parent's secrets, so they follow a value into it.
    let redactor = request.secrets.clone().unwrap_or_default();
    redactor.add_all(secrets.values().cloned());

    // Vars are computed once, in order, before any step.
    let mut vars: Vec<ComputedVar> = Vec::new();
    for var in &runbook.vars {
        ctx.set_vars(&vars);
        match ctx.renderer(&registry, &redactor).params(&var.value, "") {
            Ok(rendered) => vars.push(ComputedVar {
                name: var.name.clone(),
                secret: rendered.shown.is_some(),
                value: rendered.value,
            }),
            Err(e) => {
                return Err(vec![
                    Diagnostic::error(
                        codes::VARS,
                        redactor
                            .redact(&format!("cannot compute var `{}`: {e}", var.name))
                            .into_owned(),
                    )
                    .with_label(var.span, "computed here"),
                ]);
            }
        }
    }
    ctx.set_vars(&vars);
    for step in runbook.steps.iter().chain(&runbook.finally) {
        ctx.set_step(&step.id, StepStatus::Pending, None);
    }

    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    let mut _lock = None;
    let mut journal_writer = None;
    if let Some(state) = &request.state {
        let key = match &runbook.lock {
            Some(lock) => template::render(&lock.text, &ctx.value(None)).map_err(|e| {
                vec![
                    Diagnostic::error(codes::LOCKED, format!("cannot render the lock key: {e}"))
                        .with_label(lock.span, "the lock key"),
                ]
            })?,
            None => runbook.name.clone(),
        };
        let locked = crate::journal::lock::lock_dir(&*request.env)
            .and_then(|dir| crate::journal::lock::acquire(&dir, &key, &run_id));
        _lock = Some(locked.map_err(|e| {
            vec![Diagnostic::error(codes::LOCKED, redactor.redact(&e.to_string()).into_owned()).with_help(e.help())]
        })?);
        let writer = match request.mode.journal() {
            Some(journal) => JournalWriter::append_to(journal),
            None => {
                // An input whose value is or holds a secret is journaled masked.
                let mut shown = Json::Object(inputs.clone());
                redactor.redact_json(&mut shown);
                let shown = match shown {
                    Json::Object(map) => map,
                    _ => serde_json::Map::new(),
                };
                let masked_inputs = inputs
                    .iter()
                    .filter(|(name, value)| shown.get(*name) != Some(value))
                    .map(|(name, _)| name.clone())
                    .collect();
                let header = Header {
                    format: crate::journal::FORMAT,
                    run_id: run_id.clone(),
                    runbook: runbook.name.clone(),
                    runbook_path: state.runbook_path.clone(),
                    runbook_sha256: crate::journal::sha256(&state.runbook_text),
                    inputs: shown,
                    masked_inputs,
                    started_at: crate::clock::now(),
                    pid: std::process::id(),
                    host: hostname(),
                };
                JournalWriter::create(
                    &crate::journal::run_dir(&state.state_dir, &run_id),
                    &header,
                    &state.runbook_text,
                )
            }
        }
        .map_err(|e| vec![Diagnostic::error(codes::JOURNAL, e.to_string()).with_help(e.help())])?;
        journal_writer = Some(Arc::new(writer.stop_run_with(stop_tx.clone())));
    }
    let display: Arc<dyn Reporter> = Arc::new(Redacting {
        redactor: redactor.clone(),
        inner: Arc::new(Reporters(vec![reporter.clone(), Arc::new(Trace)])),
    });
    let mut sinks: Vec<Arc<dyn Reporter>> = Vec::new();
    if let Some(writer) = &journal_writer {
        sinks.push(writer.clone());
    }
    sinks.push(reporter);
    sinks.push(Arc::new(Trace));
    let reporter: Arc<dyn Reporter> = Arc::new(Redacting {
        redactor: redactor.clone(),
        inner: Arc::new(Reporters(sinks)),
    });
    let mut interrupts = merge(interrupts, stop_rx);

    let prompt = Arc::new(tokio::sync::Mutex::new(()));
    let host = Arc::new_cyclic(|this| RunHost {
        this: this.clone(),
        compiled: compiled.clone(),
        state_dir: request.state.as_ref().map(|s| s.state_dir.clone()),
        display: display.clone(),
        registry: registry.clone(),
        ctx: ctx.clone(),
        reporter: reporter.clone(),
        operator: operator.clone(),
        run_id: run_id.clone(),
        kill_grace: request.kill_grace,
        yes: request.yes,
        prompt,
        operator_name: request.operator.clone(),
        clocks: PromptClocks::default(),
        tails: std::sync::Mutex::new(HashMap::new()),
        declined: std::sync::Mutex::new(HashMap::new()),
        journal: journal_writer.clone(),
        redactor: redactor.clone(),
        streams: std::sync::Mutex::new(HashMap::new()),
        running_kinds: std::sync::Mutex::new(HashMap::new()),
        env: request.env.clone(),
    });
    let shared = host;
    let mut run = Run::new(shared.clone(), &request);
    if let (Mode::Rollback(_), Some(state)) = (&request.mode, &replayed) {
        run.restore(state);
        // Asked before anything is done, even putting right what a dead run left.
        if !request.yes {
            run.approve_rollback().await?;
        }
    }
    if let Some(state) = &replayed {
        recover_cut_short(&shared, state).await?;
    }
    let started = Instant::now();
    match (&request.mode, &replayed) {
        // A new run (a run from a journal always has its state).
        (Mode::Run, _) | (_, None) => reporter.event(&Event::RunStarted {
            run_id: run_id.clone(),
            runbook: runbook.name.clone(),
            steps: runbook.steps.len(),
            dry_run: false,
        }),
        (Mode::Resume(_), Some(state)) => {
            let rerun = run.restore(state);
            // A step that was in flight may or may not have taken effect.
            for &i in &rerun {
                let step = &runbook.steps[i];
                // Running a read-only step again is how it is re-checked.
                let read_only = registry.get(&step.kind).is_some_and(|k| k.read_only());
                if step.idempotent || request.yes || read_only {
                    continue;
                }
                let (id, question) = (
                    step.id.clone(),
                    format!(
                        "step `{}` was running when the run stopped; it may already have taken effect. Run it again?",
                        step.id
                    ),
                );
                let asked = Instant::now();
                let text = question.clone();
                let reply = run
                    .ask(Reply::Withdrawn, move |o| {
                        let withdrawn = CancellationToken::new();
                        o.confirm(&Question {
                            step: &id,
                            message: &text,
                            action: "run the step again",
                            detail: "",
                            can_skip: false,
                            withdrawn: &withdrawn,
                        })
                    })
                    .await;
                let again = reply == Reply::Given(ConfirmAnswer::Yes);
                let words = match reply {
                    Reply::Given(answer) => answer.words().to_string(),
                    Reply::Silence { waited } => silence_words(waited),
                    Reply::Interrupted => INTERRUPTED_WORDS.to_string(),
                    Reply::Withdrawn => WITHDRAWN_WORDS.to_string(),
                };
                run.shared.decided(Some(&step.id), &question, &words, asked.elapsed());
                if !again {
                    // The run is left as it was, to be resumed once checked.
                    return Err(vec![
                        Diagnostic::error(
                            codes::IN_FLIGHT,
                            format!(
                                "step `{}` was in flight and was not run again; the run is left as it was",
                                step.id
                            ),
                        )
                        .with_label(step.span, "in flight when the run stopped")
                        .with_help(format!(
                            "check what the step did, then `runbook resume {run_id}` again (or `runbook rollback {run_id}`)"
                        )),
                    ]);
                }
            }
            reporter.event(&Event::RunResumed {
                run_id: run_id.clone(),
                rerun: rerun.iter().map(|&i| runbook.steps[i].id.clone()).collect(),
            });
        }
        (Mode::Rollback(_), Some(state)) => {
            if !state.rollback_requested() {
                reporter.event(&Event::RollbackRequested {
                    reason: "requested by the operator".into(),
                });
            }
            run.stop = Some(Stop::Requested);
        }
    }
    run.main(&mut interrupts).await;
    let status = run.finish(&mut interrupts).await;
    let mut summary = run.summary(status, started.elapsed());
    summary.mask(&redactor);
    let finished = Event::RunFinished {
        status,
        duration_ms: millis(started.elapsed()),
        summary: summary.clone(),
    };
    if status == RunStatus::JournalFailed {
        // Not journaled even where it could be: the run is to be resumed.
        display.event(&finished);
    } else {
        reporter.event(&finished);
    }
    if status != RunStatus::JournalFailed && !run.shared.journaled() {
        // Everything ran, but the end could not be recorded.
        summary.status = RunStatus::JournalFailed;
        summary.reason = Some(redactor.redact(&run.journal_failure_words()).into_owned());
    }
    Ok(summary)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Signals and journal failures both stop the run the same way.
fn merge(
    mut signals: mpsc::UnboundedReceiver<&'static str>,
    mut stops: mpsc::UnboundedReceiver<&'static str>,
) -> mpsc::UnboundedReceiver<&'static str> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                Some(s) = signals.recv() => s,
                Some(s) = stops.recv() => s,
                else => break,
            };
            if tx.send(next).is_err() {
                break;
            }
        }
    });
    rx
}

/// Who is running this, for the audit trail when `--operator` does not
/// say: the login user and the host, `alice@db-3`.
pub fn login_name() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()));
    format!("{user}@{}", hostname())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
