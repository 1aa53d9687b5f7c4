/*
 * stage-parse.c: "parse" matches a PCRE2 pattern against one column of
 * each row and stores every named group as an extra column, so that the
 * numbers a command printed become columns that pick, json and pretty
 * use. It runs in the runner, on the rows its 'when:' selects (the ok
 * rows by default); the others pass through untouched. Columns are bytes with a
 * length, NULs included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "rx.h"


static const struct stage_key parse_keys[] = {
	{ "column", ARG_STRING, 0 },
	{ "regex", ARG_STRING, 1 },
	{ "all", ARG_BOOL, 0 },
	{ "optional", ARG_BOOL, 0 },
	{ NULL, 0, 0 }
};

struct pgroup {
	char		*name;
	uint32_t	*nums;		/* the group numbers of this name */
	size_t		 nnums;
};

struct parse {
	const char	*column;
	const char	*regex;
	pcre2_code	*re;
	struct pgroup	*groups;	/* distinct names, in pattern order */
	size_t		 ngroups;
	int		 all;
	int		 optional;
};

static struct pgroup *
group_get(struct parse *ps, const char *name)
{
	size_t	i;

	for (i = 0; i < ps->ngroups; i++)
		if (strcmp(ps->groups[i].name, name) == 0)
			return &ps->groups[i];
	ps->groups = xgrow(ps->groups, ps->ngroups, sizeof *ps->groups);
	ps->groups[ps->ngroups].name = xstrdup(name);
	ps->groups[ps->ngroups].nums = NULL;
	ps->groups[ps->ngroups].nnums = 0;
	return &ps->groups[ps->ngroups++];
}

static int
group_cmp(const void *a, const void *b)
{
	const struct pgroup	*ga = a, *gb = b;

	return ga->nums[0] < gb->nums[0] ? -1 : ga->nums[0] > gb->nums[0];
}

/* The named groups of the pattern; (?J) lets one name have several. */
static int
parse_groups(struct parse *ps, const struct node *regex, struct err *e)
{
	PCRE2_SPTR	 table;
	uint32_t	 count, size, i, num;
	struct pgroup	*g;
	const char	*name;

	pcre2_pattern_info(ps->re, PCRE2_INFO_NAMECOUNT, &count);
	pcre2_pattern_info(ps->re, PCRE2_INFO_NAMEENTRYSIZE, &size);
	pcre2_pattern_info(ps->re, PCRE2_INFO_NAMETABLE, &table);
	if (count == 0)
		return node_err(e, regex, "regex '%s' of stage 'parse' has no "
		    "named group; name what it captures, as in "
		    "'(?<load1>[0-9.]+)'", regex->str);
	for (i = 0; i < count; i++) {
		num = ((uint32_t)table[i * size] << 8) |
		    table[i * size + 1];
		name = (const char *)table + i * size + 2;
		if (column_is_fixed(name))
			return node_err(e, regex, "group '%s' of stage 'parse' "
			    "names a fixed column; choose another name", name);
		g = group_get(ps, name);
		g->nums = xgrow(g->nums, g->nnums, sizeof *g->nums);
		g->nums[g->nnums++] = num;
	}
	/* The name table is sorted by name; columns come in pattern order. */
	qsort(ps->groups, ps->ngroups, sizeof *ps->groups, group_cmp);
	return 0;
}

static int
parse_prepare(struct stage *st, struct err *e)
{
	const struct node	*regex;
	struct parse		*ps;

	regex = stage_arg(st, "regex");
	ps = xcalloc(1, sizeof *ps);
	st->data = ps;
	ps->column = stage_str(st, "column", "stdout");
	ps->regex = regex->str;
	ps->all = stage_bool(st, "all", 0);
	ps->optional = stage_bool(st, "optional", 0);
	if (rx_compile(regex, regex->str, 0, &ps->re, e) != 0)
		return -1;
	return parse_groups(ps, regex, e);
}

static void
parse_cleanup(struct stage *st)
{
	struct parse	*ps = st->data;
	size_t		 i;

	if (ps == NULL)
		return;
	for (i = 0; i < ps->ngroups; i++) {
		free(ps->groups[i].name);
		free(ps->groups[i].nums);
	}
	free(ps->groups);
	pcre2_code_free(ps->re);
	free(ps);
	st->data = NULL;
}

/* Appends group g of the match in md: the first of its numbers that is set. */
static void
add_group(struct buf *b, const struct pgroup *g, pcre2_match_data *md,
    const char *s)
{
	PCRE2_SIZE	*ov = pcre2_get_ovector_pointer(md);
	uint32_t	 n = pcre2_get_ovector_count(md);
	size_t		 i;

	for (i = 0; i < g->nnums; i++) {
		if (g->nums[i] >= n || ov[2 * g->nums[i]] == PCRE2_UNSET)
			continue;
		buf_add(b, s + ov[2 * g->nums[i]],
		    ov[2 * g->nums[i] + 1] - ov[2 * g->nums[i]]);
		return;
	}
}

