#!/bin/bash
# t0400: secret params. The value comes from the environment or
# --set-file, reaches the command whole (it writes the value's sha256,
# which the test checks), and is nowhere in what reops-run writes: pretty,
# --json, the json stage's file, --check, -v -v, error messages, the
# commands' own stdout and stderr (also when split across two reads), and,
# over ssh, not in any command line that ps shows while the command runs.
. "$SRCDIR/tests/test-lib.sh"

mkdir -p hosts.d
cat >hosts.d/local.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [a, b]
YAML

# A value no output has by chance, with every character a shell quotes.
SECRET="tok-$$-'q\"d\$v\`b\\ *?;x-end"
printf '%s\n' "$SECRET" >secret.pat
WANT_SUM=$(printf '%s' "$SECRET" | sha256sum | cut -d" " -f1)
T0400_TOKEN=$SECRET
export T0400_TOKEN

# no_secret FILE...: none of the files holds the value (grep -f: the value
# is never on a command line of the test either).
no_secret () {
	if grep -F -n -f "$TRASH/secret.pat" "$@" >found; then
		echo "the secret is in:" >&2
		cat found >&2
		return 1
	fi
}

# sums_ok FILE...: each file holds the sha256 of the value.
sums_ok () {
	for f in "$@"; do
		test "$(cat "$f")" = "$WANT_SUM" ||
		{ echo "$f: '$(cat "$f")', expected $WANT_SUM" >&2; return 1; }
	done
}

# The command hashes the value, says it on stdout and stderr, and prints
# it once more in two writes with a pause between (two reads for us).
cat >p.yaml <<'YAML'
hosts: here
params:
  token: { secret: true, env: T0400_TOKEN }
stages:
  - exec: |
      printf %s ${token} | sha256sum | cut -d" " -f1 >"${target}.sum"
      echo "out:"${token}
      echo "err:"${token} >&2
      printf %s ${token} | head -c 7; sleep 0.3; printf %s ${token} | tail -c +8
  - json: { file: table.json }
  - pretty
YAML

test_expect_success 'the command gets the value; pretty shows *** in its place' '
	rm -f a.sum b.sum &&
	reops_run p.yaml >out 2>err &&
	sums_ok a.sum b.sum &&
	test_grep "^    out:\*\*\*$" out &&
	test_grep "^    err:\*\*\*$" out &&
	test_grep "^    \*\*\*$" out &&
	no_secret out err table.json
'

test_expect_success '--json: stdout and stderr masked, also across two reads' '
	reops_run --json p.yaml >out 2>err &&
	json_get stdout out >got &&
	printf "out:***\n***\nout:***\n***\n" >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	printf "err:***\nerr:***\n" >want &&
	test_cmp want got &&
	no_secret out err
'

test_expect_success 'the json stage file has *** and no value' '
	rm -f table.json &&
	reops_run -q p.yaml >/dev/null &&
	json_get stdout table.json >got &&
	printf "out:***\n***\nout:***\n***\n" >want &&
	test_cmp want got &&
	no_secret table.json
'

test_expect_success '-v -v: the logs do not have it' '
	reops_run -v -v --json p.yaml >out 2>err &&
	test_grep "debug: " err &&
	no_secret out err
'

test_expect_success '--check: the plan names the variable, not the value' '
	reops_run --check p.yaml >plan 2>err &&
	test_grep "exec command=eval \"\\\$\(cat\)\"; printf %s \"\\\$REOPS_SECRET_token\"" plan &&
	no_secret plan err
'

test_expect_success '--check needs no value; a run does, exit 2 at the param' '
	reops_run --check p.yaml >plan 2>err &&
	test_grep "REOPS_SECRET_token" plan &&
	rm -f a.sum b.sum &&
	(unset T0400_TOKEN && test_exit 2 reops_run p.yaml) >out 2>err &&
	echo "p.yaml:3:3: secret parameter '"'"'token'"'"' has no value: set the environment variable '"'"'T0400_TOKEN'"'"', or give --set-file token=FILE" >want &&
	test_cmp want err &&
	test ! -e a.sum &&
	(T0400_TOKEN= && test_exit 2 reops_run p.yaml) 2>err &&
	test_grep "^p.yaml:3:3: secret parameter .token. has no value" err &&
	test_exit 2 reops_run --set token= p.yaml 2>err &&
	test_grep "^p.yaml:3:3: secret parameter .token. has no value" err
'

