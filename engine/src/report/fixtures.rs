//! Sample runs for the tests of every report format: a deploy that went
//! well, a migration that failed with an error full of characters each
//! format must escape, a run killed mid-retry, and a rollback asked for
//! after the run finished. They live apart so that each format's tests sit
//! beside its code and still read the same runs.

use super::{ReportFormat, RunRecord, render};
use crate::event::Failure;
use crate::event::{Event, RunStatus, RunSummary, StepStatus, StepSummary};
use crate::journal::{Header, TimedEvent};
use crate::parse::raw::OnFailure;
use crate::step::OutputStream;
use serde_json::{Value as Json, json};
use std::path::PathBuf;

/// 2026-11-22T01:02:03.456Z
pub(super) const START_MS: u64 = 1_795_309_323_456;

pub(super) fn at(offset_ms: u64) -> String {
    let ms = START_MS + offset_ms;
    let base = crate::execute::format_timestamp(ms / 1000);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms % 1000)
}

pub(super) fn header(run_id: &str, runbook: &str, inputs: Json) -> Header {
    let Json::Object(inputs) = inputs else {
        panic!("inputs must be an object")
    };
    Header {
        format: crate::journal::FORMAT,
        run_id: run_id.into(),
        runbook: runbook.into(),
        runbook_path: PathBuf::from(format!("/srv/runbooks/{runbook}.yaml")),
        runbook_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        inputs,
        masked_inputs: Vec::new(),
        started_at: at(0),
        pid: 4242,
        host: "ops-bastion-1".into(),
    }
}

/// Events stamped with times relative to the start, numbered in order.
pub(super) fn events(list: Vec<(u64, Event)>) -> Vec<TimedEvent> {
    list.into_iter()
        .enumerate()
        .map(|(i, (offset, event))| TimedEvent {
            seq: i as u64 + 1,
            at: at(offset),
            event,
        })
        .collect()
}

pub(super) fn started(step: &str, attempt: u32, action: &str) -> Event {
    Event::StepStarted {
        step: step.into(),
        name: None,
        attempt,
        action: action.into(),
    }
}

pub(super) fn output(step: &str, line: &str) -> Event {
    Event::StepOutput {
        step: step.into(),
        stream: OutputStream::Stdout,
        line: line.into(),
    }
}

pub(super) fn succeeded(step: &str, duration_ms: u64, outputs: Json) -> Event {
    Event::StepSucceeded {
        step: step.into(),
        duration_ms,
        outputs,
        undo: None,
    }
}

#[expect(clippy::too_many_arguments, reason = "a table row of the fixture")]
pub(super) fn summary_step(
    id: &str,
    name: Option<&str>,
    status: StepStatus,
    duration_ms: u64,
    attempts: u32,
    error: Option<&str>,
    outputs: Json,
    is_finally: bool,
) -> StepSummary {
    StepSummary {
        id: id.into(),
        name: name.map(Into::into),
        status,
        duration_ms,
        attempts,
        error: error.map(Into::into),
        failure: None,
        outputs,
        is_finally,
    }
}

/// How the failed migration failed, as the `shell` kind reports it.
pub(super) fn migrate_failure() -> Failure {
    Failure::Kind {
        message: NASTY.into(),
        partial: Some(json!({
            "exit_code": 3,
            "signal": null,
            "stdout": "BEGIN",
            "stderr": "ERROR:  relation \"orders\" is locked\nHINT:  retry after the <vacuum> | done",
            "json": null
        })),
    }
}

pub(super) fn finish(list: Vec<(u64, Event)>, summary: &RunSummary) -> Vec<TimedEvent> {
    finish_at(list, summary.duration_ms, summary)
}

pub(super) fn finish_at(mut list: Vec<(u64, Event)>, offset: u64, summary: &RunSummary) -> Vec<TimedEvent> {
    list.push((
        offset,
        Event::RunFinished {
            status: summary.status,
            duration_ms: summary.duration_ms,
            summary: summary.clone(),
        },
    ));
    events(list)
}

