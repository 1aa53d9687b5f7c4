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
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh2.h>

#include "knownhosts.h"
#include "run.h"
#include "ssh.h"
#include "ssh-int.h"

/* Like Ansible's default: a dead host costs seconds, not minutes. */
#define DEFAULT_CONNECT_TIMEOUT	10

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
	libssh2_init(0);
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
	sc->khs = xreallocarray(sc->khs, sc->nkhs + 1, sizeof *sc->khs);
	sc->khkeys = xreallocarray(sc->khkeys, sc->nkhs + 1,
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
	sc->keys = xreallocarray(sc->keys, sc->nkeys + 1, sizeof *sc->keys);
	sc->keys[sc->nkeys++] = k;
	return k;
}

static void
add_key(struct conn *c, char *path)
{
	c->keys = xreallocarray(c->keys, c->nkeys + 1, sizeof *c->keys);
	c->keys[c->nkeys++] = path;
}


/*
 * Where and as whom: the inventory wins over ssh_config, which wins over
 * the defaults, as Ansible's inventory variables win over ~/.ssh/config.
 */
struct conn *
conn_new(struct ssh_cache *sc, const struct host *h)
{
	static const char *const defaults[] = { "~/.ssh/id_ed25519",
	    "~/.ssh/id_ecdsa", "~/.ssh/id_rsa" };
	const struct group	*g = h->group;
	struct ssh_host_config	 hc;
	struct conn		*c;
	struct passwd		*pw;
	struct stat		 sb;
	const char		*sock;
	char			*base, *p;
	size_t			 i;

	c = xcalloc(1, sizeof *c);
	c->host = h;
	c->fd = -1;
	buf_init(&c->tried);
	ssh_config_lookup(sc->cfg, h->name, &hc);
	if (h->address != h->name)
		c->addr = xstrdup(h->address);
	else
		c->addr = xstrdup(hc.hostname != NULL ? hc.hostname : h->name);
	c->port = h->port ? h->port : g->auth.port ? g->auth.port :
	    hc.port ? hc.port : 22;
	if (h->user != NULL)
		c->user = xstrdup(h->user);
	else if (g->auth.user != NULL)
		c->user = xstrdup(g->auth.user);
	else if (hc.user != NULL)
		c->user = xstrdup(hc.user);
	else {
		pw = getpwuid(getuid());
		c->user = xstrdup(pw != NULL ? pw->pw_name : "root");
	}
	c->connect_timeout = g->connect_timeout ? g->connect_timeout :
	    hc.connect_timeout ? hc.connect_timeout : DEFAULT_CONNECT_TIMEOUT;
	c->pass_env = g->auth.passphrase_env;
	c->known = known_for(sc, g, hc.known_hosts);
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
		for (i = 0; i < hc.nidentity; i++) {
			add_key(c, hc.identity[i]);
			hc.identity[i] = NULL;
		}
		for (i = 0; hc.nidentity == 0 && i < nitems(defaults); i++) {
			p = ssh_expand_path(defaults[i], NULL);
			if (stat(p, &sb) == 0)
				add_key(c, p);
			else
				free(p);
		}
	}
	ssh_host_config_free(&hc);
	hmap_set(&sc->conns, h->name, c);
	sc->all = xreallocarray(sc->all, sc->nall + 1, sizeof *sc->all);
	sc->all[sc->nall++] = c;
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

/* Tears the connection down; graceful says goodbye first if it can. */
void
conn_drop(struct conn *c, int graceful)
{
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
		libssh2_session_free(c->s);
		c->s = NULL;
	}
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
		    c->addr, c->port, strerror(c->connect_errno));
		c->ours = 1;
		return -1;
	}
	return conn_dead(c, "unable to connect to %s port %d: %s", c->addr,
	    c->port, strerror(c->connect_errno));
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
		freeaddrinfo(c->ai0);
		c->ai0 = c->ai = NULL;
		if ((c->s = libssh2_session_init_ex(NULL, NULL, NULL,
		    c)) == NULL)
			return conn_dead(c, "unable to start an SSH session");
		libssh2_session_set_blocking(c->s, 0);
		c->state = C_HANDSHAKE;
		/* FALLTHROUGH */
	case C_HANDSHAKE:
		r = libssh2_session_handshake(c->s, c->fd);
		if (r == LIBSSH2_ERROR_EAGAIN)
			return wait_dirs(sl, c->s);
		if (r != 0)
			return conn_dead(c, "SSH handshake with %s port %d "
			    "failed: %s", c->addr, c->port, last_error(c->s));
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
