//! Tests of the `file.snapshot` step kind.

use super::*;
use crate::file_work::testing::live;
use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
use serde_json::json;
use std::sync::Arc;

#[test]
fn good_params_pass() {
    assert_valid::<FileSnapshotParams>(
        "file.snapshot",
        json!({"paths": ["/srv/ledger/data", "/srv/ledger/config.yaml"], "into": "/backups"}),
    );
    assert_valid::<FileSnapshotParams>(
        "file.snapshot",
        json!({"paths": ["{{ inputs.a }}", "{{ inputs.b }}"], "into": "/b", "name": "ledger", "format": "tar.gz"}),
    );
}

#[test]
fn bad_params_are_rejected() {
    assert_rejected(
        "file.snapshot",
        json!({"paths": ["/a"]}),
        "",
        "missing parameter `into`",
    );
    assert_rejected(
        "file.snapshot",
        json!({"paths": [], "into": "/b"}),
        "/paths",
        "needs at least 1 item",
    );
    let problem = assert_rejected(
        "file.snapshot",
        json!({"paths": ["/a/data", "/b/data"], "into": "/b"}),
        "/paths/1",
        "`/a/data` and `/b/data` would both be stored as `data`",
    );
    assert_eq!(
        problem.help.as_deref(),
        Some("take a snapshot of each in a step of its own")
    );
    assert_rejected(
        "file.snapshot",
        json!({"paths": ["/"], "into": "/b"}),
        "/paths/0",
        "refusing to snapshot `/`: it is the root of the filesystem",
    );
    assert_rejected(
        "file.snapshot",
        json!({"paths": ["/srv/data/.."], "into": "/b"}),
        "/paths/0",
        "refusing to snapshot `/srv/data/..`: its last part is `..`",
    );
    assert_rejected(
        "file.snapshot",
        json!({"paths": ["/x/MANIFEST.sha256"], "into": "/b"}),
        "/paths/0",
        "the snapshot's manifest has that name",
    );
    assert_rejected(
        "file.snapshot",
        json!({"paths": ["/a"], "into": "/b", "name": "a/b"}),
        "/name",
        "`a/b` cannot start a snapshot's name: it holds a `/`",
    );
    assert_rejected(
        "file.snapshot",
        json!({"paths": ["/a"], "into": "/b", "format": "zip"}),
        "/format",
        "must be one of `dir` or `tar.gz`",
    );
}

#[test]
fn describe() {
    insta::assert_snapshot!(describe_all(
        "file.snapshot",
        &[
            json!({"paths": ["/srv/ledger/data", "/srv/ledger/config.yaml"], "into": "/backups/", "name": "ledger"}),
            json!({"paths": ["/srv/a", "/srv/b", "/srv/c", "/srv/d", "/srv/e"], "into": "/backups", "format": "tar.gz"}),
            json!({"paths": "<inputs.paths>", "into": "<vars.backup_dir>"}),
            json!({}),
        ],
    ));
}

/// The manifest of a snapshot folder, read back.
fn manifest_of(folder: &Path) -> String {
    fs::read_to_string(folder.join(MANIFEST)).unwrap()
}

