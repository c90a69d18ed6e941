//! Why a step failed, typed: the kind's own failure with what it produced
//! (an exit code and stderr, an HTTP status and body), a time limit, a
//! cancellation and who caused it, a gate and the values it saw. Events,
//! the journal, the terminal, `show` and the reports all read the same
//! value; its words are made here once.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Why a step, or one attempt of it, failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Failure {
    /// The kind said it failed. `partial` is what it produced all the same:
    /// an exit code and output, an HTTP response.
    #[serde(rename = "kind_failed")]
    Kind {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partial: Option<Json>,
    },
    /// The step's time limit passed; `partial` is what the attempt had
    /// produced when it was stopped.
    TimedOut {
        after_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partial: Option<Json>,
    },
    /// Stopped before it finished, from outside.
    Cancelled { by: Canceller },
    /// A `verify` gate did not hold (or could not be evaluated).
    Gate { expression: String, seen: String },
    /// `retry.until` did not hold after the last attempt.
    Until { expression: String, seen: String },
    /// A template, guard or output could not be evaluated.
    Evaluation { message: String },
    /// Never started: its start could not be journaled, or a step it needs
    /// did not succeed.
    NotStarted { why: String },
}

/// Who or what stopped a step from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Canceller {
    /// The operator: Ctrl-C, a declined confirmation, `--step`.
    Operator,
    /// A signal sent to `runbook` (`SIGINT`, `SIGTERM`).
    Signal(String),
    /// The whole run's `--timeout`.
    RunTimeout,
    /// Another step failed and the run is rolling back.
    AnotherStep,
    /// The journal could not be written: nothing more may run.
    Journal,
}

impl Failure {
    /// A failure the kind reported.
    pub fn kind(error: crate::step::StepError) -> Self {
        Failure::Kind {
            message: error.message,
            partial: error.result,
        }
    }

    /// Whether it was a `verify` gate (offered to the operator, when one
    /// is there, to retry, skip or roll back).
    pub fn is_gate(&self) -> bool {
        matches!(self, Failure::Gate { .. })
    }

    /// The failure in one sentence, as the terminal and the reports say it.
    pub fn message(&self) -> String {
        match self {
            Failure::Kind { message, .. } => message.clone(),
            Failure::TimedOut { after_ms, .. } => format!(
                "timed out after {}",
                crate::words::format_duration(std::time::Duration::from_millis(*after_ms))
            ),
            Failure::Cancelled { by } => format!("cancelled ({})", by.words()),
            Failure::Gate { expression, seen } if seen.starts_with("cannot evaluate") => {
                format!(
                    "cannot evaluate `{expression}`: {}",
                    seen.trim_start_matches("cannot evaluate: ")
                )
            }
            Failure::Gate { expression, seen } => format!("verification failed: `{expression}` is false ({seen})"),
            Failure::Until { expression, seen } => format!("`{expression}` is not true yet ({seen})"),
            Failure::Evaluation { message } | Failure::NotStarted { why: message } => message.clone(),
        }
    }

    /// What the failed attempt produced that tells why, when there is more
    /// to say than [`Failure::message`]: the exit code and the last lines
    /// of stderr, the HTTP status and the start of the body.
    pub fn detail(&self) -> Option<String> {
        match self {
            Failure::Kind {
                partial: Some(partial), ..
            }
            | Failure::TimedOut {
                partial: Some(partial), ..
            } => partial_detail(partial),
            _ => None,
        }
    }

    /// Words for a failure and what tells why: `error` (as an event says
    /// it), then the failure's detail when it has one.
    pub fn with_detail(error: &str, failure: Option<&Failure>) -> String {
        match failure.and_then(Failure::detail) {
            Some(detail) => format!("{error} — {detail}"),
            None => error.to_string(),
        }
    }

    /// Calls `text` on every string of the failure and `json` on what the
    /// kind produced (for masking and escaping).
    pub fn each_text(&mut self, text: &mut dyn FnMut(&mut String), json: &mut dyn FnMut(&mut Json)) {
        match self {
            Failure::Kind { message, partial } => {
                text(message);
                partial.iter_mut().for_each(json);
            }
            Failure::TimedOut { partial, .. } => partial.iter_mut().for_each(json),
            Failure::Cancelled {
                by: Canceller::Signal(name),
            } => text(name),
            Failure::Cancelled { .. } => {}
            Failure::Gate { expression, seen } | Failure::Until { expression, seen } => {
                text(expression);
                text(seen);
            }
            Failure::Evaluation { message } | Failure::NotStarted { why: message } => text(message),
        }
    }
}

