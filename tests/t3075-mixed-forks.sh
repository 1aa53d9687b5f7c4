#!/bin/bash
# t3075: the transports of one stage share one --forks budget and end
# their rows the same way: local and ssh rows side by side never run more
# commands at once than --forks, and a signal reads the same on either.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 3
mkdir -p hosts.d
ssh_group web h1 h2 h3 >hosts.d/web.yaml
printf "groups:\n  here:\n    transport: local\n    hosts: [l1, l2, l3, l4]\n" \
    >hosts.d/here.yaml

# Each command counts itself in and out under a lock and keeps the
# highest count it saw; it runs a second, so that local rows (which start
# at once) and ssh rows (which connect first) overlap.
cat >count.sh <<SH
#!/bin/sh
inout () {
	(
		flock 9 || exit 1
		n=\$(cat "$TRASH/running" 2>/dev/null || echo 0)
		n=\$((n + \$1))
		echo "\$n" >"$TRASH/running"
		m=\$(cat "$TRASH/most" 2>/dev/null || echo 0)
		[ "\$n" -le "\$m" ] || echo "\$n" >"$TRASH/most"
		echo "\$2 \$n" >>"$TRASH/log"
	) 9>"$TRASH/lock"
}
inout 1 "\$1-in"
sleep 1
inout -1 "\$1-out"
SH
chmod +x count.sh

test_expect_success '--forks 2: never more than 2 commands at once, local and ssh' '
	rm -f running most log &&
	pipeline forks.yaml "[here, web]" "exec: { command: \"$TRASH/count.sh \${target}\", timeout: 60 }" &&
	reops_run --forks 2 --json forks.yaml >out 2>err &&
	json_get status out | sort | uniq -c >got &&
	echo "      7 ok" >want &&
	test_cmp want got &&
	test "$(grep -c -- -in log)" = 7 &&
	{ test "$(cat most)" -le 2 || { cat log; false; }; }
'

test_expect_success '--forks 2 over both: each transport still gets its rows run' '
	test "$(grep -c "^h[123]-in" log)" = 3 &&
	test "$(grep -c "^l[1234]-in" log)" = 4
'

test_expect_success 'a signal reads the same from a local row and an ssh row' '
	pipeline sig.yaml "[l1, h1]" "exec: \"kill -USR1 \$\$\"" &&
	test_exit 1 reops_run --json sig.yaml >out &&
	json_get code out >got &&
	printf "138\n138\n" >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	printf "reops-run: killed by signal 10 (SIGUSR1)\nreops-run: killed by signal 10 (SIGUSR1)\n" >want &&
	test_cmp want got
'

# One table names signals for every transport (sshd itself names only a
# few: the others come as "SIG@openssh.com", a code of 128).
test_expect_success 'a signal outside the old local table is named' '
	pipeline xcpu.yaml "[l1]" "exec: \"ulimit -c 0; kill -XCPU \$\$\"" &&
	test_exit 1 reops_run --json xcpu.yaml >out &&
	test "$(json_get code out)" = 152 &&
	test "$(json_get stderr out)" = "reops-run: killed by signal 24 (SIGXCPU)"
'

test_expect_success 'ping: a local row answers, an ssh row connects, one budget' '
	pipeline ping.yaml "[l1, l2, h1, h2]" "ping: {}" &&
	reops_run --forks 1 --json ping.yaml >out &&
	json_get status out >got &&
	printf "ok\nok\nok\nok\n" >want &&
	test_cmp want got
'

ssh_done
