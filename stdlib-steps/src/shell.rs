//! The `shell` step kind: runs a command, either a command line through
//! `sh -c` or a program with its arguments directly.

use indexmap::IndexMap;
use runbook_engine::step::{ParamProblem, StepKind};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::words::{any, code, field, keys, scalar, scalars};

/// Runs a command and fails when it exits with a code not in `ok_codes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shell;

/// Parameters of a `shell` step: a command given as `run` (a command line
/// for `sh -c`) or as `argv` (a program and its arguments, no shell), never
/// both.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellParams {
    /// A command line, run with `sh -c`. Give either `run` or `argv`.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub run: Option<String>,

    /// A program and its arguments, run directly without a shell, so nothing
    /// in them is expanded. Give either `run` or `argv`.
    #[serde(default)]
    #[schemars(with = "Vec<String>", length(min = 1))]
    pub argv: Option<Vec<String>>,

    /// Environment variables set for the command, name to value.
    #[serde(default)]
    pub env: IndexMap<String, String>,

    /// The directory the command runs in; by default the current directory.
    #[serde(default)]
    #[schemars(with = "String")]
    pub cwd: Option<String>,

    /// Text written to the command's standard input.
    #[serde(default)]
    #[schemars(with = "String")]
    pub stdin: Option<String>,

    /// The exit codes that count as success.
    #[serde(default = "default_ok_codes")]
    #[schemars(length(min = 1))]
    pub ok_codes: Vec<u8>,
}

fn default_ok_codes() -> Vec<u8> {
    vec![0]
}

impl StepKind for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn summary(&self) -> &'static str {
        "Run a command, through `sh -c` or directly."
    }

    fn params_schema(&self) -> Json {
        crate::schema_of::<ShellParams>()
    }

    fn validate(&self, params: &Json) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        let given = |name| params.get(name).is_some_and(|v| !v.is_null());
        match (given("run"), given("argv")) {
            (true, true) => problems.push(
                ParamProblem::new("/argv", "`run` and `argv` are both given")
                    .with_help("keep `run` to use a shell, or `argv` to run the program directly"),
            ),
            (false, false) => problems.push(
                ParamProblem::new("", "missing parameter `run` or `argv`")
                    .with_help("add `run:` with a command line, or `argv:` with a program and its arguments"),
            ),
            _ => {}
        }
        for name in keys(params, "env") {
            if name.is_empty() || name.contains(['=', '\0']) {
                problems.push(
                    ParamProblem::new(
                        crate::pointer("/env", &name),
                        format!("`{name}` is not a valid environment variable name"),
                    )
                    .with_help("a name cannot be empty or contain `=`"),
                );
            }
        }
        problems
    }

    fn describe(&self, params: &Json) -> String {
        let mut text = if let Some(run) = field(params, "run") {
            format!("run {} with sh", code(script_opening(&run)))
        } else {
            match params.get("argv") {
                Some(Json::Array(argv)) => {
                    format!("execute {} (no shell)", code(&command_line(argv)))
                }
                Some(argv) if scalar(argv).is_some() => {
                    format!("execute {} (no shell)", code(&any(argv)))
                }
                _ => "run a command (none given)".to_string(),
            }
        };
        if let Some(cwd) = field(params, "cwd") {
            text.push_str(&format!(" in {cwd}"));
        }
        let env = keys(params, "env");
        if !env.is_empty() {
            text.push_str(&format!(", env: {}", env.join(", ")));
        }
        if params.get("stdin").is_some_and(|v| !v.is_null()) {
            text.push_str(", with input on stdin");
        }
        let ok_codes = scalars(params, "ok_codes");
        if !ok_codes.is_empty() && ok_codes != ["0"] {
            let noun = if ok_codes.len() == 1 { "code" } else { "codes" };
            text.push_str(&format!(", accepting exit {noun} {}", ok_codes.join(", ")));
        }
        text
    }
}

