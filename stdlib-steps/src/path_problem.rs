//! `PathProblem`: why a path given to a file kind must not be acted on as
//! a whole, checked on the text as written (at `check`, for literal values)
//! and as rendered (at run time).
//!
//! The danger is a template: `dir/{{ inputs.sub }}` with an empty `sub`
//! renders `dir/`, and with `..` renders `dir/..`; both name a folder above
//! the one meant. A path is therefore refused when it is empty, the root,
//! or when its last part is `.`, `..` or empty (a trailing `/`). The check
//! reads the text, not the filesystem: `Path` quietly drops a trailing `.`
//! (`a/.` has the file name `a`), so the text is what tells.

use runbook_engine::step::{ParamProblem, StepError};

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathProblem {
    Empty,
    Root,
    /// The last part is `.`: the folder that holds it.
    Dot,
    /// The last part is `..`: a parent folder.
    DotDot,
    /// It ends in `/`: its last part is empty.
    TrailingSlash,
}

impl PathProblem {
    /// The problem with `path`, if any.
    pub(crate) fn of(path: &str) -> Option<Self> {
        if path.is_empty() {
            return Some(Self::Empty);
        }
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            return Some(Self::Root);
        }
        match trimmed.rsplit('/').next() {
            Some(".") => Some(Self::Dot),
            Some("..") => Some(Self::DotDot),
            _ if trimmed.len() != path.len() => Some(Self::TrailingSlash),
            _ => None,
        }
    }

    /// Why, as a clause: `its last part is `..`, so it names a parent folder`.
    pub(crate) fn why(self) -> &'static str {
        match self {
            Self::Empty => "it is empty",
            Self::Root => "it is the root of the filesystem",
            Self::Dot => "its last part is `.`, so it names the folder that holds it",
            Self::DotDot => "its last part is `..`, so it names a parent folder",
            Self::TrailingSlash => "it ends in `/`, so its last part is empty",
        }
    }

    /// How to fix it.
    pub(crate) fn help(self) -> &'static str {
        match self {
            Self::TrailingSlash => {
                "remove the trailing `/`; if the path is built from an input, check that the input is not empty"
            }
            _ => "name the file or folder itself; if the path is built from an input, check that input's value",
        }
    }

    /// The problem at `check` time, at parameter `pointer`: `refusing to
    /// {action} `path`: why`.
    pub(crate) fn param(self, pointer: &str, action: &str, path: &str) -> ParamProblem {
        ParamProblem::new(pointer, format!("refusing to {action} `{path}`: {}", self.why())).with_help(self.help())
    }

    /// The step's error at run time: nothing was changed, and how to fix it.
    pub(crate) fn error(self, action: &str, path: &str) -> StepError {
        StepError::new(format!(
            "refusing to {action} `{path}`: {}. Nothing was changed; {}",
            self.why(),
            self.help()
        ))
    }
}

/// The problem of the literal string at `params[name]` (a template is judged
/// once rendered), as a `check` problem.
pub(crate) fn literal_problem(path: Option<&str>, name: &str, action: &str) -> Option<ParamProblem> {
    let path = path?;
    if crate::is_template(path) {
        return None;
    }
    PathProblem::of(path).map(|problem| problem.param(&format!("/{name}"), action, path))
}

/// The schema rule of [`literal_problem`] for the parameter `name`: a path
/// that is empty, or ends in `/`, `.` or `..`. A template is left to be
/// judged once rendered (the format's schema lets templates through).
pub(crate) fn path_rule(name: &str) -> serde_json::Value {
    runbook_engine::kit::param_rule(name, serde_json::json!({ "not": { "pattern": r"^$|/$|(^|/)\.\.?$" } }))
}

/// `Err` when `path` has a problem.
pub(crate) fn check_path(path: &str, action: &str) -> Result<(), StepError> {
    match PathProblem::of(path) {
        Some(problem) => Err(problem.error(action, path)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_names_a_folder_above() {
        let of = PathProblem::of;
        assert_eq!(of(""), Some(PathProblem::Empty));
        assert_eq!(of("/"), Some(PathProblem::Root));
        assert_eq!(of("//"), Some(PathProblem::Root));
        assert_eq!(of("."), Some(PathProblem::Dot));
        assert_eq!(of("data/."), Some(PathProblem::Dot));
        assert_eq!(of("/srv/./"), Some(PathProblem::Dot));
        assert_eq!(of(".."), Some(PathProblem::DotDot));
        assert_eq!(of("data/.."), Some(PathProblem::DotDot));
        assert_eq!(of("/srv/data/../"), Some(PathProblem::DotDot));
        assert_eq!(of("data/"), Some(PathProblem::TrailingSlash));
        for fine in [
            "data",
            "/srv/data",
            "./data",
            "../data",
            "a/../b",
            ".hidden",
            "..x",
            "x..",
        ] {
            assert_eq!(of(fine), None, "{fine}");
        }
    }

    #[test]
    fn errors_name_the_path_and_the_fix() {
        let error = check_path("data/..", "delete").unwrap_err();
        assert_eq!(
            error.message,
            "refusing to delete `data/..`: its last part is `..`, so it names a parent folder. Nothing was changed; name the file or folder itself; if the path is built from an input, check that input's value"
        );
        let problem = literal_problem(Some("/b/"), "dir", "prune").unwrap();
        assert_eq!(problem.pointer, "/dir");
        assert_eq!(
            problem.message,
            "refusing to prune `/b/`: it ends in `/`, so its last part is empty"
        );
        assert!(literal_problem(Some("{{ inputs.d }}/"), "dir", "prune").is_none());
    }
}
