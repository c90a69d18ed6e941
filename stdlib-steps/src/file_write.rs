//! The `file.write` step kind: replaces a file's contents atomically, so a
//! reader sees the old file or the new one and never a half-written one.
//!
//! The text goes to a hidden temporary file in the same directory, which is
//! made durable and then renamed over the file; then the directory is made
//! durable too. With `backup` the previous file is kept under a new name
//! (a hard link to it, so it costs nothing), which a rollback puts back.
//!
//! A `path` that is a symbolic link is refused unless `follow_symlinks` is
//! given: replacing the link's target is a change somewhere else, maybe in
//! a file shared with other things. With it, the target is written and the
//! link stays as it is; the backup and the automatic rollback are of the
//! target, so a rollback leaves the link a link and gives the target its
//! old contents back. A rollback written by hand:
//!
//! ```yaml
//! - id: env
//!   uses: file.write
//!   with: { path: /srv/app/.env, content: "FAILOVER=1\n", backup: true }
//!   rollback:
//!     uses: file.restore
//!     with: { from: "{{ steps.env.outputs.previous }}", to: /srv/app/.env }
//! ```

use runbook_engine::kit::{Kind, Templated};
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

use crate::file_work::{Scratch, base_name, blocking, free_name, io_error, parent_of, sha256, stamp, sync_dir, unique};
use crate::words::code;

/// Writes a file atomically.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileWrite;

/// Parameters of a `file.write` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileWriteParams {
    /// The file to write; its directory must exist. A path that is empty or
    /// `/`, or whose last part is `.`, `..` or empty (it ends in `/`), is
    /// refused. A symbolic link is refused unless `follow_symlinks` is true.
    #[schemars(length(min = 1))]
    pub path: String,

    /// The whole new contents of the file.
    pub content: String,

    /// The file's permissions in octal, such as `"0644"` or `"0600"` (quoted,
    /// so YAML keeps it text); by default those of the file it replaces, or
    /// `0644` less the umask for a new file.
    #[serde(default)]
    #[schemars(with = "String", regex(pattern = r"^[0-7]{3,4}$"))]
    pub mode: Option<String>,

    /// Keep the previous file as `<path>.bak-<time>` and return it as
    /// `previous`, so that a rollback can put it back with `file.restore`
    /// and `from`.
    #[serde(default)]
    #[schemars(with = "Templated<bool>")]
    pub backup: Templated<bool>,

    /// When `path` is a symbolic link, write the file it points to (the
    /// link stays a link) instead of refusing. The result's `target` names
    /// that file, the backup is made beside it, and a rollback gives it its
    /// previous contents back; a rollback written by hand uses `target` as
    /// its `to`.
    #[serde(default)]
    #[schemars(with = "Templated<bool>")]
    pub follow_symlinks: Templated<bool>,
}

impl Kind for FileWrite {
    type Params = FileWriteParams;
    const NAME: &'static str = "file.write";
    const SUMMARY: &'static str = "Write a file atomically, optionally keeping the previous one.";

    fn params_rules(&self) -> Vec<Json> {
        vec![crate::path_problem::path_rule("path")]
    }

    fn validate(&self, params: &FileWriteParams) -> Vec<ParamProblem> {
        crate::path_problem::literal_problem(Some(&params.path), "path", "write")
            .into_iter()
            .collect()
    }

    fn describe(&self, params: &FileWriteParams) -> String {
        let path = &params.path;
        let what = match params.content.as_str() {
            "" => "an empty file".to_string(),
            text => match text.lines().count() {
                1 => "1 line".to_string(),
                n => format!("{n} lines"),
            },
        };
        let mut text = format!("write {what} to {} atomically", code(path));
        if let Some(mode) = &params.mode {
            text.push_str(&format!(", with mode {mode}"));
        }
        if params.follow_symlinks == Templated::Value(true) {
            text.push_str(" (the file it points to, if it is a link)");
        }
        if params.backup == Templated::Value(true) {
            text.push_str(&format!(
                ", keeping the previous file as {}",
                code(&format!("{path}.bak-<time>"))
            ));
        }
        text
    }

    /// Result: `{"path": "...", "target": "<the file written>", "bytes": n,
    /// "sha256": "<of the new contents>", "previous": "<the backup>"}`;
    /// `target` is `path` unless a link was followed; `previous` is null
    /// without `backup` or when there was no file before.
    fn undo_summary(&self, params: &FileWriteParams) -> Option<String> {
        (params.backup == Templated::Value(true)).then(|| "put the previous file back".to_string())
    }

