/*
 * agent-client.c: connect to a reops-agent with CURVE, send requests and
 * read the streamed replies without blocking (agent-client.h). The socket
 * monitor is what turns a failed handshake into a named reason.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-client.h"

struct agent_client {
	void		*dealer;
	void		*monitor;
	char		 endpoint[256];
	enum agent_fail	 fail;
	char		 why[512];
	int		 ready;		/* a handshake has succeeded */
	int		 connected;	/* a TCP connection was made */
	int		 retries;
};

static unsigned	monitors;	/* numbers each monitor's address */

static int	read_key_line(const char *, char *, int, struct err *);
static void	client_events(struct agent_client *);

/* The first line of path, which must be one Z85 key. */
static int
read_key_line(const char *path, char *key, int secret, struct err *e)
{
	struct stat	 st;
	char		 line[128];
	size_t		 n;
	FILE		*fp;
	uint8_t		 raw[32];
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return err_set(e, "unable to open '%s': %s", path,
		    strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, "'%s' is not a regular file", path);
	}
	if (secret && (st.st_mode & 077) != 0) {
		close(fd);
		return err_set(e, "'%s' is readable by others (mode %03o); "
		    "a secret key must be mode 600", path,
		    (unsigned)(st.st_mode & 0777));
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		close(fd);
		return err_set(e, "unable to read '%s': %s", path,
		    strerror(errno));
	}
	if (fgets(line, sizeof line, fp) == NULL) {
		fclose(fp);
		return err_set(e, "'%s' is empty", path);
	}
	fclose(fp);
	n = strcspn(line, " \t\r\n");
	line[n] = '\0';
	if (n != AGENT_KEY_LEN || zmq_z85_decode(raw, line) == NULL)
		return err_set(e, "%s:1:1: not a Z85 CURVE key", path);
	memcpy(key, line, AGENT_KEY_LEN + 1);
	return 0;
}

int
agent_key_read_secret(const char *path, char *secret, char *public,
    struct err *e)
{
	if (read_key_line(path, secret, 1, e) == -1)
		return -1;
	if (zmq_curve_public(public, secret) == -1)
		return err_set(e, "unable to derive the public key of '%s': "
		    "%s", path, zmq_strerror(zmq_errno()));
	return 0;
}

int
agent_key_read_public(const char *path, char *public, struct err *e)
{
	return read_key_line(path, public, 0, e);
}

struct agent_client *
agent_client_open(void *ctx, const char *endpoint,
    const struct agent_keys *k, const struct agent_client_opt *opt,
    struct err *e)
{
	struct agent_client	*c;
	char			 mon[64];
	int			 hb, ttl, zero = 0;

	c = xcalloc(1, sizeof *c);
	snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
	hb = opt != NULL && opt->heartbeat_ms > 0 ? opt->heartbeat_ms : 1000;
	ttl = hb * 3;
	if ((c->dealer = zmq_socket(ctx, ZMQ_DEALER)) == NULL)
		goto fail;
	if (zmq_setsockopt(c->dealer, ZMQ_LINGER, &zero, sizeof zero) == -1 ||
	    zmq_setsockopt(c->dealer, ZMQ_CURVE_SERVERKEY, k->server_public,
	    AGENT_KEY_LEN) == -1 ||
	    zmq_setsockopt(c->dealer, ZMQ_CURVE_PUBLICKEY, k->public,
	    AGENT_KEY_LEN) == -1 ||
	    zmq_setsockopt(c->dealer, ZMQ_CURVE_SECRETKEY, k->secret,
	    AGENT_KEY_LEN) == -1 ||
	    zmq_setsockopt(c->dealer, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) ==
	    -1 ||
	    zmq_setsockopt(c->dealer, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl) ==
	    -1 ||
	    zmq_setsockopt(c->dealer, ZMQ_HEARTBEAT_TIMEOUT, &ttl,
	    sizeof ttl) == -1)
		goto fail;
	/* The monitor's address only has to be unique in this context. */
	snprintf(mon, sizeof mon, "inproc://reops-agent-client-%u",
	    ++monitors);
	if (zmq_socket_monitor(c->dealer, mon, ZMQ_EVENT_ALL) == -1 ||
	    (c->monitor = zmq_socket(ctx, ZMQ_PAIR)) == NULL ||
	    zmq_setsockopt(c->monitor, ZMQ_LINGER, &zero, sizeof zero) == -1 ||
	    zmq_connect(c->monitor, mon) == -1)
		goto fail;
	if (zmq_connect(c->dealer, endpoint) == -1) {
		err_set(e, "unable to connect to '%s': %s", endpoint,
		    zmq_strerror(zmq_errno()));
		agent_client_close(c);
		return NULL;
	}
	return c;

