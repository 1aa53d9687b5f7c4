/*
 * inventory.c: loads every YAML file of hosts.d in name order and merges
 * them. Structures live in the arena of the file that declares them, so an
 * inventory of 100,000 hosts costs a handful of allocations per file.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"

const char inventory_default[] =
	"# The embedded default inventory: used when ./hosts.d does not exist\n"
	"# and no -i was given, so the demo runs on a fresh machine.\n"
	"groups:\n"
	"  local:\n"
	"    transport: local\n"
	"    hosts: [localhost]\n"
	"types:\n"
	"  demo:\n"
	"    description: systems on libvirt's built-in test hypervisor\n"
	"systems:\n"
	"  demo-1:\n"
	"    type: demo\n"
	"    hypervisor: { uri: \"test:///default\", pool: default-pool,"
	" network: default }\n"
	"    machine: { cpu: 1, ram: 256, disk: 1 }\n";

static const char *const top_keys[] = { "groups", "types", "systems", NULL };
static const char *const group_keys[] = { "transport", "auth", "host-keys",
    "known-hosts", "timeout", "connect-timeout", "proxy-jump", "hosts",
    "description", "agent", "fallback", NULL };
static const char *const agent_keys[] = { "port", "key", "known-agents",
    NULL };
static const char *const auth_keys[] = { "user", "key", "port",
    "passphrase-env", "agent", NULL };
static const char *const host_keys[] = { "name", "address", "port", "user",
    "proxy-jump", NULL };
static const char *const type_keys[] = { "provision", "auth", "cloud-init",
    "description", NULL };
static const char *const system_keys[] = { "type", "hypervisor", "machine",
    "description", NULL };
static const char *const hypervisor_keys[] = { "uri", "pool", "network",
    NULL };
static const char *const machine_keys[] = { "cpu", "ram", "disk", "image",
    "os", "user", "hostname", "ip", NULL };

const char *
transport_name(enum transport t)
{
	switch (t) {
	case TR_LOCAL:
		return "local";
	case TR_SSH:
		return "ssh";
	case TR_AGENT:
		return "agent";
	}
	return "?";
}

/* Host, group and system names: safe to paste into a shell word. */
int
valid_target_name(const char *s)
{
	const char	*p;

	if (*s == '\0' || *s == '-' || *s == '.')
		return 0;
	for (p = s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
		    *p == '_' || *p == ':')
			continue;
		return 0;
	}
	return 1;
}

static int
host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/*
 * "[ssh://][user@]HOST[:PORT]", as ssh(1) -J takes it; HOST may be an
 * IPv6 address in brackets. 1 for "none" (no bastion), 0 for one bastion
 * (pj filled in, to be freed), -1 with the offset of the fault and why.
 */
int
proxy_jump_parse(const char *s, struct proxy_jump *pj, size_t *bad,
    const char **why)
{
	const char	*p = s, *at, *h, *he, *q;
	long		 port = 0;

	memset(pj, 0, sizeof *pj);
	*bad = 0;
	if (strcmp(s, "none") == 0)
		return 1;
	if ((q = strchr(s, ',')) != NULL) {
		*bad = (size_t)(q - s);
		*why = "only one jump host is supported";
		return -1;
	}
	if (strncmp(p, "ssh://", 6) == 0)
		p += 6;
	if ((at = strrchr(p, '@')) != NULL) {
		if (at == p) {
			*bad = (size_t)(p - s);
			*why = "the user before '@' is empty";
			return -1;
		}
		for (q = p; q < at; q++)
			if ((unsigned char)*q <= ' ' || *q == '/' ||
			    *q == ':' || *q == '\\' || *q == 0x7f) {
				*bad = (size_t)(q - s);
				*why = "the user has a character not in names";
				return -1;
			}
		h = at + 1;
	} else
		h = p;
	if (*h == '[') {
		for (he = h + 1; *he != '\0' && *he != ']'; he++)
			if (!((*he >= '0' && *he <= '9') ||
			    (*he >= 'a' && *he <= 'f') ||
			    (*he >= 'A' && *he <= 'F') || *he == ':' ||
			    *he == '.')) {
				*bad = (size_t)(he - s);
				*why = "expected an IPv6 address in brackets";
				return -1;
			}
		if (*he != ']' || he == h + 1) {
			*bad = (size_t)(he - s);
			*why = "expected an IPv6 address in brackets";
			return -1;
		}
		pj->host = xstrndup(h + 1, (size_t)(he - h - 1));
		he++;
	} else {
		for (he = h; host_char(*he); he++)
			;
		if (he == h) {
			*bad = (size_t)(h - s);
			*why = "expected a host name or address";
			return -1;
		}
		pj->host = xstrndup(h, (size_t)(he - h));
	}
	if (*he == ':') {
		for (q = he + 1; *q >= '0' && *q <= '9' && port <= 65535; q++)
			port = port * 10 + (*q - '0');
		if (q == he + 1 || *q != '\0' || port < 1 || port > 65535) {
			*bad = (size_t)(he + 1 - s);
			*why = "the port must be a number from 1 to 65535";
			proxy_jump_free(pj);
			return -1;
		}
		pj->port = (int)port;
	} else if (*he != '\0') {
		*bad = (size_t)(he - s);
		*why = "expected [user@]HOST[:PORT]";
		proxy_jump_free(pj);
		return -1;
	}
	if (at != NULL)
		pj->user = xstrndup(p, (size_t)(at - p));
	return 0;
}

