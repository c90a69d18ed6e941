//! The fake step kind of the executor tests, and a run of a runbook with
//! it: every attempt recorded against tokio's clock, every event kept.

use runbook_engine::execute::{
    ConfirmAnswer, Event, FailureAnswer, InterruptAnswer, Mode, Operator, Question, Reply, Reporter, RunRequest,
    RunSummary, Setback, StepAnswer, StepStatus, Unattended, Undoing, execute,
};
use runbook_engine::step::{StepContext, StepError, StepFuture, StepKind};
use runbook_engine::{Registry, load_bytes};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How an attempt of the fake kind stood at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Started,
    Succeeded,
    Failed,
    /// Its `cancel` token fired while it slept.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Record {
    /// The fake's `id` parameter: a step's id, or `undo_ID` for a rollback body.
    pub id: String,
    pub attempt: u32,
    pub mark: Mark,
    /// Since the run was started.
    pub at: Duration,
}

/// What every fake attempt did, in the order it happened.
#[derive(Clone)]
struct Timeline {
    origin: Instant,
    records: Arc<Mutex<Vec<Record>>>,
}

impl Timeline {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            records: Arc::default(),
        }
    }

    fn mark(&self, id: &str, attempt: u32, mark: Mark) {
        self.records.lock().unwrap().push(Record {
            id: id.to_string(),
            attempt,
            mark,
            at: self.origin.elapsed(),
        });
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FakeParams {
    id: String,
    #[serde(default)]
    sleep_ms: u64,
    /// The first this many attempts fail.
    #[serde(default)]
    fail_attempts: u32,
    #[serde(default)]
    fail_with: Option<String>,
}

/// A step kind that sleeps, fails on demand and records what it did.
struct Fake(Timeline);

impl StepKind for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn summary(&self) -> &'static str {
        "sleeps, fails on demand, and records each attempt"
    }

    fn params_schema(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "sleep_ms": { "type": "integer", "minimum": 0 },
                "fail_attempts": { "type": "integer", "minimum": 0 },
                "fail_with": { "type": "string" }
            },
            "required": ["id"],
            "additionalProperties": false
        })
    }

    fn describe(&self, params: &Json) -> String {
        format!("fake {}", params["id"])
    }

    fn run(&self, cx: StepContext) -> StepFuture<'_> {
        Box::pin(async move {
            let params: FakeParams =
                serde_json::from_value(cx.params.clone()).map_err(|e| StepError::new(e.to_string()))?;
            let (id, attempt) = (params.id.as_str(), cx.attempt);
            self.0.mark(id, attempt, Mark::Started);
            if params.sleep_ms > 0 {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(params.sleep_ms)) => {}
                    () = cx.cancel.cancelled() => {
                        self.0.mark(id, attempt, Mark::Cancelled);
                        return Err(StepError::new("the fake saw its cancel token"));
                    }
                }
            }
            if attempt <= params.fail_attempts {
                self.0.mark(id, attempt, Mark::Failed);
                let message = params.fail_with.unwrap_or_else(|| format!("{id} failed on purpose"));
                return Err(StepError::new(message));
            }
            self.0.mark(id, attempt, Mark::Succeeded);
            Ok(json!({ "id": id, "attempt": attempt }))
        })
    }
}

