//! `GET /health`: the service's own health, for every scenario's
//! "check it answers" and "wait until healthy" steps.

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{App, reply};
use crate::Health;

pub(super) async fn health(AxumState(shared): App) -> Response {
    // Copied out so the lock is not held while a slow answer waits.
    let health = shared.state().health;
    match health {
        Health::Up => reply(StatusCode::OK, json!({ "ok": true, "status": "up" })),
        Health::Down => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ok": false, "status": "down" }),
        ),
        Health::Error => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "ok": false, "error": "internal error" }),
        ),
        Health::Slow(delay) => {
            tokio::time::sleep(delay).await;
            reply(StatusCode::OK, json!({ "ok": true, "status": "slow" }))
        }
    }
}
