/*
 * knownhosts.c: host key checking for the ssh transport. One collection
 * per group (its known-hosts files, ~/.ssh/known_hosts and the system
 * file), read once per run with libssh2's parser, which handles
 * [host]:port and hashed entries. A file that cannot be read makes the
 * group fail closed; accept-new appends unknown keys under a lock, one
 * line in one write, so concurrent runs never interleave lines, and only
 * after reading the file again under that lock, so that runs at the same
 * time record each host once.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inventory.h"
#include "knownhosts.h"
#include "ssh.h"

#define SYSTEM_KNOWN_HOSTS	"/etc/ssh/ssh_known_hosts"

struct known_hosts {
	LIBSSH2_SESSION		*owner;	/* libssh2 wants one; never connected */
	LIBSSH2_KNOWNHOSTS	*kh;
	char			*write_file;	/* where accept-new records */
	char			*unreadable;	/* why we must fail closed */
	char			**revoked;	/* base64 keys of @revoked lines */
	size_t			 nrevoked;
};


/* The key field of "@revoked HOSTS TYPE KEY". */
static void
add_revoked(struct known_hosts *k, char *line)
{
	char	*w[4], *save = NULL, *p;
	int	 n = 0;

	for (p = strtok_r(line, " \t", &save); p != NULL && n < 4;
	    p = strtok_r(NULL, " \t", &save))
		w[n++] = p;
	if (n < 4)
		return;
	k->revoked = xgrow(k->revoked, k->nrevoked,
	    sizeof *k->revoked);
	k->revoked[k->nrevoked++] = xstrdup(w[3]);
}

/*
 * Reads line by line: libssh2_knownhost_readfile gives up on the first
 * line it does not understand (an sk- key, a certificate authority),
 * which would turn one odd line into "every host unknown".
 */
