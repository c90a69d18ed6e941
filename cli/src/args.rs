//! The command line as clap reads it: every subcommand, its flags and the
//! small parsers for their values. Kept apart from the commands so that the
//! whole surface of the program can be read, and completed, in one place.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "runbook",
    version,
    about = "Declarative runbooks for incidents: check them, plan them, run them."
)]
#[command(propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// When to use colours: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
pub enum Command {
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
        #[command(flatten)]
        person: PersonArgs,
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
    /// List runs: every run this user started (from the index of runs), or
    /// those kept in one state directory.
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
    /// Print the JSON Schema of the runbook format; with a runbook, its
    /// plugins' kinds included, so editors complete their parameters.
    Schema {
        /// A runbook whose plugins to include.
        file: Option<PathBuf>,
    },
    /// List the step plugins a runbook can use: where each was found, and
    /// its kinds with their summaries and parameters.
    Plugins {
        /// The runbook whose plugins to list (without one: those in
        /// ./plugins/ and every `runbook-plugin-NAME` on PATH).
        file: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What `resume` and `rollback` take: a journaled run and how to run it.
#[derive(clap::Args, Clone)]
pub struct JournalRunArgs {
    /// The run's id (see `runbook runs`).
    pub run: String,
    /// An input the journal keeps masked because its value held a secret,
    /// given again: `NAME=VALUE` (repeatable).
    #[arg(short, long = "input", value_name = "NAME=VALUE", value_parser = key_value)]
    pub inputs: Vec<(String, String)>,
    /// Answer yes to every question (re-run steps that were in flight without asking).
    #[arg(short, long)]
    pub yes: bool,
    /// How long cancelled steps' processes get between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "5s")]
    pub grace: Duration,
    /// How to report progress: text for people, json for tools (one event per line).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub person: PersonArgs,
}

/// The person at the terminal: who they are, how long a question waits,
/// and the transcript of what they saw.
#[derive(clap::Args, Clone, Default)]
pub struct PersonArgs {
    /// Who answers the questions, for the audit trail (default: the login user and host).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// How long a question waits for an answer; silence then counts as "no" and
    /// says so (default: no limit; time at a question never counts against a timeout).
    #[arg(long, value_name = "DURATION", value_parser = timeout)]
    pub answer_timeout: Option<Duration>,
    /// Write a plain-text transcript of everything shown, questions and answers included.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

/// Where runs are journaled.
#[derive(clap::Args, Clone, Default)]
pub struct StateArgs {
    /// The state directory (default: $RUNBOOK_STATE_DIR, else `.runbook` beside the runbook,
    /// or in the current directory for commands that take a run id; a run id not there is
    /// looked up in the index of runs).
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    /// The state directory given: with `--state-dir`, or in `RUNBOOK_STATE_DIR`.
    pub fn given(&self) -> Option<PathBuf> {
        self.state_dir.clone().or_else(|| {
            std::env::var_os(runbook_engine::journal::STATE_DIR_ENV)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
    }

    pub fn resolve(&self, beside: Option<&Path>) -> PathBuf {
        if let Some(dir) = self.given() {
            return dir;
        }
        match beside.and_then(Path::parent) {
            Some(parent) if !parent.as_os_str().is_empty() => parent.join(".runbook"),
            _ => PathBuf::from(".runbook"),
        }
    }
}

/// Reports of a run.
#[derive(clap::Args, Clone, Default)]
pub struct ReportArgs {
    /// Write a report of the run to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The report's format: md (for the incident ticket), json, or junit (for CI drills).
    #[arg(long, value_name = "FORMAT", default_value = "md", value_parser = ["md", "json", "junit"])]
    pub report_format: String,
    /// Append one JSON line about the run to this file (drill history).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

fn duration(text: &str) -> Result<Duration, String> {
    runbook_engine::words::parse_duration(text)
}

fn timeout(text: &str) -> Result<Duration, String> {
    runbook_engine::words::parse_timeout(text)
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PlanFormat {
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
