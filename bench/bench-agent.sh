#!/bin/bash
# bench/bench-agent.sh: the agent transport against the ssh transport and
# parallel-ssh (Debian's pssh), in one run on the same loopback hosts: for
# each host count of SIZES, host i is 127.0.x.y (tests/lib-sshd.sh) with
# its own sshd and its own reops-agent (one agent process per address, all
# on one port, all with one agent key pinned per address):
#
#   reops-run over the agent   exec: "true", and 5 x exec: "true"
#   reops-run over ssh         the same two pipelines
#   parallel-ssh -p N true     and 5 runs of it
#
# For each: the best wall time of RUNS runs, the runner's CPU (user+sys,
# all its processes) and peak RSS (/usr/bin/time), and for the agent rows
# the agents' own CPU (utime+stime from /proc/PID/stat before and after,
# the commands they ran not counted) per request, and their RSS. The
# agents' idle RSS is read once all of them listen, before any request.
#
#   bench/bench-agent.sh [REOPS_RUN [REOPS_AGENT]]   (as root: it starts sshd)
#   SIZES="50 200" RUNS=3 bench/bench-agent.sh ./reops-run ./reops-agent
#
# Use a build without sanitizers. PSSH=0 leaves parallel-ssh out. Every
# run is bounded by timeout(1).
set -u

REOPS_RUN=$(readlink -f "${1:-${REOPS_RUN:-./reops-run}}")
REOPS_AGENT=$(readlink -f "${2:-${REOPS_AGENT:-$(dirname "$REOPS_RUN")/reops-agent}}")
SIZES=${SIZES:-"50 200"}
RUNS=${RUNS:-3}
LIMIT=${LIMIT:-300}		# seconds per run, at most
here=$(cd "$(dirname "$0")/.." && pwd)
TICK=$(getconf CLK_TCK)

if [ ! -x /usr/bin/time ] || [ ! -x "$REOPS_RUN" ] || [ ! -x "$REOPS_AGENT" ] ||
    [ "$(id -u)" != 0 ]; then
	echo "bench-agent: needs root, /usr/bin/time, reops-run and reops-agent" >&2
	exit 2
fi
have_pssh=0; command -v parallel-ssh >/dev/null && have_pssh=${PSSH:-1}

. "$here/tests/lib-sshd.sh"
work=$(mktemp -d /tmp/bench-agent.XXXXXX) && [ -d "$work" ] || exit 2
agent_pids=()
stop_agents () {
	local p
	for p in "${agent_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${agent_pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	return 0
}
trap 'stop_agents; sshd_stop "$work/sshd"; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

max=0
for n in $SIZES; do [ "$n" -gt "$max" ] && max=$n; done
sshd_setup "$work/sshd" >/dev/null && sshd_start "$work/sshd" "$max" || exit 1
port=$(sshd_port "$work/sshd")
cfg=$work/sshd/ssh_config

# The agents: one per host address, on a port of this run's own.
cd "$work" || exit 2
"$REOPS_AGENT" --keygen agent.key >/dev/null &&
"$REOPS_AGENT" --keygen runner.key >/dev/null &&
cp runner.key.pub authorized || exit 1
aport=$(( 40000 + $$ % 20000 ))
: >known_agents
for i in $(seq 1 "$max"); do
	a=$(sshd_host_addr "$i")
	"$REOPS_AGENT" -d -k agent.key -a authorized -l "tcp://$a:$aport" \
	    2>"agent-$i.log" &
	agent_pids+=($!)
	echo "$a:$aport $(cat agent.key.pub)" >>known_agents
done
for i in $(seq 1 "$max"); do
	for _ in $(seq 200); do
		grep -q "listening on" "agent-$i.log" 2>/dev/null && break
		grep -q "unable to listen" "agent-$i.log" 2>/dev/null && {
			echo "bench-agent: agent $i: $(cat "agent-$i.log")" >&2; exit 1; }
		sleep 0.05
	done
	grep -q "listening on" "agent-$i.log" || {
		echo "bench-agent: agent $i did not start" >&2; exit 1; }
