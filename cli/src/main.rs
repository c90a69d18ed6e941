//! The `runbook` command-line program: argument parsing, terminal I/O and
//! exit statuses. Everything else lives in the engine, so it can be embedded.

mod console;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use console::{Console, Style, TerminalOperator};
use runbook_engine::diagnostic::{RenderOptions, render};
use runbook_engine::execute::{Mode, RunRequest, StateRequest, Unattended};
use runbook_engine::plan::{PlanRequest, render_dot, render_mermaid, render_text};
use runbook_engine::{Diagnostic, Registry, SourceFile, exit, printable};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "runbook",
    version,
    about = "Declarative runbooks for incidents: check them, plan them, run them."
)]
#[command(propagate_version = true, max_term_width = 100)]
struct Cli {
    /// When to use colours: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Check runbooks for every error, without running anything.
    Check {
        /// Runbook files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Show what a run would do, without doing anything (the dry run).
    Plan {
        /// The runbook file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// An input value, `NAME=VALUE` (repeatable).
        #[arg(short, long = "input", value_name = "NAME=VALUE", value_parser = key_value)]
        inputs: Vec<(String, String)>,
        /// Assume a value known only at run time, to explore a branch:
        /// `steps.ID.outputs.NAME=VALUE` or `steps.ID.status=failed` (repeatable).
        #[arg(short, long, value_name = "PATH=VALUE", value_parser = key_value)]
        assume: Vec<(String, String)>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Run a runbook: steps in order and in parallel, with confirmations,
    /// verification, retries, and rollback when a step fails.
    Run {
        /// The runbook file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// An input value, `NAME=VALUE` (repeatable).
        #[arg(short, long = "input", value_name = "NAME=VALUE", value_parser = key_value)]
        inputs: Vec<(String, String)>,
        /// Answer yes to every confirmation.
        #[arg(short, long)]
        yes: bool,
        /// Ask before every step: yes, no, skip, or continue without asking.
        #[arg(long)]
        step: bool,
        /// When a step fails, leave everything as it is for inspection.
        #[arg(long)]
        no_rollback: bool,
        /// A time limit for the whole run, e.g. `10m`; on expiry the run rolls back.
        #[arg(long, value_name = "DURATION", value_parser = timeout)]
        timeout: Option<Duration>,
        /// How long cancelled steps' processes get between SIGTERM and SIGKILL.
        #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "5s")]
        grace: Duration,
        /// How to report progress: text for people, json for tools (one event per line).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// More logs on stderr (-v, -vv).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Continue a run that died (killed process, lost machine) from its journal.
    Resume {
        #[command(flatten)]
        journal: JournalRunArgs,
        /// Resume even though the runbook file changed since the run started.
        #[arg(long)]
        force: bool,
    },
    /// Roll back what a finished or failed run did, from its journal.
    Rollback {
        #[command(flatten)]
        journal: JournalRunArgs,
    },
    /// List the runs kept in a state directory.
    Runs {
        /// A runbook file: list the runs kept beside it.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show one run's timeline.
    Show {
        /// The run's id (see `runbook runs`).
        run: String,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Print the JSON Schema of the runbook format.
    Schema,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What `resume` and `rollback` take: a journaled run and how to run it.
#[derive(clap::Args, Clone)]
struct JournalRunArgs {
    /// The run's id (see `runbook runs`).
    run: String,
    /// An input the journal keeps masked because its value held a secret,
    /// given again: `NAME=VALUE` (repeatable).
    #[arg(short, long = "input", value_name = "NAME=VALUE", value_parser = key_value)]
    inputs: Vec<(String, String)>,
    /// Answer yes to every question (re-run steps that were in flight without asking).
    #[arg(short, long)]
    yes: bool,
    /// How long cancelled steps' processes get between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "5s")]
    grace: Duration,
    /// How to report progress: text for people, json for tools (one event per line).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    report: ReportArgs,
}

/// Where runs are journaled.
#[derive(clap::Args, Clone, Default)]
struct StateArgs {
    /// The state directory (default: $RUNBOOK_STATE_DIR, else `.runbook` beside the runbook,
    /// or in the current directory for commands that take a run id).
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,
}

impl StateArgs {
    fn resolve(&self, beside: Option<&Path>) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os(runbook_engine::journal::STATE_DIR_ENV).filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        match beside.and_then(Path::parent) {
            Some(parent) if !parent.as_os_str().is_empty() => parent.join(".runbook"),
            _ => PathBuf::from(".runbook"),
        }
    }
}

/// Reports of a run.
#[derive(clap::Args, Clone, Default)]
struct ReportArgs {
    /// Write a report of the run to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// The report's format: md (for the incident ticket), json, or junit (for CI drills).
    #[arg(long, value_name = "FORMAT", default_value = "md", value_parser = ["md", "json", "junit"])]
    report_format: String,
    /// Append one JSON line about the run to this file (drill history).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

fn duration(text: &str) -> Result<Duration, String> {
    runbook_engine::parse::raw::parse_duration(text)
}

fn timeout(text: &str) -> Result<Duration, String> {
    runbook_engine::parse::raw::parse_timeout(text)
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
    Mermaid,
    Dot,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, found `{text}`")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = match cli.color {
        ColorChoice::Always => (true, true),
        ColorChoice::Never => (false, false),
        ColorChoice::Auto => {
            let allowed = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            (
                allowed && std::io::stdout().is_terminal(),
                allowed && std::io::stderr().is_terminal(),
            )
        }
    };
    let terminal = Terminal {
        stdout_color: color.0,
        stderr_color: color.1,
    };
    let mut registry = Registry::new();
    stdlib_steps::register(&mut registry);
    let registry = Arc::new(registry);
    let code = match cli.command {
        Command::Check { files } => check(&terminal, &registry, &files),
        Command::Plan {
            file,
            inputs,
            assume,
            format,
        } => plan(&terminal, &registry, &file, inputs, assume, format),
        Command::Run {
            file,
            inputs,
            yes,
            step,
            no_rollback,
            timeout,
            grace,
            output,
            verbose,
            state,
            report,
        } => {
            init_logs(verbose);
            let options = RunOptions {
                inputs,
                yes,
                step,
                no_rollback,
                timeout,
                grace,
                output,
                state_dir: state.resolve(Some(&file)),
                report,
            };
            run(&terminal, registry, &file, options)
        }
        Command::Resume { journal, force } => {
            let run_id = journal.run.clone();
            from_journal(
                &terminal,
                registry,
                &run_id,
                RunOptions::for_journal(journal),
                force,
                false,
            )
        }
        Command::Rollback { journal } => {
            let run_id = journal.run.clone();
            from_journal(
                &terminal,
                registry,
                &run_id,
                RunOptions::for_journal(journal),
                true,
                true,
            )
        }
        Command::Runs { file, format, state } => runs(&terminal, &state.resolve(file.as_deref()), format),
        Command::Show {
            run: run_id,
            format,
            state,
            report,
        } => show(&terminal, &state.resolve(None), &run_id, format, &report),
        Command::Schema => {
            let schema = runbook_engine::schema::format_schema(&registry);
            print_stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            ))
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "runbook", &mut std::io::stdout());
            exit::SUCCESS
        }
    };
    ExitCode::from(code as u8)
}

struct Terminal {
    stdout_color: bool,
    stderr_color: bool,
}

impl Terminal {
    fn diagnostics(&self, source: &SourceFile, diagnostics: &[Diagnostic]) {
        if diagnostics.is_empty() {
            return;
        }
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100);
        let options = RenderOptions {
            color: self.stderr_color,
            unicode: true,
            width,
        };
        eprint!("{}", render(source, diagnostics, options));
    }

    fn error(&self, message: &str) {
        if self.stderr_color {
            eprintln!("\x1b[1;31merror:\x1b[0m {message}");
        } else {
            eprintln!("error: {message}");
        }
    }
}

/// Writes to stdout; a closed pipe (`runbook plan x | head`) is not an error.
fn print_stdout(text: &str) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => exit::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::SUCCESS,
        Err(_) => exit::INVALID,
    }
}