void
proxy_jump_free(struct proxy_jump *pj)
{
	free(pj->user);
	free(pj->host);
	memset(pj, 0, sizeof *pj);
}

/* The key's value, checked now so that a typo stops the run at load. */
static int
want_proxy_jump(const struct node *n, const char **out, struct err *e)
{
	struct proxy_jump	 pj;
	const char		*why;
	size_t			 bad;
	int			 r;

	if (node_is_null(n))
		return node_err(e, n, "'proxy-jump' needs a value");
	if (n->type != NODE_SCALAR)
		return node_err(e, n, "'proxy-jump' must be [user@]HOST[:PORT] "
		    "or none, not a %s", node_type_name(n));
	if ((r = proxy_jump_parse(n->str, &pj, &bad, &why)) < 0)
		return err_at(e, n->file, n->line, node_col_at(n, bad),
		    "invalid 'proxy-jump' '%s': %s", n->str, why);
	proxy_jump_free(&pj);
	*out = n->str;
	return 0;
}

static int
want_string(const struct node *n, const char *what, const char **out,
    struct err *e)
{
	if (node_is_null(n))
		return node_err(e, n, "%s needs a value", what);
	if (n->type != NODE_SCALAR)
		return node_err(e, n, "%s must be a string, not a %s", what,
		    node_type_name(n));
	*out = n->str;
	return 0;
}

static int
want_int(const struct node *n, const char *what, long long lo, long long hi,
    int *out, struct err *e)
{
	long long	v;

	if (node_as_int(n, &v) != 0)
		return node_err(e, n, "%s must be an integer, not '%s'", what,
		    n->type == NODE_SCALAR ? n->str : node_type_name(n));
	if (v < lo || v > hi)
		return node_err(e, n, "%s must be between %lld and %lld, not "
		    "%lld", what, lo, hi, v);
	*out = (int)v;
	return 0;
}

static int
want_name(const struct node *n, const char *what, struct err *e)
{
	if (n->type != NODE_SCALAR || !valid_target_name(n->str))
		return node_err(e, n, "invalid %s name '%s': use letters, "
		    "digits, '.', '-', '_' and ':'", what,
		    n->type == NODE_SCALAR ? n->str : node_type_name(n));
	return 0;
}

/*
 * What a name in one of the inventory's namespaces belongs to, so that a
 * duplicate can name the first one's place and kind.
 */
struct claim {
	const struct node	*where;
	const char		*what;		/* "group", "host", ... */
	void			*obj;		/* the struct type, for types */
};

