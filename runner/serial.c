/*
 * serial.c: rolling batches, as Ansible's serial. A pipeline with
 * 'serial:' cuts its table into batches of rows, in order, and runs its
 * stages on one batch after another. Once more rows have failed or been
 * unreachable than 'max-fail' allows, no further batch starts, and the
 * rows never run become skipped, saying why. The output stages at the
 * end of the pipeline then run once, on the whole table in its original
 * order: that table is the run's recap, as Ansible's PLAY RECAP covers
 * every host, and a json file written there holds every row, not the
 * last batch's. See reops-pipeline(5).
 */
#include <stdlib.h>
#include <string.h>

#include "run.h"

/*
 * What became of a batch's rows, looked at after every stage: a row that
 * turned failed or unreachable counts, also when a later stage (pick)
 * drops it or (when: failed) puts it right.
 */
struct watch {
	struct row	**rows;		/* the batch's rows after a stage */
	unsigned char	 *bad;		/* ... failed or unreachable then */
	unsigned char	 *was;		/* ... so already when it began */
	size_t		  n;
	size_t		  cap;
	size_t		  dropped;	/* rows dropped while bad */
};

static int
row_bad(const struct row *r)
{
	return r->status == ST_FAILED || r->status == ST_UNREACHABLE;
}

static void
watch_grow(struct watch *w, size_t n)
{
	if (n <= w->cap)
		return;
	w->rows = xreallocarray(w->rows, n, sizeof *w->rows);
	w->bad = xreallocarray(w->bad, n, 1);
	w->was = xreallocarray(w->was, n, 1);
	w->cap = n;
}

static void
watch_begin(struct watch *w, const struct table *b)
{
	size_t	i;

	watch_grow(w, b->n);
	for (i = 0; i < b->n; i++) {
		w->rows[i] = b->rows[i];
		w->bad[i] = w->was[i] = row_bad(b->rows[i]);
	}
	w->n = b->n;
	w->dropped = 0;
}

/*
 * After a stage: stages keep the rows in their order and may drop some
 * (pick), so the rows of b are the last ones seen less those dropped,
 * which are counted as they were last seen. A row not seen before (made
 * by a stage) starts with a clean record.
 */
static void
watch_update(struct watch *w, const struct table *b)
{
	size_t	i, j = 0, k;
	int	was;

	watch_grow(w, b->n);
	for (i = 0; i < b->n; i++) {
		for (k = j; k < w->n && w->rows[k] != b->rows[i]; k++)
			;
		if (k == w->n) {
			was = 0;
		} else {
			for (; j < k; j++)
				if (w->bad[j] && !w->was[j])
					w->dropped++;
			was = w->was[k];
			j = k + 1;
		}
		/* i <= j: what is written here was read already. */
		w->rows[i] = b->rows[i];
		w->was[i] = was;
		w->bad[i] = row_bad(b->rows[i]);
	}
	for (; j < w->n; j++)
		if (w->bad[j] && !w->was[j])
			w->dropped++;
	w->n = b->n;
}

/* The rows of the batch that failed or were unreachable in it. */
static size_t
watch_failed(const struct watch *w)
{
	size_t	i, n = w->dropped;

	for (i = 0; i < w->n; i++)
		if (w->bad[i] && !w->was[i])
			n++;
	return n;
}

static void
add_row(struct table *t, struct row *r)
{
	if (t->n == t->cap) {
		t->cap = t->cap == 0 ? 16 : t->cap * 2;
		t->rows = xreallocarray(t->rows, t->cap, sizeof *t->rows);
	}
	t->rows[t->n++] = r;
}

static void
add_column(struct table *t, const char *name)
{
	size_t	i;

	for (i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i], name) == 0)
			return;
	t->cols = xgrow(t->cols, t->ncols, sizeof *t->cols);
	t->cols[t->ncols++] = xstrdup(name);
}

