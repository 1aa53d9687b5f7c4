#!/bin/bash
# t0110: hostile input to the loader and the regex engine. Each case is a
# one-line FILE:LINE:COL error and exit 2 within a bounded time (nothing
# hangs, crashes or reads without end): alias bombs, deep nesting, alias
# cycles, devices, FIFOs and huge files as pipelines, includes or
# inventory files, NUL and bad UTF-8, regexes that backtrack without end.
# Parameters are expanded once, and ${name:q} is one shell word.
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d
cat >hosts.d/10-local.yaml <<'YAML'
groups:
  web:
    transport: local
    hosts: [web-1, web-2]
YAML

# bounded SECONDS command...: the command must end within SECONDS (a hang
# or a runaway is a failure, never a stuck suite).
bounded () {
	secs=$1
	shift
	timeout -k 5 "$secs" "$@"
	rc=$?
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "still running after ${secs}s: $*" >&2
	fi
	return "$rc"
}

# one_line FILE: exactly one line, FILE:LINE:COL: message or reops-run: ...
one_line () {
	if [ "$(wc -l <"$1")" -ne 1 ] ||
	    ! grep -Eq "^([^: ]+:[0-9]+:[0-9]+|reops-run): [a-z'-]" "$1"; then
		echo "not one located line:" >&2
		sed -e 's/^/  | /' "$1" | head -5 >&2
		return 1
	fi
}

# The selector is walked to expand ${params}: there a bomb would explode.
test_expect_success 'billion laughs: 10 levels of 8 aliases stop at the budget' '
	{
		printf "hosts:\n  - all\n  - - &a0 [x,x,x,x,x,x,x,x]\n" &&
		for i in 1 2 3 4 5 6 7 8 9; do
			j=$((i - 1)) &&
			printf "    - &a$i [*a$j,*a$j,*a$j,*a$j,*a$j,*a$j,*a$j,*a$j]\n"
		done &&
		printf "stages:\n  - exec: true\n"
	} >laughs.yaml &&
	test "$(wc -c <laughs.yaml)" -lt 600 &&
	bounded 30 "$REOPS_RUN" --check laughs.yaml >out 2>err
	test $? = 2 && one_line err &&
	test_grep "^laughs.yaml:[0-9]+:[0-9]+: aliases repeat more than 1000000 nodes; .\*a[0-9]. is one too many$" err
'

test_expect_success '100,000 nested levels: an error at level 257, no overflow' '
	{
		printf "hosts: all\nstages: " &&
		head -c 100000 /dev/zero | tr "\0" "[" &&
		head -c 100000 /dev/zero | tr "\0" "]" &&
		echo
	} >deep.yaml &&
	bounded 30 "$REOPS_RUN" --check deep.yaml >out 2>err
	test $? = 2 && one_line err &&
	echo "deep.yaml:2:264: nested more than 256 levels deep" >want &&
	test_cmp want err
'

test_expect_success 'nesting through an alias counts the alias target too' '
	{
		printf "hosts:\n  - all\n  - &deep " &&
		head -c 200 /dev/zero | tr "\0" "[" &&
		head -c 200 /dev/zero | tr "\0" "]" &&
		printf "\n  - " &&
		head -c 100 /dev/zero | tr "\0" "[" &&
		printf "*deep" &&
		head -c 100 /dev/zero | tr "\0" "]" &&
		printf "\nstages:\n  - exec: true\n"
	} >viaalias.yaml &&
	test_exit 2 reops_run --check viaalias.yaml >out 2>err &&
	one_line err &&
	test_grep "^viaalias.yaml:4:[0-9]+: alias .\*deep. nests more than 256 levels deep$" err
'

test_expect_success 'an alias inside its own anchor is an error, not a cycle' '
	printf "hosts: &h\n  - all\n  - *h\nstages:\n  - exec: true\n" >cycle.yaml &&
	bounded 30 "$REOPS_RUN" --check cycle.yaml >out 2>err
	test $? = 2 &&
	echo "cycle.yaml:3:5: alias '"'"'*h'"'"' is inside the node it names (at line 1)" >want &&
	test_cmp want err
'

test_expect_success 'include of /dev/zero: not read, an error at the include' '
	printf "hosts: all\nstages:\n  - pipeline: /dev/zero\n" >zero.yaml &&
	bounded 30 "$REOPS_RUN" --check zero.yaml >out 2>err
	test $? = 2 &&
	echo "zero.yaml:3:15: unable to read '"'"'/dev/zero'"'"': not a regular file" >want &&
	test_cmp want err
'

test_expect_success 'a FIFO as include, pipeline or inventory file does not hang' '
	mkfifo fifo.yaml &&
	printf "hosts: all\nstages:\n  - pipeline: fifo.yaml\n" >inc.yaml &&
	bounded 30 "$REOPS_RUN" --check inc.yaml >out 2>err
	test $? = 2 &&
	echo "inc.yaml:3:15: unable to read '"'"'fifo.yaml'"'"': not a regular file" >want &&
	test_cmp want err &&
	bounded 30 "$REOPS_RUN" --check fifo.yaml >out 2>err
	test $? = 2 && one_line err &&
	test_grep "fifo.yaml.: not a regular file" err &&
	mkdir -p fifo.d && mkfifo fifo.d/10-web.yaml &&
	printf "hosts: all\nstages: [ { exec: \"true\" } ]\n" >ok.yaml &&
	bounded 30 "$REOPS_RUN" --check -i fifo.d ok.yaml >out 2>err
	test $? = 2 && one_line err &&
	test_grep "fifo.d/10-web.yaml.: not a regular file" err
'

