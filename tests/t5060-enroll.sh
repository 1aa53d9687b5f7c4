#!/bin/bash
# t5060: enroll over ssh on the loopback sshd test hosts: agents
# installed, started and pinned; a second run that changes nothing; a dead
# agent, a new binary, a second runner key; a refused key, another key
# pinned, a host ssh cannot reach, a proxy-jump; hostile paths. The hosts are
# this machine, so each host's agent is a reops-agent listening on
# 127.0.0.N:PORT (one free port for this run), its files under this
# test's directory. The test hosts log in as root with no systemd
# running, so the agents start detached with a pid file: the systemd
# path is not exercised here. Every agent started is stopped at the end,
# by the pid in its own pid file.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

AGENT_CLIENT=$BUILDDIR/tests/agent-client-test
R=$TRASH/remote		# the hosts' files: R/hN/bin, R/hN/agent

# The agents by their pid files, each only while it is a reops-agent.
stop_agents () {
	local pid
	[ -d "$R" ] || return 0
	for pid in $(find "$R" -name agent.pid -exec cat {} +); do
		case $(readlink "/proc/$pid/exe" 2>/dev/null) in
		*/reops-agent|*"/reops-agent (deleted)")
			kill -TERM "$pid" 2>/dev/null ;;
		esac
	done
	return 0
}
trap 'stop_agents; sshd_stop "$SSHD_DIR"' EXIT

ssh_hosts 4
H1=$(sshd_host_addr 1)
H2=$(sshd_host_addr 2)
H3=$(sshd_host_addr 3)
H4=$(sshd_host_addr 4)

# PORT to PORT+3 free on every address, from this run's pid; 40000-59999
# stays clear of the sshd test ports.
PORT=
for i in $(seq 0 19); do
	p=$(( 40000 + ($$ * 7919 + i * 104729) % 20000 ))
	if [ -z "$(ss -H -l -t -n "( sport >= :$p and sport <= :$((p + 3)) )" \
	    2>/dev/null)" ]; then
		PORT=$p
		break
	fi
done
[ -n "$PORT" ] || { echo "Bail out! no free port"; exit 99; }

mkdir -p hosts.d
{
	ssh_group fleet h1 h2 -- \
	    "agent: { port: $PORT, known-agents: $TRASH/known_agents }" |
	    sed -e "s/transport: ssh/transport: agent/"
	ssh_group down h3 -- \
	    "agent: { port: $PORT, known-agents: $TRASH/known_agents }" |
	    sed -e "s/transport: ssh/transport: agent/" -e 1d
} >hosts.d/fleet.yaml

# Where systemd runs, auto would pick it; this test is of the other way.
START=
[ -d /run/systemd/system ] && START=", start: detached"
pipeline enroll.yaml fleet \
    "enroll: { path: \"$R/\${target}/bin/reops-agent\", dir: \"$R/\${target}/agent\"$START }"

# pid_of hN: that host's agent's pid, from its pid file.
pid_of () {
	cat "$R/$1/agent/agent.pid"
}

# alive PID: it runs (PID 1 here reaps lazily: a zombie is gone).
alive () {
	kill -0 "$1" 2>/dev/null &&
	test "$(sed -e "s/^.*) //" -e "s/ .*//" "/proc/$1/stat" 2>/dev/null)" != Z
}

# wait_gone PID: 10 s at most, then says what is left.
wait_gone () {
	local i=0
	while alive "$1" && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	alive "$1" || return 0
	echo "process $1 still runs:" >&2
	ps -o pid=,stat=,args= -p "$1" >&2
	return 1
}

