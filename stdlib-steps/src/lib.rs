//! The built-in step kinds (`shell`, `http`, `wait`, `assert`, `sleep`,
//! `confirm`, `log`, `runbook`, the `file.*` kinds for snapshots and atomic
//! changes, and the `json.*` kinds): their static descriptions, which the
//! engine uses to check and plan a runbook without running anything.
//!
//! Each kind lives in its own module with its parameter struct, written with
//! the engine's step-kind kit ([`runbook_engine::kit`]), as an outside kind
//! would be. The struct is the contract for `with`: its doc comments become
//! the JSON Schema that `check` validates against and editors show, and the
//! same struct, read from the parameters, is what `validate`, `describe`,
//! `undo` and `run` receive.
//!
//! Each kind's `run` does one attempt of a step with rendered parameters;
//! timeouts, retries, `verify` and `outputs` are the executor's business.
//! Every `run` ends soon after its cancellation token is cancelled (the
//! `shell` kind within its `kill_grace`, plus a few milliseconds and at
//! worst 1.5 s more) and leaves no child process behind, even when its
//! future is dropped.
//!
//! Kinds are registered explicitly by the embedding program:
//!
//! ```
//! let mut registry = runbook_engine::step::Registry::new();
//! stdlib_steps::register(&mut registry);
//! assert!(registry.get("shell").is_some());
//! ```

mod assert;
mod confirm;
mod file_prune;
mod file_remove;
mod file_restore;
mod file_snapshot;
mod file_verify;
mod file_work;
mod file_write;
mod http;
mod json_input;
mod json_query;
mod json_validate;
mod log;
mod manifest;
mod path_problem;
mod restore_plan;
mod runbook;
mod shell;
mod sleep;
mod stored_snapshot;
mod time_limit;
mod tree;
mod wait;
mod words;

pub use assert::{Assert, AssertParams, Conditions};
pub use confirm::{Confirm, ConfirmParams};
pub use file_prune::{FilePrune, FilePruneParams};
pub use file_remove::{FileRemove, FileRemoveParams};
pub use file_restore::{FileRestore, FileRestoreParams};
pub use file_snapshot::{FileSnapshot, FileSnapshotParams, SnapshotFormat};
pub use file_verify::{FileVerify, FileVerifyParams};
pub use file_write::{FileWrite, FileWriteParams};
pub use http::{ExpectStatus, Http, HttpParams, Method, QueryValue};
pub use json_query::{JsonQuery, JsonQueryParams};
pub use json_validate::{JsonValidate, JsonValidateParams};
pub use log::{Level, Log, LogParams};
pub use runbook::{Runbook, RunbookParams};
pub use runbook_engine::words::HumanDuration;
pub use shell::{Shell, ShellParams};
pub use sleep::{Sleep, SleepParams};
pub use wait::{StepBody, Wait, WaitParams};

use runbook_engine::step::Registry;
// A parameter string that is still a template is judged only once rendered;
// the engine's test decides which strings those are.
use runbook_engine::template::is_template;

/// Registers every built-in step kind.
pub fn register(registry: &mut Registry) {
    registry.register(Shell);
    registry.register(Http::default());
    registry.register(Wait);
    registry.register(Assert);
    registry.register(Sleep);
    registry.register(Confirm);
    registry.register(Log);
    registry.register(Runbook);
    registry.register(FileSnapshot);
    registry.register(FileVerify);
    registry.register(FileRestore);
    registry.register(FileWrite);
    registry.register(FilePrune);
    registry.register(FileRemove);
    registry.register(JsonValidate);
    registry.register(JsonQuery);
}

use runbook_engine::kit::{cancelled, is_truthy, os_error_words, pointer};

#[cfg(test)]
mod tests;
