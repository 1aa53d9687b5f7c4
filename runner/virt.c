/*
 * virt.c: systems through libvirt. One connection per hypervisor URI for
 * the whole run (test:///default keeps its state per process, and opening
 * qemu+ssh:// once per row would cost a login each), the domain XML built
 * from the machine spec, copy-on-write disks in the system's pool, NoCloud
 * seeds, and readiness checked for every row at once against one deadline.
 *
 * A failed operation fills the op's struct err with one line; virt_stage
 * turns it into the row's status and stderr. libvirt's own printing of
 * errors to stderr is switched off: the row is where errors go.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "ssh.h"
#include "virt.h"

#define DEFAULT_WAIT_S		300
#define DEFAULT_STOP_S		60
#define POLL_MS			200
#define CONNECT_TRY_MS		2000	/* then connect again */
#define MAX_THREADS		16

extern char **environ;

struct vconn {
	char		*uri;
	virConnectPtr	 conn;
	char		*error;		/* why it could not be opened */
	char		 virttype[8];	/* test, kvm or qemu; "" unknown yet */
};

struct virt {
	struct vconn	*c;
	size_t		 n;
	/*
	 * Hosts made up for provision: the ssh transport caches sessions by
	 * host for the whole run, so they live until the run ends.
	 */
	struct host	**hosts;
	size_t		  nhosts;
};

static void	meta_element(struct buf *, const char *, const char *,
		    const char *, const struct virt_meta *, int);

static void
silent(void *ud, virErrorPtr error)
{
	/* The row's stderr carries the error, not libvirt's default print. */
}

/* libvirt's last error as one line after "what: ". */
static int __attribute__((format(printf, 2, 3)))
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

static int
last_error_is(int code)
{
	virErrorPtr	ve = virGetLastError();

	return ve != NULL && ve->code == code;
}

static struct vconn *
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
	v->c = xreallocarray(v->c, v->n + 1, sizeof *v->c);
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
	v->hosts = xreallocarray(v->hosts, v->nhosts + 1, sizeof *v->hosts);
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

static pthread_mutex_t	type_lock = PTHREAD_MUTEX_INITIALIZER;

