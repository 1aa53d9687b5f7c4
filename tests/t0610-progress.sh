#!/bin/bash
# t0610: watching a run. On a terminal, stderr shows a live line for the
# running stage and erases it; never on a file nor with -q; -v prints a
# line per row as it finishes. The terminal is a pseudo-terminal that a
# python driver holds; it lets each row finish only once the line has
# shown the rows before it, so nothing here depends on timing.
. "$SRCDIR/tests/test-lib.sh"

PY=/usr/bin/python3
if ! "$PY" -c 'import pty' 2>/dev/null; then
	test_skip 'progress on a terminal' 'no python3 with pty'
	test_done
fi

mkdir -p hosts.d
cat >hosts.d/local.yaml <<'YAML'
groups:
  rows:
    transport: local
    hosts: [r1, r2, r3, r4, r5]
YAML

# Each row waits for its go-ROW file (bounded: 60 s), r2 then fails.
cat >wait.yaml <<'YAML'
pipeline: wait
hosts: rows
stages:
  - exec: 'i=0; while [ ! -e go-${target} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; [ ${target} != r2 ]'
YAML

test_line_count () {
	if [ "$(wc -l <"$2")" -ne "$1" ]; then
		echo "expected $1 lines in $2, saw:" >&2
		sed -e 's/^/  | /' "$2" >&2
		return 1
	fi
}

# ptyrun.py SCREEN MODE COMMAND: runs COMMAND (sh -c) on a new pseudo-terminal
# and keeps everything it wrote in SCREEN; prints how long it ran and its
# exit status. MODE gated touches go-rN once the terminal shows "exec
# N-1/5" (go-r1 at once); MODE open touches them all at once.
cat >ptyrun.py <<'PY'
import os, pty, select, sys, time
out, mode, cmd = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", cmd])
data = b""
start = time.monotonic()
gate = 1 if mode == "gated" else 5
for n in range(1, gate + 1):
    open("go-r%d" % n, "w").close()
while time.monotonic() - start < 120:
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    if gate < 5 and (b"exec %d/5," % gate) in data:
        gate += 1
        open("go-r%d" % gate, "w").close()
for n in range(1, 6):
    open("go-r%d" % n, "w").close()
_, status = os.waitpid(pid, 0)
open(out, "wb").write(data)
print("%.3f %d" % (time.monotonic() - start, os.waitstatus_to_exitcode(status)))
PY

# screenof.py RAW: the text a terminal shows at the end, after \r, \n and
# "erase to end of line" (ESC [ K) did their work.
cat >screenof.py <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
lines, cur, col = [], [], 0
i = 0
while i < len(data):
    c = data[i]
    if data.startswith("\x1b[K", i):
        del cur[col:]
        i += 3
        continue
    if c == "\r":
        col = 0
    elif c == "\n":
        lines.append("".join(cur))
        cur, col = [], 0
    else:
        if col < len(cur):
            cur[col] = c
        else:
            cur.append(c)
        col += 1
    i += 1
if cur:
    lines.append("".join(cur))
sys.stdout.write("".join(l + "\n" for l in lines))
PY

test_expect_success 'on a terminal: a live line with done/total, failed, running, time' '
	rm -f go-* &&
	"$PY" ptyrun.py raw gated "\"$REOPS_RUN\" wait.yaml >stdout.tty" >ran &&
	read secs code <ran &&
	test "$code" = 1 &&
	tr "\r" "\n" <raw >lines &&
	test_grep "^exec 1/5, 0 failed, 0 unreachable, 4 running, [0-9]+\.[0-9]s" lines &&
	test_grep "^exec 2/5, 1 failed, 0 unreachable, 3 running, [0-9]+\.[0-9]s" lines &&
	test_grep "^exec 3/5, 1 failed, 0 unreachable, 2 running" lines &&
	test_grep "^exec 4/5, 1 failed, 0 unreachable, 1 running" lines
'

test_expect_success 'it is redrawn at most ten times a second' '
	read secs code <ran &&
	draws=$(grep -c "running, [0-9]*\.[0-9]s" lines) &&
	limit=$(echo "$secs" | awk "{ printf \"%d\", \$1 * 10 + 2 }") &&
	echo "$draws draws in $secs s" &&
	test "$draws" -le "$limit"
'

test_expect_success 'and erased: the screen ends as a run off a terminal prints' '
	grep -q "running," raw &&
	"$PY" screenof.py raw >screen &&
	touch go-r1 go-r2 go-r3 go-r4 go-r5 &&
	test_exit 1 reops_run wait.yaml >stdout.plain 2>stderr.plain &&
	test_cmp stderr.plain screen &&
	sed -e "s/time=[0-9]*ms//" stdout.plain >want &&
	sed -e "s/time=[0-9]*ms//" stdout.tty >got &&
	test_cmp want got &&
	test_grep "^reops-run: r2: failed \(code 1\)" screen
'

test_expect_success 'never when stderr is a file' '
	rm -f go-* &&
	"$PY" ptyrun.py raw2 open "\"$REOPS_RUN\" wait.yaml 2>stderr.file" >ran2 &&
	test_cmp stderr.plain stderr.file &&
	! grep "running," raw2 &&
	! grep -q "$(printf "\r")" stderr.file
'

