//! Step plugins: kinds in any language, in an executable that speaks the
//! plugin protocol ([`protocol`]) over its stdin and stdout.
//!
//! A step uses a plugin's kind as `PLUGIN.KIND`. The plugin is found
//! ([`locate`]) in the runbook's `plugins:`, in a `plugins/` folder beside
//! the runbook, or on `PATH` as `runbook-plugin-PLUGIN`; what its
//! `describe` answers is cached per executable ([`describe`]); each of its
//! kinds becomes a [`PluginKind`] in the registry the runbook is checked,
//! planned and run with ([`registry_for`]). A plugin that cannot be used
//! is recorded in the registry with why, so `check` refuses the steps that
//! use it, on their `uses:` line.

mod describe;
mod kind;
pub mod protocol;

pub use describe::{cache_dir, describe};
pub use kind::PluginKind;

use crate::parse::node::{Node, Value};
use crate::step::{ParamProblem, Registry};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// Names a plugin cannot have: the built-in kinds' own prefixes.
pub const RESERVED: &[&str] = &["file", "json"];

/// How a plugin was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// In the runbook's `plugins:`.
    Declared,
    /// In the `plugins/` folder beside the runbook.
    Folder,
    /// On `PATH`, as `runbook-plugin-NAME`.
    Path,
}

impl Source {
    pub fn words(self) -> &'static str {
        match self {
            Source::Declared => "declared in the runbook",
            Source::Folder => "in the plugins/ folder",
            Source::Path => "on PATH",
        }
    }
}

/// A plugin found for a runbook, and what it said it provides.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub name: String,
    pub path: PathBuf,
    /// Its path as messages show it (see [`shown`]).
    pub shown: String,
    pub source: Source,
    pub kinds: Vec<protocol::KindInfo>,
}

/// What a runbook says about plugins: those it declares, and the plugin
/// names its steps use (`uses: NAME.KIND` anywhere, nested steps and
/// rollbacks included), read from its text.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub declared: IndexMap<String, String>,
    pub used: Vec<String>,
}

impl Wanted {
    /// Reads them from a runbook's text; a runbook that does not parse
    /// wants nothing (`check` reports why it does not parse).
    pub fn of(name: &str, bytes: &[u8], registry: &Registry) -> Self {
        document(name, bytes).map_or_else(Self::default, |document| Self::in_document(&document, registry))
    }

    fn in_document(document: &Node, registry: &Registry) -> Self {
        let mut wanted = Self::default();
        if let Value::Map(entries) = &document.value {
            for (key, value) in entries {
                if let (Value::Str(key), Value::Map(plugins)) = (&key.value, &value.value)
                    && key == "plugins"
                {
                    for (name, path) in plugins {
                        if let (Value::Str(name), Value::Str(path)) = (&name.value, &path.value) {
                            wanted.declared.insert(name.clone(), path.clone());
                        }
                    }
                }
            }
        }
        let mut uses = Vec::new();
        collect_uses(document, &mut uses);
        for kind in uses {
            if registry.get(&kind).is_some() {
                continue;
            }
            if let Some((plugin, _)) = kind.split_once('.')
                && protocol::is_name(plugin)
                && !RESERVED.contains(&plugin)
                && !wanted.used.iter().any(|p| p == plugin)
            {
                wanted.used.push(plugin.to_string());
            }
        }
        wanted
    }

