/*
 * when.c: row selectors, for a stage's `when:` and a branch's; pick's
 * forms and all/any of them.
 */
#include <stdlib.h>
#include <string.h>

#include "when.h"

#define WHEN_DEPTH	16	/* all/any nesting */

static const char *const when_map_keys[] = { "status", "column", "match",
    "invert", "all", "any", NULL };

static const struct {
	const char	*name;
	int		 status;
} statuses[] = {
	{ "successful", ST_OK },
	{ "ok", ST_OK },
	{ "failed", ST_FAILED },
	{ "unreachable", ST_UNREACHABLE },
	{ "skipped", ST_SKIPPED },
	{ "any-status", -1 }
};

static int
parse_status(const struct node *n, const char *what, struct when *w,
    struct err *e)
{
	const char	*names[nitems(statuses)], *near;
	size_t		 i;

	if (n->type != NODE_SCALAR || node_is_null(n))
		return node_err(e, n, "%s: a status must be a word, not %s",
		    what, node_type_name(n));
	for (i = 0; i < nitems(statuses); i++) {
		if (strcmp(n->str, statuses[i].name) == 0) {
			if (statuses[i].status < 0)
				w->kind = WHEN_ANY_STATUS;
			else {
				w->kind = WHEN_STATUS;
				w->status = statuses[i].status;
			}
			return 0;
		}
		names[i] = statuses[i].name;
	}
	if ((near = closest_name(n->str, names, nitems(names))) != NULL)
		return node_err(e, n, "%s: unknown status '%s'; did you mean "
		    "'%s'?", what, n->str, near);
	return node_err(e, n, "%s: unknown status '%s'; expected successful, "
	    "failed, unreachable, skipped or any-status", what, n->str);
}

static int	parse(const struct node *, const char *, int, struct when **,
		    struct err *);

static int
parse_list(const struct node *n, const char *what, int depth,
    struct when *w, struct err *e)
{
	size_t	i;

	if (n->type != NODE_SEQ || n->nkids == 0)
		return node_err(e, n, "%s: '%s' takes a list of one or more "
		    "selectors", what, w->kind == WHEN_ALL ? "all" : "any");
	w->kids = xcalloc(n->nkids, sizeof *w->kids);
	for (i = 0; i < n->nkids; i++) {
		if (parse(n->kids[i], what, depth + 1, &w->kids[i], e) != 0)
			return -1;
		w->nkids++;
	}
	return 0;
}

static int
parse(const struct node *n, const char *what, int depth, struct when **out,
    struct err *e)
{
	const struct node	*status, *column, *match, *inv, *all, *any;
	struct when		*w;

	*out = w = xcalloc(1, sizeof *w);
	w->where = n;
	if (depth > WHEN_DEPTH)
		return node_err(e, n, "%s: selectors nest deeper than %d",
		    what, WHEN_DEPTH);
	if (n->type == NODE_SCALAR && !node_is_null(n))
		return parse_status(n, what, w, e);
	if (n->type != NODE_MAP)
		return node_err(e, n, "%s must be a status (successful, "
		    "failed, unreachable, skipped, any-status), { column, "
		    "match, invert }, { all: [...] } or { any: [...] }, not "
		    "%s", what, node_is_null(n) ? "nothing" :
		    node_type_name(n));
	if (node_check_keys(n, when_map_keys, what, e) != 0)
		return -1;
	status = node_get(n, "status");
	column = node_get(n, "column");
	match = node_get(n, "match");
	inv = node_get(n, "invert");
	all = node_get(n, "all");
	any = node_get(n, "any");
	if ((all != NULL) + (any != NULL) + (status != NULL) +
	    (column != NULL || match != NULL) != 1)
		return node_err(e, n, "%s takes one of: a status, 'column' "
		    "and 'match', 'all' or 'any'", what);
	if (inv != NULL && node_as_bool(inv, &w->invert) != 0)
		return node_err(e, inv, "%s: 'invert' must be true or false",
		    what);
	if (inv != NULL && column == NULL)
		return node_err(e, inv, "%s: 'invert' goes with 'column' and "
		    "'match'", what);
	if (all != NULL || any != NULL) {
		w->kind = all != NULL ? WHEN_ALL : WHEN_ANY;
		return parse_list(all != NULL ? all : any, what, depth, w, e);
	}
	if (status != NULL)
		return parse_status(status, what, w, e);
	if (column == NULL || match == NULL)
		return node_err(e, column != NULL ? column : match, "%s needs "
		    "both 'column' and 'match'", what);
	if (column->type != NODE_SCALAR || node_is_null(column) ||
	    column->str[0] == '\0')
		return node_err(e, column, "%s: 'column' must be a column "
		    "name", what);
	if (match->type != NODE_SCALAR)
		return node_err(e, match, "%s: 'match' must be a regex, not "
		    "a %s", what, node_type_name(match));
	w->kind = WHEN_COLUMN;
	w->column = column->str;
	w->pattern = match->str;
	return rx_compile(match, match->str, 0, &w->re, e);
}

