/*
 * ssh-conn.c: getting a host's session ready, one step at a time for the
 * poll loop in ssh.c: where and as whom (inventory, then ssh_config), the
 * name resolved with getaddrinfo_a(3), so a slow resolver holds up only
 * its own host, the TCP connect, the handshake and its host key check,
 * then authentication, by ssh-agent and then by key files.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static const struct ssh_key *
key_for(struct ssh_cache *sc, const char *path, const char *pass_env)
{
	struct ssh_key	*k;
	size_t		 i;

	for (i = 0; i < sc->nkeys; i++) {
		k = sc->keys[i];
		if (strcmp(k->path, path) == 0 && (k->pass_env == NULL ?
		    pass_env == NULL : pass_env != NULL &&
		    strcmp(k->pass_env, pass_env) == 0)) {
			/* Never a short-lived failure for the whole run. */
			if (k->transient) {
				ssh_key_free(k);
				ssh_key_load(k, path, pass_env);
			}
			return k;
		}
	}
	k = xcalloc(1, sizeof *k);
	ssh_key_load(k, path, pass_env);
	sc->keys = xgrow(sc->keys, sc->nkeys, sizeof *sc->keys);
	sc->keys[sc->nkeys++] = k;
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

/* The request and what it points to, all in one allocation's reach. */
struct resolve {
	struct gaicb	 cb;
	struct addrinfo	 hints;
	char		 service[16];
};

static int
resolve_start(struct conn *c)
{
	struct resolve	*q;
	struct gaicb	*list[1];
	int		 r;

	q = xcalloc(1, sizeof *q);
	q->hints.ai_family = AF_UNSPEC;
	q->hints.ai_socktype = SOCK_STREAM;
	q->hints.ai_flags = AI_NUMERICSERV;
	snprintf(q->service, sizeof q->service, "%d", c->port);
	q->cb.ar_name = c->addr;
	q->cb.ar_service = q->service;
	q->cb.ar_request = &q->hints;
	list[0] = &q->cb;
	if ((r = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) != 0) {
		free(q);
		return r;
	}
	/* cb is the first member: the request is the resolve. */
	c->gai = &q->cb;
	return 0;
}

/* Frees a finished request; one still at work is left for later. */
int
resolve_free(struct conn *c, int wait_ms)
{
	struct timespec	 ts;
	const struct gaicb *list[1];

	if (c->gai == NULL)
		return 0;
	if (gai_error(c->gai) == EAI_INPROGRESS &&
	    gai_cancel(c->gai) == EAI_NOTCANCELED && wait_ms > 0) {
		ts.tv_sec = wait_ms / 1000;
		ts.tv_nsec = (long)(wait_ms % 1000) * 1000000;
		list[0] = c->gai;
		gai_suspend(list, 1, &ts);
	}
	if (gai_error(c->gai) == EAI_INPROGRESS)
		return -1;	/* its thread still uses it: never free it */
	if (c->gai->ar_result != NULL)
		freeaddrinfo(c->gai->ar_result);
	free(c->gai);
	c->gai = NULL;
	return 0;
}

static void
tunnel_free(struct tunnel *t)
{
	buf_free(&t->in);
	buf_free(&t->out);
	free(t->addr);
	free(t->error);
	free(t);
}

/* The target lets go of its channel; the pump closes it. */
static void
tunnel_release(struct conn *c)
{
	struct tunnel	*t = c->tun;

	if (t == NULL)
		return;
	c->tun = NULL;
	t->c = NULL;
	if (t->b == NULL) {
		tunnel_free(t);	/* failed, and off the bastion's list */
		return;
	}
	t->state = T_CLOSE;
	t->b->pump_again = 1;
}


/*
 * A bastion's session goes, and with it every channel on it: targets
 * still using one see it fail with why, the others are freed.
 */
static void
jump_fail_all(struct conn *b, const char *why)
{
	struct tunnel	*t, *next;

	for (t = b->tunnels; t != NULL; t = next) {
		next = t->next;
		t->ch = NULL;
		if (t->c == NULL) {
			tunnel_free(t);
			continue;
		}
		t->next = NULL;
		t->b = NULL;
		t->state = T_FAILED;
		free(t->error);
		t->error = xasprintf("bastion '%s': %s", t->c->jump_name, why);
		if (t->c->busy != NULL)
			t->c->busy->kick = 1;
	}
	b->tunnels = b->opening = b->pending = NULL;
}

