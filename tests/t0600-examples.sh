#!/bin/bash
# t0600: the example pipeline repository under examples/ works as its
# Makefile says: check, a target per pipeline, a sharded run merged into
# one table (every target once, sorted), and retry from that table.
. "$SRCDIR/tests/test-lib.sh"

# A copy, so the run writes its out/ here and not into the source tree.
cp -R "$SRCDIR/examples" . &&
chmod -R u+w examples
FLEET=examples/fleet
fleet_make () {
	make -C "$FLEET" REOPS_RUN="$REOPS_RUN" "$@"
}

test_expect_success 'make check: --check on every pipeline, each said ok' '
	fleet_make check >out 2>err &&
	ls "$FLEET"/pipelines/*.yaml | sed -e "s#.*/\(pipelines/.*\)#ok: \1#" |
	    sort >want &&
	grep "^ok: " out | sort >got &&
	test_cmp want got
'

test_expect_success 'make check fails on a broken pipeline' '
	cp -R "$FLEET" broken &&
	sed -i -e "s/exec:/exce:/" broken/pipelines/hello.yaml &&
	! make -C broken REOPS_RUN="$REOPS_RUN" check >out 2>err &&
	test_grep "pipelines/hello.yaml:[0-9]+:[0-9]+: unknown stage .exce." err
'

test_expect_success 'each pipeline has a target, and each runs' '
	for p in "$FLEET"/pipelines/*.yaml; do
		p=$(basename "$p" .yaml)
		fleet_make "$p" >out.$p 2>err.$p ||
		{ echo "make $p failed"; cat err.$p; return 1; }
		test_grep " 0 failed, 0 unreachable" out.$p || return 1
	done
'

# The targets of the pipeline the sharded target runs, as --check sees them.
(cd "$FLEET" && "$REOPS_RUN" --check pipelines/hello.yaml) |
	sed -n "s/^  \([^ ]*\)  group=.*/\1/p" | LC_ALL=C sort >all.targets

test_expect_success 'make -j4 sharded: one table, every target once, sorted' '
	test "$(wc -l <all.targets)" -ge 8 &&
	fleet_make -j4 sharded >out 2>err &&
	json_get target "$FLEET"/out/hello.json >got &&
	test_cmp all.targets got &&
	json_get status "$FLEET"/out/hello.json | sort -u >got &&
	echo ok >want &&
	test_cmp want got &&
	test_grep "^out/hello.json: $(wc -l <all.targets) rows" out
'

test_expect_success 'the shards were four, disjoint, and none was all' '
	for i in 1 2 3 4; do
		json_get target "$FLEET"/out/hello.shard-$i.json >part.$i &&
		test "$(wc -l <part.$i)" -lt "$(wc -l <all.targets)" || return 1
	done &&
	cat part.1 part.2 part.3 part.4 | LC_ALL=C sort >got &&
	test_cmp all.targets got
'

test_expect_success 'make retry: nothing to retry after a clean run' '
	fleet_make retry >out 2>err &&
	test_grep "nothing to retry" err
'

test_expect_success 'a failed row: sharded keeps the table and fails, retry runs it' '
	sed -i -e "s/^  - exec: .*/  - exec: \"[ \${target} != db-2 ] || [ -e \\\$HOME\/db-2-fixed ]\"/" \
	    "$FLEET"/pipelines/hello.yaml &&
	grep db-2 "$FLEET"/pipelines/hello.yaml &&
	! fleet_make -j4 sharded >out 2>err &&
	test_grep "some rows are not ok" err &&
	json_get target "$FLEET"/out/hello.json >got &&
	test_cmp all.targets got &&
	! fleet_make retry >out 2>err &&
	test_grep "^db-2: failed" out &&
	test "$(grep -c "^[a-z0-9-]*: " out)" = 1 &&
	touch db-2-fixed &&
	fleet_make retry >out 2>err &&
	test_grep "^db-2: ok" out
'

test_done
