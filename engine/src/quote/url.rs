//! Values in a URL, encoded for the part of the URL they land in.
//!
//! The author's text is followed part by part (scheme, authority, path,
//! query, fragment). A value that starts the URL is its base, chosen by
//! whoever gives it (`{{ inputs.api_url }}/health`), and goes in as it is;
//! every other value is percent-encoded (all but the unreserved characters
//! `A-Z a-z 0-9 - . _ ~`), so that it cannot add a host, a path segment, a
//! query parameter or a fragment, and a path segment that a value makes `.`
//! or `..` is refused, so that it cannot climb out of the path.

use crate::quote::Piece;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Renders a URL from its pieces, each unsafe value encoded for its part;
/// `safe` values go in as they are. `Err` says why a value cannot be placed.
pub fn url(pieces: &[Piece]) -> Result<String, String> {
    let mut url = UrlText::default();
    for piece in pieces {
        match piece {
            Piece::Literal(text) | Piece::Value { text, safe: true } => url.text(text, false)?,
            Piece::Value { text, safe: false } => url.value(text)?,
        }
    }
    url.finish()?;
    Ok(url.out)
}

/// The part of a URL the text has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Part {
    /// Nothing yet but values, which are the base URL.
    #[default]
    Start,
    /// Written text before `://`.
    Scheme,
    Authority,
    Path,
    Query,
    Fragment,
}

#[derive(Debug, Default)]
struct UrlText {
    out: String,
    part: Part,
    /// Where the authority or the current path segment starts in `out`.
    start: usize,
    /// Whether a value was encoded into the authority or the current path segment.
    has_value: bool,
}

impl UrlText {
    /// Reads text that goes in as it is: the author's, a base URL, a `safe` value.
    fn text(&mut self, text: &str, base: bool) -> Result<(), String> {
        for c in text.chars() {
            match (self.part, c) {
                (Part::Start | Part::Scheme, _) => {
                    self.out.push(c);
                    if self.out.ends_with("://") {
                        self.enter(Part::Authority);
                    } else if !base {
                        self.part = Part::Scheme;
                    }
                    continue;
                }
                (Part::Authority | Part::Path, '/' | '\\') => {
                    self.close()?;
                    self.out.push(c);
                    self.enter(Part::Path);
                    continue;
                }
                (Part::Authority | Part::Path, '?') => {
                    self.close()?;
                    self.part = Part::Query;
                }
                (Part::Authority | Part::Path | Part::Query, '#') => {
                    self.close()?;
                    self.part = Part::Fragment;
                }
                _ => {}
            }
            self.out.push(c);
        }
        Ok(())
    }

    /// Places a value: the base URL at the start, else encoded for its part.
    fn value(&mut self, text: &str) -> Result<(), String> {
        match self.part {
            Part::Start => {
                if text
                    .chars()
                    .any(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
                {
                    return Err(
                        "the value that starts the URL, its base, holds a `?`, a `#` or a space: \
                                give a base such as `https://api.example.com/v1`, and the query in `query:`"
                            .into(),
                    );
                }
                self.text(text, true)
            }
            Part::Scheme => Err(
                "a value stands before `://`, in the URL's scheme: write the scheme and `://` \
                                 in the template, or start the URL with the value, as its base"
                    .into(),
            ),
            part => {
                self.out.extend(utf8_percent_encode(text, COMPONENT));
                if matches!(part, Part::Authority | Part::Path) {
                    self.has_value = true;
                }
                Ok(())
            }
        }
    }

    fn enter(&mut self, part: Part) {
        self.part = part;
        self.start = self.out.len();
        self.has_value = false;
    }

    /// Checks the authority or path segment that ends here.
    fn close(&mut self) -> Result<(), String> {
        let text = &self.out[self.start..];
        match self.part {
            Part::Authority if self.has_value && text.is_empty() => {
                Err("the URL's host is empty: the value that should name it is empty".into())
            }
            Part::Path if self.has_value && is_dot_segment(text) => Err(format!(
                "a value makes the path segment `{text}`, which would climb out of the path: \
                 give a name, not `.` or `..`"
            )),
            _ => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        self.close()
    }
}

/// Whether a path segment is `.` or `..`, also written with `%2e`.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Piece {
        Piece::Value {
            text: text.into(),
            safe: false,
        }
    }

    fn lit(text: &str) -> Piece {
        Piece::Literal(text.into())
    }

