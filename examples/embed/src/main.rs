//! An example of a program that embeds the runbook engine: it registers the
//! built-in step kinds and one of its own, `app.maintenance`, which switches
//! the program's own (in-memory) maintenance mode, then loads a runbook and
//! runs it, printing what happens.
//!
//! ```text
//! cargo run -p embed-example -- examples/embed/maintenance.yaml fail=true
//! ```
//!
//! A kind registered this way runs in the program's process, with the
//! program's own state at hand; kinds in other languages are step plugins
//! instead (see the book's "Writing a step plugin").

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use runbook_engine::execute::{Event, Mode, Reporter, RunRequest, RunSummary, Unattended, execute};
use runbook_engine::kit::{Kind, Traits};
use runbook_engine::step::{StepContext, StepError, Undo};
use runbook_engine::{Registry, load_path};
use serde_json::{Value as Json, json};

/// The embedding program's own state: whether it is in maintenance mode,
/// and why.
#[derive(Debug, Clone, Default)]
struct App {
    maintenance: Arc<Mutex<Option<String>>>,
}

impl App {
    /// Sets maintenance mode; whether it was on.
    fn set_maintenance(&self, reason: Option<String>) -> bool {
        let mut maintenance = self.maintenance.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *maintenance, reason).is_some()
    }

    fn in_maintenance(&self) -> Option<String> {
        self.maintenance.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Parameters of an `app.maintenance` step.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MaintenanceParams {
    /// Whether maintenance mode is to be on.
    on: bool,
    /// Why, for the people who see the maintenance page.
    #[serde(default)]
    reason: Option<String>,
}

/// `app.maintenance`: switches the program's maintenance mode, and undoes
/// that by putting it back as it was.
struct Maintenance {
    app: App,
}

impl Kind for Maintenance {
    type Params = MaintenanceParams;
    const NAME: &'static str = "app.maintenance";
    const SUMMARY: &'static str = "Switch the application's maintenance mode on or off.";
    const TRAITS: Traits = Traits::NONE;

    fn describe(&self, params: &MaintenanceParams) -> String {
        match (params.on, &params.reason) {
            (true, Some(reason)) => format!("enter maintenance mode: {reason}"),
            (true, None) => "enter maintenance mode".to_string(),
            (false, _) => "leave maintenance mode".to_string(),
        }
    }

    fn undo_summary(&self, _params: &MaintenanceParams) -> Option<String> {
        Some("put maintenance mode back as it was".to_string())
    }

    /// The result says how it was; the undo is this kind again, set to that.
    fn undo(&self, _params: &MaintenanceParams, result: &Json) -> Option<Undo> {
        let was_on = result["was_on"].as_bool()?;
        Some(Undo {
            kind: Self::NAME.to_string(),
            params: json!({ "on": was_on, "reason": result["was_reason"] }),
            description: format!("maintenance mode back {}", if was_on { "on" } else { "off" }),
        })
    }

    async fn run(&self, params: MaintenanceParams, cx: StepContext) -> Result<Json, StepError> {
        let was_reason = self.app.in_maintenance();
        let reason = params.on.then(|| params.reason.clone().unwrap_or_default());
        let was_on = self.app.set_maintenance(reason);
        cx.host.log(
            &cx.step_id,
            "info",
            &format!("maintenance mode {}", if params.on { "on" } else { "off" }),
        );
        Ok(json!({ "on": params.on, "was_on": was_on, "was_reason": was_reason }))
    }
}

/// Prints the events a person wants to follow; the engine emits more.
struct Printer;

impl Reporter for Printer {
    fn event(&self, event: &Event) {
        match event {
            Event::StepStarted { step, action, .. } => println!("▶ {step}: {action}"),
            Event::Log { message, .. } => println!("  {message}"),
            Event::StepOutput { line, .. } => println!("  | {line}"),
            Event::StepSucceeded { step, .. } => println!("✓ {step}"),
            Event::StepFailed { step, error, .. } => println!("✗ {step}: {error}"),
            Event::RollbackStarted { step, action } => println!("↶ {step}: {action}"),
            _ => {}
        }
    }
}

/// The registry the program runs runbooks with: the built-in kinds and its own.
fn registry(app: &App) -> Registry {
    let mut registry = Registry::new();
    stdlib_steps::register(&mut registry);
    registry.register(Maintenance { app: app.clone() });
    registry
}

/// Loads the runbook at `path` and runs it with `inputs`, unattended and
/// without a journal.
async fn run(path: &std::path::Path, inputs: Vec<(String, String)>, app: &App) -> Result<RunSummary, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let registry = registry(app);
    let (_, loaded) = load_path(path, &text, &registry);
    let loaded = loaded.map_err(|diagnostics| {
        let messages: Vec<String> = diagnostics.iter().map(|d| d.message.clone()).collect();
        format!("{} does not load: {}", path.display(), messages.join("; "))
    })?;
    let request = RunRequest {
        inputs,
        env: runbook_engine::execute::process_env(),
        base_dir: path.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
        step_mode: false,
        yes: true,
        no_rollback: false,
        timeout: None,
        kill_grace: Duration::from_secs(5),
        run_id: None,
        state: None,
        mode: Mode::Run,
        secrets: None,
        operator: runbook_engine::execute::login_name(),
    };
    // Nothing interrupts this run but its own steps.
    let (_interrupt, interrupts) = tokio::sync::mpsc::unbounded_channel();
    execute(
        Arc::new(loaded.compiled),
        Arc::new(registry),
        request,
        Arc::new(Unattended { yes: true }),
        Arc::new(Printer),
        interrupts,
    )
    .await
    .map_err(|diagnostics| {
        let messages: Vec<String> = diagnostics.iter().map(|d| d.message.clone()).collect();
        format!("the run did not start: {}", messages.join("; "))
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/maintenance.yaml").to_string());
    let inputs = args
        .map(|arg| match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (arg, "true".to_string()),
        })
        .collect();
    let app = App::default();
    match run(path.as_ref(), inputs, &app).await {
        Ok(summary) => {
            println!("run {}: {:?}", summary.run_id, summary.status);
            println!(
                "maintenance mode: {}",
                if app.in_maintenance().is_some() { "on" } else { "off" }
            );
            ExitCode::from(u8::try_from(summary.status.exit_code()).unwrap_or(1))
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_engine::execute::RunStatus;

    fn runbook() -> &'static std::path::Path {
        concat!(env!("CARGO_MANIFEST_DIR"), "/maintenance.yaml").as_ref()
    }

    #[tokio::test]
    async fn the_runbook_runs_with_the_programs_own_kind() {
        let app = App::default();
        let summary = run(runbook(), Vec::new(), &app).await.unwrap();
        assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
        let steps: Vec<&str> = summary.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(steps, ["enter_maintenance", "migrate", "leave_maintenance"]);
        assert_eq!(app.in_maintenance(), None, "left again");
    }

    #[tokio::test]
    async fn a_failed_step_after_it_undoes_maintenance_mode_through_the_kind() {
        let app = App::default();
        let inputs = vec![("fail".to_string(), "true".to_string())];
        let summary = run(runbook(), inputs, &app).await.unwrap();
        assert_eq!(summary.status, RunStatus::Failed, "{summary:?}");
        assert_eq!(summary.rolled_back, ["enter_maintenance"]);
        assert_eq!(app.in_maintenance(), None, "undone");
    }

    #[test]
    fn the_kind_describes_itself_for_plan_and_check() {
        let registry = registry(&App::default());
        let kind = registry.get("app.maintenance").unwrap();
        assert_eq!(
            kind.describe(&json!({"on": true, "reason": "migrating"})),
            "enter maintenance mode: migrating"
        );
        assert!(!kind.validate(&json!({"on": "yes"})).is_empty(), "`on` is a boolean");
        assert_eq!(kind.params_schema()["required"], json!(["on"]));
    }
}
