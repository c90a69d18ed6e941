//! Scenario 6, chaos drills: a fault-injection API in the manner of
//! toxiproxy or a Chaos Toolkit driver, behind `x-admin-secret`.
//!
//! `POST /chaos/faults` injects a fault on a path prefix, `GET /chaos/faults`
//! lists the active ones, `DELETE /chaos/faults/{id}` removes one. The
//! recording middleware applies the active faults (and those still in their
//! recovery window) to every other request: see [`State::fault_effects`].

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, App, ErrorReply, error, header_is, parse, path_param, reply};
use crate::{Fault, FaultEffect, Recovering, State};

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Error,
    Latency,
}

#[derive(Deserialize)]
struct NewFault {
    target: String,
    kind: Kind,
    /// For `error`; 503 when absent.
    status: Option<u16>,
    /// For `latency`, required there.
    latency_ms: Option<u64>,
    /// `State::fault_recovery` when absent.
    recovery_ms: Option<u64>,
}

fn authorize(state: &State, headers: &HeaderMap) -> Result<(), ErrorReply> {
    if header_is(headers, "x-admin-secret", &state.admin_secret) {
        Ok(())
    } else {
        Err(error(StatusCode::UNAUTHORIZED, "missing or wrong `x-admin-secret`"))
    }
}

/// How a fault is shown: `{"id", "target", "kind", "status" | "latency_ms",
/// "recovery_ms"}`.
fn view(fault: &Fault) -> Value {
    let recovery_ms = u64::try_from(fault.recovery.as_millis()).unwrap_or(u64::MAX);
    match fault.effect {
        FaultEffect::Error(status) => json!({
            "id": fault.id, "target": fault.target, "kind": "error",
            "status": status, "recovery_ms": recovery_ms,
        }),
        FaultEffect::Latency(delay) => json!({
            "id": fault.id, "target": fault.target, "kind": "latency",
            "latency_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "recovery_ms": recovery_ms,
        }),
    }
}

/// `{"target": "/health", "kind": "error" | "latency", "status": 503,
/// "latency_ms": 800, "recovery_ms": 0}` → 201 with the fault and its id
/// `fault-<n>`; 400 for a target that is not a path, a status that is not
/// one, or a latency fault without `latency_ms`.
pub(super) async fn create(AxumState(shared): App, headers: HeaderMap, body: Bytes) -> Answer {
    let mut state = shared.state();
    authorize(&state, &headers)?;
    let new: NewFault = parse(&body)?;
    if !new.target.starts_with('/') {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("`target` must be a path starting with `/`, not `{}`", new.target),
        ));
    }
    let effect = match new.kind {
        Kind::Error => {
            let status = new.status.unwrap_or(503);
            if !(100..=599).contains(&status) {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("`status` must be an HTTP status, not {status}"),
                ));
            }
            FaultEffect::Error(status)
        }
        Kind::Latency => match new.latency_ms {
            Some(ms) => FaultEffect::Latency(Duration::from_millis(ms)),
            None => {
                return Err(error(StatusCode::BAD_REQUEST, "a `latency` fault needs `latency_ms`"));
            }
        },
    };
    state.faults_injected += 1;
    // Numbered after the faults injected, skipping ids a test preset.
    let mut n = state.faults_injected;
    while state.faults.iter().any(|f| f.id == format!("fault-{n}")) {
        n += 1;
    }
    state.faults_injected = n;
    let fault = Fault {
        id: format!("fault-{n}"),
        target: new.target,
        effect,
        recovery: new.recovery_ms.map_or(state.fault_recovery, Duration::from_millis),
    };
    let answer = view(&fault);
    state.faults.push(fault);
    Ok(reply(StatusCode::CREATED, answer))
}

/// → 200 `{"faults": [...]}`, the active faults, oldest first.
pub(super) async fn list(AxumState(shared): App, headers: HeaderMap) -> Answer {
    let state = shared.state();
    authorize(&state, &headers)?;
    let faults: Vec<Value> = state.faults.iter().map(view).collect();
    Ok(reply(StatusCode::OK, json!({ "faults": faults })))
}

/// → 200 `{"removed": id}`; 404 for an unknown (or already removed) fault.
/// The target keeps failing for the fault's recovery window.
pub(super) async fn remove(
    AxumState(shared): App,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Answer {
    let id = path_param(id)?;
    let mut state = shared.state();
    authorize(&state, &headers)?;
    let Some(index) = state.faults.iter().position(|f| f.id == id) else {
        return Err(error(StatusCode::NOT_FOUND, format!("no fault `{id}`")));
    };
    let fault = state.faults.remove(index);
    if !fault.recovery.is_zero() {
        let until = Instant::now() + fault.recovery;
        state.recovering.push(Recovering { fault, until });
    }
    Ok(reply(StatusCode::OK, json!({ "removed": id })))
}
