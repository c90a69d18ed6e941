//! Secret values never leave the process: every string of every event (and
//! so the journal, the terminal, JSON output and reports) has each secret
//! value, and every occurrence of it inside longer strings, replaced by `***`.

use crate::execute::{Event, Reporter, RunSummary};
use serde_json::Value as Json;
use std::sync::Arc;

/// Replaces secret values with `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Vec<String>,
}

pub const MASK: &str = "***";

impl Redactor {
    pub fn new<I: IntoIterator<Item = String>>(values: I) -> Self {
        let mut secrets: Vec<String> = values.into_iter().filter(|s| !s.is_empty()).collect();
        // A value with surrounding whitespace (a file with a newline) is also hidden trimmed.
        let trimmed: Vec<String> = secrets
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        secrets.extend(trimmed);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    pub fn redact_json(&self, value: &mut Json) {
        match value {
            Json::String(s) if self.secrets.iter().any(|secret| s.contains(secret.as_str())) => {
                *s = self.redact(s);
            }
            Json::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Json::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if let Some(mut v) = map.remove(&key) {
                        self.redact_json(&mut v);
                        map.insert(self.redact(&key), v);
                    }
                }
            }
            _ => {}
        }
    }

    /// A copy of the event with every secret masked.
    pub fn event(&self, event: &Event) -> Event {
        if self.is_empty() {
            return event.clone();
        }
        let Ok(mut value) = serde_json::to_value(event) else {
            return event.clone();
        };
        self.redact_json(&mut value);
        serde_json::from_value(value).unwrap_or_else(|_| event.clone())
    }

    pub fn summary(&self, summary: &RunSummary) -> RunSummary {
        if self.is_empty() {
            return summary.clone();
        }
        let Ok(mut value) = serde_json::to_value(summary) else {
            return summary.clone();
        };
        self.redact_json(&mut value);
        serde_json::from_value(value).unwrap_or_else(|_| summary.clone())
    }
}

/// A reporter that masks secrets before passing events on.
pub struct Redacting {
    pub redactor: Arc<Redactor>,
    pub inner: Arc<dyn Reporter>,
}

impl Reporter for Redacting {
    fn event(&self, event: &Event) {
        if self.redactor.is_empty() {
            self.inner.event(event);
        } else {
            self.inner.event(&self.redactor.event(event));
        }
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
}
