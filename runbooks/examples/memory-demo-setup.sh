#!/bin/sh
# Creates a small memory store to try `runbooks/memory-restore.yaml` on:
#
#   sh runbooks/examples/memory-demo-setup.sh /tmp/runbook-memory-demo
#   cargo run --release -q -p runbook -- run runbooks/memory-restore.yaml \
#     --input state_dir=/tmp/runbook-memory-demo --yes
#
# The folder gets a corrupted live state (`memory.json`, cut short by a torn
# write), two valid snapshots made the way `file.snapshot` makes them
# (`snapshots/memory-TIME-ID/` with `memory.json` and `MANIFEST.sha256`), the
# collaboration history (`events.jsonl`), the configuration (`config.json`),
# cache entries (`cache/`, some pointing at ids that the snapshots do not
# hold) and stale derived data (`derived/index.json`).
#
# Running it again starts the demo afresh. It refuses to touch a folder that
# is not empty unless this script made it. POSIX sh and python3 only.
set -eu

dir=${1:-/tmp/runbook-memory-demo}
case $dir in
  "" | / ) echo "usage: sh $0 DIR" >&2; exit 2 ;;
esac

if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
  if [ ! -f "$dir/.memory-demo" ]; then
    echo "$dir is not empty and was not made by this script; choose another folder" >&2
    exit 1
  fi
  rm -rf "$dir"
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

python3 - "$dir" <<'EOF'
import hashlib, json, os, sys, time

root = sys.argv[1]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def as_json(value):
    return (json.dumps(value, indent=2) + "\n").encode()


def stamp(seconds_ago):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - seconds_ago))


def iso(seconds_ago):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


def state(memories, seconds_ago):
    links = sum(len(m["links"]) for m in memories)
    agents = len({m["agent"] for m in memories})
    return {
        "version": 1,
        "taken_at": iso(seconds_ago),
        "next_id": max(int(m["id"][2:]) for m in memories) + 1,
        "counters": {"memories": len(memories), "links": links, "agents": agents},
        "memories": memories,
    }


memories = [
    {"id": "m-1", "agent": "alice", "text": "The ledger service restarts cleanly after a deploy.", "links": []},
    {"id": "m-2", "agent": "bob", "text": "Failover to the second point of presence takes about 40 s.", "links": ["m-1"]},
    {"id": "m-3", "agent": "planner", "text": "Nightly capsules are kept for 14 days.", "links": []},
    {"id": "m-4", "agent": "alice", "text": "Replaying the ledger needs the export taken first.", "links": ["m-1", "m-3"]},
    {"id": "m-5", "agent": "bob", "text": "DNS answers lag by one TTL after a failover.", "links": ["m-2"]},
    {"id": "m-6", "agent": "planner", "text": "Drill the memory restore every quarter.", "links": ["m-4"]},
]

# Two snapshots, as `file.snapshot` lays them out: the older one holds three
# memories, the newest four.
for seconds_ago, held, tag in ((2 * 86400, memories[:3], "0a1b"), (86400, memories[:4], "2c3d")):
    folder = os.path.join(root, "snapshots", f"memory-{stamp(seconds_ago)}-{tag}")
    data = as_json(state(held, seconds_ago))
    write(os.path.join(folder, "memory.json"), data)
    digest = hashlib.sha256(data).hexdigest()
    write(os.path.join(folder, "MANIFEST.sha256"), f"{digest}  memory.json\n".encode())
    newest = folder

# The live state was being rewritten when the process died: it stops half way.
live = as_json(state(memories, 0))
write(os.path.join(root, "memory.json"), live[: len(live) * 2 // 3])

write(os.path.join(root, "config.json"), as_json({
    "state_file": os.path.join(root, "memory.json"),
    "snapshot": newest,
    "workers": 4,
}))

events = [
    ("alice", "remember", "m-1"), ("bob", "remember", "m-2"), ("bob", "link", "m-2"),
    ("planner", "remember", "m-3"), ("alice", "recall", "m-2"), ("alice", "remember", "m-4"),
    ("alice", "link", "m-4"), ("bob", "remember", "m-5"), ("planner", "remember", "m-6"),
    ("bob", "recall", "m-4"), ("planner", "recall", "m-6"),
]
lines = [
    json.dumps({"seq": seq, "at": iso(3600 * (len(events) - seq)), "agent": agent, "type": kind, "memory_id": mid})
    for seq, (agent, kind, mid) in enumerate(events, 1)
]
write(os.path.join(root, "events.jsonl"), ("\n".join(lines) + "\n").encode())

# Cached answers; those for m-5 and m-6 point at ids lost with the live state.
for key, mid in (("q-ledger-restart", "m-1"), ("q-failover-time", "m-2"), ("q-dns-lag", "m-5"), ("q-drill", "m-6")):
    write(os.path.join(root, "cache", key + ".json"), as_json({"memory_id": mid, "answer": f"see {mid}"}))

write(os.path.join(root, "derived", "index.json"), as_json({"events": 3, "stale": True}))
write(os.path.join(root, ".memory-demo"), b"made by runbooks/examples/memory-demo-setup.sh\n")
EOF

echo "demo memory store in $dir:"
echo "  memory.json     live state, corrupted (cut short)"
echo "  snapshots/      2 valid snapshots; the newest holds 4 memories"
echo "  events.jsonl    $(wc -l < "$dir/events.jsonl" | tr -d ' ') collaboration events"
echo "  config.json     names the live state and the snapshot it came from"
echo "  cache/          4 entries, 2 of them for ids the snapshots do not hold"
echo "  derived/        stale data derived from the events"
echo "restore it with:"
echo "  cargo run --release -q -p runbook -- run runbooks/memory-restore.yaml --input state_dir=$dir --yes"
