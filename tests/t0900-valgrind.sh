#!/bin/bash
# t0900: no leaks and no memory errors in reops-run's own code under
# valgrind: the local transport, loading errors, systems on the test
# hypervisor and ssh sessions. A sanitizer build also checks leaks with
# LeakSanitizer in every test; valgrind cannot run its binary, so here it
# gets a plain one built from the same sources.
. "$SRCDIR/tests/test-lib.sh"

if ! command -v valgrind >/dev/null; then
	test_skip 'valgrind' 'valgrind is not installed'
	test_done
fi
if [ "$SANITIZERS" = yes ]; then
	# valgrind cannot run an ASan binary: build a plain one from the same
	# sources here (the objects of this build are instrumented).
	test_expect_success 'a plain build of the same sources for valgrind' '
		cc -g -O1 -D_GNU_SOURCE -DPACKAGE_VERSION="\"plain\"" \
		    -I"$SRCDIR/runner" -o reops-run-plain $(ls \
		    "$SRCDIR"/runner/*.c | grep -v -e /reops-agent.c \
		    -e /agent-serve.c -e /agent-dispatch.c -e /agent-job.c \
		    -e /agent-reply.c -e /agent-auth.c -e /agent-request.c) \
		    $(pkg-config --cflags --libs yaml-0.1 libssh2 libzmq \
		    libvirt libpcre2-8) -lpthread
	'
	REOPS_RUN="$TRASH/reops-run-plain"
fi

vg () {
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
	    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	    --trace-children=no "$REOPS_RUN" "$@"
}

mkdir -p hosts.d
cat >hosts.d/h.yaml <<'YAML'
groups:
  here:
    transport: local
    hosts: [a, b]
  gone:
    transport: ssh
    hosts: [{ name: closed, address: 127.0.0.1, port: 9 }]
YAML
cat >inc.yaml <<'YAML'
params: { x: "1" }
stages:
  - exec: echo ${x} ${target}
YAML
cat >p.yaml <<'YAML'
hosts: here
params: { path: / }
stages:
  - ls: { path: "${path}", flags: -a }
  - pipeline: { file: inc.yaml, params: { x: "2" } }
  - pick: { column: stdout, match: "^2 a" }
  - pretty
  - json: { file: out.json }
YAML

test_expect_success 'a pipeline run: no leaks, no errors' '
	vg p.yaml >out 2>err &&
	test_grep "^a: ok" out
'

cat >br.yaml <<'YAML'
hosts: here
stages:
  - exec: "echo ${target}; test ${target} = a"
  - exec: "echo fixed"
    when: failed
  - branch:
      one:
        when: { column: target, match: "^a$" }
        stages:
          - pipeline: { file: inc.yaml }
          - parse: { regex: "(?<n>[0-9]+)" }
      two:
        when: any-status
        stages:
          - branch:
              inner: { when: failed, stages: [ { exec: "echo x" } ] }
          - pick: { column: stdout, match: "nothing" }
  - pretty
YAML

test_expect_success 'when and a branch (threads, merge, drops): no leaks' '
	test_exit 1 vg br.yaml >out 2>err &&
	test_grep "^a: ok .*n=1" out &&
	vg --check br.yaml >out 2>err &&
	printf "hosts: here\nstages:\n  - branch:\n      a: { when: failed, stages: [ { exec: \"\${nope}\" } ] }\n" >bad4.yaml &&
	test_exit 2 vg bad4.yaml 2>err &&
	test_grep "unknown param" err
'

test_expect_success '--json, --check and an unreachable row' '
	vg --json p.yaml >out 2>err &&
	vg --check p.yaml >out 2>err &&
	printf "hosts: [here, gone]\nstages: [{exec: \"true\"}]\n" >u.yaml &&
	test_exit 3 vg u.yaml 2>err
'

test_expect_success 'rolling batches: a failure stops them, the rest skipped' '
	printf "hosts: [here, gone]\nserial: [1, 50%%]\nmax-fail: 0\nstages:\n  - { exec: \"test \${target} = a\", serial: 1 }\n  - pick: successful\n  - pretty\n" >r.yaml &&
	test_exit 1 vg r.yaml >out 2>err &&
	test_grep "^closed: skipped" out
'

test_expect_success 'load errors free what they loaded' '
	printf "hosts: here\nstages:\n  - exec: echo \${nope}\n" >bad.yaml &&
	test_exit 2 vg bad.yaml 2>err &&
	test_grep "unknown parameter" err &&
	printf "hosts: here\nstages:\n  - pipeline: bad.yaml\n" >bad2.yaml &&
	test_exit 2 vg bad2.yaml 2>err &&
	printf "hosts: here\nstages:\n  - pick: { column: x, match: \"[\" }\n" >bad3.yaml &&
	test_exit 2 vg bad3.yaml 2>err &&
	test_grep "bad regex" err &&
	printf "hosts: here\nstages:\n  - branch:\n      a: { when: any-status, stages: [ { pick: { column: stdot, match: x } } ] }\n" >bad5.yaml &&
	test_exit 2 vg bad5.yaml 2>err &&
	test_grep "unknown column .stdot. in .pick.; did you mean" err
'

test_expect_success 'row values: copy and json per row, a refused row, a load error' '
	mkdir -p files rv && echo one >files/a &&
	cat >rv.yaml <<-EOF &&
	hosts: here
	stages:
	  - exec: "case \${target} in a) echo a;; b) echo ../x;; esac"
	  - copy: { src: "files/\${row.stdout}", dest: "$TRASH/rv/\${row.target}" }
	  - exec: "echo \${row.sha256} \${row.stdout}"
	  - json: { file: "$TRASH/rv/\${row.target}.json" }
	EOF
	test_exit 1 vg rv.yaml >out 2>err &&
	cmp files/a rv/a &&
	printf "hosts: here\nstages:\n  - exec: echo \${row.stdot}\n" >bad4.yaml &&
	test_exit 2 vg bad4.yaml 2>err &&
	test_grep "did you mean" err
'

test_expect_success 'secrets: a masked run, --set-file and a missing value' '
	printf "hosts: here\nparams:\n  t: { secret: true, env: T0900_T }\nstages:\n  - exec: echo \${t}\n  - pretty\n" >s.yaml &&
	T0900_T=value-0900 vg -v -v s.yaml >out 2>err &&
	test_grep "^    \*\*\*$" out &&
	printf "value-0900\n" >t.txt &&
	vg --set-file t=t.txt --check s.yaml >out 2>err &&
	test_exit 2 vg --set-file t=missing.txt s.yaml 2>err &&
	test_exit 2 vg s.yaml 2>err &&
	test_grep "has no value" err
'

test_expect_success 'publish: nothing listening, and a key that does not load' '
	printf "hosts: here\nstages:\n  - publish: { to: ipc://none.sock, timeout: 1 }\n" >pub.yaml &&
	test_exit 5 vg pub.yaml 2>err &&
	test_grep "2 of 2 rows not delivered" err &&
	printf "hosts: here\nstages:\n  - publish: { to: ipc://none.sock, server-key: none.pub }\n" >pub2.yaml &&
	test_exit 2 vg pub2.yaml 2>err
'

if /usr/bin/python3 -c "import zmq" 2>/dev/null; then
	test_expect_success 'publish: rows delivered to a collector' '
		{ timeout 120 /usr/bin/python3 "$SRCDIR/examples/collector.py" ipc://c.sock \
		    >c.out 2>c.err & } &&
		pid=$! &&
		for i in $(seq 300); do
			grep -q "^listening on" c.err && break
			sleep 0.1
		done &&
		printf "hosts: here\nstages:\n  - exec: echo hi\n  - publish: ipc://c.sock\n" >pub3.yaml &&
		vg pub3.yaml 2>err &&
		for i in $(seq 300); do
			[ $(wc -l <c.out) -ge 2 ] && break
			sleep 0.1
		done &&
		kill $pid &&
		test $(wc -l <c.out) -eq 2
	'
fi

test_expect_success 'systems on the test hypervisor: create to destroy' '
	vg -i "$SRCDIR/hosts.d" --yes --set out=. --set wait=running \
	    "$SRCDIR/pipelines/systems-lifecycle.yaml" >out 2>err &&
	test -s 5-destroy.json &&
	test_grep "^demo-1: ok" out
'

. "$SRCDIR/tests/lib-ssh.sh"
ssh_hosts 2
mkdir -p sshinv
ssh_group web 1 2 >sshinv/web.yaml
cat >s.yaml <<'YAML'
hosts: web
stages:
  - exec: echo hi from ${target}
  - facts
  - pick: successful
  - pretty
YAML

test_expect_success 'ssh hosts: a session per host, its channels, its end' '
	vg -i sshinv s.yaml >out 2>err &&
	test_grep "^1: ok code=0 group=web" out &&
	test_grep "^2 rows: 2 ok" out
'

# --forks 1 over local and ssh rows, and in a branch's lanes: each loop
# held back waits on an eventfd of its own, woken by the others' gives.
test_expect_success 'loops held back by --forks 1 wake each other: no leaks' '
	mkdir -p mixinv && cp sshinv/web.yaml mixinv/ &&
	printf "groups:\n  here:\n    transport: local\n    hosts: [a, b, c]\n" >mixinv/here.yaml &&
	cat >mix.yaml <<-\EOF &&
	hosts: [here, web]
	stages:
	  - exec: echo ${target}
	  - branch:
	      l: { when: { column: group, match: here }, stages: [ { exec: echo l } ] }
	      s: { when: any-status, stages: [ { exec: echo s } ] }
	  - pretty
	EOF
	vg -i mixinv --forks 1 mix.yaml >out 2>err &&
	test_grep "^5 rows: 5 ok" out
'

test_expect_success 'ssh through a bastion: its session, channels and buffers' '
	mkdir -p jumpinv &&
	ssh_group gw 1 >jumpinv/gw.yaml &&
	ssh_group behind 2 -- "proxy-jump: 1" >jumpinv/behind.yaml &&
	sed -e "s/^hosts: web/hosts: behind/" s.yaml >j.yaml &&
	vg -i jumpinv j.yaml >out 2>err &&
	test_grep "^2: ok code=0 group=behind" out
'

test_expect_success 'ssh: an unreachable host is freed as well' '
	sshd_stop_host "$SSHD_DIR" 2 &&
	test_exit 3 vg -i sshinv --timeout 5 s.yaml >out 2>err &&
	test_exit 3 vg -i jumpinv --timeout 5 j.yaml >out 2>err
'

# The agent transport: host 1 over its agent (ping, put-file, exec-input
# with a secret, a deadline's kill), host 2 unpinned, so over ssh, whose
# sshd is stopped above: unreachable.
. "$SRCDIR/tests/lib-agent.sh"
trap 'agent_stop_all; sshd_stop "$SSHD_DIR"' EXIT
REOPS_AGENT_HEARTBEAT_MS=1000
test_expect_success 'agent hosts: requests, a kill, fallback to ssh' '
	agent_keys && chmod 600 runner.key &&
	agent_start v1 "$(sshd_host_addr 1)" &&
	vp=$(sed -e "s/.*://" v1.endpoint) &&
	echo "$(sshd_host_addr 1):$vp $(cat agent.key.pub)" >known_agents &&
	mkdir -p aginv &&
	ssh_group ag 1 2 -- "transport: agent" "fallback: ssh" \
	    "connect-timeout: 2" \
	    "agent: { port: $vp, key: $TRASH/runner.key, known-agents: $TRASH/known_agents }" |
	    sed -e "/transport: ssh/d" >aginv/ag.yaml &&
	echo data >blob &&
	cat >a.yaml <<-EOF &&
	hosts: ag
	params:
	  token: { secret: true, env: T0900_TOKEN }
	stages:
	  - ping
	  - copy: { src: blob, dest: "$TRASH/blob.\${target}" }
	  - exec: "echo \${token} | wc -c"
	  - exec: { command: "sleep 30", timeout: 1 }
	EOF
	T0900_TOKEN=abc test_exit 1 vg -i aginv --json a.yaml >out 2>err &&
	json_get status out >got && printf "failed\nunreachable\n" >want &&
	test_cmp want got &&
	test_grep "running it over ssh instead" err &&
	agent_stop v1
'

ssh_done
