//! The operator at the terminal, end to end: the binary driven in a
//! pseudo-terminal as a person would, answering its questions (guided
//! failure, confirmations and what a "no" offers, `--step`, Ctrl-C), with
//! the time at a prompt counting against no timeout, the transcript, and
//! every decision in the journal.

mod support;

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession as Session;
use expectrl::{Eof, Expect};
use serde_json::Value as Json;
use std::process::Stdio;
use std::time::Duration;
use support::Sandbox;

fn spawn(sandbox: &Sandbox, args: &[&str]) -> Session {
    in_a_terminal(sandbox.run_command(args))
}

fn in_a_terminal(mut command: std::process::Command) -> Session {
    command.stdin(Stdio::inherit());
    let mut session = Session::spawn(command).expect("the binary starts in a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
}

/// Waits for the end; the exit status, and everything the terminal showed after the last expect.
fn wait_exit(session: &mut Session) -> (i32, String) {
    let rest = session.expect(Eof).unwrap();
    let text = String::from_utf8_lossy(rest.before()).into_owned();
    match session.get_process_mut().wait().unwrap() {
        WaitStatus::Exited(_, code) => (code, text),
        other => panic!("the binary did not exit normally: {other:?}"),
    }
}

/// The journal's events of the sandbox's only run.
fn events(sandbox: &Sandbox) -> Vec<Json> {
    let runs = sandbox.run_ids();
    let run = runs.last().expect("a run was journaled");
    let text = std::fs::read_to_string(sandbox.state().join("runs").join(run).join("journal.jsonl")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| serde_json::from_str::<Json>(line).ok())
        .filter_map(|record| record.get("event").cloned())
        .collect()
}

/// The decisions journaled: (step, question, answer, by).
fn decisions(sandbox: &Sandbox) -> Vec<(String, String, String, String)> {
    events(sandbox)
        .iter()
        .filter(|e| e["event"] == "decision")
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default().to_string();
            (text("step"), text("question"), text("answer"), text("by"))
        })
        .collect()
}

const CONFIRMING: &str = r#"
runbook: 1
name: confirming
steps:
  - id: prepare
    uses: shell
    with: { run: "touch $SANDBOX/prepared" }
    rollback: { uses: shell, with: { run: "touch $SANDBOX/unprepared" } }
  - id: destroy
    confirm: "Really destroy the old state?"
    uses: shell
    with: { run: "touch $SANDBOX/destroyed" }
  - id: after
    uses: shell
    with: { run: "touch $SANDBOX/after" }
"#;

#[test]
fn yes_runs_the_step_and_the_decision_is_journaled_with_who() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &["--operator", "alice"]);
    session
        .expect("step `destroy` will: run `touch $SANDBOX/destroyed` with sh")
        .unwrap();
    session.expect("Really destroy the old state?").unwrap();
    session.send("y\r").unwrap();
    session.expect("run succeeded").unwrap();
    assert_eq!(wait_exit(&mut session).0, 0);
    assert!(sandbox.file("destroyed").exists() && sandbox.file("after").exists());
    assert_eq!(
        decisions(&sandbox),
        [(
            "destroy".to_string(),
            "Really destroy the old state?".to_string(),
            "yes".to_string(),
            "alice".to_string()
        )]
    );
}

#[test]
fn no_offers_skip_and_the_run_goes_on() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &[]);
    session.expect("Really destroy the old state?").unwrap();
    session.send("n\r").unwrap();
    session.expect("not confirmed. what now?").unwrap();
    session.send("s\r").unwrap();
    session.expect("run succeeded").unwrap();
    assert_eq!(wait_exit(&mut session).0, 0);
    assert!(!sandbox.file("destroyed").exists(), "the step was skipped");
    assert!(sandbox.file("after").exists(), "the run went on");
    assert!(!sandbox.file("unprepared").exists(), "nothing was rolled back");
    let answers: Vec<String> = decisions(&sandbox).into_iter().map(|d| d.2).collect();
    assert_eq!(answers, ["no: skip this step and go on"]);
    // The default `by`: the login user and host.
    assert!(decisions(&sandbox)[0].3.contains('@'), "{:?}", decisions(&sandbox));
}

#[test]
fn no_then_back_out_rolls_back() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &[]);
    session.expect("Really destroy the old state?").unwrap();
    session.send("no\r").unwrap();
    session.expect("not confirmed. what now?").unwrap();
    session.send("b\r").unwrap();
    session.expect("cancelled").unwrap();
    assert_eq!(wait_exit(&mut session).0, 130);
    assert!(!sandbox.file("destroyed").exists());
    assert!(sandbox.file("unprepared").exists(), "the prepared step was rolled back");
}

