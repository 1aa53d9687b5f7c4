/*
 * agent-dispatch.c: a runner's message read, checked (a key still
 * authorized, the size, the frame) and handed to its handler. Requests are
 * dispatched through handlers[], indexed by the request type of frame.h;
 * nothing in a request can name anything else to run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <zmq.h>

#include "agent-int.h"

typedef void	handler_fn(struct server *, const struct request *);

static handler_fn	req_exec, req_put_file, req_facts, req_ping, req_kill;

/* The fixed table of request types: nothing else can be asked for. */
static const struct handler {
	const char	*name;
	handler_fn	*fn;
} handlers[FRAME_REQUEST_LAST + 1] = {
	[FRAME_EXEC] = { "exec", req_exec },
	[FRAME_PUT_FILE] = { "put-file", req_put_file },
	[FRAME_FACTS] = { "facts", req_facts },
	[FRAME_PING] = { "ping", req_ping },
	[FRAME_KILL] = { "kill", req_kill },
	[FRAME_EXEC_INPUT] = { "exec-input", req_exec },
};

static void
req_exec(struct server *s, const struct request *r)
{
	struct job	*j;
	char		*cmd;

	cmd = agent_printable(r->f->b[0].p, r->f->b[0].len, 200);
	/* The input is never logged: it may be a secret. */
	if (r->f->type == FRAME_EXEC_INPUT)
		agent_log(LOG_INFO, "runner %s request %u: exec '%s' deadline "
		    "%u ms, %zu bytes of input", r->key, (unsigned)r->f->id,
		    cmd, (unsigned)r->f->u[0], r->f->b[1].len);
	else
		agent_log(LOG_INFO, "runner %s request %u: exec '%s' deadline "
		    "%u ms", r->key, (unsigned)r->f->id, cmd,
		    (unsigned)r->f->u[0]);
	free(cmd);
	if (find_job(s, r->rid, r->rlen, r->f->id) != NULL) {
		send_error(s, r, FRAME_EDUPLICATE, "a request with this id "
		    "is still running");
		return;
	}
	if (s->njobs - s->running >= AGENT_QUEUE_MAX) {
		send_error(s, r, FRAME_EBUSY, "too many requests queued");
		return;
	}
	j = xcalloc(1, sizeof *j);
	j->state = JOB_QUEUED;
	memcpy(j->rid, r->rid, r->rlen);
	j->rlen = r->rlen;
	snprintf(j->key, sizeof j->key, "%s", r->key);
	j->id = r->f->id;
	j->command = xstrndup((const char *)r->f->b[0].p, r->f->b[0].len);
	j->deadline_ms = r->f->u[0];
	buf_init(&j->input);
	if (r->f->type == FRAME_EXEC_INPUT) {
		j->has_input = 1;
		buf_add(&j->input, r->f->b[1].p, r->f->b[1].len);
	}
	j->pid = -1;
	j->fd[0] = j->fd[1] = -1;
	buf_init(&j->pending);
	if (s->njobs >= (size_t)s->conf->jobs)
		agent_log(LOG_INFO, "runner %s request %u: queued behind %zu "
		    "running", r->key, (unsigned)j->id, s->running);
	s->jobs = xreallocarray(s->jobs, s->njobs + 1, sizeof s->jobs[0]);
	s->jobs[s->njobs++] = j;
}

static void
req_put_file(struct server *s, const struct request *r)
{
	struct err	 e;
	char		 hex[65], *path;

	path = xstrndup((const char *)r->f->b[0].p, r->f->b[0].len);
	if (agent_put_file(path, r->f->u[0], r->f->b[1].p, r->f->b[1].len,
	    hex, &e) == -1) {
		send_error(s, r, FRAME_EFAILED, e.msg);
	} else {
		agent_log(LOG_INFO, "runner %s request %u: put-file '%s' "
		    "mode %04o %zu bytes sha256 %s", r->key,
		    (unsigned)r->f->id, path, (unsigned)r->f->u[0],
		    r->f->b[1].len, hex);
		send_result(s, r, hex, 64);
	}
	free(path);
}

static void
req_facts(struct server *s, const struct request *r)
{
	struct buf	b;

	buf_init(&b);
	agent_facts(&b);
	agent_log(LOG_INFO, "runner %s request %u: facts", r->key,
	    (unsigned)r->f->id);
	send_result(s, r, b.data, b.len);
	buf_free(&b);
}

static void
req_ping(struct server *s, const struct request *r)
{
	agent_log(LOG_INFO, "runner %s request %u: ping", r->key,
	    (unsigned)r->f->id);
	send_result(s, r, "pong", 4);
}

