//! `runbook run`, `resume` and `rollback`: a runbook executed, afresh or
//! from its journal, with the live view on the terminal and the operator's
//! answers from it. The engine does the work; this wires the terminal, the
//! signals and the exit status around it.

use crate::args::{JournalRunArgs, OutputFormat, PersonArgs, ReportArgs};
use crate::console::{Console, Style};
use crate::prompt::{TerminalOperator, Tty};
use crate::reports::write_reports;
use crate::{Terminal, load, read};
use runbook_engine::execute::{Mode, RunRequest, StateRequest, Unattended};
use runbook_engine::{Registry, exit, printable};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The engine's own logs on stderr, for `-v` and `-vv`.
pub fn init_logs(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => "info",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .try_init();
}

/// How to run, whichever command asked: the flags of `run`, or of `resume` and `rollback`.
pub struct RunOptions {
    pub inputs: Vec<(String, String)>,
    pub yes: bool,
    pub step: bool,
    pub no_rollback: bool,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    pub output: OutputFormat,
    pub state_dir: PathBuf,
    pub report: ReportArgs,
    pub person: PersonArgs,
}

impl RunOptions {
    /// `resume` and `rollback`: the inputs come from the journal.
    pub fn for_journal(args: JournalRunArgs) -> Self {
        Self {
            inputs: args.inputs,
            yes: args.yes,
            step: false,
            no_rollback: false,
            timeout: None,
            grace: args.grace,
            output: args.output,
            state_dir: args.state.resolve(None),
            report: args.report,
            person: args.person,
        }
    }
}

/// `runbook run`: a runbook from its file, afresh.
pub fn run(terminal: &Terminal, registry: Arc<Registry>, path: &Path, options: RunOptions) -> i32 {
    let Some(bytes) = read(terminal, path) else {
        return exit::INVALID;
    };
    execute_runbook(terminal, registry, path, bytes, options, Mode::Run)
}

/// `resume` and `rollback`: a run picked up from its journal.
pub fn from_journal(
    terminal: &Terminal,
    registry: Arc<Registry>,
    run_id: &str,
    options: RunOptions,
    force: bool,
    rollback: bool,
) -> i32 {
    let journal = match runbook_engine::journal::read(&options.state_dir, run_id) {
        Ok(journal) => journal,
        Err(e) => {
            terminal.error(&format!("{e}\n  help: {}", e.help()));
            return exit::INVALID;
        }
    };
    // Which runbook to go on with is the engine's to decide; this only says what it found.
    let source = runbook_engine::journal::resume_source(&journal, force, rollback);
    let notes = match &source {
        Ok(source) => &source.notes,
        Err(error) => &error.notes,
    };
    for note in notes {
        eprintln!("{}: {note}", if note.is_warning() { "warning" } else { "note" });
    }
    let source = match source {
        Ok(source) => source,
        Err(error) => {
            let help = error.cause.help().map(|h| format!("\n  help: {h}")).unwrap_or_default();
            terminal.error(&format!("{error}{help}"));
            return exit::INVALID;
        }
    };
    let mode = if rollback {
        Mode::Rollback(Box::new(journal))
    } else {
        Mode::Resume(Box::new(journal))
    };
    execute_runbook(terminal, registry, &source.path, source.bytes, options, mode)
}

