//! The executor in process (issue #9): scheduling order, parallel limits,
//! rollback order, backoff delays, timeouts and cancellation, asserted
//! through the public `execute()` with a fake step kind.
//!
//! The fake (in `executor/harness.rs`) is driven by its parameters (`id`,
//! `sleep_ms`, `fail_attempts`, `fail_with`) and records the start and end of
//! every attempt against tokio's clock. Time is paused, so sleeps, backoff
//! delays and timeouts take no real time and are exact.

#[path = "executor/harness.rs"]
mod harness;

use harness::{
    Answer, Mark, Scripted, announced_delays, most_at_once, ms, run, run_operated, run_with, run_with_signals,
};
use runbook_engine::execute::{ConfirmAnswer, FailureAnswer};
use runbook_engine::execute::{Event, RunStatus, StepStatus};
use std::time::Duration;

// ── Scheduling order ────────────────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn steps_without_needs_run_in_sequence() {
    let ran = run(r#"
runbook: 1
name: sequence
max_parallel: 8
steps:
  - { id: a, uses: fake, with: { id: a, sleep_ms: 1000 } }
  - { id: b, uses: fake, with: { id: b, sleep_ms: 2000 } }
  - { id: c, uses: fake, with: { id: c, sleep_ms: 500 } }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    assert_eq!(ran.started(), ["a", "b", "c"]);
    assert_eq!(
        [ran.start("a"), ran.start("b"), ran.start("c")],
        [ms(0), ms(1000), ms(3000)]
    );
    assert_eq!(ran.end("c"), (Mark::Succeeded, ms(3500)));
}

