#!/bin/bash
# t0750: the publish stage against real collectors on loopback. The
# collector of reops-pipeline(5), taken from the page, gets exactly the
# rows that --json prints, host and system rows, secrets masked, over
# CURVE too; and what it cannot deliver (nothing listening, a wrong key, a
# collector killed mid-way, ^C) is counted in one line, with exit 5.
. "$SRCDIR/tests/test-lib.sh"

PY=/usr/bin/python3
if ! $PY -c "import zmq" 2>/dev/null; then
	test_skip 'publish into a collector' 'no python3-zmq in /usr/bin/python3'
	test_done
fi

# Collectors still running when the script ends (each test runs in a
# subshell, so their pids are read back from the files).
cleanup () {
	for f in "$TRASH"/*.pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
}
trap cleanup EXIT

# start_collector NAME SCRIPT ENDPOINT [ARG...]: starts SCRIPT, which says
# "listening on ENDPOINT" on stderr once bound (tcp://127.0.0.1:* takes a
# free port); its rows go to NAME.out, the endpoint to NAME.endpoint.
start_collector () {
	local name=$1 script=$2 i
	shift 2
	rm -f "$name.out" "$name.err" "$name.endpoint"
	$PY "$script" "$@" >"$name.out" 2>"$name.err" &
	echo $! >"$name.pid"
	for i in $(seq 300); do
		grep -q "^listening on " "$name.err" && break
		kill -0 "$(cat "$name.pid")" 2>/dev/null || break
		sleep 0.1
	done
	sed -n "s/^listening on //p" "$name.err" >"$name.endpoint"
	test -s "$name.endpoint" || {
		echo "collector $name did not start:"
		cat "$name.err"
		return 1
	}
}

# stop_collector NAME: SIGKILL, and wait (10 s at most) until it is gone.
stop_collector () {
	local pid i
	pid=$(cat "$1.pid") || return 1
	kill -9 "$pid" 2>/dev/null
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$1.pid"; return 0; }
		sleep 0.1
	done
	echo "collector $1 ($pid) is still running"
	return 1
}

# wait_rows FILE TOPIC N: until FILE has N lines of TOPIC (30 s at most).
wait_rows () {
	local i
	for i in $(seq 300); do
		[ "$(grep -c "^$2 " "$1")" -ge "$3" ] && return 0
		sleep 0.1
	done
	echo "$1 has $(grep -c "^$2 " "$1") rows of topic $2, not $3:"
	cut -c 1-200 "$1"
	return 1
}

test_must_be_empty () {
	if [ -s "$1" ]; then
		echo "$1 is not empty:"
		cat "$1"
		return 1
	fi
}

# same_rows JSON-LINES COLLECTOR-OUT TOPIC [FIRST]: the collector's rows of
# TOPIC are the --json rows, from the FIRST (0 by default) on, in order.
cat >same.py <<\EOF
import json, sys
want = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[4]):]
got = []
for l in open(sys.argv[2]):
    topic, row = l.rstrip("\n").split(" ", 1)
    if topic == sys.argv[3]:
        got.append(json.loads(row))
if got != want:
    print("want %d rows, got %d" % (len(want), len(got)))
    for w, g in zip(want + [None] * len(got), got + [None] * len(want)):
        if w != g:
            print("want", str(w)[:300])
            print("got ", str(g)[:300])
            break
    sys.exit(1)
print(len(got), "rows")
EOF
same_rows () {
	$PY same.py "$1" "$2" "$3" "${4:-0}"
}

# The collector as reops-pipeline(5) shows it: the literal block that
# follows ".Pa examples/collector.py" in EXAMPLES.
test_expect_success 'reops-pipeline(5) shows examples/collector.py, whole' '
	$PY - "$SRCDIR/man/reops-pipeline.5" >collector.py <<-\EOF &&
	import sys
	lines = open(sys.argv[1]).read().split("\n")
	i = lines.index(".Pa examples/collector.py ,")
	i = next(j for j in range(i, len(lines))
	         if lines[j].startswith(".Bd -literal"))
	block = lines[i + 1:lines.index(".Ed", i)]
	print("\n".join(l.replace("\\e", "\\").replace("\\&", "")
	                for l in block))
	EOF
	test_cmp "$SRCDIR/examples/collector.py" collector.py
'

test_expect_success 'the collector of the page starts on a free port' '
	start_collector c1 collector.py "tcp://127.0.0.1:*" &&
	grep -q "^tcp://127\.0\.0\.1:[0-9]*$" c1.endpoint
'

test_expect_success 'pipelines/publish.yaml: the collector gets exactly the rows of --json' '
	reops_run -i "$SRCDIR/hosts.d" --json --set collector="$(cat c1.endpoint)" \
	    "$SRCDIR/pipelines/publish.yaml" >json.out 2>err &&
	test_must_be_empty err &&
	test $(wc -l <json.out) -eq 4 &&
	wait_rows c1.out kernels 4 &&
	same_rows json.out c1.out kernels &&
	test $(json_get stdout json.out | grep -c "^Linux ") -eq 4
'

test_expect_success 'the topic is the pipeline'\''s name unless given' '
	printf "hosts: workers\nstages:\n  - exec: echo hi\n  - publish: %s\n" \
	    "$(cat c1.endpoint)" >untitled.yaml &&
	reops_run -i "$SRCDIR/hosts.d" --json untitled.yaml >json.out &&
	wait_rows c1.out untitled 3 &&
	same_rows json.out c1.out untitled
'

test_expect_success 'system rows are published as --json prints them' '
	printf "systems: all\nstages:\n  - ls\n  - publish: { to: \"%s\", topic: systems }\n" \
	    "$(cat c1.endpoint)" >systems.yaml &&
	reops_run -i "$SRCDIR/hosts.d" --json systems.yaml >json.out &&
	test $(json_get kind json.out | grep -c -x system) -eq 2 &&
	wait_rows c1.out systems 2 &&
	same_rows json.out c1.out systems
'

test_expect_success 'secrets are *** and bytes that are not UTF-8 arrive whole' '
	cat >secret.yaml <<-EOF &&
	hosts: localhost
	params:
	  token: { secret: true, env: T0750_TOKEN }
	stages:
	  - exec: echo "token:" \${token}; printf "\\377\\376"
	  - publish: { to: "$(cat c1.endpoint)", topic: secret }
	EOF
	T0750_TOKEN=hunter2-t0750 reops_run -i "$SRCDIR/hosts.d" --json \
	    secret.yaml >json.out &&
	wait_rows c1.out secret 1 &&
	same_rows json.out c1.out secret &&
	grep "^secret " c1.out >row &&
	test_grep "token: \*\*\*" row &&
	test_grep "\"stdout_base64\": \"dG9rZW46ICoqKgr//g==\"" row &&
	! grep hunter2 c1.out
'

test_expect_success 'an empty table sends nothing and waits for nothing' '
	printf "hosts: local\nstages:\n  - pick: failed\n  - publish: { to: ipc://nowhere.sock, timeout: 60 }\n" \
	    >empty.yaml &&
	start=$(date +%s%N) &&
	reops_run -i "$SRCDIR/hosts.d" empty.yaml >out 2>err &&
	ms=$(( ($(date +%s%N) - start) / 1000000 )) &&
	test_must_be_empty err &&
	{ [ $ms -lt 30000 ] || { echo "took $ms ms"; false; }; }
'

# Keys made now, as reops-agent(8) makes them.
test_expect_success 'CURVE: a collector with its own key gets the rows' '
	"$BUILDDIR/reops-agent" --keygen collector.key >/dev/null &&
	"$BUILDDIR/reops-agent" --keygen other.key >/dev/null &&
	start_collector c2 collector.py "tcp://127.0.0.1:*" collector.key &&
	printf "hosts: all\nstages:\n  - publish: { to: \"%s\", topic: curve, server-key: %s }\n" \
	    "$(cat c2.endpoint)" collector.key.pub >curve.yaml &&
	reops_run -i "$SRCDIR/hosts.d" --json curve.yaml >json.out 2>err &&
	test_must_be_empty err &&
	wait_rows c2.out curve 4 &&
	same_rows json.out c2.out curve
'

test_expect_success 'CURVE: another key is a failed handshake, named, exit 5' '
	ep=$(cat c2.endpoint) &&
	printf "hosts: all\nstages:\n  - publish: { to: \"%s\", topic: wrong, server-key: %s, timeout: 2 }\n" \
	    "$ep" other.key.pub >wrong.yaml &&
	test_exit 5 reops_run -i "$SRCDIR/hosts.d" --json wrong.yaml >json.out 2>err &&
	echo "reops-run: publish: 4 of 4 rows not delivered to $ep (the CURVE handshake failed: the collector'\''s key is not the one in '\''other.key.pub'\'')" >expect &&
	test_cmp expect err &&
	test $(wc -l <json.out) -eq 4 &&
	! grep "^wrong " c2.out
'

test_expect_success 'CURVE: without server-key, the collector wants CURVE' '
	ep=$(cat c2.endpoint) &&
	printf "hosts: localhost\nstages:\n  - publish: { to: \"%s\", timeout: 2 }\n" \
	    "$ep" >plain.yaml &&
	test_exit 5 reops_run -i "$SRCDIR/hosts.d" plain.yaml 2>err &&
	# Which of the two depends on whether the collector closed before
	# its greeting reached us (a loaded machine): both say what to do.
	echo "reops-run: publish: 1 of 1 row not delivered to $ep (the collector wants CURVE: give its public key as '\''server-key'\'')" >expect1 &&
	echo "reops-run: publish: 1 of 1 row not delivered to $ep (the ZeroMQ handshake failed; if the collector wants CURVE, give its public key as '\''server-key'\'')" >expect2 &&
	{ cmp -s expect1 err || test_cmp expect2 err; }
'

test_expect_success 'CURVE: a collector without CURVE is named as such' '
	ep=$(cat c1.endpoint) &&
	printf "hosts: localhost\nstages:\n  - publish: { to: \"%s\", server-key: collector.key.pub, timeout: 2 }\n" \
	    "$ep" >nocurve.yaml &&
	test_exit 5 reops_run -i "$SRCDIR/hosts.d" nocurve.yaml 2>err &&
	echo "reops-run: publish: 1 of 1 row not delivered to $ep (the collector is not a CURVE server)" >expect &&
	test_cmp expect err
'

# A port nothing listens on: one the kernel gave and took back, on an
# address of this test's own.
test_expect_success 'nothing listening: it waits the timeout, counts, exits 5' '
	port=$($PY -c "import socket; s = socket.socket(); s.bind((\"127.0.0.75\", 0)); print(s.getsockname()[1])") &&
	printf "hosts: all\nstages:\n  - exec: echo hi\n  - publish: { to: \"tcp://127.0.0.75:%s\", timeout: 2 }\n" \
	    "$port" >none.yaml &&
	start=$(date +%s%N) &&
	test_exit 5 reops_run -i "$SRCDIR/hosts.d" --json none.yaml >json.out 2>err &&
	ms=$(( ($(date +%s%N) - start) / 1000000 )) &&
	echo "reops-run: publish: 4 of 4 rows not delivered to tcp://127.0.0.75:$port (no collector listening within 2 s)" >expect &&
	test_cmp expect err &&
	test $(json_get stdout json.out | grep -c -x hi) -eq 4 &&
	{ [ $ms -ge 2000 ] && [ $ms -lt 30000 ]; } ||
	{ echo "took $ms ms, not 2 s"; return 1; }
'

test_expect_success 'nothing listening on ipc: the same, and a failed row still exits 5' '
	printf "hosts: localhost\nstages:\n  - exec: \"false\"\n  - publish: { to: ipc://none.sock, timeout: 1 }\n" \
	    >none-ipc.yaml &&
	test_exit 5 reops_run -i "$SRCDIR/hosts.d" none-ipc.yaml 2>err &&
	echo "reops-run: publish: 1 of 1 row not delivered to ipc://none.sock (no collector listening within 1 s)" >expect &&
	test_cmp expect err
'

test_expect_success '^C while it waits: it stops at once, counts, exits 130' '
	printf "hosts: all\nstages:\n  - publish: { to: ipc://none.sock, timeout: 120 }\n" \
	    >long.yaml &&
	{ "$REOPS_RUN" -vv -i "$SRCDIR/hosts.d" long.yaml >out 2>err & } &&
	pid=$! &&
	for i in $(seq 300); do
		grep -q "stage .publish. on 4 rows" err && break
		sleep 0.1
	done &&
	test_grep "stage .publish. on 4 rows" err &&
	kill -INT $pid &&
	for i in $(seq 100); do
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done &&
	{ wait $pid; st=$?; } &&
	test $st -eq 130 &&
	test_grep "^reops-run: publish: 4 of 4 rows not delivered to ipc://none.sock \(interrupted\)$" err
'

# A collector that takes N rows and then stops reading, with small
# buffers, so that the runner is stalled part-way when it is killed.
cat >stall.py <<\EOF
import json, sys, time
import zmq
pull = zmq.Context().socket(zmq.PULL)
pull.rcvhwm = 1
pull.rcvbuf = 65536
pull.bind(sys.argv[1])
print("listening on", pull.last_endpoint.decode(), file=sys.stderr,
      flush=True)
for i in range(int(sys.argv[2])):
    topic, row = pull.recv_multipart()
    print(topic.decode(), json.dumps(json.loads(row)), flush=True)
time.sleep(120)
EOF

mkdir -p many.d &&
printf "groups:\n  many:\n    transport: local\n    hosts: [%s]\n" \
    "$(seq -s ", " -f "m%02g" 1 24)" >many.d/hosts.yaml
# 24 rows of 1 MB each: far more than the socket buffers hold.
mb_pipeline () {
	cat <<-EOF
	hosts: all
	stages:
	  - exec: head -c 1000000 /dev/zero | tr '\\0' x
	  - publish: { to: "$1", topic: big, timeout: $2 }
	EOF
}

test_expect_success 'a collector killed mid-way, another one on its port: the rest goes there' '
	start_collector s1 stall.py "tcp://127.0.0.1:*" 3 &&
	ep=$(cat s1.endpoint) &&
	mb_pipeline "$ep" 60 >big.yaml &&
	{ "$REOPS_RUN" -i many.d --json big.yaml >json.out 2>err & } &&
	pid=$! &&
	wait_rows s1.out big 3 &&
	stop_collector s1 &&
	start_collector s2 collector.py "$ep" &&
	for i in $(seq 600); do
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done &&
	{ wait $pid; st=$?; } &&
	test $st -eq 5 &&
	sent=$(sed -n "s/^reops-run: publish: \([0-9]*\) of 24 rows not delivered to .* (the collector.s connection closed with \1 rows sent on it, which may not all have arrived)$/\1/p" err) &&
	{ test -n "$sent" || { echo "stderr:"; cat err; false; }; } &&
	test $(wc -l <err) -eq 1 &&
	say "$sent rows sent before the kill" &&
	test "$sent" -ge 3 && test "$sent" -lt 24 &&
	head -3 json.out >first &&
	same_rows first s1.out big &&
	wait_rows s2.out big $((24 - sent)) &&
	same_rows json.out s2.out big "$sent"
'

test_expect_success 'a collector killed mid-way and none back: all 24 counted, exit 5' '
	start_collector s3 stall.py "tcp://127.0.0.1:*" 3 &&
	ep=$(cat s3.endpoint) &&
	mb_pipeline "$ep" 10 >big.yaml &&
	{ "$REOPS_RUN" -i many.d big.yaml >out 2>err & } &&
	pid=$! &&
	wait_rows s3.out big 3 &&
	stop_collector s3 &&
	for i in $(seq 600); do
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done &&
	{ wait $pid; st=$?; } &&
	test $st -eq 5 &&
	test_grep "^reops-run: publish: 24 of 24 rows not delivered to $ep \(the collector.s connection closed with [0-9]+ rows sent on it, which may not all have arrived; no collector came back within 10 s\)$" err
'

# Every collector still up (c1, c2, and s2 of the killed-collector test)
# is stopped here: test_done removes the scratch directory with its pid
# files when all passed, before the EXIT trap could read them.
test_expect_success 'the collectors stop' '
	stop_collector c1 &&
	stop_collector c2 &&
	for f in *.pid; do
		[ -f "$f" ] || continue
		stop_collector "${f%.pid}" || return 1
	done &&
	ls *.pid 2>/dev/null >left; test_cmp /dev/null left
'

test_done