test_expect_success 'a command whose error quotes the value: masked' '
	cat >err.yaml <<-\YAML &&
	hosts: a
	params:
	  token: { secret: true, env: T0400_TOKEN }
	stages:
	  - exec: ${token}
	YAML
	test_exit 1 reops_run err.yaml >out 2>err &&
	test_grep "^reops-run: a: failed \(code 127\): .*\*\*\*" err &&
	no_secret out err &&
	test_exit 1 reops_run --json err.yaml >out 2>err &&
	test_grep "\*\*\*: (command )?not found" out &&
	no_secret out err
'

# The value is also the pipeline's directory: the debug line of each stage,
# the plan and a load error all quote that path.
test_expect_success 'a log line, the plan and a load error that quote the value: ***' '
	d="dir-$$-shown" &&
	mkdir -p "$d" &&
	printf "hosts: a\nparams:\n  t: { secret: true, env: T0400_DIR }\nstages:\n  - exec: \"true\"\n" >"$d/p.yaml" &&
	T0400_DIR=$d reops_run -v -v "$d/p.yaml" >out 2>err &&
	test_grep "^reops-run: debug: \*\*\*/p.yaml:5:5: stage .exec." err &&
	! grep -F "$d" err &&
	T0400_DIR=$d reops_run --check "$d/p.yaml" >plan 2>err &&
	test_grep "^pipeline \*\*\*/p.yaml \(\*\*\*/p.yaml\)$" plan &&
	! grep -F "$d" plan err &&
	printf "  - frobnicate\n" >>"$d/p.yaml" &&
	T0400_DIR=$d test_exit 2 reops_run "$d/p.yaml" >out 2>err &&
	echo "***/p.yaml:6:5: unknown stage '"'"'frobnicate'"'"'; '"'"'reops-run --list-stages'"'"' lists them" >want &&
	test_cmp want err
'

test_expect_success '--set-file: the value from a file, one final newline dropped' '
	printf "%s\n" "$SECRET" >token.txt &&
	rm -f a.sum b.sum &&
	(unset T0400_TOKEN && reops_run --json --set-file token=token.txt p.yaml) >out 2>err &&
	sums_ok a.sum b.sum &&
	no_secret out err
'

test_expect_success '--set-file: a multi-line value arrives whole' '
	printf "line-one-$$\nline-two-$$\n\n" >multi.txt &&
	printf "line-one-$$\nline-two-$$\n" | sha256sum | cut -d" " -f1 >want &&
	(unset T0400_TOKEN && reops_run --json --set-file token=multi.txt p.yaml) >out 2>err &&
	cat a.sum >got &&
	test_cmp want got &&
	json_get stdout out | head -1 >got &&
	echo "out:***" >want &&
	test_cmp want got
'

test_expect_success '--set-file of a plain param sets it too' '
	printf "hosts: a\nparams:\n  word: default\nstages:\n  - exec: echo \${word}\n" >plain.yaml &&
	printf "from-file\n" >word.txt &&
	reops_run --json --set-file word=word.txt plain.yaml >out &&
	test "$(json_get stdout out)" = from-file
'

test_expect_success '--set-file errors: one line, exit 2, nothing runs' '
	rm -f a.sum b.sum &&
	test_exit 2 reops_run --set-file token=missing.txt p.yaml 2>err &&
	echo "reops-run: --set-file token: unable to open '"'"'missing.txt'"'"': No such file or directory" >want &&
	test_cmp want err &&
	mkdir -p adir &&
	test_exit 2 reops_run --set-file token=adir p.yaml 2>err &&
	echo "reops-run: --set-file token: unable to read '"'"'adir'"'"': not a regular file" >want &&
	test_cmp want err &&
	mkfifo fifo &&
	test_exit 2 timeout 20 "$REOPS_RUN" --set-file token=fifo p.yaml 2>err &&
	test_grep "^reops-run: --set-file token: unable to read .fifo.: not a regular file$" err &&
	head -c 65537 /dev/zero | tr "\\0" x >big.txt &&
	test_exit 2 reops_run --set-file token=big.txt p.yaml 2>err &&
	test_grep "^reops-run: --set-file token: unable to read .big.txt.: larger than 65536 bytes$" err &&
	printf "a\\0b" >nul.txt &&
	test_exit 2 reops_run --set-file token=nul.txt p.yaml 2>err &&
	test_grep "^reops-run: --set-file token: .nul.txt. holds a NUL byte" err &&
	test_exit 2 reops_run --set-file token p.yaml 2>err &&
	test_grep "^reops-run: --set-file takes name=file, not .token.$" err &&
	test "$(grep -c . err)" -ge 1 &&
	test ! -e a.sum
