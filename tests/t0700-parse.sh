#!/bin/bash
# t0700: the parse stage on local rows: named groups as columns from the
# first match or every match, optional, a failed row when nothing
# matches, rows that were not ok left alone, NUL bytes, a match that PCRE2
# gives up on, and load-time errors at the place in the regex.
. "$SRCDIR/tests/test-lib.sh"

SQ="'"
mkdir -p hosts.d
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [a, b]
YAML

# two_lines NAME PARSE-ARGS: a pipeline printing two key=value lines.
two_lines () {
	cat >"$1" <<-YAML
	hosts: here
	stages:
	  - exec: printf 'a=1 b=2\na=3 b=4\n'
	  - parse: $2
	YAML
}

test_expect_success 'each named group is a column, from the first match' '
	two_lines first.yaml "{ regex: \"a=(?<x>[0-9]+) b=(?<y>[0-9]+)\" }" &&
	reops_run --json first.yaml >out &&
	json_get x out >got && printf "1\n1\n" >want && test_cmp want got &&
	json_get y out >got && printf "2\n2\n" >want && test_cmp want got &&
	json_get status out >got && printf "ok\nok\n" >want &&
	test_cmp want got
'

test_expect_success 'columns come in the order of the groups' '
	two_lines order.yaml "{ regex: \"a=(?<zz>[0-9]+) b=(?<aa>[0-9]+)\" }" &&
	reops_run --json -l a order.yaml >out &&
	python3 -c "
import json, sys
print(list(json.loads(open(sys.argv[1]).readline()))[-2:])
" out >got &&
	echo "[${SQ}zz${SQ}, ${SQ}aa${SQ}]" >want &&
	test_cmp want got
'

test_expect_success 'all: every match, values joined by newlines' '
	two_lines all.yaml "{ regex: \"a=(?<x>[0-9]+) b=(?<y>[0-9]+)\", all: true }" &&
	reops_run --json -l a all.yaml >out &&
	python3 -c "
import json, sys
r = json.loads(open(sys.argv[1]).readline())
print(repr(r[\"x\"]), repr(r[\"y\"]))
" out >got &&
	echo "${SQ}1\\n3${SQ} ${SQ}2\\n4${SQ}" >want &&
	test_cmp want got
'

test_expect_success 'no match: the row fails with the reason, exit 1' '
	two_lines none.yaml "{ regex: \"z=(?<z>[0-9]+)\" }" &&
	test_exit 1 reops_run --json none.yaml >out &&
	json_get status out >got && printf "failed\nfailed\n" >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	printf "%s\n" "parse: no match for ${SQ}z=(?<z>[0-9]+)${SQ} in stdout" \
	    "parse: no match for ${SQ}z=(?<z>[0-9]+)${SQ} in stdout" |
	    cat >want &&
	test_cmp want got
'

test_expect_success 'optional: a row without a match stays ok, its columns empty' '
	two_lines opt.yaml "{ regex: \"z=(?<z>[0-9]+)\", optional: true }" &&
	reops_run --json opt.yaml >out &&
	json_get status out >got && printf "ok\nok\n" >want &&
	test_cmp want got &&
	json_get z out >got && printf "\n\n" >want && test_cmp want got &&
	json_get stderr out >got && test_cmp want got
'

test_expect_success 'rows that are not ok pass through untouched' '
	cat >mixed.yaml <<-\YAML &&
	hosts: here
	stages:
	  - exec: "echo v=7; test ${target} = a || { echo oops >&2; exit 3; }"
	  - parse: "v=(?<v>[0-9]+)"
	YAML
	test_exit 1 reops_run --json mixed.yaml >out &&
	json_get status out >got && printf "ok\nfailed\n" >want &&
	test_cmp want got &&
	json_get v out >got && printf "7\n\n" >want && test_cmp want got &&
	json_get stderr out >got && printf "\noops\n" >want &&
	test_cmp want got &&
	json_get code out >got && printf "0\n3\n" >want && test_cmp want got
'

test_expect_success 'column: parse another column, here an extra one' '
	cat >col.yaml <<-\YAML &&
	hosts: here
	stages:
	  - exec: echo "release=6.18.44"
	  - parse: "release=(?<rel>\\S+)"
	  - parse: { column: rel, regex: "^(?<major>[0-9]+)\\.(?<minor>[0-9]+)" }
	  - parse: { column: target, regex: "(?<who>.)" }
	YAML
	reops_run --json -l b col.yaml >out &&
	json_get major out >got && echo 6 >want && test_cmp want got &&
	json_get minor out >got && echo 18 >want && test_cmp want got &&
	json_get who out >got && echo b >want && test_cmp want got
'

test_expect_success 'a column holding NUL bytes is matched by length' '
	cat >nul.yaml <<-\YAML &&
	hosts: here
	stages:
	  - exec: printf "x\\000n=42\\000y"
	  - parse: "\\x00n=(?<n>[0-9]+)\\x00(?<tail>.)"
	YAML
	reops_run --json -l a nul.yaml >out &&
	json_get n out >got && echo 42 >want && test_cmp want got &&
	json_get tail out >got && echo y >want && test_cmp want got
'

test_expect_success 'a match PCRE2 gives up on fails the row with the reason' '
	cat >limit.yaml <<-\YAML &&
	hosts: here
	stages:
	  - exec: printf aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!
	  - parse: "^(?<x>(a|aa)+)$"
	YAML
	test_exit 1 reops_run --json -l a limit.yaml >out &&
	json_get stderr out >got &&
	test_grep "^parse: cannot match .* in stdout: match limit exceeded$" got
'

# bad_case NAME ERR-LINE: exit 2, that one line, and nothing ran.
bad_case () {
	test_exit 2 reops_run "$1" >out 2>err &&
	printf "%s\n" "$2" >want &&
	test_cmp want err &&
	test ! -e marker
}

test_expect_success 'a bad regex is an error at its place in the file, exit 2' '
	cat >bad.yaml <<-\YAML &&
	hosts: here
	stages:
	  - exec: touch marker
	  - parse: { regex: "(?<x>[0-9]+" }
	YAML
	bad_case bad.yaml "bad.yaml:4:33: bad regex ${SQ}(?<x>[0-9]+${SQ}: missing closing parenthesis at offset 11"
'

test_expect_success 'a regex without a named group is an error, exit 2' '
	cat >unnamed.yaml <<-\YAML &&
	hosts: here
	stages:
	  - exec: touch marker
	  - parse:
	      regex: "v=([0-9]+)"
	YAML
	bad_case unnamed.yaml "unnamed.yaml:5:14: regex ${SQ}v=([0-9]+)${SQ} of stage ${SQ}parse${SQ} has no named group; name what it captures, as in ${SQ}(?<load1>[0-9.]+)${SQ}"
'

test_expect_success 'pipelines/parse.yaml runs: major and minor of the kernel' '
	test_exit 0 reops_run --json -i "$SRCDIR/hosts.d" \
	    "$SRCDIR/pipelines/parse.yaml" >out 2>err &&
	test -s out &&
	json_get major out >got &&
	test_grep "^[1-9][0-9]*$" got &&
	! grep -v -E "^[1-9][0-9]*$" got &&
	json_get minor out >got &&
	! grep -v -E "^[0-9]+$" got
'

test_done
