#!/bin/bash
# bench/bench-local.sh: 2,000 local `exec: true` rows against
# `xargs -P 256 sh -c true` running the same 2,000 commands, on the same
# machine, runs interleaved so that both see the same load. Each
# REOPS_RUN given is measured; the ratio is its wall time over xargs's.
#
#   bench/bench-local.sh [RUNS] REOPS_RUN...
#
# Use builds without sanitizers, e.g.
#   mkdir /tmp/build-bench && cd /tmp/build-bench &&
#   /path/to/configure -q && make reops-run &&
#   /path/to/bench/bench-local.sh 7 ./reops-run
# Needs GNU time (/usr/bin/time). Prints, per command, the median and the
# best wall time of RUNS runs, the median user and system CPU, and the
# ratio of the medians to xargs's.
set -eu

RUNS=${1:-7}
shift || true
ROWS=2000
FORKS=256

if [ ! -x /usr/bin/time ]; then
	echo "bench-local: /usr/bin/time is missing (apt-get install time)" >&2
	exit 2
fi
if [ $# -eq 0 ]; then
	set -- ./reops-run
fi
for r in "$@"; do
	if [ ! -x "$r" ]; then
		echo "bench-local: no reops-run at '$r'" >&2
		exit 2
	fi
done

work=$(mktemp -d /tmp/bench-local.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/hosts.d"
awk -v n="$ROWS" 'BEGIN {
	print "groups:"
	print "  here:"
	print "    transport: local"
	print "    hosts:"
	for (i = 0; i < n; i++)
		printf "      - h%d\n", i
}' >"$work/hosts.d/here.yaml"
printf 'hosts: here\nstages:\n  - exec: "true"\n' >"$work/true.yaml"
seq "$ROWS" >"$work/args"

# one NAME COMMAND...: one timed run, appended to NAME's file as
# "wall user sys".
one () {
	name=$1
	shift
	/usr/bin/time -f '%e %U %S' -o "$work/t" "$@" >/dev/null 2>&1 ||
		{ echo "bench-local: $name failed" >&2; exit 1; }
	cat "$work/t" >>"$work/$name"
}

for i in $(seq "$RUNS"); do
	one xargs sh -c "xargs -P $FORKS -n 1 sh -c true <'$work/args'"
	k=0
	for r in "$@"; do
		k=$((k + 1))
		one "run$k" "$r" -i "$work/hosts.d" --forks "$FORKS" \
		    "$work/true.yaml"
	done
done

# stats NAME: median wall, best wall, median user, median sys
stats () {
	awk '{ w[NR] = $1; u[NR] = $2; s[NR] = $3 }
	function med(a, n,   i, j, t) {
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END { printf "%.2f %.2f %.2f %.2f\n", med(w, NR), (asort_min(w, NR)),
	    med(u, NR), med(s, NR) }
	function asort_min(a, n,   i, m) {
		m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]
		return m
	}' "$work/$1"
}

read -r xw xb xu xs <<<"$(stats xargs)"
printf '%-40s %8s %8s %8s %8s %7s\n' command "median" best user sys ratio
printf '%-40s %7ss %7ss %7ss %7ss %7s\n' "xargs -P $FORKS sh -c true" \
    "$xw" "$xb" "$xu" "$xs" 1.00
k=0
for r in "$@"; do
	k=$((k + 1))
	read -r w b u s <<<"$(stats "run$k")"
	printf '%-40s %7ss %7ss %7ss %7ss %7s\n' "$r" "$w" "$b" "$u" "$s" \
	    "$(awk -v a="$w" -v b="$xw" 'BEGIN { printf "%.2f", a / b }')"
done