/// A deploy that went well: outputs, a retry, a skipped step, a finally step.
pub(super) fn succeeded_run() -> (Header, Vec<TimedEvent>, RunSummary) {
    let header = header(
        "20261122T010203Z-a1b2",
        "deploy-api",
        json!({ "env": "prod", "replicas": 4, "token": "***" }),
    );
    let summary = RunSummary {
        run_id: header.run_id.clone(),
        runbook: header.runbook.clone(),
        status: RunStatus::Succeeded,
        duration_ms: 63_600,
        steps: vec![
            summary_step(
                "check-health",
                Some("Check the service is healthy"),
                StepStatus::Succeeded,
                350,
                1,
                None,
                json!({ "healthy": true, "latency_ms": 12 }),
                false,
            ),
            summary_step(
                "scale",
                None,
                StepStatus::Succeeded,
                62_000,
                2,
                None,
                json!({ "replicas": 4, "previous": 2 }),
                false,
            ),
            summary_step(
                "page-oncall",
                None,
                StepStatus::Skipped,
                0,
                0,
                Some("`inputs.env == 'staging'` is false (inputs.env = \"prod\")"),
                Json::Null,
                false,
            ),
            summary_step("cleanup", None, StepStatus::Succeeded, 1_200, 1, None, json!({}), true),
        ],
        rolled_back: vec![],
        reason: None,
    };
    let events = finish(
        vec![
            (
                0,
                Event::RunStarted {
                    run_id: header.run_id.clone(),
                    runbook: header.runbook.clone(),
                    steps: 3,
                    dry_run: false,
                },
            ),
            (
                5,
                Event::StepStarted {
                    step: "check-health".into(),
                    name: Some("Check the service is healthy".into()),
                    attempt: 1,
                    action: "GET https://api.internal/healthz".into(),
                },
            ),
            (200, output("check-health", "HTTP/1.1 200 OK")),
            (
                355,
                succeeded("check-health", 350, json!({ "healthy": true, "latency_ms": 12 })),
            ),
            (
                360,
                started("scale", 1, "kubectl scale deploy/api --replicas=4 --token=***"),
            ),
            (
                30_360,
                Event::StepRetrying {
                    step: "scale".into(),
                    attempt: 1,
                    error: "timed out after 30s".into(),
                    delay_ms: 2_000,
                    failure: Some(Failure::TimedOut {
                        after_ms: 30_000,
                        partial: None,
                    }),
                },
            ),
            (
                32_360,
                started("scale", 2, "kubectl scale deploy/api --replicas=4 --token=***"),
            ),
            (
                33_000,
                Event::Log {
                    step: "scale".into(),
                    level: "info".into(),
                    message: "waiting for 4 ready replicas".into(),
                },
            ),
            (
                62_360,
                succeeded("scale", 62_000, json!({ "replicas": 4, "previous": 2 })),
            ),
            (
                62_361,
                Event::StepSkipped {
                    step: "page-oncall".into(),
                    reason: "`inputs.env == 'staging'` is false (inputs.env = \"prod\")".into(),
                },
            ),
            (62_362, Event::FinallyStarted { steps: 1 }),
            (62_363, started("cleanup", 1, "rm -rf /tmp/deploy-api")),
            (63_563, succeeded("cleanup", 1_200, json!({}))),
        ],
        &summary,
    );
    (header, events, summary)
}

pub(super) const NASTY: &str =
    "psql: ERROR: column \"a|b\" <unknown> & 'x' missing\n  at line 3\u{1b}[31m\u{7}\r\nhint: check `schema`";