    /// Only with a backup: without one, the previous contents are gone. It
    /// puts the backup back at the file that was written, which is the
    /// link's target when a link was followed: the link stays a link.
    fn undo(&self, _params: &FileWriteParams, result: &Json) -> Option<runbook_engine::step::Undo> {
        let path = result
            .get("target")
            .and_then(Json::as_str)
            .or_else(|| result.get("path")?.as_str())?;
        let previous = result.get("previous")?.as_str()?;
        Some(runbook_engine::step::Undo {
            kind: "file.restore".into(),
            params: json!({ "from": previous, "to": path }),
            description: format!("put the previous {} back", code(path)),
        })
    }

    /// A write is one rename and needs no recovery, but its rollback is a
    /// `file.restore`, whose checkpoints the engine hands to this kind (the
    /// step's) when that rollback was cut short: they are put right as
    /// `file.restore` would.
    async fn recover(&self, checkpoint: &Json) -> Result<Option<String>, String> {
        crate::file_restore::recover(checkpoint).await
    }

    async fn run(&self, params: FileWriteParams, cx: StepContext) -> Result<Json, StepError> {
        blocking(&cx.cancel, move |cancel| write(&params, cancel)).await
    }
}

fn parse_mode(text: &str) -> Result<u32, StepError> {
    if !(3..=4).contains(&text.len()) {
        return Err(StepError::new(format!("`{text}` is not a file mode such as `0644`")));
    }
    u32::from_str_radix(text, 8).map_err(|_| StepError::new(format!("`{text}` is not a file mode such as `0644`")))
}