static void
req_kill(struct server *s, const struct request *r)
{
	struct job	*j;
	struct buf	 out;
	uint32_t	 u[3] = { 128 + SIGTERM, SIGTERM, 0 };

	agent_log(LOG_INFO, "runner %s request %u: kill request %u", r->key,
	    (unsigned)r->f->id, (unsigned)r->f->u[0]);
	if ((j = find_job(s, r->rid, r->rlen, r->f->u[0])) == NULL) {
		send_error(s, r, FRAME_ENOREQUEST, "this runner has no such "
		    "request running");
		return;
	}
	if (j->state == JOB_QUEUED) {
		/* It never ran: it ends at once, as if TERM had killed it. */
		buf_init(&out);
		frame_encode(&out, FRAME_EXIT, j->id, u, 3, NULL, 0);
		send_to(s, j->rid, j->rlen, out.data, out.len);
		buf_free(&out);
		remove_job(s, j);
	} else
		job_stop(j, CAUSE_KILL);
	send_result(s, r, "killed", 6);
}

/* One message from a runner: [routing id][request]. */
void
serve_message(struct server *s)
{
	zmq_msg_t	 rid, msg, extra;
	struct frame	 f;
	struct request	 r;
	const char	*user;
	char		 why[256], key[AGENT_KEY_LEN + 1];
	uint8_t		 raw[32];
	int		 rc, more, multi = 0;

	zmq_msg_init(&rid);
	zmq_msg_init(&msg);
	if (zmq_msg_recv(&rid, s->router, ZMQ_DONTWAIT) == -1)
		goto out;
	if (!zmq_msg_more(&rid) || zmq_msg_recv(&msg, s->router, 0) == -1 ||
	    zmq_msg_size(&rid) > RID_MAX)
		goto out;
	if (zmq_msg_more(&msg)) {
		/* Read the rest so that the next message starts clean. */
		multi = 1;
		do {
			zmq_msg_init(&extra);
			if (zmq_msg_recv(&extra, s->router, 0) == -1) {
				zmq_msg_close(&extra);
				break;
			}
			more = zmq_msg_more(&extra);
			zmq_msg_close(&extra);
		} while (more);
	}
	user = zmq_msg_gets(&msg, "User-Id");
	snprintf(key, sizeof key, "%s", user != NULL ? user : "-");
	memset(&r, 0, sizeof r);
	r.rid = zmq_msg_data(&rid);
	r.rlen = zmq_msg_size(&rid);
	r.key = key;
	r.f = &f;
	memset(&f, 0, sizeof f);
	if (multi) {
		send_error(s, &r, FRAME_EMALFORMED, "a request is one frame");
		goto out;
	}
	/* A connection outlives a SIGHUP that removed its key: not its use. */
	if (user == NULL || strlen(user) != AGENT_KEY_LEN ||
	    zmq_z85_decode(raw, user) == NULL ||
	    !agent_auth_has(&s->auth, raw)) {
		if (zmq_msg_size(&msg) >= FRAME_HEADER)
			frame_decode(&f, zmq_msg_data(&msg), FRAME_HEADER, why,
			    sizeof why);
		send_error(s, &r, FRAME_EREVOKED, "removed from the "
		    "authorized keys");
		goto out;
	}
	if ((long)zmq_msg_size(&msg) > s->conf->maxmsg) {
		if (zmq_msg_size(&msg) >= FRAME_HEADER)
			frame_decode(&f, zmq_msg_data(&msg), FRAME_HEADER, why,
			    sizeof why);
		snprintf(why, sizeof why, "%zu bytes, the limit is %ld",
		    zmq_msg_size(&msg), s->conf->maxmsg);
		send_error(s, &r, FRAME_ETOOBIG, why);
		goto out;
	}
	rc = frame_decode(&f, zmq_msg_data(&msg), zmq_msg_size(&msg), why,
	    sizeof why);
	/* A reply type is not a request, whatever its fields. */
	if ((rc == FRAME_EOK || rc == FRAME_EMALFORMED) &&
	    zmq_msg_size(&msg) >= FRAME_HEADER &&
	    (f.type > FRAME_REQUEST_LAST || handlers[f.type].fn == NULL)) {
		rc = FRAME_ETYPE;
		snprintf(why, sizeof why, "%s is not a request",
		    frame_type_name(f.type));
	}
	if (rc != FRAME_EOK) {
		send_error(s, &r, (uint32_t)rc, why);
		goto out;
	}
	handlers[f.type].fn(s, &r);
 out:
	zmq_msg_close(&rid);
	zmq_msg_close(&msg);
}
