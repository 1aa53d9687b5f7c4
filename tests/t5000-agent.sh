#!/bin/bash
# t5000: reops-agent on loopback: key generation, the command line, and
# the requests (ping, facts, exec with its codes, output and deadline,
# kill, put-file), driven by tests/agent-client-test.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-agent.sh"

M=$$		# unique markers: sleep 300.$M1 and so on

test_expect_success '--keygen writes a 0600 secret key and its .pub' '
	reops_agent --keygen k1 >printed &&
	test "$(stat -c %a k1)" = 600 &&
	test "$(stat -c %a k1.pub)" = 644 &&
	test $(wc -c <k1) = 41 && test $(wc -c <k1.pub) = 41 &&
	test_cmp k1.pub printed &&
	test_grep "^[]0-9A-Za-z.:+=^!/*?&<>()@$%{}#[-]{40}$" k1.pub
'

test_expect_success '--keygen never overwrites a key, secret or public' '
	cp k1 k1.before && cp k1.pub k1.pub.before &&
	test_exit 1 reops_agent --keygen k1 2>err &&
	test_grep "unable to create .k1.pub.: File exists" err &&
	test_cmp k1.before k1 && test_cmp k1.pub.before k1.pub &&
	rm k1.pub && test_exit 1 reops_agent --keygen k1 2>err &&
	test_grep "unable to create .k1.: File exists" err &&
	test_cmp k1.before k1 && ! test -e k1.pub
'

test_expect_success '--keygen does not follow a symbolic link' '
	ln -s target k2 &&
	test_exit 1 reops_agent --keygen k2 2>err &&
	! test -e target && ! test -e k2.pub
'

test_expect_success 'usage errors exit 2' '
	test_exit 2 reops_agent 2>err &&
	test_grep "^usage: reops-agent" err &&
	test_exit 2 reops_agent -k k1 2>err &&
	test_exit 2 reops_agent -k k1 -a /dev/null -j 0 2>err &&
	test_grep "\-j .0. is not a number" err &&
	reops_agent --help >out && test_grep "^usage: reops-agent" out
'

test_expect_success 'an endpoint that cannot be bound exits 1' '
	agent_keys &&
	test_exit 1 reops_agent -d -k agent.key -a authorized \
	    -l tcp://192.0.2.1:7707 2>err &&
	test_grep "unable to listen on .tcp://192.0.2.1:7707.: " err
'

test_expect_success 'a secret key others may read is refused' '
	reops_agent --keygen k3 >/dev/null && chmod 644 k3 &&
	: >auth && test_exit 2 reops_agent -d -k k3 -a auth 2>err &&
	test_grep "readable by others" err
'

test_expect_success 'a bad line of AUTHORIZED is FILE:LINE:COL, exit 2' '
	printf "# runners\n\n%s ci runner\n  notakey x\n" "$(cat k3.pub)" \
	    >auth &&
	test_exit 2 reops_agent -d -k k1 -a auth 2>err &&
	test_grep "auth:4:3: .notakey. is not a Z85 public key" err
'

test_expect_success 'start an agent on 127.0.0.50' '
	agent_start a1 127.0.0.50 -j 2 &&
	test_grep "listening on tcp://127.0.0.50:[0-9]+, public key $(cat \
	    agent.key.pub | sed -e "s/[]^$.*+?(){}|[\\]/\\\\&/g")" a1.log
'

test_expect_success 'ping and facts answer' '
	client a1 ping >out && echo pong >expect && test_cmp expect out &&
	client a1 facts >out &&
	cut -d= -f1 out >keys &&
	printf "%s\n" os version kernel arch cpus memory uptime >expect &&
	test_cmp expect keys &&
	test_grep "^kernel=$(uname -r)$" out &&
	test_grep "^arch=$(uname -m)$" out
'

test_expect_success 'exec: exit codes, signals and both streams' '
	client a1 exec "exit 0" && test_exit 3 client a1 exec "exit 3" &&
	test_exit 1 client a1 exec false &&
	test_exit 137 client a1 -r res exec "kill -KILL \$\$" &&
	test_grep "^code 137 signal 9 duration [0-9]+$" res &&
	client a1 exec "echo out; echo err >&2" >out 2>err &&
	echo out >expect && test_cmp expect out &&
	echo err >expect && test_cmp expect err
