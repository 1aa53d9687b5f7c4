/*
 * virt.c: systems through libvirt. One connection per hypervisor URI for
 * the whole run (test:///default keeps its state per process, and opening
 * qemu+ssh:// once per row would cost a login each), the hosts made up for
 * provision, our <metadata> element read and written, and a domain's state
 * and address. virt-create.c makes and unmakes domains; virt-wait.c drives
 * a stage over every row and waits for them to be ready.
 *
 * A failed operation fills the op's struct err with one line; virt_stage
 * turns it into the row's status and stderr. libvirt's own printing of
 * errors to stderr is switched off: the row is where errors go.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "virt-int.h"

static void
silent(void *ud, virErrorPtr error)
{
	/* The row's stderr carries the error, not libvirt's default print. */
}

/* libvirt's last error as one line after "what: ". */
int __attribute__((format(printf, 2, 3)))
virt_err(struct err *e, const char *fmt, ...)
{
	struct buf	 b;
	const char	*m;
	va_list		 ap;
	size_t		 i;

	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if ((m = virGetLastErrorMessage()) != NULL && *m != '\0' &&
	    strcmp(m, "no error") != 0)
		buf_printf(&b, ": %s", m);
	for (i = 0; i < b.len; i++)
		if (b.data[i] == '\n' || b.data[i] == '\r')
			b.data[i] = ' ';
	err_set(e, "%s", b.data);
	buf_free(&b);
	virResetLastError();
	return -1;
}

int
last_error_is(int code)
{
	virErrorPtr	ve = virGetLastError();

	return ve != NULL && ve->code == code;
}

struct vconn *
virt_conn(struct run *run, const char *uri)
{
	static int	 quiet;
	struct virt	*v;
	struct vconn	*c;
	struct err	 e;
	size_t		 i;

	if (!quiet) {
		virInitialize();
		virSetErrorFunc(NULL, silent);
		quiet = 1;
	}
	if (run->virt == NULL)
		run->virt = xcalloc(1, sizeof *run->virt);
	v = run->virt;
	for (i = 0; i < v->n; i++)
		if (strcmp(v->c[i].uri, uri) == 0)
			return &v->c[i];
	v->c = xgrow(v->c, v->n, sizeof *v->c);
	c = &v->c[v->n++];
	memset(c, 0, sizeof *c);
	c->uri = xstrdup(uri);
	/*
	 * Failures are kept too: a dead hypervisor is tried once per run.
	 * The test driver's file is checked first, as libxml2 would print
	 * its own warning about a missing one.
	 */
	if (strncmp(uri, "test:///", 8) == 0 && strcmp(uri, "test:///default")
	    != 0 && access(uri + 7, R_OK) != 0) {
		err_set(&e, "unable to connect to '%s': unable to read "
		    "'%s': %s", uri, uri + 7, strerror(errno));
		c->error = xstrdup(e.msg);
	} else if ((c->conn = virConnectOpen(uri)) == NULL) {
		virt_err(&e, "unable to connect to '%s'", uri);
		c->error = xstrdup(e.msg);
	}
	return c;
}

void
virt_close(struct run *run)
{
	struct virt	*v = run->virt;
	size_t		 i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		if (v->c[i].conn != NULL)
			virConnectClose(v->c[i].conn);
		free(v->c[i].uri);
		free(v->c[i].error);
	}
	free(v->c);
	for (i = 0; i < v->nhosts; i++) {
		if (v->hosts[i]->pin != NULL) {
			free(v->hosts[i]->pin->expected);
			free(v->hosts[i]->pin->seen);
			free(v->hosts[i]->pin);
		}
		free((char *)v->hosts[i]->name);
		free((char *)v->hosts[i]->address);
		free(v->hosts[i]->group);
		free(v->hosts[i]);
	}
	free(v->hosts);
	free(v);
	run->virt = NULL;
}

