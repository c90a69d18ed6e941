//! End-to-end tests of issue #8, items 6, 8 and 9, with the real binary:
//! values templated into a shell command run nothing wherever the author
//! put them, `check` refuses the places no quoting can help, values in an
//! `http` step's URL stay in their part of it, and a redirect to another
//! origin carries none of a step's secrets. Each test fails on the code
//! before the fix.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use support::Sandbox;

/// A runbook with one input `v` and one `shell` step running `run`.
fn shell_runbook(run: &str) -> Sandbox {
    let run = serde_json::to_string(run).unwrap();
    Sandbox::new(&format!(
        "runbook: 1\nname: quoting\ninputs:\n  v: {{ type: string }}\nsteps:\n  - id: print\n    uses: shell\n    with: {{ run: {run} }}\n"
    ))
}

/// Runs the runbook with `v` as the input; the command runs in the sandbox.
fn run_with(sandbox: &Sandbox, v: &str) -> support::Outcome {
    sandbox.run(&["--input", &format!("v={v}")])
}

#[test]
fn a_value_inside_double_quotes_ran_commands() {
    let sandbox = shell_runbook(r#"printf '%s' "{{ inputs.v }}" > out"#);
    let hostile = "$(touch pwned) `touch pwned` \"; touch pwned; \" \\";
    let outcome = run_with(&sandbox, hostile);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!sandbox.file("pwned").exists(), "the input ran a command");
    assert_eq!(sandbox.read("out"), hostile);
}

#[test]
fn a_value_inside_single_quotes_ran_commands() {
    let sandbox = shell_runbook("printf '%s' '{{ inputs.v }}' > out");
    let hostile = "x; touch pwned; y 'z";
    let outcome = run_with(&sandbox, hostile);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!sandbox.file("pwned").exists(), "the input ran a command");
    assert_eq!(sandbox.read("out"), hostile);
}

#[test]
fn a_value_in_a_here_document_ran_commands() {
    let sandbox = shell_runbook("cat > out <<EOF\n{{ inputs.v }}\nEOF");
    let hostile = "$(touch pwned) `touch pwned` 'q' \\";
    let outcome = run_with(&sandbox, hostile);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!sandbox.file("pwned").exists(), "the input ran a command");
    assert_eq!(sandbox.read("out"), format!("{hostile}\n"));
}

#[test]
fn a_value_holding_the_delimiter_line_ended_the_here_document() {
    let sandbox = shell_runbook("cat > out <<EOF\n{{ inputs.v }}\nEOF");
    let outcome = run_with(&sandbox, "x\nEOF\ntouch pwned\ncat <<EOF");
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert!(!sandbox.file("pwned").exists(), "the input ran a command");
    assert!(!sandbox.file("out").exists(), "the step never started");
    let stderr = outcome.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        stderr.contains("a value makes the line `EOF`, which would end the here-document early"),
        "{}",
        outcome.transcript()
    );
}

#[test]
fn a_value_in_a_comment_started_a_command_on_the_next_line() {
    let sandbox = shell_runbook("printf ok > out # {{ inputs.v }}");
    let outcome = run_with(&sandbox, "x\ntouch pwned #");
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!sandbox.file("pwned").exists(), "the input ran a command");
    assert_eq!(sandbox.read("out"), "ok");
}

