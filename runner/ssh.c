/*
 * ssh.c: the ssh transport. libssh2 in non-blocking mode; one poll loop
 * drives every session, up to --forks hosts in flight. Each host gets one
 * SSH connection for the whole run, kept in a cache in struct run: later
 * stages open new channels on it, so a 5-stage pipeline costs one
 * handshake per host, not five. A host that cannot be reached, hangs,
 * refuses us or shows a changed key becomes a row with status unreachable
 * and a one-line reason; it never stops the others. Names are resolved
 * with getaddrinfo_a(3), so a slow resolver holds up only its own host.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
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

/* Like Ansible's default: a dead host costs seconds, not minutes. */
#define DEFAULT_CONNECT_TIMEOUT	10
/* How often the loop looks at run_interrupted when nothing happens. */
#define INTERRUPT_POLL_MS	200
/* How often a name being resolved is looked at, in ms. */
#define RESOLVE_POLL_MS		10
/* How long the end of the run waits for a resolver still at work. */
#define RESOLVE_WAIT_MS		2000
/* Reads per step, so one chatty host cannot starve the others. */
#define READ_ROUNDS		64
#define UNREACHABLE_CODE	255	/* what ssh(1) exits with */

enum conn_state {
	C_NEW,
	C_RESOLVE,	/* getaddrinfo_a(3) in progress */
	C_TCP,		/* connect(2) in progress */
	C_HANDSHAKE,
	C_AUTH,
	C_READY,
	C_DEAD		/* unreachable for the rest of the run */
};

enum job_state {
	J_OPEN,
	J_EXEC,
	J_IO,
	J_CLOSE,
	J_WAIT_CLOSED,
	J_FREE
};

struct slot;

struct conn {
	const struct host	*host;
	char			*addr;
	int			 port;
	char			*user;
	char			**keys;		/* identity files, in order */
	size_t			 nkeys;
	int			 agent;		/* try ssh-agent first */
	const char		*pass_env;
	int			 connect_timeout;
	struct known_hosts	*known;
	enum conn_state		 state;
	char			*reason;	/* why C_DEAD */
	int			 fd;
	struct addrinfo		*ai0, *ai;
	struct gaicb		*gai;		/* a name being resolved */
	int			 connect_errno;
	LIBSSH2_SESSION		*s;
	LIBSSH2_AGENT		*ag;
	struct libssh2_agent_publickey *ident;
	int			 agent_phase;	/* 0 start, 1 trying, 2 done */
	int			 in_auth;	/* a call returned EAGAIN */
	size_t			 key_i;
	struct buf		 tried;		/* for the refusal's reason */
	struct slot		*busy;
};

struct slot {
	struct job		*job;
	struct conn		*c;
	LIBSSH2_CHANNEL		*ch;
	enum job_state		 js;
	size_t			 in_off;
	int			 eof_sent;
	int			 events;
	int			 kick;		/* step again without waiting */
	long long		 start;
	long long		 deadline;	/* 0: none */
	long long		 connect_deadline;
};

struct ssh_cache {
	struct hmap		 conns;		/* host name -> conn */
	struct hmap		 known;		/* group|file -> known_hosts */
	struct conn		**all;
	size_t			 nall;
	struct known_hosts	**khs;
	char			**khkeys;
	size_t			 nkhs;
	struct ssh_key		**keys;		/* each key file, read once */
	size_t			 nkeys;
	struct ssh_config	*cfg;
	char			*cfg_error;
};