impl Canceller {
    pub fn words(&self) -> String {
        match self {
            Canceller::Operator => "by the operator".into(),
            Canceller::Signal(name) => format!("by {name}"),
            Canceller::RunTimeout => "the run timed out".into(),
            Canceller::AnotherStep => "another step failed".into(),
            Canceller::Journal => "the journal could not be written".into(),
        }
    }
}

/// How many lines of a failed command's stderr are shown.
const TAIL_LINES: usize = 5;
/// How much of a line or an HTTP body is shown.
const EXCERPT: usize = 300;

/// The part of a kind's result that tells why it failed.
fn partial_detail(partial: &Json) -> Option<String> {
    let mut parts = Vec::new();
    // What was stopped, in words, when it is not the step's command (a plugin).
    if let Some(stopped) = partial.get("stopped").and_then(Json::as_str) {
        parts.push(excerpt(stopped));
    }
    if let Some(code) = partial.get("exit_code").and_then(Json::as_i64) {
        parts.push(format!("exit code {code}"));
    } else if let Some(signal) = partial.get("signal").and_then(Json::as_str) {
        parts.push(format!("killed by {signal}"));
    }
    if let Some(status) = partial.get("status").and_then(Json::as_u64) {
        parts.push(format!("HTTP {status}"));
    }
    let stream = ["stderr", "stdout"].iter().find_map(|name| {
        partial
            .get(*name)
            .and_then(Json::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|s| (*name, s))
    });
    if let Some((name, text)) = stream {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail: Vec<String> = lines[lines.len().saturating_sub(TAIL_LINES)..]
            .iter()
            .map(|l| excerpt(l))
            .collect();
        parts.push(format!("last {name}: {}", tail.join(" ⏎ ")));
    } else if let Some(body) = partial
        .get("body")
        .and_then(Json::as_str)
        .filter(|b| !b.trim().is_empty())
    {
        parts.push(format!(
            "body: {}",
            excerpt(&body.split_whitespace().collect::<Vec<_>>().join(" "))
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT {
        return text.to_string();
    }
    let cut: String = text.chars().take(EXCERPT).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_command_failure_tells_its_exit_code_and_the_end_of_stderr() {
        let failure = Failure::Kind {
            message: "exited with code 3 (expected 0)".into(),
            partial: Some(json!({"exit_code": 3, "signal": null, "stdout": "ok", "stderr": "a\nb\n\nc\nd\ne\nf\n"})),
        };
        assert_eq!(failure.detail().unwrap(), "exit code 3; last stderr: b ⏎ c ⏎ d ⏎ e ⏎ f");
        let http = Failure::Kind {
            message: "GET x answered 503".into(),
            partial: Some(json!({"status": 503, "headers": {}, "body": "{\"error\":\n \"down\"}"})),
        };
        assert_eq!(http.detail().unwrap(), "HTTP 503; body: {\"error\": \"down\"}");
        let timed_out = Failure::TimedOut {
            after_ms: 2000,
            partial: Some(json!({"exit_code": null, "signal": "SIGTERM", "stdout": "working", "stderr": ""})),
        };
        assert_eq!(timed_out.message(), "timed out after 2s");
        assert_eq!(timed_out.detail().unwrap(), "killed by SIGTERM; last stdout: working");
    }

    #[test]
    fn failures_read_back_as_written() {
        let failure = Failure::Cancelled {
            by: Canceller::Signal("SIGTERM".into()),
        };
        let text = serde_json::to_string(&failure).unwrap();
        assert_eq!(text, r#"{"reason":"cancelled","by":{"signal":"SIGTERM"}}"#);
        assert_eq!(serde_json::from_str::<Failure>(&text).unwrap(), failure);
        assert_eq!(failure.message(), "cancelled (by SIGTERM)");
    }
}
