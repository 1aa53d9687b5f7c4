#!/bin/bash
# t0720: ${row.COLUMN} row values. A value a host printed reaches a later
# stage's command as one word of data, whatever it holds (command
# substitution, a ';', a backquote, a quote, a leading '-'), in exec, ls,
# copy and pkg, locally and over ssh; in a local path (copy's src, json's
# file) a value that is not one file name fails its row with the reason
# and touches nothing; a row value never makes the runner send a secret;
# columns added by parse and facts are there for later stages; and
# pipelines/row-values.yaml runs. The load errors are in t0100's corpus.
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [l1, l2]
YAML

# Each value would create a file pwn-$$-N if a shell ran it as code.
P=pwn-$$
VALUES=(
	"\$(touch $P-1)"
	"; touch $P-2"
	"\`touch $P-3\`"
	"-la"
	"it's; touch $P-5 #"
	"--help \$(touch $P-6) > $P-7"
)

test_must_be_empty () {
	if [ -s "$1" ]; then
		echo "$1 is not empty:" >&2
		sed -e 's/^/  | /' "$1" >&2
		return 1
	fi
}

# no_pwn: no file the values name exists, here, in the hosts' home
# directories or where the test writes.
no_pwn () {
	found=$(find "$TRASH" /root -maxdepth 3 -name "$P-*" 2>/dev/null)
	if [ -n "$found" ]; then
		echo "a row value ran as code: $found" >&2
		# Gone, so that the next test sees only its own.
		rm -f $found
		return 1
	fi
}

# value_pipeline FILE SELECTOR STAGE: the rows' stdout is value.txt (a
# value, then a newline, which row values drop), then STAGE.
value_pipeline () {
	{
		echo "hosts: $2"
		echo "stages:"
		echo "  - exec: \"cat $TRASH/value.txt\""
		echo "  - $3"
	} >"$1"
}

# each_value SELECTOR CHECK: for every value, value.txt holds it and
# CHECK (a function of the value) passes.
each_value () {
	for v in "${VALUES[@]}"; do
		printf '%s\n' "$v" >value.txt &&
		"$2" "$1" "$v" ||
		{ echo "failed for value '$v' on $1" >&2; return 1; }
	done &&
	no_pwn
}

check_exec () {
	value_pipeline e.yaml "$1" "exec: \"printf '[%s]' \${row.stdout} \${row.target}\"" &&
	reops_run --json e.yaml >out &&
	json_get status out | sort -u >got &&
	echo ok >want && test_cmp want got &&
	json_get stdout out >got &&
	json_get target out | while read -r t; do
		printf '[%s][%s]\n' "$2" "$t"
	done >want &&
	test_cmp want got
}

check_exec_sudo () {
	value_pipeline es.yaml "$1" "exec: { command: \"printf '[%s]' \${row.stdout}\", sudo: true }" &&
	reops_run --json es.yaml >out &&
	json_get stdout out | sort -u >got &&
	printf '[%s]\n' "$2" >want &&
	test_cmp want got
}

# ls: a file of that name exists, and is what ls was asked for.
check_ls () {
	rm -rf d && mkdir d && : >"d/$2" &&
	value_pipeline l.yaml "$1" "ls: \"$TRASH/d/\${row.stdout}\"" &&
	reops_run --json l.yaml >out &&
	json_get status out | sort -u >got &&
	echo ok >want && test_cmp want got &&
	json_get stdout out | sort -u >got &&
	printf '%s\n' "$TRASH/d/$2" >want &&
	test_cmp want got
}

# copy: dest is a file of that name, with the bytes of src.
check_copy_dest () {
	rm -rf o && mkdir o &&
	value_pipeline c.yaml "$1" "copy: { src: blob, dest: \"$TRASH/o/\${row.target}-\${row.stdout}\" }" &&
	reops_run --json c.yaml >out &&
	json_get status out | sort -u >got &&
	echo ok >want && test_cmp want got &&
	for t in $(json_get target out); do
		cmp blob "o/$t-$2" || return 1
	done
}

# copy: src is the file of that name beside the pipeline.
check_copy_src () {
	rm -rf files o && mkdir files o &&
	printf 'the file named %s\n' "$2" >"files/$2" &&
	value_pipeline cs.yaml "$1" "copy: { src: \"files/\${row.stdout}\", dest: \"$TRASH/o/\${row.target}\" }" &&
	reops_run --json cs.yaml >out &&
	json_get status out | sort -u >got &&
	echo ok >want && test_cmp want got &&
	for t in $(json_get target out); do
		cmp "files/$2" "o/$t" || return 1
	done
}