static int
claim_name(struct hmap *names, struct doc *d, const struct node *n,
    const char *what, struct claim **out, struct err *e)
{
	struct claim	*c, *prev;

	c = doc_alloc(d, sizeof *c);
	c->where = n;
	c->what = what;
	c->obj = NULL;
	if (out != NULL)
		*out = c;
	if ((prev = hmap_put(names, n->str, c)) == NULL)
		return 0;
	if (strcmp(prev->what, what) == 0)
		return node_err(e, n, "duplicate %s name '%s' (also at "
		    "%s:%d:%d)", what, n->str, prev->where->file,
		    prev->where->line, prev->where->col);
	/* Groups and hosts share one namespace: selectors name either. */
	return node_err(e, n, "duplicate name '%s': a %s here, a %s at "
	    "%s:%d:%d", n->str, what, prev->what, prev->where->file,
	    prev->where->line, prev->where->col);
}

static int
load_auth(const struct node *n, const char *ctx, struct auth *a,
    struct err *e)
{
	struct node	*v;
	char		 what[128];
	int		 agent;

	a->agent = -1;
	snprintf(what, sizeof what, "'auth' of %s", ctx);
	if (node_want(n, NODE_MAP, what, e) != 0 ||
	    node_check_keys(n, auth_keys, what, e) != 0)
		return -1;
	if ((v = node_get(n, "user")) != NULL &&
	    want_string(v, "'user'", &a->user, e) != 0)
		return -1;
	if ((v = node_get(n, "key")) != NULL &&
	    want_string(v, "'key'", &a->key, e) != 0)
		return -1;
	if ((v = node_get(n, "port")) != NULL &&
	    want_int(v, "'port'", 1, 65535, &a->port, e) != 0)
		return -1;
	if ((v = node_get(n, "passphrase-env")) != NULL &&
	    want_string(v, "'passphrase-env'", &a->passphrase_env, e) != 0)
		return -1;
	if ((v = node_get(n, "agent")) != NULL) {
		if (node_as_bool(v, &agent) != 0)
			return node_err(e, v, "'agent' must be true or false, "
			    "not '%s'", v->type == NODE_SCALAR ? v->str :
			    node_type_name(v));
		a->agent = agent;
	}
	return 0;
}

static int
load_host(struct inventory *inv, struct doc *d, struct group *g,
    struct node *n, struct err *e)
{
	struct host	*h;
	struct node	*v, *name = n;

	h = doc_alloc(d, sizeof *h);
	memset(h, 0, sizeof *h);
	h->group = g;
	if (n->type == NODE_MAP) {
		if (node_check_keys(n, host_keys, "a host", e) != 0)
			return -1;
		if ((name = node_get(n, "name")) == NULL)
			return node_err(e, n, "a host mapping needs 'name'");
		if ((v = node_get(n, "address")) != NULL &&
		    want_string(v, "'address'", &h->address, e) != 0)
			return -1;
		if ((v = node_get(n, "port")) != NULL &&
		    want_int(v, "'port'", 1, 65535, &h->port, e) != 0)
			return -1;
		if ((v = node_get(n, "user")) != NULL &&
		    want_string(v, "'user'", &h->user, e) != 0)
			return -1;
		if ((v = node_get(n, "proxy-jump")) != NULL &&
		    want_proxy_jump(v, &h->proxy_jump, e) != 0)
			return -1;
	} else if (n->type != NODE_SCALAR)
		return node_err(e, n, "a host must be a name or a mapping, "
		    "not a list");
	if (want_name(name, "host", e) != 0 ||
	    claim_name(&inv->names, d, name, "host", NULL, e) != 0)
		return -1;
	h->name = name->str;
	h->where = name;
	if (h->address == NULL)
		h->address = h->name;
	g->hosts[g->nhosts++] = h;
	inv->hosts = xgrow(inv->hosts, inv->nhosts,
	    sizeof *inv->hosts);
	inv->hosts[inv->nhosts++] = h;
	return 0;
}

/*
 * An agent group's "agent: { port, key, known-agents }" and its
 * "fallback: ssh"; both belong to transport: agent only.
 */
static int
load_agent_conf(struct node *n, struct group *g, const char *what,
    struct err *e)
{
	struct node	*a, *v;
	char		 sub[300];