#[tokio::test]
async fn copies_into_a_new_folder_with_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = live(dir.path());
    fs::set_permissions(&config, Permissions::from_mode(0o600)).unwrap();
    let into = dir.path().join("backups");
    let host = Arc::new(FakeHost::new());
    let result = run(
        "file.snapshot",
        &host,
        json!({"paths": [data, config], "into": into, "name": "ledger"}),
    )
    .await
    .unwrap();
    let path = PathBuf::from(result["path"].as_str().unwrap());
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(path.parent(), Some(into.as_path()));
    // ledger-20261122T010203Z-a1b2
    assert!(
        name.starts_with("ledger-") && name.len() == "ledger-20261122T010203Z-a1b2".len(),
        "{name}"
    );
    assert_eq!(result["manifest"], path.join(MANIFEST).display().to_string());
    assert_eq!((&result["files"], &result["bytes"]), (&json!(3), &json!(9 + 9 + 13)));
    let manifest = manifest_of(&path);
    assert_eq!(result["digest"], crate::file_work::sha256(manifest.as_bytes()));
    let sha = |text: &str| crate::file_work::sha256(text.as_bytes());
    assert_eq!(
        manifest,
        format!(
            "{}  config.yaml\n{}  data/blocks/0001\n{}  data/ledger.db\n",
            sha("mode: normal\n"),
            sha("block one"),
            sha("ledger v1")
        )
    );
    assert_eq!(fs::read_to_string(path.join("data/blocks/0001")).unwrap(), "block one");
    let mode = fs::metadata(path.join("config.yaml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Nothing else is left in `into`: no partial folder.
    let names: Vec<_> = fs::read_dir(&into).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [path.file_name().unwrap()]);
}

#[tokio::test]
async fn writes_a_tar_gz_of_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = live(dir.path());
    let into = dir.path().join("backups");
    let host = Arc::new(FakeHost::new());
    let result = run(
        "file.snapshot",
        &host,
        json!({"paths": [data, config], "into": into, "format": "tar.gz"}),
    )
    .await
    .unwrap();
    let path = PathBuf::from(result["path"].as_str().unwrap());
    let file_name = path.file_name().unwrap().to_str().unwrap();
    let folder = file_name.strip_suffix(".tar.gz").unwrap();
    assert!(folder.starts_with("snapshot-"), "{folder}");
    assert_eq!(result["manifest"], format!("{folder}/{MANIFEST}"));
    assert_eq!(result["files"], 3);
    // `tar` reads it: one folder holding the paths and the manifest.
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(File::open(&path).unwrap()));
    let mut members = Vec::new();
    let mut manifest = String::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let member = entry.path().unwrap().display().to_string();
        if member.ends_with(MANIFEST) {
            entry.read_to_string(&mut manifest).unwrap();
        }
        members.push(member);
    }
    assert_eq!(
        members,
        [
            format!("{folder}/"),
            format!("{folder}/data/"),
            format!("{folder}/data/blocks/"),
            format!("{folder}/data/blocks/0001"),
            format!("{folder}/data/ledger.db"),
            format!("{folder}/config.yaml"),
            format!("{folder}/{MANIFEST}"),
        ]
    );
    assert_eq!(result["digest"], crate::file_work::sha256(manifest.as_bytes()));
    assert_eq!(manifest.lines().count(), 3);
}

#[tokio::test]
async fn a_missing_path_is_named_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = live(dir.path());
    let missing = dir.path().join("live/nope.db");
    let into = dir.path().join("backups");
    let host = Arc::new(FakeHost::new());
    let error = run("file.snapshot", &host, json!({"paths": [data, missing], "into": into}))
        .await
        .unwrap_err();
    assert_eq!(
        error.message,
        format!("cannot snapshot `{}`: no such file or directory", missing.display())
    );
    assert!(!into.exists());
}

#[tokio::test]
async fn refuses_what_it_cannot_copy_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = live(dir.path());
    let _socket = std::os::unix::net::UnixListener::bind(data.join("socket")).unwrap();
    let into = dir.path().join("backups");
    let host = Arc::new(FakeHost::new());
    for format in ["dir", "tar.gz"] {
        let error = run(
            "file.snapshot",
            &host,
            json!({"paths": [&data], "into": into, "format": format}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "cannot snapshot `{}`: it is a socket; a snapshot holds files, directories and symbolic links",
                data.join("socket").display()
            )
        );
        assert_eq!(fs::read_dir(&into).unwrap().count(), 0, "a partial snapshot is left");
    }
}

