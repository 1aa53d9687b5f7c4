#!/bin/bash
# t3000: commands over ssh on real loopback sshd hosts: exit codes and
# signals, stdout and stderr apart and whole (10 MB, binary), an empty
# stdin, ~/.ssh/config and -F, every way of authenticating.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 3
mkdir -p hosts.d
ssh_group web h1 h2 h3 >hosts.d/web.yaml

test_expect_success 'every host ok: exit 0, one JSON row each, stdout apart' '
	pipeline ok.yaml web "exec: echo out \${target}; echo err >&2" &&
	reops_run --json ok.yaml >out 2>err &&
	json_get status out >got &&
	printf "ok\nok\nok\n" >want && test_cmp want got &&
	json_get stdout out >got &&
	printf "out h1\nout h2\nout h3\n" >want && test_cmp want got &&
	json_get stderr out >got &&
	printf "err\nerr\nerr\n" >want && test_cmp want got
'

test_expect_success 'a failing command: exit 1, its code in the row' '
	pipeline fail.yaml web "exec: exit 7" &&
	test_exit 1 reops_run --json fail.yaml >out &&
	json_get code out >got &&
	printf "7\n7\n7\n" >want && test_cmp want got &&
	json_get status out | sort -u >got &&
	echo failed >want && test_cmp want got
'

test_expect_success 'only one host fails: the others are ok' '
	pipeline one.yaml web "exec: test \${target} != h2" &&
	test_exit 1 reops_run --json one.yaml >out &&
	json_get status out >got &&
	printf "ok\nfailed\nok\n" >want && test_cmp want got
'

test_expect_success 'a command killed by a signal: 128+n and the signal named' '
	pipeline sig.yaml web "exec: kill -TERM \$\$" &&
	test_exit 1 reops_run --json -l h1 sig.yaml >out &&
	test "$(json_get code out)" = 143 &&
	json_get stderr out >got &&
	test_grep "killed by signal 15 \(SIGTERM\)" got
'

test_expect_success '10 MB of binary output on each stream arrives whole' '
	head -c 10485760 /dev/urandom >big &&
	sha256sum <big | cut -d" " -f1 >want &&
	pipeline big.yaml web "exec: cat $TRASH/big; cat $TRASH/big >&2" &&
	reops_run --json -l h1 big.yaml >out &&
	python3 -c "
