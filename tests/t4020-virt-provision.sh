#!/bin/bash
# t4020: provision end to end: systems on a test driver file whose static
# ips are real loopback sshd hosts, so the type's provision pipeline really
# runs over ssh. The host key of a system reops-run created is pinned on
# first contact; a domain it did not create must have a known key.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"

ssh_hosts 2

rows () {
	python3 - "$@" <<-\EOF
	import json, sys
	for line in open(sys.argv[1]):
	    r = json.loads(line)
	    print(" ".join([r["target"], r["status"], str(r["code"])]))
	EOF
}

test_expect_success 'setup: a test driver file, types, systems on loopback' '
	cat >node.xml <<-\EOF &&
	<node>
	  <domain type="test">
	    <name>stranger</name>
	    <memory unit="MiB">128</memory>
	    <os><type>hvm</type></os>
	  </domain>
	  <pool type="dir">
	    <name>lab-pool</name>
	    <target><path>/lab-pool</path></target>
	    <volume><name>base.qcow2</name><capacity unit="G">1</capacity>
	      <target><format type="qcow2"/></target></volume>
	  </pool>
	</node>
	EOF
	mkdir -p inv &&
	hv="{ uri: \"test://$PWD/node.xml\", pool: lab-pool }" &&
	auth="{ user: root, key: $SSH_KEYS/id_ed25519, port: $SSH_PORT }" &&
	cat >inv/lab.yaml <<-EOF &&
	types:
	  web: { provision: $SRCDIR/pipelines/provision-example.yaml, auth: $auth }
	  broken: { provision: ../provision-broken.yaml, auth: $auth }
	  bare: { auth: $auth }
	systems:
	  web-1: { type: web, hypervisor: $hv, machine: { image: base.qcow2, ip: 127.0.0.2 } }
	  web-2: { type: web, hypervisor: $hv, machine: { image: base.qcow2, ip: 127.0.0.3 } }
	  stranger: { type: web, hypervisor: $hv, machine: { disk: 1, ip: 127.0.0.3 } }
	  bad-1: { type: broken, hypervisor: $hv, machine: { disk: 1, ip: 127.0.0.2 } }
	  bare-1: { type: bare, hypervisor: $hv, machine: { disk: 1, ip: 127.0.0.2 } }
	EOF
	cat >provision-broken.yaml <<-\EOF &&
	hosts: all
	stages:
	  - exec: echo half way; exit 3
	EOF
	printf "systems: [web-1, web-2]\nstages:\n  - create: { wait: ssh, timeout: 10 }\n  - provision\n" \
	    >up.yaml
'

test_expect_success 'a domain reops-run did not create: its host key must be known' '
	printf "systems: stranger\nstages:\n  - provision\n" >stranger.yaml &&
	test_exit 3 reops_run -i inv --json stranger.yaml >out 2>err &&
	rows out >actual &&
	echo "stranger unreachable 255" >expect &&
	test_cmp expect actual &&
	json_get stderr out >why &&
	test_grep "host key" why &&
	! test -s "$HOME/.ssh/known_hosts"
'

# vlines ERR: the -v lines of ERR in order, with their times left out.
vlines () {
	grep "^reops-run: [a-z]*: [^ ]*: [a-z]* code=" "$1" |
	    sed -e "s/ time=[0-9]*ms$//"
}

test_expect_success 'create, wait for ssh, provision over ssh on each ip' '
	reops_run -v -i inv --json up.yaml >out 2>err &&
	rows out >actual &&
	printf "%s\n" "web-1 ok 0" "web-2 ok 0" >expect &&
	test_cmp expect actual &&
	vlines err >said &&
	grep "^reops-run: create: " said | sort >actual &&
	printf "%s\n" "reops-run: create: web-1: ok code=0" \
	    "reops-run: create: web-2: ok code=0" >expect &&
	test_cmp expect actual &&
	tail -n 2 said | sort >actual &&
	printf "%s\n" "reops-run: provision: web-1: ok code=0" \
	    "reops-run: provision: web-2: ok code=0" >expect &&
	test_cmp expect actual &&
	test $(grep -c "^reops-run: provision: " said) -eq 2 &&
	json_get stdout out >said &&
	test_grep "^web-1 web root 127\.0\.0\.1 [0-9]+ 127\.0\.0\.2 $SSH_PORT$" said &&
	test_grep "^web-2 web root 127\.0\.0\.1 [0-9]+ 127\.0\.0\.3 $SSH_PORT$" said &&
	json_get managed out >managed &&
	printf "yes\nyes\n" >expect &&
	test_cmp expect managed
'

