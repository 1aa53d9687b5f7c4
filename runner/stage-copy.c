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

/* One source file, read once. */
struct copy_src {
	char		*path;		/* src, resolved */
	struct buf	 data;
	char		 sha256[65];
	char		*error;		/* why it could not be read */
};

struct copy {
	struct copy_src	 src;		/* without row values: read at load */
	char		*base;		/* with: their directory, ... */
	const char	*tmpl;		/* ... and src, read per row */
	struct copy_src	*read;		/* what this run read per row */
	size_t		 nread;
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

/*
 * src is read now, so a missing file stops the run before it starts;
 * one made of row values is read for each row, and fails only that row.
 */
static int
copy_prepare(struct stage *st, struct err *e)
{
	const struct node	*src, *mode;
	struct copy		*c;
	char			*base, *slash;
	size_t			 i;

	c = xcalloc(1, sizeof *c);
	buf_init(&c->src.data);
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
	if (src->str[0] == '/')
		base[0] = '\0';
	if (has_row_value(src->str)) {
		c->base = base;
		c->tmpl = src->str;
		return 0;
	}
	c->src.path = xasprintf("%s%s", base, src->str);
	free(base);
	if (read_all(c->src.path, &c->src.data, e, src) != 0)
		return -1;
	sha256_hex(c->src.data.data != NULL ? c->src.data.data : "",
	    c->src.data.len, c->src.sha256);
	return 0;
}

static void
src_free(struct copy_src *cs)
{
	free(cs->path);
	free(cs->error);
	buf_free(&cs->data);
}

/*
 * The source of a row: src with the row's values, each one file name
 * (EXPAND_PATH), read once for all the rows that name it. NULL, with
 * the reason in why, when the row cannot have one.
 */
static const struct copy_src *
row_src(struct copy *c, const struct row *r, struct buf *why)
{
	struct copy_src	*cs;
	struct buf	 path;
	struct err	 e;
	size_t		 i;

	if (c->tmpl == NULL)
		return &c->src;
	buf_init(&path);
	buf_adds(&path, c->base);
	if (expand_row(&path, c->tmpl, r, EXPAND_PATH, why) != 0) {
		buf_free(&path);
		return NULL;
	}
	for (i = 0; i < c->nread; i++) {
		if (strcmp(c->read[i].path, path.data) == 0) {
			buf_free(&path);
			if (c->read[i].error == NULL)
				return &c->read[i];
			buf_adds(why, c->read[i].error);
			return NULL;
		}
	}
	c->read = xgrow(c->read, c->nread, sizeof *c->read);
	cs = &c->read[c->nread++];
	memset(cs, 0, sizeof *cs);
	cs->path = buf_steal(&path);
	buf_init(&cs->data);
	if (read_regular_file(cs->path, COPY_MAX, &cs->data, &e) != 0) {
		cs->error = xstrdup(e.msg);
		buf_adds(why, e.msg);
		return NULL;
	}
	sha256_hex(cs->data.data != NULL ? cs->data.data : "", cs->data.len,
	    cs->sha256);
	return cs;
}

static void
copy_cleanup(struct stage *st)
{
	struct copy	*c = st->data;

	if (c == NULL)
		return;
	src_free(&c->src);
	free(c->base);
	free(c);
	st->data = NULL;
}

static int
copy_host(struct run *run, struct stage *st, struct table *t)
{
	struct copy		 *c = st->data;
	const struct copy_src	**srcs;
	const struct copy_src	 *cs;
	struct put_file		  pf;
	struct job		 *jobs;
	struct buf		 *dest, why;
	struct row		 *r;
	char			  bytes[32];
	size_t			  i, n = 0;
	int			  ret, timeout;

	timeout = (int)stage_int(st, "timeout", 0);
	jobs = xcalloc(t->n, sizeof *jobs);
	dest = xcalloc(t->n, sizeof *dest);
	srcs = xcalloc(t->n, sizeof *srcs);
	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		buf_init(&why);
		buf_init(&dest[n]);
		/* dest is quoted whole by put_command: values go in as is. */
		if ((cs = row_src(c, r, &why)) == NULL ||
		    expand_row(&dest[n], stage_str(st, "dest", ""), r,
		    EXPAND_TEXT, &why) != 0) {
			run_row_refused(run, st, r, why.data);
			buf_free(&why);
			buf_free(&dest[n]);
			continue;
		}
		buf_free(&why);
		/* Each transport puts the file its own way. */
		pf.src = cs->path;
		pf.data = cs->data.data != NULL ? cs->data.data : "";
		pf.len = cs->data.len;
		pf.dest = dest[n].data != NULL ? dest[n].data : "";
		pf.mode = c->mode;
		pf.sudo = stage_bool(st, "sudo", 0);
		srcs[n] = cs;
		jobs[n].row = r;
		jobs[n].timeout = row_timeout(run, r, timeout);
		transport_put(&jobs[n], &pf);
		n++;
	}
	ret = n > 0 ? run_jobs(run, jobs, n) : 0;
	for (i = 0; i < n; i++) {
		r = jobs[i].row;
		cs = srcs[i];
		free(jobs[i].command);
		buf_free(&dest[i]);
		if (r->status != ST_OK)
			continue;
		if (r->out.len >= 64 && memcmp(r->out.data, cs->sha256,
		    64) != 0) {
			r->status = ST_FAILED;
			buf_printf(&r->err, "reops-run: copy: sha256 of what "
			    "landed is %.64s, not %s\n", r->out.data,
			    cs->sha256);
		}
		buf_reset(&r->out);
		snprintf(bytes, sizeof bytes, "%zu", cs->data.len);
		row_sets(t, r, "bytes", bytes);
		row_sets(t, r, "sha256", cs->sha256);
	}
	/* What was read for this run's rows goes with them. */
	for (i = 0; i < c->nread; i++)
		src_free(&c->read[i]);
	free(c->read);
	c->read = NULL;
	c->nread = 0;
	free(srcs);
	free(dest);
	free(jobs);
	return ret;
}

static const char *const copy_row_keys[] = { "src", "dest", NULL };

static const char *const copy_columns[] = { "bytes", "sha256", NULL };

const struct stage_entry stage_copy_entry = {
	.name = "copy",
	.usage = "copy: { src: FILE, dest: PATH, mode: OCTAL, sudo: BOOL, "
	    "timeout: SECONDS }",
	.summary = "upload a file to each host",
	.keys = copy_keys,
	.row_keys = copy_row_keys,
	.columns = copy_columns,
	.flags = STAGE_REMOTE,
	.prepare = copy_prepare,
	.cleanup = copy_cleanup,
	.host = copy_host,
};
