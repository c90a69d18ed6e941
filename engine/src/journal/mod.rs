//! The write-ahead journal of a run: one JSON line per state change,
//! flushed to disk (fsync) before the engine acts on it, so that a run
//! killed at any point can be resumed or rolled back later.
//!
//! A run lives in `STATE_DIR/runs/RUN_ID/`: `journal.jsonl` (a header line,
//! then events) and `runbook.yaml` (the runbook as it was when the run
//! started). A torn last line (a crash in the middle of a write) is
//! detected and ignored; any other damage is an error that changes nothing.

pub mod index;
pub mod lock;
pub mod redact;
pub mod resume;
pub mod state;

pub use resume::{CannotResume, ResumeError, ResumeNote, ResumeSource, resume_source};
pub use state::RunState;

use crate::event::{Event, Reporter, RunSummary};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// The journal format this version writes and reads.
pub const FORMAT: u32 = 2;

/// The environment variable that overrides the default state directory.
pub const STATE_DIR_ENV: &str = "RUNBOOK_STATE_DIR";

/// What a run is doing: a normal run, or a rollback asked for later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Run,
    Rollback,
}

/// The first line of a journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub run_id: String,
    pub runbook: String,
    /// The runbook file, absolute.
    pub runbook_path: PathBuf,
    /// SHA-256 of the runbook's text when the run started.
    pub runbook_sha256: String,
    /// Inputs as resolved; an input whose value is or holds a secret is masked.
    pub inputs: serde_json::Map<String, Json>,
    /// The inputs that are masked above: a resume must be given them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_inputs: Vec<String>,
    pub started_at: String,
    pub pid: u32,
    pub host: String,
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Header(Header),
    Event {
        seq: u64,
        at: String,
        /// The hash of the line before this one (see [`JournalWriter`]).
        #[serde(default)]
        prev: String,
        event: Event,
    },
}

/// An event as read back, with its time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimedEvent {
    pub seq: u64,
    pub at: String,
    pub event: Event,
}

/// A whole journal, read back.
#[derive(Debug, Clone)]
pub struct Journal {
    pub dir: PathBuf,
    pub header: Header,
    pub events: Vec<TimedEvent>,
    /// The last line was cut short by a crash and was ignored.
    pub torn_tail: bool,
    /// The hash of the last whole line, which the next record carries.
    pub last_hash: String,
}

impl Journal {
    /// The final status, if the run finished.
    pub fn finished(&self) -> Option<&RunSummary> {
        self.events.iter().rev().find_map(|e| match &e.event {
            Event::RunFinished { summary, .. } => Some(summary),
            _ => None,
        })
    }

    /// The run's state, replayed from its events.
    pub fn state(&self) -> RunState {
        RunState::from_events(&self.events)
    }

    /// The run's status in a word (see [`RunState::status_name`]).
    pub fn status(&self) -> String {
        self.state().status_name(|| pid_alive(self.header.pid)).to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("no run `{run}` in {}", dir.display())]
    NotFound { run: String, dir: PathBuf },
    #[error(
        "the journal of run `{run}` was written by a newer runbook (format {found}; this runbook reads format {FORMAT})"
    )]
    NewerFormat { run: String, found: u32 },
    #[error("the journal of run `{run}` is damaged at line {line}: {reason}; nothing was changed")]
    Corrupt { run: String, line: usize, reason: String },
    #[error(
        "the journal of run `{run}` was changed at line {line}: a record was edited, removed or reordered; it is not replayed, and nothing was changed"
    )]
    Changed { run: String, line: usize },
    #[error("`{run}` is not a run id")]
    BadRunId { run: String },
    #[error("there is no room for the journal in {}: {source}; nothing was run", dir.display())]
    NoRoom {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl JournalError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// What to do about it.
    pub fn help(&self) -> String {
        match self {
            JournalError::NotFound { .. } => {
                "`runbook runs` lists the runs this user started, wherever they are kept; \
                 for a run it does not list, pass the `--state-dir` it used"
                    .into()
            }
            JournalError::NewerFormat { .. } => "use the runbook version that started the run, or a newer one".into(),
            JournalError::Corrupt { .. } => {
                "inspect journal.jsonl by hand; runbook does not guess what happened".into()
            }
            JournalError::Changed { .. } => {
                "put back the journal as it was written (from a backup), or inspect it by hand; runbook does not replay a history it cannot trust".into()
            }
            JournalError::BadRunId { .. } => {
                "a run id is a name such as `20261122T010203Z-3f2a`; `runbook runs` lists them".into()
            }
            JournalError::NoRoom { .. } => format!(
                "a run keeps {} KiB in reserve for its journal; free space on that disk, or use another `--state-dir`",
                RESERVE_BYTES >> 10
            ),
            JournalError::Io { .. } => {
                "check that the state directory exists and is writable (`--state-dir`, RUNBOOK_STATE_DIR)".into()
            }
        }
    }
}