/* Tears the connection down; graceful says goodbye first if it can. */
void
conn_drop(struct conn *c, int graceful)
{
	if (c->is_jump)
		jump_fail_all(c, "the connection to the bastion was closed");
	if (c->ag != NULL) {
		libssh2_agent_disconnect(c->ag);
		libssh2_agent_free(c->ag);
		c->ag = NULL;
	}
	if (c->s != NULL) {
		if (graceful)
			(void)libssh2_session_disconnect(c->s, "done");
		/* With the socket shut, libssh2 cannot wait on it. */
		if (c->fd != -1)
			shutdown(c->fd, SHUT_RDWR);
		else if (c->tun != NULL && c->tun->state != T_FAILED)
			c->tun->state = T_CLOSE;
		libssh2_session_free(c->s);
		c->s = NULL;
	}
	tunnel_release(c);
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->fds > 0) {
		fd_release(c->fds);
		c->fds = 0;
	}
	if (c->ai0 != NULL) {
		freeaddrinfo(c->ai0);
		c->ai0 = c->ai = NULL;
	}
	resolve_free(c, 0);
	c->ident = NULL;
	c->agent_phase = 0;
	c->in_auth = 0;
	c->key_i = 0;
	buf_reset(&c->tried);
	c->state = C_NEW;
}


/* How much a tunnel holds each way before the other side must wait. */
#define TUNNEL_CAP	(1024 * 1024)
/* Passes over a bastion's channels until none has more to read. */
#define PUMP_PASSES	8

enum { OP_OPEN = 1, OP_WRITE, OP_READ, OP_CLOSE };

/* The target's session writes to and reads from its tunnel's buffers. */
static ssize_t
tunnel_send(libssh2_socket_t fd, const void *p, size_t len, int flags,
    void **abstract)
{
	struct conn	*c = *abstract;
	struct tunnel	*t = c->tun;

	(void)fd;
	(void)flags;
	if (t == NULL || t->state != T_OPEN || t->eof)
		return -EPIPE;
	if (t->out.len - t->out_off >= TUNNEL_CAP)
		return -EAGAIN;
	buf_add(&t->out, p, len);
	t->b->pump_again = 1;
	return (ssize_t)len;
}

static ssize_t
tunnel_recv(libssh2_socket_t fd, void *p, size_t len, int flags,
    void **abstract)
{
	struct conn	*c = *abstract;
	struct tunnel	*t = c->tun;
	size_t		 n;

	(void)fd;
	(void)flags;
	if (t == NULL || t->state == T_FAILED || t->state == T_CLOSE)
		return -ECONNRESET;
	if ((n = t->in.len - t->in_off) > 0) {
		if (n > len)
			n = len;
		memcpy(p, t->in.data + t->in_off, n);
		t->in_off += n;
		if (t->in_off == t->in.len) {
			buf_reset(&t->in);
			t->in_off = 0;
		}
		return (ssize_t)n;
	}
	return t->eof ? 0 : -EAGAIN;
}

static void
tunnel_progress(struct tunnel *t)
{
	if (t->c != NULL && t->c->busy != NULL)
		t->c->busy->kick = 1;
}

static void
tunnel_unlink(struct conn *b, struct tunnel *t)
{
	struct tunnel	**tp;

	for (tp = &b->tunnels; *tp != NULL; tp = &(*tp)->next)
		if (*tp == t) {
			*tp = t->next;
			break;
		}
	if (b->opening == t)
		b->opening = NULL;
	if (b->pending == t)
		b->pending = NULL;
	t->next = NULL;
	t->b = NULL;
}

/* One channel is done for: its target sees why, or it just goes. */
static void
tunnel_fail(struct tunnel *t, const char *why)
{
	struct conn	*b = t->b;

	tunnel_unlink(b, t);
	t->ch = NULL;
	if (t->c == NULL) {
		tunnel_free(t);
		return;
	}
	t->state = T_FAILED;
	free(t->error);
	t->error = xasprintf("bastion '%s': %s", t->c->jump_name, why);
	tunnel_progress(t);
}

