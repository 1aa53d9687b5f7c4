/*
 * virt-wait.c: the stage driver for systems. Connects (once per URI) and
 * looks up every row's domain, acts on them in worker threads, then checks
 * readiness for every row at once against one deadline, then fills in the
 * rows' columns.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "progress.h"
#include "virt-int.h"

#define DEFAULT_WAIT_S		300
#define DEFAULT_STOP_S		60
#define POLL_MS			200
#define CONNECT_TRY_MS		2000	/* then connect again */
#define MAX_THREADS		16

/*
 * Starts a non-blocking TCP connect to the port: the fd to poll for
 * POLLOUT, or -1 when it could not start. *open is set when it connected
 * at once (loopback can).
 */
static int
port_connect(const char *ip, int port, int *open)
{
	struct addrinfo	 hints, *ai = NULL;
	char		 serv[16];
	int		 fd;

	*open = 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(serv, sizeof serv, "%d", port);
	if (getaddrinfo(ip, serv, &hints, &ai) != 0)
		return -1;
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) != -1) {
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			*open = 1;
		else if (errno != EINPROGRESS) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd;
}

static int
ssh_port(const struct system *s)
{
	return s->type->auth.port > 0 ? s->type->auth.port : 22;
}

/* --- the stage driver ------------------------------------------------- */

static const char *const wait_names[] = { "none", "running", "ip", "ssh" };

int
virt_wait_prepare(struct stage *st, struct err *e)
{
	const struct node	*v;
	size_t			 i;

	if ((v = stage_arg(st, "wait")) == NULL)
		return 0;
	for (i = 0; i < nitems(wait_names); i++)
		if (v->type == NODE_SCALAR && strcmp(v->str, wait_names[i]) ==
		    0)
			return 0;
	return node_err(e, v, "'wait' of stage '%s' must be none, running, "
	    "ip or ssh, not '%s'", st->entry->name, v->type == NODE_SCALAR ?
	    v->str : node_type_name(v));
}

enum virt_wait
virt_wait_arg(const struct stage *st, enum virt_wait def)
{
	const char	*w = stage_str(st, "wait", NULL);
	size_t		 i;

	for (i = 0; w != NULL && i < nitems(wait_names); i++)
		if (strcmp(w, wait_names[i]) == 0)
			return (enum virt_wait)i;
	return def;
}

const char *const virt_columns[] = { "name", "state", "ip", "cpu", "ram",
    "type", "hypervisor", "exists", "hostkey", "managed", NULL };

static void
fill_row(struct virt_op *op)
{
	const struct system	*s = op->sys;
	virDomainInfo		 info;
	struct virt_meta	 m;
	char			 ip[64] = "", n[32];
	int			 state = -1, managed = 0;

	row_sets(op->table, op->row, "name", s->name);
	if (op->dom != NULL)
		state = dom_state(op->dom);
	row_sets(op->table, op->row, "state", op->conn == NULL ? "unknown" :
	    op->dom == NULL ? "undefined" : virt_state_name(state));
	if (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED ||
	    state == VIR_DOMAIN_PAUSED)
		virt_ip(op->dom, s, ip, sizeof ip);
	row_sets(op->table, op->row, "ip", ip);
	if (op->dom != NULL && virDomainGetInfo(op->dom, &info) == 0) {
		snprintf(n, sizeof n, "%u", info.nrVirtCpu);
		row_sets(op->table, op->row, "cpu", n);
		snprintf(n, sizeof n, "%lu", info.maxMem / 1024);
		row_sets(op->table, op->row, "ram", n);
	} else {
		virResetLastError();
		snprintf(n, sizeof n, "%d", s->machine.cpu);
		row_sets(op->table, op->row, "cpu", n);
		snprintf(n, sizeof n, "%d", s->machine.ram);
		row_sets(op->table, op->row, "ram", n);
	}
	row_sets(op->table, op->row, "type", s->type->name);
	row_sets(op->table, op->row, "hypervisor", s->hypervisor.uri);
	row_sets(op->table, op->row, "exists", op->conn == NULL ? "unknown" :
	    op->dom != NULL ? "yes" : "no");
	if (op->dom != NULL && (managed = virt_meta_read(op->dom, &m))) {
		row_sets(op->table, op->row, "hostkey", m.hostkey != NULL ?
		    m.hostkey : "");
		virt_meta_free(&m);
	} else
		row_sets(op->table, op->row, "hostkey", "");
	row_sets(op->table, op->row, "managed", op->dom == NULL ? "" :
	    managed ? "yes" : "no");
}