/// Where a command line starts saying what it does: scripts often open with
/// `set -eu`, a shebang or comments, which would make every plan line read
/// `set -eu…`. `code` then keeps the first line of what is left.
fn script_opening(run: &str) -> &str {
    let boilerplate = |line: &str| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line.starts_with("set -") || line.starts_with("set +")
    };
    let mut rest = run;
    while let Some((line, tail)) = rest.split_once('\n') {
        if !boilerplate(line) {
            return rest;
        }
        rest = tail;
    }
    if boilerplate(rest) { run } else { rest }
}

/// `argv` as one line a person can read; arguments holding spaces or quotes
/// are quoted so that their boundaries stay visible.
fn command_line(argv: &[Json]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|arg| {
            let arg = any(arg);
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '\\')) {
                format!("'{}'", arg.replace('\'', r"'\''"))
            } else {
                arg
            }
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{assert_rejected, assert_valid, describe_all};
    use serde_json::json;

    #[test]
    fn good_params_pass() {
        assert_valid::<ShellParams>("shell", json!({"run": "systemctl restart ledger"}));
        assert_valid::<ShellParams>(
            "shell",
            json!({"argv": ["pg_dump", "--format", "c"], "env": {"PGHOST": "db"}, "cwd": "/srv", "stdin": "x", "ok_codes": [0, 3]}),
        );
        assert_valid::<ShellParams>(
            "shell",
            json!({"run": "{{ inputs.cmd }}", "env": {"A": "{{ secrets.a }}"}}),
        );
    }

    #[test]
    fn params_read_at_run_time() {
        let params: ShellParams = serde_json::from_value(json!({"run": "true"})).unwrap();
        assert_eq!(params.ok_codes, [0]);
        assert_eq!(params.argv, None);
        assert!(serde_json::from_value::<ShellParams>(json!({"run": "true", "shel": 1})).is_err());
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected(
            "shell",
            json!({"run": "a", "argv": ["b"]}),
            "/argv",
            "`run` and `argv` are both given",
        );
        assert_rejected("shell", json!({"cwd": "/srv"}), "", "missing parameter `run` or `argv`");
        assert_rejected(
            "shell",
            json!({"run": "a", "ok_codes": [0, 300]}),
            "/ok_codes/1",
            "above the maximum 255",
        );
        assert_rejected(
            "shell",
            json!({"run": "a", "ok_codes": []}),
            "/ok_codes",
            "needs at least 1 item",
        );
        assert_rejected(
            "shell",
            json!({"argv": "ls -l"}),
            "/argv",
            "`argv` must be a list, found a string",
        );
        assert_rejected(
            "shell",
            json!({"run": "a", "env": {"A=B": "c"}}),
            "/env/A=B",
            "not a valid environment variable name",
        );
        assert_rejected(
            "shell",
            json!({"run": "a", "cwd": null}),
            "/cwd",
            "`cwd` must be a string, found null",
        );
        assert_rejected(
            "shell",
            json!({"command": "a"}),
            "/command",
            "unknown parameter `command`",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "shell",
            &[
                json!({"run": "systemctl restart ledger"}),
                json!({"argv": ["pg_dump", "--format", "c"]}),
                json!({"argv": ["echo", "hello world", "", "it's"]}),
                json!({"run": "./deploy.sh", "cwd": "/srv/x", "env": {"TOKEN": "***", "A": "1"}, "stdin": "y", "ok_codes": [0, 3]}),
                json!({"run": "set -e\nmake\nmake install"}),
                json!({"run": "#!/bin/sh\n# Save the export.\nset -eu\nset -o pipefail\n\nmkdir -p \"$DIR\"\ncat > \"$DIR/x\"\n"}),
                json!({"run": "set -eu\nmake\n"}),
                json!({"run": "set -eu\n"}),
                json!({"run": format!("echo {}", "x".repeat(200))}),
                json!({"run": "kill <steps.start.outputs.pid>", "ok_codes": [1]}),
                json!({"argv": "<inputs.argv>"}),
                json!({"cwd": "/tmp"}),
            ],
        ));
    }
}
