#!/bin/bash
# bench/bench-bastion.sh: N targets reached through one bastion against the
# same N reached directly, on loopback sshd hosts (tests/lib-sshd.sh): host
# 1 is the bastion, hosts 2..N+1 the targets. For a pipeline of STAGES
# stages (exec: "true"), each way, it reports the best wall time of RUNS
# runs and that run's CPU time (user+sys) and peak RSS of reops-run, the
# bastion's logins over all runs (one per run is the aim), and a run
# through the bastion under `ulimit -n LOWFD` with FORKS targets in
# flight: the targets' sessions cost no descriptor of their own.
#
#   bench/bench-bastion.sh [REOPS_RUN]        (as root: it starts sshd)
#   N=50 RUNS=5 bench/bench-bastion.sh ./reops-run
#
# Use a build without sanitizers (see bench-load.sh). Every run is bounded
# by timeout(1).
set -u

REOPS_RUN=$(readlink -f "${1:-${REOPS_RUN:-./reops-run}}")
N=${N:-50}
RUNS=${RUNS:-3}
STAGES=${STAGES:-3}
FORKS=${FORKS:-20}
LOWFD=${LOWFD:-32}
LIMIT=${LIMIT:-300}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -x /usr/bin/time ] || [ ! -x "$REOPS_RUN" ] || [ "$(id -u)" != 0 ]; then
	echo "bench-bastion: needs root, /usr/bin/time and reops-run ('$REOPS_RUN')" >&2
	exit 2
fi
. "$here/tests/lib-sshd.sh"
work=$(mktemp -d) || exit 1
trap 'sshd_stop "$work/sshd"; rm -rf "$work"' EXIT
sshd_setup "$work/sshd" >/dev/null && sshd_start "$work/sshd" $((N + 1)) ||
	exit 1
port=$(sshd_port "$work/sshd")
cd "$work" || exit 1
mkdir via.d direct.d

group () {
	echo "  $1:"
	echo "    auth: { user: root, key: $work/sshd/keys/id_ed25519, port: $port }"
	echo "    known-hosts: $work/sshd/known_hosts"
}
targets () {
	echo "    hosts:"
	for i in $(seq 2 $((N + 1))); do
		echo "      - { name: t$i, address: $(sshd_host_addr "$i") }"
	done
}
{
	echo "groups:"
	group edge
	echo "    hosts: [{ name: gw, address: $(sshd_host_addr 1) }]"
	group web
	echo "    proxy-jump: gw"
	targets
} >via.d/hosts.yaml
{ echo "groups:"; group web; targets; } >direct.d/hosts.yaml
{
	echo "hosts: web"
	echo "stages:"
	for i in $(seq "$STAGES"); do echo "  - exec: \"true\""; done
} >p.yaml

# run WAY: "wall user+sys rss ok" of one run.
run () {
	/usr/bin/time -o t -f "%e %U %S %M" timeout "$LIMIT" \
	    "$REOPS_RUN" -i "$1.d" -f "$N" --json p.yaml >out 2>/dev/null
	# A failed run's first line says so; the numbers are the last.
	tail -n 1 t | {
		read -r e u s m
		echo "$e $(echo "$u + $s" | bc) $m $(grep -c '"status":"ok"' out)"
	}
}

echo "$N targets, $STAGES stages, best of $RUNS (wall s, cpu s, rss kB, ok rows)"
for way in direct via; do
	best=
	for r in $(seq "$RUNS"); do
		line=$(run "$way")
		if [ -z "$best" ] || [ "$(echo "${line%% *} < ${best%% *}" | bc)" = 1 ]; then
			best=$line
		fi
	done
	echo "$way: $best"
done
echo "bastion logins over $RUNS runs: $(sshd_accepted "$work/sshd" 1)"
(
	ulimit -n "$LOWFD"
	timeout "$LIMIT" "$REOPS_RUN" -i via.d -f "$FORKS" --json p.yaml >out 2>/dev/null
	echo "via, ulimit -n $LOWFD, -f $FORKS: exit $?, $(grep -c '"status":"ok"' out) ok"
)
