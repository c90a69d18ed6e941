//! End-to-end tests: the real `runbook` binary on real files, its output
//! snapshot-tested so that the wording of every diagnostic and plan is reviewed.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use support::{Outcome, runbook_in};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn runbook(args: &[&str]) -> Outcome {
    runbook_in(&root(), args, &[])
}

#[test]
fn check_fixtures() {
    insta::glob!("fixtures/check/*.yaml", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let outcome = runbook_in(path.parent().unwrap(), &["check", name], &[]);
        let expected = if name == "valid.yaml" { 0 } else { 2 };
        assert_eq!(outcome.code, Some(expected), "{}", outcome.transcript());
        if expected == 2 {
            assert!(outcome.stdout.is_empty(), "nothing on stdout for a failed check");
        }
        insta::assert_snapshot!(outcome.transcript());
    });
}

#[test]
fn check_reports_every_error_of_a_file_in_one_pass() {
    let outcome = runbook_in(
        &root().join("tests/fixtures/check"),
        &["check", "many_errors.yaml"],
        &[],
    );
    assert_eq!(outcome.code, Some(2));
    let errors = outcome.stderr.matches("  × ").count();
    assert!(
        errors >= 10,
        "expected every error at once, found {errors}:\n{}",
        outcome.stderr
    );
}

#[test]
fn check_several_files_reports_each() {
    let outcome = runbook_in(
        &root().join("tests/fixtures/check"),
        &["check", "valid.yaml", "needs_typo.yaml", "missing.yaml"],
        &[],
    );
    assert_eq!(outcome.code, Some(2));
    assert!(outcome.stdout.contains("ok: valid.yaml"), "{}", outcome.transcript());
    assert!(
        outcome.stderr.contains("unknown step `resolv_pop`"),
        "{}",
        outcome.transcript()
    );
    assert!(
        outcome.stderr.contains("cannot read `missing.yaml`: no such file"),
        "{}",
        outcome.transcript()
    );
}

#[test]
fn non_utf8_file_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("latin1.yaml"),
        b"runbook: 1\nname: caf\xe9\nsteps: []\n",
    )
    .unwrap();
    let outcome = runbook_in(dir.path(), &["check", "latin1.yaml"], &[]);
    assert_eq!(outcome.code, Some(2));
    insta::assert_snapshot!(outcome.transcript());
}

#[test]
fn ten_megabyte_file_is_checked_and_planned() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("runbook: 1\nname: big\ninputs:\n  target: { default: staging }\nsteps:\n");
    let mut i = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!(
            "  - id: step_{i}\n    name: Step number {i} of a very large generated runbook used to test limits\n    uses: log\n    with: {{ message: \"step {i} on {{{{ inputs.target }}}} — padding padding padding padding padding\" }}\n"
        ));
        i += 1;
    }
    std::fs::write(dir.path().join("big.yaml"), &text).unwrap();
    let outcome = runbook_in(dir.path(), &["check", "big.yaml"], &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(
        outcome
            .stdout
            .starts_with(&format!("ok: big.yaml: {i} steps in {i} waves")),
        "{}",
        outcome.stdout
    );
    let outcome = runbook_in(dir.path(), &["plan", "big.yaml", "--format", "json"], &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let plan: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(plan["summary"]["steps"], i);
}

#[test]
fn garbage_and_binary_input_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let deep = "[".repeat(5000);
    let cases: &[(&str, &[u8])] = &[
        ("nul.yaml", b"\0\0\0"),
        ("tabs.yaml", b"runbook: 1\nsteps:\n\t- id: a\n"),
        ("deep.yaml", deep.as_bytes()),
        ("anchors.yaml", b"a: &a [*a]\n"),
        ("scalar.yaml", b"just some text"),
        ("list_of_steps.yaml", b"runbook: 1\nsteps: {id: a}\n"),
    ];
    for (name, bytes) in cases {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        for command in ["check", "plan"] {
            let outcome = runbook_in(dir.path(), &[command, name], &[]);
            assert_eq!(outcome.code, Some(2), "{name}: {}", outcome.transcript());
            assert!(!outcome.stderr.contains("panicked"), "{name}: {}", outcome.transcript());
            assert!(outcome.stderr.contains("error"), "{name}: {}", outcome.transcript());
        }
    }
}

