//! `Manifest`: the `MANIFEST.sha256` of a snapshot, in the format of
//! `sha256sum` (so `sha256sum -c MANIFEST.sha256` checks a snapshot without
//! this program), and `Diff`, how a set of files differs from it.
//!
//! Paths are relative to the snapshot folder, `/`-separated and sorted by
//! byte, one `<hex>  <path>` line each. A path holding a backslash or a
//! newline is escaped as `sha256sum` does: the line starts with `\`, and the
//! path has `\\` and `\n`. Reading a manifest refuses absolute paths and
//! `..`, since restoring writes where the manifest points.
//!
//! A symbolic link is listed on a line of its own, `#symlink <hex>  <path>`,
//! where the digest is that of what the link points to (its text). The `#`
//! makes it a comment to `sha256sum -c`, which would otherwise read through
//! the link.

use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::words::series;

/// The file name of a snapshot's manifest, at the top of the snapshot.
pub(crate) const MANIFEST: &str = "MANIFEST.sha256";

/// How a link's line starts.
const LINK_LINE: &str = "#symlink ";

/// How a link's entry is told from a file's: its digest starts with this.
const LINK: &str = "symlink:";

/// Relative path → SHA-256 (hex) of each file in a snapshot, and of what
/// each symbolic link points to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// A link's digest is kept as `symlink:<hex>`, so that a link and a file
    /// never compare equal.
    files: BTreeMap<String, String>,
}

impl Manifest {
    pub(crate) fn insert(&mut self, path: String, digest: String) {
        self.files.insert(path, digest);
    }

    /// Adds a symbolic link at `path` pointing to `target`.
    pub(crate) fn insert_link(&mut self, path: String, target: &std::path::Path) {
        use std::os::unix::ffi::OsStrExt;
        self.insert_link_bytes(path, target.as_os_str().as_bytes());
    }

    /// Adds a symbolic link at `path` whose target is `target` (as bytes).
    pub(crate) fn insert_link_bytes(&mut self, path: String, target: &[u8]) {
        self.files
            .insert(path, format!("{LINK}{}", crate::file_work::sha256(target)));
    }

    /// How many files it lists (links not counted).
    pub(crate) fn len(&self) -> usize {
        self.files.len() - self.links()
    }

    /// How many symbolic links it lists.
    pub(crate) fn links(&self) -> usize {
        self.files.values().filter(|d| d.starts_with(LINK)).count()
    }

    /// The first component of every path: the names the snapshot stores.
    pub(crate) fn top_level(&self) -> BTreeSet<String> {
        self.files
            .keys()
            .map(|path| path.split('/').next().unwrap_or(path).to_string())
            .collect()
    }

    /// The manifest as `sha256sum` writes it.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        for (path, digest) in &self.files {
            let digest = match digest.strip_prefix(LINK) {
                Some(digest) => {
                    text.push_str(LINK_LINE);
                    digest
                }
                None => digest,
            };
            if path.contains(['\\', '\n']) {
                let escaped = path.replace('\\', "\\\\").replace('\n', "\\n");
                text.push_str(&format!("\\{digest}  {escaped}\n"));
            } else {
                text.push_str(&format!("{digest}  {path}\n"));
            }
        }
        text
    }

    /// Reads a manifest; an error names the line.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut manifest = Self::default();
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            if line.trim().is_empty() {
                continue;
            }
            let (link, line) = match line.strip_prefix(LINK_LINE) {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (escaped, line) = match line.strip_prefix('\\') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (digest, path) = line
                .split_once("  ")
                .or_else(|| line.split_once(" *"))
                .ok_or_else(|| format!("line {number}: expected `<sha256>  <path>`"))?;
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("line {number}: `{digest}` is not a SHA-256 in hex"));
            }
            let path = if escaped {
                unescape(path).ok_or_else(|| format!("line {number}: a bad escape in `{path}`"))?
            } else {
                path.to_string()
            };
            if !is_relative_path(&path) {
                return Err(format!(
                    "line {number}: `{path}` is not a relative path inside the snapshot"
                ));
            }
            let digest = digest.to_ascii_lowercase();
            let digest = if link { format!("{LINK}{digest}") } else { digest };
            if manifest.files.insert(path.clone(), digest).is_some() {
                return Err(format!("line {number}: `{path}` is listed twice"));
            }
        }
        Ok(manifest)
    }

    /// How `actual` differs from this manifest.
    pub(crate) fn compare(&self, actual: &Manifest) -> Diff {
        let mut diff = Diff::default();
        for (path, digest) in &self.files {
            match actual.files.get(path) {
                None => diff.missing.push(path.clone()),
                Some(found) if found != digest => diff.changed.push(path.clone()),
                Some(_) => {}
            }
        }
        diff.extra = actual
            .files
            .keys()
            .filter(|path| !self.files.contains_key(*path))
            .cloned()
            .collect();
        diff
    }
}

