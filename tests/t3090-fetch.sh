#!/bin/bash
# t3090: fetch downloads a file from each host to DEST/TARGET/NAME, on
# local rows and from 20 loopback sshd hosts: every byte (NULs, no final
# newline, more than an ssh window), the checksum checked on both ends, a
# missing or too large source failing its row only, a symbolic link at
# DEST/TARGET refused, an earlier copy replaced by a rename.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

N=20
SQ="'"
ssh_hosts $N
mkdir -p hosts.d src
ssh_group fleet $(seq -f "h%g" 1 $N) >hosts.d/fleet.yaml
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [l1, l2, l3]
YAML

# check_fetched DIR TARGET...: each DIR/T/T.bin is src/T.bin, and the
# row of T in out says where, how many bytes and their sha256.
check_fetched () {
	dir=$1
	shift
	for t in "$@"; do
		cmp "src/$t.bin" "$dir/$t/$t.bin" || return 1
		python3 - "$t" "$dir/$t/$t.bin" "$(wc -c <"src/$t.bin")" \
		    "$(sha256sum <"src/$t.bin" | cut -d" " -f1)" out <<-\EOF || return 1
		import json, sys
		t, path, size, digest, out = sys.argv[1:]
		rows = [json.loads(l) for l in open(out)]
		r = [r for r in rows if r["target"] == t][0]
		want = {"status": "ok", "path": path, "bytes": size,
		    "sha256": digest, "stdout": ""}
		got = {k: r.get(k) for k in want}
		if got != want:
		    sys.exit("%s: %s, not %s" % (t, got, want))
		EOF
	done
}

test_expect_success 'local rows: binary bytes whole, columns, dirs 0700, file 0600' '
	printf "a\0b\0\377\nMARK-t3090-$$\0end" >src/l1.bin &&
	{ head -c 100000 /dev/urandom; printf "\0"; } >src/l2.bin &&
	: >src/l3.bin &&
	pipeline pl.yaml here "fetch: { src: \"$TRASH/src/\${target}.bin\", dest: got }" &&
	reops_run --json pl.yaml >out &&
	check_fetched got l1 l2 l3 &&
	test "$(stat -c %a got)" = 700 &&
	test "$(stat -c %a got/l1)" = 700 &&
	test "$(stat -c %a got/l1/l1.bin)" = 600 &&
	! grep -a "MARK-t3090-$$" out &&
	pipeline pp.yaml here "fetch: { src: \"$TRASH/src/\${target}.bin\", dest: got }" pretty &&
	reops_run pp.yaml >pretty 2>&1 &&
	! grep -a "MARK-t3090-$$" pretty &&
	test_grep "path=got/l1/l1.bin bytes=$(wc -c <src/l1.bin)( |$)" pretty
'

test_expect_success 'an earlier copy is replaced by a rename, nothing left beside it' '
	echo old >got/l2/l2.bin &&
	ln got/l2/l2.bin old-l2 &&
	reops_run --json -l l2 pl.yaml >out &&
	check_fetched got l2 &&
	echo old >expect && test_cmp expect old-l2 &&
	ls -a got/l2 >left &&
	printf ".\n..\nl2.bin\n" >expect && test_cmp expect left
'

test_expect_success 'a symbolic link at the final name is replaced, not written through' '
	echo victim >victim &&
	rm got/l1/l1.bin &&
	ln -s ../../victim got/l1/l1.bin &&
	reops_run --json -l l1 pl.yaml >out &&
	check_fetched got l1 &&
	test ! -L got/l1/l1.bin &&
	echo victim >expect && test_cmp expect victim
'

test_expect_success 'a symbolic link at DEST/TARGET is refused: nothing written there' '
	mkdir -p elsewhere sl &&
	ln -s ../elsewhere sl/l2 &&
	pipeline ps.yaml here "fetch: { src: \"$TRASH/src/\${target}.bin\", dest: sl }" &&
	test_exit 1 reops_run --json ps.yaml >out &&
	json_get status out >got-status &&
	printf "ok\nfailed\nok\n" >expect && test_cmp expect got-status &&
	test_grep "reops-run: fetch: .sl/l2. is a symbolic link: refused" out &&
	ls -A elsewhere >left && test_cmp /dev/null left &&
	check_fetched sl l1 l3
