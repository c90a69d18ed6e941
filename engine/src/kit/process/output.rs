//! A command's output, read as it comes, for the `shell` kind: each line
//! goes to the host once it is complete, and the end of the stream is kept
//! for the step's result.
//!
//! A command may print a gigabyte, so the work per byte and per line is
//! kept small: output is read in blocks of up to 256 KiB, lines are found
//! with `memchr` and passed on where they lie in the block, and only a line
//! that spans two reads is copied. The text is checked as UTF-8 once, when
//! passed on.

use crate::step::{Host, OutputStream};
use memchr::{memchr, memchr_iter};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

/// How much of each output stream the result keeps (the end of it).
pub const CAPTURE_LIMIT: usize = 1 << 20;

/// A line longer than this is passed on in pieces, so that output without
/// newlines still shows live and cannot fill memory.
pub const MAX_LINE: usize = 64 << 10;

/// The largest read. Reads start small (most commands print little) and
/// grow while they come back full.
const BLOCK: usize = 256 << 10;
const FIRST_BLOCK: usize = 8 << 10;

/// How long output is still read once the command and its processes have
/// ended. Only a process that escaped being stopped (another user's) can
/// hold a pipe open that long; the step does not wait for it.
const PIPE_LINGER: Duration = Duration::from_millis(500);

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// Reads one output stream to its end: passes each line to the host as it
/// comes, and keeps the end of the stream for the result. Once the
/// command's processes have ended it reads for [`PIPE_LINGER`] more at most.
pub async fn pump(
    mut reader: Reader,
    stream: OutputStream,
    host: Arc<dyn Host>,
    step: String,
    processes_ended: CancellationToken,
) -> Capture {
    let give_up = async move {
        processes_ended.cancelled().await;
        tokio::time::sleep(PIPE_LINGER).await;
    };
    tokio::pin!(give_up);
    let mut capture = Capture::default();
    let mut lines = LineSplitter::default();
    let mut emit = |text: &str, line_end: bool| host.output(&step, stream, text, line_end);
    let mut buffer = vec![0; FIRST_BLOCK];
    loop {
        let read = tokio::select! {
            read = reader.read(&mut buffer) => read,
            () = &mut give_up => break,
        };
        let Ok(n @ 1..) = read else { break };
        capture.push(&buffer[..n]);
        lines.feed(&buffer[..n], &mut emit);
        if n == buffer.len() && buffer.len() < BLOCK {
            buffer.resize(buffer.len() * 4, 0);
        }
    }
    lines.finish(&mut emit);
    capture
}

/// Cuts a byte stream into lines: each line's text without its `\n` or
/// `\r\n`, and a line longer than [`MAX_LINE`] bytes in pieces, never
/// cutting a UTF-8 character in two, the last piece with `line_end` true.
#[derive(Debug, Default)]
pub struct LineSplitter {
    /// The start of a line whose end has not come yet: at most
    /// [`MAX_LINE`] bytes once [`LineSplitter::feed`] returns.
    open: Vec<u8>,
}

impl LineSplitter {
    pub fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(&str, bool)) {
        if !self.open.is_empty() {
            let Some(end) = memchr(b'\n', data) else {
                self.open.extend_from_slice(data);
                self.pass_on_pieces(emit);
                return;
            };
            self.open.extend_from_slice(&data[..=end]);
            line(&self.open, emit);
            self.open.clear();
            data = &data[end + 1..];
        }
        let mut start = 0;
        for end in memchr_iter(b'\n', data) {
            line(&data[start..=end], emit);
            start = end + 1;
        }
        self.open.extend_from_slice(&data[start..]);
        self.pass_on_pieces(emit);
    }

    /// The stream has ended: a last line without a newline.
    pub fn finish(&mut self, emit: &mut impl FnMut(&str, bool)) {
        if !self.open.is_empty() {
            line(&self.open, emit);
            self.open.clear();
        }
    }

    /// Passes on what the open line holds past [`MAX_LINE`] bytes, in
    /// pieces, keeping the rest (less than a piece, perhaps a character's
    /// first bytes).
    fn pass_on_pieces(&mut self, emit: &mut impl FnMut(&str, bool)) {
        let mut start = 0;
        while self.open.len() - start > MAX_LINE {
            let cut = start + char_boundary(&self.open[start..], MAX_LINE);
            text(&self.open[start..cut], false, emit);
            start = cut;
        }
        if start > 0 {
            self.open.drain(..start);
        }
    }
}

/// One whole line, its `\n` included (the last line of a stream may have
/// none): its text without the line end, in pieces when long.
fn line(bytes: &[u8], emit: &mut impl FnMut(&str, bool)) {
    let mut rest = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    while rest.len() > MAX_LINE {
        let cut = char_boundary(rest, MAX_LINE);
        text(&rest[..cut], false, emit);
        rest = &rest[cut..];
    }
    text(rest, true, emit);
}

fn text(bytes: &[u8], line_end: bool, emit: &mut impl FnMut(&str, bool)) {
    match std::str::from_utf8(bytes) {
        Ok(text) => emit(text, line_end),
        Err(_) => emit(&String::from_utf8_lossy(bytes), line_end),
    }
}

/// Where to cut `bytes` (longer than `limit`) at or before `limit` so as
/// not to cut a UTF-8 character in two: back over up to three continuation
/// bytes. Text that is not UTF-8 is cut at `limit`.
fn char_boundary(bytes: &[u8], limit: usize) -> usize {
    let is_continuation = |at: usize| (bytes[at] & 0xC0) == 0x80;
    (limit.saturating_sub(3).max(1)..=limit)
        .rev()
        .find(|&at| !is_continuation(at))
        .unwrap_or(limit)
}

