/*
 * table.c: rows, their fixed and extra columns, and filtering in place.
 */
#include <stdlib.h>
#include <string.h>

#include "table.h"

static const char *const fixed_columns[] = {
	"target", "kind", "group", "status", "code", "stdout", "stderr",
	"duration_ms"
};

struct table *
table_new(void)
{
	return xcalloc(1, sizeof(struct table));
}

static void
row_free(struct row *r)
{
	size_t	i;

	free(r->target);
	free(r->group);
	buf_free(&r->out);
	buf_free(&r->err);
	for (i = 0; i < r->ncols; i++) {
		free(r->cols[i].name);
		buf_free(&r->cols[i].value);
	}
	free(r->cols);
	free(r);
}

void
table_free(struct table *t)
{
	size_t	i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		row_free(t->rows[i]);
	free(t->rows);
	for (i = 0; i < t->ncols; i++)
		free(t->cols[i]);
	free(t->cols);
	free(t);
}

struct row *
table_add(struct table *t, const char *target, enum row_kind kind,
    const char *group)
{
	struct row	*r;

	if (t->n == t->cap) {
		t->cap = t->cap == 0 ? 16 : t->cap * 2;
		t->rows = xreallocarray(t->rows, t->cap, sizeof *t->rows);
	}
	r = xcalloc(1, sizeof *r);
	r->target = xstrdup(target);
	r->kind = kind;
	r->group = xstrdup(group != NULL ? group : "");
	r->status = ST_OK;
	buf_init(&r->out);
	buf_init(&r->err);
	t->rows[t->n++] = r;
	return r;
}

/* Keeps the rows whose keep[] is set, in order, and frees the others. */
void
table_keep(struct table *t, const unsigned char *keep)
{
	size_t	i, j = 0;

	for (i = 0; i < t->n; i++) {
		if (keep[i])
			t->rows[j++] = t->rows[i];
		else
			row_free(t->rows[i]);
	}
	t->n = j;
}

int
column_is_fixed(const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(fixed_columns); i++)
		if (strcmp(fixed_columns[i], name) == 0)
			return 1;
	return 0;
}

void
row_set(struct table *t, struct row *r, const char *name, const void *p,
    size_t len)
{
	size_t	i;

	for (i = 0; i < r->ncols; i++) {
		if (strcmp(r->cols[i].name, name) == 0) {
			buf_reset(&r->cols[i].value);
			buf_add(&r->cols[i].value, p, len);
			return;
		}
	}
	for (i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i], name) == 0)
			break;
	if (i == t->ncols) {
		t->cols = xgrow(t->cols, t->ncols,
		    sizeof *t->cols);
		t->cols[t->ncols++] = xstrdup(name);
	}
	r->cols = xgrow(r->cols, r->ncols, sizeof *r->cols);
	r->cols[r->ncols].name = xstrdup(name);
	buf_init(&r->cols[r->ncols].value);
	buf_add(&r->cols[r->ncols].value, p, len);
	r->ncols++;
}

void
row_sets(struct table *t, struct row *r, const char *name, const char *s)
{
	row_set(t, r, name, s, strlen(s));
}

const struct buf *
row_get(const struct row *r, const char *name)
{
	size_t	i;

	for (i = 0; i < r->ncols; i++)
		if (strcmp(r->cols[i].name, name) == 0)
			return &r->cols[i].value;
	return NULL;
}

/*
 * Any column, fixed or extra, as bytes; numbers are formatted into the
 * caller's num, so that threads and two values held at once never share
 * a buffer. An absent column reads as NULL.
 */
const char *
row_value(const struct row *r, const char *name, char num[ROW_NUM_LEN],
    size_t *len)
{
	const struct buf	*b;
	const char		*s = NULL;

	if (strcmp(name, "target") == 0)
		s = r->target;
	else if (strcmp(name, "kind") == 0)
		s = kind_name(r->kind);
	else if (strcmp(name, "group") == 0)
		s = r->group;
	else if (strcmp(name, "status") == 0)
		s = status_name(r->status);
	else if (strcmp(name, "code") == 0) {
		snprintf(num, ROW_NUM_LEN, "%d", r->code);
		s = num;
	} else if (strcmp(name, "duration_ms") == 0) {
		snprintf(num, ROW_NUM_LEN, "%lld", r->duration_ms);
		s = num;
	} else if (strcmp(name, "stdout") == 0 || strcmp(name, "stderr") == 0) {
		b = name[3] == 'o' ? &r->out : &r->err;
		*len = b->len;
		return b->data != NULL ? b->data : "";
	} else if ((b = row_get(r, name)) != NULL) {
		*len = b->len;
		return b->data != NULL ? b->data : "";
	}
	if (s != NULL)
		*len = strlen(s);
	return s;
}

const char *
status_name(enum row_status s)
{
	switch (s) {
	case ST_OK:
		return "ok";
	case ST_FAILED:
		return "failed";
	case ST_UNREACHABLE:
		return "unreachable";
	case ST_SKIPPED:
		return "skipped";
	}
	return "?";
}

const char *
kind_name(enum row_kind k)
{
	return k == ROW_HOST ? "host" : "system";
}
