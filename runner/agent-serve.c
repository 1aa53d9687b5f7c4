/*
 * agent-serve.c: the one poll loop of reops-agent. It polls the ZAP
 * handler, the ROUTER socket every runner talks to, the ROUTER's monitor,
 * a signalfd (SIGCHLD among others: pidfds are newer than some kernels an
 * agent runs on, and than valgrind), and each running command's pipes.
 * Requests are dispatched through handlers[], indexed by the request type
 * of frame.h; nothing in a request can name anything else to run.
 */
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <zmq.h>

#include "agent.h"
#include "sh-spawn.h"

#define MONITOR_ADDR	"inproc://reops-agent-monitor"
#define ZAP_ADDR	"inproc://zeromq.zap.01"
#define RID_MAX		256
#define READS_PER_TURN	64	/* messages read before the others' turn */
#define BACKLOG_MS	10000	/* a reply waits this long for its runner */

enum job_state { JOB_QUEUED, JOB_RUNNING };
enum job_cause { CAUSE_NONE, CAUSE_DEADLINE, CAUSE_KILL, CAUSE_GONE,
	CAUSE_SHUTDOWN };

struct job {
	enum job_state	 state;
	unsigned char	 rid[RID_MAX];	/* the runner's ROUTER routing id */
	size_t		 rlen;
	char		 key[AGENT_KEY_LEN + 1];
	uint32_t	 id;
	char		*command;
	struct buf	 input;		/* stdin of exec-input; else /dev/null */
	int		 has_input;
	uint32_t	 deadline_ms;

	pid_t		 pid;
	int		 fd[2];		/* stdout, stderr; -1 at EOF */
	long long	 start, deadline_at, kill_at;
	enum job_cause	 cause;
	int		 kill_sent;
	int		 exited;
	int		 status;	/* as from waitpid */
	int		 gone;		/* the runner went away */
	int		 exit_queued;
	struct buf	 pending;	/* a reply the socket would not take */
};

struct server {
	struct agent_conf	*conf;
	struct agent_auth	 auth;
	void			*ctx, *zap, *router, *monitor;
	int			 sigfd;
	struct job		**jobs;
	size_t			 njobs, running;
	long long		 keepalive_at;
	int			 stop;
	/*
	 * A reply the socket would not take: until it goes, no request is
	 * read, so a runner that sends faster than it reads slows itself.
	 */
	unsigned char		 backlog_rid[RID_MAX];
	size_t			 backlog_rlen;
	struct buf		 backlog;
	long long		 backlog_since;
};

struct request {
	const unsigned char	*rid;
	size_t			 rlen;
	const char		*key;
	const struct frame	*f;
};

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

/* 0, or the errno of zmq_send: EAGAIN (runner not reading), EHOSTUNREACH. */
static int
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
static int
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

static void
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

static void
send_result(struct server *s, const struct request *r, const char *text,
    size_t len)
{
	struct frame_bytes	b = { (const unsigned char *)text, len };

	send_frame(s, r, FRAME_RESULT, NULL, 0, &b, 1);
}

static struct job *
find_job(struct server *s, const unsigned char *rid, size_t rlen, uint32_t id)
{
	size_t	i;

	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i]->rlen == rlen && s->jobs[i]->id == id &&
		    memcmp(s->jobs[i]->rid, rid, rlen) == 0)
			return s->jobs[i];
	return NULL;
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->command);
	buf_free(&j->input);
	buf_free(&j->pending);
	free(j);
}

static void
remove_job(struct server *s, struct job *j)
{
	size_t	i;

	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i] == j) {
			memmove(&s->jobs[i], &s->jobs[i + 1],
			    (s->njobs - i - 1) * sizeof s->jobs[0]);
			s->njobs--;
			break;
		}
	if (j->state == JOB_RUNNING)
		s->running--;
	job_free(j);
}

/* TERM to the command's process group now, KILL after the grace. */
static void
job_stop(struct job *j, enum job_cause cause)
{
	if (j->state != JOB_RUNNING || j->cause != CAUSE_NONE)
		return;
	j->cause = cause;
	killpg(j->pid, SIGTERM);
	j->kill_at = now_ms() + AGENT_GRACE_MS;
}

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

/*
 * The input of exec-input as an anonymous file in memory, read from its
 * start: never on disk, never in a pipe the loop would have to feed.
 * -1 when it cannot be made.
 */
