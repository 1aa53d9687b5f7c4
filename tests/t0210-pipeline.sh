#!/bin/bash
# t0210: pipelines end to end: params and --set, ${target} and ${group},
# includes, pick, --limit, --check, --json and pretty, SIGINT.
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d sub
cat >hosts.d/10-web.yaml <<'YAML'
groups:
  web:
    transport: local
    hosts: [web-1, web-2, web-3]
YAML
cat >hosts.d/20-db.yaml <<'YAML'
groups:
  db:
    transport: local
    hosts: [db-1]
YAML

test_expect_success 'params: defaults, --set overrides, per-row variables' '
	cat >p.yaml <<-YAML &&
	hosts: [web-1, db]
	params:
	  word: hello
	stages:
	  - exec: echo "\${word} \${target} \${group}" '"'"'\$\${literal}'"'"' 
	YAML
	reops_run --json p.yaml >out &&
	json_get stdout out >got &&
	printf "hello web-1 web \${literal}\nhello db-1 db \${literal}\n" >want &&
	test_cmp want got &&
	reops_run --json --set word=bye p.yaml >out &&
	json_get stdout out | cut -d" " -f1 | sort -u >got &&
	echo bye >want &&
	test_cmp want got
'

test_expect_success 'selectors: group, list order, ~regex, all, dedupe' '
	printf "hosts: [db, \"~^web-[12]\$\", web-1]\nstages: [{exec: \"true\"}]\n" >s.yaml &&
	reops_run --json s.yaml >out &&
	json_get target out >got &&
	printf "db-1\nweb-1\nweb-2\n" >want &&
	test_cmp want got &&
	printf "hosts: all\nstages: [{exec: \"true\"}]\n" >all.yaml &&
	reops_run --json all.yaml >out &&
	test "$(wc -l <out)" = 4
'

test_expect_success '--limit narrows the selection' '
	reops_run --json --limit "web-2,~^db" all.yaml >out &&
	json_get target out >got &&
	printf "web-2\ndb-1\n" >want &&
	test_cmp want got
'

test_expect_success '--limit to a host outside the selection is exit 2' '
	printf "hosts: web\nstages: [{exec: \"true\"}]\n" >w.yaml &&
	test_exit 2 reops_run --limit db-1 w.yaml 2>err &&
	test_grep "^w.yaml:1:8: --limit .db-1. leaves none of the hosts" err
'

test_expect_success 'pick: status, column regex, invert' '
	cat >pick.yaml <<-YAML &&
	hosts: web
	stages:
	  - exec: echo \${target}; test \${target} != web-2
	  - pick: successful
	  - json: { file: ok.json }
	  - pick: { column: stdout, match: "-3\$", invert: true }
	YAML
	test_exit 1 reops_run --json pick.yaml >out 2>err &&
	json_get target ok.json >got &&
	printf "web-1\nweb-3\n" >want &&
	test_cmp want got &&
	json_get target out >got &&
	echo web-1 >want &&
	test_cmp want got
'

test_expect_success 'exit status counts a failure that pick dropped' '
	test_exit 1 reops_run pick.yaml >/dev/null 2>&1
'

test_expect_success 'an include runs on the current table, relative to its file' '
	cat >sub/inner.yaml <<-YAML &&
	params:
	  greeting: inner-default
	stages:
	  - exec: echo "\${greeting} \${outer} \${target}"
	YAML
	cat >outer.yaml <<-YAML &&
	hosts: web-1
	params:
	  outer: from-outer
	stages:
	  - pipeline: sub/inner.yaml
	  - pipeline: { file: sub/inner.yaml, params: { greeting: given } }
	  - json: { file: inc.json }
	YAML
	reops_run outer.yaml &&
	json_get stdout inc.json >got &&
	echo "given from-outer web-1" >want &&
	test_cmp want got &&
	reops_run --set greeting=forced outer.yaml &&
	json_get stdout inc.json >got &&
	echo "forced from-outer web-1" >want &&
	test_cmp want got
