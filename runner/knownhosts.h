/*
 * knownhosts.h: host key checking for the ssh transport, one collection
 * of known_hosts entries per inventory group.
 */
#ifndef REOPS_KNOWNHOSTS_H
#define REOPS_KNOWNHOSTS_H

#include <libssh2.h>

#include "inventory.h"

struct known_hosts;

struct known_hosts *known_hosts_load(const struct group *, const char *);
struct known_hosts *known_hosts_load_buffer(const char *, const char *, size_t);
void	known_hosts_free(struct known_hosts *);
/* 0 when the session's host key may be trusted; else -1 and a reason. */
int	known_hosts_check(struct known_hosts *, LIBSSH2_SESSION *,
	    const char *, int, enum hostkeys, char **);

/* The same for a host whose key its system's metadata pins (or learns). */
int	host_key_pinned(LIBSSH2_SESSION *, const char *, int,
	    struct host_pin *, char **);

#endif
