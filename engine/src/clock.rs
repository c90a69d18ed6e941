//! Times as a run records them: UTC, RFC 3339, to the millisecond
//! (`2026-11-22T01:02:03.456Z`). The calendar is jiff's, not ours.

use jiff::Timestamp;

/// The time now, as `2026-11-22T01:02:03.456Z`.
pub fn now() -> String {
    millis_text(Timestamp::now())
}

/// Seconds since the epoch as `2026-11-22T01:02:03Z`.
pub fn seconds_text(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| Timestamp::from_second(secs).ok())
        .map_or_else(
            || "9999-12-31T23:59:59Z".to_string(),
            |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

fn millis_text(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Milliseconds since the epoch of a recorded time (`…T01:02:03.456Z`, the
/// fraction optional); `None` for any other text.
pub fn epoch_millis(at: &str) -> Option<u64> {
    // Only the form a run writes: a `T`, and UTC written `Z`.
    let (date, _) = at.strip_suffix('Z')?.split_once('T')?;
    if date.len() != 10 {
        return None;
    }
    let parsed: Timestamp = at.parse().ok()?;
    u64::try_from(parsed.as_millisecond()).ok()
}

/// The time of day of a recorded time, `01:02:03.456`; other text as it is.
pub fn time_of_day(at: &str) -> String {
    match at.parse::<Timestamp>() {
        Ok(parsed) if epoch_millis(at).is_some() => parsed.strftime("%H:%M:%S%.3f").to_string(),
        _ => at.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_millisecond() {
        assert_eq!(seconds_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(seconds_text(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(
            millis_text(Timestamp::from_millisecond(1_709_251_199_500).unwrap()),
            "2024-02-29T23:59:59.500Z"
        );
        assert_eq!(epoch_millis("2024-02-29T23:59:59.5Z"), Some(1_709_251_199_500));
        assert_eq!(epoch_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_millis("2026-11-22 01:02:03Z"), None);
        assert_eq!(epoch_millis("2026-13-22T01:02:03Z"), None);
        assert_eq!(epoch_millis("2026-11-22T01:02:03+01:00"), None);
        assert_eq!(epoch_millis("99999999999999999-11-22T01:02:03Z"), None);
        assert_eq!(time_of_day("2026-11-22T01:02:03.456Z"), "01:02:03.456");
        assert_eq!(time_of_day("soon"), "soon");
        let now = now();
        assert!(epoch_millis(&now).is_some(), "{now}");
    }
}
