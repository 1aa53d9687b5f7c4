#!/bin/bash
# t0800: the libFuzzer harnesses of fuzz/ build and run clean for a few
# seconds each (FUZZ_CHECK_SECONDS, default 5) on their seed corpora,
# which keep every input that once crashed (crash-*): a regression of a
# fixed finding fails here. Skipped where clang cannot build a fuzzer.
. "$SRCDIR/tests/test-lib.sh"

fuzz="$SRCDIR/build-aux/fuzz"
seconds=${FUZZ_CHECK_SECONDS:-5}
# Objects and harnesses are kept between runs; inputs and logs are ours.
FUZZ_BUILD="$BUILDDIR/fuzz-build"
FUZZ_RUN="$TRASH/run"
export FUZZ_BUILD FUZZ_RUN

names=
for f in "$SRCDIR"/fuzz/fuzz-*.c; do
	n=${f##*/fuzz-}
	names="$names ${n%.c}"
done

test_expect_success 'every harness names its sources and has a seed corpus' '
	test -n "$names" &&
	for n in $names; do
		grep -q "^/\* fuzz-sources: .* \*/$" "$SRCDIR/fuzz/fuzz-$n.c" ||
		{ echo "fuzz-$n.c has no fuzz-sources line" >&2; return 1; }
		test -n "$(ls "$SRCDIR/tests/corpus/fuzz-$n" 2>/dev/null)" ||
		{ echo "tests/corpus/fuzz-$n is empty" >&2; return 1; }
	done
'

if ! "$fuzz" -p; then
	for n in $names; do
		test_skip "fuzz-$n runs ${seconds}s clean" "clang with libFuzzer not found"
	done
	test_done
fi

test_expect_success 'the harnesses build' '
	"$fuzz" -b $names
'

# New inputs go to FUZZ_RUN, never into the source tree.
for n in $names; do
	test_expect_success "fuzz-$n runs ${seconds}s clean" '
		seeds="$SRCDIR/tests/corpus/fuzz-'"$n"'" &&
		ls "$seeds" >before &&
		"$fuzz" -t "$seconds" '"$n"' &&
		test_grep "^stat::number_of_executed_units: [1-9]" \
		    "$FUZZ_RUN/fuzz-'"$n"'.log" &&
		ls "$seeds" >after &&
		test_cmp before after
	'
done

test_done