fn read(terminal: &Terminal, path: &Path) -> Option<Vec<u8>> {
    match runbook_engine::files::read_regular(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ if path.is_dir() => "it is a directory, not a runbook file".to_string(),
                _ => e.to_string(),
            };
            terminal.error(&format!("cannot read `{}`: {reason}", path.display()));
            None
        }
    }
}

/// Loads a runbook, showing its warnings, or its errors and what did not happen.
fn load(
    terminal: &Terminal,
    registry: &Registry,
    path: &Path,
    bytes: &[u8],
    consequence: &str,
) -> Option<(SourceFile, runbook_engine::Loaded)> {
    let (source, loaded) = runbook_engine::load_path(path, bytes, registry);
    match loaded {
        Ok(loaded) => {
            terminal.diagnostics(&source, &loaded.warnings);
            Some((source, loaded))
        }
        Err(diagnostics) => {
            terminal.diagnostics(&source, &diagnostics);
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            terminal.error(&format!(
                "{}: {}; {consequence}",
                path.display(),
                plural(errors, "error")
            ));
            None
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn check(terminal: &Terminal, registry: &Registry, files: &[PathBuf]) -> i32 {
    let mut code = exit::SUCCESS;
    for path in files {
        let Some(bytes) = read(terminal, path) else {
            code = exit::INVALID;
            continue;
        };
        let name = path.display().to_string();
        let (source, loaded) = runbook_engine::load_path(path, &bytes, registry);
        match loaded {
            Ok(loaded) => {
                terminal.diagnostics(&source, &loaded.warnings);
                let runbook = &loaded.compiled.runbook;
                let mut line = format!(
                    "ok: {name}: {} in {}",
                    plural(runbook.steps.len(), "step"),
                    plural(loaded.compiled.graph.waves.len(), "wave")
                );
                if !runbook.finally.is_empty() {
                    line.push_str(&format!(", {} finally", runbook.finally.len()));
                }
                if !loaded.warnings.is_empty() {
                    line.push_str(&format!(", {}", plural(loaded.warnings.len(), "warning")));
                }
                if print_stdout(&format!("{line}\n")) != exit::SUCCESS {
                    code = exit::INVALID;
                }
            }
            Err(diagnostics) => {
                terminal.diagnostics(&source, &diagnostics);
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                terminal.error(&format!("{name}: {}; nothing was run", plural(errors, "error")));
                code = exit::INVALID;
            }
        }
    }
    code
}

fn plan(
    terminal: &Terminal,
    registry: &Registry,
    path: &Path,
    inputs: Vec<(String, String)>,
    assume: Vec<(String, String)>,
    format: PlanFormat,
) -> i32 {
    let Some(bytes) = read(terminal, path) else {
        return exit::INVALID;
    };
    let name = path.display().to_string();
    let Some((source, loaded)) = load(terminal, registry, path, &bytes, "no plan") else {
        return exit::INVALID;
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let env = |name: &str| std::env::var(name).ok();
    let file_exists = |file: &str| base.join(file).is_file();
    let request = PlanRequest {
        inputs,
        assume,
        env: Some(&env),
        file_exists: Some(&file_exists),
    };
    match runbook_engine::plan::plan(&loaded.compiled, registry, &request) {
        Ok((plan, warnings)) => {
            terminal.diagnostics(&source, &warnings);
            let text = match format {
                PlanFormat::Text => render_text(&plan, terminal.stdout_color),
                PlanFormat::Json => format!("{}\n", serde_json::to_string_pretty(&plan).unwrap_or_default()),
                PlanFormat::Mermaid => render_mermaid(&plan),
                PlanFormat::Dot => render_dot(&plan),
            };
            print_stdout(&text)
        }
        Err(diagnostics) => {
            terminal.diagnostics(&source, &diagnostics);
            terminal.error(&format!("{name}: cannot plan with these inputs"));
            exit::INVALID
        }
    }
}

fn init_logs(verbose: u8) {
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

struct RunOptions {
    inputs: Vec<(String, String)>,
    yes: bool,
    step: bool,
    no_rollback: bool,
    timeout: Option<Duration>,
    grace: Duration,
    output: OutputFormat,
    state_dir: PathBuf,
    report: ReportArgs,
}

impl RunOptions {
    /// `resume` and `rollback`: the inputs come from the journal.
    fn for_journal(args: JournalRunArgs) -> Self {
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
        }
    }
}

fn run(terminal: &Terminal, registry: Arc<Registry>, path: &Path, options: RunOptions) -> i32 {
    let Some(bytes) = read(terminal, path) else {
        return exit::INVALID;
    };
    execute_runbook(terminal, registry, path, bytes, options, Mode::Run)
}

/// `resume` and `rollback`: a run picked up from its journal.
fn from_journal(
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
    if journal.torn_tail {
        eprintln!("note: the last line of the journal was cut short by a crash and is ignored");
    }
    let path = journal.header.runbook_path.clone();
    let copy = journal.dir.join("runbook.yaml");
    let current = runbook_engine::files::read_regular(&path).ok();
    let bytes = match current {
        // Rollback undoes what ran: always the runbook as it was.
        _ if rollback => runbook_engine::files::read_regular(&copy).ok(),
        Some(bytes) if runbook_engine::journal::sha256(&bytes) == journal.header.runbook_sha256 => Some(bytes),
        Some(bytes) if force => {
            eprintln!(
                "warning: {} changed since run {run_id} started; resuming with the new version (--force)",
                path.display()
            );
            Some(bytes)
        }
        Some(_) => {
            terminal.error(&format!(
                "{} changed since run {run_id} started; resuming it could run steps that differ from the ones journaled\n  help: review the change, then pass `--force` to resume with the new version",
                path.display()
            ));
            return exit::INVALID;
        }
        None => {
            eprintln!("note: {} is gone; using the copy kept with the run", path.display());
            runbook_engine::files::read_regular(&copy).ok()
        }
    };
    let Some(bytes) = bytes else {
        terminal.error(&format!(
            "cannot read the runbook of run {run_id} ({} or {})",
            path.display(),
            copy.display()
        ));
        return exit::INVALID;
    };
    let mode = if rollback {
        Mode::Rollback(Box::new(journal))
    } else {
        Mode::Resume(Box::new(journal))
    };
    execute_runbook(terminal, registry, &path, bytes, options, mode)
}

fn execute_runbook(
    terminal: &Terminal,
    registry: Arc<Registry>,
    path: &Path,
    bytes: Vec<u8>,
    options: RunOptions,
    mode: Mode,
) -> i32 {
    let name = path.display().to_string();
    let Some((source, loaded)) = load(terminal, &registry, path, &bytes, "nothing was run") else {
        return exit::INVALID;
    };
    let rolling_back = matches!(mode, Mode::Rollback(_));
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
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
        let console = Console::new(style, terminal.stderr_color);
        let operator: Arc<dyn runbook_engine::execute::Operator> = if interactive {
            Arc::new(TerminalOperator {
                console: console.clone(),
                interactive: true,
            })
        } else {
            Arc::new(Unattended { yes: options.yes })
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
        };
        let signals = runbook_engine::execute::listen_for_signals();
        let reporter: Arc<dyn runbook_engine::execute::Reporter> = console.clone();
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

/// Writes a file whole or not at all: beside it, then renamed over it.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_reports(terminal: &Terminal, state_dir: &Path, run_id: &str, args: &ReportArgs) -> Result<(), ()> {
    if args.report.is_none() && args.history.is_none() {
        return Ok(());
    }
    let journal = runbook_engine::journal::read(state_dir, run_id).map_err(|e| terminal.error(&e.to_string()))?;
    let record = runbook_engine::report::RunRecord {
        header: &journal.header,
        events: &journal.events,
        summary: journal.finished(),
    };
    let mut result = Ok(());
    if let Some(path) = &args.report {
        let format = args
            .report_format
            .parse()
            .unwrap_or(runbook_engine::report::ReportFormat::Markdown);
        let text = runbook_engine::report::render(&record, format);
        if let Err(e) = write_atomically(path, &text) {
            terminal.error(&format!("cannot write the report {}: {e}", path.display()));
            result = Err(());
        }
    }
    if let Some(path) = &args.history {
        let line = format!("{}\n", runbook_engine::report::history_line(&record));
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_data()));
        if let Err(e) = appended {
            terminal.error(&format!("cannot append to the history {}: {e}", path.display()));
            result = Err(());
        }
    }
    result
}

fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn runs(terminal: &Terminal, state_dir: &Path, format: OutputFormat) -> i32 {
    let listing = match runbook_engine::journal::list(state_dir) {
        Ok(listing) => listing,
        Err(e) => {
            terminal.error(&format!("{e}\n  help: {}", e.help()));
            return exit::INVALID;
        }
    };
    let text = match format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&listing).unwrap_or_default()),
        OutputFormat::Text if listing.is_empty() => format!("no runs in {}\n", state_dir.display()),
        OutputFormat::Text => {
            let mut out = format!(
                "{:<26} {:<24} {:<25} {:>9}  {}\n",
                "RUN", "RUNBOOK", "STARTED", "DURATION", "STATUS"
            );
            for run in &listing {
                out.push_str(&format!(
                    "{:<26} {:<24} {:<25} {:>9}  {}\n",
                    run.run_id,
                    run.runbook,
                    run.started_at,
                    run.duration_ms.map(seconds).unwrap_or_else(|| "-".into()),
                    run.status
                ));
            }
            out
        }
    };
    print_stdout(&text)
}

