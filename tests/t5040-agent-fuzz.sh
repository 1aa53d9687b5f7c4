#!/bin/bash
# t5040: the frame decoder of reops-agent against its libFuzzer harness:
# every input of the seed corpus (crashes found before are kept there),
# then a few seconds of fuzzing. Skipped without clang's libFuzzer.
. "$SRCDIR/tests/test-lib.sh"

harness=$SRCDIR/fuzz/fuzz-frame.c
corpus=$SRCDIR/tests/corpus/fuzz-frame

if ! command -v clang >/dev/null; then
	test_skip 'fuzz-frame' 'clang is not installed'
	test_done
fi

test_expect_success 'the harness builds with its fuzz-sources' '
	sources=$(sed -n "s|^/\* fuzz-sources: \(.*\) \*/$|\1|p" "$harness") &&
	test -n "$sources" &&
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -D_GNU_SOURCE \
	    -I"$SRCDIR/runner" "$harness" \
	    $(for f in $sources; do echo "$SRCDIR/$f"; done) -o fuzz-frame
'

if ! test -x fuzz-frame; then
	test_skip 'the seed corpus' 'no libFuzzer'
	test_done
fi

test_expect_success 'every input of the seed corpus passes' '
	test $(ls "$corpus" | wc -l) -ge 10 &&
	./fuzz-frame -runs=0 "$corpus" >log 2>&1 ||
	{ tail -30 log; false; }
'

test_expect_success 'five seconds of fuzzing find nothing' '
	mkdir work && cp "$corpus"/* work/ &&
	./fuzz-frame -max_total_time=5 -max_len=4096 \
	    -artifact_prefix="$TRASH/" work >log 2>&1 ||
	{ tail -30 log; false; }
'

test_done
