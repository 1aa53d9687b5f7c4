/*
 * transport.c: the table of transports, indexed by the group's
 * "transport:", and what every transport shares: run_jobs, which hands a
 * stage's jobs to them (each transport with rows in a loop of its own, the
 * others' in threads beside the first), the end of a row (codes 124,
 * 128+N, 130 and unreachable, one table of signal names), the one --forks
 * budget of a stage, and the wake-up of the loops that the --forks and
 * file descriptor budgets hold back.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "run.h"
#include "secret.h"
#include "transport.h"

volatile sig_atomic_t run_interrupted;

static const struct transport_ops transports[] = {
	[TR_LOCAL] = { "local", local_run, local_put, NULL },
	[TR_SSH] = { "ssh", ssh_run, ssh_put, ssh_cleanup },
	[TR_AGENT] = { "agent", agent_run, agent_put, agent_close },
};

const struct transport_ops *
transport_of(const struct row *r)
{
	return &transports[r->host->group->transport];
}

/* The transport a job goes by: its own 'via', else its group's. */
enum transport
job_transport(const struct job *j)
{
	if (j->via > 0 && (size_t)(j->via - 1) < nitems(transports))
		return (enum transport)(j->via - 1);
	return j->row->host->group->transport;
}

/* Set j->via first: the file goes the way the job will. */
void
transport_put(struct job *j, const struct put_file *pf)
{
	transports[job_transport(j)].put(j, pf);
}

/* At the end of the run, each transport lets go of what it kept. */
void
transport_close_all(struct run *run)
{
	size_t	i;

	for (i = 0; i < nitems(transports); i++)
		if (transports[i].close != NULL)
			transports[i].close(run);
}

/*
 * The copy stage's script: the bytes come from stdin, or from the local
 * file src; a failure anywhere leaves dest as it was and removes the
 * temporary file. The target's sha256sum of what landed, if it has one,
 * is the output.
 */
char *
put_command(const struct put_file *pf, int from_src)
{
	struct buf	 s, cmd;

	buf_init(&s);
	buf_init(&cmd);
	buf_adds(&s, "set -e; d=");
	shell_quote(&s, pf->dest);
	/* Every operand after "--": dest may begin with a dash. */
	buf_adds(&s, "; t=$(mktemp -- \"$d.reops.XXXXXX\"); "
	    "trap 'rm -f -- \"$t\"' EXIT; ");
	if (from_src) {
		buf_adds(&s, "cat -- ");
		shell_quote(&s, pf->src);
		buf_adds(&s, " >\"$t\"; ");
	} else
		buf_adds(&s, "cat >\"$t\"; ");
	buf_printf(&s, "chmod %s -- \"$t\"; mv -f -- \"$t\" \"$d\"; "
	    "trap - EXIT; "
	    "if command -v sha256sum >/dev/null 2>&1; then "
	    "sha256sum <\"$d\"; fi", pf->mode);
	if (pf->sudo) {
		buf_adds(&cmd, "sudo -n -- /bin/sh -c ");
		shell_quote(&cmd, s.data);
	} else
		buf_add(&cmd, s.data, s.len);
	buf_free(&s);
	return buf_steal(&cmd);
}

static const struct {
	const char	*name;		/* without "SIG", as ssh names them */
	int		 num;
} signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	{ "ILL", SIGILL }, { "TRAP", SIGTRAP }, { "ABRT", SIGABRT },
	{ "BUS", SIGBUS }, { "FPE", SIGFPE }, { "KILL", SIGKILL },
	{ "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
	{ "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "SYS", SIGSYS },
};

/* "TERM" for SIGTERM; NULL when the table does not have it. */
const char *
signal_name(int sig)
{
	size_t	i;

	for (i = 0; i < nitems(signals); i++)
		if (signals[i].num == sig)
			return signals[i].name;
	return NULL;
}

/* The number of a signal named without "SIG"; 0 when unknown. */
int
signal_number(const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < nitems(signals); i++)
		if (strlen(signals[i].name) == len &&
		    memcmp(signals[i].name, name, len) == 0)
			return signals[i].num;
	return 0;
}

