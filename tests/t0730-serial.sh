#!/bin/bash
# t0730: rolling batches. A pipeline's serial runs its stages on one batch
# of rows after another (N, N%, a list whose last size repeats), max-fail
# stops before the next batch and leaves the rows never run skipped with
# the reason, the output stages at the end see the whole table once; a
# stage's serial runs no more than N of its rows at once. On local rows,
# then on loopback sshd hosts.
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d ts run seen
cat >hosts.d/local.yaml <<'YAML'
groups:
  six:
    transport: local
    hosts: [h1, h2, h3, h4, h5, h6]
  gone:
    transport: ssh
    hosts:
      - { name: closed, address: 127.0.0.1, port: 9 }
YAML

# rec W TARGET [FAIL...]: the row's start and end times (ns) in
# ts/TARGET.start and .end; while it runs, run/TARGET exists. It waits
# until W rows run at once, or did (the file reached), or MAX_WAIT times
# 0.05 s passed (100); it writes in seen/TARGET the most rows it saw run
# at once, and fails when TARGET is one of FAIL.
cat >rec <<EOF
#!/bin/sh
d='$TRASH'
w=\$1 t=\$2
shift 2
: >"\$d/run/\$t"
date +%s%N >"\$d/ts/\$t.start"
i=0 max=0
while :; do
	n=\$(ls "\$d/run" | wc -l)
	[ "\$n" -gt "\$max" ] && max=\$n
	[ "\$n" -ge "\$w" ] && : >"\$d/reached"
	[ -e "\$d/reached" ] || [ "\$i" -ge "\${MAX_WAIT:-100}" ] && break
	sleep 0.05
	i=\$((i + 1))
done
echo "\$max" >"\$d/seen/\$t"
date +%s%N >"\$d/ts/\$t.end"
rm -f "\$d/run/\$t"
for f; do
	[ "\$t" = "\$f" ] && { echo "\$t fails" >&2; exit 1; }
done
exit 0
EOF
chmod +x rec

# serial_pipeline FILE SELECTOR SERIAL-LINES STAGE...
serial_pipeline () {
	name=$1 sel=$2 top=$3
	shift 3
	{
		echo "hosts: $sel"
		printf '%s\n' "$top"
		echo "stages:"
		for s in "$@"; do
			echo "  - $s"
		done
	} >"$name"
}

fresh () {
	rm -rf ts run seen reached && mkdir ts run seen
}

# batches_in_turn "h1 h2|h3 h4": the rows of each batch ran, and each
# batch's earliest start came after the latest end of the one before.
batches_in_turn () {
	python3 - "$1" <<-\EOF
	import os, sys
	batches = [b.split() for b in sys.argv[1].split("|")]
	def ns(t, what):
	    return int(open("ts/%s.%s" % (t, what)).read())
	bad = 0
	for b in batches:
	    for t in b:
	        if not os.path.exists("ts/%s.end" % t):
	            print("%s did not run" % t)
	            bad = 1
	if bad:
	    sys.exit(1)
	for k in range(1, len(batches)):
	    end = max(ns(t, "end") for t in batches[k - 1])
	    start = min(ns(t, "start") for t in batches[k])
	    if start <= end:
	        print("batch %d (%s) started %.3f ms before batch %d (%s) "
	              "ended" % (k + 1, " ".join(batches[k]), (end - start) / 1e6,
	              k, " ".join(batches[k - 1])))
	        bad = 1
	sys.exit(bad)
	EOF
}

# never_ran TARGET...: no trace of them.
never_ran () {
	for t in "$@"; do
		if [ -e "ts/$t.start" ]; then
			echo "$t ran" >&2
			return 1
		fi
	done
}

test_expect_success 'serial 2, max-fail 0, the third row fails: 5 and 6 skipped' '
	fresh &&
	serial_pipeline s2.yaml six "serial: 2
max-fail: 0" "exec: $TRASH/rec 2 \${target} h3" &&
	test_exit 1 reops_run --json s2.yaml >out 2>err &&
	json_get target out >got &&
	printf "h1\nh2\nh3\nh4\nh5\nh6\n" >want &&
	test_cmp want got &&
	json_get status out >got &&
	printf "ok\nok\nfailed\nok\nskipped\nskipped\n" >want &&
	test_cmp want got &&
	json_get stderr out | sed -n "5,6p" >got &&
	printf "reops-run: not run: max-fail 0 reached after batch 2\n%.0s" 1 2 >want &&
	test_cmp want got &&
	batches_in_turn "h1 h2|h3 h4" &&
	never_ran h5 h6
'

