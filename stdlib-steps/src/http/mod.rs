//! The `http` step kind: sends one HTTP request and checks the response
//! status.
//!
//! Requests go through reqwest with rustls, so no OpenSSL is needed to build
//! or run. One client per kind instance keeps connections pooled across the
//! steps of a run. Redirects are followed by hand ([`redirect`]), so that
//! headers meant for one origin never reach another, and no `Referer` is
//! ever sent.

mod redirect;

use indexmap::IndexMap;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use runbook_engine::kit::{Kind, Templated, Traits};
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use crate::HumanDuration;
use crate::words::series;
use crate::{is_template, pointer};

/// Sends one HTTP request; fails when the response status is not expected.
#[derive(Debug, Clone, Default)]
pub struct Http {
    /// Made on the first request, then shared by every request of this kind.
    client: OnceLock<Result<reqwest::Client, String>>,
}

/// How long a request may take when the step does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a response body the result keeps; the rest is not read.
const MAX_BODY: usize = 8 << 20;

/// Parameters of an `http` step. The request body is given as `json` or as
/// `body`, never both.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpParams {
    /// The request method.
    #[serde(default)]
    pub method: Templated<Method>,

    /// The URL to request, starting with `http://` or `https://`.
    pub url: String,

    /// Request headers, name to value. Plans show the names only, since
    /// values often hold secrets.
    #[serde(default)]
    pub headers: IndexMap<String, String>,

    /// Query parameters added to the URL, name to value.
    #[serde(default)]
    pub query: IndexMap<String, QueryValue>,

    /// A request body, any JSON value, sent as JSON. Give `json` or `body`,
    /// not both.
    #[serde(default)]
    #[schemars(with = "Json")]
    pub json: Option<Json>,

    /// A request body sent as it is written. Give `json` or `body`, not both.
    #[serde(default)]
    #[schemars(with = "String")]
    pub body: Option<String>,

    /// The response status that counts as success, or a list of them; by
    /// default any 2xx status.
    #[serde(default)]
    #[schemars(with = "Templated<ExpectStatus>")]
    pub expect_status: Option<Templated<ExpectStatus>>,

    /// How long to wait for the response, such as `10s`, redirects included.
    #[serde(default)]
    #[schemars(with = "Templated<HumanDuration>")]
    pub timeout: Option<Templated<HumanDuration>>,

    /// Whether to follow redirects, at most 10. On the way to another origin
    /// (scheme, host or port) every header the step set is dropped, and a
    /// 307 or 308 that would send the body to another origin fails. With
    /// `false`, a 3xx response is the result (and fails unless
    /// `expect_status` lists it).
    #[serde(default = "follow_by_default")]
    #[schemars(with = "Templated<bool>")]
    pub follow_redirects: Templated<bool>,
}

fn follow_by_default() -> Templated<bool> {
    Templated::Value(true)
}

/// An HTTP request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schemars(inline)]
pub enum Method {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }
}

impl From<Method> for reqwest::Method {
    fn from(method: Method) -> Self {
        match method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
            Method::Options => reqwest::Method::OPTIONS,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of one query parameter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum QueryValue {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl fmt::Display for QueryValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryValue::Text(text) => f.write_str(text),
            QueryValue::Number(n) => write!(f, "{n}"),
            QueryValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl JsonSchema for QueryValue {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "QueryValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// The response statuses that count as success.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ExpectStatus {
    One(u16),
    AnyOf(Vec<u16>),
}

impl ExpectStatus {
    /// Whether `status` counts as success; `None` (not given) accepts any 2xx.
    pub fn accepts(expected: Option<&ExpectStatus>, status: u16) -> bool {
        match expected {
            None => (200..300).contains(&status),
            Some(ExpectStatus::One(one)) => *one == status,
            Some(ExpectStatus::AnyOf(list)) => list.contains(&status),
        }
    }

    /// The statuses expected, in words: `2xx`, `204`, `200 or 404`.
    pub fn words(expected: Option<&ExpectStatus>) -> String {
        match expected {
            None => "2xx".to_string(),
            Some(ExpectStatus::One(one)) => one.to_string(),
            Some(ExpectStatus::AnyOf(list)) => series(&list.iter().map(u16::to_string).collect::<Vec<_>>(), "or"),
        }
    }
}

impl JsonSchema for ExpectStatus {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "ExpectStatus".into()
    }

    // One flat schema rather than `anyOf`, so that a mistake is reported
    // precisely (`minimum` applies to numbers only, `items` to lists only).
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["integer", "array"],
            "minimum": 100,
            "maximum": 599,
            "items": { "type": "integer", "minimum": 100, "maximum": 599 },
            "minItems": 1
        })
    }
}

