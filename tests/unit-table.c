/*
 * unit-table.c: the result table: rows, extra columns in first-seen
 * order, binary-safe values, and table_keep; expand_row's three ways of
 * putting a row value in.
 */
#include <stdlib.h>
#include <string.h>

#include "stage.h"
#include "table.h"
#include "tap.h"

static void
test_add(void)
{
	struct table	*t = table_new();
	struct row	*r;
	size_t		 i, len;
	char		 name[32], num[ROW_NUM_LEN];

	r = table_add(t, "web-1", ROW_HOST, "web");
	is_str(r->target, "web-1", "table_add keeps the target");
	is_str(r->group, "web", "table_add keeps the group");
	ok(r->status == ST_OK && r->code == 0 && r->out.len == 0 &&
	    r->err.len == 0, "a new row is ok with empty output");
	r = table_add(t, "demo-1", ROW_SYSTEM, NULL);
	is_str(r->group, "", "a NULL group reads as empty");
	is_str(row_value(r, "kind", num, &len), "system", "kind of a system row");
	ok(len == 6, "row_value gives the length");
	/* Past the first growth of the row array (16). */
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "h-%zu", i);
		table_add(t, name, ROW_HOST, "g");
	}
	ok(t->n == 102, "102 rows after 102 adds");
	is_str(t->rows[0]->target, "web-1", "rows keep their order (first)");
	is_str(t->rows[101]->target, "h-99", "rows keep their order (last)");
	table_free(t);
}

static void
test_columns(void)
{
	struct table		*t = table_new();
	struct row		*a, *b;
	const struct buf	*v;
	size_t			 len;
	char			 num[ROW_NUM_LEN];

	a = table_add(t, "a", ROW_HOST, "g");
	b = table_add(t, "b", ROW_HOST, "g");
	row_sets(t, b, "os", "debian");
	row_sets(t, a, "ip", "127.0.0.1");
	row_sets(t, a, "os", "alpine");
	row_sets(t, b, "kernel", "6.1");
	ok(t->ncols == 3, "three extra columns");
	is_str(t->cols[0], "os", "first-seen order: os first");
	is_str(t->cols[1], "ip", "first-seen order: ip second");
	is_str(t->cols[2], "kernel", "first-seen order: kernel third");
	is_str(row_get(a, "os")->data, "alpine", "row_get reads the value");
	ok(row_get(a, "kernel") == NULL, "a column a row never set is NULL");
	ok(row_value(a, "kernel", num, &len) == NULL,
	    "row_value of an unset column is NULL");
	row_sets(t, a, "os", "alpine 3.20");
	v = row_get(a, "os");
	is_str(v->data, "alpine 3.20", "setting again replaces the value");
	ok(v->len == 11, "and its length");
	ok(t->ncols == 3 && a->ncols == 2, "without adding a column");
	row_sets(t, a, "empty", "");
	v = row_get(a, "empty");
	ok(v != NULL && v->len == 0, "an empty value is set, not absent");
	is_str(row_value(a, "target", num, &len), "a", "row_value of target");
	is_str(row_value(a, "status", num, &len), "ok", "row_value of status");
	a->code = -15;
	is_str(row_value(a, "code", num, &len), "-15", "row_value of code");
	ok(column_is_fixed("stdout") && column_is_fixed("duration_ms") &&
	    !column_is_fixed("os"), "column_is_fixed");
	table_free(t);
}

static void
test_binary(void)
{
	static const char	 bytes[] = "a\0b\0\xff\xfe\n\0";
	struct table		*t = table_new();
	struct row		*r;
	const struct buf	*v;
	const char		*s;
	char			*big, num[ROW_NUM_LEN];
	size_t			 len = 0, n = 1 << 20;

	r = table_add(t, "x", ROW_HOST, "g");
	row_set(t, r, "blob", bytes, sizeof bytes);
	v = row_get(r, "blob");
	ok(v->len == sizeof bytes, "a value with NUL bytes keeps its length");
	ok(memcmp(v->data, bytes, sizeof bytes) == 0,
	    "and every byte");
	ok(v->data[v->len] == '\0', "and is NUL-terminated past its end");
	buf_add(&r->out, bytes, sizeof bytes);
	s = row_value(r, "stdout", num, &len);
	ok(len == sizeof bytes && memcmp(s, bytes, len) == 0,
	    "stdout is binary-safe through row_value");
	/* A large value, past any fixed-size buffer. */
	big = malloc(n);
	memset(big, 'z', n);
	big[n / 2] = '\0';
	row_set(t, r, "big", big, n);
	v = row_get(r, "big");
	ok(v->len == n && memcmp(v->data, big, n) == 0,
	    "a 1 MiB value with a NUL in the middle is kept whole");
	free(big);
	table_free(t);
}

