//! The engine's shared vocabulary, at the bottom of it: what a name looks
//! like, how a list of names is said, and durations as people write them.
//! Every stage and every step kind may use it; it uses none of them.

mod duration;

pub use duration::{HumanDuration, MAX_DURATION, format_duration, parse_duration, parse_timeout};

/// What a step id, input, secret, var or output name looks like.
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9_]*$";

/// Names as a list a person reads: `` `a`, `b` or `c` ``.
pub fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_read_as_words() {
        assert_eq!(super::list(&[]), "");
        assert_eq!(super::list(&["a"]), "`a`");
        assert_eq!(super::list(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