/// SHA-256 of a runbook's text, as hex.
pub fn sha256(text: &[u8]) -> String {
    let digest = Sha256::digest(text);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory of one run.
pub fn run_dir(state_dir: &Path, run_id: &str) -> PathBuf {
    state_dir.join("runs").join(run_id)
}

/// The time now, as `2026-11-22T01:02:03.456Z`.
pub fn now() -> String {
    crate::clock::now()
}

fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How much disk space a run keeps in reserve beside its journal: taken
/// before the first step, so that a nearly full disk is refused before
/// anything runs, and given back when a write fails for want of space, so
/// that the records of what was already under way can still be written.
pub const RESERVE_BYTES: u64 = 256 << 10;

/// Appends events to a run's journal, each flushed to disk before the
/// engine goes on. Each record carries a hash of the one before it, so
/// that a record removed, reordered or edited is found when the journal is
/// read. The first write that fails leaves the journal as it was and
/// refuses every later one (see [`JournalWriter::failure`]): the engine
/// then starts nothing more.
pub struct JournalWriter {
    path: PathBuf,
    tail: Mutex<Tail>,
    failed: Mutex<Option<String>>,
    /// Steps whose outcome could not be journaled.
    unrecorded: Mutex<Vec<String>>,
    reserve: Mutex<Option<PathBuf>>,
    flusher: Option<Arc<Flusher>>,
    /// Told at the first failed write, so that the run stops at once.
    on_failure: Option<UnboundedSender<&'static str>>,
}

/// What a journal that cannot be written sends to stop its run.
pub const JOURNAL_FAILED: &str = "journal failure";

/// The open journal and where its chain of records stands.
struct Tail {
    file: File,
    /// The journal's length: where a failed write is cut back to.
    len: u64,
    seq: u64,
    /// The hash of the last line written, which the next record carries.
    last: String,
    broken: bool,
}

/// Group commit for outcome records (a step succeeded, failed, was skipped):
/// they are flushed by the next record that precedes an action (a step or a
/// rollback starting, the run finishing) or, at the latest, a millisecond
/// after they were written, by a thread of their own. So every record is on
/// disk before the engine acts on it, with one fsync per step instead of two.
struct Flusher {
    state: std::sync::Mutex<FlushState>,
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct FlushState {
    pending: bool,
    closed: bool,
}

impl Flusher {
    fn start(file: File) -> Arc<Self> {
        let flusher = Arc::new(Flusher {
            state: std::sync::Mutex::new(FlushState::default()),
            wake: std::sync::Condvar::new(),
        });
        let shared = flusher.clone();
        std::thread::spawn(move || shared.run(file));
        flusher
    }

    fn run(&self, file: File) {
        loop {
            let Ok(mut state) = self.state.lock() else { return };
            while !state.pending && !state.closed {
                state = match self.wake.wait(state) {
                    Ok(state) => state,
                    Err(_) => return,
                };
            }
            let closed = state.closed;
            drop(state);
            if !closed {
                // Let records written together share one flush.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if let Ok(mut state) = self.state.lock() {
                state.pending = false;
            }
            let _ = file.sync_data();
            if closed {
                return;
            }
        }
    }

    fn mark(&self, pending: bool) {
        if let Ok(mut state) = self.state.lock() {
            state.pending = pending;
        }
        if pending {
            self.wake.notify_one();
        }
    }

    fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
        }
        self.wake.notify_one();
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        if let Some(flusher) = &self.flusher {
            flusher.close();
        }
        if let Ok(tail) = self.tail.lock() {
            let _ = tail.file.sync_data();
        }
        self.release_reserve();
    }
}

/// The hash a record carries of the line before it: the first 16 bytes of
/// its SHA-256, as hex.
fn chain_hash(line: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(line);
    let mut hex = String::with_capacity(32);
    for byte in &digest[..16] {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 15)] as char);
    }
    hex
}

