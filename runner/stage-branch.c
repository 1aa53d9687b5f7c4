/*
 * stage-branch.c: "branch" fans the rows out to sub-pipelines and merges
 * them back (fan-out, fan-in):
 *
 *	- branch:
 *	    debian: { when: { column: os, match: debian }, stages: [...] }
 *	    other:  { when: any-status, stages: [...] }
 *
 * Each row goes to the first branch, in file order, whose 'when' selects
 * it; the rows no branch selects pass by. The branches run at the same
 * time, each on a table of its own rows, and afterwards the rows are one
 * table again in their first order, with every column any branch added
 * (empty where a branch did not add it). A row a branch's pick drops is
 * gone from the whole table.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "run.h"
#include "when.h"

static const char *const branch_keys[] = { "when", "stages", NULL };

static int
branch_load(struct pipeline *p, struct stage *st, struct load_ctx *ctx,
    struct err *e)
{
	const struct node	*k, *v, *when, *stages;
	struct stage_sub	*sub;
	char			 what[160];
	size_t			 i;

	if (st->args == NULL || map_nkeys(st->args) == 0)
		return node_err(e, st->args != NULL ? st->args : st->key,
		    "stage 'branch' needs one or more branches: { NAME: { "
		    "when: SELECTOR, stages: [...] } }");
	for (i = 0; i < map_nkeys(st->args); i++) {
		k = map_key(st->args, i);
		v = map_val(st->args, i);
		if (!name_valid(k->str))
			return node_err(e, k, "a branch's name is one line of "
			    "text");
		if (v->type != NODE_MAP)
			return node_err(e, v, "branch '%s' must be a mapping "
			    "with 'when' and 'stages', not %s", k->str,
			    node_is_null(v) ? "nothing" : node_type_name(v));
		snprintf(what, sizeof what, "branch '%s'", k->str);
		if (node_check_keys(v, branch_keys, what, e) != 0)
			return -1;
		if ((when = node_get(v, "when")) == NULL)
			return node_err(e, v, "branch '%s' needs 'when' (the "
			    "rows it takes; 'when: any-status' for all that "
			    "are left)", k->str);
		if ((stages = node_get(v, "stages")) == NULL)
			return node_err(e, v, "branch '%s' needs 'stages'",
			    k->str);
		sub = stage_add_sub(st, k->str);
		snprintf(what, sizeof what, "'when' of branch '%s'", k->str);
		if (when_parse(when, what, &sub->when, e) != 0 ||
		    pipeline_load_inline(p, stages, ctx, &sub->p, e) != 0)
			return -1;
	}
	return 0;
}

/* A branch adds the columns of every branch's stages. */
static void
branch_columns(const struct stage *st, void (*add)(void *, const char *),
    void *arg)
{
	size_t	i, j;

	for (i = 0; i < st->nsubs; i++)
		for (j = 0; st->subs[i].p != NULL &&
		    j < st->subs[i].p->nstages; j++)
			stage_columns(&st->subs[i].p->stages[j], add, arg);
}

/*
 * One branch at work: its rows in a table of its own. A lane in a thread
 * has a run of its own too, so that its ssh sessions and its progress are
 * its own; the first lane and every lane on systems (one libvirt cache)
 * run on the stage's run, one after another.
 */
struct lane {
	struct run	*run;
	struct run	 own;
	struct pipeline	*p;
	struct table	*t;
	size_t		 cur;		/* merging: its next row */
	pthread_t	 tid;
	int		 serial;	/* the stage's limit, for the thread */
	int		 threaded;
	int		 r;
};

static void *
lane_main(void *arg)
{
	struct lane	*l = arg;
	sigset_t	 set;

	/* SIGINT stays with the main thread, whose poll it must end. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* A 'serial' on the branch stage holds in its threads too. */
	if (l->threaded)
		forks_serial_push(l->serial);
	l->r = run_pipeline(l->run, l->p, l->t);
	return NULL;
}

static void
lane_start(struct lane *l, struct run *run)
{
	run_fork(&l->own, run);
	l->run = &l->own;
	l->serial = forks_serial();
	l->threaded = pthread_create(&l->tid, NULL, lane_main, l) == 0;
	if (!l->threaded)
		lane_main(l);
}

static void
lane_end(struct lane *l, struct run *run)
{
	if (l->threaded)
		pthread_join(l->tid, NULL);
	if (l->run == &l->own)
		run_join(run, &l->own);
}

/* Adds name to t's columns unless it has it; 1 when it was added. */
static int
add_column(struct table *t, const char *name)
{
	size_t	i;

	for (i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i], name) == 0)
			return 0;
	t->cols = xgrow(t->cols, t->ncols, sizeof *t->cols);
	t->cols[t->ncols++] = xstrdup(name);
	return 1;
}

