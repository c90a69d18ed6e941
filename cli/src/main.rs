//! The `runbook` command-line program: argument parsing, terminal I/O and
//! exit statuses. Everything else lives in the engine, so it can be embedded.
//!
//! The arguments are in `args`, each command in a module of its own; this
//! file picks the command and holds what they all use: the terminal's
//! colours, errors and diagnostics, stdout, and reading a runbook.

mod args;
mod check;
mod console;
mod index;
mod plan;
mod plugins;
mod prompt;
mod reports;
mod run;
mod runs;

use args::{Cli, ColorChoice, Command};
use clap::{CommandFactory, Parser};
use run::RunOptions;
use runbook_engine::diagnostic::{RenderOptions, render};
use runbook_engine::{Diagnostic, Registry, SourceFile, exit};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

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
        Command::Check { files } => check::check(&terminal, &registry, &files),
        Command::Plan {
            file,
            inputs,
            assume,
            format,
        } => plan::plan(&terminal, &registry, &file, inputs, assume, format),
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
            person,
        } => {
            run::init_logs(verbose);
            let options = RunOptions {
                person,
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
            run::run(&terminal, registry, &file, options)
        }
        Command::Resume { mut journal, force } => {
            let run_id = journal.run.clone();
            journal.state.state_dir = Some(index::state_dir_of(&journal.state, &run_id));
            run::from_journal(
                &terminal,
                registry,
                &run_id,
                RunOptions::for_journal(journal),
                force,
                false,
            )
        }
        Command::Rollback { mut journal } => {
            let run_id = journal.run.clone();
            journal.state.state_dir = Some(index::state_dir_of(&journal.state, &run_id));
            run::from_journal(
                &terminal,
                registry,
                &run_id,
                RunOptions::for_journal(journal),
                true,
                true,
            )
        }
        // Without a runbook or a state directory: every run the index knows.
        Command::Runs { file, format, state } if file.is_none() && state.given().is_none() => {
            runs::every_run(&state.resolve(None), format)
        }
        Command::Runs { file, format, state } => runs::runs(&terminal, &state.resolve(file.as_deref()), format),
        Command::Show {
            run: run_id,
            format,
            state,
            report,
        } => runs::show(
            &terminal,
            &index::state_dir_of(&state, &run_id),
            &run_id,
            format,
            &report,
        ),
        Command::Schema { file } => {
            let registry = match &file {
                Some(file) => {
                    let Some(bytes) = read(&terminal, file) else {
                        return ExitCode::from(exit::INVALID as u8);
                    };
                    Arc::new(runbook_engine::plugin::registry_for(&registry, file, &bytes))
                }
                None => registry,
            };
            let schema = runbook_engine::schema::format_schema(&registry);
            print_stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            ))
        }
        Command::Plugins { file } => plugins::plugins(&terminal, &registry, file.as_deref()),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "runbook", &mut std::io::stdout());
            exit::SUCCESS
        }
    };
    ExitCode::from(code as u8)
}

/// Where the program talks to people: colours or not, errors, diagnostics.
pub struct Terminal {
    pub stdout_color: bool,
    pub stderr_color: bool,
}

impl Terminal {
    pub fn diagnostics(&self, source: &SourceFile, diagnostics: &[Diagnostic]) {
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

    pub fn error(&self, message: &str) {
        let paint = runbook_engine::paint::Paint::new(self.stderr_color);
        eprintln!("{} {message}", paint.bold_fg(anstyle::AnsiColor::Red, "error:"));
    }
}

/// Writes to stdout; a closed pipe (`runbook plan x | head`) is not an error.
pub fn print_stdout(text: &str) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => exit::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::SUCCESS,
        Err(_) => exit::INVALID,
    }
}

pub fn read(terminal: &Terminal, path: &Path) -> Option<Vec<u8>> {
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
pub fn load(
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

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