'

test_expect_success 'exec: stdin is /dev/null, the command its own group' '
	client a1 exec "cat; ps -o pid=,pgid= -p \$\$" >out &&
	read -r pid pgid <out && test "$pid" = "$pgid"
'

# The agent holds descriptor 7 open (not close-on-exec): no command gets it.
test_expect_success 'exec: in HOME, else /, with no descriptor of the agent'\''s' '
	mkdir home && (cd home && pwd -P) >expect &&
	(HOME="$TRASH/home" && export HOME &&
	    agent_start h1 127.0.0.50 7<authorized) &&
	client h1 exec "pwd -P" >out && test_cmp expect out &&
	client h1 exec "ls /proc/\$\$/fd; :" >out &&
	printf "0\n1\n2\n" >expect && test_cmp expect out &&
	rmdir home && client h1 exec "pwd -P" >out &&
	echo / >expect && test_cmp expect out &&
	agent_stop h1
'

test_expect_success 'exec: signals are as for any command, not the agent'\''s' '
	client a1 exec "yes | head -n 1" >out 2>err &&
	echo y >expect && test_cmp expect out && test_cmp /dev/null err &&
	test_exit 129 client a1 exec "kill -HUP \$\$; echo survived" >out &&
	test_cmp /dev/null out
'

test_expect_success 'exec: 10 MB of binary on each stream arrive whole' '
	head -c 10485760 /dev/urandom >big &&
	client a1 exec "cat \"$TRASH/big\"; cat \"$TRASH/big\" >&2" \
	    >out 2>err &&
	sha256sum <big >want && sha256sum <out >got && test_cmp want got &&
	sha256sum <err >got && test_cmp want got
'

test_expect_success 'exec: the deadline kills the whole group, code 124' '
	test_exit 124 client a1 -r res exec -D 500 \
	    "sleep 300.${M}1 & sleep 300.${M}2; wait" &&
	test_grep "^code 124 signal 15 duration" res &&
	read -r _ _ _ _ _ ms <res && test "$ms" -ge 500 &&
	wait_gone "sleep 300.${M}1" && wait_gone "sleep 300.${M}2"
'

test_expect_success 'exec: a command that ignores TERM gets KILL' '
	test_exit 124 client a1 -r res exec -D 300 \
	    "trap \"\" TERM; echo ready; sleep 300.${M}3; sleep 300.${M}4" &&
	test_grep "^code 124 signal 9 " res &&
	wait_gone "sleep 300.${M}3" && wait_gone "sleep 300.${M}4"
'

test_expect_success 'kill: stops a running request of the same runner' '
	test_exit 143 client a1 -r res exec-kill \
	    "echo started; sleep 300.${M}5" >out &&
	printf "started\nkilled\n" >expect && test_cmp expect out &&
	test_grep "^code 143 signal 15 " res &&
	wait_gone "sleep 300.${M}5" &&
	test_grep "kill request 1$" a1.log
'

test_expect_success 'kill: a request this runner does not run is an error' '
	test_exit 250 client a1 kill 99 2>err &&
	test_grep "^error 6: no such request" err
'

test_expect_success 'requests beyond -j wait their turn' '
	{ client a1 exec "sleep 300.${M}6" >/dev/null 2>&1 & } &&
	{ client a1 exec "sleep 300.${M}7" >/dev/null 2>&1 & } &&
	wait_running "sleep 300.${M}6" && wait_running "sleep 300.${M}7" &&
	{ client a1 exec "echo third" >third 2>&1 & } &&
	wait_file a1.log "exec .echo third.*" &&
	wait_file a1.log "queued behind 2 running" &&
	test_cmp /dev/null third &&
	pkill -f "^sleep 300.${M}6" &&
	wait_file third "^third$" &&
	pkill -f "^sleep 300.${M}7" && wait_gone "sleep 300.${M}7"