#[test]
fn no_then_quit_stops_for_a_person_without_rollback() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &[]);
    session.expect("Really destroy the old state?").unwrap();
    session.send("n\r").unwrap();
    session.expect("not confirmed. what now?").unwrap();
    session.send("q\r").unwrap();
    session.expect("a person must take over").unwrap();
    assert_eq!(wait_exit(&mut session).0, 3);
    assert!(!sandbox.file("destroyed").exists());
    assert!(!sandbox.file("unprepared").exists(), "nothing was rolled back");
}

#[test]
fn an_unknown_answer_is_asked_again() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &[]);
    session.expect("Really destroy the old state?").unwrap();
    session.send("maybe\r").unwrap();
    session.expect("please answer one of: y, n").unwrap();
    session.send("yes\r").unwrap();
    session.expect("run succeeded").unwrap();
    assert_eq!(wait_exit(&mut session).0, 0);
}

#[test]
fn ctrl_c_at_a_prompt_is_one_decision() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &[]);
    session.expect("answer [y/n]:").unwrap();
    session.send("\x03").unwrap();
    session.expect("cancelled").unwrap();
    let (code, rest) = wait_exit(&mut session);
    assert_eq!(code, 130);
    assert!(!rest.contains("what now?"), "no second question: {rest}");
    assert!(sandbox.file("unprepared").exists(), "rolled back");
    let answers: Vec<String> = decisions(&sandbox).into_iter().map(|d| d.2).collect();
    assert_eq!(answers, ["Ctrl-C at the prompt: the run stops and rolls back"]);
}

#[test]
fn any_failure_offers_retry_skip_rollback_stop_with_its_reason() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: guided
steps:
  - id: change
    uses: shell
    with: { run: "touch $SANDBOX/changed" }
    rollback: { uses: shell, with: { run: "touch $SANDBOX/undone" } }
  - id: migrate
    uses: shell
    with: { run: "echo checking the schema; test -f $SANDBOX/fixed || { echo 'schema is locked' >&2; exit 4; }" }
"#,
    );
    let mut session = spawn(&sandbox, &[]);
    session.expect("step `migrate` failed after 1 attempt(s)").unwrap();
    session.expect("exit code 4").unwrap();
    session.expect("schema is locked").unwrap();
    session.expect("its last lines of output:").unwrap();
    session
        .expect("without a person, `on_failure: rollback` would decide")
        .unwrap();
    session.expect("what now?").unwrap();
    // The operator puts things right by hand, then retries.
    std::fs::write(sandbox.file("fixed"), "").unwrap();
    session.send("r\r").unwrap();
    session.expect("(2 attempts)").unwrap();
    session.expect("run succeeded").unwrap();
    let (code, _) = wait_exit(&mut session);
    assert_eq!(code, 0);
    assert!(!sandbox.file("undone").exists());
    let answers: Vec<String> = decisions(&sandbox).into_iter().map(|d| d.2).collect();
    assert_eq!(answers, ["retry the step"]);
}

#[test]
fn skip_after_a_failure_counts_it_as_failed_and_goes_on() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: guided-skip
steps:
  - id: flaky
    uses: http
    with: { url: "http://127.0.0.1:9/nothing-listens-here" }
  - id: after
    uses: shell
    with: { run: "echo {{ steps.flaky.status }} > $SANDBOX/after" }
"#,
    );
    let mut session = spawn(&sandbox, &[]);
    session.expect("step `flaky` failed").unwrap();
    session.expect("what now?").unwrap();
    session.send("s\r").unwrap();
    session.expect("failed, not rolled back").unwrap();
    assert_eq!(wait_exit(&mut session).0, 1);
    assert_eq!(sandbox.read("after").trim(), "failed", "the steps after it ran");
}

#[test]
fn stop_after_a_failure_leaves_things_for_a_person() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: guided-stop
steps:
  - id: change
    uses: shell
    with: { run: "true" }
    rollback: { uses: shell, with: { run: "touch $SANDBOX/undone" } }
  - id: broken
    uses: shell
    with: { run: "exit 1" }
"#,
    );
    let mut session = spawn(&sandbox, &[]);
    session.expect("what now?").unwrap();
    session.send("q\r").unwrap();
    session.expect("a person must take over").unwrap();
    assert_eq!(wait_exit(&mut session).0, 3);
    assert!(!sandbox.file("undone").exists());
}