impl Kind for Http {
    type Params = HttpParams;
    const NAME: &'static str = "http";
    const SUMMARY: &'static str = "Send an HTTP request and check the response status.";
    /// Values templated into `url` are encoded for the part of the URL they
    /// land in, so an input cannot reach another path, host or query.
    const TRAITS: Traits = Traits {
        url_params: &["/url"],
        ..Traits::NONE
    };

    fn params_rules(&self) -> Vec<Json> {
        vec![
            runbook_engine::kit::not_both("json", "body"),
            runbook_engine::kit::param_rule("url", json!({ "pattern": "^\\s*[hH][tT][tT][pP][sS]?://" })),
            runbook_engine::kit::param_rule(
                "headers",
                json!({
                    "propertyNames": { "anyOf": [
                        { "pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" },
                        { "pattern": runbook_engine::template::TEMPLATE_PATTERN }
                    ] },
                    "additionalProperties": { "pattern": "^[^\\r\\n]*$" }
                }),
            ),
            crate::time_limit::time_limit_rule("timeout"),
        ]
    }

    fn validate(&self, params: &HttpParams) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        if params.json.is_some() && params.body.is_some() {
            problems.push(
                ParamProblem::new("/body", "`json` and `body` are both given")
                    .with_help("a request has one body: keep `json` to send JSON, or `body` to send text as it is"),
            );
        }
        let url = &params.url;
        if !is_template(url) {
            let lower = url.trim_start().to_ascii_lowercase();
            if !lower.starts_with("http://") && !lower.starts_with("https://") {
                let help = match url.split_once("://") {
                    Some((scheme, _)) => {
                        format!("`{scheme}` URLs are not supported; the `http` step speaks HTTP and HTTPS")
                    }
                    None => format!("add the scheme, such as `https://{}`", url.trim()),
                };
                problems
                    .push(ParamProblem::new("/url", "`url` must start with `http://` or `https://`").with_help(help));
            }
        }
        for (name, value) in &params.headers {
            if !is_template(name) && !is_header_name(name) {
                problems.push(
                    ParamProblem::new(
                        pointer("/headers", name),
                        format!("`{name}` is not a valid header name"),
                    )
                    .with_help("header names are letters, digits and `-`, with no spaces or `:`"),
                );
            }
            if !is_template(value) && value.contains(['\r', '\n']) {
                problems.push(ParamProblem::new(
                    pointer("/headers", name),
                    format!("the value of header `{name}` spans more than one line"),
                ));
            }
        }
        if let Some(timeout) = &params.timeout {
            problems.extend(crate::time_limit::time_limit("timeout", timeout));
        }
        problems
    }

    fn describe(&self, params: &HttpParams) -> String {
        let mut target = params.url.clone();
        if !params.query.is_empty() {
            let pairs: Vec<String> = params
                .query
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            target.push(if target.contains('?') { '&' } else { '?' });
            target.push_str(&pairs.join("&"));
        }
        let mut text = format!("{} {target}", params.method);

        let mut with = Vec::new();
        if params.json.is_some() {
            with.push("a JSON body".to_string());
        } else if params.body.is_some() {
            with.push("a body".to_string());
        }
        let headers: Vec<&str> = params.headers.keys().map(String::as_str).collect();
        match headers.len() {
            0 => {}
            1 => with.push(format!("header {}", headers[0])),
            _ => with.push(format!("headers {}", headers.join(", "))),
        }
        if !with.is_empty() {
            text.push_str(&format!(" with {}", series(&with, "and")));
        }

        let expecting = match &params.expect_status {
            None => ExpectStatus::words(None),
            Some(Templated::Value(expected)) => ExpectStatus::words(Some(expected)),
            Some(Templated::Later(text)) => text.clone(),
        };
        text.push_str(&format!(", expecting {expecting}"));
        if let Some(timeout) = &params.timeout {
            text.push_str(&format!(" within {timeout}"));
        }
        if params.follow_redirects == Templated::Value(false) {
            text.push_str(", not following redirects");
        }
        text
    }

    /// Result: `{"status": 200, "headers": {"content-type": "..."}, "body":
    /// "...", "json": <the body read as JSON, or null>}`. Header names are
    /// lowercase; a header sent more than once has its values joined with
    /// `, `.
    async fn run(&self, params: HttpParams, cx: StepContext) -> Result<Json, StepError> {
        let client = self.client()?;
        tokio::select! {
            outcome = send(client, &params, &cx.idempotency_key) => outcome,
            () = cx.cancel.cancelled() => Err(crate::cancelled()),
        }
    }
}

