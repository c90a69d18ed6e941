#!/bin/sh
# The per-step overhead of a trivial plugin step (start the plugin, write
# the request, read its `ok`) against a `shell` step that runs the same
# program, for a plugin in sh, in C (when `cc` is there) and in Python
# (when `python3` is there).
#
# Each runbook has N sequential steps; each is run 5 times with the release
# binary and the median kept; the cost of one step is
# (t(200) - t(1)) / 199, so what every run pays once (start, journal
# header, describe) drops out.
#
#   cargo build --release -p runbook
#   benches/plugin_step.sh [path/to/release/runbook]
#
# Not part of the test suite.

set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$root/target}/release/runbook}
[ -x "$bin" ] || { echo "no runbook binary at $bin; build it with cargo build --release -p runbook" >&2; exit 2; }
runs=5
steps=200

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins"
export RUNBOOK_CACHE_DIR="$work/cache" RUNBOOK_LOCK_DIR="$work/locks" NO_COLOR=1

describe='{"protocol":1,"kinds":[{"name":"act","summary":"Answer ok at once."}]}'
ok='{"type":"ok","result":{}}'

cat > "$work/plugins/tsh.sh" <<EOF
#!/bin/sh
if [ "\$1" = describe ]; then echo '$describe'; exit 0; fi
echo '$ok'
EOF

variants="tsh:$work/plugins/tsh.sh"

if command -v cc > /dev/null 2>&1; then
	cat > "$work/tc.c" <<EOF
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "describe") == 0) puts("$(printf '%s' "$describe" | sed 's/"/\\"/g')");
	else puts("$(printf '%s' "$ok" | sed 's/"/\\"/g')");
	return 0;
}
EOF
	cc -O2 -o "$work/plugins/tc" "$work/tc.c"
	variants="$variants tc:$work/plugins/tc"
fi

if command -v python3 > /dev/null 2>&1; then
	# The interpreter itself, not a wrapper such as pyenv's shim, which
	# would cost more than the plugin.
	python=$(python3 -c 'import sys; print(sys.executable)')
	cat > "$work/plugins/tpy.py" <<EOF
#!$python
import sys
print('$describe' if sys.argv[1:] == ["describe"] else '$ok')
EOF
	variants="$variants tpy:$work/plugins/tpy.py"
fi
chmod +x "$work"/plugins/*

# runbook NAME N KIND PROGRAM: N steps, each the plugin's kind or a shell
# step running the plugin.
runbook() {
	file="$work/$1.yaml"
	{
		printf 'runbook: 1\nname: %s\nsteps:\n' "$1"
		i=1
		while [ "$i" -le "$2" ]; do
			if [ "$3" = plugin ]; then
				printf '  - id: s%d\n    uses: %s.act\n' "$i" "$4"
			else
				printf '  - id: s%d\n    uses: shell\n    with: { run: "%s run" }\n' "$i" "$4"
			fi
			i=$((i + 1))
		done
	} > "$file"
	echo "$file"
}

# median FILE: the median of 5 runs of FILE, in nanoseconds.
median() {
	"$bin" check "$1" > /dev/null
	i=0
	while [ "$i" -lt "$runs" ]; do
		start=$(date +%s%N)
		"$bin" run "$1" --state-dir "$work/state" > /dev/null 2>&1 || { echo "run of $1 failed" >&2; exit 1; }
		end=$(date +%s%N)
		echo $((end - start))
		i=$((i + 1))
	done | sort -n | sed -n "$(((runs + 1) / 2))p"
}

printf '%-22s %10s %12s %14s\n' "step" "t(1) ms" "t($steps) ms" "per step ms"
for variant in $variants; do
	name=${variant%%:*}
	program=${variant#*:}
	for how in plugin shell; do
		if [ "$how" = plugin ]; then target=$name; else target=$program; fi
		one=$(median "$(runbook "$name-$how-1" 1 "$how" "$target")")
		many=$(median "$(runbook "$name-$how-$steps" "$steps" "$how" "$target")")
		awk -v label="$name $how" -v one="$one" -v many="$many" -v n="$steps" 'BEGIN {
			printf "%-22s %10.1f %12.1f %14.3f\n", label, one / 1e6, many / 1e6, (many - one) / (n - 1) / 1e6
		}'
	done
done
