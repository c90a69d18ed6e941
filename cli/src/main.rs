//! The `runbook` command-line program: argument parsing, terminal I/O and
//! exit statuses. Everything else lives in the engine, so it can be embedded.

mod console;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use console::{Console, Style, TerminalOperator};
use runbook_engine::diagnostic::{RenderOptions, render};
use runbook_engine::execute::{RunRequest, Unattended};
use runbook_engine::plan::{PlanRequest, render_dot, render_mermaid, render_text};
use runbook_engine::{Diagnostic, Registry, SourceFile, exit};
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
        #[arg(long, value_name = "DURATION", value_parser = duration)]
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
    },
    /// Print the JSON Schema of the runbook format.
    Schema,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

fn duration(text: &str) -> Result<Duration, String> {
    runbook_engine::parse::raw::parse_duration(text)
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
            };
            run(&terminal, registry, &file, options)
        }
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
    match std::fs::read(path) {
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
        let (source, loaded) = runbook_engine::load_bytes(&name, &bytes, registry);
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
    let (source, loaded) = runbook_engine::load_bytes(&name, &bytes, registry);
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            terminal.diagnostics(&source, &diagnostics);
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            terminal.error(&format!("{name}: {}; no plan", plural(errors, "error")));
            return exit::INVALID;
        }
    };
    terminal.diagnostics(&source, &loaded.warnings);
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
}

fn run(terminal: &Terminal, registry: Arc<Registry>, path: &Path, options: RunOptions) -> i32 {
    let Some(bytes) = read(terminal, path) else {
        return exit::INVALID;
    };
    let name = path.display().to_string();
    let (source, loaded) = runbook_engine::load_bytes(&name, &bytes, &registry);
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            terminal.diagnostics(&source, &diagnostics);
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            terminal.error(&format!("{name}: {}; nothing was run", plural(errors, "error")));
            return exit::INVALID;
        }
    };
    terminal.diagnostics(&source, &loaded.warnings);
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
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
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
        let env = |name: &str| std::env::var(name).ok();
        let request = RunRequest {
            inputs: options.inputs,
            env: &env,
            base_dir,
            step_mode: options.step,
            yes: options.yes,
            no_rollback: options.no_rollback,
            timeout: options.timeout,
            kill_grace: options.grace,
            run_id: None,
        };
        let signals = runbook_engine::execute::listen_for_signals();
        let reporter: Arc<dyn runbook_engine::execute::Reporter> = console.clone();
        match runbook_engine::execute::execute(compiled, registry, request, operator, reporter, signals).await {
            Ok(summary) => {
                console.finish();
                console.summary(&summary);
                summary.status.exit_code()
            }
            Err(diagnostics) => {
                console.finish();
                terminal.diagnostics(&source, &diagnostics);
                terminal.error(&format!("{name}: the run cannot start; nothing was run"));
                exit::INVALID
            }
        }
    })
}
