//! End-to-end tests of the example runbooks in `runbooks/`: the real
//! `runbook` binary runs each one, unchanged, against the stand-in service
//! (`testkit`) and temporary directories. Every test asserts on what the run
//! really did: the exit status, the files it left, and the requests the
//! service received. Durations are shortened through the runbooks' own
//! inputs, never by editing the runbooks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod support;
use support::calls;

use serde_json::{Value, json};
use testkit::{Capsule, Dns, Health, Recorded, StandIn, Transaction};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// What a run of the binary did.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    /// The run's JSON report (`--report-format json`), `null` when none was written.
    report: Value,
}

impl Outcome {
    fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn step(&self, id: &str) -> &Value {
        self.report["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["id"] == id))
            .unwrap_or_else(|| panic!("no step `{id}` in the report:\n{}", self.transcript()))
    }

    fn status(&self, id: &str) -> &str {
        self.step(id)["status"].as_str().unwrap_or_default()
    }

    fn output(&self, id: &str, name: &str) -> &Value {
        &self.step(id)["outputs"][name]
    }

    /// Panics with the whole transcript unless the run exited with `code`.
    fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "{}", self.transcript());
        self
    }
}

/// A temporary working directory and a stand-in service, for one test.
struct Scenario {
    dir: tempfile::TempDir,
    service: StandIn,
    /// Environment for the run, on top of a cleaned copy of the test's.
    env: Vec<(String, String)>,
}

impl Scenario {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            service: StandIn::start(),
            env: vec![
                ("RUNBOOK_API_KEY".into(), "test-api-key".into()),
                ("RUNBOOK_ADMIN_SECRET".into(), "test-admin-secret".into()),
            ],
        }
    }

    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
        self
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `path` as text, for an input.
    fn arg(&self, relative: &str) -> String {
        self.path(relative).to_str().unwrap().to_owned()
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `runbook run runbooks/RUNBOOK --yes --input api_url=<stand-in> INPUTS`,
    /// in the temporary directory, unattended (stdin is null).
    fn run(&self, runbook: &str, inputs: &[(&str, &str)]) -> Outcome {
        let report = self.path("report.json");
        let _ = std::fs::remove_file(&report);
        let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
        command
            .arg("run")
            .arg(root().join("runbooks").join(runbook))
            .arg("--yes")
            .arg("--state-dir")
            .arg(self.path(".runbook"))
            .env("RUNBOOK_LOCK_DIR", self.path(".locks"))
            // The index of runs, out of the real home.
            .env("XDG_STATE_HOME", self.path(".xdg-state"))
            .arg("--report")
            .arg(&report)
            .args(["--report-format", "json"])
            .args(["--input", &format!("api_url={}", self.service.url())]);
        for (name, value) in inputs {
            command.args(["--input", &format!("{name}={value}")]);
        }
        for name in [
            "RUNBOOK_API_URL",
            "RUNBOOK_API_KEY",
            "RUNBOOK_ADMIN_SECRET",
            "RUNBOOK_DOH_URL",
            "RUNBOOK_STATE_DIR",
        ] {
            command.env_remove(name);
        }
        let output = command
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("the runbook binary runs");
        let report = std::fs::read_to_string(&report)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            report,
        }
    }

    /// `(method, path)` of every request the service received, in order.
    fn calls(&self) -> Vec<(String, String)> {
        self.service
            .requests()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    }
}

fn only(requests: Vec<Recorded>) -> Recorded {
    assert_eq!(requests.len(), 1, "exactly one request: {requests:#?}");
    requests.into_iter().next().unwrap()
}

// --- every runbook ---------------------------------------------------------

