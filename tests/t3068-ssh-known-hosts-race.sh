#!/bin/bash
# t3068: runs at the same time with host-keys: accept-new record each
# new host once: the file is read again under the lock before a line is
# appended.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

N=6
ssh_hosts $N
mkdir -p hosts.d
ssh_group fresh $(seq -f "h%g" 1 $N) -- "host-keys: accept-new" \
    "known-hosts: $TRASH/kh/known_hosts" >hosts.d/fresh.yaml
pipeline p.yaml fresh "exec: echo \${target}"

test_expect_success '4 runs at once against new hosts: one line per host' '
	pids= &&
	for i in 1 2 3 4; do
		"$REOPS_RUN" --json p.yaml >out.$i 2>err.$i & pids="$pids $!"
	done &&
	codes= && for p in $pids; do wait $p; codes="$codes $?"; done &&
	test "$codes" = " 0 0 0 0" || { echo "exits:$codes"; cat err.*; false; } &&
	for i in 1 2 3 4; do
		test "$(json_get status out.$i | sort | uniq -c | sed "s/^ *//")" = "$N ok" ||
		{ cat out.$i; false; } || return 1
	done &&
	cut -d" " -f1 kh/known_hosts | sort | uniq -c | sed "s/^ *//" >got &&
	for i in $(seq 1 $N); do
		echo "1 [$(sshd_host_addr $i)]:$SSH_PORT"
	done | sort >want &&
	test_cmp want got || { cat kh/known_hosts; false; }
'

test_expect_success 'a later run finds them all known: nothing appended' '
	cp kh/known_hosts before &&
	reops_run --json p.yaml >out 2>err &&
	test_cmp before kh/known_hosts &&
	! grep "permanently added" err
'

ssh_done
