//! Scenario 3, DNS and cloud outage failover: the resolver that hands out a
//! healthy point of presence, the points of presence' health, and a
//! DNS-over-HTTPS JSON endpoint.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, App, error, parse, path_param, reply};
use crate::{Dns, NoPop};

#[derive(Deserialize)]
struct Resolve {
    domain: String,
}

/// `{"domain": ...}` → 200 `{"domain", "name", "pop": url}` for the first
/// healthy point of presence; with none, per [`NoPop`].
pub(super) async fn resolve(AxumState(shared): App, body: Bytes) -> Answer {
    let Resolve { domain } = parse(&body)?;
    let state = shared.state();
    let answer = match state.pops.iter().find(|pop| pop.healthy) {
        Some(pop) => {
            let url = pop
                .url
                .clone()
                .unwrap_or_else(|| format!("{}/pop/{}", shared.base_url, pop.name));
            reply(
                StatusCode::OK,
                json!({ "domain": domain, "name": pop.name, "pop": url }),
            )
        }
        None => match state.no_pop {
            NoPop::Null => reply(StatusCode::OK, json!({ "domain": domain, "pop": null })),
            NoPop::Unavailable => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "no healthy point of presence", "pop": null }),
            ),
        },
    };
    Ok(answer)
}

/// → 200 `{"ok": true, "pop": name}` when healthy, 503 `{"ok": false, ...}`
/// when not, 404 for an unknown point of presence.
pub(super) async fn pop_health(AxumState(shared): App, name: Result<Path<String>, PathRejection>) -> Answer {
    let name = path_param(name)?;
    let healthy = shared
        .state()
        .pops
        .iter()
        .find(|pop| pop.name == name)
        .map(|pop| pop.healthy);
    match healthy {
        Some(true) => Ok(reply(StatusCode::OK, json!({ "ok": true, "pop": name }))),
        Some(false) => Ok(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ok": false, "pop": name }),
        )),
        None => Err(error(StatusCode::NOT_FOUND, format!("no point of presence `{name}`"))),
    }
}

/// `?name=...&type=A` → the JSON form of DNS over HTTPS (as public resolvers
/// answer `application/dns-json`), per [`Dns`].
pub(super) async fn dns_query(AxumState(shared): App, Query(query): Query<HashMap<String, String>>) -> Answer {
    let name = query
        .get("name")
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "missing query parameter `name`"))?;
    let type_name = query.get("type").map_or("A", String::as_str);
    let record_type = record_type(type_name).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("unsupported record type `{type_name}`"),
        )
    })?;
    let dns = shared.state().dns.clone();
    let (status, addresses) = match dns {
        Dns::Answer(addresses) => (0, Some(addresses)),
        Dns::NoAnswer => (0, None),
        Dns::NxDomain => (3, None),
        Dns::ServFail => (2, None),
        Dns::Unavailable => return Err(error(StatusCode::SERVICE_UNAVAILABLE, "resolver unavailable")),
    };
    let mut body = json!({
        "Status": status,
        "TC": false,
        "RD": true,
        "RA": true,
        "AD": false,
        "CD": false,
        "Question": [{ "name": name, "type": record_type }],
    });
    if let Some(addresses) = addresses {
        let answer: Vec<Value> = addresses
            .iter()
            .map(|data| json!({ "name": name, "type": record_type, "TTL": 60, "data": data }))
            .collect();
        body["Answer"] = Value::Array(answer);
    }
    Ok(reply(StatusCode::OK, body))
}

/// The numeric record type of `A`, `CNAME`, `TXT`, `AAAA` or a number.
fn record_type(name: &str) -> Option<u16> {
    match name.to_ascii_uppercase().as_str() {
        "A" => Some(1),
        "CNAME" => Some(5),
        "TXT" => Some(16),
        "AAAA" => Some(28),
        number => number.parse().ok(),
    }
}
