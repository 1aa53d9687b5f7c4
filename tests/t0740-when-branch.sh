#!/bin/bash
# t0740: which rows a stage runs on (when:) and the branch stage, on local
# rows: when: failed after a failing exec, all/any/any-status, re-mote's
# "pick failed, then fix" and the load error without when, a regex that
# gives up, output stages with when; branch by a column, merged in order
# with every column, branches at the same time, a pick, a nested branch
# and an include inside a branch; the shipped examples.
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d
cat >hosts.d/local.yaml <<'YAML'
groups:
  workers:
    transport: local
    hosts: [w1, w2, w3, w4]
YAML

test_expect_success 'when: failed runs only on the failed rows, the others untouched' '
	cat >fix.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "echo first ${target}; case ${target} in w2|w4) exit 3;; esac"
	  - exec: "echo fixed ${target}"
	    when: failed
	EOF
	test_exit 1 reops_run -i hosts.d --json fix.yaml >out &&
	json_get stdout out >got &&
	printf "first w1\nfixed w2\nfirst w3\nfixed w4\n" >expect &&
	test_cmp expect got &&
	json_get status out | tr "\n" " " >got &&
	test "$(cat got)" = "ok ok ok ok " &&
	json_get target out | tr "\n" " " >got &&
	test "$(cat got)" = "w1 w2 w3 w4 "
'

test_expect_success 'without when, the failed rows pass by untouched' '
	cat >nofix.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "echo first ${target}; case ${target} in w2) exit 3;; esac"
	  - exec: "echo again ${target}"
	EOF
	test_exit 1 reops_run -i hosts.d --json nofix.yaml >out &&
	json_get stdout out >got &&
	printf "again w1\nfirst w2\nagain w3\nagain w4\n" >expect &&
	test_cmp expect got &&
	test "$(json_get code out | tr "\n" " ")" = "0 3 0 0 "
'

test_expect_success 'when: all, any, any-status and a column' '
	cat >forms.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "echo ${target}; case ${target} in w2|w3) exit 1;; esac"
	  - exec: "echo all"
	    when: { all: [ failed, { column: stdout, match: "3" } ] }
	  - exec: "echo any >&2"
	    when: { any: [ { column: target, match: "^w1$" }, { column: code, match: "^1$" } ] }
	  - exec: "echo everyone"
	    when: any-status
	  - exec: "echo not-w4"
	    when: { column: target, match: "w4", invert: true }
	EOF
	test_exit 1 reops_run -i hosts.d --json forms.yaml >out &&
	json_get stdout out >got &&
	printf "not-w4\nnot-w4\nnot-w4\neveryone\n" >expect &&
	test_cmp expect got &&
	cat >forms2.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "echo ${target}; case ${target} in w2|w3) exit 1;; esac"
	  - exec: "echo all"
	    when: { all: [ failed, { column: stdout, match: "3" } ] }
	  - exec: "echo any"
	    when: { any: [ { column: target, match: "^w1$" }, { column: code, match: "^1$" } ] }
	EOF
	test_exit 1 reops_run -i hosts.d --json forms2.yaml >out &&
	json_get stdout out >got &&
	printf "any\nany\nall\nw4\n" >expect &&
	test_cmp expect got
'

test_expect_success 'pick: failed, then a stage with when: failed fixes them' '
	cat >pickfix.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "case ${target} in w3) exit 5;; esac"
	  - pick: failed
	  - exec: "echo fixed ${target}"
	    when: failed
	EOF
	test_exit 1 reops_run -i hosts.d --json pickfix.yaml >out &&
	test "$(json_get target out)" = w3 &&
	test "$(json_get stdout out)" = "fixed w3" &&
	test "$(json_get status out)" = ok
'

test_expect_success 'pick: failed, then a stage without when: a load error, nothing run' '
	cat >pickbad.yaml <<-EOF &&
	hosts: workers
	stages:
	  - exec: "touch $TRASH/ran-\${target}; false"
	  - pick: failed
	  - exec: "echo fixed"
	EOF
	test_exit 2 reops_run -i hosts.d pickbad.yaml >out 2>err &&
	echo "pickbad.yaml:5:5: stage '\''exec'\'' runs on successful rows and '\''pick'\'' (line 4) kept only failed rows; add '\''when: failed'\'' to run on the rows it kept" >expect &&
	test_cmp expect err &&
	! ls ran-* 2>/dev/null
