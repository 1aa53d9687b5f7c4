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

# await_marker M: a process whose command line holds M exists (10 s).
await_marker () {
	i=0
	while ! pgrep -f -- "$1" >/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	pgrep -f -- "$1" >/dev/null || {
		echo "never started: $1"
		return 1
	}
}

# gone_marker M: no process with M is left, waiting up to 10 s; what is
# left is shown, then killed by pid.
gone_marker () {
	i=0
	while pgrep -f -- "$1" >/dev/null && [ $i -lt 100 ]; do
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

# run_and_signal SIG "MARKER..." ARGS...: reops-run ARGS in the
# background (out, err), SIG once every MARKER runs; the exit status is
# left in code.
run_and_signal () {
	local rs_sig=$1 rs_markers=$2 m
	shift 2
	"$REOPS_RUN" "$@" >out 2>err &
	pid=$!
	for m in $rs_markers; do
		await_marker "$m" || { kill -KILL $pid; wait $pid; return 1; }
	done
	kill -"$rs_sig" $pid
	wait $pid
	code=$?
	echo "exit status $code"
}

# web-1 finishes at once, web-2 sleeps with MARKER, web-3 never starts.
local_pipeline () {
	cat >"$1" <<-EOF
	hosts: web
	stages:
	  - exec: "test \${target} = web-1 && echo quick && exit; touch started.\${target}; sleep 300 #$2-\${target}"
	EOF
}

for pair in TERM:143 HUP:129 INT:130; do
	sig=${pair%:*}
	want=${pair#*:}
	test_expect_success "SIG$sig: in-flight killed, rows so far printed, exit $want" '
		marker="t0310-$sig-$$" &&
		rm -f started.* &&
		local_pipeline l.yaml "$marker" &&
		run_and_signal $sig "$marker-web-2" --forks 1 l.yaml &&
		test "$code" = $want &&
		test_grep "^web-1: ok code=0" out &&
		test_grep "^web-2: failed code=130" out &&
		test_grep "^web-3: skipped" out &&
		! test -e started.web-3
		ok=$?; gone_marker "$marker" && test $ok = 0
	'
done

test_expect_success 'SIGTERM with --json: the rows so far are on stdout' '
	marker="t0310-json-$$" &&
	local_pipeline j.yaml "$marker" &&
	run_and_signal TERM "$marker-web-2" --forks 1 --json j.yaml &&
	test "$code" = 143 &&
	json_get status out >got &&
	printf "ok\nfailed\nskipped\n" >want &&
	test_cmp want got
	ok=$?; gone_marker "$marker" && test $ok = 0
'

test_expect_success 'SIGTERM: the command is killed on its ssh host' '
	marker="t0310-ssh-$$" &&
	pipeline s.yaml remote "exec: \"sleep 300 #$marker-\${target}\"" &&
	run_and_signal TERM "$marker-h1 $marker-h2" s.yaml &&
	test "$code" = 143 &&
	test_grep "^h1: failed code=130" out &&
	test_grep "^h2: failed code=130" out
	ok=$?; gone_marker "$marker" && test $ok = 0
'

test_expect_success 'SIGHUP with local and ssh rows in flight at once' '
	marker="t0310-mixed-$$" &&
	pipeline m.yaml "[web-2, h1]" "exec: \"sleep 300 #$marker-\${target}\"" &&
	run_and_signal HUP "$marker-web-2 $marker-h1" m.yaml &&
	test "$code" = 129 &&
	test_grep "^web-2: failed code=130" out &&
	test_grep "^h1: failed code=130" out
	ok=$?; gone_marker "$marker" && test $ok = 0
'

ssh_done
