/*
 * agent-client-test.c: a small client of reops-agent built on
 * runner/agent-client.c, for the t5xxx tests.
 *
 *   agent-client-test [-t ms] [-r file] -s server.pub -k runner.key \
 *       endpoint action [argument...]
 *
 * Actions: ping, facts, ping2 file (a ping, then another on the same
 * connection once file exists), exec [-D deadline-ms] command, exec-kill command
 * (kills the request once it has printed something), kill id (of a
 * request of this connection: none), put path mode (the
 * content on stdin), flood count (malformed frames, each must get an error
 * reply), churn count (connections opened and dropped), oversize bytes.
 *
 * Output of exec goes to stdout and stderr as it came; the exit frame
 * goes to the -r file as "code C signal S duration D"; the exit status is
 * the command's code. A failure prints one line and exits 255; a reply
 * of type error exits 250; the -t timeout exits 254.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "agent-client.h"

static void			*ctx;
static struct agent_keys	 keys;
static const char		*endpoint;
static const char		*result_file;
static long long		 give_up;

static void
die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3),
    noreturn));

static void
die(int code, const char *fmt, ...)
{
	va_list	ap;

	fputs("agent-client-test: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void
write_all(int fd, const void *p, size_t n)
{
	const char	*c = p;
	ssize_t		 w;

	while (n > 0) {
		if ((w = write(fd, c, n)) == -1) {
			if (errno == EINTR)
				continue;
			die(255, "write: %s", strerror(errno));
		}
		c += w;
		n -= (size_t)w;
	}
}

static struct agent_client *
open_client(void)
{
	struct agent_client	*c;
	struct agent_client_opt	 opt = { 0 };
	struct err		 e;
	const char		*hb;

	if ((hb = getenv("REOPS_AGENT_HEARTBEAT_MS")) != NULL)
		opt.heartbeat_ms = atoi(hb);
	if ((c = agent_client_open(ctx, endpoint, &keys, &opt, &e)) == NULL)
		die(255, "%s", e.msg);
	return c;
}

/*
 * Waits for the next reply; dies on failure or at the timeout. It waits
 * with poll(2) on agent_client_fds, as a runner's own loop would.
 */
static void
next_reply(struct agent_client *c, struct agent_reply *r)
{
	struct pollfd	pfd[2];
	struct err	e;
	long long	left;
	int		rc, fds[2];

	for (;;) {
		if ((rc = agent_client_recv(c, r, &e)) == 1)
			return;
		if (rc == -1)
			die(255, "%s", e.msg);
		if ((left = give_up - now_ms()) <= 0) {
			if (!agent_client_ready(c) &&
			    agent_client_retries(c) > 0)
				die(254, "no agent listening at '%s'",
				    endpoint);
			die(254, "timed out waiting for '%s'", endpoint);
		}
		if (agent_client_fds(c, fds) == -1)
			die(255, "ZMQ_FD: %s", zmq_strerror(zmq_errno()));
		pfd[0].fd = fds[0];
		pfd[1].fd = fds[1];
		pfd[0].events = pfd[1].events = POLLIN;
		poll(pfd, 2, left > 200 ? 200 : (int)left);
	}
}

static int
print_result(struct agent_reply *r)
{
	if (r->f.type == FRAME_ERROR) {
		fprintf(stderr, "error %u: %.*s\n", (unsigned)r->f.u[0],
		    (int)r->f.b[0].len, (const char *)r->f.b[0].p);
		return 250;
	}
	if (r->f.type != FRAME_RESULT)
		die(255, "unexpected %s reply", frame_type_name(r->f.type));
	write_all(1, r->f.b[0].p, r->f.b[0].len);
	if (r->f.b[0].len > 0 && r->f.b[0].p[r->f.b[0].len - 1] != '\n')
		write_all(1, "\n", 1);
	return 0;
}

static int
simple(uint8_t type)
{
	struct agent_client	*c = open_client();
	struct agent_reply	 r;
	struct err		 e;
	int			 rc;

	if (agent_client_send(c, type, 1, NULL, 0, NULL, 0, &e) == -1)
		die(255, "%s", e.msg);
	next_reply(c, &r);
	rc = print_result(&r);
	agent_reply_free(&r);
	agent_client_close(c);
	return rc;
}

