#!/bin/bash
# t3090: when and branch on real ssh hosts: facts, then a branch by os
# with a different exec in each branch, merged in order, then pretty; the
# branches' ssh rows run at the same time, each branch on sessions of its
# own; when: failed on ssh rows.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 3
mkdir -p hosts.d
ssh_group web h1 h2 h3 >hosts.d/web.yaml
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [local-1]
YAML
os=$(. /etc/os-release; echo "$ID")

test_expect_success 'facts, a branch by os, merged in order, then pretty' '
	cat >br.yaml <<-EOF &&
	hosts: [web, here]
	stages:
	  - facts
	  - branch:
	      this-os-first:
	        when: { all: [ { column: os, match: "^$os\$" }, { column: target, match: "^h[12]\$" } ] }
	        stages:
	          - exec: "echo first-\${target}"
	          - parse: { regex: "(?<route>first)" }
	      this-os-other:
	        when: { column: os, match: "^$os\$" }
	        stages:
	          - exec: "echo other-\${target}"
	          - parse: { regex: "(?<other>other)" }
	      unknown-os:
	        when: any-status
	        stages: [ { exec: "echo unknown; exit 9" } ]
	  - json: { file: rows.json }
	  - pretty
	EOF
	reops_run br.yaml >out &&
	json_get target rows.json | tr "\n" " " >got &&
	test "$(cat got)" = "h1 h2 h3 local-1 " &&
	json_get stdout rows.json | tr "\n" " " >got &&
	test "$(cat got)" = "first-h1 first-h2 other-h3 other-local-1 " &&
	json_get route rows.json | tr "\n" " " >got &&
	test "$(cat got)" = "first first   " &&
	json_get other rows.json | tr "\n" " " >got &&
	test "$(cat got)" = "  other other " &&
	test "$(json_get os rows.json | sort -u)" = "$os" &&
	test_grep "^h1: ok .*route=first other=\$" out &&
	test_grep "^h3: ok .*route= other=other\$" out &&
	test_grep "^4 rows: 4 ok" out
'

test_expect_success 'two branches of ssh rows that each sleep 2 s run at once' '
	cat >brtime.yaml <<-\EOF &&
	hosts: web
	stages:
	  - ping
	  - branch:
	      a:
	        when: { column: target, match: "^h1$" }
	        stages: [ { exec: "sleep 2; echo a" } ]
	      b:
	        when: any-status
	        stages: [ { exec: "sleep 2; echo b" } ]
	  - exec: "echo after-${target}"
	EOF
	start=$(date +%s%N) &&
	reops_run --json brtime.yaml >out &&
	end=$(date +%s%N) &&
	ms=$(( (end - start) / 1000000 )) &&
	say "two 2 s ssh branches took $ms ms" &&
	json_get stdout out | tr "\n" " " >got &&
	test "$(cat got)" = "after-h1 after-h2 after-h3 " &&
	if [ "$ms" -ge 3500 ]; then
		echo "took $ms ms: the branches did not run at once" >&2
		return 1
	fi
'

test_expect_success 'when: failed on ssh rows runs on those rows only' '
	cat >fix.yaml <<-\EOF &&
	hosts: web
	stages:
	  - exec: "test ${target} != h2"
	  - exec: "echo fixed-${target}"
	    when: failed
	EOF
	test_exit 1 reops_run --json fix.yaml >out &&
	json_get stdout out | tr "\n" " " >got &&
	test "$(cat got)" = " fixed-h2  " &&
	test "$(json_get status out | sort -u)" = ok
'

ssh_done