/* Errors of one channel, as against those of the whole session. */
static int
channel_error(int r)
{
	return r <= LIBSSH2_ERROR_CHANNEL_OUTOFORDER &&
	    r >= LIBSSH2_ERROR_CHANNEL_EOF_SENT;
}

/* The bastion's session broke: every target behind it with it. */
static int
jump_lost(struct conn *b, int r)
{
	char	*why;

	why = xasprintf("connection to %s port %d lost: %s", b->addr,
	    b->port, r == LIBSSH2_ERROR_SOCKET_DISCONNECT ||
	    r == LIBSSH2_ERROR_SOCKET_RECV ? "the bastion closed it" :
	    last_error(b->s));
	jump_fail_all(b, why);
	conn_dead(b, "%s", why);
	free(why);
	return -1;
}

/*
 * An EAGAIN from a call that had put a packet in the session's send
 * buffer: libssh2 1.10 takes no other packet until that call is made
 * again (BAD_USE), so it is made before any other on this session.
 */
static int
jump_again(struct conn *b, struct tunnel *t, int op)
{
	if (libssh2_session_block_directions(b->s) &
	    LIBSSH2_SESSION_BLOCK_OUTBOUND) {
		b->pending = t;
		b->pending_op = op;
		return 1;
	}
	return 0;
}

static int
tunnel_open(struct conn *b, struct tunnel *t)
{
	LIBSSH2_CHANNEL	*ch;
	char		*why;
	int		 r;

	ch = libssh2_channel_direct_tcpip_ex(b->s, t->addr, t->port,
	    "127.0.0.1", 22);
	if (ch == NULL) {
		r = libssh2_session_last_errno(b->s);
		if (r == LIBSSH2_ERROR_EAGAIN)
			return jump_again(b, t, OP_OPEN);
		if (!channel_error(r) && r != LIBSSH2_ERROR_ALLOC)
			return jump_lost(b, r);
		why = xasprintf("unable to reach %s port %d through it: %s",
		    t->addr, t->port, last_error(b->s));
		tunnel_fail(t, why);
		free(why);
		return 0;
	}
	b->opening = NULL;
	t->ch = ch;
	if (t->state == T_WAIT)
		t->state = T_OPEN;
	log_debug("%s: channel to %s port %d through bastion %s", t->c !=
	    NULL ? t->c->host->name : "?", t->addr, t->port, b->addr);
	tunnel_progress(t);
	return 0;
}

/* What the target's session wrote, onto the channel. */
static int
tunnel_write(struct conn *b, struct tunnel *t)
{
	ssize_t	w;

	while (t->out_off < t->out.len) {
		w = libssh2_channel_write(t->ch, t->out.data + t->out_off,
		    t->out.len - t->out_off);
		if (w > 0) {
			t->out_off += (size_t)w;
			tunnel_progress(t);
			continue;
		}
		if (w == 0 || w == LIBSSH2_ERROR_EAGAIN)
			return w == 0 ? 0 : jump_again(b, t, OP_WRITE);
		if (!channel_error((int)w))
			return jump_lost(b, (int)w);
		/* The target's side is gone: what is left goes nowhere. */
		t->eof = 1;
		t->out_off = t->out.len;
		tunnel_progress(t);
	}
	buf_reset(&t->out);
	t->out_off = 0;
	return 0;
}

/* What the channel brought, for the target's session; 1: got some. */
static int
tunnel_read(struct conn *b, struct tunnel *t)
{
	char	chunk[32768];
	ssize_t	n;
	int	got = 0;

	while (!t->eof && t->in.len - t->in_off < TUNNEL_CAP) {
		n = libssh2_channel_read(t->ch, chunk, sizeof chunk);
		if (n > 0) {
			buf_add(&t->in, chunk, (size_t)n);
			got = 1;
			continue;
		}
		if (n == LIBSSH2_ERROR_EAGAIN) {
			if (jump_again(b, t, OP_READ))
				return -1;
			break;
		}
		if (n < 0 && !channel_error((int)n)) {
			jump_lost(b, (int)n);
			return -1;
		}
		if (n == 0 && libssh2_channel_eof(t->ch) != 1)
			break;
		/* Said if the target's session breaks on it. */
		if (t->c != NULL && t->error == NULL)
			t->error = xasprintf("bastion '%s': the channel to "
			    "%s port %d was closed", t->c->jump_name, t->addr,
			    t->port);
		t->eof = 1;
		got = 1;
	}
	if (got)
		tunnel_progress(t);
	return got;
}