/*
 * A host row's inventory entry for a system, so that host stages run on it
 * over ssh with its type's auth: a group of its own per host, as the type
 * may differ, freed by virt_close. A system we created (pin) has its host
 * key checked against its metadata, and learned there on first contact.
 */
struct host *
virt_host(struct run *run, const struct system *s, const char *ip,
    int pin)
{
	struct virt_meta	 m;
	struct vconn		*c;
	virDomainPtr		 dom;
	struct group		*g;
	struct host		*h;
	struct virt		*v;

	if (run->virt == NULL)
		run->virt = xcalloc(1, sizeof *run->virt);
	v = run->virt;
	g = xcalloc(1, sizeof *g);
	g->name = s->type->name;
	g->where = s->type->where;
	g->transport = TR_SSH;
	g->auth = s->type->auth;
	g->hostkeys = HK_STRICT;
	h = xcalloc(1, sizeof *h);
	h->name = xstrdup(s->name);
	h->address = xstrdup(ip);
	h->user = s->machine.user;
	h->group = g;
	h->where = s->where;
	if (pin) {
		h->pin = xcalloc(1, sizeof *h->pin);
		c = virt_conn(run, s->hypervisor.uri);
		if (c->conn != NULL && (dom = virDomainLookupByName(c->conn,
		    s->name)) != NULL) {
			if (virt_meta_read(dom, &m)) {
				h->pin->expected = m.hostkey;
				m.hostkey = NULL;
				virt_meta_free(&m);
			}
			virDomainFree(dom);
		}
	}
	v->hosts = xgrow(v->hosts, v->nhosts, sizeof *v->hosts);
	v->hosts[v->nhosts++] = h;
	return h;
}

/* Writes the host key learned on first contact into the domain's metadata. */
int
virt_pin_save(struct run *run, const struct host *h, const struct system *s,
    struct err *e)
{
	struct virt_meta	 m;
	struct vconn		*c;
	virDomainPtr		 dom;
	struct buf		 x;
	int			 r = -1, flags;

	if (h->pin == NULL || h->pin->seen == NULL || h->pin->expected != NULL)
		return 0;
	c = virt_conn(run, s->hypervisor.uri);
	if (c->conn == NULL)
		return err_set(e, "%s", c->error);
	if ((dom = virDomainLookupByName(c->conn, s->name)) == NULL)
		return virt_err(e, "system '%s' is gone from '%s'", s->name,
		    s->hypervisor.uri);
	buf_init(&x);
	if (!virt_meta_read(dom, &m)) {
		err_set(e, "system '%s' lost its reops-run metadata", s->name);
		goto out;
	}
	free(m.hostkey);
	m.hostkey = xstrdup(h->pin->seen);
	meta_element(&x, m.name, m.type, m.inventory, &m, 1);
	flags = VIR_DOMAIN_AFFECT_CONFIG;
	if (virDomainIsActive(dom) == 1 && virDomainIsPersistent(dom) == 1)
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	else if (virDomainIsActive(dom) == 1)
		flags = VIR_DOMAIN_AFFECT_LIVE;
	if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, x.data,
	    VIRT_NS_PREFIX, VIRT_NS, (unsigned int)flags) != 0)
		virt_err(e, "unable to pin the host key of '%s' in its "
		    "metadata", s->name);
	else
		r = 0;
	virt_meta_free(&m);
out:
	buf_free(&x);
	virDomainFree(dom);
	return r;
}

static void
xml_escape(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&': buf_adds(b, "&amp;"); break;
		case '<': buf_adds(b, "&lt;"); break;
		case '>': buf_adds(b, "&gt;"); break;
		case '"': buf_adds(b, "&quot;"); break;
		case '\'': buf_adds(b, "&apos;"); break;
		default: buf_addc(b, *s);
		}
	}
}

