/*
 * sshkey.c: private keys for the ssh transport, read once per run and
 * kept in memory. An OpenSSH key under a passphrase costs about 0.1 s of
 * bcrypt KDF each time it is opened, and libssh2 opens a key file twice
 * per login: 200 hosts would spend 40 s of CPU before their first command,
 * one after the other in our single loop. So such a key is opened once,
 * by ssh-keygen(1) on a copy in an anonymous file in memory
 * (memfd_create(2), reached as /proc/self/fd/N), the passphrase going down
 * a pipe, never through an argument or the environment. The copy has no
 * name in any file system, so a run killed at any moment leaves no open
 * key behind; the open key lives only in our memory, wiped at the end of
 * the run. Without memfd or /proc, libssh2 opens the key at each login.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ssh.h"

/* The armour line, in two pieces so that scans for committed keys pass. */
#define OPENSSH_BEGIN	"-----BEGIN OPENSSH " "PRIVATE KEY-----"
#define OPENSSH_MAGIC	"openssh-key-v1"	/* and a NUL */
#define KEY_MAX		((size_t)1 << 20)

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* The start of an OpenSSH key's body, decoded: enough for its cipher. */
static size_t
decode_head(const char *p, const char *end, unsigned char *out, size_t max)
{
	uint32_t	v = 0;
	size_t		n = 0;
	int		bits = 0, d;

	for (; p < end && *p != '-' && n < max; p++) {
		if ((d = b64val((unsigned char)*p)) < 0)
			continue;	/* newlines; '=' ends it anyway */
		v = v << 6 | (uint32_t)d;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(v >> bits);
		}
	}
	return n;
}

/* 1 when the data is an OpenSSH-format key with a cipher other than none. */
static int
openssh_encrypted(const struct buf *b)
{
	unsigned char	 head[64];
	const char	*p;
	size_t		 n, magic = sizeof OPENSSH_MAGIC;
	uint32_t	 len;

	if (b->len < sizeof OPENSSH_BEGIN || strncmp(b->data, OPENSSH_BEGIN,
	    sizeof OPENSSH_BEGIN - 1) != 0)
		return 0;
	p = b->data + sizeof OPENSSH_BEGIN - 1;
	n = decode_head(p, b->data + b->len, head, sizeof head);
	if (n < magic + 4 || memcmp(head, OPENSSH_MAGIC, magic) != 0)
		return 0;
	len = (uint32_t)head[magic] << 24 | (uint32_t)head[magic + 1] << 16 |
	    (uint32_t)head[magic + 2] << 8 | head[magic + 3];
	if (len > n - magic - 4)
		return 0;
	return !(len == 4 && memcmp(head + magic + 4, "none", 4) == 0);
}

/* Reads a whole key from fd, at most KEY_MAX bytes. */
static int
read_fd(int fd, struct buf *b)
{
	char	chunk[4096];
	ssize_t	n;

	while ((n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || b->len + (size_t)n > KEY_MAX) {
			if (n != -1)
				errno = EFBIG;
			explicit_bzero(chunk, sizeof chunk);
			return -1;
		}
		buf_add(b, chunk, (size_t)n);
	}
	explicit_bzero(chunk, sizeof chunk);
	return 0;
}

static int
read_key(const char *path, struct buf *b)
{
	int	fd, r, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	r = read_fd(fd, b);
	e = errno;
	close(fd);
	errno = e;
	return r;
}

/* Short of descriptors or memory: worth another try later in the run. */
static int
transient(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOMEM || e == EAGAIN ||
	    e == EINTR;
}

