#!/bin/bash
# t0500: the man pages are clean and say what the command does: mandoc
# -Tlint, --help against the SYNOPSIS, --list-stages against the STAGES of
# reops-pipeline(5) (names and keys, from --list-stages=json), the README's
# stage table, and every example they cite is a file that runs.
#
# Every pipelines/**.yaml must pass --check. It is checked against the
# shipped hosts.d unless a line of its leading comment block says
#
#   # inventory: tests/some-inventory.d
#
# naming another inventory directory, relative to the source tree (for
# pipelines that need hosts the shipped inventory does not have).
. "$SRCDIR/tests/test-lib.sh"

: "${MANDOC:=mandoc}"
MAN="$SRCDIR/man"

# The options of a usage text, one a line, in order: "-qvy", "--check",
# "-F ssh_config", "--set name=value", "--list-stages", ...
usage_options () {
	grep -o -E '\[[^]]*\]|(^| )--?[A-Za-z][A-Za-z-]*' |
	sed -e 's/^ //' -e 's/^\[//' -e 's/\]$//'
}

# A man page as plain text, one line per line however long.
render () {
	"$MANDOC" -Tascii -O width=300 "$1" | sed -e 's/.\x08//g'
}

test_expect_success 'mandoc -Tlint finds nothing in the three pages' '
	"$MANDOC" -Tlint -Wwarning "$MAN/reops-run.1" \
	    "$MAN/reops-pipeline.5" "$MAN/reops-hosts.5" >lint 2>&1 &&
	test_cmp /dev/null lint
'

test_expect_success '--help has the options of the SYNOPSIS, in order' '
	reops_run --help | usage_options >help &&
	render "$MAN/reops-run.1" |
	    sed -n "/^SYNOPSIS/,/^DESCRIPTION/p" | usage_options >synopsis &&
	test -s help &&
	test_cmp help synopsis
'

test_expect_success 'the SYNOPSIS check tells a missing option' '
	reops_run --help | usage_options >help &&
	sed -e "/^--json$/d" help >fewer &&
	! test_cmp help fewer >/dev/null
'

test_expect_success 'every option of --help is described in reops-run(1)' '
	reops_run --help | usage_options | sed -e "s/[ =].*//" >opts &&
	while read -r o; do
		case $o in
		--*)	names=${o#-} ;;
		*)	names=$(echo "${o#-}" | sed -e "s/./& /g") ;;
		esac
		for n in $names; do
			grep -q -E "^\.It Fl $n( |\$)" "$MAN/reops-run.1" ||
			{ echo "-$n is not described"; return 1; }
		done
	done <opts
'

test_expect_success 'every stage of --list-stages has a .Ss in reops-pipeline(5)' '
	reops_run --list-stages | grep -v "^ " | cut -d" " -f1 >stages &&
	test $(wc -l <stages) -ge 6 &&
	sed -n "/^\.Sh STAGES\$/,/^\.Sh /p" "$MAN/reops-pipeline.5" |
	    sed -n "s/^\.Ss //p" >documented &&
	while read -r s; do
		grep -q -x -F "$s" documented ||
		{ echo "stage $s has no .Ss under STAGES"; return 1; }
	done <stages &&
	while read -r s; do
		grep -q -x -F "$s" stages ||
		{ echo ".Ss $s is not a stage"; return 1; }
	done <documented
'

# The keys of each stage, from --list-stages=json, in its .Ss section of
# reops-pipeline(5): each named with .Cm, each .It Cm KEY Ar TYPE a key
# of the stage with a type word that fits (seconds: integer; boolean;
# mapping; "... | list": a string or a list).
cat >mankeys.py <<\EOF
import json, re, sys
stages = json.load(open(sys.argv[1]))
lines = open(sys.argv[2]).read().split("\n")
lines = lines[lines.index(".Sh STAGES"):]
sections, cur = {}, None
for l in lines[1:]:
    if l.startswith(".Sh "):
        break
    if l.startswith(".Ss "):
        cur = l[4:]
        sections[cur] = []
    elif cur is not None:
        sections[cur].append(l)
def fits(t, ar):
    if t == "integer":
        return ar == "seconds"
    if t in ("boolean", "mapping"):
        return ar == t
    if t == "strings":
        return ar.endswith("| list")
    return ar not in ("seconds", "boolean", "mapping") and "list" not in ar
