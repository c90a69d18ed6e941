//! Tests of the `file.restore` step kind.

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
        "refusing to restore to `/`: it is the root of the filesystem",
    );
    assert_rejected(
        "file.restore",
        json!({"snapshot": "/s", "to": "/srv/data/"}),
        "/to",
        "refusing to restore to `/srv/data/`: it ends in `/`",
    );
    assert_rejected(
        "file.restore",
        json!({"from": "/srv/..", "to": "/srv/data"}),
        "/from",
        "refusing to restore from `/srv/..`: its last part is `..`",
    );
    assert_rejected(
        "file.restore",
        json!({"snapshot": "/s", "to": "/srv/data", "aside": "/srv/."}),
        "/aside",
        "refusing to move the current one aside to `/srv/.`: its last part is `.`",
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
async fn long_names_and_a_trailing_slash_is_refused() {
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
    // `{{ inputs.dir }}/{{ inputs.name }}` with an empty name: it names
    // the folder above, and is refused before anything is touched.
    let to = format!("{}/", data.display());
    let untouched = listing(dir.path());
    let error = run("file.restore", &host, json!({"snapshot": taken["path"], "to": to}))
        .await
        .unwrap_err();
    assert!(
        error
            .message
            .starts_with(&format!("refusing to restore to `{to}`: it ends in `/`")),
        "{error}"
    );
    assert_eq!(listing(dir.path()), untouched);
    assert!(host.checkpoint_states().is_empty());
    let result = run("file.restore", &host, json!({"snapshot": taken["path"], "to": data}))
        .await
        .unwrap();
    assert_eq!(listing(&data), before);
    assert_eq!(result["files"], 3);
    let aside = PathBuf::from(result["aside"].as_str().unwrap());
    assert_eq!(aside.parent(), data.parent());
}

#[tokio::test]
async fn journals_its_plan_before_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = live(dir.path());
    let taken = snapshot(dir.path(), "dir").await;
    let host = Arc::new(FakeHost::new());
    let result = run("file.restore", &host, json!({"snapshot": taken["path"], "to": data}))
        .await
        .unwrap();
    let checkpoints = host.checkpoint_states();
    assert_eq!(checkpoints.len(), 2, "{checkpoints:#?}");
    assert_eq!(checkpoints[0]["phase"], "copy");
    let copy = checkpoints[0]["copy"].as_str().unwrap();
    assert!(
        copy.starts_with(&dir.path().join("live/.restore-data-").display().to_string()),
        "{copy}"
    );
    let swap = &checkpoints[1];
    assert_eq!(
        (
            &swap["op"],
            &swap["phase"],
            &swap["to"],
            &swap["aside"],
            &swap["incoming"],
            &swap["copy"]
        ),
        (
            &json!("file.restore"),
            &json!("swap"),
            &json!(data),
            &result["aside"],
            &json!(copy),
            &json!(true)
        )
    );
    assert!(swap["original"]["ino"].is_u64() && swap["incoming_id"]["ino"].is_u64());

    // Recovering from it after the attempt finished puts the
    // before-state back: the restore is simply not done.
    fs::write(
        PathBuf::from(result["aside"].as_str().unwrap()).join("ledger.db"),
        "the original",
    )
    .unwrap();
    let done = FileRestore.recover(swap).await.unwrap();
    assert!(done.is_some(), "{done:?}");
    assert_eq!(fs::read_to_string(data.join("ledger.db")).unwrap(), "the original");
    let mut names: Vec<_> = fs::read_dir(data.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["config.yaml", "data"]);
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = live(dir.path());
    let taken = snapshot(dir.path(), "dir").await;
    fs::write(data.join("ledger.db"), "live").unwrap();
    let before = listing(dir.path().join("live").as_path());
    let host = Arc::new(FakeHost::new().with_checkpoint_error("no space left on device"));
    let error = run("file.restore", &host, json!({"snapshot": taken["path"], "to": data}))
        .await
        .unwrap_err();
    assert_eq!(
        error.message,
        "cannot journal what this restore is about to do, so it does nothing: no space left on device. Nothing was changed"
    );
    assert_eq!(listing(dir.path().join("live").as_path()), before);
    assert_eq!(
        fs::read_dir(dir.path().join("live")).unwrap().count(),
        2,
        "no copy is left"
    );
}

#[tokio::test]
async fn restores_symbolic_links_as_links() {
    for format in ["dir", "tar.gz"] {
        let dir = tempfile::tempdir().unwrap();
        let (data, _) = live(dir.path());
        let secret = dir.path().join("secret.key");
        fs::write(&secret, "SECRET-CONTENT").unwrap();
        std::os::unix::fs::symlink(&secret, data.join("key")).unwrap();
        std::os::unix::fs::symlink("blocks", data.join("current")).unwrap();
        let taken = snapshot(dir.path(), format).await;
        fs::remove_file(data.join("key")).unwrap();
        fs::write(data.join("key"), "a file now").unwrap();
        fs::remove_file(data.join("current")).unwrap();
        let host = Arc::new(FakeHost::new());
        run("file.restore", &host, json!({"snapshot": taken["path"], "to": data}))
            .await
            .unwrap();
        for (link, target) in [("key", secret.as_path()), ("current", Path::new("blocks"))] {
            let meta = data.join(link).symlink_metadata().unwrap();
            assert!(meta.file_type().is_symlink(), "{format}: {link}");
            assert_eq!(fs::read_link(data.join(link)).unwrap(), target, "{format}");
        }
        // Verified against the live tree, the links match.
        let checked = run(
            "file.verify",
            &host,
            json!({"snapshot": taken["path"], "against": dir.path().join("live")}),
        )
        .await
        .unwrap();
        assert_eq!(checked["ok"], true, "{format}");
        // A link changed to point elsewhere is named.
        fs::remove_file(data.join("current")).unwrap();
        std::os::unix::fs::symlink("elsewhere", data.join("current")).unwrap();
        let error = run(
            "file.verify",
            &host,
            json!({"snapshot": taken["path"], "against": dir.path().join("live")}),
        )
        .await
        .unwrap_err();
        assert_eq!(error.result.unwrap()["changed"], json!(["data/current"]), "{format}");
    }
}

#[tokio::test]
async fn an_archive_cannot_write_through_a_link_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("evil.tar.gz");
    let file = fs::File::create(&archive).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    builder.append_data(&mut header, "snap/data/", &b""[..]).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    builder.append_link(&mut header, "snap/data/out", dir.path()).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(1);
    builder
        .append_data(&mut header, "snap/data/out/escaped", &b"x"[..])
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(0);
    builder
        .append_data(&mut header, format!("snap/{MANIFEST}"), &b""[..])
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    let host = Arc::new(FakeHost::new());
    let error = run(
        "file.restore",
        &host,
        json!({"snapshot": archive, "to": dir.path().join("live/data"), "verify": false}),
    )
    .await;
    assert!(error.is_err(), "{error:?}");
    let _ = fs::create_dir(dir.path().join("live"));
    let error = run(
        "file.restore",
        &host,
        json!({"snapshot": archive, "to": dir.path().join("live/data"), "verify": false}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.message,
        format!(
            "`{}` is not a safe snapshot archive: it holds `out/escaped` where a symbolic link was already made",
            archive.display()
        )
    );
    assert!(!dir.path().join("escaped").exists());
    assert_eq!(
        fs::read_dir(dir.path().join("live")).unwrap().count(),
        0,
        "no copy is left"
    );
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