/*
 * A row is final: its time is taken and, unless its stage goes on with
 * it (later), the progress is told (the live line, -v), once, from the
 * thread that finished it, as a transport does for a host row.
 */
static void
op_done(struct virt_op *op)
{
	if (op->told)
		return;
	op->told = 1;
	op->row->duration_ms = now_ms() - op->start;
	if (!op->later)
		run_row_done(op->run, op->row);
}

/* What it did failed: the row says so, with its code. */
static void
op_failed(struct virt_op *op)
{
	op->row->status = ST_FAILED;
	op->row->code = op->code;
	buf_printf(&op->row->err, "reops-run: %s\n", op->e.msg);
}

struct pending {
	struct virt_op	*op;
	enum virt_wait	 want;
	enum virt_wait	 reached;	/* the last step that came */
	int		 fd;		/* a connect to the ssh port, or -1 */
	long long	 since;		/* when that connect started */
	char		 ip[64];
	int		 done;
};

static int
wait_step(struct pending *w)
{
	struct virt_op	*op = w->op;
	enum virt_wait	 want = w->want;
	int		 state, open;

	state = dom_state(op->dom);
	if (want == WAIT_SHUTOFF)
		return state == VIR_DOMAIN_SHUTOFF;
	if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_BLOCKED)
		return 0;
	w->reached = WAIT_RUNNING;
	if (want == WAIT_RUNNING)
		return 1;
	if (virt_ip(op->dom, op->sys, w->ip, sizeof w->ip) != 0)
		return 0;
	w->reached = WAIT_IP;
	if (want == WAIT_IP)
		return 1;
	/* The connect goes on in the background; wait_all polls it. */
	if (w->fd == -1) {
		w->fd = port_connect(w->ip, ssh_port(op->sys), &open);
		w->since = now_ms();
		if (open) {
			close(w->fd);
			w->fd = -1;
			w->reached = WAIT_SSH;
			return 1;
		}
	}
	return 0;
}

/*
 * Polls every connect in flight for up to ms: a row whose connect
 * succeeded is done; a refused or stale one is dropped, to try again.
 */
static size_t
poll_ports(struct pending *w, size_t n, int ms)
{
	struct pollfd	*pfd;
	struct timespec	 ts;
	socklen_t	 sl;
	size_t		 i, k, np = 0, done = 0;
	int		 soerr;

	pfd = xcalloc(n + 1, sizeof *pfd);
	for (i = 0; i < n; i++) {
		if (w[i].done || w[i].fd == -1)
			continue;
		pfd[np].fd = w[i].fd;
		pfd[np++].events = POLLOUT;
	}
	if (np == 0) {
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		free(pfd);
		return 0;
	}
	if (poll(pfd, np, ms) < 0)
		np = 0;
	for (i = 0, k = 0; i < n && k < np; i++) {
		if (w[i].done || w[i].fd == -1)
			continue;
		if (pfd[k++].revents == 0) {
			if (now_ms() - w[i].since < CONNECT_TRY_MS)
				continue;
		} else {
			soerr = -1;
			sl = sizeof soerr;
			if (getsockopt(w[i].fd, SOL_SOCKET, SO_ERROR, &soerr,
			    &sl) == 0 && soerr == 0) {
				w[i].reached = WAIT_SSH;
				w[i].done = 1;
				op_done(w[i].op);
				done++;
			}
		}
		close(w[i].fd);
		w[i].fd = -1;
	}
	free(pfd);
	return done;
}

static void
wait_failed(struct pending *w, int secs)
{
	struct virt_op	*op = w->op;

	op->row->status = ST_FAILED;
	op->row->code = 124;
	if (w->reached < WAIT_RUNNING)
		buf_printf(&op->row->err, "reops-run: not ready after %ds: "
		    "'%s' never reached running (state %s)\n", secs,
		    op->sys->name, virt_state_name(dom_state(op->dom)));
	else if (w->reached < WAIT_IP)
		buf_printf(&op->row->err, "reops-run: not ready after %ds: "
		    "no ip for '%s' (DHCP leases, guest agent, ARP)\n", secs,
		    op->sys->name);
	else
		buf_printf(&op->row->err, "reops-run: not ready after %ds: "
		    "ssh port %d on %s never opened\n", secs,
		    ssh_port(op->sys), w->ip);
}

