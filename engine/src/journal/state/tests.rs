use super::*;
use crate::event::StepSummary;
use serde_json::json;

/// Events numbered and stamped in order, a second apart.
fn timed(events: Vec<Event>) -> Vec<TimedEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| TimedEvent {
            seq: i as u64 + 1,
            at: format!("2026-11-22T01:02:{:02}.000Z", i % 60),
            event,
        })
        .collect()
}

fn state(events: Vec<Event>) -> RunState {
    RunState::from_events(&timed(events))
}

fn run_started(steps: usize) -> Event {
    Event::RunStarted {
        run_id: "r".into(),
        runbook: "book".into(),
        steps,
        dry_run: false,
    }
}

fn started(step: &str, attempt: u32) -> Event {
    Event::StepStarted {
        step: step.into(),
        name: None,
        attempt,
        action: format!("do {step}"),
    }
}

fn succeeded(step: &str, outputs: Json) -> Event {
    Event::StepSucceeded {
        step: step.into(),
        duration_ms: 10,
        outputs,
        undo: None,
    }
}

fn failed(step: &str, on_failure: OnFailure) -> Event {
    Event::StepFailed {
        step: step.into(),
        duration_ms: 20,
        error: "exited with code 3 (expected 0)".into(),
        on_failure,
        failure: Some(exit_3()),
    }
}

fn exit_3() -> Failure {
    Failure::Kind {
        message: "exited with code 3 (expected 0)".into(),
        partial: Some(json!({ "exit_code": 3, "stdout": "", "stderr": "disk full\n" })),
    }
}

fn checkpoint(step: &str, n: u32) -> Event {
    Event::StepCheckpoint {
        step: step.into(),
        kind: "shell".into(),
        state: json!({ "pgid": n }),
    }
}

fn rollback_started(step: &str) -> Event {
    Event::RollbackStarted {
        step: step.into(),
        action: format!("undo {step}"),
    }
}

fn rollback_succeeded(step: &str) -> Event {
    Event::RollbackSucceeded {
        step: step.into(),
        duration_ms: 5,
    }
}

fn summary_step(id: &str, status: StepStatus, error: Option<&str>, is_finally: bool) -> StepSummary {
    StepSummary {
        id: id.into(),
        name: None,
        status,
        duration_ms: 10,
        attempts: u32::from(status != StepStatus::NotRun),
        error: error.map(Into::into),
        failure: None,
        outputs: Json::Null,
        is_finally,
    }
}

fn run_finished(status: RunStatus, steps: Vec<StepSummary>, rolled_back: &[&str]) -> Event {
    let summary = RunSummary {
        run_id: "r".into(),
        runbook: "book".into(),
        status,
        duration_ms: 100,
        steps,
        rolled_back: rolled_back.iter().map(|s| s.to_string()).collect(),
        reason: None,
    };
    Event::RunFinished {
        status,
        duration_ms: 100,
        summary,
    }
}

fn ids<'a>(steps: impl Iterator<Item = &'a StepState>) -> Vec<&'a str> {
    steps.map(|s| s.id.as_str()).collect()
}

fn status(state: &RunState, id: &str) -> StepStatus {
    state.step(id).unwrap_or_else(|| panic!("no step `{id}`")).status
}

#[test]
fn a_run_that_succeeded() {
    let undo = Undo {
        kind: "shell".into(),
        params: json!({ "run": "rm x" }),
        description: "remove x".into(),
    };
    let state = state(vec![
        run_started(2),
        started("make", 1),
        checkpoint("make", 1),
        Event::StepSucceeded {
            step: "make".into(),
            duration_ms: 30,
            outputs: json!({ "path": "x" }),
            undo: Some(undo.clone()),
        },
        started("check", 1),
        succeeded("check", json!({})),
        run_finished(
            RunStatus::Succeeded,
            vec![
                summary_step("make", StepStatus::Succeeded, None, false),
                summary_step("check", StepStatus::Succeeded, None, false),
            ],
            &[],
        ),
    ]);
    let make = state.step("make").unwrap();
    assert_eq!(make.status, StepStatus::Succeeded);
    assert_eq!((make.attempts, make.duration_ms), (1, 30));
    assert_eq!(make.outputs, json!({ "path": "x" }));
    assert_eq!(make.undo, Some(undo));
    assert!(make.in_place() && !make.in_flight());
    assert_eq!(state.completed(), ["make", "check"]);
    assert_eq!(state.in_flight().count(), 0);
    assert_eq!(state.cut_short().count(), 0, "the checkpoint closed with the success");
    assert_eq!(state.planned(), Some(2));
    assert_eq!(state.stopping(|_| true), None);
    assert!(state.has_finished());
    assert_eq!(state.summary().map(|s| s.status), Some(RunStatus::Succeeded));
    assert_eq!(
        state.status_name(|| unreachable!("a finished run needs no pid")),
        "succeeded"
    );
}

