//! Finding plugins and reading what they provide.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// Writes an executable script.
fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const DESCRIBE: &str = r#"[ "$1" = describe ] && echo '{"protocol":1,"kinds":[{"name":"set","summary":"Set a flag.","undo":true,"describe":"set {{ params.flag }}"}]}'"#;

#[test]
fn a_runbook_wants_the_plugins_it_declares_and_uses() {
    let registry = Registry::new();
    let text = b"runbook: 1\nplugins: { flags: tools/flags.py }\nsteps:\n  - id: a\n    uses: flags.set\n  - id: b\n    uses: wait\n    with: { probe: { uses: pager.page } }\n    rollback: { uses: notes.add }\n  - id: c\n    uses: file.snapshot\n  - id: d\n    uses: nothing\n";
    let wanted = Wanted::of("r.yaml", text, &registry);
    assert_eq!(wanted.declared.get("flags").map(String::as_str), Some("tools/flags.py"));
    assert_eq!(wanted.used, ["flags", "pager", "notes"]);
    assert_eq!(wanted.names(), ["flags", "pager", "notes"]);
}

#[test]
fn plugins_are_found_declared_then_in_the_folder_then_on_path() {
    let dir = tempfile::tempdir().unwrap();
    script(&dir.path().join("tools/flags.py"), DESCRIBE);
    script(&dir.path().join("plugins/flags.sh"), DESCRIBE);
    script(&dir.path().join("plugins/notes.sh"), DESCRIBE);
    let declared: IndexMap<String, String> = [("flags".to_string(), "tools/flags.py".to_string())].into();
    let (path, source) = locate("flags", dir.path(), &declared).unwrap();
    assert_eq!((path, source), (dir.path().join("tools/flags.py"), Source::Declared));
    let (path, source) = locate("notes", dir.path(), &declared).unwrap();
    assert_eq!((path, source), (dir.path().join("plugins/notes.sh"), Source::Folder));
    // What sits beside a plugin under its name and is not executable is not it.
    std::fs::write(dir.path().join("plugins/notes.md"), "about notes").unwrap();
    let (path, _) = locate("notes", dir.path(), &declared).unwrap();
    assert_eq!(path, dir.path().join("plugins/notes.sh"));
    std::fs::remove_file(dir.path().join("plugins/notes.md")).unwrap();
    let missing = locate("pager", dir.path(), &declared).unwrap_err();
    assert_eq!(missing.message, "no plugin `pager` is found");
    assert!(missing.help.unwrap().contains("runbook-plugin-pager"));

    std::fs::set_permissions(
        dir.path().join("plugins/notes.sh"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let why = locate("notes", dir.path(), &declared).unwrap_err();
    assert!(why.message.ends_with("plugins/notes.sh) is not executable"), "{why:?}");
    let declared: IndexMap<String, String> = [("gone".to_string(), "nowhere".to_string())].into();
    let why = locate("gone", dir.path(), &declared).unwrap_err();
    assert!(why.message.ends_with("nowhere) is missing"), "{why:?}");
}

#[test]
fn describe_answers_are_cached_until_the_plugin_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugins/count.sh");
    let counter = dir.path().join("asked");
    script(&plugin, &format!("echo x >> {}\n{DESCRIBE}", counter.display()));
    let asked = || std::fs::read_to_string(&counter).unwrap_or_default().lines().count();
    let describe = |plugin: &Path| super::describe::describe_cached_in(plugin, dir.path(), Some(cache.path()));
    let answer = describe(&plugin).unwrap();
    assert_eq!(answer.kinds[0].name, "set");
    describe(&plugin).unwrap();
    assert_eq!(asked(), 1, "the second describe came from the cache");
    // A changed plugin is asked again.
    script(
        &plugin,
        &format!("echo x >> {}\n{DESCRIBE}\n# changed", counter.display()),
    );
    describe(&plugin).unwrap();
    assert_eq!(asked(), 2);
}

#[test]
fn a_plugin_that_cannot_describe_itself_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("exit 3", "failed to `describe` itself: it exited with code 3"),
        ("echo hello", "answered `describe` with something that is not JSON"),
        (
            r#"echo '{"protocol":7,"kinds":[]}'"#,
            "speaks protocol version 7; this version of runbook speaks protocol version 1",
        ),
        (
            r#"echo '{"protocol":1}'"#,
            "answered `describe` wrongly: missing field `kinds`",
        ),
    ];
    for (i, (body, says)) in cases.iter().enumerate() {
        let plugin = dir.path().join(format!("p{i}"));
        script(&plugin, body);
        let why = super::describe::describe_cached_in(&plugin, dir.path(), None).unwrap_err();
        assert!(why.starts_with(says), "{body}: {why}");
    }
}

#[test]
fn the_registry_holds_the_kinds_of_the_plugins_found_and_why_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    script(&dir.path().join("plugins/flags"), DESCRIBE);
    let runbook = dir.path().join("r.yaml");
    let text = b"runbook: 1\nsteps:\n  - id: a\n    uses: flags.set\n  - id: b\n    uses: pager.page\n";
    let registry = registry_for(&Registry::new(), &runbook, text);
    let kind = registry.get("flags.set").unwrap();
    assert_eq!(kind.summary(), "Set a flag.");
    assert_eq!(kind.describe(&serde_json::json!({"flag": "checkout"})), "set checkout");
    assert_eq!(
        kind.undo_summary(&serde_json::json!({})).as_deref(),
        Some("undo it through plugin `flags`")
    );
    assert_eq!(
        registry.unusable("pager").unwrap().message,
        "no plugin `pager` is found"
    );
}

#[test]
fn a_sub_runbook_s_plugins_are_found_with_the_runbook_that_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    script(&dir.path().join("child/tools/notes"), DESCRIBE);
    script(&dir.path().join("plugins/flags"), DESCRIBE);
    std::fs::write(
        dir.path().join("child/child.yaml"),
        "runbook: 1\nplugins: { notes: tools/notes }\nsteps:\n  - id: n\n    uses: notes.set\n  - id: f\n    uses: flags.set\n",
    )
    .unwrap();
    let mut base = Registry::new();
    base.register(RunsRunbooks);
    let text = b"runbook: 1\nsteps:\n  - id: c\n    uses: runbook\n    with: { file: child/child.yaml }\n";
    let registry = registry_for(&base, &dir.path().join("parent.yaml"), text);
    assert!(
        registry.get("notes.set").is_some(),
        "declared by the child, relative to its folder"
    );
    assert!(registry.get("flags.set").is_some(), "in the parent's plugins/ folder");
}

/// A kind that runs a child runbook, as the `runbook` kind does.
struct RunsRunbooks;

impl crate::step::StepKind for RunsRunbooks {
    fn name(&self) -> &'static str {
        "runbook"
    }
    fn summary(&self) -> &'static str {
        "Run a runbook."
    }
    fn params_schema(&self) -> serde_json::Value {
        serde_json::json!({"type": "object"})
    }
    fn child_runbook_param(&self) -> Option<&'static str> {
        Some("file")
    }
    fn describe(&self, _: &serde_json::Value) -> String {
        "run a runbook".into()
    }
    fn run(&self, _: crate::step::StepContext) -> crate::step::StepFuture<'_> {
        Box::pin(async { Err(crate::step::StepError::new("not here")) })
    }
}
