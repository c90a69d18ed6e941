//! `RestorePlan`: what a `file.restore` attempt is about to do to the
//! filesystem, journaled (as a checkpoint) before it does it, and the
//! recovery that puts the world back from it when the run died halfway.
//!
//! A restore changes the world in two renames: the live `to` is moved
//! `aside`, then the incoming copy is moved to `to`. Before the incoming
//! copy is made, the attempt journals a [`RestorePlan::Copy`], so that a
//! copy cut short can be deleted; before the first rename it journals a
//! [`RestorePlan::Swap`] naming every path and the identity (device and
//! inode) of what is at `to` and of the incoming copy. From that and what
//! is on disk now, [`RestorePlan::recover`] can tell how far the attempt
//! got, and undo it: the original goes back to `to`, and the copy is
//! deleted (or, when it was a `from` that was moved, moved back). It undoes
//! even a swap that had finished, since the step was not yet journaled as
//! done: the step is then simply not done and may run again.
//!
//! Identities rather than names are what make this safe: recovery never
//! deletes or moves a thing it cannot prove is the one the attempt made or
//! moved, and says so when the disk matches no state the attempt could
//! have left.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::file_work::{parent_of, remove_any};

/// Names this kind's checkpoints, so that another kind asked to recover
/// (the engine asks the step's kind when a rollback of it was cut short)
/// can tell a restore's plan and hand it on.
pub(crate) const OP: &str = "file.restore";