#[test]
fn a_failure_rolled_back_then_finally() {
    let state = state(vec![
        run_started(3),
        started("a", 1),
        succeeded("a", json!({ "n": 1 })),
        started("b", 1),
        failed("b", OnFailure::Rollback),
        Event::StepSkipped {
            step: "c".into(),
            reason: "`b` did not succeed".into(),
        },
        rollback_started("a"),
        rollback_succeeded("a"),
        Event::FinallyStarted { steps: 1 },
        started("notify", 1),
        failed("notify", OnFailure::Continue),
    ]);
    assert_eq!(status(&state, "a"), StepStatus::RolledBack);
    assert!(!state.step("a").unwrap().in_place());
    assert_eq!(
        state.step("a").unwrap().outputs,
        json!({ "n": 1 }),
        "kept from its success"
    );
    assert_eq!(status(&state, "b"), StepStatus::Failed);
    let b = state.step("b").unwrap();
    assert_eq!(b.failure(), Some(exit_3()));
    assert!(matches!(
        b.setback,
        Some(Setback::Failed {
            on_failure: OnFailure::Rollback,
            ..
        })
    ));
    assert_eq!(state.step("c").unwrap().skip_reason(), Some("`b` did not succeed"));
    assert_eq!(state.rolled_back(), ["a"]);
    assert!(state.step("notify").unwrap().is_finally);
    assert!(!state.step("b").unwrap().is_finally);
    let main = |id: &str| id != "notify";
    assert_eq!(
        state.stopping(main),
        Some(Stopping::Failed {
            step: "b".into(),
            error: "exited with code 3 (expected 0)".into(),
            rollback: true,
        })
    );
    assert!(!state.has_finished() && state.summary().is_none());
    assert_eq!(state.status_name(|| false), "interrupted");
    assert_eq!(state.status_name(|| true), "running");
}

#[test]
fn a_rollback_failure_keeps_why_and_leaves_the_step_in_place() {
    let state = state(vec![
        started("a", 1),
        succeeded("a", Json::Null),
        started("b", 1),
        failed("b", OnFailure::Abort),
        rollback_started("a"),
        Event::RollbackFailed {
            step: "a".into(),
            duration_ms: 3,
            error: "exited with code 1 (expected 0)".into(),
            failure: Some(Failure::Kind {
                message: "exited with code 1 (expected 0)".into(),
                partial: Some(json!({ "exit_code": 1, "stderr": "busy" })),
            }),
        },
    ]);
    let a = state.step("a").unwrap();
    assert_eq!(a.status, StepStatus::RollbackFailed);
    assert!(a.in_place() && !a.rolling_back);
    assert_eq!(
        a.rollback_failure.as_ref().map(Reason::words).as_deref(),
        Some("exited with code 1 (expected 0) — exit code 1; last stderr: busy")
    );
    assert_eq!(
        state.stopping(|_| true),
        Some(Stopping::Failed {
            step: "b".into(),
            error: "exited with code 3 (expected 0)".into(),
            rollback: false,
        })
    );
}