/// Takes `RESERVE_BYTES` of real disk space (not a sparse file) beside the journal.
fn take_reserve(dir: &Path) -> Result<PathBuf, JournalError> {
    let path = dir.join("journal.reserve");
    let result = (|| {
        let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
        let block = vec![0u8; 64 << 10];
        let mut left = RESERVE_BYTES;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(JournalError::NoRoom {
                dir: dir.to_path_buf(),
                source: e,
            })
        }
    }
}

impl JournalWriter {
    /// Creates a run's directory and journal, writes the header, and takes
    /// the run's reserve of disk space.
    pub fn create(dir: &Path, header: &Header, runbook_text: &[u8]) -> Result<Self, JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::io("create the run directory", dir, e))?;
        let reserve = take_reserve(dir)?;
        let copy = dir.join("runbook.yaml");
        std::fs::write(&copy, runbook_text).map_err(|e| JournalError::io("write", &copy, e))?;
        let path = dir.join("journal.jsonl");
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| JournalError::io("create", &path, e))?;
        let writer = Self::from_file(path, file, 0, String::new(), Some(reserve));
        writer.write_record(|_, _| Record::Header(header.clone()), true)?;
        sync_dir(dir).map_err(|e| JournalError::io("sync", dir, e))?;
        if let Some(parent) = dir.parent() {
            let _ = sync_dir(parent);
        }
        Ok(writer)
    }

    /// Opens an existing journal to append to it (resume, rollback). A torn
    /// last line is cut off first, so that new lines start clean.
    pub fn append_to(journal: &Journal) -> Result<Self, JournalError> {
        let path = journal.dir.join("journal.jsonl");
        let reserve = take_reserve(&journal.dir)?;
        if journal.torn_tail {
            let text = std::fs::read(&path).map_err(|e| JournalError::io("read", &path, e))?;
            let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| JournalError::io("open", &path, e))?;
            file.set_len(keep as u64)
                .map_err(|e| JournalError::io("repair", &path, e))?;
            file.sync_all().map_err(|e| JournalError::io("sync", &path, e))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| JournalError::io("open", &path, e))?;
        let last = journal.events.last().map_or(0, |e| e.seq);
        Ok(Self::from_file(
            path,
            file,
            last,
            journal.last_hash.clone(),
            Some(reserve),
        ))
    }

    fn from_file(path: PathBuf, file: File, seq: u64, last: String, reserve: Option<PathBuf>) -> Self {
        let flusher = file.try_clone().ok().map(Flusher::start);
        Self {
            flusher,
            path,
            tail: Mutex::new(Tail {
                len: file.metadata().map_or(0, |m| m.len()),
                file,
                seq,
                last,
                broken: false,
            }),
            failed: Mutex::new(None),
            unrecorded: Mutex::new(Vec::new()),
            reserve: Mutex::new(reserve),
            on_failure: None,
        }
    }

    /// Where to send [`JOURNAL_FAILED`] when a write fails.
    pub fn stop_run_with(mut self, stop: UnboundedSender<&'static str>) -> Self {
        self.on_failure = Some(stop);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the journal could not be written, once a write has failed.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// The steps whose outcome could not be journaled: what they did is unknown.
    pub fn unrecorded(&self) -> Vec<String> {
        self.unrecorded
            .lock()
            .map(|u| u.iter().filter(|s| !s.starts_with('!')).cloned().collect())
            .unwrap_or_default()
    }

    /// Records the first failure and stops the run.
    fn fail(&self, error: &str) {
        if let Ok(mut failed) = self.failed.lock()
            && failed.is_none()
        {
            *failed = Some(error.to_string());
            if let Some(stop) = &self.on_failure {
                let _ = stop.send(JOURNAL_FAILED);
            }
        }
    }

    /// Gives the reserve back to the disk. True if there was one.
    fn release_reserve(&self) -> bool {
        let taken = self.reserve.lock().ok().and_then(|mut r| r.take());
        match taken {
            Some(path) => {
                let _ = std::fs::remove_file(&path);
                true
            }
            None => false,
        }
    }

    /// Writes one record, built from its sequence number and the hash of
    /// the line before it. A write that fails for want of space is tried
    /// once more with the reserve given back; a write that fails for good
    /// is cut off (so the journal holds whole records only) and refuses
    /// every later write.
    fn write_record(&self, record: impl FnOnce(u64, &str) -> Record, sync: bool) -> Result<u64, JournalError> {
        let mut tail = self
            .tail
            .lock()
            .map_err(|_| JournalError::io("lock", &self.path, io::Error::other("poisoned")))?;
        if tail.broken {
            return Err(JournalError::io(
                "write",
                &self.path,
                io::Error::other("an earlier write failed"),
            ));
        }
        let seq = tail.seq + 1;
        let record = record(seq, &tail.last);
        let is_header = matches!(record, Record::Header(_));
        let mut line = serde_json::to_string(&record)
            .map_err(|e| JournalError::io("encode an event for", &self.path, io::Error::other(e)))?;
        let hash = chain_hash(line.as_bytes());
        line.push('\n');
        let length = Some(tail.len);
        let mut result = write_line(&mut tail.file, line.as_bytes(), sync);
        if let Err(e) = &result
            && e.raw_os_error() == Some(nix::libc::ENOSPC)
            && self.release_reserve()
        {
            // The reserve lets this record and those of what is under way
            // land; the run is told to stop all the same.
            self.fail(&format!("{e}; the run stops while the journal can still record it"));
            truncate_to(&tail.file, length);
            result = write_line(&mut tail.file, line.as_bytes(), sync);
        }
        match result {
            Ok(()) => {
                if !is_header {
                    tail.seq = seq;
                }
                tail.len += line.len() as u64;
                tail.last = hash;
                Ok(seq)
            }
            Err(e) => {
                tail.broken = true;
                truncate_to(&tail.file, length);
                Err(JournalError::io("write", &self.path, e))
            }
        }
    }

    /// Appends one event; state changes are flushed to disk before returning.
    pub fn append(&self, event: &Event) -> Result<(), JournalError> {
        // Records that precede an action are flushed at once; outcomes and
        // log lines are flushed with the next of those, or by the flusher
        // within a millisecond (see [`Flusher`]).
        let precedes_action = matches!(
            event,
            Event::RunStarted { .. }
                | Event::StepStarted { .. }
                | Event::StepCheckpoint { .. }
                | Event::RollbackStarted { .. }
                | Event::RollbackRequested { .. }
                | Event::RunResumed { .. }
                | Event::FinallyStarted { .. }
                | Event::RunFinished { .. }
        );
        let sync = precedes_action || self.flusher.is_none();
        let seq = self.write_record(
            |seq, prev| Record::Event {
                seq,
                at: now(),
                prev: prev.to_string(),
                event: event.clone(),
            },
            sync,
        )?;
        if let Some(flusher) = &self.flusher {
            flusher.mark(!sync);
        }
        crate::testing::crash_after_event(seq);
        Ok(())
    }
}

