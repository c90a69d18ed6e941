//! The engine embedded in another program: what a run reads of the world
//! comes from what the embedder gives it, child runs included.

use runbook_engine::execute::{Event, Mode, Reporter, RunRequest, RunStatus, Unattended, execute};
use runbook_engine::{Registry, load_path};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keeps the log messages of a run.
#[derive(Default)]
struct Logs(Mutex<Vec<String>>);

impl Reporter for Logs {
    fn event(&self, event: &Event) {
        if let Event::Log { message, .. } = event {
            self.0.lock().unwrap().push(message.clone());
        }
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