#[test]
fn plan_fixtures() {
    insta::glob!("fixtures/plan/*.yaml", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let outcome = runbook_in(
            path.parent().unwrap(),
            &["plan", name],
            &[("PLAN_FIXTURE_TOKEN", "s3cr3t-value")],
        );
        assert!(!outcome.stdout.contains("s3cr3t-value") && !outcome.stderr.contains("s3cr3t-value"));
        insta::assert_snapshot!(outcome.transcript());
    });
}

#[test]
fn example_runbooks_pass_check_and_their_plans_are_reviewed() {
    let dir = root().join("runbooks");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the four seed scenarios have example runbooks");
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/runbook-v1.schema.json"),
            "{name} starts with the schema modeline"
        );
        let check = runbook_in(&dir, &["check", &name], &[]);
        assert_eq!(check.code, Some(0), "{name}: {}", check.transcript());
        for format in ["text", "json", "mermaid", "dot"] {
            let plan = runbook_in(&dir, &["plan", &name, "--format", format], &[]);
            assert_eq!(plan.code, Some(0), "{name}: {}", plan.transcript());
            if format == "json" {
                let _: serde_json::Value = serde_json::from_str(&plan.stdout).expect("valid JSON");
                // Parsers that keep the last of two equal keys (or refuse them) must read the same plan.
                if let Err(e) = no_duplicate_keys(&plan.stdout) {
                    panic!("{name}: the JSON plan repeats a key: {e}");
                }
            }
            // What a step would do to this machine's files now differs between machines.
            let reviewed: String = plan
                .transcript()
                .lines()
                .filter(|line| !line.trim_start().starts_with("now:") && !line.trim_start().starts_with("\"preview\":"))
                .map(|line| format!("{line}\n"))
                .collect();
            insta::assert_snapshot!(format!("example_{}_{format}", name.trim_end_matches(".yaml")), reviewed);
        }
    }
}

#[test]
fn checked_in_schema_matches_the_code() {
    let outcome = runbook(&["schema"]);
    assert_eq!(outcome.code, Some(0));
    let checked_in = std::fs::read_to_string(root().join("schemas/runbook-v1.schema.json")).unwrap_or_default();
    assert!(
        checked_in == outcome.stdout,
        "schemas/runbook-v1.schema.json differs from `runbook schema`; regenerate it with\n  cargo run -q -p runbook -- schema > schemas/runbook-v1.schema.json"
    );
}

