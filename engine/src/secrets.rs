//! Secret values and their masking. This is the bottom of the engine: it
//! knows nothing of runs or events, only text.
//!
//! A [`Redactor`] holds every value that must never be shown: the declared
//! secrets, each line of a multi-line one, the encodings the engine itself
//! produces of them (URL, JSON string, base64), and the values derived from
//! them that the run finds on its way (`{{ secrets.key | upper }}`). It masks
//! them all in one pass over a text (Aho-Corasick), so masking every event
//! costs little. Text is masked where it enters an event, before anything
//! truncates, wraps or encodes it; everything downstream may assume it holds
//! no secret.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::RwLock;

/// What a masked value is shown as.
pub const MASK: &str = "***";

/// Whether a value holds a masked secret somewhere in its strings.
pub fn holds_mask(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains(MASK),
        serde_json::Value::Array(items) => items.iter().any(holds_mask),
        serde_json::Value::Object(map) => map.values().any(holds_mask),
        _ => false,
    }
}

/// Secrets shorter than this cannot be masked without garbling every line
/// they happen to occur in: a run that declares one is refused, and a
/// shorter derived value is masked only where the engine prints it itself.
pub const MIN_LEN: usize = 4;

/// Masks secret values, their encodings and derived values in any text.
#[derive(Debug, Default)]
pub struct Redactor {
    state: RwLock<Patterns>,
}

#[derive(Debug, Default)]
struct Patterns {
    /// Every form of every value, as matched.
    forms: BTreeSet<String>,
    /// The values added (not their forms), so a value is processed once.
    values: BTreeSet<String>,
    matcher: Option<AhoCorasick>,
    longest: usize,
}

impl Patterns {
    fn rebuild(&mut self) {
        self.longest = self.forms.iter().map(String::len).max().unwrap_or(0);
        self.matcher = if self.forms.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&self.forms)
                .ok()
        };
    }
}

impl Redactor {
    pub fn new<I: IntoIterator<Item = String>>(values: I) -> Self {
        let redactor = Self::default();
        redactor.add_all(values);
        redactor
    }

    /// Adds values to mask from now on (with their forms). Values shorter
    /// than [`MIN_LEN`] are not added.
    pub fn add_all<I: IntoIterator<Item = String>>(&self, values: I) {
        let Ok(mut state) = self.state.write() else { return };
        let mut changed = false;
        for value in values {
            if value.trim().len() < MIN_LEN || state.values.contains(&value) {
                continue;
            }
            for form in forms(&value) {
                changed |= state.forms.insert(form);
            }
            state.values.insert(value);
        }
        if changed {
            state.rebuild();
        }
    }

    /// Adds one value to mask from now on.
    pub fn add(&self, value: &str) {
        let known = self.state.read().is_ok_and(|s| s.values.contains(value));
        if !known {
            self.add_all([value.to_string()]);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.state.read().map_or(true, |s| s.forms.is_empty())
    }

    /// The length of the longest form, in bytes: a piece of a stream must
    /// keep this much minus one back to see a secret cut in two.
    pub fn longest(&self) -> usize {
        self.state.read().map_or(0, |s| s.longest)
    }

    /// The text with every secret form replaced by [`MASK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Ok(state) = self.state.read() else {
            // A poisoned lock: show nothing rather than risk a secret.
            return Cow::Borrowed(MASK);
        };
        let Some(matcher) = &state.matcher else {
            return Cow::Borrowed(text);
        };
        if !matcher.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut masked = String::with_capacity(text.len());
        matcher.replace_all_with(text, &mut masked, |_, _, out| {
            out.push_str(MASK);
            true
        });
        Cow::Owned(masked)
    }

    /// Masks a string in place.
    pub fn redact_string(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.redact(text) {
            *text = masked;
        }
    }

    /// Masks every string (and key) of a JSON value in place.
    pub fn redact_json(&self, value: &mut Json) {
        if self.is_empty() {
            return;
        }
        match value {
            Json::String(s) => self.redact_string(s),
            Json::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Json::Object(map) => {
                let masked_keys = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                if masked_keys {
                    let old = std::mem::take(map);
                    for (key, mut v) in old {
                        self.redact_json(&mut v);
                        map.insert(self.redact(&key).into_owned(), v);
                    }
                } else {
                    map.values_mut().for_each(|v| self.redact_json(v));
                }
            }
            _ => {}
        }
    }

    /// Whether a text holds a secret form.
    pub fn reveals(&self, text: &str) -> bool {
        self.state
            .read()
            .is_ok_and(|s| s.matcher.as_ref().is_some_and(|m| m.is_match(text)))
    }

    /// Where secret forms start and end in a text, as byte ranges.
    fn matches(&self, text: &str) -> Vec<(usize, usize)> {
        let Ok(state) = self.state.read() else {
            return Vec::new();
        };
        state
            .matcher
            .as_ref()
            .map(|m| m.find_iter(text).map(|found| (found.start(), found.end())).collect())
            .unwrap_or_default()
    }
}

