/*
 * print.c: the table for people (pretty: aligned and coloured on a
 * terminal, plain otherwise) and for programs (one JSON object per row).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "run.h"

static void
json_string(FILE *f, const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, k;
	int			 n;

	fputc('"', f);
	for (i = 0; i < len; i++) {
		switch (p[i]) {
		case '"':
			fputs("\\\"", f);
			continue;
		case '\\':
			fputs("\\\\", f);
			continue;
		case '\n':
			fputs("\\n", f);
			continue;
		case '\r':
			fputs("\\r", f);
			continue;
		case '\t':
			fputs("\\t", f);
			continue;
		}
		if (p[i] < 0x20 || p[i] == 0x7f) {
			fprintf(f, "\\u%04x", p[i]);
			continue;
		}
		if (p[i] < 0x80) {
			fputc(p[i], f);
			continue;
		}
		/* A valid UTF-8 sequence is copied; a stray byte is U+FFFD. */
		n = (p[i] & 0xe0) == 0xc0 ? 1 : (p[i] & 0xf0) == 0xe0 ? 2 :
		    (p[i] & 0xf8) == 0xf0 ? 3 : -1;
		if (n > 0 && i + (size_t)n < len &&
		    utf8_valid(s + i, (size_t)n + 1)) {
			for (k = 0; k <= (size_t)n; k++)
				fputc(p[i + k], f);
			i += (size_t)n;
		} else
			fputs("\\ufffd", f);
	}
	fputc('"', f);
}

/*
 * A text column; bytes that are not UTF-8 cannot be said in a JSON string,
 * so NAME_base64 carries them whole beside the readable form.
 */
static void
json_field(FILE *f, const char *name, const char *s, size_t len)
{
	struct buf	b;

	fprintf(f, ",\"%s\":", name);
	json_string(f, s != NULL ? s : "", s != NULL ? len : 0);
	if (s != NULL && !utf8_valid(s, len)) {
		buf_init(&b);
		base64_encode(&b, (const unsigned char *)s, len, 1);
		fprintf(f, ",\"%s_base64\":\"%s\"", name, b.data);
		buf_free(&b);
	}
}

void
print_json_row(FILE *f, const struct table *t, const struct row *r)
{
	const struct buf	*b;
	size_t			 i;

	fputs("{\"target\":", f);
	json_string(f, r->target, strlen(r->target));
	if (t->pipeline != NULL) {
		fputs(",\"pipeline\":", f);
		json_string(f, t->pipeline, strlen(t->pipeline));
	}
	fprintf(f, ",\"kind\":\"%s\",\"group\":", kind_name(r->kind));
	json_string(f, r->group, strlen(r->group));
	fprintf(f, ",\"status\":\"%s\",\"code\":%d", status_name(r->status),
	    r->code);
	json_field(f, "stdout", r->out.data, r->out.len);
	json_field(f, "stderr", r->err.data, r->err.len);
	fprintf(f, ",\"duration_ms\":%lld", r->duration_ms);
	for (i = 0; i < t->ncols; i++) {
		if ((b = row_get(r, t->cols[i])) == NULL)
			continue;
		json_field(f, t->cols[i], b->data, b->len);
	}
	fputs("}\n", f);
}

/* Terminal-safe text: control bytes and invalid UTF-8 shown as \xNN. */
static void
safe_text(FILE *f, const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i;
	int			 n;

	for (i = 0; i < len; i++) {
		if (p[i] == '\t' || (p[i] >= 0x20 && p[i] < 0x7f)) {
			fputc(p[i], f);
			continue;
		}
		if (p[i] >= 0x80) {
			n = (p[i] & 0xe0) == 0xc0 ? 1 : (p[i] & 0xf0) == 0xe0 ?
			    2 : (p[i] & 0xf8) == 0xf0 ? 3 : -1;
			if (n > 0 && i + (size_t)n < len &&
			    utf8_valid(s + i, (size_t)n + 1)) {
				fwrite(s + i, 1, (size_t)n + 1, f);
				i += (size_t)n;
				continue;
			}
		}
		fprintf(f, "\\x%02x", p[i]);
	}
}

