#!/bin/bash
# t3010: hosts that fail over ssh become unreachable rows with a one-line
# reason, and the others finish normally: a closed port, a host that hangs
# (sshd stopped with SIGSTOP), a refused login, a name that does not
# resolve; commands that outlive their deadline fail with 124 (and when
# the host no longer answers, the row says the command may live on).
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"
SQ="'"

ssh_hosts 3
mkdir -p hosts.d
ssh_group web h1 h2 h3 -- "connect-timeout: 2" >hosts.d/web.yaml
cat >hosts.d/broken.yaml <<YAML
groups:
  broken:
    transport: ssh
    connect-timeout: 2
    auth: { user: root, key: $SSH_KEYS/id_ed25519, port: $SSH_PORT }
    known-hosts: $SSH_KNOWN
    hosts:
      - { name: closed, address: 127.0.0.2, port: 1 }
      - { name: nouser, address: 127.0.0.2, user: reops-no-such-user }
      - { name: nodns, address: reops-test.invalid }
      - { name: byname, address: localhost, port: 1 }
YAML

# Each row as "target status: line": the first line of its stderr, or
# of its stdout when stderr is empty.
reasons () {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    text = d["stderr"] or d["stdout"]
    print("%s %s: %s" % (d["target"], d["status"], text.split("\n")[0]))
' "$1"
}

test_expect_success 'a closed port, a refused login, no such name: exit 3' '
	pipeline p.yaml "[web, broken]" "exec: echo \${target}" &&
	test_exit 3 reops_run --json p.yaml >out &&
	reasons out >got &&
	cat >want <<-EOF &&
	h1 ok: h1
	h2 ok: h2
	h3 ok: h3
	closed unreachable: reops-run: unable to connect to 127.0.0.2 port 1: Connection refused
	nouser unreachable: reops-run: authentication refused for user ${SQ}reops-no-such-user${SQ} at 127.0.0.2 port $SSH_PORT (tried: key ${SQ}$SSH_KEYS/id_ed25519${SQ})
	EOF
	head -5 got >got5 &&
	test_cmp want got5 &&
	test_grep "^nodns unreachable: reops-run: unable to resolve .reops-test.invalid.: " got &&
	test_grep "^byname unreachable: reops-run: unable to connect to localhost port 1: Connection refused$" got
'

test_expect_success 'each reason is one line' '
	test "$(json_get stderr out | grep -c .)" = 4
'

test_expect_success 'unreachable rows pass through later stages untouched' '
	pipeline p2.yaml "[web, broken]" "exec: true" "exec: echo again" &&
	test_exit 3 reops_run --json p2.yaml >out &&
	test "$(json_get status out | grep -c unreachable)" = 4 &&
	test "$(json_get stdout out | grep -c again)" = 3
'

test_expect_success 'a hung host (sshd stopped) is unreachable at its connect timeout' '
	sshd_pause_host "$SSHD_DIR" 2 &&
	pipeline p3.yaml web "exec: echo \${target}" &&
	timeout 60 "$REOPS_RUN" --json p3.yaml >out;
	r=$?; sshd_resume_host "$SSHD_DIR" 2; test $r = 3 &&
	reasons out >got &&
	cat >want <<-EOF &&
	h1 ok: h1
	h2 unreachable: reops-run: timed out after 2s in the SSH handshake with 127.0.0.3 port $SSH_PORT
	h3 ok: h3
	EOF
	test_cmp want got
'

test_expect_success 'the run deadline (--timeout) bounds the handshake too' '
	printf "groups:\n  slow:\n    transport: ssh\n    connect-timeout: 60\n    auth: { user: root, key: %s, port: %s }\n    known-hosts: %s\n    hosts: [{ name: s2, address: 127.0.0.3 }]\n" \
	    "$SSH_KEYS/id_ed25519" "$SSH_PORT" "$SSH_KNOWN" >hosts.d/slow.yaml &&
	sshd_pause_host "$SSHD_DIR" 2 &&
	pipeline p4.yaml slow "exec: true" &&
	timeout 60 "$REOPS_RUN" --timeout 1 --json p4.yaml >out;
	r=$?; sshd_resume_host "$SSHD_DIR" 2; rm hosts.d/slow.yaml; test $r = 3 &&
	test_grep "timed out after 1s in the SSH handshake" out
