#!/bin/bash
# t3040: one SSH connection per host for the whole run. Every remote stage
# after the first opens a channel on the session the first one made, so a
# 5-stage pipeline logs in once per host (counted in the sshd logs), and
# so does a run of several pipelines.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 3
mkdir -p hosts.d
ssh_group web h1 h2 h3 >hosts.d/web.yaml

accepted () {
	for i in 1 2 3; do
		sshd_accepted "$SSHD_DIR" "$i"
	done | tr "\n" " "
}

test_expect_success 'a 5-stage pipeline logs in once per host' '
	before=$(accepted) &&
	pipeline five.yaml web ping facts "exec: echo one" "ls: /" "exec: echo \${target}" &&
	reops_run --json five.yaml >out &&
	test "$(json_get status out | sort -u)" = ok &&
	after=$(accepted) &&
	test "$before" = "0 0 0 " &&
	test "$after" = "1 1 1 "
'

test_expect_success 'three pipelines in one run: still once per host' '
	pipeline a.yaml web "exec: echo a" &&
	pipeline b.yaml web "exec: echo b" "exec: echo bb" &&
	reops_run --json a.yaml b.yaml five.yaml >out &&
	test "$(wc -l <out)" = 9 &&
	test "$(accepted)" = "2 2 2 "
'

test_expect_success 'a host that fails mid-pipeline is not dialled again' '
	pipeline fail.yaml web "exec: test \${target} != h2" "exec: true" "exec: true" &&
	test_exit 1 reops_run --json fail.yaml >out &&
	test "$(accepted)" = "3 3 3 "
'

test_expect_success 'an unreachable host is tried once per run' '
	sshd_stop_host "$SSHD_DIR" 3 &&
	pipeline u.yaml web "exec: true" &&
	test_exit 3 reops_run --json u.yaml u.yaml >out &&
	test "$(json_get status out | tr "\n" " ")" = "ok ok unreachable ok ok unreachable " &&
	test "$(accepted)" = "4 4 3 "
'

ssh_done
