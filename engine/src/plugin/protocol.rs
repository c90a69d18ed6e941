//! The messages of the plugin protocol, version [`PROTOCOL`]: what a plugin
//! answers to `describe`, the request `run` reads, and the lines it prints.
//! The book's "Writing a step plugin" page is the reference.

use serde::{Deserialize, Serialize};

pub use crate::step::LogLevel as Level;
use serde_json::Value as Json;

/// The protocol version this engine speaks.
pub const PROTOCOL: u64 = 1;

/// The longest line a plugin may print.
pub const MAX_LINE: usize = 1 << 20;

/// What a plugin answers to `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeAnswer {
    pub protocol: u64,
    pub kinds: Vec<KindInfo>,
}

/// One kind a plugin provides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindInfo {
    pub name: String,
    pub summary: String,
    /// The JSON Schema of `with`; any mapping when absent.
    #[serde(default = "any_mapping")]
    pub params: Json,
    #[serde(default)]
    pub read_only: bool,
    /// Whether the plugin can undo what `run` did.
    #[serde(default)]
    pub undo: bool,
    /// A template over `params` saying what the step does, for `plan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub describe: Option<String>,
}

fn any_mapping() -> Json {
    serde_json::json!({"type": "object"})
}

/// What `run` reads on stdin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request<'a> {
    pub protocol: u64,
    pub kind: &'a str,
    pub params: &'a Json,
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub attempt: u32,
    pub idempotency_key: &'a str,
    pub undo: bool,
    /// With `undo`: the result of the run being undone.
    pub result: Option<&'a Json>,
}

/// One line a plugin prints while it runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Message {
    Log {
        level: Level,
        message: String,
    },
    Progress {
        message: String,
        #[serde(default)]
        done: Option<u64>,
        #[serde(default)]
        total: Option<u64>,
    },
    Ok {
        result: serde_json::Map<String, Json>,
        #[serde(default)]
        secrets: Vec<String>,
    },
    Error {
        message: String,
        #[serde(default = "yes")]
        retryable: bool,
        #[serde(default)]
        result: Option<serde_json::Map<String, Json>>,
        #[serde(default)]
        secrets: Vec<String>,
    },
}

fn yes() -> bool {
    true
}

/// Reads a describe answer, with the protocol version checked first so that
/// a plugin speaking another version is told so rather than that a field
/// is missing.
pub fn read_describe(text: &[u8]) -> Result<DescribeAnswer, String> {
    let value: Json = serde_json::from_slice(text)
        .map_err(|e| format!("answered `describe` with something that is not JSON ({e})"))?;
    match value.get("protocol") {
        Some(Json::Number(n)) if n.as_u64() == Some(PROTOCOL) => {}
        Some(other) => {
            return Err(format!(
                "speaks protocol version {other}; this version of runbook speaks protocol version {PROTOCOL}"
            ));
        }
        None => return Err("answered `describe` without a `protocol` version".into()),
    }
    let answer: DescribeAnswer =
        serde_json::from_value(value).map_err(|e| format!("answered `describe` wrongly: {e}"))?;
    for kind in &answer.kinds {
        if !is_name(&kind.name) {
            return Err(format!(
                "describes a kind named `{}`; a kind's name is lower-case letters, digits and `_`, starting with a letter",
                kind.name
            ));
        }
        if !kind.params.is_object() {
            return Err(format!(
                "gives kind `{}` a `params` schema that is not an object",
                kind.name
            ));
        }
    }
    Ok(answer)
}

/// Whether `name` is a plugin's or a kind's name: `[a-z][a-z0-9_]*`.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Reads one line a plugin printed.
pub fn read_message(line: &[u8]) -> Result<Message, String> {
    serde_json::from_slice(line).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describe_answers_are_checked() {
        let good = json!({"protocol": 1, "kinds": [{"name": "set", "summary": "Set.", "undo": true}]});
        let answer = read_describe(good.to_string().as_bytes()).unwrap();
        assert_eq!(answer.kinds[0].params, json!({"type": "object"}));
        assert!(answer.kinds[0].undo && !answer.kinds[0].read_only);
        let other = read_describe(br#"{"protocol": 2, "kinds": []}"#).unwrap_err();
        assert_eq!(
            other,
            "speaks protocol version 2; this version of runbook speaks protocol version 1"
        );
        assert!(read_describe(b"hello").unwrap_err().contains("not JSON"));
        let bad_name = json!({"protocol": 1, "kinds": [{"name": "Set", "summary": "x"}]});
        assert!(
            read_describe(bad_name.to_string().as_bytes())
                .unwrap_err()
                .contains("named `Set`")
        );
    }

    #[test]
    fn messages_read_by_type() {
        assert_eq!(
            read_message(br#"{"type":"log","level":"warn","message":"m"}"#),
            Ok(Message::Log {
                level: Level::Warn,
                message: "m".into()
            })
        );
        let error = read_message(br#"{"type":"error","message":"no"}"#).unwrap();
        assert!(matches!(
            error,
            Message::Error {
                retryable: true,
                result: None,
                ..
            }
        ));
        assert!(read_message(br#"{"type":"shout"}"#).is_err());
        assert!(read_message(br#"{"type":"ok","result":[1]}"#).is_err());
    }
}
