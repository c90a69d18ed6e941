//! `standin`: the stand-in service on its own, so a person can run the
//! example runbooks by hand against it. Prints `listening on URL`, then one
//! line per request it receives, until interrupted.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use testkit::{StandIn, State};

const USAGE: &str = "\
usage: standin [--port PORT] [--api-key KEY] [--admin-secret SECRET]

Serves the runbook stand-in service on 127.0.0.1 (port 0, the default, picks a
free port) until interrupted.";

fn main() -> ExitCode {
    let mut port = 0u16;
    let mut state = State::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("`{name}` needs a value"));
        let parsed = match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--port" => {
                value("--port").and_then(|v| v.parse().map(|p| port = p).map_err(|_| format!("`{v}` is not a port")))
            }
            "--api-key" => value("--api-key").map(|v| state.api_key = v),
            "--admin-secret" => value("--admin-secret").map(|v| state.admin_secret = v),
            other => Err(format!("unexpected argument `{other}`")),
        };
        if let Err(message) = parsed {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let (api_key, admin_secret) = (state.api_key.clone(), state.admin_secret.clone());
    let service = match StandIn::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), state) {
        Ok(service) => service,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", service.url());
    eprintln!("x-api-key: {api_key}");
    eprintln!("x-admin-secret: {admin_secret}");
    eprintln!(
        "try: RUNBOOK_API_URL={} RUNBOOK_API_KEY={api_key} runbook run runbooks/capsule-snapshot.yaml",
        service.url()
    );
    let mut shown = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let requests = service.requests();
        for request in requests.iter().skip(shown) {
            let query = if request.query.is_empty() {
                String::new()
            } else {
                format!("?{}", request.query)
            };
            println!("{} {}{query} {}", request.method, request.path, request.body);
        }
        shown = requests.len();
    }
}
