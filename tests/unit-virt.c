/*
 * unit-virt.c: reading reops-run's metadata element back, in the forms
 * libvirt hands it out (prefixed or not, either quote, entities), and
 * the state names of the ls column.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "virt.h"

static void
test_prefixed(void)
{
	struct virt_meta	m;
	int			r;

	r = virt_meta_parse("<reops:system xmlns:reops=\"" VIRT_NS "\" "
	    "name=\"web-1\" type=\"web\" inventory=\"hosts.d/a &amp; b.yaml\">"
	    "\n  <reops:volume pool=\"default\" name=\"web-1.qcow2\"/>"
	    "\n  <reops:volume pool='default' name='web-1-seed.iso'/>"
	    "\n</reops:system>", &m);
	ok(r == 1, "a prefixed element is ours");
	is_str(m.name, "web-1", "its system name");
	is_str(m.type, "web", "its type");
	is_str(m.inventory, "hosts.d/a & b.yaml", "entities are decoded");
	ok(m.nvolumes == 2, "both volumes");
	is_str(m.pools[1], "default", "single quotes read too (pool)");
	is_str(m.volumes[1], "web-1-seed.iso", "single quotes read too (name)");
	virt_meta_free(&m);
}

static void
test_unprefixed(void)
{
	struct virt_meta	m;
	int			r;

	/* As virsh prints it: the namespace on the element, no prefix. */
	r = virt_meta_parse("<system name=\"x\" type=\"t\" inventory=\"i\">"
	    "<volume pool=\"p\" name=\"x.qcow2\"/></system>", &m);
	ok(r == 1, "an element without a prefix reads the same");
	ok(m.nvolumes == 1 && strcmp(m.volumes[0], "x.qcow2") == 0,
	    "its volume");
	virt_meta_free(&m);
}

static void
test_not_ours(void)
{
	struct virt_meta	m;
	int			r;
	char			many[2048];
	size_t			i;

	r = virt_meta_parse("", &m);
	ok(r == 0, "nothing is not ours");
	r = virt_meta_parse("<system type=\"t\"/>", &m);
	ok(r == 0, "a system without a name is not ours");
	ok(m.name == NULL && m.type == NULL && m.nvolumes == 0,
	    "and leaves nothing behind");
	r = virt_meta_parse("<system name=\"a\"><volume name=\"v\"/>"
	    "</system>", &m);
	ok(r == 1 && m.nvolumes == 0, "a volume without a pool is skipped");
	virt_meta_free(&m);
	r = virt_meta_parse("<system xname=\"a\" name=\"b\"/>", &m);
	ok(r == 1, "an attribute is matched whole");
	is_str(m.name, "b", "xname is not name");
	virt_meta_free(&m);
	r = virt_meta_parse("<system name=\"a", &m);
	ok(r == 0, "a cut-off element is not ours");
	strcpy(many, "<system name=\"a\">");
	for (i = 0; i < 10; i++)
		strcat(many, "<volume pool=\"p\" name=\"v\"/>");
	strcat(many, "</system>");
	r = virt_meta_parse(many, &m);
	ok(r == 1 && m.nvolumes == VIRT_MAX_VOLUMES, "volumes past the "
	    "limit are dropped, not overrun");
	virt_meta_free(&m);
}

static void
test_states(void)
{
	is_str(virt_state_name(VIR_DOMAIN_RUNNING), "running", "running");
	is_str(virt_state_name(VIR_DOMAIN_SHUTOFF), "shutoff", "shutoff");
	is_str(virt_state_name(VIR_DOMAIN_PAUSED), "paused", "paused");
	is_str(virt_state_name(-1), "unknown", "anything else is unknown");
}

int
main(void)
{
	test_prefixed();
	test_unprefixed();
	test_not_ours();
	test_states();
	return tap_done();
}
