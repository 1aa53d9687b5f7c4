/*
 * unit-secret.c: masking secret values in buffers: every occurrence, the
 * longest value first, binary data around them, a row's every column;
 * and the stdin payload that hands a command its secrets.
 */
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "secret.h"
#include "table.h"
#include "tap.h"

static char *
masked(const char *s, size_t len)
{
	struct buf	b;
	char		*r;

	buf_init(&b);
	buf_add(&b, s, len);
	secret_mask_buf(&b);
	r = xstrndup(b.data != NULL ? b.data : "", b.len);
	buf_free(&b);
	return r;
}

#define is_masked(in, want, ...) do {					\
	char *m_ = masked((in), strlen(in));				\
	is_str(m_, (want), __VA_ARGS__);				\
	free(m_);							\
} while (0)

static void
test_mask(void)
{
	struct buf	 b;

	is_masked("nothing here", "nothing here", "no secret: unchanged");
	secret_register("hunter2");
	secret_register("");
	is_masked("pw=hunter2;", "pw=***;", "a value in the middle");
	is_masked("hunter2", "***", "the whole buffer");
	is_masked("hunter2hunter2 hunter2", "****** ***",
	    "every occurrence, side by side too");
	is_masked("hunter", "hunter", "a part of a value is not masked");
	is_masked("", "", "an empty buffer");
	secret_register("hunter2-long");
	secret_register("hunter2");
	is_masked("a hunter2-long b hunter2", "a *** b ***",
	    "the longest value first, and a value registered twice once");
	buf_init(&b);
	buf_add(&b, "\0\377hunter2\n\0", 11);
	secret_mask_buf(&b);
	ok(b.len == 7 && memcmp(b.data, "\0\377***\n\0", 7) == 0,
	    "binary bytes around a value are kept");
	buf_free(&b);
	secret_register("a\nb");
	is_masked("x a\nb y", "x *** y", "a value with a newline");
	secret_clear();
	is_masked("hunter2", "hunter2", "nothing is masked after clear");
}

static void
test_row(void)
{
	struct table	*t = table_new();
	struct row	*r;

	secret_register("s3cret");
	r = table_add(t, "h", ROW_HOST, "g");
	buf_adds(&r->out, "out s3cret");
	buf_adds(&r->err, "s3cret err");
	row_sets(t, r, "extra", "[s3cret]");
	secret_mask_row(r);
	is_str(r->out.data, "out ***", "a row's stdout");
	is_str(r->err.data, "*** err", "a row's stderr");
	is_str(row_get(r, "extra")->data, "[***]", "a row's extra column");
	table_free(t);
	secret_clear();
}

static void
test_input(void)
{
	struct pipeline	p;
	struct param	params[3];
	struct buf	b, ref;
	int		r;

	memset(&p, 0, sizeof p);
	memset(params, 0, sizeof params);
	params[0].name = "token";
	params[0].value = "it's";
	params[0].secret = 1;
	params[1].name = "plain";
	params[1].value = "x";
	params[2].name = "api-key";
	params[2].value = "k\n";
	params[2].secret = 1;
	p.params = params;
	p.nparams = 3;
	buf_init(&ref);
	secret_ref(&ref, "api-key");
	is_str(ref.data, "\"$REOPS_SECRET_api_key\"",
	    "a secret is one quoted shell variable, '-' as '_'");
	buf_init(&b);
	/* ok() evaluates its condition more than once: call first. */
	r = secret_input(&p, "echo hi", &b);
	ok(r == 0 && b.len == 0, "a command that names no secret gets no input");
	r = secret_input(&p, "echo \"$REOPS_SECRET_token\" "
	    "\"$REOPS_SECRET_api_key\"", &b);
	ok(r == 1, "a command that names two");
	is_str(b.data, "REOPS_SECRET_token='it'\\''s'\n"
	    "REOPS_SECRET_api_key='k\n'\n",
	    "each as one shell assignment, quoted");
	buf_free(&b);
	buf_free(&ref);
}

int
main(void)
{
	test_mask();
	test_row();
	test_input();
	return tap_done();
}