/*
 * Every row waits against one deadline, polled together, so a hundred
 * systems take as long as the slowest and not the sum.
 */
static void
wait_all(struct virt_op *ops, size_t n, enum virt_wait want, int secs)
{
	const char	*drv;
	struct pending	*w;
	struct timespec	 ts;
	long long	 deadline = now_ms() + (long long)secs * 1000, ms, round;
	size_t		 i, left = 0;

	w = xcalloc(n, sizeof *w);
	for (i = 0; i < n; i++) {
		w[i].op = &ops[i];
		w[i].want = want;
		w[i].fd = -1;
		/*
		 * Nothing runs in the test driver's machines and its leases
		 * are made up: ssh is waited for there only at a static ip,
		 * which is a real address someone declared.
		 */
		if (want == WAIT_SSH && ops[i].sys->machine.ip == NULL &&
		    (drv = virConnectGetType(ops[i].conn)) != NULL &&
		    strcasecmp(drv, "test") == 0)
			w[i].want = WAIT_IP;
		w[i].done = ops[i].row->status != ST_OK || ops[i].dom == NULL;
		left += !w[i].done;
	}
	while (left > 0 && !run_interrupted) {
		for (i = 0; i < n; i++) {
			if (w[i].done || !wait_step(&w[i]))
				continue;
			w[i].done = 1;
			left--;
			if (ops[i].asked)
				buf_adds(&ops[i].note, "shut down");
			op_done(&ops[i]);
		}
		if (left == 0 || (ms = deadline - now_ms()) <= 0)
			break;
		if (ms > POLL_MS)
			ms = POLL_MS;
		round = now_ms();
		left -= poll_ports(w, n, (int)ms);
		/* A refused connect returns at once: keep the pace anyway. */
		if (left > 0 && (ms -= now_ms() - round) > 0) {
			ts.tv_sec = 0;
			ts.tv_nsec = (long)ms * 1000000L;
			nanosleep(&ts, NULL);
		}
	}
	for (i = 0; i < n; i++) {
		if (w[i].fd != -1)
			close(w[i].fd);
		if (w[i].done)
			continue;
		if (run_interrupted) {
			ops[i].row->status = ST_FAILED;
			ops[i].row->code = 130;
			buf_adds(&ops[i].row->err, "reops-run: interrupted\n");
		} else if (want != WAIT_SHUTOFF)
			wait_failed(&w[i], secs);
		else if (virDomainDestroy(ops[i].dom) != 0) {
			virt_err(&ops[i].e, "did not shut down within %ds "
			    "and could not be forced off", secs);
			ops[i].code = 1;
			op_failed(&ops[i]);
		} else
			buf_printf(&ops[i].note, "still running %ds after the "
			    "shutdown request; forced off", secs);
		op_done(&ops[i]);
	}
	free(w);
}

struct workers {
	struct virt_op	*ops;
	size_t		 n;
	size_t		 next;
	virt_fn		 fn;
	enum virt_wait	 want;
	pthread_mutex_t	 lock;
};

static void *
worker(void *arg)
{
	struct workers	*w = arg;
	struct virt_op	*op;
	size_t		 i;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		i = run_interrupted ? w->n : w->next;
		if (i < w->n)
			w->next++;
		pthread_mutex_unlock(&w->lock);
		if (i >= w->n)
			return NULL;
		op = &w->ops[i];
		if (!op->act)
			continue;
		if ((op->failed = w->fn(op) != 0))
			op_failed(op);
		/* Final unless wait_all has it wait (the same test). */
		if (w->want == WAIT_NONE || op->row->status != ST_OK ||
		    op->dom == NULL)
			op_done(op);
	}
}

/*
 * Acts on every row, up to --forks (at most MAX_THREADS, and no more than
 * the stage's 'serial') at a time: on a real hypervisor a create takes a
 * good part of a second, mostly waiting for it, and libvirt connections
 * may be used from several threads. Each op touches only itself and its
 * row, and tells the progress when the row is final; the table's columns
 * are written afterwards, in virt_stage.
 */
static void
act_all(struct run *run, struct virt_op *ops, size_t n, virt_fn fn,
    enum virt_wait want)
{
	struct workers	 w;
	pthread_t	 tid[MAX_THREADS];
	size_t		 i, nt;