/// Keeps every event of a run, in order.
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl Reporter for Events {
    fn event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// A finished run: its summary, the events it reported and what the fake saw.
pub struct Ran {
    pub summary: RunSummary,
    pub events: Vec<Event>,
    pub records: Vec<Record>,
}

impl Ran {
    fn records_of(&self, id: &str) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(move |r| r.id == id)
    }

    /// When each attempt of `id` reached `mark`.
    pub fn times(&self, id: &str, mark: Mark) -> Vec<Duration> {
        self.records_of(id).filter(|r| r.mark == mark).map(|r| r.at).collect()
    }

    /// When each attempt of `id` started.
    pub fn starts(&self, id: &str) -> Vec<Duration> {
        self.times(id, Mark::Started)
    }

    /// The attempt numbers the fake saw for `id`, in order.
    pub fn attempts(&self, id: &str) -> Vec<u32> {
        self.records_of(id)
            .filter(|r| r.mark == Mark::Started)
            .map(|r| r.attempt)
            .collect()
    }

    pub fn start(&self, id: &str) -> Duration {
        *self
            .starts(id)
            .first()
            .unwrap_or_else(|| panic!("`{id}` never started: {:#?}", self.records))
    }

    /// How the last attempt of `id` ended, and when.
    pub fn end(&self, id: &str) -> (Mark, Duration) {
        self.records_of(id)
            .filter(|r| r.mark != Mark::Started)
            .map(|r| (r.mark, r.at))
            .last()
            .unwrap_or_else(|| panic!("`{id}` never ended: {:#?}", self.records))
    }

    /// The fake's ids in the order they started (each attempt once).
    pub fn started(&self) -> Vec<&str> {
        self.records
            .iter()
            .filter(|r| r.mark == Mark::Started)
            .map(|r| r.id.as_str())
            .collect()
    }

    /// The time between the end of each attempt of `id` and the start of the next.
    pub fn gaps(&self, id: &str) -> Vec<Duration> {
        let mut gaps = Vec::new();
        let mut ended = None;
        for record in self.records_of(id) {
            match (record.mark, ended) {
                (Mark::Started, Some(end)) => gaps.push(record.at - end),
                (Mark::Started, None) => {}
                _ => ended = Some(record.at),
            }
        }
        gaps
    }

    pub fn step_status(&self, id: &str) -> StepStatus {
        self.summary
            .steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no step `{id}` in {:#?}", self.summary))
            .status
    }

    /// The steps whose rollback started, in order.
    pub fn rollbacks_started(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::RollbackStarted { step, .. } => Some(step.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn failure_of(&self, id: &str) -> Option<&str> {
        self.events.iter().find_map(|e| match e {
            Event::StepFailed { step, error, .. } if step == id => Some(error.as_str()),
            _ => None,
        })
    }

    /// Where the first event matching `wanted` is in the stream.
    pub fn position(&self, wanted: impl Fn(&Event) -> bool) -> usize {
        self.events
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("no such event in {:#?}", self.events))
    }
}

pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub async fn run(yaml: &str) -> Ran {
    run_with(yaml, &[], None).await
}

pub async fn run_with_signals(yaml: &str, signals: &[(Duration, &'static str)]) -> Ran {
    run_with(yaml, signals, None).await
}

/// Runs `yaml` unattended, sending each signal on the interrupts channel at
/// its time since the start, with `timeout` as the whole run's bound.
pub async fn run_with(yaml: &str, signals: &[(Duration, &'static str)], timeout: Option<Duration>) -> Ran {
    run_operated(yaml, signals, timeout, Arc::new(Unattended { yes: true }), true).await
}

/// An answer the scripted operator gives, in turn.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Confirm(ConfirmAnswer),
    Failure(FailureAnswer),
    /// Waits (for real) this long, then says yes to a confirmation.
    YesAfter(Duration),
    /// Waits until the question is withdrawn.
    Never,
}

/// A person at a terminal, answering from a script; what was asked is kept.
#[derive(Default)]
pub struct Scripted {
    pub answers: Mutex<std::collections::VecDeque<Answer>>,
    pub asked: Mutex<Vec<String>>,
}

impl Scripted {
    pub fn new(answers: &[Answer]) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.iter().copied().collect()),
            asked: Mutex::default(),
        })
    }

    fn next(&self, asked: String) -> Answer {
        self.asked.lock().unwrap().push(asked);
        self.answers.lock().unwrap().pop_front().unwrap_or(Answer::Never)
    }

    fn wait_for(withdrawn: &tokio_util::sync::CancellationToken) {
        while !withdrawn.is_cancelled() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Operator for Scripted {
    fn is_interactive(&self) -> bool {
        true
    }
    fn confirm(&self, question: &Question<'_>) -> Reply<ConfirmAnswer> {
        match self.next(format!("confirm {}", question.step)) {
            Answer::Confirm(answer) => Reply::Given(answer),
            Answer::YesAfter(wait) => {
                std::thread::sleep(wait);
                Reply::Given(ConfirmAnswer::Yes)
            }
            _ => {
                Self::wait_for(question.withdrawn);
                Reply::Withdrawn
            }
        }
    }
    fn before_step(&self, question: &Question<'_>) -> Reply<StepAnswer> {
        self.next(format!("step {}", question.step));
        Reply::Given(StepAnswer::Yes)
    }
    fn failed(&self, setback: &Setback<'_>) -> Reply<FailureAnswer> {
        match self.next(format!("failed {}: {}", setback.step, setback.error)) {
            Answer::Failure(answer) => Reply::Given(answer),
            _ => {
                Self::wait_for(setback.withdrawn);
                Reply::Withdrawn
            }
        }
    }
    fn interrupted(&self) -> InterruptAnswer {
        self.asked.lock().unwrap().push("interrupted".into());
        InterruptAnswer::Rollback
    }
    fn abandon_rollback(&self) -> bool {
        false
    }
    fn approve_rollback(&self, undoing: &Undoing<'_>) -> Reply<bool> {
        let steps: Vec<&str> = undoing.steps.iter().map(|(step, _)| step.as_str()).collect();
        // `runbook rollback` is tried end to end, at a terminal (tests/operator.rs).
        self.next(format!("roll back {}", steps.join(", ")));
        Reply::Given(false)
    }
}

/// Runs `yaml` with `operator` answering (`yes`: as with `--yes`).
pub async fn run_operated(
    yaml: &str,
    signals: &[(Duration, &'static str)],
    timeout: Option<Duration>,
    operator: Arc<dyn Operator>,
    yes: bool,
) -> Ran {
    let timeline = Timeline::new();
    let mut registry = Registry::new();
    registry.register(Fake(timeline.clone()));
    let (_, loaded) = load_bytes("executor.yaml", yaml.as_bytes(), &registry);
    let compiled = match loaded {
        Ok(loaded) => Arc::new(loaded.compiled),
        Err(diagnostics) => panic!("the runbook does not load: {diagnostics:#?}"),
    };
    let request = RunRequest {
        inputs: Vec::new(),
        env: Arc::new(|_: &str| None),
        base_dir: std::env::temp_dir(),
        step_mode: false,
        yes,
        no_rollback: false,
        timeout,
        kill_grace: Duration::from_secs(1),
        run_id: None,
        state: None,
        mode: Mode::Run,
        secrets: None,
        operator: "test".into(),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let (origin, signals) = (timeline.origin, signals.to_vec());
    let sender = tokio::spawn(async move {
        for (at, signal) in signals {
            tokio::time::sleep_until(origin + at).await;
            tx.send(signal).expect("the run listens for signals");
        }
        // Kept open: a closed channel is not a signal.
        std::future::pending::<()>().await;
    });
    let events = Arc::new(Events::default());
    let summary = execute(compiled, Arc::new(registry), request, operator, events.clone(), rx)
        .await
        .unwrap_or_else(|diagnostics| panic!("the run does not start: {diagnostics:#?}"));
    sender.abort();
    let events = events.0.lock().unwrap().clone();
    let records = timeline.records.lock().unwrap().clone();
    Ran {
        summary,
        events,
        records,
    }
}

/// The most fake attempts running at once, from records kept in the order
/// things happened (an attempt's end is recorded before the start it makes
/// room for).
pub fn most_at_once(records: &[Record]) -> usize {
    let (mut running, mut most) = (0usize, 0usize);
    for record in records {
        match record.mark {
            Mark::Started => running += 1,
            _ => running -= 1,
        }
        most = most.max(running);
    }
    most
}

/// The delays the run announced before each retry of `id`.
pub fn announced_delays(ran: &Ran, id: &str) -> Vec<Duration> {
    ran.events
        .iter()
        .filter_map(|e| match e {
            Event::StepRetrying { step, delay_ms, .. } if step == id => Some(ms(*delay_ms)),
            _ => None,
        })
        .collect()
}