/*
 * How a row ended, as every transport says it: its status, its code and,
 * but for an exit, one line of reason on its stderr. For END_SIGNAL a
 * reason, when given, is the signal's name as the target said it.
 */
void
job_end(struct job *j, enum job_end how, int value, const char *reason)
{
	struct row	*r = j->row;
	const char	*name;

	switch (how) {
	case END_EXIT:
		r->code = value;
		r->status = value == 0 ? ST_OK : ST_FAILED;
		break;
	case END_SIGNAL:
		r->code = 128 + value;
		r->status = ST_FAILED;
		if ((name = reason) == NULL)
			name = signal_name(value);
		if (value == 0 && name != NULL)	/* unknown: as named */
			buf_printf(&r->err, "reops-run: killed by signal "
			    "%s%s\n", strncmp(name, "SIG", 3) != 0 ? "SIG" : "",
			    name);
		else if (name != NULL)
			buf_printf(&r->err, "reops-run: killed by signal %d "
			    "(SIG%s)\n", value, name);
		else
			buf_printf(&r->err, "reops-run: killed by signal "
			    "%d\n", value);
		break;
	case END_TIMEOUT:
		r->code = CODE_TIMEOUT;
		r->status = ST_FAILED;
		buf_printf(&r->err, "reops-run: timed out after %ds\n", value);
		break;
	case END_INTERRUPTED:
		r->code = CODE_INTERRUPTED;
		r->status = ST_FAILED;
		buf_adds(&r->err, "reops-run: interrupted\n");
		break;
	case END_UNREACHABLE:
		buf_reset(&r->out);
		buf_reset(&r->err);
		buf_printf(&r->err, "reops-run: %s\n", reason);
		r->code = CODE_UNREACHABLE;
		r->status = ST_UNREACHABLE;
		break;
	case END_NOT_RUN:
		buf_reset(&r->out);
		buf_reset(&r->err);
		buf_printf(&r->err, "reops-run: %s\n", reason);
		r->code = value;
		r->status = ST_FAILED;
		r->duration_ms = 0;
		break;
	}
}

/*
 * A row is final: its secrets are masked, its answer read (the stage's
 * after: one at a time, as the loops of several transports and branch
 * lanes end rows at once), and the progress told.
 */
static pthread_mutex_t	after_mutex = PTHREAD_MUTEX_INITIALIZER;

void
job_done(struct job *j)
{
	secret_mask_row(j->row);
	if (j->after != NULL) {
		pthread_mutex_lock(&after_mutex);
		j->after(j);
		pthread_mutex_unlock(&after_mutex);
	}
	if (!j->step)
		run_row_done(j->run, j->row);
}

/*
 * --forks: how many rows run at once in a stage, whatever their
 * transports; each loop takes a slot before it starts a row.
 */
static pthread_mutex_t	forks_mutex = PTHREAD_MUTEX_INITIALIZER;
static int		forks_used;

/*
 * The loops held back, waiting for slots or descriptors. A give writes
 * once to the eventfd of every one of them and takes it off the list:
 * each has its own, so that no loop's read takes another's wake-up, and
 * one that no longer waits is not written to. wakes counts the
 * wake-ups, so that one between a loop's look and its wait is not lost.
 * A loop's own gives wake the others at its held_wait, once it has
 * taken what it could: then only when something is left. They never
 * wake the loop itself (it gives a slot back when the descriptors do
 * not fit, and would look again at once, and again).
 */
static struct held	*waiting;	/* under forks_mutex */
static unsigned long	 wakes;		/* under forks_mutex */
static int		 forks_cap;	/* the last take's --forks */

static __thread int	 in_loop;	/* between held_look and held_end */
static __thread int	 owed;		/* HELD_*: gives not woken for */

/*
 * A stage's 'serial: N': at most N of its rows at once, whatever their
 * transports. run_stage sets it for the thread that runs the stage (the
 * smallest of the stage's and those of the includes around it); run_jobs
 * hands it to the stage's transport loops as one window that they share,
 * and forks_take counts a row in the window as in --forks, so that each
 * row that ends lets the next one start: a sliding window, not waves.
 */