/* kvm when the hypervisor offers it, else qemu (TCG); test for test://. */
static const char *
virt_type(struct virt_op *op)
{
	struct virt	*v = op->run->virt;
	struct vconn	*c = NULL;
	const char	*drv;
	char		*caps;
	size_t		 i;

	for (i = 0; i < v->n; i++)
		if (v->c[i].conn == op->conn)
			c = &v->c[i];
	if (c == NULL)
		return NULL;
	/* Creates run in threads; the first one asks, the others wait. */
	pthread_mutex_lock(&type_lock);
	if (c->virttype[0] != '\0') {
		pthread_mutex_unlock(&type_lock);
		return c->virttype;
	}
	if ((drv = virConnectGetType(op->conn)) == NULL) {
		pthread_mutex_unlock(&type_lock);
		virt_err(&op->e, "unable to ask '%s' for its driver",
		    op->sys->hypervisor.uri);
		return NULL;
	}
	if (strcasecmp(drv, "test") == 0)
		snprintf(c->virttype, sizeof c->virttype, "%s", "test");
	else if (strcasecmp(drv, "qemu") == 0) {
		caps = virConnectGetDomainCapabilities(op->conn, NULL, NULL,
		    NULL, "kvm", 0);
		snprintf(c->virttype, sizeof c->virttype, "%s",
		    caps != NULL ? "kvm" : "qemu");
		free(caps);
		virResetLastError();
	} else {
		pthread_mutex_unlock(&type_lock);
		err_set(&op->e, "hypervisor driver '%s' of '%s' is not "
		    "supported (test and QEMU are)", drv,
		    op->sys->hypervisor.uri);
		return NULL;
	}
	pthread_mutex_unlock(&type_lock);
	return c->virttype;
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

static void __attribute__((format(printf, 2, 3)))
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

static const char *
pool_name(const struct system *s)
{
	return s->hypervisor.pool != NULL ? s->hypervisor.pool : "default";
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

static int
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

/*
 * Starts a non-blocking TCP connect to the port: the fd to poll for
 * POLLOUT, or -1 when it could not start. *open is set when it connected
 * at once (loopback can).
 */
static int
port_connect(const char *ip, int port, int *open)
{
	struct addrinfo	 hints, *ai = NULL;
	char		 serv[16];
	int		 fd;

	*open = 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(serv, sizeof serv, "%d", port);
	if (getaddrinfo(ip, serv, &hints, &ai) != 0)
		return -1;
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) != -1) {
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			*open = 1;
		else if (errno != EINPROGRESS) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd;
}

static int
ssh_port(const struct system *s)
{
	return s->type->auth.port > 0 ? s->type->auth.port : 22;
}

/* --- volumes and the cloud-init seed ---------------------------------- */

/* The format of a volume, from <target><format type='...'/>. */
static char *
vol_format(virStorageVolPtr vol)
{
	const char	*p, *q;
	char		*xml, *fmt = NULL;

	if ((xml = virStorageVolGetXMLDesc(vol, 0)) == NULL) {
		virResetLastError();
		return xstrdup("raw");
	}
	if ((p = strstr(xml, "<target>")) != NULL &&
	    (p = strstr(p, "<format type=")) != NULL) {
		p += strlen("<format type=") + 1;
		if ((q = strpbrk(p, "'\"")) != NULL)
			fmt = xstrndup(p, (size_t)(q - p));
	}
	free(xml);
	return fmt != NULL ? fmt : xstrdup("raw");
}

static void
meta_add_volume(struct virt_meta *m, const char *pool, const char *name)
{
	if (m->nvolumes >= VIRT_MAX_VOLUMES)
		return;
	m->pools[m->nvolumes] = xstrdup(pool);
	m->volumes[m->nvolumes] = xstrdup(name);
	m->nvolumes++;
}

/* Deletes what this create made before it failed, and only that. */
static void
delete_volumes(virConnectPtr conn, const struct virt_meta *m,
    struct buf *note)
{
	virStoragePoolPtr	pool;
	virStorageVolPtr	vol;
	size_t			i;

	for (i = 0; i < m->nvolumes; i++) {
		if ((pool = virStoragePoolLookupByName(conn, m->pools[i])) ==
		    NULL) {
			virResetLastError();
			continue;
		}
		if ((vol = virStorageVolLookupByName(pool,
		    m->volumes[i])) != NULL) {
			if (virStorageVolDelete(vol, 0) == 0 && note != NULL)
				buf_printf(note, "%sdeleted volume %s/%s",
				    note->len > 0 ? "; " : "", m->pools[i],
				    m->volumes[i]);
			virStorageVolFree(vol);
		}
		virResetLastError();
		virStoragePoolFree(pool);
	}
}

/*
 * The system's disk: a qcow2 overlay whose backing store is the base image
 * (copy on write, so the image is never written), or a blank qcow2 of
 * 'disk' GiB when the machine names no image.
 */
static int
make_disk(struct virt_op *op, virStoragePoolPtr pool, const char *volname,
    struct virt_meta *m)
{
	const struct machine	*mc = &op->sys->machine;
	virStorageVolPtr	 base = NULL, vol;
	virStorageVolInfo	 info;
	struct buf		 x;
	unsigned long long	 cap;
	char			*path = NULL, *fmt = NULL;
	int			 r = -1;

	buf_init(&x);
	if ((vol = virStorageVolLookupByName(pool, volname)) != NULL) {
		virStorageVolFree(vol);
		err_set(&op->e, "volume '%s' already exists in pool '%s'; "
		    "not overwriting it", volname, pool_name(op->sys));
		return -1;
	}
	virResetLastError();
	if (mc->image == NULL && mc->disk == 0) {
		err_set(&op->e, "system '%s' names neither 'image' nor 'disk' "
		    "in its machine", op->sys->name);
		return -1;
	}
	cap = (unsigned long long)mc->disk << 30;
	if (mc->image != NULL) {
		base = mc->image[0] == '/' ?
		    virStorageVolLookupByPath(op->conn, mc->image) :
		    virStorageVolLookupByName(pool, mc->image);
		if (base == NULL) {
			virResetLastError();
			err_set(&op->e, "base image '%s' is not a volume in "
			    "pool '%s' on '%s'", mc->image, pool_name(op->sys),
			    op->sys->hypervisor.uri);
			return -1;
		}
		if ((path = virStorageVolGetPath(base)) == NULL ||
		    virStorageVolGetInfo(base, &info) != 0) {
			virt_err(&op->e, "unable to read base image '%s'",
			    mc->image);
			goto out;
		}
		fmt = vol_format(base);
		if (info.capacity > cap)
			cap = info.capacity;
	}
	xml_printf(&x, "<volume><name>%s</name>", volname);
	buf_printf(&x, "<capacity unit='bytes'>%llu</capacity>"
	    "<allocation unit='bytes'>0</allocation>"
	    "<target><format type='qcow2'/></target>", cap);
	if (path != NULL)
		xml_printf(&x, "<backingStore><path>%s</path>"
		    "<format type='%s'/></backingStore>", path, fmt);
	buf_adds(&x, "</volume>");
	if ((vol = virStorageVolCreateXML(pool, x.data, 0)) == NULL) {
		virt_err(&op->e, "unable to create volume '%s' in pool '%s'",
		    volname, pool_name(op->sys));
		goto out;
	}
	virStorageVolFree(vol);
	meta_add_volume(m, pool_name(op->sys), volname);
	r = 0;
out:
	if (base != NULL)
		virStorageVolFree(base);
	free(path);
	free(fmt);
	buf_free(&x);
	return r;
}

static int
write_file(const char *path, const char *data, size_t len)
{
	FILE	*f;
	int	 r;

	if ((f = fopen(path, "w")) == NULL)
		return -1;
	r = fwrite(data, 1, len, f) == len ? 0 : -1;
	if (fclose(f) != 0)
		r = -1;
	return r;
}

static int
read_file(const char *path, struct buf *b)
{
	char	chunk[65536];
	size_t	n;
	FILE	*f;
	int	r;

	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(b, chunk, n);
	r = ferror(f) ? -1 : 0;
	fclose(f);
	return r;
}

/*
 * The type's public key: the private key's file name plus ".pub", found as
 * the ssh transport finds the key itself (relative to the inventory file).
 */
static int
public_key(struct virt_op *op, struct buf *key)
{
	const struct type	*ty = op->sys->type;
	const char		*k = ty->auth.key, *slash;
	char			*path, *base, *priv;
	size_t			 i;
	int			 r;

	if (k == NULL) {
		err_set(&op->e, "type '%s' asks for cloud-init but has no "
		    "'auth.key' whose public key to authorize",
		    op->sys->type->name);
		return -1;
	}
	base = NULL;
	if (ty->where != NULL && ty->where->file != NULL &&
	    (slash = strrchr(ty->where->file, '/')) != NULL)
		base = xstrndup(ty->where->file,
		    (size_t)(slash - ty->where->file));
	priv = ssh_expand_path(k, base);
	path = xasprintf("%s.pub", priv);
	free(priv);
	free(base);
	r = read_file(path, key);
	if (r != 0 || key->len == 0)
		err_set(&op->e, "unable to read public key '%s': %s", path,
		    r != 0 ? strerror(errno) : "empty file");
	free(path);
	for (i = 0; i < key->len; i++)
		if (key->data[i] == '\n' || key->data[i] == '\r')
			key->len = i;
	if (key->data != NULL)
		key->data[key->len] = '\0';
	return r != 0 || key->len == 0 ? -1 : 0;
}

/* Runs xorriso as virt-install does; its last stderr line on failure. */
static int
run_xorriso(struct virt_op *op, const char *dir)
{
	posix_spawn_file_actions_t	 fa;
	struct buf			 log;
	char				*iso, *ud, *md, *logpath, *nl;
	char				*argv[16];
	pid_t				 pid;
	int				 status, r = -1, n = 0;

	iso = xasprintf("%s/seed.iso", dir);
	ud = xasprintf("%s/user-data", dir);
	md = xasprintf("%s/meta-data", dir);
	logpath = xasprintf("%s/xorriso.log", dir);
	argv[n++] = (char *)"xorriso";
	argv[n++] = (char *)"-as";
	argv[n++] = (char *)"mkisofs";
	argv[n++] = (char *)"-o";
	argv[n++] = iso;
	argv[n++] = (char *)"-V";
	argv[n++] = (char *)"cidata";
	argv[n++] = (char *)"-J";
	argv[n++] = (char *)"-r";
	argv[n++] = ud;
	argv[n++] = md;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath,
	    O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if ((errno = posix_spawnp(&pid, "xorriso", &fa, NULL, argv,
	    environ)) != 0) {
		err_set(&op->e, "unable to run 'xorriso' for the cloud-init "
		    "seed: %s", strerror(errno));
		goto out;
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		r = 0;
		goto out;
	}
	buf_init(&log);
	read_file(logpath, &log);
	while (log.len > 0 && log.data[log.len - 1] == '\n')
		log.data[--log.len] = '\0';
	nl = log.data != NULL ? strrchr(log.data, '\n') : NULL;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		err_set(&op->e, "unable to run 'xorriso' for the cloud-init "
		    "seed: not installed");
	else
		err_set(&op->e, "xorriso failed to build the cloud-init seed: "
		    "%s", nl != NULL ? nl + 1 : log.data != NULL ? log.data :
		    "no message");
	buf_free(&log);
out:
	posix_spawn_file_actions_destroy(&fa);
	free(iso);
	free(ud);
	free(md);
	free(logpath);
	return r;
}

/*
 * A NoCloud seed (volume label "cidata", files user-data and meta-data):
 * the user with the type's public key, the hostname. Built in a private
 * temporary directory, then uploaded as a raw volume to the system's pool,
 * so it works on remote hypervisors too.
 */
static int
make_seed(struct virt_op *op, virStoragePoolPtr pool, const char *volname,
    struct virt_meta *m)
{
	const struct system	*s = op->sys;
	const char		*user, *host, *tmp;
	virStorageVolPtr	 vol = NULL;
	virStreamPtr		 stream = NULL;
	struct buf		 key, ud, md, iso, x;
	char			*dir = NULL, *p;
	size_t			 off;
	int			 r = -1, sent;

	buf_init(&key);
	buf_init(&ud);
	buf_init(&md);
	buf_init(&iso);
	buf_init(&x);
	user = s->machine.user != NULL ? s->machine.user :
	    s->type->auth.user;
	host = s->machine.hostname != NULL ? s->machine.hostname : s->name;
	if (user == NULL) {
		err_set(&op->e, "cloud-init needs a user: set 'user' in the "
		    "machine or 'auth.user' in type '%s'", s->type->name);
		goto out;
	}
	if (public_key(op, &key) != 0)
		goto out;
	/* JSON strings are YAML scalars: nothing in them is interpreted. */
	buf_printf(&ud, "#cloud-config\nhostname: \"%s\"\n"
	    "users:\n  - name: \"%s\"\n    shell: /bin/sh\n"
	    "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n"
	    "    ssh_authorized_keys:\n      - \"%s\"\n", host, user,
	    key.data);
	buf_printf(&md, "instance-id: \"%s\"\nlocal-hostname: \"%s\"\n",
	    s->name, host);
	if (strpbrk(host, "\"\\") != NULL || strpbrk(user, "\"\\") != NULL ||
	    strpbrk(key.data, "\"\\") != NULL) {
		err_set(&op->e, "cloud-init user, hostname and key must not "
		    "hold quotes or backslashes");
		goto out;
	}
	tmp = getenv("TMPDIR");
	dir = xasprintf("%s/reops-seed.XXXXXX", tmp != NULL && *tmp != '\0' ?
	    tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		err_set(&op->e, "unable to make a directory for the seed: %s",
		    strerror(errno));
		free(dir);
		dir = NULL;
		goto out;
	}
	p = xasprintf("%s/user-data", dir);
	sent = write_file(p, ud.data, ud.len);
	free(p);
	p = xasprintf("%s/meta-data", dir);
	if (write_file(p, md.data, md.len) != 0 || sent != 0) {
		err_set(&op->e, "unable to write the seed files: %s",
		    strerror(errno));
		free(p);
		goto out;
	}
	free(p);
	if (run_xorriso(op, dir) != 0)
		goto out;
	p = xasprintf("%s/seed.iso", dir);
	sent = read_file(p, &iso);
	free(p);
	if (sent != 0 || iso.len == 0) {
		err_set(&op->e, "unable to read the seed xorriso built");
		goto out;
	}
	xml_printf(&x, "<volume><name>%s</name>", volname);
	buf_printf(&x, "<capacity unit='bytes'>%zu</capacity>"
	    "<target><format type='raw'/></target></volume>", iso.len);
	if ((vol = virStorageVolCreateXML(pool, x.data, 0)) == NULL) {
		virt_err(&op->e, "unable to create volume '%s' in pool '%s'",
		    volname, pool_name(s));
		goto out;
	}
	meta_add_volume(m, pool_name(s), volname);
	if ((stream = virStreamNew(op->conn, 0)) == NULL ||
	    virStorageVolUpload(vol, stream, 0, iso.len, 0) != 0) {
		virt_err(&op->e, "unable to upload the cloud-init seed to "
		    "'%s'", volname);
		goto out;
	}
	for (off = 0; off < iso.len; off += (size_t)sent) {
		if ((sent = virStreamSend(stream, iso.data + off,
		    iso.len - off)) <= 0) {
			virt_err(&op->e, "unable to upload the cloud-init "
			    "seed to '%s'", volname);
			virStreamAbort(stream);
			goto out;
		}
	}
	if (virStreamFinish(stream) != 0) {
		virt_err(&op->e, "unable to upload the cloud-init seed to "
		    "'%s'", volname);
		goto out;
	}
	r = 0;
out:
	if (stream != NULL)
		virStreamFree(stream);
	if (vol != NULL)
		virStorageVolFree(vol);
	if (dir != NULL) {
		p = xasprintf("%s/user-data", dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/meta-data", dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/seed.iso", dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/xorriso.log", dir);
		unlink(p);
		free(p);
		rmdir(dir);
		free(dir);
	}
	buf_free(&key);
	buf_free(&ud);
	buf_free(&md);
	buf_free(&iso);
	buf_free(&x);
	return r;
}

/* --- the domain ------------------------------------------------------- */

/*
 * Our <reops:system> element: who the domain is, and what we made. Bare,
 * without prefix and namespace, for virDomainSetMetadata, which adds them.
 */
static void
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

static void
domain_xml(struct buf *x, struct virt_op *op, const char *virttype,
    const struct virt_meta *m, const char *disk, const char *seed)
{
	const struct system	*s = op->sys;

	xml_printf(x, "<domain type='%s'><name>%s</name>\n", virttype,
	    s->name);
	buf_adds(x, "<metadata>");
	meta_element(x, s->name, s->type->name, s->file, m, 0);
	buf_adds(x, "</metadata>\n");
	xml_printf(x, "<memory unit='MiB'>%d</memory><vcpu>%d</vcpu>\n",
	    s->machine.ram, s->machine.cpu);
	buf_adds(x, "<os><type>hvm</type><boot dev='hd'/></os>"
	    "<features><acpi/></features>\n<devices>\n");
	xml_printf(x, "<disk type='volume' device='disk'>"
	    "<driver name='qemu' type='qcow2'/>"
	    "<source pool='%s' volume='%s'/>"
	    "<target dev='vda' bus='virtio'/></disk>\n", pool_name(s), disk);
	if (seed != NULL)
		xml_printf(x, "<disk type='volume' device='cdrom'>"
		    "<driver name='qemu' type='raw'/>"
		    "<source pool='%s' volume='%s'/>"
		    "<target dev='sda' bus='sata'/><readonly/></disk>\n",
		    pool_name(s), seed);
	/* No network named: user-mode networking, as qemu:///session has. */
	if (s->hypervisor.network != NULL)
		xml_printf(x, "<interface type='network'>"
		    "<source network='%s'/><model type='virtio'/>"
		    "</interface>\n", s->hypervisor.network);
	else
		buf_adds(x, "<interface type='user'><model type='virtio'/>"
		    "</interface>\n");
	if (strcmp(virttype, "test") != 0)
		buf_adds(x, "<channel type='unix'><target type='virtio' "
		    "name='org.qemu.guest_agent.0'/></channel>\n"
		    "<serial type='pty'/><console type='pty'/>\n");
	buf_adds(x, "</devices></domain>\n");
}

/* Creating a system that exists is an error, never a second VM. */
int
virt_create(struct virt_op *op)
{
	const struct system	*s = op->sys;
	virStoragePoolPtr	 pool = NULL;
	virDomainPtr		 dom = NULL;
	struct virt_meta	 m, old;
	struct buf		 x;
	const char		*virttype;
	char			*disk = NULL, *seed = NULL;
	int			 r = -1;

	memset(&m, 0, sizeof m);
	buf_init(&x);
	if (op->dom != NULL) {
		if (virt_meta_read(op->dom, &old)) {
			err_set(&op->e, "system '%s' already exists on '%s' "
			    "(created from %s)", s->name, s->hypervisor.uri,
			    old.inventory);
			virt_meta_free(&old);
		} else
			err_set(&op->e, "a domain named '%s' already exists "
			    "on '%s' (not created by reops-run)", s->name,
			    s->hypervisor.uri);
		return -1;
	}
	if ((virttype = virt_type(op)) == NULL)
		return -1;
	if ((pool = virStoragePoolLookupByName(op->conn, pool_name(s))) ==
	    NULL) {
		virt_err(&op->e, "no storage pool '%s' on '%s'", pool_name(s),
		    s->hypervisor.uri);
		return -1;
	}
	disk = xasprintf("%s.qcow2", s->name);
	if (make_disk(op, pool, disk, &m) != 0)
		goto out;
	if (s->type->cloud_init) {
		seed = xasprintf("%s-seed.iso", s->name);
		if (make_seed(op, pool, seed, &m) != 0)
			goto out;
	}
	domain_xml(&x, op, virttype, &m, disk, seed);
	log_debug("%s: domain XML:\n%s", s->name, x.data);
	if ((dom = virDomainDefineXML(op->conn, x.data)) == NULL) {
		virt_err(&op->e, "unable to define '%s'", s->name);
		goto out;
	}
	if (virDomainCreate(dom) != 0) {
		virt_err(&op->e, "unable to start '%s'", s->name);
		virDomainUndefine(dom);
		virDomainFree(dom);
		dom = NULL;
		goto out;
	}
	buf_printf(&op->note, "created %s on %s (%s)", s->name,
	    s->hypervisor.uri, virttype);
	op->dom = dom;
	r = 0;
out:
	if (r != 0) {
		virResetLastError();
		delete_volumes(op->conn, &m, NULL);
	}
	virt_meta_free(&m);
	if (pool != NULL)
		virStoragePoolFree(pool);
	free(disk);
	free(seed);
	buf_free(&x);
	return r;
}

static int
need_domain(struct virt_op *op)
{
	if (op->dom != NULL)
		return 0;
	err_set(&op->e, "system '%s' does not exist on '%s'", op->sys->name,
	    op->sys->hypervisor.uri);
	return -1;
}

int
virt_start(struct virt_op *op)
{
	int	state;

	if (need_domain(op) != 0)
		return -1;
	state = dom_state(op->dom);
	if (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED) {
		buf_adds(&op->note, "already running");
		return 0;
	}
	if (state == VIR_DOMAIN_PAUSED) {
		if (virDomainResume(op->dom) != 0)
			return virt_err(&op->e, "unable to resume '%s'",
			    op->sys->name);
		buf_adds(&op->note, "resumed");
		return 0;
	}
	if (virDomainCreate(op->dom) != 0)
		return virt_err(&op->e, "unable to start '%s'", op->sys->name);
	buf_adds(&op->note, "started");
	return 0;
}

/* Asks the guest to shut down; virt_stage waits, then forces it off. */
int
virt_shutdown(struct virt_op *op)
{
	int	state;

	if (need_domain(op) != 0)
		return -1;
	state = dom_state(op->dom);
	if (state == VIR_DOMAIN_SHUTOFF) {
		buf_adds(&op->note, "already shut off");
		return 0;
	}
	if (virDomainShutdown(op->dom) != 0) {
		/* A paused or unresponsive guest cannot shut down by itself. */
		virResetLastError();
		if (virDomainDestroy(op->dom) != 0)
			return virt_err(&op->e, "unable to stop '%s'",
			    op->sys->name);
		buf_adds(&op->note, "forced off (no graceful shutdown)");
		return 0;
	}
	op->asked = 1;
	return 0;
}

/*
 * Forces the domain off, undefines it and deletes the volumes its metadata
 * lists: only what reops-run created. A domain without our metadata is not
 * ours to destroy. A system that does not exist is already destroyed.
 */
int
virt_destroy(struct virt_op *op)
{
	struct virt_meta	m;
	unsigned int		flags;

	if (op->dom == NULL) {
		buf_adds(&op->note, "does not exist");
		return 0;
	}
	if (!virt_meta_read(op->dom, &m)) {
		err_set(&op->e, "domain '%s' on '%s' was not created by "
		    "reops-run; not destroying it", op->sys->name,
		    op->sys->hypervisor.uri);
		return -1;
	}
	if (dom_state(op->dom) != VIR_DOMAIN_SHUTOFF &&
	    virDomainDestroy(op->dom) != 0) {
		virt_meta_free(&m);
		return virt_err(&op->e, "unable to force '%s' off",
		    op->sys->name);
	}
	flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
	    VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
	if (virDomainUndefineFlags(op->dom, flags) != 0) {
		virt_meta_free(&m);
		return virt_err(&op->e, "unable to undefine '%s'",
		    op->sys->name);
	}
	virDomainFree(op->dom);
	op->dom = NULL;
	buf_adds(&op->note, "destroyed");
	delete_volumes(op->conn, &m, &op->note);
	virt_meta_free(&m);
	return 0;
}

int
virt_nothing(struct virt_op *op)
{
	return 0;
}

/* --- the stage driver ------------------------------------------------- */

static const char *const wait_names[] = { "none", "running", "ip", "ssh" };

int
virt_wait_prepare(struct stage *st, struct err *e)
{
	const struct node	*v;
	size_t			 i;

	if ((v = stage_arg(st, "wait")) == NULL)
		return 0;
	for (i = 0; i < nitems(wait_names); i++)
		if (v->type == NODE_SCALAR && strcmp(v->str, wait_names[i]) ==
		    0)
			return 0;
	return node_err(e, v, "'wait' of stage '%s' must be none, running, "
	    "ip or ssh, not '%s'", st->entry->name, v->type == NODE_SCALAR ?
	    v->str : node_type_name(v));
}

enum virt_wait
virt_wait_arg(const struct stage *st, enum virt_wait def)
{
	const char	*w = stage_str(st, "wait", NULL);
	size_t		 i;

	for (i = 0; w != NULL && i < nitems(wait_names); i++)
		if (strcmp(w, wait_names[i]) == 0)
			return (enum virt_wait)i;
	return def;
}

static void
fill_row(struct virt_op *op)
{
	const struct system	*s = op->sys;
	virDomainInfo		 info;
	struct virt_meta	 m;
	char			 ip[64] = "", n[32];
	int			 state = -1, managed = 0;

	row_sets(op->table, op->row, "name", s->name);
	if (op->dom != NULL)
		state = dom_state(op->dom);
	row_sets(op->table, op->row, "state", op->conn == NULL ? "unknown" :
	    op->dom == NULL ? "undefined" : virt_state_name(state));
	if (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED ||
	    state == VIR_DOMAIN_PAUSED)
		virt_ip(op->dom, s, ip, sizeof ip);
	row_sets(op->table, op->row, "ip", ip);
	if (op->dom != NULL && virDomainGetInfo(op->dom, &info) == 0) {
		snprintf(n, sizeof n, "%u", info.nrVirtCpu);
		row_sets(op->table, op->row, "cpu", n);
		snprintf(n, sizeof n, "%lu", info.maxMem / 1024);
		row_sets(op->table, op->row, "ram", n);
	} else {
		virResetLastError();
		snprintf(n, sizeof n, "%d", s->machine.cpu);
		row_sets(op->table, op->row, "cpu", n);
		snprintf(n, sizeof n, "%d", s->machine.ram);
		row_sets(op->table, op->row, "ram", n);
	}
	row_sets(op->table, op->row, "type", s->type->name);
	row_sets(op->table, op->row, "hypervisor", s->hypervisor.uri);
	row_sets(op->table, op->row, "exists", op->conn == NULL ? "unknown" :
	    op->dom != NULL ? "yes" : "no");
	if (op->dom != NULL && (managed = virt_meta_read(op->dom, &m))) {
		row_sets(op->table, op->row, "hostkey", m.hostkey != NULL ?
		    m.hostkey : "");
		virt_meta_free(&m);
	} else
		row_sets(op->table, op->row, "hostkey", "");
	row_sets(op->table, op->row, "managed", op->dom == NULL ? "" :
	    managed ? "yes" : "no");
}

struct pending {
	struct virt_op	*op;
	enum virt_wait	 want;
	enum virt_wait	 reached;	/* the last step that came */
	int		 fd;		/* a connect to the ssh port, or -1 */
	long long	 since;		/* when that connect started */
	char		 ip[64];
	int		 done;
};

static int
wait_step(struct pending *w)
{
	struct virt_op	*op = w->op;
	enum virt_wait	 want = w->want;
	int		 state, open;

	state = dom_state(op->dom);
	if (want == WAIT_SHUTOFF)
		return state == VIR_DOMAIN_SHUTOFF;
	if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_BLOCKED)
		return 0;
	w->reached = WAIT_RUNNING;
	if (want == WAIT_RUNNING)
		return 1;
	if (virt_ip(op->dom, op->sys, w->ip, sizeof w->ip) != 0)
		return 0;
	w->reached = WAIT_IP;
	if (want == WAIT_IP)
		return 1;
	/* The connect goes on in the background; wait_all polls it. */
	if (w->fd == -1) {
		w->fd = port_connect(w->ip, ssh_port(op->sys), &open);
		w->since = now_ms();
		if (open) {
			close(w->fd);
			w->fd = -1;
			w->reached = WAIT_SSH;
			return 1;
		}
	}
	return 0;
}

/*
 * Polls every connect in flight for up to ms: a row whose connect
 * succeeded is done; a refused or stale one is dropped, to try again.
 */
static size_t
poll_ports(struct pending *w, size_t n, int ms)
{
	struct pollfd	*pfd;
	struct timespec	 ts;
	socklen_t	 sl;
	size_t		 i, k, np = 0, done = 0;
	int		 soerr;

	pfd = xcalloc(n + 1, sizeof *pfd);
	for (i = 0; i < n; i++) {
		if (w[i].done || w[i].fd == -1)
			continue;
		pfd[np].fd = w[i].fd;
		pfd[np++].events = POLLOUT;
	}
	if (np == 0) {
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		free(pfd);
		return 0;
	}
	if (poll(pfd, np, ms) < 0)
		np = 0;
	for (i = 0, k = 0; i < n && k < np; i++) {
		if (w[i].done || w[i].fd == -1)
			continue;
		if (pfd[k++].revents == 0) {
			if (now_ms() - w[i].since < CONNECT_TRY_MS)
				continue;
		} else {
			soerr = -1;
			sl = sizeof soerr;
			if (getsockopt(w[i].fd, SOL_SOCKET, SO_ERROR, &soerr,
			    &sl) == 0 && soerr == 0) {
				w[i].reached = WAIT_SSH;
				w[i].done = 1;
				done++;
			}
		}
		close(w[i].fd);
		w[i].fd = -1;
	}
	free(pfd);
	return done;
}

static void
wait_failed(struct pending *w, int secs)
{
	struct virt_op	*op = w->op;

	op->row->status = ST_FAILED;
	op->row->code = 124;
	if (w->reached < WAIT_RUNNING)
		buf_printf(&op->row->err, "reops-run: not ready after %ds: "
		    "'%s' never reached running (state %s)\n", secs,
		    op->sys->name, virt_state_name(dom_state(op->dom)));
	else if (w->reached < WAIT_IP)
		buf_printf(&op->row->err, "reops-run: not ready after %ds: "
		    "no ip for '%s' (DHCP leases, guest agent, ARP)\n", secs,
		    op->sys->name);
	else
		buf_printf(&op->row->err, "reops-run: not ready after %ds: "
		    "ssh port %d on %s never opened\n", secs,
		    ssh_port(op->sys), w->ip);
}

/*
 * Every row waits against one deadline, polled together, so a hundred
 * systems take as long as the slowest and not the sum.
 */
static void
wait_all(struct virt_op *ops, size_t n, enum virt_wait want, int secs)
{
	const char	*drv;
	struct pending	*w;
	struct timespec	 ts;
	long long	 deadline = now_ms() + (long long)secs * 1000, ms, round;
	size_t		 i, left = 0;

	w = xcalloc(n, sizeof *w);
	for (i = 0; i < n; i++) {
		w[i].op = &ops[i];
		w[i].want = want;
		w[i].fd = -1;
		/*
		 * Nothing runs in the test driver's machines and its leases
		 * are made up: ssh is waited for there only at a static ip,
		 * which is a real address someone declared.
		 */
		if (want == WAIT_SSH && ops[i].sys->machine.ip == NULL &&
		    (drv = virConnectGetType(ops[i].conn)) != NULL &&
		    strcasecmp(drv, "test") == 0)
			w[i].want = WAIT_IP;
		w[i].done = ops[i].row->status != ST_OK || ops[i].dom == NULL;
		left += !w[i].done;
	}
	while (left > 0 && !run_interrupted) {
		for (i = 0; i < n; i++) {
			if (w[i].done || !wait_step(&w[i]))
				continue;
			w[i].done = 1;
			left--;
			if (ops[i].asked)
				buf_adds(&ops[i].note, "shut down");
		}
		if (left == 0 || (ms = deadline - now_ms()) <= 0)
			break;
		if (ms > POLL_MS)
			ms = POLL_MS;
		round = now_ms();
		left -= poll_ports(w, n, (int)ms);
		/* A refused connect returns at once: keep the pace anyway. */
		if (left > 0 && (ms -= now_ms() - round) > 0) {
			ts.tv_sec = 0;
			ts.tv_nsec = (long)ms * 1000000L;
			nanosleep(&ts, NULL);
		}
	}
	for (i = 0; i < n; i++) {
		if (w[i].fd != -1)
			close(w[i].fd);
		if (w[i].done)
			continue;
		if (run_interrupted) {
			ops[i].row->status = ST_FAILED;
			ops[i].row->code = 130;
			buf_adds(&ops[i].row->err, "reops-run: interrupted\n");
			continue;
		}
		if (want != WAIT_SHUTOFF) {
			wait_failed(&w[i], secs);
			continue;
		}
		if (virDomainDestroy(ops[i].dom) != 0) {
			virt_err(&ops[i].e, "did not shut down within %ds "
			    "and could not be forced off", secs);
			ops[i].row->status = ST_FAILED;
			ops[i].row->code = 1;
			buf_printf(&ops[i].row->err, "reops-run: %s\n",
			    ops[i].e.msg);
		} else
			buf_printf(&ops[i].note, "still running %ds after the "
			    "shutdown request; forced off", secs);
	}
	free(w);
}

struct workers {
	struct virt_op	*ops;
	size_t		 n;
	size_t		 next;
	virt_fn		 fn;
	pthread_mutex_t	 lock;
};

static void *
worker(void *arg)
{
	struct workers	*w = arg;
	struct virt_op	*op;
	size_t		 i;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		i = run_interrupted ? w->n : w->next;
		if (i < w->n)
			w->next++;
		pthread_mutex_unlock(&w->lock);
		if (i >= w->n)
			return NULL;
		op = &w->ops[i];
		if (op->act)
			op->failed = w->fn(op) != 0;
	}
}

