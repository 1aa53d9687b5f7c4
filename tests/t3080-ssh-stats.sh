#!/bin/bash
# t3080: the stats library over ssh: the same pipelines give numbers on
# the loopback sshd hosts as on local rows, and parse works on what ssh
# brought back.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

unset REOPS_PATH
ssh_hosts 2
mkdir -p hosts.d
ssh_group web h1 h2 >hosts.d/web.yaml

test_expect_success 'stats/cpu and stats/load over ssh: numbers on each host' '
	cat >s.yaml <<-\YAML &&
	hosts: web
	stages:
	  - pipeline: stats/load.yaml
	  - pipeline: stats/cpu.yaml
	YAML
	reops_run --json s.yaml >out &&
	json_get status out >got && printf "ok\nok\n" >want &&
	test_cmp want got &&
	for c in load1 load5 load15 user system iowait idle; do
		json_get $c out >got &&
		test "$(wc -l <got)" = 2 &&
		! grep -v -E "^[0-9]+(\.[0-9]+)?$" got ||
		{ echo "column $c:"; cat got; return 1; }
	done &&
	python3 -c "
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    s = sum(float(r[k]) for k in (\"user\", \"system\", \"iowait\", \"idle\"))
    assert 99.5 <= s <= 100.5, (r[\"target\"], s)
" out
'

test_expect_success 'stats/disk over ssh with a hostile path param' '
	cat >d.yaml <<-YAML &&
	hosts: web
	stages:
	  - pipeline: { file: stats/disk.yaml, params: { path: "/; touch $TRASH/pwned" } }
	YAML
	test_exit 1 reops_run --json d.yaml >out &&
	json_get status out >got && printf "failed\nfailed\n" >want &&
	test_cmp want got &&
	test ! -e pwned
'

ssh_done
