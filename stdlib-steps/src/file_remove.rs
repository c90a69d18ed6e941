//! The `file.remove` step kind: deletes a file or a folder. It is also how
//! `file.snapshot` (and a `file.restore` onto a path that did not exist) are
//! undone when a run rolls back.
//!
//! A path that names a folder above the one meant (empty, `/`, or ending in
//! `.`, `..` or `/`, as a template with an empty or `..` value renders) is
//! refused, at `check` when it is written out and at run time when it was
//! rendered. With `root`, the path must lie inside that folder once its
//! folders are resolved (links and `..` followed); its last part is never
//! followed, so a link is deleted, not what it points to.

use runbook_engine::kit::Kind;
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::file_work::{blocking, io_error, parent_of};
use crate::path_problem::{check_path, literal_problem};
use crate::words::code;

/// Deletes a file or a folder.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileRemove;

/// Parameters of a `file.remove` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRemoveParams {
    /// The file or folder to delete (a folder with everything in it). A path
    /// that does not exist is not an error. A path that is empty or `/`, or
    /// whose last part is `.`, `..` or empty (it ends in `/`) is refused: it
    /// names a folder above the one meant. A symbolic link is deleted, never
    /// what it points to.
    #[schemars(length(min = 1))]
    pub path: String,

    /// A folder the path must be inside. The path's folders are resolved
    /// (symbolic links and `..` followed; its last part is not), and the
    /// step refuses to delete anything that is not below `root`, or `root`
    /// itself. Give it whenever `path` is built from an input.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub root: Option<String>,
}

impl Kind for FileRemove {
    type Params = FileRemoveParams;
    const NAME: &'static str = "file.remove";
    const SUMMARY: &'static str = "Delete a file or a folder.";

    fn params_rules(&self) -> Vec<Json> {
        vec![crate::path_problem::path_rule("path")]
    }

    fn validate(&self, params: &FileRemoveParams) -> Vec<ParamProblem> {
        let mut problems: Vec<ParamProblem> = literal_problem(Some(&params.path), "path", "delete")
            .into_iter()
            .collect();
        fn literal(text: Option<&str>) -> Option<&str> {
            text.filter(|text| !crate::is_template(text))
        }
        if problems.is_empty()
            && let (Some(path), Some(root)) = (literal(Some(&params.path)), literal(params.root.as_deref()))
            && let Some(why) = lexically_outside(Path::new(path), Path::new(root))
        {
            problems.push(
                ParamProblem::new("/path", format!("refusing to delete `{path}`: {why} `{root}`"))
                    .with_help("name something inside `root`, or change `root`"),
            );
        }
        problems
    }

    fn describe(&self, params: &FileRemoveParams) -> String {
        match &params.root {
            Some(root) => format!("delete {} (only if it is inside {})", code(&params.path), code(root)),
            None => format!("delete {}", code(&params.path)),
        }
    }

    /// Result: `{"path": "...", "removed": true}`; `removed` is false when nothing was there.
    async fn run(&self, params: FileRemoveParams, cx: StepContext) -> Result<Json, StepError> {
        blocking(&cx.cancel, move |_| remove(&params)).await
    }
}

fn remove(params: &FileRemoveParams) -> Result<Json, StepError> {
    check_path(&params.path, "delete")?;
    let given = Path::new(&params.path);
    let path = match &params.root {
        Some(root) => inside_root(given, Path::new(root))?,
        None => given.to_path_buf(),
    };
    let meta = match path.symlink_metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(json!({"path": params.path, "removed": false}));
        }
        Err(e) => return Err(io_error("delete", given, &e)),
    };
    let result = if meta.is_dir() {
        fs::remove_dir_all(&path)
    } else {
        fs::remove_file(&path)
    };
    result.map_err(|e| io_error("delete", given, &e))?;
    Ok(json!({"path": params.path, "removed": true}))
}

