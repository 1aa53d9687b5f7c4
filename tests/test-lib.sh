# tests/test-lib.sh: a small git-style test library that prints TAP.
#
#   . "$SRCDIR/tests/test-lib.sh"
#   test_expect_success 'what it checks' '
#   	reops_run pipeline.yaml >actual &&
#   	test_cmp expect actual
#   '
#   test_done
#
# Each test runs in its own scratch directory (removed when all pass) with a
# quiet environment; every step is joined with && so the first failure fails.

: "${SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${BUILDDIR:=$SRCDIR}"
: "${REOPS_RUN:=$BUILDDIR/reops-run}"
export SRCDIR BUILDDIR REOPS_RUN

test_count=0
test_failures=0
test_name=$(basename "$0" .sh)
TRASH="$BUILDDIR/tests/trash.$test_name"
rm -rf "$TRASH"
mkdir -p "$TRASH" || exit 1
cd "$TRASH" || exit 1
HOME="$TRASH"
export HOME
unset NO_COLOR REOPS_OPTIONS
LC_ALL=C.UTF-8
export LC_ALL

# reops-run from the build, with the shipped pipelines at hand.
reops_run () {
	"$REOPS_RUN" "$@"
}

say () {
	echo "# $*"
}

test_expect_success () {
	test_count=$((test_count + 1))
	if (eval "$2") >"$TRASH/.out.$test_count" 2>&1; then
		echo "ok $test_count - $1"
	else
		test_failures=$((test_failures + 1))
		echo "not ok $test_count - $1"
		printf '%s\n' "$2" | sed -e 's/^/#   /'
		sed -e 's/^/#   | /' "$TRASH/.out.$test_count" | head -60
	fi
}

test_skip () {
	test_count=$((test_count + 1))
	echo "ok $test_count # skip $1 ($2)"
}

test_cmp () {
	diff -u "$1" "$2"
}

# test_exit CODE command...: the command must exit with exactly CODE.
test_exit () {
	want=$1
	shift
	"$@"
	got=$?
	if [ "$got" != "$want" ]; then
		echo "exit status $got, expected $want: $*" >&2
		return 1
	fi
	return 0
}

# test_grep PATTERN FILE: like grep, but shows the file when it fails.
test_grep () {
	if ! grep -E -e "$1" "$2" >/dev/null; then
		echo "no line matches '$1' in $2:" >&2
		sed -e 's/^/  | /' "$2" | head -40 >&2
		return 1
	fi
}

# marked_sleep NAME: the path of a sleep command named NAME-PID in this
# test's scratch directory. Its command line is this run's alone, so
# test_none_left finds our processes and never another suite's sleep.
marked_sleep () {
	mkdir -p "$TRASH/bin" &&
	ln -sf "$(command -v sleep)" "$TRASH/bin/$1-$$" &&
	echo "$TRASH/bin/$1-$$"
}

# test_none_left PATTERN: no process whose command line matches PATTERN
# (pgrep -f) is left within 10 s; else shows the ones it saw.
test_none_left () {
	_i=0
	while pgrep -f -- "$1" >/dev/null && [ $_i -lt 100 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	if _left=$(pgrep -d, -f -- "$1"); then
		echo "still running after 10s, matching '$1':" >&2
		ps -o pid=,stat=,args= -p "$_left" >&2
		return 1
	fi
	return 0
}

# json_get FIELD FILE: the values of FIELD in an NDJSON file, one a line
# (a value's own final newline is dropped, so "hi\n" reads as "hi").
json_get () {
	python3 -c '
import json, sys
for line in open(sys.argv[2]):
    v = json.loads(line).get(sys.argv[1])
    v = "" if v is None else str(v)
    print(v[:-1] if v.endswith("\n") else v)
' "$1" "$2"
}

test_done () {
	echo "1..$test_count"
	if [ "$test_failures" -eq 0 ]; then
		cd "$BUILDDIR" && rm -rf "$TRASH"
		exit 0
	fi
	exit 1
}
