//! A plugin's kind as a step kind: one attempt is one `run` of the plugin,
//! under the same process supervisor as a `shell` step.

use super::Plugin;
use super::describe::stderr_tail;
use super::protocol::{KindInfo, MAX_LINE, Message, PROTOCOL, Request, read_message};
use crate::kit::process::output::{Capture, Reader, pump};
use crate::kit::process::{ProcessToken, StepProcesses};
use crate::step::{OutputStream, RecoverFuture, StepContext, StepError, StepFuture, StepKind, Undo};
use serde_json::{Value as Json, json};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// The key of an undo's parameters: the step's own and its result.
const UNDO: &str = "$undo";

/// One kind of a plugin.
#[derive(Debug)]
pub struct PluginKind {
    /// `PLUGIN.KIND`.
    name: &'static str,
    summary: &'static str,
    plugin: String,
    path: PathBuf,
    /// The path as messages show it.
    shown: String,
    /// Where the plugin runs: the runbook's folder.
    dir: PathBuf,
    info: KindInfo,
}

impl PluginKind {
    pub fn new(plugin: &Plugin, info: &KindInfo, dir: &Path) -> Self {
        // A kind's name lives as long as the program: registries hold names
        // as `&'static str`, and a plugin adds a few per run.
        let name: &'static str = Box::leak(format!("{}.{}", plugin.name, info.name).into_boxed_str());
        let summary: &'static str = Box::leak(info.summary.clone().into_boxed_str());
        Self {
            name,
            summary,
            plugin: plugin.name.clone(),
            path: plugin.path.clone(),
            shown: plugin.shown.clone(),
            dir: dir.to_path_buf(),
            info: info.clone(),
        }
    }

    /// `plugin `flags` (plugins/flags.py)`: how messages name it.
    fn named(&self) -> String {
        format!("plugin `{}` ({})", self.plugin, self.shown)
    }

    /// A failure the plugin caused by misbehaving.
    fn misbehaved(&self, what: impl std::fmt::Display) -> StepError {
        StepError::new(format!("{} {what}", self.named()))
    }
}

impl StepKind for PluginKind {
    fn name(&self) -> &'static str {
        self.name
    }

    fn summary(&self) -> &'static str {
        self.summary
    }

    fn params_schema(&self) -> Json {
        self.info.params.clone()
    }

    fn read_only(&self) -> bool {
        self.info.read_only
    }

    fn describe(&self, params: &Json) -> String {
        let Some(template) = &self.info.describe else {
            return format!("run `{}`", self.name);
        };
        let context = minijinja::Value::from(minijinja::value::Serde(json!({ "params": params })));
        match crate::template::render(template, &context) {
            Ok(text) if !text.trim().is_empty() => text,
            _ => format!("run `{}`", self.name),
        }
    }

    fn undo_summary(&self, _params: &Json) -> Option<String> {
        self.info
            .undo
            .then(|| format!("undo it through plugin `{}`", self.plugin))
    }

    fn undo(&self, params: &Json, result: &Json) -> Option<Undo> {
        self.info.undo.then(|| Undo {
            kind: self.name.to_string(),
            params: json!({ UNDO: { "params": params, "result": result } }),
            description: format!("undo `{}` through plugin `{}`", self.name, self.plugin),
        })
    }

    /// The step's parameters as rendered now replace the journaled ones,
    /// whose secrets are masked; the result stays as journaled.
    fn refresh_undo(&self, undo: &Undo, params: &Json) -> Option<Undo> {
        let mut undo = undo.clone();
        let inner = undo.params.get_mut(UNDO)?.as_object_mut()?;
        inner.insert("params".into(), params.clone());
        Some(undo)
    }

    fn recover<'a>(&'a self, checkpoint: &'a Json) -> RecoverFuture<'a> {
        Box::pin(crate::kit::process::recover(checkpoint))
    }

    fn run(&self, cx: StepContext) -> StepFuture<'_> {
        Box::pin(self.converse(cx))
    }
}

/// How the plugin's answer on stdout went.
enum Answer {
    /// Its final message.
    Final(Result<Json, StepError>),
    /// It ended stdout without one.
    Nothing,
    /// It broke the protocol; it is stopped.
    Broken(StepError),
}