'

test_expect_success 'a secret only in exec'"'"'s command: elsewhere exit 2 at the use' '
	printf "hosts: a\nparams:\n  token: { secret: true, env: T0400_TOKEN }\nstages:\n  - ls: { path: \"/tmp/\${token}\" }\n" >where.yaml &&
	test_exit 2 reops_run where.yaml 2>err &&
	echo "where.yaml:5:23: secret parameter '"'"'\${token}'"'"' may only be used in the command of an exec stage" >want &&
	test_cmp want err &&
	printf "hosts: \"\${token}\"\nparams:\n  token: { secret: true, env: T0400_TOKEN }\nstages:\n  - exec: \"true\"\n" >sel.yaml &&
	test_exit 2 reops_run sel.yaml 2>err &&
	test_grep "^sel.yaml:1:9: secret parameter .\\$\{token\}. may only be used in the command of an exec stage$" err &&
	no_secret err
'

test_expect_success 'a secret never has its value in a pipeline file' '
	printf "hosts: a\nparams:\n  token: { secret: true, value: inline }\nstages:\n  - exec: \"true\"\n" >inline.yaml &&
	test_exit 2 reops_run inline.yaml 2>err &&
	test_grep "^inline.yaml:3:33: parameter .token. is secret: its value comes from the environment, --set-file or --set, never from a pipeline file$" err &&
	printf "hosts: a\nstages:\n  - exec: echo \${token}\n" >child.yaml &&
	printf "hosts: a\nparams:\n  token: { secret: true, env: T0400_TOKEN }\nstages:\n  - pipeline: { file: child.yaml, params: { token: literal } }\n" >parent.yaml &&
	test_exit 2 reops_run parent.yaml 2>err &&
	test_grep "^parent.yaml:5:52: parameter .token. is secret" err
'

test_expect_success 'an included pipeline uses the secret of the one that includes it' '
	printf "hosts: a\nstages:\n  - exec: printf %%s \${token} | sha256sum | cut -d\" \" -f1 >inc.sum; echo \${token}\n" >child.yaml &&
	printf "hosts: a\nparams:\n  token: { secret: true, env: T0400_TOKEN }\nstages:\n  - pipeline: child.yaml\n" >parent.yaml &&
	rm -f inc.sum &&
	reops_run --json parent.yaml >out 2>err &&
	sums_ok inc.sum &&
	test "$(json_get stdout out)" = "***" &&
	no_secret out err
'

test_expect_success 'params: bad forms are errors at their place' '
	printf "hosts: a\nparams:\n  t: { secret: maybe }\nstages: [pretty]\n" >bad1.yaml &&
	test_exit 2 reops_run bad1.yaml 2>err &&
	test_grep "^bad1.yaml:3:16: .secret. of parameter .t. must be true or false$" err &&
	printf "hosts: a\nparams:\n  t: { secret: true, env: 9X }\nstages: [pretty]\n" >bad2.yaml &&
	test_exit 2 reops_run bad2.yaml 2>err &&
	test_grep "^bad2.yaml:3:27: .env. of parameter .t. must be the name of an environment variable" err &&
	printf "hosts: a\nparams:\n  t: { secrte: true }\nstages: [pretty]\n" >bad3.yaml &&
	test_exit 2 reops_run bad3.yaml 2>err &&
	test_grep "^bad3.yaml:3:8: unknown key .secrte. in parameter .t.; did you mean .secret.\?" err &&
	printf "hosts: a\nparams:\n  t: [x]\nstages: [pretty]\n" >bad4.yaml &&
	test_exit 2 reops_run bad4.yaml 2>err &&
	test_grep "^bad4.yaml:3:6: parameter .t. must be a string or a mapping" err &&
	printf "hosts: a\nparams:\n  a-b: { secret: true, env: T0400_TOKEN }\n  a_b: { secret: true, env: T0400_TOKEN }\nstages: [pretty]\n" >bad5.yaml &&
	test_exit 2 reops_run bad5.yaml 2>err &&
	test_grep "^bad5.yaml:4:3: secret parameters .a-b. and .a_b. would share the shell variable .REOPS_SECRET_a_b.; rename one$" err
'

