/*
 * agent-serve.c: the one poll loop of reops-agent. It polls the ZAP
 * handler (agent-auth.c), the ROUTER socket every runner talks to (its
 * messages go to agent-dispatch.c), the ROUTER's monitor, a signalfd
 * (SIGCHLD among others: pidfds are newer than some kernels an agent runs
 * on, and than valgrind), and each running command's pipes (agent-job.c
 * starts and stops the commands, agent-reply.c sends what they write).
 */
#include <sys/signalfd.h>
#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <zmq.h>

#include "agent-int.h"

#define MONITOR_ADDR	"inproc://reops-agent-monitor"
#define ZAP_ADDR	"inproc://zeromq.zap.01"
#define READS_PER_TURN	64	/* messages read before the others' turn */

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
