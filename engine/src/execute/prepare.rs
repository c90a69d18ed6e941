//! Before a run starts: its inputs (from the request, or from the journal
//! of a run picked up again), its secrets, and someone to answer its
//! questions. Nothing here acts; it refuses a run that cannot go well.

use super::*;

/// The resolved inputs and the secret values of a run.
pub(super) type Prepared = (serde_json::Map<String, Json>, HashMap<String, String>);

/// Checks what a run needs before anything runs: inputs, secrets, and
/// someone to answer confirmations. Returns the inputs (relative times
/// resolved against `started`, when the run starts) and secret values.
pub(super) fn prepare(
    compiled: &Compiled,
    registry: &Registry,
    request: &RunRequest,
    replayed: Option<&RunState>,
    interactive: bool,
    started: jiff::Timestamp,
) -> Result<Prepared, Vec<Diagnostic>> {
    let runbook = &compiled.runbook;
    let mut errors = Vec::new();
    if let (Mode::Resume(_), Some(state)) = (&request.mode, replayed)
        && !request.yes
        && !interactive
    {
        // Whether to run again a step that may have taken effect is a
        // person's call: without one, the run is left as it was.
        for id in state.in_flight().map(|s| &s.id) {
            let Some(step) = runbook.steps.iter().find(|s| &s.id == id) else {
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
    if let (Mode::Rollback(_), Some(state)) = (&request.mode, replayed)
        && let Some(summary) = state.summary()
        && !anything_to_roll_back(runbook, registry, state)
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
    // Secrets are read first, so that a value that holds one is not shown
    // in an input's error; their own errors come after the inputs'.
    let mut secret_errors = Vec::new();
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
            Err((message, help)) => secret_errors.push(
                Diagnostic::error(codes::MISSING_SECRET, message)
                    .with_label(secret.span, "declared here")
                    .with_help(help),
            ),
        }
    }
    let own = crate::secrets::Redactor::new(secrets.values().cloned());
    let holds_secret =
        |text: &str| own.reveals(text) || request.secrets.as_ref().is_some_and(|parent| parent.reveals(text));
    let inputs: serde_json::Map<String, Json> = match request.mode.journal() {
        Some(journal) => journaled_inputs(runbook, journal, request, started, &holds_secret, &mut errors),
        None => resolve_inputs(
            runbook,
            &request.inputs,
            &*request.env,
            started,
            &holds_secret,
            &mut errors,
        )
        .into_iter()
        .map(|i| (i.name, i.value))
        .collect(),
    };
    errors.extend(secret_errors);
    if !request.yes && !interactive && matches!(request.mode, Mode::Run) {
        let asking: Vec<&str> = runbook
            .steps
            .iter()
            .chain(&runbook.finally)
            .filter(|s| {
                request.step_mode || s.confirm.is_some() || registry.get(&s.kind).is_some_and(|k| k.asks_operator())
            })
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

/// The inputs of a run picked up from its journal, as they were resolved
/// when it started (a relative time stays the time it stood for then).
/// Inputs that held a secret were journaled masked: they must be given
/// again (a parent run gives its child's every time).
pub(super) fn journaled_inputs(
    runbook: &checked::Runbook,
    journal: &Journal,
    request: &RunRequest,
    started: jiff::Timestamp,
    holds_secret: &dyn Fn(&str) -> bool,
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
    resolve_inputs(runbook, &given, &none, started, holds_secret, errors)
        .into_iter()
        .map(|i| (i.name, i.value))
        .collect()
}

/// Whether a step's guard is false for these inputs, whatever the run
/// brings (`inputs.x and steps.a.outputs.ok` with `x` false): such a step
/// will be skipped, so its confirmation will never be asked.
pub(super) fn known_skipped(step: &checked::Step, inputs: &serde_json::Map<String, Json>) -> bool {
    let Some(when) = &step.when else { return false };
    let ctx = context::map_value([("inputs", to_value(inputs))]);
    let known = |name: &str| name.starts_with("inputs.");
    matches!(
        crate::plan::decide(&when.text, &ctx, &known),
        crate::plan::Decision::Known { value: false, .. }
    )
}