/// What deleting `path` would delete, when that is strictly inside `root`:
/// `path` with its folders resolved and its last part as it is.
fn inside_root(path: &Path, root: &Path) -> Result<PathBuf, StepError> {
    let root_resolved = fs::canonicalize(root).map_err(|e| {
        StepError::new(format!(
            "cannot use `{}` as `root`: {}. Nothing was changed; `root` must be an existing folder",
            root.display(),
            crate::os_error_words(&e.to_string())
        ))
    })?;
    let resolved = resolve_folders(path)?;
    if resolved.starts_with(&root_resolved) && resolved != root_resolved {
        return Ok(resolved);
    }
    let why = if resolved == root_resolved {
        "it is `root` itself".to_string()
    } else {
        format!("it is outside `root` `{}`", root.display())
    };
    let shown = if resolved.as_path() == path {
        String::new()
    } else {
        format!(" (it resolves to `{}`)", resolved.display())
    };
    Err(StepError::new(format!(
        "refusing to delete `{}`{shown}: {why}. Nothing was changed; name something inside `{}`, or change `root`",
        path.display(),
        root.display()
    )))
}

/// `path` with the folder that holds it resolved (symbolic links and `..`
/// followed), and its last part as it is. A folder that does not exist is
/// resolved as far as it exists, the rest taken as written.
fn resolve_folders(path: &Path) -> Result<PathBuf, StepError> {
    let Some(name) = path.file_name() else {
        // Ruled out by `PathProblem` before; said plainly all the same.
        return Err(StepError::new(format!("`{}` has no file name", path.display())));
    };
    let parent = parent_of(path);
    match fs::canonicalize(parent) {
        Ok(parent) => Ok(parent.join(name)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let absolute = std::path::absolute(path).map_err(|e| io_error("resolve", path, &e))?;
            let normal = normalize(&absolute);
            let existing = normal.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
            let rest = normal.strip_prefix(existing).unwrap_or(Path::new(""));
            let existing = fs::canonicalize(existing).map_err(|e| io_error("resolve", existing, &e))?;
            Ok(existing.join(rest))
        }
        Err(e) => Err(io_error("resolve", parent, &e)),
    }
}

/// `path` with `.` and `..` taken away by reading the text alone.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// For `check`: why `path` is not strictly inside `root`, by the text alone,
/// when the text can tell (both absolute, or both relative).
fn lexically_outside(path: &Path, root: &Path) -> Option<&'static str> {
    if path.is_absolute() != root.is_absolute() {
        return None;
    }
    let (path, root) = (normalize(path), normalize(root));
    if path == root {
        Some("it is `root` itself:")
    } else if root.components().any(|c| c == Component::ParentDir) || path.starts_with(&root) {
        None
    } else {
        Some("it is outside `root`")
    }
}