test_expect_success 'the batches check can fail: without serial the rows overlap' '
	fresh &&
	serial_pipeline all.yaml six "" "exec: $TRASH/rec 6 \${target}" &&
	reops_run all.yaml >out 2>err &&
	! batches_in_turn "h1 h2|h3 h4|h5 h6" >why &&
	test_grep "started .* before batch" why
'

test_expect_success 'without an output stage, the skipped rows say why on stderr' '
	fresh &&
	test_exit 1 reops_run s2.yaml >out 2>err &&
	test_grep "^reops-run: h5: skipped \(code 0\): reops-run: not run: max-fail 0 reached after batch 2$" err &&
	test_grep "^reops-run: h3: failed \(code 1\): h3 fails$" err
'

test_expect_success 'serial [1, 2, 50%]: batches of 1, 2, then 3' '
	fresh &&
	serial_pipeline list.yaml six "serial: [1, 2, 50%]" \
	    "exec: $TRASH/rec 1 \${target}" &&
	reops_run -v list.yaml >out 2>err &&
	grep "batch [0-9]" err >got &&
	cat >want <<-\EOF &&
	reops-run: list.yaml: batch 1 of 3: 1 row
	reops-run: list.yaml: batch 2 of 3: 2 rows
	reops-run: list.yaml: batch 3 of 3: 3 rows
	EOF
	test_cmp want got &&
	batches_in_turn "h1|h2 h3|h4 h5 h6"
'

test_expect_success 'serial [1, 2, 50%] with h2 failing: the third batch never runs' '
	fresh &&
	serial_pipeline list2.yaml six "serial: [1, 2, 50%]" \
	    "exec: $TRASH/rec 1 \${target} h2" &&
	test_exit 1 reops_run --json list2.yaml >out 2>err &&
	json_get status out >got &&
	printf "ok\nfailed\nok\nskipped\nskipped\nskipped\n" >want &&
	test_cmp want got &&
	never_ran h4 h5 h6
'

test_expect_success 'the last size repeats: serial [1, 2] over 6 rows is 1, 2, 2, 1' '
	fresh &&
	serial_pipeline rep.yaml six "serial: [1, 2]" \
	    "exec: $TRASH/rec 1 \${target}" &&
	reops_run -v rep.yaml >out 2>err &&
	grep "batch [0-9]" err | sed -e "s/.*: //" | tr "\n" " " >got &&
	printf "%s" "1 row 2 rows 2 rows 1 row " >want &&
	test_cmp want got &&
	batches_in_turn "h1|h2 h3|h4 h5|h6"
'

test_expect_success 'serial 50%: two batches of 3' '
	fresh &&
	serial_pipeline half.yaml six "serial: 50%" \
	    "exec: $TRASH/rec 3 \${target} h2" &&
	test_exit 1 reops_run --json half.yaml >out 2>err &&
	json_get status out >got &&
	printf "ok\nfailed\nok\nskipped\nskipped\nskipped\n" >want &&
	test_cmp want got &&
	json_get stderr out | tail -1 >got &&
	echo "reops-run: not run: max-fail 0 reached after batch 1" >want &&
	test_cmp want got &&
	never_ran h4 h5 h6
'

test_expect_success 'max-fail 1: the second failure stops the rollout' '
	fresh &&
	serial_pipeline mf1.yaml six "serial: 1
max-fail: 1" "exec: $TRASH/rec 1 \${target} h2 h4" &&
	test_exit 1 reops_run --json mf1.yaml >out 2>err &&
	json_get status out >got &&
	printf "ok\nfailed\nok\nfailed\nskipped\nskipped\n" >want &&
	test_cmp want got &&
	json_get stderr out | tail -1 >got &&
	echo "reops-run: not run: max-fail 1 reached after batch 4" >want &&
	test_cmp want got &&
	batches_in_turn "h1|h2|h3|h4" &&
	never_ran h5 h6
'

test_expect_success 'max-fail 20% of 6 rows allows one failure, as max-fail 1' '
	fresh &&
	serial_pipeline mf20.yaml six "serial: 1
max-fail: 20%" "exec: $TRASH/rec 1 \${target} h2 h4" &&
	test_exit 1 reops_run --json mf20.yaml >out 2>err &&
	json_get status out >got &&
	printf "ok\nfailed\nok\nfailed\nskipped\nskipped\n" >want &&
	test_cmp want got &&
	json_get stderr out | tail -1 >got &&
	echo "reops-run: not run: max-fail 20% reached after batch 4" >want &&
	test_cmp want got
'

test_expect_success 'max-fail 100%: every batch runs, failures and all' '
	fresh &&
	serial_pipeline mf100.yaml six "serial: 2
