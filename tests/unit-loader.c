/*
 * unit-loader.c: where the loader puts its errors. Pipelines are written
 * to files in a scratch directory and loaded; each error message must be
 * exactly FILE:LINE:COLUMN: message, at the right place.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "tap.h"

static char	 dir[] = "/tmp/unit-loader.XXXXXX";

static void
put(const char *name, const char *text)
{
	FILE	*f;

	if ((f = fopen(name, "w")) == NULL) {
		perror(name);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

/* Loads text as p.yaml with --set pairs "k=v" (NULL-terminated). */
static char *
load_set(const char *text, const char *const *set)
{
	struct overrides	 ov;
	struct pipeline		*p;
	struct err		 e;
	char			*r, *eq;
	size_t			 i, n = 0;

	put("p.yaml", text);
	while (set != NULL && set[n] != NULL)
		n++;
	memset(&ov, 0, sizeof ov);
	ov.keys = xcalloc(n + 1, sizeof *ov.keys);
	ov.values = xcalloc(n + 1, sizeof *ov.values);
	ov.used = xcalloc(n + 1, 1);
	for (i = 0; i < n; i++) {
		ov.keys[i] = xstrdup(set[i]);
		eq = strchr(ov.keys[i], '=');
		*eq = '\0';
		ov.values[i] = eq + 1;
	}
	ov.n = n;
	if (pipeline_load("p.yaml", &ov, &p, &e) != 0)
		r = xstrdup(e.msg);
	else {
		r = xstrdup("ok");
		pipeline_free(p);
	}
	for (i = 0; i < n; i++)
		free(ov.keys[i]);
	free(ov.keys);
	free(ov.values);
	free(ov.used);
	unlink("p.yaml");
	return r;
}

#define check_set(text, set, want, ...) do {				\
	char *got_ = load_set((text), (set));				\
	is_str(got_, (want), __VA_ARGS__);				\
	free(got_);							\
} while (0)
#define check(text, want, ...) check_set(text, NULL, want, __VA_ARGS__)

/* ok() evaluates its condition more than once: no side effects in it. */
static void
test_yaml(void)
{
	struct doc	*d;
	struct err	 e;
	const struct node *n;
	static const char two[] = "a: 1\n---\nb: 2\n";
	int		 r, col;

	r = doc_load_string("m.yaml", "k: [x, 'y z']\n", 14, &d, &e);
	ok(r == 0, "doc_load_string loads from memory");
	n = node_get(d->root, "k");
	ok(n != NULL && n->type == NODE_SEQ && n->nkids == 2,
	    "a flow list of two");
	ok(n->kids[1]->line == 1 && n->kids[1]->col == 8,
	    "positions count from 1");
	is_str(n->kids[1]->str, "y z", "a quoted scalar's value");
	col = node_col_at(n->kids[1], 2);
	ok(col == 11, "node_col_at: a quoted scalar's byte 2 is past its "
	    "quote (%d)", col);
	doc_free(d);

	r = doc_load_string("m.yaml", "k: \"a\\tb\"\n", 10, &d, &e);
	col = r == 0 ? node_col_at(node_get(d->root, "k"), 2) : -1;
	ok(col == 4, "node_col_at falls back to the scalar with an escape "
	    "(%d)", col);
	doc_free(d);

	r = doc_load_string("m.yaml", "k: \"\xc3\xa9t\xc3\xa9\"\n", 11, &d,
	    &e);
	/* Byte 3 is the second e-acute: after the quote, two characters. */
	col = r == 0 ? node_col_at(node_get(d->root, "k"), 3) : -1;
	ok(col == 7, "node_col_at counts characters, not bytes (%d)", col);
	doc_free(d);

	r = doc_load_string("two.yaml", two, sizeof two - 1, &d, &e);
	ok(r != 0 && d == NULL, "two documents are refused");
	is_str(e.msg, "two.yaml:2:1: a file holds one YAML document, not "
	    "several", "at the second document's marker");

	r = doc_load_string("e.yaml", "", 0, &d, &e);
	ok(r == 0 && d->root == NULL,
	    "an empty string is a document without a root");
	doc_free(d);
}

