//! The `file.restore` step kind: puts a file or directory back from a
//! snapshot (or from a plain path, which is how a restore is rolled back),
//! atomically, keeping what was there aside.
//!
//! Nothing live is touched until the new copy is complete beside it: the
//! snapshot is checked against its manifest, its copy of the path is
//! written to a hidden sibling of `to` and made durable, and only then is
//! the current `to` renamed aside and the copy renamed into place; if that
//! second rename fails the first is undone. A path (`to`, `from`, `aside`)
//! that is empty or `/`, or whose last part is `.`, `..` or empty, is
//! refused: a template with an empty or `..` value renders such a path, and
//! it names a folder above the one meant.
//!
//! The process may die at any point, between the two renames too. So each
//! attempt journals its plan before acting ([`RestorePlan`]): before it
//! writes the copy, and again before the first rename. On `runbook resume`
//! or a later `runbook rollback`, [`StepKind::recover`] reads the plan and
//! puts the world back as it was before the attempt (the original at `to`,
//! no copy left over), even when the swap had finished; the step is then
//! not done, and a resumed run does it again.
//!
//! It is undone automatically when the run rolls back; a rollback may also
//! be written by the user as another `file.restore`, with `from` set to
//! this step's `aside`:
//!
//! ```yaml
//! - id: restore
//!   uses: file.restore
//!   with: { snapshot: "{{ steps.snap.outputs.path }}", to: /srv/ledger/data }
//!   rollback:
//!     uses: file.restore
//!     with: { from: "{{ steps.restore.outputs.aside }}", to: /srv/ledger/data }
//! ```

use runbook_engine::kit::{Kind, Templated};
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use runbook_engine::testing::crash_point;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

use crate::file_verify;
use crate::file_work::{Scratch, base_name, blocking, free_name, io_error, parent_of, stamp, sync_dir, unique};
use crate::is_template;
use crate::path_problem::{check_path, literal_problem};
use crate::restore_plan::{FileId, RestorePlan};
use crate::stored_snapshot::StoredSnapshot;
use crate::tree::{copy_tree, count_files};
use crate::words::{code, series};

/// Puts a file or directory back from a snapshot, keeping the current one aside.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileRestore;

/// Parameters of a `file.restore` step: `to` and where it comes from, a
/// `snapshot` or a plain path `from`, never both.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRestoreParams {
    /// The snapshot to restore from: a folder made by `file.snapshot`, or
    /// its `.tar.gz`. What it holds under the name of `to` (`data` for
    /// `/srv/ledger/data`) is put at `to`. Give either `snapshot` or `from`.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub snapshot: Option<String>,

    /// A plain file or directory to put at `to` instead of a snapshot's
    /// copy, such as the `aside` of an earlier `file.restore` or the
    /// `previous` of a `file.write`: this is how those are rolled back. It
    /// is moved into place (copied when it is on another filesystem). Give
    /// either `snapshot` or `from`.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub from: Option<String>,

    /// The live file or directory to replace. It need not exist. A path
    /// that is empty or `/`, or whose last part is `.`, `..` or empty (it
    /// ends in `/`), is refused, as it is for `from` and `aside`.
    #[schemars(length(min = 1))]
    pub to: String,

    /// Where the current `to` is moved, kept for forensics and for rolling
    /// back; by default `<to>.before-restore-<time>`. It must not exist, and
    /// must be on the same filesystem as `to`.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub aside: Option<String>,

    /// Check the whole snapshot against its manifest first, and change
    /// nothing if it does not match. Applies to `snapshot` only.
    #[serde(default)]
    #[schemars(with = "Templated<bool>", extend("default" = true))]
    pub verify: Option<Templated<bool>>,
}

impl Kind for FileRestore {
    type Params = FileRestoreParams;
    const NAME: &'static str = "file.restore";
    const SUMMARY: &'static str =
        "Put a file or directory back from a snapshot atomically, keeping the current one aside.";

    fn params_rules(&self) -> Vec<Json> {
        vec![
            runbook_engine::kit::exactly_one_of(&["snapshot", "from"]),
            json!({ "if": { "required": ["from"] }, "then": { "properties": { "verify": false } } }),
            crate::path_problem::path_rule("to"),
            crate::path_problem::path_rule("from"),
            crate::path_problem::path_rule("aside"),
        ]
    }

