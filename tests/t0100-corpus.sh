#!/bin/bash
# t0100: the corpus of malformed pipelines and inventories. Each case is
# tests/corpus/pipeline/NNN-what.yaml (checked against the valid inventory
# corpus/inv, with extra arguments from NNN-what.args, one a line) or a hosts.d
# directory tests/corpus/hosts/NNN-what/ (checked with corpus/marker.yaml),
# and NNN-what.err holds the one line reops-run must print. Every case must
# exit 2, with --check and without it, and nothing may run: the pipelines
# that would touch a marker file must leave none behind.
. "$SRCDIR/tests/test-lib.sh"

cp -R "$SRCDIR/tests/corpus" corpus || exit 1
cd corpus || exit 1

# run_case ERR ARGS...: both ways, exit 2, stderr exactly the .err line.
run_case () {
	expect=$1
	shift
	test_exit 2 reops_run --check "$@" >out 2>err &&
	test_cmp "$expect" err &&
	test_must_be_empty out &&
	test_exit 2 reops_run "$@" >out 2>err </dev/null &&
	test_cmp "$expect" err &&
	test_must_be_empty out &&
	test_no_marker
}

test_must_be_empty () {
	if [ -s "$1" ]; then
		echo "$1 is not empty:" >&2
		sed -e 's/^/  | /' "$1" | head -20 >&2
		return 1
	fi
}

test_no_marker () {
	for m in marker marker2; do
		if [ -e "$m" ]; then
			echo "'$m' exists: something ran" >&2
			return 1
		fi
	done
}

test_expect_success 'the corpus has at least 50 cases, each with its line' '
	n=0 &&
	for f in pipeline/*.yaml hosts/*/; do
		c=${f%/} &&
		c=${c%.yaml} &&
		test -f "$c.err" || { echo "$c has no .err" >&2; return 1; }
		n=$((n + 1))
	done &&
	for e in pipeline/*.err hosts/*.err; do
		c=${e%.err} &&
		{ test -f "$c.yaml" || test -d "$c"; } ||
		{ echo "$e has no case" >&2; return 1; }
	done &&
	say "$n cases" &&
	test "$n" -ge 50
'

# git style: lower case first, or a quoted subject.
line_re="^([^: ]+:[0-9]+:[0-9]+|reops-run): [a-z'-]"
test_expect_success 'every expected error is one line naming its place' '
	for e in pipeline/*.err hosts/*.err; do
		test "$(wc -l <"$e")" -eq 1 ||
		{ echo "$e is not one line" >&2; return 1; }
		grep -Eq "$line_re" "$e" ||
		{ echo "$e: not FILE:LINE:COLUMN: message" >&2; return 1; }
	done
'

test_expect_success 'the valid corpus inventory and marker pipeline load' '
	reops_run --check -i inv marker.yaml >out &&
	test_grep "exec command=touch marker" out &&
	test_no_marker
'

# NNN-what.args: extra arguments, one a line.
pipeline_case () {
	args=()
	if [ -f "$1.args" ]; then
		mapfile -t args <"$1.args"
	fi
	run_case "$1.err" -i inv "${args[@]}" "$1.yaml"
}

for f in pipeline/*.yaml; do
	c=${f%.yaml}
	test_expect_success "${c#pipeline/}" "pipeline_case '$c'"
done

for d in hosts/*/; do
	c=${d%/}
	test_expect_success "${c#hosts/}" "run_case '$c.err' -i '$c' marker.yaml"
done

# Without this, "no marker" above could not fail.
test_expect_success 'the marker check can fail: a valid run leaves one' '
	reops_run -i inv marker.yaml >out 2>err &&
	test -e marker &&
	rm -f marker
'

test_done