impl Http {
    fn client(&self) -> Result<&reqwest::Client, StepError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
                    // Redirects are followed by hand, with no `Referer`: see `redirect`.
                    .redirect(reqwest::redirect::Policy::none())
                    .referer(false)
                    .build()
                    .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))
            })
            .as_ref()
            .map_err(|e| StepError::new(e.clone()))
    }
}

/// Sends the request and reads the response into the step's result.
async fn send(client: &reqwest::Client, params: &HttpParams, idempotency_key: &str) -> Result<Json, StepError> {
    let method = *params.method.get()?;
    let url = params.url.as_str();
    let mut parsed =
        reqwest::Url::parse(url).map_err(|e| StepError::new(format!("`{url}` is not a valid URL: {e}")))?;
    let timeout = match &params.timeout {
        Some(timeout) => timeout.get()?.0,
        None => DEFAULT_TIMEOUT,
    };

    let mut headers = HeaderMap::new();
    for (name, value) in &params.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| StepError::new(format!("`{name}` is not a valid header name")))?;
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| StepError::new(format!("the value of header `{name}` is not valid in a header")))?;
        headers.append(header_name, header_value);
    }
    // The key is the same on every attempt and on resume, so a server that
    // honours it does the work once however often the step is retried.
    if !headers.contains_key("idempotency-key")
        && let Ok(key) = HeaderValue::from_str(idempotency_key)
    {
        headers.insert("idempotency-key", key);
    }

    if !params.query.is_empty() {
        let mut pairs = parsed.query_pairs_mut();
        for (name, value) in &params.query {
            pairs.append_pair(name, &value.to_string());
        }
    }
    let body = match (&params.json, &params.body) {
        (Some(json), _) => Some(redirect::Body::Json(json.clone())),
        (None, Some(text)) => Some(redirect::Body::Text(text.clone())),
        (None, None) => None,
    };
    let request = redirect::Request {
        method,
        url: parsed,
        headers,
        body,
    };

    let failed = |e: reqwest::Error| request_error(method, url, timeout, &e);
    let mut response = redirect::send(client, request, url, *params.follow_redirects.get()?, timeout).await?;
    let status = response.status();
    let mut response_headers = serde_json::Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match response_headers.get_mut(name.as_str()) {
            Some(Json::String(earlier)) => {
                earlier.push_str(", ");
                earlier.push_str(&value);
            }
            _ => {
                response_headers.insert(name.as_str().to_string(), Json::String(value));
            }
        }
    }
    let mut bytes = Vec::new();
    let mut cut = false;
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if bytes.len() + chunk.len() > MAX_BODY {
            bytes.extend_from_slice(&chunk[..MAX_BODY - bytes.len()]);
            cut = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    let mut body = String::from_utf8_lossy(&bytes).into_owned();
    let parsed_body = if cut {
        body.push_str(&format!("\n[the response body was cut at {} MiB]", MAX_BODY >> 20));
        Json::Null
    } else {
        serde_json::from_str(&body).unwrap_or(Json::Null)
    };
    let result = json!({
        "status": status.as_u16(),
        "headers": response_headers,
        "body": body,
        "json": parsed_body,
    });
    let expect_status = params.expect_status.as_ref().map(Templated::get).transpose()?;
    if ExpectStatus::accepts(expect_status, status.as_u16()) {
        Ok(result)
    } else {
        let expected = ExpectStatus::words(expect_status);
        let status = match status.canonical_reason() {
            Some(reason) => format!("{} {reason}", status.as_u16()),
            None => status.as_u16().to_string(),
        };
        Err(StepError::new(format!("{method} {url} answered {status} (expected {expected})")).with_result(result))
    }
}

/// Why a request got no (whole) response, naming the URL.
fn request_error(method: Method, url: &str, timeout: Duration, error: &reqwest::Error) -> StepError {
    let message = if error.is_timeout() {
        format!("{method} {url} timed out after {}", HumanDuration(timeout))
    } else if error.is_connect() {
        format!("cannot connect to {url}: {}", root_cause(error))
    } else {
        format!("{method} {url} failed: {}", error_chain(error))
    };
    StepError::new(message)
}

/// The innermost cause of an error, which is what says what went wrong
/// ("connection refused", "failed to lookup address information").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    crate::os_error_words(&cause.to_string())
}

/// An error and its causes, each said once.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut cause = Some(error);
    while let Some(error) = cause {
        let text = crate::os_error_words(&error.to_string());
        if !words.iter().any(|w| w.contains(&text)) {
            words.push(text);
        }
        cause = error.source();
    }
    words.join(": ")
}

/// Whether `name` is an HTTP header name (a `token` in RFC 9110).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests;