/* Open, not at its end, and room for more from the target. */
static int
tunnel_room(const struct tunnel *t)
{
	return t->state == T_OPEN && t->ch != NULL && !t->eof &&
	    t->in.len - t->in_off < TUNNEL_CAP;
}

/* Closing takes a reply from the bastion: called until it has one. */
static int
tunnel_close(struct conn *b, struct tunnel *t)
{
	int	r;

	if (t->ch != NULL) {
		if (t->out_off < t->out.len && !t->eof) {
			if ((r = tunnel_write(b, t)) != 0)
				return r;
			if (t->out_off < t->out.len)
				return 0;	/* the window is full: later */
		}
		r = libssh2_channel_free(t->ch);
		if (r == LIBSSH2_ERROR_EAGAIN)
			return jump_again(b, t, OP_CLOSE);
		if (r != 0 && !channel_error(r))
			return jump_lost(b, r);
	}
	tunnel_unlink(b, t);
	tunnel_free(t);
	return 0;
}

static int
pump_op(struct conn *b, struct tunnel *t, int op)
{
	switch (op) {
	case OP_OPEN:
		return tunnel_open(b, t);
	case OP_WRITE:
		return tunnel_write(b, t);
	case OP_READ:
		return tunnel_read(b, t) < 0 ? (b->state == C_READY ? 1 : -1) :
		    0;
	case OP_CLOSE:
		return tunnel_close(b, t);
	}
	return 0;
}

/*
 * Every call on a bastion's session is made here, so that they take
 * turns as libssh2 needs: a call to be made again first, then one
 * channel being opened, the closes and the writes, then reads over all
 * channels until none brings more (a read for one channel may take in
 * the packets of the others, which poll would then not wake us for).
 */
static void
jump_pump(struct conn *b)
{
	struct tunnel	*t, *next;
	int		 pass, got, r;

	b->pump_again = 0;
	if (b->state != C_READY)
		return;
	if ((t = b->pending) != NULL) {
		b->pending = NULL;
		if (pump_op(b, t, b->pending_op) != 0 || b->pending != NULL ||
		    b->state != C_READY)
			return;
	}
	if (b->opening == NULL)
		for (t = b->tunnels; t != NULL; t = t->next)
			if (t->state == T_WAIT && t->ch == NULL) {
				b->opening = t;
				break;
			}
	if ((t = b->opening) != NULL) {
		if (tunnel_open(b, t) != 0 || b->state != C_READY)
			return;
		/* The next one at once: one round trip each. */
		if (b->opening == NULL)
			b->pump_again = 1;
	}
	for (t = b->tunnels; t != NULL; t = next) {
		next = t->next;
		if (t->ch == NULL) {
			/* Let go of before it was opened. */
			if (t->state == T_CLOSE && b->opening != t) {
				tunnel_unlink(b, t);
				tunnel_free(t);
			}
			continue;
		}
		if (t->state == T_CLOSE)
			r = tunnel_close(b, t);
		else
			r = tunnel_write(b, t);
		if (r != 0 || b->state != C_READY)
			return;
	}
	/*
	 * One read takes in what the socket has, for every channel; then
	 * only the channels that libssh2 holds data (or the end) for are
	 * read, so that idle channels cost no system call.
	 */
	for (t = b->tunnels; t != NULL && !tunnel_room(t); t = t->next)
		;
	if (t != NULL && tunnel_read(b, t) < 0)
		return;
	for (pass = 0; pass < PUMP_PASSES; pass++) {
		got = 0;
		for (t = b->tunnels; t != NULL; t = t->next) {
			if (!tunnel_room(t) ||
			    (libssh2_poll_channel_read(t->ch, 0) != 1 &&
			    libssh2_channel_eof(t->ch) != 1))
				continue;
			if ((r = tunnel_read(b, t)) < 0)
				return;
			got |= r;
		}
		if (!got)
			break;
	}
	for (t = b->tunnels; t != NULL; t = t->next)
		if (tunnel_room(t) &&
		    (libssh2_poll_channel_read(t->ch, 0) == 1 ||
		    libssh2_channel_eof(t->ch) == 1))
			b->pump_again = 1;
}

