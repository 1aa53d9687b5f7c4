#!/bin/bash
# t3070: hosts reached through a bastion (proxy-jump in hosts.d, ProxyJump
# in ssh_config): one login on the bastion for every target and stage, a
# direct-tcpip channel per target, seen in the bastion's sshd log; both
# host keys checked; a bastion that is down, refuses us or shows a changed
# key makes its targets unreachable, each reason naming it, and the other
# rows go on.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"
SQ="'"

ssh_hosts 4
# The bastion (h1) logs each direct-tcpip request, with its target, at
# DEBUG1; the targets (h2..h4) log each login.
sed -i -e 's/^LogLevel .*/LogLevel DEBUG1/' "$SSHD_DIR/hosts/1/sshd_config" &&
sshd_restart_host "$SSHD_DIR" 1 || {
	echo "Bail out! unable to restart the bastion with LogLevel DEBUG1"
	exit 99
}
BLOG="$SSHD_DIR/hosts/1/sshd.log"
B=$(sshd_host_addr 1)

mkdir -p hosts.d
ssh_group gw h1 >hosts.d/gw.yaml
ssh_group web h2 h3 h4 -- "proxy-jump: h1" >hosts.d/web.yaml
cat >hosts.d/here.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [local-1]
YAML

# forwards I: how many direct-tcpip channels the bastion opened to host I
# (its debug lines end in CR LF).
forwards () {
	tr -d "\r" <"$BLOG" |
	    grep -c "server_request_direct_tcpip: .* target $(sshd_host_addr "$1") port $SSH_PORT\$"
}

# counts: the bastion's logins, then for h2..h4 its forwards and their
# logins, on one line.
counts () {
	echo "$(sshd_accepted "$SSHD_DIR" 1)" \
	    "$(forwards 2)/$(sshd_accepted "$SSHD_DIR" 2)" \
	    "$(forwards 3)/$(sshd_accepted "$SSHD_DIR" 3)" \
	    "$(forwards 4)/$(sshd_accepted "$SSHD_DIR" 4)"
}

# Each row as "target status: first line of stderr, or of stdout".
reasons () {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    text = d["stderr"] or d["stdout"]
    print("%s %s: %s" % (d["target"], d["status"], text.split("\n")[0]))
' "$1"
}

test_expect_success 'three stages on three targets: one bastion login, one channel each' '
	test "$(counts)" = "0 0/0 0/0 0/0" &&
	pipeline p.yaml web "exec: echo one \${target}" "exec: echo two" \
	    "exec: echo three \${target}" &&
	reops_run --json p.yaml >out &&
	reasons out >got &&
	cat >want <<-\EOF &&
	h2 ok: three h2
	h3 ok: three h3
	h4 ok: three h4
	EOF
	test_cmp want got &&
	echo "1 1/1 1/1 1/1" >want &&
	counts >got &&
	test_cmp want got
'

test_expect_success 'without proxy-jump the same targets are reached directly' '
	mkdir -p direct.d &&
	ssh_group web h2 h3 h4 >direct.d/web.yaml &&
	reops_run -i direct.d --json p.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	echo "1 1/2 1/2 1/2" >want &&
	counts >got &&
	test_cmp want got
'

test_expect_success 'a bastion by address takes the group'"'"'s user and key' '
	mkdir -p addr.d &&
	ssh_group web h2 h3 h4 -- "proxy-jump: $B:$SSH_PORT" >addr.d/web.yaml &&
	reops_run -i addr.d --json p.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	echo "2 2/3 2/3 2/3" >want &&
	counts >got &&
	test_cmp want got
'

