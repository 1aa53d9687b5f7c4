#!/bin/bash
# t4000: systems on libvirt's test hypervisor: the shipped systems-*.yaml
# on test:///default, and a test driver file (domains, a network, a pool)
# for metadata read back, existing systems, missing images, volumes that
# are not ours, bad URIs, readiness and --yes.
#
# The test driver keeps its state in the process, so each check that
# needs several steps runs them as stages (or pipelines) of one reops-run.
. "$SRCDIR/tests/test-lib.sh"

# rows FILE [COLUMN...]: "target status COLUMN=VALUE ..." per NDJSON row.
rows () {
	python3 - "$@" <<-\EOF
	import json, sys
	cols = sys.argv[2:] or ["state", "exists", "managed"]
	for line in open(sys.argv[1]):
	    r = json.loads(line)
	    print(" ".join([r["target"], r["status"]] +
	        ["%s=%s" % (c, r.get(c, "?")) for c in cols]))
	EOF
}

P="$SRCDIR/pipelines"

test_expect_success 'the lifecycle pipeline on test:///default, step by step' '
	reops_run --yes -i "$SRCDIR/hosts.d" "$P/systems-lifecycle.yaml" \
	    --set out="$PWD" >out 2>err &&
	rows 1-create.json state exists managed cpu ram type hypervisor >actual &&
	cat >expect <<-\EOF &&
	demo-1 ok state=running exists=yes managed=yes cpu=1 ram=256 type=demo hypervisor=test:///default
	demo-2 ok state=running exists=yes managed=yes cpu=2 ram=512 type=demo hypervisor=test:///default
	EOF
	test_cmp expect actual &&
	json_get ip 1-create.json >ips &&
	test $(grep -c -E "^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$" ips) -eq 2 &&
	json_get stdout 1-create.json >created &&
	test_grep "^created demo-1 on test:///default" created &&
	rows 2-ls.json >actual &&
	printf "%s\n" "demo-1 ok state=running exists=yes managed=yes" \
	    "demo-2 ok state=running exists=yes managed=yes" >expect &&
	test_cmp expect actual &&
	rows 3-stop.json state ip >actual &&
	printf "%s\n" "demo-1 ok state=shutoff ip=" \
	    "demo-2 ok state=shutoff ip=" >expect &&
	test_cmp expect actual &&
	rows 4-start.json state >actual &&
	printf "%s\n" "demo-1 ok state=running" "demo-2 ok state=running" \
	    >expect &&
	test_cmp expect actual &&
	rows 5-destroy.json state exists >actual &&
	printf "%s\n" "demo-1 ok state=undefined exists=no" \
	    "demo-2 ok state=undefined exists=no" >expect &&
	test_cmp expect actual &&
	json_get stdout 5-destroy.json >destroyed &&
	test_grep "^destroyed; deleted volume default-pool/demo-1.qcow2$" \
	    destroyed
'

test_expect_success 'the one-stage pipelines, run in one process' '
	reops_run --yes --json -i "$SRCDIR/hosts.d" "$P/systems-ls.yaml" \
	    "$P/systems-create.yaml" "$P/systems-stop.yaml" \
	    "$P/systems-start.yaml" "$P/systems-reload.yaml" \
	    "$P/systems-destroy.yaml" "$P/systems-ls.yaml" >out 2>err &&
	rows out state exists >actual &&
	cat >expect <<-\EOF &&
	demo-1 ok state=undefined exists=no
	demo-2 ok state=undefined exists=no
	demo-1 ok state=running exists=yes
	demo-2 ok state=running exists=yes
	demo-1 ok state=shutoff exists=yes
	demo-2 ok state=shutoff exists=yes
	demo-1 ok state=running exists=yes
	demo-2 ok state=running exists=yes
	demo-1 ok state=running exists=yes
	demo-2 ok state=running exists=yes
	demo-1 ok state=undefined exists=no
	demo-2 ok state=undefined exists=no
	demo-1 ok state=undefined exists=no
	demo-2 ok state=undefined exists=no
	EOF
	test_cmp expect actual &&
	json_get stdout out >said &&
	test_grep "^destroyed; deleted volume default-pool/demo-1.qcow2$" said
'

# vlines ERR: the -v lines of ERR, sorted, with their times left out.
vlines () {
	grep "^reops-run: [a-z]*: [^ ]*: [a-z]* code=" "$1" |
	    sed -e "s/ time=[0-9]*ms$//" | sort
}