'

test_expect_success '--check prints the plan and runs nothing' '
	printf "hosts: web\nstages:\n  - exec: touch ran.\${target}\n  - pretty\n" >c.yaml &&
	reops_run --check c.yaml >out &&
	test_grep "^targets: 3 hosts" out &&
	test_grep "^  web-2  group=web transport=local" out &&
	test_grep "exec command=touch ran" out &&
	test_grep "c.yaml:3:5" out &&
	! ls ran.* 2>/dev/null
'

test_expect_success '--json: stdout is the final table alone, people get stderr' '
	printf "hosts: web-1\nstages: [{exec: echo x}, pretty, json]\n" >j.yaml &&
	reops_run --json j.yaml >out 2>err &&
	test "$(wc -l <out)" = 1 &&
	python3 -c "import json; r = json.loads(open(\"out\").read()); assert r[\"target\"] == \"web-1\" and r[\"kind\"] == \"host\" and r[\"duration_ms\"] >= 0, r" &&
	test_grep "^web-1: ok code=0" err &&
	test_grep "^\{\"target\":\"web-1\"" err
'

test_expect_success 'pretty: plain form in a pipe, no colour escapes' '
	printf "hosts: web\nstages: [{exec: echo out; echo err >&2}, pretty]\n" >pr.yaml &&
	reops_run pr.yaml >out &&
	test_grep "^web-1: ok code=0 group=web time=[0-9]+ms$" out &&
	test_grep "^  stdout:$" out &&
	test_grep "^    err$" out &&
	test_grep "^3 rows: 3 ok, 0 failed, 0 unreachable$" out &&
	! grep -q "$(printf "\033")" out
'

test_expect_success 'pretty: --color=always colours a pipe too' '
	reops_run --color=always pr.yaml >out &&
	grep -q "$(printf "\033")\[1m" out
'

if command -v script >/dev/null; then
test_expect_success 'pretty on a terminal: aligned table, marks, colours' '
	TERM=xterm script -qec "$REOPS_RUN pr.yaml" /dev/null >tty.out &&
	test_grep "TARGET +GROUP +STATUS +CODE +TIME" tty.out &&
	grep -q "$(printf "\033")\[32m✓ ok" tty.out
'

test_expect_success 'pretty on a terminal: NO_COLOR and --color=never' '
	NO_COLOR=1 TERM=xterm script -qec "$REOPS_RUN pr.yaml" /dev/null >tty.out &&
	test_grep "TARGET +GROUP" tty.out &&
	! grep -q "$(printf "\033")\[[0-9;]*m" tty.out &&
	TERM=xterm script -qec "$REOPS_RUN --color=never pr.yaml" /dev/null >tty.out &&
	! grep -q "$(printf "\033")\[[0-9;]*m" tty.out
'
else
test_skip 'pretty on a terminal' 'script(1) is missing'
fi

cat >esc.yaml <<\YAML
hosts: web-1
stages:
  - exec: printf 'a\033]0;x\007b'
  - pretty
YAML
test_expect_success 'pretty shows control bytes escaped, never raw' '
	reops_run esc.yaml >out &&
	test_grep "a\\\\x1b\]0;x\\\\x07b" out
'

test_expect_success 'SIGINT: stop starting, kill what runs, print rows, exit 130' '
	printf "hosts: web\nstages:\n  - exec: touch started.\${target}; exec sleep 300\n" >int.yaml &&
	{ "$REOPS_RUN" --forks 1 int.yaml >out 2>err & pid=$!; } &&
	i=0 && while [ ! -e started.web-1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done &&
	kill -INT $pid &&
	{ wait $pid; code=$?; } ; test $code = 130 &&
	test_grep "^web-1: failed code=130" out &&
	test_grep "^web-2: skipped" out &&
	test_grep "interrupted" out &&
	! test -e started.web-2 &&
	! pgrep -f "sleep 300" >/dev/null
'

test_done
