#!/bin/bash
# t0760: seeing the graph. --graph writes Graphviz DOT that dot(1) draws
# for every shipped pipeline, with a cluster per include and per branch
# and the edges of the table's flow; hostile names and arguments stay
# text; --check draws the plan as a tree with names, when, serial,
# includes and branches nested.
. "$SRCDIR/tests/test-lib.sh"

if ! command -v dot >/dev/null; then
	test_skip 't0760' 'dot(1) not found: install graphviz'
	test_done
fi

# graph_summary DOT: what dot(1) made of the graph, one fact a line:
#   node LABEL            (labels with \n as " / ")
#   name NAME             (the node's name in the DOT)
#   cluster LABEL: NODE LABEL | NODE LABEL ...
#   edge TAIL -> HEAD [EDGE LABEL] (dashed)
#   text TEXT             (every line of text dot draws)
graph_summary () {
	dot -Tjson "$1" >"$1.json" &&
	/usr/bin/python3 -c '
import json, sys
g = json.load(open(sys.argv[1]))
objs = g.get("objects", [])
def lab(o):
    return o.get("label", "").replace("\\n", " / ")
nodes = {o["_gvid"]: o for o in objs if o.get("_gvid") is not None
         and not o["name"].startswith("cluster")}
for o in objs:
    if o["name"].startswith("cluster"):
        continue
    print("node " + lab(o))
    print("name " + o["name"])
for o in objs:
    if not o["name"].startswith("cluster"):
        continue
    print("cluster " + lab(o) + ": " +
          " | ".join(lab(nodes[i]) for i in o.get("nodes", []) if i in nodes))
for e in g.get("edges", []):
    s = "edge " + lab(nodes[e["tail"]]) + " -> " + lab(nodes[e["head"]])
    if e.get("label"):
        s += " [" + lab(e) + "]"
    if e.get("style") == "dashed":
        s += " (dashed)"
    print(s)
def texts(o):
    for k in ("_ldraw_", "_tldraw_", "_hldraw_", "_hdraw_", "_draw_"):
        for op in o.get(k, []):
            if op.get("op") == "T":
                print("text " + op["text"])
for o in objs + g.get("edges", []):
    texts(o)
' "$1.json"
}

mkdir -p hosts.d sub/deeper
cat >hosts.d/10-web.yaml <<'YAML'
groups:
  web:
    transport: local
    hosts: [web-1, web-2]
YAML
cat >sub/deeper/leaf.yaml <<'YAML'
stages:
  - exec: echo leaf
YAML
cat >sub/inner.yaml <<'YAML'
stages:
  - exec: echo inner
    name: inner step
  - pipeline: deeper/leaf.yaml
YAML
cat >inc.yaml <<'YAML'
pipeline: includes
hosts: web
stages:
  - exec: echo one
  - pipeline: sub/inner.yaml
    name: the inner
  - exec: echo fix
    name: fix it
    when: { any: [ failed, { column: stdout, match: "^x" } ] }
    serial: 2
  - pretty
YAML

# Every pipeline file this source tree ships.
shipped=$(cd "$SRCDIR" && { find pipelines -name "*.yaml"; \
    find examples -name "*.yaml" -exec grep -l "^stages:" {} +; } | sort)

for f in $shipped; do
	test_expect_success "--graph $f | dot -Tsvg" '
		reops_run --graph "$SRCDIR/$f" >g.dot &&
		dot -Tsvg g.dot >g.svg &&
		grep -q "</svg>" g.svg &&
		grep -q " -> p1_end" g.dot
	'
done

test_expect_success 'the shipped list is not empty (the loop above ran)' '
	test $(echo "$shipped" | grep -c "^pipelines/") -ge 10 &&
	echo "$shipped" | grep -q "^examples/"
'

test_expect_success '--graph: includes expanded, a cluster per include file' '
	reops_run --graph inc.yaml >g.dot &&
	graph_summary g.dot >sum &&
	grep "^cluster" sum >got &&
	cat >want <<-\EOF &&
	cluster include sub/inner.yaml: 2.1  exec / inner step / command=echo inner | 2.2  pipeline / file=deeper/leaf.yaml | 2.2.1  exec / command=echo leaf
	cluster include sub/deeper/leaf.yaml: 2.2.1  exec / command=echo leaf
	EOF
	test_cmp want got
'

test_expect_success '--graph: the flow from start to end, through the includes' '
	graph_summary g.dot | grep "^edge" >got &&
	cat >want <<-\EOF &&
	edge includes / hosts: web -> 1  exec / command=echo one
	edge 1  exec / command=echo one -> 2  pipeline / the inner / file=sub/inner.yaml
	edge 2  pipeline / the inner / file=sub/inner.yaml -> 2.1  exec / inner step / command=echo inner
	edge 2.1  exec / inner step / command=echo inner -> 2.2  pipeline / file=deeper/leaf.yaml
	edge 2.2  pipeline / file=deeper/leaf.yaml -> 2.2.1  exec / command=echo leaf
	edge 2.2.1  exec / command=echo leaf -> 3  exec / fix it / command=echo fix / when: any(failed, stdout =~ '"'"'^x'"'"') / serial: 2
	edge 3  exec / fix it / command=echo fix / when: any(failed, stdout =~ '"'"'^x'"'"') / serial: 2 -> 4  pretty
	edge 4  pretty -> end
	EOF
	test_cmp want got
