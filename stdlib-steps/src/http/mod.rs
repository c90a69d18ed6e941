//! The `http` step kind: sends one HTTP request and checks the response
//! status.
//!
//! Requests go through reqwest with rustls, so no OpenSSL is needed to build
//! or run. One client per kind instance keeps connections pooled across the
//! steps of a run.

use indexmap::IndexMap;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use runbook_engine::step::{ParamProblem, StepContext, StepError, StepFuture, StepKind};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use crate::HumanDuration;
use crate::words::{any, field, keys, scalars, series};
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
    pub method: Method,

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
    #[schemars(with = "ExpectStatus")]
    pub expect_status: Option<ExpectStatus>,

    /// How long to wait for the response, such as `10s`.
    #[serde(default)]
    #[schemars(with = "HumanDuration")]
    pub timeout: Option<HumanDuration>,
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

impl StepKind for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn summary(&self) -> &'static str {
        "Send an HTTP request and check the response status."
    }

    fn params_schema(&self) -> Json {
        crate::schema_of::<HttpParams>()
    }

    fn validate(&self, params: &Json) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        let given = |name| params.get(name).is_some_and(|v| !v.is_null());
        if given("json") && given("body") {
            problems.push(
                ParamProblem::new("/body", "`json` and `body` are both given")
                    .with_help("a request has one body: keep `json` to send JSON, or `body` to send text as it is"),
            );
        }
        if let Some(url) = params.get("url").and_then(Json::as_str)
            && !is_template(url)
        {
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
        if let Some(headers) = params.get("headers").and_then(Json::as_object) {
            for (name, value) in headers {
                if !is_template(name) && !is_header_name(name) {
                    problems.push(
                        ParamProblem::new(
                            pointer("/headers", name),
                            format!("`{name}` is not a valid header name"),
                        )
                        .with_help("header names are letters, digits and `-`, with no spaces or `:`"),
                    );
                }
                if let Some(value) = value.as_str()
                    && !is_template(value)
                    && value.contains(['\r', '\n'])
                {
                    problems.push(ParamProblem::new(
                        pointer("/headers", name),
                        format!("the value of header `{name}` spans more than one line"),
                    ));
                }
            }
        }
        problems.extend(HumanDuration::check(params, "timeout"));
        problems
    }

    fn describe(&self, params: &Json) -> String {
        let method = field(params, "method").unwrap_or_else(|| Method::default().to_string());
        let mut target = field(params, "url").unwrap_or_else(|| "(no URL given)".to_string());
        if let Some(query) = params.get("query").and_then(Json::as_object)
            && !query.is_empty()
        {
            let pairs: Vec<String> = query
                .iter()
                .map(|(name, value)| format!("{name}={}", any(value)))
                .collect();
            target.push(if target.contains('?') { '&' } else { '?' });
            target.push_str(&pairs.join("&"));
        }
        let mut text = format!("{method} {target}");

        let given = |name| params.get(name).is_some_and(|v| !v.is_null());
        let mut with = Vec::new();
        if given("json") {
            with.push("a JSON body".to_string());
        } else if given("body") {
            with.push("a body".to_string());
        }
        let headers = keys(params, "headers");
        match headers.len() {
            0 => {}
            1 => with.push(format!("header {}", headers[0])),
            _ => with.push(format!("headers {}", headers.join(", "))),
        }
        if !with.is_empty() {
            text.push_str(&format!(" with {}", series(&with, "and")));
        }

        let statuses = scalars(params, "expect_status");
        let expecting = if statuses.is_empty() {
            "2xx".to_string()
        } else {
            series(&statuses, "or")
        };
        text.push_str(&format!(", expecting {expecting}"));
        if given("timeout") {
            let timeout = HumanDuration::describe(params, "timeout", HumanDuration::from_secs(0));
            text.push_str(&format!(" within {timeout}"));
        }
        text
    }

    /// Result: `{"status": 200, "headers": {"content-type": "..."}, "body":
    /// "...", "json": <the body read as JSON, or null>}`. Header names are
    /// lowercase; a header sent more than once has its values joined with
    /// `, `.
    fn run(&self, cx: StepContext) -> StepFuture<'_> {
        Box::pin(async move {
            let params: HttpParams = crate::read_params("http", &cx.params)?;
            let client = self.client()?;
            tokio::select! {
                outcome = send(client, &params, &cx.idempotency_key) => outcome,
                () = cx.cancel.cancelled() => Err(crate::cancelled()),
            }
        })
    }
}

