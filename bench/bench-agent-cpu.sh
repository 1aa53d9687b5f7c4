#!/bin/bash
# bench/bench-agent-cpu.sh: one reops-agent's own CPU per request, for one
# or more builds side by side: for each REOPS_RUN:REOPS_AGENT pair, an
# agent on 127.0.0.x alone, and RUNS runs of a pipeline of REQS stages of
# `exec: "true"` on it (one connection a run, the requests one after the
# other), in turn, build after build. Per run: the agent's utime+stime
# (/proc/PID/stat, in clock ticks) and its threads' time on the CPU
# (/proc/PID/task/*/schedstat, in ns) before and after, the commands it
# ran not counted, over REQS.
#
#   bench/bench-agent-cpu.sh OLD/reops-run:OLD/reops-agent NEW/reops-run:NEW/reops-agent
#   REQS=500 RUNS=3 ADDR=127.0.0.90 bench/bench-agent-cpu.sh ...
#
# Use builds without sanitizers. Every run is bounded by timeout(1).
set -u

REQS=${REQS:-500}
RUNS=${RUNS:-3}
ADDR=${ADDR:-127.0.0.90}
LIMIT=${LIMIT:-300}
TICK=$(getconf CLK_TCK)
[ $# -ge 1 ] || { echo "usage: bench-agent-cpu.sh RUN:AGENT..." >&2; exit 2; }

work=$(mktemp -d /tmp/bench-agent-cpu.XXXXXX) && [ -d "$work" ] || exit 2
pids=()
cleanup () {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ticks PID: utime+stime; ns PID: the sum of its threads' CPU time.
ticks () {
	local s f
	read -r s <"/proc/$1/stat" || return 1
	s=${s##*) }
	read -r -a f <<<"$s"
	echo $(( f[11] + f[12] ))
}
ns () {
	local t a sum=0
	for t in /proc/"$1"/task/*/schedstat; do
		{ read -r a _ <"$t"; } 2>/dev/null && sum=$(( sum + a ))
	done
	echo "$sum"
}

cd "$work" || exit 2
{ printf 'hosts: all\nstages:\n'; for _ in $(seq "$REQS"); do echo '  - exec: "true"'; done; } >p.yaml
port=$(( 40000 + $$ % 20000 ))
i=0
for pair in "$@"; do
	run=$(readlink -f "${pair%%:*}") agent=$(readlink -f "${pair#*:}")
	mkdir "b$i" && cd "b$i" || exit 2
	"$agent" --keygen agent.key >/dev/null &&
	"$agent" --keygen runner.key >/dev/null &&
	cp runner.key.pub authorized || exit 1
	p=$(( port + i ))
	echo "$ADDR:$p $(cat agent.key.pub)" >known_agents
	mkdir inv
	printf 'groups:\n  one:\n    transport: agent\n    agent: { port: %s, key: %s, known-agents: %s }\n    hosts:\n      - { name: h1, address: %s }\n' \
	    "$p" "$PWD/runner.key" "$PWD/known_agents" "$ADDR" >inv/one.yaml
	"$agent" -d -k agent.key -a authorized -l "tcp://$ADDR:$p" 2>agent.log &
	pids+=($!)
	for _ in $(seq 200); do
		grep -q "listening on" agent.log && break
		sleep 0.05
	done
	grep -q "listening on" agent.log || { echo "agent $i did not start" >&2; exit 1; }
	cd ..
	i=$(( i + 1 ))
done

echo "bench-agent-cpu: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $REQS requests a run, one agent at $ADDR"
echo "| build | run | wall | agent CPU per request (utime+stime) | agent CPU per request (schedstat) |"
echo "|---|---|---|---|---|"
for (( r = 1; r <= RUNS; r++ )); do
	i=0
	for pair in "$@"; do
		run=$(readlink -f "${pair%%:*}")
		pid=${pids[$i]}
		t0=$(ticks "$pid") n0=$(ns "$pid") w0=$(date +%s.%N)
		timeout "$LIMIT" "$run" -q -i "b$i/inv" p.yaml >/dev/null 2>"b$i/err" ||
		    { echo "bench-agent-cpu: $run failed:" >&2; tail -3 "b$i/err" >&2; exit 1; }
		w1=$(date +%s.%N) t1=$(ticks "$pid") n1=$(ns "$pid")
		printf '| %s | %d | %.2f s | %.3f ms | %.3f ms |\n' "$(dirname "$run")" "$r" \
		    "$(echo "$w1 - $w0" | bc -l)" \
		    "$(echo "($t1 - $t0) * 1000 / $TICK / $REQS" | bc -l)" \
		    "$(echo "($n1 - $n0) / 1000000 / $REQS" | bc -l)"
		i=$(( i + 1 ))
	done
done
