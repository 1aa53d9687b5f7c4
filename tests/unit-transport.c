/*
 * unit-transport.c: how every transport ends a row (job_end: codes 124,
 * 128+N, 130, unreachable and rows that never ran, with their one line of
 * reason), the one table of signal names, the --forks budget, and the
 * table that picks a transport by the group's "transport:".
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "tap.h"

static struct row *
fresh(struct table *t)
{
	return table_add(t, "h", ROW_HOST, "g");
}

static void
test_end(void)
{
	struct table	*t = table_new();
	struct job	 j;

	memset(&j, 0, sizeof j);
	j.row = fresh(t);
	job_end(&j, END_EXIT, 0, NULL);
	ok(j.row->status == ST_OK && j.row->code == 0 && j.row->err.len == 0,
	    "exit 0: ok, code 0, nothing said");

	j.row = fresh(t);
	job_end(&j, END_EXIT, 3, NULL);
	ok(j.row->status == ST_FAILED && j.row->code == 3 &&
	    j.row->err.len == 0, "exit 3: failed, code 3, nothing said");

	j.row = fresh(t);
	buf_adds(&j.row->err, "its own\n");
	job_end(&j, END_SIGNAL, SIGKILL, NULL);
	ok(j.row->status == ST_FAILED && j.row->code == 137,
	    "SIGKILL: failed, code 137");
	is_str(j.row->err.data, "its own\nreops-run: killed by signal 9 "
	    "(SIGKILL)\n", "SIGKILL: named after what the command said");

	j.row = fresh(t);
	job_end(&j, END_SIGNAL, SIGXCPU, NULL);
	is_str(j.row->err.data, "reops-run: killed by signal 24 (SIGXCPU)\n",
	    "SIGXCPU is in the one table");

	j.row = fresh(t);
	job_end(&j, END_SIGNAL, 0, "SIG@openssh.com");
	ok(j.row->code == 128, "a signal the host did not name: code 128");
	is_str(j.row->err.data, "reops-run: killed by signal "
	    "SIG@openssh.com\n", "... and its name as the host gave it");

	j.row = fresh(t);
	job_end(&j, END_TIMEOUT, 5, NULL);
	ok(j.row->status == ST_FAILED && j.row->code == 124,
	    "timeout: failed, code 124");
	is_str(j.row->err.data, "reops-run: timed out after 5s\n",
	    "timeout: the deadline said");

	j.row = fresh(t);
	job_end(&j, END_INTERRUPTED, 0, NULL);
	ok(j.row->status == ST_FAILED && j.row->code == 130,
	    "interrupted: failed, code 130");
	is_str(j.row->err.data, "reops-run: interrupted\n",
	    "interrupted: said");

	j.row = fresh(t);
	buf_adds(&j.row->out, "half");
	buf_adds(&j.row->err, "half");
	job_end(&j, END_UNREACHABLE, 0, "connection refused");
	ok(j.row->status == ST_UNREACHABLE && j.row->code == 255 &&
	    j.row->out.len == 0, "unreachable: code 255, no output kept");
	is_str(j.row->err.data, "reops-run: connection refused\n",
	    "unreachable: the reason, alone");

	j.row = fresh(t);
	j.row->duration_ms = 7;
	job_end(&j, END_NOT_RUN, 127, "not started: too few");
	ok(j.row->status == ST_FAILED && j.row->code == 127 &&
	    j.row->duration_ms == 0, "not run: failed, its code, no time");
	is_str(j.row->err.data, "reops-run: not started: too few\n",
	    "not run: the reason");
	table_free(t);
}

static void
test_signals(void)
{
	is_str(signal_name(SIGTERM), "TERM", "SIGTERM is TERM");
	ok(signal_name(0) == NULL, "no name for 0");
	ok(signal_number("USR1", 4) == SIGUSR1, "USR1 by name");
	ok(signal_number("TERMX", 4) == SIGTERM, "a name by its length");
	ok(signal_number("@openssh.com", 12) == 0, "an unknown name is 0");
}

static void
test_forks(void)
{
	struct options	opt;
	struct run	run;
	int		i, n = 0, a, b;

	memset(&opt, 0, sizeof opt);
	memset(&run, 0, sizeof run);
	run.opt = &opt;
	opt.forks = 3;
	ok(forks_max(&run) == 3, "--forks 3: 3 slots");
	for (i = 0; i < 5; i++)
		if (forks_take(&run) == 0)
			n++;
	ok(n == 3, "5 asked, 3 given");
	forks_give();
	a = forks_take(&run);
	b = forks_take(&run);
	ok(a == 0 && b != 0, "one given back, one more taken, no more");
	for (i = 0; i < 3; i++)
		forks_give();
	opt.forks = 0;
	ok(forks_max(&run) == DEFAULT_FORKS, "no --forks: the default");
}

static void
test_table(void)
{
	struct group	g;
	struct host	h;
	struct row	r;

	memset(&g, 0, sizeof g);
	memset(&h, 0, sizeof h);
	memset(&r, 0, sizeof r);
	h.group = &g;
	r.host = &h;
	g.transport = TR_LOCAL;
	is_str(transport_of(&r)->name, "local", "local rows: the local row");
	g.transport = TR_SSH;
	is_str(transport_of(&r)->name, "ssh", "ssh rows: the ssh row");
	g.transport = TR_AGENT;
	is_str(transport_of(&r)->name, "agent", "agent rows: the agent row");
}

/* A job's via, when set, wins over its group's transport (enroll). */
static void
test_via(void)
{
	struct group	g;
	struct host	h;
	struct row	r;
	struct job	j;

	memset(&g, 0, sizeof g);
	memset(&h, 0, sizeof h);
	memset(&r, 0, sizeof r);
	memset(&j, 0, sizeof j);
	h.group = &g;
	r.host = &h;
	j.row = &r;
	g.transport = TR_AGENT;
	ok(job_transport(&j) == TR_AGENT, "no via: the group's transport");
	j.via = JOB_VIA(TR_SSH);
	ok(job_transport(&j) == TR_SSH, "via ssh on an agent row: ssh");
	j.via = JOB_VIA(TR_LOCAL);
	ok(job_transport(&j) == TR_LOCAL, "via local: local");
	j.via = 99;
	ok(job_transport(&j) == TR_AGENT, "a via out of range: the group's");
}

int
main(void)
{
	test_end();
	test_signals();
	test_forks();
	test_table();
	test_via();
	return tap_done();
}