test_expect_success 'a plain param may come from env: or its value: default' '
	printf "hosts: a\nparams:\n  w: { value: fallback, env: T0400_WORD }\nstages:\n  - exec: echo \${w}\n" >envp.yaml &&
	reops_run --json envp.yaml >out &&
	test "$(json_get stdout out)" = fallback &&
	T0400_WORD=from-env reops_run --json envp.yaml >out &&
	test "$(json_get stdout out)" = from-env &&
	T0400_WORD=from-env reops_run --json --set w=from-set envp.yaml >out &&
	test "$(json_get stdout out)" = from-set &&
	printf "hosts: a\nparams:\n  w: { env: T0400_WORD }\nstages:\n  - exec: echo \${w}\n" >envq.yaml &&
	test_exit 2 reops_run envq.yaml 2>err &&
	test_grep "^envq.yaml:3:3: parameter .w. has no value: set the environment variable .T0400_WORD." err
'

test_expect_success 'with sudo, the value still arrives' '
	if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
		echo "# no sudo here: only the plan is checked" &&
		printf "hosts: a\nparams:\n  token: { secret: true, env: T0400_TOKEN }\nstages:\n  - exec: { command: \"printf %%s \${token} | sha256sum\", sudo: true }\n" >sudo.yaml &&
		reops_run --check sudo.yaml >plan &&
		test_grep "command=eval \"\\\$\(cat\)\"; printf %s \"\\\$REOPS_SECRET_token\" \| sha256sum sudo=true" plan
	else
		printf "hosts: a\nparams:\n  token: { secret: true, env: T0400_TOKEN }\nstages:\n  - exec: { command: \"printf %%s \${token} | sha256sum | cut -c1-64\", sudo: true }\n" >sudo.yaml &&
		reops_run --json sudo.yaml >out &&
		test "$(json_get stdout out)" = "$WANT_SUM"
	fi
'

test_expect_success 'the example pipelines/secret.yaml runs, its token masked' '
	REOPS_DEMO_TOKEN=$SECRET reops_run -i "$SRCDIR/hosts.d" "$SRCDIR/pipelines/secret.yaml" >out 2>err &&
	test_grep "^    $WANT_SUM  -$" out &&
	test_grep "^    token: \*\*\*$" out &&
	no_secret out err
'

# Over ssh: the same, and ps on the host (this machine) never shows it.
if [ "$(id -u)" != 0 ] || [ ! -x /usr/sbin/sshd ]; then
	test_skip 'over ssh: masked, and not in ps on the host' 'needs root and sshd'
	test_done
fi
. "$SRCDIR/tests/lib-ssh.sh"
ssh_hosts 2
mkdir -p sshinv
ssh_group web h1 h2 >sshinv/web.yaml

test_expect_success 'over ssh: the value arrives, output masked, also across reads' '
	sed -e "s/^hosts: here/hosts: web/" -e "s|\"\${target}.sum\"|\"$TRASH/\${target}.sum\"|" p.yaml >sp.yaml &&
	rm -f h1.sum h2.sum &&
	reops_run -i sshinv --json sp.yaml >out 2>err &&
	sums_ok h1.sum h2.sum &&
	json_get stdout out >got &&
	printf "out:***\n***\nout:***\n***\n" >want &&
	test_cmp want got &&
	json_get stderr out >got &&
	printf "err:***\nerr:***\n" >want &&
	test_cmp want got &&
	no_secret out err table.json
'

test_expect_success 'over ssh: while the command runs, ps shows no value' '
	rm -f started release ssh.sum &&
	cat >ps.yaml <<-YAML &&
	hosts: h1
	params:
	  token: { secret: true, env: T0400_TOKEN }
	stages:
	  - exec: |
	      printf %s \${token} | sha256sum | cut -d" " -f1 >$TRASH/ssh.sum
	      touch $TRASH/started
	      i=0; while [ ! -e $TRASH/release ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
	YAML
	{ "$REOPS_RUN" -i sshinv --json ps.yaml >out 2>err & pid=$!; } &&
	i=0 && while [ ! -e started ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done &&
	ps -eo args >ps.out; touch release &&
	{ wait $pid; code=$?; } && test $code = 0 &&
	test -e started &&
	grep -F "$TRASH/release" ps.out | grep -F -q "REOPS_SECRET_token" ||
	{ echo "ps did not show the running command:" >&2; cat ps.out >&2; false; } &&
	no_secret ps.out out err &&
	sums_ok ssh.sum
'

test_expect_success 'over ssh: --set-file gives the value too' '
	printf "%s\n" "$SECRET" >token.txt &&
	rm -f h1.sum h2.sum &&
	(unset T0400_TOKEN && reops_run -i sshinv --json --set-file token=token.txt sp.yaml) >out 2>err &&
	sums_ok h1.sum h2.sum &&
	no_secret out err
'

ssh_done