	a = node_get(n, "agent");
	v = node_get(n, "fallback");
	if (g->transport != TR_AGENT && (a != NULL || v != NULL))
		return node_err(e, a != NULL ? a : v, "'%s' is for groups "
		    "with transport: agent, and %s has transport: %s",
		    a != NULL ? "agent" : "fallback", what,
		    transport_name(g->transport));
	if (v != NULL) {
		if (v->type != NODE_SCALAR || strcmp(v->str, "ssh") != 0)
			return node_err(e, v, "'fallback' of %s must be ssh "
			    "(the only transport an agent row can fall back "
			    "to)", what);
		g->agent.fallback_ssh = 1;
	}
	if (a == NULL)
		return 0;
	snprintf(sub, sizeof sub, "'agent' of %s", what);
	if (node_want(a, NODE_MAP, sub, e) != 0 ||
	    node_check_keys(a, agent_keys, sub, e) != 0)
		return -1;
	if ((v = node_get(a, "port")) != NULL &&
	    want_int(v, "'port'", 1, 65535, &g->agent.port, e) != 0)
		return -1;
	if ((v = node_get(a, "key")) != NULL &&
	    want_string(v, "the runner's agent key file", &g->agent.key,
	    e) != 0)
		return -1;
	if ((v = node_get(a, "known-agents")) != NULL &&
	    want_string(v, "a known-agents file", &g->agent.known_agents,
	    e) != 0)
		return -1;
	return 0;
}

static int
load_group(struct inventory *inv, struct doc *d, struct node *k,
    struct node *n, struct err *e)
{
	struct group	*g;
	struct node	*v, *hosts;
	char		 what[256];
	size_t		 i;

	if (want_name(k, "group", e) != 0 ||
	    claim_name(&inv->names, d, k, "group", NULL, e) != 0)
		return -1;
	snprintf(what, sizeof what, "group '%s'", k->str);
	if (node_want(n, NODE_MAP, what, e) != 0 ||
	    node_check_keys(n, group_keys, what, e) != 0)
		return -1;
	g = doc_alloc(d, sizeof *g);
	memset(g, 0, sizeof *g);
	g->name = k->str;
	g->where = k;
	g->transport = TR_SSH;
	g->hostkeys = HK_STRICT;
	g->auth.agent = -1;
	if ((v = node_get(n, "transport")) != NULL) {
		if (v->type == NODE_SCALAR && strcmp(v->str, "local") == 0)
			g->transport = TR_LOCAL;
		else if (v->type == NODE_SCALAR && strcmp(v->str, "ssh") == 0)
			g->transport = TR_SSH;
		else if (v->type == NODE_SCALAR &&
		    strcmp(v->str, "agent") == 0)
			g->transport = TR_AGENT;
		else
			return node_err(e, v, "unknown transport '%s'; expected "
			    "ssh, agent or local", v->type == NODE_SCALAR ?
			    v->str : node_type_name(v));
	}
	if ((v = node_get(n, "host-keys")) != NULL) {
		if (v->type == NODE_SCALAR && strcmp(v->str, "strict") == 0)
			g->hostkeys = HK_STRICT;
		else if (v->type == NODE_SCALAR &&
		    strcmp(v->str, "accept-new") == 0)
			g->hostkeys = HK_ACCEPT_NEW;
		else if (v->type == NODE_SCALAR && strcmp(v->str, "off") == 0)
			g->hostkeys = HK_OFF;
		else
			return node_err(e, v, "unknown host-keys policy '%s'; "
			    "expected strict, accept-new or off",
			    v->type == NODE_SCALAR ? v->str :
			    node_type_name(v));
	}
	if ((v = node_get(n, "auth")) != NULL &&
	    load_auth(v, what, &g->auth, e) != 0)
		return -1;
	if ((v = node_get(n, "known-hosts")) != NULL) {
		if (v->type == NODE_SCALAR) {
			g->known_hosts = doc_alloc(d, sizeof *g->known_hosts);
			g->known_hosts[g->nknown_hosts++] = v->str;
		} else if (v->type == NODE_SEQ) {
			g->known_hosts = doc_alloc(d,
			    (v->nkids + 1) * sizeof *g->known_hosts);
			for (i = 0; i < v->nkids; i++) {
				if (want_string(v->kids[i], "a known-hosts "
				    "file", &g->known_hosts[i], e) != 0)
					return -1;
			}
			g->nknown_hosts = v->nkids;
		} else
			return node_err(e, v, "'known-hosts' must be a file or "
			    "a list of files");
	}
	if ((v = node_get(n, "timeout")) != NULL &&
	    want_int(v, "'timeout'", 1, 86400, &g->timeout, e) != 0)
		return -1;
	if ((v = node_get(n, "connect-timeout")) != NULL &&
	    want_int(v, "'connect-timeout'", 1, 3600, &g->connect_timeout,
	    e) != 0)
		return -1;
	if ((v = node_get(n, "proxy-jump")) != NULL &&
	    want_proxy_jump(v, &g->proxy_jump, e) != 0)
		return -1;
	if (load_agent_conf(n, g, what, e) != 0)
		return -1;
	if ((hosts = node_get(n, "hosts")) == NULL)
		return node_err(e, k, "group '%s' needs 'hosts'", g->name);
	if (hosts->type == NODE_SCALAR && !node_is_null(hosts)) {
		g->hosts = doc_alloc(d, sizeof *g->hosts);
		if (load_host(inv, d, g, hosts, e) != 0)
			return -1;
	} else if (hosts->type == NODE_SEQ) {
		g->hosts = doc_alloc(d, (hosts->nkids + 1) * sizeof *g->hosts);
		for (i = 0; i < hosts->nkids; i++)
			if (load_host(inv, d, g, hosts->kids[i], e) != 0)
				return -1;
	} else
		return node_err(e, hosts, "'hosts' of %s must be a list of "
		    "host names, not %s", what, node_is_null(hosts) ?
		    "nothing" : "a mapping");
	inv->groups = xgrow(inv->groups, inv->ngroups,
	    sizeof *inv->groups);
	inv->groups[inv->ngroups++] = g;
	return 0;
}