/// Loads the runbook and runs it in `mode`, showing the run on the terminal;
/// the exit status is the run's.
fn execute_runbook(
    terminal: &Terminal,
    registry: Arc<Registry>,
    path: &Path,
    bytes: Vec<u8>,
    options: RunOptions,
    mode: Mode,
) -> i32 {
    let name = path.display().to_string();
    let registry = Arc::new(runbook_engine::plugin::registry_for(&registry, path, &bytes));
    let Some((source, loaded)) = load(terminal, &registry, path, &bytes, "nothing was run") else {
        return exit::INVALID;
    };
    let rolling_back = matches!(mode, Mode::Rollback(_));
    // Questions go to the controlling terminal, so that a run whose output
    // is piped (`2>&1 | tee run.log`) still asks; a run started with
    // neither stdin nor stderr on a terminal (CI, cron) asks nobody.
    let tty = (std::io::stdin().is_terminal() || std::io::stderr().is_terminal())
        .then(Tty::open)
        .flatten();
    let log = match &options.person.log {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some(file),
            Err(e) => {
                terminal.error(&format!(
                    "cannot write the transcript {}: {}; nothing was run",
                    path.display(),
                    runbook_engine::kit::os_error_words(&e.to_string())
                ));
                return exit::INVALID;
            }
        },
        None => None,
    };
    let operator_name = options
        .person
        .operator
        .clone()
        .unwrap_or_else(runbook_engine::execute::login_name);
    let style = match options.output {
        OutputFormat::Json => Style::Json,
        OutputFormat::Text if std::io::stderr().is_terminal() => Style::Live,
        OutputFormat::Text => Style::Plain,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            terminal.error(&format!("cannot start the runtime: {e}"));
            return exit::INVALID;
        }
    };
    let compiled = Arc::new(loaded.compiled);
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base_dir = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    let state_dir = options.state_dir.clone();
    let report = options.report.clone();
    runtime.block_on(async move {
        let console = Console::new(style, terminal.stderr_color, log);
        let operator: Arc<dyn runbook_engine::execute::Operator> = match tty {
            Some(tty) => Arc::new(TerminalOperator {
                console: console.clone(),
                tty,
                limit: options.person.answer_timeout,
            }),
            None => Arc::new(Unattended { yes: options.yes }),
        };
        let request = RunRequest {
            inputs: options.inputs,
            env: runbook_engine::execute::process_env(),
            base_dir,
            step_mode: options.step,
            yes: options.yes,
            no_rollback: options.no_rollback,
            timeout: options.timeout,
            kill_grace: options.grace,
            run_id: None,
            state: Some(StateRequest {
                state_dir: state_dir.clone(),
                runbook_path: absolute,
                runbook_text: bytes.into(),
            }),
            mode,
            secrets: None,
            operator: operator_name,
        };
        let signals = runbook_engine::execute::listen_for_signals();
        let reporter = crate::index::Recording::around(console.clone(), &state_dir);
        match runbook_engine::execute::execute(compiled, registry, request, operator, reporter, signals).await {
            Ok(summary) => {
                console.finish();
                console.summary(&summary);
                if options.output == OutputFormat::Text {
                    let dir = runbook_engine::journal::run_dir(&state_dir, &summary.run_id);
                    eprintln!("journal: {}", dir.display());
                    if summary.status != runbook_engine::execute::RunStatus::Succeeded {
                        eprintln!("  runbook show {} --state-dir {}", summary.run_id, state_dir.display());
                    }
                }
                let mut code = summary.status.exit_code();
                if write_reports(terminal, &state_dir, &summary.run_id, &report).is_err() {
                    code = code.max(exit::INVALID);
                }
                code
            }
            Err(diagnostics) => {
                console.finish();
                // A rollback with nothing left to undo has done what was asked.
                if rolling_back
                    && diagnostics
                        .iter()
                        .all(|d| d.code == runbook_engine::execute::codes::NOTHING_TO_DO)
                {
                    for diagnostic in &diagnostics {
                        eprintln!("note: {}", printable::line(&diagnostic.message));
                    }
                    return exit::SUCCESS;
                }
                // The operator said no to the rollback: nothing was done.
                if let Some(declined) = diagnostics
                    .iter()
                    .find(|d| d.code == runbook_engine::execute::codes::DECLINED)
                {
                    eprintln!("{}", printable::line(&declined.message));
                    return exit::CANCELLED;
                }
                terminal.diagnostics(&source, &diagnostics);
                if diagnostics
                    .iter()
                    .any(|d| d.code == runbook_engine::execute::codes::RECOVER)
                {
                    return exit::NEEDS_A_PERSON;
                }

                terminal.error(&format!("{name}: the run cannot start; nothing was run"));
                exit::INVALID
            }
        }
    })
}
