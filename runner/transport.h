/*
 * transport.h: what stages hand to transports and what transports need of
 * the run. A transport is one row of a table indexed by enum transport
 * (the group's "transport:"); run_jobs sorts a stage's jobs by it. Every
 * transport ends each row through job_end and job_done, and takes a slot
 * of the one --forks budget before it starts a row.
 */
#ifndef REOPS_TRANSPORT_H
#define REOPS_TRANSPORT_H

#include <signal.h>
#include <stddef.h>

#include "inventory.h"
#include "table.h"

#define DEFAULT_FORKS	256

struct run;

/* A file to put on a target, for the copy stage. */
struct put_file {
	const char	*src;		/* the local file it was read from */
	const char	*data;		/* its bytes */
	size_t		 len;
	const char	*dest;		/* where, on the target */
	const char	*mode;		/* octal, such as "0644" */
	int		 sudo;
};

/*
 * One remote operation on one row's target. A job without a command (and
 * without a file to put) only connects: ping.
 */
struct job {
	struct row	*row;
	char		*command;	/* for /bin/sh -c on the target */
	int		 timeout;	/* seconds; 0: none */
	const char	*input;		/* stdin of the command, or NULL */
	size_t		 input_len;
	/*
	 * 0: the row's group's transport. JOB_VIA(t): transport t instead,
	 * with the group's settings for it; enroll reaches the hosts of an
	 * agent group over ssh this way, without asking which transport a
	 * row has.
	 */
	int		 via;
	/*
	 * copy over the agent: put-file to this absolute path with this
	 * mode; NULL: command and input are the put (put_command).
	 */
	const char	*put_path;
	unsigned	 put_mode;
	/*
	 * One step of several that a stage runs on the row (enroll): the
	 * row is neither counted nor told to the progress here, as the
	 * stage does both for the row as a whole, once it is final.
	 */
	int		 step;
	/*
	 * Reads the row's answer (into columns, a file) once it has ended,
	 * before the row is told to the progress, so that -v never says ok
	 * of a row its answer fails. Called from the transport's thread,
	 * one at a time, after the secrets are masked.
	 */
	void		(*after)(struct job *);
	struct table	*table;		/* for after */
	void		*arg;		/* for after */
	struct run	*run;		/* set by run_jobs, for job_done */
};

#define JOB_VIA(t)	((int)(t) + 1)

struct transport_ops {
	const char	*name;
	/*
	 * Runs a stage's jobs of this transport, all in one loop, each row
	 * once a slot of the shared --forks budget is taken; ends every row.
	 * 0, or -1 after an internal error (the rows then say so).
	 */
	int		(*run)(struct run *, struct job **, size_t);
	/* Makes j put a file: its command, and its input if any. */
	void		(*put)(struct job *, const struct put_file *);
	/* At the end of the run: what the transport kept goes. */
	void		(*close)(struct run *);
};

const struct transport_ops *transport_of(const struct row *);
enum transport	job_transport(const struct job *);
void	transport_put(struct job *, const struct put_file *);
void	transport_close_all(struct run *);

/* How a row ended; job_end writes its status, code and reason. */
enum job_end {
	END_EXIT,		/* value: exit status */
	END_SIGNAL,		/* value: signal number */
	END_TIMEOUT,		/* value: the deadline, in seconds */
	END_INTERRUPTED,
	END_UNREACHABLE,	/* reason: why */
	END_NOT_RUN		/* reason: why; value: the code */
};

#define CODE_TIMEOUT		124
#define CODE_INTERRUPTED	130
#define CODE_UNREACHABLE	255	/* what ssh(1) exits with */

void	job_end(struct job *, enum job_end, int, const char *);
void	job_done(struct job *);
const char *signal_name(int);
int	signal_number(const char *, size_t);

extern volatile sig_atomic_t run_interrupted;

/* The --forks budget, one for every transport of a stage. */
int	forks_max(const struct run *);
int	forks_take(const struct run *);
void	forks_give(void);
/* A stage's 'serial: N', within --forks, for the thread running it. */
int	forks_serial_push(int);
void	forks_serial_pop(int);
int	forks_serial(void);

/*
 * A loop held back by the --forks or descriptor budget sleeps in its poll
 * until a slot or descriptors come back, whichever loop or thread gives
 * them (the transports' loops of a stage run side by side, and so do a
 * branch's lanes): forks_give and fd_release wake every loop that waits,
 * through an eventfd of the loop's own, made when it is first held back.
 * A loop calls held_look before it tries to take, held_wait before its
 * poll (and polls the descriptor it returns, if any, beside its own),
 * held_disarm after the poll, and held_end before it returns. What a
 * loop gives back between its held_look and its held_wait wakes the
 * others only then, and only those waiting for what is left of it: a
 * loop that goes on with its own rows does not wake the others for
 * nothing at each row.
 */
struct held {
	int		 fd;		/* eventfd; -1: none (yet) */
	int		 failed;	/* none could be made */
	int		 armed;		/* the loop's own: waits */
	int		 why;		/* HELD_*: under forks_mutex */
	int		 listed;	/* waits: under forks_mutex */
	int		 woken;		/* written to: under forks_mutex */
	unsigned long	 seen;		/* wake-ups when it last looked */
	struct held	*next;		/* the others that wait */
};

#define HELD_FORKS	0x1		/* forks_take failed */
#define HELD_FDS	0x2		/* fd_reserve failed */

void	held_init(struct held *);
void	held_look(struct held *);
int	held_wait(struct held *, int);
void	held_disarm(struct held *);
void	held_end(struct held *);
void	held_wake(void);

/*
 * File descriptors: one budget for the run (the soft limit, raised to the
 * hard one, less what is open and some headroom), shared by the
 * transports' loops, which hold back work that does not fit.
 */
int	fd_reserve(int);
void	fd_release(int);
int	fd_fits_ever(int);
int	fd_pressed(void);
long	fd_limit(void);

/* The transports' own. */
int	local_run(struct run *, struct job **, size_t);
void	local_put(struct job *, const struct put_file *);
int	ssh_run(struct run *, struct job **, size_t);
void	ssh_put(struct job *, const struct put_file *);
void	ssh_cleanup(struct run *);
int	agent_run(struct run *, struct job **, size_t);
void	agent_put(struct job *, const struct put_file *);
void	agent_close(struct run *);
int	agent_fallback(struct run *);
char	*put_command(const struct put_file *, int);

#endif