struct window {
	int	max;
	int	used;		/* under forks_mutex */
};

static __thread int		 stage_serial;	/* 0: none */
static __thread struct window	*window;	/* this loop's, or NULL */

/* This thread's stages now run at most n rows at once; the old limit. */
int
forks_serial_push(int n)
{
	int	old = stage_serial;

	if (n > 0 && (old == 0 || n < old))
		stage_serial = n;
	return old;
}

void
forks_serial_pop(int old)
{
	stage_serial = old;
}

/* The limit of this thread's stage: 0, none. */
int
forks_serial(void)
{
	return stage_serial;
}

int
forks_max(const struct run *run)
{
	return run->opt->forks > 0 ? run->opt->forks : DEFAULT_FORKS;
}

/* 0 with a slot taken, -1 when all are in use. */
int
forks_take(const struct run *run)
{
	int	r = -1;

	pthread_mutex_lock(&forks_mutex);
	forks_cap = forks_max(run);
	if (forks_used < forks_cap &&
	    (window == NULL || window->used < window->max)) {
		forks_used++;
		if (window != NULL)
			window->used++;
		r = 0;
	}
	pthread_mutex_unlock(&forks_mutex);
	return r;
}

/* Under forks_mutex: h looks again (once, however often it is told). */
static void
wake(struct held *h)
{
	uint64_t	one = 1;

	if (h->woken)
		return;
	h->woken = 1;
	while (write(h->fd, &one, sizeof one) == -1 && errno == EINTR)
		;
}

/* Under forks_mutex: the loops waiting for what came back (HELD_*). */
static void
wake_for(int what)
{
	struct held	**p = &waiting, *h;

	wakes++;
	while ((h = *p) != NULL) {
		if ((h->why & what) == 0) {
			p = &h->next;
			continue;
		}
		*p = h->next;
		h->next = NULL;
		h->listed = 0;
		wake(h);
	}
}

/* Under forks_mutex: what came back; a loop's own wakes at its wait. */
static void
given(int what)
{
	if (in_loop)
		owed |= what;
	else
		wake_for(what);
}

/*
 * Under forks_mutex: what this thread's loop gave back wakes the others
 * unless it took all of it again (descriptors: whatever is left, as the
 * others' needs are not known here).
 */
static void
settle(void)
{
	if ((owed & HELD_FORKS) && forks_used >= forks_cap)
		owed &= ~HELD_FORKS;
	if (owed != 0)
		wake_for(owed);
	owed = 0;
}

void
forks_give(void)
{
	pthread_mutex_lock(&forks_mutex);
	if (forks_used > 0)
		forks_used--;
	if (window != NULL && window->used > 0)
		window->used--;
	given(HELD_FORKS);
	pthread_mutex_unlock(&forks_mutex);
}

/* Descriptors came back to the run's budget (fd_release). */
void
held_wake(void)
{
	pthread_mutex_lock(&forks_mutex);
	given(HELD_FDS);
	pthread_mutex_unlock(&forks_mutex);
}

void
held_init(struct held *h)
{
	memset(h, 0, sizeof *h);
	h->fd = -1;
}

/* Before a loop tries to take a slot or descriptors. */
void
held_look(struct held *h)
{
	in_loop = 1;
	pthread_mutex_lock(&forks_mutex);
	h->seen = wakes;
	pthread_mutex_unlock(&forks_mutex);
}

/*
 * Before the loop's poll: what it gave back and did not take again
 * wakes the others now. When it was held back since held_look (why:
 * HELD_FORKS, HELD_FDS or both), the descriptor to poll, which turns
 * readable when others give something back (at once when they already
 * have); -1 when it was not, or when no eventfd could be made (out of
 * descriptors or memory): then the loop looks again when its poll times
 * out, as it does for run_interrupted.
 */
