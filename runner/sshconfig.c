/*
 * sshconfig.c: the part of ssh_config(5) that reops-run honours (Host,
 * HostName, User, Port, IdentityFile, UserKnownHostsFile, ConnectTimeout,
 * ProxyJump with one hop, Include), so a host
 * that `ssh NAME` reaches is reached the same way. The file is parsed once
 * per run; lookups walk its blocks like ssh does: the first value obtained
 * for a keyword wins, IdentityFile accumulates.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <pthread.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "inventory.h"
#include "ssh.h"

#define INCLUDE_DEPTH	16

struct ssh_option {
	char	*key;		/* lower case */
	char	*value;
};

struct ssh_block {
	char		**patterns;	/* NULL for a Match block: never applies */
	size_t		  npatterns;
	int		  never;
	struct ssh_option *opts;
	size_t		  nopts;
};

struct ssh_config {
	struct ssh_block *blocks;
	size_t		  nblocks;
};

static int	parse_file(struct ssh_config *, const char *, int, int,
		    struct err *);

static pthread_once_t	 passwd_once = PTHREAD_ONCE_INIT;
static char		*passwd_home, *passwd_user;

/*
 * Our passwd entry, read once with getpwuid_r: getpwuid's static result
 * would be shared by the ssh thread and the thread running local rows.
 * Kept for the whole run.
 */
static void
read_passwd(void)
{
	struct passwd	 pw, *res = NULL;
	size_t		 len = 4096;
	char		*buf;
	int		 r;

	buf = xmalloc(len);
	while ((r = getpwuid_r(getuid(), &pw, buf, len, &res)) == ERANGE &&
	    len < 1024 * 1024) {
		len *= 2;
		buf = xrealloc(buf, len);
	}
	if (r == 0 && res != NULL) {
		passwd_home = xstrdup(pw.pw_dir);
		passwd_user = xstrdup(pw.pw_name);
	}
	free(buf);
}

const char *
ssh_home(void)
{
	const char	*h;

	if ((h = getenv("HOME")) != NULL && *h != '\0')
		return h;
	pthread_once(&passwd_once, read_passwd);
	return passwd_home != NULL ? passwd_home : "/";
}

/* The local user's name, from the passwd entry; NULL when there is none. */
const char *
ssh_local_user(void)
{
	pthread_once(&passwd_once, read_passwd);
	return passwd_user;
}

/* "~/x" and "~" are the home directory; a relative path is under base. */
char *
ssh_expand_path(const char *path, const char *base)
{
	if (strcmp(path, "~") == 0)
		return xstrdup(ssh_home());
	if (strncmp(path, "~/", 2) == 0)
		return xasprintf("%s/%s", ssh_home(), path + 2);
	if (path[0] == '/' || base == NULL)
		return xstrdup(path);
	return xasprintf("%s/%s", base, path);
}

static struct ssh_block *
new_block(struct ssh_config *c)
{
	struct ssh_block	*b;

	c->blocks = xgrow(c->blocks, c->nblocks,
	    sizeof *c->blocks);
	b = &c->blocks[c->nblocks++];
	memset(b, 0, sizeof *b);
	return b;
}

/* Splits a line into words; "quoted words" keep their spaces. */
static size_t
split_words(char *s, char **w, size_t max)
{
	size_t	n = 0;
	char	*p = s, *out;

	while (n < max) {
		while (*p == ' ' || *p == '\t' || (n == 1 && *p == '='))
			p++;
		if (*p == '\0' || *p == '#')
			break;
		w[n++] = out = p;
		if (*p == '"') {
			p++;
			while (*p != '\0' && *p != '"')
				*out++ = *p++;
			if (*p == '"')
				p++;
		} else {
			while (*p != '\0' && *p != ' ' && *p != '\t' &&
			    !(n == 1 && *p == '='))
				*out++ = *p++;
		}
		if (*p != '\0')
			p++;
		*out = '\0';
	}
	return n;
}

static int
include(struct ssh_config *c, const char *pattern, int depth, struct err *e)
{
	glob_t	 g;
	char	*path;
	size_t	 i;
	int	 r = 0;

	/* Relative Include paths are under ~/.ssh, as ssh reads them. */
	if (pattern[0] != '/' && pattern[0] != '~')
		path = xasprintf("%s/.ssh/%s", ssh_home(), pattern);
	else
		path = ssh_expand_path(pattern, NULL);
	memset(&g, 0, sizeof g);
	if (glob(path, 0, NULL, &g) == 0) {
		for (i = 0; i < g.gl_pathc && r == 0; i++)
			r = parse_file(c, g.gl_pathv[i], 0, depth + 1, e);
	}
	globfree(&g);
	free(path);
	return r;
}