#[test]
fn time_at_a_prompt_counts_against_no_timeout() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: slow-person
defaults: { timeout: 1s }
steps:
  - id: approve
    uses: confirm
    with: { message: "Fail over now?" }
  - id: switch
    confirm: "Switch the DNS?"
    uses: shell
    with: { run: "touch $SANDBOX/switched" }
"#,
    );
    let mut session = spawn(&sandbox, &["--timeout", "2s"]);
    session.expect("Fail over now?").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    session.send("y\r").unwrap();
    session.expect("Switch the DNS?").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    session.send("y\r").unwrap();
    session.expect("run succeeded").unwrap();
    let (code, rest) = wait_exit(&mut session);
    assert_eq!(code, 0, "{rest}");
    assert!(sandbox.file("switched").exists());
}

#[test]
fn an_answer_timeout_counts_silence_as_no_and_says_so() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &["--answer-timeout", "1s"]);
    session.expect("Really destroy the old state?").unwrap();
    session.expect("no answer within 1s: counted as no").unwrap();
    session.expect("cancelled").unwrap();
    assert_eq!(wait_exit(&mut session).0, 130);
    assert!(!sandbox.file("destroyed").exists());
    assert!(sandbox.file("unprepared").exists());
    let answers: Vec<String> = decisions(&sandbox).into_iter().map(|d| d.2).collect();
    assert_eq!(
        answers,
        ["no answer within 1s: counted as no; the run stops and rolls back"]
    );
}

#[test]
fn step_mode_asks_before_every_step_but_once_for_one_with_its_own_confirm() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &["--step"]);
    session.expect("run step `prepare`?").unwrap();
    session.send("y\r").unwrap();
    session.expect("Really destroy the old state?").unwrap();
    session.send("y\r").unwrap();
    session.expect("run step `after`?").unwrap();
    session.send("s\r").unwrap();
    session.expect("run succeeded").unwrap();
    let (code, _) = wait_exit(&mut session);
    assert_eq!(code, 0);
    assert!(sandbox.file("prepared").exists() && sandbox.file("destroyed").exists());
    assert!(!sandbox.file("after").exists(), "skipped");
    let asked: Vec<String> = decisions(&sandbox).into_iter().map(|d| d.1).collect();
    assert_eq!(
        asked,
        [
            "run step `prepare`?",
            "Really destroy the old state?",
            "run step `after`?"
        ],
        "one question per step"
    );
}

#[test]
fn a_prompt_shows_what_will_happen_in_full() {
    let script: String = (1..=20).map(|n| format!("        echo line-{n}\n")).collect();
    let sandbox = Sandbox::new(&format!(
        r#"
runbook: 1
name: long-script
steps:
  - id: purge
    confirm: "Purge the cache?"
    uses: shell
    with:
      run: |
{script}"#
    ));
    let mut session = spawn(&sandbox, &[]);
    session.expect("run: |").unwrap();
    session.expect("echo line-11").unwrap();
    session.expect("more line(s): answer v to see them all").unwrap();
    session.expect("Purge the cache?").unwrap();
    session.send("v\r").unwrap();
    session.expect("echo line-20").unwrap();
    session.expect("Purge the cache?").unwrap();
    session.send("y\r").unwrap();
    session.expect("run succeeded").unwrap();
    assert_eq!(wait_exit(&mut session).0, 0);
}

#[test]
fn questions_go_to_the_terminal_when_output_is_piped_and_the_log_keeps_everything() {
    let sandbox = Sandbox::new(CONFIRMING);
    let log = sandbox.file("run.log");
    // `runbook run … 2>&1 | cat > out.txt`: both streams into a pipe, the terminal only on stdin.
    let run = sandbox.run_command(&["--log", log.to_str().unwrap()]);
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("\"$0\" \"$@\" 2>&1 | cat > stderr.txt")
        .arg(run.get_program())
        .args(run.get_args())
        .current_dir(sandbox.path());
    for (key, value) in run.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let mut session = Session::spawn(command).unwrap();
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session.expect("Really destroy the old state?").unwrap();
    session.send("y\r").unwrap();
    assert_eq!(wait_exit(&mut session).0, 0);
    let stderr = sandbox.read("stderr.txt");
    assert!(stderr.contains("run succeeded"), "{stderr}");
    assert!(
        stderr.contains("decided: Really destroy the old state? → yes (by "),
        "the decision is in the piped output: {stderr}"
    );
    let transcript = sandbox.read("run.log");
    for wanted in [
        "step `destroy` will: run `touch $SANDBOX/destroyed` with sh",
        "Really destroy the old state?",
        "answer [y/n]: y",
        "decided: Really destroy the old state? → yes (by ",
        "summary of run",
        "run succeeded",
    ] {
        assert!(
            transcript.contains(wanted),
            "`{wanted}` in the transcript:\n{transcript}"
        );
    }
    assert!(!transcript.contains('\x1b'), "plain text: {transcript:?}");
}

