/*
 * secret.c: the values of secret parameters, kept apart from everything
 * reops-run writes. The loader registers each value; the places that own
 * what is written mask it: the transports when a row's output is whole,
 * the logger for each line, main for error messages and the plan. A
 * value is masked wherever it occurs, however short; the longest value
 * first, so one that contains another is masked whole.
 *
 * A command that uses a secret names it as a shell variable; the values
 * come on its standard input as shell assignments (secret_input), which
 * SECRET_PREAMBLE evaluates, so they never stand in a command line that
 * ps(1) could show on the host.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "secret.h"
#include "table.h"

struct secret {
	char	*value;
	size_t	 len;
};

/* Filled while loading, before any thread runs; only read after. */
static struct secret	*secrets;
static size_t		 nsecrets;

void
secret_register(const char *value)
{
	size_t	len = strlen(value), i, at;

	if (len == 0)
		return;
	for (i = 0; i < nsecrets; i++)
		if (secrets[i].len == len &&
		    memcmp(secrets[i].value, value, len) == 0)
			return;
	secrets = xgrow(secrets, nsecrets, sizeof *secrets);
	/* Longest first: a value is masked before any value inside it. */
	for (at = 0; at < nsecrets && secrets[at].len >= len; at++)
		;
	memmove(&secrets[at + 1], &secrets[at],
	    (nsecrets - at) * sizeof *secrets);
	secrets[at].value = xstrndup(value, len);
	secrets[at].len = len;
	nsecrets++;
}

void
secret_clear(void)
{
	size_t	i;

	for (i = 0; i < nsecrets; i++) {
		explicit_bzero(secrets[i].value, secrets[i].len);
		free(secrets[i].value);
	}
	free(secrets);
	secrets = NULL;
	nsecrets = 0;
}

/* Every value registered, anywhere in b, becomes SECRET_MASK. */
void
secret_mask_buf(struct buf *b)
{
	struct buf	 out;
	size_t		 i, k, from = 0;

	if (nsecrets == 0 || b->len == 0)
		return;
	for (k = 0; k < nsecrets; k++)
		if (memmem(b->data, b->len, secrets[k].value,
		    secrets[k].len) != NULL)
			break;
	if (k == nsecrets)
		return;
	buf_init(&out);
	for (i = 0; i < b->len;) {
		for (k = 0; k < nsecrets; k++)
			if (secrets[k].len <= b->len - i &&
			    b->data[i] == secrets[k].value[0] &&
			    memcmp(b->data + i, secrets[k].value,
			    secrets[k].len) == 0)
				break;
		if (k == nsecrets) {
			i++;
			continue;
		}
		buf_add(&out, b->data + from, i - from);
		buf_adds(&out, SECRET_MASK);
		i += secrets[k].len;
		from = i;
	}
	buf_add(&out, b->data + from, b->len - from);
	explicit_bzero(b->data, b->len);
	buf_move(b, &out);
}

/* What a row will show: its output and every extra column. */
void
secret_mask_row(struct row *r)
{
	size_t	i;

	secret_mask_buf(&r->out);
	secret_mask_buf(&r->err);
	for (i = 0; i < r->ncols; i++)
		secret_mask_buf(&r->cols[i].value);
}

/* The shell variable of a secret: '-' is not allowed in one, '_' is. */
void
secret_var(struct buf *b, const char *name)
{
	buf_adds(b, SECRET_VAR_PREFIX);
	for (; *name != '\0'; name++)
		buf_addc(b, *name == '-' ? '_' : *name);
}

/* What ${name} of a secret becomes in a command: one quoted word. */
void
secret_ref(struct buf *b, const char *name)
{
	buf_adds(b, "\"$");
	secret_var(b, name);
	buf_addc(b, '"');
}

/*
 * The standard input of a command that uses secrets of p: one shell
 * assignment per secret it names. 1 when there is one, else 0.
 */
int
secret_input(const struct pipeline *p, const char *command, struct buf *in)
{
	struct buf	ref;
	size_t		i;
	int		any = 0;

	buf_init(&ref);
	for (i = 0; i < p->nparams; i++) {
		if (!p->params[i].secret || p->params[i].value == NULL)
			continue;
		buf_reset(&ref);
		secret_ref(&ref, p->params[i].name);
		if (strstr(command, ref.data) == NULL)
			continue;
		secret_var(in, p->params[i].name);
		buf_addc(in, '=');
		shell_quote(in, p->params[i].value);
		buf_addc(in, '\n');
		any = 1;
	}
	buf_free(&ref);
	return any;
}

/*
 * --set-file: the bytes of a regular file, one final newline dropped.
 * O_NONBLOCK, so that a FIFO named by mistake cannot hang the open.
 */
int
secret_read_file(const char *path, char **out, struct err *e)
{
	struct buf	 b;
	int		 r = -1;

	*out = NULL;
	buf_init(&b);
	if (read_regular_file(path, SECRET_FILE_MAX, &b, e) != 0)
		goto out;
	if (b.len > 0 && memchr(b.data, '\0', b.len) != NULL) {
		err_set(e, "'%s' holds a NUL byte, which no parameter can",
		    path);
		goto out;
	}
	if (b.len > 0 && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	*out = buf_steal(&b);
	r = 0;
out:
	if (b.data != NULL)
		explicit_bzero(b.data, b.len);
	buf_free(&b);
	return r;
}
