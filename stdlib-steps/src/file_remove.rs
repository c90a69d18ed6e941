//! The `file.remove` step kind: deletes a file or a folder. It is also how
//! `file.snapshot` (and a `file.restore` onto a path that did not exist) are
//! undone when a run rolls back.

use runbook_engine::step::{ParamProblem, StepContext, StepError, StepFuture, StepKind};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::fs;
use std::path::{Path, PathBuf};

use crate::file_work::{blocking, io_error};
use crate::words::code;

/// Deletes a file or a folder.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileRemove;

/// Parameters of a `file.remove` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRemoveParams {
    /// The file or folder to delete (a folder with everything in it). A path that does not exist is not an error.
    #[schemars(length(min = 1))]
    pub path: String,
}

/// Paths no runbook should delete whole.
fn forbidden(path: &Path) -> bool {
    path.as_os_str().is_empty() || path.parent().is_none() || path == Path::new(".") || path == Path::new("..")
}

impl StepKind for FileRemove {
    fn name(&self) -> &'static str {
        "file.remove"
    }

    fn summary(&self) -> &'static str {
        "Delete a file or a folder."
    }

    fn params_schema(&self) -> Json {
        crate::schema_of::<FileRemoveParams>()
    }

    fn validate(&self, params: &Json) -> Vec<ParamProblem> {
        match params.get("path").and_then(Json::as_str) {
            Some(path) if !crate::is_template(path) && forbidden(Path::new(path)) => {
                vec![
                    ParamProblem::new("/path", format!("refusing to delete `{path}`"))
                        .with_help("name the file or folder to delete"),
                ]
            }
            _ => Vec::new(),
        }
    }

    fn describe(&self, params: &Json) -> String {
        match params.get("path").and_then(Json::as_str) {
            Some(path) => format!("delete {}", code(path)),
            None => "delete a file (no path given)".to_string(),
        }
    }

    /// Result: `{"path": "...", "removed": true}`; `removed` is false when nothing was there.
    fn run(&self, cx: StepContext) -> StepFuture<'_> {
        Box::pin(async move {
            let params: FileRemoveParams = crate::read_params("file.remove", &cx.params)?;
            blocking(&cx.cancel, move |_| remove(&PathBuf::from(&params.path))).await
        })
    }
}

fn remove(path: &Path) -> Result<Json, StepError> {
    if forbidden(path) {
        return Err(StepError::new(format!("refusing to delete `{}`", path.display())));
    }
    let meta = match path.symlink_metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(json!({"path": path.display().to_string(), "removed": false}));
        }
        Err(e) => return Err(io_error("delete", path, &e)),
    };
    let result = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    result.map_err(|e| io_error("delete", path, &e))?;
    Ok(json!({"path": path.display().to_string(), "removed": true}))
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

    #[test]
    fn removes_files_and_folders_and_refuses_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("snap");
        fs::create_dir_all(folder.join("a")).unwrap();
        fs::write(folder.join("a/b"), "x").unwrap();
        assert_eq!(remove(&folder).unwrap()["removed"], true);
        assert!(!folder.exists());
        assert_eq!(remove(&folder).unwrap()["removed"], false);
        assert!(remove(Path::new("/")).is_err());
        assert!(!FileRemove.validate(&json!({"path": "/"})).is_empty());
    }
}
