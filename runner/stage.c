/*
 * stage.c: the table of builtin stages (from stages.def), looked up by
 * exact name; the calls of their load-time and run-time hooks; and the
 * helpers stages use to read their checked arguments.
 */
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "run.h"
#include "stage.h"
#include "when.h"

#define STAGE(name)	extern const struct stage_entry stage_##name##_entry;
#include "stages.def"
#undef STAGE

const struct stage_entry *const stage_table[] = {
#define STAGE(name)	&stage_##name##_entry,
#include "stages.def"
#undef STAGE
};
const size_t stage_count = nitems(stage_table);

const struct stage_entry *
stage_find(const char *name)
{
	size_t	i;

	for (i = 0; i < stage_count; i++)
		if (strcmp(stage_table[i]->name, name) == 0)
			return stage_table[i];
	return NULL;
}

/* A new, empty sub-pipeline slot of st; name is a branch's, or NULL. */
struct stage_sub *
stage_add_sub(struct stage *st, const char *name)
{
	struct stage_sub	*sub;

	st->subs = xgrow(st->subs, st->nsubs, sizeof *st->subs);
	sub = &st->subs[st->nsubs++];
	memset(sub, 0, sizeof *sub);
	sub->name = name;
	return sub;
}

/*
 * Whether st runs on r: 1 when its 'when:' selects r; without one, when r
 * is ok (an output stage: every row). -1 when a regex gave up on r: why
 * says so, and the caller fails the row. The one place the rule lives.
 */
int
stage_selects(const struct stage *st, const struct row *r, char *why,
    size_t len)
{
	if (st->when == NULL && (st->entry->flags & STAGE_OUTPUT))
		return 1;
	return when_selects(st->when, r, why, len);
}

/* Every stage's preload, in file order, includes' stages included. */
int
stages_preload(struct run *run, const struct pipeline *p,
    const struct target *t, size_t n, struct err *e)
{
	const struct stage	*st;
	size_t			 i, j;

	for (i = 0; i < p->nstages; i++) {
		st = &p->stages[i];
		if (st->entry->preload != NULL &&
		    st->entry->preload(run, p, st, t, n, e) != 0)
			return -1;
		for (j = 0; j < st->nsubs; j++)
			if (stages_preload(run, st->subs[j].p, t, n, e) != 0)
				return -1;
	}
	return 0;
}

void
stages_free_run(struct run *run)
{
	size_t	i;

	for (i = 0; i < stage_count; i++)
		if (stage_table[i]->free_run != NULL)
			stage_table[i]->free_run(run);
}

/* The columns a stage adds: its entry's, then those its args make. */
void
stage_columns(const struct stage *st, void (*add)(void *, const char *),
    void *arg)
{
	const char *const	*c;

	for (c = st->entry->columns; c != NULL && *c != NULL; c++)
		add(arg, *c);
	if (st->entry->arg_columns != NULL)
		st->entry->arg_columns(st, add, arg);
}

/* The columns a stage's arguments read, each with where it is named. */
void
stage_reads(const struct stage *st, void (*fn)(void *, const char *,
    const struct node *), void *arg)
{
	if (st->entry->arg_reads != NULL)
		st->entry->arg_reads(st, fn, arg);
}

const struct node *
stage_arg(const struct stage *st, const char *key)
{
	return node_get(st->args, key);
}

const char *
stage_str(const struct stage *st, const char *key, const char *def)
{
	const struct node	*v;

	if ((v = stage_arg(st, key)) == NULL || v->type != NODE_SCALAR)
		return def;
	return v->str;
}

long long
stage_int(const struct stage *st, const char *key, long long def)
{
	const struct node	*v;
	long long		 n;

	if ((v = stage_arg(st, key)) == NULL || node_as_int(v, &n) != 0)
		return def;
	return n;
}

int
stage_bool(const struct stage *st, const char *key, int def)
{
	const struct node	*v;
	int			 b;

	if ((v = stage_arg(st, key)) == NULL || node_as_bool(v, &b) != 0)
		return def;
	return b;
}