    /// What a runbook file wants, and the runbooks its `runbook` steps run,
    /// recursively: sub-runbooks are run with the registry of the runbook
    /// that runs them, so their plugins are found with it. A plugin a
    /// sub-runbook declares keeps its path, relative to that runbook's folder.
    /// Each file is parsed once.
    pub fn of_file(path: &Path, bytes: &[u8], registry: &Registry) -> Self {
        let Some(document) = document(&path.display().to_string(), bytes) else {
            return Self::default();
        };
        let mut wanted = Self::in_document(&document, registry);
        let mut seen = vec![std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())];
        wanted.add_children(path, &document, registry, &mut seen);
        wanted
    }

    fn add_children(&mut self, path: &Path, parsed: &Node, registry: &Registry, seen: &mut Vec<PathBuf>) {
        let mut children = Vec::new();
        collect_children(parsed, registry, &mut children);
        let dir = folder_of(path);
        for file in children {
            let child = dir.join(file);
            let canonical = std::fs::canonicalize(&child).unwrap_or_else(|_| child.clone());
            // A cycle or a runaway depth is the loader's to report.
            if seen.contains(&canonical) || seen.len() > 32 {
                continue;
            }
            let Some(child_document) = crate::files::read_regular(&child)
                .ok()
                .and_then(|bytes| document(&child.display().to_string(), &bytes))
            else {
                continue;
            };
            seen.push(canonical);
            let inner = Self::in_document(&child_document, registry);
            let child_dir = folder_of(&child);
            for (name, declared) in inner.declared {
                let absolute = child_dir.join(declared).display().to_string();
                self.declared.entry(name).or_insert(absolute);
            }
            for name in inner.used {
                if !self.used.contains(&name) {
                    self.used.push(name);
                }
            }
            self.add_children(&child, &child_document, registry, seen);
        }
    }

    /// Every plugin name, declared ones first.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.declared.keys().cloned().collect();
        for name in &self.used {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

/// A runbook's text as a YAML document, if it reads as one.
fn document(name: &str, bytes: &[u8]) -> Option<Node> {
    let source = crate::parse::node::decode(name, bytes).ok()?;
    crate::parse::node::parse_yaml(&source).ok()
}

/// The files that `runbook` steps (kinds that run a child runbook) name.
fn collect_children(node: &Node, registry: &Registry, out: &mut Vec<String>) {
    match &node.value {
        Value::Map(entries) => {
            let param = entries
                .iter()
                .find_map(|(key, value)| match (&key.value, &value.value) {
                    (Value::Str(key), Value::Str(kind)) if key == "uses" => registry.get(kind)?.child_runbook_param(),
                    _ => None,
                });
            if let Some(param) = param
                && let Some((
                    _,
                    Node {
                        value: Value::Map(with),
                        ..
                    },
                )) = entries.iter().find(|(key, _)| key.value == Value::Str("with".into()))
                && let Some((
                    _,
                    Node {
                        value: Value::Str(file),
                        ..
                    },
                )) = with.iter().find(|(key, _)| key.value == Value::Str(param.into()))
            {
                out.push(file.clone());
            }
            entries
                .iter()
                .for_each(|(_, value)| collect_children(value, registry, out));
        }
        Value::Seq(items) => items.iter().for_each(|item| collect_children(item, registry, out)),
        _ => {}
    }
}

fn collect_uses(node: &Node, out: &mut Vec<String>) {
    match &node.value {
        Value::Map(entries) => {
            for (key, value) in entries {
                if let (Value::Str(key), Value::Str(kind)) = (&key.value, &value.value)
                    && key == "uses"
                {
                    out.push(kind.clone());
                }
                collect_uses(value, out);
            }
        }
        Value::Seq(items) => items.iter().for_each(|item| collect_uses(item, out)),
        _ => {}
    }
}

/// Where the plugin `name` is, for a runbook in `dir`: declared, in the
/// `plugins/` folder, or on `PATH`.
pub fn locate(name: &str, dir: &Path, declared: &IndexMap<String, String>) -> Result<(PathBuf, Source), ParamProblem> {
    if let Some(path) = declared.get(name) {
        let path = dir.join(path);
        return executable(&path)
            .map(|()| (path.clone(), Source::Declared))
            .map_err(|why| {
                unusable(
                    name,
                    &shown(&path, dir),
                    &why,
                    "the path under `plugins:` is relative to the runbook's folder",
                )
            });
    }
    let folder = dir.join("plugins");
    if let Ok(entries) = std::fs::read_dir(&folder) {
        let mut candidates: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|file| file == name || file.split_once('.').is_some_and(|(stem, _)| stem == name))
            })
            .collect();
        candidates.sort();
        // An executable one is the plugin (a `flags.md` beside `flags.py` is not).
        if let Some(path) = candidates.iter().find(|p| executable(p).is_ok()) {
            return Ok((path.clone(), Source::Folder));
        }
        if let Some(path) = candidates.first() {
            let why = executable(path).err().unwrap_or_default();
            return Err(unusable(
                name,
                &shown(path, dir),
                &why,
                "make it executable (`chmod +x`)",
            ));
        }
    }
    let program = format!("runbook-plugin-{name}");
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join(&program);
            if path.is_file() && executable(&path).is_ok() {
                return Ok((path, Source::Path));
            }
        }
    }
    Err(ParamProblem::new("", format!("no plugin `{name}` is found")).with_help(format!(
        "declare it under `plugins:` (`{name}: path/to/plugin`), put an executable `plugins/{name}` beside the runbook, or install `{program}` on PATH"
    )))
}