'

test_expect_success 'a missing source fails its row only, with the reason' '
	rm src/l3.bin &&
	pipeline pn.yaml here "fetch: { src: \"$TRASH/src/\${target}.bin\", dest: gotn }" &&
	test_exit 1 reops_run --json pn.yaml >out &&
	json_get status out >got-status &&
	printf "ok\nok\nfailed\n" >expect && test_cmp expect got-status &&
	test "$(json_get code out | sed -n 3p)" = 3 &&
	test "$(json_get stderr out | sed -n 3p)" = \
	    "fetch: $SQ$TRASH/src/l3.bin$SQ: no such file" &&
	check_fetched gotn l1 l2 &&
	test ! -e gotn/l3/l3.bin &&
	: >src/l3.bin
'

test_expect_success 'a directory as source fails its row: not a regular file' '
	pipeline pd.yaml here "fetch: { src: \"$TRASH/src\", dest: gotd }" &&
	test_exit 1 reops_run --json -l l1 pd.yaml >out &&
	test_grep "fetch: .*/src.: not a regular file" out &&
	test ! -e gotd/l1/src
'

# A name that is a shell command in every quoting but one: it stays data.
HOSTILE="q'\$(touch pwned-1)\`touch pwned-2\`;touch pwned-3 \"x.bin"
printf 'hostile\n' >"src/$HOSTILE"
printf 'hosts: here\nstages:\n  - fetch: { src: "%s/src/%s", dest: goth }\n' \
    "$TRASH" "$(printf '%s' "$HOSTILE" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')" >ph.yaml

test_expect_success 'a source named like a shell command is fetched as a name' '
	reops_run --json -l l1 ph.yaml >out &&
	cmp "src/$HOSTILE" "goth/l1/$HOSTILE" &&
	test_grep "\"path\":\"goth/l1/q" out &&
	! ls pwned-* 2>/dev/null
'

test_expect_success 'a source with no last name fails here, before it runs' '
	pipeline pr.yaml here "fetch: { src: \"$TRASH/..//\", dest: gotr }" &&
	test_exit 1 reops_run --json -l l1 pr.yaml >out &&
	test_grep "\"code\":1,.*reops-run: fetch: .$TRASH/..//. names no file" out &&
	test ! -e gotr
'

# Sparse: wc -c counts it without reading; the host refuses it at once.
test_expect_success 'a file over the 256 MiB limit is refused before it is sent' '
	truncate -s 300M src/big.bin &&
	pipeline pb.yaml here "fetch: { src: \"$TRASH/src/big.bin\", dest: gotb }" &&
	test_exit 1 reops_run --json -l l1 pb.yaml >out &&
	test "$(json_get code out)" = 3 &&
	test_grep "fetch: .*big.bin.: 314572800 bytes, more than fetch.s limit of 268435456" out &&
	test ! -e gotb/l1/big.bin
'

# A host whose sha256sum says another digest than what it sends.
test_expect_success 'a checksum mismatch fails the row and writes nothing' '
	mkdir -p liar &&
	printf "#!/bin/sh\ncat >/dev/null; echo %064d \"  -\"\n" 0 >liar/sha256sum &&
	chmod +x liar/sha256sum &&
	pipeline pm.yaml here "fetch: { src: \"$TRASH/src/\${target}.bin\", dest: gotm }" &&
	(PATH="$TRASH/liar:$PATH" && export PATH &&
	    test_exit 1 reops_run --json -l l1 pm.yaml >out) &&
	test_grep "reops-run: fetch: checksum mismatch for .*l1.bin.: the host says 0{64}, what came is $(sha256sum <src/l1.bin | cut -d" " -f1)" out &&
	test "$(json_get stdout out)" = "" &&
	test ! -e gotm/l1/l1.bin
