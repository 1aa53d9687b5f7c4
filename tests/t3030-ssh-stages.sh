#!/bin/bash
# t3030: the host stages over ssh and locally: copy (bytes, sha256, mode,
# binary content, atomic replace), facts, ping, pkg (detection and a dry
# run), exec under sudo and its refusal; and the example pipelines of
# reops-pipeline(5) on ssh hosts.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 2
mkdir -p hosts.d
ssh_group web h1 h2 >hosts.d/web.yaml
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [local-1]
YAML

test_expect_success 'copy: bytes and sha256 as computed here, the file whole' '
	head -c 300000 /dev/urandom >blob &&
	printf "\0\377\n" >>blob &&
	want=$(sha256sum <blob | cut -d" " -f1) &&
	mkdir -p dest &&
	pipeline c.yaml "[web, here]" "copy: { src: blob, dest: \"$TRASH/dest/\${target}.bin\", mode: \"0640\" }" &&
	reops_run --json c.yaml >out &&
	json_get status out >got &&
	printf "ok\nok\nok\n" >expect && test_cmp expect got &&
	json_get sha256 out | sort -u >got &&
	echo "$want" >expect && test_cmp expect got &&
	json_get bytes out | sort -u >got &&
	echo 300003 >expect && test_cmp expect got &&
	for t in h1 h2 local-1; do
		cmp blob dest/$t.bin &&
		test "$(stat -c %a dest/$t.bin)" = 640 || return 1
	done &&
	test "$(ls dest | wc -l)" = 3
'

test_expect_success 'copy replaces a file whole and leaves no temporary behind' '
	echo old >dest/h1.bin &&
	reops_run --json -l h1 c.yaml >out &&
	cmp blob dest/h1.bin &&
	test "$(ls dest | wc -l)" = 3
'

# 5 MB is more than the channel's window: the host stops reading early.
test_expect_success 'copy to a directory that does not exist: failed, nothing left' '
	head -c 5000000 /dev/zero >zeros &&
	pipeline c2.yaml web "copy: { src: zeros, dest: $TRASH/nodir/x }" &&
	test_exit 1 reops_run --json c2.yaml >out &&
	test "$(json_get status out | sort -u)" = failed &&
	test "$(json_get code out | sort -u)" = 1 &&
	test_grep "mktemp" out &&
	test ! -e nodir
'

test_expect_success 'copy: a missing src stops the run before it starts (exit 2)' '
	pipeline c3.yaml web "copy: { src: nothere, dest: /tmp/x }" &&
	test_exit 2 reops_run c3.yaml 2>err &&
	test_grep "^c3.yaml:3:18: unable to open .nothere.: No such file or directory$" err
'

test_expect_success 'copy: a bad mode is a load error' '
	pipeline c4.yaml web "copy: { src: blob, dest: /tmp/x, mode: rwx }" &&
	test_exit 2 reops_run c4.yaml 2>err &&
	test_grep "mode. of stage .copy. must be octal" err
'

test_expect_success 'facts: the columns, as this machine tells them' '
	pipeline f.yaml "[web, here]" facts &&
	reops_run --json f.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	test "$(json_get kernel out | sort -u)" = "$(uname -r)" &&
	test "$(json_get arch out | sort -u)" = "$(uname -m)" &&
	test "$(json_get cpus out | sort -u)" = "$(getconf _NPROCESSORS_ONLN)" &&
	test "$(json_get os out | sort -u)" = "$(. /etc/os-release; echo $ID)" &&
	test "$(json_get version out | sort -u)" = "$(. /etc/os-release; echo $VERSION_ID)" &&
	json_get memory out | grep -q -x -E "[1-9][0-9]*" &&
	json_get uptime out | grep -q -x -E "[0-9]+" &&
	test "$(json_get stdout out | sort -u)" = ""
'

test_expect_success 'ping: ssh hosts log in, local rows are always ok' '
	pipeline pg.yaml "[web, here]" ping &&
	reops_run --json pg.yaml >out &&
	test "$(json_get status out | tr "\n" " ")" = "ok ok ok "
'