test_expect_success 'never with -q' '
	rm -f go-* &&
	"$PY" ptyrun.py raw3 open "\"$REOPS_RUN\" -q --json wait.yaml >out.json" >ran3 &&
	read secs code <ran3 &&
	test "$code" = 1 &&
	! grep "running," raw3 &&
	test_cmp /dev/null raw3
'

test_expect_success 'never when TERM is dumb' '
	rm -f go-* &&
	"$PY" ptyrun.py raw5 open "TERM=dumb \"$REOPS_RUN\" wait.yaml >/dev/null" >ran5 &&
	read secs code <ran5 &&
	test "$code" = 1 &&
	! grep "running," raw5 &&
	tr -d "\r" <raw5 >got &&
	test_cmp stderr.plain got
'

test_expect_success '-v: one line per row as it finishes, off a terminal too' '
	touch go-r1 go-r2 go-r3 go-r4 go-r5 &&
	test_exit 1 reops_run -v --json wait.yaml >out.json 2>err &&
	grep "^reops-run: exec: r[1-5]: " err | sort >got &&
	sed -e "s/time=[0-9]*ms$/time=Nms/" got >rows &&
	cat >want <<-\EOF &&
	reops-run: exec: r1: ok code=0 time=Nms
	reops-run: exec: r2: failed code=1 time=Nms
	reops-run: exec: r3: ok code=0 time=Nms
	reops-run: exec: r4: ok code=0 time=Nms
	reops-run: exec: r5: ok code=0 time=Nms
	EOF
	test_cmp want rows
'

test_expect_success '-v: ssh rows too, beside local ones (two threads)' '
	mkdir -p mixed &&
	cat >mixed/h.yaml <<-\YAML &&
	groups:
	  here:
	    transport: local
	    hosts: [l1, l2, l3]
	  gone:
	    transport: ssh
	    host-keys: "off"
	    hosts:
	      - { name: closed-1, address: 127.0.0.1, port: 9 }
	      - { name: closed-2, address: 127.0.0.1, port: 9 }
	YAML
	printf "hosts: [here, gone]\nstages:\n  - exec: \"true\"\n" >mixed.yaml &&
	test_exit 3 reops_run -v -i mixed mixed.yaml >out 2>err &&
	grep "^reops-run: exec: " err | sed -e "s/ time=[0-9]*ms$//" |
	    sort >got &&
	grep "^reops-run: exec: closed-1: unreachable code=" got &&
	grep "^reops-run: exec: closed-2: unreachable code=" got &&
	grep "^reops-run: exec: l[123]: ok code=0" got >oks &&
	test_line_count 3 oks &&
	test_line_count 5 got
'

# r1's row value cannot be a file name here: fetch fails it before
# anything runs, and it still counts among the stage's rows.
test_expect_success 'a row refused before it runs counts in the total' '
	cat >refused.yaml <<-\EOF &&
	hosts: [r1, r2]
	stages:
	  - exec: "if [ ${target} = r1 ]; then echo x/y; else echo y; fi"
	  - fetch: { src: /etc/hostname, dest: "got-${row.stdout}" }
	EOF
	"$PY" ptyrun.py raw6 open "\"$REOPS_RUN\" refused.yaml >/dev/null" >ran6 &&
	read secs code <ran6 &&
	test "$code" = 1 &&
	tr "\r" "\n" <raw6 >lines6 &&
	test_grep "^fetch [12]/[12], 1 failed" lines6 &&
	awk -F "[ /,]" "/^fetch [0-9]+\/[0-9]+,/ && \$2 > \$3 { bad = 1; print }
	    END { exit bad }" lines6
'

# A stage that reads each answer (fetch, facts, pkg) may fail a row whose
# command succeeded: -v tells the row once that is known, never ok first.
test_expect_success '-v: a row its answer fails is told failed (fetch)' '
	mkdir -p fv/out && echo data >fv/src.txt && echo x >fv/out/l2 &&
	printf "hosts: here\nstages:\n  - fetch: { src: %s, dest: %s }\n" \
	    "$TRASH/fv/src.txt" "$TRASH/fv/out" >fv.yaml &&
	test_exit 1 reops_run -v -i mixed --json fv.yaml >out 2>err &&
	grep "^reops-run: fetch: " err | sed -e "s/ time=[0-9]*ms$//" |
	    sort >got &&
	cat >want <<-\EOF &&
	reops-run: fetch: l1: ok code=0
	reops-run: fetch: l2: failed code=1
	reops-run: fetch: l3: ok code=0
	EOF
	test_cmp want got &&
	json_get status out >got && printf "ok\nfailed\nok\n" >want &&
	test_cmp want got &&
	test_cmp fv/src.txt fv/out/l1/src.txt
'

test_expect_success '-v on a terminal: the row lines stay, the live line goes' '
	rm -f go-* &&
	"$PY" ptyrun.py raw4 gated "\"$REOPS_RUN\" -v wait.yaml >/dev/null" >ran4 &&
	"$PY" screenof.py raw4 >screen4 &&
	test "$(grep -c "^reops-run: exec: r[1-5]: " screen4)" = 5 &&
	! grep "running," screen4 &&
	tr "\r" "\n" <raw4 >lines4 &&
	test_grep "^exec 4/5, 1 failed" lines4
'

test_done