fn unusable(name: &str, shown: &str, why: &str, help: &str) -> ParamProblem {
    ParamProblem::new("", format!("plugin `{name}` ({shown}) {why}")).with_help(help)
}

/// A plugin's path as messages show it: relative to the runbook's folder
/// when it is inside it (`plugins/flags.py`), else in full.
pub fn shown(path: &Path, dir: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// Whether `path` is a file this user may execute; why not, in words.
fn executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "is missing".to_string(),
        _ => format!("cannot be read: {}", crate::kit::os_error_words(&e.to_string())),
    })?;
    if !meta.is_file() {
        return Err("is not a file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("is not executable".into());
    }
    Ok(())
}

/// Finds and describes the plugin `name`.
pub fn find(name: &str, dir: &Path, declared: &IndexMap<String, String>) -> Result<Plugin, ParamProblem> {
    if RESERVED.contains(&name) || !protocol::is_name(name) {
        return Err(
            ParamProblem::new("", format!("`{name}` cannot name a plugin")).with_help(format!(
                "a plugin's name is lower-case letters, digits and `_`, starting with a letter, and not {}",
                crate::words::list(RESERVED)
            )),
        );
    }
    let (path, source) = locate(name, dir, declared)?;
    let answer = describe(&path, dir).map_err(|why| {
        ParamProblem::new("", format!("plugin `{name}` ({}) {why}", shown(&path, dir))).with_help(
            if why.starts_with("speaks protocol version") {
                "use a version of the plugin that speaks this protocol version, or a runbook that speaks the plugin's"
            } else {
                "run it by hand with the argument `describe` to see what it answers"
            },
        )
    })?;
    Ok(Plugin {
        name: name.to_string(),
        shown: shown(&path, dir),
        path,
        source,
        kinds: answer.kinds,
    })
}

/// The registry a runbook is checked, planned and run with: `base`, and
/// the kinds of every plugin it declares or uses. A plugin that cannot be
/// used is recorded with why ([`Registry::unusable`]).
pub fn registry_for(base: &Registry, runbook: &Path, bytes: &[u8]) -> Registry {
    let wanted = Wanted::of_file(runbook, bytes, base);
    let names = wanted.names();
    if names.is_empty() {
        return base.clone();
    }
    let dir = folder_of(runbook);
    let mut registry = base.clone();
    for name in names {
        match find(&name, &dir, &wanted.declared) {
            Ok(plugin) => {
                for info in &plugin.kinds {
                    registry.register(PluginKind::new(&plugin, info, &dir));
                }
            }
            Err(why) => registry.set_unusable(&name, why),
        }
    }
    registry
}

/// Every plugin a runbook can use (declared, in its `plugins/` folder and
/// those its steps use from PATH), each found or with why not. Without a
/// runbook: those in `./plugins/` and every `runbook-plugin-*` on PATH.
pub fn list(base: &Registry, runbook: Option<(&Path, &[u8])>) -> Vec<(String, Result<Plugin, ParamProblem>)> {
    let (mut wanted, dir) = match runbook {
        Some((runbook, bytes)) => (
            Wanted::of(&runbook.display().to_string(), bytes, base),
            folder_of(runbook),
        ),
        None => (Wanted::default(), folder_of(Path::new("runbook.yaml"))),
    };
    if runbook.is_none() {
        wanted.used.extend(on_path());
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("plugins")) {
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| executable(&e.path()).is_ok())
            .filter_map(|e| {
                let file = e.file_name().to_str()?.to_string();
                Some(file.split_once('.').map_or(file.clone(), |(stem, _)| stem.to_string()))
            })
            .filter(|name| protocol::is_name(name))
            .collect();
        found.sort();
        found.dedup();
        for name in found {
            if !wanted.used.contains(&name) {
                wanted.used.push(name);
            }
        }
    }
    wanted
        .names()
        .into_iter()
        .map(|name| {
            let found = find(&name, &dir, &wanted.declared);
            (name, found)
        })
        .collect()
}

/// The folder a runbook is in, as an absolute path: plugins start there,
/// and a relative path to a plugin would be read from there a second time.
fn folder_of(runbook: &Path) -> PathBuf {
    let folder = runbook
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf())
}

/// The names of the plugins on PATH (`runbook-plugin-NAME`), sorted.
fn on_path() -> Vec<String> {
    let mut names = Vec::new();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            if let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|f| f.strip_prefix("runbook-plugin-"))
                && protocol::is_name(name)
                && executable(&entry.path()).is_ok()
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests;