	nt = n < MAX_THREADS ? n : MAX_THREADS;
	if (run->opt != NULL && (size_t)run->opt->forks < nt)
		nt = (size_t)run->opt->forks;
	/* And the stage's 'serial: N', if less. */
	if (forks_serial() > 0 && (size_t)forks_serial() < nt)
		nt = (size_t)forks_serial();
	memset(&w, 0, sizeof w);
	w.ops = ops;
	w.n = n;
	w.fn = fn;
	w.want = want;
	pthread_mutex_init(&w.lock, NULL);
	/* This thread is one of them; ls has nothing to wait for. */
	for (i = 0; fn != virt_nothing && i + 1 < nt; i++)
		if (pthread_create(&tid[i], NULL, worker, &w) != 0)
			break;
	nt = fn != virt_nothing && nt > 1 ? i : 0;
	worker(&w);
	for (i = 0; i < nt; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&w.lock);
}

/*
 * Runs FN on every system row of t (those the stage selects): connect
 * (once per URI), look the domain up, act; then wait for all of them;
 * then refresh the columns. A hypervisor that cannot be reached makes its
 * rows unreachable. Each row tells the progress as soon as it is final.
 */
int
virt_stage(struct run *run, struct stage *st, struct table *t, virt_fn fn,
    enum virt_wait want, int secs)
{
	struct virt_op	*ops;
	struct virt_op	*op;
	struct vconn	*c;
	struct row	*r;
	long long	 start = now_ms();
	size_t		 i, n = 0, nsys = 0;
	int		 tmo;

	for (i = 0; i < t->n; i++)
		if (t->rows[i]->kind == ROW_SYSTEM &&
		    t->rows[i]->system != NULL)
			nsys++;
	progress_add(run->progress, nsys);
	ops = xcalloc(t->n, sizeof *ops);
	for (i = 0; i < t->n && !run_interrupted; i++) {
		r = t->rows[i];
		if (r->kind != ROW_SYSTEM || r->system == NULL)
			continue;
		op = &ops[n++];
		op->run = run;
		op->stage = st;
		op->table = t;
		op->row = r;
		op->sys = r->system;
		op->code = 1;
		op->start = start;
		buf_init(&op->note);
		/* It begins anew, whatever an earlier stage made of it. */
		buf_reset(&r->out);
		buf_reset(&r->err);
		r->status = ST_OK;
		r->code = 0;
		c = virt_conn(run, op->sys->hypervisor.uri);
		if ((op->conn = c->conn) == NULL) {
			r->status = ST_UNREACHABLE;
			r->code = -1;
			buf_printf(&r->err, "reops-run: %s\n", c->error);
			op_done(op);
			continue;
		}
		if ((op->dom = virDomainLookupByName(op->conn,
		    op->sys->name)) == NULL) {
			if (!last_error_is(VIR_ERR_NO_DOMAIN)) {
				virt_err(&op->e, "unable to look up '%s' on "
				    "'%s'", op->sys->name,
				    op->sys->hypervisor.uri);
				r->status = ST_UNREACHABLE;
				r->code = -1;
				buf_printf(&r->err, "reops-run: %s\n",
				    op->e.msg);
				op_done(op);
				continue;
			}
			virResetLastError();
		}
		op->act = 1;
	}
	/*
	 * ^C while systems were looked up: those not reached never ran in
	 * this stage, and say so (as a transport's rows not started do),
	 * rather than keep what an earlier stage made of them.
	 */
	for (; i < t->n; i++) {
		r = t->rows[i];
		if (r->kind != ROW_SYSTEM || r->system == NULL)
			continue;
		r->status = ST_SKIPPED;
		buf_adds(&r->err, "reops-run: not started: interrupted\n");
		run_row_done(run, r);
	}
	act_all(run, ops, n, fn, want);
	if (want != WAIT_NONE && n > 0) {
		tmo = row_timeout(run, ops[0].row, secs);
		if (tmo <= 0)
			tmo = want == WAIT_SHUTOFF ? DEFAULT_STOP_S :
			    DEFAULT_WAIT_S;
		wait_all(ops, n, want, tmo);
	}
	for (i = 0; i < n; i++) {
		fill_row(&ops[i]);
		if (ops[i].note.len > 0 && ops[i].row->status == ST_OK)
			buf_printf(&ops[i].row->out, "%s\n", ops[i].note.data);
		/* Rows that ^C left on the way are final now. */
		op_done(&ops[i]);
		buf_free(&ops[i].note);
		if (ops[i].dom != NULL)
			virDomainFree(ops[i].dom);
	}
	free(ops);
	return 0;
}