#[tokio::test]
async fn stores_links_as_links_and_never_reads_through_them() {
    for format in ["dir", "tar.gz"] {
        let dir = tempfile::tempdir().unwrap();
        let (data, _) = live(dir.path());
        let secret = dir.path().join("secret.key");
        fs::write(&secret, "SECRET-CONTENT").unwrap();
        std::os::unix::fs::symlink(&secret, data.join("key")).unwrap();
        std::os::unix::fs::symlink("blocks/0001", data.join("latest")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), data.join("dangling")).unwrap();
        // A path that is itself a link is kept as a link too.
        let current = dir.path().join("live/current");
        std::os::unix::fs::symlink("data", &current).unwrap();
        let into = dir.path().join("backups");
        let host = Arc::new(FakeHost::new());
        let result = run(
            "file.snapshot",
            &host,
            json!({"paths": [&data, &current], "into": into, "format": format}),
        )
        .await
        .unwrap();
        assert_eq!((&result["files"], &result["links"]), (&json!(2), &json!(4)), "{format}");
        let path = PathBuf::from(result["path"].as_str().unwrap());
        // No byte of the secret is in the snapshot, compressed or not.
        let mut everything = Vec::new();
        let mut stack = vec![path.clone()];
        while let Some(p) = stack.pop() {
            let meta = p.symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if meta.is_file() {
                everything.extend(fs::read(&p).unwrap());
                if format == "tar.gz" {
                    let mut tar = Vec::new();
                    flate2::read::GzDecoder::new(File::open(&p).unwrap())
                        .read_to_end(&mut tar)
                        .unwrap();
                    everything.extend(tar);
                }
            }
        }
        let everything = String::from_utf8_lossy(&everything);
        assert!(!everything.contains("SECRET-CONTENT"), "{format}");
        let manifest = if format == "dir" {
            manifest_of(&path)
        } else {
            everything.to_string()
        };
        let sha = |text: &str| crate::file_work::sha256(text.as_bytes());
        assert!(
            manifest.contains(&format!("#symlink {}  data/key\n", sha(&secret.display().to_string()))),
            "{manifest}"
        );
        assert!(
            manifest.contains(&format!("#symlink {}  current\n", sha("data"))),
            "{manifest}"
        );
        if format == "dir" {
            assert_eq!(fs::read_link(path.join("data/key")).unwrap(), secret);
            assert_eq!(fs::read_link(path.join("current")).unwrap(), Path::new("data"));
        }
        // It checks out against its manifest.
        let verified = run("file.verify", &host, json!({"snapshot": path})).await.unwrap();
        assert_eq!(verified["ok"], true, "{format}");
    }
}

#[tokio::test]
async fn refuses_to_keep_snapshots_inside_what_it_copies() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = live(dir.path());
    let host = Arc::new(FakeHost::new());
    let into = data.join("backups/new");
    let error = run("file.snapshot", &host, json!({"paths": [&data], "into": into}))
        .await
        .unwrap_err();
    assert_eq!(
        error.message,
        format!(
            "cannot keep snapshots in `{}`: it is inside `{}`, which the snapshot copies",
            into.display(),
            data.display()
        )
    );
    assert!(!data.join("backups").exists());
}

#[tokio::test]
async fn two_snapshots_in_one_second_differ() {
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = live(dir.path());
    let into = dir.path().join("backups");
    let host = Arc::new(FakeHost::new());
    let params = json!({"paths": [config], "into": into});
    let first = run("file.snapshot", &host, params.clone()).await.unwrap();
    let second = run("file.snapshot", &host, params).await.unwrap();
    assert_ne!(first["path"], second["path"]);
    assert_eq!(first["digest"], second["digest"]);
}

#[tokio::test]
async fn a_cancelled_snapshot_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = live(dir.path());
    let into = dir.path().join("backups");
    let host = Arc::new(FakeHost::new());
    let cx = host.step_context(json!({"paths": [data], "into": into}));
    cx.cancel.cancel();
    let error = crate::tests::run_with("file.snapshot", cx).await.unwrap_err();
    assert_eq!(error.message, "cancelled");
    assert_eq!(fs::read_dir(&into).unwrap().count(), 0);
}
