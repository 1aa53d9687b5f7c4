#!/bin/bash
# t4010: a real hypervisor: qemu:///session under software emulation (TCG)
# as an unprivileged user. As root, the test drops to nobody with setpriv,
# with HOME and the XDG folders in a private directory, so libvirt starts
# its own session daemon there; it is stopped at the end by its pid file.
# A tiny domain is created (qcow2 overlay of a base image, cloud-init
# seed), stopped, started, reloaded and destroyed; no OS boots in it.
# Then creates are killed and interrupted half-way, and what they leave
# must be nothing that the next create or destroy cannot handle.
# Skips only when the packages are not installed.
. "$SRCDIR/tests/test-lib.sh"

missing=
for c in virsh qemu-system-x86_64 qemu-img xorriso osirrox ssh-keygen; do
	command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
test -x /usr/sbin/libvirtd || command -v libvirtd >/dev/null 2>&1 ||
	missing="$missing libvirtd"
test -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ||
	ls /usr/lib*/libvirt/connection-driver/libvirt_driver_qemu.so \
	    >/dev/null 2>&1 || missing="$missing libvirt-daemon-driver-qemu"
if [ -n "$missing" ]; then
	test_skip "qemu:///session lifecycle" \
	    "not installed:$missing (build-aux/packages-virt.txt)"
	test_done
fi

# Everything the session user touches lives here, readable by it.
D=$(mktemp -d /tmp/reops-t4010.XXXXXX) || exit 1
chmod 755 "$D"
stop_daemons () {
	# A stand-in xorriso still waiting (a failed check) is let go.
	: >"$D/xorriso-go" 2>/dev/null
	test -s "$D/pid" && kill -9 "$(cat "$D/pid")" 2>/dev/null
	pids=
	for f in "$D"/home/run/libvirt/libvirtd.pid \
	    "$D"/home/run/libvirt/virtlogd.pid; do
		test -s "$f" && pids="$pids $(cat "$f")"
	done
	for p in $pids; do kill "$p" 2>/dev/null; done
	for i in $(seq 1 50); do
		alive=
		for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
		test -z "$alive" && break
		sleep 0.1
	done
	rm -rf "$D"
}
trap stop_daemons EXIT

if [ "$(id -u)" = 0 ]; then
	AS_USER="setpriv --reuid=nobody --regid=nogroup --clear-groups"
else
	AS_USER=
fi
as_user () {
	$AS_USER env HOME="$D/home" XDG_CONFIG_HOME="$D/home/.config" \
	    XDG_CACHE_HOME="$D/home/.cache" XDG_DATA_HOME="$D/home/.local" \
	    XDG_RUNTIME_DIR="$D/home/run" TMPDIR="$D/tmp" \
	    ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS" \
	    timeout 120 "$@"
}
URI=qemu:///session
POOL=reops-t4010

test_expect_success 'setup: a session user, a directory pool, a base image' '
	mkdir -p "$D/home/run" "$D/tmp" "$D/pool" "$D/hosts.d" &&
	chmod 700 "$D/home/run" &&
	cp "$REOPS_RUN" "$D/reops-run" &&
	qemu-img create -q -f qcow2 "$D/pool/base.qcow2" 16M &&
	ssh-keygen -q -t ed25519 -N "" -C reops-t4010 -f "$D/key" &&
	cat >"$D/hosts.d/session.yaml" <<-EOF &&
	types:
	  tiny:
	    cloud-init: true
	    auth: { user: reops, key: $D/key }
	systems:
	  qs-1:
	    type: tiny
	    hypervisor: { uri: "$URI", pool: $POOL }
	    machine: { cpu: 1, ram: 64, image: base.qcow2, hostname: tiny-1 }
	EOF
	for s in create start stop reload destroy ls; do
		cp "$SRCDIR/pipelines/systems-$s.yaml" "$D/" || return 1
	done &&
	if [ -n "$AS_USER" ]; then chown -R nobody:nogroup "$D"; fi &&
	as_user virsh -c $URI pool-define-as $POOL dir --target "$D/pool" &&
	as_user virsh -c $URI pool-start $POOL &&
	as_user virsh -c $URI vol-list $POOL >vols &&
	test_grep "base.qcow2" vols
'

rr () {
	(cd "$D" && as_user ./reops-run -i hosts.d --json "$@")
}

test_expect_success 'create: a qcow2 overlay, a cloud-init seed, running' '
	rr systems-create.yaml --set wait=running >out 2>err &&
	json_get state out >actual && echo running >expect &&
	test_cmp expect actual &&
	json_get managed out >actual && echo yes >expect &&
	test_cmp expect actual &&
	as_user virsh -c $URI domstate qs-1 >state &&
	test_grep "^running" state