/// Which file or directory a path held: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// What `path` holds now (a link itself, not what it points to).
    pub(crate) fn of(path: &Path) -> Option<Self> {
        path.symlink_metadata().ok().map(|meta| Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// What an attempt is about to do, in the order it does it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
pub(crate) enum RestorePlan {
    /// A copy of what is restored is about to be written at `copy`, a
    /// hidden sibling of `to` that did not exist. Nothing else changes.
    Copy { to: PathBuf, copy: PathBuf },
    /// `to` is about to be moved to `aside` (when there is one), and
    /// `incoming` to `to`.
    Swap {
        to: PathBuf,
        /// What `to` held; `None` when there was nothing there.
        original: Option<FileId>,
        /// Where the original is moved; `None` when there was nothing.
        aside: Option<PathBuf>,
        /// The copy (or the `from`) to put at `to`.
        incoming: PathBuf,
        incoming_id: FileId,
        /// Whether `incoming` is a copy made for the purpose (deleted when
        /// undone), rather than a `from` that is moved (moved back).
        copy: bool,
    },
}

impl RestorePlan {
    /// The checkpoint to journal.
    pub(crate) fn to_json(&self) -> Json {
        let mut state = serde_json::to_value(self).unwrap_or(Json::Null);
        if let Some(map) = state.as_object_mut() {
            map.insert("op".into(), json!(OP));
        }
        state
    }

    /// The plan a checkpoint holds, if it is a restore's.
    pub(crate) fn from_json(state: &Json) -> Result<Option<Self>, String> {
        if state.get("op").and_then(Json::as_str) != Some(OP) {
            return Ok(None);
        }
        serde_json::from_value(state.clone())
            .map(Some)
            .map_err(|e| format!("its journaled plan does not read ({e}); check the paths it names by hand"))
    }

    /// Puts the world back as it was before the attempt, from what is on
    /// disk now. `Ok(Some(words))` says what was done; `Ok(None)` that the
    /// attempt had changed nothing; `Err` that the disk matches no state the
    /// attempt could have left, and a person must look.
    pub(crate) fn recover(&self) -> Result<Option<String>, String> {
        match self {
            Self::Copy { copy, .. } => {
                Ok(delete_copy(copy, None).map(|done| format!("{done}; nothing else had changed")))
            }
            Self::Swap {
                to,
                original,
                aside,
                incoming,
                incoming_id,
                copy,
            } => {
                let at_to = FileId::of(to);
                let original_aside = match (original, aside) {
                    (Some(original), Some(aside)) => FileId::of(aside) == Some(*original),
                    _ => false,
                };
                let shown = |path: &Path| format!("`{}`", path.display());
                let cannot_tell = |what: String| {
                    let aside = aside
                        .as_deref()
                        .map(|a| format!(", `aside` {}", shown(a)))
                        .unwrap_or_default();
                    format!(
                        "{what}; look at `to` {}{aside} and the copy {} and put the state you want at `to` by hand",
                        shown(to),
                        shown(incoming)
                    )
                };
                let mut done = Vec::new();
                if at_to == Some(*incoming_id) {
                    // The swap was done: take the copy off `to`, then put the original back.
                    if original.is_some() && !original_aside {
                        return Err(cannot_tell(
                            "the restored copy is at `to`, but the original is not where it was moved aside".into(),
                        ));
                    }
                    rename(to, incoming)?;
                    done.push(if *copy {
                        format!("took the restored copy off {}", shown(to))
                    } else {
                        format!("moved {} back to {}", shown(to), shown(incoming))
                    });
                    sync(&[to, incoming])?;
                }
                match (original, FileId::of(to)) {
                    (Some(_), None) if original_aside => {
                        let aside = aside.as_deref().unwrap_or(to);
                        rename(aside, to)?;
                        sync(&[to, aside])?;
                        done.push(format!("put the original back at {} from {}", shown(to), shown(aside)));
                    }
                    (Some(_), None) => {
                        return Err(cannot_tell(
                            "`to` is missing and the original is not where it was to be moved aside".into(),
                        ));
                    }
                    (Some(original), Some(now)) if now != *original => {
                        return Err(cannot_tell(
                            "`to` holds neither what was there before the restore nor the restored copy".into(),
                        ));
                    }
                    // The original is at `to`, or nothing was and nothing is
                    // of ours (something else made `to` meanwhile: left alone).
                    _ => {}
                }
                if *copy {
                    done.extend(delete_copy(incoming, Some(*incoming_id)));
                }
                Ok((!done.is_empty()).then(|| done.join(", ")))
            }
        }
    }
}

/// Deletes the copy an attempt was making, if it is there (and, when its
/// identity is known, is that copy); says so in words.
fn delete_copy(copy: &Path, id: Option<FileId>) -> Option<String> {
    let now = FileId::of(copy)?;
    if id.is_some_and(|id| id != now) {
        return None;
    }
    remove_any(copy);
    let _ = sync(&[copy]);
    Some(format!("deleted the copy `{}` it was putting in place", copy.display()))
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    fs::rename(from, to).map_err(|e| {
        format!(
            "cannot move `{}` to `{}`: {}",
            from.display(),
            to.display(),
            crate::os_error_words(&e.to_string())
        )
    })
}

/// Makes the renames in the folders of `paths` durable.
fn sync(paths: &[&Path]) -> Result<(), String> {
    let mut dirs: Vec<&Path> = paths.iter().map(|p| parent_of(p)).collect();
    dirs.dedup();
    for dir in dirs {
        crate::file_work::sync_dir(dir).map_err(|e| e.message)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dir/to` holding `original`, and `dir/.restore-to-1` holding
    /// `restored`, with the plan to swap them.
    fn setup(dir: &Path, copy: bool) -> RestorePlan {
        let to = dir.join("to");
        let incoming = dir.join(".restore-to-1");
        fs::create_dir(&to).unwrap();
        fs::write(to.join("x"), "original").unwrap();
        fs::create_dir(&incoming).unwrap();
        fs::write(incoming.join("x"), "restored").unwrap();
        RestorePlan::Swap {
            original: FileId::of(&to),
            aside: Some(dir.join("to.before-restore")),
            incoming_id: FileId::of(&incoming).unwrap(),
            to,
            incoming,
            copy,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn paths(plan: &RestorePlan) -> (PathBuf, PathBuf, PathBuf) {
        let RestorePlan::Swap {
            to, aside, incoming, ..
        } = plan
        else {
            unreachable!()
        };
        (to.clone(), aside.clone().unwrap(), incoming.clone())
    }

    #[test]
    fn reads_back_what_it_journals() {
        let dir = tempfile::tempdir().unwrap();
        let plan = setup(dir.path(), true);
        let state = plan.to_json();
        assert_eq!(state["op"], OP);
        assert_eq!(state["phase"], "swap");
        assert_eq!(RestorePlan::from_json(&state), Ok(Some(plan)));
        assert_eq!(RestorePlan::from_json(&json!({"pgid": 5})), Ok(None));
        assert!(RestorePlan::from_json(&json!({"op": OP, "phase": "later"})).is_err());
    }

    #[test]
    fn puts_the_original_back_from_every_point_of_the_swap() {
        for copy in [true, false] {
            // Before the first rename, between the two, after both.
            for renames in 0..=2 {
                let dir = tempfile::tempdir().unwrap();
                let plan = setup(dir.path(), copy);
                let (to, aside, incoming) = paths(&plan);
                if renames >= 1 {
                    fs::rename(&to, &aside).unwrap();
                }
                if renames >= 2 {
                    fs::rename(&incoming, &to).unwrap();
                }
                let done = plan.recover().unwrap();
                assert_eq!(fs::read_to_string(to.join("x")).unwrap(), "original");
                let left = names(dir.path());
                if copy {
                    assert_eq!(left, ["to"], "copy, {renames} renames");
                    assert!(done.is_some_and(|d| d.contains("deleted the copy")));
                } else {
                    // A `from` that was moved is moved back.
                    assert_eq!(left, [".restore-to-1", "to"], "from, {renames} renames");
                    assert_eq!(fs::read_to_string(incoming.join("x")).unwrap(), "restored");
                    assert_eq!(done.is_some(), renames > 0, "{done:?}");
                }
                // Recovering again finds nothing to do.
                assert_eq!(plan.recover(), Ok(None), "copy {copy}, {renames} renames");
            }
        }
    }

    #[test]
    fn with_nothing_there_before_the_restored_copy_is_taken_away() {
        let dir = tempfile::tempdir().unwrap();
        let incoming = dir.path().join(".restore-to-1");
        fs::write(&incoming, "restored").unwrap();
        let to = dir.path().join("to");
        let plan = RestorePlan::Swap {
            to: to.clone(),
            original: None,
            aside: None,
            incoming_id: FileId::of(&incoming).unwrap(),
            incoming: incoming.clone(),
            copy: true,
        };
        // Made now, so that it cannot get the copy's inode once that is deleted.
        let other = dir.path().join("other");
        fs::write(&other, "someone else's").unwrap();
        fs::rename(&incoming, &to).unwrap();
        assert!(plan.recover().unwrap().is_some());
        assert_eq!(names(dir.path()), ["other"]);
        // Something else made `to` since: it is left alone.
        fs::rename(&other, &to).unwrap();
        assert_eq!(plan.recover(), Ok(None));
        assert_eq!(fs::read_to_string(&to).unwrap(), "someone else's");
    }

    #[test]
    fn a_state_it_cannot_have_left_stops_for_a_person() {
        let dir = tempfile::tempdir().unwrap();
        let plan = setup(dir.path(), true);
        let (to, aside, _) = paths(&plan);
        // The original was moved aside, and someone put something else at `to`.
        fs::rename(&to, &aside).unwrap();
        fs::create_dir(&to).unwrap();
        let error = plan.recover().unwrap_err();
        assert!(
            error.starts_with(
                "`to` holds neither what was there before the restore nor the restored copy; look at `to`"
            ),
            "{error}"
        );
        assert!(aside.exists(), "nothing was touched");
        // The original is gone from both places.
        fs::remove_dir(&to).unwrap();
        fs::remove_dir_all(&aside).unwrap();
        let error = plan.recover().unwrap_err();
        assert!(error.starts_with("`to` is missing"), "{error}");
    }

    #[test]
    fn a_copy_cut_short_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(".restore-to-1");
        fs::create_dir_all(copy.join("half")).unwrap();
        let plan = RestorePlan::Copy {
            to: dir.path().join("to"),
            copy: copy.clone(),
        };
        assert!(plan.recover().unwrap().is_some());
        assert!(!copy.exists());
        assert_eq!(plan.recover(), Ok(None));
    }
}
