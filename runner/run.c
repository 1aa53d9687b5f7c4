/*
 * run.c: runs a loaded pipeline's stages in order on the result table,
 * builds the jobs of command stages for run_jobs (transport.c), and keeps
 * the run's file descriptor budget.
 */
#include <sys/resource.h>

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "run.h"
#include "secret.h"

/*
 * Left for what the budget does not count: files, pipes and sockets
 * opened on the way (key and known_hosts files, ssh-keygen, the
 * resolver, libvirt, ZeroMQ, output files), and the eventfd of each
 * transport loop that was held back (struct held: up to three a stage,
 * as many in each of a branch's lanes).
 */
#define FD_HEADROOM	16

static pthread_mutex_t	fd_mutex = PTHREAD_MUTEX_INITIALIZER;
static long		fd_total = -1;	/* the budget; -1: not yet set */
static long		fd_free;
static long		fd_soft;
static int		fd_short;	/* a reservation did not fit */

/* Under fd_mutex: raises the soft limit and sets the budget, once. */
static void
fd_init(void)
{
	struct rlimit	 rl;
	struct dirent	*d;
	DIR		*dir;
	long		 used = 0;

	if (fd_total >= 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fd_total = fd_free = fd_soft = 1024 - FD_HEADROOM;
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	fd_soft = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX ?
	    INT_MAX : (long)rl.rlim_cur;
	if ((dir = opendir("/proc/self/fd")) != NULL) {
		while ((d = readdir(dir)) != NULL)
			if (d->d_name[0] != '.')
				used++;
		closedir(dir);
		used--;		/* the directory's own */
	} else
		used = 8;
	fd_total = fd_soft - used - FD_HEADROOM;
	if (fd_total < 0)
		fd_total = 0;
	fd_free = fd_total;
}

/* Takes n descriptors from the budget: 0, or -1 when they do not fit now. */
int
fd_reserve(int n)
{
	int	r = -1;

	pthread_mutex_lock(&fd_mutex);
	fd_init();
	if (fd_free >= n) {
		fd_free -= n;
		r = 0;
	} else
		fd_short = 1;
	pthread_mutex_unlock(&fd_mutex);
	return r;
}

/*
 * 1 once work had to wait for descriptors: then an idle connection is
 * not kept for later stages, so that the other loop gets its share.
 */
int
fd_pressed(void)
{
	int	r;

	pthread_mutex_lock(&fd_mutex);
	r = fd_short;
	pthread_mutex_unlock(&fd_mutex);
	return r;
}

void
fd_release(int n)
{
	pthread_mutex_lock(&fd_mutex);
	fd_free += n;
	if (fd_free > fd_total)
		fd_free = fd_total;
	pthread_mutex_unlock(&fd_mutex);
	/* Loops held back for descriptors look again. */
	if (n > 0)
		held_wake();
}

/* 1 when n could be taken once the others give theirs back. */
int
fd_fits_ever(int n)
{
	int	r;

	pthread_mutex_lock(&fd_mutex);
	fd_init();
	r = fd_total >= n;
	pthread_mutex_unlock(&fd_mutex);
	return r;
}

/* The soft limit on open files, as raised. */
long
fd_limit(void)
{
	long	r;

	pthread_mutex_lock(&fd_mutex);
	fd_init();
	r = fd_soft;
	pthread_mutex_unlock(&fd_mutex);
	return r;
}

/* Remembers what the exit status must say about the rows seen so far. */
void
run_note(struct run *run, const struct table *t)
{
	size_t	i;

	for (i = 0; i < t->n; i++) {
		if (t->rows[i]->status == ST_FAILED)
			run->saw_failed = 1;
		else if (t->rows[i]->status == ST_UNREACHABLE)
			run->saw_unreachable = 1;
	}
}

/*
 * Runs one stage on the rows it selects (stage_selects): a stage that
 * takes the whole table gets it; any other gets a table of the rows it
 * selects, the very rows, so what it does lands in t; the others pass
 * through untouched. A selector that gives up on a row fails that row.
 */
static int
run_selected(struct run *run, struct stage *st, stage_fn fn,
    struct table *t)
{
	struct table	*v;
	char		 why[256];
	size_t		 i, j;
	int		 r, sel;

	if (st->entry->flags & STAGE_TABLE)
		return fn(run, st, t);
	v = table_new();
	v->pipeline = t->pipeline;
	v->rows = xcalloc(t->n + 1, sizeof *v->rows);
	v->cap = t->n + 1;
	for (i = 0; i < t->n; i++) {
		why[0] = '\0';
		sel = stage_selects(st, t->rows[i], why, sizeof why);
		if (sel < 0) {
			t->rows[i]->status = ST_FAILED;
			if (t->rows[i]->code == 0)
				t->rows[i]->code = 1;
			buf_printf(&t->rows[i]->err, "reops-run: 'when' of "
			    "stage '%s' gave up: %s (it backtracks too much; "
			    "simplify it)\n", stage_name(st), why);
		} else if (sel)
			v->rows[v->n++] = t->rows[i];
	}
	if (v->n == t->n) {
		/* All of them: the stage adds its columns to t itself. */
		v->n = 0;
		table_free(v);
		return fn(run, st, t);
	}
	for (i = 0; i < t->ncols; i++) {
		v->cols = xgrow(v->cols, v->ncols, sizeof *v->cols);
		v->cols[v->ncols++] = xstrdup(t->cols[i]);
	}
	r = fn(run, st, v);
	/* The columns it added, after t's own. */
	for (i = t->ncols; i < v->ncols; i++) {
		for (j = 0; j < t->ncols; j++)
			if (strcmp(t->cols[j], v->cols[i]) == 0)
				break;
		if (j == t->ncols) {
			t->cols = xgrow(t->cols, t->ncols, sizeof *t->cols);
			t->cols[t->ncols++] = xstrdup(v->cols[i]);
		}
	}
	v->n = 0;	/* the rows are t's */
	table_free(v);
	return r;
}

/*
 * A run of its own for a thread (a branch's lane): the options, inventory
 * and stage state are shared; connections (ssh, agent, libvirt), the
 * progress line and what the exit status must say are its own, so that
 * threads never share a cache. run_join closes them and hands the status
 * back. A new per-run cache or tally belongs in both.
 */
void
run_fork(struct run *child, const struct run *parent)
{
	*child = *parent;
	child->ssh = NULL;
	child->agent = NULL;
	child->virt = NULL;
	child->saw_failed = child->saw_unreachable = 0;
	child->output_error = 0;
	child->undelivered = 0;
	child->progress = progress_new(0, progress_verbose(parent->progress));
}

void
run_join(struct run *parent, struct run *child)
{
	transport_close_all(child);
	virt_close(child);
	progress_free(child->progress);
	parent->saw_failed |= child->saw_failed;
	parent->saw_unreachable |= child->saw_unreachable;
	if (parent->output_error == 0)
		parent->output_error = child->output_error;
	parent->undelivered += child->undelivered;
}

/* One stage on the table; 0, or -1 after an internal error. */
int
run_stage(struct run *run, struct stage *st, struct table *t)
{
	stage_fn	 fn;
	int		 r, serial;

	fn = st->owner->kind == SEL_SYSTEMS ? st->entry->system :
	    st->entry->host;
	log_debug("%s:%d:%d: stage '%s' on %zu rows", st->owner->file,
	    st->where->line, st->where->col, stage_name(st), t->n);
	progress_stage_begin(run->progress, stage_name(st));
	serial = forks_serial_push(st->serial);
	r = run_selected(run, st, fn, t);
	forks_serial_pop(serial);
	progress_stage_end(run->progress);
	run_note(run, t);
	return r != 0 ? -1 : 0;
}

int
run_pipeline(struct run *run, struct pipeline *p, struct table *t)
{
	size_t		 i;

	/* 'serial:' runs the stages batch after batch: serial.c. */
	if (p->nserial > 0)
		return run_batches(run, p, t);
	for (i = 0; i < p->nstages && !run_interrupted; i++)
		if (run_stage(run, &p->stages[i], t) != 0)
			return -1;
	return 0;
}

/* The deadline of a row: the stage's, else its group's, else --timeout. */
int
row_timeout(const struct run *run, const struct row *r, int stage_timeout)
{
	if (stage_timeout > 0)
		return stage_timeout;
	if (r->host != NULL && r->host->group->timeout > 0)
		return r->host->group->timeout;
	return run->opt->timeout;
}

/* A transport calls this as each row finishes, from any thread. */
void
run_row_done(struct run *run, const struct row *r)
{
	if (run != NULL)
		progress_row(run->progress, r);
}

/*
 * Runs a command on every row of t: the rows the stage selects
 * (run_stage); the others pass by it unchanged, as in an Ansible play.
 * after, when given, reads each answer of a row that ran (into columns),
 * as the row ends (job_done).
 */
int
run_commands(struct run *run, struct stage *st, struct table *t,
    int (*build)(struct buf *, struct stage *, const struct row *,
    struct buf *),
    void (*after)(struct job *))
{
	struct job	*jobs;
	struct buf	 cmd, why, *in;
	const char	*tmpl;
	size_t		 i, n = 0;
	int		 r, timeout;

	timeout = (int)stage_int(st, "timeout", 0);
	/*
	 * Which secrets a command uses is read from what the author wrote,
	 * never from the command: a row value that spells a secret's
	 * reference must not have it sent to the host.
	 */
	tmpl = st->entry->secret_key != NULL ?
	    stage_str(st, st->entry->secret_key, NULL) : NULL;
	jobs = xcalloc(t->n, sizeof *jobs);
	in = xcalloc(t->n, sizeof *in);
	for (i = 0; i < t->n; i++) {
		buf_init(&cmd);
		buf_init(&why);
		if (build(&cmd, st, t->rows[i], &why) != 0) {
			run_row_refused(run, st, t->rows[i], why.data);
			buf_free(&why);
			buf_free(&cmd);
			continue;
		}
		buf_free(&why);
		jobs[n].row = t->rows[i];
		jobs[n].command = buf_steal(&cmd);
		jobs[n].timeout = row_timeout(run, t->rows[i], timeout);
		jobs[n].after = after;
		jobs[n].table = t;
		/* Secrets go on stdin, never in the command line. */
		buf_init(&in[n]);
		if (tmpl != NULL && secret_input(st->owner, tmpl, &in[n])) {
			jobs[n].input = in[n].data;
			jobs[n].input_len = in[n].len;
		}
		n++;
	}
	r = n > 0 ? run_jobs(run, jobs, n) : 0;
	for (i = 0; i < n; i++) {
		free(jobs[i].command);
		if (in[i].data != NULL)
			explicit_bzero(in[i].data, in[i].len);
		buf_free(&in[i]);
	}
	free(in);
	free(jobs);
	return r;
}

/*
 * A row the stage could not run on, because of one of its row values:
 * it fails with the reason, and nothing ran for it.
 */
void
run_row_refused(struct run *run, const struct stage *st, struct row *r,
    const char *why)
{
	struct job	 j = { .row = r, .run = run };
	char		*msg;

	msg = xasprintf("%s: %s", stage_name(st), why != NULL ? why :
	    "row value refused");
	/* Counted as a row of the stage, or done would pass the total. */
	progress_add(run->progress, 1);
	job_end(&j, END_NOT_RUN, -1, msg);
	job_done(&j);
	free(msg);
}
