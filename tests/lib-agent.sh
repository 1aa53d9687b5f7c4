# tests/lib-agent.sh: real reops-agent processes on loopback for the t5xxx
# tests, with keys made at test time.
#
#   . "$SRCDIR/tests/lib-agent.sh"
#   agent_keys                     # agent.key{,.pub} runner.key{,.pub},
#                                  # authorized (runner.key.pub)
#   agent_start a1 127.0.0.50 [-j 2 ...] || exit 99
#   client a1 ping                 # tests/agent-client-test against a1
#   agent_stop a1                  # SIGTERM; fails unless it exits 0
#
# Each agent NAME keeps NAME.agent-pid, NAME.endpoint, NAME.log (its -d
# log) and, once it has exited, NAME.status. Every wait is bounded. Agents
# still running when the script exits are killed.

: "${REOPS_AGENT:=$BUILDDIR/reops-agent}"
AGENT_CLIENT=$BUILDDIR/tests/agent-client-test
# Short ZMTP heartbeats so a vanished runner is noticed in a second.
REOPS_AGENT_HEARTBEAT_MS=200
export REOPS_AGENT REOPS_AGENT_HEARTBEAT_MS

reops_agent () {
	"$REOPS_AGENT" "$@"
}

agent_keys () {
	reops_agent --keygen agent.key >/dev/null &&
	reops_agent --keygen runner.key >/dev/null &&
	{ echo "# the test runner"; cat runner.key.pub; } >authorized
}

# agent_start NAME ADDR [OPTION...]: starts an agent on ADDR and a port
# derived from $$, trying other ports while the bind fails; returns once
# it answers a ping.
agent_start () {
	local name=$1 addr=$2 attempt port i
	shift 2
	for attempt in 0 1 2 3 4 5 6 7; do
		port=$(( 20000 + ($$ * 7919 + attempt * 104729 +
		    ${addr##*.} * 31) % 20000 ))
		rm -f "$name.agent-pid" "$name.status"
		echo "tcp://$addr:$port" >"$name.endpoint"
		( "$REOPS_AGENT" -d -k agent.key -a authorized \
		    -l "tcp://$addr:$port" "$@" 2>"$name.log" &
		  echo $! >"$name.agent-pid"
		  wait $!
		  echo $? >"$name.status" ) &
		for i in $(seq 100); do
			[ -s "$name.agent-pid" ] &&
			    grep -q "listening on" "$name.log" && break
			[ -s "$name.status" ] && break
			sleep 0.1
		done
		if [ -s "$name.status" ]; then
			grep -q "unable to listen" "$name.log" && continue
			cat "$name.log" >&2
			return 1
		fi
		client "$name" ping >/dev/null && return 0
		cat "$name.log" >&2
		return 1
	done
	echo "agent_start: no usable port" >&2
	return 1
}

# agent_wait_exit NAME: waits (10 s at most) for NAME's status file.
agent_wait_exit () {
	local i
	for i in $(seq 100); do
		[ -s "$1.status" ] && return 0
		sleep 0.1
	done
	echo "agent $1 did not exit" >&2
	return 1
}

agent_stop () {
	local st
	[ -s "$1.agent-pid" ] && kill -TERM "$(cat "$1.agent-pid")" 2>/dev/null
	agent_wait_exit "$1" || return 1
	st=$(cat "$1.status")
	if [ "$st" != 0 ]; then
		echo "agent $1 exited $st:" >&2
		tail -20 "$1.log" >&2
		return 1
	fi
}

agent_stop_all () {
	local p
	for p in "$TRASH"/*.agent-pid; do
		[ -s "$p" ] && [ ! -s "${p%.agent-pid}.status" ] &&
		    kill -KILL "$(cat "$p")" 2>/dev/null
	done
	return 0
}
trap agent_stop_all EXIT

# client NAME [-r FILE] ACTION [ARG...]: agent-client-test with the test
# keys; -r FILE gets the exit frame of exec.
client () {
	local name=$1 res=
	shift
	if [ "$1" = -r ]; then
		res=$2
		shift 2
	fi
	"$AGENT_CLIENT" ${res:+-r "$res"} -s agent.key.pub -k runner.key \
	    "$(cat "$name.endpoint")" "$@"
}

# client_bg NAME PIDFILE ACTION [ARG...]: client in the background, its
# own pid (not a subshell's) in PIDFILE, its output in PIDFILE.out.
client_bg () {
	local name=$1 pidfile=$2
	shift 2
	( exec "$AGENT_CLIENT" -s agent.key.pub -k runner.key \
	    "$(cat "$name.endpoint")" "$@" >"$pidfile.out" 2>&1 ) &
	echo $! >"$pidfile"
}

# wait_gone PATTERN: waits (10 s at most) until no process's command line
# starts with PATTERN (give each a unique one, e.g. "sleep 300.$$1").
wait_gone () {
	local i
	for i in $(seq 100); do
		pgrep -f "^$1" >/dev/null || return 0
		sleep 0.1
	done
	echo "still running:" >&2
	pgrep -a -f "^$1" >&2
	return 1
}

# wait_running PATTERN: waits (10 s at most) until a process runs it.
wait_running () {
	local i
	for i in $(seq 100); do
		pgrep -f "^$1" >/dev/null && return 0
		sleep 0.1
	done
	echo "never started: $1" >&2
	return 1
}

# wait_file FILE PATTERN: waits (10 s at most) until FILE has a match.
wait_file () {
	local i
	for i in $(seq 100); do
		grep -q -E -e "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no line matches '$2' in $1:" >&2
	sed -e 's/^/  | /' "$1" | tail -20 >&2
	return 1
}