test_expect_success 'their host keys were pinned in their metadata, not known_hosts' '
	! test -s "$HOME/.ssh/known_hosts" &&
	printf "%s\n" "systems: [web-1, web-2]" "stages:" \
	    "  - create: { wait: ssh, timeout: 10 }" "  - provision" \
	    "  - ls" "  - json: pinned.json" "  - provision" >again.yaml &&
	reops_run -i inv --json again.yaml >out 2>err &&
	rows out >actual &&
	printf "%s\n" "web-1 ok 0" "web-2 ok 0" >expect &&
	test_cmp expect actual &&
	json_get hostkey pinned.json >pinned &&
	hostkey=$(sed -n "s/^\[127\.0\.0\.2\]:$SSH_PORT //p" "$SSHD_DIR/known_hosts") &&
	test -n "$hostkey" &&
	printf "%s\n" "$hostkey" "$hostkey" >expect &&
	test_cmp expect pinned &&
	! test -s "$HOME/.ssh/known_hosts"
'

test_expect_success 'a key other than the pinned one is refused' '
	sed -e "/<pool/,\$d" node.xml >node-pinned.xml &&
	cat >>node-pinned.xml <<-\EOF &&
	  <domain type="test">
	    <name>web-1</name>
	    <memory unit="MiB">128</memory>
	    <os><type>hvm</type></os>
	    <metadata><reops:system xmlns:reops="https://reops.dev/xmlns/reops-run/1" name="web-1" type="web" inventory="x"><reops:hostkey key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"/></reops:system></metadata>
	  </domain>
	EOF
	sed -n "/<pool/,\$p" node.xml >>node-pinned.xml &&
	mkdir -p invp &&
	sed -e "s|/node.xml|/node-pinned.xml|" inv/lab.yaml >invp/lab.yaml &&
	printf "systems: web-1\nstages:\n  - provision\n" >p.yaml &&
	test_exit 3 reops_run -i invp --json p.yaml >out 2>err &&
	rows out >actual &&
	echo "web-1 unreachable 255" >expect &&
	test_cmp expect actual &&
	json_get stderr out >why &&
	test_grep "has changed: the server offers ssh-ed25519 SHA256:.*the system.s domain metadata pins another" why
'

test_expect_success 'the shipped systems-create and systems-provision' '
	reops_run -i inv --json -l "~^web-" \
	    "$SRCDIR/pipelines/systems-create.yaml" --set wait=ssh \
	    "$SRCDIR/pipelines/systems-provision.yaml" >out 2>err &&
	rows out >actual &&
	printf "%s\n" "web-1 ok 0" "web-2 ok 0" "web-1 ok 0" "web-2 ok 0" \
	    >expect &&
	test_cmp expect actual &&
	json_get stdout out >said &&
	test_grep "^web-2 web root 127\.0\.0\.1 [0-9]+ 127\.0\.0\.3 $SSH_PORT$" said
'

test_expect_success 'a failing provision pipeline fails the row, with its code' '
	printf "systems: bad-1\nstages:\n  - create: ip\n  - provision\n" \
	    >bad.yaml &&
	test_exit 1 reops_run -v -i inv --json bad.yaml >out 2>err &&
	rows out >actual &&
	echo "bad-1 failed 3" >expect &&
	test_cmp expect actual &&
	test "$(json_get stdout out)" = "half way" &&
	vlines err >actual &&
	printf "%s\n" "reops-run: create: bad-1: ok code=0" \
	    "reops-run: exec: bad-1: failed code=3" \
	    "reops-run: provision: bad-1: failed code=3" >expect &&
	test_cmp expect actual
'

test_expect_success 'a type with no provision pipeline: exit 2, nothing runs' '
	printf "systems: [bare-1, web-1]\nstages:\n  - provision\n" >none.yaml &&
	test_exit 2 reops_run -i inv --json none.yaml >out 2>err &&
	test_grep "^inv/[^:]+:[0-9]+:[0-9]+: type .bare. names no .provision. pipeline" err &&
	test ! -s out
'

test_expect_success 'a bad provision pipeline: exit 2, at its own line' '
	mkdir -p inv2 &&
	sed -e "s|provision: [^,}]*|provision: ../broken.yaml|" inv/*.yaml >inv2/all.yaml &&
	printf "hosts: all\nstages:\n  - exce: true\n" >broken.yaml &&
	printf "systems: [web-1]\nstages:\n  - provision\n" >one.yaml &&
	test_exit 2 reops_run -i inv2 one.yaml >out 2>err &&
	test_grep "^inv2/../broken.yaml:3:5: unknown stage .exce.; did you mean .exec.\?" err
'

test_expect_success 'a system that does not exist: a failed row' '
	printf "systems: [web-1]\nstages:\n  - provision\n" >gone.yaml &&
	test_exit 1 reops_run -i inv --json gone.yaml >out 2>err &&
	json_get stderr out >why &&
	test_grep "^reops-run: system .web-1. does not exist on " why
'

sshd_stop "$SSHD_DIR"
test_done