/// Undoes `sha256sum`'s escaping: `\\` and `\n`.
fn unescape(path: &str) -> Option<String> {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A `/`-separated path of plain names: not absolute, no `.`, `..` or
/// empty component.
pub(crate) fn is_relative_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'))
}

/// The files that are not as a manifest says, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Diff {
    /// Listed, but not there.
    pub missing: Vec<String>,
    /// There, but not listed.
    pub extra: Vec<String>,
    /// There, with other contents (or not a regular file).
    pub changed: Vec<String>,
}

/// How many names of each list a message shows.
const NAMES_SHOWN: usize = 3;

impl Diff {
    pub(crate) fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }

    /// The step's result when the check fails.
    pub(crate) fn to_json(&self) -> Json {
        json!({"ok": false, "missing": self.missing, "extra": self.extra, "changed": self.changed})
    }

    /// `1 missing (`a`), 2 changed (`b` and `c`)`.
    pub(crate) fn summary(&self) -> String {
        let parts: Vec<String> = [
            ("missing", &self.missing),
            ("changed", &self.changed),
            ("extra", &self.extra),
        ]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(what, names)| format!("{} {what} ({})", names.len(), some_names(names)))
        .collect();
        parts.join(", ")
    }
}

/// `` `a`, `b`, `c` and 4 more ``.
fn some_names(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(NAMES_SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > NAMES_SHOWN {
        shown.push(format!("{} more", names.len() - NAMES_SHOWN));
    }
    series(&shown, "and")
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const B: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest(files: &[(&str, &str)]) -> Manifest {
        let mut manifest = Manifest::default();
        for (path, digest) in files {
            manifest.insert(path.to_string(), digest.to_string());
        }
        manifest
    }

    #[test]
    fn renders_and_reads_sha256sum_s_format() {
        let m = manifest(&[("data/b.db", B), ("config.yaml", A), ("odd\\name\nx", B)]);
        let text = m.render();
        assert_eq!(
            text,
            format!("{A}  config.yaml\n{B}  data/b.db\n\\{B}  odd\\\\name\\nx\n")
        );
        assert_eq!(Manifest::parse(&text), Ok(m.clone()));
        // `sha256sum -b` marks binary mode with ` *`; upper case hex reads too.
        let binary = format!("{}  config.yaml\n{B} *data/b.db\n", A.to_uppercase());
        assert_eq!(Manifest::parse(&binary).unwrap().len(), 2);
        assert_eq!(
            m.top_level().into_iter().collect::<Vec<_>>(),
            ["config.yaml", "data", "odd\\name\nx"]
        );
    }

    #[test]
    fn links_have_lines_of_their_own() {
        let mut m = manifest(&[("data/a", A)]);
        m.insert_link("data/current".into(), std::path::Path::new("../v1"));
        let target = crate::file_work::sha256(b"../v1");
        let text = m.render();
        assert_eq!(text, format!("{A}  data/a\n#symlink {target}  data/current\n"));
        assert_eq!(Manifest::parse(&text), Ok(m.clone()));
        assert_eq!((m.len(), m.links()), (1, 1));
        // A file where a link was (with the same digest) is changed.
        let file = manifest(&[("data/a", A), ("data/current", &target)]);
        assert_eq!(m.compare(&file).changed, ["data/current"]);
        assert!(Manifest::parse("#symlink x  y").is_err());
    }

    #[test]
    fn bad_manifests_name_the_line() {
        let bad = |text: &str| Manifest::parse(text).unwrap_err();
        assert_eq!(bad("\nnot a line"), "line 2: expected `<sha256>  <path>`");
        assert_eq!(bad("abc  x"), "line 1: `abc` is not a SHA-256 in hex");
        assert_eq!(
            bad(&format!("{A}  ../etc/passwd")),
            "line 1: `../etc/passwd` is not a relative path inside the snapshot"
        );
        assert_eq!(
            bad(&format!("{A}  /etc/passwd")),
            "line 1: `/etc/passwd` is not a relative path inside the snapshot"
        );
        assert_eq!(bad(&format!("{A}  x\n{B}  x")), "line 2: `x` is listed twice");
        assert_eq!(bad(&format!("\\{A}  a\\q")), "line 1: a bad escape in `a\\q`");
    }

    #[test]
    fn compares_and_summarises() {
        let expected = manifest(&[("a", A), ("b", A), ("c", A), ("d", A), ("e", A), ("f", A)]);
        let actual = manifest(&[("b", B), ("c", A), ("g", A)]);
        let diff = expected.compare(&actual);
        assert_eq!(diff.missing, ["a", "d", "e", "f"]);
        assert_eq!(diff.changed, ["b"]);
        assert_eq!(diff.extra, ["g"]);
        assert_eq!(
            diff.summary(),
            "4 missing (`a`, `d`, `e` and 1 more), 1 changed (`b`), 1 extra (`g`)"
        );
        assert!(expected.compare(&expected).is_empty());
    }
}