'

test_expect_success 'a when regex that gives up fails that row with the reason' '
	cat >giveup.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "printf %0100000d 0 | tr 0 a; echo"
	    when: { column: target, match: "w1" }
	  - exec: "echo ran"
	    when: { column: stdout, match: "^(a|a)*$" }
	EOF
	test_exit 1 reops_run -i hosts.d -l w1 --json giveup.yaml >out &&
	test "$(json_get status out)" = failed &&
	test_grep "when.* of stage .exec. gave up" out
'

test_expect_success 'an output stage with when sees only the rows it selects' '
	cat >outwhen.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "case ${target} in w2) exit 1;; esac"
	  - json: { file: failed.json }
	    when: failed
	  - json: { file: all.json }
	EOF
	test_exit 1 reops_run -i hosts.d outwhen.yaml >/dev/null &&
	test "$(json_get target failed.json)" = w2 &&
	test "$(json_get target all.json | wc -l)" = 4
'

test_expect_success 'branch by a column: a different exec in each, merged in order' '
	cat >br.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "echo ${target} | tr -d w"
	  - branch:
	      even:
	        when: { column: stdout, match: "^[24]$" }
	        stages:
	          - exec: "echo e=even-${target}"
	          - parse: { regex: "e=(?<even>.*)" }
	      odd:
	        when: any-status
	        stages:
	          - exec: "echo o=odd-${target}"
	          - parse: { regex: "o=(?<odd>.*)" }
	  - json: { file: merged.json }
	  - pretty
	EOF
	reops_run -i hosts.d br.yaml >out &&
	json_get target merged.json | tr "\n" " " >got &&
	test "$(cat got)" = "w1 w2 w3 w4 " &&
	json_get even merged.json | tr "\n" " " >got &&
	test "$(cat got)" = " even-w2  even-w4 " &&
	json_get odd merged.json | tr "\n" " " >got &&
	test "$(cat got)" = "odd-w1  odd-w3  " &&
	python3 -c "