#[test]
fn check_accepted_a_template_inside_backticks() {
    let sandbox = Sandbox::new(
        "runbook: 1\nname: backticks\ninputs:\n  file: { type: string }\nsteps:\n  - id: count\n    uses: shell\n    with: { run: \"echo `wc -l {{ inputs.file }}`\" }\n",
    );
    let outcome = sandbox.runbook(&["check", "runbook.yaml"], &[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    let stderr = &outcome.stderr;
    assert!(stderr.contains("runbook::validate::shell_quoting"), "{stderr}");
    assert!(stderr.contains("a value inside backticks cannot be quoted"), "{stderr}");
    let words = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("help: write `$(…)` instead of backticks (a bare `{{ x }}` in it is quoted for you); or pass it in `env:` and write \"$X\""),
        "{stderr}"
    );
    // The underline is under `{{ inputs.file }}`, and under nothing else.
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("with: { run:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let source: Vec<char> = lines[at].chars().collect();
    let underline: Vec<char> = lines[at + 1].chars().collect();
    let start = source.windows(2).position(|w| w == ['{', '{']).unwrap();
    let marked: Vec<usize> = (0..underline.len())
        .filter(|&i| matches!(underline[i], '─' | '┬'))
        .collect();
    assert_eq!(
        (marked.first().copied(), marked.len()),
        (Some(start), "{{ inputs.file }}".len()),
        "{stderr}"
    );
    assert!(lines[at + 2].contains("inside backticks"), "{stderr}");
}

/// A request as a test server saw it: the request line and the headers.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<String>,
}

impl Seen {
    fn has_header(&self, name: &str) -> bool {
        let prefix = format!("{name}:");
        self.headers.iter().any(|h| h.to_ascii_lowercase().starts_with(&prefix))
    }
}

/// A small HTTP/1.1 server on 127.0.0.1 that answers each request with
/// `answer(path)` (a status line and extra headers) and records it.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(answer: impl Fn(&str) -> (&'static str, String) + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut headers = Vec::new();
                let mut length = 0usize;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    headers.push(header.trim().to_string());
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                record.lock().unwrap().push(Seen {
                    line: line.trim().to_string(),
                    headers,
                });
                let (status, extra) = answer(&path);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{extra}content-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn a_value_in_a_url_path_reached_another_path() {
    let server = Server::start(|_| ("200 OK", String::new()));
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: urls
inputs:
  api: { type: url }
  id: { type: string }
steps:
  - id: restore
    uses: http
    with: { method: POST, url: "{{ inputs.api }}/capsules/{{ inputs.id }}/restore?dry={{ inputs.id }}" }
  - id: wait_restored
    uses: wait
    with:
      probe: { uses: http, with: { url: "{{ inputs.api }}/capsules/{{ inputs.id }}" } }
      until: result.status == 200
"#,
    );
    let hostile = "../../admin?evil=1#";
    let outcome = sandbox.run(&[
        "--input",
        &format!("api={}", server.url),
        "--input",
        &format!("id={hostile}"),
    ]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    let lines: Vec<String> = server.seen().into_iter().map(|s| s.line).collect();
    assert_eq!(
        lines,
        [
            "POST /capsules/..%2F..%2Fadmin%3Fevil%3D1%23/restore?dry=..%2F..%2Fadmin%3Fevil%3D1%23 HTTP/1.1",
            "GET /capsules/..%2F..%2Fadmin%3Fevil%3D1%23 HTTP/1.1",
        ]
    );

    // A value that would be a `..` segment is refused before anything is sent.
    let outcome = sandbox.run(&["--input", &format!("api={}", server.url), "--input", "id=.."]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    let stderr = outcome.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        stderr.contains("a value makes the path segment `..`, which would climb out of the path"),
        "{}",
        outcome.transcript()
    );
    assert_eq!(server.seen().len(), 2, "nothing more was sent");
}

#[test]
fn a_redirect_to_another_origin_carried_the_step_s_secrets() {
    const SECRET: &str = "hunter2-secret";
    // Two ports of 127.0.0.1 are two origins.
    let other = Server::start(|_| ("200 OK", String::new()));
    let other_url = other.url.clone();
    let server = Server::start(move |path| match path {
        "/landing" => ("200 OK", String::new()),
        p if p.starts_with("/same") => ("302 Found", "location: /landing\r\n".to_string()),
        _ => ("307 Temporary Redirect", format!("location: {other_url}/stolen\r\n")),
    });
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: redirects
inputs:
  api: { type: url }
secrets:
  key: { env: API_KEY }
steps:
  - id: away
    uses: http
    with:
      url: "{{ inputs.api }}/start?token={{ secrets.key }}"
      headers: { x-api-key: "{{ secrets.key }}", x-token: "{{ secrets.key }}", authorization: "Bearer {{ secrets.key }}" }
  - id: same
    uses: http
    with:
      url: "{{ inputs.api }}/same?token={{ secrets.key }}"
      headers: { x-api-key: "{{ secrets.key }}", x-token: "{{ secrets.key }}" }
"#,
    );
    let outcome = sandbox.runbook(
        &["run", "runbook.yaml", "--input", &format!("api={}", server.url)],
        &[("API_KEY", SECRET)],
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());

    let stolen = other.seen();
    assert_eq!(stolen.len(), 1, "{stolen:?}");
    assert_eq!(stolen[0].line, "GET /stolen HTTP/1.1");
    for header in &stolen[0].headers {
        let lower = header.to_ascii_lowercase();
        assert!(
            !lower.contains(SECRET) && !lower.starts_with("referer:") && !lower.starts_with("x-"),
            "the other origin saw `{header}`"
        );
    }
    assert!(!stolen[0].has_header("authorization"), "{stolen:?}");

    // On the same origin, the step's headers go along, and no `Referer`.
    let seen = server.seen();
    let landing = seen
        .iter()
        .find(|s| s.line.starts_with("GET /landing"))
        .unwrap_or_else(|| panic!("{seen:?}"));
    assert!(
        landing.has_header("x-api-key") && landing.has_header("x-token"),
        "{landing:?}"
    );
    assert!(!landing.has_header("referer"), "{landing:?}");
}
