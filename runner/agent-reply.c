/*
 * agent-reply.c: what goes back to runners: results and errors (a reply
 * the socket would not take waits in the backlog, and no request is read
 * until it goes), a command's output as it comes and its exit, each held
 * back in its job while the runner does not read, and keepalives, whose
 * failure tells that a runner went away.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <zmq.h>

#include "agent-int.h"

#define BACKLOG_MS	10000	/* a reply waits this long for its runner */

/* 0, or the errno of zmq_send: EAGAIN (runner not reading), EHOSTUNREACH. */
int
send_to(struct server *s, const unsigned char *rid, size_t rlen,
    const void *data, size_t len)
{
	if (zmq_send(s->router, rid, rlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
		return zmq_errno();
	if (zmq_send(s->router, data, len, ZMQ_DONTWAIT) == -1)
		return zmq_errno();
	return 0;
}

/* 0 when the backlog is empty (sent, or dropped after BACKLOG_MS). */
int
backlog_flush(struct server *s)
{
	int	rc;

	if (s->backlog.len == 0)
		return 0;
	rc = send_to(s, s->backlog_rid, s->backlog_rlen, s->backlog.data,
	    s->backlog.len);
	if (rc == EAGAIN && now_ms() - s->backlog_since < BACKLOG_MS)
		return -1;
	if (rc != 0)
		agent_log(LOG_WARNING, "a reply was dropped: %s",
		    zmq_strerror(rc));
	buf_reset(&s->backlog);
	return 0;
}

static void
send_frame(struct server *s, const struct request *r, uint8_t type,
    const uint32_t *u, size_t nu, const struct frame_bytes *b, size_t nb)
{
	struct buf	out;
	int		rc;

	buf_init(&out);
	if (frame_encode(&out, type, r->f != NULL ? r->f->id : 0, u, nu, b,
	    nb) == -1)
		goto out;
	rc = s->backlog.len > 0 ? EAGAIN : send_to(s, r->rid, r->rlen,
	    out.data, out.len);
	if (rc == EAGAIN && s->backlog.len == 0) {
		memcpy(s->backlog_rid, r->rid, r->rlen);
		s->backlog_rlen = r->rlen;
		buf_move(&s->backlog, &out);
		s->backlog_since = now_ms();
	} else if (rc != 0)
		agent_log(LOG_WARNING, "runner %s: reply dropped: %s", r->key,
		    zmq_strerror(rc));
 out:
	buf_free(&out);
}

void
send_error(struct server *s, const struct request *r, uint32_t code,
    const char *why)
{
	struct frame_bytes	 b;
	char			*msg;

	msg = xasprintf("%s: %s", frame_error_name(code), why);
	b.p = (const unsigned char *)msg;
	b.len = strlen(msg);
	agent_log(LOG_NOTICE, "runner %s request %u: error: %s", r->key,
	    r->f != NULL ? (unsigned)r->f->id : 0, msg);
	send_frame(s, r, FRAME_ERROR, &code, 1, &b, 1);
	free(msg);
}

void
send_result(struct server *s, const struct request *r, const char *text,
    size_t len)
{
	struct frame_bytes	b = { (const unsigned char *)text, len };

	send_frame(s, r, FRAME_RESULT, NULL, 0, &b, 1);
}

/* Sends what waits in j->pending; 0 when it is gone (sent or dropped). */
int
job_flush(struct server *s, struct job *j)
{
	int	rc;

	if (j->pending.len == 0)
		return 0;
	if (j->gone) {
		buf_reset(&j->pending);
		return 0;
	}
	rc = send_to(s, j->rid, j->rlen, j->pending.data, j->pending.len);
	if (rc == EAGAIN)
		return -1;
	buf_reset(&j->pending);
	return 0;
}

void
job_read(struct server *s, struct job *j, int which)
{
	static char		 chunk[AGENT_CHUNK];
	struct frame_bytes	 b;
	uint32_t		 stream = which == 0 ? FRAME_STDOUT : FRAME_STDERR;
	ssize_t			 n;

	if ((n = read(j->fd[which], chunk, sizeof chunk)) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		n = 0;
	}
	if (n == 0) {
		close(j->fd[which]);
		j->fd[which] = -1;
		return;
	}
	if (j->gone)
		return;
	b.p = (const unsigned char *)chunk;
	b.len = (size_t)n;
	frame_encode(&j->pending, FRAME_OUTPUT, j->id, &stream, 1, &b, 1);
	if (job_flush(s, j) == 0)
		return;
}

/* Exit frame, log line, reap: when the command and its pipes are done. */
int
job_finish(struct server *s, struct job *j)
{
	uint32_t	u[3];

	if (!j->exited || j->fd[0] != -1 || j->fd[1] != -1)
		return 0;
	if (!j->exit_queued) {
		if (j->pending.len > 0 && job_flush(s, j) == -1)
			return 0;
		u[1] = WIFSIGNALED(j->status) ? (uint32_t)WTERMSIG(j->status)
		    : 0;
		if (j->cause == CAUSE_DEADLINE)
			u[0] = 124;
		else if (WIFSIGNALED(j->status))
			u[0] = 128 + u[1];
		else
			u[0] = (uint32_t)WEXITSTATUS(j->status);
		u[2] = (uint32_t)(now_ms() - j->start);
		frame_encode(&j->pending, FRAME_EXIT, j->id, u, 3, NULL, 0);
		j->exit_queued = 1;
		agent_log(LOG_INFO, "runner %s request %u: exit code %u "
		    "signal %u duration %u ms%s", j->key, (unsigned)j->id,
		    (unsigned)u[0], (unsigned)u[1], (unsigned)u[2],
		    j->cause == CAUSE_DEADLINE ? " (deadline)" :
		    j->cause == CAUSE_KILL ? " (killed on request)" :
		    j->cause == CAUSE_GONE ? " (runner gone)" :
		    j->cause == CAUSE_SHUTDOWN ? " (agent stopping)" : "");
	}
	if (job_flush(s, j) == -1)
		return 0;
	waitpid(j->pid, NULL, 0);
	remove_job(s, j);
	return 1;
}

/* A keepalive per request: the send fails once the runner is gone. */
void
keepalive(struct server *s)
{
	struct buf	out;
	size_t		i;
	int		rc;

	buf_init(&out);
	for (i = 0; i < s->njobs; i++) {
		struct job *j = s->jobs[i];

		if (j->gone)
			continue;
		buf_reset(&out);
		frame_encode(&out, FRAME_KEEPALIVE, j->id, NULL, 0, NULL, 0);
		rc = send_to(s, j->rid, j->rlen, out.data, out.len);
		if (rc == EHOSTUNREACH) {
			runner_gone(s, j->rid, j->rlen);
			i = (size_t)-1;		/* the list changed */
		}
	}
	buf_free(&out);
	s->keepalive_at = now_ms() + s->conf->heartbeat_ms;
}
