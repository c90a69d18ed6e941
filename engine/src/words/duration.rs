//! Durations as people write them (`10s`, `1m30s`, `500ms`): one type for
//! the format's `timeout` and `retry.delay` and for every step kind's
//! duration parameters, with one schema.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The longest duration a runbook may give (a year): longer is a mistake,
/// and would overflow the clock's arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses `500ms`, `30s`, `5m`, `1h30m`, `2d`, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("it is empty".into());
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{trimmed}` has no unit; write e.g. `{trimmed}s`"));
    }
    let too_long = || format!("`{trimmed}` is longer than a year, the longest duration a runbook may give");
    match humantime::parse_duration(trimmed) {
        Ok(duration) if duration > MAX_DURATION => Err(too_long()),
        Ok(duration) => Ok(duration),
        Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a time limit: a duration that is not zero.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!(
            "a time limit of `{}` would stop everything at once; give a duration such as `30s`",
            text.trim()
        )),
        duration => Ok(duration),
    }
}

/// Formats a duration the way users write it: `1m30s`, `500ms`.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration)
        .to_string()
        .split(' ')
        .map(|part| part.replace("days", "d").replace("day", "d"))
        .collect()
}

/// A duration written as text: a number and a unit, such as `10s`, `1m30s`
/// or `500ms`. Reads with [`parse_duration`], shows with [`format_duration`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// What to write, for the help line of a duration that did not read.
    pub const HELP: &'static str = "write a number and a unit, such as `10s`, `1m30s` or `500ms`";

    /// What a text that does not read as a duration is said not to be.
    pub const NOT_ONE: &'static str = " is not a duration: ";

    /// What every duration [`parse_duration`] reads looks like, for the
    /// schema: a number first, then numbers, units (letters), dots and
    /// spaces, ending with a unit. Which units exist, and the bound of a
    /// year, only the parser knows.
    pub const PATTERN: &'static str = r"^\s*[0-9][0-9.\sA-Za-zµ]*[A-Za-zµ]\s*$";

    /// A duration whose every number is zero (`0s`, `0m 0s`), which
    /// [`parse_timeout`] refuses as a time limit.
    pub const ZERO_PATTERN: &'static str = r"^\s*(0[0.\s]*[A-Za-zµ]+\s*)+$";

    /// The schema of a time limit: a duration that is not zero.
    pub fn time_limit_schema() -> serde_json::Value {
        serde_json::json!({
            "description": "A time limit: a duration that is not zero, such as `30s` or `5m`.",
            "type": "string",
            "pattern": Self::PATTERN,
            "not": { "pattern": Self::ZERO_PATTERN },
            "examples": ["30s", "5m", "1h30m"]
        })
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
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

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text).map(Self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        parse_duration(&text)
            .map(Self)
            .map_err(|e| serde::de::Error::custom(format!("`{text}`{}{e}", Self::NOT_ONE)))
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
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: a number and a unit, such as `10s`, `1m30s` or `500ms`.",
            "type": "string",
            "pattern": Self::PATTERN,
            "examples": ["10s", "1m30s", "500ms"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(
            parse_duration("18446744073709551615s")
                .unwrap_err()
                .contains("longer than a year")
        );
        assert!(
            parse_duration("9300000000000000000s")
                .unwrap_err()
                .contains("longer than a year")
        );
        assert!(parse_duration("367d").unwrap_err().contains("longer than a year"));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(
            parse_timeout("0s")
                .unwrap_err()
                .contains("would stop everything at once")
        );
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(14 * 86_400)), "14d");
    }

    /// The patterns of the schema agree with the parser: every text it
    /// reads matches, and what it refuses for its shape does not.
    #[test]
    fn the_schema_patterns_agree_with_the_parser() {
        // As a JSON Schema validator reads them.
        let matcher = |pattern: &str| {
            let validator = jsonschema::validator_for(&json!({ "pattern": pattern })).unwrap();
            move |text: &str| validator.is_valid(&json!(text))
        };
        let (shape, zero) = (matcher(HumanDuration::PATTERN), matcher(HumanDuration::ZERO_PATTERN));
        for text in [
            "10s", "1m30s", "500ms", " 2h ", "1.5h", "1h 30m", "2 days", "3µs", "1w", "0s", "0m 0s", "1 0s",
        ] {
            assert!(parse_duration(text).is_ok(), "{text}");
            assert!(shape(text), "{text} reads but does not match");
            assert_eq!(zero(text), parse_timeout(text).is_err(), "{text}");
        }
        for text in [
            "",
            "30",
            "soon",
            "s30",
            "1m30",
            "10 s ,",
            "-5s",
            "1h-2m",
            "{{ inputs.t }}",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
            assert!(!shape(text), "{text} matches but does not read");
        }
        assert!(zero("0.0s") && !zero("0.5s") && !zero("0s 1ms"));
    }

    #[test]
    fn reads_and_writes_human_text() {
        let d: HumanDuration = serde_json::from_value(json!("1m30s")).unwrap();
        assert_eq!(d, HumanDuration::from_secs(90));
        assert_eq!(serde_json::to_value(d).unwrap(), json!("1m30s"));
        let error = serde_json::from_value::<HumanDuration>(json!("10")).unwrap_err();
        assert!(error.to_string().contains("`10` is not a duration"), "{error}");
    }
}