    fn validate(&self, params: &FileRestoreParams) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        match (&params.snapshot, &params.from) {
            (Some(_), Some(_)) => problems.push(
                ParamProblem::new("/from", "`snapshot` and `from` are both given")
                    .with_help("keep `snapshot` to restore from a snapshot, or `from` to put a plain path back"),
            ),
            (None, None) => problems.push(
                ParamProblem::new("", "missing parameter `snapshot` or `from`").with_help(
                    "add `snapshot:` with a snapshot made by `file.snapshot`, or `from:` with a path to put back",
                ),
            ),
            (None, Some(_)) if params.verify.is_some() => problems.push(
                ParamProblem::new(
                    "/verify",
                    "`verify` applies to `snapshot` only: `from` has no manifest to check",
                )
                .with_help("remove `verify`"),
            ),
            _ => {}
        }
        fn plain(text: Option<&str>) -> Option<&str> {
            text.filter(|text| !is_template(text))
        }
        problems.extend(literal_problem(Some(&params.to), "to", "restore to"));
        problems.extend(literal_problem(params.from.as_deref(), "from", "restore from"));
        problems.extend(literal_problem(
            params.aside.as_deref(),
            "aside",
            "move the current one aside to",
        ));
        let (aside, from) = (plain(params.aside.as_deref()), plain(params.from.as_deref()));
        if let Some(to) = plain(Some(&params.to))
            && (aside == Some(to) || from == Some(to))
        {
            let name = if aside == Some(to) { "aside" } else { "from" };
            problems.push(ParamProblem::new(
                format!("/{name}"),
                format!("`{name}` is `to` itself"),
            ));
        }
        problems
    }

    fn describe(&self, params: &FileRestoreParams) -> String {
        let to = &params.to;
        let source = match (&params.from, &params.snapshot) {
            (Some(from), _) => format!("put {} back at {}", code(from), code(to)),
            (None, Some(snapshot)) => {
                let checked = if params.verify == Some(Templated::Value(false)) {
                    "not checked first"
                } else {
                    "checked against the snapshot's manifest first"
                };
                format!(
                    "replace {} with its copy in snapshot {}, {checked}",
                    code(to),
                    code(snapshot)
                )
            }
            (None, None) => return format!("restore {} (no `snapshot` or `from` given)", code(to)),
        };
        let aside = params
            .aside
            .clone()
            .unwrap_or_else(|| format!("{to}.before-restore-<time>"));
        format!("{source}; the current one is moved aside to {}", code(&aside))
    }

    /// Result: `{"restored": "<to>", "aside": "<where the previous one
    /// went>", "files": n}`; `aside` is null when `to` did not exist. When
    /// the snapshot does not match its manifest, the step fails with
    /// `file.verify`'s result and nothing is changed.
    fn undo_summary(&self, _params: &FileRestoreParams) -> Option<String> {
        Some("put the state it moved aside back (or delete what it put where nothing was)".to_string())
    }

    fn undo(&self, _params: &FileRestoreParams, result: &Json) -> Option<runbook_engine::step::Undo> {
        let restored = result.get("restored")?.as_str()?;
        match result.get("aside").and_then(Json::as_str) {
            Some(aside) => Some(runbook_engine::step::Undo {
                kind: "file.restore".into(),
                params: serde_json::json!({ "from": aside, "to": restored }),
                description: format!(
                    "put {} back at {}",
                    crate::words::code(aside),
                    crate::words::code(restored)
                ),
            }),
            None => Some(crate::file_remove::undo_by_removing(restored, "the restored copy")),
        }
    }

    /// Puts right an attempt cut short by the death of the run, from the
    /// plan it journaled: see [`RestorePlan::recover`].
    async fn recover(&self, checkpoint: &Json) -> Result<Option<String>, String> {
        recover(checkpoint).await
    }

    async fn run(&self, params: FileRestoreParams, cx: StepContext) -> Result<Json, StepError> {
        let (host, step) = (cx.host.clone(), cx.step_id.clone());
        let journal = move |plan: &RestorePlan| {
            host.checkpoint(&step, plan.to_json()).map_err(|e| {
                StepError::new(format!(
                    "cannot journal what this restore is about to do, so it does nothing: {e}. Nothing was changed"
                ))
            })
        };
        blocking(&cx.cancel, move |cancel| restore(&params, &journal, cancel)).await
    }
}

