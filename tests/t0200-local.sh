#!/bin/bash
# t0200: the local transport end to end: status and exit codes, capture of
# large and binary output, timeouts and signals, --forks, pass-through of
# rows that failed earlier.
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [a, b, c]
  one:
    transport: local
    hosts: [solo]
  gone:
    transport: ssh
    hosts:
      - { name: closed, address: 127.0.0.1, port: 9 }
YAML

pipeline () {
	name=$1
	shift
	{
		echo "hosts: $1"
		shift
		echo "stages:"
		for s in "$@"; do
			echo "  - $s"
		done
	} >"$name"
}

test_expect_success 'every row ok: exit 0, one JSON object per row' '
	pipeline ok.yaml here "exec: echo hi \${target}" &&
	reops_run --json ok.yaml >out 2>err &&
	test "$(wc -l <out)" = 3 &&
	json_get stdout out >got &&
	printf "hi a\nhi b\nhi c\n" >want &&
	test_cmp want got &&
	json_get status out | sort -u >got &&
	echo ok >want &&
	test_cmp want got
'

test_expect_success 'a failed row: exit 1, its code and stderr kept' '
	pipeline fail.yaml here "exec: if [ \${target} = b ]; then echo no >&2; exit 7; fi" &&
	test_exit 1 reops_run --json fail.yaml >out 2>err &&
	json_get code out >got &&
	printf "0\n7\n0\n" >want &&
	test_cmp want got &&
	json_get stderr out | sed -n 2p >got &&
	echo no >want &&
	test_cmp want got
'

test_expect_success 'an unreachable row and none failed: exit 3' '
	pipeline unreach.yaml "[one, gone]" "exec: true" &&
	test_exit 3 reops_run --json unreach.yaml >out 2>err &&
	json_get status out >got &&
	printf "ok\nunreachable\n" >want &&
	test_cmp want got
'

test_expect_success 'failed wins over unreachable: exit 1' '
	pipeline both.yaml "[one, gone]" "exec: false" &&
	test_exit 1 reops_run both.yaml 2>err
'

test_expect_success 'an output that cannot be written is an internal error: exit 4' '
	pipeline out4.yaml one "exec: true" "json: { file: no/such/dir/out.json }" &&
	test_exit 4 reops_run out4.yaml 2>err &&
	test_grep "unable to write" err
'

test_expect_success 'without an output stage, failures are still reported' '
	pipeline quiet.yaml here "exec: test \${target} != c || { echo broke >&2; exit 3; }" &&
	test_exit 1 reops_run quiet.yaml >out 2>err &&
	test_must_be_empty () { test ! -s "$1"; } &&
	test_must_be_empty out &&
	test_grep "^reops-run: c: failed \(code 3\): broke$" err
'

test_expect_success 'a row that failed is not run by later remote stages' '
	pipeline pass.yaml here "exec: test \${target} != a" "exec: echo second" &&
	test_exit 1 reops_run --json pass.yaml >out 2>err &&
	json_get stdout out >got &&
	printf "\nsecond\nsecond\n" >want &&
	test_cmp want got &&
	json_get code out | head -1 >got &&
	echo 1 >want &&
	test_cmp want got
'

test_expect_success '10 MB on stdout and stderr at once arrive whole' '
	pipeline big.yaml one "exec: head -c 10485760 /dev/zero | tr \"\\\\0\" x; head -c 10485760 /dev/zero | tr \"\\\\0\" y >&2" \
		"json: { file: big.json }" &&
	reops_run big.yaml &&
	python3 -c "
import json
r = json.loads(open(\"big.json\").readline())
assert r[\"stdout\"] == \"x\" * 10485760, len(r[\"stdout\"])
assert r[\"stderr\"] == \"y\" * 10485760, len(r[\"stderr\"])
"
'

test_expect_success 'binary output survives as base64 beside a readable form' '
	pipeline bin.yaml one "exec: printf \"a\\\\000b\\\\377c\"" &&
	reops_run --json bin.yaml >out &&
	python3 -c "
import json, base64
r = json.loads(open(\"out\").readline())
assert base64.b64decode(r[\"stdout_base64\"]) == b\"a\\x00b\\xffc\", r
assert r[\"stdout\"] == \"a\\x00b\\ufffdc\", r
"
'

test_expect_success 'a timeout kills the whole process group: code 124' '
	s=$(marked_sleep t0200-group) &&
	pipeline slow.yaml one "exec: { command: \"$s 300 & echo started; $s 300\", timeout: 1 }" &&
	test_exit 1 reops_run --json slow.yaml >out 2>err &&
	json_get code out >got &&
	echo 124 >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	test_grep "timed out after 1s" got &&
	test_none_left "$s 300"
'

test_expect_success '--timeout applies when the stage names none' '
	pipeline slow2.yaml one "exec: sleep 300" &&
	test_exit 1 reops_run --timeout 1 --json slow2.yaml >out 2>err &&
	json_get code out >got &&
	echo 124 >want &&
	test_cmp want got
'

test_expect_success 'a command killed by a signal: code 128+n and a reason' '
	pipeline sig.yaml one "exec: kill -9 \$\$" &&
	test_exit 1 reops_run --json sig.yaml >out 2>err &&
	json_get code out >got &&
	echo 137 >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	test_grep "killed by signal 9 \(SIGKILL\)" got
'

test_expect_success '--forks bounds how many run at once' '
	cat >hosts.d/many.yaml <<-YAML &&
	groups:
	  many:
	    transport: local
	    hosts: [m1, m2, m3, m4, m5, m6]
	YAML
	pipeline forks.yaml many "exec: touch run.\${target}; sleep 0.3; ls run.* | wc -l >>counts; rm run.\${target}" &&
	reops_run --forks 2 forks.yaml &&
	test "$(sort -n counts | tail -1)" -le 2 &&
	test "$(wc -l <counts)" = 6 &&
	rm -f counts &&
	reops_run --forks 6 forks.yaml &&
	test "$(wc -l <counts)" = 6
'

test_expect_success 'commands get no standard input' '
	pipeline stdin.yaml one "exec: cat" &&
	echo secret | reops_run --json stdin.yaml >out &&
	json_get stdout out >got &&
	echo >want &&
	test_cmp want got
'

test_done
