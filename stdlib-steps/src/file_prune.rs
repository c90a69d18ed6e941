//! The `file.prune` step kind: deletes old snapshots or backups from a
//! directory, always keeping the newest few.
//!
//! Without a `pattern` it only ever considers what `file.snapshot` makes
//! (folders holding `MANIFEST.sha256`, and `.tar.gz` files), so a prune
//! pointed at the wrong directory cannot empty it. Hidden entries, among
//! them snapshots still being made, are never touched. Age is the time
//! since an entry was last modified. What it deletes cannot be rolled back;
//! the plan says in words what it would delete.

use runbook_engine::kit::{Kind, Templated};
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

use crate::HumanDuration;
use crate::file_work::{blocking, io_error};
use crate::manifest::MANIFEST;
use crate::words::code;

/// Deletes old snapshots or backups, keeping the newest.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilePrune;

/// Parameters of a `file.prune` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilePruneParams {
    /// The directory that keeps the snapshots or backups. A path that is
    /// empty or `/`, or whose last part is `.`, `..` or empty (it ends in
    /// `/`), is refused: it names a folder above the one meant.
    #[schemars(length(min = 1))]
    pub dir: String,

    /// How long ago an entry must have last changed to be deleted, such as
    /// `7d` or `36h`.
    pub older_than: Templated<HumanDuration>,

    /// Which entries may be deleted: a name prefix such as `ledger-`, or a
    /// pattern with `*` and `?` such as `app.env.bak-*`. Without it, only
    /// snapshots made by `file.snapshot` are: folders holding
    /// `MANIFEST.sha256`, and `.tar.gz` files.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub pattern: Option<String>,

    /// How many of the newest entries that may be deleted are always kept,
    /// however old.
    #[serde(default = "one")]
    #[schemars(with = "Templated<u32>", range(max = u32::MAX))]
    pub keep_latest: Templated<u32>,
}

fn one() -> Templated<u32> {
    Templated::Value(1)
}

impl Kind for FilePrune {
    type Params = FilePruneParams;
    const NAME: &'static str = "file.prune";
    const SUMMARY: &'static str = "Delete old snapshots or backups from a directory, keeping the newest.";

    fn params_rules(&self) -> Vec<Json> {
        vec![
            crate::path_problem::path_rule("dir"),
            runbook_engine::kit::param_rule("pattern", json!({ "pattern": "^[^/]*$" })),
        ]
    }

    fn validate(&self, params: &FilePruneParams) -> Vec<ParamProblem> {
        let mut problems: Vec<ParamProblem> = crate::path_problem::literal_problem(Some(&params.dir), "dir", "prune")
            .into_iter()
            .collect();
        if let Some(pattern) = &params.pattern
            && pattern.contains('/')
        {
            problems.push(
                ParamProblem::new(
                    "/pattern",
                    format!("`{pattern}` holds a `/`; it matches names in `dir` only"),
                )
                .with_help("put the directory in `dir`"),
            );
        }
        problems
    }

    fn describe(&self, params: &FilePruneParams) -> String {
        let dir = code(&params.dir);
        let what = match &params.pattern {
            Some(pattern) if pattern.contains(['*', '?']) => format!("entries of {dir} matching {}", code(pattern)),
            Some(prefix) => format!("entries of {dir} whose names start with {}", code(prefix)),
            None => format!("snapshots in {dir}"),
        };
        let keep = match &params.keep_latest {
            Templated::Value(0) => String::new(),
            Templated::Value(1) => ", always keeping the newest one".to_string(),
            n => format!(", always keeping the newest {n}"),
        };
        format!("delete {what} last changed more than {} ago{keep}", params.older_than)
    }

    /// The entries a prune would delete now (the plan's dry-run listing).
    fn preview(&self, params: &FilePruneParams) -> Option<String> {
        Some(match select(params) {
            Ok((doomed, kept)) if doomed.is_empty() => format!("would delete nothing ({kept} kept)"),
            Ok((doomed, kept)) => {
                let names: Vec<&str> = doomed.iter().map(|c| c.name.as_str()).collect();
                format!("would delete {} ({kept} kept)", names.join(", "))
            }
            Err(e) => format!("cannot look now: {}", e.message),
        })
    }

    /// Result: `{"deleted": ["<path>", ...], "kept": n}`, `kept` counting
    /// the entries that could have been deleted but were not (too new, or
    /// among the newest). When some entry cannot be deleted the others
    /// still are, and the step fails with `"failed": [{"path": ...,
    /// "error": ...}]` added.
    async fn run(&self, params: FilePruneParams, cx: StepContext) -> Result<Json, StepError> {
        blocking(&cx.cancel, move |cancel| prune(&params, cancel)).await
    }
}

/// An entry of the directory that may be deleted.
struct Candidate {
    modified: SystemTime,
    name: String,
    path: PathBuf,
}

