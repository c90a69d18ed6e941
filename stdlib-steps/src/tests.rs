//! Tests over every built-in kind at once, and the helpers each kind's own
//! tests share.

use runbook_engine::step::{Host, OutputStream, ParamProblem, Registry, StepContext, StepError, StepFuture};
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub fn registry() -> Registry {
    let mut registry = Registry::new();
    crate::register(&mut registry);
    registry
}

/// Every problem `check` would report: the schema's, then the kind's own.
pub fn problems(name: &str, params: &Json) -> Vec<ParamProblem> {
    let registry = registry();
    // As `check` does, a template is not judged before it is rendered.
    let template = |pointer: &str| {
        params
            .pointer(pointer)
            .and_then(Json::as_str)
            .is_some_and(runbook_engine::template::is_template)
    };
    let mut problems = registry.check_schema(name, params, &template);
    problems.extend(registry.get(name).expect("a registered kind").validate(params));
    problems
}

/// The parameters pass the schema and the kind's checks, and, unless they
/// still hold templates, read into the kind's parameter struct.
pub fn assert_valid<P: DeserializeOwned>(name: &str, params: Json) {
    let problems = problems(name, &params);
    assert!(problems.is_empty(), "{name} {params}: {problems:#?}");
    if !params.to_string().contains("{{")
        && let Err(e) = serde_json::from_value::<P>(params.clone())
    {
        panic!("{name} {params} passed the checks but does not read: {e}");
    }
}

/// The parameters are rejected with a problem at `pointer` whose message
/// contains `message`. Returns that problem.
pub fn assert_rejected(name: &str, params: Json, pointer: &str, message: &str) -> ParamProblem {
    let problems = problems(name, &params);
    problems
        .iter()
        .find(|p| p.pointer == pointer && p.message.contains(message))
        .cloned()
        .unwrap_or_else(|| panic!("{name} {params}: no problem at `{pointer}` saying “{message}”: {problems:#?}"))
}