/* Each line of text, indented; a missing final newline is supplied. */
static void
print_lines(FILE *f, const char *indent, const char *pre, const char *post,
    const struct buf *b)
{
	const char	*s = b->data, *end, *nl;

	if (b->len == 0)
		return;
	end = s + b->len;
	while (s < end) {
		if ((nl = memchr(s, '\n', (size_t)(end - s))) == NULL)
			nl = end;
		fprintf(f, "%s%s", indent, pre);
		safe_text(f, s, (size_t)(nl - s));
		fprintf(f, "%s\n", post);
		s = nl + 1;
	}
}

static const char *
status_mark(enum row_status s)
{
	switch (s) {
	case ST_OK:
		return "\u2713";
	case ST_FAILED:
		return "\u2717";
	case ST_UNREACHABLE:
		return "!";
	case ST_SKIPPED:
		return "-";
	}
	return "?";
}

static const char *
status_color(enum row_status s)
{
	switch (s) {
	case ST_OK:
		return "\033[32m";
	case ST_FAILED:
		return "\033[31m";
	case ST_UNREACHABLE:
		return "\033[35m";
	case ST_SKIPPED:
		return "\033[33m";
	}
	return "";
}

static size_t
width(const char *s)
{
	size_t	n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* An extra column fits the header line when it is short and one line. */
static int
inline_column(const struct buf *b)
{
	return b == NULL || (b->len <= 40 && memchr(b->data, '\n',
	    b->len) == NULL);
}

static void
pad(FILE *f, size_t n)
{
	while (n-- > 0)
		fputc(' ', f);
}

static void
print_summary(FILE *f, const struct table *t, int color)
{
	size_t	count[4] = { 0, 0, 0, 0 }, i;

	for (i = 0; i < t->n; i++)
		count[t->rows[i]->status]++;
	fprintf(f, "%s%zu row%s: %zu ok, %zu failed, %zu unreachable",
	    color ? "\033[1m" : "", t->n, t->n == 1 ? "" : "s", count[ST_OK],
	    count[ST_FAILED], count[ST_UNREACHABLE]);
	if (count[ST_SKIPPED] > 0)
		fprintf(f, ", %zu skipped", count[ST_SKIPPED]);
	fprintf(f, "%s\n", color ? "\033[0m" : "");
}

static void
print_table(struct run *run, FILE *f, const struct table *t)
{
	size_t			 w[4], *cw, i, c;
	const struct row	*r;
	const struct buf	*b;
	char			 code[16], ms[32];
	int			 color = run->color;

	cw = xcalloc(t->ncols + 1, sizeof *cw);
	w[0] = strlen("TARGET");
	w[1] = strlen("GROUP");
	w[2] = strlen("unreachable") + 2;
	w[3] = strlen("CODE");
	for (c = 0; c < t->ncols; c++)
		cw[c] = width(t->cols[c]);
	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		if (width(r->target) > w[0])
			w[0] = width(r->target);
		if (width(r->group) > w[1])
			w[1] = width(r->group);
		for (c = 0; c < t->ncols; c++) {
			b = row_get(r, t->cols[c]);
			if (b != NULL && inline_column(b) && b->len > cw[c])
				cw[c] = b->len;
		}
	}
	fprintf(f, "%s%-*s  %-*s  %-*s  %*s  %8s", color ? "\033[1m" : "",
	    (int)w[0], "TARGET", (int)w[1], "GROUP", (int)w[2], "STATUS",
	    (int)w[3], "CODE", "TIME");
	for (c = 0; c < t->ncols; c++) {
		fprintf(f, "  ");
		safe_text(f, t->cols[c], strlen(t->cols[c]));
		pad(f, cw[c] - width(t->cols[c]));
	}
	fprintf(f, "%s\n", color ? "\033[0m" : "");
	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		snprintf(code, sizeof code, "%d", r->code);
		snprintf(ms, sizeof ms, "%lldms", r->duration_ms);
		safe_text(f, r->target, strlen(r->target));
		pad(f, w[0] - width(r->target) + 2);
		safe_text(f, r->group, strlen(r->group));
		pad(f, w[1] - width(r->group) + 2);
		fprintf(f, "%s%s %s%s", color ? status_color(r->status) : "",
		    status_mark(r->status), status_name(r->status),
		    color ? "\033[0m" : "");
		pad(f, w[2] - 2 - strlen(status_name(r->status)));
		fprintf(f, "  %*s  %8s", (int)w[3], code, ms);
		for (c = 0; c < t->ncols; c++) {
			b = row_get(r, t->cols[c]);
			fprintf(f, "  ");
			if (b != NULL && inline_column(b)) {
				safe_text(f, b->data, b->len);
				pad(f, cw[c] - width(b->data));
			} else
				pad(f, cw[c]);
		}
		fputc('\n', f);
		for (c = 0; c < t->ncols; c++) {
			b = row_get(r, t->cols[c]);
			if (b == NULL || inline_column(b))
				continue;
			fprintf(f, "    %s:\n", t->cols[c]);
			print_lines(f, "      ", "", "", b);
		}
		print_lines(f, "    ", "", "", &r->out);
		print_lines(f, "    ", color ? "\033[31m" : "",
		    color ? "\033[0m" : "", &r->err);
	}
	print_summary(f, t, color);
	free(cw);
}

