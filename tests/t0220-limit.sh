#!/bin/bash
# t0220: narrowing a run: --retry FILE (the targets a table says were not
# ok), --limit @FILE and !ITEM, and --shard I/N.
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d
cat >hosts.d/local.yaml <<'YAML'
groups:
  web:
    transport: local
    hosts: [web-1, web-2, web-3, web-4]
  db:
    transport: local
    hosts: [db-1, db-2]
YAML

# web-2 fails and db-1 is slow past its deadline until their marks exist.
cat >flaky.yaml <<'YAML'
pipeline: flaky
hosts: [web, db]
stages:
  - exec:
      command: 'echo ran ${target} >>ran.log; case ${target} in web-2) [ -e ok-web-2 ] || exit 3;; db-1) [ -e ok-db-1 ] || sleep 30;; esac; echo hi'
      timeout: 2
YAML

cat >other.yaml <<'YAML'
pipeline: other
hosts: web
stages:
  - exec: 'true'
YAML

# test_line_count N FILE: FILE has N lines, or show it.
test_line_count () {
	if [ "$(wc -l <"$2")" -ne "$1" ]; then
		echo "expected $1 lines in $2, saw:" >&2
		sed -e 's/^/  | /' "$2" >&2
		return 1
	fi
}

# targets FILE: the "targets:" list that --check printed.
targets () {
	sed -n 's/^  \([^ ]*\)  group=.*/\1/p' "$1"
}

test_expect_success 'JSON rows say which pipeline wrote them' '
	test_exit 1 reops_run --json flaky.yaml >t1.json 2>err &&
	json_get pipeline t1.json | sort -u >got &&
	echo flaky >want &&
	test_cmp want got &&
	json_get status t1.json >got &&
	printf "ok\nfailed\nok\nok\nfailed\nok\n" >want &&
	test_cmp want got
'

test_expect_success 'a pipeline with no name is named by its file' '
	printf "hosts: web-1\nstages:\n  - exec: \"true\"\n" >unnamed.yml &&
	reops_run --json unnamed.yml >out &&
	json_get pipeline out >got &&
	echo unnamed >want &&
	test_cmp want got
'

test_expect_success '--retry runs only the targets that were not ok' '
	rm -f ran.log &&
	test_exit 1 reops_run --json --retry t1.json flaky.yaml >t2.json 2>err &&
	json_get target t2.json >got &&
	printf "web-2\ndb-1\n" >want &&
	test_cmp want got &&
	sort ran.log >got &&
	printf "ran db-1\nran web-2\n" >want &&
	test_cmp want got
'

test_expect_success '--retry of a retry: once they pass, nothing is left' '
	touch ok-web-2 ok-db-1 &&
	reops_run --json --retry t2.json flaky.yaml >t3.json 2>err &&
	json_get status t3.json >got &&
	printf "ok\nok\n" >want &&
	test_cmp want got &&
	rm -f ran.log &&
	reops_run --retry t3.json flaky.yaml >out 2>err &&
	test ! -e ran.log &&
	test_line_count 1 err &&
	test_grep "^reops-run: nothing to retry: no target of .flaky. failed" err
'

test_expect_success '--retry reads the last status of each target' '
	cat t1.json t3.json >both.json &&
	rm -f ran.log &&
	reops_run --retry both.json flaky.yaml 2>err &&
	test ! -e ran.log &&
	test_grep "nothing to retry" err &&
	cat t3.json t1.json >both.json &&
	reops_run --json --retry both.json flaky.yaml >out &&
	json_get target out >got &&
	printf "web-2\ndb-1\n" >want &&
	test_cmp want got
'

test_expect_success '--retry takes skipped rows and a table the json stage wrote' '
	cat >failed.yaml <<-\YAML &&
	pipeline: flaky
	hosts: [web, db]
	stages:
	  - exec: "[ ${target} != web-3 ]"
	  - pick: failed
	  - json: { file: failed.json }
	YAML
	test_exit 1 reops_run failed.yaml >out 2>err &&
	json_get target failed.json >got &&
	echo web-3 >want &&
	test_cmp want got &&
	sed -e "s/\"failed\"/\"skipped\"/" failed.json >skipped.json &&
	rm -f ran.log &&
	reops_run --retry skipped.json flaky.yaml >out 2>err &&
	echo "ran web-3" >want &&
	test_cmp want ran.log
'

test_expect_success '--retry with an empty table: nothing to retry, exit 0' '
	: >empty.json &&
	reops_run --retry empty.json flaky.yaml >out 2>err &&
	test_line_count 1 err &&
	test_grep "nothing to retry" err
'

test_expect_success '--retry with a table of another pipeline: exit 2' '
	test_exit 2 reops_run --retry t1.json other.yaml >out 2>err &&
	test_line_count 1 err &&
	test_grep "^t1.json:1:[0-9]+: a table of pipeline .flaky., not of .other.$" err &&
	test ! -s out
'