/// What `describe` says for each of `examples`, one paragraph each, for a
/// snapshot.
pub fn describe_all(name: &str, examples: &[Json]) -> String {
    let registry = registry();
    let kind = registry.get(name).expect("a registered kind");
    examples
        .iter()
        .map(|params| format!("{params}\n→ {}\n", kind.describe(params)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How a [`FakeHost`] runs a nested step: given the call's number (1 for
/// the first), the parameters and the cancellation token.
type Nested = Box<dyn Fn(u32, Json, CancellationToken) -> StepFuture<'static> + Send + Sync>;

/// A host for running kinds in tests: it records output lines and log
/// messages, evaluates expressions over `context` with `result` bound,
/// answers confirmations with `answer` and runs nested steps with `nested`.
pub struct FakeHost {
    pub context: Json,
    pub answer: Result<bool, String>,
    nested: Nested,
    nested_calls: AtomicU32,
    lines: Mutex<Vec<(String, OutputStream, String)>>,
    logs: Mutex<Vec<(String, String, String)>>,
    checkpoints: Mutex<Vec<(String, Json)>>,
    progress: Mutex<Vec<(String, Option<Duration>)>>,
    /// What `checkpoint` answers: `Err` as a full disk would.
    pub checkpoint_answer: Result<(), String>,
}

impl FakeHost {
    pub fn new() -> Self {
        Self {
            context: json!({}),
            answer: Err("nobody to ask".into()),
            nested: Box::new(|_, _, _| Box::pin(async { Err(StepError::new("no nested steps here")) })),
            nested_calls: AtomicU32::new(0),
            lines: Mutex::default(),
            logs: Mutex::default(),
            progress: Mutex::default(),
            checkpoints: Mutex::default(),
            checkpoint_answer: Ok(()),
        }
    }

    pub fn with_checkpoint_answer(mut self, answer: Result<(), String>) -> Self {
        self.checkpoint_answer = answer;
        self
    }

    /// A host whose journal cannot be written: every checkpoint fails.
    pub fn with_checkpoint_error(self, error: &str) -> Self {
        self.with_checkpoint_answer(Err(error.to_string()))
    }

    /// The states of the checkpoints journaled so far, in order.
    pub fn checkpoint_states(&self) -> Vec<Json> {
        self.checkpoints().into_iter().map(|(_, state)| state).collect()
    }

    /// The checkpoints journaled so far, as `(step, state)`.
    pub fn checkpoints(&self) -> Vec<(String, Json)> {
        self.checkpoints.lock().expect("not poisoned").clone()
    }

    pub fn with_context(mut self, context: Json) -> Self {
        self.context = context;
        self
    }

    pub fn with_answer(mut self, answer: Result<bool, String>) -> Self {
        self.answer = answer;
        self
    }

    pub fn with_nested(
        mut self,
        nested: impl Fn(u32, Json, CancellationToken) -> StepFuture<'static> + Send + Sync + 'static,
    ) -> Self {
        self.nested = Box::new(nested);
        self
    }

    pub fn nested_calls(&self) -> u32 {
        self.nested_calls.load(Ordering::SeqCst)
    }

    /// The lines of live output seen so far on `stream`.
    pub fn lines(&self, stream: OutputStream) -> Vec<String> {
        let lines = self.lines.lock().expect("not poisoned");
        lines
            .iter()
            .filter(|(_, s, _)| *s == stream)
            .map(|(_, _, line)| line.clone())
            .collect()
    }

    /// Waits until `count` lines of stdout have been seen, and returns them.
    pub async fn stdout_lines(&self, count: usize) -> Vec<String> {
        loop {
            let lines = self.lines(OutputStream::Stdout);
            if lines.len() >= count {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The messages logged so far, as `(level, message)`.
    pub fn logs(&self) -> Vec<(String, String)> {
        let logs = self.logs.lock().expect("not poisoned");
        logs.iter()
            .map(|(_, level, message)| (level.clone(), message.clone()))
            .collect()
    }

    /// The progress notes so far, with when something happens next.
    pub fn progress(&self) -> Vec<(String, Option<Duration>)> {
        self.progress.lock().expect("not poisoned").clone()
    }

    /// The context of a first attempt of step `step` of run `run-1`.
    pub fn step_context(self: &Arc<Self>, params: Json) -> StepContext {
        StepContext {
            run_id: "run-1".into(),
            step_id: "step".into(),
            attempt: 1,
            idempotency_key: "run-1.step".into(),
            params,
            cancel: CancellationToken::new(),
            kill_grace: Duration::from_secs(1),
            host: Arc::clone(self) as Arc<dyn Host>,
        }
    }
}

impl Host for FakeHost {
    fn run_nested(&self, _kind: &str, params: Json, cancel: CancellationToken) -> StepFuture<'_> {
        let call = self.nested_calls.fetch_add(1, Ordering::SeqCst) + 1;
        (self.nested)(call, params, cancel)
    }

    fn eval(&self, expression: &str, result: &Json) -> Result<Json, String> {
        let mut context = self.context.clone();
        context["result"] = result.clone();
        let context = minijinja::Value::from(minijinja::value::Serde(&context));
        // The engine's host names the expression in its errors; so does this one.
        let value = runbook_engine::template::eval(expression, &context)
            .map_err(|e| format!("cannot evaluate `{expression}`: {e}"))?;
        serde_json::to_value(&value).map_err(|e| e.to_string())
    }

    fn confirm<'a>(
        &'a self,
        _step: &'a str,
        _message: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move { self.answer.clone() })
    }

    fn output(&self, step: &str, stream: OutputStream, line: &str, _line_end: bool) {
        let mut lines = self.lines.lock().expect("not poisoned");
        lines.push((step.to_string(), stream, line.to_string()));
    }

    fn checkpoint(&self, step: &str, state: Json) -> Result<(), String> {
        self.checkpoints
            .lock()
            .expect("not poisoned")
            .push((step.to_string(), state));
        self.checkpoint_answer.clone()
    }

    fn log(&self, step: &str, level: &str, message: &str) {
        let mut logs = self.logs.lock().expect("not poisoned");
        logs.push((step.to_string(), level.to_string(), message.to_string()));
    }
    fn progress(&self, step: &str, note: &str, next_in: Option<Duration>) {
        assert_eq!(step, "step");
        let mut progress = self.progress.lock().expect("not poisoned");
        progress.push((note.to_string(), next_in));
    }
}

pub use runbook_engine::kit::process::table::{Cleanup, with_marker};

/// Runs one attempt of the built-in kind `name` with `params`.
pub async fn run(name: &str, host: &Arc<FakeHost>, params: Json) -> Result<Json, StepError> {
    run_with(name, host.step_context(params)).await
}

/// Runs one attempt of the built-in kind `name` in `cx`.
pub async fn run_with(name: &str, cx: StepContext) -> Result<Json, StepError> {
    let registry = registry();
    let kind = registry.get(name).expect("a registered kind");
    kind.run(cx).await
}

#[test]
fn truthiness_is_jinja_s() {
    for value in [
        json!(false),
        json!(null),
        json!(0),
        json!(0.0),
        json!(""),
        json!([]),
        json!({}),
    ] {
        assert!(!crate::is_truthy(&value), "{value}");
    }
    for value in [
        json!(true),
        json!(1),
        json!(-0.5),
        json!("false"),
        json!([0]),
        json!({"a": null}),
    ] {
        assert!(crate::is_truthy(&value), "{value}");
    }
}

#[test]
fn os_errors_read_as_phrases() {
    assert_eq!(
        crate::os_error_words("No such file or directory (os error 2)"),
        "no such file or directory"
    );
    assert_eq!(crate::os_error_words("Connection refused"), "connection refused");
    assert_eq!(crate::os_error_words("DNS error"), "DNS error");
    assert_eq!(crate::os_error_words(""), "");
}

#[tokio::test]
async fn parameters_that_do_not_read_fail_the_step_clearly() {
    let host = Arc::new(FakeHost::new());
    let error = run("shell", &host, json!({"run": 5})).await.unwrap_err();
    assert!(
        error
            .message
            .starts_with("the parameters of this `shell` step do not read: `run`: invalid type: integer `5`"),
        "{error}"
    );
    let error = run("sleep", &host, json!({"duration": "soon"})).await.unwrap_err();
    assert!(error.message.contains("`duration` is not a duration"), "{error}");
}

#[test]
fn registers_every_built_in_kind() {
    let names: Vec<_> = registry().names().collect();
    assert_eq!(
        names,
        [
            "shell",
            "http",
            "wait",
            "assert",
            "sleep",
            "confirm",
            "log",
            "runbook",
            "file.snapshot",
            "file.verify",
            "file.restore",
            "file.write",
            "file.prune",
            "file.remove",
            "json.validate",
            "json.query",
        ]
    );
    for kind in registry().kinds() {
        assert!(kind.summary().ends_with('.'), "{}: {}", kind.name(), kind.summary());
    }
}

/// Calls `visit` on every schema object inside `schema`, itself included.
fn walk(schema: &Json, path: &str, visit: &mut dyn FnMut(&str, &serde_json::Map<String, Json>)) {
    match schema {
        Json::Object(map) => {
            visit(path, map);
            for (key, value) in map {
                walk(value, &format!("{path}/{key}"), visit);
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}/{i}"), visit);
            }
        }
        _ => {}
    }
}

#[test]
fn schemas_compile_are_closed_and_self_contained() {
    let registry = registry();
    for kind in registry.kinds() {
        let name = kind.name();
        let schema = kind.params_schema();
        let problems = registry.check_schema(name, &json!({}), &|_| false);
        assert!(
            !problems.iter().any(|p| p.message.contains("invalid parameter schema")),
            "{name}: {problems:#?}"
        );
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
        walk(&schema, "", &mut |path, map| {
            assert!(!map.contains_key("$ref"), "{name}: a `$ref` at {path}");
            if map.contains_key("properties") && !path.ends_with("/properties") {
                assert_eq!(
                    map.get("additionalProperties"),
                    Some(&json!(false)),
                    "{name}: an open object at {path}"
                );
            }
        });
        for (param, property) in schema["properties"].as_object().expect("properties") {
            assert!(
                property.get("description").is_some_and(|d| d.is_string()),
                "{name}: `{param}` has no description"
            );
        }
        for pointer in kind.expression_params().iter().chain(kind.nested_steps()) {
            let property = format!("/properties/{}", pointer.trim_start_matches('/'));
            assert!(
                schema.pointer(&property).is_some(),
                "{name}: {pointer} is not a parameter"
            );
        }
    }
}

#[test]
fn schemas() {
    let schemas: serde_json::Map<String, Json> = registry()
        .kinds()
        .map(|kind| (kind.name().to_string(), kind.params_schema()))
        .collect();
    insta::assert_snapshot!(serde_json::to_string_pretty(&schemas).expect("JSON"));
}

#[test]
fn odd_params_never_panic() {
    let odd = [
        json!(null),
        json!([]),
        json!({}),
        json!("run"),
        json!(5),
        json!(true),
        json!({"url": 5}),
        json!({"url": null, "method": ["GET"], "headers": [1], "query": {"a": null, "b": [1], "c": {"d": 1}}}),
        json!({"url": "", "json": null, "body": 3, "expect_status": "2xx", "timeout": -1}),
        json!({"run": [], "argv": [null, {}, [1], ""], "env": "A", "cwd": 1, "ok_codes": "3"}),
        json!({"run": "", "ok_codes": [null, "x"], "env": {"": null}}),
        json!({"probe": 5, "until": [], "interval": {}, "timeout": "{{"}),
        json!({"probe": {"uses": [], "with": 3}, "until": null, "interval": "0s"}),
        json!({"that": [1, null, []], "message": {"a": 1}}),
        json!({"that": "", "duration": "", "level": 7}),
        json!({"message": "\n\n", "level": "loud", "duration": "99999999999999999999y"}),
        json!({"message": "é".repeat(300), "run": "\u{0}\u{202e}"}),
        json!({"paths": "x", "into": 5, "name": [], "format": {}}),
        json!({"paths": [null, 1, "", "/", "a/..", "{{ x }}"], "into": "", "name": "..", "format": "tar.gz"}),
        json!({"snapshot": [], "from": {}, "to": "", "aside": null, "verify": "x"}),
        json!({"snapshot": "", "from": "", "to": "/", "aside": "/", "verify": false}),
        json!({"path": "/", "content": 5, "mode": 644, "backup": 1}),
        json!({"dir": 1, "older_than": "x", "pattern": ["/"], "keep_latest": "many"}),
        json!({"dir": "", "older_than": "99999999999999999999y", "pattern": "/*?", "keep_latest": -1}),
        json!({"file": 1, "value": null, "schema": "x", "schema_file": [], "query": "[[", "required": 3}),
        json!({"value": {"a": [1]}, "schema": {"type": 5, "$ref": "http://x"}, "query": "{{ q }}"}),
    ];
    let registry = registry();
    for kind in registry.kinds() {
        for params in &odd {
            let _ = kind.describe(params);
            let _ = kind.validate(params);
            let _ = registry.check_schema(kind.name(), params, &|_| false);
        }
    }
}