/*
 * Acts on every row, up to --forks (at most MAX_THREADS) at a time: on a
 * real hypervisor a create takes a good part of a second, mostly waiting
 * for it, and libvirt connections may be used from several threads. Each
 * op touches only itself; rows and the table are written afterwards, here.
 */
static void
act_all(struct run *run, struct virt_op *ops, size_t n, virt_fn fn)
{
	struct workers	 w;
	pthread_t	 tid[MAX_THREADS];
	size_t		 i, nt;

	nt = n < MAX_THREADS ? n : MAX_THREADS;
	if (run->opt != NULL && (size_t)run->opt->forks < nt)
		nt = (size_t)run->opt->forks;
	memset(&w, 0, sizeof w);
	w.ops = ops;
	w.n = n;
	w.fn = fn;
	pthread_mutex_init(&w.lock, NULL);
	/* This thread is one of them; ls has nothing to wait for. */
	for (i = 0; fn != virt_nothing && i + 1 < nt; i++)
		if (pthread_create(&tid[i], NULL, worker, &w) != 0)
			break;
	nt = fn != virt_nothing && nt > 1 ? i : 0;
	worker(&w);
	for (i = 0; i < nt; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&w.lock);
}

/*
 * Runs FN on every system row still ok: connect (once per URI), look the
 * domain up, act; then wait for all of them; then refresh the columns.
 * A hypervisor that cannot be reached makes its rows unreachable.
 */
