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
pub mod event;
pub mod operator;

pub use event::{Event, Reporter, RunStatus, RunSummary, StepStatus, StepSummary};
pub use operator::{GateAnswer, InterruptAnswer, Operator, StepAnswer, Unattended};

use crate::compile::Compiled;
use crate::diagnostic::Diagnostic;
use crate::journal::redact::Redacting;
use crate::journal::{Header, Journal, JournalWriter};
use crate::parse::raw::{Backoff, OnFailure, format_duration};
use crate::plan::resolve_inputs;
use crate::secrets::Redactor;
use crate::step::{Host, OutputStream, Registry, StepContext, StepError, StepFuture};
use crate::template;
use crate::validate::checked::{self, Param, Retry, SecretSource, Text};
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

/// The resolved inputs and the secret values of a run.
type Prepared = (serde_json::Map<String, Json>, HashMap<String, String>);

/// Checks what a run needs before anything runs: inputs, secrets, and
/// someone to answer confirmations. Returns the inputs and secret values.
fn prepare(
    compiled: &Compiled,
    registry: &Registry,
    request: &RunRequest,
    interactive: bool,
) -> Result<Prepared, Vec<Diagnostic>> {
    let runbook = &compiled.runbook;
    let mut errors = Vec::new();
    if let Mode::Resume(journal) = &request.mode
        && !request.yes
        && !interactive
    {
        // Whether to run again a step that may have taken effect is a
        // person's call: without one, the run is left as it was.
        for id in in_flight(journal) {
            let Some(step) = runbook.steps.iter().find(|s| s.id == id) else {
                continue;
            };
            let read_only = registry.get(&step.kind).is_some_and(|k| k.read_only());
            if !step.idempotent && !read_only {
                errors.push(
                    Diagnostic::error(
                        codes::IN_FLIGHT,
                        format!(
                            "step `{id}` was running when the run stopped and may already have taken effect; \
                             there is no terminal to ask whether to run it again, so the run is left as it was"
                        ),
                    )
                    .with_label(step.span, "in flight when the run stopped")
                    .with_help(
                        "resume from a terminal to be asked, or pass `--yes` to run it again (mark steps that are safe to repeat `idempotent: true`)",
                    ),
                );
            }
        }
    }
    if let Mode::Rollback(journal) = &request.mode
        && let Some(summary) = journal.finished()
        && !anything_to_roll_back(runbook, journal)
    {
        let said = if summary.status == RunStatus::RolledBack {
            "was already rolled back"
        } else {
            "left nothing in place to roll back"
        };
        errors.push(
            Diagnostic::error(
                codes::NOTHING_TO_DO,
                format!("run `{}` {said}; nothing was done", summary.run_id),
            )
            .with_help(format!("`runbook show {}` tells what it did", summary.run_id)),
        );
        return Err(errors);
    }
    let inputs: serde_json::Map<String, Json> = match request.mode.journal() {
        Some(journal) => journaled_inputs(runbook, journal, request, &mut errors),
        None => resolve_inputs(runbook, &request.inputs, &*request.env, &mut errors)
            .into_iter()
            .map(|i| (i.name, i.value))
            .collect(),
    };
    let mut secrets = HashMap::new();
    for secret in &runbook.secrets {
        let value = match &secret.source {
            SecretSource::Env(var) => (request.env)(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                (
                    format!(
                        "secret `{}` is not set: the environment variable {var} is empty or missing",
                        secret.name
                    ),
                    format!("export {var}=... and run again"),
                )
            }),
            SecretSource::File(path) => {
                let full = request.base_dir.join(path);
                crate::files::read_regular(&full)
                    .and_then(|bytes| {
                        String::from_utf8(bytes)
                            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"))
                    })
                    .map(|s| s.strip_suffix('\n').unwrap_or(&s).to_string())
                    .map_err(|e| {
                        (
                            format!("secret `{}` cannot be read from {}: {e}", secret.name, full.display()),
                            format!("create {} with the secret, readable by this user", full.display()),
                        )
                    })
            }
        };
        let value = value.and_then(|value| {
            let length = value.trim().chars().count();
            if length < crate::secrets::MIN_LEN {
                return Err((
                    format!(
                        "secret `{}` is {length} character{} long: a secret shorter than {} characters cannot be masked \
                         without garbling every line that happens to hold it",
                        secret.name,
                        if length == 1 { "" } else { "s" },
                        crate::secrets::MIN_LEN
                    ),
                    "use the real secret (a token, a key, a password); nothing was run".to_string(),
                ));
            }
            Ok(value)
        });
        match value {
            Ok(value) => {
                secrets.insert(secret.name.clone(), value);
            }
            Err((message, help)) => errors.push(
                Diagnostic::error(codes::MISSING_SECRET, message)
                    .with_label(secret.span, "declared here")
                    .with_help(help),
            ),
        }
    }
    if !request.yes && !interactive && matches!(request.mode, Mode::Run) {
        let asking: Vec<&str> = runbook
            .steps
            .iter()
            .chain(&runbook.finally)
            .filter(|s| request.step_mode || s.confirm.is_some() || s.kind == "confirm")
            .filter(|s| !known_skipped(s, &inputs))
            .map(|s| s.id.as_str())
            .collect();
        if !asking.is_empty() {
            let names: Vec<String> = asking.iter().map(|s| format!("`{s}`")).collect();
            let mut diagnostic = Diagnostic::error(
                codes::NEEDS_CONFIRMATION,
                format!(
                    "this run needs confirmation before {} {}, and there is no terminal to ask on",
                    if asking.len() == 1 { "step" } else { "steps" },
                    names.join(", ")
                ),
            )
            .with_help("run it from a terminal, or pass `--yes` to answer yes to every confirmation");
            if let Some(step) = runbook.step(asking[0]) {
                diagnostic = diagnostic.with_label(step.span, "asks first");
            }
            errors.push(diagnostic);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok((inputs, secrets))
}

/// The inputs of a run picked up from its journal. Inputs that held a
/// secret were journaled masked: they must be given again (a parent run
/// gives its child's every time).
fn journaled_inputs(
    runbook: &checked::Runbook,
    journal: &Journal,
    request: &RunRequest,
    errors: &mut Vec<Diagnostic>,
) -> serde_json::Map<String, Json> {
    let header = &journal.header;
    if header.masked_inputs.is_empty() {
        return header.inputs.clone();
    }
    let missing: Vec<&String> = header
        .masked_inputs
        .iter()
        .filter(|name| !request.inputs.iter().any(|(given, _)| given == *name))
        .collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
        errors.push(
            Diagnostic::error(
                codes::MASKED_INPUT,
                format!(
                    "the journal keeps {} masked, since {} a secret; nothing was run",
                    names.join(", "),
                    if names.len() == 1 {
                        "its value held"
                    } else {
                        "their values held"
                    }
                ),
            )
            .with_help(format!(
                "give {} again: {}",
                if names.len() == 1 { "it" } else { "them" },
                missing
                    .iter()
                    .map(|n| format!("--input {n}=..."))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        );
        return header.inputs.clone();
    }
    // Every other input as journaled; the masked ones as given now.
    let mut given: Vec<(String, String)> = header
        .inputs
        .iter()
        .filter(|(name, _)| !header.masked_inputs.contains(name))
        .map(|(name, value)| {
            (
                name.clone(),
                value.as_str().map_or_else(|| value.to_string(), str::to_string),
            )
        })
        .collect();
    given.extend(
        request
            .inputs
            .iter()
            .filter(|(name, _)| header.masked_inputs.contains(name))
            .cloned(),
    );
    let none = |_: &str| None;
    resolve_inputs(runbook, &given, &none, errors)
        .into_iter()
        .map(|i| (i.name, i.value))
        .collect()
}

/// Whether a step's guard reads only inputs and is false for these: such a
/// step will be skipped, so its confirmation will never be asked.
fn known_skipped(step: &checked::Step, inputs: &serde_json::Map<String, Json>) -> bool {
    let Some(when) = &step.when else { return false };
    if when.refs.is_empty() || !when.refs.iter().all(|r| r.path.starts_with("inputs.")) {
        return false;
    }
    let ctx = context::map_value([("inputs", to_value(inputs))]);
    template::eval(&when.text, &ctx).is_ok_and(|v| !v.is_true())
}

/// Which action of the runbook a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Which {
    Main(usize),
    Finally(usize),
    Rollback(usize),
}

/// A step or rollback body, as the attempt loop sees it.
struct Action<'a> {
    id: &'a str,
    kind: &'a str,
    with: &'a Param,
    timeout: Option<Duration>,
    retry: Option<&'a Retry>,
    verify: &'a [Text],
    outputs: &'a [(String, Text)],
}

