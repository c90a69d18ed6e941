//! The `wait` step kind: runs a probe step again and again until an
//! expression over its result holds, or gives up.

use runbook_engine::kit::{Kind, Templated, Traits};
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::time::Instant;

use crate::HumanDuration;
use crate::words::code;
use runbook_engine::kit::process::{ProcessCheckpoint, ProcessToken};

/// Polls a probe step until a condition on its result holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait;

/// Parameters of a `wait` step.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// The step run on every attempt, such as
    /// `{ uses: http, with: { url: ... } }`. It should not change anything.
    pub probe: StepBody,

    /// An expression over the probe's `result` (such as
    /// `result.status == 200`); the wait ends when it is true.
    #[schemars(length(min = 1))]
    pub until: String,

    /// How long to pause between attempts.
    #[serde(default = "default_interval")]
    pub interval: Templated<HumanDuration>,

    /// How long to keep trying before the step fails.
    #[serde(default = "default_timeout")]
    pub timeout: Templated<HumanDuration>,
}

/// A step written inside another step's parameters: a kind and its
/// parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct StepBody {
    /// The step kind, such as `http` or `shell`.
    #[schemars(length(min = 1))]
    pub uses: String,

    /// The kind's parameters.
    #[serde(default)]
    pub with: serde_json::Map<String, Json>,
}

const DEFAULT_INTERVAL: HumanDuration = HumanDuration::from_secs(2);
const DEFAULT_TIMEOUT: HumanDuration = HumanDuration::from_secs(60);

fn default_interval() -> Templated<HumanDuration> {
    Templated::Value(DEFAULT_INTERVAL)
}

fn default_timeout() -> Templated<HumanDuration> {
    Templated::Value(DEFAULT_TIMEOUT)
}

impl Kind for Wait {
    type Params = WaitParams;
    const NAME: &'static str = "wait";
    const SUMMARY: &'static str = "Run a probe step until a condition on its result holds.";
    const TRAITS: Traits = Traits {
        read_only: true,
        expression_params: &["/until"],
        nested_steps: &["/probe"],
        ..Traits::NONE
    };

    fn params_rules(&self) -> Vec<Json> {
        vec![
            crate::time_limit::time_limit_rule("timeout"),
            crate::time_limit::time_limit_rule("interval"),
        ]
    }

    fn validate(&self, params: &WaitParams) -> Vec<ParamProblem> {
        let mut problems: Vec<ParamProblem> = crate::time_limit::time_limit("timeout", &params.timeout)
            .into_iter()
            .collect();
        if params.interval.known().is_some_and(|d| d.0.is_zero()) {
            problems.push(
                ParamProblem::new("/interval", "`interval` is zero").with_help(
                    "pause between attempts, such as `interval: 1s`, so the probe does not run in a busy loop",
                ),
            );
        }
        problems
    }

    fn describe(&self, params: &WaitParams) -> String {
        format!(
            "poll every {} until {} (give up after {})",
            params.interval,
            code(&params.until),
            params.timeout
        )
    }

    /// Result: `{"attempts": n, "result": <the last probe's result>,
    /// "elapsed_ms": n}`.
    async fn run(&self, params: WaitParams, cx: StepContext) -> Result<Json, StepError> {
        poll(params, cx).await
    }

    /// Stops what the probe in flight left running when `runbook` died:
    /// every process carrying the attempt's token.
    async fn recover(&self, checkpoint: &Json) -> Result<Option<String>, String> {
        runbook_engine::kit::process::recover(checkpoint).await
    }
}

/// What the last attempt of a probe came to.
enum Probe {
    /// The probe produced a result (its step may still have failed, as an
    /// `http` probe answered 503 does): `until` is evaluated over it.
    Result(Json),
    /// The probe failed without a result, such as an `http` probe that
    /// could not connect: the condition cannot hold yet.
    Failed(String),
    /// No probe has finished yet.
    None,
}