/// Writes a whole line (and flushes it when asked).
fn write_line(file: &mut File, line: &[u8], sync: bool) -> io::Result<()> {
    if let Some(fault) = crate::testing::journal_write_fault() {
        return Err(fault);
    }
    file.write_all(line)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

/// Cuts off what a failed write left of its line.
fn truncate_to(file: &File, length: Option<u64>) {
    if let Some(length) = length {
        let _ = file.set_len(length);
    }
}

impl Reporter for JournalWriter {
    fn event(&self, event: &Event) {
        // Live output goes to the step's log; progress is for the live view only.
        if matches!(event, Event::StepOutput { .. } | Event::StepProgress { .. }) {
            return;
        }
        if let Err(e) = self.append(event) {
            self.fail(&e.to_string());
            // An action whose start could not be recorded does not start;
            // an action under way whose end could not be recorded is unknown.
            let Ok(mut unrecorded) = self.unrecorded.lock() else {
                return;
            };
            match event {
                Event::StepStarted { step, .. } | Event::RollbackStarted { step, .. } => {
                    unrecorded.retain(|s| s != step);
                    unrecorded.push(format!("!{step}"));
                }
                Event::StepSucceeded { step, .. }
                | Event::StepFailed { step, .. }
                | Event::StepCancelled { step, .. }
                | Event::RollbackSucceeded { step, .. }
                | Event::RollbackFailed { step, .. }
                    if !unrecorded
                        .iter()
                        .any(|s| s == step || s.strip_prefix('!') == Some(step)) =>
                {
                    unrecorded.push(step.clone());
                }
                _ => {}
            }
        }
    }
}

/// Reads a run's journal.
pub fn read(state_dir: &Path, run_id: &str) -> Result<Journal, JournalError> {
    check_run_id(run_id)?;
    let dir = run_dir(state_dir, run_id);
    let path = dir.join("journal.jsonl");
    let file = File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => JournalError::NotFound {
            run: run_id.to_string(),
            dir: state_dir.join("runs"),
        },
        _ => JournalError::io("read", &path, e),
    })?;
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| JournalError::io("read", &path, e))?;
        if n == 0 {
            break;
        }
        lines.push(line);
    }
    let corrupt = |line: usize, reason: String| JournalError::Corrupt {
        run: run_id.to_string(),
        line,
        reason,
    };
    let changed = |line: usize| JournalError::Changed {
        run: run_id.to_string(),
        line,
    };
    let mut header: Option<Header> = None;
    let mut events = Vec::new();
    let mut torn_tail = false;
    let mut last_hash = String::new();
    let count = lines.len();
    for (i, raw) in lines.into_iter().enumerate() {
        let complete = raw.ends_with(b"\n");
        let body = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let parsed = std::str::from_utf8(body).map_err(|e| e.to_string()).and_then(|text| {
            // Check the format version before the shape, so a newer journal says so.
            let value: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if let Some(format) = value.get("format").and_then(Json::as_u64)
                && format > u64::from(FORMAT)
            {
                return Ok(Err(format as u32));
            }
            serde_json::from_value::<Record>(value)
                .map(Ok)
                .map_err(|e| e.to_string())
        });
        match parsed {
            Ok(Err(found)) => {
                return Err(JournalError::NewerFormat {
                    run: run_id.to_string(),
                    found,
                });
            }
            Ok(Ok(Record::Header(h))) if i == 0 => header = Some(h),
            Ok(Ok(Record::Header(_))) => return Err(corrupt(i + 1, "a second header".into())),
            Ok(Ok(Record::Event { seq, at, prev, event })) => {
                let Some(header) = &header else {
                    return Err(corrupt(i + 1, "an event before the header".into()));
                };
                // Journals from before records were chained are read as they are.
                let chained = header.format >= 2;
                let expected_seq = events.last().map_or(1, |e: &TimedEvent| e.seq + 1);
                if chained && (prev != last_hash || seq != expected_seq) {
                    return Err(changed(i + 1));
                }
                events.push(TimedEvent { seq, at, event });
            }
            Err(_) if i + 1 == count && !complete && i > 0 => torn_tail = true,
            Err(reason) => return Err(corrupt(i + 1, reason)),
        }
        if !torn_tail {
            last_hash = chain_hash(body);
        }
    }
    let header = header.ok_or_else(|| corrupt(1, "the journal is empty".into()))?;
    Ok(Journal {
        dir,
        header,
        events,
        torn_tail,
        last_hash,
    })
}