'

test_expect_success '--graph reads no inventory; --check does' '
	reops_run -i no-such-dir --graph inc.yaml >g2.dot &&
	test_cmp g.dot g2.dot &&
	test_exit 2 reops_run -i no-such-dir --check inc.yaml >out 2>err &&
	test_grep "no-such-dir" err
'

test_expect_success '--graph of a bad pipeline: the one error line, exit 2, no graph' '
	printf "hosts: web\nstages: [ pretty, frobnicate ]\n" >bad.yaml &&
	test_exit 2 reops_run --graph bad.yaml >out 2>err &&
	test_grep "^bad.yaml:2:19: unknown stage .frobnicate." err &&
	test_cmp /dev/null out
'

test_expect_success '--graph to a full disk: exit 4, said on stderr' '
	test_exit 4 reops_run --graph inc.yaml >/dev/full 2>err &&
	test_grep "^reops-run: standard output: No space left on device$" err
'

# A name, a pipeline name and an argument that try to end the DOT string
# and add a node of their own.
cat >hostile.yaml <<'YAML'
pipeline: 'p"]; evil1 [label="x'
hosts: web
stages:
  - exec: "echo '\"]; evil2 [label=\"y' \\\\\"\nsecond line"
    name: 'q"]; evil3 [label="z\"] \\ <i>'
  - exec: "printf '<b>&amp; }{|\t\x01'"
YAML

test_expect_success 'hostile names and arguments stay text in the DOT' '
	reops_run --graph hostile.yaml >h.dot &&
	dot -Tsvg h.dot >h.svg &&
	graph_summary h.dot >sum &&
	grep "^name " sum >names &&
	printf "name %s\n" p1_start p1_1 p1_2 p1_end >want &&
	test_cmp want names &&
	test $(grep -c "^edge " sum) = 3 &&
	! grep -q "$(printf "\001")" h.dot
'