import json, sys
for l in open(\"merged.json\"):
    r = json.loads(l)
    assert \"even\" in r and \"odd\" in r, r
" &&
	test_grep "even=even-w2" out
'

test_expect_success 'rows no branch selects pass through untouched' '
	cat >brpass.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "echo keep-${target}"
	  - branch:
	      one:
	        when: { column: target, match: "^w1$" }
	        stages: [ { exec: "echo changed" } ]
	EOF
	reops_run -i hosts.d --json brpass.yaml >out &&
	json_get stdout out | tr "\n" " " >got &&
	test "$(cat got)" = "changed keep-w2 keep-w3 keep-w4 "
'

test_expect_success 'two branches that each sleep 2 s run at the same time' '
	cat >brtime.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - branch:
	      a:
	        when: { column: target, match: "^w[12]$" }
	        stages: [ { exec: "sleep 2; echo a" } ]
	      b:
	        when: any-status
	        stages: [ { exec: "sleep 2; echo b" } ]
	EOF
	start=$(date +%s%N) &&
	reops_run -i hosts.d --json brtime.yaml >out &&
	end=$(date +%s%N) &&
	ms=$(( (end - start) / 1000000 )) &&
	say "two 2 s branches took $ms ms" &&
	json_get stdout out | tr "\n" " " >got &&
	test "$(cat got)" = "a a b b " &&
	if [ "$ms" -ge 3500 ]; then
		echo "took $ms ms: the branches did not run at once" >&2
		return 1
	fi
'

test_expect_success 'a pick inside a branch drops rows from the whole table' '
	cat >brpick.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "case ${target} in w1) exit 1;; esac"
	  - branch:
	      low:
	        when: { column: target, match: "^w[12]$" }
	        stages:
	          - pick: successful
	          - exec: "echo low"
	      high:
	        when: { column: target, match: "^w[34]$" }
	        stages:
	          - pick: { column: target, match: "w4" }
	EOF
	test_exit 1 reops_run -i hosts.d --json brpick.yaml >out &&
	json_get target out | tr "\n" " " >got &&
	test "$(cat got)" = "w2 w4 " &&
	test "$(json_get stdout out | head -1)" = low
'

test_expect_success 'a branch inside a branch, and an include inside a branch' '
	cat >inc.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - exec: "echo included-${target}"
	  - parse: { regex: "(?<inc>included-.*)" }
	EOF
	cat >brnest.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - branch:
	      outer:
	        when: { column: target, match: "^w[123]$" }
	        stages:
	          - branch:
	              inner:
	                when: { column: target, match: "^w1$" }
	                stages: [ { exec: "echo inner" } ]
	              rest:
	                when: any-status
	                stages: [ { pipeline: inc.yaml } ]
	      last:
	        when: any-status
	        stages: [ { exec: "echo last" } ]
	EOF
	reops_run -i hosts.d --json brnest.yaml >out &&
	json_get stdout out | tr "\n" " " >got &&
	test "$(cat got)" = "inner included-w2 included-w3 last " &&
	json_get inc out | tr "\n" " " >got &&
	test "$(cat got)" = " included-w2 included-w3  " &&
	reops_run -i hosts.d --check brnest.yaml >plan &&
	test_grep "exec command=echo inner" plan &&
	test_grep "pipeline file=inc.yaml" plan
'

test_expect_success 'a failing branch row counts in the exit status' '
	cat >brfail.yaml <<-\EOF &&
	hosts: workers
	stages:
	  - branch:
	      a:
	        when: { column: target, match: "^w1$" }
	        stages: [ { exec: "true" } ]
	      b:
	        when: { column: target, match: "^w2$" }
	        stages: [ { exec: "exit 7" } ]
	EOF
	test_exit 1 reops_run -i hosts.d -l "~^w[12]$" --json brfail.yaml >out &&
	test "$(json_get code out | tr "\n" " ")" = "0 7 "
'

test_expect_success 'on systems: a branch and a when on the test hypervisor' '
	cat >sys.yaml <<-\EOF &&
	systems: all
	stages:
	  - ls
	  - branch:
	      first:
	        when: { column: target, match: "-1$" }
	        stages:
	          - parse: { column: state, regex: "(?<first_state>.+)" }
	      rest:
	        when: any-status
	        stages:
	          - parse: { column: target, regex: "demo-(?<num>[0-9]+)" }
	  - stop:
	    when: { column: target, match: "-2$" }
	EOF
	test_exit 1 reops_run -i "$SRCDIR/hosts.d" --yes --json sys.yaml >out &&
	test "$(json_get target out | tr "\n" " ")" = "demo-1 demo-2 " &&
	test "$(json_get status out | tr "\n" " ")" = "ok failed " &&
	test "$(json_get first_state out | tr "\n" " ")" = "undefined  " &&
	test "$(json_get num out | tr "\n" " ")" = " 2 " &&
	test_grep "demo-2.*does not exist" out
'

test_expect_success 'SIGINT stops every branch at once (exit 130), nothing left' '
	zz=$(marked_sleep zz-branch) &&
	cat >brint.yaml <<-EOF &&
	hosts: workers
	stages:
	  - branch:
	      a:
	        when: { column: target, match: "^w1\$" }
	        stages: [ { exec: "$zz 60" } ]
	      b:
	        when: any-status
	        stages: [ { exec: "$zz 60" } ]
	EOF
	start=$(date +%s%N) &&
	{ "$REOPS_RUN" -i hosts.d --json brint.yaml >out 2>err & pid=$!; } &&
	i=0 &&
	while [ "$(pgrep -f -c -- "$zz")" -lt 4 ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done &&
	kill -INT $pid &&
	{ wait $pid; rc=$?; } ;
	end=$(date +%s%N) &&
	ms=$(( (end - start) / 1000000 )) &&
	say "interrupted after $ms ms" &&
	test "$rc" = 130 &&
	test "$ms" -lt 20000 &&
	test "$(json_get code out | sort -u)" = 130 &&
	test_none_left "$zz"
'

test_expect_success 'the examples when.yaml and branch.yaml run' '
	test_exit 1 reops_run -i "$SRCDIR/hosts.d" --json "$SRCDIR/pipelines/when.yaml" >out &&
	json_get stdout out >got &&
	printf "worker-1 needed no fix\nfixed worker-2\nworker-3 needed no fix\n" >expect &&
	test_cmp expect got &&
	reops_run -i "$SRCDIR/hosts.d" --json "$SRCDIR/pipelines/branch.yaml" >out &&
	test "$(json_get status out | sort -u)" = ok &&
	test "$(json_get target out | wc -l)" -ge 2
'

test_done