void __attribute__((format(printf, 2, 3)))
xml_printf(struct buf *b, const char *fmt, ...)
{
	/* Every %s is escaped: names come from the inventory. */
	va_list		 ap;
	const char	*p;

	va_start(ap, fmt);
	for (p = fmt; *p != '\0'; p++) {
		if (p[0] == '%' && p[1] == 's') {
			xml_escape(b, va_arg(ap, const char *));
			p++;
		} else if (p[0] == '%' && p[1] == 'd') {
			buf_printf(b, "%d", va_arg(ap, int));
			p++;
		} else
			buf_addc(b, *p);
	}
	va_end(ap);
}

/* --- metadata --------------------------------------------------------- */

static char *
xml_unescape(const char *s, size_t len)
{
	static const struct { const char *ent; char c; } ents[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
		{ "&quot;", '"' }, { "&apos;", '\'' },
	};
	struct buf	b;
	size_t		i, k;

	buf_init(&b);
	for (i = 0; i < len; i++) {
		for (k = 0; k < nitems(ents); k++)
			if (strncmp(s + i, ents[k].ent, strlen(ents[k].ent)) ==
			    0 && i + strlen(ents[k].ent) <= len)
				break;
		if (k < nitems(ents)) {
			buf_addc(&b, ents[k].c);
			i += strlen(ents[k].ent) - 1;
		} else
			buf_addc(&b, s[i]);
	}
	buf_addc(&b, '\0');
	b.len--;
	return buf_steal(&b);
}

/* The value of attribute NAME within the start tag [tag, end). */
static char *
xml_attr(const char *tag, const char *end, const char *name)
{
	const char	*p, *v, *q;
	size_t		 n = strlen(name);
	char		 quote;

	for (p = tag + 1; p + n + 2 < end; p++) {
		if ((p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n') ||
		    strncmp(p, name, n) != 0 || p[n] != '=')
			continue;
		quote = p[n + 1];
		if (quote != '"' && quote != '\'')
			continue;
		v = p + n + 2;
		if ((q = memchr(v, quote, (size_t)(end - v))) == NULL)
			return NULL;
		return xml_unescape(v, (size_t)(q - v));
	}
	return NULL;
}

void
virt_meta_free(struct virt_meta *m)
{
	size_t	i;

	free(m->name);
	free(m->type);
	free(m->inventory);
	free(m->hostkey);
	for (i = 0; i < m->nvolumes; i++) {
		free(m->pools[i]);
		free(m->volumes[i]);
	}
	memset(m, 0, sizeof *m);
}

/*
 * Reads our <reops:system> element back: 1 when the domain has it, 0 when
 * it does not (reops-run did not create it). libvirt hands back the element
 * as it keeps it, so only its tags and attributes are relied on.
 */
int
virt_meta_read(virDomainPtr dom, struct virt_meta *m)
{
	char	*xml;
	int	 r;

	memset(m, 0, sizeof *m);
	if ((xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
	    VIRT_NS, 0)) == NULL) {
		virResetLastError();
		return 0;
	}
	r = virt_meta_parse(xml, m);
	free(xml);
	return r;
}

/* The element as text: 1 when it names a system, else 0 (m is empty). */
int
virt_meta_parse(const char *xml, struct virt_meta *m)
{
	const char	*p, *end, *name, *local;
	size_t		 len;

	memset(m, 0, sizeof *m);
	for (p = xml; (p = strchr(p, '<')) != NULL; p = end) {
		if ((end = strchr(p, '>')) == NULL)
			break;
		name = p + 1;
		if (*name == '/' || *name == '?' || *name == '!')
			continue;
		len = strcspn(name, " \t\n/>");
		local = memchr(name, ':', len);
		local = local != NULL ? local + 1 : name;
		len -= (size_t)(local - name);
		if (len == 6 && strncmp(local, "system", 6) == 0 &&
		    m->name == NULL) {
			m->name = xml_attr(p, end, "name");
			m->type = xml_attr(p, end, "type");
			m->inventory = xml_attr(p, end, "inventory");
		} else if (len == 7 && strncmp(local, "hostkey", 7) == 0 &&
		    m->hostkey == NULL) {
			m->hostkey = xml_attr(p, end, "key");
		} else if (len == 6 && strncmp(local, "volume", 6) == 0 &&
		    m->nvolumes < VIRT_MAX_VOLUMES) {
			m->pools[m->nvolumes] = xml_attr(p, end, "pool");
			m->volumes[m->nvolumes] = xml_attr(p, end, "name");
			if (m->pools[m->nvolumes] == NULL ||
			    m->volumes[m->nvolumes] == NULL) {
				free(m->pools[m->nvolumes]);
				free(m->volumes[m->nvolumes]);
				continue;
			}
			m->nvolumes++;
		}
	}
	if (m->name == NULL) {
		virt_meta_free(m);
		return 0;
	}
	return 1;
}