#[test]
fn a_question_is_withdrawn_when_the_run_stops_meanwhile() {
    let sandbox = Sandbox::new(CONFIRMING);
    let mut session = spawn(&sandbox, &[]);
    session.expect("Really destroy the old state?").unwrap();
    let pid = session.get_process().pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    session.expect("question withdrawn").unwrap();
    session.expect("interrupted. what now?").unwrap();
    // An answer to the withdrawn question is not taken: this one is for the new question.
    session.send("b\r").unwrap();
    session.expect("cancelled").unwrap();
    assert_eq!(wait_exit(&mut session).0, 130);
    assert!(!sandbox.file("destroyed").exists());
    assert!(sandbox.file("unprepared").exists());
    let answers: Vec<String> = decisions(&sandbox).into_iter().map(|d| d.2).collect();
    assert_eq!(
        answers,
        ["withdrawn unanswered: the run was stopping", "roll back what was done"]
    );
}

const UNDOABLE: &str = r#"
runbook: 1
name: undoable
steps:
  - id: first
    uses: shell
    with: { run: "touch $SANDBOX/first" }
    rollback: { uses: shell, with: { run: "echo first >> $SANDBOX/undone" } }
  - id: second
    needs: [first]
    uses: shell
    with: { run: "touch $SANDBOX/second" }
    rollback: { uses: shell, with: { run: "echo second >> $SANDBOX/undone" } }
  - id: third
    needs: [second]
    uses: shell
    with: { run: "exit ${FAIL:-0}" }
"#;

/// `runbook rollback RUN ARGS` in a pseudo-terminal.
fn spawn_rollback(sandbox: &Sandbox, run: &str, args: &[&str]) -> Session {
    let mut all = vec!["rollback", run];
    all.extend_from_slice(args);
    in_a_terminal(support::command(sandbox.path(), &all))
}

fn journal_text(sandbox: &Sandbox, run: &str) -> String {
    std::fs::read_to_string(sandbox.state().join("runs").join(run).join("journal.jsonl")).unwrap()
}

#[test]
fn rollback_shows_what_it_undoes_in_order_and_a_no_changes_nothing() {
    let sandbox = Sandbox::new(UNDOABLE);
    assert_eq!(sandbox.run(&[]).code, Some(0));
    let run = sandbox.run_ids().pop().unwrap();
    let mut session = spawn_rollback(&sandbox, &run, &["--operator", "bob"]);
    session
        .expect(format!("rolling back run {run} undoes 2 steps, in this order:").as_str())
        .unwrap();
    session
        .expect("1. `second`: run `echo second >> $SANDBOX/undone` with sh")
        .unwrap();
    session
        .expect("2. `first`: run `echo first >> $SANDBOX/undone` with sh")
        .unwrap();
    session.expect("roll back?").unwrap();
    session.send("n\r").unwrap();
    session.expect("was not rolled back (no); nothing was done").unwrap();
    let (code, text) = wait_exit(&mut session);
    assert_eq!(code, 130, "{text}");
    assert!(!sandbox.file("undone").exists(), "nothing was undone");
    // The run still reads as it ended, with the "no" on its record.
    let listed = sandbox.runbook(&["runs"], &[]);
    assert!(listed.stdout.contains("succeeded"), "{}", listed.transcript());
    assert_eq!(
        decisions(&sandbox).last().map(|d| (d.2.clone(), d.3.clone())),
        Some(("no".to_string(), "bob".to_string()))
    );

    let mut session = spawn_rollback(&sandbox, &run, &[]);
    session.expect("roll back?").unwrap();
    session.send("y\r").unwrap();
    let (code, text) = wait_exit(&mut session);
    assert_eq!(code, 0, "{text}");
    assert_eq!(sandbox.read("undone"), "second\nfirst\n");
    let answers: Vec<String> = decisions(&sandbox).into_iter().map(|d| d.2).collect();
    assert_eq!(answers, ["no", "yes"]);
}

