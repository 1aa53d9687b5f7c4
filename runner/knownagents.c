/*
 * knownagents.c: the runner's agent key path and the known-agents file,
 * which pins each agent's public key per host and port.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-client.h"
#include "knownagents.h"
#include "ssh.h"

#define KNOWN_AGENTS_MAX	(4 * 1024 * 1024)

static const char z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ".-:+=^!/*?&<>()[]{}@%$#";

int
z85_key_valid(const char *s, size_t len)
{
	size_t	i;

	if (len != KNOWN_AGENTS_KEY_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] == '\0' || strchr(z85_chars, s[i]) == NULL)
			return 0;
	return 1;
}

char *
agent_config_path(const char *leaf)
{
	const char	*x = getenv("XDG_CONFIG_HOME");

	/* The XDG rule: a relative value is ignored. */
	if (x != NULL && x[0] == '/')
		return xasprintf("%s/reops/%s", x, leaf);
	return xasprintf("%s/.config/reops/%s", ssh_home(), leaf);
}

static char *
group_path(const struct group *g, const char *set, const char *leaf)
{
	char	*base, *path;

	if (set == NULL)
		return agent_config_path(leaf);
	base = path_dir(g->where != NULL ? g->where->file : NULL);
	path = ssh_expand_path(set, base);
	free(base);
	return path;
}

char *
agent_key_path(const struct group *g)
{
	return group_path(g, g->agent.key, "agent.key");
}

char *
known_agents_path(const struct group *g)
{
	return group_path(g, g->agent.known_agents, "known_agents");
}

int
agent_port(const struct host *h)
{
	return h->group->agent.port > 0 ? h->group->agent.port : AGENT_PORT;
}

/*
 * One line taken apart: 1 with host, port and key, 0 for a blank or
 * comment line, -1 with a reason.
 */
static int
parse_line(char *line, const char **host, int *port, const char **key,
    size_t *keylen, const char **why)
{
	char	*p = line, *h, *end, *colon;
	long	 v;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	h = p;
	while (*p != '\0' && *p != ' ' && *p != '\t')
		p++;
	if (*p == '\0') {
		*why = "expected 'HOST[:PORT] KEY'";
		return -1;
	}
	*p++ = '\0';
	*port = AGENT_PORT;
	if (*h == '[') {
		/* [v6-address]:PORT */
		if ((end = strchr(h, ']')) == NULL) {
			*why = "unclosed '[' in the host";
			return -1;
		}
		*end = '\0';
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL) {
			*why = "expected ':PORT' after ']'";
			return -1;
		}
		h++;
	} else if ((colon = strrchr(h, ':')) != NULL &&
	    strchr(h, ':') != colon)
		colon = NULL;		/* a bare v6 address */
	if (colon != NULL) {
		*colon = '\0';
		errno = 0;
		v = strtol(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end != '\0' || errno != 0 || v < 1 ||
		    v > 65535) {
			*why = "the port must be a number from 1 to 65535";
			return -1;
		}
		*port = (int)v;
	}
	if (*h == '\0') {
		*why = "empty host";
		return -1;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	*key = p;
	while (*p != '\0' && *p != ' ' && *p != '\t')
		p++;
	*keylen = (size_t)(p - *key);
	if (!z85_key_valid(*key, *keylen)) {
		*why = "the key must be 40 characters of Z85, as in the "
		    "agent's .pub file";
		return -1;
	}
	*host = h;
	return 1;
}

/*
 * Looks host:port up in text (changed in place): 1 found, 0 not, -1
 * malformed (e says where). line, when found, is the line number.
 */
int
known_agents_lookup_text(const char *file, char *text, const char *host,
    int port, char key[KNOWN_AGENTS_KEY_LEN + 1], int *lineno, struct err *e)
{
	const char	*h, *k, *why;
	char		*line, *next;
	size_t		 klen;
	int		 n = 0, p, r;

	for (line = text; line != NULL; line = next) {
		n++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (strchr(line, '\r') != NULL)
			*strchr(line, '\r') = '\0';
		r = parse_line(line, &h, &p, &k, &klen, &why);
		if (r == -1)
			return err_at(e, file, n, 1, "%s", why);
		if (r == 1 && p == port && strcmp(h, host) == 0) {
			memcpy(key, k, klen);
			key[klen] = '\0';
			*lineno = n;
			return 1;
		}
	}
	return 0;
}

