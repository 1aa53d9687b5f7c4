/*
 * stage-ping.c: "ping" connects and authenticates, and runs nothing: the
 * cheapest way to learn which hosts are reachable (Ansible's ping module,
 * without the Python). Over ssh the session stays for later stages; the
 * local transport answers at once.
 */
#include <stdlib.h>

#include "run.h"

static const struct stage_key ping_keys[] = {
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

static int
ping_host(struct run *run, struct stage *st, struct table *t)
{
	struct job	*jobs;
	struct row	*r;
	size_t		 i, n = 0;
	int		 ret, timeout;

	timeout = (int)stage_int(st, "timeout", 0);
	jobs = xcalloc(t->n, sizeof *jobs);
	for (i = 0; i < t->n; i++) {
		r = t->rows[i];
		/* No command: the transport connects and stops there. */
		jobs[n].row = r;
		jobs[n].timeout = row_timeout(run, r, timeout);
		n++;
	}
	ret = n > 0 ? run_jobs(run, jobs, n) : 0;
	free(jobs);
	return ret;
}

const struct stage_entry stage_ping_entry = {
	.name = "ping",
	.usage = "ping: { timeout: SECONDS }",
	.summary = "connect and authenticate only",
	.keys = ping_keys,
	.flags = STAGE_REMOTE,
	.host = ping_host,
};