fn write(params: &FileWriteParams, cancel: &CancellationToken) -> Result<Json, StepError> {
    crate::path_problem::check_path(&params.path, "write")?;
    let given = PathBuf::from(&params.path);
    let is_link = given.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink());
    let path = match (is_link, *params.follow_symlinks.get()?) {
        (false, _) => given,
        (true, true) => fs::canonicalize(&given).map_err(|e| io_error("follow the link", &given, &e))?,
        (true, false) => {
            let target = fs::read_link(&given)
                .map(|t| format!(" to `{}`", t.display()))
                .unwrap_or_default();
            return Err(StepError::new(format!(
                "refusing to write `{}`: it is a symbolic link{target}. Nothing was changed; add `follow_symlinks: true` to write the file it points to (the link stays a link), or name that file as `path`",
                given.display()
            )));
        }
    };
    let name = base_name(&path).map_err(|why| StepError::new(format!("cannot write: {why}")))?;
    let dir = parent_of(&path);
    fs::metadata(dir).map_err(|e| io_error("write into", dir, &e))?;
    let existing = match fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => {
            return Err(StepError::new(format!(
                "cannot write `{}`: it is a directory",
                path.display()
            )));
        }
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("read", &path, &e)),
    };
    let mode = match &params.mode {
        Some(text) => Some(parse_mode(text)?),
        None => existing.as_ref().map(|meta| meta.permissions().mode() & 0o7777),
    };

    let temp = Scratch::new(dir.join(format!(".{name}.tmp-{}", unique())));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(temp.path())
        .map_err(|e| io_error("write into", dir, &e))?;
    let write_error = |e: io::Error| io_error("write", temp.path(), &e);
    file.write_all(params.content.as_bytes()).map_err(write_error)?;
    if let Some(mode) = mode {
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(write_error)?;
    }
    if let Some(meta) = &existing {
        // Keeps the owner when run as root; otherwise the file is ours.
        let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
    }
    file.sync_all().map_err(write_error)?;
    crate::file_work::check(cancel)?;

    let previous = match (&existing, *params.backup.get()?) {
        (Some(_), true) => {
            let backup = free_name(dir.join(format!("{name}.bak-{}", stamp())));
            if fs::hard_link(&path, &backup).is_err() {
                fs::copy(&path, &backup).map_err(|e| io_error("back up", &path, &e))?;
            }
            Some(backup)
        }
        _ => None,
    };
    if let Err(e) = fs::rename(temp.path(), &path) {
        if let Some(backup) = &previous {
            let _ = fs::remove_file(backup);
        }
        return Err(io_error("replace", &path, &e));
    }
    temp.keep();
    sync_dir(dir)?;
    Ok(json!({
        "path": params.path,
        "target": if is_link { path.display().to_string() } else { params.path.clone() },
        "bytes": params.content.len(),
        "sha256": sha256(params.content.as_bytes()),
        "previous": previous.map(|p| p.display().to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn good_params_pass() {
        assert_valid::<FileWriteParams>("file.write", json!({"path": "/srv/app/.env", "content": "A=1\n"}));
        assert_valid::<FileWriteParams>(
            "file.write",
            json!({"path": "/x", "content": "", "mode": "0600", "backup": true}),
        );
        assert_valid::<FileWriteParams>("file.write", json!({"path": "/x", "content": "", "mode": "755"}));
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("file.write", json!({"path": "/x"}), "", "missing parameter `content`");
        assert_rejected(
            "file.write",
            json!({"path": "/x", "content": "", "mode": "0999"}),
            "/mode",
            "does not match",
        );
        assert_rejected(
            "file.write",
            json!({"path": "/x", "content": "", "mode": 644}),
            "/mode",
            "must be a string, found an integer",
        );
        assert_rejected(
            "file.write",
            json!({"path": "/x", "content": "", "backup": "yes"}),
            "/backup",
            "must be `true` or `false`",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "file.write",
            &[
                json!({"path": "/srv/app/.env", "content": "A=1\nB=<inputs.b>\n", "mode": "0600", "backup": true}),
                json!({"path": "<vars.flag>", "content": "paused"}),
                json!({"path": "/x", "content": ""}),
                json!({}),
            ],
        ));
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.env");
        let host = Arc::new(FakeHost::new());
        let result = run(
            "file.write",
            &host,
            json!({"path": path, "content": "A=1\n", "mode": "0600"}),
        )
        .await
        .unwrap();
        assert_eq!(
            result,
            json!({
                "path": path.display().to_string(),
                "target": path.display().to_string(),
                "bytes": 4,
                "sha256": sha256(b"A=1\n"),
                "previous": null,
            })
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "A=1\n");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(dir.path()), ["app.env"]);
    }

    #[tokio::test]
    async fn replaces_a_file_keeping_its_mode_and_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.env");
        fs::write(&path, "A=1\n").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        let host = Arc::new(FakeHost::new());
        let result = run(
            "file.write",
            &host,
            json!({"path": path, "content": "A=2\n", "backup": true}),
        )
        .await
        .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "A=2\n");
        assert_eq!(mode(&path), 0o640);
        let previous = PathBuf::from(result["previous"].as_str().unwrap());
        assert!(
            previous
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("app.env.bak-20"),
            "{previous:?}"
        );
        assert_eq!(fs::read_to_string(&previous).unwrap(), "A=1\n");
        assert_eq!(names(dir.path()).len(), 2);

        // The rollback a runbook writes puts the previous file back.
        run("file.restore", &host, json!({"from": previous, "to": path}))
            .await
            .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "A=1\n");

        // Without `backup` nothing else is kept.
        let result = run("file.write", &host, json!({"path": path, "content": "A=3\n"}))
            .await
            .unwrap();
        assert_eq!(result["previous"], Json::Null);
    }

    #[tokio::test]
    async fn refuses_a_symbolic_link_unless_told_to_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.conf");
        fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.conf");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let host = Arc::new(FakeHost::new());
        let error = run(
            "file.write",
            &host,
            json!({"path": link, "content": "new", "backup": true}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "refusing to write `{}`: it is a symbolic link to `{}`. Nothing was changed; add `follow_symlinks: true` to write the file it points to (the link stays a link), or name that file as `path`",
                link.display(),
                target.display()
            )
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(names(dir.path()), ["link.conf", "real.conf"]);

        let params = json!({"path": link, "content": "new", "backup": true, "follow_symlinks": true});
        let result = run("file.write", &host, params.clone()).await.unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(result["path"], link.display().to_string());
        assert_eq!(result["target"], target.canonicalize().unwrap().display().to_string());
        // The automatic rollback gives the target its old contents and
        // leaves the link a link.
        let undo = runbook_engine::step::StepKind::undo(&FileWrite, &params, &result).unwrap();
        run(&undo.kind, &host, undo.params).await.unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(fs::read_link(&link).unwrap(), target);
        assert_eq!(fs::read_to_string(&target).unwrap(), "old");
    }

    #[test]
    fn paths_that_name_a_folder_above_are_refused() {
        assert_rejected(
            "file.write",
            json!({"path": "/srv/app/..", "content": ""}),
            "/path",
            "refusing to write `/srv/app/..`: its last part is `..`",
        );
    }

    #[tokio::test]
    async fn failures_are_clear_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(FakeHost::new());
        let missing = dir.path().join("no/such/dir/file");
        let error = run("file.write", &host, json!({"path": missing, "content": "x"}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "cannot write into `{}`: no such file or directory",
                missing.parent().unwrap().display()
            )
        );
        let error = run("file.write", &host, json!({"path": dir.path(), "content": "x"}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!("cannot write `{}`: it is a directory", dir.path().display())
        );
        assert!(names(dir.path()).is_empty());
    }
}