/* The rows of b go back to t, after those before them; b goes. */
static void
take_back(struct table *t, struct table *b)
{
	size_t	i;

	for (i = 0; i < b->n; i++)
		add_row(t, b->rows[i]);
	for (i = 0; i < b->ncols; i++) {
		add_column(t, b->cols[i]);
		free(b->cols[i]);
	}
	free(b->cols);
	free(b->rows);
	free(b);
}

/* A row that was still to run: skipped, and why. */
static void
not_run(struct row *r, const char *why)
{
	if (r->status != ST_OK)
		return;
	r->status = ST_SKIPPED;
	r->code = 0;
	r->duration_ms = 0;
	buf_reset(&r->out);
	buf_reset(&r->err);
	buf_printf(&r->err, "reops-run: %s\n", why);
}

/* "0" or "10%", as the pipeline said it. */
static char *
max_fail_text(const struct pipeline *p)
{
	return xasprintf("%d%s", p->max_fail.n, p->max_fail.percent ? "%" :
	    "");
}

/* The stages of one batch; 0, or -1 after an internal error. */
static int
run_batch(struct run *run, struct pipeline *p, size_t nstages,
    struct table *b, struct watch *w)
{
	size_t	i;

	watch_begin(w, b);
	for (i = 0; i < nstages && !run_interrupted; i++) {
		if (run_stage(run, &p->stages[i], b) != 0)
			return -1;
		watch_update(w, b);
	}
	return 0;
}

int
run_batches(struct run *run, struct pipeline *p, struct table *t)
{
	struct watch	 w;
	struct table	*b;
	struct row	**rows;
	size_t		*sizes, nb, nrows, k, i, at = 0, body, allowed;
	size_t		 failed = 0;
	char		*why = NULL, *mf;
	int		 r = 0;

	/* The output stages at the end see the whole table, once. */
	for (body = p->nstages; body > 0 &&
	    (p->stages[body - 1].entry->flags & STAGE_OUTPUT); body--)
		;
	memset(&w, 0, sizeof w);
	nb = pipeline_batches(p, t->n, &sizes);
	allowed = pipeline_max_fail(p, t->n);
	rows = t->rows;
	nrows = t->n;
	t->rows = NULL;
	t->n = t->cap = 0;
	for (k = 0; k < nb; k++) {
		if (why == NULL && run_interrupted)
			why = xstrdup("not started: interrupted");
		if (why == NULL && r != 0)
			why = xasprintf("not run: an internal error in batch "
			    "%zu", k);
		if (why == NULL && failed > allowed && body > 0) {
			mf = max_fail_text(p);
			why = xasprintf("not run: max-fail %s reached after "
			    "batch %zu", mf, k);
			log_info("%s: %s; %zu of %zu rows not run", p->file,
			    why + strlen("not run: "), nrows - at, nrows);
			free(mf);
		}
		if (why != NULL) {
			for (i = 0; i < sizes[k]; i++) {
				not_run(rows[at], why);
				add_row(t, rows[at++]);
			}
			continue;
		}
		b = table_new();
		b->pipeline = t->pipeline;
		for (i = 0; i < t->ncols; i++)
			add_column(b, t->cols[i]);
		for (i = 0; i < sizes[k]; i++)
			add_row(b, rows[at++]);
		if (body > 0)
			log_info("%s: batch %zu of %zu: %zu row%s", p->file,
			    k + 1, nb, b->n, b->n == 1 ? "" : "s");
		r = run_batch(run, p, body, b, &w);
		failed += watch_failed(&w);
		take_back(t, b);
	}
	free(why);
	free(rows);
	free(sizes);
	free(w.rows);
	free(w.bad);
	free(w.was);
	if (r != 0)
		return -1;
	for (i = body; i < p->nstages && !run_interrupted; i++)
		if (run_stage(run, &p->stages[i], t) != 0)
			return -1;
	return 0;
}
