#!/bin/bash
# t3062: a passphrase-protected key is opened once per run, in memory: a
# run killed (SIGTERM) while ssh-keygen opens it leaves no file on disk
# from which the key can be read without its passphrase.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 1
mkdir -p hosts.d
ssh_group locked h1 -- \
    "auth: { user: root, key: $SSH_KEYS/id_ed25519_enc, port: $SSH_PORT, passphrase-env: REOPS_TEST_PASS }" \
    >hosts.d/locked.yaml
pipeline p.yaml locked "exec: echo in"
REOPS_TEST_PASS=test-pass
export REOPS_TEST_PASS

# leaks: files made since the stamp in the places a copy could be, from
# which this test's key (a fresh one) reads without a passphrase.
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

test_expect_success 'the key opens once, logs in, leaves nothing' '
	touch stamp &&
	reops_run -vv --json p.yaml >out 2>err &&
	test "$(json_get stdout out)" = in &&
	test "$(grep -c "opened once for the run" err)" = 1 || { cat err; false; } &&
	leaks >left && test_cmp /dev/null left
'

test_expect_success 'SIGTERM while ssh-keygen opens the key: no open key on disk' '
	touch stamp && hits=0 && n=0 &&
	while [ $n -lt 8 ]; do
		n=$((n + 1))
		"$REOPS_RUN" --json p.yaml >out.$n 2>err.$n & pid=$!
		i=0
		while ! pgrep -P $pid -x ssh-keygen >/dev/null &&
		    kill -0 $pid 2>/dev/null && [ $i -lt 500 ]; do
			sleep 0.02
			i=$((i + 1))
		done
		pgrep -P $pid -x ssh-keygen >/dev/null && hits=$((hits + 1))
		kill -TERM $pid 2>/dev/null
		wait $pid || :
	done &&
	echo "caught ssh-keygen at work in $hits of $n runs" &&
	test $hits -ge 1 &&
	leaks >left && test_cmp /dev/null left
'

ssh_done
