/*
 * ssh.c: the ssh transport. libssh2 in non-blocking mode; one poll loop
 * drives every session, up to --forks hosts in flight. Each host gets one
 * SSH connection for the whole run, kept in a cache in struct run: later
 * stages open new channels on it, so a 5-stage pipeline costs one
 * handshake per host, not five. A host that cannot be reached, hangs,
 * refuses us or shows a changed key becomes a row with status unreachable
 * and a one-line reason; it never stops the others. Here: the loop and
 * the commands on their channels; ssh-conn.c connects and logs in.
 *
 * libssh2 cannot signal a command on its channel, so each command first
 * reports its process group (sshd puts it in a session of its own) on
 * stderr, where we take that line out; at a deadline or ^C a second
 * channel on the same session kills the group, as the local transport
 * kills its own.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "knownhosts.h"
#include "run.h"
#include "secret.h"
#include "ssh.h"
#include "ssh-int.h"

/* How often the loop looks at run_interrupted when nothing happens. */
#define INTERRUPT_POLL_MS	200
/* How often a name being resolved is looked at, in ms. */
#define RESOLVE_POLL_MS		10
/* How long the end of the run waits for a resolver still at work. */
#define RESOLVE_WAIT_MS		2000
/* Reads per step, so one chatty host cannot starve the others. */
#define READ_ROUNDS		64
#define UNREACHABLE_CODE	255	/* what ssh(1) exits with */
/* The line the wrapper of each command puts first on its stderr. */
#define PGID_MARK		"reops-pgid="
/* Stderr seen without that line: past this, it is not coming. */
#define PGID_SCAN_MAX		4096
/* How long killing a command may take, all kills running at once. */
#define KILL_BUDGET_MS		2000

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
	/* A command being killed was timed when it was given up. */
	if (sl->why[0] == '\0')
		sl->job->row->duration_ms = now_ms() - sl->start;
	secret_mask_row(sl->job->row);
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

/*
 * Takes the wrapper's line out of stderr and keeps its pid. It comes
 * first, but a login shell's start-up files may have said something
 * before it; the command's own output, after it, is left alone.
 */