static void
test_pipeline(void)
{
	static const char *const set_path[] = { "path=/etc", NULL };
	static const char *const set_x[] = { "x=1", NULL };

	check("hosts: web\nstages:\n  - ls: /\n  - pretty\n", "ok",
	    "a valid pipeline loads");
	check("hosts: web\nstages:\n  - ls: [/\n", "p.yaml:4:1: did not find "
	    "expected ',' or ']' while parsing a flow sequence that starts "
	    "at line 3, column 9", "an unclosed bracket names where it opened");
	check("hosts: web\nstages:\n  - exec: 'echo\n", "p.yaml:4:1: found "
	    "unexpected end of stream while scanning a quoted scalar that "
	    "starts at line 3, column 11", "an unclosed quote");
	check("hosts: web\nstages:\n  -\tpretty\n", "p.yaml:3:4: found a tab "
	    "character where YAML allows only spaces (indent with spaces)",
	    "libyaml refuses a tab after '-' too, and it is named");
	check("hosts: web\nstages:\n\t- pretty\n", "p.yaml:3:1: found a tab "
	    "character where YAML allows only spaces (indent with spaces)",
	    "a tab as indentation");
	check("hosts: web\nstages:\n  - pretty\n  - lss: /\n", "p.yaml:4:5: "
	    "unknown stage 'lss'; did you mean 'ls'?", "unknown stage");
	check("hosts: web\nstages:\n  - exec: { command: x, sudo: 1 }\n",
	    "p.yaml:3:31: 'sudo' of stage 'exec' must be true or false, not "
	    "'1'", "a bool");
	check("hosts: web\nstages:\n  - exec: { command: x, timeout: -5 }\n",
	    "p.yaml:3:34: 'timeout' of stage 'exec' must be a whole number, "
	    "not '-5'", "a negative int");
	check("hosts: web\nstages:\n  - exec: { command: x, timeout: {} }\n",
	    "p.yaml:3:34: 'timeout' of stage 'exec' must be a whole number, "
	    "not a mapping", "a mapping for an int");
	check("hosts: web\nparams: { dir: / }\nstages:\n  - ls: \"${dirr}\"\n",
	    "p.yaml:4:10: unknown parameter '${dirr}'; did you mean '${dir}'?",
	    "an unknown param inside quotes");
	check("hosts: web\nparams: { dir: / }\nstages:\n"
	    "  - exec: echo $${dir} ${nope}\n", "p.yaml:4:24: unknown "
	    "parameter '${nope}'", "$${ is literal; the next ${ is checked");
	check("hosts: web\nstages:\n  - exec: |\n      echo ${a}\n",
	    "p.yaml:3:11: unknown parameter '${a}'; the pipeline declares no "
	    "params", "in a block scalar: the scalar's place");
	check("hosts: web\nstages:\n  - exec: echo ${target} ${group}\n",
	    "ok", "${target} and ${group} are row variables");
	check_set("hosts: web\nparams: { path: / }\nstages:\n"
	    "  - ls: ${path}\n", set_path, "ok", "--set of a declared param");
	check_set("hosts: web\nstages:\n  - ls: ${x}\n", set_x, "ok",
	    "--set of an undeclared param that is used");
	check("hosts: web\nstages:\n  - pick: { column: stdout, match: "
	    "'a++(' }\n", "p.yaml:3:41: bad regex 'a++(': missing closing "
	    "parenthesis at offset 4", "a bad regex in pick, quoted");
	check("hosts: web\nstages:\n  - pick:\n      column: stdout\n"
	    "      match: x{2,1}\n", "p.yaml:5:19: bad regex 'x{2,1}': numbers "
	    "out of order in {} quantifier at offset 5",
	    "a bad regex in pick, plain");
	check("hosts: web\nsystems: all\nstages: [pretty]\n", "p.yaml:2:1: a "
	    "pipeline selects 'hosts' or 'systems', not both",
	    "both: at the second of them");
	check("systems: all\nhosts: web\nstages: [pretty]\n", "p.yaml:2:1: a "
	    "pipeline selects 'hosts' or 'systems', not both",
	    "both, the other way round");
	check("hosts: web\nstages: pretty\n", "p.yaml:2:9: 'stages' must be "
	    "a list of stages, not 'pretty'", "stages as a scalar");
	check("hosts: web\nstages:\n", "p.yaml:2:8: 'stages' must be a list "
	    "of stages, not nothing", "stages empty");
	check("hosts: web\nstages:\n  - ls: &a /\n  - ls: *a\n  - ls: *b\n",
	    "p.yaml:5:9: unknown alias '*b'", "an unknown alias");
	check("hosts: web\nhosts: db\nstages: [pretty]\n", "p.yaml:2:1: "
	    "duplicate key 'hosts' (first at line 1)", "a duplicate key");
}

