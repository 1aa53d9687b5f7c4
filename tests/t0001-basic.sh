#!/bin/bash
# t0001: the command line itself: --help, --version, --list-stages, usage.
. "$SRCDIR/tests/test-lib.sh"

test_expect_success '--version names the program' '
	reops_run --version >out &&
	test_grep "^reops-run [0-9]+\.[0-9]+\.[0-9]+$" out
'

test_expect_success '--help prints the usage and exits 0' '
	reops_run --help >out &&
	test_grep "^usage: reops-run" out
'

test_expect_success 'no pipeline is a usage error (exit 2)' '
	test_exit 2 reops_run 2>err &&
	test_grep "no pipeline given" err
'

test_expect_success 'an unknown option is a usage error (exit 2)' '
	test_exit 2 reops_run --frobnicate x.yaml 2>err &&
	test_grep "usage: reops-run" err
'

test_expect_success 'bad --forks, --timeout and --color are usage errors' '
	test_exit 2 reops_run --forks 0 x.yaml 2>err &&
	test_grep "forks" err &&
	test_exit 2 reops_run --timeout -1 x.yaml 2>err &&
	test_exit 2 reops_run --color=sometimes x.yaml 2>err &&
	test_grep "color" err
'

test_expect_success '--list-stages lists every stage once' '
	reops_run --list-stages >out &&
	for s in ls exec pick pretty json pipeline; do
		test_grep "^$s " out || return 1
	done
'

test_expect_success 'every tests/tNNNN-*.sh is listed in Makefile.am' '
	for t in "$SRCDIR"/tests/t[0-9][0-9][0-9][0-9]-*.sh; do
		n=$(basename "$t") &&
		grep -q "tests/$n" "$SRCDIR/Makefile.am" ||
		{ echo "$n is not in Makefile.am"; return 1; }
	done
'

test_done