test_expect_success 'hostile text: drawn as written, a newline a new line' '
	grep "^text " sum >texts &&
	cat >want <<-\EOF &&
	text p"]; evil1 [label="x
	text q"]; evil3 [label="z\"] \\ <i>
	text command=echo '"'"'"]; evil2 [label="y'"'"' \\"
	text second line
	text command=printf '"'"'<b>&amp; }{|\x09\x01'"'"'
	EOF
	grep -F -x -f want texts >got &&
	test_cmp want got
'

test_expect_success '--graph of two pipelines: one graph, the second after the first' '
	reops_run --graph inc.yaml hostile.yaml >two.dot &&
	test $(grep -c "^digraph" two.dot) = 1 &&
	graph_summary two.dot >sum &&
	test_grep "^edge end -> p\"\]; evil1 \[label=\"x / hosts: web \[then\]$" sum &&
	dot -Tsvg two.dot >/dev/null
'

test_expect_success '--graph masks a secret, and a secret that is a DOT word breaks nothing' '
	mkdir -p label &&
	printf "hosts: web\nparams:\n  t: { secret: true, env: T0760_T }\nstages:\n  - exec: \"true\"\n" >label/p.yaml &&
	T0760_T=label reops_run --graph label/p.yaml >s.dot &&
	dot -Tsvg s.dot >/dev/null &&
	graph_summary s.dot >sum &&
	test_grep "^node \*\*\*/p.yaml / hosts: web$" sum &&
	! grep "^text.*label" sum
'

test_expect_success '--check: the tree with names, when, serial and nested includes' '
	reops_run --check inc.yaml >plan &&
	sed -n "/^stages:/,\$p" plan >got &&
	cat >want <<-\EOF &&
	stages:
	  1      exec command=echo one  (inc.yaml:4:5)
	  2      the inner: pipeline file=sub/inner.yaml  (inc.yaml:5:5)
	         `- include sub/inner.yaml
	  2.1       inner step: exec command=echo inner  (sub/inner.yaml:2:5)
	  2.2       pipeline file=deeper/leaf.yaml  (sub/inner.yaml:4:5)
	            `- include sub/deeper/leaf.yaml
	  2.2.1        exec command=echo leaf  (sub/deeper/leaf.yaml:2:5)
	  3      fix it: exec command=echo fix  (inc.yaml:7:5)
	           when: any(failed, stdout =~ '"'"'^x'"'"')
	           serial: 2 rows at a time
	  4      pretty  (inc.yaml:11:5)
	EOF
	test_cmp want got
'

test_expect_success '--check: the tree goes through a pipe as plain ASCII' '
	! LC_ALL=C grep -q -P "[^\x00-\x7f]" plan
'

test_expect_success '--check and --graph: rolling batches with the targets' '
	cat >roll.yaml <<-\EOF &&
	hosts: web
	serial: [1, 50%]
	max-fail: 50%
	stages:
	  - exec: echo hi
	EOF
	reops_run --check roll.yaml >plan &&
	test_grep "^batches: 1 x2 \(2 batches; serial: 1, 50%\); max-fail: 1 of 2 rows$" plan &&
	reops_run --graph roll.yaml >r.dot &&
	graph_summary r.dot >sum &&
	test_grep "^node roll.yaml / hosts: web / serial: 1, 50%; max-fail: 50%$" sum &&
	printf "hosts: web\nstages: [pretty]\n" >noroll.yaml &&
	reops_run --check noroll.yaml >plan &&
	! grep "^batches" plan
'

# The branch stage (issue 9) may not be in this build yet.
if reops_run --list-stages | grep -q "^branch "; then
cat >br.yaml <<'YAML'
hosts: web
stages:
  - exec: echo web-1
  - branch:
      one:
        when: { column: stdout, match: "^web-1" }
        stages:
          - exec: echo first
          - branch:
              deep:
                when: successful
                stages:
                  - exec: echo deep
      two:
        when: failed
        stages:
          - exec: echo second
    name: by row
  - pretty
YAML

test_expect_success 'branch: --graph has one cluster per branch, by name' '
	reops_run --graph br.yaml >b.dot &&
	dot -Tsvg b.dot >/dev/null &&
	graph_summary b.dot >sum &&
	grep "^cluster" sum >got &&
	cat >want <<-\EOF &&
	cluster one: 2.1.1  exec / command=echo first | 2.1.2  branch | merge | 2.1.2.1.1  exec / command=echo deep
	cluster deep: 2.1.2.1.1  exec / command=echo deep
	cluster two: 2.2.1  exec / command=echo second
	EOF
	test_cmp want got
'

test_expect_success 'branch: fan-out with the when on each edge, merge, pass-by' '
	grep "^edge" sum | sort >got &&
	sort >want <<-\EOF &&
	edge br.yaml / hosts: web -> 1  exec / command=echo web-1
	edge 1  exec / command=echo web-1 -> 2  branch / by row
	edge 2  branch / by row -> 2.1.1  exec / command=echo first [stdout =~ '"'"'^web-1'"'"']
	edge 2.1.1  exec / command=echo first -> 2.1.2  branch
	edge 2.1.2  branch -> 2.1.2.1.1  exec / command=echo deep [successful]
	edge 2.1.2.1.1  exec / command=echo deep -> merge
	edge 2.1.2  branch -> merge [rows no branch selects] (dashed)
	edge merge -> merge
	edge 2  branch / by row -> 2.2.1  exec / command=echo second [failed]
	edge 2.2.1  exec / command=echo second -> merge
	edge 2  branch / by row -> merge [rows no branch selects] (dashed)
	edge merge -> 3  pretty
	edge 3  pretty -> end
	EOF
	test_cmp want got
'

test_expect_success 'branch: with an any-status branch no row passes by' '
	cat >all.yaml <<-\EOF &&
	hosts: web
	stages:
	  - branch:
	      some: { when: failed, stages: [ { exec: echo a } ] }
	      rest: { when: any-status, stages: [ { exec: echo b } ] }
	EOF
	reops_run --graph all.yaml >a.dot &&
	graph_summary a.dot >sum &&
	! grep "rows no branch selects" sum &&
	test $(grep -c -- "-> merge" sum) = 2 &&
	reops_run --check all.yaml >plan &&
	test_grep "^ +\+- some  when: failed$" plan &&
	test_grep "^  1\.1\.1 +\|  exec command=echo a " plan &&
	test_grep "^ +\`- rest  when: any-status$" plan &&
	test_grep "^  1\.2\.1 +   exec command=echo b " plan &&
	! grep "rows no branch selects" plan
'

test_expect_success 'branch: --check shows each branch, its when and stages nested' '
	reops_run --check br.yaml >plan &&
	test_grep "^  2 +by row: branch " plan &&
	test_grep "^ +\+- one  when: stdout =~ .\^web-1.$" plan &&
	test_grep "^  2\.1\.1 +\|  exec command=echo first " plan &&
	test_grep "^ +\|  \+- deep  when: successful$" plan &&
	test_grep "^  2\.1\.2\.1\.1 +\|  \|  exec command=echo deep " plan &&
	test_grep "^ +\+- two  when: failed$" plan &&
	test_grep "^  2\.2\.1 +\|  exec command=echo second " plan &&
	test $(grep -c "\`- rows no branch selects pass through" plan) = 2 &&
	test_grep "^  3 +pretty " plan
'
else
	test_skip 'branch: --graph and --check' \
	    'reops-run --list-stages has no branch stage in this build'
fi

test_done