fn action(runbook: &checked::Runbook, which: Which) -> Option<Action<'_>> {
    let from_step = |s| step_action(s);
    fn step_action(s: &checked::Step) -> Action<'_> {
        Action {
            id: &s.id,
            kind: &s.kind,
            with: &s.with,
            timeout: s.timeout,
            retry: s.retry.as_ref(),
            verify: &s.verify,
            outputs: &s.outputs,
        }
    }
    Some(match which {
        Which::Main(i) => from_step(&runbook.steps[i]),
        Which::Finally(i) => from_step(&runbook.finally[i]),
        Which::Rollback(i) => {
            let step = &runbook.steps[i];
            let body = step.rollback.as_ref()?;
            Action {
                id: &step.id,
                kind: &body.kind,
                with: &body.with,
                timeout: body.timeout,
                retry: body.retry.as_ref(),
                verify: &body.verify,
                outputs: &[],
            }
        }
    })
}

/// How one step (all its attempts) ended.
#[derive(Debug, Clone)]
struct Outcome {
    which: Which,
    status: StepStatus,
    outputs: Json,
    error: Option<String>,
    /// The failure was a `verify` gate (offered to the operator when interactive).
    gate: bool,
    /// How the kind undoes the step, for a step without a `rollback` of its own.
    undo: Option<crate::step::Undo>,
    attempts: u32,
    duration: Duration,
}

/// What every task of a run shares, and the engine's side of [`Host`].
struct RunHost {
    this: Weak<RunHost>,
    compiled: Arc<Compiled>,
    state_dir: Option<PathBuf>,
    /// The terminal and logs, without the journal: child runs report here.
    display: Arc<dyn Reporter>,
    registry: Arc<Registry>,
    ctx: RunContext,
    reporter: Arc<dyn Reporter>,
    operator: Arc<dyn Operator>,
    run_id: String,
    kill_grace: Duration,
    yes: bool,
    prompt: Arc<tokio::sync::Mutex<()>>,
    /// The run's journal, for records a kind must see written before it acts.
    journal: Option<Arc<JournalWriter>>,
    redactor: Arc<Redactor>,
    /// The environment the run was given, which its child runs get too.
    env: Env,
    /// The kind each step's current action runs (a rollback body's, an undo's).
    running_kinds: std::sync::Mutex<HashMap<String, String>>,
    /// Output held back per step and stream, see [`crate::secrets::StreamMasker`].
    streams: std::sync::Mutex<HashMap<(String, OutputStream), crate::secrets::StreamMasker>>,
}

impl Host for RunHost {
    fn run_nested(&self, kind: &str, params: Json, cancel: CancellationToken) -> StepFuture<'_> {
        let kind_name = kind.to_string();
        Box::pin(async move {
            let kind = self
                .registry
                .get(&kind_name)
                .cloned()
                .ok_or_else(|| StepError::new(format!("unknown step kind `{kind_name}`")))?;
            let host: Arc<dyn Host> = self.this.upgrade().ok_or_else(|| StepError::new("the run has ended"))?;
            let cx = StepContext {
                run_id: self.run_id.clone(),
                step_id: format!("{kind_name} probe"),
                attempt: 1,
                idempotency_key: format!("{}:{kind_name}", self.run_id),
                params,
                cancel,
                kill_grace: self.kill_grace,
                host,
            };
            kind.run(cx).await
        })
    }

    fn eval(&self, expression: &str, result: &Json) -> Result<Json, String> {
        let value = template::eval(expression, &self.ctx.value(Some(result)))
            .map_err(|e| format!("cannot evaluate `{expression}`: {}", template::reason(&e)))?;
        serde_json::to_value(&value).map_err(|e| e.to_string())
    }

    fn confirm<'a>(
        &'a self,
        step: &'a str,
        message: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            if self.yes {
                return Ok(true);
            }
            if !self.operator.is_interactive() {
                return Err("no terminal to ask for approval on; run with `--yes` to approve".into());
            }
            let _guard = self.prompt.lock().await;
            let operator = self.operator.clone();
            let (step, message) = (step.to_string(), self.redactor.redact(message).into_owned());
            tokio::task::spawn_blocking(move || operator.confirm(&step, &message, "approval step"))
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn output(&self, step: &str, stream: OutputStream, text: &str, line_end: bool) {
        let shown = if line_end && self.redactor.is_empty() {
            Some(text.to_string())
        } else {
            // Masked over the pieces of a long line, so that a secret cut in
            // two by a piece boundary is still masked.
            let Ok(mut streams) = self.streams.lock() else { return };
            let stream_masker = streams.entry((step.to_string(), stream)).or_default();
            let shown = stream_masker.push(&self.redactor, text, line_end);
            if line_end {
                streams.remove(&(step.to_string(), stream));
            }
            shown
        };
        if let Some(line) = shown {
            self.reporter.event(&Event::StepOutput {
                step: step.to_string(),
                stream,
                line,
            });
        }
    }

    fn checkpoint(&self, step: &str, state: Json) -> Result<(), String> {
        let kind = self.kind_of(step).unwrap_or_default();
        let event = Event::StepCheckpoint {
            step: step.to_string(),
            kind,
            state,
        };
        self.reporter.event(&event);
        match &self.journal {
            Some(journal) => match journal.failure() {
                Some(e) => Err(format!("the journal cannot be written ({e}); nothing more was done")),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    fn log(&self, step: &str, level: &str, message: &str) {
        self.reporter.event(&Event::Log {
            step: step.to_string(),
            level: level.to_string(),
            message: message.to_string(),
        });
    }
    fn run_runbook(&self, step: &str, inputs: Json, cancel: CancellationToken) -> StepFuture<'_> {
        let step = step.to_string();
        Box::pin(async move {
            let child = self.compiled.children.get(&step).cloned().ok_or_else(|| {
                StepError::new(format!(
                    "step `{step}` has no runbook to run (it was not loaded from a file)"
                ))
            })?;
            let child_id = child_run_id(&self.run_id, &step);
            let mode = match &self.state_dir {
                Some(dir) => match crate::journal::read(dir, &child_id) {
                    Ok(journal) => match journal.finished() {
                        // Already ran to the end (a resumed parent): its outputs stand.
                        Some(summary) if summary.status == RunStatus::Succeeded => return Ok(child_result(summary)),
                        Some(summary) => {
                            return Err(StepError::new(format!(
                                "the runbook already ran as run {child_id} and ended {}",
                                summary.status.as_str()
                            )));
                        }
                        None => Mode::Resume(Box::new(journal)),
                    },
                    Err(crate::journal::JournalError::NotFound { .. }) => Mode::Run,
                    Err(e) => return Err(StepError::new(e.to_string())),
                },
                None => Mode::Run,
            };
            let inputs = inputs
                .as_object()
                .map(|map| {
                    map.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                        .collect()
                })
                .unwrap_or_default();
            let summary = self.execute_child(&step, child, inputs, mode, cancel).await?;
            if summary.status == RunStatus::Succeeded {
                Ok(child_result(&summary))
            } else {
                Err(StepError::new(format!(
                    "the runbook `{}` {} (run {}){}",
                    summary.runbook,
                    summary.status.as_str().replace('_', " "),
                    summary.run_id,
                    summary.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
                ))
                .with_result(child_result(&summary)))
            }
        })
    }
}

/// Shows what a step's output held back when its attempt ends, however it ends.
struct FlushOutput<'a> {
    host: &'a RunHost,
    step: &'a str,
}

