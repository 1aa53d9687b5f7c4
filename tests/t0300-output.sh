#!/bin/bash
# t0300: output that cannot be written is never lost quietly (exit 4, one
# line on stderr), a reader that goes away ends the run quietly (141),
# the json stage's file is written safely (no predictable temporary, no
# rename over what is not a regular file), and the smaller output defects
# of issue 7 (terminal escapes in failure lines, exec errors without a
# reason, commands' output lost when started with stdout closed).
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d
cat >hosts.d/10-web.yaml <<'YAML'
groups:
  web:
    transport: local
    hosts: [web-1, web-2, web-3, web-4]
YAML

# Four rows of about 2 kB of stdout each.
cat >big.yaml <<'YAML'
hosts: web
stages:
  - exec: "seq 1000 1400"
YAML
# More than a pipe holds, so that the writer meets a reader that has gone.
cat >bigp.yaml <<'YAML'
hosts: web
stages:
  - exec: "seq 100000 120000"
  - pretty
YAML
cat >bigj.yaml <<'YAML'
hosts: web
stages:
  - exec: "seq 100000 120000"
YAML
cat >fail.yaml <<'YAML'
hosts: web
stages:
  - exec: "test ${target} != web-2"
  - pretty
YAML
cat >jf.yaml <<'YAML'
hosts: [web-1, web-2]
params:
  out: rows.json
stages:
  - exec: echo hi
  - json: "${out}"
YAML

test_expect_success '--json to a full disk: one line on stderr, exit 4' '
	test_exit 4 reops_run --json big.yaml >/dev/full 2>err &&
	echo "reops-run: standard output: No space left on device" >want &&
	test_cmp want err
'

test_expect_success 'pretty to a full disk: exit 4, which outranks 1' '
	test_exit 4 reops_run fail.yaml >/dev/full 2>err &&
	echo "reops-run: standard output: No space left on device" >want &&
	test_cmp want err
'

test_expect_success '--check to a full disk: exit 4' '
	test_exit 4 reops_run --check big.yaml >/dev/full 2>err &&
	test_grep "^reops-run: standard output: No space left on device$" err
'

test_expect_success 'a file size limit cuts --json short: exit 4, not 0' '
	(
		trap "" XFSZ &&
		ulimit -f 4 &&
		reops_run --json big.yaml >out 2>err
	) ; code=$? &&
	test "$code" = 4 &&
	test_grep "^reops-run: standard output: File too large$" err &&
	test "$(wc -l <err)" = 1 &&
	test "$(wc -c <out)" -le 4096
'

test_expect_success 'a reader that goes away: exit 141, nothing on stderr, no more work' '
	marker="300.0$$1" &&
	cat >later.yaml <<-EOF &&
	hosts: web-1
	stages:
	  - exec: "touch started.later; sleep $marker"
	EOF
	{ reops_run -t 10 bigp.yaml later.yaml 2>err; echo $? >code; } | head -1 >first &&
	test "$(cat code)" = 141 &&
	test_grep "^web-1: ok" first &&
	test_cmp /dev/null err &&
	! test -e started.later &&
	! pgrep -f -- "$marker"
'

test_expect_success '--json to a reader that goes away: exit 141, quiet' '
	{ reops_run --json bigj.yaml 2>err; echo $? >code; } | head -c 10 >first &&
	test "$(cat code)" = 141 &&
	test "$(cat first)" = "{\"target\":" &&
	test_cmp /dev/null err
'

test_expect_success 'json stage: a symlink planted at the old temporary name is not followed' '
	echo precious >victim &&
	rm -f rows.json rows.json.tmp.* &&
	cat >plant.sh <<-\EOF &&
	ln -s victim rows.json.tmp.$$ && exec "$REOPS_RUN" "$@"
	EOF
	sh plant.sh jf.yaml &&
	echo precious >want &&
	test_cmp want victim &&
	test -f rows.json && ! test -L rows.json &&
	test "$(json_get target rows.json | tr "\n" " ")" = "web-1 web-2 "
'

test_expect_success 'json stage: a symlink at FILE is replaced, its target untouched' '
	echo precious >victim &&
	rm -f rows.json && ln -s victim rows.json &&
	reops_run jf.yaml &&
	echo precious >want &&
	test_cmp want victim &&
	! test -L rows.json &&
	test "$(json_get stdout rows.json | tr "\n" " ")" = "hi hi "
