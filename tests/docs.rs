//! The docs' commands, run: every `sh` block of `README.md` and
//! `runbooks/README.md`, and every block of the book (`book/src/`) marked
//! runnable, run with the `runbook` this test was built with, in a fresh
//! copy of the repository's `runbooks/` and `schemas/`, one copy per page, so
//! that a command shown to a reader cannot silently go wrong.
//!
//! A block is marked in its info string, after the language, separated by
//! commas (mdBook makes them classes of the block and ignores them
//! otherwise, as GitHub does):
//!
//! - `runnable`: run it, as one `sh -e` script from the top of the copy; it
//!   must exit 0.
//! - `exit=N`: it must exit N instead (a block that shows a failing
//!   command; put that command last).
//! - `standin`: it talks to the stand-in service: the test starts
//!   `testkit`'s, and points every `RUNBOOK_*_URL` the example runbooks read
//!   at it, where a reader would have started it on port 8080.
//! - `terminal`: it asks, as a reader at a terminal is asked: it runs in a
//!   pseudo-terminal, every confirmation is answered yes and every choice
//!   (a failed gate's retry, skip, roll back) takes its default.
//! - `not-runnable-in-test` (the READMEs): shown for a person to run, never
//!   by this test. README.md's first block builds the release binary and
//!   runs the whole test suite, this test included, which would then run
//!   itself again; the stand-in service's own block serves until
//!   interrupted (the test starts the same service in-process instead).
//! - `file=NAME`, on a block of any language: its text is saved as NAME in
//!   the page's copy before the page's commands run, as a page that says
//!   "save this as NAME" asks of its reader.
//!
//! `cargo run [--release] -q -p runbook --` in a command is the built
//! `runbook`, first on `PATH`. `DOCS_ONLY=PAGE` (such as
//! `DOCS_ONLY=book/src/running.md`) runs the blocks of one page only.

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession as Session;
use expectrl::{Any, Eof, Expect, Needle};
use std::fs;
use std::io::Read as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::StandIn;

/// What one block may take, a stand-in drill with short times included.
const BLOCK_TIME: Duration = Duration::from_secs(120);

/// The marks this test knows; a misspelt one is an error, not a block skipped.
const MARKS: &[&str] = &["runnable", "not-runnable-in-test", "standin", "terminal"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A fenced code block of a page.
struct Block {
    /// The page, from the top of the repository, and the line of the fence.
    page: String,
    line: usize,
    language: String,
    marks: Vec<String>,
    text: String,
}

impl Block {
    fn has(&self, mark: &str) -> bool {
        self.marks.iter().any(|m| m == mark)
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.marks.iter().find_map(|m| m.strip_prefix(key)?.strip_prefix('='))
    }

    fn place(&self) -> String {
        format!("{}:{}", self.page, self.line)
    }

    fn is_readme(&self) -> bool {
        self.page.ends_with("README.md")
    }
}

/// The pages: the READMEs, then the book's, in a stable order.
fn pages() -> Vec<String> {
    let mut book = Vec::new();
    let mut folders = vec![root().join("book/src")];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                book.push(path.strip_prefix(root()).unwrap().to_str().unwrap().to_string());
            }
        }
    }
    book.sort();
    ["README.md".to_string(), "runbooks/README.md".to_string()]
        .into_iter()
        .chain(book)
        .collect()
}

/// The fenced blocks of a page (indented ones, in lists, too).
fn blocks(page: &str) -> Vec<Block> {
    let text = fs::read_to_string(root().join(page)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let indent = lines[i].len() - trimmed.len();
        if let Some(info) = trimmed.strip_prefix("```")
            && !info.trim().is_empty()
        {
            let mut parts = info.trim().split(',').map(str::trim);
            let language = parts.next().unwrap_or_default().to_string();
            let marks = parts.map(str::to_string).collect();
            let mut body = Vec::new();
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim() != "```" {
                body.push(lines[j].get(indent..).unwrap_or(lines[j].trim_start()));
                j += 1;
            }
            found.push(Block {
                page: page.to_string(),
                line: i + 1,
                language,
                marks,
                text: body.join("\n") + "\n",
            });
            i = j;
        }
        i += 1;
    }
    found
}