impl PluginKind {
    async fn converse(&self, cx: StepContext) -> Result<Json, StepError> {
        let (params, undo, result) = match cx.params.get(UNDO) {
            Some(undo) => (&undo["params"], true, Some(&undo["result"])),
            None => (&cx.params, false, None),
        };
        let kind = &self.info.name;
        let request = Request {
            protocol: PROTOCOL,
            kind,
            params,
            run_id: &cx.run_id,
            step_id: &cx.step_id,
            attempt: cx.attempt,
            idempotency_key: &cx.idempotency_key,
            undo,
            result,
        };
        let mut request = serde_json::to_vec(&request).map_err(|e| StepError::new(e.to_string()))?;
        request.push(b'\n');
        if cx.cancel.is_cancelled() {
            return Err(crate::kit::cancelled());
        }

        let mut command = tokio::process::Command::new(&self.path);
        command
            .arg("run")
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let token = ProcessToken::for_attempt(&cx);
        let (mut child, mut processes) = StepProcesses::spawn(&mut command, &token).map_err(|e| {
            self.misbehaved(format_args!(
                "cannot be started: {}",
                crate::kit::os_error_words(&e.to_string())
            ))
        })?;
        if let Err(error) = cx.host.checkpoint(&cx.step_id, processes.checkpoint().to_json()) {
            processes.kill_now();
            let _ = child.wait().await;
            return Err(self.misbehaved(format_args!("was stopped as soon as it started: {error}")));
        }
        let _feed = child.stdin.take().map(|mut stdin| {
            AbortOnDropHandle::new(tokio::spawn(async move {
                // A plugin that exits without reading its request is judged by what it prints.
                let _ = stdin.write_all(&request).await;
            }))
        });
        let ended = CancellationToken::new();
        let stderr = child.stderr.take().map(|stderr| {
            AbortOnDropHandle::new(tokio::spawn(pump(
                Box::new(stderr) as Reader,
                OutputStream::Stderr,
                Arc::clone(&cx.host),
                cx.step_id.clone(),
                ended.clone(),
            )))
        });
        let Some(stdout) = child.stdout.take() else {
            return Err(self.misbehaved("has no stdout"));
        };

        let answer = tokio::select! {
            answer = self.read_answer(stdout, &cx) => answer,
            () = cx.cancel.cancelled() => {
                processes.stop(&mut child, cx.kill_grace).await;
                ended.cancel();
                // What it said on stderr is kept, as a `shell` step's is: it
                // often says why it hung.
                let stderr = captured(stderr).await;
                let stopped = format!("{} was stopped", self.named());
                return Err(crate::kit::cancelled().with_result(json!({ "stopped": stopped, "stderr": stderr })));
            }
        };
        if let Answer::Broken(_) = &answer {
            processes.stop(&mut child, cx.kill_grace).await;
        }
        // It has said all it will: give it the grace period to exit.
        let status = tokio::select! {
            status = child.wait() => status.ok(),
            () = tokio::time::sleep(cx.kill_grace) => None,
        };
        processes.stop(&mut child, cx.kill_grace).await;
        ended.cancel();
        let stderr = captured(stderr).await;
        match answer {
            Answer::Final(outcome) => outcome,
            Answer::Broken(error) => Err(error),
            Answer::Nothing => {
                let how = match status {
                    Some(status) => match (status.code(), status.signal()) {
                        (Some(0), _) => "exited".to_string(),
                        (Some(code), _) => format!("exited with code {code}"),
                        (None, Some(signal)) => format!("was killed by signal {signal}"),
                        (None, None) => "ended".to_string(),
                    },
                    None => "closed its stdout".to_string(),
                };
                Err(self.misbehaved(format_args!(
                    "{how} without a final message (`ok` or `error`){}",
                    stderr_tail(cx.host.mask(&stderr).as_bytes())
                )))
            }
        }
    }

