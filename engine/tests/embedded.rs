//! The engine embedded in another program: what a run reads of the world
//! comes from what the embedder gives it, child runs included.

use runbook_engine::execute::{Event, Mode, Reporter, RunRequest, RunStatus, Unattended, execute};
use runbook_engine::{Registry, load_path};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keeps the log messages of a run, and each event as `--output json` writes it.
#[derive(Default)]
struct Logs(Mutex<Vec<String>>, Mutex<Vec<serde_json::Value>>);

impl Reporter for Logs {
    fn event(&self, event: &Event) {
        if let Event::Log { message, .. } = event {
            self.0.lock().unwrap().push(message.clone());
        }
        let line = serde_json::to_value(runbook_engine::execute::EventLine::now(event)).unwrap();
        self.1.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn a_child_run_reads_the_environment_its_parent_was_given() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("child.yaml"),
        "runbook: 1\nname: child\ninputs:\n  where: { env: EMBEDDED_WHERE }\nsteps:\n  - id: say\n    uses: log\n    with: { message: \"child sees {{ inputs.where }}\" }\n",
    )
    .unwrap();
    let parent = "runbook: 1\nname: parent\nsteps:\n  - id: sub\n    uses: runbook\n    with: { file: child.yaml }\n";
    let path = dir.path().join("parent.yaml");
    std::fs::write(&path, parent).unwrap();
    let mut registry = Registry::new();
    stdlib_steps::register(&mut registry);
    let (_, loaded) = load_path(&path, parent.as_bytes(), &registry);
    let compiled = Arc::new(loaded.expect("the runbooks load").compiled);
    // Set for this run only: not in the process's environment.
    assert!(std::env::var_os("EMBEDDED_WHERE").is_none());
    let request = RunRequest {
        inputs: Vec::new(),
        env: Arc::new(|name: &str| (name == "EMBEDDED_WHERE").then(|| "the injected value".to_string())),
        base_dir: dir.path().to_path_buf(),
        step_mode: false,
        yes: true,
        no_rollback: false,
        timeout: None,
        kill_grace: Duration::from_secs(1),
        run_id: None,
        state: None,
        mode: Mode::Run,
        secrets: None,
        operator: "test".into(),
    };
    let logs = Arc::new(Logs::default());
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let summary = execute(
        compiled,
        Arc::new(registry),
        request,
        Arc::new(Unattended { yes: true }),
        logs.clone(),
        rx,
    )
    .await
    .expect("the run starts");
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    let logs = logs.0.lock().unwrap();
    assert!(logs.iter().any(|m| m == "child sees the injected value"), "{logs:?}");
}

#[tokio::test]
async fn every_event_of_a_run_fits_the_checked_in_schema_of_the_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let text = "runbook: 1\nname: mixed\nsteps:\n  - id: ok\n    uses: shell\n    with: { run: \"echo out; echo err >&2\" }\n    outputs: { said: result.stdout }\n    rollback: { uses: log, with: { message: undo } }\n  - id: skip\n    uses: log\n    when: \"false\"\n    with: { message: never }\n  - id: retried\n    uses: shell\n    with: { run: \"exit 3\" }\n    retry: { attempts: 2, delay: 10ms }\nfinally:\n  - id: last\n    uses: log\n    with: { message: \"{{ run.status }}\" }\n";
    let path = dir.path().join("mixed.yaml");
    std::fs::write(&path, text).unwrap();
    let mut registry = Registry::new();
    stdlib_steps::register(&mut registry);
    let (_, loaded) = load_path(&path, text.as_bytes(), &registry);
    let compiled = Arc::new(loaded.expect("the runbook loads").compiled);
    let request = RunRequest {
        inputs: Vec::new(),
        env: Arc::new(|_: &str| None),
        base_dir: dir.path().to_path_buf(),
        step_mode: false,
        yes: true,
        no_rollback: false,
        timeout: None,
        kill_grace: Duration::from_secs(1),
        run_id: None,
        state: None,
        mode: Mode::Run,
        secrets: None,
        operator: "test".into(),
    };
    let logs = Arc::new(Logs::default());
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let summary = execute(
        compiled,
        Arc::new(registry),
        request,
        Arc::new(Unattended { yes: true }),
        logs.clone(),
        rx,
    )
    .await
    .expect("the run starts");
    assert_eq!(summary.status, RunStatus::Failed);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/run-events-v1.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let lines = logs.1.lock().unwrap();
    let kinds: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    for expected in [
        "run_started",
        "step_started",
        "step_output",
        "step_succeeded",
        "step_skipped",
        "step_retrying",
        "step_failed",
        "rollback_started",
        "rollback_succeeded",
        "finally_started",
        "run_finished",
    ] {
        assert!(kinds.contains(expected), "no {expected} among {kinds:?}");
    }
    for line in lines.iter() {
        let errors: Vec<String> = validator.iter_errors(line).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
        assert!(
            runbook_engine::clock::epoch_millis(line["at"].as_str().unwrap()).is_some(),
            "{line}"
        );
    }
}