/* The bastions' sockets, after the slots' in pfd; 1: pump at once. */
int
jump_pollfds(struct ssh_cache *sc, struct pollfd *pfd)
{
	struct conn	*b;
	struct tunnel	*t;
	size_t		 i;
	int		 now = 0, d;

	for (i = 0; i < sc->njumps; i++) {
		b = sc->jumps[i];
		pfd[i].fd = -1;
		pfd[i].events = 0;
		pfd[i].revents = 0;
		if (b->state != C_READY || b->tunnels == NULL)
			continue;
		pfd[i].fd = b->fd;
		d = libssh2_session_block_directions(b->s);
		/* Nothing is read while every target's buffer is full. */
		for (t = b->tunnels; t != NULL; t = t->next)
			if (tunnel_room(t) || t->state == T_CLOSE ||
			    t == b->opening) {
				pfd[i].events = POLLIN;
				break;
			}
		if (d & LIBSSH2_SESSION_BLOCK_OUTBOUND)
			pfd[i].events |= POLLOUT;
		if (b->pump_again)
			now = 1;
	}
	return now;
}

/* Pumps the bastions that poll woke (pfd) or that have work waiting. */
void
jump_service(struct ssh_cache *sc, const struct pollfd *pfd)
{
	struct conn	*b;
	struct tunnel	*t;
	size_t		 i;
	int		 work;

	for (i = 0; i < sc->njumps; i++) {
		b = sc->jumps[i];
		if (b->state != C_READY || b->tunnels == NULL)
			continue;
		work = b->pump_again || (pfd != NULL && pfd[i].fd != -1 &&
		    pfd[i].revents != 0);
		for (t = b->tunnels; !work && t != NULL; t = t->next)
			work = t->out_off < t->out.len;
		if (work)
			jump_pump(b);
	}
}

/* The socket poll waits on for this connection, if any. */
int
conn_pollfd(const struct conn *c)
{
	if (c->state == C_JUMP)
		return c->jump->fd;
	return c->tun != NULL ? -1 : c->fd;
}

int
conn_resolving(const struct conn *c)
{
	return c->state == C_RESOLVE ||
	    (c->state == C_JUMP && c->jump->state == C_RESOLVE);
}

/*
 * A target behind a bastion has no socket: its buffers say whether a
 * step would get on.
 */
int
conn_tunnel_ready(const struct conn *c, int events)
{
	const struct tunnel	*t = c->tun;

	/* Another target's step may have readied the bastion, or lost it. */
	if (c->state == C_JUMP)
		return c->jump->state == C_READY || c->jump->state == C_DEAD;
	if (t == NULL)
		return 0;
	if (t->state == T_WAIT)
		return 0;
	if (t->state != T_OPEN || t->eof)
		return 1;
	if (c->state == C_TUNNEL)
		return 1;
	return ((events & POLLIN) && t->in_off < t->in.len) ||
	    ((events & POLLOUT) && t->out.len - t->out_off < TUNNEL_CAP);
}

/* Why a session broke: its tunnel may know better than libssh2. */
const char *
conn_error(struct conn *c)
{
	if (c->tun != NULL && c->tun->error != NULL)
		return c->tun->error;
	return last_error(c->s);
}

int __attribute__((format(printf, 2, 3)))
conn_dead(struct conn *c, const char *fmt, ...)
{
	va_list	ap;
	struct buf b;

	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	conn_drop(c, 0);
	free(c->reason);
	c->reason = buf_steal(&b);
	c->state = C_DEAD;
	return -1;
}

const char *
last_error(LIBSSH2_SESSION *s)
{
	char	*msg = NULL;

	if (s == NULL || libssh2_session_last_error(s, &msg, NULL, 0) == 0 ||
	    msg == NULL)
		return "unknown error";
	return msg;
}