    /// Reads the plugin's stdout to its end: logs and progress go to the
    /// run, the final message is kept, anything else breaks the protocol.
    async fn read_answer(&self, stdout: impl AsyncRead + Unpin, cx: &StepContext) -> Answer {
        let mut reader = BufReader::new(stdout);
        let mut outcome: Option<Result<Json, StepError>> = None;
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = read_line(&mut reader, &mut line);
            let read = if outcome.is_some() {
                // After its final message it has the grace period to be done.
                match tokio::time::timeout(cx.kill_grace, read).await {
                    Ok(read) => read,
                    Err(_) => break,
                }
            } else {
                read.await
            };
            match read {
                Ok(false) => break,
                Ok(true) => {}
                Err(error) => return Answer::Broken(self.misbehaved(error)),
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let message = match read_message(&line) {
                Ok(message) => message,
                Err(why) => {
                    let line = cx.host.mask(&String::from_utf8_lossy(&line));
                    let shown: String = line.trim().chars().take(120).collect();
                    return Answer::Broken(self.misbehaved(format_args!(
                        "printed a line that is not a protocol message ({why}): `{shown}`"
                    )));
                }
            };
            let is_final = matches!(message, Message::Ok { .. } | Message::Error { .. });
            if is_final && outcome.is_some() {
                return Answer::Broken(self.misbehaved("sent a second final message"));
            }
            if outcome.is_some() {
                return Answer::Broken(self.misbehaved("printed more after its final message"));
            }
            match message {
                Message::Log { level, message } => cx.host.log(&cx.step_id, level.as_str(), &message),
                Message::Progress { message, done, total } => {
                    let count = match (done, total) {
                        (Some(done), Some(total)) => format!(" ({done}/{total})"),
                        (Some(done), None) => format!(" ({done})"),
                        _ => String::new(),
                    };
                    cx.host.log(&cx.step_id, "info", &format!("{message}{count}"));
                }
                Message::Ok { result, secrets } => {
                    secrets.iter().for_each(|s| cx.host.add_secret(s));
                    outcome = Some(Ok(Json::Object(result)));
                }
                Message::Error {
                    message,
                    retryable,
                    result,
                    secrets,
                } => {
                    secrets.iter().for_each(|s| cx.host.add_secret(s));
                    let mut error = StepError::new(message);
                    if let Some(result) = result {
                        error = error.with_result(Json::Object(result));
                    }
                    if !retryable {
                        error = error.not_retryable();
                    }
                    outcome = Some(Err(error));
                }
            }
        }
        outcome.map_or(Answer::Nothing, Answer::Final)
    }
}

/// What the plugin wrote on stderr (its end), once its pump is done.
async fn captured(pump: Option<AbortOnDropHandle<Capture>>) -> String {
    match pump {
        Some(task) => task.await.map(Capture::into_text).unwrap_or_default(),
        None => String::new(),
    }
}

/// Reads one line (without its end) into `line`, at most [`MAX_LINE`]
/// bytes; `false` at the end of the stream.
async fn read_line(reader: &mut (impl AsyncBufReadExt + Unpin), line: &mut Vec<u8>) -> Result<bool, String> {
    loop {
        let available = match reader.fill_buf().await {
            Ok(available) => available,
            Err(e) => return Err(format!("could not be read: {e}")),
        };
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let (taken, done) = match memchr::memchr(b'\n', available) {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        let piece = if done { &available[..taken - 1] } else { available };
        if line.len() + piece.len() > MAX_LINE {
            return Err(format!("printed a line longer than {} MiB", MAX_LINE >> 20));
        }
        line.extend_from_slice(piece);
        reader.consume(taken);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<Result<String, String>> {
        let mut reader = BufReader::with_capacity(16, input);
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            match read_line(&mut reader, &mut line).await {
                Ok(false) => return out,
                Ok(true) => out.push(Ok(String::from_utf8_lossy(&line).into_owned())),
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn lines_are_read_whole_across_reads_and_bounded() {
        assert_eq!(
            lines(b"{\"type\":\"log\"}\nsecond line, longer than a read\nlast").await,
            [
                Ok("{\"type\":\"log\"}".to_string()),
                Ok("second line, longer than a read".to_string()),
                Ok("last".to_string())
            ]
        );
        let mut long = vec![b'x'; MAX_LINE + 1];
        long.push(b'\n');
        assert_eq!(
            lines(&long).await,
            [Err("printed a line longer than 1 MiB".to_string())]
        );
        let mut just = vec![b'x'; MAX_LINE];
        just.push(b'\n');
        assert_eq!(lines(&just).await.len(), 1);
        assert!(lines(&just).await[0].is_ok());
    }
}
