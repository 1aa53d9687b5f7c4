#!/bin/bash
# bench/bench-load.sh: how long `reops-run --check` takes, and how much
# memory, to load a pipeline of 10,000 stages, an inventory of 100,000
# hosts, and one group of 20,000 hosts. The files are generated into a
# temporary directory (never kept). A sanitizer build shows what one
# realloc per element costs: ASan never grows a block in place.
#
# Then the graph cases (issue 9): 10,000 stages with `when` and row values
# (`${row.stdout}`, or `${target}` where this build has no row values),
# and one branch stage of 1,000 branches, each through --check and
# --graph; and the runner's CPU per row per stage for 200 local rows
# through a 4-way branch and its merge (skipped without a branch stage).
#
#   bench/bench-load.sh [REOPS_RUN] [RUNS]
#
# Use a build without sanitizers, e.g.
#   mkdir /tmp/build-bench && cd /tmp/build-bench &&
#   /path/to/configure -q && make reops-run &&
#   /path/to/bench/bench-load.sh ./reops-run
# Needs GNU time (/usr/bin/time; Debian package "time"). Prints one line per
# case: the best wall time of RUNS runs and the peak RSS of that run.
set -eu

REOPS_RUN=${1:-${REOPS_RUN:-./reops-run}}
RUNS=${2:-5}
STAGES=10000
HOSTS=100000
FILES=4
PER_GROUP=500

if [ ! -x /usr/bin/time ]; then
	echo "bench-load: /usr/bin/time is missing (apt-get install time)" >&2
	exit 2
fi
if [ ! -x "$REOPS_RUN" ]; then
	echo "bench-load: no reops-run at '$REOPS_RUN'" >&2
	exit 2
fi

work=$(mktemp -d /tmp/bench-load.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The big pipeline: every stage kind the loader checks, with params to
# expand, row variables, shorthands and mappings, and regexes to compile.
awk -v n="$STAGES" 'BEGIN {
	print "pipeline: big"
	print "description: a pipeline of " n " stages, for the loading bench"
	print "hosts: all"
	print "params:"
	print "  dir: /tmp"
	print "  msg: hello"
	print "stages:"
	for (i = 0; i < n; i++) {
		k = i % 5
		if (k == 0)
			printf "  - exec: echo ${msg} %d from ${target}\n", i
		else if (k == 1)
			printf "  - ls: { path: \"${dir}\", flags: -la, timeout: 30 }\n"
		else if (k == 2)
			printf "  - pick: { column: stdout, match: \"^line %d [a-z]+$\", invert: false }\n", i
		else if (k == 3)
			printf "  - exec:\n      command: \"test -d ${dir}/%d || true\"\n      timeout: 10\n", i
		else
			print "  - pick: successful"
	}
}' >"$work/big.yaml"

cat >"$work/small.yaml" <<'EOF'
pipeline: small
hosts: all
stages:
  - ls: /
  - pick: successful
  - exec: uptime
EOF

mkdir "$work/small.d" "$work/big.d"
cat >"$work/small.d/00-local.yaml" <<'EOF'
groups:
  local:
    transport: local
    hosts: [localhost, worker-1, worker-2]
EOF

# The big inventory: FILES files of groups of PER_GROUP hosts; one host in
# ten is a mapping with an address and a port, as real inventories have.
awk -v hosts="$HOSTS" -v files="$FILES" -v per="$PER_GROUP" \
    -v dir="$work/big.d" 'BEGIN {
	per_file = hosts / files
	h = 0
	for (f = 0; f < files; f++) {
		out = sprintf("%s/%02d-hosts.yaml", dir, f)
		print "groups:" >out
		for (g = 0; g < per_file / per; g++) {
			printf "  g%d-%d:\n", f, g >out
			print "    transport: ssh" >out
			print "    auth: { user: deploy, key: ~/.ssh/id_ed25519, port: 22 }" >out
			print "    host-keys: accept-new" >out
			print "    hosts:" >out
			for (i = 0; i < per; i++) {
				if (h % 10 == 0)
					printf "      - { name: host-%d.example.com, address: 10.%d.%d.%d, port: 2222 }\n", h, int(h / 65536) % 256, int(h / 256) % 256, h % 256 >out
				else
					printf "      - host-%d.example.com\n", h >out
				h++
			}
		}
		close(out)
	}
}'