static int
load_type(struct inventory *inv, struct doc *d, struct node *k,
    struct node *n, struct err *e)
{
	struct type	*t;
	struct node	*v;
	struct claim	*c;
	char		 what[256], *base;

	if (want_name(k, "type", e) != 0 ||
	    claim_name(&inv->typenames, d, k, "type", &c, e) != 0)
		return -1;
	snprintf(what, sizeof what, "type '%s'", k->str);
	t = doc_alloc(d, sizeof *t);
	memset(t, 0, sizeof *t);
	t->name = k->str;
	t->where = k;
	t->auth.agent = -1;
	c->obj = t;
	if (!node_is_null(n)) {
		if (node_want(n, NODE_MAP, what, e) != 0 ||
		    node_check_keys(n, type_keys, what, e) != 0)
			return -1;
		if ((v = node_get(n, "provision")) != NULL &&
		    want_string(v, "'provision'", &t->provision, e) != 0)
			return -1;
		if ((v = node_get(n, "auth")) != NULL &&
		    load_auth(v, what, &t->auth, e) != 0)
			return -1;
		if ((v = node_get(n, "cloud-init")) != NULL &&
		    node_as_bool(v, &t->cloud_init) != 0)
			return node_err(e, v, "'cloud-init' must be true or "
			    "false, not '%s'", v->type == NODE_SCALAR ?
			    v->str : node_type_name(v));
	}
	base = path_dir(d->file);
	t->provision_base = doc_strdup(d, base, strlen(base));
	free(base);
	inv->types = xgrow(inv->types, inv->ntypes,
	    sizeof *inv->types);
	inv->types[inv->ntypes++] = t;
	return 0;
}

static int
load_system(struct inventory *inv, struct doc *d, struct node *k,
    struct node *n, struct err *e)
{
	struct system	*s;
	struct node	*v, *m;
	char		 what[256];

