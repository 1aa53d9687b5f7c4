/*
 * ssh-cache.c: the run's connections, made once and kept for every stage:
 * one per host and one per bastion (ProxyJump), each knowing where and as
 * whom it connects (the inventory, then ssh_config, then the defaults),
 * which key files it offers and which known_hosts it checks against.
 */
#include <sys/stat.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "inventory.h"
#include "knownhosts.h"
#include "run.h"
#include "ssh.h"
#include "ssh-int.h"

/* Like Ansible's default: a dead host costs seconds, not minutes. */
#define DEFAULT_CONNECT_TIMEOUT	10

/*
 * libssh2_init and libssh2_exit count without a lock, and a branch's
 * lanes each open a cache of their own at once.
 */
pthread_mutex_t	ssh_lib_lock = PTHREAD_MUTEX_INITIALIZER;

struct ssh_cache *
cache_get(struct run *run)
{
	struct ssh_cache	*sc;
	struct err		 e;
	char			*path;

	if (run->ssh != NULL)
		return run->ssh;
	sc = xcalloc(1, sizeof *sc);
	hmap_init(&sc->conns);
	hmap_init(&sc->known);
	sc->inv = run->inv;
	pthread_mutex_lock(&ssh_lib_lock);
	libssh2_init(0);
	pthread_mutex_unlock(&ssh_lib_lock);
	/* Cached sessions hold a socket each: the budget raises the limit. */
	(void)fd_limit();
	if (run->opt->ssh_config != NULL) {
		if (ssh_config_load(run->opt->ssh_config, 1, &sc->cfg, &e) != 0)
			sc->cfg_error = xstrdup(e.msg);
	} else {
		path = ssh_expand_path("~/.ssh/config", NULL);
		if (ssh_config_load(path, 0, &sc->cfg, &e) != 0)
			sc->cfg_error = xstrdup(e.msg);
		free(path);
	}
	run->ssh = sc;
	return sc;
}

/* One collection per group and user file, read once per run. */
static struct known_hosts *
known_for(struct ssh_cache *sc, const struct group *g, const char *file)
{
	struct known_hosts	*k;
	char			*key;

	key = xasprintf("%s|%s", g->name, file != NULL ? file : "");
	if ((k = hmap_get(&sc->known, key)) != NULL) {
		free(key);
		return k;
	}
	k = known_hosts_load(g, file);
	sc->khs = xgrow(sc->khs, sc->nkhs, sizeof *sc->khs);
	sc->khkeys = xgrow(sc->khkeys, sc->nkhs,
	    sizeof *sc->khkeys);
	sc->khs[sc->nkhs] = k;
	sc->khkeys[sc->nkhs++] = key;
	hmap_set(&sc->known, key, k);
	return k;
}

static void
add_key(struct conn *c, char *path)
{
	c->keys = xgrow(c->keys, c->nkeys, sizeof *c->keys);
	c->keys[c->nkeys++] = path;
}

/*
 * Where and as whom: the inventory wins over ssh_config, which wins over
 * the defaults, as Ansible's inventory variables win over ~/.ssh/config.
 * A bastion given by address takes the port of ssh_config or 22, never
 * the group's port, which is its targets' (jump_port).
 */
static void
conn_init(struct ssh_cache *sc, struct conn *c, const struct host *h,
    int jump_port, struct ssh_host_config *hc)
{
	static const char *const defaults[] = { "~/.ssh/id_ed25519",
	    "~/.ssh/id_ecdsa", "~/.ssh/id_rsa" };
	const struct group	*g = h->group;
	struct stat		 sb;
	const char		*sock;
	char			*base, *p;
	size_t			 i;

	c->host = h;
	c->fd = -1;
	buf_init(&c->tried);
	ssh_config_lookup(sc->cfg, h->name, hc);
	if (h->address != h->name)
		c->addr = xstrdup(h->address);
	else
		c->addr = xstrdup(hc->hostname != NULL ? hc->hostname :
		    h->name);
	c->port = h->port ? h->port : !jump_port && g->auth.port ?
	    g->auth.port : hc->port ? hc->port : 22;
	if (h->user != NULL)
		c->user = xstrdup(h->user);
	else if (g->auth.user != NULL)
		c->user = xstrdup(g->auth.user);
	else if (hc->user != NULL)
		c->user = xstrdup(hc->user);
	else {
		c->user = xstrdup(ssh_local_user() != NULL ?
		    ssh_local_user() : "root");
	}
	c->connect_timeout = g->connect_timeout ? g->connect_timeout :
	    hc->connect_timeout ? hc->connect_timeout : DEFAULT_CONNECT_TIMEOUT;
	c->pass_env = g->auth.passphrase_env;
	c->known = known_for(sc, g, hc->known_hosts);
	sock = getenv("SSH_AUTH_SOCK");
	if (g->auth.key != NULL) {
		/* A key named in hosts.d is the one to use (and the agent
		 * only when asked for). */
		base = path_dir(g->where != NULL ? g->where->file : NULL);
		add_key(c, ssh_expand_path(g->auth.key, base));
		free(base);
		c->agent = g->auth.agent == 1;
	} else {
		c->agent = g->auth.agent == 1 || (g->auth.agent == -1 &&
		    sock != NULL && *sock != '\0');
		for (i = 0; i < hc->nidentity; i++) {
			add_key(c, hc->identity[i]);
			hc->identity[i] = NULL;
		}
		for (i = 0; hc->nidentity == 0 && i < nitems(defaults); i++) {
			p = ssh_expand_path(defaults[i], NULL);
			if (stat(p, &sb) == 0)
				add_key(c, p);
			else
				free(p);
		}
	}
	sc->all = xgrow(sc->all, sc->nall, sizeof *sc->all);
	sc->all[sc->nall++] = c;
}

