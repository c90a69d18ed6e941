//! Feature flags, for the feature-flag failover example and its plugin
//! (`runbooks/plugins/flags.py`): `GET /flags/{name}` reads a flag, `PUT
//! /flags/{name}` (behind `x-api-key`) sets it and answers what it was.
//!
//! A `PUT` may carry an `idempotency-key` header, as payment and flag APIs
//! commonly accept: a retried request whose first answer was lost gets that
//! answer again, so the value it reports as `previous` stays the one from
//! before the change, which is what an undo puts back.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, App, ErrorReply, error, header_is, parse, path_param, reply};
use crate::{FlagWrite, State};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewValue {
    value: bool,
}

/// → 200 `{"name", "value"}`; 404 for a name that is not a flag.
pub(super) async fn read(AxumState(shared): App, name: Result<Path<String>, PathRejection>) -> Answer {
    let name = path_param(name)?;
    let state = shared.state();
    match state.flags.get(&name) {
        Some(value) => Ok(reply(StatusCode::OK, json!({ "name": name, "value": value }))),
        None => Err(no_flag(&name)),
    }
}

/// `{"value": bool}` → 200 `{"name", "previous", "value", "replayed"}`; 401
/// without the right `x-api-key`, 404 for a name that is not a flag, 409 for
/// an `idempotency-key` already used for another change.
pub(super) async fn write(
    AxumState(shared): App,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let name = path_param(name)?;
    let mut state = shared.state();
    if !header_is(&headers, "x-api-key", &state.api_key) {
        return Err(error(StatusCode::UNAUTHORIZED, "missing or wrong `x-api-key`"));
    }
    let NewValue { value } = parse(&body)?;
    let key = headers
        .get("idempotency-key")
        .map(|key| String::from_utf8_lossy(key.as_bytes()).into_owned());
    let (write, replayed) = change(&mut state, &name, value, key)?;
    Ok(reply(StatusCode::OK, view(&write, replayed)))
}

/// Sets the flag, or finds the change already made under `key`: the change,
/// and whether it was found rather than made.
fn change(state: &mut State, name: &str, value: bool, key: Option<String>) -> Result<(FlagWrite, bool), ErrorReply> {
    if let Some(key) = &key
        && let Some(earlier) = state
            .flag_writes
            .iter()
            .find(|w| w.idempotency_key.as_ref() == Some(key))
    {
        if earlier.name == name && earlier.value == value {
            return Ok((earlier.clone(), true));
        }
        return Err(error(
            StatusCode::CONFLICT,
            format!("idempotency key `{key}` was used for another change"),
        ));
    }
    let Some(current) = state.flags.get_mut(name) else {
        return Err(no_flag(name));
    };
    let write = FlagWrite {
        name: name.to_owned(),
        previous: *current,
        value,
        idempotency_key: key,
    };
    *current = value;
    state.flag_writes.push(write.clone());
    Ok((write, false))
}

fn view(write: &FlagWrite, replayed: bool) -> Value {
    json!({
        "name": write.name,
        "previous": write.previous,
        "value": write.value,
        "replayed": replayed,
    })
}

fn no_flag(name: &str) -> ErrorReply {
    error(StatusCode::NOT_FOUND, format!("no flag `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &str) -> Option<String> {
        Some(key.to_owned())
    }

    #[test]
    fn a_change_records_the_value_it_replaced() {
        let mut state = State::default();
        let (write, replayed) = change(&mut state, "checkout_v2", false, None).unwrap();
        assert_eq!((write.previous, write.value, replayed), (true, false, false));
        assert!(!state.flags["checkout_v2"]);
        // Setting it again is a change too: what it replaced is now `false`.
        let (again, _) = change(&mut state, "checkout_v2", false, None).unwrap();
        assert!(!again.previous);
        assert_eq!(state.flag_writes.len(), 2);
    }

    #[test]
    fn a_repeated_idempotency_key_answers_the_first_change_again() {
        let mut state = State::default();
        let (first, _) = change(&mut state, "checkout_v2", false, key("run/switch")).unwrap();
        let (retried, replayed) = change(&mut state, "checkout_v2", false, key("run/switch")).unwrap();
        assert!(replayed);
        assert_eq!(retried, first, "still reports the value from before the change");
        assert_eq!(state.flag_writes.len(), 1);

        let conflict = change(&mut state, "checkout_v2", true, key("run/switch")).unwrap_err();
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        let other_flag = change(&mut state, "search_beta", false, key("run/switch")).unwrap_err();
        assert_eq!(other_flag.status, StatusCode::CONFLICT);
        assert!(!state.flags["checkout_v2"], "a refused change changes nothing");
    }

    #[test]
    fn a_name_that_is_not_a_flag_is_not_created() {
        let mut state = State::default();
        let refused = change(&mut state, "chekout_v2", false, None).unwrap_err();
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
        assert!(!state.flags.contains_key("chekout_v2"));
        assert!(state.flag_writes.is_empty());
    }
}