# One group of 20,000 hosts: every host lands in the same arrays, which
# must grow geometrically (one realloc per host took 1.5 GB under ASan).
mkdir "$work/flat.d"
awk -v n=20000 'BEGIN {
	print "groups:\n  flat:\n    transport: ssh\n    hosts:"
	for (i = 0; i < n; i++)
		printf "      - flat-%d.example.com\n", i
}' >"$work/flat.d/00-flat.yaml"

printf 'generated: %s stages (%s bytes); %s hosts in %s files (%s bytes)\n' \
    "$STAGES" "$(wc -c <"$work/big.yaml")" "$HOSTS" "$FILES" \
    "$(cat "$work"/big.d/*.yaml | wc -c)"

# measure NAME INVENTORY PIPELINE: best of RUNS.
measure () {
	best=
	for _ in $(seq "$RUNS"); do
		/usr/bin/time -f '%e %M' -o "$work/time" \
		    "$REOPS_RUN" --check -i "$2" "$3" >/dev/null 2>"$work/err" || {
			echo "bench-load: $1 failed:" >&2
			cat "$work/err" >&2
			exit 1
		}
		read -r secs kb _ <"$work/time"
		if [ -z "$best" ] || awk -v a="$secs" -v b="$best" \
		    'BEGIN { exit !(a < b) }'; then
			best=$secs
			best_kb=$kb
		fi
	done
	printf '%-44s %6.2f s %7.1f MB\n' "$1" "$best" \
	    "$(awk -v k="$best_kb" 'BEGIN { print k / 1024 }')"
}

measure "10,000 stages, 3 hosts" "$work/small.d" "$work/big.yaml"
measure "3 stages, 100,000 hosts" "$work/big.d" "$work/small.yaml"
measure "10,000 stages, 100,000 hosts" "$work/big.d" "$work/big.yaml"
measure "3 stages, 20,000 hosts in one group" "$work/flat.d" "$work/small.yaml"

# The graph cases. measure_opt NAME OPTION INVENTORY PIPELINE: as measure,
# with --check or --graph.
measure_opt () {
	best=
	for _ in $(seq "$RUNS"); do
		/usr/bin/time -f '%e %M' -o "$work/time" \
		    "$REOPS_RUN" "$2" -i "$3" "$4" >/dev/null 2>"$work/err" || {
			echo "bench-load: $1 failed:" >&2
			cat "$work/err" >&2
			exit 1
		}
		read -r secs kb _ <"$work/time"
		if [ -z "$best" ] || awk -v a="$secs" -v b="$best" \
		    'BEGIN { exit !(a < b) }'; then
			best=$secs
			best_kb=$kb
		fi
	done
	printf '%-44s %6.2f s %7.1f MB\n' "$1 ($2)" "$best" \
	    "$(awk -v k="$best_kb" 'BEGIN { print k / 1024 }')"
}

# Row values where this build has them.
printf 'hosts: all\nstages:\n  - exec: echo x\n  - exec: echo ${row.stdout}\n' \
    >"$work/rowval.yaml"
if "$REOPS_RUN" --check -i "$work/small.d" "$work/rowval.yaml" \
    >/dev/null 2>&1; then
	rv='${row.stdout}'
else
	rv='${target}'
	echo "note: this build has no \${row.X}; the when cases use \${target}"
fi
awk -v n="$STAGES" -v rv="$rv" 'BEGIN {
	print "pipeline: when"
	print "hosts: all"
	print "stages:"
	for (i = 0; i < n; i++) {
		k = i % 4
		if (k == 0)
			printf "  - exec: echo %s %d\n    name: step %d\n", rv, i, i
		else if (k == 1)
			printf "  - exec: \"test -n %s\"\n    when: { column: stdout, match: \"^[a-z]+-%d$\" }\n", rv, i
		else if (k == 2)
			printf "  - exec: echo fixed %s\n    when: failed\n    serial: 5\n", rv
		else
			printf "  - exec: echo %s\n    when: { any: [ successful, { all: [ failed, { column: stderr, match: \"x%d\", invert: true } ] } ] }\n", rv, i
	}
}' >"$work/when.yaml"
measure_opt "10,000 stages with when, 3 hosts" --check "$work/small.d" \
    "$work/when.yaml"
measure_opt "10,000 stages with when" --graph "$work/small.d" \
    "$work/when.yaml"