int
held_wait(struct held *h, int why)
{
	int	missed;

	if (why != 0 && h->fd == -1 && !h->failed &&
	    (h->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		h->failed = 1;
		log_debug("a loop held back has no eventfd (%s): it looks "
		    "again each time its poll times out", xstrerror(errno));
	}
	pthread_mutex_lock(&forks_mutex);
	missed = wakes != h->seen;
	settle();
	if (why == 0 || h->fd == -1) {
		pthread_mutex_unlock(&forks_mutex);
		return -1;
	}
	h->why = why;
	if (missed)
		wake(h);
	else if (!h->listed) {
		h->next = waiting;
		waiting = h;
		h->listed = 1;
	}
	pthread_mutex_unlock(&forks_mutex);
	h->armed = 1;
	return h->fd;
}

/* After the poll: off the list, and the wake-up, if any, read. */
void
held_disarm(struct held *h)
{
	struct held	**p;
	uint64_t	  n;
	int		  woken;

	if (!h->armed)
		return;
	h->armed = 0;
	pthread_mutex_lock(&forks_mutex);
	if (h->listed) {
		for (p = &waiting; *p != h; p = &(*p)->next)
			;
		*p = h->next;
		h->next = NULL;
		h->listed = 0;
	}
	woken = h->woken;
	h->woken = 0;
	pthread_mutex_unlock(&forks_mutex);
	if (woken)
		while (read(h->fd, &n, sizeof n) == -1 && errno == EINTR)
			;
}

/* On every way out of the loop: what it gave back wakes the others. */
void
held_end(struct held *h)
{
	held_disarm(h);
	pthread_mutex_lock(&forks_mutex);
	settle();
	pthread_mutex_unlock(&forks_mutex);
	in_loop = 0;
	if (h->fd != -1)
		close(h->fd);
	held_init(h);
}

struct batch {
	struct run		 *run;
	const struct transport_ops	 *tr;
	struct job		**jobs;
	size_t			  n;
	int			  r;
	pthread_t		  tid;
	int			  threaded;
	struct window		 *window;	/* the stage's 'serial' */
};

/* SIGINT stays with the main thread, whose poll it must interrupt. */
static void *
batch_main(void *arg)
{
	struct batch	*b = arg;
	sigset_t	 set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	window = b->window;
	b->r = b->tr->run(b->run, b->jobs, b->n);
	return NULL;
}

/*
 * Each transport takes its own rows. When a stage has rows of more than
 * one, the first runs its loop here and each other in a thread beside it,
 * so none waits for another to finish; all share the --forks budget.
 */
int
run_jobs(struct run *run, struct job *jobs, size_t n)
{
	struct batch	 b[nitems(transports)];
	struct window	 w, *outer = window;
	size_t		 i, t, first = nitems(transports), rows = 0;
	int		 r = 0;

	memset(b, 0, sizeof b);
	w.max = stage_serial;
	w.used = 0;
	for (t = 0; t < nitems(transports); t++) {
		b[t].run = run;
		b[t].tr = &transports[t];
		b[t].jobs = xcalloc(n, sizeof *b[t].jobs);
		b[t].window = stage_serial > 0 ? &w : NULL;
	}
	window = stage_serial > 0 ? &w : NULL;
	for (i = 0; i < n; i++) {
		jobs[i].run = run;
		t = (size_t)job_transport(&jobs[i]);
		b[t].jobs[b[t].n++] = &jobs[i];
		rows += !jobs[i].step;
	}
	progress_add(run->progress, rows);
	for (t = 0; t < nitems(transports); t++) {
		if (b[t].n == 0)
			continue;
		if (first == nitems(transports)) {
			first = t;
			continue;
		}
		b[t].threaded = pthread_create(&b[t].tid, NULL, batch_main,
		    &b[t]) == 0;
	}
	if (first < nitems(transports))
		b[first].r = b[first].tr->run(run, b[first].jobs, b[first].n);
	for (t = 0; t < nitems(transports); t++) {
		if (t != first && b[t].n > 0) {
			if (b[t].threaded)
				pthread_join(b[t].tid, NULL);
			else
				b[t].r = b[t].tr->run(run, b[t].jobs, b[t].n);
		}
		if (b[t].r != 0)
			r = -1;
		free(b[t].jobs);
	}
	/* Rows no agent could take, over ssh now that its loop is free. */
	if (agent_fallback(run) != 0)
		r = -1;
	window = outer;
	return r;
}