static void
pgid_scan(struct slot *sl)
{
	struct buf	*b = &sl->job->row->err;
	const size_t	 ml = sizeof PGID_MARK - 1;
	char		*p, *nl, *e;
	long		 v;

	if ((p = memmem(b->data, b->len, PGID_MARK, ml)) == NULL ||
	    (nl = memchr(p + ml, '\n', b->len - (size_t)(p - b->data) - ml)) ==
	    NULL) {
		if (b->len > PGID_SCAN_MAX)
			sl->pgid_state = 2;
		return;
	}
	v = strtol(p + ml, &e, 10);
	if (e == p + ml || e != nl || v <= 1) {
		sl->pgid_state = 2;
		return;
	}
	sl->pgid = v;
	sl->pgid_state = 1;
	memmove(p, nl + 1, b->len - (size_t)(nl + 1 - b->data));
	b->len -= (size_t)(nl + 1 - p);
	b->data[b->len] = '\0';
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
			if (stream == 1 && sl->pgid_state == 0)
				pgid_scan(sl);
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
		/*
		 * The same shell as the local transport, whatever the
		 * user's login shell is. Each exec keeps the pid that sshd
		 * made a session leader: that is the group to kill. It comes
		 * before any sudo in the command, so the kill needs no sudo
		 * to find it.
		 */
		buf_init(&cmd);
		buf_adds(&cmd, "exec /bin/sh -c 'printf \"" PGID_MARK
		    "%s\\n\" \"$$\" >&2; exec /bin/sh -c \"$1\"' reops-run ");
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

/*
 * The end of a command given up: the row says why, and whether its
 * process group may live on; the session, in an unknown state, goes.
 */
static void
kill_end(struct slot *sl, int gone)
{
	struct row	*r = sl->job->row;

	buf_printf(&r->err, "%s%s\n", sl->why, gone ? "" :
	    "; the remote command may still be running");
	sl->ch = NULL;
	sl->kch = NULL;
	conn_drop(sl->c, 0);
	finish_slot(sl);
}

/*
 * TERM, a second to go, then KILL: about a second at most on the host,
 * whatever the group does.
 */
static void
kill_step(struct slot *sl)
{
	LIBSSH2_SESSION	*s = sl->c->s;
	struct buf	 cmd;
	char		 chunk[512];
	ssize_t		 n;
	int		 r, stream, more;

	switch (sl->killing) {
	case K_OPEN:
		if ((sl->kch = libssh2_channel_open_session(s)) == NULL) {
			if (libssh2_session_last_errno(s) ==
			    LIBSSH2_ERROR_EAGAIN) {
				wait_dirs(sl, s);
				return;
			}
			kill_end(sl, 0);
			return;
		}
		sl->killing = K_EXEC;
		/* FALLTHROUGH */
	case K_EXEC:
		/*
		 * A group that is gone already is fine. The wait for TERM
		 * to work skips zombies, which an init may be slow to reap;
		 * without ps(1) it is no wait at all. After KILL there is
		 * nothing left that the login user may signal.
		 */
		buf_init(&cmd);
		buf_printf(&cmd, "exec /bin/sh -c 'g=%ld; kill -TERM -$g "
		    "2>/dev/null || exit 0; i=0; while [ $i -lt 10 ] && "
		    "ps -A -o pgid= -o stat= 2>/dev/null | grep -q "
		    "\"^ *$g  *[^Z]\"; do sleep 0.1; i=$((i + 1)); done; "
		    "kill -KILL -$g 2>/dev/null; exit 0'", sl->pgid);
		r = libssh2_channel_exec(sl->kch, cmd.data);
		buf_free(&cmd);
		if (r == LIBSSH2_ERROR_EAGAIN) {
			wait_dirs(sl, s);
			return;
		}
		if (r != 0) {
			kill_end(sl, 0);
			return;
		}
		sl->killing = K_READ;
		/* FALLTHROUGH */
	case K_READ:
		/* It says nothing; its exit status is the answer. */
		for (stream = 0; stream < 2; stream++)
			for (more = READ_ROUNDS; more > 0; more--) {
				n = libssh2_channel_read_ex(sl->kch, stream,
				    chunk, sizeof chunk);
				if (n == 0 || n == LIBSSH2_ERROR_EAGAIN)
					break;
				if (n < 0) {
					kill_end(sl, 0);
					return;
				}
			}
		if (libssh2_channel_eof(sl->kch) != 1) {
			if (libssh2_poll_channel_read(sl->kch, 1) == 1 ||
			    libssh2_poll_channel_read(sl->kch, 0) == 1)
				sl->kick = 1;
			else
				wait_dirs(sl, s);
			return;
		}
		sl->killing = K_CLOSE;
		/* FALLTHROUGH */
	case K_CLOSE:
		if (libssh2_channel_close(sl->kch) == LIBSSH2_ERROR_EAGAIN) {
			wait_dirs(sl, s);
			return;
		}
		sl->killing = K_WAIT_CLOSED;
		/* FALLTHROUGH */
	case K_WAIT_CLOSED:
		if ((r = libssh2_channel_wait_closed(sl->kch)) ==
		    LIBSSH2_ERROR_EAGAIN) {
			wait_dirs(sl, s);
			return;
		}
		kill_end(sl, r == 0 &&
		    libssh2_channel_get_exit_status(sl->kch) == 0);
		return;
	case K_NONE:
		break;
	}
}

/*
 * A command given up at a deadline or ^C: the row is final now, its
 * process group is killed if the session still answers.
 */
static void
kill_start(struct slot *sl)
{
	sl->job->row->duration_ms = now_ms() - sl->start;
	sl->deadline = 0;
	if (sl->js == J_OPEN || sl->js >= J_CLOSE) {
		kill_end(sl, 1);	/* no command, or it has ended */
		return;
	}
	if (sl->pgid_state != 1) {
		kill_end(sl, 0);
		return;
	}
	sl->killing = K_OPEN;
	sl->kill_deadline = now_ms() + KILL_BUDGET_MS;
	sl->kick = 1;
}

static void
slot_step(struct ssh_cache *sc, struct slot *sl)
{
	struct conn	*c = sl->c;
	struct row	*row = sl->job->row;
	int		 r;

	sl->kick = 0;
	if (sl->killing) {
		kill_step(sl);
		return;
	}
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

	if (sl->killing) {
		kill_end(sl, 0);	/* the session does not answer */
		return;
	}
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
	snprintf(sl->why, sizeof sl->why, "reops-run: timed out after %ds",
	    sl->job->timeout);
	r->status = ST_FAILED;
	r->code = 124;
	kill_start(sl);
}

static void
slot_interrupt(struct slot *sl)
{
	struct row	*r = sl->job->row;

	snprintf(sl->why, sizeof sl->why, "reops-run: interrupted");
	r->status = ST_FAILED;
	r->code = 130;
	kill_start(sl);
}

static long long
slot_deadline(const struct slot *sl)
{
	long long	d = sl->deadline;

	if (sl->killing)
		return sl->kill_deadline;
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
			/* Those being killed already go on with that. */
			for (i = 0; i < (size_t)forks; i++) {
				if (slots[i].job == NULL || slots[i].killing)
					continue;
				slot_interrupt(&slots[i]);
				if (slots[i].job == NULL)
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
