//! Scenario 1, capsule snapshot and restore: `POST /capsules` takes a
//! capsule, `POST /capsules/{id}/restore` (behind `x-api-key`) restores one.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{Answer, App, error, header_is, parse, path_param, reply};
use crate::Capsule;

#[derive(Deserialize)]
struct NewCapsule {
    memo: String,
}

/// `{"memo": ...}` → 201 `{"id": "cap-<n>", "memo": ...}`.
pub(super) async fn create(AxumState(shared): App, body: Bytes) -> Answer {
    let NewCapsule { memo } = parse(&body)?;
    let mut state = shared.state();
    // Numbered after the capsules that exist, skipping ids a test preset.
    let mut n = state.capsules.len() + 1;
    while state.capsules.iter().any(|c| c.id == format!("cap-{n}")) {
        n += 1;
    }
    let capsule = Capsule {
        id: format!("cap-{n}"),
        memo,
    };
    let answer = json!({ "id": capsule.id, "memo": capsule.memo });
    state.capsules.push(capsule);
    Ok(reply(StatusCode::CREATED, answer))
}

/// → 200 `{"restored": id}`; 401 without the right `x-api-key`, 404 for an
/// unknown capsule.
pub(super) async fn restore(
    AxumState(shared): App,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Answer {
    let id = path_param(id)?;
    let mut state = shared.state();
    if !header_is(&headers, "x-api-key", &state.api_key) {
        return Err(error(StatusCode::UNAUTHORIZED, "missing or wrong `x-api-key`"));
    }
    if !state.capsules.iter().any(|c| c.id == id) {
        return Err(error(StatusCode::NOT_FOUND, format!("no capsule `{id}`")));
    }
    state.capsule_restores.push(id.clone());
    Ok(reply(StatusCode::OK, json!({ "restored": id })))
}
