#!/bin/bash
# t3066: a value that begins with a dash is an operand, never an option:
# copy's dest reaches mktemp, chmod and mv after "--", and an ls path
# stays a path even when a flag (-I) takes the "--" as its argument.
# Locally and over ssh.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 1
mkdir -p hosts.d
ssh_group web h1 >hosts.d/web.yaml
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [l1]
YAML
printf 'payload\n' >blob

# Over ssh the command runs in root's home: a name of this run's own,
# removed at the end.
remote="-tpX-$$"
cleanup () {
	rm -f -- "$HOME_ROOT/$remote" "$HOME_ROOT/$remote".reops.*
}
HOME_ROOT=$(getent passwd root | cut -d: -f6)

test_expect_success 'copy to dest "-tpX": the file is written under that name (local)' '
	pipeline c.yaml here "copy: { src: blob, dest: -tpX, mode: \"0600\" }" &&
	reops_run --json c.yaml >out &&
	test "$(json_get status out)" = ok || { cat out; false; } &&
	test_cmp blob ./-tpX &&
	test "$(stat -c %a ./-tpX)" = 600 &&
	{ ls -a | grep -v "^-tpX$" | grep -e "^-" -e "reops\." >stray || :; } &&
	test_cmp /dev/null stray
'

test_expect_success 'copy to dest "-tpX": the file is written under that name (ssh)' '
	pipeline cs.yaml web "copy: { src: blob, dest: \"$remote\", mode: \"0600\" }" &&
	reops_run --json cs.yaml >out; r=$?;
	test_cmp blob "$HOME_ROOT/$remote"; c=$?;
	cleanup; test $r = 0 && test $c = 0 || { cat out; false; } &&
	test "$(json_get status out)" = ok
'

test_expect_success 'ls with flags -I: a path "--version" is a path (local)' '
	mkdir ./--version && touch ./--version/inside &&
	pipeline l.yaml here "ls: { path: --version, flags: -I }" &&
	reops_run --json l.yaml >out &&
	test "$(json_get stdout out)" = inside || { cat out; false; }
'

test_expect_success 'ls with flags -I: a path "--version" is a path (ssh)' '
	pipeline ls.yaml web "ls: { path: --version, flags: -I }" &&
	test_exit 1 reops_run --json ls.yaml >out &&
	! grep -i "coreutils" out &&
	test_grep "cannot access.*--version" out
'

ssh_done
