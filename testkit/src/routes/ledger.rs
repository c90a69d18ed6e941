//! Scenario 2, ledger rollback and replay: export, import, replay, snapshot
//! restore and the anchor hash.

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Answer, App, ErrorReply, error, parse, reply};
use crate::{InvalidTimestamp, Transaction, anchor, transactions_since};

#[derive(Deserialize)]
struct Since {
    since: String,
}

#[derive(Deserialize)]
struct At {
    at: String,
}

#[derive(Deserialize)]
struct Ledger {
    transactions: Vec<Transaction>,
}

/// → 200 `{"transactions": [{"ts", "id", "amount"}, ...]}`.
pub(super) async fn export(AxumState(shared): App) -> Response {
    let transactions = shared.state().transactions.clone();
    reply(StatusCode::OK, json!({ "transactions": transactions }))
}

/// `{"transactions": [...]}` (what the export gave) → 200 `{"imported": n}`;
/// replaces the ledger.
pub(super) async fn import(AxumState(shared): App, body: Bytes) -> Answer {
    let Ledger { transactions } = parse(&body)?;
    // Checked here so a bad timestamp is the importer's 400, not a later 500.
    transactions_since(&transactions, "1970-01-01T00:00:00Z")
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid request body: {e}")))?;
    let mut state = shared.state();
    let imported = transactions.len();
    state.transactions = transactions;
    state.imports += 1;
    Ok(reply(StatusCode::OK, json!({ "imported": imported })))
}

/// `{"since": ts}` → 200 `{"since", "replayed": n, "transactions": [...]}`,
/// the transactions at or after `since`, oldest first.
pub(super) async fn replay(AxumState(shared): App, body: Bytes) -> Answer {
    let Since { since } = parse(&body)?;
    let replay = transactions_since(&shared.state().transactions, &since).map_err(|e| timestamp_error(&since, e))?;
    Ok(reply(
        StatusCode::OK,
        json!({ "since": since, "replayed": replay.len(), "transactions": replay }),
    ))
}

/// `{"at": ts}` → 200 `{"at", "restored": ["snapshot@<at>"]}`.
pub(super) async fn restore_snapshots(AxumState(shared): App, body: Bytes) -> Answer {
    let At { at } = parse(&body)?;
    let mut state = shared.state();
    let since = transactions_since(&state.transactions, &at).map_err(|e| timestamp_error(&at, e))?;
    if state.restore_rolls_back {
        state.transactions.retain(|t| !since.contains(t));
    }
    state.snapshot_restores.push(at.clone());
    Ok(reply(
        StatusCode::OK,
        json!({ "at": at, "restored": [format!("snapshot@{at}")] }),
    ))
}

/// `{"since": ts}` → 200 `{"since", "count": n, "hash": <anchor_hash>}`.
pub(super) async fn anchor(AxumState(shared): App, body: Bytes) -> Answer {
    let Since { since } = parse(&body)?;
    let covered = transactions_since(&shared.state().transactions, &since).map_err(|e| timestamp_error(&since, e))?;
    Ok(reply(
        StatusCode::OK,
        json!({ "since": since, "count": covered.len(), "hash": anchor::hash(&covered) }),
    ))
}

/// 400 when the request's timestamp is bad; 500 when a preset transaction's
/// is (the test set up a ledger the service could not hold).
fn timestamp_error(requested: &str, e: InvalidTimestamp) -> ErrorReply {
    if e.text == requested {
        error(StatusCode::BAD_REQUEST, format!("invalid request body: {e}"))
    } else {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the ledger holds a bad transaction: {e}"),
        )
    }
}