impl Drop for FlushOutput<'_> {
    fn drop(&mut self) {
        let held: Vec<(OutputStream, String)> = match self.host.streams.lock() {
            Ok(mut streams) => {
                let keys: Vec<_> = streams.keys().filter(|(s, _)| s == self.step).cloned().collect();
                keys.into_iter()
                    .filter_map(|key| {
                        let mut masker = streams.remove(&key)?;
                        Some((key.1, masker.flush(&self.host.redactor)?))
                    })
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for (stream, line) in held {
            self.host.reporter.event(&Event::StepOutput {
                step: self.step.to_string(),
                stream,
                line,
            });
        }
    }
}

/// The id of the run a `runbook` step starts: stable, so a resumed parent finds it.
fn child_run_id(parent: &str, step: &str) -> String {
    format!("{parent}.{step}")
}

fn child_result(summary: &RunSummary) -> Json {
    let outputs: serde_json::Map<String, Json> = summary
        .steps
        .iter()
        .filter(|s| !s.outputs.is_null())
        .map(|s| (s.id.clone(), s.outputs.clone()))
        .collect();
    serde_json::json!({ "run_id": summary.run_id, "status": summary.status.as_str(), "outputs": outputs })
}

impl RunHost {
    /// Runs a child runbook (or rolls it back) with this run's operator and display.
    fn execute_child<'a>(
        &'a self,
        step: &'a str,
        child: Arc<Compiled>,
        inputs: Vec<(String, String)>,
        mode: Mode,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<RunSummary, StepError>> + Send + 'a>> {
        Box::pin(self.execute_child_inner(step, child, inputs, mode, cancel))
    }

    async fn execute_child_inner(
        &self,
        step: &str,
        child: Arc<Compiled>,
        inputs: Vec<(String, String)>,
        mode: Mode,
        cancel: CancellationToken,
    ) -> Result<RunSummary, StepError> {
        let child_id = child_run_id(&self.run_id, step);
        let origin = child.origin.clone();
        let request = RunRequest {
            inputs,
            env: self.env.clone(),
            base_dir: origin
                .as_ref()
                .and_then(|o| o.path.parent().map(std::path::Path::to_path_buf))
                .unwrap_or_default(),
            step_mode: false,
            yes: self.yes,
            no_rollback: false,
            timeout: None,
            kill_grace: self.kill_grace,
            run_id: Some(child_id),
            secrets: Some(self.redactor.clone()),
            state: match (&self.state_dir, origin) {
                (Some(dir), Some(origin)) => Some(StateRequest {
                    state_dir: dir.clone(),
                    runbook_path: origin.path,
                    runbook_text: origin.text,
                }),
                _ => None,
            },
            mode,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(async move {
            cancel.cancelled().await;
            let _ = tx.send("the parent run stopped");
        });
        let operator: Arc<dyn Operator> = Arc::new(NestedOperator(self.operator.clone()));
        let reporter: Arc<dyn Reporter> = Arc::new(ChildReporter {
            step: step.to_string(),
            inner: self.display.clone(),
        });
        let result = execute(child, self.registry.clone(), request, operator, reporter, rx).await;
        watcher.abort();
        result.map_err(|diagnostics| {
            StepError::new(
                diagnostics
                    .iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }

    /// Rolls back the child run of a `runbook` step, from its journal.
    /// (Boxed: runs nest, so their futures are recursive.)
    fn rollback_child<'a>(&'a self, step: &'a str) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let dir = self
                .state_dir
                .as_ref()
                .ok_or("the child run has no journal to roll back from")?;
            let journal = crate::journal::read(dir, &child_run_id(&self.run_id, step)).map_err(|e| e.to_string())?;
            let child = self
                .compiled
                .children
                .get(step)
                .cloned()
                .ok_or("the child runbook is not loaded")?;
            let summary = self
                .execute_child(
                    step,
                    child,
                    Vec::new(),
                    Mode::Rollback(Box::new(journal)),
                    CancellationToken::new(),
                )
                .await
                .map_err(|e| e.message)?;
            match summary.status {
                RunStatus::RolledBack => Ok(()),
                other => Err(format!("the child run ended {}", other.as_str())),
            }
        })
    }
}

/// A child run asks the same person, but a stop from its parent rolls it back without asking.
struct NestedOperator(Arc<dyn Operator>);

impl Operator for NestedOperator {
    fn is_interactive(&self) -> bool {
        self.0.is_interactive()
    }
    fn confirm(&self, step: &str, message: &str, action: &str) -> bool {
        self.0.confirm(step, message, action)
    }
    fn before_step(&self, step: &str, action: &str) -> StepAnswer {
        self.0.before_step(step, action)
    }
    fn gate_failed(&self, step: &str, error: &str) -> GateAnswer {
        self.0.gate_failed(step, error)
    }
    fn interrupted(&self) -> InterruptAnswer {
        InterruptAnswer::Rollback
    }
    fn abandon_rollback(&self) -> bool {
        false
    }
}

/// Shows a child run's events as steps of the parent (`parent_step/child_step`).
struct ChildReporter {
    step: String,
    inner: Arc<dyn Reporter>,
}

impl Reporter for ChildReporter {
    fn event(&self, event: &Event) {
        let event = match event {
            Event::RunStarted {
                run_id, runbook, steps, ..
            } => Event::Log {
                step: self.step.clone(),
                level: "info".into(),
                message: format!("runbook `{runbook}` starts as run {run_id} ({steps} steps)"),
            },
            Event::RunFinished { status, .. } => Event::Log {
                step: self.step.clone(),
                level: "info".into(),
                message: format!("runbook finished: {}", status.as_str()),
            },
            other => {
                let Ok(mut value) = serde_json::to_value(other) else {
                    return;
                };
                if let Some(step) = value.get_mut("step")
                    && let Some(name) = step.as_str()
                {
                    *step = Json::String(format!("{}/{name}", self.step));
                }
                match serde_json::from_value(value) {
                    Ok(event) => event,
                    Err(_) => return,
                }
            }
        };
        self.inner.event(&event);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The delay before attempt `attempt + 1`.
fn backoff_delay(retry: &Retry, attempt: u32) -> Duration {
    let base = match retry.backoff {
        Backoff::Fixed => retry.delay,
        Backoff::Exponential => retry
            .delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30))),
    };
    let capped = retry.max_delay.map_or(base, |max| base.min(max));
    if retry.jitter {
        capped.mul_f64(1.0 - fastrand::f64() * 0.5)
    } else {
        capped
    }
}