 fail:
	err_set(e, "unable to set up a connection to '%s': %s", endpoint,
	    zmq_strerror(zmq_errno()));
	agent_client_close(c);
	return NULL;
}

void
agent_client_close(struct agent_client *c)
{
	if (c == NULL)
		return;
	if (c->dealer != NULL) {
		zmq_socket_monitor(c->dealer, NULL, 0);
		zmq_close(c->dealer);
	}
	if (c->monitor != NULL)
		zmq_close(c->monitor);
	free(c);
}

void
agent_client_pollitems(struct agent_client *c, zmq_pollitem_t items[2])
{
	memset(items, 0, 2 * sizeof items[0]);
	items[0].socket = c->dealer;
	items[0].events = ZMQ_POLLIN;
	items[1].socket = c->monitor;
	items[1].events = ZMQ_POLLIN;
}

int
agent_client_fds(struct agent_client *c, int fds[2])
{
	size_t	len = sizeof fds[0];

	if (zmq_getsockopt(c->dealer, ZMQ_FD, &fds[0], &len) == -1)
		return -1;
	len = sizeof fds[1];
	return zmq_getsockopt(c->monitor, ZMQ_FD, &fds[1], &len);
}

static void
client_fail(struct agent_client *c, enum agent_fail f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
client_fail(struct agent_client *c, enum agent_fail f, const char *fmt, ...)
{
	va_list	ap;

	if (c->fail != AGENT_OK)
		return;		/* the first reason is the one that counts */
	c->fail = f;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof c->why, fmt, ap);
	va_end(ap);
}

/*
 * The next pending event of a socket monitor, [u16 event, u32 value] then
 * the address frame, which is read and dropped: 1 with event and value,
 * 0 when none is waiting.
 */
int
monitor_next(void *mon, uint16_t *event, uint32_t *value)
{
	unsigned char	 ev[6];
	char		 addr[256];
	int		 n, more;
	size_t		 ml;

	for (;;) {
		if ((n = zmq_recv(mon, ev, sizeof ev, ZMQ_DONTWAIT)) == -1)
			return 0;
		ml = sizeof more;
		more = 0;
		zmq_getsockopt(mon, ZMQ_RCVMORE, &more, &ml);
		if (more)
			(void)zmq_recv(mon, addr, sizeof addr, 0);
		if ((size_t)n < sizeof ev)
			continue;
		memcpy(event, ev, 2);		/* host order, as libzmq sends */
		memcpy(value, ev + 2, 4);
		return 1;
	}
}

/* Reads every pending monitor event into the client's state. */
static void
client_events(struct agent_client *c)
{
	uint16_t	 event;
	uint32_t	 value;

	while (monitor_next(c->monitor, &event, &value)) {
		switch (event) {
		case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
			c->ready = 1;
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
			client_fail(c, AGENT_EAUTH, "the agent at '%s' refused "
			    "this runner's key (ZAP status %u): it is not in "
			    "the agent's authorized keys", c->endpoint,
			    (unsigned)value);
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
			client_fail(c, AGENT_EHANDSHAKE, "CURVE handshake with "
			    "'%s' failed (protocol error 0x%x): the agent's "
			    "key is not the one given, or it is not a "
			    "reops-agent", c->endpoint, (unsigned)value);
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
			client_fail(c, AGENT_EHANDSHAKE, "CURVE handshake with "
			    "'%s' failed: the agent's key is not the one "
			    "given, or it is not a reops-agent", c->endpoint);
			break;
		case ZMQ_EVENT_DISCONNECTED:
			/*
			 * Before a handshake, a reops-agent closes only after
			 * a failure it has already told (above); a silent
			 * close is something else on the port.
			 */
			if (c->ready)
				client_fail(c, AGENT_EDISCONNECTED, "the agent "
				    "at '%s' closed the connection",
				    c->endpoint);
			else
				client_fail(c, AGENT_EHANDSHAKE, "'%s' closed "
				    "the connection before the CURVE "
				    "handshake: it is not a reops-agent",
				    c->endpoint);
			break;
		case ZMQ_EVENT_CONNECTED:
			c->connected = 1;
			break;
		case ZMQ_EVENT_CONNECT_RETRIED:
			c->retries++;
			break;
		}
	}
}

