//! Input values: reading them from text (`--input`, the environment) and
//! checking defaults against their declared type.

use crate::parse::raw::InputType;
use crate::validate::datetime::{InputTime, utc_text};
use crate::words::parse_duration;
use jiff::Timestamp;
use serde_json::Value as Json;

/// Reads an input from command-line or environment text.
pub fn parse_input_text(ty: InputType, values: &[String], text: &str) -> Result<Json, String> {
    match ty {
        InputType::String => Ok(Json::String(text.to_string())),
        InputType::Integer => text
            .trim()
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| format!("`{text}` is not an integer")),
        InputType::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("`{text}` is not a number")),
        InputType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Ok(Json::Bool(true)),
            "false" | "no" | "0" | "off" => Ok(Json::Bool(false)),
            _ => Err(format!("`{text}` is not a boolean (use `true` or `false`)")),
        },
        InputType::Duration => parse_duration(text)
            .map(|_| Json::String(text.trim().to_string()))
            .map_err(|e| format!("`{text}` is not a duration: {e}")),
        InputType::Url => check_url(text).map(|()| Json::String(text.trim_end_matches('/').to_string())),
        // Kept as written, relative or not, until the run starts (see `resolve_time`).
        InputType::Datetime => InputTime::parse(text).map(|_| Json::String(text.trim().to_string())),
        InputType::Enum => {
            if values.iter().any(|v| v == text) {
                Ok(Json::String(text.to_string()))
            } else {
                let names: Vec<&str> = values.iter().map(String::as_str).collect();
                Err(format!("`{text}` is not one of {}", crate::parse::raw::list(&names)))
            }
        }
    }
}

/// Checks a YAML default against the input's type.
pub fn check_default(ty: InputType, values: &[String], value: &Json) -> Result<Json, String> {
    match (ty, value) {
        (InputType::Integer, Json::Number(n)) if n.is_i64() => Ok(value.clone()),
        (InputType::Number, Json::Number(_)) => Ok(value.clone()),
        (InputType::Boolean, Json::Bool(_)) => Ok(value.clone()),
        (
            InputType::String | InputType::Duration | InputType::Url | InputType::Enum | InputType::Datetime,
            Json::String(s),
        ) => parse_input_text(ty, values, s),
        (InputType::String, Json::Number(n)) => Ok(Json::String(n.to_string())),
        _ => Err(format!(
            "the default is {}, but the input is of type `{}`",
            crate::step::json_kind(value),
            ty.name()
        )),
    }
}

/// A `datetime` value as a run reads it: resolved against the time the run
/// starts, in UTC; with the text as written when it was relative (`-24h`).
pub fn resolve_time(text: &str, start: Timestamp) -> Result<(Json, Option<String>), String> {
    let time = InputTime::parse(text)?;
    let at = time.resolve(start)?;
    let relative = time.is_relative().then(|| text.trim().to_string());
    Ok((Json::String(utc_text(at)), relative))
}

/// A URL must have a scheme and a host: `http://127.0.0.1:8080`.
pub fn check_url(text: &str) -> Result<(), String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "`{text}` is not a URL (expected e.g. `https://api.example.com`)"
        ));
    };
    let valid_scheme = !scheme.is_empty()
        && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid_scheme || rest.is_empty() || rest.starts_with('/') || text.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{text}` is not a URL (expected e.g. `https://api.example.com`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_text_follows_the_type() {
        assert_eq!(parse_input_text(InputType::Integer, &[], "42").unwrap(), json!(42));
        assert!(parse_input_text(InputType::Integer, &[], "4x").is_err());
        assert_eq!(parse_input_text(InputType::Boolean, &[], "yes").unwrap(), json!(true));
        assert_eq!(
            parse_input_text(InputType::Url, &[], "http://h:1/").unwrap(),
            json!("http://h:1")
        );
        assert!(parse_input_text(InputType::Url, &[], "h:1").is_err());
        let values = vec!["a".to_string(), "b".to_string()];
        assert!(
            parse_input_text(InputType::Enum, &values, "c")
                .unwrap_err()
                .contains("`a` or `b`")
        );
        assert!(parse_input_text(InputType::Duration, &[], "5").is_err());
        assert_eq!(
            parse_input_text(InputType::Datetime, &[], " -24h ").unwrap(),
            json!("-24h"),
            "a relative time waits for the run to start"
        );
        assert!(parse_input_text(InputType::Datetime, &[], "tomorrow").is_err());
    }

    #[test]
    fn times_resolve_against_the_start_of_the_run() {
        let start: Timestamp = "2026-12-03T08:00:00Z".parse().unwrap();
        assert_eq!(
            resolve_time("-24h", start).unwrap(),
            (json!("2026-12-02T08:00:00Z"), Some("-24h".to_string()))
        );
        assert_eq!(
            resolve_time("2026-12-03T09:00:00+01:00", start).unwrap(),
            (json!("2026-12-03T08:00:00Z"), None)
        );
    }

    #[test]
    fn the_schema_reads_urls_as_check_does() {
        let validator = jsonschema::validator_for(&json!({ "pattern": crate::parse::raw::URL_PATTERN })).unwrap();
        for text in [
            "http://127.0.0.1:8080",
            "https://api.example.com/x?y=1",
            "git+ssh://host/repo",
            "a://b://c",
            "h:1",
            "http://",
            "http:///x",
            "1http://x",
            "http://x y",
            " http://x",
            "://x",
            "ht_tp://x",
        ] {
            assert_eq!(validator.is_valid(&json!(text)), check_url(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn defaults_must_fit_the_type() {
        assert!(check_default(InputType::Integer, &[], &json!("x")).is_err());
        assert!(check_default(InputType::Boolean, &[], &json!(true)).is_ok());
        assert!(check_default(InputType::Url, &[], &json!("nope")).is_err());
        assert_eq!(
            check_default(InputType::Datetime, &[], &json!("-1h")).unwrap(),
            json!("-1h")
        );
        assert!(check_default(InputType::Datetime, &[], &json!(3)).is_err());
    }
}