/* A bad ProxyJump is found when the file is read, as ssh(1) finds it. */
static int
check_jump(const char *file, int lineno, const char *v, struct err *e)
{
	struct proxy_jump	 pj;
	const char		*why;
	size_t			 bad;

	if (proxy_jump_parse(v, &pj, &bad, &why) < 0)
		return err_set(e, "%s:%d: invalid ProxyJump '%s': %s", file,
		    lineno, v, why);
	proxy_jump_free(&pj);
	return 0;
}


/* ssh_config as ssh reads it, line by line; file names it in errors. */
static int
parse_stream(struct ssh_config *c, FILE *f, const char *file, int depth,
    struct err *e)
{
	struct ssh_block	*b;
	char			*line = NULL, *w[64], *p;
	size_t			 cap = 0, n, i, bi;
	ssize_t			 len;
	int			 lineno = 0, r = 0;

	/*
	 * Options before the first Host line apply to every host. Blocks
	 * are named by index: an Include may move the array.
	 */
	b = new_block(c);
	b->patterns = xcalloc(1, sizeof *b->patterns);
	b->patterns[b->npatterns++] = xstrdup("*");
	bi = c->nblocks - 1;
	while ((len = getline(&line, &cap, f)) != -1 && r == 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			line[--len] = '\0';
		if ((n = split_words(line, w, nitems(w))) == 0)
			continue;
		for (p = w[0]; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		if (strcmp(w[0], "host") == 0) {
			b = new_block(c);
			b->patterns = xcalloc(n, sizeof *b->patterns);
			for (i = 1; i < n; i++)
				b->patterns[b->npatterns++] = xstrdup(w[i]);
			bi = c->nblocks - 1;
			continue;
		}
		if (strcmp(w[0], "match") == 0) {
			/* Match criteria are not evaluated: never applies. */
			b = new_block(c);
			b->never = 1;
			bi = c->nblocks - 1;
			continue;
		}
		if (n < 2) {
			r = err_set(e, "%s:%d: '%s' needs a value", file,
			    lineno, w[0]);
			break;
		}
		if (strcmp(w[0], "proxyjump") == 0 &&
		    check_jump(file, lineno, w[1], e) != 0) {
			r = -1;
			break;
		}
		if (strcmp(w[0], "include") == 0) {
			for (i = 1; i < n && r == 0; i++)
				r = include(c, w[i], depth, e);
			continue;
		}
		b = &c->blocks[bi];
		b->opts = xgrow(b->opts, b->nopts,
		    sizeof *b->opts);
		b->opts[b->nopts].key = xstrdup(w[0]);
		b->opts[b->nopts].value = xstrdup(w[1]);
		b->nopts++;
	}
	free(line);
	return r;
}

/*
 * Only a regular file is read: an Include of a FIFO would hang, one of
 * /dev/zero would read until memory runs out.
 */
static int
parse_file(struct ssh_config *c, const char *file, int must_exist, int depth,
    struct err *e)
{
	struct stat	 st;
	FILE		*f;
	int		 fd, r;

	if (depth > INCLUDE_DEPTH)
		return err_set(e, "ssh config '%s': Include nested too deeply",
		    file);
	if ((fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (!must_exist && errno == ENOENT)
			return 0;
		return err_set(e, "unable to read ssh config '%s': %s", file,
		    xstrerror(errno));
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		r = err_set(e, "unable to read ssh config '%s': not a regular "
		    "file", file);
		close(fd);
		return r;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		r = err_set(e, "unable to read ssh config '%s': %s", file,
		    xstrerror(errno));
		close(fd);
		return r;
	}
	r = parse_stream(c, f, file, depth, e);
	fclose(f);
	return r;
}

int
ssh_config_load(const char *file, int must_exist, struct ssh_config **out,
    struct err *e)
{
	struct ssh_config	*c;