# pkg: not a package name, so the row fails with the reason, nothing ran.
check_pkg () {
	value_pipeline pk.yaml "$1" "pkg: { install: [\"\${row.stdout}\"], dry-run: true }" &&
	test_exit 1 reops_run --json pk.yaml >out &&
	json_get status out | sort -u >got &&
	echo failed >want && test_cmp want got &&
	json_get stderr out | sort -u >got &&
	echo "reops-run: pkg: '\${row.stdout}' makes an invalid package name" >want &&
	test_cmp want got &&
	test "$(json_get manager out | sort -u)" = ""
}

head -c 1000 /dev/urandom >blob

# local_tests SELECTOR: every stage, every value.
value_tests () {
	test_expect_success "exec on $1: each value is one word, as it was" "
		each_value $1 check_exec
	"
	test_expect_success "ls on $1: each value is the path, not an option or code" "
		each_value $1 check_ls
	"
	test_expect_success "copy's dest on $1: each value is a file name" "
		each_value $1 check_copy_dest
	"
	test_expect_success "copy's src on $1: each value is a file name here" "
		each_value $1 check_copy_src
	"
	test_expect_success "pkg on $1: each value fails its row, nothing ran" "
		each_value $1 check_pkg
	"
}

value_tests here

# The checks can fail: a value that is code when it is not quoted.
test_expect_success 'the no_pwn check sees a value run as code' '
	printf "%s\n" "\$(touch $P-1)" >value.txt &&
	value_pipeline raw.yaml here "exec: \"eval echo \$(cat $TRASH/value.txt)\"" &&
	reops_run --json raw.yaml >out &&
	! no_pwn 2>/dev/null &&
	rm -f $P-1
'

test_expect_success 'pkg: a value that is a package name goes after --, quoted' '
	mkdir -p fake &&
	cat >fake/apt-get <<-EOF &&
	#!/bin/sh
	printf "%s\n" "\$@" >"$TRASH/apt-args.\$\$"
	EOF
	chmod +x fake/apt-get &&
	printf "%s\n" coreutils >value.txt &&
	value_pipeline pk2.yaml here "pkg: { install: [hello, \"\${row.stdout}\"] }" &&
	PATH="$TRASH/fake:$PATH" reops_run --json pk2.yaml >out &&
	json_get status out | sort -u >got &&
	echo ok >want && test_cmp want got &&
	json_get manager out | sort -u >got &&
	echo apt-get >want && test_cmp want got &&
	test "$(ls apt-args.* | wc -l)" = 2 &&
	for f in apt-args.*; do
		tail -n 3 "$f" >got &&
		printf "%s\n" -- hello coreutils >want &&
		test_cmp want got || return 1
	done
'

# bad_path_values: each a row value no local path may take.
BAD_PATHS=("../secret.txt" ".." "." "" "a/b" "/etc/passwd")

test_expect_success "copy's src: a value that is not one file name fails its row" '
	mkdir -p files && echo secret >secret.txt && echo a >files/a &&
	for v in "${BAD_PATHS[@]}"; do
		rm -rf o && mkdir o &&
		printf "%s\n" "$v" >value.txt &&
		value_pipeline cs2.yaml here "copy: { src: \"files/\${row.stdout}\", dest: \"$TRASH/o/\${row.target}\" }" &&
		test_exit 1 reops_run --json cs2.yaml >out &&
		json_get status out | sort -u >got &&
		echo failed >want && test_cmp want got &&
		json_get stderr out | sort -u >got &&
		test_grep "^reops-run: copy: .\\\$\{row.stdout\}. (contains ./.|is .[.]{1,2}.|is empty); a row value in a local path must be one file name$" got &&
		test "$(ls o | wc -l)" = 0 || { echo "value: $v" >&2; return 1; }
	done
'

test_expect_success "json's file: one file per row, and a value that is not a file name fails its row" '
	mkdir -p j &&
	cat >jv.yaml <<-EOF &&
	hosts: here
	stages:
	  - exec: "case \${target} in l1) echo one;; l2) echo ../escape;; esac"
	  - json: { file: "$TRASH/j/\${row.stdout}.json" }
	EOF
	test_exit 1 reops_run --json jv.yaml >out &&
	json_get status out >got &&
	printf "ok\nfailed\n" >want && test_cmp want got &&
	json_get stderr out | tail -n 1 >got &&
	echo "reops-run: json: '\''\${row.stdout}'\'' contains '\''/'\''; a row value in a local path must be one file name" >want &&
	test_cmp want got &&
	ls j >got &&
	echo one.json >want && test_cmp want got &&
	json_get target j/one.json >got &&
	echo l1 >want && test_cmp want got &&
	test ! -e escape.json && test ! -e "$TRASH/../escape.json"
'