'

test_expect_success 'the domain carries our metadata, disk and seed' '
	as_user virsh -c $URI dumpxml qs-1 >dom.xml &&
	test_grep "<reops:system xmlns:reops=.https://reops.dev/xmlns/reops-run/1. name=.qs-1. type=.tiny. inventory=.hosts.d/session.yaml.>" dom.xml &&
	test_grep "<reops:volume pool=.$POOL. name=.qs-1.qcow2./>" dom.xml &&
	test_grep "<reops:volume pool=.$POOL. name=.qs-1-seed.iso./>" dom.xml &&
	grep -A3 "device=.cdrom." dom.xml >cdrom &&
	test_grep "<source pool=.$POOL. volume=.qs-1-seed.iso." cdrom &&
	test_grep "<domain type=.(qemu|kvm)." dom.xml &&
	as_user virsh -c $URI vol-dumpxml --pool $POOL qs-1.qcow2 >vol.xml &&
	test_grep "<path>$D/pool/base.qcow2</path>" vol.xml &&
	sed -n "/<backingStore>/,/<\/backingStore>/p" vol.xml >backing &&
	test_grep "<format type=.qcow2./>" backing
'

test_expect_success 'the seed is a NoCloud ISO with the user, key and hostname' '
	as_user virsh -c $URI vol-download --pool $POOL qs-1-seed.iso \
	    "$D/tmp/seed.iso" &&
	xorriso -indev "$D/tmp/seed.iso" -pvd_info 2>/dev/null >pvd &&
	test_grep "^Volume Id +: cidata$" pvd &&
	osirrox -indev "$D/tmp/seed.iso" -extract /user-data ud \
	    -extract /meta-data md 2>/dev/null &&
	test_grep "^#cloud-config$" ud &&
	test_grep "name: \"reops\"" ud &&
	grep -q -F -e "- \"$(cut -d" " -f1-2 "$D/key.pub") reops-t4010\"" ud &&
	test_grep "^hostname: \"tiny-1\"$" ud &&
	test_grep "^local-hostname: \"tiny-1\"$" md
'

test_expect_success 'destroy without --yes does nothing (exit 2)' '
	test_exit 2 rr systems-destroy.yaml </dev/null >out 2>err &&
	test_grep "destructive stages need --yes" err &&
	as_user virsh -c $URI domstate qs-1 >state &&
	test_grep "^running" state
'

test_expect_success 'stop: no OS answers the shutdown, so it is forced off' '
	rr --yes systems-stop.yaml --set timeout=2 >out 2>err &&
	json_get state out >actual && echo shutoff >expect &&
	test_cmp expect actual &&
	json_get stdout out >said &&
	test_grep "still running 2s after the shutdown request; forced off" said
'

test_expect_success 'start, then reload: a fresh domain, still ours' '
	rr systems-start.yaml --set wait=running >out 2>err &&
	json_get state out >actual && echo running >expect &&
	test_cmp expect actual &&
	rr --yes systems-reload.yaml --set wait=running >out 2>err &&
	json_get state out >actual &&
	test_cmp expect actual &&
	json_get stdout out >said &&
	test_grep "^destroyed; deleted volume $POOL/qs-1.qcow2; deleted volume $POOL/qs-1-seed.iso; created qs-1 on qemu:///session" said
'

test_expect_success 'destroy: undefined, its volumes gone, the base image kept' '
	rr --yes systems-destroy.yaml >out 2>err &&
	json_get state out >actual && echo undefined >expect &&
	test_cmp expect actual &&
	json_get stdout out >said &&
	test_grep "deleted volume $POOL/qs-1.qcow2; deleted volume $POOL/qs-1-seed.iso" said &&
	as_user virsh -c $URI list --all --name >doms &&
	! grep -x qs-1 doms &&
	as_user virsh -c $URI vol-list $POOL >vols &&
	test_grep "base.qcow2" vols &&
	! grep "qs-1" vols
'


# A create caught making its seed: a stand-in xorriso says it started, then
# waits for the test to let it go (bounded), so the signal lands while the
# overlay volume exists and the seed does not yet.
test_expect_success 'setup: an xorriso that waits to be let go' '
	mkdir -p "$D/bin" &&
	cat >"$D/bin/xorriso" <<-EOF &&
	#!/bin/sh
	echo \$PPID >"$D/xorriso-started.\$PPID"
	i=0
	while [ ! -e "$D/xorriso-go" ] && [ \$i -lt 1500 ]; do
		sleep 0.1; i=\$((i + 1))
	done
	test -e "$D/xorriso-fail" && exit 1
	exec $(command -v xorriso) "\$@"
	EOF
	chmod 755 "$D/bin/xorriso" &&
	if [ -n "$AS_USER" ]; then chown -R nobody:nogroup "$D/bin"; fi