/// A migration that failed: one rollback ran, one rollback failed, and
/// the error is full of characters every format must escape.
pub(super) fn failed_run() -> (Header, Vec<TimedEvent>, RunSummary) {
    let header = header(
        "20261122T010203Z-c3d4",
        "migrate-db",
        json!({ "database": "orders", "filter": "a|b <c> & \"d\"", "password": "***" }),
    );
    let summary = RunSummary {
        run_id: header.run_id.clone(),
        runbook: header.runbook.clone(),
        status: RunStatus::RollbackFailed,
        duration_ms: 9_870,
        steps: vec![
            summary_step(
                "snapshot",
                None,
                StepStatus::RolledBack,
                2_100,
                1,
                None,
                json!({ "snapshot_id": "snap-0042" }),
                false,
            ),
            summary_step(
                "drain",
                Some("Drain <writers> & readers"),
                StepStatus::RollbackFailed,
                1_500,
                1,
                None,
                json!({ "drained": 12 }),
                false,
            ),
            StepSummary {
                failure: Some(migrate_failure()),
                ..summary_step(
                    "migrate",
                    None,
                    StepStatus::Failed,
                    4_000,
                    1,
                    Some(NASTY),
                    Json::Null,
                    false,
                )
            },
            summary_step(
                "switch-traffic",
                None,
                StepStatus::NotRun,
                0,
                0,
                Some("`migrate` did not succeed"),
                Json::Null,
                false,
            ),
            summary_step("notify", None, StepStatus::Succeeded, 300, 1, None, Json::Null, true),
        ],
        rolled_back: vec!["snapshot".into()],
        reason: Some(format!("step `migrate` failed: {NASTY}")),
    };
    let events = finish(
        vec![
            (
                0,
                Event::RunStarted {
                    run_id: header.run_id.clone(),
                    runbook: header.runbook.clone(),
                    steps: 4,
                    dry_run: false,
                },
            ),
            (10, started("snapshot", 1, "snapshot database `orders`")),
            (
                2_110,
                succeeded("snapshot", 2_100, json!({ "snapshot_id": "snap-0042" })),
            ),
            (2_120, started("drain", 1, "drain writers of `orders`")),
            (3_620, succeeded("drain", 1_500, json!({ "drained": 12 }))),
            (3_630, started("migrate", 1, "psql -f migrations/0042.sql")),
            (4_000, output("migrate", "BEGIN")),
            (
                7_630,
                Event::StepFailed {
                    step: "migrate".into(),
                    duration_ms: 4_000,
                    error: NASTY.into(),
                    on_failure: OnFailure::Rollback,
                    failure: Some(migrate_failure()),
                },
            ),
            (
                7_631,
                Event::StepSkipped {
                    step: "switch-traffic".into(),
                    reason: "`migrate` did not succeed".into(),
                },
            ),
            (
                7_640,
                Event::RollbackStarted {
                    step: "drain".into(),
                    action: "undrain writers of `orders`".into(),
                },
            ),
            (
                8_640,
                Event::RollbackFailed {
                    step: "drain".into(),
                    duration_ms: 1_000,
                    error: "connection refused: <pgbouncer> said \"no\" & closed".into(),
                    failure: None,
                },
            ),
            (
                8_650,
                Event::RollbackStarted {
                    step: "snapshot".into(),
                    action: "delete snapshot snap-0042".into(),
                },
            ),
            (
                9_450,
                Event::RollbackSucceeded {
                    step: "snapshot".into(),
                    duration_ms: 800,
                },
            ),
            (9_460, Event::FinallyStarted { steps: 1 }),
            (9_470, started("notify", 1, "post to #incidents")),
            (9_770, succeeded("notify", 300, Json::Null)),
        ],
        &summary,
    );
    (header, events, summary)
}

/// A run killed while its second step was retrying: no summary.
pub(super) fn unfinished_run() -> (Header, Vec<TimedEvent>) {
    let header = header("20261122T010203Z-e5f6", "rotate-certs", json!({}));
    let events = events(vec![
        (
            0,
            Event::RunStarted {
                run_id: header.run_id.clone(),
                runbook: header.runbook.clone(),
                steps: 4,
                dry_run: false,
            },
        ),
        (15, started("issue", 1, "request a certificate for api.example.com")),
        (1_215, succeeded("issue", 1_200, json!({ "serial": "0a:1b:2c" }))),
        (1_220, started("install", 1, "copy the certificate to 3 hosts")),
        (
            4_220,
            Event::StepRetrying {
                step: "install".into(),
                attempt: 1,
                error: "host web-2: permission denied | exit 1".into(),
                delay_ms: 500,
                failure: None,
            },
        ),
        (4_720, started("install", 2, "copy the certificate to 3 hosts")),
        (
            5_000,
            Event::Log {
                step: "install".into(),
                level: "warn".into(),
                message: "web-2 is slow to answer".into(),
            },
        ),
    ]);
    (header, events)
}