/// What a prune would delete (oldest last) and how many entries it keeps.
/// Reads the directory; changes nothing.
fn select(params: &FilePruneParams) -> Result<(Vec<Candidate>, usize), StepError> {
    crate::path_problem::check_path(&params.dir, "prune")?;
    let dir = PathBuf::from(&params.dir);
    let meta = fs::metadata(&dir).map_err(|e| io_error("prune", &dir, &e))?;
    if !meta.is_dir() {
        return Err(StepError::new(format!(
            "cannot prune `{}`: it is not a directory",
            dir.display()
        )));
    }
    let mut candidates = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| io_error("read", &dir, &e))? {
        let entry = entry.map_err(|e| io_error("read", &dir, &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        let wanted = match &params.pattern {
            _ if name.starts_with('.') => false,
            Some(pattern) => matches(pattern, &name),
            None => is_snapshot(&path, &meta, &name),
        };
        if wanted {
            let modified = meta.modified().map_err(|e| io_error("read", &path, &e))?;
            candidates.push(Candidate { modified, name, path });
        }
    }
    // Newest first.
    candidates.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| b.name.cmp(&a.name)));
    let cutoff = SystemTime::now().checked_sub(params.older_than.get()?.0);
    let keep_latest = usize::try_from(*params.keep_latest.get()?).unwrap_or(usize::MAX);
    let (mut doomed, mut kept) = (Vec::new(), 0);
    for (i, candidate) in candidates.into_iter().enumerate() {
        let old = cutoff.is_some_and(|cutoff| candidate.modified < cutoff);
        if i < keep_latest || !old {
            kept += 1;
        } else {
            doomed.push(candidate);
        }
    }
    Ok((doomed, kept))
}

fn prune(params: &FilePruneParams, cancel: &CancellationToken) -> Result<Json, StepError> {
    let (doomed, kept) = select(params)?;
    let (mut deleted, mut failed) = (Vec::new(), Vec::new());
    for candidate in &doomed {
        if cancel.is_cancelled() {
            return Err(crate::cancelled().with_result(json!({"deleted": deleted, "kept": kept})));
        }
        let shown = candidate.path.display().to_string();
        match remove(&candidate.path) {
            Ok(()) => deleted.push(shown),
            Err(e) => failed.push(json!({"path": shown, "error": crate::os_error_words(&e.to_string())})),
        }
    }
    if failed.is_empty() {
        return Ok(json!({"deleted": deleted, "kept": kept}));
    }
    let first = &failed[0];
    Err(StepError::new(format!(
        "cannot delete {} of {}: `{}`: {}",
        failed.len(),
        failed.len() + deleted.len(),
        first["path"].as_str().unwrap_or_default(),
        first["error"].as_str().unwrap_or_default()
    ))
    .with_result(json!({"deleted": deleted, "kept": kept, "failed": failed})))
}

/// A folder holding a manifest, or a `.tar.gz` file.
fn is_snapshot(path: &Path, meta: &fs::Metadata, name: &str) -> bool {
    (meta.is_dir() && path.join(MANIFEST).is_file()) || (meta.is_file() && name.ends_with(".tar.gz"))
}

