/*
 * ssh-jump.c: targets behind a bastion (ProxyJump). The bastion's session
 * carries a direct-tcpip channel per target, which stands in for the
 * target's socket: the target's session reads and writes a tunnel's
 * buffers (tunnel_send, tunnel_recv), and the bastion's pump moves them
 * to and from the channels, in the one poll loop of ssh.c.
 */
#include <sys/types.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "ssh.h"
#include "ssh-int.h"

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
void
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
void
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

/* How much a tunnel holds each way before the other side must wait. */
#define TUNNEL_CAP	(1024 * 1024)
/* Passes over a bastion's channels until none has more to read. */
#define PUMP_PASSES	8

enum { OP_OPEN = 1, OP_WRITE, OP_READ, OP_CLOSE };

/* The target's session writes to and reads from its tunnel's buffers. */
ssize_t
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

ssize_t
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