/// Recovers from a restore's checkpoint off the async runtime.
pub(crate) async fn recover(checkpoint: &Json) -> Result<Option<String>, String> {
    let plan = match RestorePlan::from_json(checkpoint) {
        Ok(Some(plan)) => plan,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("a `file.restore` was cut short, and {e}")),
    };
    tokio::task::spawn_blocking(move || plan.recover())
        .await
        .map_err(|e| format!("putting right a `file.restore` stopped unexpectedly: {e}"))?
}

/// Journals a plan before it is carried out.
type Journal<'a> = dyn Fn(&RestorePlan) -> Result<(), StepError> + Send + Sync + 'a;

/// What will be put at `to`: a copy made for the purpose (removed if the
/// restore fails), or `from` itself, moved.
enum Incoming {
    Copy(Scratch),
    Move(PathBuf),
}

impl Incoming {
    fn path(&self) -> &Path {
        match self {
            Incoming::Copy(scratch) => scratch.path(),
            Incoming::Move(path) => path,
        }
    }
}

/// Where what is restored comes from, checked, before anything is written.
enum Source {
    Snapshot(StoredSnapshot),
    /// `from`, and whether it must be copied (it is on another filesystem).
    Path(PathBuf, bool),
}

fn restore(params: &FileRestoreParams, journal: &Journal<'_>, cancel: &CancellationToken) -> Result<Json, StepError> {
    check_path(&params.to, "restore to")?;
    for (value, action) in [
        (&params.from, "restore from"),
        (&params.aside, "move the current one aside to"),
    ] {
        if let Some(value) = value {
            check_path(value, action)?;
        }
    }
    let to = PathBuf::from(&params.to);
    let name = base_name(&to).map_err(|why| StepError::new(format!("cannot restore to `{}`: {why}", to.display())))?;
    let parent = parent_of(&to);
    let parent_meta = fs::metadata(parent).map_err(|e| io_error("restore into", parent, &e))?;
    let original = FileId::of(&to);
    let aside = match &params.aside {
        Some(aside) => {
            let aside = PathBuf::from(aside);
            if original.is_some() && aside.symlink_metadata().is_ok() {
                return Err(StepError::new(format!(
                    "`{}` already exists; choose another `aside`. Nothing was changed",
                    aside.display()
                )));
            }
            aside
        }
        None => free_name(parent.join(format!("{name}.before-restore-{}", stamp()))),
    };

    // Check everything before writing anything.
    let source = match (&params.snapshot, &params.from) {
        (Some(snapshot), None) => {
            let snapshot = StoredSnapshot::open(Path::new(snapshot))?;
            let verify = params
                .verify
                .as_ref()
                .map(Templated::get)
                .transpose()?
                .copied()
                .unwrap_or(true);
            check_snapshot(&snapshot, name, verify, cancel)?;
            Source::Snapshot(snapshot)
        }
        (None, Some(from)) => {
            let from = PathBuf::from(from);
            let meta = fs::symlink_metadata(&from).map_err(|e| io_error("restore from", &from, &e))?;
            if from == to {
                return Err(StepError::new(format!("`from` and `to` are both `{}`", to.display())));
            }
            Source::Path(from, meta.dev() != parent_meta.dev())
        }
        (Some(_), Some(_)) => return Err(StepError::new("`snapshot` and `from` are both given")),
        (None, None) => return Err(StepError::new("missing parameter `snapshot` or `from`")),
    };

    // Write the copy beside `to`, journaled first so that a copy cut short
    // by a crash is found and deleted.
    let (incoming, files) = match source {
        Source::Path(from, false) => {
            let files = count_files(&from, cancel)?;
            (Incoming::Move(from), files)
        }
        source => {
            let copy = Scratch::new(free_name(parent.join(format!(".restore-{name}-{}", unique()))));
            journal(&RestorePlan::Copy {
                to: absolute(&to)?,
                copy: absolute(copy.path())?,
            })?;
            crash_point("file.restore:copying");
            let files = match &source {
                Source::Snapshot(snapshot) => snapshot.extract(name, copy.path(), cancel)?,
                Source::Path(from, _) => copy_tree(from, copy.path(), cancel)?,
            };
            crash_point("file.restore:copied");
            (Incoming::Copy(copy), files)
        }
    };

    // The last point at which stopping leaves everything as it was.
    crate::file_work::check(cancel)?;
    let incoming_id = FileId::of(incoming.path()).ok_or_else(|| {
        StepError::new(format!(
            "the copy to restore, `{}`, is gone. Nothing was changed",
            incoming.path().display()
        ))
    })?;
    journal(&RestorePlan::Swap {
        to: absolute(&to)?,
        original,
        aside: original.is_some().then(|| absolute(&aside)).transpose()?,
        incoming: absolute(incoming.path())?,
        incoming_id,
        copy: matches!(incoming, Incoming::Copy(_)),
    })?;
    crash_point("file.restore:planned");
    swap(&to, incoming.path(), original.is_some().then_some(aside.as_path()))?;
    crash_point("file.restore:swapped");
    let moved_from = match incoming {
        Incoming::Copy(scratch) => {
            scratch.keep();
            None
        }
        Incoming::Move(from) => Some(from),
    };
    sync_dir(parent)?;
    if original.is_some() && parent_of(&aside) != parent {
        sync_dir(parent_of(&aside))?;
    }
    if let Some(from) = moved_from
        && parent_of(&from) != parent
    {
        sync_dir(parent_of(&from))?;
    }
    crash_point("file.restore:synced");
    Ok(json!({
        "restored": params.to,
        "aside": original.is_some().then(|| aside.display().to_string()),
        "files": files,
    }))
}

