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
cp want want-names

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

# leaks: files made since the stamp where a copy of a key could be, from
# which the test's encrypted key (a fresh one) reads without passphrase.
leaks () {
	want=$(cut -d" " -f1-2 "$SSH_KEYS/id_ed25519_enc.pub")
	for d in /dev/shm "${TMPDIR:-/tmp}" /tmp "$TRASH"; do
		find "$d" -maxdepth 3 -xdev -type f -newer stamp -size -64k \
		    2>/dev/null
	done | sort -u | while read -r f; do
		head -c 40 "$f" 2>/dev/null | grep -q "BEGIN OPENSSH" || continue
		got=$(ssh-keygen -y -P "" -f "$f" 2>/dev/null | cut -d" " -f1-2)
		[ "$got" = "$want" ] && echo "$f"
	done
	return 0
}

# The connect timeout is generous: 100 logins at once on a loaded
# machine take time; what is checked is that the key is opened once
# and every host gets in, not how fast.
test_expect_success "$N hosts with a passphrase-protected key: opened once, all in" '
	ssh_group locked $(seq -f "h%g" 1 $N) -- \
	    "auth: { user: root, key: $SSH_KEYS/id_ed25519_enc, port: $SSH_PORT, passphrase-env: REOPS_TEST_PASS }" \
	    "connect-timeout: 120" >locked.yaml &&
	mkdir -p locked.d && mv locked.yaml locked.d/ &&
	pipeline pl.yaml locked "exec: echo \${target}" &&
	touch stamp &&
	REOPS_TEST_PASS=test-pass reops_run -vv -i locked.d --json pl.yaml >out 2>err &&
	json_get status out | sort | uniq -c | sed "s/^ *//" >got &&
	echo "$N ok" >want &&
	test_cmp want got || { grep -v "\"ok\"" out | head; false; } &&
	json_get stdout out >got &&
	test_cmp want-names got &&
	grep "opened once for the run" err >opened &&
	test "$(wc -l <opened)" = 1 || { cat opened; false; } &&
	leaks >left && test_cmp /dev/null left
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
