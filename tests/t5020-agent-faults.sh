#!/bin/bash
# t5020: reops-agent keeps serving through faults: a runner killed or
# frozen mid-request (its command is killed), 1,000 connections opened
# and dropped, a flood of malformed frames, oversized messages, SIGPIPE.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-agent.sh"

PY=/usr/bin/python3
M=$$

test_expect_success 'start an agent on 127.0.0.52 with a 1 MiB limit' '
	agent_keys &&
	agent_start a1 127.0.0.52 -M 1048576
'

test_expect_success 'a runner killed mid-request: the agent kills its command' '
	client_bg a1 runner1-pid exec "echo started; sleep 300.${M}1" &&
	wait_file runner1-pid.out "^started$" && wait_running "sleep 300.${M}1" &&
	kill -KILL "$(cat runner1-pid)" &&
	wait_gone "sleep 300.${M}1" &&
	wait_file a1.log "went away: stopping its 1 request" &&
	wait_file a1.log "exit code 143 signal 15 .*\(runner gone\)" &&
	client a1 ping
'

test_expect_success 'a frozen runner (no heartbeats): its command is killed' '
	client_bg a1 runner2-pid exec "echo started; sleep 300.${M}2" &&
	wait_file runner2-pid.out "^started$" && wait_running "sleep 300.${M}2" &&
	kill -STOP "$(cat runner2-pid)" &&
	wait_gone "sleep 300.${M}2";
	rc=$?;
	kill -KILL "$(cat runner2-pid)";
	test $rc = 0 && client a1 ping
'

test_expect_success 'a runner gone while its command floods output' '
	client_bg a1 runner3-pid exec "echo started; exec yes ${M}3" &&
	wait_running "yes ${M}3" &&
	kill -KILL "$(cat runner3-pid)" &&
	wait_gone "yes ${M}3" &&
	client a1 ping
'

test_expect_success '1,000 CURVE connections opened and dropped' '
	client a1 -r res churn 1000 >out &&
	echo "1000 connections" >expect && test_cmp expect out &&
	client a1 ping
'

if $PY -c "import zmq" 2>/dev/null; then
	test_expect_success '1,000 raw TCP connections, some sending junk' '
		$PY - "$(cat a1.endpoint)" <<-\EOF &&
		import socket, sys
		host, port = sys.argv[1][len("tcp://"):].rsplit(":", 1)
		for i in range(1000):
		    s = socket.create_connection((host, int(port)), timeout=5)
		    if i % 3 == 1:
		        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
		    elif i % 3 == 2:
		        s.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + b"x" * 100)
		    s.close()
		EOF
		client a1 ping
	'
else
	test_skip '1,000 raw TCP connections' 'no python3'
fi

test_expect_success 'a flood of 5,000 malformed frames: one error reply each' '
	client a1 flood 5000 >out &&
	echo "5000 errors" >expect && test_cmp expect out &&
	test_grep "error: malformed request: exec: field 2 is cut short" \
	    a1.log &&
	test_grep "error: unsupported version: version [0-9]+, this agent speaks 1" \
	    a1.log &&
	test_grep "error: unknown request type: output is not a request" \
	    a1.log &&
	client a1 ping
'

test_expect_success 'a message over -M gets an error reply' '
	test_exit 250 client a1 oversize 1100000 2>err &&
	test_grep "^error 4: message too large: 1100039 bytes, the limit is 1048576" \
	    err
'

test_expect_success 'a message far over -M: the connection is dropped, named' '
	test_exit 255 client a1 oversize 3000000 2>err &&
	test_grep "the agent at .* closed the connection" err &&
	client a1 ping
'

test_expect_success 'SIGPIPE does not stop the agent' '
	kill -PIPE "$(cat a1.agent-pid)" &&
	client a1 ping && ! test -s a1.status
'

test_expect_success 'SIGTERM stops the agent with status 0' '
	agent_stop a1
'

test_done
