//! The `sleep` step kind: pauses the run for a while.

use runbook_engine::kit::{Kind, Templated, Traits};
use runbook_engine::step::{StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_json::json;

use crate::HumanDuration;

/// Pauses for a fixed time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

/// Parameters of a `sleep` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepParams {
    /// How long to pause, such as `5s` or `2m`.
    pub duration: Templated<HumanDuration>,
}

impl Kind for Sleep {
    type Params = SleepParams;
    const NAME: &'static str = "sleep";
    const SUMMARY: &'static str = "Pause for a fixed time.";
    const TRAITS: Traits = Traits {
        read_only: true,
        ..Traits::NONE
    };

    fn describe(&self, params: &SleepParams) -> String {
        format!("wait {}", params.duration)
    }

    /// Result: `{"slept_ms": n}`, the duration asked for.
    async fn run(&self, params: SleepParams, cx: StepContext) -> Result<Json, StepError> {
        let duration = params.duration.get()?.0;
        cx.host.progress(&cx.step_id, "sleeping", Some(duration));
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(json!({"slept_ms": duration.as_millis()})),
            () = cx.cancel.cancelled() => Err(crate::cancelled()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run, run_with};
    use serde_json::json;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn good_params_pass() {
        assert_valid::<SleepParams>("sleep", json!({"duration": "5s"}));
        assert_valid::<SleepParams>("sleep", json!({"duration": "{{ inputs.pause }}"}));
        let params: SleepParams = serde_json::from_value(json!({"duration": "1m30s"})).unwrap();
        assert_eq!(params.duration, Templated::Value(HumanDuration::from_secs(90)));
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("sleep", json!({}), "", "missing parameter `duration`");
        assert_rejected("sleep", json!({"duration": "5"}), "/duration", "`5` has no unit");
        assert_rejected(
            "sleep",
            json!({"duration": 5}),
            "/duration",
            "must be a string, found an integer",
        );
        assert_rejected(
            "sleep",
            json!({"duration": "5s", "for": "x"}),
            "/for",
            "unknown parameter `for`",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "sleep",
            &[
                json!({"duration": "5s"}),
                json!({"duration": "120s"}),
                json!({"duration": "<inputs.pause>"}),
                json!({}),
            ],
        ));
    }

    #[tokio::test]
    async fn sleeps() {
        let host = Arc::new(FakeHost::new());
        let started = Instant::now();
        let result = run("sleep", &host, json!({"duration": "50ms"})).await.unwrap();
        assert_eq!(result, json!({"slept_ms": 50}));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn cancellation_ends_the_sleep_at_once() {
        let host = Arc::new(FakeHost::new());
        let cx = host.step_context(json!({"duration": "1h"}));
        let cancel = cx.cancel.clone();
        let started = Instant::now();
        let (outcome, ()) = tokio::join!(run_with("sleep", cx), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        });
        assert_eq!(outcome.unwrap_err().message, "cancelled");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
}
