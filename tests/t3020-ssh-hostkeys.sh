#!/bin/bash
# t3020: host keys over ssh. strict (the default) refuses unknown and
# changed keys, naming the SHA256 fingerprint, and fails closed when a
# known_hosts file cannot be read; accept-new records unknown keys and
# still refuses changed ones; off is only what it says. Hashed and
# [host]:port entries, ~/.ssh/known_hosts by default.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"
SQ="'"

ssh_hosts 3
mkdir -p hosts.d
fp () {
	ssh-keygen -l -E sha256 -f "$1" | cut -d" " -f2
}
HOSTFP=$(fp "$SSH_KEYS/ssh_host_ed25519_key.pub")
pipeline p.yaml all "exec: echo \${target}"

test_expect_success 'strict: the known keys match' '
	ssh_group web h1 h2 h3 >hosts.d/web.yaml &&
	reops_run --json p.yaml >out &&
	test "$(json_get status out | sort -u)" = ok
'

test_expect_success 'strict is the default: an unknown key is refused, fingerprint named' '
	: >empty_known &&
	ssh_group web h1 -- "known-hosts: $TRASH/empty_known" >hosts.d/web.yaml &&
	test_exit 3 reops_run --json p.yaml >out &&
	json_get stderr out >got &&
	echo "reops-run: host key of [127.0.0.2]:$SSH_PORT is not known (ssh-ed25519 $HOSTFP); add it to known_hosts or use host-keys: accept-new" >want &&
	test_cmp want got &&
	test_cmp /dev/null empty_known
'

test_expect_success 'strict fails closed when a known_hosts file cannot be read' '
	ssh_group web h1 -- "known-hosts: [$SSH_KNOWN, $TRASH/missing_known]" >hosts.d/web.yaml &&
	test_exit 3 reops_run --json p.yaml >out &&
	json_get stderr out >got &&
	echo "reops-run: unable to read known_hosts ${SQ}$TRASH/missing_known${SQ}: No such file or directory; refusing [127.0.0.2]:$SSH_PORT (ssh-ed25519 $HOSTFP)" >want &&
	test_cmp want got
'

test_expect_success 'a key recorded for the bare address does not vouch for another port' '
	echo "127.0.0.2 $(cut -d" " -f1,2 "$SSH_KEYS/ssh_host_ed25519_key.pub")" >bare_known &&
	ssh_group web h1 -- "known-hosts: $TRASH/bare_known" >hosts.d/web.yaml &&
	test_exit 3 reops_run --json p.yaml >out &&
	test_grep "host key of \[127.0.0.2\]:$SSH_PORT is not known" out
'

test_expect_success 'hashed known_hosts entries' '
	cp "$SSH_KNOWN" hashed_known &&
	ssh-keygen -q -H -f hashed_known 2>/dev/null &&
	! grep -q 127.0.0 hashed_known &&
	ssh_group web h1 h2 -- "known-hosts: $TRASH/hashed_known" >hosts.d/web.yaml &&
	reops_run --json p.yaml >out &&
	test "$(json_get status out | sort -u)" = ok
'

test_expect_success 'without known-hosts: ~/.ssh/known_hosts' '
	mkdir -p .ssh && cp "$SSH_KNOWN" .ssh/known_hosts &&
	printf "groups:\n  web:\n    transport: ssh\n    auth: { user: root, key: %s, port: %s }\n    hosts: [{ name: h1, address: 127.0.0.2 }]\n" \
	    "$SSH_KEYS/id_ed25519" "$SSH_PORT" >hosts.d/web.yaml &&
	reops_run --json p.yaml >out &&
	test "$(json_get status out)" = ok &&
	rm .ssh/known_hosts &&
	test_exit 3 reops_run --json p.yaml >out &&
	test_grep "is not known" out
'