test_expect_success 'ping: a host that refuses is unreachable' '
	ssh_group bad h2 -- "auth: { user: reops-no-such-user, key: $SSH_KEYS/id_ed25519, port: $SSH_PORT }" \
	    >hosts.d/bad.yaml &&
	sed -i -e "s/name: h2/name: h2-as-nobody/" hosts.d/bad.yaml &&
	pipeline pg2.yaml bad ping &&
	test_exit 3 reops_run --json pg2.yaml >out &&
	test_grep "authentication refused" out &&
	rm hosts.d/bad.yaml
'

test_expect_success 'pkg: the manager found, a dry run installs nothing' '
	pipeline pk.yaml "[web, here]" "pkg: { install: [coreutils], dry-run: true }" &&
	reops_run --json pk.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	m=$(for c in apt-get dnf apk; do command -v $c >/dev/null && { echo $c; break; }; done) &&
	test "$(json_get manager out | sort -u)" = "$m"
'

test_expect_success 'pkg: a bad package name is a load error' '
	pipeline pk2.yaml web "pkg: [\"curl; rm -rf /\"]" &&
	test_exit 2 reops_run pk2.yaml 2>err &&
	test_grep "invalid package name" err
'

if command -v sudo >/dev/null; then
	test_expect_success 'exec with sudo: root may' '
		pipeline s.yaml web "exec: { command: id -u, sudo: true }" &&
		reops_run --json s.yaml >out &&
		test "$(json_get stdout out | sort -u)" = 0
	'
else
	test_skip 'exec with sudo: root may' 'no sudo(8) here'
fi

# sudo refusal needs a user who may not sudo; a throwaway system user is
# made for it (password '*': not locked, no password) and removed again.
NOSUDO=reops-t3030-$$
if command -v sudo >/dev/null && command -v useradd >/dev/null &&
    useradd -r -M -d /nonexistent -s /bin/sh -p '*' "$NOSUDO" 2>/dev/null; then
	trap 'userdel "$NOSUDO" 2>/dev/null; sshd_stop "$SSHD_DIR"' EXIT
	cp "$SSH_KEYS/authorized_keys" ak && chmod 644 ak &&
	printf "Match User %s\n    AuthorizedKeysFile %s\n" "$NOSUDO" "$TRASH/ak" \
	    >>"$SSHD_DIR/hosts/2/sshd_config" &&
	sshd_restart_host "$SSHD_DIR" 2
	test_expect_success 'exec with sudo, a user without rights: failed, never prompts' '
		ssh_group plain h2 -- "auth: { user: $NOSUDO, key: $SSH_KEYS/id_ed25519, port: $SSH_PORT }" \
		    >hosts.d/plain.yaml &&
		sed -i -e "s/name: h2/name: h2-plain/" hosts.d/plain.yaml &&
		pipeline s2.yaml plain "exec: id -un" "exec: { command: id -u, sudo: true, timeout: 30 }" &&
		test_exit 1 reops_run --json s2.yaml >out &&
		test "$(json_get status out)" = failed &&
		test "$(json_get code out)" = 1 &&
		test_grep "password is required" out
	'
	userdel "$NOSUDO" 2>/dev/null
	rm -f hosts.d/plain.yaml
else
	test_skip 'exec with sudo, a user without rights' 'no sudo(8), or no useradd'
fi

# The examples of reops-pipeline(5), on the ssh hosts and a local row.
test_expect_success 'pipelines/copy.yaml' '
	reops_run --set dest="$TRASH/motd-\${target}" --json "$SRCDIR/pipelines/copy.yaml" >out &&
	test "$(json_get status out | sort -u)" = ok &&
	cmp "$SRCDIR/pipelines/files/motd" motd-h1 &&
	cmp "$SRCDIR/pipelines/files/motd" motd-local-1
'

test_expect_success 'pipelines/facts.yaml' '
	reops_run "$SRCDIR/pipelines/facts.yaml" >out &&
	test_grep "^h1: ok .* os=" out &&
	test_grep "^3 rows: 3 ok" out
'

test_expect_success 'pipelines/ping.yaml lists no host: all answered' '
	reops_run "$SRCDIR/pipelines/ping.yaml" >out &&
	test_grep "^0 rows" out
'

test_expect_success 'pipelines/pkg.yaml (a dry run)' '
	reops_run --json "$SRCDIR/pipelines/pkg.yaml" >out &&
	test "$(json_get status out | sort -u)" = ok
'

ssh_done
