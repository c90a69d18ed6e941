#!/bin/sh
# A runbook step plugin (protocol 1) in plain POSIX shell: a change log.
#
# Kind:
#   notes.append  append one entry to a change-log file; undone by removing it
#
# An entry is one line, `TIME MESSAGE [KEY]`, where KEY is the step's
# idempotency key: a retried or resumed attempt does not append its entry
# twice, and the undo removes exactly the entry its step appended (the
# step's result names the key).
#
#   ./notes.sh describe
#   echo '{"protocol": 1, "kind": "append", "params": {...}, ...}' | ./notes.sh run
#
# The request is read with the small JSON reader in awk below (strings with
# every JSON escape, numbers, true, false, null, nested objects and arrays),
# so nothing beyond sh, awk, tr, date and mv is needed.

set -u
# awk works on bytes: UTF-8 text passes through untouched.
LC_ALL=C
export LC_ALL

describe() {
  cat <<'EOF'
{
  "protocol": 1,
  "kinds": [
    {
      "name": "append",
      "summary": "Append an entry to a change-log file; undone by removing it.",
      "params": {
        "type": "object",
        "properties": {
          "file": { "type": "string", "minLength": 1, "description": "The change-log file; a relative path is from the runbook's folder." },
          "message": { "type": "string", "minLength": 1, "description": "The entry, on one line (line breaks become spaces)." }
        },
        "required": ["file", "message"],
        "additionalProperties": false
      },
      "undo": true,
      "describe": "append to {{ params.file }}: {{ params.message }}"
    }
  ]
}
EOF
}

