//! `datetime` inputs: a time in RFC 3339 (`2026-12-03T08:00:00Z`,
//! `2026-12-03T09:00:00+01:00`), or a time relative to when the run starts
//! (`-24h`, `-30m`, `+1h`, `now`). A relative form is resolved once, when
//! the run starts; every form is then written in RFC 3339 in UTC, which is
//! what templates read and what the journal keeps, so a resumed run goes on
//! with the same time rather than a new `now`.

use crate::words::parse_duration;
use jiff::{SignedDuration, Timestamp};

/// A `datetime` input as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputTime {
    /// A time of its own, with its offset applied.
    At(Timestamp),
    /// The start of the run, moved by this much (`now` moves it by nothing).
    FromStart(SignedDuration),
}

/// What to write, for an error's help line.
pub const EXAMPLES: &str = "`2026-12-03T08:00:00Z`, `2026-12-03T09:00:00+01:00`, `-24h`, `+1h` or `now`";

impl InputTime {
    /// Reads a time as written on the command line, in the environment or
    /// as a default.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("now") {
            return Ok(Self::FromStart(SignedDuration::ZERO));
        }
        if let Some((negative, offset)) = trimmed
            .strip_prefix('-')
            .map(|rest| (true, rest))
            .or_else(|| trimmed.strip_prefix('+').map(|rest| (false, rest)))
        {
            let duration = parse_duration(offset)
                .map_err(|e| format!("`{trimmed}` is not a time relative to the start of the run: {e}"))?;
            let signed = SignedDuration::try_from(duration)
                .map_err(|_| format!("`{trimmed}` is too far from the start of the run"))?;
            return Ok(Self::FromStart(if negative { -signed } else { signed }));
        }
        if let Ok(at) = trimmed.parse::<Timestamp>() {
            return Ok(Self::At(at));
        }
        if trimmed.parse::<jiff::civil::DateTime>().is_ok() {
            return Err(format!(
                "`{trimmed}` has no offset, so the time it means is not known: add `Z` for UTC or an offset such as `+01:00`"
            ));
        }
        if parse_duration(trimmed).is_ok() {
            return Err(format!(
                "`{trimmed}` has no sign: write `-{trimmed}` for that long before the run starts, or `+{trimmed}` for after"
            ));
        }
        Err(format!("`{trimmed}` is not a datetime (write e.g. {EXAMPLES})"))
    }

    /// Whether the time depends on when the run starts.
    pub fn is_relative(self) -> bool {
        matches!(self, Self::FromStart(_))
    }

    /// The time meant, for a run that starts at `start`.
    pub fn resolve(self, start: Timestamp) -> Result<Timestamp, String> {
        match self {
            Self::At(at) => Ok(at),
            Self::FromStart(offset) => start
                .checked_add(offset)
                .map_err(|_| "the time is outside the calendar's range".to_string()),
        }
    }
}

/// A time as templates read it and the journal keeps it: RFC 3339 in UTC
/// (`2026-12-03T08:00:00Z`), with a fraction of a second only when it has one.
pub fn utc_text(at: Timestamp) -> String {
    at.to_string()
}

/// The time a run starts, to the second: what relative inputs count from.
pub fn start_now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn resolved(text: &str) -> Result<String, String> {
        let start = at("2026-12-03T08:00:00Z");
        InputTime::parse(text).and_then(|t| t.resolve(start)).map(utc_text)
    }

    #[test]
    fn rfc_3339_times_are_normalised_to_utc() {
        assert_eq!(resolved("2026-12-03T08:00:00Z").unwrap(), "2026-12-03T08:00:00Z");
        assert_eq!(resolved("2026-12-03T09:30:00+01:00").unwrap(), "2026-12-03T08:30:00Z");
        assert_eq!(resolved("2026-12-02T22:00:00-10:00").unwrap(), "2026-12-03T08:00:00Z");
        assert_eq!(
            resolved(" 2026-12-03T08:00:00.250Z ").unwrap(),
            "2026-12-03T08:00:00.25Z"
        );
        assert!(!InputTime::parse("2026-12-03T08:00:00Z").unwrap().is_relative());
    }

    #[test]
    fn relative_times_count_from_the_start_of_the_run() {
        assert_eq!(resolved("now").unwrap(), "2026-12-03T08:00:00Z");
        assert_eq!(resolved("NOW").unwrap(), "2026-12-03T08:00:00Z");
        assert_eq!(resolved("-24h").unwrap(), "2026-12-02T08:00:00Z");
        assert_eq!(resolved("-30m").unwrap(), "2026-12-03T07:30:00Z");
        assert_eq!(resolved("+1h").unwrap(), "2026-12-03T09:00:00Z");
        assert_eq!(resolved("-1h30m").unwrap(), "2026-12-03T06:30:00Z");
        assert_eq!(resolved("-2d").unwrap(), "2026-12-01T08:00:00Z");
        assert!(InputTime::parse("-24h").unwrap().is_relative());
    }

    #[test]
    fn what_is_not_a_time_says_what_to_write() {
        let no_offset = resolved("2026-12-03T08:00:00").unwrap_err();
        assert!(no_offset.contains("has no offset"), "{no_offset}");
        let no_sign = resolved("24h").unwrap_err();
        assert!(no_sign.contains("write `-24h`"), "{no_sign}");
        let bad_offset = resolved("-24x").unwrap_err();
        assert!(
            bad_offset.contains("not a time relative to the start of the run"),
            "{bad_offset}"
        );
        let nonsense = resolved("yesterday").unwrap_err();
        assert!(nonsense.contains("is not a datetime"), "{nonsense}");
        assert!(resolved("2026-13-03T08:00:00Z").is_err());
        assert!(resolved("").is_err());
        assert!(resolved("-9999999999d").is_err());
    }

    #[test]
    fn a_run_starts_on_a_whole_second() {
        assert_eq!(start_now().subsec_nanosecond(), 0);
    }
}
