#!/bin/bash
# t3060: a command given up over ssh (its deadline passed, or ^C) is
# killed on its host with its whole process group, as the local
# transport kills its own; the wrapper line that names that group never
# shows in the row. The host keeps the deadline too (a watchdog beside
# the command), so nothing outlives it when the runner is killed with
# SIGKILL, stopped, or loaded.
#
# The hosts are sshd on this machine, so the test can look for what is
# left with pgrep. Each check runs a sleep(1) under a name of its own
# (mark), looks only for that name, and kills only its own strays.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 2
mkdir -p hosts.d
# Logins may be slow on a loaded machine: that is not what is checked.
ssh_group web h1 h2 -- "connect-timeout: 120" >hosts.d/web.yaml

# The first stage logs in, under no deadline but its own generous one,
# so that the deadline of the next (on the same connection) is all the
# command's, however slow the logins are on a loaded machine.
first='exec: { command: "true", timeout: 300 }'

# mark N: the path of a sleep(1) named for this run and check N.
mark () {
	mkdir -p "$TRASH/bin" &&
	ln -sf "$(command -v sleep)" "$TRASH/bin/sleep-$$-$1" &&
	echo "$TRASH/bin/sleep-$$-$1"
}

# running M COUNT: wait (up to 30 s) for COUNT processes named M.
running () {
	i=0
	while [ "$(pgrep -c -f -- "$1")" -lt "$2" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(pgrep -c -f -- "$1")" -ge "$2" ] || {
		echo "expected $2 running '$1', saw: $(pgrep -a -f -- "$1")"
		return 1
	}
}