#[test]
fn rollback_without_a_terminal_or_yes_refuses_and_changes_nothing() {
    let sandbox = Sandbox::new(UNDOABLE);
    assert_eq!(sandbox.run(&[]).code, Some(0));
    let run = sandbox.run_ids().pop().unwrap();
    let before = journal_text(&sandbox, &run);
    let refused = sandbox.runbook(&["rollback", &run], &[]);
    assert_eq!(refused.code, Some(2), "{}", refused.transcript());
    let said = refused.stderr.replace("\n  │ ", " ");
    assert!(
        said.contains("undoes 2 steps and needs confirmation, and there is no terminal to ask on"),
        "{}",
        refused.transcript()
    );
    assert!(refused.stderr.contains("pass `--yes`"), "{}", refused.transcript());
    assert!(!sandbox.file("undone").exists());
    assert_eq!(journal_text(&sandbox, &run), before, "the journal is as it was");

    let done = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
    assert_eq!(done.code, Some(0), "{}", done.transcript());
    assert_eq!(sandbox.read("undone"), "second\nfirst\n");
}

#[test]
fn a_rollback_updates_the_runs_history_line() {
    let sandbox = Sandbox::new(UNDOABLE);
    let failed = support::runbook_in(
        sandbox.path(),
        &["run", "runbook.yaml", "--no-rollback", "--history", "history.jsonl"],
        &[("FAIL", "1")],
    );
    assert_eq!(failed.code, Some(1), "{}", failed.transcript());
    let other = sandbox.run(&["--history", "history.jsonl"]);
    assert_eq!(other.code, Some(0), "{}", other.transcript());
    let runs = sandbox.run_ids();
    let statuses = || -> Vec<(String, String)> {
        sandbox
            .read("history.jsonl")
            .lines()
            .map(|l| serde_json::from_str::<Json>(l).unwrap())
            .map(|v| {
                (
                    v["run_id"].as_str().unwrap().to_string(),
                    v["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        statuses(),
        [
            (runs[0].clone(), "failed_without_rollback".to_string()),
            (runs[1].clone(), "succeeded".to_string())
        ]
    );
    let rolled = sandbox.runbook(&["rollback", &runs[0], "--yes", "--history", "history.jsonl"], &[]);
    assert_eq!(rolled.code, Some(0), "{}", rolled.transcript());
    assert_eq!(
        statuses(),
        [
            (runs[0].clone(), "rolled_back".to_string()),
            (runs[1].clone(), "succeeded".to_string())
        ],
        "one line per run: the rollback updated the failed run's"
    );
}

const WAITING: &str = r#"
runbook: 1
name: waiting
steps:
  - id: ready
    uses: wait
    with:
      probe: { uses: shell, with: { run: "test -f $SANDBOX/flag" } }
      until: "result.exit_code == 0"
      interval: 1s
      timeout: 30s
  - id: flaky
    needs: [ready]
    uses: shell
    with: { run: "test -f $SANDBOX/flaky || { touch $SANDBOX/flaky; exit 1; }" }
    retry: { attempts: 3, delay: 2s }
"#;

#[test]
fn the_live_view_shows_the_running_steps_clock_probe_attempt_and_countdown() {
    let sandbox = Sandbox::new(WAITING);
    let mut session = spawn(&sandbox, &[]);
    session.expect("ready · ").unwrap();
    session
        .expect("probe 1: exit code 1; `result.exit_code == 0` not true yet · next in")
        .unwrap();
    std::fs::write(sandbox.file("flag"), "").unwrap();
    session.expect("flaky · ").unwrap();
    session.expect("attempt 1 failed; retrying · next in 2s").unwrap();
    session.expect("attempt 2 of 3").unwrap();
    session.expect("run succeeded").unwrap();
    assert_eq!(wait_exit(&mut session).0, 0);
}

#[test]
fn without_a_terminal_progress_is_one_plain_line_each() {
    let sandbox = Sandbox::new(WAITING);
    std::fs::write(sandbox.file("flag"), "").unwrap();
    std::fs::write(sandbox.file("flaky"), "").unwrap();
    let quick = sandbox.run(&[]);
    assert_eq!(quick.code, Some(0), "{}", quick.transcript());
    assert!(
        quick.stderr.contains("… flaky: attempt 1 of 3\n"),
        "{}",
        quick.transcript()
    );
    std::fs::remove_file(sandbox.file("flag")).unwrap();
    let child = sandbox
        .run_command(&["--output", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(sandbox.file("flag"), "").unwrap();
    let output = child.wait_with_output().unwrap();
    let progress: Vec<Json> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|e| e["event"] == "step_progress")
        .collect();
    assert!(
        progress.iter().any(|e| e["step"] == "ready"
            && e["note"].as_str().unwrap().starts_with("probe 1: exit code 1")
            && e["next_in_ms"].as_u64().is_some()),
        "{progress:?}"
    );
    // Shown, never journaled.
    assert!(!events(&sandbox).iter().any(|e| e["event"] == "step_progress"));
}