#[test]
fn a_run_killed_mid_attempt_has_its_attempts_in_flight_with_their_last_checkpoint() {
    let state = state(vec![
        run_started(3),
        started("a", 1),
        started("b", 1),
        checkpoint("b", 1),
        checkpoint("a", 2),
        checkpoint("b", 3),
        started("c", 1),
        Event::StepCancelled {
            step: "c".into(),
            reason: "interrupted by SIGINT".into(),
            by: Some(Canceller::Signal("SIGINT".into())),
        },
    ]);
    assert_eq!(ids(state.in_flight()), ["a", "b", "c"]);
    assert_eq!(status(&state, "a"), StepStatus::Running);
    assert_eq!(status(&state, "c"), StepStatus::Cancelled);
    assert_eq!(
        state.step("c").unwrap().failure(),
        Some(Failure::Cancelled {
            by: Canceller::Signal("SIGINT".into())
        })
    );
    // In the order first taken; each with its last state.
    let cut: Vec<(&str, &Json)> = state.cut_short().map(|(step, c)| (step, &c.state)).collect();
    assert_eq!(cut, [("b", &json!({ "pgid": 3 })), ("a", &json!({ "pgid": 2 }))]);
    assert_eq!(state.stopping(|_| true), None);
}

#[test]
fn a_resumed_run_starts_afresh_what_was_in_flight() {
    let state = state(vec![
        run_started(2),
        started("a", 1),
        Event::StepRetrying {
            step: "a".into(),
            attempt: 1,
            error: "exited with code 3 (expected 0)".into(),
            delay_ms: 100,
            failure: Some(exit_3()),
        },
        started("a", 2),
        checkpoint("a", 7),
        // The run dies; resumed, the kind puts right what the attempt left.
        Event::StepRecovered {
            step: "a".into(),
            action: "stopped process group 7".into(),
        },
        Event::RunResumed {
            run_id: "r".into(),
            rerun: vec!["a".into()],
        },
    ]);
    let a = state.step("a").unwrap();
    assert_eq!((a.status, a.attempts), (StepStatus::Running, 2));
    assert_eq!(
        a.setback,
        Some(Setback::Recovered {
            action: "stopped process group 7".into()
        })
    );
    assert_eq!(state.cut_short().count(), 0, "put right");
    assert_eq!(ids(state.in_flight()), ["a"]);

    let mut events = timed(vec![started("a", 1), succeeded("a", json!({ "ok": true }))]);
    for (i, event) in events.iter_mut().enumerate() {
        event.seq = 10 + i as u64;
    }
    let mut state = state;
    for event in &events {
        state.apply(event);
    }
    let a = state.step("a").unwrap();
    assert_eq!(
        (a.status, a.attempts, a.setback.clone()),
        (StepStatus::Succeeded, 2, None)
    );
    assert_eq!(state.in_flight().count(), 0);
}

#[test]
fn a_step_skipped_after_it_started_is_not_in_flight() {
    // A gate failed and the operator skipped the step.
    let state = state(vec![
        started("gate", 1),
        Event::StepSkipped {
            step: "gate".into(),
            reason: "skipped by the operator after: verification failed".into(),
        },
    ]);
    assert_eq!(state.in_flight().count(), 0);
    assert_eq!(status(&state, "gate"), StepStatus::Skipped);
}

#[test]
fn what_stops_a_run() {
    let rollback_first = state(vec![
        started("a", 1),
        succeeded("a", Json::Null),
        Event::StepCancelled {
            step: "b".into(),
            reason: "the operator declined `b`".into(),
            by: Some(Canceller::Operator),
        },
        rollback_started("a"),
        failed("a-later", OnFailure::Rollback),
    ]);
    assert_eq!(rollback_first.stopping(|_| true), Some(Stopping::RollingBack));
    // Failures of steps that are not main steps, and failures that go on, stop nothing.
    let only_finally = state(vec![
        failed("a", OnFailure::Continue),
        failed("notify", OnFailure::Rollback),
    ]);
    assert_eq!(only_finally.stopping(|id| id != "notify"), None);
    assert!(matches!(
        only_finally.stopping(|_| true),
        Some(Stopping::Failed { step, .. }) if step == "notify"
    ));
    let requested = state(vec![
        failed("a", OnFailure::Rollback),
        Event::RollbackRequested {
            reason: "requested by the operator".into(),
        },
    ]);
    assert_eq!(requested.stopping(|_| true), Some(Stopping::Requested));
    assert!(requested.rollback_requested());
}

