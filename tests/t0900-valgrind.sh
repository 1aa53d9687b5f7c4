#!/bin/bash
# t0900: no leaks and no memory errors in reops-run's own code under
# valgrind. A sanitizer build checks the same with LeakSanitizer in every
# test instead (valgrind and ASan cannot run together).
. "$SRCDIR/tests/test-lib.sh"

if [ "$SANITIZERS" = yes ]; then
	test_skip 'valgrind' 'ASan build: LeakSanitizer checks every test'
	test_done
fi
if ! command -v valgrind >/dev/null; then
	test_skip 'valgrind' 'valgrind is not installed'
	test_done
fi

vg () {
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
	    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	    --trace-children=no "$REOPS_RUN" "$@"
}

mkdir -p hosts.d
cat >hosts.d/h.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [a, b]
  gone:
    transport: ssh
    hosts: [{ name: closed, address: 127.0.0.1, port: 9 }]
YAML
cat >inc.yaml <<'YAML'
params: { x: "1" }
stages:
  - exec: echo ${x} ${target}
YAML
cat >p.yaml <<'YAML'
hosts: here
params: { path: / }
stages:
  - ls: { path: "${path}", flags: -a }
  - pipeline: { file: inc.yaml, params: { x: "2" } }
  - pick: { column: stdout, match: "^2 a" }
  - pretty
  - json: { file: out.json }
YAML

test_expect_success 'a pipeline run: no leaks, no errors' '
	vg p.yaml >out 2>err &&
	test_grep "^a: ok" out
'

test_expect_success '--json, --check and an unreachable row' '
	vg --json p.yaml >out 2>err &&
	vg --check p.yaml >out 2>err &&
	printf "hosts: [here, gone]\nstages: [{exec: \"true\"}]\n" >u.yaml &&
	test_exit 3 vg u.yaml 2>err
'

test_expect_success 'load errors free what they loaded' '
	printf "hosts: here\nstages:\n  - exec: echo \${nope}\n" >bad.yaml &&
	test_exit 2 vg bad.yaml 2>err &&
	test_grep "unknown parameter" err &&
	printf "hosts: here\nstages:\n  - pipeline: bad.yaml\n" >bad2.yaml &&
	test_exit 2 vg bad2.yaml 2>err &&
	printf "hosts: here\nstages:\n  - pick: { column: x, match: \"[\" }\n" >bad3.yaml &&
	test_exit 2 vg bad3.yaml 2>err &&
	test_grep "bad regex" err
'

test_done