'

# create_caught SIGNAL: starts a create, sends SIGNAL to reops-run once the
# overlay exists and xorriso is waiting, lets xorriso go; the exit status
# of reops-run in caught.status.
create_caught () {
	# Not joined by &&: "a && (b) &" would put the rm in the background.
	rm -f "$D/xorriso-go" "$D/pid" caught.status || return 1
	here=$PWD
	(cd "$D" && as_user env PATH="$D/bin:$PATH" sh -c \
	    "echo \$\$ >\"$D/pid\"; exec ./reops-run -i hosts.d --json \
	    systems-create.yaml --set wait=running" \
	    >"$here/caught.out" 2>"$here/caught.err"
	    echo $? >"$here/caught.status") &
	i=0 &&
	while { [ ! -s "$D/pid" ] ||
	    [ ! -e "$D/xorriso-started.$(cat "$D/pid")" ]; } && [ $i -lt 1200 ]
	do
		sleep 0.1; i=$((i + 1))
	done &&
	if [ ! -e "$D/xorriso-started.$(cat "$D/pid" 2>/dev/null)" ]; then
		echo "xorriso not started after 120s; reops-run said:"
		cat caught.out caught.err; ls "$D" "$D/pool" "$D/tmp"
		as_user virsh -c $URI list --all
		ps -u nobody -o pid=,ppid=,stat=,etime=,wchan:20=,args= |
		    grep -F "$D"; return 1
	fi &&
	as_user virsh -c $URI vol-list $POOL >vols.caught &&
	if ! grep -q "qs-1.qcow2" vols.caught; then
		echo "no overlay while xorriso runs:"; cat vols.caught
		ls -l "$D/pool"; as_user virsh -c $URI list --all; return 1
	fi &&
	kill -s "$1" "$(cat "$D/pid")" &&
	: >"$D/xorriso-go" &&
	i=0 &&
	while [ ! -s caught.status ] && [ $i -lt 1200 ]; do
		sleep 0.1; i=$((i + 1))
	done &&
	if [ ! -s caught.status ]; then
		echo "reops-run still running 120s after SIG$1"; return 1
	fi
}

nothing_left () {
	as_user virsh -c $URI list --all --name >doms &&
	if grep -x qs-1 doms; then echo "left: domain qs-1"; return 1; fi &&
	as_user virsh -c $URI vol-list $POOL >vols &&
	if grep "qs-1" vols; then echo "left: volumes above"; return 1; fi &&
	if ls "$D/pool" | grep qs-1; then echo "left: files above"; return 1
	fi
}

test_expect_success 'create killed (SIGKILL) mid-way: destroy removes all it left' '
	: >"$D/xorriso-fail" &&
	create_caught KILL &&
	echo 137 >expect && test_cmp expect caught.status &&
	rr --yes systems-destroy.yaml >out 2>err &&
	json_get stdout out >said &&
	test_grep "^destroyed; deleted volume $POOL/qs-1.qcow2$" said &&
	nothing_left &&
	rm -rf "$D"/tmp/reops-seed.* &&
	rm -f "$D/xorriso-fail" &&
	rr systems-create.yaml --set wait=running >out 2>err &&
	json_get state out >actual && echo running >expect &&
	test_cmp expect actual &&
	rr --yes systems-destroy.yaml >out 2>err &&
	nothing_left
'

# SIGINT here; SIGTERM and SIGHUP take the same path once reops-run
# handles them as it does SIGINT.
test_expect_success 'create interrupted mid-way removes what it made (exit 130)' '
	create_caught INT &&
	echo 130 >expect && test_cmp expect caught.status &&
	json_get stderr caught.out >said &&
	test_grep "interrupted while creating .qs-1.; removed what it had made" said &&
	nothing_left &&
	ls -d "$D"/tmp/reops-seed.* >tmpleft 2>/dev/null; test_cmp /dev/null tmpleft &&
	rr systems-create.yaml --set wait=running >out 2>err &&
	json_get state out >actual && echo running >expect &&
	test_cmp expect actual &&
	rr --yes systems-destroy.yaml >out 2>err &&
	nothing_left
'

test_done