async fn poll(params: WaitParams, cx: StepContext) -> Result<Json, StepError> {
    let interval = params.interval.get()?.0;
    let timeout = *params.timeout.get()?;
    // The processes a probe starts (a `shell` probe's command) carry this
    // attempt's token, journaled first under this step: the probe's own
    // checkpoints are not this step's, so they would not be recovered.
    let token = ProcessToken::for_attempt(&cx);
    cx.host
        .checkpoint(&cx.step_id, ProcessCheckpoint::token_only(&token).to_json())
        .map_err(StepError::new)?;
    let started = Instant::now();
    let deadline = started
        .checked_add(timeout.0)
        .unwrap_or_else(|| started + runbook_engine::words::MAX_DURATION);
    let mut attempts = 0u32;
    let mut last = Probe::None;
    loop {
        attempts += 1;
        let cancel = cx.cancel.child_token();
        let probe = token.clone().enclose(cx.host.run_nested(
            &params.probe.uses,
            Json::Object(params.probe.with.clone()),
            cancel.clone(),
        ));
        tokio::pin!(probe);
        let outcome = tokio::select! {
            outcome = &mut probe => Some(outcome),
            // A probe still running at the deadline is stopped, and given
            // the time it needs to stop cleanly.
            () = tokio::time::sleep_until(deadline) => {
                cancel.cancel();
                let _ = probe.await;
                None
            }
        };
        if cx.cancel.is_cancelled() {
            return Err(crate::cancelled());
        }
        let Some(outcome) = outcome else {
            break;
        };
        last = match outcome {
            Ok(result) => Probe::Result(result),
            Err(StepError {
                result: Some(result), ..
            }) => Probe::Result(result),
            Err(StepError {
                message, result: None, ..
            }) => Probe::Failed(message),
        };
        if let Probe::Result(result) = &last {
            // The host's error names the expression.
            let value = cx
                .host
                .eval(&params.until, result)
                .map_err(|e| StepError::new(e).with_result(result.clone()))?;
            if crate::is_truthy(&value) {
                return Ok(json!({
                    "attempts": attempts,
                    "result": result,
                    "elapsed_ms": started.elapsed().as_millis(),
                }));
            }
        }
        let pause = interval.min(deadline.saturating_duration_since(Instant::now()));
        let seen = match &last {
            Probe::Result(result) => summary(result),
            Probe::Failed(message) => format!("failed: {}", crate::words::shorten(message)),
            Probe::None => String::new(),
        };
        cx.host.progress(
            &cx.step_id,
            &format!("probe {attempts}: {seen}; `{}` not true yet", params.until),
            Some(pause),
        );
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cx.cancel.cancelled() => return Err(crate::cancelled()),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let until = &params.until;
    Err(match last {
        Probe::Result(result) => StepError::new(format!(
            "gave up after {timeout}: `{until}` was still false (last result: {})",
            summary(&result)
        ))
        .with_result(result),
        Probe::Failed(message) => StepError::new(format!(
            "gave up after {timeout}: `{until}` was still false (the last probe failed: {message})"
        )),
        Probe::None => StepError::new(format!(
            "gave up after {timeout}: the first probe had not finished, so `{until}` was never checked"
        )),
    })
}

/// A probe's result in a few words, for the message of a wait that gave up:
/// the status of an HTTP response or the exit code of a command when there
/// is one, else the result itself, shortened.
fn summary(result: &Json) -> String {
    if let Some(status) = result.get("status").filter(|s| s.is_number()) {
        return format!("status {status}");
    }
    if let Some(code) = result.get("exit_code").filter(|c| c.is_number()) {
        return format!("exit code {code}");
    }
    crate::words::shorten(&result.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run, run_with};
    use serde_json::json;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn probe() -> Json {
        json!({"uses": "http", "with": {"url": "https://x/health"}})
    }

    #[test]
    fn good_params_pass() {
        assert_valid::<WaitParams>("wait", json!({"probe": probe(), "until": "result.status == 200"}));
        assert_valid::<WaitParams>(
            "wait",
            json!({"probe": {"uses": "shell"}, "until": "result.exit_code == 0", "interval": "500ms", "timeout": "5m"}),
        );
        assert_valid::<WaitParams>(
            "wait",
            json!({"probe": probe(), "until": "true", "timeout": "{{ inputs.t }}"}),
        );
    }

    #[test]
    fn params_read_at_run_time() {
        let params: WaitParams = serde_json::from_value(json!({"probe": probe(), "until": "true"})).unwrap();
        assert_eq!(params.interval, Templated::Value(HumanDuration::from_secs(2)));
        assert_eq!(params.timeout, Templated::Value(HumanDuration::from_secs(60)));
        assert_eq!(params.probe.uses, "http");
        assert_eq!(params.probe.with["url"], "https://x/health");
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("wait", json!({"until": "true"}), "", "missing parameter `probe`");
        assert_rejected("wait", json!({"probe": probe()}), "", "missing parameter `until`");
        assert_rejected(
            "wait",
            json!({"probe": {"with": {}}, "until": "true"}),
            "/probe",
            "missing parameter `uses`",
        );
        let problem = assert_rejected(
            "wait",
            json!({"probe": {"uses": "http", "wiht": {}}, "until": "true"}),
            "/probe/wiht",
            "unknown parameter `wiht`",
        );
        assert_eq!(problem.help.as_deref(), Some("did you mean `with`?"));
        assert_rejected(
            "wait",
            json!({"probe": "http", "until": "true"}),
            "/probe",
            "`probe` must be a mapping, found a string",
        );
        assert_rejected(
            "wait",
            json!({"probe": probe(), "until": "true", "interval": "2"}),
            "/interval",
            "`2` has no unit",
        );
        assert_rejected(
            "wait",
            json!({"probe": probe(), "until": "true", "interval": "0s"}),
            "/interval",
            "`interval` is zero",
        );
        assert_rejected(
            "wait",
            json!({"probe": probe(), "until": "true", "timeout": "a minute"}),
            "/timeout",
            "not a duration",
        );
        assert_rejected(
            "wait",
            json!({"probe": probe(), "until": "true", "timeout": 60}),
            "/timeout",
            "must be a string",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "wait",
            &[
                json!({"probe": probe(), "until": "result.status == 200"}),
                json!({"probe": probe(), "until": "result.json.ready", "interval": "500ms", "timeout": "90s"}),
                json!({"probe": probe(), "until": "result.status == 200", "interval": "<inputs.every>", "timeout": "forever"}),
                json!({"probe": probe()}),
            ],
        ));
    }

    /// A host whose probe answers 503 until call `ready_at`, then 200. Its
    /// first call fails without a result, as a refused connection does.
    fn service_ready_at(ready_at: u32) -> Arc<FakeHost> {
        Arc::new(FakeHost::new().with_nested(move |call, params, _| {
            Box::pin(async move {
                assert_eq!(params, json!({"url": "https://x/health"}));
                match call {
                    1 => Err(StepError::new("cannot connect to https://x/health: connection refused")),
                    n if n < ready_at => Err(StepError::new("503").with_result(json!({"status": 503, "json": null}))),
                    _ => Ok(json!({"status": 200, "json": {"ready": true}})),
                }
            })
        }))
    }

    #[tokio::test]
    async fn polls_until_the_condition_holds() {
        let host = service_ready_at(3);
        let params = json!({"probe": probe(), "until": "result.status == 200", "interval": "10ms"});
        let result = run("wait", &host, params).await.unwrap();
        assert_eq!(host.nested_calls(), 3);
        assert_eq!(result["attempts"], 3);
        assert_eq!(result["result"], json!({"status": 200, "json": {"ready": true}}));
        assert!(result["elapsed_ms"].as_u64().unwrap() >= 20, "{result}");
        // The live view hears each probe that did not do, and when the next comes.
        let notes: Vec<String> = host.progress().into_iter().map(|(note, _)| note).collect();
        assert_eq!(
            notes,
            [
                "probe 1: failed: cannot connect to https://x/health: connection refused; `result.status == 200` not true yet",
                "probe 2: status 503; `result.status == 200` not true yet"
            ]
        );
        assert!(
            host.progress()
                .iter()
                .all(|(_, next)| *next == Some(Duration::from_millis(10)))
        );
    }

    #[tokio::test]
    async fn gives_up_after_the_timeout() {
        let host = service_ready_at(u32::MAX);
        let params = json!({"probe": probe(), "until": "result.status == 200", "interval": "20ms", "timeout": "150ms"});
        let started = Instant::now();
        let error = run("wait", &host, params).await.unwrap_err();
        assert_eq!(
            error.message,
            "gave up after 150ms: `result.status == 200` was still false (last result: status 503)"
        );
        assert_eq!(error.result, Some(json!({"status": 503, "json": null})));
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert!(host.nested_calls() >= 3, "{}", host.nested_calls());
    }

    #[tokio::test]
    async fn a_probe_still_running_at_the_timeout_is_cancelled() {
        let host = Arc::new(FakeHost::new().with_nested(|_, _, cancel| {
            Box::pin(async move {
                cancel.cancelled().await;
                Err(StepError::new("cancelled"))
            })
        }));
        let params = json!({"probe": probe(), "until": "true", "timeout": "100ms"});
        let started = Instant::now();
        let error = run("wait", &host, params).await.unwrap_err();
        assert_eq!(
            error.message,
            "gave up after 100ms: the first probe had not finished, so `true` was never checked"
        );
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn an_until_that_cannot_be_evaluated_fails_at_once() {
        let host = service_ready_at(2);
        let params = json!({"probe": probe(), "until": "result.json.nope.deeper", "interval": "10ms"});
        let error = run("wait", &host, params).await.unwrap_err();
        assert!(
            error.message.starts_with("cannot evaluate `result.json.nope.deeper`: "),
            "{error}"
        );
        assert_eq!(host.nested_calls(), 2);
    }

    #[tokio::test]
    async fn cancellation_ends_the_wait() {
        let host = service_ready_at(u32::MAX);
        let cx = host.step_context(json!({"probe": probe(), "until": "result.status == 200", "interval": "1h"}));
        let cancel = cx.cancel.clone();
        let started = Instant::now();
        let (outcome, ()) = tokio::join!(run_with("wait", cx), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        });
        assert_eq!(outcome.unwrap_err().message, "cancelled");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }

    /// The probe runs the real `shell` kind, as the engine's host does.
    fn shell_probes() -> Arc<FakeHost> {
        Arc::new(FakeHost::new().with_nested(|_, params, cancel| {
            Box::pin(async move {
                static SHELL: crate::Shell = crate::Shell;
                let probe_host = Arc::new(FakeHost::new());
                let mut cx = probe_host.step_context(params);
                cx.step_id = "shell probe".into();
                cx.cancel = cancel;
                runbook_engine::step::StepKind::run(&SHELL, cx).await
            })
        }))
    }

    #[tokio::test]
    async fn a_shell_probe_s_processes_carry_the_token_the_wait_journaled() {
        let host = shell_probes();
        let params = json!({
            "probe": {"uses": "shell", "with": {"run": "echo \"$RUNBOOK_STEP_TOKEN\""}},
            "until": "result.exit_code == 1",
            "interval": "10ms",
            "timeout": "100ms",
        });
        let error = run("wait", &host, params).await.unwrap_err();
        let checkpoints = host.checkpoints();
        assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
        let (step, state) = &checkpoints[0];
        assert_eq!(step, "step");
        let token = state["token"].as_str().unwrap();
        assert!(token.starts_with("run-1/step/1/"), "{token}");
        // Every probe carried it.
        assert!(host.nested_calls() >= 2);
        assert_eq!(error.result.unwrap()["stdout"], token);
    }

    #[tokio::test]
    async fn a_wait_that_cannot_journal_its_token_runs_no_probe() {
        let host = Arc::new(shell_probes_with_checkpoint_answer(Err("the disk is full".into())));
        let params = json!({"probe": {"uses": "shell", "with": {"run": "touch /tmp/never"}}, "until": "true"});
        let error = run("wait", &host, params).await.unwrap_err();
        assert_eq!(error.message, "the disk is full");
        assert_eq!(host.nested_calls(), 0);
    }

    fn shell_probes_with_checkpoint_answer(answer: Result<(), String>) -> FakeHost {
        FakeHost::new()
            .with_checkpoint_answer(answer)
            .with_nested(|_, _, _| Box::pin(async { Err(StepError::new("no probe should run")) }))
    }
}