impl RunHost {
    /// Whether everything so far could be journaled (always, without a journal).
    fn journaled(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.failure().is_none())
    }

    fn renderer(&self) -> context::Renderer<'_> {
        self.ctx.renderer(&self.registry, &self.redactor)
    }

    /// The kind running as step `step` now: its rollback body's while it is
    /// being rolled back (the journal says which), else the step's own.
    fn kind_of(&self, step: &str) -> Option<String> {
        if let Some(kind) = self.running_kinds.lock().ok().and_then(|k| k.get(step).cloned()) {
            return Some(kind);
        }
        let runbook = &self.compiled.runbook;
        let found = runbook.steps.iter().chain(&runbook.finally).find(|s| s.id == step)?;
        Some(found.kind.clone())
    }

    /// What a step will do, in words: from parameters masked before the
    /// kind can cut them short.
    fn describe(&self, kind: &str, params: &Json) -> String {
        let mut params = params.clone();
        self.redactor.redact_json(&mut params);
        self.registry
            .get(kind)
            .map_or_else(|| kind.to_string(), |k| k.describe(&params))
    }

    /// Runs every attempt of an action. Never panics, never hangs past
    /// cancellation plus the kill grace.
    async fn run_action(&self, which: Which, cancel: CancellationToken, announce: bool) -> Outcome {
        let started = Instant::now();
        let runbook = &self.compiled.runbook;
        let Some(action) = action(runbook, which) else {
            return Outcome {
                which,
                status: StepStatus::Failed,
                outputs: Json::Null,
                error: Some("no such action".into()),
                gate: false,
                undo: None,
                attempts: 0,
                duration: Duration::ZERO,
            };
        };
        let attempts = action.retry.map_or(1, |r| r.attempts.max(1));
        let mut outcome = Outcome {
            which,
            status: StepStatus::Failed,
            outputs: Json::Null,
            error: None,
            gate: false,
            undo: None,
            attempts: 0,
            duration: Duration::ZERO,
        };
        // A step without a `rollback` of its own may be undone by its kind.
        let undoable = matches!(which, Which::Main(i) if runbook.steps[i].rollback.is_none());
        for attempt in 1..=attempts {
            outcome.attempts = attempt;
            let rendered = match self.renderer().params(action.with, action.kind) {
                Ok(rendered) => rendered,
                Err(e) => {
                    outcome.error = Some(e);
                    break;
                }
            };
            if announce {
                self.reporter.event(&Event::StepStarted {
                    step: action.id.to_string(),
                    name: match which {
                        Which::Main(i) | Which::Rollback(i) => runbook.steps[i].name.clone(),
                        Which::Finally(k) => runbook.finally[k].name.clone(),
                    },
                    attempt,
                    action: self.describe(action.kind, rendered.shown()),
                });
            }
            if !self.journaled() {
                // Its start could not be recorded: it must not start.
                outcome.status = StepStatus::Cancelled;
                outcome.error = Some("not started: the journal could not be written".into());
                break;
            }
            let params = rendered.value;
            let undo_params = undoable.then(|| params.clone());
            let result = self.attempt(&action, attempt, params, &cancel).await;
            if cancel.is_cancelled() {
                outcome.status = StepStatus::Cancelled;
                outcome.error = Some("cancelled".into());
                break;
            }
            let undo = match (&result, &undo_params) {
                (Ok(result), Some(params)) => self.registry.get(action.kind).and_then(|k| k.undo(params, result)),
                _ => None,
            };
            match result.and_then(|result| self.check(&action, &result)) {
                Ok(outputs) => {
                    outcome.undo = undo;
                    outcome.status = StepStatus::Succeeded;
                    outcome.outputs = outputs;
                    outcome.error = None;
                    outcome.gate = false;
                    break;
                }
                Err((error, gate)) => {
                    outcome.error = Some(error.clone());
                    outcome.gate = gate;
                    if attempt < attempts
                        && let Some(retry) = action.retry
                    {
                        let delay = backoff_delay(retry, attempt);
                        self.reporter.event(&Event::StepRetrying {
                            step: action.id.to_string(),
                            attempt,
                            error,
                            delay_ms: millis(delay),
                        });
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = cancel.cancelled() => {
                                outcome.status = StepStatus::Cancelled;
                                outcome.error = Some("cancelled".into());
                                break;
                            }
                        }
                    }
                }
            }
        }
        outcome.duration = started.elapsed();
        outcome
    }

    /// One attempt: the kind's future, bounded by the timeout and the run's cancellation.
    async fn attempt(
        &self,
        action: &Action<'_>,
        attempt: u32,
        params: Json,
        cancel: &CancellationToken,
    ) -> Result<Json, (String, bool)> {
        let Some(kind) = self.registry.get(action.kind).cloned() else {
            return Err((format!("unknown step kind `{}`", action.kind), false));
        };
        let attempt_cancel = cancel.child_token();
        let cx = StepContext {
            run_id: self.run_id.clone(),
            step_id: action.id.to_string(),
            attempt,
            idempotency_key: format!("{}:{}", self.run_id, action.id),
            params,
            cancel: attempt_cancel.clone(),
            kill_grace: self.kill_grace,
            host: self
                .this
                .upgrade()
                .ok_or_else(|| ("the run has ended".to_string(), false))?,
        };
        let _flush = FlushOutput {
            host: self,
            step: action.id,
        };
        self.set_running_kind(action.id, action.kind);
        let mut future = kind.run(cx);
        let timeout = action.timeout;
        let expired = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let bound = self.kill_grace + Duration::from_secs(2);
        tokio::select! {
            result = &mut future => result.map_err(|e| (step_error_text(&e), false)),
            () = expired => {
                attempt_cancel.cancel();
                let _ = tokio::time::timeout(bound, &mut future).await;
                Err((format!("timed out after {}", format_duration(timeout.unwrap_or_default())), false))
            }
            () = cancel.cancelled() => {
                let _ = tokio::time::timeout(bound, &mut future).await;
                Err(("cancelled".into(), false))
            }
        }
    }

    fn set_running_kind(&self, step: &str, kind: &str) {
        if let Ok(mut kinds) = self.running_kinds.lock() {
            kinds.insert(step.to_string(), kind.to_string());
        }
    }

    /// Runs the action a kind gave to undo a step (parameters already concrete).
    async fn run_undo(&self, step: &str, undo: crate::step::Undo, cancel: CancellationToken) -> Result<(), String> {
        self.set_running_kind(step, &undo.kind);
        let kind = self
            .registry
            .get(&undo.kind)
            .cloned()
            .ok_or_else(|| format!("unknown step kind `{}`", undo.kind))?;
        let cx = StepContext {
            run_id: self.run_id.clone(),
            step_id: step.to_string(),
            attempt: 1,
            idempotency_key: format!("{}:{step}:undo", self.run_id),
            params: undo.params,
            cancel,
            kill_grace: self.kill_grace,
            host: self.this.upgrade().ok_or("the run has ended")?,
        };
        kind.run(cx).await.map(|_| ()).map_err(|e| e.message)
    }

    /// Verify gates, `retry.until` and outputs over a result.
    fn check(&self, action: &Action<'_>, result: &Json) -> Result<Json, (String, bool)> {
        let ctx = self.ctx.value(Some(result));
        for gate in action.verify {
            match template::eval(&gate.text, &ctx) {
                Ok(value) if value.is_true() => {}
                Ok(_) => {
                    let seen = explain(&gate.text, &ctx, &self.redactor);
                    return Err((format!("verification failed: `{}` is false ({seen})", gate.text), true));
                }
                Err(e) => {
                    return Err((
                        format!("cannot evaluate `{}`: {}", gate.text, template::reason(&e)),
                        true,
                    ));
                }
            }
        }
        if let Some(until) = action.retry.and_then(|r| r.until.as_ref()) {
            match template::eval(&until.text, &ctx) {
                Ok(value) if value.is_true() => {}
                Ok(_) => {
                    return Err((
                        format!(
                            "`{}` is not true yet ({})",
                            until.text,
                            explain(&until.text, &ctx, &self.redactor)
                        ),
                        false,
                    ));
                }
                Err(e) => {
                    return Err((
                        format!("cannot evaluate `{}`: {}", until.text, template::reason(&e)),
                        false,
                    ));
                }
            }
        }
        let mut outputs = serde_json::Map::new();
        let renderer = self.renderer();
        for (name, expression) in action.outputs {
            match renderer.expression(expression, result) {
                Ok(value) => {
                    outputs.insert(name.clone(), serde_json::to_value(&value).unwrap_or(Json::Null));
                }
                Err(e) => {
                    return Err((
                        format!(
                            "cannot compute output `{name}` = `{}`: {}",
                            expression.text,
                            template::reason(&e)
                        ),
                        false,
                    ));
                }
            }
        }
        Ok(Json::Object(outputs))
    }
}

fn step_error_text(error: &StepError) -> String {
    error.message.clone()
}

