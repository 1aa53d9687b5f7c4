#!/bin/bash
# bench/bench-virt.sh: what systems cost on libvirt's test driver, and how
# much of it is reops-run's own: create then destroy 100 systems on
# test:///default in one run, and ls over 1,000 defined domains (a test
# driver file). Each case is also done with the same libvirt calls by a
# small C program (built here from the heredoc below), so that
#
#   runner overhead per system = (reops-run - raw libvirt - loading) / N
#
# where loading is `reops-run --check` of the same files. The files are
# generated into a temporary directory (never kept).
#
#   bench/bench-virt.sh [REOPS_RUN] [RUNS]
#
# Use a build without sanitizers (see bench-load.sh). Needs GNU time
# (/usr/bin/time, for the peak RSS), cc and libvirt-dev. Prints one line
# per case: the best wall time of RUNS runs (bash's EPOCHREALTIME around
# the process, so it includes its start and exit) and that run's peak RSS.
set -eu

REOPS_RUN=${1:-${REOPS_RUN:-./reops-run}}
RUNS=${2:-5}
CREATE=100
DOMAINS=1000

if [ ! -x /usr/bin/time ]; then
	echo "bench-virt: /usr/bin/time is missing (apt-get install time)" >&2
	exit 2
fi
if [ ! -x "$REOPS_RUN" ]; then
	echo "bench-virt: no reops-run at '$REOPS_RUN'" >&2
	exit 2
fi
REOPS_RUN=$(cd "$(dirname "$REOPS_RUN")" && pwd)/$(basename "$REOPS_RUN")

work=$(mktemp -d /tmp/bench-virt.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

# The raw libvirt calls of each case, as virt.c makes them.
cat >raw.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

static void quiet(void *u, virErrorPtr e) { (void)u; (void)e; }

static void
row(virDomainPtr d)
{
	virDomainInterfacePtr *ifs;
	virDomainInfo info;
	int st, why, n, i;
	char *m;

	virDomainGetState(d, &st, &why, 0);
	if ((n = virDomainInterfaceAddresses(d, &ifs,
	    VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)) > 0) {
		for (i = 0; i < n; i++)
			virDomainInterfaceFree(ifs[i]);
		free(ifs);
	}
	virDomainGetInfo(d, &info);
	if ((m = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
	    "https://reops.dev/xmlns/reops-run/1", 0)) != NULL)
		free(m);
}

int
main(int argc, char **argv)
{
	virConnectPtr c;
	virStoragePoolPtr p;
	virStorageVolPtr v;
	virDomainPtr d;
	char name[64], xml[2048];
	int i, n = atoi(argv[3]);

	virSetErrorFunc(NULL, quiet);
	if ((c = virConnectOpen(argv[2])) == NULL)
		return 1;
	if (strcmp(argv[1], "ls") == 0) {
		for (i = 0; i < n; i++) {
			snprintf(name, sizeof name, "vm-%d", i);
			if ((d = virDomainLookupByName(c, name)) == NULL)
				return 1;
			row(d);
			virDomainFree(d);
		}
	} else {
		p = virStoragePoolLookupByName(c, "default-pool");
		for (i = 0; i < n; i++) {
			snprintf(name, sizeof name, "vm-%d", i);
			if (virDomainLookupByName(c, name) != NULL)
				return 1;
			snprintf(xml, sizeof xml, "<volume><name>%s.qcow2</name>"
			    "<capacity unit='G'>1</capacity><allocation>0"
			    "</allocation><target><format type='qcow2'/>"
			    "</target></volume>", name);
			v = virStorageVolCreateXML(p, xml, 0);
			virStorageVolFree(v);
			snprintf(xml, sizeof xml, "<domain type='test'><name>%s"
			    "</name><metadata><reops:system xmlns:reops="
			    "'https://reops.dev/xmlns/reops-run/1' name='%s' "
			    "type='b' inventory='x'><reops:volume pool="
			    "'default-pool' name='%s.qcow2'/></reops:system>"
			    "</metadata><memory unit='MiB'>64</memory><vcpu>1"
			    "</vcpu><os><type>hvm</type></os><devices><disk "
			    "type='volume' device='disk'><source pool="
			    "'default-pool' volume='%s.qcow2'/><target dev="
			    "'vda' bus='virtio'/></disk><interface type="
			    "'network'><source network='default'/></interface>"
			    "</devices></domain>", name, name, name, name);
			d = virDomainDefineXML(c, xml);
			virDomainCreate(d);
			row(d);
			virDomainFree(d);
		}
		for (i = 0; i < n; i++) {
			snprintf(name, sizeof name, "vm-%d", i);
			d = virDomainLookupByName(c, name);
			free(virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
			    "https://reops.dev/xmlns/reops-run/1", 0));
			virDomainDestroy(d);
			virDomainUndefine(d);
			virDomainFree(d);
			snprintf(name, sizeof name, "vm-%d.qcow2", i);
			v = virStorageVolLookupByName(p, name);
			virStorageVolDelete(v, 0);
			virStorageVolFree(v);
		}
		virStoragePoolFree(p);
	}
	virConnectClose(c);
	return 0;
}
EOF
cc -O2 -o raw raw.c $(pkg-config --cflags --libs libvirt)