bad = []
for st in stages:
    name, text = st["name"], sections.get(st["name"], [])
    keys = {k["name"]: k["type"] for k in st["keys"]}
    named = set()
    for l in text:
        named.update(re.findall(r"(?:^\.|\s)Cm ([A-Za-z0-9_-]+)", l))
        m = re.match(r"\.It Cm ([A-Za-z0-9_-]+) Ar (.*)", l)
        if m and m.group(1) not in keys:
            bad.append("%s: .It Cm %s is not a key of the stage" %
                (name, m.group(1)))
        elif m and not fits(keys[m.group(1)], m.group(2)):
            bad.append("%s: key %s is %s, the page says Ar %s" %
                (name, m.group(1), keys[m.group(1)], m.group(2)))
    for k in keys:
        if k not in named:
            bad.append("%s: key %s is not in its .Ss section" % (name, k))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
EOF

test_expect_success 'each stage'\''s keys are in its .Ss of reops-pipeline(5)' '
	reops_run --list-stages=json >stages.json &&
	python3 mankeys.py stages.json "$MAN/reops-pipeline.5"
'

test_expect_success 'the keys check tells a key the page lacks' '
	sed -e "s/{\"name\":\"sudo\"/{\"name\":\"sudoer\"/" stages.json \
	    >more.json &&
	! python3 mankeys.py more.json "$MAN/reops-pipeline.5" >out &&
	test_grep "exec: key sudoer is not in its .Ss section" out
'

# The README's table: "on hosts", "on systems", "on both"; a stage of
# both kinds is in the third column or in the first two.
test_expect_success 'the README'\''s stage table has each stage'\''s row kinds' '
	python3 - stages.json "$SRCDIR/README.md" <<-\EOF
	import json, re, sys
	stages = json.load(open(sys.argv[1]))
	text = open(sys.argv[2]).read().split("\n")
	i = text.index("| on hosts | on systems | on both |")
	cols = [re.findall(r"`([a-z-]+)`", c) for c in text[i + 2].split("|")[1:4]]
	kinds = {}
	for c, ks in zip(cols, (["hosts"], ["systems"], ["hosts", "systems"])):
	    for n in c:
	        kinds.setdefault(n, set()).update(ks)
	bad = 0
	for st in stages:
	    if kinds.get(st["name"], set()) != set(st["rows"]):
	        print("README: %s runs on %s, the table says %s" % (st["name"],
	            sorted(st["rows"]), sorted(kinds.get(st["name"], []))))
	        bad = 1
	for n in set(kinds) - set(s["name"] for s in stages):
	    print("README: %s is not a stage" % n)
	    bad = 1
	sys.exit(bad)
	EOF
'

test_expect_success 'every file the pages cite exists' '
	cat "$MAN"/reops-run.1 "$MAN"/reops-pipeline.5 "$MAN"/reops-hosts.5 |
	    grep -E "^\.(Pa|Dl \\$) " | grep -o -E "(pipelines|hosts\.d)/[A-Za-z0-9._-]+\.yaml" |
	    sort -u >cited &&
	test -s cited &&
	while read -r f; do
		test -f "$SRCDIR/$f" || { echo "$f is cited but missing"; return 1; }
	done <cited
'

# Each literal example of EXAMPLES is lines of the file cited just before.
test_expect_success 'the examples quoted in the pages are in their files' '
	python3 - "$SRCDIR" "$MAN/reops-pipeline.5" "$MAN/reops-hosts.5" <<-\EOF
	import re, sys
	src, bad, n = sys.argv[1], 0, 0
	for page in sys.argv[2:]:
	    lines = open(page).read().split("\n")
	    lines = lines[lines.index(".Sh EXAMPLES"):]
	    cited, block = None, None
	    for l in lines:
	        if block is not None:
	            if l == ".Ed":
	                have = open(src + "/" + cited).read().split("\n")
	                for b in block:
	                    if b.replace("\\e", "\\") not in have:
	                        print("%s: not in %s: %s" % (page, cited, b))
	                        bad += 1
	                n += 1
	                cited, block = None, None
	            else:
	                block.append(l)
	            continue
	        m = re.match(r"\.Pa ((pipelines|hosts\.d)/\S+)", l)
	        if m and cited is None:
	            cited = m.group(1)
	        if l.startswith(".Bd -literal") and cited is not None:
	            block = []
	        if l.startswith(".Sh ") and l != ".Sh EXAMPLES":
	            break
	print("%d examples" % n)
	sys.exit(1 if bad or n < 4 else 0)
	EOF