/// Problems with the marks themselves: unknown ones, and README commands
/// that say neither whether they run here nor why not.
fn mark_problems(block: &Block) -> Vec<String> {
    let mut problems = Vec::new();
    if block.language == "sh" {
        for mark in &block.marks {
            let known =
                MARKS.contains(&mark.as_str()) || mark.strip_prefix("exit=").is_some_and(|v| v.parse::<i32>().is_ok());
            if !known && !mark.starts_with("file=") {
                problems.push(format!("{}: unknown mark `{mark}`", block.place()));
            }
        }
        if block.is_readme() && block.has("runnable") == block.has("not-runnable-in-test") {
            problems.push(format!(
                "{}: a README's `sh` block is either `sh,runnable` or `sh,not-runnable-in-test`",
                block.place()
            ));
        }
        if !block.has("runnable") && block.marks.iter().any(|m| m != "not-runnable-in-test") {
            problems.push(format!("{}: marks of a block that does not run", block.place()));
        }
    }
    problems
}

#[test]
fn every_readme_command_is_marked_and_every_mark_is_known() {
    let blocks: Vec<Block> = pages().iter().flat_map(|p| blocks(p)).collect();
    let problems: Vec<String> = blocks.iter().flat_map(mark_problems).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let runnable = blocks.iter().filter(|b| b.has("runnable")).count();
    // The docs show many more; a marker lost in an edit shows here.
    assert!(runnable >= 25, "only {runnable} blocks are marked runnable");
}

/// A fresh copy of what the docs' commands read, for one page.
fn copy_of_the_repository() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            // What earlier runs by hand left beside the runbooks is not the repository's.
            if [".runbook", "__pycache__"].iter().any(|n| name == *n) {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                copy(&path, &to.join(&name));
            } else {
                fs::copy(&path, to.join(&name)).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for folder in ["runbooks", "schemas"] {
        copy(&root().join(folder), &dir.path().join(folder));
    }
    dir
}

/// The block as a script: `cargo run ... -p runbook --` is the built binary.
fn script(block: &Block) -> String {
    block
        .text
        .replace("cargo run --release -q -p runbook --", "runbook")
        .replace("cargo run -q -p runbook --", "runbook")
}

fn shell(block: &Block, dir: &Path, service: Option<&StandIn>) -> Command {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_runbook"));
    let path = std::env::join_paths(
        std::iter::once(binary.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut command = Command::new("sh");
    command.arg("-ec").arg(script(block)).current_dir(dir);
    // What the test's own environment says of runbook is not the reader's.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RUNBOOK_") {
            command.env_remove(name);
        }
    }
    command
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        // Kept apart from the machine's locks, run index and plugin cache.
        .env("RUNBOOK_LOCK_DIR", dir.join(".locks"))
        .env("XDG_STATE_HOME", dir.join(".state"))
        .env("RUNBOOK_CACHE_DIR", dir.join(".cache"));
    if let Some(service) = service {
        for name in [
            "RUNBOOK_API_URL",
            "RUNBOOK_LEDGER_URL",
            "RUNBOOK_CHAOS_URL",
            "RUNBOOK_DEPENDENCY_URL",
            "RUNBOOK_FLAGS_URL",
        ] {
            command.env(name, service.url());
        }
        command.env("RUNBOOK_DOH_URL", service.url_for("/dns-query"));
    }
    command
}