#[test]
fn every_example_runbook_passes_check() {
    let dir = root().join("runbooks");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    files.sort();
    for name in [
        "capsule-snapshot.yaml",
        "ledger-replay.yaml",
        "dns-failover.yaml",
        "ledger-alerts.yaml",
        "chaos-drill.yaml",
    ] {
        assert!(files.iter().any(|f| f == name), "runbooks/{name} exists");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .arg("check")
        .args(&files)
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in &files {
        assert!(stdout.contains(&format!("ok: {name}")), "{stdout}");
    }
}

// --- 1. capsule snapshot and restore ----------------------------------------

fn capsule(id: &str, memo: &str) -> Capsule {
    Capsule {
        id: id.to_owned(),
        memo: memo.to_owned(),
    }
}

#[test]
fn capsule_snapshot_takes_a_capsule_and_reports_its_id() {
    let scenario = Scenario::new();
    let outcome = scenario.run("capsule-snapshot.yaml", &[("memo", "Nightly")]);
    outcome.expect(0);

    assert_eq!(scenario.calls(), calls(&[("GET", "/health"), ("POST", "/capsules")]));
    let create = only(scenario.service.requests_to("/capsules"));
    assert_eq!(create.json, Some(json!({ "memo": "Nightly" })));
    assert_eq!(create.header("x-api-key"), Some("test-api-key"));
    assert_eq!(scenario.service.state().capsules, [capsule("cap-1", "Nightly")]);
    // The id is where the change log finds it: an output in the run's report.
    assert_eq!(outcome.output("create_capsule", "capsule_id"), "cap-1");
    assert_eq!(outcome.report["status"], "succeeded");
    assert!(
        outcome.stderr.contains("capsule cap-1 taken with memo Nightly"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.transcript().contains("test-api-key"), "the key is masked");
    assert!(
        !scenario.read("report.json").contains("test-api-key"),
        "the key is masked"
    );
}

#[test]
fn capsule_restore_takes_a_safety_capsule_then_restores_with_the_api_key() {
    let scenario = Scenario::new();
    scenario
        .service
        .set(|s| s.capsules = vec![capsule("cap-42", "Nightly")]);
    let outcome = scenario.run(
        "capsule-snapshot.yaml",
        &[
            ("action", "restore"),
            ("capsule_id", "cap-42"),
            ("poll_interval", "50ms"),
        ],
    );
    outcome.expect(0);

    assert_eq!(
        scenario.calls(),
        calls(&[
            ("GET", "/health"),
            ("POST", "/capsules"),
            ("POST", "/capsules/cap-42/restore"),
            ("GET", "/health"),
        ])
    );
    let restore = only(scenario.service.requests_to("/capsules/cap-42/restore"));
    assert_eq!(restore.header("x-api-key"), Some("test-api-key"));
    let state = scenario.service.state();
    assert_eq!(state.capsule_restores, ["cap-42"]);
    assert_eq!(state.capsules[1].id, "cap-2", "the safety capsule");
    assert!(
        state.capsules[1].memo.starts_with("before restore of cap-42"),
        "{:?}",
        state.capsules
    );
    assert_eq!(outcome.output("safety_capsule", "capsule_id"), "cap-2");
}

#[test]
fn capsule_restore_with_a_wrong_api_key_is_refused_once_and_changes_nothing() {
    let scenario = Scenario::new().env("RUNBOOK_API_KEY", "wrong-key");
    scenario
        .service
        .set(|s| s.capsules = vec![capsule("cap-42", "Nightly")]);
    let outcome = scenario.run(
        "capsule-snapshot.yaml",
        &[
            ("action", "restore"),
            ("capsule_id", "cap-42"),
            ("poll_interval", "50ms"),
        ],
    );
    outcome.expect(1);

    // A 401 is not retried, and there is nothing to undo.
    let restore = only(scenario.service.requests_to("/capsules/cap-42/restore"));
    assert_eq!(restore.header("x-api-key"), Some("wrong-key"));
    assert!(scenario.service.state().capsule_restores.is_empty());
    assert_eq!(outcome.status("restore_capsule"), "failed");
    assert!(outcome.stderr.contains("answered 401"), "{}", outcome.stderr);
    assert!(!outcome.transcript().contains("wrong-key"), "the key is masked");
}

#[test]
fn capsule_restore_that_never_gets_healthy_restores_the_safety_capsule() {
    let scenario = Scenario::new();
    scenario.service.set(|s| {
        s.capsules = vec![capsule("cap-42", "Nightly")];
        s.health = Health::Down;
    });
    let outcome = scenario.run(
        "capsule-snapshot.yaml",
        &[
            ("action", "restore"),
            ("capsule_id", "cap-42"),
            ("poll_interval", "50ms"),
            ("wait_timeout", "300ms"),
        ],
    );
    outcome.expect(1);

    assert_eq!(scenario.service.state().capsule_restores, ["cap-42", "cap-2"]);
    let undo = only(scenario.service.requests_to("/capsules/cap-2/restore"));
    assert_eq!(undo.header("x-api-key"), Some("test-api-key"));
    assert!(scenario.service.requests_to("/health").len() >= 3, "the wait polled");
    assert_eq!(outcome.status("restore_capsule"), "rolled_back");
    assert_eq!(outcome.status("wait_healthy"), "failed");
}

#[test]
fn capsule_snapshot_of_an_unhealthy_platform_takes_nothing() {
    let scenario = Scenario::new();
    scenario.service.set(|s| s.health = Health::Error);
    let outcome = scenario.run("capsule-snapshot.yaml", &[]);
    outcome.expect(1);
    assert!(scenario.service.requests_to("/capsules").is_empty());
    assert!(scenario.service.state().capsules.is_empty());
}

// --- 2. ledger rollback and replay ------------------------------------------

const SINCE: &str = "2024-05-01T12:00:00Z";

fn ledger() -> Vec<Transaction> {
    testkit::State::default().transactions
}

#[test]
fn ledger_replay_exports_replays_anchors_then_rolls_back() {
    let scenario = Scenario::new();
    scenario.service.set(|s| s.restore_rolls_back = true);
    let outcome = scenario.run(
        "ledger-replay.yaml",
        &[("since", SINCE), ("incident_dir", &scenario.arg("incident"))],
    );
    outcome.expect(0);

    assert_eq!(
        scenario.calls(),
        calls(&[
            ("GET", "/health"),
            ("GET", "/ledger/export"),
            ("POST", "/ledger/anchor"),
            ("POST", "/ledger/snapshots/restore"),
            ("GET", "/ledger/export"),
        ])
    );
    for request in scenario
        .service
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/ledger"))
    {
        assert_eq!(request.header("x-api-key"), Some("test-api-key"), "{request:?}");
    }
    let anchor = only(scenario.service.requests_to("/ledger/anchor"));
    assert_eq!(anchor.json, Some(json!({ "since": SINCE })));
    let restore = only(scenario.service.requests_to("/ledger/snapshots/restore"));
    assert_eq!(restore.json, Some(json!({ "at": SINCE })));

    // The export is the whole ledger as it was; the replay file holds the
    // transactions since the rollback point, oldest first.
    let export: Value = serde_json::from_str(&scenario.read("incident/ledger-export.json")).unwrap();
    assert_eq!(export, json!({ "transactions": ledger() }));
    let replay: Vec<Value> = scenario
        .read("incident/replay.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ids: Vec<&str> = replay.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tx-2", "tx-3"]);

    // The anchored hash covers exactly those transactions, and is kept.
    let expected = testkit::anchor_hash(&ledger(), SINCE).unwrap();
    assert_eq!(outcome.output("anchor_hash", "hash"), expected.as_str());
    let record: Value = serde_json::from_str(&scenario.read("incident/anchor.json")).unwrap();
    assert_eq!(record["hash"], expected.as_str());
    assert_eq!(record["since"], SINCE);
    assert_eq!(record["count"], 2);

    let recorded: Value = serde_json::from_str(&scenario.read("incident/outcome.json")).unwrap();
    assert_eq!(recorded["status"], "succeeded");
    assert_eq!(recorded["restore"], "succeeded");
    assert_eq!(recorded["anchored_hash"], expected.as_str());
    assert_eq!(recorded["replayed"], 2);

    let state = scenario.service.state();
    assert_eq!(state.snapshot_restores, [SINCE]);
    assert_eq!(state.transactions, ledger()[..1]);
    assert_eq!(state.imports, 0);
}

#[test]
fn ledger_replay_imports_the_export_again_when_the_restore_did_not_roll_back() {
    let scenario = Scenario::new();
    // The service acknowledges the restore but the ledger keeps every
    // transaction: the check after the restore must catch it.
    scenario.service.set(|s| s.restore_rolls_back = false);
    let outcome = scenario.run(
        "ledger-replay.yaml",
        &[("since", SINCE), ("incident_dir", &scenario.arg("incident"))],
    );
    outcome.expect(1);

    assert_eq!(outcome.status("check_rolled_back"), "failed");
    assert_eq!(outcome.status("restore_snapshots"), "rolled_back");
    let import = only(scenario.service.requests_to("/ledger/import"));
    assert_eq!(import.header("x-api-key"), Some("test-api-key"));
    assert_eq!(import.json, Some(json!({ "transactions": ledger() })));
    let state = scenario.service.state();
    assert_eq!(state.imports, 1);
    assert_eq!(state.transactions, ledger());
    let recorded: Value = serde_json::from_str(&scenario.read("incident/outcome.json")).unwrap();
    assert_eq!(recorded["status"], "failed");
    assert_eq!(recorded["restore"], "rolled_back");
    // The evidence stays.
    assert!(scenario.path("incident/ledger-export.json").exists());
    assert!(scenario.path("incident/anchor.json").exists());
}

#[test]
fn ledger_replay_stops_before_any_change_when_the_anchor_is_refused() {
    let scenario = Scenario::new();
    scenario.service.set(|s| {
        s.restore_rolls_back = true;
        s.failures.insert("/ledger/anchor".into(), 403);
    });
    let outcome = scenario.run(
        "ledger-replay.yaml",
        &[("since", SINCE), ("incident_dir", &scenario.arg("incident"))],
    );
    outcome.expect(1);

    assert_eq!(
        scenario.service.requests_to("/ledger/anchor").len(),
        1,
        "a 403 is not retried"
    );
    assert!(scenario.service.requests_to("/ledger/snapshots/restore").is_empty());
    assert_eq!(scenario.service.state().transactions, ledger());
    assert!(!scenario.path("incident/anchor.json").exists());
    let recorded: Value = serde_json::from_str(&scenario.read("incident/outcome.json")).unwrap();
    assert_eq!(recorded["status"], "failed");
    assert_eq!(recorded["restore"], "not_run");
    assert_eq!(recorded["anchored_hash"], Value::Null);
}

// --- 3. DNS failover ----------------------------------------------------------

/// The inputs of a DNS failover against the stand-in, with short waits.
fn failover_inputs(scenario: &Scenario) -> Vec<(&'static str, String)> {
    vec![
        ("env_file", scenario.arg("adapters.env")),
        ("doh_url", scenario.service.url_for("/dns-query")),
        ("poll_interval", "50ms".into()),
        ("wait_timeout", "400ms".into()),
    ]
}

fn run_failover(scenario: &Scenario, extra: &[(&str, &str)]) -> Outcome {
    let inputs = failover_inputs(scenario);
    let mut all: Vec<(&str, &str)> = inputs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    all.extend_from_slice(extra);
    scenario.run("dns-failover.yaml", &all)
}

#[test]
fn dns_failover_switches_the_adapters_over_and_checks_the_pop_and_dns() {
    let scenario = Scenario::new();
    scenario.write("adapters.env", "APP_REGION=eu");
    scenario.service.set(|s| s.health = Health::Down);
    let outcome = run_failover(&scenario, &[]);
    outcome.expect(0);

    assert_eq!(scenario.read("adapters.env"), "APP_REGION=eu\nAPP_FAILOVER=1\n");
    assert_eq!(
        scenario.calls(),
        calls(&[
            ("GET", "/health"),
            ("POST", "/snrl/resolve"),
            ("GET", "/pop/eu-1/health"),
            ("GET", "/dns-query"),
        ])
    );
    let resolve = only(scenario.service.requests_to("/snrl/resolve"));
    assert_eq!(resolve.json, Some(json!({ "domain": "api.example.com" })));
    assert_eq!(resolve.header("x-api-key"), Some("test-api-key"));
    let dns = only(scenario.service.requests_to("/dns-query"));
    assert_eq!(dns.query_param("name").as_deref(), Some("api.example.com"));
    assert_eq!(dns.query_param("type").as_deref(), Some("A"));
    assert_eq!(
        outcome.output("resolve_pop", "pop"),
        scenario.service.url_for("/pop/eu-1").as_str()
    );
    assert_eq!(outcome.output("check_dns", "addresses"), &json!(["203.0.113.7"]));
    let recorded = format!(
        "failover of api.example.com finished: succeeded (switching failover mode on: succeeded); \
         point of presence {}; DNS answers 203.0.113.7",
        scenario.service.url_for("/pop/eu-1")
    );
    assert!(outcome.stderr.contains(&recorded), "{}", outcome.stderr);
}

#[test]
fn dns_failover_without_a_healthy_pop_switches_the_adapters_back() {
    let scenario = Scenario::new();
    scenario.write("adapters.env", "APP_REGION=eu\n");
    scenario.service.set(|s| {
        s.health = Health::Down;
        for pop in &mut s.pops {
            pop.healthy = false;
        }
    });
    let outcome = run_failover(&scenario, &[]);
    outcome.expect(1);

    assert_eq!(outcome.status("enable_failover"), "rolled_back");
    assert_eq!(
        scenario.read("adapters.env"),
        "APP_REGION=eu\n",
        "the toggle is gone again"
    );
    assert_eq!(scenario.service.requests_to("/snrl/resolve").len(), 1);
    assert!(scenario.calls().iter().all(|(_, path)| !path.starts_with("/pop/")));
    assert!(scenario.service.requests_to("/dns-query").is_empty());
}

#[test]
fn dns_failover_that_dns_never_confirms_switches_the_adapters_back() {
    let scenario = Scenario::new();
    scenario.service.set(|s| {
        s.health = Health::Down;
        s.dns = Dns::NoAnswer;
    });
    let outcome = run_failover(&scenario, &[]);
    outcome.expect(1);

    assert_eq!(outcome.status("check_dns"), "failed");
    assert_eq!(
        scenario.read("adapters.env"),
        "",
        "created by the run, emptied by its rollback"
    );
    assert!(scenario.service.requests_to("/dns-query").len() >= 3, "DNS was polled");
}

#[test]
fn dns_failover_leaves_a_failover_mode_it_did_not_switch_on() {
    let scenario = Scenario::new();
    scenario.write("adapters.env", "APP_FAILOVER=1\n");
    scenario.service.set(|s| {
        s.health = Health::Down;
        s.dns = Dns::ServFail;
    });
    let outcome = run_failover(&scenario, &[]);
    outcome.expect(1);

    assert_eq!(outcome.status("enable_failover"), "skipped");
    assert_eq!(scenario.read("adapters.env"), "APP_FAILOVER=1\n");
}

#[test]
fn dns_failover_of_a_healthy_api_changes_nothing() {
    let scenario = Scenario::new();
    scenario.write("adapters.env", "APP_REGION=eu\n");
    let outcome = run_failover(&scenario, &[]);
    outcome.expect(0);
    assert_eq!(outcome.status("enable_failover"), "skipped");
    assert_eq!(scenario.read("adapters.env"), "APP_REGION=eu\n");
}

// --- 5. ledger service alerts -------------------------------------------------

/// The inputs of a ledger alert against the stand-in and the sandbox, with
/// short waits.
fn alert_inputs(scenario: &Scenario, alert: &str) -> Vec<(&'static str, String)> {
    vec![
        ("alert", alert.to_owned()),
        ("data_dir", scenario.arg("ledger/data")),
        ("backup_dir", scenario.arg("backups")),
        ("poll_interval", "50ms".into()),
        ("wait_timeout", "400ms".into()),
    ]
}

fn run_alert(scenario: &Scenario, alert: &str, extra: &[(&str, &str)]) -> Outcome {
    let inputs = alert_inputs(scenario, alert);
    let mut all: Vec<(&str, &str)> = inputs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    all.extend_from_slice(extra);
    scenario.run("ledger-alerts.yaml", &all)
}

/// A small data directory for the ledger service.
fn ledger_data(scenario: &Scenario) {
    scenario.write("ledger/data/blocks/000001.json", r#"{"height": 1, "prev": null}"#);
    scenario.write("ledger/data/blocks/000002.json", r#"{"height": 2, "prev": "a1"}"#);
    scenario.write("ledger/data/ledger.conf", "chain=main\n");
}

/// The backup folders in `backups/`, sorted.
fn backups(scenario: &Scenario) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(scenario.path("backups")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn ledger_alert_cross_check_failure_is_backed_up_reconciled_and_reverified() {
    let scenario = Scenario::new();
    ledger_data(&scenario);
    scenario.service.set(|s| s.cross_ok = false);
    let outcome = run_alert(&scenario, "verification", &[]);
    outcome.expect(0);

    assert_eq!(
        scenario.calls(),
        calls(&[("GET", "/verify"), ("POST", "/admin/reconcile"), ("GET", "/verify"),])
    );
    let reconcile = only(scenario.service.requests_to("/admin/reconcile"));
    assert_eq!(reconcile.header("x-admin-secret"), Some("test-admin-secret"));
    let state = scenario.service.state();
    assert_eq!(state.reconcile_calls, 1);
    assert!(state.cross_ok);
    // Backed up before the change, with a manifest that `sha256sum -c` reads.
    let taken = backups(&scenario);
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(taken[0].starts_with("ledger-"), "{taken:?}");
    let manifest = scenario.read(&format!("backups/{}/MANIFEST.sha256", taken[0]));
    assert!(manifest.contains("  data/blocks/000001.json\n"), "{manifest}");
    assert_eq!(
        outcome.output("backup_before_reconcile", "path"),
        scenario.arg(&format!("backups/{}", taken[0])).as_str()
    );
    assert!(
        !outcome.transcript().contains("test-admin-secret"),
        "the secret is masked"
    );
}

#[test]
fn ledger_alert_stops_for_a_person_when_reconciling_does_not_fix_the_cross_check() {
    let scenario = Scenario::new();
    ledger_data(&scenario);
    scenario.service.set(|s| {
        s.cross_ok = false;
        s.reconcile_after = None;
    });
    let outcome = run_alert(&scenario, "verification", &[]);
    outcome.expect(3);

    assert_eq!(
        scenario.service.state().reconcile_calls,
        1,
        "reconciled once, not again and again"
    );
    assert!(
        scenario.service.requests_to("/verify").len() >= 3,
        "re-verified until the wait gave up"
    );
    assert_eq!(outcome.status("wait_cross_ok"), "failed");
    assert!(
        outcome
            .stderr
            .contains("a person must take over: crossOk is still false after reconciling"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn ledger_alert_with_a_wrong_admin_secret_is_refused_once() {
    let scenario = Scenario::new().env("RUNBOOK_ADMIN_SECRET", "not-the-secret");
    ledger_data(&scenario);
    scenario.service.set(|s| s.cross_ok = false);
    let outcome = run_alert(&scenario, "verification", &[]);
    outcome.expect(1);

    let reconcile = only(scenario.service.requests_to("/admin/reconcile"));
    assert_eq!(reconcile.header("x-admin-secret"), Some("not-the-secret"));
    assert_eq!(scenario.service.state().reconcile_calls, 0);
    assert!(outcome.stderr.contains("answered 401"), "{}", outcome.stderr);
}

#[test]
fn ledger_alert_broken_hash_chain_inspects_health_and_stops_for_a_person() {
    let scenario = Scenario::new();
    ledger_data(&scenario);
    scenario.service.set(|s| {
        s.chain_ok = false;
        s.cross_ok = false;
        s.health = Health::Error;
    });
    let outcome = run_alert(&scenario, "verification", &[]);
    outcome.expect(3);

    assert_eq!(scenario.calls(), calls(&[("GET", "/verify"), ("GET", "/health")]));
    assert_eq!(scenario.service.state().reconcile_calls, 0);
    assert!(
        backups(&scenario).is_empty(),
        "nothing was changed, not even a backup taken"
    );
    assert_eq!(outcome.status("stop_for_person"), "failed");
    assert!(
        outcome
            .stderr
            .contains("a person must take over: the ledger's hash chain is broken"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.output("inspect_health", "status"), 500);
    assert!(
        outcome.stderr.contains(
            "the ledger's hash chain is broken. Nothing was changed; a person must look. /health answered 500"
        ),
        "{}",
        outcome.stderr
    );
}

#[test]
fn ledger_alert_that_passes_both_checks_changes_nothing() {
    let scenario = Scenario::new();
    let outcome = run_alert(&scenario, "verification", &[]);
    outcome.expect(0);
    assert_eq!(scenario.calls(), calls(&[("GET", "/verify")]));
    assert!(
        outcome.stderr.contains("both checks pass, nothing to do"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn ledger_alert_stale_blocks_with_queued_work_restarts_and_checks_health() {
    let scenario = Scenario::new();
    scenario.service.set(|s| {
        s.block_age_s = 600;
        s.queue = 12;
    });
    let outcome = run_alert(&scenario, "stale_blocks", &[("max_block_age_s", "120")]);
    outcome.expect(0);

    assert_eq!(
        scenario.calls(),
        calls(&[
            ("GET", "/status"),
            ("POST", "/restart"),
            ("GET", "/health"),
            ("GET", "/status"),
        ])
    );
    let state = scenario.service.state();
    assert_eq!(state.restarts, 1);
    assert_eq!(state.block_age_s, 0);
    assert_eq!(outcome.output("read_status", "stuck"), true);
    assert_eq!(outcome.output("check_blocks", "block_age_s"), 0);
}

#[test]
fn ledger_alert_stale_blocks_is_not_restarted_without_queued_work_or_when_fresh() {
    for (block_age_s, queue) in [(600, 0), (30, 12)] {
        let scenario = Scenario::new();
        scenario.service.set(|s| {
            s.block_age_s = block_age_s;
            s.queue = queue;
        });
        let outcome = run_alert(&scenario, "stale_blocks", &[("max_block_age_s", "120")]);
        outcome.expect(0);
        assert_eq!(
            scenario.calls(),
            calls(&[("GET", "/status")]),
            "age {block_age_s}, queue {queue}"
        );
        assert_eq!(scenario.service.state().restarts, 0);
        assert_eq!(outcome.status("restart_service"), "skipped");
        assert!(outcome.stderr.contains("not restarting"), "{}", outcome.stderr);
    }
}

#[test]
fn ledger_alert_stale_blocks_restart_that_the_service_refuses_fails_once() {
    let scenario = Scenario::new();
    scenario.service.set(|s| {
        s.block_age_s = 600;
        s.queue = 12;
        s.failures.insert("/restart".into(), 503);
    });
    let outcome = run_alert(&scenario, "stale_blocks", &[("max_block_age_s", "120")]);
    outcome.expect(1);

    assert_eq!(scenario.calls(), calls(&[("GET", "/status"), ("POST", "/restart")]));
    assert_eq!(outcome.status("restart_service"), "failed");
    assert_eq!(outcome.status("check_blocks"), "not_run");
}

/// Sets the last-modified time of `path` to `days` days ago.
fn age(path: &Path, days: u64) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 24 * 3600);
    std::fs::File::open(path).unwrap().set_modified(then).unwrap();
}

#[test]
fn ledger_alert_backup_takes_a_checked_backup_and_prunes_old_ones() {
    let scenario = Scenario::new();
    ledger_data(&scenario);
    // An old backup, a recent one, and something else that is old.
    for name in ["ledger-20240101T000000Z-aaaa", "ledger-20990101T000000Z-bbbb"] {
        scenario.write(&format!("backups/{name}/data/ledger.conf"), "chain=main\n");
        scenario.write(&format!("backups/{name}/MANIFEST.sha256"), "");
    }
    scenario.write("backups/notes.txt", "keep me\n");
    age(&scenario.path("backups/ledger-20240101T000000Z-aaaa"), 30);
    age(&scenario.path("backups/notes.txt"), 30);
    let outcome = run_alert(&scenario, "backup", &[("retention_days", "14")]);
    outcome.expect(0);

    let now = backups(&scenario);
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(
        !now.contains(&"ledger-20240101T000000Z-aaaa".to_owned()),
        "the old backup is pruned: {now:?}"
    );
    assert!(now.contains(&"ledger-20990101T000000Z-bbbb".to_owned()), "{now:?}");
    assert!(now.contains(&"notes.txt".to_owned()), "{now:?}");
    let new = outcome.output("take_backup", "path").as_str().unwrap().to_owned();
    assert_eq!(outcome.output("take_backup", "files"), 3);
    assert_eq!(
        std::fs::read_to_string(Path::new(&new).join("data/blocks/000002.json")).unwrap(),
        r#"{"height": 2, "prev": "a1"}"#
    );
    // The manifest is what `sha256sum -c` checks.
    let check = Command::new("sha256sum")
        .args(["-c", "--quiet", "MANIFEST.sha256"])
        .current_dir(&new)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    assert_eq!(
        outcome.output("prune_backups", "deleted"),
        &json!([scenario.arg("backups/ledger-20240101T000000Z-aaaa")])
    );
    assert!(scenario.service.requests().is_empty(), "a backup needs no request");
}

/// Takes a backup with the runbook itself, then changes the data: what a
/// restore has to undo.
fn backed_up_then_changed(scenario: &Scenario) -> String {
    ledger_data(scenario);
    let backup = run_alert(scenario, "backup", &[]);
    backup.expect(0);
    scenario.write("ledger/data/blocks/000002.json", r#"{"height": 2, "prev": "CORRUPT"}"#);
    scenario.write("ledger/data/blocks/000003.json", r#"{"height": 3}"#);
    scenario.service.clear_requests();
    backup.output("take_backup", "path").as_str().unwrap().to_owned()
}

#[test]
fn ledger_alert_restore_checks_the_manifest_restores_restarts_and_verifies() {
    let scenario = Scenario::new();
    let backup = backed_up_then_changed(&scenario);
    let outcome = run_alert(&scenario, "restore", &[]);
    outcome.expect(0);

    assert_eq!(
        outcome.output("pick_backup", "path"),
        backup.as_str(),
        "the newest backup"
    );
    assert_eq!(
        scenario.read("ledger/data/blocks/000002.json"),
        r#"{"height": 2, "prev": "a1"}"#
    );
    assert!(!scenario.path("ledger/data/blocks/000003.json").exists());
    // What was there is kept aside, not deleted.
    let aside = outcome.output("restore_data", "aside").as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(Path::new(&aside).join("blocks/000002.json")).unwrap(),
        r#"{"height": 2, "prev": "CORRUPT"}"#
    );
    assert_eq!(
        scenario.calls(),
        calls(&[("POST", "/restart"), ("GET", "/health"), ("GET", "/verify")])
    );
    assert_eq!(scenario.service.state().restarts, 1);
}

#[test]
fn ledger_alert_restore_refuses_a_backup_that_does_not_match_its_manifest() {
    let scenario = Scenario::new();
    let backup = backed_up_then_changed(&scenario);
    std::fs::write(Path::new(&backup).join("data/ledger.conf"), "chain=forged\n").unwrap();
    let outcome = run_alert(&scenario, "restore", &[]);
    outcome.expect(1);

    assert_eq!(outcome.status("check_manifest"), "failed");
    assert_eq!(outcome.status("restore_data"), "not_run");
    assert_eq!(scenario.read("ledger/data/ledger.conf"), "chain=main\n");
    assert!(
        scenario.path("ledger/data/blocks/000003.json").exists(),
        "the data is untouched"
    );
    assert!(scenario.service.requests().is_empty(), "the service is not restarted");
}

#[test]
fn ledger_alert_restore_that_leaves_the_service_unhealthy_puts_the_data_back() {
    let scenario = Scenario::new();
    backed_up_then_changed(&scenario);
    scenario.service.set(|s| s.health = Health::Down);
    let outcome = run_alert(&scenario, "restore", &[]);
    outcome.expect(1);

    assert_eq!(outcome.status("wait_healthy_after_restore"), "failed");
    assert_eq!(outcome.status("restore_data"), "rolled_back");
    assert_eq!(
        scenario.read("ledger/data/blocks/000002.json"),
        r#"{"height": 2, "prev": "CORRUPT"}"#,
        "the data as it was before the run"
    );
    assert!(scenario.path("ledger/data/blocks/000003.json").exists());
    assert_eq!(scenario.service.state().restarts, 1);
}

// --- 6. chaos drills ------------------------------------------------------------

fn drill_inputs(scenario: &Scenario) -> Vec<(&'static str, String)> {
    vec![
        ("ledger_url", scenario.service.url().to_owned()),
        ("doh_url", scenario.service.url_for("/dns-query")),
        ("chaos_url", scenario.service.url().to_owned()),
        ("dependency_url", scenario.service.url().to_owned()),
        ("history_file", scenario.arg("drills.jsonl")),
        ("observe_for", "300ms".into()),
        ("poll_interval", "50ms".into()),
        ("wait_timeout", "2s".into()),
    ]
}

fn run_drill(scenario: &Scenario, extra: &[(&str, &str)]) -> Outcome {
    let inputs = drill_inputs(scenario);
    let mut all: Vec<(&str, &str)> = inputs
        .iter()
        .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n))
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    all.extend_from_slice(extra);
    scenario.run("chaos-drill.yaml", &all)
}

/// The drill history, one JSON value per line.
fn drill_history(scenario: &Scenario) -> Vec<Value> {
    scenario
        .read("drills.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// How many requests went to each path, for steps that run in parallel.
fn count_by_path(scenario: &Scenario) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for request in scenario.service.requests() {
        *counts
            .entry(format!("{} {}", request.method, request.path))
            .or_default() += 1;
    }
    counts
}

/// The index of the first request `method path`, for checking the order.
fn first_call(scenario: &Scenario, method: &str, path: &str) -> usize {
    scenario
        .calls()
        .iter()
        .position(|(m, p)| m == method && p == path)
        .unwrap_or_else(|| panic!("no {method} {path} in {:?}", scenario.calls()))
}

#[test]
fn chaos_drill_injects_a_fault_sees_it_removes_it_and_records_the_recovery() {
    let scenario = Scenario::new();
    let outcome = run_drill(&scenario, &[("rto_ms", "5000")]);
    outcome.expect(0);

    // The fault was injected through the API, with the admin secret...
    let inject = only(
        scenario
            .service
            .requests_to("/chaos/faults")
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect(),
    );
    assert_eq!(inject.header("x-admin-secret"), Some("test-admin-secret"));
    assert_eq!(
        inject.json,
        Some(json!({ "target": "/health", "kind": "error", "status": 503 }))
    );
    // ...really degraded the dependency: /health answered the injected 503...
    assert_eq!(outcome.status("wait_degraded"), "succeeded");
    assert_eq!(outcome.output("observe", "health_status"), 503);
    // ...and was removed by the drill, not by a rollback.
    let remove = only(scenario.service.requests_to("/chaos/faults/fault-1"));
    assert_eq!(remove.method, "DELETE");
    assert_eq!(remove.header("x-admin-secret"), Some("test-admin-secret"));
    assert_eq!(outcome.status("inject_fault"), "succeeded");
    assert!(scenario.service.state().faults.is_empty(), "no fault left");
    assert_eq!(scenario.service.state().faults_injected, 1);

    let (post, delete) = (
        first_call(&scenario, "POST", "/chaos/faults"),
        first_call(&scenario, "DELETE", "/chaos/faults/fault-1"),
    );
    assert!(
        first_call(&scenario, "GET", "/chaos/faults") < post,
        "checked for a fault first"
    );
    let health: Vec<usize> = scenario
        .calls()
        .iter()
        .enumerate()
        .filter(|(_, call)| *call == &("GET".to_owned(), "/health".to_owned()))
        .map(|(i, _)| i)
        .collect();
    assert!(health.iter().any(|&i| i < post), "before: {health:?}");
    assert!(
        health.iter().filter(|&&i| post < i && i < delete).count() >= 2,
        "during (the wait and the observation): {health:?}"
    );
    assert!(health.iter().any(|&i| i > delete), "after: {health:?}");
    let counts = count_by_path(&scenario);
    assert_eq!(counts["GET /verify"], 1, "{counts:?}");
    assert_eq!(counts["POST /snrl/resolve"], 1, "{counts:?}");
    assert_eq!(counts["GET /dns-query"], 1, "{counts:?}");
    let resolve = only(scenario.service.requests_to("/snrl/resolve"));
    assert_eq!(resolve.header("x-api-key"), Some("test-api-key"));
    assert!(
        !outcome.transcript().contains("test-admin-secret"),
        "the secret is masked"
    );

    let history = drill_history(&scenario);
    assert_eq!(history.len(), 1);
    let line = &history[0];
    assert_eq!(line["result"], "pass", "{line}");
    assert_eq!(line["status"], "succeeded");
    assert_eq!(line["target"], scenario.service.url_for("/health").as_str());
    assert_eq!(line["fault_id"], "fault-1");
    assert_eq!(line["fault_status"], 503);
    assert_eq!(line["rto_ms"], 5000);
    let recovery = line["recovery_ms"].as_i64().unwrap();
    assert!((0..=5000).contains(&recovery), "{line}");
    let (degraded, restored, recovered) = (
        line["degraded_at_ms"].as_i64().unwrap(),
        line["restored_at_ms"].as_i64().unwrap(),
        line["recovered_at_ms"].as_i64().unwrap(),
    );
    assert!(
        restored - degraded >= 300,
        "the fault lasted the observation window: {line}"
    );
    assert_eq!(recovered - restored, recovery, "{line}");
    let evidence = &line["evidence"];
    assert_eq!(evidence["health_before"], 200);
    assert_eq!(evidence["health_during"], 503);
    assert_eq!(evidence["fault_took_effect"], true);
    assert_eq!(evidence["fault_removed_by"], "restore");
    assert_eq!(evidence["checks_before"]["ledger"], "succeeded");
    assert_eq!(evidence["checks_before"]["no_fault"], "succeeded");
}

#[test]
fn chaos_drill_aborts_without_a_fault_when_a_dependency_is_unhealthy() {
    let scenario = Scenario::new();
    scenario.service.set(|s| s.chain_ok = false);
    let outcome = run_drill(&scenario, &[]);
    outcome.expect(3);

    assert_eq!(outcome.status("check_ledger"), "failed");
    assert_eq!(outcome.status("inject_fault"), "not_run");
    assert!(
        !scenario
            .service
            .requests()
            .iter()
            .any(|r| r.method != "GET" && r.path.starts_with("/chaos")),
        "no fault was injected: {:?}",
        scenario.calls()
    );
    assert_eq!(scenario.service.state().faults_injected, 0);
    assert!(
        scenario.service.requests_to("/health").len() <= 1,
        "no observation, no recovery wait"
    );
    let history = drill_history(&scenario);
    assert_eq!(history[0]["result"], "aborted", "{}", history[0]);
    assert_eq!(history[0]["evidence"]["checks_before"]["ledger"], "failed");
    assert_eq!(history[0]["recovery_ms"], Value::Null);
    assert_eq!(history[0]["fault_id"], Value::Null);
}

#[test]
fn chaos_drill_refuses_to_start_while_a_fault_is_already_injected() {
    let scenario = Scenario::new();
    let fault = testkit::Fault {
        id: "fault-7".into(),
        target: "/verify".into(),
        effect: testkit::FaultEffect::Error(500),
        recovery: std::time::Duration::ZERO,
    };
    scenario.service.set(|s| s.faults.push(fault.clone()));
    let outcome = run_drill(&scenario, &[]);
    outcome.expect(3);

    assert_eq!(outcome.status("check_no_fault"), "failed");
    assert_eq!(outcome.status("inject_fault"), "not_run");
    assert_eq!(scenario.service.state().faults, [fault], "left alone");
    assert_eq!(
        count_by_path(&scenario).get("GET /chaos/faults"),
        Some(&1),
        "{:?}",
        scenario.calls()
    );
    assert!(
        scenario
            .service
            .requests()
            .iter()
            .all(|r| r.method == "GET" || !r.path.starts_with("/chaos")),
        "nothing injected or removed: {:?}",
        scenario.calls()
    );
    assert_eq!(drill_history(&scenario)[0]["result"], "aborted");
}

#[test]
fn chaos_drill_that_misses_the_recovery_objective_fails_and_says_so() {
    let scenario = Scenario::new();
    // The dependency is slow to come back: it keeps failing for 800 ms after
    // the fault is removed.
    scenario
        .service
        .set(|s| s.fault_recovery = std::time::Duration::from_millis(800));
    let outcome = run_drill(&scenario, &[("rto_ms", "300")]);
    outcome.expect(1);

    assert_eq!(outcome.status("restore_dependency"), "succeeded");
    assert_eq!(outcome.status("wait_recovered"), "succeeded");
    assert_eq!(outcome.status("check_rto"), "failed");
    assert!(
        outcome.stderr.contains("over the objective of 300 ms"),
        "{}",
        outcome.stderr
    );
    // The fault is gone: removed by the drill; the rollback found it gone.
    assert_eq!(outcome.status("inject_fault"), "rolled_back");
    let removals: Vec<String> = scenario
        .service
        .requests_to("/chaos/faults/fault-1")
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(removals, ["DELETE", "DELETE"], "the restore, then the rollback");
    assert!(scenario.service.state().faults.is_empty());
    let line = &drill_history(&scenario)[0];
    assert_eq!(line["result"], "fail", "{line}");
    assert_eq!(line["status"], outcome.report["status"]);
    assert!(line["recovery_ms"].as_i64().unwrap() >= 800, "{line}");
    assert_eq!(line["evidence"]["fault_removed_by"], "restore");
    assert_eq!(line["evidence"]["health_during"], 503);
}

#[test]
fn chaos_drill_that_fails_midway_removes_the_fault_in_its_rollback() {
    let scenario = Scenario::new();
    // The dependency named is not behind the fault-injection API: the fault
    // never shows there, so the drill fails before the observation.
    let elsewhere = StandIn::start();
    let outcome = run_drill(
        &scenario,
        &[("dependency_url", elsewhere.url()), ("wait_timeout", "500ms")],
    );
    outcome.expect(1);

    assert_eq!(outcome.status("inject_fault"), "rolled_back");
    assert_eq!(outcome.status("wait_degraded"), "failed");
    assert_eq!(outcome.status("restore_dependency"), "not_run");
    assert!(!elsewhere.requests_to("/health").is_empty(), "it was probed");
    let remove = only(scenario.service.requests_to("/chaos/faults/fault-1"));
    assert_eq!(remove.method, "DELETE");
    assert_eq!(remove.header("x-admin-secret"), Some("test-admin-secret"));
    assert!(scenario.service.state().faults.is_empty(), "no fault left");
    let line = &drill_history(&scenario)[0];
    assert_eq!(line["result"], "fail", "{line}");
    assert_eq!(line["evidence"]["fault_took_effect"], false);
    assert_eq!(line["evidence"]["fault_removed_by"], "rollback");
    assert_eq!(line["recovery_ms"], Value::Null);
}