# awk -v want=PATH [-v type=string|literal]: prints the value at PATH (such
# as `params.file`) of the JSON document on stdin, a string decoded; exits 1
# when there is none (or it is of another type), 2 when the input is not JSON.
READ_JSON='
function fail(why) { printf "notes.sh: the request is not JSON: %s at byte %d\n", why, pos > "/dev/stderr"; exit 2 }
function ws() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1))) pos++ }
function found(path, v, t) { if (path == want) { result = v; got = t } }
function value(path,    c) {
  ws(); c = substr(s, pos, 1)
  if (c == "{") object(path)
  else if (c == "[") array(path)
  else if (c == "\"") found(path, string(), "string")
  else if (match(substr(s, pos), /^(true|false|null|-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)/)) {
    found(path, substr(s, pos, RLENGTH), "literal"); pos += RLENGTH
  } else fail("unexpected " (c == "" ? "end" : "`" c "`"))
}
function object(path,    key, c) {
  pos++; ws()
  if (substr(s, pos, 1) == "}") { pos++; return }
  for (;;) {
    ws(); if (substr(s, pos, 1) != "\"") fail("expected a key")
    key = string(); ws()
    if (substr(s, pos, 1) != ":") fail("expected `:`")
    pos++; value(path == "" ? key : path "." key); ws()
    c = substr(s, pos, 1); pos++
    if (c == "}") return
    if (c != ",") fail("expected `,` or `}`")
  }
}
function array(path,    c) {
  pos++; ws()
  if (substr(s, pos, 1) == "]") { pos++; return }
  for (;;) {
    value(path "[]"); ws()
    c = substr(s, pos, 1); pos++
    if (c == "]") return
    if (c != ",") fail("expected `,` or `]`")
  }
}
function string(    out, c, cp, lo) {
  pos++; out = ""
  for (;;) {
    if (match(substr(s, pos), /^[^"\\]+/)) { out = out substr(s, pos, RLENGTH); pos += RLENGTH }
    if (pos > n) fail("unterminated string")
    c = substr(s, pos, 1); pos++
    if (c == "\"") return out
    c = substr(s, pos, 1); pos++
    if (c == "n") out = out "\n"
    else if (c == "t") out = out "\t"
    else if (c == "r") out = out "\r"
    else if (c == "b") out = out "\b"
    else if (c == "f") out = out "\f"
    else if (c == "\"" || c == "\\" || c == "/") out = out c
    else if (c == "u") {
      cp = hex(substr(s, pos, 4)); pos += 4
      # A surrogate pair is one character.
      if (cp >= 55296 && cp < 56320 && substr(s, pos, 2) == "\\u") {
        lo = hex(substr(s, pos + 2, 4))
        if (lo >= 56320 && lo < 57344) { cp = 65536 + (cp - 55296) * 1024 + (lo - 56320); pos += 6 }
      }
      # A lone surrogate is no character.
      if (cp >= 55296 && cp < 57344) cp = 65533
      out = out utf8(cp)
    } else fail("bad escape")
  }
}
function hex(h,    i, d, v) {
  if (length(h) != 4) fail("bad \\u escape")
  h = tolower(h); v = 0
  for (i = 1; i <= 4; i++) {
    d = index("0123456789abcdef", substr(h, i, 1))
    if (d == 0) fail("bad \\u escape")
    v = v * 16 + d - 1
  }
  return v
}
function utf8(cp) {
  if (cp == 0) fail("a NUL character")
  if (cp < 128) return sprintf("%c", cp)
  if (cp < 2048) return sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
  if (cp < 65536) return sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
  return sprintf("%c%c%c%c", 240 + int(cp / 262144), 128 + int(cp / 4096) % 64, 128 + int(cp / 64) % 64, 128 + cp % 64)
}
{ s = s (NR > 1 ? "\n" : "") $0 }
END {
  n = length(s); pos = 1; value(""); ws()
  if (pos <= n) fail("text after the document")
  if (got == "" || (type != "" && got != type)) exit 1
  printf "%s", result
}'

# awk: stdin as one JSON string, quotes included.
QUOTE_JSON='
BEGIN { for (i = 1; i < 32; i++) control[sprintf("%c", i)] = sprintf("\\u%04x", i) }
{ s = s (NR > 1 ? "\n" : "") $0 }
END {
  out = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "\"" || c == "\\") out = out "\\" c
    else if (c in control) out = out control[c]
    else out = out c
  }
  printf "\"%s\"", out
}'

json_string() { printf '%s' "$1" | awk "$QUOTE_JSON"; }

say_log() { printf '{"type": "log", "level": "%s", "message": %s}\n' "$1" "$(json_string "$2")"; }

say_error() { printf '{"type": "error", "message": %s, "retryable": %s}\n' "$(json_string "$1")" "$2"; }

# field PATH TYPE: the request's value at PATH, or nothing and status 1.
field() { printf '%s' "$request" | awk -v want="$1" -v type="$2" "$READ_JSON"; }

# One line of text: line breaks and tabs become spaces, other control
# characters go.
one_line() { printf '%s' "$1" | tr '\t\r\n' '   ' | tr -d '\001-\037\177'; }

# An awk condition: the line is this step's entry (whatever its time).
OURS='index($0, " ") && substr($0, index($0, " ") + 1) == ENVIRON["NOTE_TAIL"]'

append() {
  if [ -f "$file" ] && awk "$OURS"' { found = 1 } END { exit !found }' "$file"; then
    say_log info "$file has this entry already: an earlier attempt appended it"
    appended=false
  else
    entry="$(date -u +%Y-%m-%dT%H:%M:%SZ) $NOTE_TAIL"
    # A file that does not end its last line gets its line ended first.
    if [ -s "$file" ] && [ -n "$(tail -c 1 "$file")" ]; then entry="
$entry"; fi
    if ! problem=$( { printf '%s\n' "$entry" >> "$file"; } 2>&1 ); then
      # The shell's own words, without its name and line number.
      say_error "cannot append to $file: $(one_line "${problem##*: }")" false
      return
    fi
    say_log info "appended to $file: $message"
    appended=true
  fi
  printf '{"type": "ok", "result": {"file": %s, "key": %s, "appended": %s}}\n' \
    "$(json_string "$file")" "$(json_string "$key")" "$appended"
}

undo_append() {
  removed=0
  if [ -f "$file" ]; then
    removed=$(awk "$OURS"' { n++ } END { print n + 0 }' "$file")
  fi
  if [ "$removed" -gt 0 ]; then
    # Written beside it, then moved over it: the log is never half written.
    tmp="$file.undo.$$"
    if ! problem=$( { awk "!($OURS)" "$file" > "$tmp" && mv "$tmp" "$file"; } 2>&1 ); then
      rm -f "$tmp"
      say_error "cannot remove the entry from $file: $(one_line "${problem##*: }")" false
      return
    fi
    say_log info "removed the entry from $file: $message"
  else
    say_log warn "$file has no entry of this step to remove"
  fi
  printf '{"type": "ok", "result": {"file": %s, "removed": %s}}\n' "$(json_string "$file")" "$removed"
}

run() {
  request=$(cat)
  protocol=$(field protocol literal)
  case $? in
    2)
      say_error "cannot read the request: it is not JSON" false
      return
      ;;
  esac
  if [ "$protocol" != 1 ]; then
    say_error "this plugin speaks protocol 1, not ${protocol:-none}" false
    return
  fi
  kind=$(field kind string)
  undo=$(field undo literal) || undo=false
  if [ "$kind" != append ]; then
    say_error "no kind \`$kind\`" false
    return
  fi
  for name in file message; do
    if ! value=$(field "params.$name" string) || [ -z "$value" ]; then
      say_error "\`$name\` must be a string that is not empty" false
      return
    fi
  done
  file=$(field params.file string)
  message=$(one_line "$(field params.message string)")
  key=$(field idempotency_key string) || key=$(field step_id string)
  # An undo has a key of its own: the entry to remove is under the key its
  # step's result recorded.
  if [ "$undo" = true ]; then key=$(field result.key string) || key=""; fi
  if [ -z "$key" ]; then
    say_error "the request has no idempotency key, nor a result that names the entry" false
    return
  fi
  # What follows the time in this step's entry.
  NOTE_TAIL="$message [$key]"
  export NOTE_TAIL
  if [ "$undo" = true ]; then undo_append; else append; fi
}

case "${1:-}" in
  describe) describe ;;
  run) run ;;
  *)
    echo "usage: notes.sh describe | run" >&2
    exit 2
    ;;
esac