/* Where a row value may not go: NULL, or why not. */
static const char *
row_value_refused(const char *v, size_t len, enum expand_mode mode)
{
	if (memchr(v, '\0', len) != NULL)
		return "holds a NUL byte, which no argument can";
	if (mode != EXPAND_PATH)
		return NULL;
	if (len == 0)
		return "is empty";
	if ((len == 1 && v[0] == '.') || (len == 2 && memcmp(v, "..", 2) == 0))
		return len == 1 ? "is '.'" : "is '..'";
	if (memchr(v, '/', len) != NULL)
		return "contains '/'";
	return NULL;
}

/*
 * ${target}, ${group} and ${row.COLUMN} of a row; $${ stands for a
 * literal ${. A row value comes from a host: mode says how it may go in
 * (see enum expand_mode). 0, or -1 with the reason in why (when not
 * NULL): the row then fails, and b holds a part of the text.
 */
int
expand_row(struct buf *b, const char *s, const struct row *r,
    enum expand_mode mode, struct buf *why)
{
	char		 num[ROW_NUM_LEN], *name, *word;
	const char	*v, *end, *no;
	size_t		 len, nlen;

	while (*s != '\0') {
		if (strncmp(s, "$${", 3) == 0) {
			buf_adds(b, "${");
			s += 3;
		} else if (strncmp(s, "${target}", 9) == 0) {
			buf_adds(b, r->target);
			s += 9;
		} else if (strncmp(s, "${group}", 8) == 0) {
			buf_adds(b, r->group);
			s += 8;
		} else if (strncmp(s, "${row.", 6) == 0 &&
		    (end = strchr(s + 6, '}')) != NULL) {
			nlen = (size_t)(end - s - 6);
			name = xstrndup(s + 6, nlen);
			/* A column no earlier stage filled on this row: "". */
			if ((v = row_value(r, name, num, &len)) == NULL) {
				v = "";
				len = 0;
			}
			if (len > 0 && v[len - 1] == '\n')
				len--;
			if ((no = row_value_refused(v, len, mode)) != NULL) {
				if (why != NULL)
					buf_printf(why, "'${row.%s}' %s%s",
					    name, no, mode == EXPAND_PATH ?
					    "; a row value in a local path "
					    "must be one file name" : "");
				free(name);
				return -1;
			}
			if (mode == EXPAND_SHELL) {
				word = xstrndup(v, len);
				shell_quote(b, word);
				free(word);
			} else
				buf_add(b, v, len);
			free(name);
			s = end + 1;
		} else
			buf_addc(b, *s++);
	}
	return 0;
}

/* Whether a checked argument holds a ${row.COLUMN}, not $${row. */
int
has_row_value(const char *s)
{
	for (; *s != '\0'; s++) {
		if (strncmp(s, "$${", 3) == 0)
			s += 2;
		else if (strncmp(s, "${row.", 6) == 0)
			return 1;
	}
	return 0;
}

/* What the progress line and -v call a stage: its 'name:', else its kind. */
const char *
stage_name(const struct stage *st)
{
	return st->name != NULL ? st->name : st->entry->name;
}

/*
 * "ls path=/ flags=-la", for --check; with a 'name:',
 * "list the root: ls path=/".
 */
void
stage_describe(struct buf *b, const struct stage *st)
{
	const struct node	*v;
	size_t			 i, j;

	if (st->name != NULL)
		buf_printf(b, "%s: ", st->name);
	buf_adds(b, st->entry->name);
	if (st->args == NULL)
		return;
	for (i = 0; i < map_nkeys(st->args); i++) {
		v = map_val(st->args, i);
		buf_printf(b, " %s=", map_key(st->args, i)->str);
		if (v->type == NODE_SCALAR)
			buf_adds(b, v->str);
		else if (v->type == NODE_SEQ) {
			for (j = 0; j < v->nkids; j++)
				buf_printf(b, "%s%s", j ? "," : "",
				    v->kids[j]->type == NODE_SCALAR ?
				    v->kids[j]->str : "...");
		} else
			buf_adds(b, "{...}");
	}
}
