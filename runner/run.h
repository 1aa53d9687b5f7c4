/*
 * run.h: running loaded pipelines: the run's options and state, what
 * stages call to run commands, and the printers. What the transports
 * share is in transport.h.
 */
#ifndef REOPS_RUN_H
#define REOPS_RUN_H

#include <signal.h>
#include <stdio.h>

#include "inventory.h"
#include "pipeline.h"
#include "table.h"
#include "transport.h"

enum color_mode {
	COLOR_AUTO,
	COLOR_ALWAYS,
	COLOR_NEVER
};

struct virt;
struct ssh_cache;
struct agent_cache;
struct progress;

struct options {
	const char	*inventory;	/* -i DIR, or NULL for the default */
	const char	*limit;
	const char	*ssh_config;	/* -F FILE */
	int		 forks;
	int		 timeout;	/* seconds per target; 0: none */
	int		 check;
	int		 json;
	int		 yes;
	enum color_mode	 color;
};

struct run {
	const struct options	*opt;
	struct inventory	*inv;
	FILE			*out;	/* for people: stdout, or stderr */
	int			 color;	/* colours on out */
	int			 tty;	/* out is a terminal */
	int			 saw_failed;
	int			 saw_unreachable;
	int			 undelivered;	/* publish lost rows: exit 5 */
	int			 output_error;	/* print_done: 1 stdout, 2 stderr */
	struct virt		*virt;	/* libvirt connections, per URI */
	struct ssh_cache	*ssh;	/* ssh sessions, one per host */
	struct agent_cache	*agent;	/* agent clients, one per host */
	void			*stage_state[STAGE_COUNT]; /* stages' own */
	struct progress		*progress; /* live line, -v row lines */
};

int	run_pipeline(struct run *, struct pipeline *, struct table *);
void	run_fork(struct run *, const struct run *);
void	run_join(struct run *, struct run *);
int	run_stage(struct run *, struct stage *, struct table *);
int	run_batches(struct run *, struct pipeline *, struct table *);
int	run_jobs(struct run *, struct job *, size_t);
void	run_row_done(struct run *, const struct row *);
int	run_commands(struct run *, struct stage *, struct table *,
	    int (*)(struct buf *, struct stage *, const struct row *,
	    struct buf *),
	    void (*)(struct job *));
void	run_row_refused(struct run *, const struct stage *, struct row *,
	    const char *);
void	run_note(struct run *, const struct table *);
int	row_timeout(const struct run *, const struct row *, int);

void	virt_close(struct run *);

void	print_pretty(struct run *, FILE *, const struct table *);
void	print_json_row(FILE *, const struct table *, const struct row *);
void	print_failures(FILE *, const struct table *);
int	print_done(struct run *, FILE *);
void	print_plan(FILE *, const struct pipeline *, const struct target *,
	    size_t, int);
void	print_graph(FILE *, struct pipeline *const *, size_t);

#endif