	*out = NULL;
	c = xcalloc(1, sizeof *c);
	if (parse_file(c, file, must_exist, 0, e) != 0) {
		ssh_config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

/* The same from memory, named name in errors (for the fuzzer). */
int
ssh_config_load_buffer(const char *name, const char *text, size_t len,
    struct ssh_config **out, struct err *e)
{
	struct ssh_config	*c;
	FILE			*f = NULL;
	int			 r = 0;

	*out = NULL;
	c = xcalloc(1, sizeof *c);
	if (len > 0 && (f = fmemopen((void *)(uintptr_t)text, len, "r")) ==
	    NULL) {
		ssh_config_free(c);
		return err_set(e, "unable to read ssh config '%s': %s", name,
		    xstrerror(errno));
	}
	if (f != NULL) {
		r = parse_stream(c, f, name, 0, e);
		fclose(f);
	}
	if (r != 0) {
		ssh_config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

/* A Host line matches when a pattern matches and no !pattern does. */
static int
block_matches(const struct ssh_block *b, const char *host)
{
	size_t	i;
	int	yes = 0;

	if (b->never)
		return 0;
	for (i = 0; i < b->npatterns; i++) {
		if (b->patterns[i][0] == '!') {
			if (fnmatch(b->patterns[i] + 1, host, 0) == 0)
				return 0;
		} else if (fnmatch(b->patterns[i], host, 0) == 0)
			yes = 1;
	}
	return yes;
}

/* %h (host), %d (home), %u (local user), %r (remote user), %%. */
static char *
expand_tokens(const char *s, const char *host, const char *ruser)
{
	struct buf	 b;
	const char	*u;
	char		*path;

	buf_init(&b);
	for (; *s != '\0'; s++) {
		if (*s != '%' || s[1] == '\0') {
			buf_addc(&b, *s);
			continue;
		}
		switch (*++s) {
		case 'h':
			buf_adds(&b, host);
			break;
		case 'd':
			buf_adds(&b, ssh_home());
			break;
		case 'u':
			if ((u = ssh_local_user()) == NULL)
				u = getenv("USER");
			buf_adds(&b, u != NULL ? u : "");
			break;
		case 'r':
			buf_adds(&b, ruser != NULL ? ruser : "");
			break;
		default:
			buf_addc(&b, *s);
			break;
		}
	}
	buf_addc(&b, '\0');
	path = ssh_expand_path(b.data, NULL);
	buf_free(&b);
	return path;
}

static int
number(const char *s)
{
	char	*end;
	long	 v;

	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < 1 || v > 65535)
		return 0;
	return (int)v;
}

void
ssh_config_lookup(const struct ssh_config *c, const char *host,
    struct ssh_host_config *hc)
{
	const struct ssh_block	*b;
	const struct ssh_option	*o;
	size_t			 i, k;

	memset(hc, 0, sizeof *hc);
	if (c == NULL)
		return;
	for (i = 0; i < c->nblocks; i++) {
		b = &c->blocks[i];
		if (!block_matches(b, host))
			continue;
		for (k = 0; k < b->nopts; k++) {
			o = &b->opts[k];
			if (strcmp(o->key, "hostname") == 0 &&
			    hc->hostname == NULL)
				hc->hostname = expand_tokens(o->value, host,
				    NULL);
			else if (strcmp(o->key, "user") == 0 &&
			    hc->user == NULL)
				hc->user = xstrdup(o->value);
			else if (strcmp(o->key, "port") == 0 && hc->port == 0)
				hc->port = number(o->value);
			else if (strcmp(o->key, "userknownhostsfile") == 0 &&
			    hc->known_hosts == NULL)
				hc->known_hosts = expand_tokens(o->value, host,
				    NULL);
			else if (strcmp(o->key, "proxyjump") == 0 &&
			    hc->proxy_jump == NULL)
				hc->proxy_jump = xstrdup(o->value);
			else if (strcmp(o->key, "connecttimeout") == 0 &&
			    hc->connect_timeout == 0)
				hc->connect_timeout = number(o->value);
			else if (strcmp(o->key, "identityfile") == 0 &&
			    strcasecmp(o->value, "none") != 0) {
				hc->identity = xgrow(hc->identity,
				    hc->nidentity, sizeof *hc->identity);
				hc->identity[hc->nidentity++] = expand_tokens(
				    o->value, host, hc->user);
			}
		}
	}
}

void
ssh_host_config_free(struct ssh_host_config *hc)
{
	size_t	i;

	free(hc->hostname);
	free(hc->user);
	free(hc->known_hosts);
	free(hc->proxy_jump);
	for (i = 0; i < hc->nidentity; i++)
		free(hc->identity[i]);
	free(hc->identity);
	memset(hc, 0, sizeof *hc);
}

void
ssh_config_free(struct ssh_config *c)
{
	size_t	i, k;

	if (c == NULL)
		return;
	for (i = 0; i < c->nblocks; i++) {
		for (k = 0; k < c->blocks[i].npatterns; k++)
			free(c->blocks[i].patterns[k]);
		free(c->blocks[i].patterns);
		for (k = 0; k < c->blocks[i].nopts; k++) {
			free(c->blocks[i].opts[k].key);
			free(c->blocks[i].opts[k].value);
		}
		free(c->blocks[i].opts);
	}
	free(c->blocks);
	free(c);
}
