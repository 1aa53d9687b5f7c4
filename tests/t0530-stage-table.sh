#!/bin/bash
# t0530: the stage table as the interface. Each stage adds no column that
# its entry does not declare
# (--list-stages=json "columns"): every stage run on local rows and on
# systems of test:///default, the table written after each step, and each
# step's new columns compared with what its stage declares. provision is
# left out: it needs a system reachable over ssh (t4020 runs it).
# A 'name:' beside a stage key names it in --check, -v and the progress
# line.
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
  - fetch: { src: "$PWD/src.txt", dest: "$PWD/fetched" }
  - json: 08f.json
  - pkg: { install: t0530-none, dry-run: true }
  - json: 09.json
EOF

test_expect_success 'host stages on local rows add only declared columns' '
	{ reops_run -i "$SRCDIR/hosts.d" hosts.yaml >out 2>err || :; } &&
	python3 check.py stages.json ls=01.json exec=02.json copy=03.json \
	    ping=04.json pipeline+facts=05.json facts=06.json pick=07.json \
	    pretty=08.json fetch=08f.json pkg=09.json >seen &&
	cat seen &&
	test_grep "^copy: bytes sha256$" seen &&
	test_grep "^fetch: path$" seen &&
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


cat >named.yaml <<\EOF
hosts: localhost
stages:
  - exec: "i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; echo done"
    name: wait for the go file
  - name: show it
    pretty:
EOF

test_expect_success 'name: --check shows it before the stage' '
	reops_run -i "$SRCDIR/hosts.d" --check named.yaml >plan &&
	test_grep "^  1 *wait for the go file: exec command=i=0; " plan &&
	test_grep "^  2 *show it: pretty  .named.yaml:5:5.$" plan
'

test_expect_success 'name: -v row lines and the debug line name it' '
	touch go &&
	reops_run -v -v -i "$SRCDIR/hosts.d" named.yaml >out 2>err &&
	rm go &&
	test_grep "^reops-run: wait for the go file: localhost: ok" err &&
	test_grep "stage .wait for the go file. on 1 rows" err
'

# On a pseudo-terminal: the go file is made once the live line shows the
# name, so the run ends early only if it did (else after 60 s, and the
# test fails: no go file).
cat >ptyname.py <<\EOF
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
data, start = b"", time.monotonic()
while time.monotonic() - start < 90:
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    if b"wait for the go file" in data and not os.path.exists("go"):
        open("go", "w").close()
os.waitpid(pid, 0)
sys.stdout.write(data.decode("utf-8", "replace"))
EOF

test_expect_success 'name: the progress line shows it' '
	/usr/bin/python3 ptyname.py "$REOPS_RUN" -i "$SRCDIR/hosts.d" named.yaml \
	    >screen &&
	test -e go &&
	test_grep "wait for the go file" screen &&
	test_grep "done" screen
'

test_done
