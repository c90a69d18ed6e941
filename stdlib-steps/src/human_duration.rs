//! `HumanDuration`: a duration parameter written the way people write it
//! (`10s`, `1m30s`, `500ms`), shared by the kinds that wait or time out.

use runbook_engine::parse::raw::{format_duration, parse_duration};
use runbook_engine::step::ParamProblem;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::is_template;

/// A duration written as text: a number and a unit, such as `10s`, `1m30s`
/// or `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// Checks the duration text at `/name` in `params`, if it is a string and
    /// not a template. Other types are the schema's business.
    pub(crate) fn check(params: &Json, name: &str) -> Option<ParamProblem> {
        let text = params.get(name)?.as_str()?;
        if is_template(text) {
            return None;
        }
        let error = if name == "timeout" {
            runbook_engine::parse::raw::parse_timeout(text).err()?
        } else {
            parse_duration(text).err()?
        };
        Some(
            ParamProblem::new(format!("/{name}"), format!("`{name}` is not a duration: {error}"))
                .with_help("write a number and a unit, such as `10s`, `1m30s` or `500ms`"),
        )
    }

    /// The duration text at `/name` in `params` as the user would write it:
    /// normalized when it parses (`60s` shows as `1m`), as given otherwise
    /// (placeholders such as `<inputs.timeout>`), `default` when absent.
    pub(crate) fn describe(params: &Json, name: &str, default: HumanDuration) -> String {
        match params.get(name) {
            None | Some(Json::Null) => default.to_string(),
            Some(Json::String(text)) => parse_duration(text).map_or_else(|_| text.clone(), format_duration),
            Some(other) => crate::words::scalar(other).unwrap_or_else(|| other.to_string()),
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl From<HumanDuration> for Duration {
    fn from(duration: HumanDuration) -> Self {
        duration.0
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        parse_duration(&text)
            .map(Self)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration: {e}")))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for HumanDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "examples": ["10s", "1m30s", "500ms"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_human_text() {
        let d: HumanDuration = serde_json::from_value(json!("1m30s")).unwrap();
        assert_eq!(d, HumanDuration::from_secs(90));
        assert_eq!(serde_json::to_value(d).unwrap(), json!("1m30s"));
        let error = serde_json::from_value::<HumanDuration>(json!("10")).unwrap_err();
        assert!(error.to_string().contains("`10` is not a duration"), "{error}");
    }

    #[test]
    fn check_skips_templates_and_other_types() {
        assert_eq!(HumanDuration::check(&json!({"t": "{{ inputs.t }}"}), "t"), None);
        assert_eq!(HumanDuration::check(&json!({"t": 5}), "t"), None);
        assert_eq!(HumanDuration::check(&json!({"t": "5s"}), "t"), None);
        let problem = HumanDuration::check(&json!({"t": "soon"}), "t").unwrap();
        assert_eq!(problem.pointer, "/t");
        assert!(problem.message.starts_with("`t` is not a duration: "), "{problem:?}");
    }
}
