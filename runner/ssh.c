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
 * kills its own. That needs the runner alive, not too loaded and still
 * connected, so the host keeps the deadline too: each command starts
 * under a watchdog (WATCHDOG below) that kills its group at the deadline
 * or as soon as the connection is gone.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "knownhosts.h"
#include "run.h"
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
/* The line the wrapper of each command puts first on its stderr. */
#define PGID_MARK		"reops-pgid="
/* Stderr seen without that line: past this, it is not coming. */
#define PGID_SCAN_MAX		4096
/*
 * Descriptors a connection takes from the run's budget: its socket, and
 * one for the resolver or ssh-agent on the way; how long to wait, when
 * held back with nothing of ours at work, for others to give some back.
 */
#define CONN_FDS		2
/* How long killing a command may take, all kills running at once. */
#define KILL_BUDGET_MS		2000

/*
 * The wrapper of every command, a POSIX sh script run as
 * sh -c WATCHDOG reops-run COMMAND SECONDS. sshd made it a session and
 * group leader; it execs the command, so the leader is the command and
 * its pid is the group to kill. Before that it forks a watchdog into the
 * same group, its standard streams on /dev/null so that it never holds
 * the channel open. The watchdog looks once a second: the command gone,
 * it ends; the deadline come (SECONDS on a sleep of its own, 0: none) or
 * its parent sshd gone (the connection dropped: the runner was killed
 * or gave the command up), it sends TERM to the group, ignoring that itself, and KILL
 * a second later, which ends it too. Only kill, sleep and printf, and
 * no single quote: it travels inside one.
 */
#define WATCHDOG							\
	"p=$$ s=$PPID t=$2; "						\
	"kill -0 \"$s\" 2>/dev/null && [ \"$s\" != 1 ] || s=; "		\
	"(z=; "								\
	"if [ \"$t\" -gt 0 ]; then sleep \"$t\" & z=$!; fi; "		\
	"while kill -0 \"$p\"; do "					\
	"if { [ -n \"$z\" ] && ! kill -0 \"$z\"; } || "			\
	"{ [ -n \"$s\" ] && ! kill -0 \"$s\"; }; then "			\
	"trap \"\" TERM; kill -TERM -\"$p\"; sleep 1; "			\
	"kill -KILL -\"$p\"; exit 0; fi; "					\
	"sleep 1; done; "						\
	"[ -z \"$z\" ] || kill \"$z\") </dev/null >/dev/null 2>&1 & "	\
	"printf \"" PGID_MARK "%s\\n\" \"$p\" >&2; "			\
	"exec /bin/sh -c \"$1\""

static void	row_not_run(struct row *, const char *);

static void
finish_slot(struct slot *sl)
{
	/* A command being killed was timed when it was given up. */
	if (!sl->given_up)
		sl->job->row->duration_ms = now_ms() - sl->start;
	job_done(sl->job);
	if (sl->c != NULL)
		sl->c->busy = NULL;
	sl->job = NULL;
	sl->c = NULL;
	sl->ch = NULL;
}

static void
row_unreachable(struct slot *sl, const char *reason)
{
	job_end(sl->job, END_UNREACHABLE, 0, reason);
	finish_slot(sl);
}

/*
 * Exit status and signals, as every transport says them. A command that
 * TERM or KILL ended after our deadline was ended by its host's watchdog
 * while we were too slow to do it ourselves: it timed out.
 */
