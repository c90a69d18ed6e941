//! The complete step kind of the book's "Writing a step kind" page, which
//! includes this file: it must build, check, describe and run as the page
//! says.

// ANCHOR: kind
use runbook_engine::kit::process::{StepProcesses, Stopped};
use runbook_engine::kit::{Kind, Templated, Traits, cancelled};
use runbook_engine::step::{ParamProblem, StepContext, StepError, Undo};
use runbook_engine::words::HumanDuration;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::process::Stdio;

/// Restarts a systemd unit, then waits for it to settle.
pub struct ServiceRestart;

/// Parameters of a `service.restart` step. The doc comments become the
/// JSON Schema that `runbook check` validates against and editors show.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRestartParams {
    /// The unit to restart, such as `ledger.service`.
    #[schemars(length(min = 1))]
    pub unit: String,

    /// How long to wait after the restart before the step succeeds.
    #[serde(default = "no_settle")]
    #[schemars(with = "HumanDuration")]
    pub settle: Templated<HumanDuration>,

    /// The program that restarts it (`systemctl`, or a wrapper).
    #[serde(default = "systemctl")]
    pub systemctl: String,
}

fn no_settle() -> Templated<HumanDuration> {
    Templated::Value(HumanDuration::from_secs(0))
}

fn systemctl() -> String {
    "systemctl".to_string()
}

impl Kind for ServiceRestart {
    type Params = ServiceRestartParams;
    const NAME: &'static str = "service.restart";
    const SUMMARY: &'static str = "Restart a systemd unit and wait for it to settle.";
    const TRAITS: Traits = Traits::NONE;

    /// Runs before the run on the parameters as written (a template is
    /// judged once rendered), and again on the rendered ones before `run`.
    fn validate(&self, params: &ServiceRestartParams) -> Vec<ParamProblem> {
        let unit = &params.unit;
        if !runbook_engine::template::is_template(unit) && unit.contains([' ', '/']) {
            return vec![
                ParamProblem::new("/unit", format!("`{unit}` is not a unit name"))
                    .with_help("name the unit itself, such as `ledger.service`"),
            ];
        }
        Vec::new()
    }

    /// What `plan` shows. `settle` may be a template or a stand-in
    /// (`<inputs.settle>`) here: it shows as written.
    fn describe(&self, params: &ServiceRestartParams) -> String {
        format!("restart `{}`, then wait {}", params.unit, params.settle)
    }

    /// A restart undoes itself only by another restart.
    fn undo_summary(&self, _params: &ServiceRestartParams) -> Option<String> {
        Some("restart it again".to_string())
    }

    fn undo(&self, params: &ServiceRestartParams, _result: &Json) -> Option<Undo> {
        Some(Undo {
            kind: Self::NAME.into(),
            params: json!({"unit": params.unit, "systemctl": params.systemctl}),
            description: format!("restart `{}` again", params.unit),
        })
    }

    /// Stops what an attempt left running if `runbook` died during it.
    async fn recover(&self, checkpoint: &Json) -> Result<Option<String>, String> {
        runbook_engine::kit::process::recover(checkpoint).await
    }

    /// One attempt. Timeouts, retries, `verify` and rollback are the
    /// engine's; this ends soon after `cx.cancel` and leaves nothing running.
    async fn run(&self, params: ServiceRestartParams, cx: StepContext) -> Result<Json, StepError> {
        let mut command = tokio::process::Command::new(&params.systemctl);
        command.args(["restart", &params.unit]).stdin(Stdio::null());
        let token = runbook_engine::kit::process::ProcessToken::for_attempt(&cx);
        // Its own process group, SIGKILL if `runbook` dies, killed on drop.
        let (mut child, mut processes) = StepProcesses::spawn(&mut command, &token)
            .map_err(|e| StepError::new(format!("cannot start `{}`: {e}", params.systemctl)))?;
        // Journaled before anything else happens, for `recover`.
        if let Err(e) = cx.host.checkpoint(&cx.step_id, processes.checkpoint().to_json()) {
            processes.kill_now();
            return Err(StepError::new(e));
        }
        let status = tokio::select! {
            status = child.wait() => status.map_err(|e| StepError::new(e.to_string()))?,
            () = cx.cancel.cancelled() => {
                // SIGTERM, the run's grace period, then SIGKILL.
                let _: Stopped = processes.stop(&mut child, cx.kill_grace).await;
                return Err(cancelled());
            }
        };
        processes.stop(&mut child, cx.kill_grace).await;
        let result = json!({"unit": params.unit, "exit_code": status.code()});
        if !status.success() {
            return Err(StepError::new(format!("`{}` did not restart", params.unit)).with_result(result));
        }
        tokio::select! {
            () = tokio::time::sleep(params.settle.get()?.0) => Ok(result),
            () = cx.cancel.cancelled() => Err(cancelled()),
        }
    }
}
// ANCHOR_END: kind