	if (want_name(k, "system", e) != 0 ||
	    claim_name(&inv->sysnames, d, k, "system", NULL, e) != 0)
		return -1;
	snprintf(what, sizeof what, "system '%s'", k->str);
	if (node_want(n, NODE_MAP, what, e) != 0 ||
	    node_check_keys(n, system_keys, what, e) != 0)
		return -1;
	s = doc_alloc(d, sizeof *s);
	memset(s, 0, sizeof *s);
	s->name = k->str;
	s->where = k;
	s->file = d->file;
	if ((v = node_get(n, "type")) == NULL)
		return node_err(e, k, "%s needs 'type'", what);
	if (v->type != NODE_SCALAR || node_is_null(v))
		return node_err(e, v, "'type' must be a type name");
	/* Resolved to a struct type once every file is loaded. */
	s->type_where = v;
	if ((m = node_get(n, "hypervisor")) == NULL)
		return node_err(e, k, "%s needs 'hypervisor'", what);
	snprintf(what, sizeof what, "'hypervisor' of system '%s'", k->str);
	if (node_want(m, NODE_MAP, what, e) != 0 ||
	    node_check_keys(m, hypervisor_keys, what, e) != 0)
		return -1;
	if ((v = node_get(m, "uri")) == NULL)
		return node_err(e, m, "%s needs 'uri'", what);
	if (want_string(v, "'uri'", &s->hypervisor.uri, e) != 0)
		return -1;
	if ((v = node_get(m, "pool")) != NULL &&
	    want_string(v, "'pool'", &s->hypervisor.pool, e) != 0)
		return -1;
	if ((v = node_get(m, "network")) != NULL &&
	    want_string(v, "'network'", &s->hypervisor.network, e) != 0)
		return -1;
	if ((m = node_get(n, "machine")) == NULL)
		return node_err(e, k, "system '%s' needs 'machine'", k->str);
	snprintf(what, sizeof what, "'machine' of system '%s'", k->str);
	if (node_want(m, NODE_MAP, what, e) != 0 ||
	    node_check_keys(m, machine_keys, what, e) != 0)
		return -1;
	s->machine.cpu = 1;
	s->machine.ram = 512;
	if ((v = node_get(m, "cpu")) != NULL &&
	    want_int(v, "'cpu'", 1, 1024, &s->machine.cpu, e) != 0)
		return -1;
	if ((v = node_get(m, "ram")) != NULL &&
	    want_int(v, "'ram'", 16, 16 * 1024 * 1024, &s->machine.ram,
	    e) != 0)
		return -1;
	if ((v = node_get(m, "disk")) != NULL &&
	    want_int(v, "'disk'", 1, 65536, &s->machine.disk, e) != 0)
		return -1;
	if ((v = node_get(m, "image")) != NULL &&
	    want_string(v, "'image'", &s->machine.image, e) != 0)
		return -1;
	if ((v = node_get(m, "os")) != NULL &&
	    want_string(v, "'os'", &s->machine.os, e) != 0)
		return -1;
	if ((v = node_get(m, "user")) != NULL &&
	    want_string(v, "'user'", &s->machine.user, e) != 0)
		return -1;
	if ((v = node_get(m, "hostname")) != NULL &&
	    want_string(v, "'hostname'", &s->machine.hostname, e) != 0)
		return -1;
	if ((v = node_get(m, "ip")) != NULL &&
	    want_string(v, "'ip'", &s->machine.ip, e) != 0)
		return -1;
	inv->systems = xgrow(inv->systems, inv->nsystems,
	    sizeof *inv->systems);
	inv->systems[inv->nsystems++] = s;
	return 0;
}

static int
load_section(struct inventory *inv, struct doc *d, struct node *sec,
    const char *name, int (*fn)(struct inventory *, struct doc *,
    struct node *, struct node *, struct err *), struct err *e)
{
	char	what[64];
	size_t	i;

	if (sec == NULL || node_is_null(sec))
		return 0;
	snprintf(what, sizeof what, "'%s'", name);
	if (node_want(sec, NODE_MAP, what, e) != 0)
		return -1;
	for (i = 0; i < map_nkeys(sec); i++)
		if (fn(inv, d, map_key(sec, i), map_val(sec, i), e) != 0)
			return -1;
	return 0;
}

static int
load_doc(struct inventory *inv, struct doc *d, struct err *e)
{
	struct node	*root = d->root;

	inv->docs = xgrow(inv->docs, inv->ndocs,
	    sizeof *inv->docs);
	inv->docs[inv->ndocs++] = d;
	if (root == NULL || node_is_null(root))
		return 0;
	if (root->type != NODE_MAP)
		return node_err(e, root, "an inventory file must be a mapping "
		    "of groups, types and systems");
	if (node_check_keys(root, top_keys, "an inventory file", e) != 0)
		return -1;
	/* Types first, so every system can resolve its type afterwards. */
	if (load_section(inv, d, node_get(root, "types"), "types", load_type,
	    e) != 0 ||
	    load_section(inv, d, node_get(root, "groups"), "groups",
	    load_group, e) != 0 ||
	    load_section(inv, d, node_get(root, "systems"), "systems",
	    load_system, e) != 0)
		return -1;
	return 0;
}