max-fail: 100%" "exec: $TRASH/rec 1 \${target} h1 h2 h3" &&
	test_exit 1 reops_run --json mf100.yaml >out 2>err &&
	json_get status out >got &&
	printf "failed\nfailed\nfailed\nok\nok\nok\n" >want &&
	test_cmp want got
'

test_expect_success 'an unreachable row counts, and exit 3 says it' '
	fresh &&
	serial_pipeline un.yaml "[h1, closed, h2, h3]" "serial: 1" \
	    "exec: $TRASH/rec 1 \${target}" &&
	test_exit 3 reops_run --json un.yaml >out 2>err &&
	json_get status out >got &&
	printf "ok\nunreachable\nskipped\nskipped\n" >want &&
	test_cmp want got &&
	never_ran h2 h3
'

test_expect_success 'a failed row that pick drops still counts' '
	fresh &&
	serial_pipeline pick.yaml six "serial: 2" \
	    "exec: $TRASH/rec 1 \${target} h1" "pick: successful" &&
	test_exit 1 reops_run --json pick.yaml >out 2>err &&
	json_get target out | tr "\n" " " >got &&
	printf "%s" "h2 h3 h4 h5 h6 " >want &&
	test_cmp want got &&
	json_get status out | tr "\n" " " >got &&
	printf "%s" "ok skipped skipped skipped skipped " >want &&
	test_cmp want got
'

test_expect_success 'a pretty at the end prints the whole table once' '
	fresh &&
	serial_pipeline end.yaml six "serial: 2" \
	    "exec: $TRASH/rec 1 \${target} h3" pretty &&
	test_exit 1 reops_run end.yaml >out 2>err &&
	grep "^[0-9]* rows:" out >got &&
	echo "6 rows: 3 ok, 1 failed, 0 unreachable, 2 skipped" >want &&
	test_cmp want got &&
	grep "^h[0-9]:" out | cut -d: -f1 | tr "\n" " " >got &&
	printf "%s" "h1 h2 h3 h4 h5 h6 " >want &&
	test_cmp want got
'

test_expect_success 'a json file at the end holds every row; a pretty before a remote stage sees each batch' '
	fresh &&
	serial_pipeline mid.yaml six "serial: 3" \
	    "exec: $TRASH/rec 1 \${target}" pretty "exec: echo again" \
	    "json: { file: all.json }" &&
	reops_run mid.yaml >out 2>err &&
	grep "^[0-9]* rows:" out >got &&
	printf "3 rows: 3 ok, 0 failed, 0 unreachable\n%.0s" 1 2 >want &&
	test_cmp want got &&
	json_get target all.json | tr "\n" " " >got &&
	printf "%s" "h1 h2 h3 h4 h5 h6 " >want &&
	test_cmp want got &&
	test "$(json_get stdout all.json | sort -u)" = again
'

test_expect_success 'serial from a param, set with --set' '
	fresh &&
	cat >param.yaml <<-EOF &&
	hosts: six
	params:
	  batch: 6
	serial: "\${batch}"
	stages:
	  - exec: $TRASH/rec 1 \${target}
	EOF
	reops_run -v --set batch=3 param.yaml >out 2>err &&
	grep -c "batch [0-9] of 2: 3 rows" err >got &&
	echo 2 >want &&
	test_cmp want got &&
	batches_in_turn "h1 h2 h3|h4 h5 h6"
'

test_expect_success 'an included pipeline with serial batches the table it is given' '
	fresh &&
	serial_pipeline inner.yaml six "serial: 2" \
	    "exec: $TRASH/rec 1 \${target} h2" &&
	serial_pipeline outer.yaml six "" "exec: true" "pipeline: inner.yaml" &&
	test_exit 1 reops_run --json outer.yaml >out 2>err &&
	json_get status out | tr "\n" " " >got &&
	printf "%s" "ok failed skipped skipped skipped skipped " >want &&
	test_cmp want got
'