#[test]
fn a_rollback_after_the_run_finished_carries_its_summary_forward() {
    let mut events = vec![
        run_started(2),
        started("flush", 1),
        succeeded("flush", json!({ "keys": 3 })),
        started("restart", 1),
        failed("restart", OnFailure::Abort),
        Event::StepSkipped {
            step: "after".into(),
            reason: "`restart` did not succeed".into(),
        },
        run_finished(
            RunStatus::Aborted,
            vec![
                summary_step("flush", StepStatus::Succeeded, None, false),
                summary_step("restart", StepStatus::Failed, Some("exited with code 3"), false),
                summary_step("after", StepStatus::NotRun, Some("`restart` did not succeed"), false),
                summary_step("never", StepStatus::NotRun, None, false),
            ],
            &[],
        ),
        Event::StepOutput {
            step: "flush".into(),
            stream: crate::step::OutputStream::Stdout,
            line: "late".into(),
        },
    ];
    let finished = state(events.clone());
    assert!(finished.has_finished(), "live output does not make a summary stale");
    // The journal's book: as the events left each step.
    assert_eq!(ids(finished.steps()), ["flush", "restart", "after"]);
    assert_eq!(status(&finished, "after"), StepStatus::Skipped);
    // The record's book: as the summary gave them.
    let record = finished.finished().unwrap();
    assert_eq!(ids(record.steps()), ["flush", "restart", "after", "never"]);
    assert_eq!(record.steps().nth(2).unwrap().status, StepStatus::NotRun);

    events.extend([
        Event::RollbackRequested {
            reason: "requested by the operator".into(),
        },
        rollback_started("flush"),
    ]);
    let killed = state(events.clone());
    assert!(!killed.has_finished(), "a rollback under way makes the summary stale");
    assert_eq!(killed.summary().map(|s| s.status), Some(RunStatus::Aborted));
    assert_eq!(killed.stopping(|_| true), Some(Stopping::Requested));
    // `runs` and `show` agree with the reports: the run is not over.
    assert_eq!(killed.status_name(|| false), "interrupted");
    assert_eq!(killed.status_name(|| true), "running");
    let flush = killed.finished().unwrap().steps().next().unwrap();
    assert!(flush.rolling_back && flush.in_place());
    assert!(killed.step("flush").unwrap().in_place());

    events.extend([
        rollback_succeeded("flush"),
        run_finished(
            RunStatus::RolledBack,
            vec![
                summary_step("flush", StepStatus::RolledBack, None, false),
                summary_step("restart", StepStatus::Failed, Some("exited with code 3"), false),
            ],
            &["flush"],
        ),
    ]);
    let rolled_back = state(events);
    assert!(rolled_back.has_finished());
    assert_eq!(rolled_back.status_name(|| true), "rolled_back");
    assert_eq!(rolled_back.rolled_back(), ["flush"]);
    assert_eq!(rolled_back.finished().unwrap().rolled_back(), ["flush"]);
    assert!(!rolled_back.step("flush").unwrap().in_place());
}

#[test]
fn a_journal_torn_by_a_crash_replays_as_far_as_its_last_whole_line() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs").join("r1");
    let header = super::super::Header {
        format: super::super::FORMAT,
        run_id: "r1".into(),
        runbook: "book".into(),
        runbook_path: dir.path().join("book.yaml"),
        runbook_sha256: String::new(),
        inputs: serde_json::Map::new(),
        masked_inputs: Vec::new(),
        started_at: "2026-11-22T01:02:03.000Z".into(),
        pid: 1,
        host: "here".into(),
    };
    let writer = super::super::JournalWriter::create(&run_dir, &header, b"runbook: 1").unwrap();
    for event in [run_started(1), started("a", 1), checkpoint("a", 4)] {
        writer.append(&event).unwrap();
    }
    drop(writer);
    let path = run_dir.join("journal.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        r#"{"record":"event","seq":4,"at":"2026-11-22T01:02:04.000Z","prev":"x","event":{"event":"step_succ"#,
    );
    std::fs::write(&path, text).unwrap();

    let journal = super::super::read(dir.path(), "r1").unwrap();
    assert!(journal.torn_tail);
    let state = journal.state();
    assert_eq!(ids(state.in_flight()), ["a"], "the success was never whole");
    assert_eq!(state.cut_short().map(|(step, _)| step).collect::<Vec<_>>(), ["a"]);
    assert_eq!(state.status_name(|| false), "interrupted");
}