int
wait_dirs(struct slot *sl, LIBSSH2_SESSION *s)
{
	int	d = libssh2_session_block_directions(s);

	sl->events = 0;
	if (d & LIBSSH2_SESSION_BLOCK_INBOUND)
		sl->events |= POLLIN;
	if (d & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		sl->events |= POLLOUT;
	if (sl->events == 0)
		sl->events = POLLIN;
	return 0;
}

static int
tcp_try(struct conn *c, struct slot *sl)
{
	int	one = 1;

	for (; c->ai != NULL; c->ai = c->ai->ai_next) {
		c->fd = socket(c->ai->ai_family, c->ai->ai_socktype |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, c->ai->ai_protocol);
		if (c->fd == -1) {
			c->connect_errno = errno;
			continue;
		}
		/* SSH is many small request-reply packets: no Nagle. */
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(c->fd, c->ai->ai_addr, c->ai->ai_addrlen) == 0)
			return 1;
		if (errno == EINPROGRESS) {
			sl->events = POLLOUT;
			c->state = C_TCP;
			return 0;
		}
		c->connect_errno = errno;
		close(c->fd);
		c->fd = -1;
	}
	/* Out of descriptors here is ours, not the host's: it may pass. */
	if (c->connect_errno == EMFILE || c->connect_errno == ENFILE) {
		conn_dead(c, "unable to open a socket for %s port %d: %s",
		    c->addr, c->port, xstrerror(c->connect_errno));
		c->ours = 1;
		return -1;
	}
	return conn_dead(c, "unable to connect to %s port %d: %s", c->addr,
	    c->port, xstrerror(c->connect_errno));
}

/* Agent identities first, then key files; each may take several calls. */
static int
auth_step(struct ssh_cache *sc, struct conn *c, struct slot *sl)
{
	struct libssh2_agent_publickey	*next;
	const struct ssh_key		*k;
	const char			*key;
	unsigned int			 ulen = (unsigned int)strlen(c->user);
	int				 r;

	if (c->agent && c->agent_phase < 2) {
		if (c->agent_phase == 0) {
			c->agent_phase = 2;
			if ((c->ag = libssh2_agent_init(c->s)) == NULL ||
			    libssh2_agent_connect(c->ag) != 0 ||
			    libssh2_agent_list_identities(c->ag) != 0) {
				buf_adds(&c->tried, c->tried.len ? ", " : "");
				buf_adds(&c->tried, "ssh-agent (unavailable)");
			} else {
				c->agent_phase = 1;
				buf_adds(&c->tried, c->tried.len ? ", " : "");
				buf_adds(&c->tried, "ssh-agent");
			}
		}
		while (c->agent_phase == 1) {
			if (!c->in_auth) {
				if (libssh2_agent_get_identity(c->ag, &next,
				    c->ident) != 0) {
					c->agent_phase = 2;
					break;
				}
				c->ident = next;
			}
			r = libssh2_agent_userauth(c->ag, c->user, c->ident);
			if (r == LIBSSH2_ERROR_EAGAIN) {
				c->in_auth = 1;
				return wait_dirs(sl, c->s);
			}
			c->in_auth = 0;
			if (r == 0)
				return 1;
			if (r == LIBSSH2_ERROR_SOCKET_SEND ||
			    r == LIBSSH2_ERROR_SOCKET_RECV ||
			    r == LIBSSH2_ERROR_SOCKET_DISCONNECT)
				return conn_dead(c, "connection to %s port %d "
				    "lost during authentication: %s", c->addr,
				    c->port, last_error(c->s));
		}
	}
	for (; c->key_i < c->nkeys; c->key_i++) {
		key = c->keys[c->key_i];
		k = key_for(sc, key, c->pass_env);
		if (k->problem != NULL) {
			/* Never the passphrase itself: where it was to come
			 * from, at most. */
			buf_printf(&c->tried, "%skey '%s' (%s)",
			    c->tried.len ? ", " : "", key, k->problem);
			continue;
		}
		r = libssh2_userauth_publickey_frommemory(c->s, c->user, ulen,
		    NULL, 0, k->data.data, k->data.len, k->passphrase != NULL ?
		    k->passphrase : "");
		if (r == LIBSSH2_ERROR_EAGAIN) {
			c->in_auth = 1;
			return wait_dirs(sl, c->s);
		}
		c->in_auth = 0;
		if (r == 0)
			return 1;
		if (r == LIBSSH2_ERROR_FILE) {
			buf_printf(&c->tried, "%skey '%s' (unusable: wrong "
			    "passphrase or unsupported format)", c->tried.len ?
			    ", " : "", key);
			continue;
		}
		if (r == LIBSSH2_ERROR_SOCKET_SEND ||
		    r == LIBSSH2_ERROR_SOCKET_RECV ||
		    r == LIBSSH2_ERROR_SOCKET_DISCONNECT)
			return conn_dead(c, "connection to %s port %d lost "
			    "during authentication: %s", c->addr, c->port,
			    last_error(c->s));
		buf_printf(&c->tried, "%skey '%s'", c->tried.len ? ", " : "",
		    key);
	}
	return conn_dead(c, "authentication refused for user '%s' at %s port "
	    "%d (tried: %s)", c->user, c->addr, c->port,
	    c->tried.len ? c->tried.data : "no agent and no key files");
}