# The state a second run must leave as it was (the agents' logs aside:
# they log each ping).
snapshot () {
	(cd "$TRASH" && stat -c '%n %s %Y %a' known_agents .config/reops/agent.key \
	    .config/reops/agent.key.pub remote/*/bin/reops-agent \
	    remote/*/agent/* && sha256sum known_agents remote/*/agent/*) |
	    grep -v "agent\.log"
}

# vlines ERR: the -v lines of ERR (one per row of a stage), sorted, times
# left out.
vlines () {
	grep "^reops-run: [a-z]*: [^ ]*: [a-z]* code=" "$1" |
	    sed -e "s/ time=[0-9]*ms$//" | sort
}

# Its four steps (probe, put, set up, wait) run over ssh, but -v says
# each host once, for the stage, when the host is through.
test_expect_success 'enroll: two hosts, their agents started and pinned' '
	reops_run -v --json enroll.yaml >out 2>err &&
	json_get status out >got && printf "ok\nok\n" >want &&
	test_cmp want got &&
	vlines err >got &&
	printf "%s\n" "reops-run: enroll: h1: ok code=0" \
	    "reops-run: enroll: h2: ok code=0" >want &&
	test_cmp want got &&
	test $(grep -c "^reops-run: " err) -eq 2 &&
	json_get changed out | sort -u >got && echo true >want &&
	test_cmp want got &&
	json_get service out | sort -u >got && echo detached >want &&
	test_cmp want got &&
	json_get endpoint out >got &&
	printf "tcp://%s:%s\n" "$H1" "$PORT" "$H2" "$PORT" >want &&
	test_cmp want got &&
	for h in h1 h2; do
		cmp "$BUILDDIR/reops-agent" "$R/$h/bin/reops-agent" &&
		test "$(stat -c %a "$R/$h/bin/reops-agent")" = 755 &&
		test "$(stat -c %a "$R/$h/agent/agent.key")" = 600 &&
		test "$(readlink /proc/$(pid_of $h)/exe)" = \
		    "$R/$h/bin/reops-agent" || return 1
	done &&
	json_get agent_pid out >got &&
	{ pid_of h1 && pid_of h2; } >want &&
	test_cmp want got
'

test_expect_success 'the columns are the fixed ones and those enroll declares' '
	reops_run --list-stages=json >stages.json &&
	python3 - stages.json out <<-\EOF
	import json, sys
	decl = [s["columns"] for s in json.load(open(sys.argv[1]))
	    if s["name"] == "enroll"][0]
	want = ["target", "pipeline", "kind", "group", "status", "code",
	    "stdout", "stderr", "duration_ms"] + decl
	for line in open(sys.argv[2]):
	    got = list(json.loads(line))
	    if got != want:
	        sys.exit("columns %s, expected %s" % (got, want))
	EOF
'

test_expect_success 'the runner key was made, 0600, its .pub beside it' '
	test "$(stat -c %a .config/reops/agent.key)" = 600 &&
	test_grep "^[]0-9A-Za-z.:+=^!/*?&<>()@$%{}#[-]{40}$" \
	    .config/reops/agent.key.pub
'

test_expect_success 'the known-agents file pins both agents, as their .pub say' '
	printf "%s:%s %s\n" "$H1" "$PORT" "$(cat "$R/h1/agent/agent.key.pub")" \
	    "$H2" "$PORT" "$(cat "$R/h2/agent/agent.key.pub")" >want &&
	test_cmp want known_agents &&
	json_get agent_key out >got &&
	cat "$R/h1/agent/agent.key.pub" "$R/h2/agent/agent.key.pub" >want &&
	test_cmp want got
'

test_expect_success 'each agent authorizes the runner key, once' '
	k=$(cat .config/reops/agent.key.pub) &&
	for h in h1 h2; do
		test "$(grep -c -F -- "$k" "$R/$h/agent/authorized")" = 1 ||
		return 1
	done
'

test_expect_success 'the agents answer a request with the runner key' '
	for h in h1 h2; do
		a=$(sshd_host_addr ${h#h}) &&
		"$AGENT_CLIENT" -s "$R/$h/agent/agent.key.pub" \
		    -k .config/reops/agent.key "tcp://$a:$PORT" \
		    exec "echo answered by $h" >got &&
		echo "answered by $h" >want &&
		test_cmp want got || return 1
	done
'

test_expect_success 'a second run changes nothing, and says so' '
	snapshot >before &&
	reops_run -v --json enroll.yaml >out2 2>err &&
	json_get status out2 >got && printf "ok\nok\n" >want &&
	test_cmp want got &&
	vlines err >got &&
	printf "%s\n" "reops-run: enroll: h1: ok code=0" \
	    "reops-run: enroll: h2: ok code=0" >want &&
	test_cmp want got &&
	json_get changed out2 | sort -u >got && echo false >want &&
	test_cmp want got &&
	json_get stdout out2 | sort -u >got && echo >want &&
	test_cmp want got &&
	json_get agent_pid out >want && json_get agent_pid out2 >got &&
	test_cmp want got &&
	snapshot >after &&
	test_cmp before after
'

test_expect_success 'an agent that died is started again, its key kept' '
	old=$(pid_of h2) &&
	kill -TERM "$old" && wait_gone "$old" &&
	cp known_agents known_agents.before &&
	reops_run --json enroll.yaml >out3 2>err &&
	json_get changed out3 >got && printf "false\ntrue\n" >want &&
	test_cmp want got &&
	json_get stdout out3 | grep -x "started the agent" &&
	test "$(pid_of h2)" != "$old" &&
	alive "$(pid_of h2)" &&
	test_cmp known_agents.before known_agents
'

test_expect_success 'a new binary replaces the old and restarts its agent' '
	old=$(pid_of h1) &&
	printf "#!/bin/sh\nexit 1\n" >new &&
	chmod 755 new && mv -f new "$R/h1/bin/reops-agent" &&
	reops_run --json -l h1 enroll.yaml >out4 2>err &&
	json_get status out4 >got && echo ok >want && test_cmp want got &&
	json_get stdout out4 >got &&
	printf "%s\n" "copied $BUILDDIR/reops-agent to $R/h1/bin/reops-agent" \
	    "restarted the agent" >want &&
	test_cmp want got &&
	cmp "$BUILDDIR/reops-agent" "$R/h1/bin/reops-agent" &&
	test "$(pid_of h1)" != "$old" &&
	alive "$(pid_of h1)" && wait_gone "$old"
'

test_expect_success 'a second runner key: authorized, the agent reloaded, not restarted' '
	old=$(pid_of h1) &&
	mkdir -p second.d &&
	ssh_group second h1 -- \
	    "agent: { port: $PORT, key: $TRASH/runner2.key, known-agents: $TRASH/known_agents }" |
	    sed -e "s/transport: ssh/transport: agent/" >second.d/second.yaml &&
	pipeline second.yaml second \
	    "enroll: { path: \"$R/h1/bin/reops-agent\", dir: \"$R/h1/agent\"$START }" &&
	cp known_agents known_agents.before &&
	reops_run -i second.d --json second.yaml >out10 2>err &&
	json_get stdout out10 >got &&
	printf "%s\n" "made this runner'\''s key $TRASH/runner2.key" \
	    "authorized this runner'\''s key" \
	    "reloaded the agent'\''s authorized keys" >want &&
	test_cmp want got &&
	test "$(pid_of h1)" = "$old" &&
	test "$(grep -c . "$R/h1/agent/authorized")" = 2 &&
	"$AGENT_CLIENT" -s "$R/h1/agent/agent.key.pub" -k runner2.key \
	    "tcp://$H1:$PORT" exec "echo second runner" >got &&
	echo "second runner" >want && test_cmp want got &&
	test_cmp known_agents.before known_agents
'

test_expect_success 'a runner key others may read: failed before anything runs there' '
	chmod 644 runner2.key &&
	before=$(sshd_accepted "$SSHD_DIR" 1) &&
	test_exit 1 reops_run -i second.d --json second.yaml >out14 2>err &&
	json_get stderr out14 >got &&
	test_grep "^reops-run: enroll: the runner.s key: .$TRASH/runner2.key. is readable by others" got &&
	test "$(sshd_accepted "$SSHD_DIR" 1)" = "$before" &&
	chmod 600 runner2.key
'

test_expect_success 'an agent that keeps refusing the runner key: failed, with the reason' '
	old=$(pid_of h1) &&
	echo "not-a-key" >>"$R/h1/agent/authorized" &&
	sed -e "s/runner2\.key/runner3.key/" second.d/second.yaml >third.yaml &&
	mkdir -p third.d && mv third.yaml third.d/ &&
	pipeline third.yaml second \
	    "enroll: { path: \"$R/h1/bin/reops-agent\", dir: \"$R/h1/agent\", wait: 2$START }" &&
	test_exit 1 reops_run -i third.d --json third.yaml >out11 2>err &&
	json_get stderr out11 >got &&
	test_grep "^reops-run: enroll: the agent at .tcp://$H1:$PORT. refused this runner.s key" got &&
	test "$(pid_of h1)" = "$old" &&
	test_grep "SIGHUP: keeping the old keys" "$R/h1/agent/agent.log" &&
	sed -i -e "/^not-a-key\$/d" "$R/h1/agent/authorized" &&
	kill -HUP "$old"
'

test_expect_success 'another key pinned for a host fails its row, the file stays' '
	"$BUILDDIR/reops-agent" --keygen other >/dev/null &&
	sed -i -e "2s/ .*/ $(sed -e "s/[&/\\]/\\\\&/g" other.pub)/" known_agents &&
	cp known_agents known_agents.before &&
	test_exit 1 reops_run -v --json enroll.yaml >out5 2>err &&
	json_get status out5 >got && printf "ok\nfailed\n" >want &&
	test_cmp want got &&
	vlines err >got &&
	printf "%s\n" "reops-run: enroll: h1: ok code=0" \
	    "reops-run: enroll: h2: failed code=1" >want &&
	test_cmp want got &&
	json_get stderr out5 >got &&
	test_grep "^reops-run: enroll: $TRASH/known_agents:2:1: .$H2. port $PORT is pinned to another agent key" got &&
	test_cmp known_agents.before known_agents
'

test_expect_success 'a host whose ssh fails is unreachable, nothing pinned' '
	sshd_stop_host "$SSHD_DIR" 3 &&
	pipeline down.yaml down \
	    "enroll: { path: \"$R/h3/bin/reops-agent\", dir: \"$R/h3/agent\"$START }" &&
	test_exit 3 reops_run -v --json down.yaml >out6 2>err &&
	json_get status out6 >got && echo unreachable >want &&
	test_cmp want got &&
	vlines err >got &&
	echo "reops-run: enroll: h3: unreachable code=255" >want &&
	test_cmp want got &&
	! grep -q "^$H3" known_agents &&
	test ! -e "$R/h3"
'

test_expect_success 'the group'\''s ssh settings hold: a proxy-jump through h1' '
	mkdir -p jump.d &&
	ssh_group gw h1 >jump.d/gw.yaml &&
	ssh_group jumped h4 -- "proxy-jump: h1" \
	    "agent: { port: $PORT, known-agents: $TRASH/known_agents }" |
	    sed -e "s/transport: ssh/transport: agent/" >jump.d/jumped.yaml &&
	pipeline jump.yaml jumped \
	    "enroll: { path: \"$R/h4/bin/reops-agent\", dir: \"$R/h4/agent\"$START }" &&
	before=$(sshd_accepted "$SSHD_DIR" 1) &&
	reops_run -i jump.d --json jump.yaml >out12 2>err &&
	json_get status out12 >got && echo ok >want && test_cmp want got &&
	test "$(sshd_accepted "$SSHD_DIR" 1)" = $((before + 1)) &&
	grep -x -F "$H4:$PORT $(cat "$R/h4/agent/agent.key.pub")" known_agents
'

test_expect_success '^C while waiting for an agent: exit 130, the row interrupted' '
	mkdir -p lost.d &&
	ssh_group lost h1 -- \
	    "agent: { port: $((PORT + 3)), known-agents: $TRASH/known_agents }" |
	    sed -e "s/transport: ssh/transport: agent/" >lost.d/lost.yaml &&
	pipeline lost.yaml lost \
	    "enroll: { path: \"$R/h1/bin/reops-agent\", dir: \"$R/h1/lost\", listen: \"tcp://$H1:$((PORT + 2))\", wait: 60$START }" ||
	return 1
	# The agent listens where the runner does not look: it never answers.
	"$REOPS_RUN" -i lost.d --json lost.yaml >out13 2>err13 &
	rpid=$!
	i=0 && while [ ! -s "$R/h1/lost/agent.pid" ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1)); done &&
	test -s "$R/h1/lost/agent.pid" &&
	start=$(date +%s) &&
	kill -INT "$rpid" &&
	{ wait "$rpid"; rc=$?; } &&
	test "$rc" = 130 &&
	test $(( $(date +%s) - start )) -lt 30 &&
	json_get code out13 >got && echo 130 >want && test_cmp want got &&
	json_get stderr out13 | test_grep "interrupted" /dev/stdin
	ok=$?
	kill -KILL "$rpid" 2>/dev/null
	test $ok = 0
'

test_expect_success 'values are data on the host: quotes, spaces, $(...)' '
	d="$R/h1/it'\''s \$(touch pwned) \`touch pwned2\`" &&
	mkdir -p odd.d &&
	ssh_group odd h1 -- \
	    "agent: { port: $((PORT + 1)), known-agents: $TRASH/known_agents }" |
	    sed -e "s/transport: ssh/transport: agent/" >odd.d/odd.yaml &&
	pipeline odd.yaml odd \
	    "enroll: { path: \"$d/bin/reops-agent\", dir: \"$d/agent\", listen: \"tcp://$H1:$((PORT + 1))\", wait: 20$START }" &&
	reops_run -i odd.d --json odd.yaml >out7 2>err &&
	json_get status out7 >got && echo ok >want && test_cmp want got &&
	test -f "$d/agent/agent.key" && test -s "$d/agent/agent.pid" &&
	! test -e pwned && ! test -e "$R/h1/pwned" && ! test -e /root/pwned &&
	! test -e pwned2 && ! test -e /root/pwned2
'

test_expect_success 'a relative path: the row fails, nothing is put there' '
	pipeline rel.yaml h1 "enroll: { path: rel/reops-agent, dir: \"$R/h1/agent\" }" &&
	test_exit 1 reops_run --json rel.yaml >out15 2>err &&
	json_get stderr out15 >got &&
	test_grep "^reops-run: enroll: .rel/reops-agent. is not an absolute path" got &&
	test ! -e rel && test ! -e /root/rel
'

test_expect_success 'bad arguments stop the run before it starts' '
	pipeline bad.yaml fleet "enroll: { start: cron }" &&
	test_exit 2 reops_run bad.yaml 2>err &&
	test_grep "^bad.yaml:3:22: .start. of stage .enroll. must be auto, systemd or detached, not .cron.$" err &&
	pipeline bad2.yaml fleet "enroll: { binary: nothere }" &&
	test_exit 2 reops_run bad2.yaml 2>err &&
	test_grep "^bad2.yaml:3:23: unable to open .nothere." err &&
	pipeline bad3.yaml fleet "enroll: { wait: 0 }" &&
	test_exit 2 reops_run bad3.yaml 2>err &&
	test_grep "^bad3.yaml:3:21: .wait. of stage .enroll. must be from 1 to 3600 seconds, not .0.$" err
'

test_expect_success 'pipelines/enroll.yaml on the test hosts, twice' '
	sed -e "s/^  fleet:/  agents:/" hosts.d/fleet.yaml >agents.yaml &&
	mkdir -p inv && mv agents.yaml inv/ &&
	sed -i -e "/^  down:/,\$d" inv/agents.yaml &&
	echo "h1 $H1:$PORT" >/dev/null &&
	rm -f known_agents &&
	reops_run -i inv --check "$SRCDIR/pipelines/enroll.yaml" >plan &&
	test_grep "enroll" plan &&
	reops_run -i inv --json --set dir="$R/\${target}/agent" \
	    --set path="$R/\${target}/bin/reops-agent" \
	    "$SRCDIR/pipelines/enroll.yaml" >out8 2>err &&
	json_get status out8 >got && printf "ok\nok\n" >want &&
	test_cmp want got &&
	test "$(wc -l <known_agents)" = 2 &&
	reops_run -i inv --json --set dir="$R/\${target}/agent" \
	    --set path="$R/\${target}/bin/reops-agent" \
	    "$SRCDIR/pipelines/enroll.yaml" >out9 2>err &&
	json_get changed out9 | sort -u >got && echo false >want &&
	test_cmp want got
'

test_expect_success 'every agent started here stops' '
	pids=$(find "$R" -name agent.pid -exec cat {} +) &&
	test "$(echo $pids | wc -w)" = 5 &&
	stop_agents &&
	for p in $pids; do
		wait_gone "$p" || return 1
	done
'

ssh_done