static void
test_include(void)
{
	put("a.yaml", "hosts: web\nstages:\n  - pipeline: sub/b.yaml\n");
	mkdir("sub", 0755);
	put("sub/b.yaml", "stages:\n  - pipeline: ../a.yaml\n");
	check("hosts: web\nstages:\n  - pipeline: a.yaml\n", "sub/b.yaml:2:15: "
	    "include cycle: a.yaml -> sub/b.yaml -> a.yaml",
	    "a cycle names its chain from the file seen twice, paths cleaned");
	put("sub/b.yaml", "stages:\n  - pretty\n");
	check("hosts: web\nstages:\n  - pipeline: a.yaml\n", "ok",
	    "the same include without the cycle loads");
	check("hosts: web\nstages:\n  - pipeline: sub/../sub/c.yaml\n",
	    "p.yaml:3:15: unable to open 'sub/c.yaml': No such file or "
	    "directory", "a missing include, its path cleaned");
	check("hosts: web\nstages:\n  - pipeline: { file: sub/b.yaml, "
	    "params: [x] }\n", "p.yaml:3:43: 'params' of stage 'pipeline' "
	    "must be a mapping, not a list", "include params not a mapping");
	unlink("a.yaml");
	unlink("sub/b.yaml");
	rmdir("sub");
}

/* doc_load_string's error for text, or "ok". */
static char *
doc_error(const char *text, size_t len)
{
	struct doc	*d;
	struct err	 e;

	if (doc_load_string("l.yaml", text, len, &d, &e) != 0)
		return xstrdup(e.msg);
	doc_free(d);
	return xstrdup("ok");
}

#define check_doc(text, len, want, ...) do {				\
	char *got_ = doc_error((text), (len));				\
	is_str(got_, (want), __VA_ARGS__);				\
	free(got_);							\
} while (0)

/* "[[...]]" nested n deep, as the value of k. */
static char *
nested(int n)
{
	struct buf	b;
	int		i;

	buf_init(&b);
	buf_adds(&b, "k: ");
	for (i = 0; i < n; i++)
		buf_addc(&b, '[');
	for (i = 0; i < n; i++)
		buf_addc(&b, ']');
	buf_addc(&b, '\n');
	return buf_steal(&b);
}

static void
test_limits(void)
{
	static const char nul[] = "a: 1\nb: 2\nc: 3\nd: \"x\0\"\n";
	static const char bad[] = "a: 1\r\nb: 2\r\nc: 3\r\nd: \xc3\xa9\xff\n";
	struct buf	 b;
	char		*t;
	int		 i;

	check_doc(nul, sizeof nul - 1, "l.yaml:4:6: control characters are "
	    "not allowed (byte 0x00)", "a NUL is placed at its line and column");
	check_doc(bad, sizeof bad - 1, "l.yaml:4:5: invalid leading UTF-8 "
	    "octet (byte 0xff)", "a bad byte after CRLF lines and an "
	    "e-acute: columns count characters");

	/* The top mapping is the first level. */
	t = nested(DOC_MAX_DEPTH - 1);
	check_doc(t, strlen(t), "ok", "256 nested levels load");
	free(t);
	t = nested(DOC_MAX_DEPTH);
	check_doc(t, strlen(t), "l.yaml:1:259: nested more than 256 levels "
	    "deep", "the 257th level is refused where it opens");
	free(t);

	/* 1,000 aliases of a 1,000-node list: exactly the budget, then one. */
	buf_init(&b);
	buf_adds(&b, "a: &a [");
	for (i = 0; i < 999; i++)
		buf_adds(&b, i ? ",x" : "x");
	buf_adds(&b, "]\nb: [");
	for (i = 0; i < 1000; i++)
		buf_adds(&b, i ? ",*a" : "*a");
	buf_adds(&b, "]\n");
	check_doc(b.data, b.len, "ok", "aliases may repeat 1,000,000 nodes");
	buf_adds(&b, "c: *a\n");
	check_doc(b.data, b.len, "l.yaml:3:4: aliases repeat more than 1000000 "
	    "nodes; '*a' is one too many", "but not one more");
	buf_free(&b);

	check("hosts: web\nparams: { v: \"it's\" }\nstages:\n"
	    "  - exec: echo ${v:q} ${target:q} ${w:q}\n",
	    "p.yaml:4:35: unknown parameter '${w}'; did you mean '${v}'?",
	    "${name:q} names the parameter without :q in errors");
	check("hosts: web\nparams: { v: \"it's\" }\nstages:\n"
	    "  - exec: &c echo ${v:q} ${target:q}\n  - exec: *c\n", "ok",
	    "${v:q} and ${target:q} load, also through an alias");
}

/* "2 2 1": the batch sizes of a pipeline whose top is serial for n rows. */
static char *
batches_of(const char *serial, size_t n, size_t *max_fail)
{
	struct overrides	 ov;
	struct pipeline		*p;
	struct err		 e;
	struct buf		 b;
	char			*text;
	size_t			*sizes, nb, i;

	text = xasprintf("hosts: web\n%s\nstages: [pretty]\n", serial);
	put("b.yaml", text);
	free(text);
	memset(&ov, 0, sizeof ov);
	ov.used = xcalloc(1, 1);
	if (pipeline_load("b.yaml", &ov, &p, &e) != 0) {
		free(ov.used);
		unlink("b.yaml");
		return xstrdup(e.msg);
	}
	buf_init(&b);
	buf_adds(&b, "");
	nb = pipeline_batches(p, n, &sizes);
	for (i = 0; i < nb; i++)
		buf_printf(&b, "%s%zu", i > 0 ? " " : "", sizes[i]);
	if (max_fail != NULL)
		*max_fail = pipeline_max_fail(p, n);
	free(sizes);
	pipeline_free(p);
	free(ov.used);
	unlink("b.yaml");
	return buf_steal(&b);
}