'

test_expect_success "$N ssh hosts, each its own file: all fetched whole" '
	head -c 3000000 /dev/urandom >src/h1.bin &&
	for i in $(seq 2 $N); do
		{ head -c $((i * 997)) /dev/urandom; printf "h$i\0"; } >src/h$i.bin ||
		return 1
	done &&
	pipeline pf.yaml fleet "fetch: { src: \"$TRASH/src/\${target}.bin\", dest: \"$TRASH/fleet\" }" &&
	reops_run --json pf.yaml >out &&
	test "$(json_get status out | sort | uniq -c | sed "s/^ *//")" = "$N ok" &&
	check_fetched "$TRASH/fleet" $(seq -f "h%g" 1 $N) &&
	(cd fleet && sha256sum */*.bin) >fetched.sum &&
	(cd src && sha256sum h*.bin) | sed -e "s/  \(h[0-9]*\)\.bin/  \1\/\1.bin/" |
	    sort -k2 >expect &&
	sort -k2 fetched.sum >got-sum && test_cmp expect got-sum
'

test_expect_success "ssh: a missing source fails its row only" '
	mv src/h7.bin h7.bin &&
	rm -rf fleet &&
	test_exit 1 reops_run --json pf.yaml >out &&
	json_get status out | sort | uniq -c | sed "s/^ *//" >got-status &&
	printf "1 failed\n$((N - 1)) ok\n" >expect && test_cmp expect got-status &&
	test_grep "\"target\":\"h7\".*\"code\":3,.*fetch: .*h7.bin.: no such file" out &&
	test ! -e fleet/h7/h7.bin &&
	check_fetched "$TRASH/fleet" h1 h6 h8 h$N &&
	mv h7.bin src/h7.bin
'

test_expect_success '--check shows the stage with its keys' '
	reops_run --check pf.yaml >plan &&
	test_grep "^  1 +fetch src=$TRASH/src/\\$\\{target\\}.bin dest=$TRASH/fleet " plan &&
	test ! -e fleet/h7
'

test_expect_success 'pipelines/fetch.yaml on ssh and local rows' '
	reops_run --set dest="$TRASH/os" --json "$SRCDIR/pipelines/fetch.yaml" >out &&
	test "$(json_get status out | sort | uniq -c | sed "s/^ *//")" = "$((N + 3)) ok" &&
	for t in h1 h$N l1 l3; do
		cmp /etc/os-release os/$t/os-release || return 1
	done
'

test_expect_success 'a row value in dest is one file name: "../.." from a host fails its row, writes nothing' '
	printf one >src/l1.bin && printf two >src/l2.bin &&
	pipeline prv.yaml here \
	    "exec: \"case \${target} in l1) echo ../../esc-t3090;; *) echo sub;; esac\"" \
	    "fetch: { src: \"$TRASH/src/\${target}.bin\", dest: \"rv/\${row.stdout}\" }" &&
	test_exit 1 reops_run --json -l l1,l2 prv.yaml >out &&
	python3 - out <<-\EOF &&
	import json, sys
	rows = {r["target"]: r for r in map(json.loads, open(sys.argv[1]))}
	assert rows["l1"]["status"] == "failed", rows["l1"]
	assert "${row.stdout}" in rows["l1"]["stderr"], rows["l1"]["stderr"]
	assert rows["l2"]["status"] == "ok", rows["l2"]
	EOF
	test ! -e esc-t3090 &&
	test ! -e ../esc-t3090 &&
	test_cmp src/l2.bin rv/sub/l2/l2.bin
'

test_expect_success 'when: failed fetches from the rows an earlier stage failed' '
	pipeline pwf.yaml here \
	    "exec: \"test \${target} = l3\"" \
	    "{ fetch: { src: \"$TRASH/src/\${target}.bin\", dest: wf }, when: failed }" &&
	test_exit 1 reops_run --json pwf.yaml >out &&
	test -f wf/l1/l1.bin && test -f wf/l2/l2.bin &&
	test ! -e wf/l3
'

ssh_done
