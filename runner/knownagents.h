/*
 * knownagents.h: where the runner's agent key is and which agent key each
 * host is pinned to. A known-agents file has one "HOST[:PORT] Z85KEY
 * [comment]" line per agent, like known_hosts: HOST is the host's address
 * (its name when it has none), a line without a port is for the default
 * port, '#' starts a comment. CurveZMQ never sends the agent's key in
 * clear, so there is no trust on first use: lines come from enroll (over
 * ssh, whose host key vouches for them) or by hand from the agent's .pub.
 *
 * Defaults, under $XDG_CONFIG_HOME (else ~/.config):
 *	reops/agent.key		the runner's secret key (reops-agent --keygen)
 *	reops/known_agents	the pinned agent keys
 * A relative path in the inventory is relative to the file that names it.
 */
#ifndef REOPS_KNOWNAGENTS_H
#define REOPS_KNOWNAGENTS_H

#include "inventory.h"
#include "util.h"

#define KNOWN_AGENTS_KEY_LEN	40	/* a Z85 CURVE public key */

char	*agent_config_path(const char *);	/* $XDG_CONFIG_HOME/reops/X */
char	*agent_key_path(const struct group *);
char	*known_agents_path(const struct group *);
int	 agent_port(const struct host *);	/* the group's, or 7707 */
int	 z85_key_valid(const char *, size_t);

/*
 * The key pinned for host:port: 1 with key set (NUL-terminated), 0 when
 * the file has no line for it or does not exist, -1 when the file cannot
 * be read or a line is malformed (e says where).
 */
int	known_agents_lookup(const char *, const char *, int,
	    char [KNOWN_AGENTS_KEY_LEN + 1], struct err *);
/* The same on a file's text, which it changes in place: the fuzzer's. */
int	known_agents_lookup_text(const char *, char *, const char *, int,
	    char [KNOWN_AGENTS_KEY_LEN + 1], int *, struct err *);
/*
 * Pins key for host:port under an exclusive lock on the file (made 0600
 * with its directory when missing): 0 added, 1 the same key was there,
 * 2 another key is pinned (e says which line), -1 with e set.
 */
int	known_agents_add(const char *, const char *, int, const char *,
	    struct err *);

#endif
