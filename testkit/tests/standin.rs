//! The stand-in answers every endpoint the example runbooks call, switches
//! its answers through `State`, and records what it was sent.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{Capsule, Dns, FaultEffect, Health, NoPop, StandIn, Transaction, anchor_hash};

/// A status and the body parsed as JSON.
#[derive(Debug)]
struct Answer {
    status: u16,
    json: Value,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = response.expect("the stand-in answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("a text body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    Answer { status, json }
}

fn get(service: &StandIn, path: &str) -> Answer {
    answer(agent().get(service.url_for(path)).call())
}

fn post(service: &StandIn, path: &str, body: Value) -> Answer {
    post_with(service, path, &[], &body.to_string())
}

fn post_with(service: &StandIn, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = agent()
        .post(service.url_for(path))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    answer(request.send(body))
}

#[test]
fn health_answers_per_state() {
    let service = StandIn::start();
    let up = get(&service, "/health");
    assert_eq!((up.status, &up.json["ok"]), (200, &json!(true)));

    service.set(|state| state.health = Health::Down);
    let down = get(&service, "/health");
    assert_eq!((down.status, &down.json["ok"]), (503, &json!(false)));

    service.set(|state| state.health = Health::Error);
    assert_eq!(get(&service, "/health").status, 500);

    service.set(|state| state.health = Health::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    let slow = get(&service, "/health");
    assert_eq!(slow.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300), "answered too soon");
}

#[test]
fn a_slow_health_answer_does_not_hold_up_other_requests() {
    let service = StandIn::start();
    service.set(|state| state.health = Health::Slow(Duration::from_secs(1)));
    let url = service.url_for("/health");
    let slow = std::thread::spawn(move || answer(agent().get(url).call()).status);
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    assert_eq!(get(&service, "/status").status, 200);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn capsules_are_taken_and_restored_with_the_api_key() {
    let service = StandIn::start();
    let first = post(&service, "/capsules", json!({ "memo": "Nightly" }));
    assert_eq!(first.status, 201);
    assert_eq!(first.json["id"], "cap-1");
    let second = post(&service, "/capsules", json!({ "memo": "before restore" }));
    assert_eq!(second.json["id"], "cap-2");
    assert_eq!(
        service.state().capsules,
        [
            Capsule {
                id: "cap-1".into(),
                memo: "Nightly".into()
            },
            Capsule {
                id: "cap-2".into(),
                memo: "before restore".into()
            },
        ]
    );

    let key = [("x-api-key", "test-api-key")];
    let restored = post_with(&service, "/capsules/cap-1/restore", &key, "");
    assert_eq!(
        (restored.status, restored.json.clone()),
        (200, json!({ "restored": "cap-1" }))
    );
    assert_eq!(service.state().capsule_restores, ["cap-1"]);

    let without_key = post_with(&service, "/capsules/cap-1/restore", &[], "");
    assert_eq!(without_key.status, 401);
    assert!(without_key.json["error"].as_str().unwrap().contains("x-api-key"));
    let wrong_key = post_with(&service, "/capsules/cap-1/restore", &[("x-api-key", "nope")], "");
    assert_eq!(wrong_key.status, 401);
    let unknown = post_with(&service, "/capsules/cap-9/restore", &key, "");
    assert_eq!(unknown.status, 404);
    assert_eq!(
        service.state().capsule_restores,
        ["cap-1"],
        "refused restores are not restores"
    );
}

#[test]
fn preset_capsules_can_be_restored_and_are_not_reused() {
    let service = StandIn::start();
    service.set(|state| {
        state.api_key = "k".into();
        state.capsules.push(Capsule {
            id: "cap-1".into(),
            memo: "old".into(),
        });
    });
    assert_eq!(post(&service, "/capsules", json!({ "memo": "m" })).json["id"], "cap-2");
    assert_eq!(
        post_with(&service, "/capsules/cap-1/restore", &[("x-api-key", "k")], "").status,
        200
    );
}

#[test]
fn the_ledger_exports_replays_restores_and_imports() {
    let service = StandIn::start();
    let export = get(&service, "/ledger/export");
    assert_eq!(export.status, 200);
    let transactions = export.json["transactions"].as_array().unwrap().clone();
    assert_eq!(transactions.len(), 3);
    assert_eq!(
        transactions[0],
        json!({ "ts": "2024-04-30T09:00:00Z", "id": "tx-1", "amount": 1250 })
    );

    let replay = post(&service, "/ledger/replay", json!({ "since": "2024-05-01T12:00:00Z" }));
    assert_eq!(replay.json["replayed"], 2);
    assert_eq!(replay.json["transactions"][0]["id"], "tx-2");

    let restore = post(
        &service,
        "/ledger/snapshots/restore",
        json!({ "at": "2024-05-01T12:00:00Z" }),
    );
    assert_eq!(restore.status, 200);
    assert_eq!(restore.json["restored"].as_array().map(Vec::len), Some(1));
    assert_eq!(service.state().snapshot_restores, ["2024-05-01T12:00:00Z"]);
    assert_eq!(service.state().transactions.len(), 3, "no rollback unless asked for");

    service.set(|state| state.restore_rolls_back = true);
    post(
        &service,
        "/ledger/snapshots/restore",
        json!({ "at": "2024-05-01T12:00:00Z" }),
    );
    assert_eq!(service.state().transactions.len(), 1);

    let import = post_with(&service, "/ledger/import", &[], &export.json.to_string());
    assert_eq!((import.status, import.json.clone()), (200, json!({ "imported": 3 })));
    assert_eq!(service.state().transactions.len(), 3);
    assert_eq!(service.state().imports, 1);
}

#[test]
fn the_anchor_hash_depends_on_the_transactions_since() {
    let service = StandIn::start();
    let since = json!({ "since": "2024-05-01T12:00:00Z" });
    let first = post(&service, "/ledger/anchor", since.clone());
    assert_eq!(first.status, 200);
    let hash = first.json["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(first.json["count"], 2);
    assert_eq!(
        hash,
        anchor_hash(&service.state().transactions, "2024-05-01T12:00:00Z").unwrap()
    );
    assert_eq!(
        post(&service, "/ledger/anchor", since.clone()).json["hash"],
        hash.as_str(),
        "stable"
    );

    // A transaction before `since` is not covered...
    service.set(|state| {
        state
            .transactions
            .insert(0, Transaction::new("2020-01-01T00:00:00Z", "old", 1))
    });
    assert_eq!(
        post(&service, "/ledger/anchor", since.clone()).json["hash"],
        hash.as_str()
    );
    // ...one after it is, and so is a changed amount.
    service.set(|state| {
        state
            .transactions
            .push(Transaction::new("2024-06-01T00:00:00Z", "new", 1))
    });
    let with_new = post(&service, "/ledger/anchor", since.clone()).json["hash"].clone();
    assert_ne!(with_new, hash.as_str());
    service.set(|state| state.transactions.last_mut().unwrap().amount = 2);
    assert_ne!(post(&service, "/ledger/anchor", since.clone()).json["hash"], with_new);
    // Another `since` covers other transactions.
    let all = post(&service, "/ledger/anchor", json!({ "since": "2000-01-01T00:00:00Z" }));
    assert_eq!(all.json["count"], 5);

    let bad = post(&service, "/ledger/anchor", json!({ "since": "yesterday" }));
    assert_eq!(bad.status, 400);
    assert!(bad.json["error"].as_str().unwrap().contains("yesterday"));
}

#[test]
fn the_resolver_hands_out_a_healthy_pop_served_by_the_stand_in() {
    let service = StandIn::start();
    let resolved = post(&service, "/snrl/resolve", json!({ "domain": "api.example.com" }));
    assert_eq!(resolved.status, 200);
    let pop = resolved.json["pop"].as_str().unwrap().to_owned();
    assert_eq!(pop, service.url_for("/pop/eu-1"));
    assert_eq!(answer(agent().get(format!("{pop}/health")).call()).status, 200);

    service.set(|state| state.pops[0].healthy = false);
    assert_eq!(get(&service, "/pop/eu-1/health").status, 503);
    let second = post(&service, "/snrl/resolve", json!({ "domain": "api.example.com" }));
    assert_eq!(second.json["pop"], service.url_for("/pop/us-1").as_str());

    service.set(|state| state.pops.iter_mut().for_each(|pop| pop.healthy = false));
    let none = post(&service, "/snrl/resolve", json!({ "domain": "api.example.com" }));
    assert_eq!((none.status, &none.json["pop"]), (200, &Value::Null));
    service.set(|state| state.no_pop = NoPop::Unavailable);
    assert_eq!(
        post(&service, "/snrl/resolve", json!({ "domain": "api.example.com" })).status,
        503
    );

    assert_eq!(get(&service, "/pop/nowhere/health").status, 404);
}

#[test]
fn a_pop_can_be_another_stand_in() {
    let service = StandIn::start();
    let pop = StandIn::start();
    assert_ne!(service.port(), pop.port());
    service.set(|state| state.pops[0].url = Some(pop.url().to_owned()));
    let resolved = post(&service, "/snrl/resolve", json!({ "domain": "api.example.com" }));
    assert_eq!(resolved.json["pop"], pop.url());
    assert_eq!(answer(agent().get(format!("{}/health", pop.url())).call()).status, 200);
    assert_eq!(pop.requests_to("/health").len(), 1);
    assert!(service.requests_to("/health").is_empty());
}

#[test]
fn dns_over_https_answers_per_state() {
    let service = StandIn::start();
    let query = || {
        answer(
            agent()
                .get(service.url_for("/dns-query"))
                .query("name", "api.example.com")
                .query("type", "A")
                .header("accept", "application/dns-json")
                .call(),
        )
    };
    let ok = query();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json["Status"], 0);
    assert_eq!(ok.json["Answer"][0]["data"], "203.0.113.7");
    assert_eq!(ok.json["Answer"][0]["name"], "api.example.com");

    service.set(|state| state.dns = Dns::Answer(vec!["192.0.2.1".into(), "192.0.2.2".into()]));
    assert_eq!(query().json["Answer"].as_array().map(Vec::len), Some(2));
    service.set(|state| state.dns = Dns::NoAnswer);
    let empty = query();
    assert_eq!(
        (empty.json["Status"].clone(), empty.json.get("Answer")),
        (json!(0), None)
    );
    service.set(|state| state.dns = Dns::NxDomain);
    assert_eq!(query().json["Status"], 3);
    service.set(|state| state.dns = Dns::ServFail);
    assert_eq!(query().json["Status"], 2);
    service.set(|state| state.dns = Dns::Unavailable);
    assert_eq!(query().status, 503);

    assert_eq!(get(&service, "/dns-query").status, 400, "a name is required");
    assert_eq!(get(&service, "/dns-query?name=x&type=BOGUS").status, 400);
}

#[test]
fn reconcile_needs_the_admin_secret_and_fixes_cross_after_n_calls() {
    let service = StandIn::start();
    assert_eq!(
        get(&service, "/verify").json,
        json!({ "chainOk": true, "crossOk": true })
    );

    service.set(|state| {
        state.cross_ok = false;
        state.chain_ok = false;
        state.reconcile_after = Some(2);
    });
    assert_eq!(
        get(&service, "/verify").json,
        json!({ "chainOk": false, "crossOk": false })
    );

    let secret = [("x-admin-secret", "test-admin-secret")];
    assert_eq!(post_with(&service, "/admin/reconcile", &[], "").status, 401);
    assert_eq!(
        post_with(&service, "/admin/reconcile", &[("x-admin-secret", "guess")], "").status,
        401
    );
    assert_eq!(service.state().reconcile_calls, 0, "refused calls do not count");

    let first = post_with(&service, "/admin/reconcile", &secret, "");
    assert_eq!((first.status, &first.json["crossOk"]), (200, &json!(false)));
    assert_eq!(get(&service, "/verify").json["crossOk"], false);
    post_with(&service, "/admin/reconcile", &secret, "");
    assert_eq!(get(&service, "/verify").json["crossOk"], true);

    service.set(|state| {
        state.cross_ok = false;
        state.reconcile_after = None;
    });
    for _ in 0..3 {
        post_with(&service, "/admin/reconcile", &secret, "");
    }
    assert_eq!(get(&service, "/verify").json["crossOk"], false, "never");
    assert_eq!(service.state().reconcile_calls, 5);
}

#[test]
fn restart_resets_the_block_age() {
    let service = StandIn::start();
    assert_eq!(get(&service, "/status").json, json!({ "block_age_s": 3, "queue": 0 }));
    service.set(|state| {
        state.block_age_s = 900;
        state.queue = 42;
    });
    assert_eq!(
        get(&service, "/status").json,
        json!({ "block_age_s": 900, "queue": 42 })
    );
    let restarted = post_with(&service, "/restart", &[], "");
    assert_eq!((restarted.status, &restarted.json["restarts"]), (200, &json!(1)));
    assert_eq!(get(&service, "/status").json, json!({ "block_age_s": 0, "queue": 42 }));
    assert_eq!(service.state().restarts, 1);
}

#[test]
fn unknown_paths_wrong_methods_and_bad_bodies_get_json_errors() {
    let service = StandIn::start();
    let missing = get(&service, "/nope");
    assert_eq!(
        (missing.status, missing.json.clone()),
        (404, json!({ "error": "no such endpoint" }))
    );
    assert_eq!(post(&service, "/ledger/nope", json!({})).status, 404);
    assert_eq!(get(&service, "/capsules").status, 405);
    let bad_id = post_with(&service, "/capsules/%FF/restore", &[], "");
    assert_eq!(bad_id.status, 400);
    assert!(bad_id.json["error"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(get(&service, "/pop/%FF/health").status, 400);

    let malformed = post_with(&service, "/capsules", &[], "{\"memo\": ");
    assert_eq!(malformed.status, 400);
    assert!(malformed.json["error"].as_str().unwrap().starts_with("malformed JSON"));
    let missing_field = post(&service, "/capsules", json!({ "note": "x" }));
    assert_eq!(missing_field.status, 400);
    assert!(missing_field.json["error"].as_str().unwrap().contains("memo"));
    for path in [
        "/ledger/import",
        "/ledger/replay",
        "/ledger/snapshots/restore",
        "/ledger/anchor",
        "/snrl/resolve",
    ] {
        assert_eq!(post_with(&service, path, &[], "not json").status, 400, "{path}");
        assert_eq!(post_with(&service, path, &[], "").status, 400, "{path}");
    }
    let bad_import = post(
        &service,
        "/ledger/import",
        json!({ "transactions": [{ "ts": "soon", "id": "x", "amount": 1 }] }),
    );
    assert_eq!(bad_import.status, 400);
    assert_eq!(
        service.state().transactions.len(),
        3,
        "a refused import changes nothing"
    );
}

#[test]
fn injected_failures_answer_before_the_endpoint() {
    let service = StandIn::start();
    service.set(|state| {
        state.failures.insert("/ledger/anchor".into(), 502);
    });
    let failed = post(&service, "/ledger/anchor", json!({ "since": "2024-05-01T12:00:00Z" }));
    assert_eq!(
        (failed.status, failed.json.clone()),
        (502, json!({ "error": "injected failure" }))
    );
    assert_eq!(service.requests_to("/ledger/anchor").len(), 1, "still recorded");
    assert_eq!(get(&service, "/ledger/export").status, 200, "other paths unaffected");
}

#[test]
fn every_request_is_recorded_before_it_is_answered() {
    let service = StandIn::start();
    post_with(
        &service,
        "/capsules",
        &[("X-Api-Key", "secret"), ("X-Trace", "a")],
        r#"{"memo":"Nightly"}"#,
    );
    answer(
        agent()
            .get(service.url_for("/dns-query"))
            .query("name", "a b.example")
            .query("type", "A")
            .call(),
    );
    get(&service, "/nope");
    service.set(|state| state.health = Health::Down);
    get(&service, "/health");

    let requests = service.requests();
    let paths: Vec<_> = requests.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(
        paths,
        [
            ("POST", "/capsules"),
            ("GET", "/dns-query"),
            ("GET", "/nope"),
            ("GET", "/health")
        ]
    );
    let capsule = &requests[0];
    assert_eq!(capsule.header("x-api-key"), Some("secret"));
    assert_eq!(capsule.headers.get("x-trace").map(String::as_str), Some("a"));
    assert_eq!(capsule.header("Content-Type"), Some("application/json"));
    assert_eq!(capsule.body, r#"{"memo":"Nightly"}"#);
    assert_eq!(capsule.json, Some(json!({ "memo": "Nightly" })));
    assert_eq!(requests[1].query_param("name").as_deref(), Some("a b.example"));
    assert_eq!(requests[1].query_param("type").as_deref(), Some("A"));
    assert!(requests[1].query.contains("type=A"));
    assert_eq!(requests[2].json, None);

    assert_eq!(service.requests_to("/capsules").len(), 1);
    service.clear_requests();
    assert!(service.requests().is_empty());
}

#[test]
fn two_stand_ins_run_at_once_and_stop_when_dropped() {
    let first = StandIn::start();
    let second = StandIn::start();
    assert_ne!(first.port(), second.port());
    assert_eq!(first.url(), format!("http://127.0.0.1:{}", first.port()));
    second.set(|state| state.health = Health::Down);
    assert_eq!(get(&first, "/health").status, 200);
    assert_eq!(get(&second, "/health").status, 503);
    assert_eq!((first.requests().len(), second.requests().len()), (1, 1));
    assert_eq!(
        first.requests()[0].header("host"),
        Some(first.url().trim_start_matches("http://"))
    );

    let addr = first.addr();
    // Neither a kept-alive connection nor a request in flight keeps the drop
    // waiting.
    let held = agent();
    assert_eq!(answer(held.get(first.url_for("/health")).call()).status, 200);
    first.set(|state| state.health = Health::Slow(Duration::from_secs(30)));
    let url = first.url_for("/health");
    let in_flight = std::thread::spawn(move || agent().get(url).call().is_err());
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    drop(first);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(in_flight.join().unwrap(), "the request in flight is cut off");
    drop(held);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "still listening"
    );
    assert_eq!(get(&second, "/health").status, 503, "the other one goes on");
}

// --- fault injection (scenario 6) --------------------------------------------

const ADMIN: [(&str, &str); 1] = [("x-admin-secret", "test-admin-secret")];

fn faults(service: &StandIn) -> Answer {
    answer(
        agent()
            .get(service.url_for("/chaos/faults"))
            .header(ADMIN[0].0, ADMIN[0].1)
            .call(),
    )
}

fn remove_fault(service: &StandIn, id: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = agent().delete(service.url_for(&format!("/chaos/faults/{id}")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    answer(request.call())
}

#[test]
fn an_error_fault_fails_its_target_until_it_is_removed() {
    let service = StandIn::start();
    let body = json!({ "target": "/health", "kind": "error", "status": 503 }).to_string();
    let created = post_with(&service, "/chaos/faults", &ADMIN, &body);
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(
        created.json,
        json!({ "id": "fault-1", "target": "/health", "kind": "error", "status": 503, "recovery_ms": 0 })
    );
    let failed = get(&service, "/health");
    assert_eq!(
        (failed.status, failed.json.clone()),
        (503, json!({ "error": "injected fault" }))
    );
    assert_eq!(get(&service, "/verify").status, 200, "other paths unaffected");
    let listed = faults(&service);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json["faults"], json!([created.json]));
    assert_eq!(service.state().faults[0].effect, FaultEffect::Error(503));

    let removed = remove_fault(&service, "fault-1", &ADMIN);
    assert_eq!((removed.status, removed.json), (200, json!({ "removed": "fault-1" })));
    assert_eq!(get(&service, "/health").status, 200, "recovered at once");
    assert_eq!(faults(&service).json, json!({ "faults": [] }));
    assert_eq!(remove_fault(&service, "fault-1", &ADMIN).status, 404, "already gone");
    assert_eq!(remove_fault(&service, "fault-9", &ADMIN).status, 404);

    // Every call is recorded, with its secret.
    let posted = only_request(service.requests_to("/chaos/faults"), "POST");
    assert_eq!(posted.header("x-admin-secret"), Some("test-admin-secret"));
    assert_eq!(service.requests_to("/chaos/faults/fault-1").len(), 2);
    assert_eq!(
        service.requests_to("/health").len(),
        2,
        "failed requests are recorded too"
    );
}

fn only_request(requests: Vec<testkit::Recorded>, method: &str) -> testkit::Recorded {
    let mut matching: Vec<_> = requests.into_iter().filter(|r| r.method == method).collect();
    assert_eq!(matching.len(), 1, "{matching:#?}");
    matching.remove(0)
}

#[test]
fn a_fault_matches_its_path_prefix_but_never_the_chaos_api() {
    let service = StandIn::start();
    let body = json!({ "target": "/pop", "kind": "error", "status": 502 }).to_string();
    assert_eq!(
        post_with(&service, "/chaos/faults", &ADMIN, &body).json["id"],
        "fault-1"
    );
    assert_eq!(get(&service, "/pop/eu-1/health").status, 502);
    assert_eq!(get(&service, "/health").status, 200);
    // A fault on everything leaves the API that removes it alone.
    let everything = json!({ "target": "/", "kind": "error" }).to_string();
    let second = post_with(&service, "/chaos/faults", &ADMIN, &everything);
    assert_eq!(
        (second.status, &second.json["status"]),
        (201, &json!(503)),
        "503 by default"
    );
    assert_eq!(get(&service, "/verify").status, 503);
    assert_eq!(faults(&service).json["faults"].as_array().map(Vec::len), Some(2));
    assert_eq!(remove_fault(&service, "fault-2", &ADMIN).status, 200);
    assert_eq!(get(&service, "/verify").status, 200);
}

#[test]
fn a_latency_fault_delays_its_target_then_answers_normally() {
    let service = StandIn::start();
    let body = json!({ "target": "/status", "kind": "latency", "latency_ms": 400 }).to_string();
    let created = post_with(&service, "/chaos/faults", &ADMIN, &body);
    assert_eq!(created.status, 201);
    assert_eq!(created.json["latency_ms"], 400);
    let started = Instant::now();
    let slow = get(&service, "/status");
    assert_eq!(slow.status, 200);
    assert_eq!(slow.json["queue"], 0, "the endpoint's own answer");
    assert!(started.elapsed() >= Duration::from_millis(400), "answered too soon");
    let started = Instant::now();
    assert_eq!(get(&service, "/health").status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "other paths are not delayed"
    );
    remove_fault(&service, "fault-1", &ADMIN);
    let started = Instant::now();
    get(&service, "/status");
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[test]
fn the_chaos_api_needs_the_admin_secret_and_a_valid_fault() {
    let service = StandIn::start();
    let body = json!({ "target": "/health", "kind": "error", "status": 503 }).to_string();
    for headers in [&[][..], &[("x-admin-secret", "nope")][..]] {
        let refused = post_with(&service, "/chaos/faults", headers, &body);
        assert_eq!(refused.status, 401);
        assert!(refused.json["error"].as_str().unwrap().contains("x-admin-secret"));
        assert_eq!(answer(agent().get(service.url_for("/chaos/faults")).call()).status, 401);
    }
    assert!(service.state().faults.is_empty(), "a refused fault is not injected");
    assert_eq!(get(&service, "/health").status, 200);

    post_with(&service, "/chaos/faults", &ADMIN, &body);
    assert_eq!(remove_fault(&service, "fault-1", &[]).status, 401);
    assert_eq!(service.state().faults.len(), 1, "still there");
    assert_eq!(get(&service, "/health").status, 503);

    for bad in [
        json!({ "target": "health", "kind": "error" }),
        json!({ "target": "/health", "kind": "error", "status": 42 }),
        json!({ "target": "/health", "kind": "latency" }),
        json!({ "target": "/health", "kind": "flood" }),
        json!({ "kind": "error" }),
    ] {
        let refused = post_with(&service, "/chaos/faults", &ADMIN, &bad.to_string());
        assert_eq!(refused.status, 400, "{bad}: {}", refused.json);
    }
    assert_eq!(service.state().faults.len(), 1);
}

#[test]
fn a_removed_fault_keeps_failing_for_its_recovery_window() {
    let service = StandIn::start();
    let body = json!({ "target": "/health", "kind": "error", "status": 503, "recovery_ms": 500 });
    let created = post_with(&service, "/chaos/faults", &ADMIN, &body.to_string());
    assert_eq!(created.json["recovery_ms"], 500);
    assert_eq!(remove_fault(&service, "fault-1", &ADMIN).status, 200);
    let removed_at = Instant::now();
    assert_eq!(faults(&service).json["faults"], json!([]), "no longer active");
    assert_eq!(get(&service, "/health").status, 503, "still recovering");
    assert_eq!(service.state().recovering.len(), 1);
    while get(&service, "/health").status != 200 {
        assert!(removed_at.elapsed() < Duration::from_secs(3), "never recovered");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(removed_at.elapsed() >= Duration::from_millis(500), "recovered too soon");
    assert!(service.state().recovering.is_empty(), "forgotten once over");

    // `State::fault_recovery` is the window of a fault that names none.
    service.set(|state| state.fault_recovery = Duration::from_millis(300));
    let plain = json!({ "target": "/health", "kind": "error" }).to_string();
    let second = post_with(&service, "/chaos/faults", &ADMIN, &plain);
    assert_eq!(
        (&second.json["id"], &second.json["recovery_ms"]),
        (&json!("fault-2"), &json!(300))
    );
    remove_fault(&service, "fault-2", &ADMIN);
    assert_eq!(get(&service, "/health").status, 503);
}

// --- feature flags ----------------------------------------------------------

fn put_flag(service: &StandIn, name: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = agent()
        .put(service.url_for(&format!("/flags/{name}")))
        .header("content-type", "application/json");
    for (header, value) in headers {
        request = request.header(*header, *value);
    }
    answer(request.send(body))
}

#[test]
fn flags_are_read_and_set_with_the_api_key_and_report_what_they_were() {
    let service = StandIn::start();
    let read = get(&service, "/flags/checkout_v2");
    assert_eq!(
        (read.status, read.json),
        (200, json!({ "name": "checkout_v2", "value": true }))
    );
    let key = [("x-api-key", "test-api-key")];
    let set = put_flag(&service, "checkout_v2", &key, r#"{"value": false}"#);
    assert_eq!(
        (set.status, set.json),
        (
            200,
            json!({ "name": "checkout_v2", "previous": true, "value": false, "replayed": false })
        )
    );
    assert_eq!(get(&service, "/flags/checkout_v2").json["value"], false);
    assert!(!service.state().flags["checkout_v2"]);

    assert_eq!(put_flag(&service, "checkout_v2", &[], r#"{"value": true}"#).status, 401);
    assert_eq!(put_flag(&service, "chekout_v2", &key, r#"{"value": true}"#).status, 404);
    assert_eq!(get(&service, "/flags/chekout_v2").status, 404);
    let not_a_bool = put_flag(&service, "checkout_v2", &key, r#"{"value": "yes"}"#);
    assert_eq!(not_a_bool.status, 400);
    assert_eq!(put_flag(&service, "checkout_v2", &key, "").status, 400);
    assert_eq!(service.state().flag_writes.len(), 1, "refused changes are not changes");
    assert!(!service.state().flags["checkout_v2"]);
}

#[test]
fn a_retried_flag_change_with_its_idempotency_key_is_answered_as_the_first_was() {
    let service = StandIn::start();
    let headers = [("x-api-key", "test-api-key"), ("idempotency-key", "run-1/switch_flag")];
    let first = put_flag(&service, "checkout_v2", &headers, r#"{"value": false}"#);
    let retried = put_flag(&service, "checkout_v2", &headers, r#"{"value": false}"#);
    assert_eq!(retried.status, 200);
    assert_eq!(retried.json["previous"], first.json["previous"]);
    assert_eq!(retried.json["replayed"], true);
    assert_eq!(service.state().flag_writes.len(), 1);
    let reused = put_flag(&service, "checkout_v2", &headers, r#"{"value": true}"#);
    assert_eq!(reused.status, 409);
    assert_eq!(
        service.state().flag_writes[0].idempotency_key.as_deref(),
        Some("run-1/switch_flag")
    );
}