int
virt_stage(struct run *run, struct stage *st, struct table *t, virt_fn fn,
    enum virt_wait want, int secs)
{
	struct virt_op	*ops;
	struct virt_op	*op;
	struct vconn	*c;
	struct row	*r;
	long long	 start = now_ms();
	size_t		 i, n = 0;
	int		 tmo;

	ops = xcalloc(t->n, sizeof *ops);
	for (i = 0; i < t->n && !run_interrupted; i++) {
		r = t->rows[i];
		if (r->kind != ROW_SYSTEM || r->system == NULL ||
		    r->status != ST_OK)
			continue;
		op = &ops[n++];
		op->run = run;
		op->stage = st;
		op->table = t;
		op->row = r;
		op->sys = r->system;
		op->code = 1;
		buf_init(&op->note);
		buf_reset(&r->out);
		buf_reset(&r->err);
		r->code = 0;
		c = virt_conn(run, op->sys->hypervisor.uri);
		if ((op->conn = c->conn) == NULL) {
			r->status = ST_UNREACHABLE;
			r->code = -1;
			buf_printf(&r->err, "reops-run: %s\n", c->error);
			continue;
		}
		if ((op->dom = virDomainLookupByName(op->conn,
		    op->sys->name)) == NULL) {
			if (!last_error_is(VIR_ERR_NO_DOMAIN)) {
				virt_err(&op->e, "unable to look up '%s' on "
				    "'%s'", op->sys->name,
				    op->sys->hypervisor.uri);
				r->status = ST_UNREACHABLE;
				r->code = -1;
				buf_printf(&r->err, "reops-run: %s\n",
				    op->e.msg);
				continue;
			}
			virResetLastError();
		}
		op->act = 1;
	}
	act_all(run, ops, n, fn);
	for (i = 0; i < n; i++) {
		if (ops[i].act && ops[i].failed) {
			ops[i].row->status = ST_FAILED;
			ops[i].row->code = ops[i].code;
			buf_printf(&ops[i].row->err, "reops-run: %s\n",
			    ops[i].e.msg);
		}
	}
	if (want != WAIT_NONE && n > 0) {
		tmo = row_timeout(run, ops[0].row, secs);
		if (tmo <= 0)
			tmo = want == WAIT_SHUTOFF ? DEFAULT_STOP_S :
			    DEFAULT_WAIT_S;
		wait_all(ops, n, want, tmo);
	}
	for (i = 0; i < n; i++) {
		fill_row(&ops[i]);
		if (ops[i].note.len > 0 && ops[i].row->status == ST_OK)
			buf_printf(&ops[i].row->out, "%s\n", ops[i].note.data);
		ops[i].row->duration_ms = now_ms() - start;
		buf_free(&ops[i].note);
		if (ops[i].dom != NULL)
			virDomainFree(ops[i].dom);
	}
	free(ops);
	return 0;
}