# 100 systems on test:///default, blank 1 GiB disks.
mkdir create.d
awk -v n="$CREATE" 'BEGIN {
	print "types:\n  b: {}\nsystems:"
	for (i = 0; i < n; i++)
		printf "  vm-%d: { type: b, hypervisor: { uri: \"test:///default\", pool: default-pool, network: default }, machine: { cpu: 1, ram: 64, disk: 1 } }\n", i
}' >create.d/s.yaml
printf "systems: all\nstages:\n  - create: running\n  - destroy\n" \
    >create.yaml

# 1,000 defined (running) domains with our metadata, in a driver file.
awk -v n="$DOMAINS" 'BEGIN {
	print "<node>"
	for (i = 0; i < n; i++)
		printf "<domain type=\"test\"><name>vm-%d</name><metadata><reops:system xmlns:reops=\"https://reops.dev/xmlns/reops-run/1\" name=\"vm-%d\" type=\"b\" inventory=\"x\"/></metadata><memory unit=\"MiB\">64</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices><interface type=\"network\"><source network=\"net\"/></interface></devices></domain>\n", i, i
	# made-up DHCP leases of the test driver: never contacted
	print "<network><name>net</name><bridge name=\"br9\"/><ip address=\"10.9.0.1\" netmask=\"255.255.0.0\"><dhcp><range start=\"10.9.0.2\" end=\"10.9.255.254\"/></dhcp></ip></network>"
	print "<pool type=\"dir\"><name>pool</name><target><path>/pool</path></target></pool>"
	print "</node>"
}' >node.xml
mkdir ls.d
awk -v n="$DOMAINS" -v uri="test://$work/node.xml" 'BEGIN {
	print "types:\n  b: {}\nsystems:"
	for (i = 0; i < n; i++)
		printf "  vm-%d: { type: b, hypervisor: { uri: \"%s\", pool: pool, network: net }, machine: { cpu: 1, ram: 64, disk: 1 } }\n", i, uri
}' >ls.d/s.yaml
printf "systems: all\nstages:\n  - ls\n" >ls.yaml

# best NAME COMMAND...: the best wall time of RUNS runs, and its peak RSS.
best () {
	name=$1
	shift
	b=
	for i in $(seq 1 "$RUNS"); do
		t0=$EPOCHREALTIME
		/usr/bin/time -f "%M" -o t "$@" >/dev/null 2>&1 </dev/null ||
		    { echo "bench-virt: '$name' failed" >&2; exit 1; }
		t1=$EPOCHREALTIME
		w=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')
		read -r m <t
		if [ -z "$b" ] || awk -v a="$w" -v b="$b" 'BEGIN{exit !(a<b)}'; then
			b=$w
			bm=$m
		fi
	done
	printf "%-44s %7.4f s %7.1f MB\n" "$name" "$b" "$(awk -v m="$bm" 'BEGIN{print m/1024}')"
}

echo "reops-run: $("$REOPS_RUN" --version), $RUNS runs each, best shown"
best "create+destroy $CREATE systems (reops-run)" \
    "$REOPS_RUN" --yes -i create.d create.yaml
best "create+destroy $CREATE systems (raw libvirt)" \
    ./raw create test:///default "$CREATE"
best "load $CREATE systems (reops-run --check)" \
    "$REOPS_RUN" -i create.d --check create.yaml
best "ls $DOMAINS domains (reops-run)" \
    "$REOPS_RUN" -i ls.d ls.yaml
best "ls $DOMAINS domains (raw libvirt)" \
    ./raw ls "test://$work/node.xml" "$DOMAINS"
best "load $DOMAINS systems (reops-run --check)" \
    "$REOPS_RUN" -i ls.d --check ls.yaml
