//! An `http` step's redirects, followed by hand so that what the step sends
//! to one origin never reaches another. reqwest's own policy drops only
//! `Authorization` on the way to another host, and sends a `Referer` that
//! can carry a secret from the query; a step's own headers (`x-api-key`)
//! carry secrets just as often.
//!
//! The rules: at most [`MAX_REDIRECTS`] redirects; on the way to another
//! origin (scheme, host or port), every header the step set is dropped,
//! for the rest of the chain; a 307 or 308 to another origin, which would
//! send the body again, fails; a 301, 302 or 303 drops the body (and turns
//! any method but `GET` and `HEAD` into `GET`), as browsers do.

use super::{Method, request_error};
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use runbook_engine::step::StepError;
use serde_json::Value as Json;
use std::time::Duration;
use tokio::time::Instant;

/// How many redirects a request follows before it fails.
pub(super) const MAX_REDIRECTS: usize = 10;

/// A request body, kept so that a 307 or 308 can send it again.
#[derive(Debug, Clone)]
pub(super) enum Body {
    Json(Json),
    Text(String),
}

/// A request, as sent to one URL of a chain of redirects.
#[derive(Debug)]
pub(super) struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Body>,
}

/// Sends `request` (to `written`, its URL as the step wrote it), following
/// its redirects when `follow` says so, all within `timeout`. The response
/// is the last one: not a redirect, a redirect without a `Location`, or any
/// response when `follow` is false.
pub(super) async fn send(
    client: &reqwest::Client,
    mut request: Request,
    written: &str,
    follow: bool,
    timeout: Duration,
) -> Result<reqwest::Response, StepError> {
    let deadline = Instant::now() + timeout;
    let first = format!("{} {written}", request.method);
    let mut shown = written.to_string();
    let mut redirects = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut builder = client
            .request(request.method.into(), request.url.clone())
            .headers(request.headers.clone())
            .timeout(remaining);
        match &request.body {
            Some(Body::Json(json)) => builder = builder.json(json),
            Some(Body::Text(text)) => builder = builder.body(text.clone()),
            None => {}
        }
        let response = builder
            .send()
            .await
            .map_err(|e| request_error(request.method, &shown, timeout, &e))?;
        let status = response.status();
        let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
        if !follow || !redirect {
            return Ok(response);
        }
        let Some(location) = response.headers().get(header::LOCATION) else {
            return Ok(response);
        };
        let here = format!("{} {shown}", request.method);
        let next = location
            .to_str()
            .ok()
            .and_then(|location| request.url.join(location).ok())
            .ok_or_else(|| StepError::new(format!("{here} answered {status} with a `Location` that is not a URL")))?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(StepError::new(format!(
                "{here} answered {status}, a redirect to `{next}`, which is not HTTP or HTTPS"
            )));
        }
        redirects += 1;
        if redirects > MAX_REDIRECTS {
            return Err(StepError::new(format!(
                "{first} was redirected more than {MAX_REDIRECTS} times (the last time to {next})"
            )));
        }
        let from = request.url.origin().ascii_serialization();
        let to = next.origin().ascii_serialization();
        let cross_origin = from != to;
        if matches!(status, StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT) {
            if cross_origin && request.body.is_some() {
                return Err(StepError::new(format!(
                    "{here} answered {status}, a redirect to {next} on another origin ({from} → {to}) that \
                     would send the request body there too; a body is never sent to another origin: request \
                     {next} directly if it is meant to get it, or set `follow_redirects: false`"
                )));
            }
        } else {
            // 301, 302, 303: the next request has no body.
            request.body = None;
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::CONTENT_ENCODING,
                header::TRANSFER_ENCODING,
            ] {
                request.headers.remove(name);
            }
            if !matches!(request.method, Method::Get | Method::Head) {
                request.method = Method::Get;
            }
        }
        if cross_origin {
            // Whatever the step set (`x-api-key`, `Authorization`, `Cookie`,
            // its idempotency key) was meant for the origin it named.
            request.headers.clear();
        }
        shown = next.to_string();
        request.url = next;
    }
}