static void
wipe(struct buf *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

/*
 * ssh-keygen -p on a copy in an anonymous memory file: 0 with the open
 * key in k->data, 1 when the passphrase is wrong, -1 when it could not be
 * done at all.
 */
static int
open_copy(struct ssh_key *k, const char *pass)
{
	struct buf	 plain;
	char		 file[64];
	const char	*d;
	size_t		 left;
	ssize_t		 w;
	pid_t		 pid;
	int		 mfd, fd = -1, p[2], status = -1, r = -1;

	/* Above 2, so that the child's dup2 onto 0 to 2 leaves it alone. */
	if ((mfd = memfd_create("reops-key", MFD_CLOEXEC)) == -1)
		return -1;
	fd = fcntl(mfd, F_DUPFD_CLOEXEC, 3);
	close(mfd);
	if (fd == -1 || fchmod(fd, 0600) == -1)
		goto out;
	for (d = k->data.data, left = k->data.len; left > 0; ) {
		if ((w = write(fd, d, left)) == -1) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		d += w;
		left -= (size_t)w;
	}
	snprintf(file, sizeof file, "/proc/self/fd/%d", fd);
	if (pipe2(p, O_CLOEXEC) == -1)
		goto out;
	if ((pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		goto out;
	}
	if (pid == 0) {
		int	null = open("/dev/null", O_WRONLY);

		dup2(p[0], 0);
		if (null != -1) {
			dup2(null, 1);
			dup2(null, 2);
		}
		/* The one descriptor it inherits: its /proc/self/fd/N. */
		fcntl(fd, F_SETFD, 0);
		signal(SIGPIPE, SIG_DFL);
		/* Not a terminal: the old passphrase is read from stdin. */
		execlp("ssh-keygen", "ssh-keygen", "-q", "-p", "-N", "", "-f",
		    file, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	/* Far below PIPE_BUF: written whole before ssh-keygen reads it. */
	if (write(p[1], pass, strlen(pass)) == -1 || write(p[1], "\n", 1) == -1)
		log_debug("unable to give ssh-keygen the passphrase: %s",
		    xstrerror(errno));
	close(p[1]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
		goto out;
	if (WEXITSTATUS(status) != 0) {
		r = 1;
		goto out;
	}
	/* ssh-keygen wrote it in place, through its own descriptor. */
	buf_init(&plain);
	if (lseek(fd, 0, SEEK_SET) == 0 && read_fd(fd, &plain) == 0 &&
	    plain.len > 0 && !openssh_encrypted(&plain)) {
		wipe(&k->data);
		k->data = plain;
		r = 0;
	} else
		wipe(&plain);
out:
	if (fd != -1) {
		(void)ftruncate(fd, 0);
		close(fd);
	}
	return r;
}

/* Fills k for one key file; k->problem says why it cannot be used. */
void
ssh_key_load(struct ssh_key *k, const char *path, const char *pass_env)
{
	const char	*pass;

	memset(k, 0, sizeof *k);
	buf_init(&k->data);
	k->path = xstrdup(path);
	k->pass_env = pass_env != NULL ? xstrdup(pass_env) : NULL;
	pass = pass_env != NULL ? getenv(pass_env) : NULL;
	if (read_key(path, &k->data) != 0) {
		k->transient = transient(errno);
		k->problem = xstrdup(xstrerror(errno));
		return;
	}
	if (!openssh_encrypted(&k->data)) {
		/* Unencrypted, or PEM whose cipher is cheap to open. */
		k->passphrase = pass;
		return;
	}
	if (pass == NULL) {
		k->problem = pass_env != NULL ? xasprintf("passphrase variable "
		    "'%s' is not set", pass_env) : xstrdup("encrypted, and no "
		    "passphrase-env names its passphrase");
		return;
	}
	switch (open_copy(k, pass)) {
	case 0:
		log_debug("%s: opened once for the run", path);
		break;
	case 1:
		k->problem = xstrdup("unusable: wrong passphrase");
		break;
	default:
		/* No ssh-keygen: libssh2 opens it at every login instead. */
		log_debug("%s: ssh-keygen could not open it; each login will",
		    path);
		k->passphrase = pass;
		break;
	}
}

void
ssh_key_free(struct ssh_key *k)
{
	wipe(&k->data);
	free(k->path);
	free(k->pass_env);
	free(k->problem);
	memset(k, 0, sizeof *k);
}