static const struct host *
inventory_host(const struct inventory *inv, const char *name)
{
	size_t	i;

	for (i = 0; inv != NULL && i < inv->nhosts; i++)
		if (strcmp(inv->hosts[i]->name, name) == 0)
			return inv->hosts[i];
	return NULL;
}

/*
 * The bastion of a target, one session per bastion for the run: a host
 * of hosts.d is itself (its address, port, user and keys, checked by its
 * group's policy); an address is one per group, whose user, keys and
 * known_hosts it takes. Only one hop: the bastion's own is not followed.
 */
static struct conn *
jump_get(struct ssh_cache *sc, const struct host *target, const char *spec)
{
	struct ssh_host_config	 hc;
	struct proxy_jump	 pj;
	const struct host	*ih;
	struct conn		*b;
	const char		*why;
	char			*key;
	size_t			 bad;

	/* Known already, as a host of hosts.d or as this group's address? */
	key = xasprintf("\001%s", spec);
	if ((b = hmap_get(&sc->conns, key)) == NULL) {
		free(key);
		key = xasprintf("\001%s\001%s", target->group->name, spec);
		b = hmap_get(&sc->conns, key);
	}
	if (b != NULL) {
		free(key);
		return b;
	}
	if (proxy_jump_parse(spec, &pj, &bad, &why) != 0) {
		free(key);
		return NULL;	/* checked when read: "none" */
	}
	if ((ih = inventory_host(sc->inv, pj.host)) != NULL) {
		free(key);
		key = xasprintf("\001%s", spec);
	}
	b = xcalloc(1, sizeof *b);
	b->is_jump = 1;
	if (ih != NULL)
		b->jhost = *ih;
	else {
		b->jhost.name = b->jhost.address = b->jstr[0] = pj.host;
		pj.host = NULL;
		b->jhost.group = target->group;
		b->jhost.where = target->where;
	}
	b->jhost.proxy_jump = NULL;
	b->jhost.pin = ih != NULL ? ih->pin : NULL;
	if (pj.user != NULL) {
		b->jhost.user = b->jstr[1] = pj.user;
		pj.user = NULL;
	}
	if (pj.port != 0)
		b->jhost.port = pj.port;
	conn_init(sc, b, &b->jhost, ih == NULL, &hc);
	ssh_host_config_free(&hc);
	proxy_jump_free(&pj);
	hmap_set(&sc->conns, key, b);
	b->jstr[2] = key;
	sc->jumps = xgrow(sc->jumps, sc->njumps, sizeof *sc->jumps);
	sc->jumps[sc->njumps++] = b;
	return b;
}

struct conn *
conn_new(struct ssh_cache *sc, const struct host *h)
{
	struct ssh_host_config	 hc;
	struct conn		*c;
	const char		*spec;

	c = xcalloc(1, sizeof *c);
	conn_init(sc, c, h, 0, &hc);
	/* The host's own, then its group's, then ssh_config's. */
	spec = h->proxy_jump != NULL ? h->proxy_jump :
	    h->group->proxy_jump != NULL ? h->group->proxy_jump :
	    hc.proxy_jump;
	if (spec != NULL && strcmp(spec, "none") != 0) {
		c->jump = jump_get(sc, h, spec);
		/* A bastion does not jump through itself. */
		if (c->jump != NULL && c->jump->host->name == h->name)
			c->jump = NULL;
		if (c->jump != NULL)
			c->jump_name = xstrdup(spec);
	}
	ssh_host_config_free(&hc);
	hmap_set(&sc->conns, h->name, c);
	return c;
}

/* At the end of the run, after every conn_drop. */
void
conn_free(struct conn *c)
{
	size_t	k;

	free(c->addr);
	free(c->user);
	for (k = 0; k < c->nkeys; k++)
		free(c->keys[k]);
	free(c->keys);
	free(c->reason);
	buf_free(&c->tried);
	free(c->jump_name);
	for (k = 0; k < nitems(c->jstr); k++)
		free(c->jstr[k]);
	free(c);
}
