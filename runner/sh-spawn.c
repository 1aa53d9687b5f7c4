/*
 * sh-spawn.c: one way to start a command, shared by the local transport and
 * reops-agent. posix_spawn is a vfork, not a copy of a process that maps
 * libvirt, libssh2 and libzmq, and does in the child what a fork did:
 * a process group of its own, no signal blocked, SIGINT and SIGPIPE at
 * their defaults, stdin from the given descriptor or /dev/null, stdout
 * and stderr to the given pipes.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include "sh-spawn.h"

extern char	**environ;

/*
 * Moves a descriptor out of 0-2, which a closed std stream left free, so
 * that no dup2 of spawn_sh overwrites another's source. 0, or -1 (errno).
 */
int
spawn_above_std(int *fd)
{
	int	n;

	if (*fd == -1 || *fd > 2)
		return 0;
	if ((n = fcntl(*fd, F_DUPFD_CLOEXEC, 3)) == -1)
		return -1;
	close(*fd);
	*fd = n;
	return 0;
}

/*
 * /bin/sh -c COMMAND with stdin from IN (-1: /dev/null), stdout to OUT
 * and stderr to ERR, all three above 2 (spawn_above_std). DIR, when not
 * NULL, is its working directory. With SPAWN_CLOSE_OTHERS no other
 * descriptor goes with it; else everything else of ours must be
 * O_CLOEXEC. 0 with *PID set, or an errno.
 */
int
spawn_sh(pid_t *pid, const char *command, int in, int out, int err,
    const char *dir, int flags)
{
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 attr;
	sigset_t			 set;
	char				*argv[] = { "sh", "-c", NULL, NULL };
	int				 e;

	argv[2] = (char *)command;
	if ((e = posix_spawnattr_init(&attr)) != 0)
		return e;
	if ((e = posix_spawn_file_actions_init(&fa)) != 0) {
		posix_spawnattr_destroy(&attr);
		return e;
	}
	sigemptyset(&set);
	if ((e = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (e = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
	    (e = posix_spawnattr_setsigmask(&attr, &set)) != 0)
		goto out;
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	if ((e = posix_spawnattr_setsigdefault(&attr, &set)) != 0)
		goto out;
	if (in != -1)
		e = posix_spawn_file_actions_adddup2(&fa, in, 0);
	else
		e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
		    O_RDONLY, 0);
	if (e != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, out, 1)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, err, 2)) != 0)
		goto out;
	if ((flags & SPAWN_CLOSE_OTHERS) &&
	    (e = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0)
		goto out;
	if (dir != NULL &&
	    (e = posix_spawn_file_actions_addchdir_np(&fa, dir)) != 0)
		goto out;
	e = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, environ);
out:
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return e;
}
