//! The `file.restore` step kind: puts a file or directory back from a
//! snapshot (or from a plain path, which is how a restore is rolled back),
//! atomically, keeping what was there aside.
//!
//! Nothing live is touched until the new copy is complete beside it: the
//! snapshot is checked against its manifest, its copy of the path is
//! written to a hidden sibling of `to` and made durable, and only then is
//! the current `to` renamed aside and the copy renamed into place; if that
//! second rename fails the first is undone. A rollback is written by the
//! user as another `file.restore`, with `from` set to this step's `aside`:
//!
//! ```yaml
//! - id: restore
//!   uses: file.restore
//!   with: { snapshot: "{{ steps.snap.outputs.path }}", to: /srv/ledger/data }
//!   rollback:
//!     uses: file.restore
//!     with: { from: "{{ steps.restore.outputs.aside }}", to: /srv/ledger/data }
//! ```

use runbook_engine::step::{ParamProblem, StepContext, StepError, StepFuture, StepKind};
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
use crate::stored_snapshot::StoredSnapshot;
use crate::tree::{copy_tree, count_files};
use crate::words::{code, field, series};

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

    /// The live file or directory to replace. It need not exist.
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
    #[serde(default = "yes")]
    pub verify: bool,
}

fn yes() -> bool {
    true
}

impl StepKind for FileRestore {
    fn name(&self) -> &'static str {
        "file.restore"
    }

    fn summary(&self) -> &'static str {
        "Put a file or directory back from a snapshot atomically, keeping the current one aside."
    }

    fn params_schema(&self) -> Json {
        crate::schema_of::<FileRestoreParams>()
    }

    fn validate(&self, params: &Json) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        let given = |name| params.get(name).is_some_and(|v| !v.is_null());
        match (given("snapshot"), given("from")) {
            (true, true) => problems.push(
                ParamProblem::new("/from", "`snapshot` and `from` are both given")
                    .with_help("keep `snapshot` to restore from a snapshot, or `from` to put a plain path back"),
            ),
            (false, false) => problems.push(
                ParamProblem::new("", "missing parameter `snapshot` or `from`").with_help(
                    "add `snapshot:` with a snapshot made by `file.snapshot`, or `from:` with a path to put back",
                ),
            ),
            (false, true) if given("verify") => problems.push(
                ParamProblem::new(
                    "/verify",
                    "`verify` applies to `snapshot` only: `from` has no manifest to check",
                )
                .with_help("remove `verify`"),
            ),
            _ => {}
        }
        let plain = |name| {
            params
                .get(name)
                .and_then(Json::as_str)
                .filter(|text| !is_template(text))
        };
        if let Some(to) = plain("to") {
            if let Err(why) = base_name(Path::new(to)) {
                problems.push(
                    ParamProblem::new("/to", format!("cannot restore to `{to}`: {why}"))
                        .with_help("name the file or directory to replace, such as `/srv/ledger/data`"),
                );
            }
            if plain("aside") == Some(to) || plain("from") == Some(to) {
                let name = if plain("aside") == Some(to) { "aside" } else { "from" };
                problems.push(ParamProblem::new(
                    format!("/{name}"),
                    format!("`{name}` is `to` itself"),
                ));
            }
        }
        problems
    }

    fn describe(&self, params: &Json) -> String {
        let Some(to) = field(params, "to") else {
            return "restore a file or directory (no `to` given)".to_string();
        };
        let source = if let Some(from) = field(params, "from") {
            format!("put {} back at {}", code(&from), code(&to))
        } else {
            let Some(snapshot) = field(params, "snapshot") else {
                return format!("restore {} (no `snapshot` or `from` given)", code(&to));
            };
            let checked = if params.get("verify") == Some(&Json::Bool(false)) {
                "not checked first"
            } else {
                "checked against the snapshot's manifest first"
            };
            format!(
                "replace {} with its copy in snapshot {}, {checked}",
                code(&to),
                code(&snapshot)
            )
        };
        let aside = field(params, "aside").unwrap_or_else(|| format!("{to}.before-restore-<time>"));
        format!("{source}; the current one is moved aside to {}", code(&aside))
    }

    /// Result: `{"restored": "<to>", "aside": "<where the previous one
    /// went>", "files": n}`; `aside` is null when `to` did not exist. When
    /// the snapshot does not match its manifest, the step fails with
    /// `file.verify`'s result and nothing is changed.
    fn undo_summary(&self, _params: &Json) -> Option<String> {
        Some("put the state it moved aside back (or delete what it put where nothing was)".to_string())
    }

    fn undo(&self, _params: &Json, result: &Json) -> Option<runbook_engine::step::Undo> {
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

    fn run(&self, cx: StepContext) -> StepFuture<'_> {
        Box::pin(async move {
            let params: FileRestoreParams = crate::read_params("file.restore", &cx.params)?;
            blocking(&cx.cancel, move |cancel| restore(&params, cancel)).await
        })
    }
}

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