static struct ssh_cache *
cache_get(struct run *run)
{
	struct ssh_cache	*sc;
	struct err		 e;
	struct rlimit		 rl;
	char			*path;

	if (run->ssh != NULL)
		return run->ssh;
	sc = xcalloc(1, sizeof *sc);
	hmap_init(&sc->conns);
	hmap_init(&sc->known);
	libssh2_init(0);
	/* Cached sessions hold a socket each: allow as many as we may. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
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
		    strcmp(k->pass_env, pass_env) == 0))
			return k;
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

static char *
dir_of(const char *file)
{
	const char	*slash;

	if (file == NULL || (slash = strrchr(file, '/')) == NULL)
		return xstrdup(".");
	return xstrndup(file, (size_t)(slash - file) + (slash == file));
}

/*
 * Where and as whom: the inventory wins over ssh_config, which wins over
 * the defaults, as Ansible's inventory variables win over ~/.ssh/config.
 */
static struct conn *
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
		base = dir_of(g->where != NULL ? g->where->file : NULL);
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
static int
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
static void
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

static int __attribute__((format(printf, 2, 3)))
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

static const char *
last_error(LIBSSH2_SESSION *s)
{
	char	*msg = NULL;

	if (s == NULL || libssh2_session_last_error(s, &msg, NULL, 0) == 0 ||
	    msg == NULL)
		return "unknown error";
	return msg;
}

static int
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
static int
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

static const struct {
	const char	*name;
	int		 num;
} signals[] = {
	{ "HUP", 1 }, { "INT", 2 }, { "QUIT", 3 }, { "ILL", 4 },
	{ "ABRT", 6 }, { "FPE", 8 }, { "KILL", 9 }, { "USR1", 10 },
	{ "SEGV", 11 }, { "USR2", 12 }, { "PIPE", 13 }, { "ALRM", 14 },
	{ "TERM", 15 }, { "BUS", 7 },
};

static void
finish_slot(struct slot *sl)
{
	sl->job->row->duration_ms = now_ms() - sl->start;
	if (sl->c != NULL)
		sl->c->busy = NULL;
	sl->job = NULL;
	sl->c = NULL;
	sl->ch = NULL;
}

static void
row_unreachable(struct slot *sl, const char *reason)
{
	struct row	*r = sl->job->row;

	buf_reset(&r->out);
	buf_reset(&r->err);
	buf_printf(&r->err, "reops-run: %s\n", reason);
	r->status = ST_UNREACHABLE;
	r->code = UNREACHABLE_CODE;
	finish_slot(sl);
}

/* Exit status and signals as the local transport maps them. */
static void
row_exit(struct slot *sl)
{
	struct row	*r = sl->job->row;
	char		*sig = NULL;
	size_t		 len = 0, i;
	int		 num = 0;

	libssh2_channel_get_exit_signal(sl->ch, &sig, &len, NULL, NULL, NULL,
	    NULL);
	if (sig != NULL && len > 0) {
		for (i = 0; i < nitems(signals); i++)
			if (strlen(signals[i].name) == len &&
			    memcmp(signals[i].name, sig, len) == 0)
				num = signals[i].num;
		r->code = 128 + num;
		r->status = ST_FAILED;
		buf_printf(&r->err, "reops-run: killed by signal %d (SIG%.*s)\n",
		    num, (int)len, sig);
	} else {
		r->code = libssh2_channel_get_exit_status(sl->ch);
		r->status = r->code == 0 ? ST_OK : ST_FAILED;
	}
	if (sig != NULL)
		libssh2_free(sl->c->s, sig);
}

/* Reads what is there of one stream; 1 at its end, 0 for more later. */
static int
drain(struct slot *sl, int stream, int *rounds)
{
	char		 chunk[32768];
	struct buf	*b = stream == 0 ? &sl->job->row->out :
			    &sl->job->row->err;
	ssize_t		 n;

	while (*rounds > 0) {
		n = libssh2_channel_read_ex(sl->ch, stream, chunk,
		    sizeof chunk);
		if (n > 0) {
			buf_add(b, chunk, (size_t)n);
			(*rounds)--;
			continue;
		}
		if (n == LIBSSH2_ERROR_EAGAIN)
			return 0;
		if (n < 0)
			return -1;
		return 1;
	}
	sl->kick = 1;
	return 0;
}

/* 0: waiting; 1: the row is finished; -1: the session broke. */
static int
job_step(struct slot *sl)
{
	LIBSSH2_SESSION	*s = sl->c->s;
	struct job	*j = sl->job;
	struct buf	 cmd;
	ssize_t		 w;
	int		 r, rounds = READ_ROUNDS, e0, e1;

	switch (sl->js) {
	case J_OPEN:
		if ((sl->ch = libssh2_channel_open_session(s)) == NULL) {
			if (libssh2_session_last_errno(s) ==
			    LIBSSH2_ERROR_EAGAIN)
				return wait_dirs(sl, s);
			return -1;
		}
		sl->js = J_EXEC;
		/* FALLTHROUGH */
	case J_EXEC:
		/* The same shell as the local transport, whatever the
		 * user's login shell is. */
		buf_init(&cmd);
		buf_adds(&cmd, "exec /bin/sh -c ");
		shell_quote(&cmd, j->command);
		r = libssh2_channel_exec(sl->ch, cmd.data);
		buf_free(&cmd);
		if (r == LIBSSH2_ERROR_EAGAIN)
			return wait_dirs(sl, s);
		if (r != 0)
			return -1;
		sl->js = J_IO;
		/* FALLTHROUGH */
	case J_IO:
		/* A command that ended without reading all of its input is
		 * fed no more: its exit status says how it went. */
		if (!sl->eof_sent && libssh2_channel_eof(sl->ch) == 1) {
			sl->in_off = j->input_len;
			sl->eof_sent = 1;
		}
		while (sl->in_off < j->input_len) {
			w = libssh2_channel_write(sl->ch, j->input + sl->in_off,
			    j->input_len - sl->in_off);
			if (w == LIBSSH2_ERROR_EAGAIN)
				break;
			if (w == LIBSSH2_ERROR_CHANNEL_CLOSED ||
			    w == LIBSSH2_ERROR_CHANNEL_EOF_SENT) {
				sl->in_off = j->input_len;
				sl->eof_sent = 1;
				break;
			}
			if (w < 0)
				return -1;
			sl->in_off += (size_t)w;
		}
		if (sl->in_off == j->input_len && !sl->eof_sent) {
			r = libssh2_channel_send_eof(sl->ch);
			if (r == 0 || r == LIBSSH2_ERROR_CHANNEL_CLOSED)
				sl->eof_sent = 1;
			else if (r != LIBSSH2_ERROR_EAGAIN)
				return -1;
		}
		if ((e0 = drain(sl, 0, &rounds)) < 0 ||
		    (e1 = drain(sl, 1, &rounds)) < 0)
			return -1;
		if (!(e0 && e1 && sl->eof_sent)) {
			/*
			 * Reading one stream may have pulled the other's data,
			 * or the end of both, off the socket into libssh2's
			 * queue: then there is nothing left for poll to wake
			 * us on, so look again at once.
			 */
			if (libssh2_poll_channel_read(sl->ch, 1) == 1 ||
			    libssh2_channel_eof(sl->ch) == 1)
				sl->kick = 1;
			return sl->kick ? 0 : wait_dirs(sl, s);
		}
		sl->js = J_CLOSE;
		/* FALLTHROUGH */
	case J_CLOSE:
		r = libssh2_channel_close(sl->ch);
		if (r == LIBSSH2_ERROR_EAGAIN)
			return wait_dirs(sl, s);
		sl->js = J_WAIT_CLOSED;
		/* FALLTHROUGH */
	case J_WAIT_CLOSED:
		r = libssh2_channel_wait_closed(sl->ch);
		if (r == LIBSSH2_ERROR_EAGAIN)
			return wait_dirs(sl, s);
		row_exit(sl);
		sl->js = J_FREE;
		/* FALLTHROUGH */
	case J_FREE:
		r = libssh2_channel_free(sl->ch);
		if (r == LIBSSH2_ERROR_EAGAIN)
			return wait_dirs(sl, s);
		sl->ch = NULL;
		return 1;
	}
	return -1;
}

static void
slot_step(struct ssh_cache *sc, struct slot *sl)
{
	struct conn	*c = sl->c;
	struct row	*row = sl->job->row;
	int		 r;

	sl->kick = 0;
	if (c->state != C_READY) {
		if ((r = conn_step(sc, c, sl)) == 0)
			return;
		if (r < 0) {
			row_unreachable(sl, c->reason);
			return;
		}
		sl->js = J_OPEN;
	}
	if (sl->job->command == NULL) {
		/* ping: connected and authenticated is the answer */
		row->status = ST_OK;
		row->code = 0;
		finish_slot(sl);
		return;
	}
	if ((r = job_step(sl)) == 0)
		return;
	if (r > 0) {
		finish_slot(sl);
		return;
	}
	/* The session broke under a running command: it is of no more use. */
	buf_printf(&row->err, "reops-run: connection to %s port %d failed "
	    "while running the command: %s\n", c->addr, c->port,
	    last_error(c->s));
	row->status = ST_UNREACHABLE;
	row->code = UNREACHABLE_CODE;
	sl->ch = NULL;
	conn_drop(c, 0);
	finish_slot(sl);
}

static void
slot_start(struct slot *sl, struct job *j, struct conn *c)
{
	memset(sl, 0, sizeof *sl);
	sl->job = j;
	sl->c = c;
	sl->start = now_ms();
	c->busy = sl;
	buf_reset(&j->row->out);
	buf_reset(&j->row->err);
	if (j->timeout > 0)
		sl->deadline = sl->start + (long long)j->timeout * 1000;
	if (c->state != C_READY)
		sl->connect_deadline = sl->start +
		    (long long)c->connect_timeout * 1000;
	else
		sl->js = J_OPEN;
	sl->kick = 1;
}

/* A deadline passed: unreachable while connecting, failed after. */
static void
slot_timeout(struct slot *sl)
{
	struct conn	*c = sl->c;
	struct row	*r = sl->job->row;
	const char	*what;
	int		 secs;

	if (c->state != C_READY) {
		secs = sl->deadline != 0 && sl->deadline < sl->connect_deadline ?
		    sl->job->timeout : c->connect_timeout;
		what = c->state == C_NEW || c->state == C_RESOLVE ?
		    "resolving" : c->state == C_TCP ? "connecting to" :
		    c->state == C_HANDSHAKE ? "in the SSH handshake with" :
		    "authenticating to";
		conn_dead(c, "timed out after %ds %s %s port %d", secs, what,
		    c->addr, c->port);
		row_unreachable(sl, c->reason);
		return;
	}
	buf_printf(&r->err, "reops-run: timed out after %ds\n",
	    sl->job->timeout);
	r->status = ST_FAILED;
	r->code = 124;
	/*
	 * libssh2 1.10 cannot send the command a signal, so it runs on
	 * there; the session, in an unknown state, is given up.
	 */
	sl->ch = NULL;
	conn_drop(c, 0);
	finish_slot(sl);
}

static void
slot_interrupt(struct slot *sl)
{
	struct row	*r = sl->job->row;

	buf_adds(&r->err, "reops-run: interrupted\n");
	r->status = ST_FAILED;
	r->code = 130;
	sl->ch = NULL;
	conn_drop(sl->c, 0);
	finish_slot(sl);
}

static long long
slot_deadline(const struct slot *sl)
{
	long long	d = sl->deadline;

	if (sl->c->state != C_READY && sl->connect_deadline != 0 &&
	    (d == 0 || sl->connect_deadline < d))
		d = sl->connect_deadline;
	return d;
}

int
ssh_run(struct run *run, struct job **jobs, size_t n)
{
	struct ssh_cache	*sc = cache_get(run);
	struct slot		*slots;
	struct pollfd		*pfd;
	struct conn		*c;
	unsigned char		*started;
	size_t			 first = 0, active = 0, i, np;
	long long		 now, d;
	int			 forks, wait_ms, r = 0;

	forks = run->opt->forks > 0 ? run->opt->forks : DEFAULT_FORKS;
	if ((size_t)forks > n)
		forks = (int)n;
	slots = xcalloc((size_t)forks, sizeof *slots);
	pfd = xcalloc((size_t)forks, sizeof *pfd);
	started = xcalloc(n, 1);
	for (;;) {
		/* Start what we may; a host already busy waits its turn. */
		for (i = first; !run_interrupted && i < n &&
		    active < (size_t)forks; i++) {
			if (started[i])
				continue;
			if ((c = hmap_get(&sc->conns,
			    jobs[i]->row->host->name)) == NULL)
				c = conn_new(sc, jobs[i]->row->host);
			if (c->busy != NULL)
				continue;
			started[i] = 1;
			if (c->state == C_DEAD) {
				struct slot	tmp;

				slot_start(&tmp, jobs[i], c);
				row_unreachable(&tmp, c->reason);
				jobs[i]->row->duration_ms = 0;
				continue;
			}
			for (np = 0; slots[np].job != NULL; np++)
				;
			slot_start(&slots[np], jobs[i], c);
			active++;
		}
		while (first < n && started[first])
			first++;
		if (run_interrupted) {
			for (i = first; i < n; i++) {
				if (started[i])
					continue;
				started[i] = 1;
				jobs[i]->row->status = ST_SKIPPED;
				buf_adds(&jobs[i]->row->err, "reops-run: not "
				    "started: interrupted\n");
			}
			first = n;
			for (i = 0; i < (size_t)forks; i++)
				if (slots[i].job != NULL) {
					slot_interrupt(&slots[i]);
					active--;
				}
		}
		if (active == 0 && first >= n)
			break;
		now = now_ms();
		wait_ms = -1;
		for (i = 0; i < (size_t)forks; i++) {
			pfd[i].fd = -1;
			pfd[i].revents = 0;
			if (slots[i].job == NULL)
				continue;
			if (slots[i].kick)
				wait_ms = 0;
			else if (slots[i].c->state == C_RESOLVE &&
			    (wait_ms < 0 || wait_ms > RESOLVE_POLL_MS))
				wait_ms = RESOLVE_POLL_MS;
			if ((d = slot_deadline(&slots[i])) != 0) {
				d = d > now ? d - now : 0;
				if (wait_ms < 0 || d < wait_ms)
					wait_ms = (int)d;
			}
			pfd[i].fd = slots[i].c->fd;
			pfd[i].events = (short)slots[i].events;
		}
		/* In a thread, SIGINT interrupts the other poll, not ours. */
		if (wait_ms < 0 || wait_ms > INTERRUPT_POLL_MS)
			wait_ms = INTERRUPT_POLL_MS;
		if (poll(pfd, (nfds_t)forks, wait_ms) == -1 && errno != EINTR) {
			r = -1;
			break;
		}
		now = now_ms();
		for (i = 0; i < (size_t)forks; i++) {
			struct slot *sl = &slots[i];

			if (sl->job == NULL)
				continue;
			if (pfd[i].revents != 0 || sl->kick ||
			    sl->c->state == C_RESOLVE)
				slot_step(sc, sl);
			if (sl->job != NULL && (d = slot_deadline(sl)) != 0 &&
			    now >= d)
				slot_timeout(sl);
			if (sl->job == NULL)
				active--;
		}
	}
	free(started);
	free(slots);
	free(pfd);
	return r;
}

/* At the end of the run: every cached session says goodbye. */
void
ssh_cleanup(struct run *run)
{
	struct ssh_cache	*sc = run->ssh;
	struct conn		*c;
	size_t			 i, k;
	long long		 until = now_ms() + RESOLVE_WAIT_MS;
	int			 wait;

	if (sc == NULL)
		return;
	for (i = 0; i < sc->nall; i++) {
		c = sc->all[i];
		conn_drop(c, c->state == C_READY);
		/* One budget for all of them, not one each. */
		wait = (int)(until - now_ms());
		if (resolve_free(c, wait > 0 ? wait : 0) != 0)
			log_debug("%s: the resolver is still at work", c->addr);
		free(c->addr);
		free(c->user);
		for (k = 0; k < c->nkeys; k++)
			free(c->keys[k]);
		free(c->keys);
		free(c->reason);
		buf_free(&c->tried);
		free(c);
	}
	for (i = 0; i < sc->nkhs; i++) {
		known_hosts_free(sc->khs[i]);
		free(sc->khkeys[i]);
	}
	free(sc->khs);
	free(sc->khkeys);
	for (i = 0; i < sc->nkeys; i++) {
		ssh_key_free(sc->keys[i]);
		free(sc->keys[i]);
	}
	free(sc->keys);
	free(sc->all);
	hmap_free(&sc->conns);
	hmap_free(&sc->known);
	ssh_config_free(sc->cfg);
	free(sc->cfg_error);
	free(sc);
	run->ssh = NULL;
	libssh2_exit();
}