static void
test_keep(void)
{
	struct table	*t = table_new();
	unsigned char	 keep[5] = { 0, 1, 0, 1, 1 };
	unsigned char	 none[3] = { 0, 0, 0 };
	char		 name[8];
	size_t		 i;

	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "r%zu", i);
		row_sets(t, table_add(t, name, ROW_HOST, "g"), "i", name);
	}
	table_keep(t, keep);
	ok(t->n == 3, "table_keep keeps three of five");
	is_str(t->rows[0]->target, "r1", "in order: r1");
	is_str(t->rows[1]->target, "r3", "in order: r3");
	is_str(t->rows[2]->target, "r4", "in order: r4");
	is_str(row_get(t->rows[2], "i")->data, "r4",
	    "kept rows keep their columns");
	ok(t->ncols == 1, "the table keeps its column names");
	table_keep(t, none);
	ok(t->n == 0, "keeping none leaves an empty table");
	table_add(t, "again", ROW_HOST, "g");
	ok(t->n == 1, "an emptied table takes rows again");
	table_free(t);
}

/*
 * Numbers are formatted into the caller's storage: two held at once (or
 * read by two threads) never overwrite each other.
 */
static void
test_row_value_numbers(void)
{
	struct table	*t = table_new();
	struct row	*a, *b;
	const char	*ca, *cb, *da;
	char		 na[ROW_NUM_LEN], nb[ROW_NUM_LEN], nd[ROW_NUM_LEN];
	size_t		 la, lb, ld;

	a = table_add(t, "a", ROW_HOST, "g");
	b = table_add(t, "b", ROW_HOST, "g");
	a->code = 7;
	b->code = -2147483647 - 1;
	a->duration_ms = 9223372036854775807LL;
	ca = row_value(a, "code", na, &la);
	cb = row_value(b, "code", nb, &lb);
	da = row_value(a, "duration_ms", nd, &ld);
	is_str(ca, "7", "code of one row");
	ok(la == 1, "and its length");
	is_str(cb, "-2147483648", "code of another, read after it");
	ok(lb == 11, "and its length");
	is_str(da, "9223372036854775807", "the largest duration fits");
	ok(ld == 19, "and its length");
	ok(ca == na && cb == nb && da == nd,
	    "each number lives in the storage its caller passed");
	table_free(t);
}

/* expand_row into a fresh string; NULL when it refuses, why then set. */
static char *
expand(const char *tmpl, const struct row *r, enum expand_mode mode,
    struct buf *why)
{
	struct buf	b;
	int		ret;

	buf_init(&b);
	buf_reset(why);
	ret = expand_row(&b, tmpl, r, mode, why);
	if (ret != 0) {
		buf_free(&b);
		return NULL;
	}
	buf_addc(&b, '\0');
	return buf_steal(&b);
}

static void
test_expand_row(void)
{
	struct table	*t = table_new();
	struct row	*r;
	struct buf	 why;
	char		*s;
	const char	*bad[] = { "", ".", "..", "a/b", "/", "../x" };
	size_t		 i;

	buf_init(&why);
	r = table_add(t, "web-1", ROW_HOST, "web");
	buf_adds(&r->out, "it's $(x)\n");
	row_sets(t, r, "os", "debian");
	row_set(t, r, "nul", "a\0b", 3);

	s = expand("echo ${row.stdout} ${row.os}", r, EXPAND_SHELL, &why);
	is_str(s, "echo 'it'\\''s $(x)' 'debian'",
	    "shell: each value one quoted word, its final newline dropped");
	free(s);
	s = expand("[${row.missing}]", r, EXPAND_SHELL, &why);
	is_str(s, "['']", "shell: a column the row lacks is an empty word");
	free(s);
	s = expand("/d/${row.stdout}", r, EXPAND_TEXT, &why);
	is_str(s, "/d/it's $(x)", "text: the value as it is");
	free(s);
	s = expand("${target}:${row.target}:${row.code}:$${row.os}", r,
	    EXPAND_TEXT, &why);
	is_str(s, "web-1:web-1:0:${row.os}",
	    "fixed columns, numbers, and $${ as the text ${");
	free(s);
	s = expand("files/${row.os}.conf", r, EXPAND_PATH, &why);
	is_str(s, "files/debian.conf", "path: one file name goes in");
	free(s);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		row_sets(t, r, "os", bad[i]);
		s = expand("files/${row.os}", r, EXPAND_PATH, &why);
		ok(s == NULL && why.len > 0 && strstr(why.data,
		    "${row.os}") != NULL, "path: '%s' is refused (%s)", bad[i],
		    why.data != NULL ? why.data : "");
		free(s);
	}
	s = expand("x ${row.nul}", r, EXPAND_SHELL, &why);
	ok(s == NULL && strstr(why.data, "NUL") != NULL,
	    "a value with a NUL byte is refused everywhere");
	free(s);
	ok(has_row_value("a ${row.x}") && !has_row_value("a $${row.x}") &&
	    !has_row_value("${target}"), "has_row_value");
	buf_free(&why);
	table_free(t);
}

int
main(void)
{
	test_add();
	test_columns();
	test_binary();
	test_keep();
	test_row_value_numbers();
	test_expand_row();
	return tap_done();
}