fn restore(params: &FileRestoreParams, cancel: &CancellationToken) -> Result<Json, StepError> {
    let to = PathBuf::from(&params.to);
    let name = base_name(&to).map_err(|why| StepError::new(format!("cannot restore to `{}`: {why}", to.display())))?;
    let parent = parent_of(&to);
    let parent_meta = fs::metadata(parent).map_err(|e| io_error("restore into", parent, &e))?;
    let has_current = to.symlink_metadata().is_ok();
    let aside = match &params.aside {
        Some(aside) => {
            let aside = PathBuf::from(aside);
            if has_current && aside.symlink_metadata().is_ok() {
                return Err(StepError::new(format!(
                    "`{}` already exists; choose another `aside`. Nothing was changed",
                    aside.display()
                )));
            }
            aside
        }
        // Built from the name, so that `to: /srv/data/` does not put it inside.
        None => free_name(parent.join(format!("{name}.before-restore-{}", stamp()))),
    };

    let (incoming, files) = match (&params.snapshot, &params.from) {
        (Some(snapshot), None) => {
            let snapshot = StoredSnapshot::open(Path::new(snapshot))?;
            from_snapshot(&snapshot, name, parent, params.verify, cancel)?
        }
        (None, Some(from)) => from_path(Path::new(from), &to, name, parent, parent_meta.dev(), cancel)?,
        (Some(_), Some(_)) => return Err(StepError::new("`snapshot` and `from` are both given")),
        (None, None) => return Err(StepError::new("missing parameter `snapshot` or `from`")),
    };

    // The last point at which stopping leaves everything as it was.
    crate::file_work::check(cancel)?;
    swap(&to, incoming.path(), has_current.then_some(aside.as_path()))?;
    let moved_from = match incoming {
        Incoming::Copy(scratch) => {
            scratch.keep();
            None
        }
        Incoming::Move(from) => Some(from),
    };
    sync_dir(parent)?;
    if has_current && parent_of(&aside) != parent {
        sync_dir(parent_of(&aside))?;
    }
    if let Some(from) = moved_from
        && parent_of(&from) != parent
    {
        sync_dir(parent_of(&from))?;
    }
    Ok(json!({
        "restored": params.to,
        "aside": has_current.then(|| aside.display().to_string()),
        "files": files,
    }))
}

/// Checks the snapshot if asked, and writes its copy of `name` to a hidden
/// sibling of `to`.
fn from_snapshot(
    snapshot: &StoredSnapshot,
    name: &str,
    parent: &Path,
    verify: bool,
    cancel: &CancellationToken,
) -> Result<(Incoming, u64), StepError> {
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
    let copy = Scratch::new(parent.join(format!(".restore-{name}-{}", unique())));
    let files = snapshot.extract(name, copy.path(), cancel)?;
    Ok((Incoming::Copy(copy), files))
}

