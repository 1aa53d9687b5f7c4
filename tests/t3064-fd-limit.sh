#!/bin/bash
# t3064: more rows than file descriptors. Under a low limit on open files
# (ulimit -n 64, soft and hard) rows wait for descriptors instead of
# failing, every one really runs (each leaves a file of its own), and a
# limit too low to run anything makes failed rows with the reason, never
# ok ones.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

N=60
ssh_hosts $N
mkdir -p hosts.d ran
ssh_group fleet $(seq -f "h%g" 1 $N) >hosts.d/fleet.yaml
{
	echo "groups:"
	echo "  many:"
	echo "    transport: local"
	echo "    hosts: [$(seq -s, -f "m%g" 1 100)]"
} >hosts.d/many.yaml

# ran WHAT: the markers the rows left, one a line, then none.
ran () {
	ls ran | sort
	rm -f ran/*
}

# status_count FILE: "COUNT STATUS" lines of a --json table.
status_count () {
	json_get status "$1" | sort | uniq -c | sed "s/^ *//"
}

test_expect_success '100 local rows under ulimit -n 64: all ok, all ran' '
	rm -f ran/* && pipeline l.yaml many "exec: touch ran/\${target}" &&
	(ulimit -Sn 64 -Hn 64 && exec "$REOPS_RUN" --json l.yaml) >out 2>err ||
	{ echo "exit $?"; cat err; status_count out; false; } &&
	test "$(status_count out)" = "100 ok" &&
	seq -f "m%g" 1 100 | sort >want &&
	ran >got && test_cmp want got
'

test_expect_success "$N ssh hosts, 2 stages, under ulimit -n 64: all ok, all ran" '
	rm -f ran/* && pipeline s.yaml fleet "exec: touch $TRASH/ran/\${target}.1" \
	    "exec: touch $TRASH/ran/\${target}.2" &&
	(ulimit -Sn 64 -Hn 64 && exec "$REOPS_RUN" --json s.yaml) >out 2>err ||
	{ echo "exit $?"; cat err; status_count out; grep -v "\"ok\"" out | head -5; false; } &&
	test "$(status_count out)" = "$N ok" &&
	for i in $(seq 1 $N); do echo "h$i.1"; echo "h$i.2"; done | sort >want &&
	ran >got && test_cmp want got
'

test_expect_success 'local and ssh rows in one stage share the limit: all ok' '
	rm -f ran/* && pipeline b.yaml "[fleet, many]" "exec: touch $TRASH/ran/\${target}" &&
	(ulimit -Sn 64 -Hn 64 && exec "$REOPS_RUN" --json b.yaml) >out 2>err ||
	{ echo "exit $?"; cat err; status_count out; false; } &&
	test "$(status_count out)" = "$((N + 100)) ok" &&
	{ seq -f "h%g" 1 $N; seq -f "m%g" 1 100; } | sort >want &&
	ran >got && test_cmp want got
'

# Each stage's loop, held back by --forks 1, makes an eventfd to wait on:
# one left open a stage would use up the 64 long before the last stage.
test_expect_success '120 stages held back by --forks 1 under ulimit -n 64: all ok' '
	{
		echo "hosts: [m1, m2, m3]"
		echo "stages:"
		for i in $(seq 120); do echo "  - exec: \"true\""; done
	} >held.yaml &&
	(ulimit -Sn 64 -Hn 64 && exec "$REOPS_RUN" --forks 1 --json held.yaml) >out 2>err ||
	{ echo "exit $?"; cat err; status_count out; false; } &&
	test "$(status_count out)" = "3 ok"
'

test_expect_success 'a limit too low for any row: failed rows that say why' '
	rm -f ran/* && (ulimit -Sn 20 -Hn 20 && exec "$REOPS_RUN" --json b.yaml) >out 2>err;
	test $? = 1 || { cat err; false; } &&
	test "$(status_count out)" = "$((N + 100)) failed" &&
	json_get stderr out | sort | uniq -c | sed "s/^ *//" >got &&
	echo "$((N + 100)) reops-run: not started: too few file descriptors (the limit on open files is 20)" >want &&
	test_cmp want got &&
	ran >got && test_cmp /dev/null got
'

ssh_done