/// Why the run is stopping.
#[derive(Debug, Clone)]
enum Stop {
    /// A step failed: roll back unless told otherwise.
    Failure { reason: String, rollback: bool },
    /// The operator said no, or interrupted: roll back, then report cancelled.
    Cancel { reason: String, rollback: bool },
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
    let (inputs, secrets) = prepare(&compiled, &registry, &request, interactive)?;
    if let Some(journal) = request.mode.journal()
        && let Some(summary) = journal.finished()
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
    let started_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
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
        inner: Arc::new(event::Reporters(vec![reporter.clone(), Arc::new(event::Trace)])),
    });
    let mut sinks: Vec<Arc<dyn Reporter>> = Vec::new();
    if let Some(writer) = &journal_writer {
        sinks.push(writer.clone());
    }
    sinks.push(reporter);
    sinks.push(Arc::new(event::Trace));
    let reporter: Arc<dyn Reporter> = Arc::new(Redacting {
        redactor: redactor.clone(),
        inner: Arc::new(event::Reporters(sinks)),
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
        journal: journal_writer.clone(),
        redactor: redactor.clone(),
        streams: std::sync::Mutex::new(HashMap::new()),
        running_kinds: std::sync::Mutex::new(HashMap::new()),
        env: request.env.clone(),
    });
    let shared = host;
    if let Some(journal) = request.mode.journal() {
        recover_cut_short(&shared, journal).await?;
    }
    let mut run = Run::new(shared.clone(), &request);
    let started = Instant::now();
    match &request.mode {
        Mode::Run => reporter.event(&Event::RunStarted {
            run_id: run_id.clone(),
            runbook: runbook.name.clone(),
            steps: runbook.steps.len(),
            dry_run: false,
        }),
        Mode::Resume(journal) => {
            let rerun = run.restore(journal);
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
                if !run
                    .ask(false, move |o| o.confirm(&id, &question, "run the step again"))
                    .await
                {
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
        Mode::Rollback(journal) => {
            run.restore(journal);
            if !journal
                .events
                .iter()
                .any(|e| matches!(e.event, Event::RollbackRequested { .. }))
            {
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

/// Main steps a journal shows started and not finished (or cancelled): in
/// flight when the run died.
fn in_flight(journal: &Journal) -> Vec<String> {
    let mut open: indexmap::IndexSet<String> = indexmap::IndexSet::new();
    for timed in &journal.events {
        match &timed.event {
            Event::StepStarted { step, .. } | Event::StepCancelled { step, .. } => {
                open.insert(step.clone());
            }
            Event::StepSucceeded { step, .. } | Event::StepFailed { step, .. } | Event::StepSkipped { step, .. } => {
                open.shift_remove(step);
            }
            _ => {}
        }
    }
    open.into_iter().collect()
}

/// Whether a run's journal shows a step still in place that can be undone
/// (it succeeded, has a rollback, an undo from its kind or a child run, and
/// was not rolled back since).
fn anything_to_roll_back(runbook: &checked::Runbook, journal: &Journal) -> bool {
    let mut in_place: indexmap::IndexSet<&str> = indexmap::IndexSet::new();
    for timed in &journal.events {
        match &timed.event {
            Event::StepSucceeded { step, undo, .. } => {
                let undoable = runbook
                    .steps
                    .iter()
                    .find(|s| &s.id == step)
                    .is_some_and(|s| s.rollback.is_some() || undo.is_some() || s.kind == crate::RUNBOOK_KIND);
                if undoable {
                    in_place.insert(step);
                }
            }
            Event::StepStarted { step, .. } | Event::RollbackSucceeded { step, .. } => {
                in_place.shift_remove(step.as_str());
            }
            _ => {}
        }
    }
    !in_place.is_empty()
}

/// Attempts that were in flight when the run died, with the last checkpoint
/// each journaled: `(step, kind, state)`.
fn cut_short(journal: &Journal) -> Vec<(String, String, Json)> {
    let mut open: indexmap::IndexMap<String, (String, Json)> = indexmap::IndexMap::new();
    for timed in &journal.events {
        match &timed.event {
            Event::StepCheckpoint { step, kind, state } => {
                open.insert(step.clone(), (kind.clone(), state.clone()));
            }
            Event::StepStarted { step, .. }
            | Event::StepSucceeded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepCancelled { step, .. }
            | Event::StepRecovered { step, .. }
            | Event::RollbackStarted { step, .. }
            | Event::RollbackSucceeded { step, .. }
            | Event::RollbackFailed { step, .. } => {
                open.shift_remove(step);
            }
            _ => {}
        }
    }
    open.into_iter()
        .map(|(step, (kind, state))| (step, kind, state))
        .collect()
}

/// Lets each kind put right what its attempt left half done when the run
/// died (processes still running, a path moved aside), before anything
/// runs again or is rolled back. A kind that cannot stops the run here, for
/// a person: nothing else is done.
async fn recover_cut_short(host: &RunHost, journal: &Journal) -> Result<(), Vec<Diagnostic>> {
    for (step, kind_name, state) in cut_short(journal) {
        let Some(kind) = host.registry.get(&kind_name).cloned() else {
            continue;
        };
        match kind.recover(&state).await {
            Ok(None) => {}
            Ok(Some(action)) => host.reporter.event(&Event::StepRecovered { step, action }),
            Err(error) => {
                return Err(vec![
                    Diagnostic::error(
                        codes::RECOVER,
                        host.redactor
                            .redact(&format!(
                                "step `{step}` was cut short when the run died, and what it left cannot be put right: {error}"
                            ))
                            .into_owned(),
                    )
                    .with_help("nothing was run; set it right by hand, then resume or roll back again"),
                ]);
            }
        }
    }
    Ok(())
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The state of one run.
struct Run {
    shared: Arc<RunHost>,
    status: Vec<StepStatus>,
    finally_status: Vec<StepStatus>,
    outcomes: HashMap<Which, Outcome>,
    /// Unfinished needs of each step.
    waiting: Vec<usize>,
    /// Steps whose needs have all finished, by position.
    ready: BTreeSet<usize>,
    completed: Vec<usize>,
    rolled_back: Vec<String>,
    rollback_failed: bool,
    stop: Option<Stop>,
    max_parallel: usize,
    step_mode: bool,
    no_rollback: bool,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    cancel: CancellationToken,
    skip_reason: HashMap<usize, String>,
}

impl Run {
    fn new(shared: Arc<RunHost>, request: &RunRequest) -> Self {
        let runbook = &shared.compiled.runbook;
        let graph = &shared.compiled.graph;
        let waiting: Vec<usize> = graph.needs.iter().map(Vec::len).collect();
        let ready = waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| **w == 0)
            .map(|(i, _)| i)
            .collect();
        let max_parallel = runbook
            .max_parallel
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(4, |n| n.get()))
            .max(1);
        Self {
            status: vec![StepStatus::Pending; runbook.steps.len()],
            finally_status: vec![StepStatus::Pending; runbook.finally.len()],
            outcomes: HashMap::new(),
            waiting,
            ready,
            completed: Vec::new(),
            rolled_back: Vec::new(),
            rollback_failed: false,
            stop: None,
            max_parallel,
            step_mode: request.step_mode,
            no_rollback: request.no_rollback,
            deadline: request.timeout.and_then(|t| Instant::now().checked_add(t)),
            timeout: request.timeout,
            cancel: CancellationToken::new(),
            skip_reason: HashMap::new(),
            shared,
        }
    }

    /// Puts the run back where its journal left it. Returns the main steps
    /// that were in flight (or cancelled) and will start again.
    fn restore(&mut self, journal: &Journal) -> Vec<usize> {
        let compiled = self.shared.compiled.clone();
        let runbook = &compiled.runbook;
        let main: HashMap<&str, usize> = runbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let fin: HashMap<&str, usize> = runbook
            .finally
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut in_flight = BTreeSet::new();
        let restored = |status, outputs: Json, duration_ms: u64, which| Outcome {
            which,
            status,
            outputs,
            error: None,
            gate: false,
            undo: None,
            attempts: 1,
            duration: Duration::from_millis(duration_ms),
        };
        for timed in &journal.events {
            match &timed.event {
                Event::StepStarted { step, .. } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        in_flight.insert(i);
                    }
                }
                Event::StepSucceeded {
                    step,
                    outputs,
                    duration_ms,
                    undo,
                } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        in_flight.remove(&i);
                        self.set_status(i, StepStatus::Succeeded, Some(outputs.clone()));
                        self.completed.push(i);
                        let mut outcome =
                            restored(StepStatus::Succeeded, outputs.clone(), *duration_ms, Which::Main(i));
                        outcome.undo = undo.clone();
                        self.outcomes.insert(Which::Main(i), outcome);
                    } else if let Some(&k) = fin.get(step.as_str()) {
                        self.finally_status[k] = StepStatus::Succeeded;
                        self.shared
                            .ctx
                            .set_step(step, StepStatus::Succeeded, Some(to_value(outputs)));
                    }
                }
                Event::StepSkipped { step, reason } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        self.set_status(i, StepStatus::Skipped, None);
                        self.skip_reason.insert(i, reason.clone());
                    } else if let Some(&k) = fin.get(step.as_str()) {
                        self.finally_status[k] = StepStatus::Skipped;
                    }
                }
                Event::StepFailed {
                    step,
                    error,
                    on_failure,
                    duration_ms,
                } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        in_flight.remove(&i);
                        self.set_status(i, StepStatus::Failed, None);
                        let mut outcome = restored(StepStatus::Failed, Json::Null, *duration_ms, Which::Main(i));
                        outcome.error = Some(error.clone());
                        self.outcomes.insert(Which::Main(i), outcome);
                        let reason = format!("step `{step}` failed: {error}");
                        match on_failure.as_str() {
                            "roll back" => {
                                self.stop = self.stop.take().or(Some(Stop::Failure { reason, rollback: true }))
                            }
                            "abort" => {
                                self.stop = self.stop.take().or(Some(Stop::Failure {
                                    reason,
                                    rollback: false,
                                }))
                            }
                            _ => {}
                        }
                    } else if let Some(&k) = fin.get(step.as_str()) {
                        self.finally_status[k] = StepStatus::Failed;
                    }
                }
                Event::StepCancelled { step, .. } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        in_flight.insert(i);
                    }
                }
                Event::RollbackStarted { step, .. } if self.stop.is_none() && main.contains_key(step.as_str()) => {
                    self.stop = Some(Stop::Failure {
                        reason: "the rollback was interrupted; it goes on".into(),
                        rollback: true,
                    });
                }
                Event::RollbackSucceeded { step, .. } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        self.set_status(i, StepStatus::RolledBack, None);
                        self.rolled_back.push(step.clone());
                    }
                }
                Event::RollbackFailed { step, .. } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        self.set_status(i, StepStatus::RollbackFailed, None);
                        self.rollback_failed = true;
                    }
                }
                Event::RollbackRequested { .. } => self.stop = Some(Stop::Requested),
                _ => {}
            }
        }
        for &i in &in_flight {
            self.set_status(i, StepStatus::Pending, None);
        }
        // What is left to run: pending steps whose needs have all finished.
        let finished = |status: StepStatus| {
            !matches!(
                status,
                StepStatus::Pending | StepStatus::Running | StepStatus::Cancelled
            )
        };
        for i in 0..self.status.len() {
            self.waiting[i] = compiled.graph.needs[i]
                .iter()
                .filter(|e| !finished(self.status[e.from]))
                .count();
        }
        self.ready = (0..self.status.len())
            .filter(|&i| self.status[i] == StepStatus::Pending && self.waiting[i] == 0)
            .collect();
        in_flight.into_iter().collect()
    }

    fn step(&self, i: usize) -> &checked::Step {
        &self.shared.compiled.runbook.steps[i]
    }

    fn set_status(&mut self, i: usize, status: StepStatus, outputs: Option<Json>) {
        self.status[i] = status;
        let id = self.shared.compiled.runbook.steps[i].id.clone();
        self.shared.ctx.set_step(&id, status, outputs.map(to_value));
    }

    /// A step has finished (succeeded, skipped, failed): release the steps that need it.
    fn release(&mut self, i: usize) {
        let dependents: Vec<usize> = self.shared.compiled.graph.dependents(i).collect();
        for d in dependents {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.ready.insert(d);
            }
        }
    }

    /// Asks the operator on a blocking thread, one question at a time.
    /// `fallback` is the safe answer if asking itself fails.
    async fn ask<T: Send + 'static>(
        &self,
        fallback: T,
        question: impl FnOnce(&dyn Operator) -> T + Send + 'static,
    ) -> T {
        let _guard = self.shared.prompt.lock().await;
        let operator = self.shared.operator.clone();
        tokio::task::spawn_blocking(move || question(operator.as_ref()))
            .await
            .unwrap_or(fallback)
    }

    /// Decides whether a ready step starts: blocked by a failed need, guard, confirmation, `--step`.
    async fn admit(&mut self, i: usize) -> Admission {
        let runbook = &self.shared.compiled.runbook;
        let step = &runbook.steps[i];
        let failed_need = self.shared.compiled.graph.needs[i]
            .iter()
            .map(|e| e.from)
            .find(|&n| matches!(self.status[n], StepStatus::Failed | StepStatus::NotRun));
        if let Some(n) = failed_need {
            return Admission::Blocked(format!("`{}` did not succeed", runbook.steps[n].id));
        }
        if let Some(when) = &step.when {
            match template::eval(&when.text, &self.shared.ctx.value(None)) {
                Ok(value) if value.is_true() => {}
                Ok(_) => {
                    return Admission::Skip(format!(
                        "`{}` is false ({})",
                        when.text,
                        explain(&when.text, &self.shared.ctx.value(None), &self.shared.redactor)
                    ));
                }
                Err(e) => {
                    return Admission::Fail(format!(
                        "cannot evaluate the guard `{}`: {}",
                        when.text,
                        template::reason(&e)
                    ));
                }
            }
        }
        let asks = !self.shared.yes && (self.step_mode || step.confirm.is_some());
        // What the step will do, in words, only when someone will be asked.
        let action = if asks {
            let params = self
                .shared
                .renderer()
                .params(&step.with, &step.kind)
                .map_or(Json::Null, |r| r.shown().clone());
            self.shared.describe(&step.kind, &params)
        } else {
            String::new()
        };
        if self.step_mode && !self.shared.yes {
            let (id, text) = (step.id.clone(), action.clone());
            match self.ask(StepAnswer::No, move |o| o.before_step(&id, &text)).await {
                StepAnswer::Yes => {}
                StepAnswer::Continue => self.step_mode = false,
                StepAnswer::Skip => return Admission::Skip("skipped by the operator".into()),
                StepAnswer::No => {
                    return Admission::Decline(format!("the operator stopped the run before `{}`", step.id));
                }
            }
        }
        if let Some(confirm) = &step.confirm
            && !self.shared.yes
        {
            let message = self.shared.renderer().text(confirm).map_or_else(
                |_| confirm.text.clone(),
                |r| self.shared.redactor.redact(r.shown()).into_owned(),
            );
            let (id, text) = (step.id.clone(), action);
            if !self.ask(false, move |o| o.confirm(&id, &message, &text)).await {
                return Admission::Decline(format!("the operator declined `{}`", step.id));
            }
        }
        Admission::Run
    }

    async fn main(&mut self, interrupts: &mut mpsc::UnboundedReceiver<&'static str>) {
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut running = 0usize;
        loop {
            // Start what can start.
            while self.stop.is_none() && running < self.max_parallel {
                let Some(i) = self.ready.pop_first() else { break };
                let admission = self.admit(i).await;
                if !self.shared.journaled() {
                    self.ready.insert(i);
                    self.stop = Some(Stop::JournalFailed);
                    break;
                }
                match admission {
                    Admission::Run => {
                        self.set_status(i, StepStatus::Running, None);
                        let shared = self.shared.clone();
                        let cancel = self.cancel.child_token();
                        tasks.spawn(async move { shared.run_action(Which::Main(i), cancel, true).await });
                        running += 1;
                    }
                    Admission::Skip(reason) => {
                        self.emit_skip(i, reason, StepStatus::Skipped);
                        self.release(i);
                    }
                    Admission::Blocked(reason) => {
                        self.emit_skip(i, reason, StepStatus::NotRun);
                        self.release(i);
                    }
                    Admission::Fail(reason) => {
                        self.fail(i, reason, Duration::ZERO);
                        self.release(i);
                    }
                    Admission::Decline(reason) => {
                        self.ready.insert(i);
                        self.stop = Some(Stop::Cancel { reason, rollback: true });
                        self.cancel.cancel();
                    }
                }
            }
            if running == 0 {
                break;
            }
            let deadline = self.deadline;
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    running -= 1;
                    match joined {
                        Ok(outcome) => self.finished(outcome).await,
                        Err(e) => self.stop_with(Stop::Failure { reason: format!("a step task ended abnormally: {e}"), rollback: true }),
                    }
                }
                Some(signal) = interrupts.recv() => {
                    if signal == crate::journal::JOURNAL_FAILED {
                        self.stop = Some(Stop::JournalFailed);
                        self.cancel.cancel();
                        while let Some(joined) = tasks.join_next().await {
                            running -= 1;
                            if let Ok(outcome) = joined {
                                self.finished(outcome).await;
                            }
                        }
                        continue;
                    }
                    self.shared.reporter.event(&Event::Interrupted { signal: signal.to_string() });
                    self.cancel.cancel();
                    // Let running steps stop (their processes get SIGTERM, then SIGKILL).
                    while let Some(joined) = tasks.join_next().await {
                        running -= 1;
                        if let Ok(outcome) = joined {
                            self.finished(outcome).await;
                        }
                    }
                    if self.stop.is_some() {
                        continue;
                    }
                    match self.ask(InterruptAnswer::Rollback, |o| o.interrupted()).await {
                        InterruptAnswer::Continue => {
                            self.cancel = CancellationToken::new();
                            // Cancelled steps start again.
                            for i in 0..self.status.len() {
                                if self.status[i] == StepStatus::Cancelled {
                                    self.set_status(i, StepStatus::Pending, None);
                                    self.ready.insert(i);
                                }
                            }
                        }
                        InterruptAnswer::Rollback => self.stop_with(Stop::Cancel { reason: format!("interrupted by {signal}"), rollback: true }),
                        InterruptAnswer::Quit => self.stop_with(Stop::Cancel { reason: format!("interrupted by {signal}; left as it is"), rollback: false }),
                    }
                }
                () = expired => {
                    let reason = format!("the run timed out after {}", format_duration(self.timeout.unwrap_or_default()));
                    self.deadline = None;
                    self.stop_with(Stop::Failure { reason, rollback: true });
                }
            }
        }
    }

    fn stop_with(&mut self, stop: Stop) {
        if self.stop.is_none() {
            self.stop = Some(stop);
        }
        self.cancel.cancel();
    }

    fn emit_skip(&mut self, i: usize, reason: String, status: StepStatus) {
        self.set_status(i, status, None);
        self.skip_reason.insert(i, reason.clone());
        self.shared.reporter.event(&Event::StepSkipped {
            step: self.step(i).id.clone(),
            reason,
        });
    }

    fn fail(&mut self, i: usize, error: String, duration: Duration) {
        let on_failure = self.step(i).on_failure;
        self.set_status(i, StepStatus::Failed, None);
        self.shared.reporter.event(&Event::StepFailed {
            step: self.step(i).id.clone(),
            duration_ms: millis(duration),
            error: error.clone(),
            on_failure: on_failure.describe().to_string(),
        });
        let reason = format!("step `{}` failed: {error}", self.step(i).id);
        match on_failure {
            OnFailure::Continue => {}
            OnFailure::Rollback => self.stop_with(Stop::Failure { reason, rollback: true }),
            OnFailure::Abort => self.stop_with(Stop::Failure {
                reason,
                rollback: false,
            }),
        }
    }

    async fn finished(&mut self, outcome: Outcome) {
        let Which::Main(i) = outcome.which else { return };
        let duration = outcome.duration;
        match outcome.status {
            StepStatus::Succeeded => {
                self.set_status(i, StepStatus::Succeeded, Some(outcome.outputs.clone()));
                self.completed.push(i);
                self.shared.reporter.event(&Event::StepSucceeded {
                    step: self.step(i).id.clone(),
                    duration_ms: millis(duration),
                    outputs: outcome.outputs.clone(),
                    undo: outcome.undo.clone(),
                });
                self.release(i);
            }
            StepStatus::Cancelled => {
                self.set_status(i, StepStatus::Cancelled, None);
                self.shared.reporter.event(&Event::StepCancelled {
                    step: self.step(i).id.clone(),
                    reason: self.stop_reason().unwrap_or_else(|| "cancelled".into()),
                });
            }
            _ => {
                let error = outcome.error.clone().unwrap_or_else(|| "failed".into());
                if outcome.gate && self.stop.is_none() && self.shared.operator.is_interactive() {
                    let text = self.shared.redactor.redact(&error).into_owned();
                    let id = self.step(i).id.clone();
                    match self.ask(GateAnswer::Rollback, move |o| o.gate_failed(&id, &text)).await {
                        GateAnswer::Retry => {
                            self.set_status(i, StepStatus::Pending, None);
                            self.ready.insert(i);
                            self.outcomes.insert(outcome.which, outcome);
                            return;
                        }
                        GateAnswer::Skip => {
                            self.emit_skip(
                                i,
                                format!("skipped by the operator after: {error}"),
                                StepStatus::Skipped,
                            );
                            self.release(i);
                            self.outcomes.insert(outcome.which, outcome);
                            return;
                        }
                        GateAnswer::Rollback => {
                            self.fail(i, error, duration);
                            let reason = format!("step `{}` failed verification", self.step(i).id);
                            self.stop_with(Stop::Failure { reason, rollback: true });
                        }
                        GateAnswer::Abort => {
                            self.fail(i, error, duration);
                            let reason = format!(
                                "step `{}` failed verification; stopped without rollback",
                                self.step(i).id
                            );
                            self.stop = Some(Stop::Failure {
                                reason,
                                rollback: false,
                            });
                            self.cancel.cancel();
                        }
                    }
                } else {
                    self.fail(i, error, duration);
                    if self.step(i).on_failure == OnFailure::Continue {
                        self.release(i);
                    }
                }
            }
        }
        self.outcomes.insert(outcome.which, outcome);
    }

    /// What happened when the journal could not be written, and what to do.
    fn journal_failure_words(&self) -> String {
        let journal = self.shared.journal.as_ref();
        let error = journal.and_then(|j| j.failure()).unwrap_or_default();
        let mut words = format!(
            "the journal could not be written ({error}): nothing more was started, nothing was rolled back \
             and `finally` did not run"
        );
        let unrecorded = journal.map(|j| j.unrecorded()).unwrap_or_default();
        if !unrecorded.is_empty() {
            let names: Vec<String> = unrecorded.iter().map(|s| format!("`{s}`")).collect();
            words.push_str(&format!(
                "; whether {} finished is not journaled: check by hand",
                names.join(", ")
            ));
        }
        words.push_str(&format!(
            "; make room, then `runbook resume {id}` or `runbook rollback {id}`",
            id = self.shared.run_id
        ));
        words
    }

    fn stop_reason(&self) -> Option<String> {
        self.stop.as_ref().map(|s| match s {
            Stop::Failure { reason, .. } | Stop::Cancel { reason, .. } => reason.clone(),
            Stop::Requested => "rolled back on request".to_string(),
            Stop::JournalFailed => self.journal_failure_words(),
        })
    }

    /// Rollback (when called for), then `finally`. Returns the run's status.
    async fn finish(&mut self, interrupts: &mut mpsc::UnboundedReceiver<&'static str>) -> RunStatus {
        for i in 0..self.status.len() {
            if matches!(self.status[i], StepStatus::Pending | StepStatus::Running) {
                self.set_status(i, StepStatus::NotRun, None);
            }
        }
        if matches!(self.stop, Some(Stop::JournalFailed)) {
            self.shared.ctx.set_status(RunStatus::JournalFailed);
            return RunStatus::JournalFailed;
        }
        let wants_rollback = match &self.stop {
            Some(Stop::Failure { rollback, .. } | Stop::Cancel { rollback, .. }) => *rollback && !self.no_rollback,
            Some(Stop::Requested) => true,
            Some(Stop::JournalFailed) | None => false,
        };
        if wants_rollback {
            self.rollback(interrupts).await;
        }
        if !self.shared.journaled() {
            self.stop = Some(Stop::JournalFailed);
            self.shared.ctx.set_status(RunStatus::JournalFailed);
            return RunStatus::JournalFailed;
        }
        let any_failed = self.status.contains(&StepStatus::Failed);
        let status = if self.rollback_failed {
            RunStatus::RollbackFailed
        } else {
            match &self.stop {
                Some(Stop::Requested) => RunStatus::RolledBack,
                Some(Stop::Cancel { .. }) => RunStatus::Cancelled,
                Some(Stop::Failure { .. }) if wants_rollback => RunStatus::Failed,
                Some(Stop::Failure { rollback: false, .. }) => RunStatus::Aborted,
                Some(Stop::Failure { .. }) => RunStatus::FailedWithoutRollback,
                Some(Stop::JournalFailed) => RunStatus::JournalFailed,
                None if any_failed => RunStatus::FailedWithoutRollback,
                None => RunStatus::Succeeded,
            }
        };
        self.shared.ctx.set_status(status);
        self.run_finally().await;
        status
    }

    async fn rollback(&mut self, interrupts: &mut mpsc::UnboundedReceiver<&'static str>) {
        let order: Vec<usize> = self.completed.iter().rev().copied().collect();
        let mut abandoned = false;
        for i in order {
            // A `runbook` step without a rollback of its own is undone by rolling back its child run;
            // other steps without one by the action their kind gave when they succeeded.
            let child = self.step(i).rollback.is_none() && self.step(i).kind == crate::RUNBOOK_KIND;
            let undo = match self.step(i).rollback {
                None if !child => self.outcomes.get(&Which::Main(i)).and_then(|o| o.undo.clone()),
                _ => None,
            };
            if (self.step(i).rollback.is_none() && !child && undo.is_none()) || self.status[i] != StepStatus::Succeeded
            {
                continue;
            }
            let id = self.step(i).id.clone();
            if abandoned {
                self.rollback_failed = true;
                self.shared.reporter.event(&Event::RollbackFailed {
                    step: id,
                    duration_ms: 0,
                    error: "not rolled back: the operator abandoned the rollback".into(),
                });
                continue;
            }
            let body = self
                .step(i)
                .rollback
                .as_ref()
                .map(|b| b.kind.clone())
                .unwrap_or_default();
            let params = self
                .step(i)
                .rollback
                .as_ref()
                .and_then(|b| self.shared.renderer().params(&b.with, &b.kind).ok())
                .map_or(Json::Null, |r| r.shown().clone());
            let action = match (&undo, child) {
                (Some(undo), _) => undo.description.clone(),
                (None, true) => format!("roll back the run {}", child_run_id(&self.shared.run_id, &id)),
                (None, false) => self.shared.describe(&body, &params),
            };
            self.shared.reporter.event(&Event::RollbackStarted {
                step: id.clone(),
                action,
            });
            if !self.shared.journaled() {
                // Its start could not be recorded: it must not start.
                return;
            }
            let cancel = CancellationToken::new();
            let shared = self.shared.clone();
            let token = cancel.clone();
            let child_id = id.clone();
            let mut task = tokio::spawn(async move {
                let started = Instant::now();
                let result = match undo {
                    Some(undo) => shared.run_undo(&child_id, undo, token).await,
                    None if child => shared.rollback_child(&child_id).await,
                    None => return shared.run_action(Which::Rollback(i), token, false).await,
                };
                Outcome {
                    which: Which::Rollback(i),
                    status: if result.is_ok() {
                        StepStatus::Succeeded
                    } else {
                        StepStatus::Failed
                    },
                    outputs: Json::Null,
                    error: result.err(),
                    gate: false,
                    undo: None,
                    attempts: 1,
                    duration: started.elapsed(),
                }
            });
            let outcome = loop {
                tokio::select! {
                    joined = &mut task => break joined.ok(),
                    Some(signal) = interrupts.recv() => {
                        self.shared.reporter.event(&Event::Interrupted { signal: signal.to_string() });
                        if self.ask(false, |o| o.abandon_rollback()).await {
                            abandoned = true;
                            cancel.cancel();
                        }
                    }
                }
            };
            match outcome {
                Some(outcome) if outcome.status == StepStatus::Succeeded => {
                    self.set_status(i, StepStatus::RolledBack, None);
                    self.rolled_back.push(id.clone());
                    self.shared.reporter.event(&Event::RollbackSucceeded {
                        step: id,
                        duration_ms: millis(outcome.duration),
                    });
                }
                other => {
                    self.rollback_failed = true;
                    let (error, duration) = other.map_or(
                        ("the rollback task ended abnormally".to_string(), Duration::ZERO),
                        |o| (o.error.unwrap_or_else(|| "failed".into()), o.duration),
                    );
                    self.set_status(i, StepStatus::RollbackFailed, None);
                    self.shared.reporter.event(&Event::RollbackFailed {
                        step: id,
                        duration_ms: millis(duration),
                        error,
                    });
                }
            }
        }
    }

    async fn run_finally(&mut self) {
        let count = self.shared.compiled.runbook.finally.len();
        if count == 0 {
            return;
        }
        self.shared.reporter.event(&Event::FinallyStarted { steps: count });
        for k in 0..count {
            if !self.shared.journaled() {
                return;
            }
            let step = &self.shared.compiled.runbook.finally[k];
            let id = step.id.clone();
            if matches!(self.finally_status[k], StepStatus::Succeeded | StepStatus::Skipped)
                && !matches!(self.stop, Some(Stop::Requested))
            {
                continue;
            }
            if let Some(when) = &step.when {
                let ctx = self.shared.ctx.value(None);
                match template::eval(&when.text, &ctx) {
                    Ok(value) if value.is_true() => {}
                    Ok(_) => {
                        self.finally_status[k] = StepStatus::Skipped;
                        self.shared.ctx.set_step(&id, StepStatus::Skipped, None);
                        self.shared.reporter.event(&Event::StepSkipped {
                            step: id,
                            reason: format!(
                                "`{}` is false ({})",
                                when.text,
                                explain(&when.text, &ctx, &self.shared.redactor)
                            ),
                        });
                        continue;
                    }
                    Err(e) => {
                        self.finally_status[k] = StepStatus::Failed;
                        self.shared.reporter.event(&Event::StepFailed {
                            step: id,
                            duration_ms: 0,
                            error: format!("cannot evaluate the guard `{}`: {}", when.text, template::reason(&e)),
                            on_failure: "continue".into(),
                        });
                        continue;
                    }
                }
            }
            let outcome = self
                .shared
                .run_action(Which::Finally(k), CancellationToken::new(), true)
                .await;
            self.finally_status[k] = outcome.status;
            let outputs = (outcome.status == StepStatus::Succeeded).then(|| to_value(&outcome.outputs));
            self.shared.ctx.set_step(&id, outcome.status, outputs);
            if outcome.status == StepStatus::Succeeded {
                self.shared.reporter.event(&Event::StepSucceeded {
                    step: id,
                    duration_ms: millis(outcome.duration),
                    outputs: outcome.outputs.clone(),
                    undo: None,
                });
            } else {
                self.shared.reporter.event(&Event::StepFailed {
                    step: id,
                    duration_ms: millis(outcome.duration),
                    error: outcome.error.clone().unwrap_or_else(|| "failed".into()),
                    on_failure: "continue".into(),
                });
            }
            self.outcomes.insert(outcome.which, outcome);
        }
    }

    fn summary(&self, status: RunStatus, duration: Duration) -> RunSummary {
        let runbook = &self.shared.compiled.runbook;
        let mut steps = Vec::new();
        let entries = runbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s, Which::Main(i), self.status[i]))
            .chain(
                runbook
                    .finally
                    .iter()
                    .enumerate()
                    .map(|(k, s)| (s, Which::Finally(k), self.finally_status[k])),
            );
        for (step, which, step_status) in entries {
            let outcome = self.outcomes.get(&which);
            let error = match which {
                Which::Main(i) => self.skip_reason.get(&i).cloned(),
                _ => None,
            }
            .or_else(|| outcome.and_then(|o| o.error.clone()));
            steps.push(StepSummary {
                id: step.id.clone(),
                name: step.name.clone(),
                status: if step_status == StepStatus::Pending {
                    StepStatus::NotRun
                } else {
                    step_status
                },
                duration_ms: outcome.map_or(0, |o| millis(o.duration)),
                attempts: outcome.map_or(0, |o| o.attempts),
                error,
                outputs: outcome.map_or(Json::Null, |o| o.outputs.clone()),
                is_finally: matches!(which, Which::Finally(_)),
            });
        }
        RunSummary {
            run_id: self.shared.run_id.clone(),
            runbook: runbook.name.clone(),
            status,
            duration_ms: millis(duration),
            steps,
            rolled_back: self.rolled_back.clone(),
            reason: self.stop_reason(),
        }
    }
}

enum Admission {
    Run,
    Skip(String),
    Blocked(String),
    Fail(String),
    Decline(String),
}