import base64, hashlib, json, sys
d = json.loads(open(\"out\").read())
for k in (\"stdout\", \"stderr\"):
    b = base64.b64decode(d[k + \"_base64\"]) if d.get(k + \"_base64\") else d[k].encode()
    print(len(b), hashlib.sha256(b).hexdigest())
" >got &&
	printf "10485760 %s\n10485760 %s\n" "$(cat want)" "$(cat want)" >expect &&
	test_cmp expect got
'

test_expect_success 'the command reads an empty stdin, it does not hang' '
	pipeline stdin.yaml web "exec: { command: wc -c, timeout: 20 }" &&
	reops_run --json -l h1 stdin.yaml >out &&
	test "$(json_get stdout out)" = 0
'

test_expect_success 'commands run under /bin/sh, not the login shell' '
	pipeline sh.yaml web "exec: readlink /proc/\$\$/exe" &&
	reops_run --json -l h1 sh.yaml >out &&
	test "$(json_get stdout out)" = "$(readlink -f /bin/sh)"
'

test_expect_success '-F ssh_config: HostName, Port, User, IdentityFile' '
	mkdir -p cfg/hosts.d &&
	printf "groups:\n  viacfg:\n    transport: ssh\n    known-hosts: %s\n    hosts: [h1, h2]\n" \
	    "$SSH_KNOWN" >cfg/hosts.d/c.yaml &&
	pipeline cfg/p.yaml viacfg "exec: echo \${target}" &&
	reops_run -i cfg/hosts.d -F "$SSHD_DIR/ssh_config" --json cfg/p.yaml >out &&
	json_get stdout out >got &&
	printf "h1\nh2\n" >want && test_cmp want got
'

test_expect_success '~/.ssh/config is read when there is no -F' '
	mkdir -p .ssh &&
	cp "$SSHD_DIR/ssh_config" .ssh/config &&
	reops_run -i cfg/hosts.d --json cfg/p.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	rm .ssh/config
'

test_expect_success 'without a config, the host name is dialled and fails' '
	test_exit 3 reops_run -i cfg/hosts.d --json cfg/p.yaml >out &&
	test "$(json_get status out | sort -u)" = unreachable
'

test_expect_success 'an unreadable -F file is a usage error' '
	test_exit 2 reops_run -F nonexistent.conf ok.yaml 2>err &&
	test_grep "unable to read ssh config .nonexistent.conf." err
'

test_expect_success 'local and ssh rows of one stage run side by side' '
	mkdir -p mixed &&
	cp hosts.d/web.yaml mixed/ &&
	printf "groups:\n  here:\n    transport: local\n    hosts: [local-1]\n" >mixed/here.yaml &&
	rm -f from-ssh &&
	pipeline mixed.yaml "[here, h1]" "exec: { command: \"if [ \${group} = here ]; then i=0; while [ ! -e $TRASH/from-ssh ] && [ \$i -lt 250 ]; do sleep 0.1; i=\$((i + 1)); done; test -e $TRASH/from-ssh; else touch $TRASH/from-ssh; fi\", timeout: 30 }" &&
	reops_run -i mixed --json mixed.yaml >out &&
	json_get status out >got &&
	printf "ok\nok\n" >want &&
	test_cmp want got
'

# Started while the ssh loop holds its session (made by the first stage,
# kept for the second and at work beside it: the ssh row waits until the
# local one has looked), a local command sees only what reops-run itself
# was given (0, 1, 2 and whatever the test harness leaves open): every
# file and socket reops-run opens is close-on-exec. --forks counts both
# rows, so it is 2.
test_expect_success 'a local command inherits no descriptor reops-run opened' '
	rm -f from-ssh listed &&
	mkdir -p fds &&
	cp hosts.d/web.yaml fds/ &&
	printf "groups:\n  here:\n    transport: local\n    hosts: [local-1]\n" >fds/here.yaml &&
	pipeline fds.yaml "[here, h1]" "exec: true" "exec: { command: \"if [ \${group} = here ]; then i=0; while [ ! -e $TRASH/from-ssh ] && [ \$i -lt 250 ]; do sleep 0.1; i=\$((i + 1)); done; ls /proc/\$\$/fd >$TRASH/fds.child; touch $TRASH/listed; else touch $TRASH/from-ssh; i=0; while [ ! -e $TRASH/listed ] && [ \$i -lt 250 ]; do sleep 0.1; i=\$((i + 1)); done; fi\", timeout: 30 }" &&
	sh -c "ls /proc/\$\$/fd >fds.given; exec \"\$0\" \"\$@\"" \
	    "$REOPS_RUN" -i fds --forks 2 --json fds.yaml >out &&
	test -e listed &&
	sort -n fds.given >want &&
	sort -n fds.child >got &&
	test_cmp want got
'

test_expect_success 'SIGINT reaches both loops: rows fail with 130, exit 130' '
	rm -f started.here started.ssh &&
	pipeline mixint.yaml "[here, h1]" "exec: \"touch $TRASH/started.\$([ \${group} = here ] && echo here || echo ssh); exec sleep 5\"" &&
	{ "$REOPS_RUN" -i mixed mixint.yaml >out 2>err & pid=$!; } &&
	i=0 && while { [ ! -e started.here ] || [ ! -e started.ssh ]; } && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done &&
	kill -INT $pid &&
	{ wait $pid; code=$?; } ; test $code = 130 &&
	test_grep "^local-1: failed code=130" out &&
	test_grep "^h1: failed code=130" out
'

test_expect_success 'an ECDSA key file' '
	mkdir -p ecdsa &&
	ssh_group k h1 -- "auth: { user: root, key: $SSH_KEYS/id_ecdsa, port: $SSH_PORT }" \
	    >ecdsa/k.yaml &&
	pipeline kp.yaml k "exec: echo ecdsa" &&
	reops_run -i ecdsa --json kp.yaml >out &&
	test "$(json_get stdout out)" = ecdsa
'

test_expect_success 'an encrypted key, its passphrase from the named variable' '
	mkdir -p enc &&
	ssh_group k h1 -- "auth: { user: root, key: $SSH_KEYS/id_ed25519_enc, port: $SSH_PORT, passphrase-env: REOPS_TEST_PASS }" \
	    >enc/k.yaml &&
	REOPS_TEST_PASS=test-pass reops_run -i enc --json kp.yaml >out 2>err &&
	test "$(json_get status out)" = ok
'

test_expect_success 'passphrase unset or wrong: unreachable, never printed' '
	test_exit 3 env -u REOPS_TEST_PASS "$REOPS_RUN" -i enc kp.yaml >out 2>err &&
	test_grep "passphrase variable .REOPS_TEST_PASS. is not set" err &&
	REOPS_TEST_PASS=not-the-pass test_exit 3 reops_run -v -i enc --json kp.yaml >out 2>err &&
	test_grep "wrong passphrase" out &&
	! grep -q "not-the-pass" out err &&
	REOPS_TEST_PASS=test-pass reops_run -v -v -i enc --json kp.yaml >out 2>err &&
	! grep -q "test-pass" out err
'

test_expect_success 'ssh-agent via SSH_AUTH_SOCK' '
	eval "$(ssh-agent -s -a "$TRASH/agent.sock")" >/dev/null &&
	ssh-add -q "$SSH_KEYS/id_ecdsa" 2>/dev/null &&
	mkdir -p agent &&
	ssh_group k h1 -- "auth: { user: root, port: $SSH_PORT }" >agent/k.yaml &&
	reops_run -i agent --json kp.yaml >out;
	r=$?; ssh-add -D -q 2>/dev/null;
	test_exit 3 reops_run -i agent --json kp.yaml >out2;
	r2=$?; kill "$SSH_AGENT_PID"; test $r = 0 && test $r2 = 0 &&
	test "$(json_get status out)" = ok &&
	test_grep "tried: ssh-agent" out2
'

test_expect_success 'no key that the host accepts: unreachable, with what was tried' '
	mkdir -p nokey &&
	ssh-keygen -q -t ed25519 -N "" -f other </dev/null &&
	ssh_group k h1 -- "auth: { user: root, key: $TRASH/other, port: $SSH_PORT }" \
	    >nokey/k.yaml &&
	test_exit 3 reops_run -i nokey --json kp.yaml >out &&
	json_get stderr out >got &&
	test_grep "^reops-run: authentication refused for user .root. at 127.0.0.2 port $SSH_PORT \(tried: key .$TRASH/other.\)$" got
'

# libssh2 1.10 signs with RSA as ssh-rsa (SHA-1), which OpenSSH 8.8 and
# later refuse unless the server allows it.
test_expect_success 'an RSA key file, where the server allows ssh-rsa' '
	mkdir -p rsa &&
	ssh_group k h3 -- "auth: { user: root, key: $SSH_KEYS/id_rsa, port: $SSH_PORT }" \
	    >rsa/k.yaml &&
	pipeline rsa.yaml k "exec: echo rsa" &&
	echo "PubkeyAcceptedAlgorithms +ssh-rsa" >>"$SSHD_DIR/hosts/3/sshd_config" &&
	sshd_restart_host "$SSHD_DIR" 3 &&
	reops_run -i rsa --json rsa.yaml >out &&
	test "$(json_get stdout out)" = rsa
'

ssh_done