static int
do_exec(const char *command, uint32_t deadline, int kill_after_output)
{
	struct agent_client	*c = open_client();
	struct agent_reply	 r;
	struct err		 e;
	FILE			*fp;
	int			 rc = -1, killed = 0;

	if (agent_client_exec(c, 1, command, deadline, &e) == -1)
		die(255, "%s", e.msg);
	while (rc == -1) {
		next_reply(c, &r);
		if (r.f.id == 2) {
			if (print_result(&r) != 0)
				die(255, "the kill request failed");
		} else if (r.f.type == FRAME_OUTPUT) {
			write_all(r.f.u[0] == FRAME_STDOUT ? 1 : 2, r.f.b[0].p,
			    r.f.b[0].len);
			if (kill_after_output && !killed) {
				if (agent_client_kill(c, 2, 1, &e) == -1)
					die(255, "%s", e.msg);
				killed = 1;
			}
		} else if (r.f.type == FRAME_EXIT) {
			if (result_file != NULL) {
				if ((fp = fopen(result_file, "w")) == NULL)
					die(255, "%s: %s", result_file,
					    strerror(errno));
				fprintf(fp, "code %u signal %u duration %u\n",
				    (unsigned)r.f.u[0], (unsigned)r.f.u[1],
				    (unsigned)r.f.u[2]);
				if (fclose(fp) == EOF)
					die(255, "%s: %s", result_file,
					    strerror(errno));
			}
			rc = (int)(r.f.u[0] & 0xff);
		} else
			rc = print_result(&r);
		agent_reply_free(&r);
	}
	agent_client_close(c);
	return rc;
}

/* A ping, then another on the same connection once path exists. */
static int
do_ping2(const char *path)
{
	struct agent_client	*c = open_client();
	struct agent_reply	 r;
	struct err		 e;
	int			 rc;

	if (agent_client_send(c, FRAME_PING, 1, NULL, 0, NULL, 0, &e) == -1)
		die(255, "%s", e.msg);
	next_reply(c, &r);
	rc = print_result(&r);
	agent_reply_free(&r);
	if (rc != 0)
		return rc;
	fflush(stdout);
	while (access(path, F_OK) == -1) {
		if (now_ms() > give_up)
			die(254, "'%s' never came", path);
		usleep(20000);
	}
	if (agent_client_send(c, FRAME_PING, 2, NULL, 0, NULL, 0, &e) == -1)
		die(255, "%s", e.msg);
	next_reply(c, &r);
	rc = print_result(&r);
	agent_reply_free(&r);
	agent_client_close(c);
	return rc;
}

static int
do_kill(uint32_t target)
{
	struct agent_client	*c = open_client();
	struct agent_reply	 r;
	struct err		 e;
	int			 rc;

	if (agent_client_kill(c, 1, target, &e) == -1)
		die(255, "%s", e.msg);
	next_reply(c, &r);
	rc = print_result(&r);
	agent_reply_free(&r);
	agent_client_close(c);
	return rc;
}

static int
do_put(const char *path, const char *mode)
{
	struct agent_client	*c;
	struct agent_reply	 r;
	struct buf		 in;
	struct err		 e;
	char			 chunk[65536];
	ssize_t			 n;
	int			 rc;

	buf_init(&in);
	while ((n = read(0, chunk, sizeof chunk)) > 0)
		buf_add(&in, chunk, (size_t)n);
	c = open_client();
	if (agent_client_put_file(c, 1, path, (unsigned)strtoul(mode, NULL, 8),
	    in.data, in.len, &e) == -1)
		die(255, "%s", e.msg);
	buf_free(&in);
	next_reply(c, &r);
	rc = print_result(&r);
	agent_reply_free(&r);
	agent_client_close(c);
	return rc;
}

/*
 * Malformed frames of every kind the decoder refuses, then a ping: every
 * one gets its error reply, and the ping its pong, in order.
 */
static int
do_flood(int count)
{
	struct agent_client	*c = open_client();
	struct agent_reply	 r;
	struct err		 e;
	unsigned char		 m[64];
	size_t			 len;
	int			 i, errors = 0;
	unsigned		 seed = 12345;

	for (i = 0; i < count; i++) {
		size_t k;

		len = 6 + (size_t)(rand_r(&seed) % 40);
		for (k = 0; k < len; k++)
			m[k] = (unsigned char)rand_r(&seed);
		switch (i % 6) {
		case 0:		/* short */
			len = (size_t)(rand_r(&seed) % 6);
			break;
		case 1:		/* another version */
			m[0] = (unsigned char)(2 + rand_r(&seed) % 250);
			break;
		case 2:		/* unknown type, or a reply type */
			m[0] = 1;
			m[1] = (unsigned char)(i % 12 == 2 ? 0x81 : 6 +
			    rand_r(&seed) % 100);
			break;
		case 3:		/* a length running past the end */
			m[0] = 1;
			m[1] = FRAME_EXEC;
			memcpy(m + 6, "\0\0\0\0\x7f\xff\xff\xff", 8);
			len = 14 + (size_t)(rand_r(&seed) % 20);
			break;
		case 4:		/* trailing bytes after a ping */
			m[0] = 1;
			m[1] = FRAME_PING;
			len = 7 + (size_t)(rand_r(&seed) % 30);
			break;
		case 5:		/* random fields of exec, put-file or kill */
			m[0] = 1;
			m[1] = "\1\2\5"[rand_r(&seed) % 3];
			len = 11 + (size_t)(rand_r(&seed) % 40);
			break;
		}
		if (agent_client_send_raw(c, m, len, &e) == -1)
			die(255, "%s", e.msg);
		/* Read the answers of each batch: the send queue is bounded. */
		if (i % 200 == 199)
			while (errors <= i) {
				next_reply(c, &r);
				if (r.f.type == FRAME_ERROR)
					errors++;
				agent_reply_free(&r);
			}
	}
	if (agent_client_send(c, FRAME_PING, 4242, NULL, 0, NULL, 0, &e) == -1)
		die(255, "%s", e.msg);
	for (;;) {
		next_reply(c, &r);
		if (r.f.type == FRAME_ERROR)
			errors++;
		else if (r.f.type == FRAME_RESULT && r.f.id == 4242) {
			agent_reply_free(&r);
			break;
		}
		agent_reply_free(&r);
	}
	printf("%d errors\n", errors);
	agent_client_close(c);
	return errors == count ? 0 : 1;
}