int
known_agents_lookup(const char *file, const char *host, int port,
    char key[KNOWN_AGENTS_KEY_LEN + 1], struct err *e)
{
	struct buf	b;
	struct stat	sb;
	int		r, line;

	if (stat(file, &sb) == -1 && errno == ENOENT)
		return 0;
	buf_init(&b);
	if (read_regular_file(file, KNOWN_AGENTS_MAX, &b, e) != 0) {
		buf_free(&b);
		return -1;
	}
	buf_addc(&b, '\0');
	if (memchr(b.data, '\0', b.len - 1) != NULL)
		r = err_set(e, "%s: not a text file", file);
	else
		r = known_agents_lookup_text(file, b.data, host, port, key,
		    &line, e);
	buf_free(&b);
	return r;
}

int
known_agents_add(const char *file, const char *host, int port,
    const char *key, struct err *e)
{
	char		 old[KNOWN_AGENTS_KEY_LEN + 1], *dir, *line, *text;
	struct stat	 sb;
	ssize_t		 w;
	size_t		 len;
	int		 fd, r, n;

	if (!z85_key_valid(key, strlen(key)))
		return err_set(e, "not a Z85 agent key: '%.60s'", key);
	dir = path_dir(file);
	if (stat(dir, &sb) == -1 && errno == ENOENT)
		(void)mkdir(dir, 0700);
	free(dir);
	if ((fd = open(file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW | O_NOCTTY, 0600)) == -1)
		return err_set(e, "unable to open '%s': %s", file,
		    xstrerror(errno));
	/* Ordered with other runs; read again under the lock. */
	if (flock(fd, LOCK_EX) == -1 || fstat(fd, &sb) == -1) {
		r = err_set(e, "unable to lock '%s': %s", file,
		    xstrerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > KNOWN_AGENTS_MAX) {
		r = err_set(e, "'%s' is not a regular file of at most 4 MiB",
		    file);
		goto out;
	}
	text = xmalloc((size_t)sb.st_size + 1);
	len = 0;
	while (len < (size_t)sb.st_size) {
		w = pread(fd, text + len, (size_t)sb.st_size - len, (off_t)len);
		if (w <= 0)
			break;
		len += (size_t)w;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL)
		r = err_set(e, "%s: not a text file", file);
	else
		r = known_agents_lookup_text(file, text, host, port, old,
		    &n, e);
	free(text);
	if (r == -1)
		goto out;
	if (r == 1 && strcmp(old, key) == 0)
		goto out;
	if (r == 1) {
		err_at(e, file, n, 1, "'%s' port %d is pinned to another "
		    "agent key; remove the line if the agent's key changed on "
		    "purpose", host, port);
		r = 2;
		goto out;
	}
	if (strchr(host, ':') != NULL)
		line = xasprintf("[%s]:%d %s\n", host, port, key);
	else if (port == AGENT_PORT)
		line = xasprintf("%s %s\n", host, key);
	else
		line = xasprintf("%s:%d %s\n", host, port, key);
	len = strlen(line);
	/* A file that did not end with a newline gets one first. */
	if (sb.st_size > 0) {
		char	last;

		if (pread(fd, &last, 1, sb.st_size - 1) == 1 && last != '\n' &&
		    write(fd, "\n", 1) != 1) {
			free(line);
			r = err_set(e, "unable to write '%s': %s", file,
			    xstrerror(errno));
			goto out;
		}
	}
	w = write(fd, line, len);
	free(line);
	if (w != (ssize_t)len || fsync(fd) == -1)
		r = err_set(e, "unable to write '%s': %s", file,
		    w == -1 || fsync(fd) == -1 ? xstrerror(errno) :
		    "short write");
	else
		r = 0;
out:
	close(fd);
	return r;
}
