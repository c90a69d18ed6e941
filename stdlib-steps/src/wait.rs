//! The `wait` step kind: runs a probe step again and again until an
//! expression over its result holds, or gives up.

use runbook_engine::step::{ParamProblem, StepKind};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::HumanDuration;
use crate::words::{code, field};

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
    pub interval: HumanDuration,

    /// How long to keep trying before the step fails.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
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

fn default_interval() -> HumanDuration {
    DEFAULT_INTERVAL
}

fn default_timeout() -> HumanDuration {
    DEFAULT_TIMEOUT
}

impl StepKind for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }

    fn summary(&self) -> &'static str {
        "Run a probe step until a condition on its result holds."
    }

    fn params_schema(&self) -> Json {
        crate::schema_of::<WaitParams>()
    }

    fn expression_params(&self) -> &'static [&'static str] {
        &["/until"]
    }

    fn nested_steps(&self) -> &'static [&'static str] {
        &["/probe"]
    }

    fn read_only(&self) -> bool {
        true
    }

    fn validate(&self, params: &Json) -> Vec<ParamProblem> {
        let mut problems: Vec<ParamProblem> = ["interval", "timeout"]
            .into_iter()
            .filter_map(|name| HumanDuration::check(params, name))
            .collect();
        if let Some(interval) = params.get("interval").and_then(Json::as_str)
            && runbook_engine::parse::raw::parse_duration(interval).is_ok_and(|d| d.is_zero())
        {
            problems.push(
                ParamProblem::new("/interval", "`interval` is zero").with_help(
                    "pause between attempts, such as `interval: 1s`, so the probe does not run in a busy loop",
                ),
            );
        }
        problems
    }

    fn describe(&self, params: &Json) -> String {
        let interval = HumanDuration::describe(params, "interval", DEFAULT_INTERVAL);
        let timeout = HumanDuration::describe(params, "timeout", DEFAULT_TIMEOUT);
        let until = field(params, "until").map_or_else(|| "(no condition given)".to_string(), |until| code(&until));
        format!("poll every {interval} until {until} (give up after {timeout})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{assert_rejected, assert_valid, describe_all};
    use serde_json::json;

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
        assert_eq!(params.interval, HumanDuration::from_secs(2));
        assert_eq!(params.timeout, HumanDuration::from_secs(60));
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
}