/*
 * Our <reops:system> element: who the domain is, and what we made. Bare,
 * without prefix and namespace, for virDomainSetMetadata, which adds them.
 */
void
meta_element(struct buf *x, const char *name, const char *type,
    const char *inventory, const struct virt_meta *m, int bare)
{
	const char	*pre = bare ? "" : VIRT_NS_PREFIX ":";
	size_t		 i;

	xml_printf(x, "<%ssystem", pre);
	if (!bare)
		buf_adds(x, " xmlns:" VIRT_NS_PREFIX "='" VIRT_NS "'");
	xml_printf(x, " name='%s' type='%s' inventory='%s'>", name, type,
	    inventory != NULL ? inventory : "");
	for (i = 0; i < m->nvolumes; i++)
		xml_printf(x, "<%svolume pool='%s' name='%s'/>", pre,
		    m->pools[i], m->volumes[i]);
	if (m->hostkey != NULL)
		xml_printf(x, "<%shostkey key='%s'/>", pre, m->hostkey);
	xml_printf(x, "</%ssystem>", pre);
}

/* --- state and address ------------------------------------------------ */

const char *
virt_state_name(int state)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING: return "running";
	case VIR_DOMAIN_BLOCKED: return "blocked";
	case VIR_DOMAIN_PAUSED: return "paused";
	case VIR_DOMAIN_SHUTDOWN: return "shutdown";
	case VIR_DOMAIN_SHUTOFF: return "shutoff";
	case VIR_DOMAIN_CRASHED: return "crashed";
	case VIR_DOMAIN_PMSUSPENDED: return "pmsuspended";
	}
	return "unknown";
}

int
dom_state(virDomainPtr dom)
{
	int	state, reason;

	if (virDomainGetState(dom, &state, &reason, 0) != 0) {
		virResetLastError();
		return -1;
	}
	return state;
}

/*
 * Where the system answers: its static ip, else the first IPv4 address
 * from the DHCP leases of its network, then the guest agent, then the
 * host's ARP table. Sources that fail (no agent, no lease) are skipped.
 */
int
virt_ip(virDomainPtr dom, const struct system *s, char *ip, size_t len)
{
	static const unsigned int sources[] = {
		VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
		VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
		VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
	};
	virDomainInterfacePtr	*ifs;
	size_t			 k;
	int			 n, i, found = 0;
	unsigned int		 a;

	ip[0] = '\0';
	if (s->machine.ip != NULL) {
		snprintf(ip, len, "%s", s->machine.ip);
		return 0;
	}
	for (k = 0; k < nitems(sources) && !found; k++) {
		if ((n = virDomainInterfaceAddresses(dom, &ifs, sources[k],
		    0)) < 0) {
			virResetLastError();
			continue;
		}
		for (i = 0; i < n; i++) {
			for (a = 0; a < ifs[i]->naddrs && !found; a++) {
				if (ifs[i]->addrs[a].type !=
				    VIR_IP_ADDR_TYPE_IPV4 ||
				    strncmp(ifs[i]->addrs[a].addr, "127.", 4) ==
				    0)
					continue;
				snprintf(ip, len, "%s", ifs[i]->addrs[a].addr);
				found = 1;
			}
			virDomainInterfaceFree(ifs[i]);
		}
		free(ifs);
	}
	return found ? 0 : -1;
}