int
agent_client_send(struct agent_client *c, uint8_t type, uint32_t id,
    const uint32_t *u, size_t nu, const struct frame_bytes *b, size_t nb,
    struct err *e)
{
	struct buf	out;
	int		rc;

	buf_init(&out);
	if (frame_encode(&out, type, id, u, nu, b, nb) == -1) {
		buf_free(&out);
		return err_set(e, "cannot encode a %s request",
		    frame_type_name(type));
	}
	rc = zmq_send(c->dealer, out.data, out.len, ZMQ_DONTWAIT);
	buf_free(&out);
	if (rc == -1)
		return err_set(e, "unable to send a %s request to '%s': %s",
		    frame_type_name(type), c->endpoint,
		    zmq_strerror(zmq_errno()));
	return 0;
}

int
agent_client_send_raw(struct agent_client *c, const void *data, size_t len,
    struct err *e)
{
	if (zmq_send(c->dealer, data, len, ZMQ_DONTWAIT) == -1)
		return err_set(e, "unable to send to '%s': %s", c->endpoint,
		    zmq_strerror(zmq_errno()));
	return 0;
}

int
agent_client_exec(struct agent_client *c, uint32_t id, const char *command,
    uint32_t deadline_ms, struct err *e)
{
	struct frame_bytes	b = { (const unsigned char *)command,
				    strlen(command) };

	return agent_client_send(c, FRAME_EXEC, id, &deadline_ms, 1, &b, 1, e);
}

int
agent_client_exec_input(struct agent_client *c, uint32_t id,
    const char *command, uint32_t deadline_ms, const void *input, size_t len,
    struct err *e)
{
	struct frame_bytes	b[2] = {
		{ (const unsigned char *)command, strlen(command) },
		{ input, len }
	};

	return agent_client_send(c, FRAME_EXEC_INPUT, id, &deadline_ms, 1, b, 2,
	    e);
}

int
agent_client_put_file(struct agent_client *c, uint32_t id, const char *path,
    unsigned mode, const void *data, size_t len, struct err *e)
{
	struct frame_bytes	b[2] = {
		{ (const unsigned char *)path, strlen(path) },
		{ data, len }
	};
	uint32_t		u = mode;

	return agent_client_send(c, FRAME_PUT_FILE, id, &u, 1, b, 2, e);
}

int
agent_client_kill(struct agent_client *c, uint32_t id, uint32_t target,
    struct err *e)
{
	return agent_client_send(c, FRAME_KILL, id, &target, 1, NULL, 0, e);
}

int
agent_client_recv(struct agent_client *c, struct agent_reply *r,
    struct err *e)
{
	char	why[256];
	int	rc;

	client_events(c);
	for (;;) {
		zmq_msg_init(&r->msg);
		if (zmq_msg_recv(&r->msg, c->dealer, ZMQ_DONTWAIT) == -1) {
			zmq_msg_close(&r->msg);
			break;
		}
		rc = frame_decode(&r->f, zmq_msg_data(&r->msg),
		    zmq_msg_size(&r->msg), why, sizeof why);
		if (rc == FRAME_EOK && r->f.type >= FRAME_OUTPUT) {
			if (r->f.type != FRAME_KEEPALIVE)
				return 1;
			zmq_msg_close(&r->msg);
			continue;
		}
		zmq_msg_close(&r->msg);
		client_fail(c, AGENT_EPROTO, "the agent at '%s' sent a "
		    "malformed reply: %s", c->endpoint,
		    rc == FRAME_EOK ? "a request type" : why);
		break;
	}
	/* Events that came while reading, e.g. the close after a failure. */
	client_events(c);
	if (c->fail != AGENT_OK) {
		err_set(e, "%s", c->why);
		return -1;
	}
	return 0;
}

void
agent_reply_free(struct agent_reply *r)
{
	zmq_msg_close(&r->msg);
}

enum agent_fail
agent_client_failure(const struct agent_client *c)
{
	return c->fail;
}

int
agent_client_ready(const struct agent_client *c)
{
	return c->ready;
}

int
agent_client_connected(const struct agent_client *c)
{
	return c->connected;
}

int
agent_client_retries(const struct agent_client *c)
{
	return c->retries;
}
