/*
 * stage-copy.c: "copy" uploads a file to each host: to a temporary name
 * beside dest, then chmod and rename, so a reader of dest never sees half a
 * file. Each transport puts it its own way (transport_put): over ssh the
 * bytes go on the command's stdin (no scp or sftp needed on the host);
 * locally the same script copies the file itself.
 * The result says bytes and sha256, computed here; when the host has
 * sha256sum, its digest of what landed must agree.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "run.h"
#include "ssh.h"

#define COPY_MAX	((size_t)1 << 30)	/* held in memory once */

static const struct stage_key copy_keys[] = {
	{ "src", ARG_STRING, 1 },
	{ "dest", ARG_STRING, 1 },
	{ "mode", ARG_STRING, 0 },
	{ "sudo", ARG_BOOL, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

struct copy {
	char		*path;		/* src, resolved */
	struct buf	 data;
	char		 sha256[65];
	char		 mode[8];
};

/*
 * A regular file only: a FIFO named as src would hang the load, a device
 * such as /dev/zero would never end (read_regular_file refuses both).
 */
static int
read_all(const char *path, struct buf *b, struct err *e,
    const struct node *where)
{
	struct err	why;

	if (read_regular_file(path, COPY_MAX, b, &why) != 0)
		return node_err(e, where, "%s", why.msg);
	return 0;
}

/* src is read now, so a missing file stops the run before it starts. */
static int
copy_prepare(struct stage *st, struct err *e)
{
	const struct node	*src, *mode;
	struct copy		*c;
	char			*base, *slash;
	size_t			 i;

	c = xcalloc(1, sizeof *c);
	buf_init(&c->data);
	st->data = c;
	snprintf(c->mode, sizeof c->mode, "0644");
	if ((mode = stage_arg(st, "mode")) != NULL) {
		for (i = 0; mode->str[i] >= '0' && mode->str[i] <= '7'; i++)
			;
		if (mode->str[i] != '\0' || i < 3 || i > 4)
			return node_err(e, mode, "'mode' of stage 'copy' must "
			    "be octal such as '0644', not '%s'", mode->str);
		snprintf(c->mode, sizeof c->mode, "%s", mode->str);
	}
	src = stage_arg(st, "src");
	/* A relative src is beside the pipeline file, wherever we run. */
	base = xstrdup(st->owner != NULL && st->owner->file != NULL ?
	    st->owner->file : ".");
	if ((slash = strrchr(base, '/')) != NULL)
		slash[1] = '\0';
	else
		base[0] = '\0';
	c->path = src->str[0] == '/' || base[0] == '\0' ? xstrdup(src->str) :
	    xasprintf("%s%s", base, src->str);
	free(base);
	if (read_all(c->path, &c->data, e, src) != 0)
		return -1;
	sha256_hex(c->data.data != NULL ? c->data.data : "", c->data.len,
	    c->sha256);
	return 0;
}

static void
copy_cleanup(struct stage *st)
{
	struct copy	*c = st->data;

	if (c == NULL)
		return;
	free(c->path);
	buf_free(&c->data);
	free(c);
	st->data = NULL;
}

static int
copy_host(struct run *run, struct stage *st, struct table *t)
{
	struct copy	*c = st->data;
	struct put_file	 pf;
	struct job	*jobs;
	struct buf	*dest;
	struct row	*r;
	char		 bytes[32];
	size_t		 i, n = 0;
	int		 ret, timeout;

	timeout = (int)stage_int(st, "timeout", 0);
	jobs = xcalloc(t->n, sizeof *jobs);
	dest = xcalloc(t->n, sizeof *dest);
	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		/* Each transport puts the file its own way. */
		buf_init(&dest[n]);
		expand_row(&dest[n], stage_str(st, "dest", ""), r);
		pf.src = c->path;
		pf.data = c->data.data != NULL ? c->data.data : "";
		pf.len = c->data.len;
		pf.dest = dest[n].data != NULL ? dest[n].data : "";
		pf.mode = c->mode;
		pf.sudo = stage_bool(st, "sudo", 0);
		jobs[n].row = r;
		jobs[n].timeout = row_timeout(run, r, timeout);
		transport_put(&jobs[n], &pf);
		n++;
	}
	ret = n > 0 ? run_jobs(run, jobs, n) : 0;
	snprintf(bytes, sizeof bytes, "%zu", c->data.len);
	for (i = 0; i < n; i++) {
		r = jobs[i].row;
		free(jobs[i].command);
		buf_free(&dest[i]);
		if (r->status != ST_OK)
			continue;
		if (r->out.len >= 64 && memcmp(r->out.data, c->sha256,
		    64) != 0) {
			r->status = ST_FAILED;
			buf_printf(&r->err, "reops-run: copy: sha256 of what "
			    "landed is %.64s, not %s\n", r->out.data,
			    c->sha256);
		}
		buf_reset(&r->out);
		row_sets(t, r, "bytes", bytes);
		row_sets(t, r, "sha256", c->sha256);
	}
	free(dest);
	free(jobs);
	return ret;
}

static const char *const copy_columns[] = { "bytes", "sha256", NULL };

const struct stage_entry stage_copy_entry = {
	.name = "copy",
	.usage = "copy: { src: FILE, dest: PATH, mode: OCTAL, sudo: BOOL, "
	    "timeout: SECONDS }",
	.summary = "upload a file to each host",
	.keys = copy_keys,
	.columns = copy_columns,
	.flags = STAGE_REMOTE,
	.prepare = copy_prepare,
	.cleanup = copy_cleanup,
	.host = copy_host,
};
