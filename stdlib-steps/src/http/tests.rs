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
    assert_eq!(params.method, Templated::Value(Method::Get));
    assert_eq!(params.query["n"].to_string(), "2");
    assert_eq!(params.expect_status, None);
    assert!(ExpectStatus::accepts(None, 204));
    assert!(!ExpectStatus::accepts(None, 301));
    let params: HttpParams =
        serde_json::from_value(json!({"url": "https://x", "expect_status": [200, 404], "timeout": "1m"})).unwrap();
    assert!(ExpectStatus::accepts(
        params.expect_status.as_ref().and_then(Templated::known),
        404
    ));
    assert_eq!(params.timeout, Some(Templated::Value(HumanDuration::from_secs(60))));
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
            json!({"url": "https://x/old", "follow_redirects": false}),
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
    headers: Vec<(&'static str, String)>,
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
        answer.headers.push(("Content-Type", "application/json".into()));
        answer
    }

    /// A redirect to `location`.
    fn redirect(status: u16, location: impl Into<String>) -> Self {
        let mut answer = Self::new(status, "");
        answer.headers.push(("Location", location.into()));
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
        answer.headers.push(("X-Served-By", "a".into()));
        answer.headers.push(("X-Served-By", "b".into()));
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
        "`url` must start with `http://` or `https://`. Nothing was changed; add the scheme, such as `https://http//x`"
    );
    let error = run("http", &host, json!({"url": "http://[x"})).await.unwrap_err();
    assert_eq!(error.message, "`http://[x` is not a valid URL: invalid IPv6 address");
    let error = run("http", &host, json!({"url": "http://x", "headers": {"a b": "1"}}))
        .await
        .unwrap_err();
    assert_eq!(
        error.message,
        "`a b` is not a valid header name. Nothing was changed; header names are letters, digits and `-`, with no spaces or `:`"
    );
}

#[test]
fn one_client_serves_every_request() {
    let http = Http::default();
    let first: *const reqwest::Client = http.client().unwrap();
    let second: *const reqwest::Client = http.client().unwrap();
    assert_eq!(first, second);
}

const SECRET: &str = "s3cr3t-value";

/// Headers that carry the secret, as a step would set them.
fn secret_headers() -> Json {
    json!({
        "x-api-key": SECRET,
        "x-token": SECRET,
        "Authorization": format!("Bearer {SECRET}"),
        "Cookie": format!("session={SECRET}"),
    })
}

/// Whether a request carried the secret anywhere, or a `Referer`.
fn leaked(seen: &Seen) -> Option<String> {
    seen.headers
        .iter()
        .find(|(name, value)| name == "referer" || value.contains(SECRET) || name.starts_with("x-"))
        .map(|(name, value)| format!("{name}: {value}"))
        .or_else(|| (seen.target.contains(SECRET) || seen.body.contains(SECRET)).then(|| seen.target.clone()))
}

#[tokio::test]
async fn a_redirect_to_another_origin_carries_none_of_the_step_s_headers() {
    // Two ports of 127.0.0.1 are two origins. The other one sends the
    // request back: the headers stay dropped on the way back too.
    let first = Arc::new(Mutex::new(String::new()));
    let other = TestServer::start({
        let first = Arc::clone(&first);
        move |seen| match seen.target.as_str() {
            "/landing" => Answer::redirect(302, format!("{}/back", first.lock().unwrap())),
            _ => Answer::new(404, ""),
        }
    })
    .await;
    let other_url = other.url.clone();
    let server = TestServer::start(move |seen| match seen.target.as_str() {
        "/back" => Answer::json(json!({"back": true})),
        _ => Answer::redirect(307, format!("{other_url}/landing")),
    })
    .await;
    *first.lock().unwrap() = server.url.clone();
    let host = Arc::new(FakeHost::new());
    let url = format!("{}/start?token={SECRET}", server.url);
    let result = run("http", &host, json!({"url": url, "headers": secret_headers()}))
        .await
        .unwrap();
    assert_eq!(result["json"], json!({"back": true}));

    let landed = other.seen();
    assert_eq!(landed.len(), 1, "{landed:?}");
    assert_eq!(landed[0].target, "/landing");
    assert_eq!(leaked(&landed[0]), None, "{:?}", landed[0]);
    assert!(landed[0].header("authorization").is_empty() && landed[0].header("cookie").is_empty());
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].header("x-api-key"), [SECRET]);
    assert_eq!(
        (seen[1].target.as_str(), leaked(&seen[1])),
        ("/back", None),
        "{:?}",
        seen[1]
    );
}