fn show(terminal: &Terminal, state_dir: &Path, run_id: &str, format: OutputFormat, report: &ReportArgs) -> i32 {
    let journal = match runbook_engine::journal::read(state_dir, run_id) {
        Ok(journal) => journal,
        Err(e) => {
            terminal.error(&format!("{e}\n  help: {}", e.help()));
            return exit::INVALID;
        }
    };
    if write_reports(terminal, state_dir, run_id, report).is_err() {
        return exit::INVALID;
    }
    let record = runbook_engine::report::RunRecord {
        header: &journal.header,
        events: &journal.events,
        summary: journal.finished(),
    };
    let text = match format {
        OutputFormat::Json => runbook_engine::report::render(&record, runbook_engine::report::ReportFormat::Json),
        OutputFormat::Text => {
            let h = &journal.header;
            let mut out = format!(
                "run {} of {} ({})\nstarted {} on {} (pid {})\nstatus: {}\n\n",
                h.run_id,
                h.runbook,
                h.runbook_path.display(),
                h.started_at,
                h.host,
                h.pid,
                journal.status()
            );
            for timed in &journal.events {
                let line = serde_json::to_value(&timed.event).unwrap_or_default();
                let kind = line.get("event").and_then(|v| v.as_str()).unwrap_or("event");
                if kind == "step_output" {
                    continue;
                }
                let step = line.get("step").and_then(|v| v.as_str()).unwrap_or("");
                let detail = ["error", "reason", "action", "message"]
                    .iter()
                    .find_map(|k| line.get(*k).and_then(|v| v.as_str()))
                    .unwrap_or("");
                let time = timed.at.get(11..23).unwrap_or(&timed.at);
                let (step, detail) = (printable::line(step), printable::line(detail));
                out.push_str(&format!("{time}  {kind:<20} {step:<20} {detail}\n").replace("  \n", "\n"));
            }
            if journal.torn_tail {
                out.push_str("(the last line of the journal was cut short by a crash)\n");
            }
            out
        }
    };
    print_stdout(&text)
}
