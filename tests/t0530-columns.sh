#!/bin/bash
# t0530: each stage adds no column that its entry does not declare
# (--list-stages=json "columns"): every stage run on local rows and on
# systems of test:///default, the table written after each step, and each
# step's new columns compared with what its stage declares. provision is
# left out: it needs a system reachable over ssh (t4020 runs it).
. "$SRCDIR/tests/test-lib.sh"

test_expect_success 'the stage list as JSON' '
	reops_run --list-stages=json >stages.json &&
	test $(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" \
	    stages.json) -ge 16
'

# check.py STAGES.JSON STEP...: each STEP is NAME=FILE (the table after
# that stage); an include (columns_from_args) may add what the stages of
# its file declare, given as NAME+STAGE=FILE. Prints each new column that
# is not declared, and each step's new columns.
cat >check.py <<\EOF
import json, sys
fixed = {"target", "pipeline", "kind", "group", "status", "code", "stdout",
         "stderr", "duration_ms"}
decl = {s["name"]: set(s["columns"]) for s in json.load(open(sys.argv[1]))}
before, bad = set(), 0
for step in sys.argv[2:]:
    name, f = step.split("=", 1)
    names = name.split("+")
    cols = set()
    for line in open(f):
        cols |= set(json.loads(line)) - fixed
    allowed = set().union(*(decl[n] for n in names))
    for c in sorted(cols - before - allowed):
        print("%s added column '%s' it does not declare" % (names[0], c))
        bad = 1
    print("%s: %s" % (names[0], " ".join(sorted(cols - before))))
    before = cols
sys.exit(bad)
EOF

cat >inc.yaml <<\EOF
hosts: all
stages:
  - facts
EOF
printf "hello\n" >src.txt
cat >hosts.yaml <<EOF
hosts: localhost
stages:
  - ls: /
  - json: 01.json
  - exec: echo hi
  - json: 02.json
  - copy: { src: "$PWD/src.txt", dest: "$PWD/dest.txt" }
  - json: 03.json
  - ping
  - json: 04.json
  - pipeline: inc.yaml
  - json: 05.json
  - facts
  - json: 06.json
  - pick: { column: target, match: "." }
  - json: 07.json
  - pretty
  - json: 08.json
  - pkg: { install: t0530-none, dry-run: true }
  - json: 09.json
EOF

test_expect_success 'host stages on local rows add only declared columns' '
	{ reops_run -i "$SRCDIR/hosts.d" hosts.yaml >out 2>err || :; } &&
	python3 check.py stages.json ls=01.json exec=02.json copy=03.json \
	    ping=04.json pipeline+facts=05.json facts=06.json pick=07.json \
	    pretty=08.json pkg=09.json >seen &&
	cat seen &&
	test_grep "^copy: bytes sha256$" seen &&
	test_grep "^pipeline: arch cpus kernel memory os uptime version$" seen
'

test_expect_success 'the check tells a column that is not declared' '
	sed -e "s/\"bytes\",//" stages.json >fewer.json &&
	! python3 check.py fewer.json ls=01.json exec=02.json copy=03.json >out &&
	test_grep "copy added column .bytes. it does not declare" out
'

cat >systems.yaml <<\EOF
systems: all
stages:
  - ls
  - json: 11.json
  - create: { wait: running }
  - json: 12.json
  - stop: 60
  - json: 13.json
  - start: { wait: running }
  - json: 14.json
  - reload: { wait: running }
  - json: 15.json
  - destroy
  - json: 16.json
EOF

test_expect_success 'system stages on test:///default add only declared columns' '
	reops_run --yes -i "$SRCDIR/hosts.d" systems.yaml >out 2>err &&
	python3 check.py stages.json ls=11.json create=12.json stop=13.json \
	    start=14.json reload=15.json destroy=16.json >seen &&
	cat seen &&
	test_grep "^ls: cpu exists hostkey hypervisor ip managed name ram state type$" seen
'

test_done