# gone M: no process named M left, polling up to 20 s.
gone () {
	i=0
	while pgrep -f -- "$1" >/dev/null && [ $i -lt 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	! pgrep -f -- "$1" >/dev/null || {
		echo "still running after 20s: $(pgrep -a -f -- "$1")"
		return 1
	}
}

# strays M: what a failed check left, killed by pid.
strays () {
	for p in $(pgrep -f -- "$1"); do
		kill -KILL "$p" 2>/dev/null
	done
	return 0
}

test_expect_success 'stdout and stderr come back as written, no wrapper line' '
	cat >io.yaml <<-\EOF &&
	hosts: web
	stages:
	  - exec: printf "e1\n" >&2; printf "o\nx"; printf "reops-pgid=1\ne2" >&2
	  - exec: { command: "id -u", sudo: false }
	EOF
	reops_run --json io.yaml >out &&
	python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
for d in rows:
    assert d[\"stdout\"] == \"0\n\", d
    assert d[\"stderr\"] == \"\", d
" out &&
	sed -e "/id -u/d" io.yaml >io1.yaml &&
	reops_run --json io1.yaml >out &&
	python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
for d in rows:
    assert d[\"stdout\"] == \"o\nx\", d
    assert d[\"stderr\"] == \"e1\nreops-pgid=1\ne2\", d
" out
'

test_expect_success 'a deadline (--timeout) kills the command and its children' '
	m=$(mark 2) &&
	pipeline t.yaml web "$first" "exec: $m 300 & exec $m 300" &&
	test_exit 1 reops_run --timeout 2 --json t.yaml >out &&
	json_get code out >got &&
	printf "124\n124\n" >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	printf "reops-run: timed out after 2s\n" >want &&
	cat want want >want2 &&
	test_cmp want2 got &&
	gone "$m" || { strays "$m"; false; }
'

test_expect_success 'a command that ignores SIGTERM gets SIGKILL' '
	m=$(mark 3) &&
	pipeline k.yaml web "$first" "exec: { command: \"trap \\\"\\\" TERM; $m 300 & exec $m 300\", timeout: 1 }" &&
	test_exit 1 reops_run --json k.yaml >out &&
	json_get code out >got &&
	printf "124\n124\n" >want &&
	test_cmp want got &&
	gone "$m" || { strays "$m"; false; }
'

test_expect_success 'SIGINT kills the commands in flight on their hosts' '
	m=$(mark 4) &&
	pipeline int.yaml web "exec: $m 300 & exec $m 300" &&
	{ "$REOPS_RUN" --json int.yaml >out 2>err & pid=$!; } &&
	running "$m" 4 && kill -INT $pid &&
	{ wait $pid; code=$?; } ; test $code = 130 &&
	json_get code out >got &&
	printf "130\n130\n" >want &&
	test_cmp want got &&
	test "$(json_get stderr out | grep -c "^reops-run: interrupted$")" = 2 &&
	gone "$m" || { strays "$m"; false; }
'

test_expect_success 'runner killed (SIGKILL) mid-command: the host keeps the deadline' '
	m=$(mark 5) &&
	pipeline kk.yaml web "$first" "exec: { command: \"$m 300 & exec $m 300\", timeout: 3 }" &&
	{ "$REOPS_RUN" --json kk.yaml >out 2>err & pid=$!; } &&
	running "$m" 4 && kill -KILL $pid &&
	{ wait $pid; code=$?; } ; test $code = 137 &&
	gone "$m" || { strays "$m"; false; }
'

test_expect_success 'runner killed (SIGKILL), no deadline: the command goes with the connection' '
	m=$(mark 6) &&
	pipeline kn.yaml web "exec: $m 300" &&
	{ "$REOPS_RUN" --json kn.yaml >out 2>err & pid=$!; } &&
	running "$m" 2 && kill -KILL $pid &&
	{ wait $pid; code=$?; } ; test $code = 137 &&
	gone "$m" || { strays "$m"; false; }
'

test_expect_success 'runner stopped past the deadline: killed on the host, then code 124' '
	m=$(mark 7) &&
	pipeline st.yaml web "$first" "exec: { command: \"$m 300 & exec $m 300\", timeout: 2 }" &&
	{ "$REOPS_RUN" --json st.yaml >out 2>err & pid=$!; } &&
	running "$m" 4 && kill -STOP $pid &&
	{ gone "$m"; g=$?; kill -CONT $pid; } &&
	{ wait $pid; code=$?; } ; test $g = 0 && test $code = 1 || {
		echo "gone: $g, exit $code"; cat err; strays "$m"; false; } &&
	json_get code out >got &&
	printf "124\n124\n" >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	printf "reops-run: timed out after 2s\n" >want &&
	cat want want >want2 &&
	test_cmp want2 got
'

# A CPU hog of our own (bounded: 60 s at most, killed by pid) beside a
# runner at the lowest priority.
test_expect_success 'a loaded runner still leaves nothing past the deadline' '
	m=$(mark 8) &&
	pipeline ld.yaml web "$first" "exec: { command: \"$m 300 & exec $m 300\", timeout: 2 }" &&
	hogs= &&
	for i in 1 2 3; do
		timeout 60 sh -c "while :; do :; done" & hogs="$hogs $!"
	done &&
	nice -n 10 "$REOPS_RUN" --json ld.yaml >out 2>err; code=$?;
	gone "$m"; g=$?;
	kill $hogs 2>/dev/null; wait $hogs 2>/dev/null;
	test $code = 1 && test $g = 0 || {
		echo "exit $code, gone: $g"; cat out err; strays "$m"; false; } &&
	json_get code out >got &&
	printf "124\n124\n" >want &&
	test_cmp want got
'

# The kill runs as the login user, outside sudo: here that is root, who
# may kill what sudo started (a user who is not can still stop sudo,
# which hands TERM on to its command).
if command -v sudo >/dev/null; then
	test_expect_success 'under sudo too: the kill reaches the command' '
		m=$(mark 9) &&
		pipeline s.yaml web "$first" "exec: { command: \"$m 300 & exec $m 300\", sudo: true, timeout: 2 }" &&
		test_exit 1 reops_run --json s.yaml >out &&
		json_get code out >got &&
		printf "124\n124\n" >want &&
		test_cmp want got &&
		gone "$m" || { strays "$m"; false; }
	'
else
	test_skip 'under sudo too: the kill reaches the command' 'no sudo(8) here'
fi

ssh_done
