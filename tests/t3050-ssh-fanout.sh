#!/bin/bash
# t3050: a fan-out to 100 real sshd hosts: every row comes back with its
# own output, with the default --forks and with a small one.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

N=100
ssh_hosts $N
mkdir -p hosts.d
ssh_group fleet $(seq -f "h%g" 1 $N) >hosts.d/fleet.yaml
seq -f "h%g" 1 $N >want

test_expect_success "$N hosts, default --forks: all ok, each its own output" '
	pipeline p.yaml fleet "exec: echo \${target}" &&
	reops_run --json p.yaml >out &&
	test "$(json_get status out | sort | uniq -c | sed "s/^ *//")" = "$N ok" &&
	json_get stdout out >got &&
	test_cmp want got &&
	json_get target out >got &&
	test_cmp want got
'

test_expect_success "$N hosts, --forks 7: all ok, one login each per run" '
	reops_run --forks 7 --json p.yaml >out &&
	json_get stdout out >got &&
	test_cmp want got &&
	for i in $(seq 1 $N); do
		test "$(sshd_accepted "$SSHD_DIR" "$i")" = 2 ||
		{ echo "host $i: $(sshd_accepted "$SSHD_DIR" "$i") logins"; return 1; }
	done
'

test_expect_success "$N hosts with a passphrase-protected key: opened once, all in" '
	ssh_group locked $(seq -f "h%g" 1 $N) -- \
	    "auth: { user: root, key: $SSH_KEYS/id_ed25519_enc, port: $SSH_PORT, passphrase-env: REOPS_TEST_PASS }" \
	    "connect-timeout: 8" >locked.yaml &&
	mkdir -p locked.d && mv locked.yaml locked.d/ &&
	pipeline pl.yaml locked "exec: echo \${target}" &&
	ls -d /dev/shm/reops-key.* 2>/dev/null >shm-before;
	REOPS_TEST_PASS=test-pass reops_run -i locked.d --json pl.yaml >out &&
	test "$(json_get status out | sort | uniq -c | sed "s/^ *//")" = "$N ok" &&
	ls -d /dev/shm/reops-key.* 2>/dev/null >shm-after;
	test_cmp shm-before shm-after
'

test_expect_success "$N hosts, 3 stages, 2 of them down: 98 ok, 2 unreachable" '
	sshd_stop_host "$SSHD_DIR" 10 &&
	sshd_stop_host "$SSHD_DIR" 90 &&
	pipeline p3.yaml fleet ping "exec: echo \${target}" "exec: true" &&
	test_exit 3 reops_run --json p3.yaml >out &&
	json_get status out | sort | uniq -c | sed "s/^ *//" >got &&
	printf "98 ok\n2 unreachable\n" >expect &&
	test_cmp expect got
'

ssh_done
