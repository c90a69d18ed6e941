//! The `file.verify` step kind: checks a snapshot's files (or a live
//! directory) against the snapshot's `MANIFEST.sha256`, and names every
//! file that is missing, extra or changed. `file.restore` runs the same
//! check before it touches anything. A symbolic link is checked by where it
//! points, never read through: one that points elsewhere, or that became a
//! file, is changed.

use runbook_engine::kit::{Kind, Traits};
use runbook_engine::step::{StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

use crate::file_work::{blocking, io_error};
use crate::manifest::{Diff, Manifest};
use crate::stored_snapshot::{Contents, StoredSnapshot};
use crate::tree::digest_tree;
use crate::words::code;

/// Checks files against a snapshot's SHA-256 manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileVerify;

/// Parameters of a `file.verify` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileVerifyParams {
    /// The snapshot: a folder made by `file.snapshot` (it holds
    /// `MANIFEST.sha256`), or its `.tar.gz`.
    #[schemars(length(min = 1))]
    pub snapshot: String,

    /// A directory to check against the manifest instead of the snapshot's
    /// own files, such as the one the snapshot was taken from: its `data/…`
    /// is compared with the manifest's `data/…`. Only the names the
    /// snapshot holds are looked at.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub against: Option<String>,
}

impl Kind for FileVerify {
    type Params = FileVerifyParams;
    const NAME: &'static str = "file.verify";
    const SUMMARY: &'static str =
        "Check a snapshot's files, or a live directory, against the snapshot's SHA-256 manifest.";
    const TRAITS: Traits = Traits {
        read_only: true,
        ..Traits::NONE
    };

    fn describe(&self, params: &FileVerifyParams) -> String {
        let snapshot = code(&params.snapshot);
        match &params.against {
            Some(against) => format!(
                "check {} against the SHA-256 manifest of snapshot {snapshot}",
                code(against)
            ),
            None => format!("check the files of snapshot {snapshot} against its SHA-256 manifest"),
        }
    }

    /// Result: `{"ok": true, "files": n, "digest": "<SHA-256 of the
    /// manifest>"}`. When anything differs the step fails with `{"ok":
    /// false, "missing": [...], "extra": [...], "changed": [...]}`, paths
    /// relative to the snapshot.
    async fn run(&self, params: FileVerifyParams, cx: StepContext) -> Result<Json, StepError> {
        blocking(&cx.cancel, move |cancel| {
            let snapshot = StoredSnapshot::open(Path::new(&params.snapshot))?;
            let against = params.against.as_deref().map(PathBuf::from);
            let (contents, diff) = check(&snapshot, against.as_deref(), cancel)?;
            if !diff.is_empty() {
                return Err(mismatch(&snapshot, against.as_deref(), &diff));
            }
            Ok(json!({"ok": true, "files": contents.manifest.len(), "digest": contents.digest}))
        })
        .await
    }
}

/// Reads `snapshot` and compares its manifest with the snapshot's own
/// files, or with the files under `against`.
pub(crate) fn check(
    snapshot: &StoredSnapshot,
    against: Option<&Path>,
    cancel: &CancellationToken,
) -> Result<(Contents, Diff), StepError> {
    let Some(against) = against else {
        let contents = snapshot.read(true, cancel)?;
        let diff = contents
            .manifest
            .compare(contents.files.as_ref().expect("files were digested"));
        return Ok((contents, diff));
    };
    let meta = std::fs::metadata(against).map_err(|e| io_error("check against", against, &e))?;
    if !meta.is_dir() {
        return Err(StepError::new(format!(
            "cannot check against `{}`: it is not a directory",
            against.display()
        )));
    }
    let contents = snapshot.read(false, cancel)?;
    let mut live = Manifest::default();
    let mut names = contents.top_level.clone();
    names.extend(contents.manifest.top_level());
    for name in &names {
        let path = against.join(name);
        if path.symlink_metadata().is_ok() {
            digest_tree(&path, name, cancel, &mut live)?;
        }
    }
    let diff = contents.manifest.compare(&live);
    Ok((contents, diff))
}

