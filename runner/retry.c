/*
 * retry.c: --retry FILE. The file is NDJSON as print_json_row writes it:
 * one flat object a line, of strings, numbers, true, false and null. Only
 * "pipeline", "target" and "status" are read; anything else must still be
 * well formed, so a file that is not a table is said to be one, with its
 * line and column, and nothing runs. The parser never recurses and reads
 * no byte past the end it is given, whatever the input.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "retry.h"

struct retry {
	char		*file;
	char		**keys;		/* "LEN:PIPELINE" TARGET, owned */
	unsigned char	*ok;		/* last status of each key was ok */
	size_t		 nkeys;
	struct hmap	 last;		/* key -> index + 1 */
	size_t		 nrows;
	char		*first;		/* pipeline of the first row */
	int		 first_line;
	int		 first_col;
	struct hmap	 pipelines;	/* pipeline names seen -> 1 */
	char		**names;	/* their owned copies */
	size_t		 nnames;
};

struct parser {
	const char	*file;
	const char	*p;
	const char	*end;
	const char	*bol;		/* where the current line began */
	int		 line;
	struct err	*e;
};

/* A value quoted in a message: short, and no terminal control bytes. */
static const char *
shown(char *dst, size_t size, const char *s)
{
	size_t	i;

	for (i = 0; i + 1 < size && s[i] != '\0'; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' :
		    s[i];
	dst[i] = '\0';
	return dst;
}

/* A buffer's text; an empty one may have no storage yet. */
static const char *
str(const struct buf *b)
{
	return b->data != NULL ? b->data : "";
}

static int
col(const struct parser *ps, const char *at)
{
	return (int)(at - ps->bol) + 1;
}

static int __attribute__((format(printf, 3, 4)))
perr(const struct parser *ps, const char *at, const char *fmt, ...)
{
	char	msg[sizeof ps->e->msg];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return err_at(ps->e, ps->file, ps->line, col(ps, at), "%s", msg);
}

static void
skip_space(struct parser *ps)
{
	while (ps->p < ps->end) {
		if (*ps->p == '\n') {
			ps->line++;
			ps->bol = ps->p + 1;
		} else if (*ps->p != ' ' && *ps->p != '\t' && *ps->p != '\r')
			return;
		ps->p++;
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
hex4(struct parser *ps, unsigned *out)
{
	int	i, v;

	*out = 0;
	if (ps->end - ps->p < 4)
		return perr(ps, ps->p, "a \\u escape needs four hex digits");
	for (i = 0; i < 4; i++) {
		if ((v = hexval(ps->p[i])) < 0)
			return perr(ps, ps->p + i, "a \\u escape needs four "
			    "hex digits");
		*out = *out * 16 + (unsigned)v;
	}
	ps->p += 4;
	return 0;
}

static void
add_utf8(struct buf *b, unsigned c)
{
	if (b == NULL)
		return;
	if (c < 0x80)
		buf_addc(b, (char)c);
	else if (c < 0x800) {
		buf_addc(b, (char)(0xc0 | c >> 6));
		buf_addc(b, (char)(0x80 | (c & 0x3f)));
	} else if (c < 0x10000) {
		buf_addc(b, (char)(0xe0 | c >> 12));
		buf_addc(b, (char)(0x80 | (c >> 6 & 0x3f)));
		buf_addc(b, (char)(0x80 | (c & 0x3f)));
	} else {
		buf_addc(b, (char)(0xf0 | c >> 18));
		buf_addc(b, (char)(0x80 | (c >> 12 & 0x3f)));
		buf_addc(b, (char)(0x80 | (c >> 6 & 0x3f)));
		buf_addc(b, (char)(0x80 | (c & 0x3f)));
	}
}

/* A string at ps->p (its opening quote); decoded into out when given. */
static int
parse_string(struct parser *ps, struct buf *out)
{
	const char	*start = ps->p, *esc;
	unsigned	 c, lo;

	ps->p++;
	for (;;) {
		if (ps->p >= ps->end)
			return perr(ps, start, "a string that is never closed");
		c = (unsigned char)*ps->p;
		if (c == '"') {
			ps->p++;
			return 0;
		}
		if (c < 0x20)
			return perr(ps, ps->p, "a control byte 0x%02x inside a "
			    "string", c);
		if (c != '\\') {
			if (out != NULL)
				buf_addc(out, (char)c);
			ps->p++;
			continue;
		}
		esc = ps->p++;
		if (ps->p >= ps->end)
			return perr(ps, esc, "a string that is never closed");
		switch (*ps->p++) {
		case '"':
			c = '"';
			break;
		case '\\':
			c = '\\';
			break;
		case '/':
			c = '/';
			break;
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		case 'u':
			if (hex4(ps, &c) != 0)
				return -1;
			if (c >= 0xd800 && c < 0xdc00) {
				/* A high surrogate takes its low half along. */
				if (ps->end - ps->p < 2 || ps->p[0] != '\\' ||
				    ps->p[1] != 'u')
					return perr(ps, esc, "a lone UTF-16 "
					    "surrogate");
				ps->p += 2;
				if (hex4(ps, &lo) != 0)
					return -1;
				if (lo < 0xdc00 || lo >= 0xe000)
					return perr(ps, esc, "a lone UTF-16 "
					    "surrogate");
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (lo - 0xdc00);
			} else if (c >= 0xdc00 && c < 0xe000)
				return perr(ps, esc, "a lone UTF-16 surrogate");
			add_utf8(out, c);
			continue;
		default:
			return perr(ps, esc, "'\\%c' is not a JSON escape",
			    ps->p[-1] >= 0x20 && ps->p[-1] < 0x7f ? ps->p[-1] :
			    '?');
		}
		if (out != NULL)
			buf_addc(out, (char)c);
	}
}

static int
is_digit(const struct parser *ps)
{
	return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

static int
parse_number(struct parser *ps)
{
	const char	*start = ps->p;

	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (!is_digit(ps))
		return perr(ps, start, "not a JSON value");
	if (*ps->p == '0')
		ps->p++;
	else
		while (is_digit(ps))
			ps->p++;
	if (ps->p < ps->end && *ps->p == '.') {
		ps->p++;
		if (!is_digit(ps))
			return perr(ps, start, "a number with no digits after "
			    "its point");
		while (is_digit(ps))
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (!is_digit(ps))
			return perr(ps, start, "a number with no digits in its "
			    "exponent");
		while (is_digit(ps))
			ps->p++;
	}
	return 0;
}

static int
parse_value(struct parser *ps, const char *key, struct buf *out)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t			 i, len;

	if (ps->p >= ps->end)
		return perr(ps, ps->p, "the row ends before the value of "
		    "'%s'", key);
	switch (*ps->p) {
	case '"':
		return parse_string(ps, out);
	case '{':
	case '[':
		return perr(ps, ps->p, "'%s' holds %s; a table row holds "
		    "only strings and numbers", key, *ps->p == '{' ?
		    "an object" : "a list");
	}
	if (out != NULL)
		return perr(ps, ps->p, "'%s' must be a string", key);
	for (i = 0; i < nitems(words); i++) {
		len = strlen(words[i]);
		if ((size_t)(ps->end - ps->p) >= len &&
		    memcmp(ps->p, words[i], len) == 0) {
			ps->p += len;
			return 0;
		}
	}
	return parse_number(ps);
}

static int
known_status(const char *s, int *ok)
{
	static const char *const names[] = { "ok", "failed", "unreachable",
	    "skipped" };
	size_t			 i;

	for (i = 0; i < nitems(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*ok = i == 0;
			return 1;
		}
	return 0;
}

static void
remember(struct retry *r, const char *pipeline, const char *target, int ok)
{
	char	*key;
	size_t	 idx;

	key = xasprintf("%zu:%s%s", strlen(pipeline), pipeline, target);
	if ((idx = (size_t)hmap_get(&r->last, key)) != 0) {
		r->ok[idx - 1] = (unsigned char)ok;
		free(key);
		return;
	}
	r->keys = xreallocarray(r->keys, r->nkeys + 1, sizeof *r->keys);
	r->ok = xreallocarray(r->ok, r->nkeys + 1, 1);
	r->keys[r->nkeys] = key;
	r->ok[r->nkeys] = (unsigned char)ok;
	r->nkeys++;
	hmap_put(&r->last, key, (void *)r->nkeys);
	if (hmap_get(&r->pipelines, pipeline) == NULL) {
		r->names = xreallocarray(r->names, r->nnames + 1,
		    sizeof *r->names);
		r->names[r->nnames] = xstrdup(pipeline);
		hmap_put(&r->pipelines, r->names[r->nnames], (void *)1);
		r->nnames++;
	}
}

/* One row: a flat object with a string pipeline, target and status. */
static int
parse_row(struct parser *ps, struct retry *r)
{
	enum { F_PIPELINE, F_TARGET, F_STATUS, F_N };
	static const char *const fields[F_N] = { "pipeline", "target",
	    "status" };
	struct buf	 key, val[F_N];
	char		 text[65];
	int		 at_line[F_N] = { 0, 0, 0 }, at_col[F_N];
	int		 open_line = ps->line, open_col, ok, f, ret = -1;
	size_t		 i;

	open_col = col(ps, ps->p);
	buf_init(&key);
	for (i = 0; i < F_N; i++) {
		buf_init(&val[i]);
		at_col[i] = 0;
	}
	if (*ps->p != '{') {
		perr(ps, ps->p, "not a table: a row is a JSON object on a "
		    "line of its own, as --json writes it");
		goto out;
	}
	ps->p++;
	skip_space(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
		goto missing;
	}
	for (;;) {
		skip_space(ps);
		if (ps->p >= ps->end || *ps->p != '"') {
			perr(ps, ps->p, "expected a quoted column name");
			goto out;
		}
		buf_reset(&key);
		if (parse_string(ps, &key) != 0)
			goto out;
		skip_space(ps);
		if (ps->p >= ps->end || *ps->p != ':') {
			perr(ps, ps->p, "expected ':' after '%s'",
			    shown(text, sizeof text, str(&key)));
			goto out;
		}
		ps->p++;
		skip_space(ps);
		for (f = 0; f < F_N; f++)
			if (key.len == strlen(fields[f]) &&
			    strcmp(str(&key), fields[f]) == 0)
				break;
		if (f < F_N) {
			buf_reset(&val[f]);
			at_line[f] = ps->line;
			at_col[f] = col(ps, ps->p);
		}
		if (parse_value(ps, f < F_N ? fields[f] : "column",
		    f < F_N ? &val[f] : NULL) != 0)
			goto out;
		if (f < F_N && val[f].len > 0 &&
		    memchr(val[f].data, '\0', val[f].len) != NULL) {
			err_at(ps->e, ps->file, at_line[f], at_col[f],
			    "'%s' holds a NUL", fields[f]);
			goto out;
		}
		skip_space(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == '}') {
			ps->p++;
			break;
		}
		perr(ps, ps->p, "expected ',' or '}' in a row");
		goto out;
	}
missing:
	for (f = 0; f < F_N; f++) {
		if (at_line[f] != 0)
			continue;
		/* Point at the row's opening brace. */
		err_at(ps->e, ps->file, open_line, open_col, "a row with no '%s'%s", fields[f], f == F_PIPELINE ?
		    "; written by an older reops-run or by something else" :
		    "");
		goto out;
	}
	if (!known_status(str(&val[F_STATUS]), &ok)) {
		err_at(ps->e, ps->file, at_line[F_STATUS], at_col[F_STATUS],
		    "'%s' is not a row status (ok, failed, unreachable or "
		    "skipped)", shown(text, sizeof text,
		    str(&val[F_STATUS])));
		goto out;
	}
	if (val[F_TARGET].len == 0) {
		err_at(ps->e, ps->file, at_line[F_TARGET], at_col[F_TARGET],
		    "a row with an empty 'target'");
		goto out;
	}
	if (r->nrows++ == 0) {
		r->first = xstrdup(str(&val[F_PIPELINE]));
		r->first_line = at_line[F_PIPELINE];
		r->first_col = at_col[F_PIPELINE];
	}
	remember(r, str(&val[F_PIPELINE]), str(&val[F_TARGET]), ok);
	ret = 0;
out:
	buf_free(&key);
	for (i = 0; i < F_N; i++)
		buf_free(&val[i]);
	return ret;
}

int
retry_parse(const char *file, const char *data, size_t len,
    struct retry **out, struct err *e)
{
	struct retry	*r;
	struct parser	 ps;
	int		 row_line;

	*out = NULL;
	r = xcalloc(1, sizeof *r);
	r->file = xstrdup(file);
	hmap_init(&r->last);
	hmap_init(&r->pipelines);
	ps.file = r->file;
	ps.p = ps.bol = data;
	ps.end = data + len;
	ps.line = 1;
	ps.e = e;
	for (;;) {
		skip_space(&ps);
		if (ps.p >= ps.end)
			break;
		row_line = ps.line;
		if (parse_row(&ps, r) != 0)
			goto bad;
		/* One row a line: what follows on it is not a table's. */
		while (ps.p < ps.end && (*ps.p == ' ' || *ps.p == '\t' ||
		    *ps.p == '\r'))
			ps.p++;
		if (ps.p < ps.end && *ps.p != '\n' && ps.line == row_line) {
			perr(&ps, ps.p, "more after the row on its line");
			goto bad;
		}
	}
	*out = r;
	return 0;
bad:
	retry_free(r);
	return -1;
}

int
retry_load(const char *file, struct retry **out, struct err *e)
{
	struct buf	 b;
	struct stat	 sb;
	char		 chunk[65536];
	ssize_t		 n;
	int		 fd, ret;

	*out = NULL;
	/*
	 * A pipe from a shell (<(...)) is fine, and its open waits for the
	 * writer; a device or a directory is not a table, and is not opened.
	 */
	if (stat(file, &sb) == -1)
		return err_set(e, "--retry: unable to read '%s': %s", file,
		    strerror(errno));
	if (!S_ISREG(sb.st_mode) && !S_ISFIFO(sb.st_mode))
		return err_set(e, "--retry: '%s' is not a file", file);
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1)
		return err_set(e, "--retry: unable to read '%s': %s", file,
		    strerror(errno));
	if (fstat(fd, &sb) == -1 || (!S_ISREG(sb.st_mode) &&
	    !S_ISFIFO(sb.st_mode))) {
		close(fd);
		return err_set(e, "--retry: '%s' is not a file", file);
	}
	buf_init(&b);
	for (;;) {
		n = read(fd, chunk, sizeof chunk);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (b.len + (size_t)n > RETRY_FILE_MAX) {
			close(fd);
			buf_free(&b);
			return err_set(e, "--retry: '%s' is larger than %d "
			    "MiB", file, RETRY_FILE_MAX / (1024 * 1024));
		}
		buf_add(&b, chunk, (size_t)n);
	}
	if (n == -1) {
		err_set(e, "--retry: unable to read '%s': %s", file,
		    strerror(errno));
		close(fd);
		buf_free(&b);
		return -1;
	}
	close(fd);
	ret = retry_parse(file, b.data != NULL ? b.data : "", b.len, out, e);
	buf_free(&b);
	return ret;
}

void
retry_free(struct retry *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nkeys; i++)
		free(r->keys[i]);
	free(r->keys);
	free(r->ok);
	for (i = 0; i < r->nnames; i++)
		free(r->names[i]);
	free(r->names);
	hmap_free(&r->last);
	hmap_free(&r->pipelines);
	free(r->first);
	free(r->file);
	free(r);
}

size_t
retry_rows(const struct retry *r)
{
	return r->nrows;
}

int
retry_check(const struct retry *r, const char *const *names, size_t n,
    struct err *e)
{
	char	text[65], want[65];
	size_t	i;

	if (r->nrows == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (hmap_get(&r->pipelines, names[i]) != NULL)
			return 0;
	return err_at(e, r->file, r->first_line, r->first_col, "a table of "
	    "pipeline '%s', not of '%s'%s", shown(text, sizeof text, r->first),
	    shown(want, sizeof want, n > 0 ? names[0] : ""),
	    n > 1 ? " or the others given" : "");
}

void
retry_filter(const struct retry *r, const char *pipeline, struct target *t,
    size_t *n)
{
	char	*key;
	size_t	 i, k = 0, idx;

	for (i = 0; i < *n; i++) {
		key = xasprintf("%zu:%s%s", strlen(pipeline), pipeline,
		    t[i].host != NULL ? t[i].host->name : t[i].system->name);
		idx = (size_t)hmap_get(&r->last, key);
		free(key);
		if (idx != 0 && !r->ok[idx - 1])
			t[k++] = t[i];
	}
	*n = k;
}
