/*
 * agent.h: the parts of reops-agent(8): the server (agent-serve.c, the
 * poll loop, with agent-dispatch.c, agent-job.c and agent-reply.c, which
 * share agent-int.h), the authorized runner keys and ZAP handler
 * (agent-auth.c), the requests answered without a shell (agent-request.c)
 * and logging (reops-agent.c).
 */
#ifndef REOPS_AGENT_H
#define REOPS_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "agent-client.h"
#include "frame.h"
#include "util.h"

#define AGENT_MAXMSG_DEFAULT	(64 * 1024 * 1024)
#define AGENT_JOBS_DEFAULT	8
#define AGENT_QUEUE_MAX		4096
#define AGENT_GRACE_MS		2000	/* from TERM to KILL */
#define AGENT_CHUNK		65536	/* bytes of output per reply */

struct agent_conf {
	const char	*keyfile;
	const char	*authorized;
	const char	*endpoints[16];
	size_t		 nendpoints;
	int		 jobs;
	long		 maxmsg;
	int		 foreground;
	int		 heartbeat_ms;
	char		 secret[AGENT_KEY_LEN + 1];
	char		 public[AGENT_KEY_LEN + 1];
};

/* Log lines go to stderr with -d, else to syslog. */
void	agent_log(int, const char *, ...) __attribute__((format(printf, 2, 3)));
/* A printable, shortened copy of bytes for a log line. */
char	*agent_printable(const void *, size_t, size_t);

/* The authorized runner keys, raw 32-byte CURVE keys. */
struct agent_auth {
	uint8_t	(*keys)[32];
	size_t	  n;
};
int	agent_auth_load(struct agent_auth *, const char *, struct err *);
void	agent_auth_free(struct agent_auth *);
int	agent_auth_has(const struct agent_auth *, const uint8_t *);
/* Answers one ZAP request waiting on the handler socket. */
void	agent_zap_handle(void *, const struct agent_auth *);

int	agent_serve(struct agent_conf *);

/* Facts of this host as key=value lines, the columns of the facts stage. */
void	agent_facts(struct buf *);
/* Writes a file in place (mkstemp, fsync, rename); fills its sha256. */
int	agent_put_file(const char *, unsigned, const void *, size_t,
	    char[65], struct err *);

#endif
