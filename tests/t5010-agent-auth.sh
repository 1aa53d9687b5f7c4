#!/bin/bash
# t5010: who may talk to reops-agent: only CURVE clients whose key is in
# AUTHORIZED, re-read on SIGHUP; the client names a refused key and a
# wrong agent key as such, never as a timeout.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-agent.sh"

PY=/usr/bin/python3

# mech.py ENDPOINT null|plain: one ping over that mechanism; prints the
# handshake events the socket monitor saw and whether a reply came.
cat >mech.py <<\EOF
import struct, sys, time
import zmq, zmq.utils.monitor
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.linger = 0
if sys.argv[2] == "plain":
    s.plain_username = b"runner"
    s.plain_password = b"secret"
m = s.get_monitor_socket()
s.connect(sys.argv[1])
s.send(bytes([1, 4]) + struct.pack(">I", 1))
names = {zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake-failed",
         zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake-failed",
         zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake-failed",
         zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake-succeeded"}
seen, reply, until = [], None, time.time() + 10
while time.time() < until and reply is None and \
        "handshake-failed" not in seen:
    p = zmq.Poller()
    p.register(s, zmq.POLLIN)
    p.register(m, zmq.POLLIN)
    ev = dict(p.poll(100))
    if m in ev:
        e = zmq.utils.monitor.recv_monitor_message(m)
        if e["event"] in names:
            seen.append(names[e["event"]])
    if s in ev:
        reply = s.recv()
print(" ".join(seen) or "nothing")
print("no reply" if reply is None else "reply")
EOF

test_expect_success 'start an agent on 127.0.0.51' '
	agent_keys &&
	reops_agent --keygen other.key >/dev/null &&
	agent_start a1 127.0.0.51
'

test_expect_success 'an authorized runner is admitted, and the log says so' '
	client a1 ping >out &&
	test_grep "admitted runner $(sed -e "s/[]^$.*+?(){}|[\\]/\\\\&/g" \
	    runner.key.pub) from 127\.0\.0\.1" a1.log
'

test_expect_success 'a runner key not in AUTHORIZED is named as a ZAP refusal' '
	test_exit 255 "$AGENT_CLIENT" -t 10000 -s agent.key.pub -k other.key \
	    "$(cat a1.endpoint)" ping 2>err &&
	test_grep "refused this runner.s key \(ZAP status 400\)" err &&
	wait_file a1.log "refused runner .* not an authorized key"
'

test_expect_success 'a wrong agent key is named as a failed CURVE handshake' '
	test_exit 255 "$AGENT_CLIENT" -t 10000 -s other.key.pub -k runner.key \
	    "$(cat a1.endpoint)" ping 2>err &&
	test_grep "CURVE handshake with .* failed: the agent.s key is not" err
'

test_expect_success 'nothing listening is said as such, at the timeout' '
	test_exit 254 "$AGENT_CLIENT" -t 1000 -s agent.key.pub -k runner.key \
	    tcp://127.0.0.51:9 ping 2>err &&
	test_grep "no agent listening at" err
'

# Something else on the port: it answers with an ssh banner and closes.
test_expect_success 'a port that does not speak ZMTP is named, not a timeout' '
	port=$(( $(sed -e "s/.*://" a1.endpoint) + 2 )) &&
	{ $PY - 127.0.0.51 $port >junk.out <<-\EOF &
	import socket, sys
	s = socket.socket()
	s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	s.bind((sys.argv[1], int(sys.argv[2])))
	s.listen(16)
	print("ready", flush=True)
	s.settimeout(20)
	try:
	    while True:
	        c, _ = s.accept()
	        c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n" + b"x" * 64)
	        c.close()
	except socket.timeout:
	    pass
	EOF
	} &&
	wait_file junk.out "^ready$" &&
	test_exit 255 "$AGENT_CLIENT" -t 10000 -s agent.key.pub -k runner.key \
	    tcp://127.0.0.51:$port ping 2>err &&
	test_grep "closed the connection before the CURVE handshake: it is not a reops-agent" err
'

if $PY -c "import zmq" 2>/dev/null; then
	test_expect_success 'a NULL client is refused and gets no reply' '
		$PY mech.py "$(cat a1.endpoint)" null >out &&
		printf "handshake-failed\nno reply\n" >expect &&
		test_cmp expect out &&
		wait_file a1.log "refused a connection on"
	'

	test_expect_success 'a PLAIN client is refused and gets no reply' '
		$PY mech.py "$(cat a1.endpoint)" plain >out &&
		printf "handshake-failed\nno reply\n" >expect &&
		test_cmp expect out
	'
else
	test_skip 'a NULL client is refused' 'no python3-zmq'
	test_skip 'a PLAIN client is refused' 'no python3-zmq'
fi

test_expect_success 'SIGHUP re-reads AUTHORIZED: a new key is admitted' '
	echo "$(cat other.key.pub) added later" >>authorized &&
	kill -HUP "$(cat a1.agent-pid)" &&
	wait_file a1.log "SIGHUP: 2 authorized keys" &&
	"$AGENT_CLIENT" -s agent.key.pub -k other.key "$(cat a1.endpoint)" \
	    ping >out &&
	echo pong >expect && test_cmp expect out
'

test_expect_success 'SIGHUP with a bad AUTHORIZED keeps the keys it had' '
	cp authorized authorized.good &&
	echo "garbage" >>authorized &&
	kill -HUP "$(cat a1.agent-pid)" &&
	wait_file a1.log "SIGHUP: keeping the old keys: /.*/authorized:4:1: .garbage." &&
	"$AGENT_CLIENT" -s agent.key.pub -k other.key "$(cat a1.endpoint)" \
	    ping >out &&
	test_cmp expect out
'

test_expect_success 'SIGHUP after a key is removed refuses it, even connected' '
	cp authorized.good authorized &&
	( "$AGENT_CLIENT" -s agent.key.pub -k other.key \
	    "$(cat a1.endpoint)" ping2 go >held 2>held.err;
	  echo $? >held.status ) &
	wait_file held "^pong$" &&
	grep -v -F "$(cat other.key.pub)" authorized.good >authorized &&
	kill -HUP "$(cat a1.agent-pid)" &&
	wait_file a1.log "SIGHUP: 1 authorized key from" &&
	: >go && wait_file held.status . &&
	echo 250 >expect && test_cmp expect held.status &&
	test_grep "^error 9: key no longer authorized" held.err &&
	test_exit 255 "$AGENT_CLIENT" -t 10000 -s agent.key.pub -k other.key \
	    "$(cat a1.endpoint)" ping 2>err &&
	test_grep "ZAP status 400" err &&
	client a1 ping
'

# Without -d the agent detaches into / and logs to syslog; its pid is
# found through its own listening port.
test_expect_success 'detached (no -d), SIGHUP still finds AUTHORIZED' '
	cp authorized.good authorized &&
	grep -v -F "$(cat other.key.pub)" authorized.good >authorized &&
	port=$(( $(sed -e "s/.*://" a1.endpoint) + 1 )) &&
	ep=tcp://127.0.0.55:$port &&
	reops_agent -k agent.key -a authorized -l $ep &&
	"$AGENT_CLIENT" -s agent.key.pub -k runner.key $ep ping &&
	pid=$(ss -Htlnp "sport = :$port" | grep -o "pid=[0-9]*" | cut -d= -f2) &&
	test -n "$pid" && echo "$pid" >d1.agent-pid &&
	test "$(readlink /proc/$pid/cwd)" = / &&
	cp authorized.good authorized &&
	kill -HUP "$pid" &&
	for i in $(seq 100); do
		"$AGENT_CLIENT" -t 2000 -s agent.key.pub -k other.key $ep \
		    ping >/dev/null 2>&1 && break
		sleep 0.1
	done &&
	"$AGENT_CLIENT" -s agent.key.pub -k other.key $ep ping &&
	kill -TERM "$pid" &&
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done &&
	! kill -0 "$pid" 2>/dev/null && echo 0 >d1.status
'

test_expect_success 'SIGTERM stops the agent with status 0' '
	agent_stop a1
'

test_done