/// `path` made absolute for a plan, so that recovery finds the same files
/// whatever folder `runbook resume` is started in.
fn absolute(path: &Path) -> Result<PathBuf, StepError> {
    std::path::absolute(path).map_err(|e| io_error("find the absolute path of", path, &e))
}

/// Checks the snapshot if asked, and that it holds `name`.
fn check_snapshot(
    snapshot: &StoredSnapshot,
    name: &str,
    verify: bool,
    cancel: &CancellationToken,
) -> Result<(), StepError> {
    let contents = if verify {
        let (contents, diff) = file_verify::check(snapshot, None, cancel)?;
        if !diff.is_empty() {
            let error = file_verify::mismatch(snapshot, None, &diff);
            return Err(StepError {
                message: format!("refusing to restore: {}. Nothing was changed", error.message),
                ..error
            });
        }
        contents
    } else {
        snapshot.read(false, cancel)?
    };
    if !contents.top_level.contains(name) {
        let held: Vec<String> = contents.top_level.iter().map(|n| format!("`{n}`")).collect();
        let held = if held.is_empty() {
            "nothing".to_string()
        } else {
            series(&held, "and")
        };
        return Err(StepError::new(format!(
            "the snapshot `{}` holds no `{name}` (it holds {held}). Nothing was changed",
            snapshot.path().display()
        )));
    }
    Ok(())
}

/// Moves `to` (if there is one) to `aside`, then `incoming` to `to`; if the
/// second move fails, moves `aside` back.
fn swap(to: &Path, incoming: &Path, aside: Option<&Path>) -> Result<(), StepError> {
    if let Some(aside) = aside {
        fs::rename(to, aside).map_err(|e| {
            let mut message = format!(
                "cannot move `{}` aside to `{}`: {}",
                to.display(),
                aside.display(),
                words(&e)
            );
            if e.kind() == io::ErrorKind::CrossesDevices {
                message.push_str(" (`aside` must be on the same filesystem as `to`)");
            }
            StepError::new(format!("{message}. Nothing was changed"))
        })?;
        crash_point("file.restore:moved-aside");
    }
    if let Err(e) = fs::rename(incoming, to) {
        let failed = format!("cannot put the restored copy at `{}`: {}", to.display(), words(&e));
        return Err(StepError::new(
            match aside.map(|aside| (aside, fs::rename(aside, to))) {
                None | Some((_, Ok(()))) => format!("{failed}. Nothing was changed"),
                Some((aside, Err(back))) => format!(
                    "{failed}, and moving the previous one back failed too: {}. It is at `{}`",
                    words(&back),
                    aside.display()
                ),
            },
        ));
    }
    Ok(())
}

fn words(error: &io::Error) -> String {
    crate::os_error_words(&error.to_string())
}

#[cfg(test)]
mod tests;
