#!/bin/bash
# bench/bench-branch.sh: what `when` and `branch` cost the runner.
#
#   bench/bench-branch.sh [REOPS_RUN] [RUNS]
#
# Loading: `reops-run --check` of a pipeline of 10,000 stages that each
# have a `when` (every selector form), and of one of 1,000 branches (each
# with a when and two stages); the best wall time of RUNS runs and that
# run's peak RSS (GNU time). Aim: under 1 s and 200 MB each.
#
# Running: 200 local rows through a 4-way branch and back, each branch
# 40 stages that run in the runner (parse, pick by column, a stage whose
# when selects no row, json to /dev/null, ten times); the runner's CPU (user +
# system) less that of the same pipeline without the branch (one exec per
# row: the commands' share), per row per stage. Aim: under 0.5 ms.
# Use a build without sanitizers; needs /usr/bin/time.
set -eu

REOPS_RUN=${1:-${REOPS_RUN:-./reops-run}}
RUNS=${2:-5}

if [ ! -x /usr/bin/time ]; then
	echo "bench-branch: /usr/bin/time is missing (apt-get install time)" >&2
	exit 2
fi
if [ ! -x "$REOPS_RUN" ]; then
	echo "bench-branch: no reops-run at '$REOPS_RUN'" >&2
	exit 2
fi

work=$(mktemp -d /tmp/bench-branch.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir "$work/hosts.d"
awk 'BEGIN {
	print "groups:\n  rows:\n    transport: local\n    hosts:"
	for (i = 0; i < 200; i++)
		printf "      - row-%03d\n", i
}' >"$work/hosts.d/rows.yaml"

awk -v n=10000 'BEGIN {
	print "hosts: all\nstages:"
	for (i = 0; i < n; i++) {
		k = i % 5
		printf "  - exec: echo %d\n", i
		if (k == 0)
			print "    when: failed"
		else if (k == 1)
			printf "    when: { column: stdout, match: \"^%d [a-z]+$\" }\n", i
		else if (k == 2)
			print "    when: { all: [ successful, { column: target, match: \"^row-1\", invert: true } ] }"
		else if (k == 3)
			print "    when: { any: [ unreachable, { status: skipped } ] }"
		else
			print "    when: any-status"
	}
}' >"$work/when.yaml"

awk -v n=1000 'BEGIN {
	print "hosts: all\nstages:\n  - branch:"
	for (i = 0; i < n; i++) {
		printf "      b%d:\n", i
		printf "        when: { column: target, match: \"^row-%03d$\" }\n", i % 200
		print "        stages:"
		printf "          - exec: echo %d\n", i
		print "          - parse: { regex: \"(?<n>[0-9]+)\" }"
	}
}' >"$work/branches.yaml"

# The run: STAGES runner stages in each of 4 branches.
cat >"$work/run-base.yaml" <<'EOF'
hosts: all
stages:
  - exec: "echo load 1.5 2.5 ${target}"
EOF
{
	cat "$work/run-base.yaml"
	echo "  - branch:"
	for b in 0 1 2 3; do
		echo "      b$b:"
		if [ $b -lt 3 ]; then
			echo "        when: { column: target, match: \"[$((b * 3))-$((b * 3 + 2))]\$\" }"
		else
			echo "        when: any-status"
		fi
		echo "        stages:"
		for i in $(seq 10); do
			echo "          - parse: { regex: \"load (?<l1_$b>[0-9.]+) (?<l5_$b>[0-9.]+)\" }"
			echo "          - pick: { column: l1_$b, match: \"^1\" }"
			echo "          - exec: \"echo never\""
			echo "            when: skipped"
			echo "          - json: { file: /dev/null }"
		done
	done
} >"$work/run-branch.yaml"
STAGES=41	# the branch and the forty stages in it

# measure NAME ARGS...: best wall time of RUNS with its RSS, and the
# least CPU time (user + system, the commands' included) of the RUNS.
measure () {
	name=$1
	shift
	best=
	cpu=
	if ! "$REOPS_RUN" -i "$work/hosts.d" "$@" >/dev/null 2>"$work/err"; then
		echo "bench-branch: $name: reops-run failed:" >&2
		cat "$work/err" >&2
		exit 1
	fi
	for _ in $(seq "$RUNS"); do
		/usr/bin/time -f "%e %M %U %S" -o "$work/t" "$REOPS_RUN" \
		    -i "$work/hosts.d" "$@" >/dev/null 2>&1
		read -r e m u s <"$work/t"
		if [ -z "$best" ] || awk -v a="$e" -v b="$best" \
		    'BEGIN { exit !(a < b) }'; then
			best=$e
			rss=$m
		fi
		c=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
		if [ -z "$best" ] || [ -z "${cpu:-}" ] || awk -v a="$c" \
		    -v b="$cpu" 'BEGIN { exit !(a < b) }'; then
			cpu=$c
		fi
	done
	printf '%-40s %6.2f s %8.1f MB %6.2f s cpu\n' "$name" "$best" \
	    "$(awk -v m="$rss" 'BEGIN { print m / 1024 }')" "$cpu"
	last_cpu=$cpu
}

measure "load: 10,000 stages with when" --check "$work/when.yaml"
measure "load: 1,000 branches" --check "$work/branches.yaml"
measure "run: 200 rows, one exec" "$work/run-base.yaml"
base=$last_cpu
measure "run: ... then a 4-way branch" "$work/run-branch.yaml"
awk -v a="$last_cpu" -v b="$base" -v s="$STAGES" 'BEGIN {
	printf "runner CPU per row per stage: %.4f ms\n", (a - b) * 1000 / 200 / s
}'
