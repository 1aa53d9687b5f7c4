/*
 * stage-fetch.c: "fetch" downloads a file from each host to
 * DEST/TARGET/BASENAME here. It is one command per row, run by whatever
 * transport the row has: the host's script answers on stdout with one
 * line "SHA256 BYTES" and then the file's bytes, and says why on stderr
 * when it cannot. Here the bytes are counted and hashed again, and only
 * when both agree are they written: to a new file beside the final name,
 * synced, then renamed over it, all relative to a descriptor of the
 * target's directory that was opened without following a symbolic link.
 */
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "run.h"
#include "ssh.h"

/*
 * A row's whole file is held in memory as it comes, so at most --forks
 * of them at once; the host refuses a larger one before it sends a byte.
 */
#define FETCH_MAX	((size_t)256 << 20)
#define FETCH_CODE	3	/* the host's script: the file cannot be sent */

static const struct stage_key fetch_keys[] = {
	{ "src", ARG_STRING, 1 },
	{ "dest", ARG_STRING, 1 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

static const char *const fetch_columns[] = { "path", "bytes", "sha256",
    NULL };

/* What one row fetches: its src on the host and where it goes here. */
struct fetch_row {
	struct buf	 src;
	struct buf	 dir;
	struct buf	 name;		/* src, trailing slashes dropped */
	const char	*base;		/* its last name, in name */
};

static void	row_fail(struct row *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	fetch_row_free(struct fetch_row *);

static int
fetch_prepare(struct stage *st, struct err *e)
{
	const char	*key[] = { "src", "dest" };
	const struct node *n;
	size_t		 i;

	for (i = 0; i < nitems(key); i++) {
		n = stage_arg(st, key[i]);
		if (n != NULL && n->str[0] == '\0')
			return node_err(e, n, "'%s' of stage 'fetch' must not "
			    "be empty", key[i]);
	}
	return 0;
}

/*
 * The last name of path, trailing slashes dropped (in place); NULL when
 * there is none that can be a file's: "", "/", "." or "..".
 */
static const char *
base_name(char *path, size_t len)
{
	char	*slash;

	while (len > 0 && path[len - 1] == '/')
		path[--len] = '\0';
	slash = strrchr(path, '/');
	path = slash != NULL ? slash + 1 : path;
	if (path[0] == '\0' || strcmp(path, ".") == 0 ||
	    strcmp(path, "..") == 0)
		return NULL;
	return path;
}

/*
 * The host's script. Every value is one quoted word; what it prints about
 * the file names it as the pipeline gave it. Its size is checked before a
 * byte is sent, and head -c sends no more than was counted and hashed,
 * should the file grow meanwhile.
 */
static void
fetch_command(struct buf *cmd, const char *src)
{
	struct buf	 name;
	char		*quoted;

	buf_init(&name);
	quoted = xasprintf("'%s'", src);
	shell_quote(&name, quoted);
	free(quoted);
	buf_adds(cmd, "f=");
	shell_quote(cmd, src);
	buf_printf(cmd, "; n=%s; max=%zu; ", name.data, FETCH_MAX);
	buf_printf(cmd, "fail() { printf 'fetch: %%s: %%s\\n' \"$n\" \"$1\" "
	    ">&2; exit %d; }; ", FETCH_CODE);
	buf_adds(cmd,
	    "[ -e \"$f\" ] || fail 'no such file'; "
	    "[ -f \"$f\" ] || fail 'not a regular file'; "
	    "[ -r \"$f\" ] || fail 'permission denied'; "
	    "b=$(wc -c <\"$f\") || fail 'unable to read it'; b=$((b)); "
	    "[ \"$b\" -le \"$max\" ] || fail \"$b bytes, more than fetch's "
	    "limit of $max\"; "
	    "if command -v sha256sum >/dev/null 2>&1; then "
	    "s=$(sha256sum <\"$f\") || fail 'unable to read it'; "
	    "elif command -v shasum >/dev/null 2>&1; then "
	    "s=$(shasum -a 256 <\"$f\") || fail 'unable to read it'; "
	    "else fail 'the host has neither sha256sum nor shasum'; fi; "
	    "printf '%s %s\\n' \"${s%% *}\" \"$b\" && head -c \"$b\" <\"$f\"");
	buf_free(&name);
}

static int
is_hex64(const char *s)
{
	size_t	i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/*
 * Opens name in dirfd as a directory, made (0700) if missing; never
 * through a symbolic link.
 */
static int
open_subdir(int dirfd, const char *name, const char *shown, struct buf *why)
{
	struct stat	sb;
	int		fd, tries;

	for (tries = 0; tries < 2; tries++) {
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (fd != -1)
			return fd;
		if (errno != ENOENT)
			break;
		if (mkdirat(dirfd, name, 0700) == -1 && errno != EEXIST) {
			buf_printf(why, "unable to make '%s': %s", shown,
			    xstrerror(errno));
			return -1;
		}
	}
	if ((errno == ELOOP || errno == ENOTDIR) &&
	    fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(sb.st_mode))
		buf_printf(why, "'%s' is a symbolic link: refused", shown);
	else
		buf_printf(why, "unable to open '%s': %s", shown,
		    xstrerror(errno));
	return -1;
}

/* DEST itself, made with its parents (0700) if missing. */
static int
open_dest(const char *dir, struct buf *why)
{
	char	*p, *s, c;
	int	 fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1)
		return fd;
	if (errno == ENOENT) {
		p = xstrdup(dir);
		for (s = p + 1; ; s++) {
			if (*s != '/' && *s != '\0')
				continue;
			c = *s;
			*s = '\0';
			if (mkdir(p, 0700) == -1 && errno != EEXIST) {
				buf_printf(why, "unable to make '%s': %s", p,
				    xstrerror(errno));
				free(p);
				return -1;
			}
			if (c == '\0')
				break;
			*s = c;
		}
		free(p);
		if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1)
			return fd;
	}
	buf_printf(why, "unable to open '%s': %s", dir, xstrerror(errno));
	return -1;
}

/*
 * A new file in dirfd, like mkstemp(3) but relative to the descriptor:
 * mkstemp takes a path, and a path through DEST/TARGET could meet a
 * symbolic link put there after the directory was checked.
 */
static int
temp_at(int dirfd, char name[32])
{
	static const char	 chars[] = "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char		 rnd[12];
	size_t			 i;
	int			 fd, tries;

	for (tries = 0; tries < 100; tries++) {
		if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
			return -1;
		memcpy(name, ".fetch.", 7);
		for (i = 0; i < sizeof rnd; i++)
			name[7 + i] = chars[rnd[i] % (sizeof chars - 1)];
		name[7 + sizeof rnd] = '\0';
		fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			return fd;
	}
	return -1;
}

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Writes data to DIR/TARGET/BASE: to a temporary file there, synced, then
 * renamed over BASE (a symbolic link there is replaced, not followed).
 */
static int
store(const char *dir, const char *target, const char *base,
    const char *data, size_t len, struct buf *path, struct buf *why)
{
	char	 tmp[32], *shown;
	int	 dfd = -1, tfd = -1, fd = -1, ret = -1;

	tmp[0] = '\0';	/* no temporary file yet */

	buf_printf(path, "%s%s%s/%s", dir, dir[strlen(dir) - 1] == '/' ?
	    "" : "/", target, base);
	shown = xstrndup(path->data, path->len - strlen(base) - 1);
	if ((dfd = open_dest(dir, why)) == -1)
		goto out;
	if ((tfd = open_subdir(dfd, target, shown, why)) == -1)
		goto out;
	if ((fd = temp_at(tfd, tmp)) == -1) {
		tmp[0] = '\0';
		buf_printf(why, "unable to make a file in '%s': %s", shown,
		    xstrerror(errno));
		goto out;
	}
	if (write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		buf_printf(why, "unable to write '%s/%s': %s", shown, tmp,
		    xstrerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		buf_printf(why, "unable to write '%s/%s': %s", shown, tmp,
		    xstrerror(errno));
		goto out;
	}
	fd = -1;
	if (renameat(tfd, tmp, tfd, base) == -1) {
		buf_printf(why, "unable to rename to '%s': %s", path->data,
		    xstrerror(errno));
		goto out;
	}
	tmp[0] = '\0';
	/* The rename itself lasts once the directory is synced. */
	if (fsync(tfd) == -1 && errno != EINVAL) {
		buf_printf(why, "unable to sync '%s': %s", shown,
		    xstrerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd != -1)
		close(fd);
	if (tmp[0] != '\0')	/* made, and not renamed */
		unlinkat(tfd, tmp, 0);
	if (tfd != -1)
		close(tfd);
	if (dfd != -1)
		close(dfd);
	free(shown);
	return ret;
}

/* The row fails here, with one line of reason; no part of a file shows. */
static void
row_fail(struct row *r, const char *fmt, ...)
{
	va_list	ap;

	r->status = ST_FAILED;
	if (r->code == 0)
		r->code = 1;
	buf_reset(&r->out);
	buf_adds(&r->err, "reops-run: fetch: ");
	va_start(ap, fmt);
	buf_vprintf(&r->err, fmt, ap);
	va_end(ap);
	buf_addc(&r->err, '\n');
}

/*
 * The host's answer, as the row ends: checked, then written, then the
 * row's columns.
 */
static void
fetch_done(struct job *j)
{
	struct table	*t = j->table;
	struct row	*r = j->row;
	struct fetch_row *fr = j->arg;
	struct buf	 path, why;
	const char	*nl, *data;
	char		 got[65], want[65], *end;
	size_t		 len;
	unsigned long long bytes;

	if (r->status != ST_OK) {
		buf_reset(&r->out);	/* part of a file is no output */
		return;
	}
	nl = r->out.len > 0 ? memchr(r->out.data, '\n', r->out.len) : NULL;
	if (nl == NULL || nl - r->out.data < 66 || !is_hex64(r->out.data) ||
	    r->out.data[64] != ' ' || r->out.data[65] < '0' ||
	    r->out.data[65] > '9') {
		row_fail(r, "the host's answer for '%s' does not begin with "
		    "'SHA256 BYTES'", fr->src.data);
		return;
	}
	memcpy(want, r->out.data, 64);
	want[64] = '\0';
	errno = 0;
	bytes = strtoull(r->out.data + 65, &end, 10);
	data = nl + 1;
	len = r->out.len - (size_t)(data - r->out.data);
	if (len > FETCH_MAX) {
		row_fail(r, "'%s': the host sent %zu bytes, more than fetch's "
		    "limit of %zu", fr->src.data, len, FETCH_MAX);
		return;
	}
	if (end != nl || errno != 0 || bytes != len) {
		row_fail(r, "'%s': %s", fr->src.data, bytes != len ?
		    "the host sent a different number of bytes than it said" :
		    "the host's byte count is not a number");
		return;
	}
	sha256_hex(data, len, got);
	if (strcmp(got, want) != 0) {
		row_fail(r, "checksum mismatch for '%s': the host says %s, "
		    "what came is %s", fr->src.data, want, got);
		return;
	}
	buf_init(&path);
	buf_init(&why);
	if (store(fr->dir.data, r->target, fr->base, data, len, &path,
	    &why) == -1)
		row_fail(r, "%s", why.data);
	else {
		row_sets(t, r, "path", path.data);
		buf_reset(&why);
		buf_printf(&why, "%zu", len);
		row_sets(t, r, "bytes", why.data);
		row_sets(t, r, "sha256", got);
	}
	buf_reset(&r->out);
	buf_free(&path);
	buf_free(&why);
}

/* A target's name as a directory here: one name, never '.' or '..'. */
static int
target_dir_ok(const char *s)
{
	return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
	    strcmp(s, "..") != 0;
}

/*
 * What row r fetches, from where to where; -1, the row failed, when that
 * cannot be a file here. The command is built from src as expanded, the
 * name here from its last name (trailing slashes dropped in a copy).
 */
static int
plan_row(struct fetch_row *fr, struct stage *st, struct row *r)
{
	struct buf	why;
	int		bad;

	buf_init(&fr->src);
	buf_init(&fr->dir);
	buf_init(&fr->name);
	buf_init(&why);
	/*
	 * src is quoted whole in the host's command: row values go in as
	 * they are; dest is a path here: a row value is one file name.
	 */
	bad = expand_row(&fr->src, stage_str(st, "src", ""), r, EXPAND_TEXT,
	    &why) != 0 || expand_row(&fr->dir, stage_str(st, "dest", ""), r,
	    EXPAND_PATH, &why) != 0;
	if (bad) {
		row_fail(r, "%s", why.data != NULL ? why.data : "bad row value");
		buf_free(&why);
		fetch_row_free(fr);
		return -1;
	}
	buf_free(&why);
	buf_addc(&fr->src, '\0');	/* data is never NULL */
	fr->src.len--;
	buf_addc(&fr->dir, '\0');
	fr->dir.len--;
	buf_add(&fr->name, fr->src.data, fr->src.len);
	buf_addc(&fr->name, '\0');
	fr->base = base_name(fr->name.data, fr->src.len);
	if (!target_dir_ok(r->target))
		row_fail(r, "'%s' cannot name a directory", r->target);
	else if (fr->dir.len == 0)
		row_fail(r, "'dest' is empty for '%s'", r->target);
	else if (fr->base == NULL)
		row_fail(r, "'%s' names no file", fr->src.data);
	else
		return 0;
	fetch_row_free(fr);
	return -1;
}

static void
fetch_row_free(struct fetch_row *fr)
{
	buf_free(&fr->src);
	buf_free(&fr->dir);
	buf_free(&fr->name);
}

static int
fetch_host(struct run *run, struct stage *st, struct table *t)
{
	struct fetch_row *fr;
	struct job	*jobs;
	struct buf	 cmd;
	struct row	*r;
	size_t		 i, n = 0;
	int		 ret, timeout;

	timeout = (int)stage_int(st, "timeout", 0);
	jobs = xcalloc(t->n, sizeof *jobs);
	fr = xcalloc(t->n, sizeof *fr);
	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		if (plan_row(&fr[n], st, r) == -1) {
			progress_add(run->progress, 1);
			run_row_done(run, r);
			continue;
		}
		buf_init(&cmd);
		fetch_command(&cmd, fr[n].src.data);
		jobs[n].row = r;
		jobs[n].command = buf_steal(&cmd);
		jobs[n].timeout = row_timeout(run, r, timeout);
		jobs[n].after = fetch_done;
		jobs[n].table = t;
		jobs[n].arg = &fr[n];
		n++;
	}
	ret = n > 0 ? run_jobs(run, jobs, n) : 0;
	for (i = 0; i < n; i++) {
		free(jobs[i].command);
		fetch_row_free(&fr[i]);
	}
	free(fr);
	free(jobs);
	return ret;
}

static const char *const fetch_row_keys[] = { "src", "dest", NULL };

const struct stage_entry stage_fetch_entry = {
	.name = "fetch",
	.usage = "fetch: { src: PATH, dest: DIR, timeout: SECONDS }",
	.summary = "download a file from each host to DIR/TARGET/",
	.keys = fetch_keys,
	.columns = fetch_columns,
	.row_keys = fetch_row_keys,
	.flags = STAGE_REMOTE,
	.prepare = fetch_prepare,
	.host = fetch_host,
};
