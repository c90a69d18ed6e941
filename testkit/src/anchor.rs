//! The ledger anchor: a hash that changes whenever the transactions it covers
//! change, so a test can tell that the runbook kept the hash it was given.

use std::fmt;

use jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Transaction;

/// A timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTimestamp {
    pub text: String,
}

impl fmt::Display for InvalidTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an RFC 3339 timestamp", self.text)
    }
}

impl std::error::Error for InvalidTimestamp {}

fn instant(text: &str) -> Result<Timestamp, InvalidTimestamp> {
    text.parse().map_err(|_| InvalidTimestamp { text: text.to_owned() })
}

/// The transactions at or after `since`, oldest first (ties keep their
/// order), compared as instants the way `runbooks/ledger-replay.yaml` does.
pub fn transactions_since(transactions: &[Transaction], since: &str) -> Result<Vec<Transaction>, InvalidTimestamp> {
    let since = instant(since)?;
    let mut kept = Vec::new();
    for transaction in transactions {
        let at = instant(&transaction.ts)?;
        if at >= since {
            kept.push((at, transaction.clone()));
        }
    }
    kept.sort_by_key(|(at, _)| *at);
    Ok(kept.into_iter().map(|(_, transaction)| transaction).collect())
}

/// What `POST /ledger/anchor {"since": since}` answers as `hash`: the SHA-256
/// (lowercase hex) of the [`canonical_json`] of [`transactions_since`].
pub fn anchor_hash(transactions: &[Transaction], since: &str) -> Result<String, InvalidTimestamp> {
    Ok(hash(&transactions_since(transactions, since)?))
}

/// The SHA-256 (lowercase hex) of the canonical JSON of `covered`.
pub(crate) fn hash(covered: &[Transaction]) -> String {
    let value = serde_json::to_value(covered).unwrap_or(Value::Null);
    let digest = Sha256::digest(canonical_json(&value).as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// JSON with object keys sorted and no whitespace, so equal values give
/// equal text whatever order their keys were built in (the workspace turns on
/// serde_json's `preserve_order`, so plain serialization would not do).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by_key(|(key, _)| *key);
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": [{"z": 1, "a": "x"}], "a": null});
        assert_eq!(canonical_json(&value), r#"{"a":null,"b":[{"a":"x","z":1}]}"#);
    }

    #[test]
    fn since_compares_instants_not_text() {
        let transactions = [
            Transaction::new("2024-05-01T13:00:00+02:00", "early", 1),
            Transaction::new("2024-05-01T12:00:00Z", "at", 2),
            Transaction::new("2024-05-01T11:30:00Z", "late", 3),
        ];
        let kept = transactions_since(&transactions, "2024-05-01T11:15:00Z").unwrap();
        let ids: Vec<_> = kept.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["late", "at"]);
    }

    #[test]
    fn anchor_hash_is_sha256_of_the_canonical_transactions() {
        let transactions = [Transaction::new("2024-05-01T12:00:00Z", "tx-1", 5)];
        let expected = Sha256::digest(br#"[{"amount":5,"id":"tx-1","ts":"2024-05-01T12:00:00Z"}]"#);
        let expected: String = expected.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(anchor_hash(&transactions, "2024-01-01T00:00:00Z").unwrap(), expected);
    }

    #[test]
    fn bad_timestamps_are_errors() {
        let error = anchor_hash(&[], "yesterday").unwrap_err();
        assert_eq!(error.to_string(), "`yesterday` is not an RFC 3339 timestamp");
    }
}