'

# The commands of EXAMPLES in reops-run(1), run from the source tree as a
# reader would; failures.yaml fails on purpose.
sed -n "s/^\.Dl \\$ reops-run //p" "$MAN/reops-run.1" >examples
test_expect_success 'reops-run(1) has examples' '
	test $(wc -l <examples) -ge 5
'
while read -r args; do
	case $args in
	*failures.yaml*)	want=1 ;;
	*)			want=0 ;;
	esac
	test_expect_success "example: reops-run $args (exit $want)" '
		(cd "$SRCDIR" && eval "test_exit $want \"\$REOPS_RUN\" $args") \
		    >out 2>err
	'
done <examples

test_expect_success 'the failures example keeps only worker-2, as JSON' '
	(cd "$SRCDIR" && test_exit 1 "$REOPS_RUN" pipelines/failures.yaml) >out &&
	json_get target out >targets &&
	echo worker-2 >expect &&
	test_cmp expect targets
'

test_expect_success 'the kernel example includes uname.yaml with its param' '
	(cd "$SRCDIR" && "$REOPS_RUN" --check pipelines/kernel.yaml) >plan &&
	test_grep "^  1\.1 +exec command=uname .-s. " plan &&
	(cd "$SRCDIR" && "$REOPS_RUN" --json pipelines/kernel.yaml) >out &&
	test $(json_get stdout out | grep -c -x Linux) -eq 4
'

# Every pipeline file, checked against its inventory.
for f in $(cd "$SRCDIR" && find pipelines -name "*.yaml" -o -name "*.yml" |
    sort); do
	inv=$(sed -n -e "/^#/!q" -e "s/^# inventory: *//p" "$SRCDIR/$f")
	test_expect_success "--check $f${inv:+ (-i $inv)}" '
		reops_run -i "$SRCDIR/${inv:-hosts.d}" --check "$SRCDIR/$f" \
		    >plan &&
		test_grep "^stages:" plan
	'
done

test_expect_success 'the --check of pipelines can fail' '
	printf "hosts: local\nstages: [ pretty, frobnicate ]\n" >bad.yaml &&
	test_exit 2 reops_run -i "$SRCDIR/hosts.d" --check bad.yaml 2>err &&
	test_grep "^bad.yaml:2:19: unknown stage .frobnicate." err
'

# Every host and system that a hosts.d file declares is in the plan.
test_expect_success 'every file of hosts.d loads, with all its targets' '
	printf "hosts: all\nstages: [pretty]\n" >hosts.yaml &&
	printf "systems: all\nstages: [pretty]\n" >systems.yaml &&
	reops_run -i "$SRCDIR/hosts.d" --check hosts.yaml >plan &&
	reops_run -i "$SRCDIR/hosts.d" --check systems.yaml >>plan &&
	python3 - "$SRCDIR"/hosts.d/*.yaml >declared <<-\EOF &&
	import sys, yaml
	for f in sys.argv[1:]:
	    d = yaml.safe_load(open(f)) or {}
	    for g in (d.get("groups") or {}).values():
	        hosts = g["hosts"] if isinstance(g["hosts"], list) else [g["hosts"]]
	        for h in hosts:
	            print(h["name"] if isinstance(h, dict) else h)
	    for s in (d.get("systems") or {}):
	        print(s)
	EOF
	test -s declared &&
	while read -r t; do
		grep -q -E "^  $t  " plan || { echo "$t is not in the plan"; return 1; }
	done <declared
'

test_expect_success 'a broken file in hosts.d fails the check' '
	cp -r "$SRCDIR/hosts.d" inv &&
	printf "groups:\n  broken:\n    transport: carrier-pigeon\n    hosts: [x]\n" \
	    >inv/99-broken.yaml &&
	test_exit 2 reops_run -i inv --check hosts.yaml 2>err &&
	test_grep "^inv/99-broken.yaml:3:16: unknown transport" err
'

test_done
