//! Stage "report": text as every format writes it. Durations and times
//! people read, values in one compact line, and text from steps cleaned of
//! terminal escapes and line breaks before a format escapes it its own way.

use serde_json::Value as Json;

/// A duration as people read it: `350ms`, `1.2s`, `2m 05s`, `1h 02m`.
pub(super) fn human_duration(ms: u64) -> String {
    let tenths = ms.saturating_add(50) / 100;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if tenths < 600 {
        return format!("{}.{}s", tenths / 10, tenths % 10);
    }
    let secs = ms.saturating_add(500) / 1000;
    if secs < 3600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        let mins = secs.saturating_add(30) / 60;
        format!("{}h {:02}m", mins / 60, mins % 60)
    }
}

/// The time of day of a journal time, `01:02:03.456`; other text as it is.
pub(super) fn clock(at: &str) -> String {
    crate::clock::time_of_day(at)
}

/// A value as one line of JSON.
pub(super) fn compact(value: &Json) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Text without terminal escape sequences (colours, cursor moves, titles),
/// which commands often put in their errors: dropping only the escape
/// character would leave `[31m` behind.
pub(super) fn without_escapes(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // Only CSI and OSC are taken out whole; any other escape loses
        // just its escape character.
        if chars.next_if_eq(&'[').is_some() {
            // Parameters and intermediates, then one final byte.
            chars.by_ref().find(|c| ('\u{40}'..='\u{7e}').contains(c));
        } else if chars.next_if_eq(&']').is_some() {
            // Up to BEL or ESC \ (string terminator).
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next_if_eq(&'\\');
                    break;
                }
            }
        }
    }
    out.into()
}

/// Drops control characters (terminal escapes, bells) that no reader wants,
/// keeping line breaks and tabs.
pub(super) fn printable(c: char) -> bool {
    !c.is_control() || matches!(c, '\n' | '\r' | '\t')
}

/// Text as one line: line breaks become ` ⏎ `, tabs spaces.
pub(super) fn one_line(text: &str) -> String {
    let text = without_escapes(text).replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    for c in text.trim_end_matches('\n').chars().filter(|c| printable(*c)) {
        match c {
            '\n' => out.push_str(" ⏎ "),
            '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::epoch_millis;
    use crate::report::fixtures::{START_MS, at};

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0ms"),
            (350, "350ms"),
            (999, "999ms"),
            (1_000, "1.0s"),
            (1_249, "1.2s"),
            (59_940, "59.9s"),
            (59_960, "1m 00s"),
            (125_400, "2m 05s"),
            (3_599_400, "59m 59s"),
            (3_599_600, "1h 00m"),
            (3_725_000, "1h 02m"),
        ];
        for (ms, text) in cases {
            assert_eq!(human_duration(ms), text, "{ms}ms");
        }
        assert_eq!(human_duration(u64::MAX), "5124095576030h 26m");
    }

    #[test]
    fn journal_times() {
        assert_eq!(epoch_millis("2026-11-22T01:02:03.456Z"), Some(START_MS));
        assert_eq!(epoch_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_millis("2024-02-29T23:59:59.5Z"), Some(1_709_251_199_500));
        assert_eq!(epoch_millis("2026-11-22 01:02:03Z"), None);
        assert_eq!(epoch_millis("2026-13-22T01:02:03Z"), None);
        assert_eq!(epoch_millis("2026-11-22T01:02:03+01:00"), None);
        assert_eq!(epoch_millis("99999999999999999-11-22T01:02:03Z"), None);
        assert_eq!(epoch_millis("2026-11-22T01:02:03.Z"), None);
        assert_eq!(clock("2026-11-22T01:02:03.456Z"), "01:02:03.456");
        assert_eq!(clock("2026-11-22T01:02:03Z"), "01:02:03.000");
        assert_eq!(clock("yesterday"), "yesterday");
        for offset in [0, 999, 86_400_000, 40_000_000_000] {
            assert_eq!(epoch_millis(&at(offset)), Some(START_MS + offset));
        }
    }
}