int
when_parse(const struct node *n, const char *what, struct when **out,
    struct err *e)
{
	if (parse(n, what, 0, out, e) != 0) {
		when_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

void
when_free(struct when *w)
{
	size_t	i;

	if (w == NULL)
		return;
	for (i = 0; i < w->nkids; i++)
		when_free(w->kids[i]);
	free(w->kids);
	pcre2_code_free(w->re);
	free(w);
}

int
when_selects(const struct when *w, const struct row *r, char *why,
    size_t len)
{
	const char	*v;
	char		 num[ROW_NUM_LEN];
	size_t		 i, vlen = 0;
	int		 hit;

	if (w == NULL)
		return r->status == ST_OK;
	switch (w->kind) {
	case WHEN_STATUS:
		return (int)r->status == w->status;
	case WHEN_ANY_STATUS:
		return 1;
	case WHEN_COLUMN:
		v = row_value(r, w->column, num, &vlen);
		hit = rx_match(w->re, v != NULL ? v : "", vlen, why, len);
		if (hit < 0)
			return -1;
		return w->invert ? !hit : hit;
	case WHEN_ALL:
	case WHEN_ANY:
		for (i = 0; i < w->nkids; i++) {
			hit = when_selects(w->kids[i], r, why, len);
			if (hit < 0)
				return -1;
			if (w->kind == WHEN_ALL && !hit)
				return 0;
			if (w->kind == WHEN_ANY && hit)
				return 1;
		}
		return w->kind == WHEN_ALL;
	}
	return 0;
}

#define ALL_STATUSES	((1u << ST_OK) | (1u << ST_FAILED) | \
			    (1u << ST_UNREACHABLE) | (1u << ST_SKIPPED))

unsigned
when_statuses(const struct when *w)
{
	unsigned	m;
	size_t		i;

	if (w == NULL)
		return 1u << ST_OK;
	switch (w->kind) {
	case WHEN_STATUS:
		return 1u << w->status;
	case WHEN_ANY_STATUS:
	case WHEN_COLUMN:
		return ALL_STATUSES;
	case WHEN_ALL:
		m = ALL_STATUSES;
		for (i = 0; i < w->nkids; i++)
			m &= when_statuses(w->kids[i]);
		return m;
	case WHEN_ANY:
		m = 0;
		for (i = 0; i < w->nkids; i++)
			m |= when_statuses(w->kids[i]);
		return m;
	}
	return ALL_STATUSES;
}

static const char *
status_word(int status)
{
	switch (status) {
	case ST_OK:
		return "successful";
	case ST_FAILED:
		return "failed";
	case ST_UNREACHABLE:
		return "unreachable";
	default:
		return "skipped";
	}
}

void
when_describe(struct buf *b, const struct when *w)
{
	size_t	i;

	if (w == NULL) {
		buf_adds(b, "successful");
		return;
	}
	switch (w->kind) {
	case WHEN_STATUS:
		buf_adds(b, status_word(w->status));
		break;
	case WHEN_ANY_STATUS:
		buf_adds(b, "any-status");
		break;
	case WHEN_COLUMN:
		buf_printf(b, "%s %s '%s'", w->column, w->invert ? "!~" : "=~",
		    w->pattern);
		break;
	case WHEN_ALL:
	case WHEN_ANY:
		buf_adds(b, w->kind == WHEN_ALL ? "all(" : "any(");
		for (i = 0; i < w->nkids; i++) {
			if (i > 0)
				buf_adds(b, ", ");
			when_describe(b, w->kids[i]);
		}
		buf_addc(b, ')');
		break;
	}
}

void
when_columns(const struct when *w, void (*fn)(void *, const char *,
    const struct node *), void *arg)
{
	size_t	i;

	if (w == NULL)
		return;
	if (w->kind == WHEN_COLUMN)
		fn(arg, w->column, w->where);
	for (i = 0; i < w->nkids; i++)
		when_columns(w->kids[i], fn, arg);
}