have_branch=1
if ! "$REOPS_RUN" --list-stages | grep -q '^branch '; then
	have_branch=0
	echo "skipped: this build has no branch stage (1,000 branches, the" \
	    "4-way branch CPU)"
fi

[ "$have_branch" = 0 ] || {
awk -v n=1000 -v rv="$rv" 'BEGIN {
	print "pipeline: branches"
	print "hosts: all"
	print "stages:"
	print "  - exec: echo x"
	print "  - branch:"
	for (i = 0; i < n; i++) {
		printf "      b%d:\n", i
		printf "        when: { column: stdout, match: \"^%d$\" }\n", i
		print  "        stages:"
		printf "          - exec: echo %s %d\n", rv, i
		print  "          - pick: successful"
	}
	print "  - pretty"
}' >"$work/branches.yaml"
measure_opt "1,000 branches, 3 hosts" --check "$work/small.d" \
    "$work/branches.yaml"
measure_opt "1,000 branches" --graph "$work/small.d" "$work/branches.yaml"
}

# CPU per row per stage: 200 local rows. "flat": S stages in a row;
# "branch": a 4-way branch (by the row's last digit) of S stages each,
# then the merge. The runner's own CPU (user+sys of reops-run, not of the
# commands it starts) is read from /proc/PID/stat until it ends; with
# exec "true" the commands' CPU is their own, and with pick there is
# none. Median of RUNS runs.
ROWS=200
S=10
mkdir "$work/rows.d"
awk -v n="$ROWS" 'BEGIN {
	print "groups:\n  rows:\n    transport: local\n    hosts:"
	for (i = 0; i < n; i++)
		printf "      - row-%d\n", i
}' >"$work/rows.d/00-rows.yaml"
# gen KIND STAGE: flat or branch pipelines of S copies of STAGE.
gen () {
	awk -v kind="$1" -v st="$2" -v s="$S" 'BEGIN {
		print "hosts: rows\nstages:"
		if (kind == "flat") {
			for (i = 0; i < s; i++)
				printf "  - %s\n", st
			exit
		}
		print "  - branch:"
		for (b = 0; b < 4; b++) {
			printf "      b%d:\n", b
			printf "        when: { column: target, match: \"[%s]$\" }\n", \
			    b == 0 ? "048" : b == 1 ? "159" : b == 2 ? "26" : "37"
			print  "        stages:"
			for (i = 0; i < s; i++)
				printf "          - %s\n", st
		}
	}'
}
# runner_cpu PIPELINE: the CPU seconds of reops-run itself (fields 14
# and 15 of /proc/PID/stat, its threads but not its children), as last
# read before it ends: at most one 5 ms poll short.
runner_cpu () {
	"$REOPS_RUN" -q -f 64 -i "$work/rows.d" "$1" >/dev/null \
	    2>"$work/err" &
	pid=$!
	last=0
	for _ in $(seq 100000); do
		t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' \
		    "/proc/$pid/stat" 2>/dev/null) && [ -n "$t" ] || break
		last=$t
		sleep 0.005
	done
	wait "$pid" || {
		echo "bench-load: $1 failed:" >&2
		cat "$work/err" >&2
		exit 1
	}
	awk -v t="$last" -v hz="$(getconf CLK_TCK)" \
	    'BEGIN { printf "%.3f\n", t / hz }'
}
median_cpu () {
	for _ in $(seq "$RUNS"); do
		runner_cpu "$1"
	done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
for st in 'exec: "true"' 'pick: successful'; do
	gen flat "$st" >"$work/flat.yaml"
	gen branch "$st" >"$work/branch.yaml"
	flat=$(median_cpu "$work/flat.yaml")
	awk -v st="$st" -v f="$flat" -v r="$ROWS" -v s="$S" 'BEGIN {
		printf "%s x %d, %d rows, runner CPU: flat %.3f s " \
		    "(%.3f ms per row per stage)\n", st, s, r, f,
		    f * 1000 / (r * s)
	}'
	[ "$have_branch" = 1 ] || continue
	branch=$(median_cpu "$work/branch.yaml")
	awk -v st="$st" -v b="$branch" -v r="$ROWS" -v s="$S" 'BEGIN {
		printf "%s x %d, %d rows, runner CPU: 4-way branch %.3f s " \
		    "(%.3f ms per row per stage)\n", st, s, r, b,
		    b * 1000 / (r * s)
	}'
done