test_expect_success '-v: one line per system row of each stage, named' '
	reops_run -v --yes --json -i "$SRCDIR/hosts.d" \
	    "$P/systems-create.yaml" "$P/systems-destroy.yaml" >out 2>err &&
	vlines err >actual &&
	cat >expect <<-\EOF &&
	reops-run: create: demo-1: ok code=0
	reops-run: create: demo-2: ok code=0
	reops-run: destroy: demo-1: ok code=0
	reops-run: destroy: demo-2: ok code=0
	EOF
	test_cmp expect actual &&
	test $(grep -c "^reops-run: " err) -eq 4 &&
	grep "^reops-run: create: demo-1: ok code=0 time=[0-9]*ms$" err
'

# A python driver holds the terminal; the live line is drawn at least once
# a stage (the first row to finish draws it if the clock did not).
test_expect_success 'on a terminal: the live line counts system rows too' '
	python3 -c "
import os, pty, select, signal, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(\"/bin/sh\", [\"sh\", \"-c\", sys.argv[1]])
data, start = b\"\", time.monotonic()
while time.monotonic() - start < 120:
    r, _, _ = select.select([fd], [], [], 0.1)
    if not r:
        continue
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
else:
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
open(\"raw\", \"wb\").write(data)
print(os.waitstatus_to_exitcode(status))
" "\"$REOPS_RUN\" --yes -i \"$SRCDIR/hosts.d\" \"$P/systems-create.yaml\" \"$P/systems-destroy.yaml\" >/dev/null" >code &&
	test "$(cat code)" = 0 &&
	tr "\r" "\n" <raw >lines &&
	test_grep "^create [0-2]/2, 0 failed, 0 unreachable, [0-2] running, [0-9]+\.[0-9]s" lines &&
	test_grep "^destroy [0-2]/2, 0 failed, 0 unreachable, [0-2] running, [0-9]+\.[0-9]s" lines
'

test_expect_success 'stop, reload and destroy need --yes without a terminal' '
	test_exit 2 reops_run -i "$SRCDIR/hosts.d" "$P/systems-create.yaml" \
	    "$P/systems-destroy.yaml" </dev/null >out 2>err &&
	test_grep "systems-destroy.yaml: destructive stages need --yes" err &&
	test_cmp /dev/null out &&
	test_exit 2 reops_run -i "$SRCDIR/hosts.d" "$P/systems-stop.yaml" \
	    </dev/null >out 2>err &&
	test_exit 2 reops_run -i "$SRCDIR/hosts.d" "$P/systems-reload.yaml" \
	    </dev/null >out 2>err &&
	test_cmp /dev/null out
'

test_expect_success '--check marks what the destructive stages would do' '
	reops_run -i "$SRCDIR/hosts.d" --check "$P/systems-lifecycle.yaml" \
	    >plan &&
	test_grep "^  6 +stop " plan &&
	test_grep "^ +destructive: would shut each system down" plan &&
	test_grep "^ +destructive: would force off and undefine each system" \
	    plan &&
	test $(grep -c destructive: plan) -eq 2
'

# A test driver file: old-1 carries reops-run's metadata (from another
# inventory), foreign does not; lab-2.qcow2 is a volume that is not ours.
test_expect_success 'a test driver file and an inventory on it' '
	cat >node.xml <<-\EOF &&
	<node>
	  <domain type="test">
	    <name>old-1</name>
	    <metadata>
	      <reops:system xmlns:reops="https://reops.dev/xmlns/reops-run/1"
	          name="old-1" type="lab" inventory="elsewhere.yaml">
	        <reops:volume pool="lab-pool" name="old-1.qcow2"/>
	      </reops:system>
	    </metadata>
	    <memory unit="MiB">384</memory>
	    <vcpu>3</vcpu>
	    <os><type>hvm</type></os>
	    <devices><interface type="network"><source network="lab-net"/></interface></devices>
	  </domain>
	  <domain type="test">
	    <name>foreign</name>
	    <memory unit="MiB">128</memory>
	    <vcpu>1</vcpu>
	    <os><type>hvm</type></os>
	  </domain>
	  <!-- The test driver makes up DHCP leases in this range; nothing
	       is ever sent there (guests of the test driver do not exist). -->
	  <network>
	    <name>lab-net</name>
	    <bridge name="labbr0"/>
	    <ip address="10.9.0.1" netmask="255.255.255.0">
	      <dhcp><range start="10.9.0.10" end="10.9.0.99"/></dhcp>
	    </ip>
	  </network>
	  <pool type="dir">
	    <name>lab-pool</name>
	    <capacity unit="G">100</capacity>
	    <available unit="G">100</available>
	    <target><path>/lab-pool</path></target>
	    <volume><name>base.qcow2</name><capacity unit="G">2</capacity>
	      <target><format type="qcow2"/></target></volume>
	    <volume><name>old-1.qcow2</name><capacity unit="G">2</capacity></volume>
	    <volume><name>keep.img</name><capacity unit="G">1</capacity></volume>
	    <volume><name>lab-2.qcow2</name><capacity unit="G">1</capacity></volume>
	  </pool>
	</node>
	EOF
	mkdir inv &&
	uri="test://$PWD/node.xml" &&
	hv="{ uri: \"$uri\", pool: lab-pool, network: lab-net }" &&
	cat >inv/lab.yaml <<-EOF &&
	types:
	  lab: {}
	systems:
	  lab-1: { type: lab, hypervisor: $hv, machine: { cpu: 2, ram: 256, image: base.qcow2 } }
	  lab-2: { type: lab, hypervisor: $hv, machine: { cpu: 1, ram: 128, image: base.qcow2 } }
	  old-1: { type: lab, hypervisor: $hv, machine: { cpu: 1, ram: 128, image: base.qcow2 } }
	  foreign: { type: lab, hypervisor: $hv, machine: { cpu: 1, ram: 128, disk: 1 } }
	  noimage: { type: lab, hypervisor: $hv, machine: { cpu: 1, ram: 128, image: nope.qcow2 } }
	  nopool: { type: lab, hypervisor: { uri: "$uri", pool: nowhere }, machine: { disk: 1 } }
	EOF
	printf "systems: all\nstages:\n  - ls\n" >ls.yaml &&
	reops_run -i inv --json ls.yaml >out &&
	rows out state exists managed cpu ram >actual &&
	cat >expect <<-\EOF &&
	lab-1 ok state=undefined exists=no managed= cpu=2 ram=256
	lab-2 ok state=undefined exists=no managed= cpu=1 ram=128
	old-1 ok state=running exists=yes managed=yes cpu=3 ram=384
	foreign ok state=running exists=yes managed=no cpu=1 ram=128
	noimage ok state=undefined exists=no managed= cpu=1 ram=128
	nopool ok state=undefined exists=no managed= cpu=1 ram=512
	EOF
	test_cmp expect actual
'

test_expect_success 'create: existing systems, missing image, pool and volumes' '
	printf "systems: all\nstages:\n  - create: ip\n" >create.yaml &&
	test_exit 1 reops_run -i inv --json create.yaml >out &&
	rows out state >actual &&
	cat >expect <<-\EOF &&
	lab-1 ok state=running
	lab-2 failed state=undefined
	old-1 failed state=running
	foreign failed state=running
	noimage failed state=undefined
	nopool failed state=undefined
	EOF
	test_cmp expect actual &&
	json_get stderr out >why &&
	cat >expect <<-EOF &&

	reops-run: volume '\''lab-2.qcow2'\'' already exists in pool '\''lab-pool'\''; not overwriting it
	reops-run: system '\''old-1'\'' already exists on '\''test://$PWD/node.xml'\'' (created from elsewhere.yaml)
	reops-run: a domain named '\''foreign'\'' already exists on '\''test://$PWD/node.xml'\'' (not created by reops-run)
	reops-run: base image '\''nope.qcow2'\'' is not a volume in pool '\''lab-pool'\'' on '\''test://$PWD/node.xml'\''
	EOF
	head -5 why >actual5 &&
	test_cmp expect actual5 &&
	sed -n 6p why >nopool &&
	test_grep "^reops-run: no storage pool .nowhere. on .test://.*: .+" \
	    nopool
'

test_expect_success 'create twice in one run: the second is an error row' '
	printf "systems: lab-1\nstages:\n  - create: ip\n  - create: ip\n" \
	    >twice.yaml &&
	test_exit 1 reops_run -i inv --json twice.yaml >out &&
	json_get stderr out >why &&
	test_grep "system .lab-1. already exists on .test://.*node.xml. \(created from .*inv/lab.yaml\)$" why
'

test_expect_success 'destroy deletes its own volumes only, and not foreign domains' '
	cat >redo.yaml <<-\EOF &&
	systems: [old-1, foreign]
	stages:
	  - destroy
	  - json: destroyed.json
	  - pick: successful
	  - create: ip
	  - json: created.json
	EOF
	test_exit 1 reops_run --yes -i inv redo.yaml >out &&
	rows destroyed.json state >actual &&
	printf "%s\n" "old-1 ok state=undefined" "foreign failed state=running" \
	    >expect &&
	test_cmp expect actual &&
	json_get stdout destroyed.json >said &&
	test_grep "^destroyed; deleted volume lab-pool/old-1.qcow2$" said &&
	json_get stderr destroyed.json >why &&
	test_grep "^reops-run: domain .foreign. on .*was not created by reops-run; not destroying it$" why &&
	rows created.json state managed >actual &&
	echo "old-1 ok state=running managed=yes" >expect &&
	test_cmp expect actual
'

test_expect_success 'bad URIs make unreachable rows with one-line reasons' '
	cat >inv/bad.yaml <<-\EOF &&
	systems:
	  gone: { type: lab, hypervisor: { uri: "test:///nonexistent/node.xml" }, machine: { disk: 1 } }
	  frob: { type: lab, hypervisor: { uri: "frob:///x" }, machine: { disk: 1 } }
	EOF
	printf "systems: [gone, frob]\nstages:\n  - create: ip\n  - ls\n" \
	    >bad.yaml &&
	test_exit 3 reops_run -i inv --json bad.yaml >out 2>err &&
	rows out state exists >actual &&
	printf "%s\n" "gone unreachable state=unknown exists=unknown" \
	    "frob unreachable state=unknown exists=unknown" >expect &&
	test_cmp expect actual &&
	json_get stderr out >why &&
	test $(wc -l <why) -eq 2 &&
	test_grep "^reops-run: unable to connect to .test:///nonexistent/node.xml.: " why &&
	test_grep "^reops-run: unable to connect to .frob:///x.: .+" why &&
	! grep -v "^reops-run: " err
'

# ls passes the unreachable rows by (no when:), so they have no ls line.
test_expect_success '-v: unreachable and failed system rows have their lines' '
	test_exit 3 reops_run -v -i inv --json bad.yaml >out 2>err &&
	vlines err >actual &&
	cat >expect <<-\EOF &&
	reops-run: create: frob: unreachable code=-1
	reops-run: create: gone: unreachable code=-1
	EOF
	test_cmp expect actual &&
	printf "systems: [lab-1, nopool]\nstages:\n  - start\n" >start.yaml &&
	test_exit 1 reops_run -v -i inv --json start.yaml >out 2>err &&
	vlines err >actual &&
	printf "%s\n" "reops-run: start: lab-1: failed code=1" \
	    "reops-run: start: nopool: failed code=1" >expect &&
	test_cmp expect actual
'

# The SSH step of readiness against a real listener on loopback, and
# against a port where nothing listens (static ip, so no lease needed).
test_expect_success 'readiness: ssh port open, and which step never came' '
	python3 -c "
import socket, sys, time
s = socket.socket()
s.bind((\"127.0.0.1\", 0))
s.listen(8)
c = socket.socket()
c.bind((\"127.0.0.1\", 0))
print(s.getsockname()[1], c.getsockname()[1], flush=True)
time.sleep(60)
" >ports &
	pid=$! &&
	for i in $(seq 1 300); do test -s ports && break; sleep 0.1; done &&
	read open closed <ports &&
	uri="test://$PWD/node.xml" &&
	cat >inv/ready.yaml <<-EOF &&
	types:
	  up: { auth: { port: $open } }
	  down: { auth: { port: $closed } }
	systems:
	  ready-1: { type: up, hypervisor: { uri: "$uri", pool: lab-pool }, machine: { disk: 1, ip: 127.0.0.1 } }
	  ready-2: { type: down, hypervisor: { uri: "$uri", pool: lab-pool }, machine: { disk: 1, ip: 127.0.0.1 } }
	EOF
	printf "systems: [ready-1, ready-2]\nstages:\n  - create: { wait: ssh, timeout: 1 }\n" \
	    >ready.yaml &&
	test_exit 1 reops_run -v -i inv --json ready.yaml >out 2>err;
	st=$?; kill $pid; test $st -eq 0 &&
	rows out state ip code >actual &&
	printf "%s\n" "ready-1 ok state=running ip=127.0.0.1 code=0" \
	    "ready-2 failed state=running ip=127.0.0.1 code=124" >expect &&
	test_cmp expect actual &&
	json_get stderr out >why &&
	test_grep "^reops-run: not ready after 1s: ssh port $closed on 127.0.0.1 never opened$" why &&
	grep "^reops-run: create: " err >said &&
	sed -e "s/ time=[0-9]*ms$//" said >actual &&
	printf "%s\n" "reops-run: create: ready-1: ok code=0" \
	    "reops-run: create: ready-2: failed code=124" >expect &&
	test_cmp expect actual &&
	sed -n "2s/.* time=\([0-9]*\)ms$/\1/p" said >ms &&
	test "$(cat ms)" -ge 1000
'

test_expect_success 'cloud-init: the seed is built, but this driver takes no upload' '
	ssh-keygen -q -t ed25519 -N "" -f ci-key &&
	mkdir ci &&
	cat >ci/ci.yaml <<-\EOF &&
	types:
	  ci: { cloud-init: true, auth: { user: u, key: ../ci-key } }
	  nouser: { cloud-init: true }
	  nokey: { cloud-init: true, auth: { user: u } }
	systems:
	  ci-1: { type: ci, hypervisor: { uri: "test:///default", pool: default-pool }, machine: { disk: 1 } }
	  ci-2: { type: nouser, hypervisor: { uri: "test:///default", pool: default-pool }, machine: { disk: 1 } }
	  ci-3: { type: nokey, hypervisor: { uri: "test:///default", pool: default-pool }, machine: { disk: 1 } }
	EOF
	printf "systems: all\nstages:\n  - create: running\n" >ci.yaml &&
	test_exit 1 reops_run -i ci --json ci.yaml >out &&
	json_get stderr out >actual &&
	cat >expect <<-\EOF &&
	reops-run: unable to upload the cloud-init seed to '"'"'ci-1-seed.iso'"'"': this function is not supported by the connection driver: virStorageVolUpload
	reops-run: cloud-init needs a user: set '"'"'user'"'"' in the machine or '"'"'auth.user'"'"' in type '"'"'nouser'"'"'
	reops-run: type '"'"'nokey'"'"' asks for cloud-init but has no '"'"'auth.key'"'"' whose public key to authorize
	EOF
	test_cmp expect actual
'

# ^C while the first system's hypervisor holds its connection open and
# says nothing: the system not reached is skipped in that stage, never ok.
test_expect_success 'interrupted while systems are looked up: the rest skipped, not ok' '
	rm -f mute.port mute.accepted mute.close &&
	python3 -c "
import os, socket, time
s = socket.socket()
s.bind((\"127.0.0.61\", 0)); s.listen(1)
open(\"mute.port.tmp\", \"w\").write(str(s.getsockname()[1]))
os.rename(\"mute.port.tmp\", \"mute.port\")
s.settimeout(60)
c, _ = s.accept()
open(\"mute.accepted\", \"w\").close()
for i in range(600):
    if os.path.exists(\"mute.close\"): break
    time.sleep(0.1)
c.close()
" &
	lpid=$! &&
	i=0; while [ ! -s mute.port ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done &&
	mkdir -p int &&
	cat >int/int.yaml <<-EOF &&
	types:
	  lab: {}
	systems:
	  mute: { type: lab, hypervisor: { uri: "qemu+tcp://127.0.0.61:$(cat mute.port)/system" }, machine: { disk: 1 } }
	  later: { type: lab, hypervisor: { uri: "test:///default" }, machine: { disk: 1 } }
	EOF
	printf "systems: [mute, later]\nstages:\n  - ls\n" >int.yaml &&
	{ "$REOPS_RUN" -i int --json int.yaml >out 2>err & rpid=$!; } &&
	i=0; while [ ! -e mute.accepted ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done &&
	test -e mute.accepted &&
	kill -INT $rpid && : >mute.close &&
	{ wait $rpid; st=$?; } ; kill $lpid 2>/dev/null;
	{ test $st = 130 || { echo "exit $st"; cat err; false; }; } &&
	rows out state >actual &&
	grep "^later " actual >later &&
	echo "later skipped state=?" >expect &&
	test_cmp expect later &&
	python3 -c "
import json
for l in open(\"out\"):
    r = json.loads(l)
    if r[\"target\"] == \"later\": print(r[\"stderr\"], end=\"\")
" >why &&
	echo "reops-run: not started: interrupted" >expect &&
	test_cmp expect why
'

test_expect_success 'an unknown wait step is an error at load time' '
	printf "systems: all\nstages:\n  - create: { wait: forever }\n" >w.yaml &&
	test_exit 2 reops_run -i inv --check w.yaml 2>err &&
	test_grep "^w.yaml:3:21: .wait. of stage .create. must be none, running, ip or ssh, not .forever.$" err
'

test_done