/// `from` itself when it can be renamed to `to`, else a copy of it beside `to`.
fn from_path(
    from: &Path,
    to: &Path,
    name: &str,
    parent: &Path,
    parent_dev: u64,
    cancel: &CancellationToken,
) -> Result<(Incoming, u64), StepError> {
    let meta = fs::symlink_metadata(from).map_err(|e| io_error("restore from", from, &e))?;
    if from == to {
        return Err(StepError::new(format!("`from` and `to` are both `{}`", to.display())));
    }
    let files = count_files(from, cancel)?;
    if meta.dev() == parent_dev {
        return Ok((Incoming::Move(from.to_path_buf()), files));
    }
    let copy = Scratch::new(parent.join(format!(".restore-{name}-{}", unique())));
    copy_tree(from, copy.path(), cancel)?;
    Ok((Incoming::Copy(copy), files))
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
mod tests {
    use super::*;
    use crate::file_work::testing::{listing, live, snapshot};
    use crate::manifest::MANIFEST;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use std::sync::Arc;

    #[test]
    fn good_params_pass() {
        assert_valid::<FileRestoreParams>(
            "file.restore",
            json!({"snapshot": "/backups/s", "to": "/srv/ledger/data"}),
        );
        assert_valid::<FileRestoreParams>(
            "file.restore",
            json!({"snapshot": "/backups/s.tar.gz", "to": "/srv/x", "aside": "/srv/x.old", "verify": false}),
        );
        assert_valid::<FileRestoreParams>(
            "file.restore",
            json!({"from": "{{ steps.restore.outputs.aside }}", "to": "/srv/ledger/data"}),
        );
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected(
            "file.restore",
            json!({"to": "/x"}),
            "",
            "missing parameter `snapshot` or `from`",
        );
        assert_rejected(
            "file.restore",
            json!({"snapshot": "/s", "from": "/a", "to": "/x"}),
            "/from",
            "`snapshot` and `from` are both given",
        );
        assert_rejected(
            "file.restore",
            json!({"from": "/a", "to": "/x", "verify": true}),
            "/verify",
            "`verify` applies to `snapshot` only",
        );
        assert_rejected("file.restore", json!({"snapshot": "/s"}), "", "missing parameter `to`");
        assert_rejected(
            "file.restore",
            json!({"snapshot": "/s", "to": "/"}),
            "/to",
            "cannot restore to `/`: `/` has no file name",
        );
        assert_rejected(
            "file.restore",
            json!({"snapshot": "/s", "to": "/x", "aside": "/x"}),
            "/aside",
            "`aside` is `to` itself",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "file.restore",
            &[
                json!({"snapshot": "<steps.snap.outputs.path>", "to": "/srv/ledger/data"}),
                json!({"snapshot": "/backups/s.tar.gz", "to": "/srv/x", "aside": "/forensics/x", "verify": false}),
                json!({"from": "<steps.restore.outputs.aside>", "to": "/srv/ledger/data"}),
                json!({"to": "/srv/x"}),
                json!({}),
            ],
        ));
    }

    #[tokio::test]
    async fn restores_a_directory_and_keeps_the_old_one_aside() {
        for format in ["dir", "tar.gz"] {
            let dir = tempfile::tempdir().unwrap();
            let (data, _) = live(dir.path());
            let taken = snapshot(dir.path(), format).await;
            let before = listing(&data);
            // The live directory goes bad.
            fs::write(data.join("ledger.db"), "corrupt").unwrap();
            fs::remove_file(data.join("blocks/0001")).unwrap();
            let corrupt = listing(&data);
            let host = Arc::new(FakeHost::new());
            let result = run("file.restore", &host, json!({"snapshot": taken["path"], "to": data}))
                .await
                .unwrap();
            assert_eq!(result["restored"], data.display().to_string());
            assert_eq!(result["files"], 2);
            let aside = PathBuf::from(result["aside"].as_str().unwrap());
            let aside_name = aside.file_name().unwrap().to_str().unwrap();
            assert!(aside_name.starts_with("data.before-restore-20"), "{aside_name}");
            assert_eq!(listing(&data), before, "{format}");
            assert_eq!(listing(&aside), corrupt, "{format}");
            // No hidden copy is left beside it.
            let mut names: Vec<_> = fs::read_dir(data.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            assert_eq!(names, ["config.yaml", "data", aside_name], "{format}");
        }
    }

    #[tokio::test]
    async fn restores_a_single_file_and_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let (_, config) = live(dir.path());
        let taken = snapshot(dir.path(), "tar.gz").await;
        fs::remove_file(&config).unwrap();
        let host = Arc::new(FakeHost::new());
        let result = run("file.restore", &host, json!({"snapshot": taken["path"], "to": config}))
            .await
            .unwrap();
        assert_eq!(
            result,
            json!({"restored": config.display().to_string(), "aside": null, "files": 1})
        );
        assert_eq!(fs::read_to_string(&config).unwrap(), "mode: normal\n");
    }

    #[tokio::test]
    async fn long_names_and_a_trailing_slash() {
        let dir = tempfile::tempdir().unwrap();
        let (data, _) = live(dir.path());
        // Past the 100 bytes a plain tar header holds.
        let deep = data.join(format!("{}/{}", "d".repeat(60), "f".repeat(80)));
        fs::create_dir_all(deep.parent().unwrap()).unwrap();
        fs::write(&deep, "deep").unwrap();
        let taken = snapshot(dir.path(), "tar.gz").await;
        let before = listing(&data);
        fs::remove_dir_all(data.join("d".repeat(60))).unwrap();
        let host = Arc::new(FakeHost::new());
        let to = format!("{}/", data.display());
        let result = run("file.restore", &host, json!({"snapshot": taken["path"], "to": to}))
            .await
            .unwrap();
        assert_eq!(listing(&data), before);
        assert_eq!(result["files"], 3);
        // The old one goes beside `data`, not into it.
        let aside = PathBuf::from(result["aside"].as_str().unwrap());
        assert_eq!(aside.parent(), data.parent());
    }

    #[tokio::test]
    async fn a_corrupt_snapshot_is_refused_and_nothing_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let (data, _) = live(dir.path());
        let taken = snapshot(dir.path(), "dir").await;
        let path = PathBuf::from(taken["path"].as_str().unwrap());
        fs::write(path.join("data/blocks/0001"), "bit rot").unwrap();
        fs::write(data.join("ledger.db"), "live and different").unwrap();
        let live_before = listing(dir.path());
        let host = Arc::new(FakeHost::new());
        let error = run("file.restore", &host, json!({"snapshot": path, "to": data}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "refusing to restore: the snapshot `{}` does not match its manifest: 1 changed (`data/blocks/0001`). Nothing was changed",
                path.display()
            )
        );
        assert_eq!(error.result.unwrap()["changed"], json!(["data/blocks/0001"]));
        assert_eq!(listing(dir.path()), live_before);

        // With `verify: false` the damaged copy is put in place all the same.
        let result = run(
            "file.restore",
            &host,
            json!({"snapshot": path, "to": data, "verify": false}),
        )
        .await
        .unwrap();
        assert_eq!(fs::read_to_string(data.join("blocks/0001")).unwrap(), "bit rot");
        assert_eq!(result["files"], 2);
    }

    #[tokio::test]
    async fn a_name_the_snapshot_does_not_hold_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        live(dir.path());
        let taken = snapshot(dir.path(), "dir").await;
        let other = dir.path().join("live/other");
        fs::write(&other, "x").unwrap();
        let host = Arc::new(FakeHost::new());
        let error = run("file.restore", &host, json!({"snapshot": taken["path"], "to": other}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "the snapshot `{}` holds no `other` (it holds `config.yaml` and `data`). Nothing was changed",
                taken["path"].as_str().unwrap()
            )
        );
        assert_eq!(fs::read_to_string(&other).unwrap(), "x");
    }

    #[tokio::test]
    async fn the_rollback_puts_the_aside_back() {
        let dir = tempfile::tempdir().unwrap();
        let (data, _) = live(dir.path());
        let taken = snapshot(dir.path(), "dir").await;
        fs::write(data.join("ledger.db"), "ledger v2").unwrap();
        let v2 = listing(&data);
        let host = Arc::new(FakeHost::new());
        let restored = run("file.restore", &host, json!({"snapshot": taken["path"], "to": data}))
            .await
            .unwrap();
        let v1 = listing(&data);
        assert_ne!(v1, v2);
        // rollback: { uses: file.restore, with: { from: "{{ steps.r.outputs.aside }}", to: ... } }
        let undone = run("file.restore", &host, json!({"from": restored["aside"], "to": data}))
            .await
            .unwrap();
        assert_eq!(listing(&data), v2);
        assert_eq!(undone["files"], 2);
        assert!(
            !Path::new(restored["aside"].as_str().unwrap()).exists(),
            "the aside was moved back"
        );
        // Twice in one second: the second aside gets a name of its own.
        let second_aside = PathBuf::from(undone["aside"].as_str().unwrap());
        assert_ne!(undone["aside"], restored["aside"]);
        assert_eq!(listing(&second_aside), v1);
    }

    #[tokio::test]
    async fn an_existing_aside_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (data, _) = live(dir.path());
        let taken = snapshot(dir.path(), "dir").await;
        let aside = dir.path().join("taken");
        fs::write(&aside, "").unwrap();
        let before = listing(dir.path());
        let host = Arc::new(FakeHost::new());
        let error = run(
            "file.restore",
            &host,
            json!({"snapshot": taken["path"], "to": data, "aside": aside}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "`{}` already exists; choose another `aside`. Nothing was changed",
                aside.display()
            )
        );
        assert_eq!(listing(dir.path()), before);
    }

    #[tokio::test]
    async fn a_failed_swap_puts_the_current_state_back() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("state");
        fs::create_dir(&to).unwrap();
        fs::write(to.join("x"), "current").unwrap();
        let aside = dir.path().join("aside");
        // The incoming copy is missing, so the second rename fails after
        // the first one succeeded.
        let error = swap(&to, &dir.path().join("gone"), Some(&aside)).unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "cannot put the restored copy at `{}`: no such file or directory. Nothing was changed",
                to.display()
            )
        );
        assert_eq!(fs::read_to_string(to.join("x")).unwrap(), "current");
        assert!(!aside.exists());
    }

    #[tokio::test]
    async fn an_archive_cannot_write_outside_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("evil.tar.gz");
        let file = fs::File::create(&archive).unwrap();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
        let mut header = tar::Header::new_gnu();
        let name = b"snap/../../escaped";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        let host = Arc::new(FakeHost::new());
        let error = run(
            "file.restore",
            &host,
            json!({"snapshot": archive, "to": dir.path().join("x"), "verify": false}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "`{}` is not a safe snapshot archive: it holds `snap/../../escaped`",
                archive.display()
            )
        );
        assert!(!dir.path().parent().unwrap().join("escaped").exists());
        assert!(!dir.path().join(MANIFEST).exists());
    }
}