/// A run id is a name, never a path: `show ../../x` reads nothing outside
/// the state directory.
pub fn check_run_id(run_id: &str) -> Result<(), JournalError> {
    let valid = !run_id.is_empty()
        && run_id.len() <= 200
        && !run_id.starts_with('.')
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !run_id.contains("..");
    if valid {
        Ok(())
    } else {
        Err(JournalError::BadRunId {
            run: crate::printable::line(run_id).into_owned(),
        })
    }
}

/// A run, as `runbook runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunListing {
    pub run_id: String,
    pub runbook: String,
    pub started_at: String,
    pub duration_ms: Option<u64>,
    pub status: String,
    /// The state directory it is journaled in, absolute.
    pub state_dir: PathBuf,
}

/// Every run in a state directory, newest first. Unreadable runs are listed
/// with their error as status rather than hidden.
pub fn list(state_dir: &Path) -> Result<Vec<RunListing>, JournalError> {
    let absolute = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let runs = state_dir.join("runs");
    let entries = match std::fs::read_dir(&runs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(JournalError::io("read", &runs, e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let run_id = entry.file_name().to_string_lossy().into_owned();
        match read(state_dir, &run_id) {
            Ok(journal) => {
                let state = journal.state();
                out.push(RunListing {
                    run_id,
                    runbook: journal.header.runbook.clone(),
                    started_at: journal.header.started_at.clone(),
                    duration_ms: state.summary().map(|s| s.duration_ms),
                    status: state.status_name(|| pid_alive(journal.header.pid)).to_string(),
                    state_dir: absolute.clone(),
                })
            }
            Err(e) => out.push(RunListing {
                run_id,
                runbook: "?".into(),
                started_at: String::new(),
                duration_ms: None,
                status: format!("unreadable: {e}"),
                state_dir: absolute.clone(),
            }),
        }
    }
    out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.run_id.cmp(&a.run_id)));
    Ok(out)
}