/// The undo that deletes what a step made at `path`.
pub(crate) fn undo_by_removing(path: &str, what: &str) -> runbook_engine::step::Undo {
    runbook_engine::step::Undo {
        kind: "file.remove".into(),
        params: json!({ "path": path }),
        description: format!("delete {what} {}", code(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{assert_rejected, assert_valid, describe_all};

    fn remove_at(path: &Path, root: Option<&Path>) -> Result<Json, StepError> {
        remove(&FileRemoveParams {
            path: path.display().to_string(),
            root: root.map(|r| r.display().to_string()),
        })
    }

    #[test]
    fn good_params_pass() {
        assert_valid::<FileRemoveParams>("file.remove", json!({"path": "/srv/app/tmp"}));
        assert_valid::<FileRemoveParams>(
            "file.remove",
            json!({"path": "/srv/app/tmp/{{ inputs.name }}", "root": "/srv/app/tmp"}),
        );
        assert_valid::<FileRemoveParams>("file.remove", json!({"path": "/srv/app/tmp/x", "root": "/srv/app"}));
    }

    #[test]
    fn bad_params_are_rejected() {
        for (path, why) in [
            ("/", "it is the root of the filesystem"),
            ("..", "its last part is `..`"),
            ("data/..", "its last part is `..`"),
            (".", "its last part is `.`"),
            ("data/.", "its last part is `.`"),
            ("data/", "it ends in `/`"),
        ] {
            let problem = assert_rejected("file.remove", json!({"path": path}), "/path", why);
            assert!(
                problem.message.starts_with(&format!("refusing to delete `{path}`: ")),
                "{problem:?}"
            );
            assert!(problem.help.is_some());
        }
        assert_rejected(
            "file.remove",
            json!({"path": ""}),
            "/path",
            "needs at least 1 character",
        );
        let problem = assert_rejected(
            "file.remove",
            json!({"path": "/srv/app/../etc", "root": "/srv/app"}),
            "/path",
            "refusing to delete `/srv/app/../etc`: it is outside `root` `/srv/app`",
        );
        assert_eq!(
            problem.help.as_deref(),
            Some("name something inside `root`, or change `root`")
        );
        assert_rejected(
            "file.remove",
            json!({"path": "/srv/app", "root": "/srv/app"}),
            "/path",
            "it is `root` itself",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "file.remove",
            &[
                json!({"path": "/srv/app/tmp"}),
                json!({"path": "/srv/app/tmp/<inputs.name>", "root": "/srv/app/tmp"}),
                json!({}),
            ],
        ));
    }

    #[test]
    fn removes_files_and_folders_and_refuses_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("snap");
        fs::create_dir_all(folder.join("a")).unwrap();
        fs::write(folder.join("a/b"), "x").unwrap();
        assert_eq!(remove_at(&folder, None).unwrap()["removed"], true);
        assert!(!folder.exists());
        assert_eq!(remove_at(&folder, None).unwrap()["removed"], false);
        assert!(remove_at(Path::new("/"), None).is_err());
    }

    #[test]
    fn rendered_paths_that_name_a_parent_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("sub")).unwrap();
        for rendered in [
            format!("{}/", data.display()),
            format!("{}/sub/..", data.display()),
            format!("{}/.", data.display()),
            String::new(),
        ] {
            let error = remove(&FileRemoveParams {
                path: rendered.clone(),
                root: None,
            })
            .unwrap_err();
            assert!(
                error.message.starts_with(&format!("refusing to delete `{rendered}`: ")),
                "{error}"
            );
            assert!(error.message.contains("Nothing was changed"), "{error}");
        }
        assert!(data.join("sub").is_dir());
    }

    #[test]
    fn a_root_keeps_the_deletion_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tmp");
        fs::create_dir_all(root.join("job/x")).unwrap();
        let outside = dir.path().join("precious");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), "keep").unwrap();
        // A link inside `root` to a folder outside it: the folders of the
        // path are followed, so what is below the link is outside.
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

        let error = remove_at(&root.join("../precious"), Some(&root)).unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "refusing to delete `{}` (it resolves to `{}`): it is outside `root` `{}`. Nothing was changed; name something inside `{}`, or change `root`",
                root.join("../precious").display(),
                outside.canonicalize().unwrap().display(),
                root.display(),
                root.display()
            )
        );
        let error = remove_at(&root.join("link/keep"), Some(&root)).unwrap_err();
        assert!(error.message.contains("it is outside `root`"), "{error}");
        let error = remove_at(&root, Some(&root)).unwrap_err();
        assert!(error.message.contains("it is `root` itself"), "{error}");
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "keep");

        // The link itself is inside: it is deleted, not what it points to.
        assert_eq!(remove_at(&root.join("link"), Some(&root)).unwrap()["removed"], true);
        assert!(outside.join("keep").exists());
        assert_eq!(remove_at(&root.join("job"), Some(&root)).unwrap()["removed"], true);
        assert!(!root.join("job").exists());
        // Nothing there, inside: not an error; nothing there, outside: refused.
        assert_eq!(
            remove_at(&root.join("gone/deeper"), Some(&root)).unwrap()["removed"],
            false
        );
        assert!(remove_at(&root.join("gone/../../elsewhere"), Some(&root)).is_err());
        // A root that does not exist.
        let error = remove_at(&root.join("x"), Some(&dir.path().join("nope"))).unwrap_err();
        assert!(error.message.contains("`root` must be an existing folder"), "{error}");
    }
}
