//! The kit's adapter from a typed [`Kind`] to a [`StepKind`].

use super::*;
use crate::step::Registry;
use crate::words::HumanDuration;
use serde::Deserialize;
use serde_json::json;

/// Parameters of the test kind `nap`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NapParams {
    /// How long.
    duration: Templated<HumanDuration>,
    /// At most this long.
    #[serde(default)]
    limit: Option<Templated<HumanDuration>>,
    /// Who naps.
    #[serde(default)]
    who: Option<String>,
}

struct Nap;

impl Kind for Nap {
    type Params = NapParams;
    const NAME: &'static str = "nap";
    const SUMMARY: &'static str = "Nap.";
    const TRAITS: Traits = Traits {
        read_only: true,
        ..Traits::NONE
    };

    fn validate(&self, params: &NapParams) -> Vec<ParamProblem> {
        match (
            params.duration.known(),
            params.limit.as_ref().and_then(Templated::known),
        ) {
            (Some(duration), Some(limit)) if duration > limit => {
                vec![ParamProblem::new("/limit", "the nap is longer than its limit")]
            }
            _ => Vec::new(),
        }
    }

    fn describe(&self, params: &NapParams) -> String {
        format!(
            "nap {} ({})",
            params.duration,
            params.who.as_deref().unwrap_or("anyone")
        )
    }

    async fn run(&self, params: NapParams, _cx: StepContext) -> Result<Json, StepError> {
        Ok(json!({"ms": params.duration.get()?.0.as_millis()}))
    }
}

fn nap() -> std::sync::Arc<dyn StepKind> {
    let mut registry = Registry::new();
    registry.register(Nap);
    registry.get("nap").cloned().unwrap()
}

#[test]
fn the_kind_is_described_by_its_declarations() {
    let kind = nap();
    assert_eq!((kind.name(), kind.summary(), kind.read_only()), ("nap", "Nap.", true));
    let schema = kind.params_schema();
    assert_eq!(schema["properties"]["duration"]["type"], "string");
    assert_eq!(schema["properties"]["duration"]["examples"][0], "10s");
    assert!(schema["properties"]["limit"].get("default").is_none(), "{schema}");
    assert_eq!(schema["required"], json!(["duration"]));
}

#[test]
fn a_value_that_does_not_read_is_a_problem_at_its_place() {
    let kind = nap();
    let problems = kind.validate(&json!({"duration": "5"}));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].pointer, "/duration");
    assert_eq!(
        problems[0].message,
        "`duration` is not a duration: `5` has no unit; write e.g. `5s`"
    );
    assert_eq!(problems[0].help.as_deref(), Some(HumanDuration::HELP));
    assert!(kind.validate(&json!({"duration": "{{ inputs.t }}"})).is_empty());
    let problems = kind.validate(&json!({"duration": "2m", "limit": "1m"}));
    assert_eq!(problems[0].pointer, "/limit");
}

#[test]
fn describe_takes_what_a_plan_shows() {
    let kind = nap();
    assert_eq!(kind.describe(&json!({"duration": "90s"})), "nap 1m30s (anyone)");
    assert_eq!(
        kind.describe(&json!({"duration": "<inputs.t>", "who": "***"})),
        "nap <inputs.t> (***)"
    );
    assert_eq!(
        kind.describe(&json!({"duration": "often"})),
        "run `nap` (`duration` is not a duration: expected number at 0)"
    );
}

#[tokio::test]
async fn rendered_parameters_are_checked_again_before_the_run() {
    let kind = nap();
    let cx = |params| StepContext {
        run_id: "r".into(),
        step_id: "s".into(),
        attempt: 1,
        idempotency_key: "r/s".into(),
        params,
        cancel: Default::default(),
        kill_grace: std::time::Duration::from_secs(1),
        host: std::sync::Arc::new(NoHost),
    };
    assert_eq!(kind.run(cx(json!({"duration": "2s"}))).await, Ok(json!({"ms": 2000})));
    let error = kind
        .run(cx(json!({"duration": "2m", "limit": "1m"})))
        .await
        .unwrap_err();
    assert_eq!(error.message, "the nap is longer than its limit. Nothing was changed");
    let error = kind.run(cx(json!({"duration": "{{ x }}"}))).await.unwrap_err();
    assert!(error.message.contains("`duration` is not a duration"), "{error:?}");
}

struct NoHost;

impl crate::step::Host for NoHost {
    fn run_nested(&self, _: &str, _: Json, _: tokio_util::sync::CancellationToken) -> StepFuture<'_> {
        Box::pin(async { Err(StepError::new("none")) })
    }
    fn eval(&self, _: &str, _: &Json) -> Result<Json, String> {
        Err("none".into())
    }
    fn confirm<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async { Err("none".into()) })
    }
    fn output(&self, _: &str, _: crate::step::OutputStream, _: &str, _: bool) {}
    fn log(&self, _: &str, _: &str, _: &str) {}
}