pub(super) fn all_formats(record: &RunRecord) -> [String; 3] {
    ReportFormat::ALL.map(|format| render(record, format))
}

/// A run that failed without rollback, then `runbook rollback RUN`.
pub(super) fn rolled_back_later(crash_during_rollback: bool) -> (Header, Vec<TimedEvent>, RunSummary) {
    let header = header("20261122T010203Z-7777", "restart-cache", json!({ "cluster": "eu-1" }));
    let steps = |flush: StepStatus| {
        vec![
            summary_step("flush", None, flush, 800, 1, None, json!({ "keys": 1042 }), false),
            summary_step(
                "restart",
                None,
                StepStatus::Failed,
                2_000,
                1,
                Some("exit status 1"),
                Json::Null,
                false,
            ),
        ]
    };
    let first = RunSummary {
        run_id: header.run_id.clone(),
        runbook: header.runbook.clone(),
        status: RunStatus::FailedWithoutRollback,
        duration_ms: 2_900,
        steps: steps(StepStatus::Succeeded),
        rolled_back: vec![],
        reason: Some("step `restart` failed: exit status 1".into()),
    };
    let mut list = vec![
        (
            0,
            Event::RunStarted {
                run_id: header.run_id.clone(),
                runbook: header.runbook.clone(),
                steps: 2,
                dry_run: false,
            },
        ),
        (10, started("flush", 1, "flush the cache of eu-1")),
        (810, succeeded("flush", 800, json!({ "keys": 1042 }))),
        (820, started("restart", 1, "systemctl restart cache")),
        (
            2_820,
            Event::StepFailed {
                step: "restart".into(),
                duration_ms: 2_000,
                error: "exit status 1".into(),
                on_failure: OnFailure::Abort,
                failure: None,
            },
        ),
        (
            2_900,
            Event::RunFinished {
                status: first.status,
                duration_ms: first.duration_ms,
                summary: first.clone(),
            },
        ),
        (
            600_000,
            Event::RollbackRequested {
                reason: "requested by the operator".into(),
            },
        ),
        (
            600_010,
            Event::RollbackStarted {
                step: "flush".into(),
                action: "warm the cache of eu-1".into(),
            },
        ),
    ];
    if crash_during_rollback {
        return (header, events(list), first);
    }
    let second = RunSummary {
        status: RunStatus::RolledBack,
        duration_ms: 1_500,
        steps: steps(StepStatus::RolledBack),
        rolled_back: vec!["flush".into()],
        reason: None,
        ..first
    };
    list.push((
        601_400,
        Event::RollbackSucceeded {
            step: "flush".into(),
            duration_ms: 1_390,
        },
    ));
    (header, finish_at(list, 601_500, &second), second)
}

/// A failure the kind reported, with what it produced.
fn kind_failure(message: &str, partial: Json) -> Failure {
    Failure::Kind {
        message: message.into(),
        partial: Some(partial),
    }
}

fn failed(step: &str, duration_ms: u64, on_failure: OnFailure, failure: &Failure) -> Event {
    Event::StepFailed {
        step: step.into(),
        duration_ms,
        error: failure.message(),
        on_failure,
        failure: Some(failure.clone()),
    }
}

