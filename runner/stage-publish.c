/*
 * stage-publish.c: "publish" sends each row of the table to a collector
 * over a ZeroMQ PUSH socket, as two frames (the topic, then the row as the
 * JSON object --json prints), and passes the table on unchanged.
 *
 * Nothing is dropped silently. The socket queues only to connections
 * whose handshake has completed (ZMQ_IMMEDIATE) and holds one message at
 * a time (ZMQ_SNDHWM 1), so a send that succeeds means the message before
 * it has been taken by a connected collector's connection, and a send that
 * cannot succeed before the timeout leaves that row and the rest counted
 * as not delivered. The socket monitor says why (nothing listening, a
 * failed handshake) and sees a connection close under rows already sent:
 * those are counted too, as their fate is unknown. What counts as
 * delivered is what ZeroMQ has written to the collector's connection; a
 * collector that dies with it unread loses it unseen (reops-pipeline(5)).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "agent-client.h"
#include "run.h"
#include "secret.h"

#define PUBLISH_TIMEOUT		10	/* seconds, by default */
#define PUBLISH_TIMEOUT_MAX	86400
#define PUBLISH_SLICE_MS	100	/* how often a wait looks at ^C */

static const struct stage_key publish_keys[] = {
	{ "to", ARG_STRING, 1 },
	{ "topic", ARG_STRING, 0 },
	{ "server-key", ARG_STRING, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

struct publish {
	int	curve;
	char	server_key[AGENT_KEY_LEN + 1];
	char	*key_path;	/* server-key, as resolved */
};

/* What the monitor and the sends saw, for the count and its reason. */
struct delivery {
	void		*sock;
	void		*mon;
	size_t		 sent;		/* rows ZeroMQ took, in order */
	size_t		 doubt;		/* of those, sent before a close */
	int		 connected;	/* a TCP (or ipc) connection was made */
	int		 ready;		/* a handshake completed, ever */
	int		 up;		/* ... and its connection is up */
	int		 refused;	/* nothing listening (retries) */
	int		 mismatch;	/* the other security mechanism */
	int		 handshake_failed;
	int		 send_errno;	/* a send failed for another reason */
	int		 drained;	/* the last row left our queue */
};

static int	valid_host(const char *, size_t);

/* HOST: a name or IPv4 address, or an IPv6 address in brackets. */
static int
valid_host(const char *s, size_t len)
{
	size_t	i;

	if (len == 0)
		return 0;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return 0;
		for (i = 1; i < len - 1; i++)
			if (strchr("0123456789abcdefABCDEF:.", s[i]) == NULL)
				return 0;
		return 1;
	}
	if (s[0] == '-' || s[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '.'))
			return 0;
	return 1;
}

/*
 * tcp://HOST:PORT or ipc://PATH, and nothing else ZeroMQ would take: no
 * bind forms (*), no source addresses (;), no other transports.
 */
static int
valid_endpoint(const char *s)
{
	const char	*colon, *p;
	long		 port;
	char		*end;

	if (strncmp(s, "ipc://", 6) == 0) {
		/* The path must fit sun_path, with its NUL. */
		if (s[6] == '\0' || strlen(s + 6) > 107)
			return 0;
		for (p = s + 6; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return 0;
		return 1;
	}
	if (strncmp(s, "tcp://", 6) != 0)
		return 0;
	s += 6;
	if ((colon = strrchr(s, ':')) == NULL ||
	    !valid_host(s, (size_t)(colon - s)))
		return 0;
	if (colon[1] < '0' || colon[1] > '9')
		return 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return errno == 0 && *end == '\0' && port >= 1 && port <= 65535;
}

/*
 * The endpoint and timeout are checked and the collector's key is read
 * now, so a mistake stops the run before anything runs. A relative key
 * file is beside the pipeline file, as copy's src is.
 */
static int
publish_prepare(struct stage *st, struct err *e)
{
	const struct node	*to, *key, *timeout;
	struct publish		*pb;
	struct err		 why;
	char			*dir;
	long long		 n;

	pb = xcalloc(1, sizeof *pb);
	st->data = pb;
	to = stage_arg(st, "to");
	if (!valid_endpoint(to->str))
		return node_err(e, to, "'to' of stage 'publish' must be "
		    "tcp://HOST:PORT or ipc://PATH, not '%s'", to->str);
	if ((timeout = stage_arg(st, "timeout")) != NULL &&
	    (node_as_int(timeout, &n) != 0 || n < 1 ||
	    n > PUBLISH_TIMEOUT_MAX))
		return node_err(e, timeout, "'timeout' of stage 'publish' "
		    "must be from 1 to %d seconds, not '%s'",
		    PUBLISH_TIMEOUT_MAX, timeout->str);
	if ((key = stage_arg(st, "server-key")) == NULL)
		return 0;
	dir = path_dir(st->owner != NULL && st->owner->file != NULL ?
	    st->owner->file : ".");
	pb->key_path = key->str[0] == '/' || dir[0] == '\0' ||
	    strcmp(dir, ".") == 0 ? xstrdup(key->str) :
	    xasprintf("%s/%s", dir, key->str);
	free(dir);
	if (agent_key_read_public(pb->key_path, pb->server_key, &why) != 0) {
		if (strstr(why.msg, ": not a Z85 CURVE key") != NULL)
			return node_err(e, key, "'%s' does not start with a "
			    "Z85 CURVE public key", pb->key_path);
		return node_err(e, key, "%s", why.msg);
	}
	pb->curve = 1;
	return 0;
}

static void
publish_cleanup(struct stage *st)
{
	struct publish	*pb = st->data;

	if (pb == NULL)
		return;
	explicit_bzero(pb->server_key, sizeof pb->server_key);
	free(pb->key_path);
	free(pb);
	st->data = NULL;
}

/* Reads every pending monitor event (monitor_next) into d. */
static void
read_events(struct delivery *d)
{
	uint16_t	event;
	uint32_t	value;

	while (monitor_next(d->mon, &event, &value)) {
		switch (event) {
		case ZMQ_EVENT_CONNECTED:
			d->connected = 1;
			break;
		case ZMQ_EVENT_CONNECT_RETRIED:
			if (!d->connected)
				d->refused = 1;
			break;
		case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
			d->ready = d->up = 1;
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
			if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
				d->mismatch = 1;
			else
				d->handshake_failed = 1;
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
			d->handshake_failed = 1;
			break;
		case ZMQ_EVENT_DISCONNECTED:
			/*
			 * Rows sent so far may have been on this connection,
			 * in its queue or in flight: none can be vouched for.
			 */
			if (d->up)
				d->doubt = d->sent;
			d->up = 0;
			break;
		}
	}
}

/*
 * Waits for the socket to take a message (ZMQ_POLLOUT) or for an event,
 * at most until the deadline and PUBLISH_SLICE_MS: 1 when it can take
 * one, 0 when not yet, -1 at the deadline or on ^C.
 */
static int
wait_out(struct delivery *d, long long deadline)
{
	zmq_pollitem_t	items[2];
	long long	left;

	read_events(d);
	if (run_interrupted || (left = deadline - now_ms()) <= 0)
		return -1;
	memset(items, 0, sizeof items);
	items[0].socket = d->sock;
	items[0].events = ZMQ_POLLOUT;
	items[1].socket = d->mon;
	items[1].events = ZMQ_POLLIN;
	if (zmq_poll(items, 2, left < PUBLISH_SLICE_MS ? (long)left :
	    PUBLISH_SLICE_MS) == -1 && zmq_errno() != EINTR)
		return -1;
	read_events(d);
	return (items[0].revents & ZMQ_POLLOUT) != 0 ? 1 : 0;
}

/*
 * One row, two frames: 0 when taken; -1 (zmq_errno) when the socket did
 * not take the first frame, so the row may be tried again; -2 when it
 * took the first and not the second, which leaves the message begun.
 */
static int
send_row(struct delivery *d, const char *topic, const struct buf *row)
{
	if (zmq_send(d->sock, topic, strlen(topic), ZMQ_SNDMORE |
	    ZMQ_DONTWAIT) == -1)
		return -1;
	/*
	 * The rest of a message the socket has begun goes at once (the
	 * queue's limit is checked at its first frame; a connection lost
	 * between the frames drops it), so ZMQ_SNDTIMEO is only a bound.
	 */
	return zmq_send(d->sock, row->data, row->len, 0) == -1 ? -2 : 0;
}

/* The row as --json prints it, without the newline. */
static void
row_json(struct buf *b, const struct table *t, const struct row *r)
{
	FILE	*f;
	char	*data = NULL;
	size_t	 len = 0;

	if ((f = open_memstream(&data, &len)) == NULL) {
		fputs("reops-run: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	print_json_row(f, t, r);
	if (fclose(f) != 0) {
		fputs("reops-run: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	buf_reset(b);
	buf_add(b, data, len > 0 && data[len - 1] == '\n' ? len - 1 : len);
	free(data);
}

/* The PUSH socket's options, its monitor, and the monitor's reader. */
static int
socket_setup(void *ctx, struct delivery *d, const struct publish *pb,
    int timeout_ms)
{
	static unsigned	monitors;	/* numbers each monitor's address */
	char		mon[64], public[AGENT_KEY_LEN + 1];
	char		secret[AGENT_KEY_LEN + 1];
	int		one = 1, zero = 0, r = -1;

	if (zmq_setsockopt(d->sock, ZMQ_IMMEDIATE, &one, sizeof one) == -1 ||
	    zmq_setsockopt(d->sock, ZMQ_SNDHWM, &one, sizeof one) == -1 ||
	    zmq_setsockopt(d->sock, ZMQ_SNDTIMEO, &timeout_ms,
	    sizeof timeout_ms) == -1 ||
	    zmq_setsockopt(d->sock, ZMQ_LINGER, &zero, sizeof zero) == -1)
		goto out;
	if (pb->curve) {
		/* The runner's key pair is made for this connection. */
		if (zmq_curve_keypair(public, secret) == -1 ||
		    zmq_setsockopt(d->sock, ZMQ_CURVE_SERVERKEY,
		    pb->server_key, AGENT_KEY_LEN) == -1 ||
		    zmq_setsockopt(d->sock, ZMQ_CURVE_PUBLICKEY, public,
		    AGENT_KEY_LEN) == -1 ||
		    zmq_setsockopt(d->sock, ZMQ_CURVE_SECRETKEY, secret,
		    AGENT_KEY_LEN) == -1)
			goto out;
	}
	snprintf(mon, sizeof mon, "inproc://reops-publish-%u", ++monitors);
	if (zmq_socket_monitor(d->sock, mon, ZMQ_EVENT_CONNECTED |
	    ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |
	    ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
	    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	    ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
	    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == -1 ||
	    (d->mon = zmq_socket(ctx, ZMQ_PAIR)) == NULL ||
	    zmq_setsockopt(d->mon, ZMQ_LINGER, &zero, sizeof zero) == -1 ||
	    zmq_connect(d->mon, mon) == -1)
		goto out;
	r = 0;
 out:
	explicit_bzero(secret, sizeof secret);
	return r;
}

/*
 * The one line that says how many rows were not delivered, where, and
 * why: "reops-run: publish: 3 of 5 rows not delivered to tcp://h:5555
 * (no collector listening within 10 s)".
 */
static void
report(struct stage *st, const struct publish *pb, const char *to,
    size_t lost, size_t total, const struct delivery *d, int timeout,
    int setup_errno)
{
	struct buf	b;
	const char	*sep = "";

	buf_init(&b);
	buf_printf(&b, "reops-run: %s: %zu of %zu row%s not delivered to %s (",
	    stage_name(st), lost, total, total == 1 ? "" : "s", to);
	if (d->doubt > 0) {
		buf_printf(&b, "the collector's connection closed with %zu "
		    "row%s sent on it, which may not all have arrived",
		    d->doubt, d->doubt == 1 ? "" : "s");
		sep = "; ";
	}
	if (lost > d->doubt) {
		buf_adds(&b, sep);
		if (setup_errno != 0)
			buf_printf(&b, "unable to connect: %s",
			    zmq_strerror(setup_errno));
		else if (d->send_errno != 0)
			buf_printf(&b, "unable to send: %s",
			    zmq_strerror(d->send_errno));
		else if (run_interrupted)
			buf_adds(&b, "interrupted");
		else if (d->mismatch && !d->ready)
			buf_adds(&b, pb->curve ? "the collector is not a CURVE "
			    "server" : "the collector wants CURVE: give its "
			    "public key as 'server-key'");
		else if (d->handshake_failed && !d->ready && pb->curve)
			buf_printf(&b, "the CURVE handshake failed: the "
			    "collector's key is not the one in '%s'",
			    pb->key_path);
		else if (d->handshake_failed && !d->ready)
			/*
			 * A CURVE collector may close before its greeting,
			 * which names its mechanism, has reached us: then
			 * libzmq reports no detail, only the failure.
			 */
			buf_adds(&b, "the ZeroMQ handshake failed; if the "
			    "collector wants CURVE, give its public key as "
			    "'server-key'");
		else if (!d->connected && d->refused)
			buf_printf(&b, "no collector listening within %d s",
			    timeout);
		else if (!d->connected)
			buf_printf(&b, "no connection to the collector "
			    "within %d s", timeout);
		else if (!d->ready)
			buf_printf(&b, "connected, but no ZeroMQ handshake "
			    "completed within %d s", timeout);
		else if (!d->up)
			buf_printf(&b, "no collector came back within %d s",
			    timeout);
		else
			buf_printf(&b, "the collector did not take them "
			    "within %d s", timeout);
	}
	buf_adds(&b, ")\n");
	secret_mask_buf(&b);
	fputs(b.data, stderr);
	fflush(stderr);
	buf_free(&b);
}

static int
publish_rows(struct run *run, struct stage *st, struct table *t)
{
	const struct publish	*pb = st->data;
	struct delivery		 d;
	struct buf		 row;
	const char		*to = stage_str(st, "to", ""), *topic;
	void			*ctx;
	long long		 deadline, left;
	size_t			 i, lost;
	int			 timeout, r = 0, w = 0, linger, setup_errno = 0;

	if (t->n == 0)
		return 0;
	timeout = (int)stage_int(st, "timeout", PUBLISH_TIMEOUT);
	topic = stage_str(st, "topic", t->pipeline != NULL ? t->pipeline :
	    "reops-run");
	deadline = now_ms() + timeout * 1000LL;
	memset(&d, 0, sizeof d);
	if ((ctx = zmq_ctx_new()) == NULL) {
		fprintf(stderr, "reops-run: %s: unable to start ZeroMQ: %s\n",
		    stage_name(st), zmq_strerror(zmq_errno()));
		return -1;
	}
	if ((d.sock = zmq_socket(ctx, ZMQ_PUSH)) == NULL ||
	    socket_setup(ctx, &d, pb, timeout * 1000) != 0 ||
	    zmq_connect(d.sock, to) == -1)
		setup_errno = zmq_errno();

	buf_init(&row);
	for (i = 0; setup_errno == 0 && i < t->n; i++) {
		row_json(&row, t, t->rows[i]);
		while ((r = send_row(&d, topic, &row)) == -1 &&
		    (zmq_errno() == EAGAIN || zmq_errno() == EINTR) &&
		    wait_out(&d, deadline) != -1)
			;
		if (r == -2) {
			/* Half a message: nothing more can follow it. */
			d.send_errno = zmq_errno();
			break;
		}
		if (r != 0) {
			if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
				d.send_errno = zmq_errno();
			break;
		}
		d.sent++;
	}
	buf_free(&row);
	/* With one message at most queued, room means the last one left. */
	if (d.sent == t->n)
		while ((w = wait_out(&d, deadline)) == 0)
			;
	d.drained = w == 1;
	if (d.mon != NULL)
		read_events(&d);

	/*
	 * The last row has left the queue but may still be on its way into
	 * the connection: the linger lets it finish, up to the deadline. At
	 * the deadline or on ^C there is none, and it is not vouched for.
	 */
	left = deadline - now_ms();
	linger = d.drained && left > 0 && !run_interrupted ? (int)left : 0;
	if (linger == 0)
		d.drained = 0;
	if (d.sock != NULL) {
		zmq_setsockopt(d.sock, ZMQ_LINGER, &linger, sizeof linger);
		zmq_socket_monitor(d.sock, NULL, 0);
		zmq_close(d.sock);
	}
	if (d.mon != NULL)
		zmq_close(d.mon);
	while (zmq_ctx_term(ctx) == -1 && zmq_errno() == EINTR)
		;
	/*
	 * The linger ran out: the last row may still have been on its way
	 * to the connection when ZeroMQ dropped what it held.
	 */
	if (d.drained && linger > 0 && now_ms() >= deadline)
		d.drained = 0;

	lost = t->n - d.sent + d.doubt + (!d.drained && d.sent > d.doubt);
	if (lost > 0) {
		report(st, pb, to, lost, t->n, &d, timeout, setup_errno);
		run->undelivered = 1;
	} else
		log_info("%s: %zu row%s delivered to %s", stage_name(st),
		    t->n, t->n == 1 ? "" : "s", to);
	return 0;
}

const struct stage_entry stage_publish_entry = {
	.name = "publish",
	.usage = "publish: { to: ENDPOINT, topic: NAME, server-key: FILE, "
	    "timeout: SECONDS }",
	.summary = "send each row as JSON to a collector over ZeroMQ (PUSH)",
	.shorthand = "to",
	.keys = publish_keys,
	.flags = STAGE_OUTPUT,
	.prepare = publish_prepare,
	.cleanup = publish_cleanup,
	.host = publish_rows,
	.system = publish_rows,
};