test_expect_success 'json: rows with the same file name share one file, in table order' '
	rm -rf j && mkdir j &&
	cat >js.yaml <<-EOF &&
	hosts: here
	stages:
	  - exec: echo same
	  - json: { file: "$TRASH/j/\${row.stdout}.json" }
	EOF
	reops_run --json js.yaml >out &&
	json_get target j/same.json >got &&
	printf "l1\nl2\n" >want && test_cmp want got
'

test_expect_success 'a row value that spells a secret reference is not sent the secret' '
	printf "%s\n" "\"\$REOPS_SECRET_token\"" >ref.txt &&
	cat >sec.yaml <<-EOF &&
	hosts: here
	params:
	  token: { secret: true, env: T0720_TOKEN }
	stages:
	  - exec: "cat $TRASH/ref.txt; : \${token}"
	  - exec: "cat >$TRASH/stdin.\${target}; printf %s \${row.stdout}"
	EOF
	T0720_TOKEN=tok-$$-value reops_run --json sec.yaml >out &&
	json_get stdout out | sort -u >got &&
	cat ref.txt >want &&
	test_cmp want got &&
	cat stdin.l1 stdin.l2 >got &&
	test_must_be_empty got
'

test_expect_success 'columns from parse and facts, fixed ones, a missing one is empty' '
	cat >cols.yaml <<-EOF &&
	hosts: here
	stages:
	  - exec: "echo load 0.25 1.5"
	  - parse: { regex: "load (?<one>[0-9.]+) (?<five>[0-9.]+)(?<opt> x)?" }
	  - facts
	  - exec: "printf %s/ \${row.one} \${row.five} [\${row.opt}] \${row.os} \${row.status} \${row.code} \${row.group}"
	EOF
	reops_run --json cols.yaml >out &&
	json_get stdout out | sort -u >got &&
	printf "%s\n" "0.25/1.5/[]/$(. /etc/os-release; echo $ID)/ok/0/here/" >want &&
	test_cmp want got
'

test_expect_success 'an included file sees the columns of the stages before it' '
	mkdir -p inc &&
	cat >inc/use.yaml <<-EOF &&
	stages:
	  - exec: "echo \${row.os}-\${row.target}"
	EOF
	cat >incl.yaml <<-EOF &&
	hosts: here
	stages:
	  - facts
	  - pipeline: inc/use.yaml
	EOF
	reops_run --json incl.yaml >out &&
	json_get stdout out >got &&
	os=$(. /etc/os-release; echo $ID) &&
	printf "%s\n" "$os-l1" "$os-l2" >want &&
	test_cmp want got
'

cat >lit.yaml <<'EOF'
hosts: here
stages:
  - exec: "echo '$${row.nothing}'"
EOF
test_expect_success '$${row.x} is the text ${row.x}, not a column' '
	reops_run --json lit.yaml >out &&
	json_get stdout out | sort -u >got &&
	printf "%s\n" "\${row.nothing}" >want &&
	test_cmp want got
'

test_expect_success 'pipelines/row-values.yaml runs: a json file per host' '
	mkdir -p rv &&
	reops_run --set out="$TRASH/rv" "$SRCDIR/pipelines/row-values.yaml" >out 2>err &&
	test_grep "runs Linux [0-9]+\.[0-9]+" out &&
	n=$(reops_run --check "$SRCDIR/pipelines/row-values.yaml" |
	    grep -c "group=") &&
	test "$(ls rv | wc -l)" = "$n" &&
	for f in rv/kernel-*.json; do
		json_get release "$f" | grep -E -x "[0-9]+\.[0-9]+" || return 1
	done
'

if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
	. "$SRCDIR/tests/lib-ssh.sh"
	ssh_hosts 2
	ssh_group web h1 h2 >hosts.d/web.yaml
	value_tests web
	if command -v sudo >/dev/null; then
		test_expect_success 'exec with sudo on web: each value is one word' '
			each_value web check_exec_sudo
		'
	else
		test_skip 'exec with sudo on web: each value is one word' 'no sudo(8)'
	fi
	test_expect_success "copy's src on web: a value that is not one file name fails its row" '
		rm -rf o && mkdir o &&
		printf "%s\n" "../secret.txt" >value.txt &&
		value_pipeline cs3.yaml web "copy: { src: \"files/\${row.stdout}\", dest: \"$TRASH/o/\${row.target}\" }" &&
		test_exit 1 reops_run --json cs3.yaml >out &&
		test "$(json_get status out | sort -u)" = failed &&
		test "$(ls o | wc -l)" = 0
	'
	ssh_done
else
	test_skip 'the values on ssh hosts' 'needs root and /usr/sbin/sshd'
	test_done
fi