/*
 * Matches the row's column; 1 when it matched, 0 when not, -1 when PCRE2
 * gave up (its reason in why). vals[i] holds group i's value(s).
 */
static int
parse_match(const struct parse *ps, const char *s, size_t len,
    struct buf *vals, char *why, size_t whylen)
{
	pcre2_match_context	*mc;
	pcre2_match_data	*md;
	PCRE2_SIZE		*ov;
	size_t			 at = 0, i, nmatch = 0;
	int			 r;

	mc = pcre2_match_context_create(NULL);
	md = pcre2_match_data_create_from_pattern(ps->re, NULL);
	if (mc == NULL || md == NULL) {
		pcre2_match_data_free(md);
		pcre2_match_context_free(mc);
		pcre2_get_error_message(PCRE2_ERROR_NOMEMORY,
		    (PCRE2_UCHAR *)why, whylen);
		return -1;
	}
	pcre2_set_match_limit(mc, RX_MATCH_LIMIT);
	pcre2_set_depth_limit(mc, RX_DEPTH_LIMIT);
	for (;;) {
		r = pcre2_match(ps->re, (PCRE2_SPTR)s, len, at, 0, md, mc);
		if (r < 0)
			break;
		for (i = 0; i < ps->ngroups; i++) {
			if (nmatch > 0)
				buf_addc(&vals[i], '\n');
			add_group(&vals[i], &ps->groups[i], md, s);
		}
		nmatch++;
		ov = pcre2_get_ovector_pointer(md);
		if (!ps->all || ov[1] >= len)
			break;
		if (ov[1] > ov[0])
			at = ov[1];
		else {
			/* An empty match: step over one UTF-8 character. */
			at = ov[1] + 1;
			while (at < len && ((unsigned char)s[at] & 0xc0) ==
			    0x80)
				at++;
		}
	}
	pcre2_match_data_free(md);
	pcre2_match_context_free(mc);
	if (r < 0 && r != PCRE2_ERROR_NOMATCH) {
		if (pcre2_get_error_message(r, (PCRE2_UCHAR *)why, whylen) < 0)
			snprintf(why, whylen, "PCRE2 error %d", r);
		return -1;
	}
	return nmatch > 0;
}

static int
parse_rows(struct run *run, struct stage *st, struct table *t)
{
	struct parse	*ps = st->data;
	struct buf	*vals;
	struct row	*r;
	const char	*v;
	char		 num[ROW_NUM_LEN], why[256];
	size_t		 i, j, len;
	int		 m;

	(void)run;
	vals = xcalloc(ps->ngroups, sizeof *vals);
	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		for (j = 0; j < ps->ngroups; j++)
			buf_reset(&vals[j]);
		len = 0;
		v = row_value(r, ps->column, num, &len);
		m = parse_match(ps, v != NULL ? v : "", len, vals, why,
		    sizeof why);
		if (m < 0) {
			r->status = ST_FAILED;
			buf_printf(&r->err, "parse: cannot match '%s' in %s: "
			    "%s\n", ps->regex, ps->column, why);
		} else if (m == 0 && !ps->optional) {
			r->status = ST_FAILED;
			buf_printf(&r->err, "parse: no match for '%s' in %s\n",
			    ps->regex, ps->column);
		}
		/* Every column is set, so each row has the table's shape. */
		for (j = 0; j < ps->ngroups; j++)
			row_set(t, r, ps->groups[j].name,
			    vals[j].data != NULL ? vals[j].data : "",
			    vals[j].len);
	}
	for (j = 0; j < ps->ngroups; j++)
		buf_free(&vals[j]);
	free(vals);
	return 0;
}

/* The regex's named groups are the columns parse adds. */
static void
parse_columns(const struct stage *st, void (*add)(void *, const char *),
    void *arg)
{
	const struct parse	*ps = st->data;
	size_t			 i;

	for (i = 0; ps != NULL && i < ps->ngroups; i++)
		add(arg, ps->groups[i].name);
}

/* The column it reads, checked at load like pick's (stdout by default). */
static void
parse_reads(const struct stage *st, void (*fn)(void *, const char *,
    const struct node *), void *arg)
{
	const struct node	*column;

	if ((column = stage_arg(st, "column")) != NULL && column->str != NULL)
		fn(arg, column->str, column);
}

const struct stage_entry stage_parse_entry = {
	.name = "parse",
	.usage = "parse: { column: NAME, regex: REGEX, all: BOOL, "
	    "optional: BOOL }",
	.summary = "named groups of a regex over a column as new columns",
	.shorthand = "regex",
	.keys = parse_keys,
	.arg_columns = parse_columns,
	.arg_reads = parse_reads,
	.prepare = parse_prepare,
	.cleanup = parse_cleanup,
	.host = parse_rows,
	.system = parse_rows,
};
