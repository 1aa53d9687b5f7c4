/*
 * stage-json.c: "json" writes the table as JSON lines, one object per row,
 * to standard output or to a file. A regular file (or a new one) is
 * written whole under a fresh name beside it and renamed into place, so a
 * reader never sees half a table; anything else (a FIFO, a terminal,
 * /dev/stdout) is written straight into.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

static const struct stage_key json_keys[] = {
	{ "file", ARG_STRING, 0 },
	{ NULL, 0, 0 }
};

static int
write_error(struct stage *st, const char *file, int e)
{
	fprintf(stderr, "reops-run: %s:%d:%d: unable to write '%s': %s\n",
	    st->owner->file, st->where->line, st->where->col, file,
	    strerror(e));
	return -1;
}

/* The rows to write to one file: all, or those whose file it is. */
struct rowset {
	struct row	**rows;
	size_t		  n;
};

/* Every row to f, then f closed; 0, or -1 with errno set. */
static int
write_rows(FILE *f, const struct table *t, const struct rowset *rs)
{
	size_t	i;
	int	e = 0;

	errno = 0;
	for (i = 0; i < rs->n; i++)
		print_json_row(f, t, rs->rows[i]);
	if (fflush(f) != 0 || ferror(f))
		e = errno != 0 ? errno : EIO;
	if (fclose(f) != 0 && e == 0)
		e = errno != 0 ? errno : EIO;
	errno = e;
	return e != 0 ? -1 : 0;
}

/*
 * Names of open files and devices (/dev/stdout, /proc/self/fd/N) are
 * symbolic links that must be followed whatever they lead to, and their
 * directories are never ours to create files in.
 */
static int
descriptor_name(const char *file)
{
	return strncmp(file, "/dev/", 5) == 0 ||
	    strncmp(file, "/proc/", 6) == 0;
}

/*
 * Into a FIFO, a device or an open file (appended to, as after what
 * went there before): no temporary, no rename.
 */
static int
write_straight(struct stage *st, const char *file, const struct table *t,
    const struct rowset *rs)
{
	FILE	*f;
	int	 fd;

	if ((fd = open(file, O_WRONLY | O_APPEND | O_NOCTTY |
	    O_CLOEXEC)) == -1)
		return write_error(st, file, errno);
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return write_error(st, file, errno);
	}
	if (write_rows(f, t, rs) != 0)
		return write_error(st, file, errno);
	return 0;
}

/*
 * A fresh name from mkstemp (O_EXCL: never a planted file or link) in
 * FILE's directory, renamed over FILE. A link at FILE is replaced, not
 * followed.
 */
static int
write_replace(struct stage *st, const char *file, const struct table *t,
    const struct rowset *rs, const struct stat *old)
{
	const char	*slash;
	char		*tmp;
	FILE		*f;
	mode_t		 mask, mode;
	int		 fd, e;

	if ((slash = strrchr(file, '/')) == NULL)
		tmp = xasprintf(".%s.XXXXXX", file);
	else
		tmp = xasprintf("%.*s.%s.XXXXXX", (int)(slash - file + 1),
		    file, slash + 1);
	if ((fd = mkstemp(tmp)) == -1) {
		e = errno;
		free(tmp);
		return write_error(st, file, e);
	}
	/* What a new file gets, or what the file replaced had. */
	if (old != NULL)
		mode = old->st_mode & 0777;
	else {
		mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}
	if (fchmod(fd, mode) != 0 || (f = fdopen(fd, "w")) == NULL) {
		e = errno;
		close(fd);
		goto fail;
	}
	if (write_rows(f, t, rs) != 0 || rename(tmp, file) != 0) {
		e = errno;
		goto fail;
	}
	free(tmp);
	return 0;
fail:
	unlink(tmp);
	free(tmp);
	return write_error(st, file, e);
}

/* The rows of rs to file, replaced whole when it is a regular file. */
static int
write_file(struct stage *st, const char *file, const struct table *t,
    const struct rowset *rs)
{
	struct stat	 sb, lsb;

	if (lstat(file, &lsb) != 0) {
		if (errno != ENOENT)
			return write_error(st, file, errno);
		return write_replace(st, file, t, rs, NULL);
	}
	if (S_ISREG(lsb.st_mode))
		return write_replace(st, file, t, rs, &lsb);
	if (S_ISLNK(lsb.st_mode)) {
		if (stat(file, &sb) != 0 || (S_ISREG(sb.st_mode) &&
		    !descriptor_name(file)))
			return write_replace(st, file, t, rs, NULL);
		if (S_ISDIR(sb.st_mode))
			return write_error(st, file, EISDIR);
		return write_straight(st, file, t, rs);
	}
	if (S_ISDIR(lsb.st_mode))
		return write_error(st, file, EISDIR);
	return write_straight(st, file, t, rs);
}

/*
 * A file named by row values: each row goes to its own file, in table
 * order, each file written once. A value that is not one file name
 * fails its row, which is then written nowhere.
 */
static int
write_per_row(struct run *run, struct stage *st, const char *tmpl,
    struct table *t)
{
	struct rowset	 rs;
	struct buf	*names, why;
	unsigned char	*done;
	size_t		 i, j;
	int		 ret = 0;

	names = xcalloc(t->n, sizeof *names);
	done = xcalloc(t->n, 1);
	rs.rows = xcalloc(t->n, sizeof *rs.rows);
	for (i = 0; i < t->n; i++) {
		buf_init(&names[i]);
		buf_init(&why);
		if (expand_row(&names[i], tmpl, t->rows[i], EXPAND_PATH,
		    &why) != 0) {
			done[i] = 1;
			if (t->rows[i]->status == ST_OK)
				run_row_refused(run, st, t->rows[i],
				    why.data);
			else {
				buf_printf(&t->rows[i]->err, "reops-run: "
				    "%s: %s\n", stage_name(st), why.data);
				t->rows[i]->status = ST_FAILED;
			}
		}
		buf_free(&why);
	}
	for (i = 0; i < t->n; i++) {
		if (done[i])
			continue;
		rs.n = 0;
		for (j = i; j < t->n; j++) {
			if (done[j] || strcmp(names[j].data, names[i].data))
				continue;
			rs.rows[rs.n++] = t->rows[j];
			done[j] = 1;
		}
		if (write_file(st, names[i].data, t, &rs) != 0)
			ret = -1;
	}
	for (i = 0; i < t->n; i++)
		buf_free(&names[i]);
	free(names);
	free(done);
	free(rs.rows);
	return ret;
}

static int
json_rows(struct run *run, struct stage *st, struct table *t)
{
	const char	*file = stage_str(st, "file", NULL);
	struct rowset	 all;
	FILE		*f;
	size_t		 i;

	if (file == NULL) {
		/* With --json, stdout is the final table's alone. */
		f = run->opt->json ? stderr : stdout;
		for (i = 0; i < t->n; i++)
			print_json_row(f, t, t->rows[i]);
		print_done(run, f);
		return 0;
	}
	if (has_row_value(file))
		return write_per_row(run, st, file, t);
	all.rows = t->rows;
	all.n = t->n;
	return write_file(st, file, t, &all);
}

static const char *const json_row_keys[] = { "file", NULL };

const struct stage_entry stage_json_entry = {
	.name = "json",
	.usage = "json: { file: FILE }",
	.summary = "write the table as JSON lines to stdout or a file",
	.shorthand = "file",
	.keys = json_keys,
	.row_keys = json_row_keys,
	.flags = STAGE_OUTPUT,
	.host = json_rows,
	.system = json_rows,
};
