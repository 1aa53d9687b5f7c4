/*
 * stage-pick.c: "pick" keeps the rows that match and drops the others, so
 * the next stage runs only on what was kept (re-mote's pick).
 */
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "rx.h"

static const struct stage_key pick_keys[] = {
	{ "status", ARG_STRING, 0 },
	{ "column", ARG_STRING, 0 },
	{ "match", ARG_STRING, 0 },
	{ "invert", ARG_BOOL, 0 },
	{ NULL, 0, 0 }
};

struct pick {
	int		 status;	/* -1: by column */
	const char	*column;
	const char	*pattern;
	pcre2_code	*re;
	int		 invert;
};

static int
pick_prepare(struct stage *st, struct err *e)
{
	static const char *const statuses[] = { "successful", "failed",
	    "unreachable", "skipped" };
	const struct node	*status, *column, *match;
	const char		*near;
	struct pick		*pk;

	status = stage_arg(st, "status");
	column = stage_arg(st, "column");
	match = stage_arg(st, "match");
	if (status != NULL && (column != NULL || match != NULL))
		return node_err(e, column != NULL ? column : match, "stage "
		    "'pick' takes a status or a column and match, not both");
	if (status == NULL && (column == NULL || match == NULL))
		return node_err(e, column != NULL ? column : match != NULL ?
		    match : st->where, "stage 'pick' needs a status "
		    "(successful, failed, unreachable) or both 'column' and "
		    "'match'");
	pk = xcalloc(1, sizeof *pk);
	pk->status = -1;
	pk->invert = stage_bool(st, "invert", 0);
	st->data = pk;
	if (status != NULL) {
		if (strcmp(status->str, "successful") == 0 ||
		    strcmp(status->str, "ok") == 0)
			pk->status = ST_OK;
		else if (strcmp(status->str, "failed") == 0)
			pk->status = ST_FAILED;
		else if (strcmp(status->str, "unreachable") == 0)
			pk->status = ST_UNREACHABLE;
		else if (strcmp(status->str, "skipped") == 0)
			pk->status = ST_SKIPPED;
		else if ((near = closest_name(status->str, statuses,
		    nitems(statuses))) != NULL)
			return node_err(e, status, "unknown status '%s' for "
			    "stage 'pick'; did you mean '%s'?", status->str,
			    near);
		else
			return node_err(e, status, "unknown status '%s' for "
			    "stage 'pick'; expected successful, failed, "
			    "unreachable or skipped", status->str);
		return 0;
	}
	pk->column = column->str;
	pk->pattern = match->str;
	return rx_compile(match, match->str, 0, &pk->re, e);
}

/* By column: that column, checked at load like a 'when' selector's. */
static void
pick_reads(const struct stage *st, void (*fn)(void *, const char *,
    const struct node *), void *arg)
{
	const struct pick	*pk = st->data;
	const struct node	*column;

	if (pk != NULL && pk->status < 0 &&
	    (column = stage_arg(st, "column")) != NULL)
		fn(arg, column->str, column);
}

static void
pick_cleanup(struct stage *st)
{
	struct pick	*pk = st->data;

	if (pk == NULL)
		return;
	pcre2_code_free(pk->re);
	free(pk);
	st->data = NULL;
}

static void
fail_row(struct row *r, const struct pick *pk, const char *why)
{
	r->status = ST_FAILED;
	if (r->code == 0)
		r->code = 1;
	buf_printf(&r->err, "reops-run: pick: regex '%s' gave up on column "
	    "'%s': %s (it backtracks too much; simplify it)\n", pk->pattern,
	    pk->column, why);
}

/* By status, the rows it passes on have that status (or, inverted, not). */
static unsigned
pick_keeps(const struct stage *st)
{
	const struct pick	*pk = st->data;
	unsigned		 all = (1u << ST_OK) | (1u << ST_FAILED) |
				    (1u << ST_UNREACHABLE) | (1u << ST_SKIPPED);

	if (pk == NULL || pk->status < 0)
		return all;
	return pk->invert ? all & ~(1u << pk->status) : 1u << pk->status;
}

static int
pick_rows(struct run *run, struct stage *st, struct table *t)
{
	struct pick	*pk = st->data;
	unsigned char	*keep;
	const char	*v;
	char		 num[ROW_NUM_LEN];
	char		 why[128];
	size_t		 i, len;
	int		 hit;

	keep = xcalloc(t->n + 1, 1);
	for (i = 0; i < t->n; i++) {
		if (pk->status >= 0)
			hit = (int)t->rows[i]->status == pk->status;
		else {
			len = 0;
			v = row_value(t->rows[i], pk->column, num, &len);
			hit = rx_match(pk->re, v != NULL ? v : "", len, why,
			    sizeof why);
		}
		if (hit < 0) {
			/* Neither kept as a match nor dropped as none. */
			fail_row(t->rows[i], pk, why);
			keep[i] = 1;
			continue;
		}
		keep[i] = pk->invert ? !hit : hit;
	}
	table_keep(t, keep);
	free(keep);
	return 0;
}

const struct stage_entry stage_pick_entry = {
	.name = "pick",
	.usage = "pick: successful | failed | unreachable | skipped | "
	    "{ column: NAME, match: REGEX, invert: BOOL }",
	.summary = "keep the rows that match, drop the rest",
	.shorthand = "status",
	.keys = pick_keys,
	.flags = STAGE_TABLE,
	.prepare = pick_prepare,
	.cleanup = pick_cleanup,
	.keeps = pick_keeps,
	.arg_reads = pick_reads,
	.host = pick_rows,
	.system = pick_rows,
};