/// The end of an output stream, at most [`CAPTURE_LIMIT`] bytes of it.
#[derive(Debug, Default)]
pub struct Capture {
    bytes: Vec<u8>,
    /// How many bytes from the start were left out.
    pub dropped: usize,
}

impl Capture {
    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        // Trimming only now and then keeps pushing cheap.
        if self.bytes.len() > 2 * CAPTURE_LIMIT {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let Some(excess) = self.bytes.len().checked_sub(CAPTURE_LIMIT).filter(|&e| e > 0) else {
            return;
        };
        // Start the kept text at a line if one starts nearby, else at a
        // character.
        let rest = &self.bytes[excess..];
        let skip = match memchr(b'\n', &rest[..rest.len().min(MAX_LINE)]) {
            Some(newline) => newline + 1,
            None => rest.iter().take_while(|b| (**b & 0xC0) == 0x80).count(),
        };
        self.bytes.drain(..excess + skip);
        self.dropped += excess + skip;
    }

    /// The text kept, without one trailing newline, after a note saying how
    /// much was left out.
    pub fn into_text(mut self) -> String {
        self.trim();
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        if self.dropped > 0 {
            text.insert_str(0, &format!("[{} bytes of earlier output left out]\n", self.dropped));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a splitter passes on when fed `chunks`, as `(text, line_end)`.
    fn split(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut emit = |text: &str, line_end: bool| out.push((text.to_string(), line_end));
        let mut lines = LineSplitter::default();
        for chunk in chunks {
            lines.feed(chunk, &mut emit);
        }
        lines.finish(&mut emit);
        out
    }

    fn whole(lines: &[&str]) -> Vec<(String, bool)> {
        lines.iter().map(|l| (l.to_string(), true)).collect()
    }

    #[test]
    fn lines_are_cut_wherever_the_reads_end() {
        let text = b"one\ntwo\r\n\nthree\nfour";
        assert_eq!(split(&[text]), whole(&["one", "two", "", "three", "four"]));
        // Every way of cutting the stream in two gives the same lines.
        for at in 0..text.len() {
            assert_eq!(
                split(&[&text[..at], &text[at..]]),
                whole(&["one", "two", "", "three", "four"]),
                "cut at {at}"
            );
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(split(&bytes), whole(&["one", "two", "", "three", "four"]));
        assert_eq!(split(&[b"", b"a\n"]), whole(&["a"]));
        assert_eq!(split(&[]), whole(&[]));
    }

    #[test]
    fn a_long_line_comes_in_pieces_that_never_cut_a_character() {
        // 'é' is two bytes: MAX_LINE - 1 ASCII bytes then 'é' straddles the limit.
        let line = format!("{}{}", "a".repeat(MAX_LINE - 1), "é".repeat(MAX_LINE));
        for chunks in [
            vec![format!("{line}\nnext\n").into_bytes()],
            format!("{line}\nnext\n")
                .into_bytes()
                .chunks(1000)
                .map(<[u8]>::to_vec)
                .collect(),
        ] {
            let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let out = split(&chunks);
            let (pieces, rest) = out.split_at(out.len() - 1);
            assert_eq!(rest, whole(&["next"]));
            assert!(pieces.len() >= 3, "{}", pieces.len());
            let (last, first) = pieces.split_last().unwrap();
            assert!(first.iter().all(|(_, line_end)| !line_end));
            assert!(last.1);
            assert!(
                pieces
                    .iter()
                    .all(|(piece, _)| piece.len() <= MAX_LINE && !piece.contains('\u{fffd}'))
            );
            assert_eq!(pieces[0].0.len(), MAX_LINE - 1, "the cut goes back before 'é'");
            let joined: String = pieces.iter().map(|(piece, _)| piece.as_str()).collect();
            assert_eq!(joined, line);
        }
    }

    #[test]
    fn a_line_of_exactly_max_line_bytes_is_one_line() {
        let line = "x".repeat(MAX_LINE);
        assert_eq!(split(&[format!("{line}\n").as_bytes()]), whole(&[&line]));
        assert_eq!(split(&[line.as_bytes(), b"\n"]), whole(&[&line]));
        assert_eq!(split(&[line.as_bytes()]), whole(&[&line]));
    }

    #[test]
    fn output_that_is_not_utf8_is_shown_with_replacement_characters() {
        assert_eq!(split(&[b"a\xffb\n"]), whole(&["a\u{fffd}b"]));
        // Not UTF-8 at all: cut at the limit.
        let bytes = vec![0x80; MAX_LINE + 10];
        let out = split(&[&bytes]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0.chars().count(), MAX_LINE);
    }

    #[test]
    fn keeps_the_end_of_a_long_output() {
        let mut capture = Capture::default();
        let line = format!("{}\n", "é".repeat(500));
        for _ in 0..3_000 {
            capture.push(line.as_bytes());
        }
        capture.push(b"last\n");
        let text = capture.into_text();
        let (note, kept) = text.split_once('\n').unwrap();
        let dropped: usize = note
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(" bytes of earlier output left out]"))
            .unwrap()
            .parse()
            .unwrap();
        // Everything is either kept or counted as left out (the last newline
        // aside), and what is kept starts at a line.
        assert_eq!(dropped + kept.len() + 1, 3_000 * line.len() + 5);
        assert!(kept.starts_with('é') && kept.ends_with("é\nlast"));
        assert!(kept.len() <= CAPTURE_LIMIT && kept.len() > CAPTURE_LIMIT - line.len());
        assert!(!text.contains('\u{fffd}'));
    }
}