/* Connections opened and dropped, each after its handshake. */
static int
do_churn(int count)
{
	zmq_pollitem_t	items[2];
	struct err	e;
	int		i, rc;

	for (i = 0; i < count; i++) {
		struct agent_client *c = open_client();
		struct agent_reply r;

		while (!agent_client_ready(c)) {
			if ((rc = agent_client_recv(c, &r, &e)) == -1)
				die(255, "%s", e.msg);
			if (rc == 1)
				agent_reply_free(&r);
			if (agent_client_ready(c))
				break;
			if (now_ms() > give_up)
				die(254, "connection %d: no handshake", i);
			agent_client_pollitems(c, items);
			zmq_poll(items, 2, 100);
		}
		agent_client_close(c);
	}
	printf("%d connections\n", count);
	return 0;
}

static int
do_oversize(long bytes)
{
	struct agent_client	*c = open_client();
	struct agent_reply	 r;
	struct err		 e;
	char			*data;
	int			 rc;

	data = xcalloc(1, (size_t)bytes);
	if (agent_client_put_file(c, 1, "/nonexistent/oversize", 0600, data,
	    (size_t)bytes, &e) == -1)
		die(255, "%s", e.msg);
	free(data);
	next_reply(c, &r);
	rc = print_result(&r);
	agent_reply_free(&r);
	agent_client_close(c);
	return rc;
}

int
main(int argc, char *argv[])
{
	const char	*server = NULL, *key = NULL, *action;
	struct err	 e;
	long		 timeout = 30000;
	uint32_t	 deadline = 0;
	int		 ch, rc;

	while ((ch = getopt(argc, argv, "+k:r:s:t:")) != -1) {
		switch (ch) {
		case 'k':
			key = optarg;
			break;
		case 'r':
			result_file = optarg;
			break;
		case 's':
			server = optarg;
			break;
		case 't':
			timeout = atol(optarg);
			break;
		default:
			die(2, "bad option");
		}
	}
	argc -= optind;
	argv += optind;
	if (server == NULL || key == NULL || argc < 2)
		die(2, "usage: agent-client-test -s server.pub -k runner.key "
		    "endpoint action [argument...]");
	if (agent_key_read_public(server, keys.server_public, &e) == -1 ||
	    agent_key_read_secret(key, keys.secret, keys.public, &e) == -1)
		die(2, "%s", e.msg);
	endpoint = argv[0];
	action = argv[1];
	give_up = now_ms() + timeout;
	ctx = zmq_ctx_new();
	if (strcmp(action, "ping") == 0)
		rc = simple(FRAME_PING);
	else if (strcmp(action, "facts") == 0)
		rc = simple(FRAME_FACTS);
	else if (strcmp(action, "exec") == 0 && argc == 5 &&
	    strcmp(argv[2], "-D") == 0) {
		deadline = (uint32_t)atol(argv[3]);
		rc = do_exec(argv[4], deadline, 0);
	} else if (strcmp(action, "exec") == 0 && argc == 3)
		rc = do_exec(argv[2], 0, 0);
	else if (strcmp(action, "exec-kill") == 0 && argc == 3)
		rc = do_exec(argv[2], 0, 1);
	else if (strcmp(action, "ping2") == 0 && argc == 3)
		rc = do_ping2(argv[2]);
	else if (strcmp(action, "kill") == 0 && argc == 3)
		rc = do_kill((uint32_t)atol(argv[2]));
	else if (strcmp(action, "put") == 0 && argc == 4)
		rc = do_put(argv[2], argv[3]);
	else if (strcmp(action, "flood") == 0 && argc == 3)
		rc = do_flood(atoi(argv[2]));
	else if (strcmp(action, "churn") == 0 && argc == 3)
		rc = do_churn(atoi(argv[2]));
	else if (strcmp(action, "oversize") == 0 && argc == 3)
		rc = do_oversize(atol(argv[2]));
	else
		die(2, "unknown action or arguments: '%s'", action);
	zmq_ctx_term(ctx);
	return rc;
}