'

test_expect_success 'put-file: written whole with its mode and sha256' '
	head -c 100000 /dev/urandom >payload &&
	client a1 put "$TRASH/dest" 0640 <payload >sum &&
	sha256sum <payload | cut -d" " -f1 >expect && test_cmp expect sum &&
	cmp payload dest && test "$(stat -c %a dest)" = 640 &&
	test -z "$(ls -A | grep "^\.reops-put")"
'

test_expect_success 'put-file: replaces a symbolic link, not its target' '
	echo keep >victim && ln -s victim link &&
	echo new | client a1 put "$TRASH/link" 0600 >/dev/null &&
	echo keep >expect && test_cmp expect victim &&
	! test -L link && echo new >expect && test_cmp expect link
'

test_expect_success 'put-file: a missing directory is an error reply' '
	echo x | test_exit 250 client a1 put "$TRASH/no/such" 0600 2>err &&
	test_grep "^error 8: request failed: unable to create a file in" err
'

test_expect_success 'the log names the runner key, the request and result' '
	key=$(cat runner.key.pub) &&
	grep -F "runner $key request 1: exec '\''exit 3'\'' deadline 0 ms" \
	    a1.log &&
	grep -F "runner $key request 1: exit code 3 signal 0" a1.log
'

test_expect_success 'the AUTHORIZED example of reops-agent(8) is read' '
	sed -n "/^\.Sh AUTHORIZED FILE FORMAT/,/^\.Sh /p" \
	    "$SRCDIR/man/reops-agent.8" |
	    sed -n "/^\.Bd -literal/,/^\.Ed/p" | sed -e "1d" -e "\$d" >auth.ex &&
	test $(wc -l <auth.ex) = 2 &&
	cat runner.key.pub >>auth.ex &&
	agent_start ex1 127.0.0.50 -a auth.ex && agent_stop ex1
'

# The "$ " lines of EXAMPLES, run as written in one shell; after the line
# that starts the agent, wait until it listens. The page's 127.0.0.53 is
# swapped for an address of this run's own (every 127.x is on lo), so two
# suites at once never meet on port 7707.
exaddr=127.$(( ($$ / 250) % 250 + 1 )).$(( $$ % 250 + 1 )).53
test_expect_success 'the EXAMPLES of reops-agent(8) run as written' '
	mkdir ex && cd ex &&
	sed -n "/^\.Sh EXAMPLES/,/^\.Sh /p" "$SRCDIR/man/reops-agent.8" |
	    sed -n "s/^\\$ //p" >cmds.page &&
	test $(wc -l <cmds.page) = 7 &&
	grep -q "127\.0\.0\.53" cmds.page &&
	sed "s/127\.0\.0\.53/$exaddr/g" cmds.page >cmds &&
	PATH=$BUILDDIR:$PATH &&
	while read -r line; do
		eval "$line" 2>>agent.log </dev/null || return 1
		case $line in
		*"&")	echo $! >"$TRASH/ex2.agent-pid" &&
			wait_file agent.log "listening on" || return 1 ;;
		esac
	done <cmds &&
	wait_file agent.log "SIGHUP: 2 authorized keys" &&
	for k in runner.key runner2.key; do
		"$AGENT_CLIENT" -s agent.key.pub -k $k \
		    tcp://$exaddr:7707 ping || return 1
	done &&
	kill -TERM %1 && wait %1 && echo 0 >"$TRASH/ex2.status"
'

test_expect_success 'contrib/reops-agent.service gives the agent valid options' '
	unit="$SRCDIR/contrib/reops-agent.service" &&
	args=$(sed -n "s/^ExecStart=[^ ]*reops-agent //p" "$unit" |
	    sed -e "s|/etc/reops/||g") &&
	test "$args" = "-d -k agent.key -a authorized" &&
	agent_start u1 127.0.0.50 $args && agent_stop u1 &&
	test_grep "^ExecReload=/bin/kill -HUP \\\$MAINPID$" "$unit"
'

test_expect_success 'SIGTERM stops the agent with status 0' '
	agent_stop a1
'

test_done