test_expect_success 'a pipeline over 16 MiB is refused before it is read' '
	cp "$SRCDIR/pipelines/demo.yaml" big.yaml &&
	truncate -s 17M big.yaml &&
	bounded 30 "$REOPS_RUN" --check big.yaml >out 2>err
	test $? = 2 && one_line err &&
	test_grep "big.yaml.: larger than 16 MiB$" err
'

test_expect_success 'a NUL or a bad UTF-8 byte on line 4 is reported there' '
	printf "hosts: all\nstages:\n  - exec: true\n  - exec: \"ab\0c\"\n" >nul.yaml &&
	test_exit 2 reops_run --check nul.yaml >out 2>err &&
	echo "nul.yaml:4:14: control characters are not allowed (byte 0x00)" >want &&
	test_cmp want err &&
	printf "hosts: all\nstages:\n  - exec: true\n  - exec: \"\303\251t\303\251 \377\"\n" >utf.yaml &&
	test_exit 2 reops_run --check utf.yaml >out 2>err &&
	echo "utf.yaml:4:16: invalid leading UTF-8 octet (byte 0xff)" >want &&
	test_cmp want err
'

test_expect_success 'a value used through an alias is expanded once' '
	cat >twice.yaml <<-\YAML &&
	hosts: all
	params:
	  a: "${b}"
	  b: expanded-again
	stages:
	  - exec: &c "echo ${a}"
	  - exec: *c
	YAML
	reops_run --check twice.yaml >plan &&
	test "$(grep -c "exec command=echo \${b}  (twice.yaml" plan)" = 2 &&
	! grep expanded-again plan
'

test_expect_success '${name:q} is one shell word, whatever the value' '
	cat >q.yaml <<-\YAML &&
	hosts: web-1
	params:
	  v: x
	stages:
	  - exec: printf "[%s]" ${v:q} ${target:q}
	YAML
	value="it'"'"'s \$HOME; touch $PWD/q-marker \`id\` \"x\"" &&
	reops_run --json --set "v=$value" q.yaml >out &&
	json_get stdout out >got &&
	printf "[%s][web-1]\n" "$value" >want &&
	test_cmp want got &&
	! test -e q-marker
'

test_expect_success 'kernel.yaml: --set what=-s; touch FILE runs no touch' '
	cp "$SRCDIR/pipelines/kernel.yaml" "$SRCDIR/pipelines/uname.yaml" . &&
	test_exit 1 reops_run --json --set "what=-s; touch $PWD/kernel-marker" \
	    kernel.yaml >out 2>err &&
	! test -e kernel-marker &&
	reops_run --json --set what=-s kernel.yaml >out &&
	test "$(json_get stdout out | sort -u)" = "$(uname -s)"
'

# Names on which -(a|aa)+(a|aa)+(a|aa)+[0-9] backtracks without end.
mkdir -p slow.d
{
	printf "groups:\n  slow:\n    transport: local\n    hosts:\n"
	for i in 1 2 3 4 5 6 7 8 9 10; do
		printf "      - h%s-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" "$i"
	done
} >slow.d/10-slow.yaml
re='-(a|aa)+(a|aa)+(a|aa)+[0-9]'

test_expect_success 'a selector regex that hits the match limit is exit 2' '
	printf "hosts: \"~%s\"\nstages: [ { exec: \"true\" } ]\n" "$re" >slow.yaml &&
	bounded 60 "$REOPS_RUN" --check -i slow.d slow.yaml >out 2>err
	test $? = 2 && one_line err &&
	test_grep "^slow.yaml:1:8: regex .-\(a\|aa\)\+.* gave up on .h1-a+.: match limit exceeded" err
'

test_expect_success '--limit with such a regex is exit 2 too' '
	printf "hosts: all\nstages: [ { exec: \"true\" } ]\n" >all.yaml &&
	bounded 60 "$REOPS_RUN" --check -i slow.d --limit "~$re" all.yaml \
	    >out 2>err
	test $? = 2 && one_line err &&
	test_grep "^reops-run: --limit: regex .* gave up on .h1-a+.: match limit exceeded" err
'

test_expect_success 'pick: a match that gives up fails the row, invert or not' '
	cat >pick.yaml <<-YAML &&
	hosts: web
	stages:
	  - exec: echo -aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
	  - pick: { column: stdout, match: "$re", invert: true }
	YAML
	bounded 60 "$REOPS_RUN" --json pick.yaml >out 2>err
	test $? = 1 &&
	test "$(json_get status out | sort -u)" = failed &&
	test "$(json_get target out | wc -l)" = 2 &&
	json_get stderr out | sort -u >got &&
	test_grep "^reops-run: pick: regex .* gave up on column .stdout.: match limit exceeded" got
'

test_expect_success 'an empty inventory directory is an error, not a crash' '
	mkdir -p empty.d &&
	printf "hosts: all\nstages: [ { exec: \"true\" } ]\n" >all.yaml &&
	test_exit 2 reops_run --check -i empty.d all.yaml >out 2>err &&
	one_line err &&
	test_grep "selects nothing: the inventory has no host" err
'

test_expect_success 'copy: a FIFO or a device as src does not hang the load' '
	mkfifo src.fifo &&
	printf "hosts: all\nstages:\n  - copy: { src: src.fifo, dest: /tmp/t0110-never }\n" >cpf.yaml &&
	bounded 30 "$REOPS_RUN" --check cpf.yaml >out 2>err
	test $? = 2 && one_line err &&
	test_grep "^cpf.yaml:3:18: unable to read .*src.fifo.: not a regular file$" err &&
	printf "hosts: all\nstages:\n  - copy: { src: /dev/zero, dest: /tmp/t0110-never }\n" >cpz.yaml &&
	bounded 30 "$REOPS_RUN" --check cpz.yaml >out 2>err
	test $? = 2 && one_line err &&
	test_grep "/dev/zero.: not a regular file$" err
'

test_done