/// Every form a value is masked in: itself, trimmed, each line of it, and
/// the encodings the engine produces (URL query and path, JSON string,
/// base64 in each alignment).
fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    let trimmed = value.trim();
    out.push(trimmed.to_string());
    if trimmed.contains('\n') {
        out.extend(
            trimmed
                .lines()
                .map(|line| line.trim().to_string())
                .filter(|line| line.len() >= MIN_LEN),
        );
        out.push(trimmed.replace("\r\n", "\n").replace('\n', "\r\n"));
    }
    for text in [value, trimmed] {
        // JSON string (the body of an `http` step's `json`).
        if let Ok(json) = serde_json::to_string(text) {
            out.push(json[1..json.len() - 1].to_string());
        }
        // URL: a query value (`+` for spaces) and a percent-encoded part.
        out.push(form_urlencoded::byte_serialize(text.as_bytes()).collect());
        out.push(percent_encoding::utf8_percent_encode(text, URL_PART).to_string());
        out.push(percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string());
        out.extend(base64_forms(text.as_bytes()));
        // Shell: inside `'…'` and `"…"`, as the engine quotes a value there.
        out.push(text.replace('\'', r"'\''"));
        let mut escaped = String::with_capacity(text.len());
        for c in text.chars() {
            if matches!(c, '\\' | '$' | '`' | '"') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        out.push(escaped);
    }
    out.retain(|form| form.len() >= MIN_LEN);
    out.sort();
    out.dedup();
    out
}

/// What a URL part keeps as it is: RFC 3986's unreserved characters.
const URL_PART: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The base64 of a value on its own (padded or not), and, for a value
/// inside a longer encoded text, the part of its encoding that does not
/// depend on its neighbours, in each of the three alignments; both the
/// standard and the URL-safe alphabet.
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut out = Vec::new();
    for engine in [&STANDARD, &URL_SAFE] {
        out.push(engine.encode(bytes));
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(bytes));
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            // Whole groups of three bytes only, and not the first when it
            // holds a neighbour's bytes.
            let start = if offset == 0 { 0 } else { 4 };
            let end = shifted.len() / 3 * 4;
            if end > start + 5 {
                out.push(encoded[start..end].to_string());
            }
        }
    }
    out
}

/// Masks a stream of output given in pieces: a secret cut in two by a
/// piece boundary is still masked. Pieces that end a line are masked and
/// passed on whole; a piece that does not (a line too long to hold whole)
/// is passed on but for its last bytes, which might begin a secret that
/// the next piece ends.
#[derive(Debug, Default)]
pub struct StreamMasker {
    carry: String,
}

impl StreamMasker {
    /// The text to show for this piece, if any yet.
    pub fn push(&mut self, redactor: &Redactor, piece: &str, line_end: bool) -> Option<String> {
        self.carry.push_str(piece);
        if line_end {
            let text = std::mem::take(&mut self.carry);
            return Some(redactor.redact(&text).into_owned());
        }
        let keep = redactor.longest().saturating_sub(1);
        if self.carry.len() <= keep {
            return None;
        }
        let mut cut = floor_char_boundary(&self.carry, self.carry.len() - keep);
        // A secret that starts before the cut is whole in the text: cut after it.
        for (start, end) in redactor.matches(&self.carry) {
            if start < cut && end > cut {
                cut = end;
            }
        }
        if cut == 0 {
            return None;
        }
        let rest = self.carry.split_off(cut);
        let shown = redactor.redact(&self.carry).into_owned();
        self.carry = rest;
        Some(shown)
    }