test_expect_success 'a host entry'"'"'s proxy-jump wins over its group'"'"'s; none is direct' '
	mkdir -p mixed.d &&
	ssh_group gw h1 >mixed.d/gw.yaml &&
	cat >mixed.d/web.yaml <<-EOF &&
	groups:
	  web:
	    auth: { user: root, key: $SSH_KEYS/id_ed25519, port: $SSH_PORT }
	    known-hosts: $SSH_KNOWN
	    proxy-jump: root@$B:1
	    hosts:
	      - { name: h2, address: $(sshd_host_addr 2), proxy-jump: h1 }
	      - { name: h3, address: $(sshd_host_addr 3), proxy-jump: "root@$B:$SSH_PORT" }
	      - { name: h4, address: $(sshd_host_addr 4), proxy-jump: none }
	EOF
	pipeline one.yaml web "exec: echo \${target}" &&
	reops_run -i mixed.d --json one.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	echo "4 3/4 3/4 2/4" >want &&
	counts >got &&
	test_cmp want got
'

test_expect_success 'ssh_config ProxyJump (-F): honoured, none is direct, hosts.d wins' '
	cat >ssh_config <<-EOF &&
	Host h2 h3
	    ProxyJump root@$B:$SSH_PORT
	Host h4
	    ProxyJump none
	Host *
	    ProxyJump root@$B:1
	EOF
	reops_run -i direct.d -F ssh_config --json one.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	echo "5 4/5 4/5 2/5" >want &&
	counts >got &&
	test_cmp want got &&
	mkdir -p none.d &&
	ssh_group web h2 h3 h4 -- "proxy-jump: none" >none.d/web.yaml &&
	reops_run -i none.d -F ssh_config --json one.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	echo "5 4/6 4/6 2/6" >want &&
	counts >got &&
	test_cmp want got
'

test_expect_success 'ssh_config ProxyJump with two hops: each row says only one is supported' '
	printf "Host *\n    ProxyJump %s,%s\n" "$B:$SSH_PORT" "$B:$SSH_PORT" >two_hops &&
	test_exit 3 reops_run -i direct.d -F two_hops --json one.yaml >out &&
	test "$(json_get status out | sort -u)" = unreachable &&
	test "$(json_get stderr out | sort -u)" = "reops-run: two_hops:2: invalid ProxyJump ${SQ}$B:$SSH_PORT,$B:$SSH_PORT${SQ}: only one jump host is supported"
'

test_expect_success 'megabytes both ways through the bastion, byte for byte' '
	head -c 3000000 /dev/urandom >blob &&
	{ base64 -w0 <blob && echo; } >want64 &&
	mkdir -p dest &&
	pipeline big.yaml web \
	    "copy: { src: blob, dest: \"$TRASH/dest/\${target}.bin\" }" \
	    "exec: base64 -w0 $TRASH/dest/\${target}.bin" &&
	reops_run --json big.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	for t in h2 h3 h4; do
		cmp blob dest/$t.bin || return 1
	done &&
	json_get stdout out >got64 &&
	test "$(sort -u got64 | wc -l)" = 1 &&
	sort -u got64 | cmp - want64
'

test_expect_success 'a bastion that cannot reach its target says so; the others go on' '
	mkdir -p closed.d &&
	ssh_group gw h1 >closed.d/gw.yaml &&
	cat >closed.d/web.yaml <<-EOF &&
	groups:
	  web:
	    auth: { user: root, key: $SSH_KEYS/id_ed25519, port: $SSH_PORT }
	    known-hosts: $SSH_KNOWN
	    proxy-jump: h1
	    hosts:
	      - { name: h2, address: $(sshd_host_addr 2), port: 1 }
	      - { name: h3, address: $(sshd_host_addr 3) }
	EOF
	test_exit 3 reops_run -i closed.d --json one.yaml >out &&
	reasons out >got &&
	cat >want <<-EOF &&
	h2 unreachable: reops-run: bastion ${SQ}h1${SQ}: unable to reach $(sshd_host_addr 2) port 1 through it: Channel open failure (connect failed)
	h3 ok: h3
	EOF
	test_cmp want got
'

test_expect_success 'the example inventory of reops-hosts(5) is quoted whole and loads' '
	ex=examples/bastion/inventory/10-bastion.yaml &&
	sed -n "/^\.Pa ${ex//\//\\/}\$/,/^\.Ed/p" "$SRCDIR/man/reops-hosts.5" |
	    sed -e "1,/^\.Bd/d" -e "/^\.Ed/d" >quoted &&
	test -s quoted &&
	grep -v "^#" "$SRCDIR/$ex" >file &&
	test_cmp file quoted &&
	printf "hosts: web\nstages:\n  - exec: uptime\n" >ex.yaml &&
	reops_run -i "$SRCDIR/${ex%/*}" --check ex.yaml >out &&
	test_grep "^targets: 4 hosts$" out