#[test]
fn completions_are_generated() {
    let outcome = runbook(&["completions", "bash"]);
    assert_eq!(outcome.code, Some(0));
    assert!(outcome.stdout.contains("runbook"));
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

#[test]
fn plan_of_the_contract_example() {
    let dir = fixture("");
    let outcome = runbook_in(
        &dir,
        &[
            "plan",
            "contract_example.yaml",
            "--input",
            "api_url=http://127.0.0.1:8080",
        ],
        &[("VOIKE_API_KEY", "k-123-secret")],
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!outcome.stdout.contains("k-123-secret"));
    insta::assert_snapshot!(outcome.transcript());
}

#[test]
fn assume_turns_a_run_time_guard_into_a_known_one() {
    let dir = fixture("");
    let base = [
        "plan",
        "contract_example.yaml",
        "--input",
        "api_url=http://127.0.0.1:8080",
        "--format",
        "json",
    ];
    let guard_of = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let outcome = runbook_in(&dir, &args, &[]);
        assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
        let plan: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
        plan["steps"][1]["guard"].clone()
    };
    assert_eq!(guard_of(&[])["state"], "at_run_time");
    assert_eq!(guard_of(&[])["depends_on"][0], "steps.health_before.outputs.healthy");
    let healthy = guard_of(&["--assume", "steps.health_before.outputs.healthy=true"]);
    assert_eq!(healthy["state"], "known_false", "{healthy}");
    assert_eq!(healthy["because"], "steps.health_before.outputs.healthy is true");
    let unhealthy = guard_of(&["--assume", "steps.health_before.outputs.healthy=false"]);
    assert_eq!(unhealthy["state"], "known_true", "{unhealthy}");
    let outcome = runbook_in(
        &dir,
        &[
            "plan",
            "contract_example.yaml",
            "--input",
            "api_url=http://x",
            "--assume",
            "steps.resolve_pop.outputs.pop=https://pop-7.example.net",
        ],
        &[],
    );
    assert!(
        outcome.stdout.contains("GET https://pop-7.example.net/health"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn plan_shows_what_a_run_does_after_an_assumed_failure() {
    let dir = fixture("plan");
    let plan_of = |assume: &[&str], format: &str| {
        let mut args = vec!["plan", "assumed_failure.yaml", "--format", format];
        for assumption in assume {
            args.extend(["--assume", assumption]);
        }
        let outcome = runbook_in(&dir, &args, &[]);
        assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
        outcome
    };
    let cases: [(&str, &[&str]); 3] = [
        ("continue", &["steps.probe.status=failed"]),
        ("rollback", &["steps.deploy.status=failed"]),
        ("abort", &["steps.probe.status=failed", "steps.cutover.status=failed"]),
    ];
    for (name, assume) in cases {
        insta::assert_snapshot!(format!("assumed_failure_{name}"), plan_of(assume, "text").transcript());
    }
    let json =
        |assume: &[&str]| -> serde_json::Value { serde_json::from_str(&plan_of(assume, "json").stdout).unwrap() };
    let step = |plan: &serde_json::Value, id: &str| {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };

    // `on_failure: continue`: the steps after it run, reading its status as `failed`.
    let continued = json(&["steps.probe.status=failed"]);
    assert_eq!(
        step(&continued, "repair")["guard"]["state"],
        "known_true",
        "{continued:#}"
    );
    assert!(
        continued["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.get("not_run").is_none())
    );
    assert_eq!(continued["failure"]["continues_after"], serde_json::json!(["probe"]));
    assert_eq!(continued["failure"]["run_status"], "failed_without_rollback");
    assert_eq!(continued["failure"]["exit_code"], 1);

    // Any other: the run stops there, rolls back what came before, then `finally`.
    let stopped = json(&["steps.deploy.status=failed"]);
    let stop = &stopped["failure"]["stops_at"];
    assert_eq!(stop["step"], "deploy");
    assert_eq!(stop["not_run"], serde_json::json!(["announce", "cutover", "celebrate"]));
    let undone: Vec<&str> = stop["rolls_back"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["step"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["repair", "warm_cache", "backup"], "{stop:#}");
    assert!(stop["rolls_back"][2].get("if").is_none(), "backup surely ran: {stop:#}");
    assert!(step(&stopped, "cutover")["not_run"].is_string());
    assert_eq!(stopped["summary"]["not_run"], 3);
    assert_eq!(stopped["summary"]["confirmations"], 0, "cutover never asks");
    assert_eq!(stopped["finally"][1]["guard"]["state"], "known_true", "{stopped:#}");
    assert_eq!(stopped["failure"]["exit_code"], 1);

    let aborted = json(&["steps.cutover.status=failed"]);
    assert_eq!(aborted["failure"]["stops_at"]["rolls_back"], serde_json::json!([]));
    assert_eq!(aborted["failure"]["run_status"], "aborted");
    assert_eq!(aborted["failure"]["exit_code"], 3);

    // Without an assumed failure the plan has no `failure`, and no step is marked.
    let plain = json(&[]);
    assert!(plain.get("failure").is_none() && plain["summary"].get("not_run").is_none());
}

/// A small generated runbook: `n` steps, each needing a few earlier ones,
/// most with a rollback, and `failing` failing with `on_failure`.
fn generated_runbook(seed: &mut u64, n: usize, failing: usize, on_failure: &str) -> String {
    let mut next = move |below: usize| {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 33) as usize) % below
    };
    let mut text = String::from("runbook: 1\nname: generated\nsteps:\n");
    for i in 0..n {
        let needs: Vec<String> = (0..i).filter(|_| next(3) == 0).map(|j| format!("s{j}")).collect();
        let run = if i == failing { "exit 1" } else { "true" };
        text.push_str(&format!(
            "  - id: s{i}\n    needs: [{}]\n    uses: shell\n    with: {{ run: \"{run}\" }}\n",
            needs.join(", ")
        ));
        if i == failing {
            text.push_str(&format!("    on_failure: {on_failure}\n"));
        }
        if next(3) != 0 {
            text.push_str("    rollback: { uses: shell, with: { run: \"true\" } }\n");
        }
    }
    text.push_str("finally:\n  - id: report\n    uses: log\n    with: { message: \"{{ run.status }}\" }\n");
    text
}

#[test]
fn plan_and_engine_agree_on_what_follows_a_failure() {
    let mut seed = 11;
    for case in 0..12 {
        let n = 3 + case % 4;
        let failing = case % n;
        let on_failure = ["abort", "rollback", "continue", "rollback"][case % 4];
        let runbook = generated_runbook(&mut seed, n, failing, on_failure);
        let sandbox = support::Sandbox::new(&runbook);
        let assume = format!("steps.s{failing}.status=failed");
        let plan = sandbox.runbook(&["plan", "runbook.yaml", "--format", "json", "--assume", &assume], &[]);
        assert_eq!(plan.code, Some(0), "{runbook}\n{}", plan.transcript());
        let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
        let failure = &plan["failure"];
        let run = sandbox.run(&["--yes", "--report", "report.json", "--report-format", "json"]);
        let report: serde_json::Value = serde_json::from_str(&sandbox.read("report.json")).unwrap();
        let status_of = |id: &str| {
            report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == id)
                .map(|s| s["status"].as_str().unwrap().to_string())
                .unwrap()
        };
        let context = format!("{runbook}\nplan: {failure:#}\nrun: {}", run.transcript());
        assert_eq!(run.code, failure["exit_code"].as_i64().map(|c| c as i32), "{context}");
        if on_failure == "continue" {
            // The failure counts as finished: every other step runs, nothing is rolled back.
            assert_eq!(
                failure["continues_after"],
                serde_json::json!([format!("s{failing}")]),
                "{context}"
            );
            assert!(failure["stops_at"].is_null(), "{context}");
            for i in 0..n {
                let want = if i == failing { "failed" } else { "succeeded" };
                assert_eq!(status_of(&format!("s{i}")), want, "s{i}: {context}");
            }
            assert!(run.stderr.contains("log: failed_without_rollback"), "{context}");
            continue;
        }
        let stop = &failure["stops_at"];
        assert_eq!(stop["step"], format!("s{failing}"), "{context}");
        for id in stop["not_run"].as_array().unwrap() {
            assert_eq!(status_of(id.as_str().unwrap()), "not_run", "{id}: {context}");
        }
        let planned: Vec<&serde_json::Value> = stop["rolls_back"].as_array().unwrap().iter().collect();
        for undo in &planned {
            if undo.get("if").is_none() {
                assert_eq!(
                    status_of(undo["step"].as_str().unwrap()),
                    "rolled_back",
                    "{undo}: {context}"
                );
            }
        }
        for i in 0..n {
            let id = format!("s{i}");
            if status_of(&id) == "rolled_back" {
                assert!(
                    planned.iter().any(|u| u["step"] == id),
                    "{id} was rolled back: {context}"
                );
            }
        }
        assert!(
            run.stderr
                .contains(&format!("log: {}", failure["run_status"].as_str().unwrap())),
            "{context}"
        );
    }
}

#[test]
fn plan_input_problems_are_clear() {
    let dir = fixture("");
    let missing = runbook_in(&dir, &["plan", "contract_example.yaml"], &[]);
    assert_eq!(missing.code, Some(2));
    let bad = runbook_in(
        &dir,
        &[
            "plan",
            "contract_example.yaml",
            "-i",
            "api_url=not a url",
            "-i",
            "dry_probe=maybe",
            "-i",
            "domian=x",
        ],
        &[],
    );
    assert_eq!(bad.code, Some(2));
    let bad_assumption = runbook_in(
        &dir,
        &[
            "plan",
            "contract_example.yaml",
            "-i",
            "api_url=http://x",
            "--assume",
            "steps.nope.outputs.x=1",
        ],
        &[],
    );
    assert_eq!(bad_assumption.code, Some(2));
    let malformed = runbook_in(&dir, &["plan", "contract_example.yaml", "--input", "api_url"], &[]);
    assert_eq!(malformed.code, Some(2));
    insta::assert_snapshot!(format!(
        "{}\n{}\n{}\n{}",
        missing.transcript(),
        bad.transcript(),
        bad_assumption.transcript(),
        malformed.transcript()
    ));
}

#[test]
fn plan_formats_for_tools() {
    let dir = fixture("plan");
    for format in ["mermaid", "dot", "json"] {
        let outcome = runbook_in(&dir, &["plan", "diamond.yaml", "--format", format], &[]);
        assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
        insta::assert_snapshot!(format!("diamond_{format}"), outcome.stdout);
    }
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let dir = fixture("plan");
    let plain = runbook_in(&dir, &["plan", "diamond.yaml"], &[]);
    assert!(!plain.stdout.contains('\x1b'));
    let forced = runbook_in(&dir, &["--color", "always", "plan", "diamond.yaml"], &[]);
    assert!(forced.stdout.contains('\x1b'));
}

#[test]
fn plan_lists_what_a_prune_would_delete_now() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    for name in ["snap-old", "snap-older", "snap-new"] {
        std::fs::create_dir_all(backups.join(name)).unwrap();
        std::fs::write(backups.join(name).join("MANIFEST.sha256"), "").unwrap();
    }
    for (name, age) in [("snap-old", "20 days ago"), ("snap-older", "30 days ago")] {
        let status = std::process::Command::new("touch")
            .args(["-d", age])
            .arg(backups.join(name))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let runbook = "runbook: 1\nname: prune\nsteps:\n  - id: prune\n    uses: file.prune\n    with: { dir: backups, older_than: 7d }\n";
    std::fs::write(dir.path().join("prune.yaml"), runbook).unwrap();
    let outcome = runbook_in(dir.path(), &["plan", "prune.yaml"], &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(
        outcome
            .stdout
            .contains("now: would delete snap-old, snap-older (1 kept)"),
        "{}",
        outcome.stdout
    );
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 3, "plan deleted nothing");
}

/// Reads JSON and fails on an object that has the same key twice (which
/// serde_json, like most parsers, silently takes the last of).
fn no_duplicate_keys(text: &str) -> Result<(), serde_json::Error> {
    use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    struct Checked;
    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Checked)
        }
    }
    impl<'de> Visitor<'de> for Checked {
        type Value = Checked;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(A::Error::custom(format!("`{key}` twice in one object")));
                }
                map.next_value::<Checked>()?;
            }
            Ok(Checked)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
    }
    serde_json::from_str::<Checked>(text).map(|_| ())
}

#[test]
fn the_duplicate_key_check_finds_a_repeated_key() {
    assert!(no_duplicate_keys(r#"{"a": [{"b": 1}], "c": {"d": null, "e": "x"}}"#).is_ok());
    let error = no_duplicate_keys(r#"{"a": [{"name": 1, "name": 2}]}"#).unwrap_err();
    assert!(error.to_string().contains("`name` twice"), "{error}");
}