test_expect_success 'accept-new records unknown keys, one line each, then they are known' '
	rm -f new_known &&
	ssh_group web h1 h2 h3 -- "known-hosts: $TRASH/new_known" "host-keys: accept-new" >hosts.d/web.yaml &&
	reops_run --json p.yaml >out 2>err &&
	test "$(json_get status out | sort -u)" = ok &&
	test "$(wc -l <new_known)" = 3 &&
	test "$(grep -c "^reops-run: warning: permanently added the host key of \[127.0.0.[234]\]:$SSH_PORT (ssh-ed25519 SHA256:" err)" = 3 &&
	for i in 2 3 4; do
		ssh-keygen -F "[127.0.0.$i]:$SSH_PORT" -f new_known >/dev/null ||
		return 1
	done &&
	test "$(stat -c %a new_known)" = 600 &&
	ssh_group web h1 h2 h3 -- "known-hosts: $TRASH/new_known" >hosts.d/web.yaml &&
	reops_run --json p.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	test "$(wc -l <new_known)" = 3
'

test_expect_success 'ssh(1) trusts what accept-new recorded' '
	ssh -F "$SSHD_DIR/ssh_config" -o UserKnownHostsFile="$TRASH/new_known" h2 true </dev/null
'

test_expect_success 'a changed key: strict refuses, naming the new fingerprint' '
	sshd_rekey_host "$SSHD_DIR" 2 &&
	NEWFP=$(fp "$SSHD_DIR/hosts/2/ssh_host_ed25519_key.pub") &&
	test "$NEWFP" != "$HOSTFP" &&
	ssh_group web h1 h2 h3 >hosts.d/web.yaml &&
	test_exit 3 reops_run --json p.yaml >out &&
	json_get status out >got &&
	printf "ok\nunreachable\nok\n" >want && test_cmp want got &&
	json_get stderr out | grep . >got &&
	echo "reops-run: host key of [127.0.0.3]:$SSH_PORT has changed: the server offers ssh-ed25519 $NEWFP, known_hosts has another; refusing (possible man-in-the-middle)" >want &&
	test_cmp want got
'

test_expect_success 'a changed key: accept-new refuses too and records nothing' '
	cp new_known before &&
	ssh_group web h1 h2 h3 -- "known-hosts: $TRASH/new_known" "host-keys: accept-new" >hosts.d/web.yaml &&
	test_exit 3 reops_run --json p.yaml >out &&
	test_grep "127.0.0.3.*has changed" out &&
	test_cmp before new_known
'

test_expect_success 'host-keys: off connects anyway' '
	ssh_group web h2 -- "known-hosts: $TRASH/empty_known" "host-keys: off" >hosts.d/web.yaml &&
	reops_run --json p.yaml >out &&
	test "$(json_get status out)" = ok
'

test_expect_success '@revoked keys are refused' '
	{ echo "@revoked * $(cut -d" " -f1,2 "$SSHD_DIR/hosts/2/ssh_host_ed25519_key.pub")" &&
	  cat "$SSH_KNOWN"; } >revoked_known &&
	ssh_group web h2 -- "known-hosts: $TRASH/revoked_known" "host-keys: accept-new" >hosts.d/web.yaml &&
	test_exit 3 reops_run --json p.yaml >out &&
	test_grep "host key of \[127.0.0.3\]:$SSH_PORT is revoked" out
'

test_expect_success 'concurrent accept-new runs keep every line whole' '
	rm -f conc_known &&
	ssh_group web h1 h3 -- "known-hosts: $TRASH/conc_known" "host-keys: accept-new" >hosts.d/web.yaml &&
	for i in 1 2 3 4; do reops_run --json p.yaml >out.$i & done; wait &&
	test "$(grep -c -v "^\[127.0.0.[24]\]:$SSH_PORT ssh-ed25519 [A-Za-z0-9+/=]*$" conc_known)" = 0 &&
	test "$(wc -l <conc_known)" -ge 2
'

ssh_done