'

test_expect_success 'the bastion lost under a running command: unreachable, naming it' '
	mkdir -p lost.d &&
	ssh_group gw h1 >lost.d/gw.yaml &&
	ssh_group web h2 -- "proxy-jump: h1" >lost.d/web.yaml &&
	cp hosts.d/here.yaml lost.d/ &&
	pipeline lost.yaml "[web, here]" "exec: echo one" \
	    "exec: bash -c \". $SRCDIR/tests/lib-sshd.sh && sshd_stop_host $SSHD_DIR 1\"; echo stopped" \
	    "exec: echo three" &&
	test_exit 3 reops_run -i lost.d --json lost.yaml >out &&
	reasons out >got &&
	test_grep "^h2 unreachable: reops-run: connection to $(sshd_host_addr 2) port $SSH_PORT failed while running the command: bastion ${SQ}h1${SQ}: " got &&
	test_grep "^local-1 ok: three$" got &&
	test "$(wc -l <got)" = 2 &&
	sshd_restart_host "$SSHD_DIR" 1
'

test_expect_success 'a target with a changed key behind a working bastion' '
	sshd_rekey_host "$SSHD_DIR" 3 &&
	test_exit 3 reops_run --json p.yaml >out &&
	reasons out >got &&
	test_grep "^h2 ok: three h2$" got &&
	test_grep "^h4 ok: three h4$" got &&
	test_grep "^h3 unreachable: reops-run: host key of \[$(sshd_host_addr 3)\]:$SSH_PORT has changed" got
'

test_expect_success 'the bastion refusing the login: every target says so, naming it' '
	ssh_group web h2 h3 h4 -- "proxy-jump: nobody@$B:$SSH_PORT" >hosts.d/web.yaml &&
	pipeline both.yaml "[web, here]" "exec: echo \${target}" &&
	test_exit 3 reops_run --json both.yaml >out &&
	reasons out >got &&
	why="reops-run: bastion ${SQ}nobody@$B:$SSH_PORT${SQ}: authentication refused for user ${SQ}nobody${SQ} at $B port $SSH_PORT (tried: key ${SQ}$SSH_KEYS/id_ed25519${SQ})" &&
	cat >want <<-EOF &&
	h2 unreachable: $why
	h3 unreachable: $why
	h4 unreachable: $why
	local-1 ok: local-1
	EOF
	test_cmp want got
'

test_expect_success 'the bastion with a changed key under strict: its targets unreachable' '
	ssh_group web h2 h3 h4 -- "proxy-jump: h1" >hosts.d/web.yaml &&
	sshd_rekey_host "$SSHD_DIR" 1 &&
	before=$(sshd_accepted "$SSHD_DIR" 2) &&
	test_exit 3 reops_run --json both.yaml >out &&
	reasons out >got &&
	test "$(grep -c "^h[234] unreachable: reops-run: bastion ${SQ}h1${SQ}: host key of \[$B\]:$SSH_PORT has changed" got)" = 3 &&
	test_grep "^local-1 ok: local-1$" got &&
	test "$(sshd_accepted "$SSHD_DIR" 2)" = "$before"
'

test_expect_success 'the bastion down: every target unreachable naming it, exit 3' '
	sshd_stop_host "$SSHD_DIR" 1 &&
	test_exit 3 reops_run --json both.yaml >out &&
	reasons out >got &&
	why="reops-run: bastion ${SQ}h1${SQ}: unable to connect to $B port $SSH_PORT: Connection refused" &&
	cat >want <<-EOF &&
	h2 unreachable: $why
	h3 unreachable: $why
	h4 unreachable: $why
	local-1 ok: local-1
	EOF
	test_cmp want got
'

ssh_done
