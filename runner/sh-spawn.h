/*
 * sh-spawn.h: /bin/sh -c COMMAND started with posix_spawn, for the local
 * transport (local.c) and reops-agent (agent-job.c).
 */
#ifndef REOPS_SH_SPAWN_H
#define REOPS_SH_SPAWN_H

#include <sys/types.h>

/* Close in the child every descriptor above 2 (not only O_CLOEXEC ones). */
#define SPAWN_CLOSE_OTHERS	0x1

int	spawn_sh(pid_t *, const char *, int, int, int, const char *, int);
int	spawn_above_std(int *);

#endif