/// The error of a check that found differences.
pub(crate) fn mismatch(snapshot: &StoredSnapshot, against: Option<&Path>, diff: &Diff) -> StepError {
    let snapshot = snapshot.path().display();
    let message = match against {
        Some(against) => format!(
            "`{}` does not match the manifest of `{snapshot}`: {}",
            against.display(),
            diff.summary()
        ),
        None => format!(
            "the snapshot `{snapshot}` does not match its manifest: {}",
            diff.summary()
        ),
    };
    StepError::new(message).with_result(diff.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_work::testing::{live, snapshot};
    use crate::manifest::MANIFEST;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use flate2::Compression;
    use flate2::read::GzDecoder;
    use flate2::write::GzEncoder;
    use std::fs::{self, File};
    use std::io::Read;
    use std::sync::Arc;

    #[test]
    fn good_params_pass() {
        assert_valid::<FileVerifyParams>("file.verify", json!({"snapshot": "/backups/s"}));
        assert_valid::<FileVerifyParams>(
            "file.verify",
            json!({"snapshot": "{{ steps.snap.outputs.path }}", "against": "/srv/ledger"}),
        );
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("file.verify", json!({}), "", "missing parameter `snapshot`");
        assert_rejected(
            "file.verify",
            json!({"snapshot": "/s", "agaisnt": "/x"}),
            "/agaisnt",
            "unknown parameter `agaisnt`",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "file.verify",
            &[
                json!({"snapshot": "/backups/ledger-20261122T010203Z-a1b2"}),
                json!({"snapshot": "<steps.snap.outputs.path>", "against": "/srv/ledger"}),
                json!({}),
            ],
        ));
    }

    #[tokio::test]
    async fn a_fresh_snapshot_verifies_in_both_formats() {
        for format in ["dir", "tar.gz"] {
            let dir = tempfile::tempdir().unwrap();
            live(dir.path());
            let taken = snapshot(dir.path(), format).await;
            let host = Arc::new(FakeHost::new());
            let result = run("file.verify", &host, json!({"snapshot": taken["path"]}))
                .await
                .unwrap();
            assert_eq!(
                result,
                json!({"ok": true, "files": 3, "digest": taken["digest"]}),
                "{format}"
            );
            // The live tree it came from matches too.
            let result = run(
                "file.verify",
                &host,
                json!({"snapshot": taken["path"], "against": dir.path().join("live")}),
            )
            .await
            .unwrap();
            assert_eq!(result["ok"], true, "{format}");
        }
    }

    #[tokio::test]
    async fn lists_missing_extra_and_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        live(dir.path());
        let taken = snapshot(dir.path(), "dir").await;
        let path = PathBuf::from(taken["path"].as_str().unwrap());
        fs::remove_file(path.join("data/blocks/0001")).unwrap();
        fs::write(path.join("data/ledger.db"), "tampered").unwrap();
        fs::write(path.join("data/new"), "").unwrap();
        fs::write(path.join("stray"), "").unwrap();
        let host = Arc::new(FakeHost::new());
        let error = run("file.verify", &host, json!({"snapshot": path})).await.unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "the snapshot `{}` does not match its manifest: 1 missing (`data/blocks/0001`), 1 changed (`data/ledger.db`), 2 extra (`data/new` and `stray`)",
                path.display()
            )
        );
        assert_eq!(
            error.result,
            Some(json!({
                "ok": false,
                "missing": ["data/blocks/0001"],
                "extra": ["data/new", "stray"],
                "changed": ["data/ledger.db"],
            }))
        );
    }

    #[tokio::test]
    async fn checks_a_live_directory_against_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let (data, config) = live(dir.path());
        let taken = snapshot(dir.path(), "tar.gz").await;
        fs::write(data.join("ledger.db"), "ledger v2").unwrap();
        fs::remove_file(&config).unwrap();
        fs::write(data.join("blocks/0002"), "block two").unwrap();
        // Beside what the snapshot holds: not looked at.
        fs::write(dir.path().join("live/unrelated.log"), "").unwrap();
        let host = Arc::new(FakeHost::new());
        let against = dir.path().join("live");
        let error = run(
            "file.verify",
            &host,
            json!({"snapshot": taken["path"], "against": against}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "`{}` does not match the manifest of `{}`: 1 missing (`config.yaml`), 1 changed (`data/ledger.db`), 1 extra (`data/blocks/0002`)",
                against.display(),
                taken["path"].as_str().unwrap()
            )
        );
    }

    #[tokio::test]
    async fn what_is_not_a_snapshot_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(FakeHost::new());
        let missing = dir.path().join("nope");
        let error = run("file.verify", &host, json!({"snapshot": missing}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "cannot open the snapshot `{}`: no such file or directory",
                missing.display()
            )
        );
        let error = run("file.verify", &host, json!({"snapshot": dir.path()}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "`{}` is not a snapshot: it has no MANIFEST.sha256",
                dir.path().display()
            )
        );
        fs::write(dir.path().join(MANIFEST), "garbage\n").unwrap();
        let error = run("file.verify", &host, json!({"snapshot": dir.path()}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "the manifest of `{}` does not read: line 1: expected `<sha256>  <path>`",
                dir.path().display()
            )
        );
        let text = dir.path().join("notes.txt");
        fs::write(&text, "not an archive").unwrap();
        let error = run("file.verify", &host, json!({"snapshot": text})).await.unwrap_err();
        assert!(
            error
                .message
                .starts_with(&format!("cannot read the archive `{}`: ", text.display())),
            "{error}"
        );
    }

    /// Rewrites a snapshot archive, changing each member with `edit`.
    fn rewrite(archive: &Path, edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) {
        let mut members = Vec::new();
        let mut reader = tar::Archive::new(GzDecoder::new(File::open(archive).unwrap()));
        for entry in reader.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let name = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            members.push((header, name, data));
        }
        let mut builder = tar::Builder::new(GzEncoder::new(File::create(archive).unwrap(), Compression::default()));
        for (mut header, name, data) in members {
            if let Some(data) = edit(&name, data) {
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, &name, data.as_slice()).unwrap();
            }
        }
        builder.into_inner().unwrap().finish().unwrap();
    }

    #[tokio::test]
    async fn a_tampered_archive_fails() {
        let dir = tempfile::tempdir().unwrap();
        live(dir.path());
        let taken = snapshot(dir.path(), "tar.gz").await;
        let archive = PathBuf::from(taken["path"].as_str().unwrap());
        rewrite(&archive, |name, data| {
            if name.ends_with("config.yaml") {
                Some(b"mode: evil\n".to_vec())
            } else if name.ends_with("0001") {
                None
            } else {
                Some(data)
            }
        });
        let host = Arc::new(FakeHost::new());
        let error = run("file.verify", &host, json!({"snapshot": archive}))
            .await
            .unwrap_err();
        assert_eq!(
            error.result,
            Some(json!({"ok": false, "missing": ["data/blocks/0001"], "extra": [], "changed": ["config.yaml"]}))
        );
        // Without its manifest it is no snapshot.
        rewrite(&archive, |name, data| (!name.ends_with(MANIFEST)).then_some(data));
        let error = run("file.verify", &host, json!({"snapshot": archive}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!("`{}` is not a snapshot: it has no MANIFEST.sha256", archive.display())
        );
    }
}
