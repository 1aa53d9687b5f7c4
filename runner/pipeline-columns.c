/*
 * pipeline-columns.c: the columns that can exist at each point of a
 * loaded pipeline, and the check that what reads a row's columns there
 * (${row.COLUMN}, 'when', a stage's arg_reads such as pick's column)
 * names one of them.
 */
#include <stdlib.h>
#include <string.h>

#include "pipeline-int.h"
#include "virt.h"
#include "when.h"

/* The columns every row has: what the runner fills, and a system's. */
static const char *const fixed_columns[] = { "target", "kind", "group",
    "status", "code", "stdout", "stderr", "duration_ms", NULL };

void
columns_fixed(struct columns *c, int kind)
{
	const char *const	*n;

	memset(c, 0, sizeof *c);
	for (n = fixed_columns; *n != NULL; n++)
		columns_add(c, *n);
	if (kind == SEL_SYSTEMS)
		for (n = virt_columns; *n != NULL; n++)
			columns_add(c, *n);
}

int
columns_has(const struct columns *c, const char *name)
{
	size_t	i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->names[i], name) == 0)
			return 1;
	return 0;
}

/* name must live as long as c (a stage table's, or a loaded file's). */
void
columns_add(struct columns *c, const char *name)
{
	if (columns_has(c, name))
		return;
	c->names = xgrow(c->names, c->n, sizeof *c->names);
	c->names[c->n++] = name;
}

void
columns_copy(struct columns *to, const struct columns *from)
{
	size_t	i;

	memset(to, 0, sizeof *to);
	for (i = 0; i < from->n; i++)
		columns_add(to, from->names[i]);
}

void
columns_free(struct columns *c)
{
	free(c->names);
	memset(c, 0, sizeof *c);
}

static void
add_column(void *arg, const char *name)
{
	columns_add(arg, name);
}

struct later {
	const char	*want;
	int		 found;
};

static void
find_column(void *arg, const char *name)
{
	struct later	*l = arg;

	if (strcmp(l->want, name) == 0)
		l->found = 1;
}

/*
 * The error for a column that cannot exist at stage at of p: what names
 * the place ("'${row.x}'", "'when'"); a later stage that adds it, else
 * the nearest name, else all the names, says what to do.
 */
static int
unknown_column(const struct pipeline *p, size_t at, const char *name,
    const char *what, int rowform, const char *file, int line, int col,
    const struct columns *c, struct err *e)
{
	const struct stage	*st;
	struct later		 l;
	struct buf		 all;
	const char		*near;
	size_t			 i;
	int			 r;

	l.want = name;
	for (i = at + 1; i < p->nstages; i++) {
		st = &p->stages[i];
		l.found = 0;
		stage_columns(st, find_column, &l);
		if (l.found)
			return err_at(e, file, line, col, "column '%s' of %s "
			    "does not exist yet: stage '%s' at line %d adds it, "
			    "after this one", name, what, stage_name(st),
			    st->where->line);
	}
	if ((near = closest_name(name, c->names, c->n)) != NULL)
		return err_at(e, file, line, col, "unknown column '%s' in "
		    "%s; did you mean '%s%s%s'?", name, what, rowform ?
		    "${row." : "", near, rowform ? "}" : "");
	buf_init(&all);
	for (i = 0; i < c->n; i++)
		buf_printf(&all, "%s%s", i ? ", " : "", c->names[i]);
	r = err_at(e, file, line, col, "unknown column '%s' in %s; the "
	    "columns here are %s", name, what, all.data);
	buf_free(&all);
	return r;
}

static int
unknown_row_value(const struct pipeline *p, size_t at,
    const struct rowref *ref, const struct columns *c, struct err *e)
{
	char	*what;
	int	 r;

	what = xasprintf("'${row.%s}'", ref->column);
	r = unknown_column(p, at, ref->column, what, 1, ref->file, ref->line,
	    ref->col, c, e);
	free(what);
	return r;
}

/*
 * when_columns' and stage_reads' callback: the first column read that is
 * not there.
 */
struct missing {
	const struct columns	*c;
	const char		*name;
	const struct node	*where;
};

static void
note_missing(void *arg, const char *name, const struct node *where)
{
	struct missing	*m = arg;

	if (m->name == NULL && !columns_has(m->c, name)) {
		m->name = name;
		m->where = where;
	}
}

static int
check_when(const struct pipeline *p, size_t at, const struct when *w,
    const struct columns *c, struct err *e)
{
	struct missing		 m = { c, NULL, NULL };
	const struct node	*n;

	when_columns(w, note_missing, &m);
	if (m.name == NULL)
		return 0;
	/* At the column's own value, when the selector has one. */
	n = m.where;
	if (n != NULL && n->type == NODE_MAP && node_get(n, "column") != NULL)
		n = node_get(n, "column");
	return unknown_column(p, at, m.name, "'when'", 0, n->file, n->line,
	    n->col, c, e);
}

/* The columns stage at's arguments read (pick's column), as a 'when'. */
static int
check_reads(const struct pipeline *p, size_t at, const struct columns *c,
    struct err *e)
{
	const struct stage	*st = &p->stages[at];
	struct missing		 m = { c, NULL, NULL };
	char			*what;
	int			 r;

	stage_reads(st, note_missing, &m);
	if (m.name == NULL)
		return 0;
	what = xasprintf("'%s'", st->entry->name);
	r = unknown_column(p, at, m.name, what, 0, m.where->file,
	    m.where->line, m.where->col, c, e);
	free(what);
	return r;
}

/*
 * Every ${row.COLUMN}, and every column a 'when' or a stage's arguments
 * read (pick's), names a column that can exist when its stage runs: one
 * of c, which holds the columns at the pipeline's start, or one an
 * earlier stage adds. A stage's sub-pipelines (an include, each branch)
 * start with the columns at that stage, and after it come all that any
 * of them adds. On return c holds the columns at the pipeline's end.
 */
int
pipeline_check_rows(const struct pipeline *p, struct columns *c,
    struct err *e)
{
	const struct stage	*st;
	struct columns		 in, added;
	size_t			 i, j, k;
	int			 r = 0;

	for (i = 0; i < p->nstages; i++) {
		st = &p->stages[i];
		if (check_when(p, i, st->when, c, e) != 0 ||
		    check_reads(p, i, c, e) != 0)
			return -1;
		for (j = 0; j < st->nrowrefs; j++)
			if (!columns_has(c, st->rowrefs[j].column))
				return unknown_row_value(p, i, &st->rowrefs[j],
				    c, e);
		memset(&added, 0, sizeof added);
		for (j = 0; j < st->nsubs && r == 0; j++) {
			if ((r = check_when(p, i, st->subs[j].when, c, e)) != 0)
				break;
			columns_copy(&in, c);
			r = pipeline_check_rows(st->subs[j].p, &in, e);
			for (k = 0; k < in.n; k++)
				columns_add(&added, in.names[k]);
			columns_free(&in);
		}
		for (k = 0; k < added.n; k++)
			columns_add(c, added.names[k]);
		columns_free(&added);
		if (r != 0)
			return -1;
		stage_columns(st, add_column, c);
	}
	return 0;
}