#[tokio::test]
async fn a_redirect_on_the_same_origin_keeps_the_headers_and_the_body() {
    let server = TestServer::start(|seen| match seen.target.as_str() {
        "/start" => Answer::redirect(308, "/moved"),
        _ => Answer::new(201, "created"),
    })
    .await;
    let host = Arc::new(FakeHost::new());
    let url = format!("{}/start", server.url);
    let params = json!({"method": "POST", "url": url, "headers": secret_headers(), "json": {"a": 1}});
    let result = run("http", &host, params).await.unwrap();
    assert_eq!(result["status"], 201);
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let moved = &seen[1];
    assert_eq!((moved.method.as_str(), moved.target.as_str()), ("POST", "/moved"));
    assert_eq!(moved.body, r#"{"a":1}"#);
    assert_eq!(moved.header("x-api-key"), [SECRET]);
    assert_eq!(moved.header("x-token"), [SECRET]);
    assert_eq!(moved.header("idempotency-key"), ["run-1.step"]);
    assert!(moved.header("referer").is_empty(), "{moved:?}");
}

#[tokio::test]
async fn a_303_or_a_302_after_a_post_gets_without_a_body() {
    let server = TestServer::start(|seen| match seen.target.as_str() {
        "/a" => Answer::redirect(303, "/b"),
        "/b" => Answer::redirect(302, "/c"),
        _ => Answer::new(200, "done"),
    })
    .await;
    let host = Arc::new(FakeHost::new());
    let url = format!("{}/a", server.url);
    let result = run(
        "http",
        &host,
        json!({"method": "PUT", "url": url, "body": "x", "headers": {"Content-Type": "text/plain"}}),
    )
    .await
    .unwrap();
    assert_eq!(result["body"], "done");
    let seen = server.seen();
    let requests: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.target.as_str(), s.body.as_str()))
        .collect();
    assert_eq!(requests, [("PUT", "/a", "x"), ("GET", "/b", ""), ("GET", "/c", "")]);
    assert!(seen[1].header("content-type").is_empty(), "{:?}", seen[1]);
}

#[tokio::test]
async fn a_body_is_never_sent_to_another_origin() {
    let other = TestServer::start(|_| Answer::new(200, "")).await;
    let other_url = other.url.clone();
    let server = TestServer::start(move |_| Answer::redirect(307, format!("{other_url}/steal"))).await;
    let host = Arc::new(FakeHost::new());
    let url = format!("{}/start", server.url);
    let error = run(
        "http",
        &host,
        json!({"method": "POST", "url": url, "json": {"secret": SECRET}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.message,
        format!(
            "POST {url} answered 307 Temporary Redirect, a redirect to {}/steal on another origin ({} → {}) \
             that would send the request body there too; a body is never sent to another origin: request \
             {}/steal directly if it is meant to get it, or set `follow_redirects: false`",
            other.url, server.url, other.url, other.url
        )
    );
    assert!(other.seen().is_empty());
}

#[tokio::test]
async fn follow_redirects_false_gives_the_redirect_as_the_result() {
    let server = TestServer::start(|_| Answer::redirect(302, "/elsewhere")).await;
    let host = Arc::new(FakeHost::new());
    let params = json!({"url": server.url, "follow_redirects": false, "expect_status": 302});
    let result = run("http", &host, params).await.unwrap();
    assert_eq!(result["status"], 302);
    assert_eq!(result["headers"]["location"], "/elsewhere");
    assert_eq!(server.seen().len(), 1);
    let error = run("http", &host, json!({"url": server.url, "follow_redirects": false}))
        .await
        .unwrap_err();
    assert!(
        error.message.ends_with("answered 302 Found (expected 2xx)"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_redirect_loop_stops_after_ten() {
    let server = TestServer::start(|_| Answer::redirect(302, "/again")).await;
    let host = Arc::new(FakeHost::new());
    let error = run("http", &host, json!({"url": server.url})).await.unwrap_err();
    assert_eq!(
        error.message,
        format!(
            "GET {} was redirected more than 10 times (the last time to {}/again)",
            server.url, server.url
        )
    );
    assert_eq!(server.seen().len(), 11);
}