'

test_expect_success 'a host stopped after it connected: the command times out (124)' '
	pipeline p5.yaml web "exec: true" "exec: { command: \"test \${target} != h3 || kill -STOP \$PPID; echo \${target}\", timeout: 2 }" "exec: echo later" &&
	timeout 60 "$REOPS_RUN" --json p5.yaml >out;
	r=$?; sshd_resume_host "$SSHD_DIR" 3; test $r = 1 &&
	reasons out >got &&
	cat >want <<-EOF &&
	h1 ok: later
	h2 ok: later
	h3 failed: reops-run: timed out after 2s
	EOF
	test_cmp want got &&
	json_get stdout out >got &&
	printf "later\nlater\n\n" >want &&
	test_cmp want got
'

test_expect_success 'a slow command and the stage timeout: failed, code 124' '
	pipeline p6.yaml web "exec: { command: \"sleep 4\", timeout: 1 }" &&
	timeout 60 "$REOPS_RUN" --json -l h1 p6.yaml >out;
	test $? = 1 &&
	test "$(json_get code out)" = 124
'

test_expect_success 'after a timed-out command, the next pipeline reconnects' '
	pipeline again.yaml web "exec: echo \${target} again" &&
	timeout 60 "$REOPS_RUN" --json -l h1 p6.yaml again.yaml >out;
	test $? = 1 &&
	json_get code out >got &&
	printf "124\n0\n" >want &&
	test_cmp want got &&
	test "$(json_get stdout out | tail -1)" = "h1 again"
'

test_expect_success 'a stopped sshd that is killed mid-command: unreachable' '
	pipeline p8.yaml web "exec: true" "exec: { command: \"test \${target} != h1 || kill -KILL \$PPID; echo ok\", timeout: 20 }" &&
	timeout 60 "$REOPS_RUN" --json p8.yaml >out;
	test $? = 3 &&
	reasons out >got &&
	test_grep "^h1 unreachable: reops-run: connection to 127.0.0.2 port $SSH_PORT failed while running the command" got &&
	test_grep "^h2 ok" got
'

test_expect_success 'a server that does not speak SSH: unreachable, the handshake named' '
	rm -f http.port &&
	{ timeout 30 python3 -c "
import socket, sys
s = socket.socket()
s.bind((\"127.0.0.1\", 0))
s.listen(4)
open(\"http.port.tmp\", \"w\").write(str(s.getsockname()[1]))
__import__(\"os\").rename(\"http.port.tmp\", \"http.port\")
c, _ = s.accept()
c.sendall(b\"HTTP/1.0 400 Bad Request\\r\\n\\r\\n\")
c.close()
" & } &&
	i=0 && while [ ! -s http.port ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done &&
	printf "groups:\n  http:\n    transport: ssh\n    hosts: [{ name: web-server, address: 127.0.0.1, port: %s }]\n" \
	    "$(cat http.port)" >hosts.d/http.yaml &&
	pipeline h.yaml http ping &&
	test_exit 3 reops_run --json h.yaml >out;
	r=$?; rm -f hosts.d/http.yaml; wait; test $r = 0 &&
	test_grep "SSH handshake with 127.0.0.1 port $(cat http.port) failed: " out
'

test_expect_success 'SIGINT: rows in flight fail with 130, the rest are skipped' '
	pipeline int.yaml web "exec: touch $TRASH/started.\${target}; exec sleep 5" &&
	{ "$REOPS_RUN" --forks 2 int.yaml >out 2>err & pid=$!; } &&
	i=0 && while [ ! -e started.h2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done &&
	kill -INT $pid &&
	{ wait $pid; code=$?; } ; test $code = 130 &&
	test_grep "^h1: failed code=130" out &&
	test_grep "^h2: failed code=130" out &&
	test_grep "^h3: skipped" out &&
	! test -e started.h3
'

ssh_done