# A stage's serial: the rows wait (up to 1 s) for a third beside them,
# which must never come; the most any row saw is 2 (not 1: a window of 2).
test_expect_success "a stage's serial 2 over 6 rows: never more than 2 at once" '
	fresh &&
	serial_pipeline st.yaml six "" \
	    "{ exec: \"MAX_WAIT=20 $TRASH/rec 3 \${target}\", serial: 2 }" &&
	reops_run --json st.yaml >out 2>err &&
	test "$(json_get status out | sort -u)" = ok &&
	cat seen/* | sort -n | tail -1 >got &&
	echo 2 >want &&
	test_cmp want got
'

test_expect_success "the at-once check can fail: without serial, 3 at once" '
	fresh &&
	serial_pipeline nost.yaml six "" "exec: $TRASH/rec 3 \${target}" &&
	reops_run --json nost.yaml >out 2>err &&
	test "$(sort -n seen/* | tail -1)" -ge 3
'

# A window, not waves: while h1 waits for a file that only the last row
# makes, the other five pass through the second slot one by one.
test_expect_success "a stage's serial is a sliding window, not waves" '
	fresh &&
	cat >slow <<-EOF &&
	#!/bin/sh
	i=0
	if [ "\$1" = h1 ]; then
	        while [ ! -e "$TRASH/run/last" ] && [ \$i -lt 200 ]; do
	                sleep 0.05
	                i=\$((i + 1))
	        done
	        test -e "$TRASH/run/last"
	elif [ "\$1" = h6 ]; then
	        : >"$TRASH/run/last"
	fi
	EOF
	chmod +x slow &&
	serial_pipeline win.yaml six "" \
	    "{ exec: \"$TRASH/slow \${target}\", serial: 2 }" &&
	reops_run --json win.yaml >out 2>err &&
	test "$(json_get status out | sort -u)" = ok
'

test_expect_success "a stage's serial on an include holds for the stages inside" '
	fresh &&
	serial_pipeline in2.yaml six "" "exec: MAX_WAIT=20 $TRASH/rec 3 \${target}" &&
	serial_pipeline out2.yaml six "" "{ pipeline: in2.yaml, serial: 2 }" &&
	reops_run --json out2.yaml >out 2>err &&
	cat seen/* | sort -n | tail -1 >got &&
	echo 2 >want &&
	test_cmp want got
'

test_expect_success 'pipelines/rolling.yaml: a canary, then the rest' '
	(cd "$SRCDIR" && "$REOPS_RUN" -v pipelines/rolling.yaml) >out 2>err &&
	grep "batch [0-9]" err | sed -e "s/.*: batch/batch/" >got &&
	cat >want <<-\EOF &&
	batch 1 of 2: 1 row
	batch 2 of 2: 2 rows
	EOF
	test_cmp want got &&
	test_grep "^3 rows: 3 ok" out
'

# On loopback sshd hosts: the same rollout over ssh.
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
	. "$SRCDIR/tests/lib-sshd.sh"
	SSHD_DIR="$TRASH/sshd"
	LSAN_OPTIONS="suppressions=$SRCDIR/tests/lsan-libssh2.supp:print_suppressions=0"
	export LSAN_OPTIONS
	unset SSH_AUTH_SOCK
	trap 'sshd_stop "$SSHD_DIR"' EXIT
	if sshd_setup "$SSHD_DIR" >/dev/null && sshd_start "$SSHD_DIR" 6; then
		{
			echo "groups:"
			echo "  web:"
			echo "    transport: ssh"
			echo "    auth: { user: root, key: $SSHD_DIR/keys/id_ed25519, port: $(sshd_port "$SSHD_DIR") }"
			echo "    known-hosts: $SSHD_DIR/known_hosts"
			echo "    hosts:"
			for i in 1 2 3 4 5 6; do
				echo "      - { name: h$i-ssh, address: $(sshd_host_addr $i) }"
			done
		} >hosts.d/ssh.yaml
		test_expect_success 'ssh: serial 2, max-fail 0, the third row fails: 5 and 6 skipped' '
			fresh &&
			serial_pipeline ssh.yaml web "serial: 2
max-fail: 0" "exec: $TRASH/rec 2 \${target} h3-ssh" &&
			test_exit 1 reops_run --json ssh.yaml >out 2>err &&
			json_get status out >got &&
			printf "ok\nok\nfailed\nok\nskipped\nskipped\n" >want &&
			test_cmp want got &&
			json_get stderr out | sed -n "5,6p" >got &&
			printf "reops-run: not run: max-fail 0 reached after batch 2\n%.0s" 1 2 >want &&
			test_cmp want got &&
			batches_in_turn "h1-ssh h2-ssh|h3-ssh h4-ssh" &&
			never_ran h5-ssh h6-ssh
		'
		test_expect_success "ssh: a stage's serial 2 over 6 hosts: never more than 2 at once" '
			fresh &&
			serial_pipeline sst.yaml web "" \
			    "{ exec: \"MAX_WAIT=20 $TRASH/rec 3 \${target}\", serial: 2 }" &&
			reops_run --json sst.yaml >out 2>err &&
			test "$(json_get status out | sort -u)" = ok &&
			cat seen/* | sort -n | tail -1 >got &&
			echo 2 >want &&
			test_cmp want got
		'
	else
		test_skip "ssh cases" "unable to start sshd test hosts"
	fi
	sshd_stop "$SSHD_DIR"
else
	test_skip "ssh cases" "needs root and /usr/sbin/sshd"
fi

test_done