/* The descriptions are not formats: they have % in them. */
#define check_batches(serial, n, want, what) do {			\
	char *got_ = batches_of((serial), (n), NULL);			\
	is_str(got_, (want), "%s", (what));				\
	free(got_);							\
} while (0)

#define check_max_fail(serial, n, want, what) do {			\
	size_t mf_ = 0;							\
	char *got_ = batches_of((serial), (n), &mf_);			\
	ok(mf_ == (want), "%s", (what));				\
	if (mf_ != (want))						\
		printf("#   got %zu (%s)\n", mf_, got_);		\
	free(got_);							\
} while (0)

/*
 * Batch sizes as Ansible's _get_serialized_batches and pct_to_int make
 * them (ansible-core 2.14): N% of all the rows, in floating point, so
 * 29% of 100 is 28; at least 1; the last size repeats.
 */
static void
test_batches(void)
{
	check_batches("serial: 2", 6, "2 2 2", "serial 2 of 6");
	check_batches("serial: 2", 5, "2 2 1", "serial 2 of 5: the last is short");
	check_batches("serial: 2", 0, "", "no rows, no batch");
	check_batches("params: { n: 1 }", 4, "4", "without serial: one batch");
	check_batches("serial: [1, 2, 50%]", 10, "1 2 5 2",
	    "a list; the last size repeats");
	check_batches("serial: [1, 2, 50%]", 6, "1 2 3", "[1, 2, 50%] of 6");
	check_batches("serial: 29%", 100, "28 28 28 16",
	    "29% of 100 is 28, as in Ansible's floating point");
	check_batches("serial: 57%", 100, "56 44", "57% of 100 is 56");
	check_batches("serial: 1%", 10, "1 1 1 1 1 1 1 1 1 1",
	    "a percentage is at least 1 row");
	check_batches("serial: 33%", 3, "1 1 1", "33% of 3 is 1");
	check_batches("serial: 100%", 7, "7", "100% is all");
	check_batches("serial: [10%, 30%]", 20, "2 6 6 6", "[10%, 30%] of 20");
	check_batches("serial: 9", 4, "4", "a batch larger than the rows");
	check_max_fail("serial: 1", 6, 0, "max-fail is 0 with serial");
	check_max_fail("serial: 1\nmax-fail: 3", 6, 3, "max-fail 3");
	check_max_fail("serial: 1\nmax-fail: 20%", 6, 1,
	    "max-fail 20% of 6: more than 1.2 is 2 or more");
	check_max_fail("serial: 1\nmax-fail: 10%", 5, 0, "max-fail 10% of 5");
	check_max_fail("serial: 1\nmax-fail: 50%", 6, 3, "max-fail 50% of 6");
	check_max_fail("serial: 1\nmax-fail: 100%", 7, 7, "max-fail 100%");
	check("hosts: web\nserial: 0\nstages: [pretty]\n",
	    "p.yaml:2:9: 'serial' must be at least 1 row, not '0'",
	    "serial 0 at its value");
	check("hosts: web\nserial: [2, 150%]\nstages: [pretty]\n",
	    "p.yaml:2:13: 'serial' must be from 1% to 100% of the rows, "
	    "not '150%'", "serial 150%% in a list, at the item");
	check("hosts: web\nserial: 99999999999\nstages: [pretty]\n",
	    "p.yaml:2:9: 'serial' of '99999999999' rows is too large",
	    "a serial too large");
	check("hosts: web\nstages: [pretty]\nmax-fail: 2\n",
	    "p.yaml:3:1: 'max-fail' needs 'serial': without batches every row "
	    "runs at once", "max-fail without serial, at its key");
	check("hosts: web\nserial: 1\nmax-fail: -1\nstages: [pretty]\n",
	    "p.yaml:3:11: 'max-fail' takes a number of rows or a percentage "
	    "such as '10%', not '-1'", "a negative max-fail");
}

int
main(void)
{
	if (mkdtemp(dir) == NULL || chdir(dir) != 0) {
		perror(dir);
		return 1;
	}
	test_yaml();
	test_pipeline();
	test_include();
	test_limits();
	test_batches();
	if (chdir("/") != 0 || rmdir(dir) != 0)
		perror(dir);
	return tap_done();
}