    /// Whatever is held back, masked (the stream ended mid-line).
    pub fn flush(&mut self, redactor: &Redactor) -> Option<String> {
        if self.carry.is_empty() {
            return None;
        }
        let text = std::mem::take(&mut self.carry);
        Some(redactor.redact(&text).into_owned())
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A stand-in for a secret: the same length and shape, every letter and
/// digit changed. Rendering a template once with the secrets and once with
/// their stand-ins tells which printed values come from a secret: those
/// that differ.
pub fn stand_in(secret: &str) -> String {
    let alphanumeric = secret.chars().any(|c| c.is_ascii_alphanumeric());
    secret
        .chars()
        .map(|c| match c {
            'a'..='z' => (b'a' + (c as u8 - b'a' + 13) % 26) as char,
            'A'..='Z' => (b'A' + (c as u8 - b'A' + 13) % 26) as char,
            '0'..='9' => (b'0' + (c as u8 - b'0' + 5) % 10) as char,
            _ if !alphanumeric => 'x',
            other if other.is_ascii() => other,
            _ => 'x',
        })
        .collect()
}

/// A value with every string in it replaced by its [`stand_in`].
pub fn stand_in_json(value: &Json) -> Json {
    match value {
        Json::String(s) => Json::String(stand_in(s)),
        Json::Array(items) => Json::Array(items.iter().map(stand_in_json).collect()),
        Json::Object(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), stand_in_json(v))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_inside_longer_strings_and_keys() {
        let redactor = Redactor::new(["s3cr3t".to_string(), "s3cr3t-long".to_string(), String::new()]);
        assert_eq!(redactor.redact("token=s3cr3t-long and s3cr3t"), "token=*** and ***");
        let mut value = json!({"headers": {"x": "Bearer s3cr3t"}, "s3cr3t": [1, "a s3cr3t b"]});
        redactor.redact_json(&mut value);
        assert_eq!(value, json!({"headers": {"x": "Bearer ***"}, "***": [1, "a *** b"]}));
    }

    #[test]
    fn encoded_forms_are_masked() {
        use base64::engine::general_purpose::STANDARD;
        let secret = "p@ss word/\"é+&=1";
        let redactor = Redactor::new([secret.to_string()]);
        let query: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let path = percent_encoding::utf8_percent_encode(secret, URL_PART).to_string();
        let json = serde_json::to_string(secret).unwrap();
        for shown in [
            format!("https://h/x?k={query}&a=1"),
            format!("https://h/{path}/y"),
            format!("{{\"k\":{json}}}"),
            format!("Basic {}", STANDARD.encode(secret)),
        ] {
            let masked = redactor.redact(&shown);
            assert!(masked.contains(MASK), "{shown} → {masked}");
            assert!(!masked.contains(&query) && !masked.contains(&path), "{masked}");
        }
        // Inside a longer encoded text, in each alignment, only a few
        // characters at each edge (which depend on the neighbours) remain.
        for prefix in ["", "u:", "us:", "use:"] {
            let encoded = STANDARD.encode(format!("{prefix}{secret}!"));
            let masked = redactor.redact(&encoded);
            assert!(masked.contains(MASK), "{prefix}: {encoded} → {masked}");
            assert!(masked.len() < 20, "{prefix}: {masked}");
        }
    }

    #[test]
    fn shell_quoted_forms_are_masked() {
        let redactor = Redactor::new([r#"it's "$ecret""#.to_string()]);
        assert_eq!(redactor.redact(r#"echo 'it'\''s "$ecret"'"#), "echo '***'");
        assert_eq!(redactor.redact(r#"echo "it's \"\$ecret\"""#), r#"echo "***""#);
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_masked() {
        let pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END KEY-----\n";
        let redactor = Redactor::new([pem.to_string()]);
        assert_eq!(redactor.redact("line: BKcwggSjAgEAAoIBAQC7"), "line: ***");
        assert_eq!(redactor.redact(pem), MASK);
    }

    #[test]
    fn short_values_are_not_masked() {
        let redactor = Redactor::new(["abc".to_string()]);
        assert!(redactor.is_empty());
        assert_eq!(redactor.redact("abcdef"), "abcdef");
    }

    #[test]
    fn a_secret_cut_between_pieces_of_a_stream_is_masked() {
        let secret = "hunter2secretX";
        let redactor = Redactor::new([secret.to_string()]);
        let text = format!("{}{secret}{}", "a".repeat(100), "b".repeat(50));
        for cut in 0..text.len() {
            let mut stream = StreamMasker::default();
            let mut shown = String::new();
            shown.extend(stream.push(&redactor, &text[..cut], false));
            shown.extend(stream.push(&redactor, &text[cut..], true));
            assert_eq!(
                shown,
                format!("{}***{}", "a".repeat(100), "b".repeat(50)),
                "cut at {cut}"
            );
        }
        // Many small pieces, the last one not ending the line.
        let mut stream = StreamMasker::default();
        let mut shown = String::new();
        for chunk in text.as_bytes().chunks(3) {
            shown.extend(stream.push(&redactor, std::str::from_utf8(chunk).unwrap(), false));
        }
        shown.extend(stream.flush(&redactor));
        assert!(!shown.contains("hunter") && shown.contains(MASK), "{shown}");
    }

    #[test]
    fn derived_values_are_masked_once_added() {
        let redactor = Redactor::new(["hunter2secretX".to_string()]);
        redactor.add("HUNTER2SECRETX");
        assert_eq!(redactor.redact("x HUNTER2SECRETX"), "x ***");
    }

    #[test]
    fn stand_ins_differ_in_every_letter_and_digit() {
        assert_eq!(stand_in("abz-AZ09"), "nom-NM54");
        assert_eq!(stand_in("!!!!"), "xxxx");
        let secret = "hunter2";
        assert!(secret.chars().zip(stand_in(secret).chars()).all(|(a, b)| a != b));
    }
}