static void
row_exit(struct slot *sl)
{
	char		*sig = NULL, name[16];
	size_t		 len = 0;
	int		 num = 0, code;

	libssh2_channel_get_exit_signal(sl->ch, &sig, &len, NULL, NULL, NULL,
	    NULL);
	if (sig != NULL && len > 0) {
		num = signal_number(sig, len);
		code = 128 + num;
	} else
		code = libssh2_channel_get_exit_status(sl->ch);
	if (sl->deadline != 0 && now_ms() >= sl->deadline &&
	    (code == 128 + SIGTERM || code == 128 + SIGKILL))
		job_end(sl->job, END_TIMEOUT, sl->job->timeout, NULL);
	else if (sig != NULL && len > 0) {
		/* One the table lacks keeps the name the host gave. */
		snprintf(name, sizeof name, "%.*s", (int)len, sig);
		job_end(sl->job, END_SIGNAL, num, num != 0 ? NULL : name);
	} else
		job_end(sl->job, END_EXIT, code, NULL);
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

/*
 * The deadline the host keeps: what is left of ours, in whole seconds,
 * rounded up so that ours comes first and the runner's own kill and
 * reason are the usual end; 0 for none.
 */
static int
host_deadline(const struct slot *sl)
{
	long long	left;

	if (sl->deadline == 0)
		return 0;
	left = sl->deadline - now_ms();
	return left < 1000 ? 1 : (int)((left + 999) / 1000);
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
		buf_adds(&cmd, "exec /bin/sh -c '" WATCHDOG "' reops-run ");
		shell_quote(&cmd, j->command);
		buf_printf(&cmd, " %d", host_deadline(sl));
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
 * The end of a command given up: the row says why; the session, in an
 * unknown state, goes.
 */
static void
kill_end(struct slot *sl, int gone)
{
	/* Not killed from here: the host's watchdog does it, at the
	 * deadline or now that the connection goes. */
	if (!gone)
		log_debug("%s: no answer to the kill; its host's watchdog ends "
		    "the command", sl->c->host->name);
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
	sl->given_up = 1;
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
		if (r < 0 && c->ours) {
			/* Not the host's fault: failed, and tried again later. */
			row_not_run(row, c->reason);
			finish_slot(sl);
			c->ours = 0;
			c->state = C_NEW;
			return;
		}
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
	    conn_error(c));
	row->status = ST_UNREACHABLE;
	row->code = CODE_UNREACHABLE;
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
	int		 secs;

	if (sl->killing) {
		kill_end(sl, 0);	/* the session does not answer */
		return;
	}
	if (c->state != C_READY) {
		secs = sl->deadline != 0 && sl->deadline < sl->connect_deadline ?
		    sl->job->timeout : c->connect_timeout;
		conn_timeout(c, secs);
		row_unreachable(sl, c->reason);
		return;
	}
	job_end(sl->job, END_TIMEOUT, sl->job->timeout, NULL);
	kill_start(sl);
}

static void
slot_interrupt(struct slot *sl)
{
	job_end(sl->job, END_INTERRUPTED, 0, NULL);
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

/*
 * A new connection must fit in the descriptors: room is made by closing
 * a cached one that no command uses (a later stage dials it again).
 * 0: it may go; 1: not now; -1: never (the limit is too low).
 */
static int
conn_admit(struct ssh_cache *sc, struct conn *c)
{
	struct conn	*idle;
	size_t		 i;

	if (c->state == C_READY || c->state == C_DEAD || c->fds > 0)
		return 0;
	while (fd_reserve(CONN_FDS) != 0) {
		for (i = 0, idle = NULL; i < sc->nall && idle == NULL; i++)
			if (sc->all[i]->state == C_READY &&
			    sc->all[i]->busy == NULL && sc->all[i]->fds > 0 &&
			    !sc->all[i]->is_jump)
				idle = sc->all[i];
		if (idle == NULL)
			return fd_fits_ever(CONN_FDS) ? 1 : -1;
		log_debug("%s: closing its idle connection to make room",
		    idle->host->name);
		conn_drop(idle, 1);
	}
	c->fds = CONN_FDS;
	return 0;
}

/* Rows that did not run are never left as they were (ok). */
static void
row_not_run(struct row *r, const char *why)
{
	struct job	j = { .row = r };

	job_end(&j, END_NOT_RUN, -1, why);
}

/* copy: the bytes go on the command's stdin. */
void
ssh_put(struct job *j, const struct put_file *pf)
{
	j->command = put_command(pf, 0);
	j->input = pf->data;
	j->input_len = pf->len;
}

int
ssh_run(struct run *run, struct job **jobs, size_t n)
{
	struct ssh_cache	*sc = cache_get(run);
	struct slot		*slots;
	struct pollfd		*pfd;
	struct conn		*c;
	struct held		 hb;
	unsigned char		*started;
	size_t			*at;
	size_t			 first = 0, active = 0, i, k, np, npfd, jb;
	long long		 now, d;
	int			 forks, wait_ms, held, full, r = 0;
	char			*why;

	forks = forks_max(run);
	if ((size_t)forks > n)
		forks = (int)n;
	slots = xcalloc((size_t)forks, sizeof *slots);
	/* The slots', the bastions' (added below) and the wake-up. */
	npfd = (size_t)forks + 1;
	pfd = xcalloc(npfd, sizeof *pfd);
	at = xcalloc((size_t)forks, sizeof *at);
	started = xcalloc(n, 1);
	held_init(&hb);
	for (;;) {
		/*
		 * Start what we may; a host already busy waits its turn, and
		 * so does one whose connection does not fit in the
		 * descriptors yet.
		 */
		held = full = 0;
		held_look(&hb);
		for (i = first; !run_interrupted && i < n &&
		    active < (size_t)forks; i++) {
			if (started[i])
				continue;
			if ((c = hmap_get(&sc->conns,
			    jobs[i]->row->host->name)) == NULL)
				c = conn_new(sc, jobs[i]->row->host);
			if (c->busy != NULL)
				continue;
			/* --forks counts the rows of every transport. */
			if (forks_take(run) != 0) {
				full = 1;
				break;
			}
			switch (conn_admit(sc, c)) {
			case 1:
				forks_give();
				held = 1;
				continue;
			case -1:
				forks_give();
				started[i] = 1;
				why = xasprintf("not started: too few file "
				    "descriptors (the limit on open files is "
				    "%ld)", fd_limit());
				row_not_run(jobs[i]->row, why);
				free(why);
				continue;
			}
			started[i] = 1;
			if (c->state == C_DEAD) {
				struct slot	tmp;

				forks_give();
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
				if (slots[i].job == NULL) {
					active--;
					forks_give();
				}
			}
		}
		if (active == 0 && first >= n)
			break;
		now = now_ms();
		wait_ms = -1;
		/* Only the slots at work: poll takes no more than the limit. */
		for (i = 0, np = 0; i < (size_t)forks; i++) {
			if (slots[i].job == NULL)
				continue;
			if (slots[i].kick || conn_tunnel_ready(slots[i].c,
			    slots[i].events))
				wait_ms = 0;
			else if (conn_resolving(slots[i].c) &&
			    (wait_ms < 0 || wait_ms > RESOLVE_POLL_MS))
				wait_ms = RESOLVE_POLL_MS;
			if ((d = slot_deadline(&slots[i])) != 0) {
				d = d > now ? d - now : 0;
				if (wait_ms < 0 || d < wait_ms)
					wait_ms = (int)d;
			}
			at[i] = np;
			pfd[np].fd = conn_pollfd(slots[i].c);
			pfd[np].events = (short)slots[i].events;
			pfd[np].revents = 0;
			np++;
		}
		/* The bastions' sockets follow the slots'. */
		if (npfd < (size_t)forks + sc->njumps + 1) {
			npfd = (size_t)forks + sc->njumps + 1;
			pfd = xreallocarray(pfd, npfd, sizeof *pfd);
		}
		jb = np;
		if (jump_pollfds(sc, pfd + jb))
			wait_ms = 0;
		np += sc->njumps;
		/* Slots or descriptors another loop gives back wake us. */
		if ((pfd[np].fd = held_wait(&hb, (full ? HELD_FORKS : 0) |
		    (held ? HELD_FDS : 0))) != -1) {
			pfd[np].events = POLLIN;
			pfd[np].revents = 0;
			np++;
		}
		/* In a thread, SIGINT interrupts the other poll, not ours. */
		if (wait_ms < 0 || wait_ms > INTERRUPT_POLL_MS)
			wait_ms = INTERRUPT_POLL_MS;
		if (poll(pfd, (nfds_t)np, wait_ms) == -1 && errno != EINTR) {
			log_warn("ssh: poll: %s", xstrerror(errno));
			r = -1;
			break;
		}
		held_disarm(&hb);
		jump_service(sc, pfd + jb);
		now = now_ms();
		for (i = 0; i < (size_t)forks; i++) {
			struct slot *sl = &slots[i];

			if (sl->job == NULL)
				continue;
			c = sl->c;
			if (pfd[at[i]].revents != 0 || sl->kick ||
			    conn_resolving(sl->c) ||
			    conn_tunnel_ready(sl->c, sl->events))
				slot_step(sc, sl);
			if (sl->job != NULL && (d = slot_deadline(sl)) != 0 &&
			    now >= d)
				slot_timeout(sl);
			if (sl->job == NULL) {
				active--;
				forks_give();
				/* Short of descriptors: no idle connection. */
				if (c->busy == NULL && c->state == C_READY &&
				    fd_pressed())
					conn_drop(c, 1);
			}
		}
		/* What the slots wrote to their tunnels goes out now. */
		jump_service(sc, NULL);
	}
	if (r != 0) {
		for (i = 0; i < (size_t)forks; i++) {
			if (slots[i].job == NULL)
				continue;
			row_not_run(slots[i].job->row, "not finished: internal "
			    "error");
			slots[i].ch = NULL;
			conn_drop(slots[i].c, 0);
			finish_slot(&slots[i]);
			forks_give();
		}
		for (k = 0; k < n; k++)
			if (!started[k])
				row_not_run(jobs[k]->row, "not started: "
				    "internal error");
	}
	held_end(&hb);
	free(started);
	free(slots);
	free(pfd);
	free(at);
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
	/* Targets behind a bastion say goodbye through it, so it goes last. */
	for (k = 0; k < 2; k++)
		for (i = 0; i < sc->nall; i++) {
			c = sc->all[i];
			if (c->is_jump != (int)k)
				continue;
			if (k == 1)
				jump_service(sc, NULL);
			conn_drop(c, c->state == C_READY);
			/* One budget for all of them, not one each. */
			wait = (int)(until - now_ms());
			if (resolve_free(c, wait > 0 ? wait : 0) != 0)
				log_debug("%s: the resolver is still at work",
				    c->addr);
		}
	for (i = 0; i < sc->nall; i++)
		conn_free(sc->all[i]);
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
	free(sc->jumps);
	hmap_free(&sc->conns);
	hmap_free(&sc->known);
	ssh_config_free(sc->cfg);
	free(sc->cfg_error);
	free(sc);
	run->ssh = NULL;
	pthread_mutex_lock(&ssh_lib_lock);
	libssh2_exit();
	pthread_mutex_unlock(&ssh_lib_lock);
}