#[tokio::test(start_paused = true)]
async fn needs_empty_starts_at_once_and_the_next_step_follows_it() {
    let ran = run(r#"
runbook: 1
name: at_once
max_parallel: 8
steps:
  - { id: a, uses: fake, with: { id: a, sleep_ms: 1000 } }
  - { id: b, uses: fake, with: { id: b, sleep_ms: 3000 }, needs: [] }
  - { id: c, uses: fake, with: { id: c, sleep_ms: 500 } }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    assert_eq!(ran.start("a"), ms(0));
    assert_eq!(ran.start("b"), ms(0), "`needs: []` does not wait for the step above");
    assert_eq!(
        ran.start("c"),
        ms(3000),
        "without `needs`, `c` waits for `b` above it, not `a`"
    );
}

#[tokio::test(start_paused = true)]
async fn a_join_waits_for_every_need() {
    let ran = run(r#"
runbook: 1
name: join
max_parallel: 8
steps:
  - { id: short, uses: fake, with: { id: short, sleep_ms: 1000 }, needs: [] }
  - { id: long, uses: fake, with: { id: long, sleep_ms: 3000 }, needs: [] }
  - { id: middle, uses: fake, with: { id: middle, sleep_ms: 2000 }, needs: [] }
  - { id: joined, uses: fake, with: { id: joined }, needs: [short, long, middle] }
  - { id: after, uses: fake, with: { id: after } }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    for id in ["short", "long", "middle"] {
        assert_eq!(ran.start(id), ms(0), "`{id}` has no needs");
    }
    assert_eq!(ran.start("joined"), ms(3000), "the join starts when its last need ends");
    assert_eq!(ran.start("after"), ms(3000));
    assert_eq!(ran.started().last(), Some(&"after"));
}

#[tokio::test(start_paused = true)]
async fn a_skipped_step_counts_as_finished() {
    let ran = run(r#"
runbook: 1
name: guard
steps:
  - { id: a, uses: fake, with: { id: a, sleep_ms: 1000 } }
  - { id: b, uses: fake, with: { id: b }, when: "false" }
  - { id: c, uses: fake, with: { id: c } }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    assert_eq!(ran.started(), ["a", "c"]);
    assert_eq!(ran.step_status("b"), StepStatus::Skipped);
    assert_eq!(ran.start("c"), ms(1000));
}

// ── Parallel limits ─────────────────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn max_parallel_bounds_the_attempts_running_at_once() {
    let ran = run(r#"
runbook: 1
name: parallel
max_parallel: 2
steps:
  - { id: s1, uses: fake, with: { id: s1, sleep_ms: 1000 }, needs: [] }
  - { id: s2, uses: fake, with: { id: s2, sleep_ms: 1000 }, needs: [] }
  - { id: s3, uses: fake, with: { id: s3, sleep_ms: 1000 }, needs: [] }
  - { id: s4, uses: fake, with: { id: s4, sleep_ms: 1000 }, needs: [] }
  - { id: s5, uses: fake, with: { id: s5, sleep_ms: 1000 }, needs: [] }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    assert_eq!(most_at_once(&ran.records), 2, "{:#?}", ran.records);
    let mut starts: Vec<Duration> = ["s1", "s2", "s3", "s4", "s5"].iter().map(|id| ran.start(id)).collect();
    starts.sort();
    assert_eq!(
        starts,
        [ms(0), ms(0), ms(1000), ms(1000), ms(2000)],
        "two lanes, kept full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_parallel_holds_with_steps_on_several_threads() {
    let ran = run(r#"
runbook: 1
name: parallel_threads
max_parallel: 2
steps:
  - { id: s1, uses: fake, with: { id: s1, sleep_ms: 30 }, needs: [] }
  - { id: s2, uses: fake, with: { id: s2, sleep_ms: 30 }, needs: [] }
  - { id: s3, uses: fake, with: { id: s3, sleep_ms: 30 }, needs: [] }
  - { id: s4, uses: fake, with: { id: s4, sleep_ms: 30 }, needs: [] }
  - { id: s5, uses: fake, with: { id: s5, sleep_ms: 30 }, needs: [] }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    assert_eq!(ran.started().len(), 5);
    assert!(most_at_once(&ran.records) <= 2, "{:#?}", ran.records);
}

// ── Rollback order ──────────────────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn rollback_runs_in_reverse_order_of_completion_then_finally() {
    // Declared slow, quick, middle: they complete quick, middle, slow.
    let ran = run(r#"
runbook: 1
name: rollback_order
max_parallel: 8
steps:
  - id: slow
    needs: []
    uses: fake
    with: { id: slow, sleep_ms: 3000 }
    rollback: { uses: fake, with: { id: undo_slow, sleep_ms: 100 } }
  - id: quick
    needs: []
    uses: fake
    with: { id: quick, sleep_ms: 1000 }
    rollback: { uses: fake, with: { id: undo_quick, sleep_ms: 100 } }
  - id: middle
    needs: []
    uses: fake
    with: { id: middle, sleep_ms: 2000 }
    rollback: { uses: fake, with: { id: undo_middle, sleep_ms: 100 } }
  - id: reads_only
    needs: []
    uses: fake
    with: { id: reads_only, sleep_ms: 500 }
  - id: breaks
    needs: [slow, quick, middle, reads_only]
    uses: fake
    with: { id: breaks, fail_attempts: 1 }
    rollback: { uses: fake, with: { id: undo_breaks } }
finally:
  - { id: report, uses: fake, with: { id: "report {{ run.status }}" } }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Failed, "{:#?}", ran.summary);
    let after_failure: Vec<&str> = ran
        .started()
        .into_iter()
        .skip_while(|id| *id != "breaks")
        .skip(1)
        .collect();
    assert_eq!(
        after_failure,
        ["undo_slow", "undo_middle", "undo_quick", "report failed"],
        "only what succeeded is undone"
    );
    assert_eq!(ran.rollbacks_started(), ["slow", "middle", "quick"]);
    assert_eq!(ran.summary.rolled_back, ["slow", "middle", "quick"]);
    // One at a time, each after the one before has ended.
    assert_eq!(
        [
            ran.start("undo_slow"),
            ran.start("undo_middle"),
            ran.start("undo_quick"),
            ran.start("report failed")
        ],
        [ms(3000), ms(3100), ms(3200), ms(3300)]
    );
    for id in ["slow", "middle", "quick"] {
        assert_eq!(ran.step_status(id), StepStatus::RolledBack);
    }
    assert_eq!(ran.step_status("reads_only"), StepStatus::Succeeded);
    assert_eq!(ran.step_status("breaks"), StepStatus::Failed);
    let finally_started = ran.position(|e| matches!(e, Event::FinallyStarted { .. }));
    let last_rollback = ran.position(|e| matches!(e, Event::RollbackSucceeded { step, .. } if step == "quick"));
    assert!(last_rollback < finally_started, "`finally` runs after the rollback");
}

#[tokio::test(start_paused = true)]
async fn a_failure_cancels_the_steps_still_running_and_does_not_undo_them() {
    let ran = run(r#"
runbook: 1
name: cancel_running
max_parallel: 8
steps:
  - id: long
    needs: []
    uses: fake
    with: { id: long, sleep_ms: 10000 }
    rollback: { uses: fake, with: { id: undo_long } }
  - { id: breaks, needs: [], uses: fake, with: { id: breaks, sleep_ms: 1000, fail_attempts: 1 } }
  - { id: later, uses: fake, with: { id: later } }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Failed, "{:#?}", ran.summary);
    assert_eq!(
        ran.end("long"),
        (Mark::Cancelled, ms(1000)),
        "cancelled when `breaks` failed"
    );
    assert_eq!(
        ran.started(),
        ["long", "breaks"],
        "nothing new starts, nothing is undone"
    );
    assert_eq!(ran.step_status("long"), StepStatus::Cancelled);
    assert_eq!(ran.step_status("later"), StepStatus::NotRun);
}

#[tokio::test(start_paused = true)]
async fn on_failure_continue_records_the_failure_and_does_not_roll_back() {
    let ran = run(r#"
runbook: 1
name: continue
max_parallel: 8
steps:
  - id: first
    uses: fake
    with: { id: first }
    rollback: { uses: fake, with: { id: undo_first } }
  - id: optional
    needs: [first]
    uses: fake
    with: { id: optional, fail_attempts: 1 }
    on_failure: continue
  - { id: independent, needs: [first], uses: fake, with: { id: independent, sleep_ms: 1000 } }
  - { id: last, needs: [independent], uses: fake, with: { id: last } }
finally:
  - { id: report, uses: fake, with: { id: report } }
"#)
    .await;
    assert_eq!(
        ran.summary.status,
        RunStatus::FailedWithoutRollback,
        "{:#?}",
        ran.summary
    );
    assert_eq!(ran.summary.status.exit_code(), runbook_engine::exit::FAILED_ROLLED_BACK);
    assert_eq!(ran.step_status("optional"), StepStatus::Failed);
    assert_eq!(ran.end("last"), (Mark::Succeeded, ms(1000)), "the run goes on");
    assert!(ran.rollbacks_started().is_empty(), "{:#?}", ran.events);
    assert!(ran.starts("undo_first").is_empty());
    assert_eq!(ran.step_status("first"), StepStatus::Succeeded);
    assert_eq!(ran.started().last(), Some(&"report"));
}

#[tokio::test(start_paused = true)]
async fn the_step_after_a_continued_failure_still_runs() {
    let ran = run(r#"
runbook: 1
name: continue_sequence
steps:
  - { id: optional, uses: fake, with: { id: optional, fail_attempts: 1 }, on_failure: continue }
  - { id: next, uses: fake, with: { id: next } }
"#)
    .await;
    assert_eq!(
        ran.started(),
        ["optional", "next"],
        "it counts as finished for ordering"
    );
    assert_eq!(ran.step_status("optional"), StepStatus::Failed);
    assert_eq!(
        ran.summary.status,
        RunStatus::FailedWithoutRollback,
        "{:#?}",
        ran.summary
    );
}

#[tokio::test(start_paused = true)]
async fn on_failure_abort_stops_without_rollback() {
    let ran = run(r#"
runbook: 1
name: abort
steps:
  - id: first
    uses: fake
    with: { id: first }
    rollback: { uses: fake, with: { id: undo_first } }
  - { id: fatal, uses: fake, with: { id: fatal, fail_attempts: 1 }, on_failure: abort }
  - { id: next, uses: fake, with: { id: next } }
finally:
  - { id: report, uses: fake, with: { id: report } }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Aborted, "{:#?}", ran.summary);
    assert_eq!(ran.summary.status.exit_code(), runbook_engine::exit::NEEDS_A_PERSON);
    assert_eq!(
        ran.started(),
        ["first", "fatal", "report"],
        "no rollback; `finally` still runs"
    );
    assert!(ran.rollbacks_started().is_empty(), "{:#?}", ran.events);
    assert_eq!(ran.step_status("first"), StepStatus::Succeeded);
    assert_eq!(ran.step_status("next"), StepStatus::NotRun);
}

// ── Backoff delays ──────────────────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn exponential_backoff_doubles_the_delay_up_to_max_delay() {
    let ran = run(r#"
runbook: 1
name: exponential
steps:
  - id: flaky
    uses: fake
    with: { id: flaky, sleep_ms: 100, fail_attempts: 3 }
    retry: { attempts: 4, backoff: exponential, delay: 1s, max_delay: 3s }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    assert_eq!(ran.attempts("flaky"), [1, 2, 3, 4]);
    assert_eq!(ran.gaps("flaky"), [ms(1000), ms(2000), ms(3000)]);
    assert_eq!(announced_delays(&ran, "flaky"), [ms(1000), ms(2000), ms(3000)]);
}

#[tokio::test(start_paused = true)]
async fn fixed_backoff_waits_the_same_delay_each_time() {
    let ran = run(r#"
runbook: 1
name: fixed
steps:
  - id: flaky
    uses: fake
    with: { id: flaky, sleep_ms: 100, fail_attempts: 3 }
    retry: { attempts: 4, backoff: fixed, delay: 2s }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    assert_eq!(ran.gaps("flaky"), [ms(2000), ms(2000), ms(2000)]);
}

#[tokio::test(start_paused = true)]
async fn the_last_failed_attempt_fails_the_step_without_another_delay() {
    let ran = run(r#"
runbook: 1
name: exhausted
steps:
  - id: flaky
    uses: fake
    with: { id: flaky, fail_attempts: 9, fail_with: "still broken" }
    retry: { attempts: 3, backoff: fixed, delay: 1s }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Failed, "{:#?}", ran.summary);
    assert_eq!(ran.starts("flaky"), [ms(0), ms(1000), ms(2000)]);
    assert_eq!(announced_delays(&ran, "flaky").len(), 2);
    assert_eq!(ran.failure_of("flaky"), Some("still broken"));
}

#[tokio::test(start_paused = true)]
async fn jittered_backoff_stays_within_half_to_all_of_the_delay() {
    let yaml = r#"
runbook: 1
name: jitter
steps:
  - id: flaky
    uses: fake
    with: { id: flaky, fail_attempts: 5 }
    retry: { attempts: 6, backoff: exponential, delay: 1s, max_delay: 3s, jitter: true }
"#;
    let nominal = [ms(1000), ms(2000), ms(3000), ms(3000), ms(3000)];
    let mut seen = std::collections::BTreeSet::new();
    // Random: several runs, each asserted on bounds only.
    for _ in 0..10 {
        let ran = run(yaml).await;
        assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
        let gaps = ran.gaps("flaky");
        assert_eq!(gaps.len(), nominal.len());
        for (gap, delay) in gaps.iter().zip(nominal) {
            assert!(
                *gap > delay / 2 && *gap <= delay,
                "a gap of {gap:?} is not in ({:?}, {delay:?}]",
                delay / 2
            );
        }
        for (announced, delay) in announced_delays(&ran, "flaky").iter().zip(nominal) {
            // Announced in whole milliseconds, rounded down.
            assert!(
                *announced >= delay / 2 && *announced <= delay,
                "{announced:?} for {delay:?}"
            );
        }
        seen.extend(gaps);
    }
    assert!(seen.len() > 5, "jitter varies the delays: {seen:?}");
}

// ── Timeouts versus cancellation ────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn a_step_timeout_cancels_the_attempt_and_fails_the_step_as_timed_out() {
    let ran = run(r#"
runbook: 1
name: timeout
steps:
  - id: first
    uses: fake
    with: { id: first }
    rollback: { uses: fake, with: { id: undo_first } }
  - { id: hangs, uses: fake, with: { id: hangs, sleep_ms: 10000 }, timeout: 2s }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Failed, "{:#?}", ran.summary);
    assert_eq!(
        ran.end("hangs"),
        (Mark::Cancelled, ms(2000)),
        "its cancel token fired at the timeout"
    );
    let error = ran.failure_of("hangs").expect("a StepFailed event for `hangs`");
    assert!(error.contains("timed out after 2s"), "{error}");
    assert!(
        !ran.events.iter().any(|e| matches!(e, Event::StepCancelled { .. })),
        "a timeout is a failure, not a cancellation: {:#?}",
        ran.events
    );
    assert_eq!(ran.started().last(), Some(&"undo_first"), "a timeout rolls back");
}

#[tokio::test(start_paused = true)]
async fn a_step_timeout_bounds_each_attempt() {
    let ran = run(r#"
runbook: 1
name: timeout_retry
steps:
  - id: hangs
    uses: fake
    with: { id: hangs, sleep_ms: 10000 }
    timeout: 2s
    retry: { attempts: 3, backoff: fixed, delay: 1s }
"#)
    .await;
    assert_eq!(ran.summary.status, RunStatus::Failed, "{:#?}", ran.summary);
    assert_eq!(ran.starts("hangs"), [ms(0), ms(3000), ms(6000)]);
    assert_eq!(
        ran.times("hangs", Mark::Cancelled),
        [ms(2000), ms(5000), ms(8000)],
        "each attempt is cut at 2s"
    );
    assert!(
        ran.failure_of("hangs")
            .is_some_and(|e| e.contains("timed out after 2s"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_timeout_cancels_the_running_step_and_rolls_back() {
    let ran = run_with(
        r#"
runbook: 1
name: run_timeout
steps:
  - id: first
    uses: fake
    with: { id: first }
    rollback: { uses: fake, with: { id: undo_first } }
  - { id: hangs, uses: fake, with: { id: hangs, sleep_ms: 10000 } }
finally:
  - { id: report, uses: fake, with: { id: "report {{ run.status }}" } }
"#,
        &[],
        Some(Duration::from_secs(3)),
    )
    .await;
    assert_eq!(ran.summary.status, RunStatus::Failed, "{:#?}", ran.summary);
    assert!(
        ran.summary
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("timed out after 3s")),
        "{:?}",
        ran.summary.reason
    );
    // The run's deadline is taken from the system clock, so paused time
    // reaches it a little late (by the real time the test took to get there).
    let (mark, at) = ran.end("hangs");
    assert_eq!(mark, Mark::Cancelled);
    assert!(at >= ms(3000) && at < ms(4000), "cancelled at {at:?}");
    assert_eq!(ran.started(), ["first", "hangs", "undo_first", "report failed"]);
}

#[tokio::test(start_paused = true)]
async fn a_run_cancelled_from_outside_reports_cancellation_not_a_timeout() {
    let ran = run_with_signals(
        r#"
runbook: 1
name: interrupted
steps:
  - id: first
    uses: fake
    with: { id: first }
    rollback: { uses: fake, with: { id: undo_first } }
  - { id: hangs, uses: fake, with: { id: hangs, sleep_ms: 10000 }, timeout: 5s }
  - { id: never, uses: fake, with: { id: never } }
finally:
  - { id: report, uses: fake, with: { id: "report {{ run.status }}" } }
"#,
        &[(ms(1000), "SIGTERM")],
    )
    .await;
    assert_eq!(ran.summary.status, RunStatus::Cancelled, "{:#?}", ran.summary);
    assert_eq!(ran.summary.status.exit_code(), runbook_engine::exit::CANCELLED);
    assert_eq!(
        ran.end("hangs"),
        (Mark::Cancelled, ms(1000)),
        "cancelled by the signal, not at 5s"
    );
    assert!(
        ran.events
            .iter()
            .any(|e| matches!(e, Event::Interrupted { signal } if signal == "SIGTERM"))
    );
    assert!(
        ran.events
            .iter()
            .any(|e| matches!(e, Event::StepCancelled { step, .. } if step == "hangs"))
    );
    assert_eq!(ran.failure_of("hangs"), None, "a cancelled step is not a failed one");
    let all = format!("{:?} {:?}", ran.events, ran.summary);
    assert!(!all.contains("timed out"), "{all}");
    assert_eq!(ran.started(), ["first", "hangs", "undo_first", "report cancelled"]);
    assert_eq!(ran.summary.rolled_back, ["first"]);
    assert!(
        ran.summary.reason.as_deref().is_some_and(|r| r.contains("SIGTERM")),
        "{:?}",
        ran.summary.reason
    );
}

// ── Cancellation during rollback ────────────────────────────────────────

const SLOW_ROLLBACK: &str = r#"
runbook: 1
name: slow_rollback
steps:
  - id: first
    uses: fake
    with: { id: first }
    rollback: { uses: fake, with: { id: undo_first, sleep_ms: 5000 } }
  - { id: second, uses: fake, with: { id: second, sleep_ms: 1000, fail_attempts: 1 } }
finally:
  - { id: report, uses: fake, with: { id: "report {{ run.status }}" } }
"#;

#[tokio::test(start_paused = true)]
async fn a_signal_during_rollback_does_not_abandon_it_unattended() {
    // `second` fails at 1s; the rollback of `first` runs from 1s to 6s.
    let ran = run_with_signals(SLOW_ROLLBACK, &[(ms(3000), "SIGTERM")]).await;
    assert_eq!(ran.summary.status, RunStatus::Failed, "{:#?}", ran.summary);
    assert_eq!(ran.start("undo_first"), ms(1000));
    assert_eq!(
        ran.end("undo_first"),
        (Mark::Succeeded, ms(6000)),
        "the rollback ran to its end"
    );
    let started = ran.position(|e| matches!(e, Event::RollbackStarted { step, .. } if step == "first"));
    let interrupted = ran.position(|e| matches!(e, Event::Interrupted { .. }));
    let succeeded = ran.position(|e| matches!(e, Event::RollbackSucceeded { step, .. } if step == "first"));
    assert!(started < interrupted && interrupted < succeeded, "{:#?}", ran.events);
    assert_eq!(ran.summary.rolled_back, ["first"]);
    assert_eq!(ran.started().last(), Some(&"report failed"));
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_during_the_rollback_of_a_cancelled_run_does_not_abandon_it() {
    // The first signal stops `second` at 500ms; the rollback of `first`
    // runs from then to 5.5s, and the second signal lands in the middle.
    let ran = run_with_signals(SLOW_ROLLBACK, &[(ms(500), "SIGINT"), (ms(2000), "SIGINT")]).await;
    assert_eq!(ran.summary.status, RunStatus::Cancelled, "{:#?}", ran.summary);
    assert_eq!(ran.end("second"), (Mark::Cancelled, ms(500)));
    assert_eq!(
        ran.end("undo_first"),
        (Mark::Succeeded, ms(5500)),
        "the rollback ran to its end"
    );
    let interruptions = ran
        .events
        .iter()
        .filter(|e| matches!(e, Event::Interrupted { .. }))
        .count();
    assert_eq!(interruptions, 2);
    assert_eq!(ran.summary.rolled_back, ["first"]);
    assert_eq!(ran.step_status("first"), StepStatus::RolledBack);
    assert_eq!(ran.started().last(), Some(&"report cancelled"));
}

// ── A person at the terminal ────────────────────────────────────────────

/// The decisions journaled: (step, answer).
fn decisions(ran: &harness::Ran) -> Vec<(String, String)> {
    ran.events
        .iter()
        .filter_map(|e| match e {
            Event::Decision { step, answer, .. } => Some((step.clone().unwrap_or_default(), answer.clone())),
            _ => None,
        })
        .collect()
}

const FLAKY: &str = r#"
runbook: 1
name: guided
steps:
  - id: first
    uses: fake
    with: { id: first }
    rollback: { uses: fake, with: { id: undo_first } }
  - { id: flaky, uses: fake, with: { id: flaky, fail_attempts: 1, fail_with: "the disk is full" } }
  - { id: after, uses: fake, with: { id: after } }
"#;

#[tokio::test(start_paused = true)]
async fn a_failed_step_retried_by_hand_numbers_its_attempts_on() {
    let operator = Scripted::new(&[Answer::Failure(FailureAnswer::Retry)]);
    let ran = run_operated(FLAKY, &[], None, operator.clone(), false).await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded, "{:#?}", ran.summary);
    assert_eq!(ran.attempts("flaky"), [1, 2], "the hand retry is attempt 2");
    assert_eq!(ran.started(), ["first", "flaky", "flaky", "after"]);
    let flaky = ran.summary.steps.iter().find(|s| s.id == "flaky").unwrap();
    assert_eq!(flaky.attempts, 2);
    assert_eq!(*operator.asked.lock().unwrap(), ["failed flaky: the disk is full"]);
    assert_eq!(decisions(&ran), [("flaky".to_string(), "retry the step".to_string())]);
}

#[tokio::test(start_paused = true)]
async fn skip_after_a_failure_goes_on_as_continue_does() {
    let operator = Scripted::new(&[Answer::Failure(FailureAnswer::Skip)]);
    let ran = run_operated(FLAKY, &[], None, operator, false).await;
    assert_eq!(ran.summary.status, RunStatus::FailedWithoutRollback);
    assert_eq!(ran.step_status("flaky"), StepStatus::Failed);
    assert_eq!(
        ran.step_status("after"),
        StepStatus::Succeeded,
        "the steps after it run"
    );
    assert!(ran.rollbacks_started().is_empty());
    // Journaled as what it amounts to, so that a resume goes on the same way.
    assert!(ran.events.iter().any(|e| matches!(
        e,
        Event::StepFailed { step, on_failure: runbook_engine::parse::raw::OnFailure::Continue, .. } if step == "flaky"
    )));
}

#[tokio::test(start_paused = true)]
async fn stop_after_a_failure_rolls_nothing_back_and_needs_a_person() {
    let operator = Scripted::new(&[Answer::Failure(FailureAnswer::Stop)]);
    let ran = run_operated(FLAKY, &[], None, operator, false).await;
    assert_eq!(ran.summary.status, RunStatus::Aborted);
    assert_eq!(ran.summary.status.exit_code(), runbook_engine::exit::NEEDS_A_PERSON);
    assert!(ran.rollbacks_started().is_empty());
    assert_eq!(ran.step_status("after"), StepStatus::NotRun);
}

#[tokio::test(start_paused = true)]
async fn without_a_person_on_failure_decides_and_nobody_is_asked() {
    let operator = Scripted::new(&[]);
    let ran = run_operated(FLAKY, &[], None, operator.clone(), true).await;
    assert_eq!(ran.summary.status, RunStatus::Failed, "`--yes`: the runbook decides");
    assert_eq!(ran.rollbacks_started(), ["first"]);
    assert!(operator.asked.lock().unwrap().is_empty());
}

// Real time: a question being answered holds a blocking thread, and tokio's
// paused clock does not advance while one runs.
#[tokio::test]
async fn a_question_open_when_the_run_stops_is_withdrawn_and_its_step_never_starts() {
    let operator = Scripted::new(&[Answer::Never]);
    let ran = run_operated(
        r#"
runbook: 1
name: withdrawn
max_parallel: 4
steps:
  - { id: slow, uses: fake, with: { id: slow, sleep_ms: 5000 } }
  - { id: risky, needs: [], confirm: "Go?", uses: fake, with: { id: risky } }
"#,
        &[(ms(300), "SIGTERM")],
        None,
        operator.clone(),
        false,
    )
    .await;
    assert_eq!(ran.summary.status, RunStatus::Cancelled, "{:#?}", ran.summary);
    assert!(
        ran.starts("risky").is_empty(),
        "no answer is taken for a withdrawn question"
    );
    assert_eq!(*operator.asked.lock().unwrap(), ["confirm risky", "interrupted"]);
    assert_eq!(
        decisions(&ran)[0],
        (
            "risky".to_string(),
            "withdrawn unanswered: the run was stopping".to_string()
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_no_that_skips_leaves_the_step_out_and_goes_on() {
    let operator = Scripted::new(&[Answer::Confirm(ConfirmAnswer::Skip)]);
    let ran = run_operated(
        r#"
runbook: 1
name: skip
steps:
  - { id: risky, confirm: "Go?", uses: fake, with: { id: risky } }
  - { id: after, uses: fake, with: { id: after } }
"#,
        &[],
        None,
        operator,
        false,
    )
    .await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded);
    assert_eq!(ran.step_status("risky"), StepStatus::Skipped);
    assert_eq!(ran.started(), ["after"]);
}

#[tokio::test(start_paused = true)]
async fn time_at_a_question_does_not_use_up_the_run_timeout() {
    let operator = Scripted::new(&[Answer::YesAfter(Duration::from_millis(300))]);
    let ran = run_operated(
        r#"
runbook: 1
name: slow-answer
steps:
  - { id: before, uses: fake, with: { id: before, sleep_ms: 600 } }
  - { id: risky, confirm: "Go?", uses: fake, with: { id: risky, sleep_ms: 600 } }
"#,
        &[],
        Some(ms(1000)),
        operator,
        false,
    )
    .await;
    // 1.2 s of steps against a 1 s limit: it times out in the second step,
    // however long the question took.
    assert_eq!(ran.summary.status, RunStatus::Failed, "{:#?}", ran.summary);
    assert!(
        ran.summary
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("timed out after 1s")
    );
    assert_eq!(ran.starts("risky").len(), 1, "the step started after the answer");
}