/// Removes a file or link, or a folder with everything in it.
fn remove(path: &Path) -> std::io::Result<()> {
    if path.symlink_metadata()?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Whether `name` matches `pattern`: with `*` (any run of characters) or
/// `?` (one character), the whole name must match; without, it is a prefix.
fn matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.starts_with(pattern);
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // The classic backtracking match: remember the last `*` and retry from
    // one character further on when the rest fails.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') => {
                p += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use std::fs::{File, FileTimes};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn good_params_pass() {
        assert_valid::<FilePruneParams>("file.prune", json!({"dir": "/backups", "older_than": "7d"}));
        assert_valid::<FilePruneParams>(
            "file.prune",
            json!({"dir": "/b", "older_than": "{{ inputs.keep }}", "pattern": "ledger-", "keep_latest": 0}),
        );
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("file.prune", json!({"dir": "/b"}), "", "missing parameter `older_than`");
        assert_rejected(
            "file.prune",
            json!({"dir": "/b", "older_than": "7"}),
            "/older_than",
            "`7` has no unit",
        );
        assert_rejected(
            "file.prune",
            json!({"dir": "/b", "older_than": "7d", "keep_latest": -1}),
            "/keep_latest",
            "-1 is below the minimum 0",
        );
        assert_rejected(
            "file.prune",
            json!({"dir": "/b", "older_than": "7d", "pattern": "/b/ledger-*"}),
            "/pattern",
            "holds a `/`",
        );
        for dir in ["/", "/backups/..", "backups/.", "/backups/"] {
            assert_rejected(
                "file.prune",
                json!({"dir": dir, "older_than": "7d"}),
                "/dir",
                &format!("refusing to prune `{dir}`: "),
            );
        }
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "file.prune",
            &[
                json!({"dir": "/backups", "older_than": "7d"}),
                json!({"dir": "/backups", "older_than": "168h", "pattern": "ledger-", "keep_latest": 3}),
                json!({"dir": "/srv/app", "older_than": "<inputs.age>", "pattern": "app.env.bak-*", "keep_latest": 0}),
                json!({"dir": "/backups"}),
                json!({}),
            ],
        ));
    }

    #[test]
    fn patterns_match_prefixes_and_globs() {
        assert!(matches("ledger-", "ledger-20261122T010203Z-a1b2"));
        assert!(!matches("ledger-", "old-ledger-1"));
        assert!(matches("*.tar.gz", "ledger-1.tar.gz"));
        assert!(!matches("*.tar.gz", "ledger-1.tar.gz.partial"));
        assert!(matches("app.env.bak-*", "app.env.bak-20261122T010203Z"));
        assert!(matches("a?c*", "abcdef"));
        assert!(matches("*b*b*", "abab"));
        assert!(!matches("*b*b*", "ab"));
        assert!(matches("*", ""));
    }

    /// Makes `name` in `dir` (a snapshot folder if it has no dot, else a
    /// file), last modified `days` ago.
    fn entry(dir: &Path, name: &str, days: u64) {
        let path = dir.join(name);
        if name.contains('.') {
            fs::write(&path, "").unwrap();
        } else {
            fs::create_dir(&path).unwrap();
            fs::write(path.join(MANIFEST), "").unwrap();
        }
        let when = SystemTime::now() - Duration::from_secs(days * 86_400);
        File::open(&path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(when))
            .unwrap();
    }

    fn left(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn deletes_old_snapshots_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        entry(d, "ledger-a", 10);
        entry(d, "ledger-b", 9);
        entry(d, "ledger-c.tar.gz", 20);
        entry(d, "notes.txt", 30);
        entry(d, ".partial-ledger-d", 30);
        let host = Arc::new(FakeHost::new());
        let result = run("file.prune", &host, json!({"dir": d, "older_than": "7d"}))
            .await
            .unwrap();
        // Everything is old, but the newest snapshot stays.
        assert_eq!(
            result,
            json!({"deleted": [d.join("ledger-a").display().to_string(), d.join("ledger-c.tar.gz").display().to_string()], "kept": 1})
        );
        assert_eq!(left(d), [".partial-ledger-d", "ledger-b", "notes.txt"]);

        entry(d, "ledger-e", 1);
        let result = run(
            "file.prune",
            &host,
            json!({"dir": d, "older_than": "7d", "keep_latest": 0}),
        )
        .await
        .unwrap();
        assert_eq!(
            result,
            json!({"deleted": [d.join("ledger-b").display().to_string()], "kept": 1})
        );
        assert_eq!(left(d), [".partial-ledger-d", "ledger-e", "notes.txt"]);
    }

    #[tokio::test]
    async fn keeps_the_newest_n_however_old() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, days) in [("s-1", 40), ("s-2", 30), ("s-3", 20), ("s-4", 10)] {
            entry(d, name, days);
        }
        let host = Arc::new(FakeHost::new());
        let result = run(
            "file.prune",
            &host,
            json!({"dir": d, "older_than": "1d", "keep_latest": 2}),
        )
        .await
        .unwrap();
        assert_eq!(result["kept"], 2);
        assert_eq!(left(d), ["s-3", "s-4"]);
    }

    #[tokio::test]
    async fn a_pattern_chooses_what_may_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        entry(d, "app.env", 30);
        entry(d, "app.env.bak-1", 30);
        entry(d, "app.env.bak-2", 20);
        entry(d, "app.env.bak-3", 2);
        entry(d, "ledger-x", 30);
        let host = Arc::new(FakeHost::new());
        let result = run(
            "file.prune",
            &host,
            json!({"dir": d, "older_than": "7d", "pattern": "app.env.bak-*", "keep_latest": 0}),
        )
        .await
        .unwrap();
        assert_eq!(result["kept"], 1);
        assert_eq!(left(d), ["app.env", "app.env.bak-3", "ledger-x"]);
        // A prefix.
        run(
            "file.prune",
            &host,
            json!({"dir": d, "older_than": "7d", "pattern": "ledger", "keep_latest": 0}),
        )
        .await
        .unwrap();
        assert_eq!(left(d), ["app.env", "app.env.bak-3"]);
    }

    #[tokio::test]
    async fn a_rendered_dir_that_names_a_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        entry(d, "ledger-a", 10);
        entry(d, "ledger-b", 9);
        fs::create_dir(d.join("sub")).unwrap();
        let host = Arc::new(FakeHost::new());
        for rendered in [format!("{}/sub/..", d.display()), format!("{}/", d.display())] {
            let error = run(
                "file.prune",
                &host,
                json!({"dir": rendered, "older_than": "1d", "keep_latest": 0}),
            )
            .await
            .unwrap_err();
            assert!(
                error.message.starts_with(&format!("refusing to prune `{rendered}`: ")),
                "{error}"
            );
        }
        assert_eq!(left(d), ["ledger-a", "ledger-b", "sub"]);
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let host = Arc::new(FakeHost::new());
        let error = run("file.prune", &host, json!({"dir": missing, "older_than": "7d"}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!("cannot prune `{}`: no such file or directory", missing.display())
        );
    }
}
