//! The `log` step kind: writes a message to the run's output and journal.

use runbook_engine::kit::{Kind, Templated, Traits};
use runbook_engine::step::{StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_json::json;

use crate::words::quoted;

/// Writes a message to the run's output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Log;

/// Parameters of a `log` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// The text to write.
    pub message: String,

    /// How the message is marked: `info`, `warn` or `error`. Logging never
    /// fails the step, whatever the level.
    #[serde(default)]
    pub level: Templated<Level>,
}

/// How much a logged message matters: the engine's log levels.
pub use runbook_engine::step::LogLevel as Level;

impl Kind for Log {
    type Params = LogParams;
    const NAME: &'static str = "log";
    const SUMMARY: &'static str = "Write a message to the run's output.";
    const TRAITS: Traits = Traits {
        read_only: true,
        ..Traits::NONE
    };

    fn describe(&self, params: &LogParams) -> String {
        let level = match &params.level {
            Templated::Value(Level::Info) => String::new(),
            level => format!("[{level}] "),
        };
        format!("log {level}{}", quoted(&params.message))
    }

    /// Result: `{"message": "..."}`.
    async fn run(&self, params: LogParams, cx: StepContext) -> Result<Json, StepError> {
        cx.host.log(&cx.step_id, params.level.get()?.as_str(), &params.message);
        Ok(json!({"message": params.message}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn good_params_pass() {
        assert_valid::<LogParams>("log", json!({"message": "failover finished: {{ run.status }}"}));
        assert_valid::<LogParams>("log", json!({"message": "", "level": "warn"}));
        let params: LogParams = serde_json::from_value(json!({"message": "hi"})).unwrap();
        assert_eq!(params.level, Templated::Value(Level::Info));
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("log", json!({"level": "info"}), "", "missing parameter `message`");
        let problem = assert_rejected(
            "log",
            json!({"message": "x", "level": "eror"}),
            "/level",
            "must be one of `info`, `warn` or `error`",
        );
        assert_eq!(problem.help.as_deref(), Some("did you mean `error`?"));
        assert_rejected(
            "log",
            json!({"message": 5}),
            "/message",
            "must be a string, found an integer",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "log",
            &[
                json!({"message": "failover finished: <run.status>"}),
                json!({"message": "disk almost full", "level": "warn"}),
                json!({"message": "key ***", "level": "error"}),
                json!({"message": "x", "level": "info"}),
                json!({"level": "warn"}),
            ],
        ));
    }

    #[tokio::test]
    async fn logs_to_the_host() {
        let host = Arc::new(FakeHost::new());
        let result = run("log", &host, json!({"message": "disk almost full", "level": "warn"}))
            .await
            .unwrap();
        assert_eq!(result, json!({"message": "disk almost full"}));
        run("log", &host, json!({"message": "done"})).await.unwrap();
        assert_eq!(
            host.logs(),
            [
                ("warn".into(), "disk almost full".into()),
                ("info".into(), "done".into())
            ]
        );
    }
}
