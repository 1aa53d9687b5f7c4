#!/bin/bash
# t5030: no leaks and no memory errors in reops-agent under valgrind,
# through every kind of request and the faults of t5020. A sanitizer
# build cannot run under valgrind, so it gets a plain build of the
# agent's sources here.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-agent.sh"

if ! command -v valgrind >/dev/null; then
	test_skip 'valgrind' 'valgrind is not installed'
	test_done
fi

M=$$
# valgrind is slow: heartbeats that a loaded machine cannot miss.
REOPS_AGENT_HEARTBEAT_MS=1000
plain=$BUILDDIR/reops-agent
if [ "$SANITIZERS" = yes ]; then
	test_expect_success 'a plain build of the agent for valgrind' '
		cc -g -O1 -D_GNU_SOURCE -DPACKAGE_VERSION="\"plain\"" \
		    -I"$SRCDIR/runner" -o reops-agent-plain \
		    "$SRCDIR"/runner/reops-agent.c \
		    "$SRCDIR"/runner/agent-serve.c \
		    "$SRCDIR"/runner/agent-dispatch.c \
		    "$SRCDIR"/runner/agent-job.c \
		    "$SRCDIR"/runner/agent-reply.c \
		    "$SRCDIR"/runner/agent-auth.c \
		    "$SRCDIR"/runner/agent-request.c \
		    "$SRCDIR"/runner/agent-client.c "$SRCDIR"/runner/frame.c \
		    "$SRCDIR"/runner/util.c "$SRCDIR"/runner/sha256.c \
		    "$SRCDIR"/runner/secret.c "$SRCDIR"/runner/sh-spawn.c \
		    $(pkg-config --cflags --libs libzmq)
	'
	plain=$TRASH/reops-agent-plain
fi
cat >vg-agent <<EOF
#!/bin/sh
exec valgrind -q --log-file="$TRASH/vg.log" --leak-check=full \\
    --show-leak-kinds=definite,indirect \\
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \\
    "$plain" "\$@"
EOF
chmod +x vg-agent

test_expect_success 'start the agent under valgrind on 127.0.0.54' '
	agent_keys &&
	reops_agent --keygen other.key >/dev/null &&
	REOPS_AGENT=$TRASH/vg-agent agent_start a1 127.0.0.54 -j 2 -M 1048576
'

test_expect_success 'every request kind, under valgrind' '
	client a1 facts >/dev/null &&
	head -c 1000000 /dev/urandom >big &&
	client a1 exec "cat big; cat big >&2" >out 2>err &&
	cmp big out && cmp big err &&
	test_exit 124 client a1 exec -D 300 "sleep 300.${M}1" &&
	test_exit 143 client a1 exec-kill "echo x; sleep 300.${M}2" >/dev/null &&
	echo data | client a1 put "$TRASH/put" 0600 >/dev/null &&
	test_exit 250 client a1 kill 7 2>/dev/null &&
	wait_gone "sleep 300.${M}1" && wait_gone "sleep 300.${M}2"
'

test_expect_success 'faults, under valgrind' '
	client a1 flood 600 >/dev/null &&
	test_exit 250 client a1 oversize 1100000 2>/dev/null &&
	test_exit 255 client a1 oversize 3000000 2>/dev/null &&
	client a1 churn 50 >/dev/null &&
	test_exit 255 "$AGENT_CLIENT" -s agent.key.pub -k other.key \
	    "$(cat a1.endpoint)" ping 2>/dev/null &&
	client_bg a1 runner-pid exec "echo started; sleep 300.${M}3" &&
	wait_file runner-pid.out "^started$" &&
	kill -KILL "$(cat runner-pid)" && wait_gone "sleep 300.${M}3" &&
	kill -HUP "$(cat a1.agent-pid)" && wait_file a1.log "SIGHUP" &&
	client a1 ping
'

test_expect_success 'it stops clean: no leak, no error' '
	agent_stop a1 &&
	if test -s vg.log; then cat vg.log; false; fi
'

test_done