/* 1: ready; 0: waiting (sl->events set); -1: dead (c->reason). */
int
conn_step(struct ssh_cache *sc, struct conn *c, struct slot *sl)
{
	struct addrinfo	 hints;
	struct tunnel	*t, **tp;
	socklen_t	 elen;
	char		 port[16], *reason;
	int		 r, soerr;

	switch (c->state) {
	case C_READY:
		return 1;
	case C_DEAD:
		return -1;
	case C_NEW:
		if (sc->cfg_error != NULL)
			return conn_dead(c, "%s", sc->cfg_error);
		if (c->jump != NULL) {
			c->state = C_JUMP;
			goto jump;
		}
		if (c->gai != NULL && resolve_free(c, 0) != 0)
			return conn_dead(c, "unable to resolve '%s': the "
			    "resolver does not answer", c->addr);
		/* An address needs no resolver; a name waits for one. */
		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
		snprintf(port, sizeof port, "%d", c->port);
		r = getaddrinfo(c->addr, port, &hints, &c->ai0);
		if (r == EAI_NONAME) {
			if ((r = resolve_start(c)) != 0)
				return conn_dead(c, "unable to resolve '%s': %s",
				    c->addr, gai_strerror(r));
			c->state = C_RESOLVE;
			sl->events = 0;
			return 0;
		}
		if (r != 0)
			return conn_dead(c, "unable to resolve '%s': %s",
			    c->addr, gai_strerror(r));
		goto connect;
	case C_JUMP:
	jump:
		if ((r = conn_step(sc, c->jump, sl)) == 0)
			return 0;
		if (r < 0)
			return conn_dead(c, "bastion '%s': %s", c->jump_name,
			    c->jump->reason);
		t = xcalloc(1, sizeof *t);
		t->c = c;
		t->b = c->jump;
		t->addr = xstrdup(c->addr);
		t->port = c->port;
		buf_init(&t->in);
		buf_init(&t->out);
		/* Opened in the order asked for. */
		for (tp = &c->jump->tunnels; *tp != NULL; tp = &(*tp)->next)
			;
		*tp = t;
		c->jump->pump_again = 1;
		c->tun = t;
		c->state = C_TUNNEL;
		/* FALLTHROUGH */
	case C_TUNNEL:
		if (c->tun->state == T_WAIT) {
			sl->events = 0;
			return 0;
		}
		if (c->tun->state != T_OPEN)
			return conn_dead(c, "%s", c->tun->error != NULL ?
			    c->tun->error : "the bastion's channel was closed");
		goto handshake;
	case C_RESOLVE:
		if ((r = gai_error(c->gai)) == EAI_INPROGRESS)
			return 0;
		c->ai0 = c->gai->ar_result;
		c->gai->ar_result = NULL;
		resolve_free(c, 0);
		if (r != 0)
			return conn_dead(c, "unable to resolve '%s': %s",
			    c->addr, gai_strerror(r));
	connect:
		c->ai = c->ai0;
		c->connect_errno = ECONNREFUSED;
		if ((r = tcp_try(c, sl)) <= 0)
			return r;
		goto handshake;
	case C_TCP:
		soerr = 0;
		elen = sizeof soerr;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr,
		    &elen) == -1)
			soerr = errno;
		if (soerr == EINPROGRESS || soerr == EALREADY) {
			sl->events = POLLOUT;
			return 0;
		}
		if (soerr != 0) {
			c->connect_errno = soerr;
			close(c->fd);
			c->fd = -1;
			c->ai = c->ai->ai_next;
			if ((r = tcp_try(c, sl)) <= 0)
				return r;
		}
	handshake:
		if (c->ai0 != NULL)
			freeaddrinfo(c->ai0);
		c->ai0 = c->ai = NULL;
		if ((c->s = libssh2_session_init_ex(NULL, NULL, NULL,
		    c)) == NULL)
			return conn_dead(c, "unable to start an SSH session");
		libssh2_session_set_blocking(c->s, 0);
		if (c->tun != NULL) {
			libssh2_session_callback_set(c->s,
			    LIBSSH2_CALLBACK_SEND, (void *)tunnel_send);
			libssh2_session_callback_set(c->s,
			    LIBSSH2_CALLBACK_RECV, (void *)tunnel_recv);
		}
		c->state = C_HANDSHAKE;
		/* FALLTHROUGH */
	case C_HANDSHAKE:
		/*
		 * Through a tunnel, libssh2 still wants a socket: the
		 * bastion's, already non-blocking, which it leaves alone as
		 * long as the callbacks do the reading and writing.
		 */
		r = libssh2_session_handshake(c->s, c->tun != NULL ?
		    c->jump->fd : c->fd);
		if (r == LIBSSH2_ERROR_EAGAIN)
			return wait_dirs(sl, c->s);
		if (r != 0)
			return conn_dead(c, "SSH handshake with %s port %d "
			    "failed: %s", c->addr, c->port, conn_error(c));
		if ((c->host->pin != NULL ? host_key_pinned(c->s, c->addr,
		    c->port, c->host->pin, &reason) : known_hosts_check(
		    c->known, c->s, c->addr, c->port,
		    c->host->group->hostkeys, &reason)) != 0) {
			conn_dead(c, "%s", reason);
			free(reason);
			return -1;
		}
		c->state = C_AUTH;
		/* FALLTHROUGH */
	case C_AUTH:
		if ((r = auth_step(sc, c, sl)) <= 0)
			return r;
		log_debug("%s: logged in as %s at %s port %d with %s%s%s",
		    c->host->name, c->user, c->addr, c->port,
		    c->agent_phase == 1 ? "ssh-agent" : "key '",
		    c->agent_phase == 1 ? "" : c->keys[c->key_i],
		    c->agent_phase == 1 ? "" : "'");
		if (c->ag != NULL) {
			libssh2_agent_disconnect(c->ag);
			libssh2_agent_free(c->ag);
			c->ag = NULL;
		}
		c->state = C_READY;
		return 1;
	}
	return -1;
}

/*
 * A slot's deadline passed before its host was ready. Waiting on the
 * bastion, it is the bastion that timed out, for every target behind it.
 */
void
conn_timeout(struct conn *c, int secs)
{
	const char	*what;

	if (c->state == C_JUMP && c->jump->state != C_READY) {
		if (c->jump->state != C_DEAD)
			conn_timeout(c->jump, secs);
		conn_dead(c, "bastion '%s': %s", c->jump_name, c->jump->reason);
		return;
	}
	what = c->state == C_NEW || c->state == C_RESOLVE ? "resolving" :
	    c->state == C_TCP ? "connecting to" : c->state == C_JUMP ||
	    c->state == C_TUNNEL ? "opening a channel to" :
	    c->state == C_HANDSHAKE ? "in the SSH handshake with" :
	    "authenticating to";
	if (c->jump != NULL)
		conn_dead(c, "timed out after %ds %s %s port %d through "
		    "bastion '%s'", secs, what, c->addr, c->port, c->jump_name);
	else
		conn_dead(c, "timed out after %ds %s %s port %d", secs, what,
		    c->addr, c->port);
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