    #[test]
    fn a_value_at_the_start_is_the_base_url() {
        let pieces = [value("https://api.example.com:8443/v1"), lit("/health")];
        assert_eq!(url(&pieces).unwrap(), "https://api.example.com:8443/v1/health");
        // Only the base goes in as it is: what follows is encoded for its part.
        let pieces = [value("http://h/v1"), lit("/items/"), value("a/b")];
        assert_eq!(url(&pieces).unwrap(), "http://h/v1/items/a%2Fb");
        let pieces = [value("https"), lit("://"), value("h@evil"), lit("/x")];
        assert_eq!(url(&pieces).unwrap(), "https://h%40evil/x");
        for base in ["http://h/?admin=1", "http://h/#x", "http://h/ x", "http://h/\nx"] {
            let error = url(&[value(base), lit("/health")]).unwrap_err();
            assert!(error.contains("its base, holds a `?`"), "{error}");
        }
        assert_eq!(url(&[value("http://h")]).unwrap(), "http://h");
    }

    #[test]
    fn a_value_in_the_scheme_is_refused() {
        let error = url(&[lit("http"), value("s"), lit("://h/")]).unwrap_err();
        assert!(error.contains("before `://`"), "{error}");
        let error = url(&[lit("http:/"), value("/evil.example/")]).unwrap_err();
        assert!(error.contains("before `://`"), "{error}");
    }

    #[test]
    fn authority_values_cannot_add_a_user_host_or_path() {
        let pieces = [lit("https://"), value("evil.example/x?y#z@"), lit(".example.com/a")];
        assert_eq!(
            url(&pieces).unwrap(),
            "https://evil.example%2Fx%3Fy%23z%40.example.com/a"
        );
        let pieces = [
            lit("https://"),
            value("user:pa ss"),
            lit("@h:"),
            value("8080"),
            lit("/"),
        ];
        assert_eq!(url(&pieces).unwrap(), "https://user%3Apa%20ss@h:8080/");
        let error = url(&[lit("http://"), value(""), lit("/x")]).unwrap_err();
        assert!(error.contains("host is empty"), "{error}");
    }

    #[test]
    fn path_values_are_one_segment() {
        let pieces = [
            lit("https://h/capsules/"),
            value("../../admin?evil=1#"),
            lit("/restore"),
        ];
        assert_eq!(
            url(&pieces).unwrap(),
            "https://h/capsules/..%2F..%2Fadmin%3Fevil%3D1%23/restore"
        );
        assert_eq!(
            url(&[lit("http://h/a/"), value("x y\\z")]).unwrap(),
            "http://h/a/x%20y%5Cz"
        );
        assert_eq!(url(&[lit("http://h/v"), value("1.2")]).unwrap(), "http://h/v1.2");
        assert_eq!(url(&[lit("http://h/"), value("...")]).unwrap(), "http://h/...");
        for (before, dots, after) in [
            ("http://h/a/", "..", ""),
            ("http://h/a/", "..", "/b"),
            ("http://h/a/", ".", "?q"),
            ("http://h/a/.", ".", "#f"),
            ("http://h/a/%2E", ".", "/"),
            ("http://h/a/%2e", "", "/"),
        ] {
            let error = url(&[lit(before), value(dots), lit(after)]).unwrap_err();
            assert!(
                error.contains("climb out of the path"),
                "{before}{dots}{after}: {error}"
            );
        }
        // Dots the author wrote are the author's.
        assert_eq!(url(&[lit("http://h/a/../"), value("b")]).unwrap(), "http://h/a/../b");
    }

    #[test]
    fn query_and_fragment_values_cannot_add_parameters() {
        let pieces = [
            lit("https://h/search?q="),
            value("a&admin=1+2#x"),
            lit("&page=2#"),
            value("top&x"),
        ];
        assert_eq!(
            url(&pieces).unwrap(),
            "https://h/search?q=a%26admin%3D1%2B2%23x&page=2#top%26x"
        );
        assert_eq!(url(&[lit("http://h/?q="), value("é")]).unwrap(), "http://h/?q=%C3%A9");
    }

    #[test]
    fn safe_values_go_in_as_they_are() {
        let pieces = [
            lit("https://h/"),
            Piece::Value {
                text: "a/b?c".into(),
                safe: true,
            },
            lit("&d="),
            value("e f"),
        ];
        assert_eq!(url(&pieces).unwrap(), "https://h/a/b?c&d=e%20f");
    }
}
