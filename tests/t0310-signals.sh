#!/bin/bash
# t0310: SIGTERM and SIGHUP stop a run as SIGINT does: nothing new starts,
# the commands in flight are killed (a local process group; on an ssh
# host, over the connection), the rows so far are printed and the exit
# status is 128 + the signal's number. Every command carries a marker of
# its own, so the checks never see another suite's processes.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 2
mkdir -p hosts.d
cat >hosts.d/10-web.yaml <<'YAML'
groups:
  web:
    transport: local
    hosts: [web-1, web-2, web-3]
YAML
ssh_group remote h1 h2 >hosts.d/20-remote.yaml

# Each test's commands sleep for 300.0<pid><n> seconds: the number is its
# marker, carried by the sleep itself and by the shell around it.

# await_started M FILE...: every FILE exists and a process with M runs
# (30 s: an ssh login under ASan on a loaded machine is slow).
await_started () {
	local m=$1 f i=0
	shift
	while [ $i -lt 300 ]; do
		for f in "$@"; do
			[ -e "$f" ] || break
		done
		[ -e "$f" ] && pgrep -f -- "$m" >/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	echo "never started: $m ($*)"
	ls
	return 1
}

# gone_marker M: no process with M is left, waiting up to 20 s; what is
# left is shown, then killed by pid.
gone_marker () {
	local i=0 p
	while pgrep -f -- "$1" >/dev/null && [ $i -lt 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if pgrep -f -- "$1" >/dev/null; then
		echo "still running:"
		pgrep -a -f -- "$1"
		for p in $(pgrep -f -- "$1"); do kill -KILL "$p"; done
		return 1
	fi
}

# run_and_signal SIG MARKER FILES ARGS...: reops-run ARGS in the
# background (out, err), SIG once the files (a space-separated list) exist
# and MARKER runs; the exit status is left in code.
run_and_signal () {
	local rs_sig=$1 rs_marker=$2 rs_files=$3
	shift 3
	rm -f started.*
	"$REOPS_RUN" "$@" >out 2>err &
	pid=$!
	await_started "$rs_marker" $rs_files ||
	{ kill -KILL $pid; wait $pid; return 1; }
	kill -"$rs_sig" $pid
	wait $pid
	code=$?
	echo "exit status $code"
}

# web-1 finishes at once, web-2 sleeps (MARKER), web-3 never starts.
local_pipeline () {
	cat >"$1" <<-EOF
	hosts: web
	stages:
	  - exec: "test \${target} = web-1 && echo quick && exit; touch $TRASH/started.\${target}; sleep $2"
	EOF
}

n=0
for pair in TERM:143 HUP:129 INT:130; do
	sig=${pair%:*}
	want=${pair#*:}
	n=$((n + 1))
	marker="300.0$$$n"
	test_expect_success "SIG$sig: in-flight killed, rows so far printed, exit $want" '
		local_pipeline l.yaml "$marker" &&
		run_and_signal $sig "$marker" started.web-2 --forks 1 l.yaml &&
		test "$code" = $want &&
		test_grep "^web-1: ok code=0" out &&
		test_grep "^web-2: failed code=130" out &&
		test_grep "^web-3: skipped" out &&
		! test -e started.web-3
		ok=$?; gone_marker "$marker" && test $ok = 0
	'
done

test_expect_success 'SIGTERM with --json: the rows so far are on stdout' '
	marker="300.0$$4" &&
	local_pipeline j.yaml "$marker" &&
	run_and_signal TERM "$marker" started.web-2 --forks 1 --json j.yaml &&
	test "$code" = 143 &&
	json_get status out >got &&
	printf "ok\nfailed\nskipped\n" >want &&
	test_cmp want got
	ok=$?; gone_marker "$marker" && test $ok = 0
'

test_expect_success 'SIGTERM: the command is killed on its ssh host' '
	marker="300.0$$5" &&
	pipeline s.yaml remote "exec: \"touch $TRASH/started.\${target}; sleep $marker\"" &&
	run_and_signal TERM "$marker" "started.h1 started.h2" s.yaml &&
	test "$code" = 143 &&
	test_grep "^h1: failed code=130" out &&
	test_grep "^h2: failed code=130" out
	ok=$?; gone_marker "$marker" && test $ok = 0
'

test_expect_success 'SIGHUP with local and ssh rows in flight at once' '
	marker="300.0$$6" &&
	pipeline m.yaml "[web-2, h1]" "exec: \"touch $TRASH/started.\${target}; sleep $marker\"" &&
	run_and_signal HUP "$marker" "started.web-2 started.h1" m.yaml &&
	test "$code" = 129 &&
	test_grep "^web-2: failed code=130" out &&
	test_grep "^h1: failed code=130" out
	ok=$?; gone_marker "$marker" && test $ok = 0
'

ssh_done