test_expect_success '--retry with what is not a table: one located line, exit 2' '
	rm -f ran.log &&
	test_exit 2 reops_run --retry flaky.yaml flaky.yaml 2>err &&
	test_line_count 1 err &&
	test_grep "^flaky.yaml:1:1: not a table" err &&
	head -2 t1.json >bad.json &&
	echo "{\"target\":\"db-1\",\"pipeline\":\"flaky\",\"status\":\"fine\"}" >>bad.json &&
	test_exit 2 reops_run --retry bad.json flaky.yaml 2>err &&
	test_grep "^bad.json:3:[0-9]+: .fine. is not a row status" err &&
	echo "{\"target\":\"db-1\",\"status\":\"ok\"}" >old.json &&
	test_exit 2 reops_run --retry old.json flaky.yaml 2>err &&
	test_grep "^old.json:1:1: a row with no .pipeline." err &&
	echo "{\"target\":\"db-1\",\"pipeline\":\"flaky\",\"status\":\"ok\",\"x\":[1]}" >nested.json &&
	test_exit 2 reops_run --retry nested.json flaky.yaml 2>err &&
	test_grep "^nested.json:1:[0-9]+: .column. holds a list" err &&
	printf "{\"target\":\"db-1\",\"pipeline\":\"flaky\",\"status\":\"ok\"" >cut.json &&
	test_exit 2 reops_run --retry cut.json flaky.yaml 2>err &&
	test_grep "^cut.json:1:[0-9]+: expected" err &&
	test_exit 2 reops_run --retry /nonexistent.json flaky.yaml 2>err &&
	test_grep "^reops-run: --retry: unable to read ./nonexistent.json." err &&
	test_exit 2 reops_run --retry . flaky.yaml 2>err &&
	test_grep "is not a file" err &&
	test ! -e ran.log
'