static void
read_stream(struct known_hosts *k, FILE *f, const char *file)
{
	char	*line = NULL, *p;
	size_t	 cap = 0;
	ssize_t	 len;
	int	 lineno = 0;

	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		if (strncmp(p, "@revoked", 8) == 0) {
			add_revoked(k, p);
			continue;
		}
		if (*p == '@')
			continue;	/* @cert-authority: no certificates */
		if (libssh2_knownhost_readline(k->kh, p, strlen(p),
		    LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
			log_debug("%s:%d: known_hosts line not understood; "
			    "skipped", file, lineno);
	}
	free(line);
	if (ferror(f) && k->unreadable == NULL)
		k->unreadable = xasprintf("unable to read known_hosts '%s'",
		    file);
}

/*
 * A regular file, or /dev/null (UserKnownHostsFile /dev/null is common):
 * a FIFO would hang, /dev/zero would read until memory runs out.
 */
static int
read_file(struct known_hosts *k, const char *file, int optional)
{
	struct stat	 st, null;
	FILE		*f;
	int		 fd;

	memset(&st, 0, sizeof st);
	if ((fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (optional && errno == ENOENT)
			return 0;
		if (k->unreadable == NULL)
			k->unreadable = xasprintf("unable to read known_hosts "
			    "'%s': %s", file, xstrerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		if (S_ISCHR(st.st_mode) && stat("/dev/null", &null) == 0 &&
		    S_ISCHR(null.st_mode) && st.st_rdev == null.st_rdev)
			return 0;
		if (k->unreadable == NULL)
			k->unreadable = xasprintf("unable to read known_hosts "
			    "'%s': not a regular file", file);
		return -1;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		if (k->unreadable == NULL)
			k->unreadable = xasprintf("unable to read known_hosts "
			    "'%s': %s", file, xstrerror(errno));
		return -1;
	}
	read_stream(k, f, file);
	fclose(f);
	return 0;
}

static struct known_hosts *
known_hosts_new(void)
{
	struct known_hosts	*k;

	k = xcalloc(1, sizeof *k);
	if ((k->owner = libssh2_session_init()) == NULL ||
	    (k->kh = libssh2_knownhost_init(k->owner)) == NULL)
		k->unreadable = xstrdup("unable to set up known_hosts "
		    "checking");
	return k;
}

/* Entries from memory, named name in messages (for the fuzzer). */
struct known_hosts *
known_hosts_load_buffer(const char *name, const char *text, size_t len)
{
	struct known_hosts	*k;
	FILE			*f;

	k = known_hosts_new();
	if (k->kh == NULL || len == 0)
		return k;
	if ((f = fmemopen((void *)(uintptr_t)text, len, "r")) == NULL) {
		k->unreadable = xasprintf("unable to read known_hosts '%s': "
		    "%s", name, xstrerror(errno));
		return k;
	}
	read_stream(k, f, name);
	fclose(f);
	return k;
}

/*
 * The group's files, then the user's (ssh_config's UserKnownHostsFile or
 * ~/.ssh/known_hosts), then the system's.
 */
struct known_hosts *
known_hosts_load(const struct group *g, const char *user_file)
{
	struct known_hosts	*k;
	char			*path, *base, *user;
	size_t			 i;

	k = known_hosts_new();
	if (k->kh == NULL)
		return k;
	base = path_dir(g->where != NULL ? g->where->file : NULL);
	user = ssh_expand_path(user_file != NULL ? user_file :
	    "~/.ssh/known_hosts", NULL);
	for (i = 0; i < g->nknown_hosts; i++) {
		path = ssh_expand_path(g->known_hosts[i], base);
		/* accept-new creates the file it records into. */
		read_file(k, path, g->hostkeys == HK_ACCEPT_NEW && i == 0);
		if (i == 0)
			k->write_file = path;
		else
			free(path);
	}
	read_file(k, user, 1);
	read_file(k, SYSTEM_KNOWN_HOSTS, 1);
	if (k->write_file == NULL)
		k->write_file = user;
	else
		free(user);
	free(base);
	return k;
}

void
known_hosts_free(struct known_hosts *k)
{
	size_t	i;

	if (k == NULL)
		return;
	if (k->kh != NULL)
		libssh2_knownhost_free(k->kh);
	if (k->owner != NULL)
		libssh2_session_free(k->owner);
	for (i = 0; i < k->nrevoked; i++)
		free(k->revoked[i]);
	free(k->revoked);
	free(k->write_file);
	free(k->unreadable);
	free(k);
}

static int
key_bit(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		return LIBSSH2_KNOWNHOST_KEY_ED25519;
	}
	return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
}

/* The algorithm name that opens every ssh key blob ("ssh-ed25519"). */
static char *
key_type_name(const unsigned char *key, size_t len)
{
	uint32_t	n;

	if (len < 4)
		return xstrdup("unknown");
	n = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 |
	    (uint32_t)key[2] << 8 | key[3];
	if (n == 0 || n > 64 || n > len - 4)
		return xstrdup("unknown");
	return xstrndup((const char *)key + 4, n);
}

/*
 * What file says of name's key now: another run may have recorded it
 * since we read the file. A LIBSSH2_KNOWNHOST_CHECK_* value.
 */
static int
recheck(struct known_hosts *k, const char *file, const char *name,
    const unsigned char *key, size_t len, int ktype)
{
	struct known_hosts	now;
	size_t			i;
	int			r;

	memset(&now, 0, sizeof now);
	now.owner = k->owner;
	if ((now.kh = libssh2_knownhost_init(k->owner)) == NULL)
		return LIBSSH2_KNOWNHOST_CHECK_FAILURE;
	read_file(&now, file, 1);
	r = now.unreadable != NULL ? LIBSSH2_KNOWNHOST_CHECK_FAILURE :
	    libssh2_knownhost_checkp(now.kh, name, -1, (const char *)key, len,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	    key_bit(ktype), NULL);
	libssh2_knownhost_free(now.kh);
	for (i = 0; i < now.nrevoked; i++)
		free(now.revoked[i]);
	free(now.revoked);
	free(now.unreadable);
	return r;
}

/*
 * Appends line unless, looked at again under the lock, the file has the
 * key already: 0 appended, 1 there already, 2 another key for the name
 * came first, -1 with a reason.
 */
static int
append_line(struct known_hosts *k, const char *name,
    const unsigned char *key, size_t klen, int ktype, const char *line,
    char **reason)
{
	const char	*file = k->write_file;
	char		*dir;
	struct stat	 sb;
	int		 fd, r = 0;
	size_t		 len = strlen(line);

	dir = path_dir(file);
	if (stat(dir, &sb) == -1 && errno == ENOENT)
		mkdir(dir, 0700);
	free(dir);
	if ((fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600)) == -1) {
		*reason = xasprintf("unable to record the host key in '%s': "
		    "%s", file, xstrerror(errno));
		return -1;
	}
	/* The lock orders us with other reops-run processes; O_APPEND and
	 * one write keep each line whole for readers such as ssh(1). */
	if (flock(fd, LOCK_EX) == -1)
		goto fail;
	switch (recheck(k, file, name, key, klen, ktype)) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		r = 1;
		goto out;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		r = 2;
		goto out;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		break;
	default:
		*reason = xasprintf("unable to record the host key in '%s': "
		    "unable to read it again", file);
		r = -1;
		goto out;
	}
	if (write(fd, line, len) != (ssize_t)len || fsync(fd) == -1)
		goto fail;
out:
	close(fd);
	return r;
fail:
	*reason = xasprintf("unable to record the host key in '%s': %s",
	    file, xstrerror(errno));
	close(fd);
	return -1;
}