static int
resolve_types(struct inventory *inv, struct err *e)
{
	struct system	*s;
	const struct node *v;
	const struct claim *c;
	const char	*near, **names;
	size_t		 i;

	for (i = 0; i < inv->nsystems; i++) {
		s = inv->systems[i];
		v = s->type_where;
		if ((c = hmap_get(&inv->typenames, v->str)) != NULL) {
			s->type = c->obj;
			continue;
		}
		names = xcalloc(inv->ntypes + 1, sizeof *names);
		for (size_t j = 0; j < inv->ntypes; j++)
			names[j] = inv->types[j]->name;
		near = closest_name(v->str, names, inv->ntypes);
		if (near != NULL)
			node_err(e, v, "unknown type '%s'; did you mean '%s'?",
			    v->str, near);
		else
			node_err(e, v, "unknown type '%s'", v->str);
		free(names);
		return -1;
	}
	return 0;
}

static struct inventory *
inventory_new(const char *dir)
{
	struct inventory	*inv;

	inv = xcalloc(1, sizeof *inv);
	inv->dir = dir != NULL ? xstrdup(dir) : NULL;
	hmap_init(&inv->names);
	hmap_init(&inv->typenames);
	hmap_init(&inv->sysnames);
	return inv;
}

static int
is_yaml_name(const char *s)
{
	size_t	n = strlen(s);

	if (s[0] == '.')
		return 0;
	return (n > 5 && strcmp(s + n - 5, ".yaml") == 0) ||
	    (n > 4 && strcmp(s + n - 4, ".yml") == 0);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
inventory_load(const char *dir, struct inventory **out,
    struct err *e)
{
	struct inventory	*inv;
	struct dirent		*de;
	struct doc		*d;
	DIR			*dp;
	char			**names = NULL, *path;
	size_t			 n = 0, i;
	int			 r = -1;

	*out = NULL;
	if ((dp = opendir(dir)) == NULL)
		return err_set(e, "unable to open inventory '%s': %s", dir,
		    strerror(errno));
	while ((de = readdir(dp)) != NULL) {
		if (!is_yaml_name(de->d_name))
			continue;
		names = xgrow(names, n, sizeof *names);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(dp);
	if (n > 0)
		qsort(names, n, sizeof *names, cmp_str);
	inv = inventory_new(dir);
	for (i = 0; i < n; i++) {
		path = xasprintf("%s/%s", dir, names[i]);
		r = doc_load(path, &d, e);
		free(path);
		if (r != 0 || (r = load_doc(inv, d, e)) != 0)
			goto out;
	}
	r = resolve_types(inv, e);
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (r != 0) {
		inventory_free(inv);
		return -1;
	}
	*out = inv;
	return 0;
}

/* One inventory file's text, named name (the default; the fuzzer). */
int
inventory_load_string(const char *name, const char *text, size_t len,
    struct inventory **out, struct err *e)
{
	struct inventory	*inv;
	struct doc		*d;

	*out = NULL;
	if (doc_load_string(name, text, len, &d, e) != 0)
		return -1;
	inv = inventory_new(NULL);
	if (load_doc(inv, d, e) != 0 || resolve_types(inv, e) != 0) {
		inventory_free(inv);
		return -1;
	}
	*out = inv;
	return 0;
}

int
inventory_load_default(struct inventory **out, struct err *e)
{
	return inventory_load_string("<default inventory>", inventory_default,
	    sizeof inventory_default - 1, out, e);
}

void
inventory_free(struct inventory *inv)
{
	size_t	i;

	if (inv == NULL)
		return;
	for (i = 0; i < inv->ndocs; i++)
		doc_free(inv->docs[i]);
	free(inv->docs);
	free(inv->groups);
	free(inv->hosts);
	free(inv->types);
	free(inv->systems);
	hmap_free(&inv->names);
	hmap_free(&inv->typenames);
	hmap_free(&inv->sysnames);
	free(inv->dir);
	free(inv);
}