/// Runs a block; its exit status and what it printed.
fn run(block: &Block, dir: &Path, service: Option<&StandIn>) -> (Option<i32>, String) {
    let mut command = shell(block, dir, service);
    if block.has("terminal") {
        return run_in_a_terminal(command);
    }
    let log = dir.join(".docs-test-output");
    let out = fs::File::create(&log).unwrap();
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
    let mut child = command.spawn().expect("sh starts");
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > BLOCK_TIME {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, fs::read_to_string(&log).unwrap_or_default())
}

/// Runs a block in a pseudo-terminal, answering as a reader who goes along
/// with what is offered: yes to each confirmation, the default of each choice.
fn run_in_a_terminal(command: Command) -> (Option<i32>, String) {
    /// How every question ends: `answer [y/n]: `, the keys of its choices.
    const QUESTION: &str = "answer [";
    let mut session = Session::spawn(command).expect("sh starts in a pseudo-terminal");
    session.set_expect_timeout(Some(BLOCK_TIME));
    let mut transcript = String::new();
    for _ in 0..50 {
        let needles: Vec<Box<dyn Needle>> = vec![Box::new(QUESTION), Box::new(Eof)];
        match session.expect(Any::boxed(needles)) {
            Ok(found) => {
                transcript.push_str(&String::from_utf8_lossy(found.before()));
                let matched = found.get(0).unwrap_or_default();
                transcript.push_str(&String::from_utf8_lossy(matched));
                if matched != QUESTION.as_bytes() {
                    break;
                }
                // The first choice offered: yes to a confirmation, run it
                // for `--step`; for a failed step, "b" (roll back, what the
                // examples do without a person) rather than retrying.
                let mut first = [0u8; 1];
                let answer = match session.read(&mut first) {
                    Ok(1) if first[0] == b'r' => "b\r".to_string(),
                    Ok(1) => format!("{}\r", char::from(first[0])),
                    _ => "y\r".to_string(),
                };
                transcript.push(char::from(first[0]));
                // A moment for the prompt to finish drawing before the key comes.
                std::thread::sleep(Duration::from_millis(100));
                session.send(&answer).unwrap();
            }
            Err(e) => {
                let mut rest = [0u8; 65536];
                if let Ok(n) = session.try_read(&mut rest) {
                    transcript.push_str(&String::from_utf8_lossy(&rest[..n]));
                }
                transcript.push_str(&format!("\n(the test stopped waiting: {e})\n"));
                let _ = session.get_process_mut().exit(true);
                return (None, transcript);
            }
        }
    }
    let code = match session.get_process_mut().wait() {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        _ => None,
    };
    (code, transcript)
}

#[test]
fn the_commands_the_docs_show_run() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for page in pages() {
        if std::env::var("DOCS_ONLY").is_ok_and(|only| only != page) {
            continue;
        }
        let blocks = blocks(&page);
        if !blocks.iter().any(|b| b.has("runnable")) {
            continue;
        }
        let dir = copy_of_the_repository();
        for block in &blocks {
            if let Some(name) = block.value("file") {
                fs::write(dir.path().join(name), &block.text).unwrap();
            }
        }
        let service = blocks.iter().any(|b| b.has("standin")).then(StandIn::start);
        for block in blocks.iter().filter(|b| b.has("runnable")) {
            let expected = block.value("exit").map_or(0, |v| v.parse().unwrap());
            let service = service.as_ref().filter(|_| block.has("standin"));
            let (code, output) = run(block, dir.path(), service);
            ran += 1;
            if code != Some(expected) {
                let tail: Vec<&str> = output
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                failures.push(format!(
                    "{}: exit {} (expected {expected})\n--- the block\n{}--- what it printed (the end)\n{}\n",
                    block.place(),
                    code.map_or_else(|| "none (killed, or timed out)".to_string(), |c| c.to_string()),
                    block.text,
                    tail.join("\n")
                ));
            }
        }
    }
    assert!(ran > 0, "no block is marked runnable");
    assert!(
        failures.is_empty(),
        "{} of {ran} blocks failed:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
