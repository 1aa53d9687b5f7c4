/*
 * agent-int.h: what the parts of reops-agent's server share and nothing
 * else needs: the server, the commands it runs (jobs) and the request
 * being answered, and the functions of agent-serve.c (the poll loop),
 * agent-dispatch.c (requests), agent-job.c (commands) and agent-reply.c
 * (what goes back to runners).
 */
#ifndef REOPS_AGENT_INT_H
#define REOPS_AGENT_INT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

#define RID_MAX		256	/* a ROUTER routing id (libzmq: up to 255) */

enum job_state { JOB_QUEUED, JOB_RUNNING };
enum job_cause { CAUSE_NONE, CAUSE_DEADLINE, CAUSE_KILL, CAUSE_GONE,
	CAUSE_SHUTDOWN };

struct job {
	enum job_state	 state;
	unsigned char	 rid[RID_MAX];	/* the runner's ROUTER routing id */
	size_t		 rlen;
	char		 key[AGENT_KEY_LEN + 1];
	uint32_t	 id;
	char		*command;
	struct buf	 input;		/* stdin of exec-input; else /dev/null */
	int		 has_input;
	uint32_t	 deadline_ms;

	pid_t		 pid;
	int		 fd[2];		/* stdout, stderr; -1 at EOF */
	long long	 start, deadline_at, kill_at;
	enum job_cause	 cause;
	int		 kill_sent;
	int		 exited;
	int		 status;	/* as from waitpid */
	int		 gone;		/* the runner went away */
	int		 exit_queued;
	struct buf	 pending;	/* a reply the socket would not take */
};

struct server {
	struct agent_conf	*conf;
	struct agent_auth	 auth;
	void			*ctx, *zap, *router, *monitor;
	int			 sigfd;
	struct job		**jobs;
	size_t			 njobs, running;
	long long		 keepalive_at;
	int			 stop;
	/*
	 * A reply the socket would not take: until it goes, no request is
	 * read, so a runner that sends faster than it reads slows itself.
	 */
	unsigned char		 backlog_rid[RID_MAX];
	size_t			 backlog_rlen;
	struct buf		 backlog;
	long long		 backlog_since;
};

struct request {
	const unsigned char	*rid;
	size_t			 rlen;
	const char		*key;
	const struct frame	*f;
};

/* agent-dispatch.c */
void	serve_message(struct server *);

/* agent-job.c */
struct job *find_job(struct server *, const unsigned char *, size_t,
	    uint32_t);
void	remove_job(struct server *, struct job *);
void	job_stop(struct job *, enum job_cause);
int	job_start(struct server *, struct job *);
void	job_exited(struct job *);
void	runner_gone(struct server *, const unsigned char *, size_t);
void	stop_all(struct server *);

/* agent-reply.c */
int	send_to(struct server *, const unsigned char *, size_t, const void *,
	    size_t);
int	backlog_flush(struct server *);
void	send_error(struct server *, const struct request *, uint32_t,
	    const char *);
void	send_result(struct server *, const struct request *, const char *,
	    size_t);
int	job_flush(struct server *, struct job *);
void	job_read(struct server *, struct job *, int);
int	job_finish(struct server *, struct job *);
void	keepalive(struct server *);

#endif