'

test_expect_success 'json stage: the file keeps its mode, a new one follows umask, no temporary left' '
	rm -f rows.json .rows.json.* && echo old >rows.json && chmod 600 rows.json &&
	reops_run jf.yaml &&
	test "$(stat -c %a rows.json)" = 600 &&
	rm rows.json &&
	(umask 027 && reops_run jf.yaml) &&
	test "$(stat -c %a rows.json)" = 640 &&
	ls -a >all &&
	! grep "^\.rows\.json\." all
'

test_expect_success 'json stage: a FIFO is written into, not replaced' '
	rm -f fifo && mkfifo fifo &&
	{ cat fifo >from-fifo & reader=$!; } &&
	reops_run --set out=fifo jf.yaml &&
	i=0 && while kill -0 $reader 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done &&
	{ ! kill -0 $reader 2>/dev/null || { kill $reader; echo "the reader is still waiting"; false; }; } &&
	test -p fifo &&
	test "$(json_get target from-fifo | tr "\n" " ")" = "web-1 web-2 "
'

# Never name a device of the machine (/dev/null, /dev/full) as the file:
# run against an old reops-run as root, that would replace it with a
# regular file for everyone. Links in the trash reach them instead.
test_expect_success 'json stage: a link to /dev/null is written through, not replaced' '
	ln -s /dev/null to-null &&
	reops_run --set out=to-null jf.yaml &&
	test -L to-null &&
	test -c /dev/null
'

test_expect_success 'json stage: /dev/fd/1 is written straight' '
	reops_run --set out=/dev/fd/1 jf.yaml >so &&
	test "$(json_get target so | tr "\n" " ")" = "web-1 web-2 " &&
	reops_run --set out=/dev/fd/1 jf.yaml | cat >so &&
	test "$(json_get target so | tr "\n" " ")" = "web-1 web-2 "
'

test_expect_success 'json stage: a full device is a located error, exit 4' '
	ln -s /dev/full to-full &&
	test_exit 4 reops_run --set out=to-full jf.yaml 2>err &&
	test_grep "^reops-run: jf.yaml:6:5: unable to write .?to-full.?: No space left on device$" err &&
	test -L to-full &&
	test -c /dev/full
'

# A device node of our own, so that the old behaviour (rename over it)
# cannot harm the machine's /dev/null.
if mknod devnull c 1 3 2>/dev/null; then
	test_expect_success 'json stage: a device node is written into, not replaced' '
		reops_run --set out=devnull jf.yaml &&
		test -c devnull
	'
else
	test_skip 'json stage: a device node is written into, not replaced' 'mknod not permitted'
fi

test_expect_success 'failure lines without an output stage escape terminal controls' '
	cat >esc.yaml <<-\EOF &&
	hosts: web-1
	stages:
	  - exec: printf "a\033]0;x\007b" >&2; exit 3
	EOF
	test_exit 1 reops_run esc.yaml 2>err &&
	test_grep "^reops-run: web-1: failed \(code 3\): a\\\\x1b\]0;x\\\\x07b$" err &&
	! grep -q "$(printf "\033")" err
'

test_expect_success 'an exec that fails (E2BIG) says why on the row' '
	python3 -c "
print(\"hosts: web-1\nstages:\n  - exec: \\\"echo \" + \"x\" * 200000 + \"\\\"\")
" >e2big.yaml &&
	test_exit 1 reops_run --json e2big.yaml >out &&
	test "$(json_get code out)" = 127 &&
	test "$(json_get stderr out)" = "reops-run: cannot run command: Argument list too long"
'

test_expect_success 'started with stdin and stdout closed, commands output still comes back' '
	cat >closed.yaml <<-\EOF &&
	hosts: web-1
	stages:
	  - exec: echo to-stdout; echo to-stderr >&2; true
	  - json: closed.json
	EOF
	reops_run closed.yaml <&- >&- &&
	test "$(json_get stdout closed.json)" = to-stdout &&
	test "$(json_get stderr closed.json)" = to-stderr &&
	rm closed.json &&
	reops_run closed.yaml >&- 2>&- &&
	test "$(json_get stdout closed.json)" = to-stdout &&
	test "$(json_get stderr closed.json)" = to-stderr
'

test_done
