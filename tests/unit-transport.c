/*
 * unit-transport.c: how every transport ends a row (job_end: codes 124,
 * 128+N, 130, unreachable and rows that never ran, with their one line of
 * reason), the one table of signal names, the --forks budget and the
 * wake-up of the loops it holds back, and the table that picks a
 * transport by the group's "transport:".
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Every wait here is bounded: long enough never to time out on a loaded
 * machine when what it waits for comes, short where nothing must. */
#define WAIT_MS		10000
#define QUIET_MS	100

/* 1 when fd turns readable within ms. */
static int
readable(int fd, int ms)
{
	struct pollfd	pfd;

	pfd.fd = fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	return fd != -1 && poll(&pfd, 1, ms) == 1;
}

/* A transport's loop held back by --forks, in a thread of its own. */
struct waiter {
	struct run	*run;
	struct held	 h;
	int		 fd;		/* the one it polls */
	int		 ready[2];	/* a byte once it waits */
	int		 held;		/* forks_take failed */
	int		 woken;		/* its descriptor turned readable */
	int		 took;		/* and then it took a slot */
	pthread_t	 tid;
};

static void *
waiter_main(void *arg)
{
	struct waiter	*w = arg;

	held_look(&w->h);
	w->held = forks_take(w->run) != 0;
	w->fd = held_wait(&w->h, w->held ? HELD_FORKS : 0);
	(void)write(w->ready[1], "w", 1);
	w->woken = readable(w->fd, WAIT_MS);
	held_disarm(&w->h);
	w->took = forks_take(w->run) == 0;
	held_end(&w->h);
	return NULL;
}

/* 0 once the thread waits (armed), within WAIT_MS. */
static int
waiter_start(struct waiter *w, struct run *run)
{
	memset(w, 0, sizeof *w);
	w->run = run;
	held_init(&w->h);
	if (pipe(w->ready) != 0 ||
	    pthread_create(&w->tid, NULL, waiter_main, w) != 0)
		return -1;
	return readable(w->ready[0], WAIT_MS) ? 0 : -1;
}

static void
waiter_end(struct waiter *w)
{
	pthread_join(w->tid, NULL);
	close(w->ready[0]);
	close(w->ready[1]);
}

static void *
give_slot(void *arg)
{
	(void)arg;
	forks_give();
	return NULL;
}

static void *
give_fd(void *arg)
{
	(void)arg;
	fd_release(1);
	return NULL;
}

/*
 * A loop held back sleeps until another loop or thread gives a slot or
 * descriptors back, and not before; every loop that waits is woken, each
 * by its own descriptor; nothing that comes back is lost.
 */
static void
test_held(void)
{
	struct options	opt;
	struct run	run;
	struct waiter	a, b;
	struct held	h;
	pthread_t	tid;
	int		fd, c;

	/* ok() evaluates its condition more than once: no calls in it. */
	memset(&opt, 0, sizeof opt);
	memset(&run, 0, sizeof run);
	run.opt = &opt;
	opt.forks = 1;
	c = forks_take(&run) == 0;
	ok(c, "--forks 1: the one slot taken");

	c = waiter_start(&a, &run) == 0 && a.held && a.fd != -1;
	ok(c, "a loop in a thread is held back and waits on its descriptor");
	c = !readable(a.fd, QUIET_MS);
	ok(c, "nothing given back: it sleeps");
	c = forks_take(&run) != 0 && !readable(a.fd, 0);
	ok(c, "another's failed take does not wake it");
	c = pthread_create(&tid, NULL, give_slot, NULL) == 0 &&
	    pthread_join(tid, NULL) == 0;
	ok(c, "a slot given back by a thread");
	waiter_end(&a);
	ok(a.woken && a.took, "... wakes the loop, which takes the slot");

	c = waiter_start(&a, &run) == 0 && waiter_start(&b, &run) == 0 &&
	    a.held && b.held && a.fd != b.fd;
	ok(c, "two loops held back at once, each with its own descriptor");
	forks_give();
	waiter_end(&a);
	waiter_end(&b);
	ok(a.woken && b.woken, "one slot given back wakes both");
	ok(a.took + b.took == 1, "... and one of them takes it");

	/* In this thread, a loop between its look and its end. */
	held_init(&h);
	held_look(&h);
	c = forks_take(&run) != 0;
	ok(c, "held back in this thread");
	c = pthread_create(&tid, NULL, give_slot, NULL) == 0 &&
	    pthread_join(tid, NULL) == 0;
	fd = held_wait(&h, HELD_FORKS);
	c = c && readable(fd, 0);
	ok(c, "a slot given back between the look and the wait: awake at "
	    "once, not lost");
	held_disarm(&h);
	c = !readable(fd, 0);
	ok(c, "the wake-up read, nothing left over");
	c = forks_take(&run) == 0;
	ok(c, "the slot is there");

	held_look(&h);
	(void)held_wait(&h, HELD_FORKS);
	held_disarm(&h);
	c = pthread_create(&tid, NULL, give_slot, NULL) == 0 &&
	    pthread_join(tid, NULL) == 0 && !readable(fd, 0);
	ok(c, "a loop that no longer waits is not woken");
	c = forks_take(&run) == 0;
	ok(c, "(the slot taken again)");

	/* A slot taken, descriptors short, the slot given back: the loop
	 * waits for descriptors, not woken by its own give. */
	held_look(&h);
	forks_give();
	c = forks_take(&run) == 0;
	forks_give();
	c = c && held_wait(&h, HELD_FDS) == fd && !readable(fd, 0);
	held_disarm(&h);
	ok(c, "a loop's own give does not wake itself");
	c = forks_take(&run) == 0;
	ok(c, "(the slot taken again)");

	/* A loop that goes on with its own rows wakes nobody for them. */
	c = waiter_start(&a, &run) == 0 && a.held;
	ok(c, "another loop waits");
	held_look(&h);
	forks_give();
	c = forks_take(&run) == 0;
	(void)held_wait(&h, 0);
	c = c && !readable(a.fd, QUIET_MS);
	ok(c, "a slot this loop gave back and took again wakes nobody");
	held_look(&h);
	forks_give();
	(void)held_wait(&h, 0);
	waiter_end(&a);
	ok(a.woken && a.took, "one it gave back and left wakes the other "
	    "at its wait");

	c = fd_reserve(1) == 0;
	ok(c, "a descriptor taken from the budget");
	held_look(&h);
	c = held_wait(&h, HELD_FORKS) == fd;
	ok(c, "the loop's one descriptor, made once");
	c = pthread_create(&tid, NULL, give_fd, NULL) == 0 &&
	    pthread_join(tid, NULL) == 0 && !readable(fd, QUIET_MS);
	ok(c, "a loop waiting for a slot sleeps on when descriptors come "
	    "back");
	held_disarm(&h);
	c = fd_reserve(1) == 0;
	held_look(&h);
	c = c && held_wait(&h, HELD_FDS) == fd &&
	    pthread_create(&tid, NULL, give_fd, NULL) == 0 &&
	    readable(fd, WAIT_MS) && pthread_join(tid, NULL) == 0;
	ok(c, "one waiting for descriptors wakes when a thread gives one "
	    "back");
	held_end(&h);
	c = h.fd == -1 && fcntl(fd, F_GETFD) == -1;
	ok(c, "held_end closes the descriptor");
	forks_give();
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
	test_held();
	test_table();
	test_via();
	return tap_done();
}
