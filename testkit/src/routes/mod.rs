//! The stand-in's HTTP surface: one module per scenario, behind a
//! middleware that records every request before anything answers it, and
//! applies the injected failures and faults.
//!
//! Handlers take the raw body and parse it themselves, so that malformed
//! JSON gets a 400 with a message in the stand-in's own `{"error": ...}`
//! shape (axum's extractors would answer 415 or 422 in plain text), and so
//! that a missing `content-type` is not an error.

mod alerts;
mod capsules;
mod chaos;
mod flags;
mod health;
mod ledger;
mod resolver;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{Recorded, State};

/// The largest body the stand-in reads (axum's own default limit).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// What the server shares with the [`StandIn`](crate::StandIn) handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) requests: Mutex<Vec<Recorded>>,
    /// `http://127.0.0.1:PORT`, for answers that point back at the stand-in.
    pub(crate) base_url: String,
}

impl Shared {
    pub(crate) fn new(state: State, base_url: String) -> Self {
        Self {
            state: Mutex::new(state),
            requests: Mutex::new(Vec::new()),
            base_url,
        }
    }

    /// The state, even if a test panicked while holding it: a stand-in that
    /// stops answering would hide the test's own failure.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn requests(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) type App = AxumState<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/capsules", post(capsules::create))
        .route("/capsules/{id}/restore", post(capsules::restore))
        .route("/ledger/export", get(ledger::export))
        .route("/ledger/import", post(ledger::import))
        .route("/ledger/replay", post(ledger::replay))
        .route("/ledger/snapshots/restore", post(ledger::restore_snapshots))
        .route("/ledger/anchor", post(ledger::anchor))
        .route("/snrl/resolve", post(resolver::resolve))
        .route("/pop/{name}/health", get(resolver::pop_health))
        .route("/dns-query", get(resolver::dns_query))
        .route("/verify", get(alerts::verify))
        .route("/admin/reconcile", post(alerts::reconcile))
        .route("/status", get(alerts::status))
        .route("/restart", post(alerts::restart))
        .route("/chaos/faults", get(chaos::list).post(chaos::create))
        .route("/chaos/faults/{id}", delete(chaos::remove))
        .route("/flags/{name}", get(flags::read).put(flags::write))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

/// Records the request, then answers an injected failure or fault, or
/// passes it on (after the latency of a fault, if one applies).
async fn record(AxumState(shared): App, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let (bytes, too_large) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => (bytes, false),
        Err(_) => (Bytes::new(), true),
    };
    shared.requests().push(Recorded::new(&parts, &bytes));
    if too_large {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    }
    let injected = shared.state().failures.get(parts.uri.path()).copied();
    if let Some(status) = injected {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "injected failure").into_response();
    }
    // Copied out so the lock is not held while a latency fault waits.
    let (latency, status) = shared.state().fault_effects(parts.uri.path());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(status) = status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "injected fault").into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// An answer `{"error": message}` with a status other than 2xx.
#[derive(Debug)]
pub(crate) struct ErrorReply {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ErrorReply {
    fn into_response(self) -> Response {
        reply(self.status, json!({ "error": self.message }))
    }
}

/// What a handler that can refuse the request answers.
pub(crate) type Answer = Result<Response, ErrorReply>;

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        status,
        message: message.into(),
    }
}

pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The body as `T`, or the 400 to answer.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ErrorReply> {
    serde_json::from_slice(body).map_err(|e| {
        let message = if e.is_data() {
            format!("invalid request body: {e}")
        } else {
            format!("malformed JSON: {e}")
        };
        error(StatusCode::BAD_REQUEST, message)
    })
}

/// The one path parameter, or a JSON 400 (axum's own rejection is text).
pub(crate) fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, ErrorReply> {
    path.map(|Path(value)| value)
        .map_err(|rejection| error(StatusCode::BAD_REQUEST, rejection.body_text()))
}

/// Whether the header is present and equal to `expected`.
pub(crate) fn header_is(headers: &HeaderMap, name: &str, expected: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes())
}