# Hostile tables: ROW|WHAT reops-run must say, at h.json:LINE:COL.
cat >hostile <<'EOF'
{"target":"","pipeline":"flaky","status":"failed"}|1:11: a row with an empty .target.
{"target":"a","pipeline":"flaky","status":""}|1:43: .. is not a row status
{"target":"web-1" "pipeline":"flaky"}|1:19: expected .,. or .\}.
{"target":"web-1","pipeline":"flaky","status":"failed"} {}|1:57: more after the row
{"target":"web\u0000","pipeline":"flaky","status":"failed"}|1:11: .target. holds a NUL
{"target":"\ud800x","pipeline":"flaky","status":"failed"}|1:12: a lone UTF-16 surrogate
{"target":"\u12","pipeline":"flaky","status":"failed"}|1:16: a .u escape needs four hex digits
{"target":"a\q","pipeline":"flaky","status":"failed"}|1:13: ..q. is not a JSON escape
{"target":"a","pipeline":"flaky","status":"failed","n":-}|1:56: not a JSON value
{"target":"a","pipeline":"flaky","status":"failed","n":1.}|1:56: a number with no digits
{"target":"a|1:13: a control byte 0x0a inside a string
["web-1"]|1:1: not a table
{"target":"a","pipeline":"flaky","status":"failed","x":{"y":{"z":[]}}}|1:56: .column. holds an object
EOF

test_expect_success '--retry: hostile tables are one located line each, exit 2' '
	rm -f ran.log &&
	n=0 &&
	while IFS="|" read -r row said; do
		n=$((n + 1))
		printf "%s\n" "$row" >h.json &&
		test_exit 2 reops_run --retry h.json flaky.yaml >out 2>err &&
		test_line_count 1 err &&
		test_grep "^h.json:$said" err || { echo "case $n"; return 1; }
	done <hostile &&
	test "$n" = 13 &&
	printf "{\"target\":\"a\tb\",\"pipeline\":\"flaky\",\"status\":\"ok\"}\n" >h.json &&
	test_exit 2 reops_run --retry h.json flaky.yaml 2>err &&
	test_grep "^h.json:1:13: a control byte 0x09 inside a string" err &&
	printf "{\"target\":\"a" >h.json &&
	test_exit 2 reops_run --retry h.json flaky.yaml 2>err &&
	test_grep "^h.json:1:11: a string that is never closed" err &&
	test ! -e ran.log
'

test_expect_success '--retry: escapes in names are read as JSON says' '
	printf "{\"target\":\"web\\\\u002d4\",\"pipeline\":\"fl\\\\u0061ky\",\"status\":\"failed\",\"code\":1,\"n\":-1.5e3,\"b\":true,\"z\":null}\n" >esc.json &&
	reops_run --json --retry esc.json flaky.yaml >out &&
	json_get target out >got &&
	echo web-4 >want &&
	test_cmp want got
'

test_expect_success '--limit !ITEM removes what ITEM selects' '
	reops_run --check --limit "web,!web-3" flaky.yaml >out &&
	targets out >got &&
	printf "web-1\nweb-2\nweb-4\n" >want &&
	test_cmp want got &&
	reops_run --check --limit "!db,!~-[12]\$" flaky.yaml >out &&
	targets out >got &&
	printf "web-3\nweb-4\n" >want &&
	test_cmp want got
'

test_expect_success '--limit @FILE: names a line, comments and blank lines' '
	cat >some.txt <<-\EOF &&
	# the ones to look at
	web-4

	  db-2
	web
	!web-1   # after a blank, "#" starts a comment
	EOF
	reops_run --check --limit @some.txt flaky.yaml >out &&
	targets out >got &&
	printf "web-2\nweb-3\nweb-4\ndb-2\n" >want &&
	test_cmp want got &&
	printf "db-1\n" >skip.txt &&
	reops_run --check --limit "!@skip.txt,!web" flaky.yaml >out &&
	targets out >got &&
	echo db-2 >want &&
	test_cmp want got
'

test_expect_success '--limit errors: unknown names, files, empty results' '
	rm -f ran.log &&
	printf "web-1\n\nweb-9\n" >typo.txt &&
	test_exit 2 reops_run --limit @typo.txt flaky.yaml 2>err &&
	test_line_count 1 err &&
	test_grep "^typo.txt:3:1: no host or group named .web-9. in the inventory; did you mean .web-1.\?" err &&
	test_exit 2 reops_run --limit "!wbe" flaky.yaml 2>err &&
	test_grep "^reops-run: --limit: no host or group named .wbe. in the inventory" err &&
	test_exit 2 reops_run --limit @missing.txt flaky.yaml 2>err &&
	test_grep "^reops-run: --limit: unable to read .missing.txt." err &&
	printf "# nobody\n\n" >none.txt &&
	test_exit 2 reops_run --limit @none.txt flaky.yaml 2>err &&
	test_grep "lists no names" err &&
	test_exit 2 reops_run --limit "web,!web" flaky.yaml 2>err &&
	test_grep "leaves none" err &&
	test_exit 2 reops_run --limit "!" flaky.yaml 2>err &&
	test_grep "must be followed by" err &&
	printf "~(\n" >re.txt &&
	test_exit 2 reops_run --limit @re.txt flaky.yaml 2>err &&
	test_grep "^re.txt:1:1: bad regex" err &&
	test ! -e ran.log
'

# 100 local names, for the shards.
{
	echo "groups:"
	echo "  many:"
	echo "    transport: local"
	echo "    hosts:"
	for i in $(seq 1 100); do echo "      - n-$i"; done
} >hosts.d/many.yaml
printf "pipeline: many\nhosts: many\nstages:\n  - exec: \"true\"\n" >many.yaml
targets_of () {
	reops_run --check "$@" many.yaml >plan.out && targets plan.out
}

test_expect_success '--shard I/N: disjoint shares that are every target (N=1..5)' '
	targets_of >all &&
	test_line_count 100 all &&
	for n in 1 2 3 4 5; do
		: >union &&
		for i in $(seq 1 $n); do
			targets_of --shard $i/$n >part.$i || return 1
			cat part.$i >>union
		done &&
		sort union >got &&
		sort all >want &&
		test_cmp want got || return 1
		if [ $n -ge 3 ]; then
			# no share is empty or holds nearly all of 100
			for i in $(seq 1 $n); do
				c=$(wc -l <part.$i)
				test "$c" -gt 5 && test "$c" -lt 60 || {
					echo "share $i/$n holds $c"; return 1; }
			done
		fi
	done
'

test_expect_success '--shard uses FNV-1a 64 of the name modulo N (stable)' '
	/usr/bin/python3 -c "
def fnv(s):
    h = 0xcbf29ce484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001b3) % (1 << 64)
    return h
for i in range(1, 101):
    if fnv(\"n-%d\" % i) % 3 == 1:
        print(\"n-%d\" % i)
" >want &&
	targets_of --shard 2/3 >got &&
	test_cmp want got
'

test_expect_success '--shard with none of the targets: one line, exit 0, nothing runs' '
	rm -f ran.log &&
	reops_run --limit web-1 --shard 1/2 flaky.yaml >out1 2>err1 &&
	reops_run --limit web-1 --shard 2/2 flaky.yaml >out2 2>err2 &&
	cat err1 err2 >err &&
	test_line_count 1 err &&
	test_grep "^reops-run: shard [12]/2 holds none of the targets of .flaky.$" err &&
	echo "ran web-1" >want &&
	test_cmp want ran.log
'

test_expect_success 'bad --shard is a usage error' '
	for s in 0/3 4/3 3 1/0 a/b 1/3x -1/3; do
		test_exit 2 reops_run --shard "$s" many.yaml 2>err || return 1
		test_grep "shard takes I/N" err || return 1
	done
'

test_expect_success '--retry, --limit and --shard narrow together' '
	reops_run --json --limit "web" --shard 1/1 --retry t1.json flaky.yaml >out 2>err &&
	json_get target out >got &&
	echo web-2 >want &&
	test_cmp want got
'

test_done