/*
 * The rows back in their first order: those of a branch that are still
 * in its table (a pick there drops and frees the others), and those no
 * branch took. Then each column a branch added, empty on the rows that
 * do not have it.
 */
static void
merge(struct table *t, struct lane *lanes, size_t nlanes,
    const size_t *dest)
{
	struct lane	*l;
	size_t		 i, j, n = 0, ncols = t->ncols;

	for (i = 0; i < t->n; i++) {
		if (dest[i] == nlanes) {
			t->rows[n++] = t->rows[i];
			continue;
		}
		l = &lanes[dest[i]];
		/* Compared as numbers: a dropped row's pointer is freed. */
		if (l->cur < l->t->n && (uintptr_t)l->t->rows[l->cur] ==
		    (uintptr_t)t->rows[i])
			t->rows[n++] = l->t->rows[l->cur++];
	}
	t->n = n;
	for (i = 0; i < nlanes; i++)
		for (j = 0; lanes[i].t != NULL && j < lanes[i].t->ncols; j++)
			add_column(t, lanes[i].t->cols[j]);
	for (j = ncols; j < t->ncols; j++)
		for (i = 0; i < t->n; i++)
			if (row_get(t->rows[i], t->cols[j]) == NULL)
				row_set(t, t->rows[i], t->cols[j], "", 0);
}

static int
branch_rows(struct run *run, struct stage *st, struct table *t)
{
	struct lane	*lanes;
	struct table	*lt;
	size_t		*dest, i, j, first = st->nsubs;
	char		 why[256];
	int		 r = 0, sel;

	lanes = xcalloc(st->nsubs, sizeof *lanes);
	dest = xcalloc(t->n + 1, sizeof *dest);
	for (i = 0; i < t->n; i++) {
		dest[i] = st->nsubs;
		for (j = 0; j < st->nsubs; j++) {
			why[0] = '\0';
			sel = when_selects(st->subs[j].when, t->rows[i], why,
			    sizeof why);
			if (sel < 0) {
				t->rows[i]->status = ST_FAILED;
				if (t->rows[i]->code == 0)
					t->rows[i]->code = 1;
				buf_printf(&t->rows[i]->err, "reops-run: "
				    "'when' of branch '%s' gave up: %s (it "
				    "backtracks too much; simplify it)\n",
				    st->subs[j].name, why);
				break;
			}
			if (sel) {
				dest[i] = j;
				break;
			}
		}
		if (dest[i] == st->nsubs)
			continue;
		if ((lt = lanes[dest[i]].t) == NULL) {
			lt = lanes[dest[i]].t = table_new();
			lt->pipeline = t->pipeline;
			for (j = 0; j < t->ncols; j++)
				add_column(lt, t->cols[j]);
		}
		if (lt->n == lt->cap) {
			lt->cap = lt->cap == 0 ? 16 : lt->cap * 2;
			lt->rows = xreallocarray(lt->rows, lt->cap,
			    sizeof *lt->rows);
		}
		lt->rows[lt->n++] = t->rows[i];
	}
	for (j = 0; j < st->nsubs; j++) {
		lanes[j].p = st->subs[j].p;
		if (lanes[j].t == NULL)
			continue;
		log_debug("%s:%d:%d: branch '%s' on %zu rows", st->owner->file,
		    st->where->line, st->where->col, st->subs[j].name,
		    lanes[j].t->n);
		if (first == st->nsubs || st->owner->kind == SEL_SYSTEMS)
			lanes[j].run = run;
		else
			lane_start(&lanes[j], run);
		if (first == st->nsubs)
			first = j;
	}
	/* The first here, beside the threads; on systems, each in turn. */
	for (j = 0; j < st->nsubs; j++)
		if (lanes[j].t != NULL && lanes[j].run == run)
			lanes[j].r = run_pipeline(run, lanes[j].p, lanes[j].t);
	for (j = 0; j < st->nsubs; j++) {
		if (lanes[j].t == NULL)
			continue;
		lane_end(&lanes[j], run);
		if (lanes[j].r != 0)
			r = -1;
	}
	merge(t, lanes, st->nsubs, dest);
	for (j = 0; j < st->nsubs; j++) {
		if (lanes[j].t != NULL)
			lanes[j].t->n = 0;	/* the rows are t's */
		table_free(lanes[j].t);
	}
	free(dest);
	free(lanes);
	return r;
}

const struct stage_entry stage_branch_entry = {
	.name = "branch",
	.usage = "branch: { NAME: { when: SELECTOR, stages: [STAGE, ...] }, "
	    "... }",
	.summary = "send each row down the first branch whose when selects "
	    "it, run the branches at once, merge the rows back in order",
	.keys = NULL,
	.flags = STAGE_TABLE,
	.arg_columns = branch_columns,
	.load = branch_load,
	.host = branch_rows,
	.system = branch_rows,
};
