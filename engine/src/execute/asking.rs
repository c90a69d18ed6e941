//! Waiting for a person: the time spent at a prompt, which counts against
//! no timeout; the decisions taken, journaled as the run's audit trail; and
//! what a step will do in full, for the question that asks about it.

use super::*;

/// Time spent at prompts, for the run and for each step that asked one
/// itself (a `confirm` step): a timeout is pushed back by it.
#[derive(Default)]
pub(super) struct PromptClocks {
    state: std::sync::Mutex<Clocks>,
    /// Told whenever a prompt opens or closes.
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct Clocks {
    run: Clock,
    steps: HashMap<String, Clock>,
}

#[derive(Default, Clone, Copy)]
struct Clock {
    open: usize,
    since: Option<tokio::time::Instant>,
    total: Duration,
}

impl Clock {
    fn open(&mut self) {
        if self.open == 0 {
            self.since = Some(tokio::time::Instant::now());
        }
        self.open += 1;
    }

    fn close(&mut self) {
        self.open = self.open.saturating_sub(1);
        if self.open == 0
            && let Some(since) = self.since.take()
        {
            self.total += since.elapsed();
        }
    }
}

/// Open while a prompt is: closes the clocks when dropped.
pub(super) struct Paused<'a> {
    clocks: &'a PromptClocks,
    step: Option<String>,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.clocks.state.lock() {
            state.run.close();
            if let Some(step) = &self.step {
                state.steps.entry(step.clone()).or_default().close();
            }
        }
        self.clocks.changed.notify_waiters();
    }
}

impl PromptClocks {
    /// Stops the run's clock (and `step`'s, for a prompt a step asks) until
    /// the guard is dropped.
    pub(super) fn pause(&self, step: Option<&str>) -> Paused<'_> {
        if let Ok(mut state) = self.state.lock() {
            state.run.open();
            if let Some(step) = step {
                state.steps.entry(step.to_string()).or_default().open();
            }
        }
        self.changed.notify_waiters();
        Paused {
            clocks: self,
            step: step.map(str::to_string),
        }
    }

    /// Whether a prompt is open, and the time spent at closed ones.
    fn read(&self, step: Option<&str>) -> (bool, Duration) {
        let Ok(state) = self.state.lock() else {
            return (false, Duration::ZERO);
        };
        let clock = match step {
            Some(step) => state.steps.get(step).copied().unwrap_or_default(),
            None => state.run,
        };
        (clock.open > 0, clock.total)
    }

    /// Waits until `limit` has passed, not counting the time spent at
    /// prompts (of the run, or of `step` when given) meanwhile.
    pub(super) async fn sleep(&self, limit: Duration, step: Option<&str>) {
        let start = tokio::time::Instant::now();
        let (_, before) = self.read(step);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (open, total) = self.read(step);
            if open {
                changed.await;
                continue;
            }
            let Some(end) = start.checked_add(limit + total.saturating_sub(before)) else {
                return std::future::pending().await;
            };
            if tokio::time::Instant::now() >= end {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(end) => {}
                () = changed => {}
            }
        }
    }
}

impl RunHost {
    /// Journals a decision (and so shows it): the audit trail.
    pub(super) fn decided(&self, step: Option<&str>, question: &str, answer: &str, waited: Duration) {
        self.reporter.event(&Event::Decision {
            step: step.map(str::to_string),
            question: question.to_string(),
            answer: answer.to_string(),
            by: self.operator_name.clone(),
            waited_ms: millis(waited),
        });
    }

    /// The last lines a step printed, for the question about its failure.
    pub(super) fn tail(&self, step: &str) -> Vec<String> {
        self.tails
            .lock()
            .ok()
            .and_then(|tails| tails.get(step).map(|t| t.iter().cloned().collect()))
            .unwrap_or_default()
    }

    pub(super) fn keep_tail(&self, step: &str, line: &str) {
        if let Ok(mut tails) = self.tails.lock() {
            let tail = tails.entry(step.to_string()).or_default();
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        }
    }
}

/// How a "no" at a `confirm` step stops the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Declined {
    Rollback,
    /// For a person to take over, nothing rolled back.
    Stop,
    /// Ctrl-C at the prompt.
    Interrupted,
}

pub(super) const INTERRUPTED_WORDS: &str = "Ctrl-C at the prompt: the run stops and rolls back";
pub(super) const WITHDRAWN_WORDS: &str = "withdrawn unanswered: the run was stopping";

/// The answer silence counts as.
pub(super) fn silence_words(waited: Duration) -> String {
    format!(
        "no answer within {}: counted as no; the run stops and rolls back",
        format_duration(waited)
    )
}

/// How many of a step's last lines a failure question shows.
pub(super) const TAIL_LINES: usize = 8;

/// Parameters as a person reads them: one `key: value` line each, a
/// multi-line text indented below its key, nested values as JSON.
pub fn in_full(params: &Json) -> String {
    let Json::Object(map) = params else {
        return match params {
            Json::Null => String::new(),
            other => other.to_string(),
        };
    };
    let mut out = String::new();
    for (key, value) in map {
        match value {
            Json::String(text) if text.contains('\n') => {
                out.push_str(&format!("{key}: |\n"));
                for line in text.trim_end_matches('\n').lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
            Json::String(text) => out.push_str(&format!("{key}: {text}\n")),
            other => out.push_str(&format!("{key}: {other}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_in_full() {
        let params = json!({
            "run": "set -eu\nsystemctl stop ledger\nrm -rf /var/lib/ledger/wal\n",
            "cwd": "/srv",
            "env": {"TOKEN": "***"},
            "ok_codes": [0, 3],
        });
        assert_eq!(
            in_full(&params),
            "run: |\n  set -eu\n  systemctl stop ledger\n  rm -rf /var/lib/ledger/wal\ncwd: /srv\nenv: {\"TOKEN\":\"***\"}\nok_codes: [0,3]\n"
        );
        assert_eq!(in_full(&Json::Null), "");
    }

    #[tokio::test(start_paused = true)]
    async fn time_at_a_prompt_does_not_count() {
        let clocks = Arc::new(PromptClocks::default());
        let start = tokio::time::Instant::now();
        let sleeper = {
            let clocks = clocks.clone();
            tokio::spawn(async move {
                clocks.sleep(Duration::from_secs(2), Some("ask")).await;
                start.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        {
            let _paused = clocks.pause(Some("ask"));
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let elapsed = sleeper.await.unwrap();
        assert!(
            elapsed >= Duration::from_secs(12) && elapsed < Duration::from_millis(12_100),
            "{elapsed:?}"
        );
        // Another step's prompt does not hold this step's clock.
        let _other = clocks.pause(Some("other"));
        tokio::time::timeout(
            Duration::from_secs(3),
            clocks.sleep(Duration::from_secs(2), Some("ask")),
        )
        .await
        .expect("not held by another step's prompt");
    }
}
