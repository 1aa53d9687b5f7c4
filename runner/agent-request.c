/*
 * agent-request.c: the requests reops-agent answers itself, without a
 * shell: the host's facts and writing a file for put-file.
 */
#include <sys/stat.h>
#include <sys/utsname.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "ssh.h"

/* The value of KEY= in an os-release file, unquoted. */
static void
os_release(const char *key, char *out, size_t outlen)
{
	FILE	*fp;
	char	 line[512], *v;
	size_t	 n, klen = strlen(key);

	out[0] = '\0';
	if ((fp = fopen("/etc/os-release", "re")) == NULL)
		return;
	while (fgets(line, sizeof line, fp) != NULL) {
		if (strncmp(line, key, klen) != 0 || line[klen] != '=')
			continue;
		v = line + klen + 1;
		v[strcspn(v, "\r\n")] = '\0';
		n = strlen(v);
		if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
			v[n - 1] = '\0';
			v++;
		}
		snprintf(out, outlen, "%s", v);
		break;
	}
	fclose(fp);
}

/* The first number on the line of path that starts with prefix. */
static long long
proc_number(const char *path, const char *prefix)
{
	FILE		*fp;
	char		 line[256];
	long long	 v = -1;

	if ((fp = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof line, fp) != NULL)
		if (strncmp(line, prefix, strlen(prefix)) == 0) {
			v = strtoll(line + strlen(prefix), NULL, 10);
			break;
		}
	fclose(fp);
	return v;
}

/* The same keys, in the same order, as the facts stage's script. */
void
agent_facts(struct buf *out)
{
	struct utsname	u;
	char		os[128], version[128];
	long long	mem, up;

	if (uname(&u) == -1)
		memset(&u, 0, sizeof u);
	os_release("ID", os, sizeof os);
	os_release("VERSION_ID", version, sizeof version);
	buf_printf(out, "os=%s\n", os[0] != '\0' ? os : u.sysname);
	buf_printf(out, "version=%s\n", version);
	buf_printf(out, "kernel=%s\n", u.release);
	buf_printf(out, "arch=%s\n", u.machine);
	buf_printf(out, "cpus=%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	mem = proc_number("/proc/meminfo", "MemTotal:");
	buf_printf(out, "memory=%lld\n", mem < 0 ? 0 : mem / 1024);
	up = proc_number("/proc/uptime", "");
	buf_printf(out, "uptime=%lld\n", up < 0 ? 0 : up);
}

/*
 * A new file beside the target, written whole and synced, then renamed
 * over it, so a reader sees the old file or the new one and never half.
 */
int
agent_put_file(const char *path, unsigned mode, const void *data, size_t len,
    char hex[65], struct err *e)
{
	const char	*p = data;
	char		*dir, *tmp;
	ssize_t		 w;
	size_t		 off = 0;
	int		 fd, dfd, saved, created = 0;

	dir = path_dir(path);
	tmp = xasprintf("%s/.reops-put.XXXXXX", dir);
	if ((fd = mkstemp(tmp)) == -1) {
		err_set(e, "unable to create a file in '%s': %s", dir,
		    strerror(errno));
		goto fail;
	}
	created = 1;
	while (off < len) {
		if ((w = write(fd, p + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail_write;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, mode) == -1 || fsync(fd) == -1)
		goto fail_write;
	if (close(fd) == -1) {
		fd = -1;
		goto fail_write;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		saved = errno;
		err_set(e, "unable to rename onto '%s': %s", path,
		    strerror(saved));
		goto fail;
	}
	/* The rename itself is durable once the directory is synced. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	sha256_hex(data, len, hex);
	free(tmp);
	free(dir);
	return 0;

 fail_write:
	saved = errno;
	err_set(e, "unable to write '%s': %s", path, strerror(saved));
 fail:
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	free(dir);
	return -1;
}
