#!/bin/bash
# bench/bench-held.sh: stages whose rows are local and ssh at once, under
# a small --forks, so that the two transports' loops hold each other back
# all the time: a row that ends gives its slot to whichever loop takes it.
#
#   bench/bench-held.sh REOPS_RUN...          (as root: it starts sshd)
#   RUNS=7 CASES="60:10:5 2:2:50" bench/bench-held.sh ./before ./after
#
# Each case L:S:N is a pipeline of N stages of exec: "true" on L local
# rows and S ssh hosts (loopback sshd, tests/lib-sshd.sh); the first stage
# connects, the others reuse the sessions. Each runs with --forks 1 and
# --forks 2, each REOPS_RUN given in turn in each round (interleaved, so
# that all see the same load). Printed per case and build: the median
# wall time, the median CPU time (user + sys of reops-run and its
# children: the local commands', the same for every build, are in it; the
# ssh commands' are sshd's), the median count of voluntary context
# switches (how often reops-run and its commands went to sleep: a loop
# that looks again every so often adds to it), and the ratios of each
# build's medians to the first build's.
#
# Use builds without sanitizers (see bench-load.sh). Needs /usr/bin/time.
# Every run is bounded by timeout(1).
set -u

RUNS=${RUNS:-7}
CASES=${CASES:-"60:10:5 2:2:50"}
LIMIT=${LIMIT:-300}		# seconds per run, at most
here=$(cd "$(dirname "$0")/.." && pwd)

if [ $# -eq 0 ] || [ ! -x /usr/bin/time ] || [ "$(id -u)" != 0 ]; then
	echo "bench-held: needs root, /usr/bin/time and one or more" \
	    "REOPS_RUN" >&2
	exit 2
fi
runs=()
for r in "$@"; do
	if [ ! -x "$r" ]; then
		echo "bench-held: no reops-run at '$r'" >&2
		exit 2
	fi
	runs+=("$(readlink -f "$r")")
done
nssh=0
for c in $CASES; do
	IFS=: read -r l s n <<<"$c"
	[ "$s" -gt "$nssh" ] && nssh=$s
done

. "$here/tests/lib-sshd.sh"
work=$(mktemp -d /tmp/bench-held.XXXXXX) && [ -d "$work" ] || exit 2
trap 'sshd_stop "$work/sshd"; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

sshd_setup "$work/sshd" >/dev/null && sshd_start "$work/sshd" "$nssh" || exit 1
port=$(sshd_port "$work/sshd")

# setup L S N: the inventory and pipeline of a case in $work/L-S-N.
setup () {
	d=$work/$1-$2-$3
	mkdir -p "$d/hosts.d"
	{
		echo "groups:"
		echo "  fleet:"
		echo "    transport: ssh"
		echo "    auth: { user: root, key: $work/sshd/keys/id_ed25519, port: $port }"
		echo "    known-hosts: $work/sshd/known_hosts"
		echo "    hosts:"
		for i in $(seq 1 "$2"); do
			echo "      - { name: h$i, address: $(sshd_host_addr "$i") }"
		done
		echo "  here:"
		echo "    transport: local"
		echo "    hosts:"
		for i in $(seq 1 "$1"); do
			echo "      - l$i"
		done
	} >"$d/hosts.d/mixed.yaml"
	{
		echo "hosts: all"
		echo "stages:"
		for i in $(seq 1 "$3"); do
			echo '  - exec: "true"'
		done
	} >"$d/mixed.yaml"
}

# one DIR ROWS FILE FORKS REOPS_RUN: one timed run, "wall cpu switches"
# appended to FILE.
one () {
	timeout "$LIMIT" /usr/bin/time -f '%e %U %S %w' -o "$work/t" "$5" \
	    -i "$1/hosts.d" --forks "$4" --json "$1/mixed.yaml" \
	    >"$work/out" 2>"$work/err" || {
		echo "bench-held: '$5' --forks $4 failed:" >&2
		cat "$work/err" >&2
		exit 1
	}
	if [ "$(grep -c '"status":"ok"' "$work/out")" != "$2" ]; then
		echo "bench-held: '$5' --forks $4: not every row ok" >&2
		exit 1
	fi
	awk '{ printf "%.2f %.2f %d\n", $1, $2 + $3, $4 }' "$work/t" >>"$3"
}

# median FILE COLUMN
median () {
	sort -n -k "$2" "$1" | awk -v c="$2" '{ v[NR] = $c }
	END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.2f", m
	}'
}

ratio () {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'
}

echo "median of $RUNS runs; ratios to the first build"
printf '%-10s %-5s %-34s %7s %6s %8s %6s %6s %6s\n' case forks build \
    wall cpu switches wall/1 cpu/1 sw/1
for c in $CASES; do
	IFS=: read -r l s n <<<"$c"
	setup "$l" "$s" "$n"
	for forks in 1 2; do
		for _ in $(seq "$RUNS"); do
			k=0
			for r in "${runs[@]}"; do
				k=$((k + 1))
				one "$work/$l-$s-$n" $((l + s)) \
				    "$work/r-$l-$s-$n-$forks-$k" "$forks" "$r"
			done
		done
		k=0
		for r in "${runs[@]}"; do
			k=$((k + 1))
			f=$work/r-$l-$s-$n-$forks-$k
			w=$(median "$f" 1)
			u=$(median "$f" 2)
			x=$(median "$f" 3)
			[ $k = 1 ] && { w1=$w; u1=$u; x1=$x; }
			printf '%-10s %-5s %-34s %6ss %5ss %8.0f %6s %6s %6s\n' \
			    "$c" "$forks" "$r" "$w" "$u" "$x" "$(ratio "$w" "$w1")" \
			    "$(ratio "$u" "$u1")" "$(ratio "$x" "$x1")"
		done
	done
done