/*
 * The plain form, for pipes and logs: a header line per row that greps
 * well ("TARGET: STATUS code=N ..."), then its output indented.
 */
static void
print_plain(FILE *f, const struct table *t, int color)
{
	const struct row	*r;
	const struct buf	*b;
	size_t			 i, c;

	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		safe_text(f, r->target, strlen(r->target));
		fprintf(f, ": %s%s%s code=%d group=",
		    color ? status_color(r->status) : "",
		    status_name(r->status), color ? "\033[0m" : "", r->code);
		safe_text(f, r->group, strlen(r->group));
		fprintf(f, " time=%lldms", r->duration_ms);
		for (c = 0; c < t->ncols; c++) {
			b = row_get(r, t->cols[c]);
			if (b == NULL || !inline_column(b))
				continue;
			fprintf(f, " %s=", t->cols[c]);
			safe_text(f, b->data, b->len);
		}
		fputc('\n', f);
		for (c = 0; c < t->ncols; c++) {
			b = row_get(r, t->cols[c]);
			if (b == NULL || inline_column(b))
				continue;
			fprintf(f, "  %s:\n", t->cols[c]);
			print_lines(f, "    ", "", "", b);
		}
		if (r->out.len > 0) {
			fprintf(f, "  stdout:\n");
			print_lines(f, "    ", "", "", &r->out);
		}
		if (r->err.len > 0) {
			fprintf(f, "  stderr:\n");
			print_lines(f, "    ", "", "", &r->err);
		}
	}
	print_summary(f, t, color);
}

void
print_pretty(struct run *run, FILE *f, const struct table *t)
{
	if (run->tty)
		print_table(run, f, t);
	else
		print_plain(f, t, run->color);
	print_done(run, f);
}

/*
 * Without an output stage, failures still must not pass unseen: one line
 * each, with the target and the first line of stderr made terminal-safe.
 */
void
print_failures(FILE *f, const struct table *t)
{
	const struct row	*r;
	const char		*nl;
	size_t			 i;

	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		if (r->status == ST_OK)
			continue;
		fputs("reops-run: ", f);
		safe_text(f, r->target, strlen(r->target));
		fprintf(f, ": %s (code %d)", status_name(r->status), r->code);
		if (r->err.len > 0) {
			nl = memchr(r->err.data, '\n', r->err.len);
			fputs(": ", f);
			safe_text(f, r->err.data, nl != NULL ?
			    (size_t)(nl - r->err.data) : r->err.len);
		}
		fputc('\n', f);
	}
	fflush(f);
}

/*
 * The point where a piece of output is complete: anything that went
 * wrong writing it since the last check shows now. A reader that went
 * away (EPIPE: "reops-run | head -1") stops the run quietly, as SIGPIPE
 * would (exit 141), but with the commands in flight killed; any other
 * error is one line on stderr, once per stream, and exit 4 at the end.
 */
int
print_done(struct run *run, FILE *f)
{
	int	e, bit = f == stdout ? 1 : f == stderr ? 2 : 4;

	if (fflush(f) == 0 && !ferror(f))
		return 0;
	e = errno != 0 ? errno : EIO;
	clearerr(f);
	if (e == EPIPE) {
		run_interrupted = SIGPIPE;
		run->output_error |= bit;
		return -1;
	}
	if ((run->output_error & bit) == 0)
		fprintf(stderr, "reops-run: %s: %s\n", f == stdout ?
		    "standard output" : f == stderr ? "standard error" :
		    "output", strerror(e));
	run->output_error |= bit;
	return -1;
}