/// A drill in which each step fails its own way: a command's exit code and
/// stderr, an HTTP status and body, a time limit, a gate, a cancellation,
/// and a rollback that fails too. Secrets were masked (`***`) before the
/// events were recorded. Without `finish`, the run was killed while it was
/// rolling back.
pub(super) fn reasons_run(finish: bool) -> (Header, Vec<TimedEvent>) {
    let header = header("20261122T010203Z-9a9a", "checks", json!({ "token": "***" }));
    let command = kind_failure(
        "exited with code 5 (expected 0)",
        json!({ "exit_code": 5, "signal": null, "stdout": "", "stderr": "token *** refused\n", "json": null }),
    );
    let health = kind_failure(
        "GET http://127.0.0.1:4000/health answered 503 Service Unavailable (expected 2xx)",
        json!({ "status": 503, "headers": {}, "body": "{\"error\":\"injected failure\"}", "json": { "error": "injected failure" } }),
    );
    let slow = Failure::TimedOut {
        after_ms: 300,
        partial: Some(json!({ "exit_code": null, "signal": "SIGTERM", "stdout": "started\n", "stderr": "" })),
    };
    let gate = Failure::Gate {
        expression: "result.stdout == 'x'".into(),
        seen: "result.stdout = \"***\"".into(),
    };
    let stopper = kind_failure(
        "exited with code 1 (expected 0)",
        json!({ "exit_code": 1, "signal": null, "stdout": "", "stderr": "", "json": null }),
    );
    let undo = kind_failure(
        "exited with code 4 (expected 0)",
        json!({ "exit_code": 4, "signal": null, "stdout": "", "stderr": "cannot undo ***\n", "json": null }),
    );
    let cancelled = Failure::Cancelled {
        by: crate::event::Canceller::AnotherStep,
    };
    let mut list = vec![(
        0,
        Event::RunStarted {
            run_id: header.run_id.clone(),
            runbook: header.runbook.clone(),
            steps: 7,
            dry_run: false,
        },
    )];
    for (i, step) in ["command", "health", "slow", "gate", "undo", "waiting", "stopper"]
        .into_iter()
        .enumerate()
    {
        list.push((1 + i as u64, started(step, 1, &format!("check {step}"))));
    }
    list.extend([
        (40, failed("command", 35, OnFailure::Continue, &command)),
        (55, failed("health", 50, OnFailure::Continue, &health)),
        (60, failed("gate", 55, OnFailure::Continue, &gate)),
        (70, succeeded("undo", 65, Json::Null)),
        (340, failed("slow", 337, OnFailure::Continue, &slow)),
        (2_010, failed("stopper", 2_003, OnFailure::Rollback, &stopper)),
        (
            2_030,
            Event::StepCancelled {
                step: "waiting".into(),
                reason: "step `stopper` failed: exited with code 1 (expected 0)".into(),
                by: Some(crate::event::Canceller::AnotherStep),
            },
        ),
        (
            2_040,
            Event::RollbackStarted {
                step: "undo".into(),
                action: "run `echo 'cannot undo ***' >&2; exit 4` with sh".into(),
            },
        ),
    ]);
    if !finish {
        return (header, events(list));
    }
    list.push((
        2_050,
        Event::RollbackFailed {
            step: "undo".into(),
            duration_ms: 10,
            error: undo.message(),
            failure: Some(undo),
        },
    ));
    let failed_step = |id: &str, duration_ms: u64, failure: &Failure| StepSummary {
        failure: Some(failure.clone()),
        ..summary_step(
            id,
            None,
            StepStatus::Failed,
            duration_ms,
            1,
            Some(&failure.message()),
            Json::Null,
            false,
        )
    };
    let summary = RunSummary {
        run_id: header.run_id.clone(),
        runbook: header.runbook.clone(),
        status: RunStatus::RollbackFailed,
        duration_ms: 2_060,
        steps: vec![
            failed_step("command", 35, &command),
            failed_step("health", 50, &health),
            failed_step("slow", 337, &slow),
            failed_step("gate", 55, &gate),
            summary_step("undo", None, StepStatus::RollbackFailed, 65, 1, None, Json::Null, false),
            StepSummary {
                failure: Some(cancelled.clone()),
                ..summary_step(
                    "waiting",
                    None,
                    StepStatus::Cancelled,
                    2_025,
                    1,
                    Some(&cancelled.message()),
                    Json::Null,
                    false,
                )
            },
            failed_step("stopper", 2_003, &stopper),
        ],
        rolled_back: vec![],
        reason: Some("step `stopper` failed: exited with code 1 (expected 0)".into()),
    };
    (header, finish_at(list, 2_060, &summary))
}