impl Http {
    fn client(&self) -> Result<&reqwest::Client, StepError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))
            })
            .as_ref()
            .map_err(|e| StepError::new(e.clone()))
    }
}

/// Sends the request and reads the response into the step's result.
async fn send(client: &reqwest::Client, params: &HttpParams, idempotency_key: &str) -> Result<Json, StepError> {
    let method = params.method;
    let url = params.url.as_str();
    let parsed = reqwest::Url::parse(url).map_err(|e| StepError::new(format!("`{url}` is not a valid URL: {e}")))?;
    let timeout = params.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);

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

    let mut request = client.request(method.into(), parsed).headers(headers).timeout(timeout);
    if !params.query.is_empty() {
        let pairs: Vec<(&str, String)> = params.query.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect();
        request = request.query(&pairs);
    }
    if let Some(body) = &params.json {
        request = request.json(body);
    } else if let Some(body) = &params.body {
        request = request.body(body.clone());
    }

    let failed = |e: reqwest::Error| request_error(method, url, timeout, &e);
    let mut response = request.send().await.map_err(failed)?;
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
    if ExpectStatus::accepts(params.expect_status.as_ref(), status.as_u16()) {
        Ok(result)
    } else {
        let expected = ExpectStatus::words(params.expect_status.as_ref());
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
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run, run_with};
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::task::AbortOnDropHandle;

    #[test]
    fn good_params_pass() {
        assert_valid::<HttpParams>("http", json!({"url": "https://api.example.com/health"}));
        assert_valid::<HttpParams>(
            "http",
            json!({
                "method": "POST",
                "url": "http://localhost:8080/snrl/resolve",
                "headers": {"x-api-key": "secret", "Content-Type": "application/json"},
                "query": {"a": "1", "b": 2, "c": true, "d": 1.5},
                "json": {"domain": "api.example.com"},
                "expect_status": [200, 201],
                "timeout": "10s"
            }),
        );
        assert_valid::<HttpParams>("http", json!({"url": "https://x", "body": "raw", "expect_status": 204}));
        assert_valid::<HttpParams>(
            "http",
            json!({"url": "{{ inputs.api_url }}/health", "headers": {"x-api-key": "{{ secrets.api_key }}"}, "timeout": "{{ inputs.t }}"}),
        );
    }

    #[test]
    fn params_read_at_run_time() {
        let params: HttpParams = serde_json::from_value(json!({"url": "https://x", "query": {"n": 2}})).unwrap();
        assert_eq!(params.method, Method::Get);
        assert_eq!(params.query["n"].to_string(), "2");
        assert_eq!(params.expect_status, None);
        assert!(ExpectStatus::accepts(None, 204));
        assert!(!ExpectStatus::accepts(None, 301));
        let params: HttpParams =
            serde_json::from_value(json!({"url": "https://x", "expect_status": [200, 404], "timeout": "1m"})).unwrap();
        assert!(ExpectStatus::accepts(params.expect_status.as_ref(), 404));
        assert_eq!(params.timeout, Some(HumanDuration::from_secs(60)));
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected(
            "http",
            json!({"url": "https://x", "json": {}, "body": "x"}),
            "/body",
            "`json` and `body` are both given",
        );
        let problem = assert_rejected(
            "http",
            json!({"url": "api.example.com/health"}),
            "/url",
            "must start with `http://`",
        );
        assert_eq!(
            problem.help.as_deref(),
            Some("add the scheme, such as `https://api.example.com/health`")
        );
        let problem = assert_rejected("http", json!({"url": "ftp://x"}), "/url", "must start with `http://`");
        assert!(problem.help.unwrap().contains("`ftp` URLs are not supported"));
        assert_rejected(
            "http",
            json!({"url": "https://x", "timeout": "10"}),
            "/timeout",
            "`10` has no unit",
        );
        assert_rejected(
            "http",
            json!({"url": "https://x", "timeout": "soon"}),
            "/timeout",
            "`timeout` is not a duration",
        );
        assert_rejected(
            "http",
            json!({"url": "https://x", "method": "FETCH"}),
            "/method",
            "must be one of `GET`, `POST`",
        );
        assert_rejected(
            "http",
            json!({"url": "https://x", "expect_status": "200"}),
            "/expect_status",
            "must be an integer or a list",
        );
        assert_rejected(
            "http",
            json!({"url": "https://x", "expect_status": [200, 700]}),
            "/expect_status/1",
            "above the maximum 599",
        );
        assert_rejected(
            "http",
            json!({"url": "https://x", "query": {"a": [1]}}),
            "/query/a",
            "must be `true` or `false` or a number or a string, found a list",
        );
        assert_rejected(
            "http",
            json!({"url": "https://x", "headers": {"x-n": 5}}),
            "/headers/x-n",
            "must be a string",
        );
        assert_rejected(
            "http",
            json!({"url": "https://x", "headers": {"x api": "1"}}),
            "/headers/x api",
            "not a valid header name",
        );
        assert_rejected(
            "http",
            json!({"url": "https://x", "headers": {"a": "1\r\nb: 2"}}),
            "/headers/a",
            "more than one line",
        );
        assert_rejected("http", json!({"method": "GET"}), "", "missing parameter `url`");
        let problem = assert_rejected(
            "http",
            json!({"url": "https://x", "header": {}}),
            "/header",
            "unknown parameter `header`",
        );
        assert_eq!(problem.help.as_deref(), Some("did you mean `headers`?"));
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "http",
            &[
                json!({"url": "https://api.example.com/health"}),
                json!({"method": "POST", "url": "https://api/snrl/resolve", "json": {"domain": "api.example.com"}}),
                json!({"url": "<inputs.api_url>/health", "headers": {"x-api-key": "***"}}),
                json!({
                    "method": "PUT",
                    "url": "https://x/items?dry=1",
                    "headers": {"x-api-key": "***", "accept": "text/plain"},
                    "query": {"a": 1, "b": "two", "c": true},
                    "body": "hello",
                    "expect_status": [200, 201, 204],
                    "timeout": "90s"
                }),
                json!({"method": "DELETE", "url": "https://x/items/<steps.create.outputs.id>", "expect_status": 404, "timeout": "<inputs.t>"}),
                json!({"url": 5}),
            ],
        ));
    }

    /// A request as the test server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        /// The values of header `name` (lowercase), in order.
        fn header(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    /// What the test server answers.
    struct Answer {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: String,
        delay: Duration,
    }

    impl Answer {
        fn new(status: u16, body: impl Into<String>) -> Self {
            Self {
                status,
                headers: Vec::new(),
                body: body.into(),
                delay: Duration::ZERO,
            }
        }

        fn json(body: Json) -> Self {
            let mut answer = Self::new(200, body.to_string());
            answer.headers.push(("Content-Type", "application/json"));
            answer
        }
    }

    /// A small HTTP/1.1 server on 127.0.0.1 that answers every request with
    /// what `answer` says, records the requests, and closes each connection
    /// after its answer.
    struct TestServer {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        _accepting: AbortOnDropHandle<()>,
    }

    impl TestServer {
        async fn start(answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let answer = Arc::new(answer);
            let accepting = tokio::spawn({
                let seen = Arc::clone(&seen);
                async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                        tokio::spawn(async move {
                            let _ = serve(stream, &seen, &*answer).await;
                        });
                    }
                }
            });
            Self {
                url,
                seen,
                _accepting: AbortOnDropHandle::new(accepting),
            }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    async fn serve(
        mut stream: TcpStream,
        seen: &Mutex<Vec<Seen>>,
        answer: &(dyn Fn(&Seen) -> Answer + Sync),
    ) -> std::io::Result<()> {
        let mut data = Vec::new();
        let mut buffer = [0; 4096];
        let head_end = loop {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                return Ok(());
            }
            data.extend_from_slice(&buffer[..n]);
            if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_string();
        let target = request_line.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().unwrap());
        while data.len() < head_end + 4 + length {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buffer[..n]);
        }
        let body = String::from_utf8_lossy(&data[head_end + 4..]).into_owned();
        let request = Seen {
            method,
            target,
            headers,
            body,
        };
        seen.lock().unwrap().push(request.clone());
        let answer = answer(&request);
        tokio::time::sleep(answer.delay).await;
        let reason = reqwest::StatusCode::from_u16(answer.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Whatever");
        let mut response = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-length: {}\r\nconnection: close\r\n",
            answer.status,
            answer.body.len()
        );
        for (name, value) in &answer.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&answer.body);
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    }

    #[tokio::test]
    async fn gets_status_headers_and_json() {
        let server = TestServer::start(|_| {
            let mut answer = Answer::json(json!({"healthy": true, "pop": "fra"}));
            answer.headers.push(("X-Served-By", "a"));
            answer.headers.push(("X-Served-By", "b"));
            answer
        })
        .await;
        let host = Arc::new(FakeHost::new());
        let url = format!("{}/health", server.url);
        let result = run(
            "http",
            &host,
            json!({"url": url, "query": {"verbose": true, "q": "a b"}}),
        )
        .await
        .unwrap();
        assert_eq!(result["status"], 200);
        assert_eq!(result["json"], json!({"healthy": true, "pop": "fra"}));
        assert_eq!(result["body"], r#"{"healthy":true,"pop":"fra"}"#);
        assert_eq!(result["headers"]["content-type"], "application/json");
        assert_eq!(result["headers"]["x-served-by"], "a, b");

        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].target, "/health?verbose=true&q=a+b");
        assert_eq!(
            seen[0].header("user-agent"),
            [concat!("runbook/", env!("CARGO_PKG_VERSION"))]
        );
        assert_eq!(seen[0].header("idempotency-key"), ["run-1.step"]);
    }

    #[tokio::test]
    async fn posts_json_with_headers() {
        let server = TestServer::start(|_| Answer::new(201, "created")).await;
        let host = Arc::new(FakeHost::new());
        let url = format!("{}/snrl/resolve", server.url);
        let body = json!({"domain": "api.example.com", "weights": [1, 2.5], "note": "é"});
        let result = run(
            "http",
            &host,
            json!({"method": "POST", "url": url, "headers": {"X-Api-Key": "secret"}, "json": body}),
        )
        .await
        .unwrap();
        assert_eq!(result["status"], 201);
        assert_eq!(result["body"], "created");
        assert_eq!(result["json"], Json::Null);

        let seen = &server.seen()[0];
        assert_eq!(seen.method, "POST");
        assert_eq!(serde_json::from_str::<Json>(&seen.body).unwrap(), body);
        assert_eq!(seen.header("content-type"), ["application/json"]);
        assert_eq!(seen.header("x-api-key"), ["secret"]);
        assert_eq!(seen.header("idempotency-key"), ["run-1.step"]);
    }

    #[tokio::test]
    async fn sends_a_body_and_the_caller_s_own_idempotency_key() {
        let server = TestServer::start(|_| Answer::new(204, "")).await;
        let host = Arc::new(FakeHost::new());
        let params = json!({
            "method": "PUT",
            "url": server.url,
            "headers": {"Idempotency-Key": "mine", "Content-Type": "text/plain"},
            "body": "as it is {",
        });
        let result = run("http", &host, params).await.unwrap();
        assert_eq!(result["status"], 204);
        let seen = &server.seen()[0];
        assert_eq!((seen.method.as_str(), seen.target.as_str()), ("PUT", "/"));
        assert_eq!(seen.body, "as it is {");
        assert_eq!(seen.header("idempotency-key"), ["mine"]);
        assert_eq!(seen.header("content-type"), ["text/plain"]);
    }

    #[tokio::test]
    async fn an_unexpected_status_fails_with_the_response() {
        let server = TestServer::start(|_| Answer::new(500, "database down")).await;
        let host = Arc::new(FakeHost::new());
        let url = format!("{}/x", server.url);
        let error = run("http", &host, json!({"method": "POST", "url": url, "json": {}}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!("POST {url} answered 500 Internal Server Error (expected 2xx)")
        );
        let result = error.result.unwrap();
        assert_eq!(
            (&result["status"], &result["body"]),
            (&json!(500), &json!("database down"))
        );
    }

    #[tokio::test]
    async fn expect_status_says_which_statuses_succeed() {
        let server = TestServer::start(|seen| match seen.target.as_str() {
            "/gone" => Answer::new(404, ""),
            "/odd" => Answer::new(599, ""),
            _ => Answer::new(200, ""),
        })
        .await;
        let host = Arc::new(FakeHost::new());
        let gone = format!("{}/gone", server.url);
        let result = run("http", &host, json!({"url": gone, "expect_status": [200, 404]})).await;
        assert_eq!(result.unwrap()["status"], 404);
        let error = run("http", &host, json!({"url": gone, "expect_status": [200, 204]}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!("GET {gone} answered 404 Not Found (expected 200 or 204)")
        );
        let error = run("http", &host, json!({"url": server.url, "expect_status": 204}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!("GET {} answered 200 OK (expected 204)", server.url)
        );
        let odd = format!("{}/odd", server.url);
        let error = run("http", &host, json!({"url": odd})).await.unwrap_err();
        assert_eq!(error.message, format!("GET {odd} answered 599 (expected 2xx)"));
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let host = Arc::new(FakeHost::new());
        let url = format!("http://127.0.0.1:{port}/health");
        let error = run("http", &host, json!({"url": url})).await.unwrap_err();
        assert_eq!(error.message, format!("cannot connect to {url}: connection refused"));
        assert_eq!(error.result, None);
    }

    #[tokio::test]
    async fn a_slow_response_times_out() {
        let server = TestServer::start(|_| {
            let mut answer = Answer::new(200, "late");
            answer.delay = Duration::from_secs(10);
            answer
        })
        .await;
        let host = Arc::new(FakeHost::new());
        let started = Instant::now();
        let error = run("http", &host, json!({"url": server.url, "timeout": "200ms"}))
            .await
            .unwrap_err();
        assert_eq!(error.message, format!("GET {} timed out after 200ms", server.url));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn cancellation_abandons_the_request() {
        let server = TestServer::start(|_| {
            let mut answer = Answer::new(200, "late");
            answer.delay = Duration::from_secs(10);
            answer
        })
        .await;
        let host = Arc::new(FakeHost::new());
        let cx = host.step_context(json!({"url": server.url}));
        let cancel = cx.cancel.clone();
        let started = Instant::now();
        let (outcome, ()) = tokio::join!(run_with("http", cx), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        });
        assert_eq!(outcome.unwrap_err().message, "cancelled");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_bad_url_or_header_is_named() {
        let host = Arc::new(FakeHost::new());
        let error = run("http", &host, json!({"url": "http//x"})).await.unwrap_err();
        assert_eq!(
            error.message,
            "`http//x` is not a valid URL: relative URL without a base"
        );
        let error = run("http", &host, json!({"url": "http://x", "headers": {"a b": "1"}}))
            .await
            .unwrap_err();
        assert_eq!(error.message, "`a b` is not a valid header name");
    }

    #[test]
    fn one_client_serves_every_request() {
        let http = Http::default();
        let first: *const reqwest::Client = http.client().unwrap();
        let second: *const reqwest::Client = http.client().unwrap();
        assert_eq!(first, second);
    }
}
