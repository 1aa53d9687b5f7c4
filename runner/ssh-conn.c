/*
 * ssh-conn.c: getting a host's session ready, one step at a time for the
 * poll loop in ssh.c: the name resolved with getaddrinfo_a(3), so a slow
 * resolver holds up only its own host, the TCP connect (or the channel
 * through its bastion, ssh-jump.c), the handshake and its host key check
 * (knownhosts.c), then authentication (ssh-auth.c); and taking it down.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh2.h>

#include "inventory.h"
#include "knownhosts.h"
#include "run.h"
#include "ssh.h"
#include "ssh-int.h"

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