done

rss_kb () {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}
# The agents' own CPU ticks (not their children's).
agent_ticks () {
	local p s t=0 f
	for p in "${agent_pids[@]:0:$1}"; do
		{ read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
		s=${s##*) }
		read -r -a f <<<"$s"
		t=$(( t + f[11] + f[12] ))
	done
	echo "$t"
}
# RSS counts the shared libraries' pages; what is the agent's own is its
# private dirty memory (smaps_rollup).
idle_max=0 idle_sum=0 idle_priv=0
for p in "${agent_pids[@]}"; do
	r=$(rss_kb "$p")
	idle_sum=$(( idle_sum + r ))
	[ "$r" -gt "$idle_max" ] && idle_max=$r
	r=$(awk '/^Private_Dirty:/ { print $2 }' "/proc/$p/smaps_rollup")
	[ "${r:-0}" -gt "$idle_priv" ] && idle_priv=$r
done

for n in $SIZES; do
	mkdir -p "inv-agent-$n" "inv-ssh-$n"
	{
		echo "groups:"
		echo "  fleet:"
		echo "    transport: agent"
		echo "    agent: { port: $aport, key: $work/runner.key, known-agents: $work/known_agents }"
		echo "    hosts:"
		for i in $(seq 1 "$n"); do
			echo "      - { name: h$i, address: $(sshd_host_addr "$i") }"
		done
	} >"inv-agent-$n/fleet.yaml"
	{
		echo "groups:"
		echo "  fleet:"
		echo "    transport: ssh"
		echo "    auth: { user: root, key: $work/sshd/keys/id_ed25519, port: $port }"
		echo "    known-hosts: $work/sshd/known_hosts"
		echo "    hosts:"
		for i in $(seq 1 "$n"); do
			echo "      - { name: h$i, address: $(sshd_host_addr "$i") }"
		done
	} >"inv-ssh-$n/fleet.yaml"
	seq -f "h%g" 1 "$n" >"pssh-$n"
done
printf 'hosts: all\nstages:\n  - exec: "true"\n' >one.yaml
printf 'hosts: all\nstages:\n%s\n' "$(for i in 1 2 3 4 5; do echo '  - exec: "true"'; done)" \
    >five.yaml
cat >pssh5 <<EOF
#!/bin/bash
for i in 1 2 3 4 5; do
	parallel-ssh -h "\$1" -p "\$2" -t 60 -x "-F $cfg" true || exit 1
done
EOF
chmod +x pssh5

# measure CMD...: one run; sets WALL CPU RSS.
measure () {
	local out=$work/time.out rc
	timeout "$LIMIT" /usr/bin/time -f "%e %U %S %M" -o "$out" "$@" \
	    >/dev/null 2>"$work/err.out"
	rc=$?
	read -r WALL u s RSS <"$out"
	CPU=$(echo "$u + $s" | bc -l)
	RSS=$(echo "scale=1; $RSS / 1024" | bc -l)
	if [ "$rc" != 0 ]; then
		echo "bench-agent: $* failed (exit $rc):" >&2
		tail -3 "$work/err.out" >&2
	fi
	return "$rc"
}

# best NAME N REQS CMD...: the best of RUNS runs as one line; for the
# agent rows (REQS requests a run) the agents' CPU per request, over all
# runs, and their largest RSS after.
best () {
	local name=$1 n=$2 reqs=$3 r bw= bc br t0 t1 extra= amax=0 x i
	shift 3
	t0=$(agent_ticks "$n")
	for (( r = 0; r < RUNS; r++ )); do
		measure "$@" || { echo "| $name | failed |"; BEST_WALL=; return 1; }
		if [ -z "$bw" ] || [ "$(echo "$WALL < $bw" | bc -l)" = 1 ]; then
			bw=$WALL bc=$CPU br=$RSS
		fi
	done
	t1=$(agent_ticks "$n")
	if [ "$reqs" -gt 0 ]; then
		for (( i = 0; i < n; i++ )); do
			x=$(rss_kb "${agent_pids[$i]}")
			[ "${x:-0}" -gt "$amax" ] && amax=$x
		done
		extra=$(printf '%.3f ms | %.1f MB' \
		    "$(echo "($t1 - $t0) * 1000 / $TICK / ($reqs * $RUNS)" | bc -l)" \
		    "$(echo "$amax / 1024" | bc -l)")
	else
		extra="- | -"
	fi
	BEST_WALL=$bw
	printf '| %s | %.2f s | %.2f s | %.1f MB | %s |\n' "$name" "$bw" "$bc" \
	    "$br" "$extra"
}

ratio () {
	if [ -n "$2" ] && [ "$(echo "$2 > 0" | bc -l)" = 1 ]; then
		printf '%.3f' "$(echo "$1 / $2" | bc -l)"
	else
		echo n/a
	fi
}

echo "bench-agent: $(nproc) cores, $("$REOPS_RUN" --version), $max agents (one per address), idle agent RSS max $(echo "scale=1; $idle_max / 1024" | bc -l) MB, mean $(echo "scale=1; $idle_sum / ${#agent_pids[@]} / 1024" | bc -l) MB, private dirty max $(echo "scale=1; $idle_priv / 1024" | bc -l) MB"
echo "| case | wall (best) | runner CPU | runner peak RSS | agent CPU per request | agent RSS after |"
echo "|---|---|---|---|---|---|"
# One agent alone: 200 requests in a row (a 200-stage pipeline on h1),
# its CPU per request without 200 agents contending for 2 cores.
mkdir -p inv-agent-one
sed -e '/- { name: h2,/,$d' "inv-agent-$max/fleet.yaml" >inv-agent-one/fleet.yaml
{ printf 'hosts: all\nstages:\n'; for i in $(seq 200); do echo '  - exec: "true"'; done; } >h200.yaml
t0=$(agent_ticks 1)
measure "$REOPS_RUN" -q -i inv-agent-one h200.yaml || exit 1
t1=$(agent_ticks 1)
echo "one agent, 200 requests in a row: wall $WALL s, agent CPU per request $(echo "scale=3; ($t1 - $t0) * 1000 / $TICK / 200" | bc -l) ms"

for n in $SIZES; do
	p1=
	best "agent exec, $n hosts" "$n" "$n" \
	    "$REOPS_RUN" -q -i "inv-agent-$n" one.yaml
	a1=$BEST_WALL
	best "agent 5 stages, $n hosts" "$n" $(( 5 * n )) \
	    "$REOPS_RUN" -q -i "inv-agent-$n" five.yaml
	a5=$BEST_WALL
	best "ssh exec, $n hosts" "$n" 0 \
	    "$REOPS_RUN" -q -i "inv-ssh-$n" one.yaml
	s1=$BEST_WALL
	best "ssh 5 stages, $n hosts" "$n" 0 \
	    "$REOPS_RUN" -q -i "inv-ssh-$n" five.yaml
	s5=$BEST_WALL
	if [ $have_pssh = 1 ]; then
		best "parallel-ssh -p $n, $n hosts" "$n" 0 \
		    parallel-ssh -h "pssh-$n" -p "$n" -t 60 -x "-F $cfg" true
		p1=$BEST_WALL
		best "5 x parallel-ssh -p $n, $n hosts" "$n" 0 \
		    ./pssh5 "pssh-$n" "$n"
	fi
	printf '| ratios, %s hosts | agent/ssh %s | agent 5/ssh 5 %s | agent/pssh %s | agent 5-stage/1-stage %s | ssh 5-stage/1-stage %s |\n' \
	    "$n" "$(ratio "$a1" "$s1")" "$(ratio "$a5" "$s5")" \
	    "$(ratio "$a1" "$p1")" "$(ratio "$a5" "$a1")" "$(ratio "$s5" "$s1")"
done