static int
input_fd(const struct buf *in)
{
	size_t	off = 0;
	ssize_t	n;
	int	fd;

	if ((fd = memfd_create("reops-agent-input", MFD_CLOEXEC)) == -1)
		return -1;
	while (off < in->len) {
		if ((n = write(fd, in->data + off, in->len - off)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The command: /bin/sh -c in its own process group (sh-spawn.c), stdin
 * from the request's input or /dev/null, in $HOME or else /, with no
 * descriptor of ours. 0, or an errno.
 */
static int
job_spawn(struct job *j, int in, int out, int err)
{
	const char	*home;

	if ((home = getenv("HOME")) != NULL && *home != '\0' &&
	    spawn_sh(&j->pid, j->command, in, out, err, home,
	    SPAWN_CLOSE_OTHERS) == 0)
		return 0;
	/* A $HOME it cannot enter (or no /bin/sh): as fork did, from /. */
	return spawn_sh(&j->pid, j->command, in, out, err, "/",
	    SPAWN_CLOSE_OTHERS);
}

static int
job_start(struct server *s, struct job *j)
{
	int	out[2] = { -1, -1 }, err[2] = { -1, -1 }, in = -1, e;

	if (j->has_input && (in = input_fd(&j->input)) == -1)
		goto fail;
	/* Only our ends are non-blocking: the command's writes must block. */
	if (pipe2(out, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1 ||
	    fcntl(out[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(err[0], F_SETFL, O_NONBLOCK) == -1)
		goto fail;
	/* Out of 0-2 (a closed std stream), so no dup2 hits another. */
	if (spawn_above_std(&in) != 0 || spawn_above_std(&out[1]) != 0 ||
	    spawn_above_std(&err[1]) != 0)
		goto fail;
	if ((e = job_spawn(j, in, out[1], err[1])) != 0) {
		errno = e;
		goto fail;
	}
	if (in != -1)
		close(in);
	buf_free(&j->input);		/* the memfd has it now */
	close(out[1]);
	close(err[1]);
	j->fd[0] = out[0];
	j->fd[1] = err[0];
	j->state = JOB_RUNNING;
	s->running++;
	j->start = now_ms();
	if (j->deadline_ms > 0)
		j->deadline_at = j->start + j->deadline_ms;
	return 0;

 fail:
	if (in != -1)
		close(in);
	if (out[0] != -1) {
		close(out[0]);
		close(out[1]);
	}
	if (err[0] != -1) {
		close(err[0]);
		close(err[1]);
	}
	return -1;
}

/* Sends what waits in j->pending; 0 when it is gone (sent or dropped). */
static int
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

static void runner_gone(struct server *, const unsigned char *, size_t);

static void
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
static int
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

static void
job_exited(struct job *j)
{
	siginfo_t	si;

	memset(&si, 0, sizeof si);
	/* WNOWAIT: the zombie keeps the process group id ours to signal. */
	if (waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
	    -1 || si.si_pid == 0)
		return;
	j->exited = 1;
	if (si.si_code == CLD_EXITED)
		j->status = (si.si_status & 0xff) << 8;
	else
		j->status = si.si_status & 0x7f;
}

/* Stops everything a runner started: it will never read the answers. */
static void
runner_gone(struct server *s, const unsigned char *rid, size_t rlen)
{
	size_t	i, n = 0;
	char	key[AGENT_KEY_LEN + 1] = "";

	for (i = 0; i < s->njobs;) {
		struct job *j = s->jobs[i];

		if (j->rlen != rlen || memcmp(j->rid, rid, rlen) != 0 ||
		    j->gone) {
			i++;
			continue;
		}
		snprintf(key, sizeof key, "%s", j->key);
		n++;
		if (j->state == JOB_QUEUED) {
			remove_job(s, j);
			continue;
		}
		j->gone = 1;
		buf_reset(&j->pending);
		job_stop(j, CAUSE_GONE);
		i++;
	}
	if (n > 0)
		agent_log(LOG_NOTICE, "runner %s went away: stopping its %zu "
		    "request%s", key, n, n == 1 ? "" : "s");
}

/* A keepalive per request: the send fails once the runner is gone. */
static void
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

/* One message from a runner: [routing id][request]. */
static void
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

/* The ROUTER's monitor: handshake failures and disconnections. */
static void
serve_monitor(struct server *s)
{
	unsigned char	ev[6];
	char		addr[256];
	uint16_t	event;
	uint32_t	value;
	int		n, m;

	while ((n = zmq_recv(s->monitor, ev, sizeof ev, ZMQ_DONTWAIT)) != -1) {
		addr[0] = '\0';
		if ((m = zmq_recv(s->monitor, addr, sizeof addr - 1, 0)) >= 0)
			addr[m > (int)sizeof addr - 1 ? (int)sizeof addr - 1 :
			    m] = '\0';
		if ((size_t)n < sizeof ev)
			continue;
		memcpy(&event, ev, 2);
		memcpy(&value, ev + 2, 4);
		switch (event) {
		case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
			agent_log(LOG_NOTICE, "refused a connection on %s: "
			    "handshake protocol error 0x%x (not CURVE with "
			    "this agent's key)", addr, (unsigned)value);
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
			agent_log(LOG_NOTICE, "refused a connection on %s: "
			    "handshake failed (%s)", addr,
			    zmq_strerror((int)value));
			break;
		case ZMQ_EVENT_DISCONNECTED:
			/*
			 * Closed by the runner, by a heartbeat timeout, or by
			 * libzmq for a message far over -M. Find out at once
			 * whose requests lost their runner.
			 */
			agent_log(LOG_INFO, "a connection on %s closed", addr);
			s->keepalive_at = now_ms();
			break;
		}
	}
}

static void
serve_signals(struct server *s)
{
	struct signalfd_siginfo	si;
	struct err		e;
	size_t			i;

	while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGHUP:
			if (agent_auth_load(&s->auth, s->conf->authorized, &e)
			    == -1)
				agent_log(LOG_ERR, "SIGHUP: keeping the old "
				    "keys: %s", e.msg);
			else
				agent_log(LOG_NOTICE, "SIGHUP: %zu authorized "
				    "key%s from '%s'", s->auth.n,
				    s->auth.n == 1 ? "" : "s",
				    s->conf->authorized);
			break;
		case SIGTERM:
		case SIGINT:
			agent_log(LOG_NOTICE, "stopping on signal %d",
			    (int)si.ssi_signo);
			s->stop = 1;
			break;
		case SIGCHLD:
			/* Signals merge: look at every command. */
			for (i = 0; i < s->njobs; i++)
				if (s->jobs[i]->state == JOB_RUNNING &&
				    !s->jobs[i]->exited)
					job_exited(s->jobs[i]);
			break;
		}
	}
}

static int
setup(struct server *s)
{
	struct agent_conf	*c = s->conf;
	int64_t			 maxmsg = c->maxmsg + 65536;
	int			 one = 1, zero = 0, hwm = 256, hb, ttl;
	int			 hsk = 10000;
	size_t			 i;
	const char		*domain = "reops-agent";

	hb = c->heartbeat_ms;
	ttl = hb * 3;
	if ((s->ctx = zmq_ctx_new()) == NULL)
		goto fail;
	/* The ZAP handler must exist before the first handshake. */
	if ((s->zap = zmq_socket(s->ctx, ZMQ_REP)) == NULL ||
	    zmq_setsockopt(s->zap, ZMQ_LINGER, &zero, sizeof zero) == -1 ||
	    zmq_bind(s->zap, ZAP_ADDR) == -1)
		goto fail;
	if ((s->router = zmq_socket(s->ctx, ZMQ_ROUTER)) == NULL ||
	    zmq_setsockopt(s->router, ZMQ_LINGER, &zero, sizeof zero) == -1 ||
	    zmq_setsockopt(s->router, ZMQ_CURVE_SERVER, &one, sizeof one) ==
	    -1 ||
	    zmq_setsockopt(s->router, ZMQ_CURVE_SECRETKEY, c->secret,
	    AGENT_KEY_LEN) == -1 ||
	    zmq_setsockopt(s->router, ZMQ_ZAP_DOMAIN, domain,
	    strlen(domain)) == -1 ||
	    zmq_setsockopt(s->router, ZMQ_MAXMSGSIZE, &maxmsg,
	    sizeof maxmsg) == -1 ||
	    zmq_setsockopt(s->router, ZMQ_ROUTER_MANDATORY, &one,
	    sizeof one) == -1 ||
	    zmq_setsockopt(s->router, ZMQ_SNDHWM, &hwm, sizeof hwm) == -1 ||
	    zmq_setsockopt(s->router, ZMQ_HANDSHAKE_IVL, &hsk, sizeof hsk) ==
	    -1 ||
	    zmq_setsockopt(s->router, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) ==
	    -1 ||
	    zmq_setsockopt(s->router, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl) ==
	    -1 ||
	    zmq_setsockopt(s->router, ZMQ_HEARTBEAT_TIMEOUT, &ttl,
	    sizeof ttl) == -1)
		goto fail;
	if (zmq_socket_monitor(s->router, MONITOR_ADDR,
	    ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	    ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) == -1 ||
	    (s->monitor = zmq_socket(s->ctx, ZMQ_PAIR)) == NULL ||
	    zmq_setsockopt(s->monitor, ZMQ_LINGER, &zero, sizeof zero) == -1 ||
	    zmq_connect(s->monitor, MONITOR_ADDR) == -1)
		goto fail;
	for (i = 0; i < c->nendpoints; i++) {
		if (zmq_bind(s->router, c->endpoints[i]) == -1) {
			agent_log(LOG_ERR, "unable to listen on '%s': %s",
			    c->endpoints[i], zmq_strerror(zmq_errno()));
			return -1;
		}
		agent_log(LOG_NOTICE, "listening on %s, public key %s",
		    c->endpoints[i], c->public);
	}
	return 0;

 fail:
	agent_log(LOG_ERR, "unable to set up ZeroMQ: %s",
	    zmq_strerror(zmq_errno()));
	return -1;
}

static void
teardown(struct server *s)
{
	if (s->router != NULL) {
		zmq_socket_monitor(s->router, NULL, 0);
		zmq_close(s->router);
	}
	if (s->monitor != NULL)
		zmq_close(s->monitor);
	if (s->zap != NULL)
		zmq_close(s->zap);
	if (s->ctx != NULL)
		zmq_ctx_term(s->ctx);
	if (s->sigfd != -1)
		close(s->sigfd);
	agent_auth_free(&s->auth);
	buf_free(&s->backlog);
	free(s->jobs);
}

/* Stops every command, waiting up to the grace for TERM to work. */
static void
stop_all(struct server *s)
{
	long long	until;
	size_t		i;

	for (i = 0; i < s->njobs; i++) {
		s->jobs[i]->gone = 1;
		job_stop(s->jobs[i], CAUSE_SHUTDOWN);
	}
	until = now_ms() + AGENT_GRACE_MS;
	while (s->running > 0 && now_ms() < until) {
		for (i = 0; i < s->njobs; i++)
			if (s->jobs[i]->state == JOB_RUNNING)
				job_exited(s->jobs[i]);
		for (i = 0; i < s->njobs; i++)
			if (s->jobs[i]->state == JOB_RUNNING &&
			    !s->jobs[i]->exited)
				break;
		if (i == s->njobs)
			break;
		usleep(20000);
	}
	while (s->njobs > 0) {
		struct job *j = s->jobs[0];

		if (j->state == JOB_RUNNING) {
			killpg(j->pid, SIGKILL);
			waitpid(j->pid, NULL, 0);
			if (j->fd[0] != -1)
				close(j->fd[0]);
			if (j->fd[1] != -1)
				close(j->fd[1]);
		}
		remove_job(s, j);
	}
}

int
agent_serve(struct agent_conf *c)
{
	struct server	 s;
	struct err	 e;
	zmq_pollitem_t	*items = NULL;
	struct job	**polled = NULL;
	sigset_t	 set;
	long long	 now, wake;
	size_t		 i, n, k;
	int		 timeout, rc = 1;

	memset(&s, 0, sizeof s);
	buf_init(&s.backlog);
	s.conf = c;
	s.sigfd = -1;
	if (agent_auth_load(&s.auth, c->authorized, &e) == -1) {
		agent_log(LOG_ERR, "%s", e.msg);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((s.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		agent_log(LOG_ERR, "signalfd: %s", strerror(errno));
		goto out;
	}
	if (setup(&s) == -1)
		goto out;
	agent_log(LOG_NOTICE, "%zu authorized key%s from '%s', up to %d "
	    "commands at once", s.auth.n, s.auth.n == 1 ? "" : "s",
	    c->authorized, c->jobs);
	s.keepalive_at = now_ms() + c->heartbeat_ms;

	while (!s.stop) {
		/* Start what waits, oldest first. */
		for (i = 0; i < s.njobs && s.running < (size_t)c->jobs; i++) {
			struct job *j = s.jobs[i];

			if (j->state != JOB_QUEUED)
				continue;
			if (job_start(&s, j) == -1) {
				struct request r = { j->rid, j->rlen, j->key,
				    NULL };
				struct frame f;

				memset(&f, 0, sizeof f);
				f.id = j->id;
				r.f = &f;
				send_error(&s, &r, FRAME_EFAILED, "unable to "
				    "start /bin/sh");
				remove_job(&s, j);
				i--;
			}
		}

		items = xreallocarray(items, 4 + 2 * s.njobs, sizeof *items);
		polled = xreallocarray(polled, 4 + 2 * s.njobs,
		    sizeof *polled);
		memset(items, 0, (4 + 2 * s.njobs) * sizeof *items);
		items[0].socket = s.zap;
		items[1].socket = s.router;
		items[2].socket = s.monitor;
		items[3].fd = s.sigfd;
		for (i = 0; i < 4; i++)
			items[i].events = ZMQ_POLLIN;
		if (backlog_flush(&s) == -1)
			items[1].events = 0;
		n = 4;
		now = now_ms();
		wake = s.keepalive_at;
		for (i = 0; i < s.njobs; i++) {
			struct job *j = s.jobs[i];

			if (j->state != JOB_RUNNING)
				continue;
			for (k = 0; k < 2; k++)
				if (j->fd[k] != -1 && j->pending.len == 0) {
					polled[n] = j;
					items[n].fd = j->fd[k];
					items[n++].events = ZMQ_POLLIN;
				}
			if (j->pending.len > 0 && now + 10 < wake)
				wake = now + 10;	/* retry the send */
			if (j->deadline_at > 0 && j->cause == CAUSE_NONE &&
			    j->deadline_at < wake)
				wake = j->deadline_at;
			if (j->kill_at > 0 && !j->kill_sent &&
			    j->kill_at < wake)
				wake = j->kill_at;
		}
		if (s.backlog.len > 0 && now + 10 < wake)
			wake = now + 10;
		timeout = wake <= now ? 0 : (int)(wake - now);
		if (zmq_poll(items, (int)n, timeout) == -1 &&
		    zmq_errno() != EINTR) {
			agent_log(LOG_ERR, "zmq_poll: %s",
			    zmq_strerror(zmq_errno()));
			goto out;
		}

		if (items[3].revents & ZMQ_POLLIN)
			serve_signals(&s);
		if (items[0].revents & ZMQ_POLLIN)
			agent_zap_handle(s.zap, &s.auth);
		if (items[2].revents & ZMQ_POLLIN)
			serve_monitor(&s);
		if (items[1].revents & ZMQ_POLLIN)
			for (i = 0; i < READS_PER_TURN &&
			    backlog_flush(&s) == 0; i++) {
				int		ev = 0;
				size_t		el = sizeof ev;

				if (zmq_getsockopt(s.router, ZMQ_EVENTS, &ev,
				    &el) == -1 || !(ev & ZMQ_POLLIN))
					break;
				serve_message(&s);
			}
		/* The pipes; a job seen here is still in s.jobs. */
		for (i = 4; i < n; i++) {
			struct job	*j = polled[i];

			if (!(items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
				continue;
			if (items[i].fd == j->fd[0])
				job_read(&s, j, 0);
			else if (items[i].fd == j->fd[1])
				job_read(&s, j, 1);
		}

		now = now_ms();
		for (i = 0; i < s.njobs; i++) {
			struct job *j = s.jobs[i];

			if (j->state != JOB_RUNNING)
				continue;
			if (j->deadline_at > 0 && now >= j->deadline_at)
				job_stop(j, CAUSE_DEADLINE);
			if (j->kill_at > 0 && now >= j->kill_at &&
			    !j->kill_sent) {
				killpg(j->pid, SIGKILL);
				j->kill_sent = 1;
			}
			/*
			 * After KILL to the group, a pipe still open is held
			 * by something that left the group: stop waiting.
			 */
			if (j->kill_sent && j->exited && now >= j->kill_at +
			    AGENT_GRACE_MS)
				for (k = 0; k < 2; k++)
					if (j->fd[k] != -1) {
						close(j->fd[k]);
						j->fd[k] = -1;
					}
			if (j->pending.len > 0)
				job_flush(&s, j);
			if (job_finish(&s, j))
				i--;
		}
		if (now >= s.keepalive_at)
			keepalive(&s);
	}
	rc = 0;
 out:
	stop_all(&s);
	free(items);
	free(polled);
	teardown(&s);
	return rc;
}
