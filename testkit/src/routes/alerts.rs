//! Scenario 5, alert responses of a ledger service: verification checks,
//! reconciliation behind `x-admin-secret`, block age and restarts.

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{Answer, App, error, header_is, reply};

/// → 200 `{"chainOk": bool, "crossOk": bool}`.
pub(super) async fn verify(AxumState(shared): App) -> Response {
    let state = shared.state();
    reply(
        StatusCode::OK,
        json!({ "chainOk": state.chain_ok, "crossOk": state.cross_ok }),
    )
}

/// → 200 `{"reconciling": true, "calls": n, "crossOk": bool}`; 401 without
/// the right `x-admin-secret`. `crossOk` turns true once `calls` reaches
/// `State::reconcile_after`.
pub(super) async fn reconcile(AxumState(shared): App, headers: HeaderMap) -> Answer {
    let mut state = shared.state();
    if !header_is(&headers, "x-admin-secret", &state.admin_secret) {
        return Err(error(StatusCode::UNAUTHORIZED, "missing or wrong `x-admin-secret`"));
    }
    state.reconcile_calls += 1;
    if state
        .reconcile_after
        .is_some_and(|after| state.reconcile_calls >= after)
    {
        state.cross_ok = true;
    }
    Ok(reply(
        StatusCode::OK,
        json!({ "reconciling": true, "calls": state.reconcile_calls, "crossOk": state.cross_ok }),
    ))
}

/// → 200 `{"block_age_s": n, "queue": n}`.
pub(super) async fn status(AxumState(shared): App) -> Response {
    let state = shared.state();
    reply(
        StatusCode::OK,
        json!({ "block_age_s": state.block_age_s, "queue": state.queue }),
    )
}

/// → 200 `{"restarted": true, "restarts": n}`; a fresh block, so
/// `block_age_s` is 0 again.
pub(super) async fn restart(AxumState(shared): App) -> Response {
    let mut state = shared.state();
    state.restarts += 1;
    state.block_age_s = 0;
    reply(StatusCode::OK, json!({ "restarted": true, "restarts": state.restarts }))
}