int
known_hosts_check(struct known_hosts *k, LIBSSH2_SESSION *s,
    const char *addr, int port, enum hostkeys policy, char **reason)
{
	const unsigned char	*key;
	struct libssh2_knownhost *found = NULL;
	unsigned char		 digest[32];
	struct sha256		 ctx;
	struct buf		 fp, b64, line;
	char			*name, *type;
	size_t			 len, i;
	int			 ktype, r, ret = -1;

	*reason = NULL;
	if (policy == HK_OFF)
		return 0;
	if ((key = (const unsigned char *)libssh2_session_hostkey(s, &len,
	    &ktype)) == NULL) {
		*reason = xstrdup("the server sent no host key");
		return -1;
	}
	name = port == 22 ? xstrdup(addr) : xasprintf("[%s]:%d", addr, port);
	type = key_type_name(key, len);
	buf_init(&fp);
	buf_init(&b64);
	buf_init(&line);
	sha256_init(&ctx);
	sha256_update(&ctx, key, len);
	sha256_final(&ctx, digest);
	buf_adds(&fp, "SHA256:");
	base64_encode(&fp, digest, sizeof digest, 0);
	base64_encode(&b64, key, len, 1);

	if (k->unreadable != NULL) {
		*reason = xasprintf("%s; refusing %s (%s %s)", k->unreadable,
		    name, type, fp.data);
		goto out;
	}
	for (i = 0; i < k->nrevoked; i++) {
		if (strcmp(k->revoked[i], b64.data) == 0) {
			*reason = xasprintf("host key of %s is revoked (%s %s)",
			    name, type, fp.data);
			goto out;
		}
	}
	/*
	 * By the name ssh(1) uses: "[addr]:port" off port 22. (Given the
	 * port, libssh2 would also take a key recorded for plain "addr",
	 * which is the host's port 22, perhaps another server.)
	 */
	r = libssh2_knownhost_checkp(k->kh, name, -1, (const char *)key, len,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	    key_bit(ktype), &found);
	switch (r) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		ret = 0;
		break;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		*reason = xasprintf("host key of %s has changed: the server "
		    "offers %s %s, known_hosts has another; refusing (possible "
		    "man-in-the-middle)", name, type, fp.data);
		break;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		if (policy != HK_ACCEPT_NEW) {
			*reason = xasprintf("host key of %s is not known (%s "
			    "%s); add it to known_hosts or use host-keys: "
			    "accept-new", name, type, fp.data);
			break;
		}
		buf_printf(&line, "%s %s %s\n", name, type, b64.data);
		if ((r = append_line(k, name, key, len, ktype, line.data,
		    reason)) < 0)
			break;
		if (r == 2) {
			/* Another run recorded another key meanwhile. */
			*reason = xasprintf("host key of %s has changed: the "
			    "server offers %s %s, known_hosts has another "
			    "(recorded meanwhile); refusing (possible "
			    "man-in-the-middle)", name, type, fp.data);
			break;
		}
		libssh2_knownhost_addc(k->kh, name, NULL, (const char *)key,
		    len, NULL, 0, LIBSSH2_KNOWNHOST_TYPE_PLAIN |
		    LIBSSH2_KNOWNHOST_KEYENC_RAW | key_bit(ktype), NULL);
		/* As ssh(1) does: a key trusted from now on is said aloud. */
		if (r == 0)
			log_warn("permanently added the host key of %s (%s %s) "
			    "to %s", name, type, fp.data, k->write_file);
		ret = 0;
		break;
	default:
		*reason = xasprintf("unable to check the host key of %s (%s "
		    "%s)", name, type, fp.data);
		break;
	}
out:
	free(name);
	free(type);
	buf_free(&fp);
	buf_free(&b64);
	buf_free(&line);
	return ret;
}

/*
 * A system reops-run created: its key is checked against the one its
 * domain's metadata pins; with none pinned yet, the key seen now is
 * learned (trust on first use, for our own new VM) for the caller to pin.
 */
int
host_key_pinned(LIBSSH2_SESSION *s, const char *addr, int port,
    struct host_pin *pin, char **reason)
{
	const unsigned char	*key;
	unsigned char		 digest[32];
	struct sha256		 ctx;
	struct buf		 fp, seen;
	char			*type;
	size_t			 len;
	int			 ktype, r = -1;

	*reason = NULL;
	if ((key = (const unsigned char *)libssh2_session_hostkey(s, &len,
	    &ktype)) == NULL) {
		*reason = xstrdup("the server sent no host key");
		return -1;
	}
	type = key_type_name(key, len);
	buf_init(&fp);
	buf_init(&seen);
	sha256_init(&ctx);
	sha256_update(&ctx, key, len);
	sha256_final(&ctx, digest);
	buf_adds(&fp, "SHA256:");
	base64_encode(&fp, digest, sizeof digest, 0);
	buf_printf(&seen, "%s ", type);
	base64_encode(&seen, key, len, 1);
	if (pin->expected == NULL) {
		free(pin->seen);
		pin->seen = buf_steal(&seen);
		log_info("%s port %d: first contact, pinning its host key (%s "
		    "%s) in the domain's metadata", addr, port, type, fp.data);
		r = 0;
	} else if (strcmp(pin->expected, seen.data) == 0)
		r = 0;
	else
		*reason = xasprintf("host key of %s port %d has changed: the "
		    "server offers %s %s, the system's domain metadata pins "
		    "another; refusing (possible man-in-the-middle)", addr,
		    port, type, fp.data);
	free(type);
	buf_free(&fp);
	buf_free(&seen);
	return r;
}
