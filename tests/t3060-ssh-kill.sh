#!/bin/bash
# t3060: a command given up over ssh (its deadline passed, or ^C) is
# killed on its host with its whole process group, as the local
# transport kills its own; the wrapper line that names that group never
# shows in the row. The hosts are sshd on this machine, so the test can
# look for what is left with pgrep; it only kills its own strays, by pid.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 2
mkdir -p hosts.d
ssh_group web h1 h2 >hosts.d/web.yaml

# gone SECS: no "sleep SECS" left on this machine, polling up to 10 s.
gone () {
	i=0
	while pgrep -x -f "sleep $1" >/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	! pgrep -x -f "sleep $1" >/dev/null || {
		echo "still running: $(pgrep -a -x -f "sleep $1")"
		return 1
	}
}

# strays SECS: what a failed test left, killed by pid.
strays () {
	for p in $(pgrep -x -f "sleep $1"); do
		kill -KILL "$p" 2>/dev/null
	done
	return 0
}

test_expect_success 'no stray sleeps before the tests' '
	gone 307 && gone 308 && gone 309 && gone 310
'

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
	pipeline t.yaml web "exec: sleep 307 & exec sleep 307" &&
	test_exit 1 reops_run --timeout 2 --json t.yaml >out &&
	json_get code out >got &&
	printf "124\n124\n" >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	printf "reops-run: timed out after 2s\n" >want &&
	cat want want >want2 &&
	test_cmp want2 got &&
	gone 307 || { strays 307; false; }
'

test_expect_success 'a command that ignores SIGTERM gets SIGKILL' '
	pipeline k.yaml web "exec: { command: \"trap \\\"\\\" TERM; sleep 310 & exec sleep 310\", timeout: 1 }" &&
	test_exit 1 reops_run --json k.yaml >out &&
	json_get code out >got &&
	printf "124\n124\n" >want &&
	test_cmp want got &&
	gone 310 || { strays 310; false; }
'

test_expect_success 'SIGINT kills the commands in flight on their hosts' '
	rm -f started.* &&
	pipeline int.yaml web "exec: touch $TRASH/started.\${target}; sleep 308 & exec sleep 308" &&
	{ "$REOPS_RUN" --json int.yaml >out 2>err & pid=$!; } &&
	i=0 && while ! { [ -e started.h1 ] && [ -e started.h2 ]; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done &&
	sleep 0.2 && kill -INT $pid &&
	{ wait $pid; code=$?; } ; test $code = 130 &&
	json_get code out >got &&
	printf "130\n130\n" >want &&
	test_cmp want got &&
	test "$(json_get stderr out | grep -c "^reops-run: interrupted$")" = 2 &&
	gone 308 || { strays 308; false; }
'

# The kill runs as the login user, outside sudo: here that is root, who
# may kill what sudo started (a user who is not can still stop sudo,
# which hands TERM on to its command).
if command -v sudo >/dev/null; then
	test_expect_success 'under sudo too: the kill reaches the command' '
		pipeline s.yaml web "exec: { command: \"sleep 309 & exec sleep 309\", sudo: true, timeout: 2 }" &&
		test_exit 1 reops_run --json s.yaml >out &&
		json_get code out >got &&
		printf "124\n124\n" >want &&
		test_cmp want got &&
		gone 309 || { strays 309; false; }
	'
else
	test_skip 'under sudo too: the kill reaches the command' 'no sudo(8) here'
fi

ssh_done