// ANCHOR: register
fn registry() -> runbook_engine::step::Registry {
    let mut registry = runbook_engine::step::Registry::new();
    registry.register(ServiceRestart);
    registry
}
// ANCHOR_END: register

use runbook_engine::step::{Host, OutputStream, StepFuture};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A host that records checkpoints.
#[derive(Default)]
struct Recorder(Mutex<Vec<Json>>);

impl Host for Recorder {
    fn run_nested(&self, _: &str, _: Json, _: CancellationToken) -> StepFuture<'_> {
        Box::pin(async { Err(StepError::new("no nested steps")) })
    }
    fn eval(&self, _: &str, _: &Json) -> Result<Json, String> {
        Err("no expressions".into())
    }
    fn confirm<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async { Err("nobody to ask".into()) })
    }
    fn output(&self, _: &str, _: OutputStream, _: &str, _: bool) {}
    fn log(&self, _: &str, _: &str, _: &str) {}
    fn checkpoint(&self, _: &str, state: Json) -> Result<(), String> {
        self.0.lock().unwrap().push(state);
        Ok(())
    }
}

fn context(host: &Arc<Recorder>, params: Json) -> StepContext {
    StepContext {
        run_id: "run".into(),
        step_id: "restart".into(),
        attempt: 1,
        idempotency_key: "run/restart".into(),
        params,
        cancel: CancellationToken::new(),
        kill_grace: std::time::Duration::from_secs(1),
        host: host.clone(),
    }
}

#[test]
fn the_kind_describes_itself_from_its_declarations() {
    let registry = registry();
    let kind = registry.get("service.restart").unwrap();
    assert_eq!(kind.summary(), "Restart a systemd unit and wait for it to settle.");
    let schema = kind.params_schema();
    assert_eq!(schema["required"], json!(["unit"]));
    assert_eq!(
        schema["properties"]["unit"]["description"],
        "The unit to restart, such as `ledger.service`."
    );
    assert_eq!(
        kind.describe(&json!({"unit": "ledger.service", "settle": "<inputs.settle>"})),
        "restart `ledger.service`, then wait <inputs.settle>"
    );
    assert_eq!(
        kind.undo_summary(&json!({"unit": "ledger.service"})).as_deref(),
        Some("restart it again")
    );
}

#[test]
fn its_rules_apply_before_and_during_the_run() {
    let registry = registry();
    let kind = registry.get("service.restart").unwrap();
    assert!(
        kind.validate(&json!({"unit": "{{ inputs.unit }}", "settle": "{{ inputs.s }}"}))
            .is_empty()
    );
    let problems = kind.validate(&json!({"unit": "a b"}));
    assert_eq!(problems[0].pointer, "/unit");
    let problems = kind.validate(&json!({"unit": "a", "settle": "soon"}));
    assert_eq!(problems[0].pointer, "/settle");
    assert_eq!(problems[0].help.as_deref(), Some(HumanDuration::HELP));
}

#[tokio::test]
async fn it_runs_journals_its_processes_and_fails_clearly() {
    let registry = registry();
    let kind = registry.get("service.restart").unwrap();
    let host = Arc::new(Recorder::default());
    let result = kind
        .run(context(
            &host,
            json!({"unit": "ledger.service", "systemctl": "true", "settle": "10ms"}),
        ))
        .await
        .unwrap();
    assert_eq!(result, json!({"unit": "ledger.service", "exit_code": 0}));
    assert!(
        host.0.lock().unwrap()[0]["token"]
            .as_str()
            .unwrap()
            .starts_with("run/restart/1/")
    );

    let error = kind
        .run(context(&host, json!({"unit": "ledger.service", "systemctl": "false"})))
        .await
        .unwrap_err();
    assert_eq!(error.message, "`ledger.service` did not restart");
    assert_eq!(error.result, Some(json!({"unit": "ledger.service", "exit_code": 1})));

    let error = kind.run(context(&host, json!({"unit": "a b"}))).await.unwrap_err();
    assert!(
        error
            .message
            .starts_with("`a b` is not a unit name. Nothing was changed"),
        "{error:?}"
    );
}
