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
# that all see the same load). Printed per case and build, medians of
# RUNS: the wall time; the runner's own CPU time (user + sys of its
# threads, read from /proc/PID/stat once it has exited and before it is
# reaped, so the commands it starts are not in it); the CPU time of it
# and its commands (the local ones: the ssh commands' is sshd's); its
# voluntary context switches, its commands' included (how often they
# went to sleep: a loop that looks again every so often adds to them);
# and the ratios of each build's medians to the first build's.
#
# Use builds without sanitizers (see bench-load.sh). Every run is bounded
# by LIMIT seconds.
set -u

RUNS=${RUNS:-7}
CASES=${CASES:-"60:10:5 2:2:50"}
LIMIT=${LIMIT:-300}		# seconds per run, at most
here=$(cd "$(dirname "$0")/.." && pwd)

if [ $# -eq 0 ] || [ "$(id -u)" != 0 ]; then
	echo "bench-held: needs root and one or more REOPS_RUN" >&2
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

# timed LIMIT OUT ERR COMMAND...: runs it, prints "wall own total
# switches" (seconds; own: the command's threads alone, read while it is
# a zombie; total: with its children; switches: voluntary, with its
# children's); fails as the command does.
timed () {
	/usr/bin/python3 - "$@" <<'PY'
import os, signal, sys, time
limit, out, err, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
    os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    os.execv(argv[0], argv)
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.alarm(limit)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
wall = time.monotonic() - t0
with open("/proc/%d/stat" % pid) as f:
    st = f.read()
fields = st[st.rindex(")") + 2:].split()
own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
_, status, ru = os.wait4(pid, 0)
print("%.3f %.3f %.3f %d" % (wall, own, ru.ru_utime + ru.ru_stime, ru.ru_nvcsw))
sys.exit(0 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else 1)
PY
}

# one DIR ROWS FILE FORKS REOPS_RUN: one run, "wall own total switches"
# appended to FILE.
one () {
	timed "$LIMIT" "$work/out" "$work/err" "$5" -i "$1/hosts.d" \
	    --forks "$4" --json "$1/mixed.yaml" >"$work/t" || {
		echo "bench-held: '$5' --forks $4 failed:" >&2
		cat "$work/err" >&2
		exit 1
	}
	if [ "$(grep -c '"status":"ok"' "$work/out")" != "$2" ]; then
		echo "bench-held: '$5' --forks $4: not every row ok" >&2
		exit 1
	fi
	cat "$work/t" >>"$3"
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
printf '%-8s %-5s %-30s %6s %6s %6s %6s %6s %6s %6s\n' case forks build \
    wall own total sw wall/1 own/1 sw/1
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
			o=$(median "$f" 2)
			u=$(median "$f" 3)
			x=$(median "$f" 4)
			[ $k = 1 ] && { w1=$w; o1=$o; x1=$x; }
			printf '%-8s %-5s %-30s %5ss %5ss %5ss %6.0f %6s %6s %6s\n' \
			    "$c" "$forks" "$r" "$w" "$o" "$u" "$x" \
			    "$(ratio "$w" "$w1")" "$(ratio "$o" "$o1")" \
			    "$(ratio "$x" "$x1")"
		done
	done
done
