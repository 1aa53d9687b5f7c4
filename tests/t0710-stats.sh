#!/bin/bash
# t0710: the stats library (pipelines/lib/stats) on local rows gives
# numbers on this machine, and "pipeline: NAME" finds it through the
# include search: the including file's directory, then REOPS_PATH, then
# the library; -v --version shows the path, a missing name lists it.
. "$SRCDIR/tests/test-lib.sh"

SQ="'"
unset REOPS_PATH
mkdir -p hosts.d
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [a]
YAML

# stats NAME [INCLUDE-ARGS]: a pipeline in the trash that includes
# stats/NAME.yaml by its library name.
stats () {
	cat >"use-$1.yaml" <<-YAML
	hosts: here
	stages:
	  - pipeline: ${2:-stats/$1.yaml}
	YAML
}

# numeric FILE COLUMN...: each column of the one row is a decimal number.
numeric () {
	f=$1
	shift
	for c in "$@"; do
		json_get "$c" "$f" >"val.$c" &&
		test "$(wc -l <"val.$c")" = 1 &&
		test_grep "^[0-9]+(\.[0-9]+)?$" "val.$c" || return 1
	done
}

test_expect_success 'stats/cpu: user, system, iowait, idle sum to 100' '
	stats cpu &&
	reops_run --json use-cpu.yaml >out &&
	json_get status out >got && echo ok >want && test_cmp want got &&
	numeric out user system iowait idle &&
	sum=$(cat val.user val.system val.iowait val.idle |
	    awk "{ s += \$1 } END { print s }") &&
	awk -v s="$sum" "BEGIN { exit !(s >= 99.5 && s <= 100.5) }" ||
	{ echo "the percentages sum to $sum"; return 1; }
'

test_expect_success 'stats/ram: total_mb > 0, used + available = total' '
	stats ram &&
	reops_run --json use-ram.yaml >out &&
	numeric out total_mb used_mb available_mb &&
	t=$(cat val.total_mb) && u=$(cat val.used_mb) &&
	av=$(cat val.available_mb) &&
	test "$t" -gt 0 &&
	d=$((t - u - av)) &&
	test "$d" -ge -1 && test "$d" -le 1 ||
	{ echo "total $t used $u available $av"; return 1; }
'

test_expect_success 'stats/disk: / by default, and the path param' '
	stats disk &&
	reops_run --json use-disk.yaml >out &&
	numeric out size_mb used_mb available_mb use_pct &&
	test "$(cat val.size_mb)" -gt 0 &&
	test "$(cat val.use_pct)" -le 100 &&
	stats disk "{ file: stats/disk.yaml, params: { path: \"$TRASH\" } }" &&
	reops_run --json use-disk.yaml >out &&
	numeric out size_mb used_mb available_mb use_pct
'

test_expect_success 'stats/disk: a hostile path is data, not shell' '
	mkdir -p "odd ${SQ}\$(touch pwned)" &&
	stats disk "{ file: stats/disk.yaml, params: { path: \"$TRASH/odd ${SQ}\$(touch pwned)\" } }" &&
	reops_run --json use-disk.yaml >out &&
	numeric out size_mb &&
	stats disk "{ file: stats/disk.yaml, params: { path: \"-x; touch pwned\" } }" &&
	test_exit 1 reops_run --json use-disk.yaml >out &&
	test ! -e pwned
'

test_expect_success 'stats/net: rx_bytes and tx_bytes' '
	stats net &&
	reops_run --json use-net.yaml >out &&
	numeric out rx_bytes tx_bytes
'

test_expect_success 'stats/load: load1, load5, load15' '
	stats load &&
	reops_run --json use-load.yaml >out &&
	numeric out load1 load5 load15
'

test_expect_success 'pipelines/stats.yaml runs on the shipped inventory' '
	reops_run --json -i "$SRCDIR/hosts.d" "$SRCDIR/pipelines/stats.yaml" \
	    >out 2>err &&
	test -s out &&
	json_get total_mb out >got &&
	! grep -v -E "^[1-9][0-9]*$" got &&
	json_get load1 out >got &&
	! grep -v -E "^[0-9]+\.[0-9]+$" got
'

# A stand-in for stats/load.yaml that says where it was found.
fake () {
	mkdir -p "$1/stats" &&
	cat >"$1/stats/load.yaml" <<-YAML
	hosts: all
	stages:
	  - exec: echo from-$2
	YAML
}

test_expect_success 'REOPS_PATH wins over the library, in its order' '
	mkdir -p inc && stats load && mv use-load.yaml inc/ &&
	fake p1 p1 && fake p2 p2 &&
	REOPS_PATH="::$TRASH/p2:$TRASH/p1" reops_run --json inc/use-load.yaml >out &&
	json_get stdout out >got && echo from-p2 >want && test_cmp want got &&
	REOPS_PATH="$TRASH/nothing:p1" reops_run --json inc/use-load.yaml >out &&
	json_get stdout out >got && echo from-p1 >want && test_cmp want got &&
	REOPS_PATH=$TRASH/nothing reops_run --json inc/use-load.yaml >out &&
	numeric out load1
'

test_expect_success 'the including file'"'"'s directory wins over REOPS_PATH' '
	fake inc inc-dir &&
	REOPS_PATH=$TRASH/p1 reops_run --json inc/use-load.yaml >out &&
	json_get stdout out >got && echo from-inc-dir >want &&
	test_cmp want got &&
	rm -r inc/stats
'

test_expect_success 'a name with a . or .. part is a path: never searched' '
	stats load ./stats/load.yaml &&
	test_exit 2 reops_run use-load.yaml >out 2>err &&
	echo "use-load.yaml:3:15: unable to open ${SQ}stats/load.yaml${SQ}: No such file or directory" >want &&
	test_cmp want err &&
	stats load stats/../stats/load.yaml &&
	test_exit 2 reops_run use-load.yaml >out 2>err &&
	test_cmp want err
'

test_expect_success '-v --version prints the search path' '
	REOPS_PATH="/one::/two" reops_run -v --version >out &&
	lib=$(realpath "$SRCDIR")/pipelines/lib &&
	printf "%s\n" "include search path:" \
	    "  (the including file${SQ}s directory)" "  /one (REOPS_PATH)" \
	    "  /two (REOPS_PATH)" "  $lib (the build tree${SQ}s library)" >want &&
	sed 1d out >got && test_cmp want got &&
	reops_run --version >out &&
	test "$(wc -l <out)" = 1
'

test_expect_success 'a missing name lists every place searched, exit 2' '
	stats nope &&
	REOPS_PATH=$TRASH/p1 test_exit 2 reops_run use-nope.yaml >out 2>err &&
	lib=$(realpath "$SRCDIR")/pipelines/lib &&
	echo "use-nope.yaml:3:15: unable to find ${SQ}stats/nope.yaml${SQ} in stats/nope.yaml, $TRASH/p1/stats/nope.yaml, $lib/stats/nope.yaml" >want &&
	test_cmp want err
'

test_done
