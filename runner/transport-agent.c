/*
 * transport-agent.c: the agent transport. Each host's reops-agent is
 * reached over ZeroMQ with CURVE (agent-client.c): the agent's key is the
 * one pinned for the host in the group's known-agents file, ours is the
 * group's agent key. One client per host for the whole run, all in one
 * ZeroMQ context and one zmq_poll loop, so a later stage sends its
 * requests on a connection that is already up.
 *
 * A command is an exec request (exec-input when it has input, such as
 * secrets' values, so that nothing secret is ever on a command line);
 * copy is a put-file where it can be (an absolute dest, no sudo), else the
 * copy script with the bytes on its stdin as over ssh; ping is a ping
 * request. The agent keeps the deadline too; at ours, and on ^C, a kill
 * request ends the command's process group and the row ends 124 or 130.
 *
 * A row the agent never took (no key pinned, nothing listening, a failed
 * handshake, our key refused) is unreachable; with "fallback: ssh" it
 * runs over ssh instead, once this stage's loops are done
 * (agent_fallback). A connection lost while a command runs is unreachable
 * too, but never run again over ssh: the command may have run.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "agent-client.h"
#include "knownagents.h"
#include "run.h"

/* How often the loop looks at run_interrupted when nothing happens. */
#define INTERRUPT_POLL_MS	200
/* The group's connect-timeout when it has none (as ssh's). */
#define DEFAULT_CONNECT_TIMEOUT	10
/*
 * How long a killed command may take to report its end: the agent sends
 * TERM, then KILL two seconds later (AGENT_GRACE_MS), then the exit.
 */
#define KILL_WAIT_MS		4000
/* Descriptors a client takes: its TCP socket and two mailboxes. */
#define CLIENT_FDS		4

/* The runner's key pair, read once per key file. */
struct agent_key {
	char		*path;
	char		 secret[AGENT_KEY_LEN + 1];
	char		 public[AGENT_KEY_LEN + 1];
	char		*why;		/* NULL: read */
};

/* One host's agent, for the whole run. */
struct agent_host {
	const struct host	*host;
	struct agent_client	*c;	/* NULL: not connected */
	char			 endpoint[300];
	const char		*public;	/* ours, for the reasons */
	char			*known;		/* the known-agents file */
	int			 connect_timeout;
	int			 fds;		/* taken from the budget */
	size_t			 active;	/* slots of ours at work */
	char			 pinned[AGENT_KEY_LEN + 1]; /* "": none */
	char			*dead;		/* why its agent was never
						   reached, with the key then
						   pinned: not tried again */
	char			 dead_pin[AGENT_KEY_LEN + 1];
	int			 kick;		/* look at its replies now */
};

struct agent_cache {
	void			 *ctx;
	struct hmap		  hosts;	/* name -> struct agent_host */
	struct agent_host	**all;
	size_t			  nall;
	struct agent_key	**keys;
	size_t			  nkeys;
	uint32_t		  next_id;
	struct job		**fallback;	/* rows for ssh */
	size_t			  nfallback;
};

enum slot_state {
	S_FREE,
	S_SENT,			/* the request is on its way or running */
	S_KILLING		/* the row has ended; waiting for the exit */
};

struct slot {
	enum slot_state		 state;
	struct job		*job;
	struct agent_host	*ah;
	uint32_t		 id;
	size_t			 size;		/* of the request */
	long long		 start;
	long long		 deadline;	/* ours; 0: none */
	long long		 connect_deadline;
	long long		 kill_deadline;
};

static struct agent_cache *
cache_get(struct run *run)
{
	struct agent_cache	*ac;
	int			 max;

	if (run->agent != NULL)
		return run->agent;
	ac = xcalloc(1, sizeof *ac);
	hmap_init(&ac->hosts);
	/* Without memory for a context: every client fails to open. */
	ac->ctx = zmq_ctx_new();
	/* Two sockets a host; the descriptors are the real limit. */
	if (ac->ctx != NULL) {
		max = zmq_ctx_get(ac->ctx, ZMQ_SOCKET_LIMIT);
		if (fd_limit() < max)
			max = (int)fd_limit();
		if (max > 1024)
			(void)zmq_ctx_set(ac->ctx, ZMQ_MAX_SOCKETS, max);
	}
	run->agent = ac;
	return ac;
}

/* The runner's key of a group, read once; NULL with why set. */
static struct agent_key *
key_get(struct agent_cache *ac, const struct group *g)
{
	struct agent_key	*k;
	struct stat		 st;
	struct err		 e;
	char			*path;
	size_t			 i;

	path = agent_key_path(g);
	for (i = 0; i < ac->nkeys; i++)
		if (strcmp(ac->keys[i]->path, path) == 0) {
			free(path);
			return ac->keys[i];
		}
	k = xcalloc(1, sizeof *k);
	k->path = path;
	if (agent_key_read_secret(path, k->secret, k->public, &e) == -1)
		k->why = stat(path, &st) == -1 && errno == ENOENT ? xasprintf("%s; make one with "
		    "'reops-agent --keygen %s'", e.msg, path) :
		    xasprintf("the runner's agent key: %s", e.msg);
	ac->keys = xreallocarray(ac->keys, ac->nkeys + 1, sizeof *ac->keys);
	ac->keys[ac->nkeys++] = k;
	return k;
}

static struct agent_host *
host_get(struct agent_cache *ac, const struct host *h)
{
	struct agent_host	*ah;
	const char		*addr;

	if ((ah = hmap_get(&ac->hosts, h->name)) != NULL)
		return ah;
	ah = xcalloc(1, sizeof *ah);
	ah->host = h;
	addr = h->address != NULL ? h->address : h->name;
	/* A v6 address in brackets, as ZeroMQ wants it. */
	snprintf(ah->endpoint, sizeof ah->endpoint, strchr(addr, ':') !=
	    NULL ? "tcp://[%s]:%d" : "tcp://%s:%d", addr, agent_port(h));
	ah->known = known_agents_path(h->group);
	ah->connect_timeout = h->group->connect_timeout > 0 ?
	    h->group->connect_timeout : DEFAULT_CONNECT_TIMEOUT;
	hmap_put(&ac->hosts, h->name, ah);
	ac->all = xreallocarray(ac->all, ac->nall + 1, sizeof *ac->all);
	ac->all[ac->nall++] = ah;
	return ah;
}

static void
host_disconnect(struct agent_host *ah)
{
	agent_client_close(ah->c);
	ah->c = NULL;
	if (ah->fds > 0)
		fd_release(ah->fds);
	ah->fds = 0;
}

/*
 * A cached client between stages: what came while nobody read is
 * dropped (the exit of a command given up, say). When its agent went
 * away meanwhile (restarted, say), the client goes and a new one is
 * made, rather than a request sent on a connection known to be gone.
 */
static int
host_idle_ok(struct agent_host *ah)
{
	struct agent_reply	rep;
	struct err		e;
	int			r;

	while ((r = agent_client_recv(ah->c, &rep, &e)) == 1)
		agent_reply_free(&rep);
	if (r == 0)
		return 1;
	log_debug("%s: %s; connecting again", ah->host->name, e.msg);
	agent_client_close(ah->c);	/* its descriptors stay reserved */
	ah->c = NULL;
	return 0;
}

/* Still as it was when its agent could not be reached: the same pin. */
static int
host_still_dead(struct agent_host *ah)
{
	const struct host	*h = ah->host;
	struct err		 e;
	char			 key[AGENT_KEY_LEN + 1];

	if (ah->dead == NULL)
		return 0;
	memset(key, 0, sizeof key);
	(void)known_agents_lookup(ah->known, h->address != NULL ? h->address :
	    h->name, agent_port(h), key, &e);
	if (strcmp(key, ah->dead_pin) == 0)
		return 1;
	free(ah->dead);
	ah->dead = NULL;
	return 0;
}

/*
 * Opens the host's client: the pinned key, ours, the connection. NULL
 * with why set (to be freed) when the row cannot even try.
 */
static struct agent_client *
host_connect(struct agent_cache *ac, struct agent_host *ah, char **why)
{
	const struct host	*h = ah->host;
	struct agent_keys	 k;
	struct agent_key	*rk;
	struct agent_client_opt	 opt;
	struct err		 e;
	const char		*addr;
	char			 hostport[300];
	int			 r, port;

	if (ah->c != NULL && (ah->active > 0 || host_idle_ok(ah)))
		return ah->c;
	if (ac->ctx == NULL) {
		*why = xstrdup("unable to make a ZeroMQ context");
		return NULL;
	}
	addr = h->address != NULL ? h->address : h->name;
	port = agent_port(h);
	memset(&k, 0, sizeof k);
	r = known_agents_lookup(ah->known, addr, port, k.server_public, &e);
	memcpy(ah->pinned, k.server_public, sizeof ah->pinned);
	if (r == -1) {
		*why = xasprintf("no agent key for %s: %s", addr, e.msg);
		return NULL;
	}
	if (r == 0) {
		if (port == AGENT_PORT)
			snprintf(hostport, sizeof hostport, "%s", addr);
		else
			snprintf(hostport, sizeof hostport, strchr(addr, ':') !=
			    NULL ? "[%s]:%d" : "%s:%d", addr, port);
		*why = xasprintf("no agent key is pinned for %s in '%s': pin "
		    "it with the enroll stage, or by hand from the agent's "
		    ".pub: echo \"%s $(cat agent.key.pub)\" >> %s", hostport,
		    ah->known, hostport, ah->known);
		return NULL;
	}
	if ((rk = key_get(ac, h->group)) == NULL || rk->why != NULL) {
		*why = xstrdup(rk->why);
		return NULL;
	}
	memcpy(k.public, rk->public, sizeof k.public);
	memcpy(k.secret, rk->secret, sizeof k.secret);
	ah->public = rk->public;
	memset(&opt, 0, sizeof opt);
	ah->c = agent_client_open(ac->ctx, ah->endpoint, &k, &opt, &e);
	explicit_bzero(&k, sizeof k);
	if (ah->c == NULL) {
		*why = xstrdup(e.msg);
		return NULL;
	}
	return ah->c;
}

/* Why a client failed, as a row says it. */
static char *
fail_reason(struct agent_host *ah, const char *msg)
{
	switch (agent_client_failure(ah->c)) {
	case AGENT_EAUTH:
		return xasprintf("the agent at %s refused our key (ZAP); add "
		    "%s to its authorized file", ah->endpoint, ah->public);
	case AGENT_EHANDSHAKE:
		return xasprintf("%s (the key pinned for it is in '%s')", msg,
		    ah->known);
	default:
		return xstrdup(msg);
	}
}

/*
 * Ends a row the agent never took: unreachable, or over ssh later. The
 * host's agent is not tried again in this run (as an ssh host that could
 * not be reached) while the same key is pinned for it: a later stage
 * does not wait out connect-timeout again before its fallback, and an
 * enroll stage that pins a new key makes it worth another try.
 */
static void
row_unreached(struct agent_cache *ac, struct job *j, const char *why)
{
	struct agent_host	*ah;

	if ((ah = hmap_get(&ac->hosts, j->row->host->name)) != NULL &&
	    ah->dead == NULL) {
		ah->dead = xstrdup(why);
		memcpy(ah->dead_pin, ah->pinned, sizeof ah->dead_pin);
	}
	if (j->row->host->group->agent.fallback_ssh) {
		log_warn("%s: agent unreachable (%s); running it over ssh "
		    "instead (fallback: ssh)", j->row->host->name, why);
		buf_reset(&j->row->out);
		buf_reset(&j->row->err);
		ac->fallback = xreallocarray(ac->fallback, ac->nfallback + 1,
		    sizeof *ac->fallback);
		ac->fallback[ac->nfallback++] = j;
		return;
	}
	job_end(j, END_UNREACHABLE, 0, why);
	job_done(j);
}

static void
slot_free(struct slot *sl)
{
	sl->ah->active--;
	forks_give();
	memset(sl, 0, sizeof *sl);
}

/* The row is final. */
static void
slot_done(struct slot *sl)
{
	job_done(sl->job);
	slot_free(sl);
}

static void
slot_duration(struct slot *sl)
{
	sl->job->row->duration_ms = now_ms() - sl->start;
}

/*
 * A deadline or ^C: the row ends now as it says; the agent is asked to
 * kill the command, and the slot waits (bounded) for its exit so that
 * nothing of ours runs on when the row is reported.
 */
static void
slot_kill(struct agent_cache *ac, struct slot *sl, enum job_end how)
{
	struct err	e;

	slot_duration(sl);
	job_end(sl->job, how, sl->job->timeout, NULL);
	if (sl->ah->c == NULL || !agent_client_ready(sl->ah->c) ||
	    agent_client_kill(sl->ah->c, ac->next_id++, sl->id, &e) == -1) {
		/* Never delivered, or the connection goes: the agent stops
		 * what this runner started when it sees it gone. */
		slot_done(sl);
		return;
	}
	sl->ah->kick = 1;
	sl->state = S_KILLING;
	sl->kill_deadline = now_ms() + KILL_WAIT_MS;
}

/* Sends the job's request; 0, or -1 when the row has ended. */
static int
slot_send(struct agent_cache *ac, struct slot *sl)
{
	struct job	*j = sl->job;
	struct err	 e;
	uint32_t	 dl;
	int		 r;

	sl->id = ac->next_id++;
	sl->size = j->input_len + (j->put_path != NULL ? strlen(j->put_path) :
	    j->command != NULL ? strlen(j->command) : 0);
	dl = j->timeout > 0 ? (uint32_t)j->timeout * 1000 : 0;
	if (j->put_path != NULL)
		r = agent_client_put_file(sl->ah->c, sl->id, j->put_path,
		    j->put_mode, j->input, j->input_len, &e);
	else if (j->command == NULL)
		r = agent_client_send(sl->ah->c, FRAME_PING, sl->id, NULL, 0,
		    NULL, 0, &e);
	else if (j->input != NULL)
		r = agent_client_exec_input(sl->ah->c, sl->id, j->command, dl,
		    j->input, j->input_len, &e);
	else
		r = agent_client_exec(sl->ah->c, sl->id, j->command, dl, &e);
	if (r == -1) {
		slot_duration(sl);
		job_end(j, END_NOT_RUN, 127, e.msg);
		slot_done(sl);
		return -1;
	}
	sl->ah->kick = 1;
	sl->state = S_SENT;
	return 0;
}

/* A reply to one of our requests. */
static void
slot_reply(struct agent_cache *ac, struct slot *sl, const struct frame *f)
{
	struct job	*j = sl->job;
	struct row	*r = j->row;
	uint32_t	 code, sig;

	if (sl->state == S_KILLING) {
		/* The row has ended; only the command's end matters now. */
		if (f->type == FRAME_EXIT || f->type == FRAME_ERROR ||
		    f->type == FRAME_RESULT)
			slot_done(sl);
		return;
	}
	switch (f->type) {
	case FRAME_OUTPUT:
		buf_add(f->u[0] == FRAME_STDOUT ? &r->out : &r->err,
		    f->b[0].p, f->b[0].len);
		return;
	case FRAME_EXIT:
		code = f->u[0];
		sig = f->u[1];
		slot_duration(sl);
		/* The agent kept the deadline: it ended the command first. */
		if (code == CODE_TIMEOUT && sig != 0 && j->timeout > 0)
			job_end(j, END_TIMEOUT, j->timeout, NULL);
		else if (sig != 0)
			job_end(j, END_SIGNAL, (int)sig, NULL);
		else
			job_end(j, END_EXIT, (int)code, NULL);
		break;
	case FRAME_RESULT:
		/* put-file's is the sha256 of what landed, as copy wants. */
		slot_duration(sl);
		if (j->put_path != NULL)
			buf_add(&r->out, f->b[0].p, f->b[0].len);
		job_end(j, END_EXIT, 0, NULL);
		break;
	case FRAME_ERROR:
		slot_duration(sl);
		if (f->u[0] == FRAME_EREVOKED) {
			/* Never run: as a refused key, so fallback may take it. */
			char *why = xasprintf("the agent at %s no longer "
			    "authorizes our key (removed on SIGHUP); add %s to "
			    "its authorized file", sl->ah->endpoint,
			    sl->ah->public);

			slot_free(sl);
			row_unreached(ac, j, why);
			free(why);
			return;
		}
		buf_printf(&r->err, "reops-run: the agent did not run it: "
		    "%.*s\n", (int)f->b[0].len, (const char *)f->b[0].p);
		if (f->u[0] == FRAME_ETYPE && j->input != NULL &&
		    j->put_path == NULL)
			buf_adds(&r->err, "reops-run: an agent older than "
			    "this runner takes no input (exec-input); "
			    "upgrade it\n");
		/* A request the agent could not carry out: as a shell
		 * that could not run it. */
		job_end(j, END_EXIT, j->put_path != NULL ? 1 : 127, NULL);
		break;
	default:
		return;
	}
	slot_done(sl);
}

/* The host's client failed: every row of ours on it ends. */
static void
host_failed(struct agent_cache *ac, struct slot *slots, size_t nslots,
    struct agent_host *ah, const char *msg)
{
	char	*why, *mid;
	size_t	 i;
	int	 delivered = agent_client_ready(ah->c);

	why = fail_reason(ah, msg);
	for (i = 0; i < nslots; i++) {
		struct slot *sl = &slots[i];

		if (sl->state == S_FREE || sl->ah != ah)
			continue;
		if (sl->state == S_KILLING) {
			slot_done(sl);
			continue;
		}
		slot_duration(sl);
		if (!delivered) {
			struct job *j = sl->job;

			slot_free(sl);
			row_unreached(ac, j, why);
			continue;
		}
		/*
		 * It may have run: unreachable, and never run again. An
		 * agent drops a connection whose message is far over its -M.
		 */
		if (sl->size > 65536)
			mid = xasprintf("%s while running the command (its "
			    "request was %zu bytes: over the agent's -M "
			    "limit?)", why, sl->size);
		else
			mid = xasprintf("%s while running the command", why);
		job_end(sl->job, END_UNREACHABLE, 0, mid);
		free(mid);
		slot_done(sl);
	}
	free(why);
	host_disconnect(ah);
}

/* Reads every reply that is there; 0, or -1 when the client failed. */
static int
host_read(struct agent_cache *ac, struct slot *slots, size_t nslots,
    struct agent_host *ah)
{
	struct agent_reply	 rep;
	struct err		 e;
	size_t			 i;
	int			 r;

	ah->kick = 0;
	while ((r = agent_client_recv(ah->c, &rep, &e)) == 1) {
		for (i = 0; i < nslots; i++)
			if (slots[i].state != S_FREE && slots[i].ah == ah &&
			    slots[i].id == rep.f.id) {
				slot_reply(ac, &slots[i], &rep.f);
				break;
			}
		agent_reply_free(&rep);
	}
	if (r == -1) {
		host_failed(ac, slots, nslots, ah, e.msg);
		return -1;
	}
	return 0;
}

/* A connection that never came up in the group's connect-timeout. */
static void
connect_timed_out(struct agent_cache *ac, struct slot *slots, size_t nslots,
    struct agent_host *ah)
{
	char	*msg;

	if (agent_client_connected(ah->c))
		msg = xasprintf("%s accepted a connection but no CURVE "
		    "handshake came within %ds: it is not a reops-agent, or "
		    "does not answer", ah->endpoint, ah->connect_timeout);
	else if (agent_client_retries(ah->c) > 0)
		msg = xasprintf("no agent is listening at %s (%d connection "
		    "attempts refused in %ds)", ah->endpoint,
		    agent_client_retries(ah->c) + 1, ah->connect_timeout);
	else
		msg = xasprintf("no answer from %s within %ds", ah->endpoint,
		    ah->connect_timeout);
	host_failed(ac, slots, nslots, ah, msg);
	free(msg);
}

/* copy: a put-file where the agent can do it, else the script on stdin. */
void
agent_put(struct job *j, const struct put_file *pf)
{
	size_t	len = strlen(pf->dest);

	/* The script and its input are what a fallback to ssh runs. */
	j->command = put_command(pf, 0);
	j->input = pf->data;
	j->input_len = pf->len;
	if (!pf->sudo && pf->dest[0] == '/' && len >= 2 &&
	    len <= FRAME_PATH_MAX && pf->dest[len - 1] != '/') {
		j->put_path = pf->dest;
		j->put_mode = (unsigned)strtoul(pf->mode, NULL, 8);
	}
}

static long long
slot_deadline(const struct slot *sl)
{
	long long	d = sl->deadline;

	if (sl->state == S_KILLING)
		return sl->kill_deadline;
	if (sl->connect_deadline != 0 && (d == 0 || sl->connect_deadline < d))
		d = sl->connect_deadline;
	return d;
}

int
agent_run(struct run *run, struct job **jobs, size_t n)
{
	struct agent_cache	 *ac = cache_get(run);
	struct agent_host	 *ah, **polled;
	struct slot		 *slots;
	zmq_pollitem_t		 *items;
	struct held		  hb;
	size_t			  next = 0, active = 0, np, i, k;
	long long		  now, d;
	int			  forks, wait_ms, held, full, wake, r = 0;
	char			 *why;

	forks = forks_max(run);
	if ((size_t)forks > n)
		forks = (int)n;
	slots = xcalloc((size_t)forks, sizeof *slots);
	/* Two a host at work, and the wake-up when held back. */
	items = xcalloc(2 * (size_t)forks + 1, sizeof *items);
	polled = xcalloc((size_t)forks, sizeof *polled);
	held_init(&hb);
	for (;;) {
		held = full = 0;
		held_look(&hb);
		while (!run_interrupted && next < n &&
		    active < (size_t)forks) {
			struct job *j = jobs[next];

			if (forks_take(run) != 0) {
				full = 1;
				break;
			}
			ah = host_get(ac, j->row->host);
			if (host_still_dead(ah)) {
				forks_give();
				next++;
				buf_reset(&j->row->out);
				buf_reset(&j->row->err);
				j->row->duration_ms = 0;
				row_unreached(ac, j, ah->dead);
				continue;
			}
			if (ah->c == NULL && ah->fds == 0) {
				if (fd_reserve(CLIENT_FDS) != 0) {
					forks_give();
					if (fd_fits_ever(CLIENT_FDS)) {
						held = 1;
						break;
					}
					why = xasprintf("not started: too few "
					    "file descriptors (the limit on "
					    "open files is %ld)", fd_limit());
					job_end(j, END_NOT_RUN, 127, why);
					free(why);
					job_done(j);
					next++;
					continue;
				}
				ah->fds = CLIENT_FDS;
			}
			next++;
			buf_reset(&j->row->out);
			buf_reset(&j->row->err);
			why = NULL;
			if (host_connect(ac, ah, &why) == NULL) {
				host_disconnect(ah);
				forks_give();
				j->row->duration_ms = 0;
				row_unreached(ac, j, why);
				free(why);
				continue;
			}
			for (i = 0; slots[i].state != S_FREE; i++)
				;
			slots[i].job = j;
			slots[i].ah = ah;
			slots[i].start = now_ms();
			if (j->timeout > 0)
				slots[i].deadline = slots[i].start +
				    (long long)j->timeout * 1000;
			if (!agent_client_ready(ah->c))
				slots[i].connect_deadline = slots[i].start +
				    (long long)ah->connect_timeout * 1000;
			ah->active++;
			if (slot_send(ac, &slots[i]) == 0)
				active++;
		}
		if (run_interrupted) {
			for (; next < n; next++) {
				jobs[next]->row->status = ST_SKIPPED;
				buf_adds(&jobs[next]->row->err, "reops-run: "
				    "not started: interrupted\n");
			}
			for (i = 0; i < (size_t)forks; i++)
				if (slots[i].state == S_SENT)
					slot_kill(ac, &slots[i],
					    END_INTERRUPTED);
		}
		active = 0;
		for (i = 0; i < (size_t)forks; i++)
			if (slots[i].state != S_FREE)
				active++;
		if (active == 0 && next >= n)
			break;
		/* The hosts at work, each polled once. */
		now = now_ms();
		wait_ms = -1;
		np = 0;
		for (i = 0; i < ac->nall; i++) {
			ah = ac->all[i];
			if (ah->active == 0 || ah->c == NULL)
				continue;
			if (ah->kick)
				wait_ms = 0;
			polled[np] = ah;
			agent_client_pollitems(ah->c, &items[2 * np]);
			np++;
			if (np == (size_t)forks)
				break;
		}
		for (i = 0; i < (size_t)forks; i++) {
			if (slots[i].state == S_FREE ||
			    (d = slot_deadline(&slots[i])) == 0)
				continue;
			d = d > now ? d - now : 0;
			if (wait_ms < 0 || d < wait_ms)
				wait_ms = (int)d;
		}
		/* Slots or descriptors another loop gives back wake us. */
		memset(&items[2 * np], 0, sizeof items[0]);
		items[2 * np].fd = held_wait(&hb, (full ? HELD_FORKS : 0) |
		    (held ? HELD_FDS : 0));
		items[2 * np].events = ZMQ_POLLIN;
		wake = items[2 * np].fd != -1;
		/* In a thread, SIGINT interrupts the other poll, not ours. */
		if (wait_ms < 0 || wait_ms > INTERRUPT_POLL_MS)
			wait_ms = INTERRUPT_POLL_MS;
		if (zmq_poll(items, (int)(2 * np) + wake, wait_ms) == -1 &&
		    zmq_errno() != EINTR) {
			log_warn("agent: zmq_poll: %s",
			    zmq_strerror(zmq_errno()));
			r = -1;
			break;
		}
		held_disarm(&hb);
		for (k = 0; k < np; k++) {
			ah = polled[k];
			if (ah->c == NULL)
				continue;
			if (items[2 * k].revents != 0 ||
			    items[2 * k + 1].revents != 0 || ah->kick)
				(void)host_read(ac, slots, (size_t)forks, ah);
		}
		/* Deadlines: connecting, ours, and the wait for a kill. */
		now = now_ms();
		for (i = 0; i < (size_t)forks; i++) {
			struct slot *sl = &slots[i];

			if (sl->state == S_FREE)
				continue;
			ah = sl->ah;
			if (sl->connect_deadline != 0 && ah->c != NULL &&
			    agent_client_ready(ah->c))
				sl->connect_deadline = 0;
			if ((d = slot_deadline(sl)) == 0 || now < d)
				continue;
			if (sl->state == S_KILLING) {
				log_debug("%s: no exit after the kill; the "
				    "agent ends the command", ah->host->name);
				slot_done(sl);
			} else if (sl->connect_deadline != 0 &&
			    (sl->deadline == 0 ||
			    sl->connect_deadline <= sl->deadline))
				connect_timed_out(ac, slots, (size_t)forks, ah);
			else if (!agent_client_ready(ah->c)) {
				why = xasprintf("no answer from %s before the "
				    "deadline (%ds)", ah->endpoint,
				    sl->job->timeout);
				host_failed(ac, slots, (size_t)forks, ah, why);
				free(why);
			} else
				slot_kill(ac, sl, END_TIMEOUT);
		}
	}
	if (r != 0) {
		for (i = 0; i < (size_t)forks; i++) {
			if (slots[i].state == S_FREE)
				continue;
			if (slots[i].state == S_SENT)
				job_end(slots[i].job, END_NOT_RUN, -1,
				    "not finished: internal error");
			slot_done(&slots[i]);
		}
		for (; next < n; next++)
			job_end(jobs[next], END_NOT_RUN, -1, "not started: "
			    "internal error");
	}
	held_end(&hb);
	free(slots);
	free(items);
	free(polled);
	return r;
}

/*
 * After a stage's loops: the rows no agent took, in a group with
 * "fallback: ssh", run over ssh with the group's ssh settings.
 */
int
agent_fallback(struct run *run)
{
	struct agent_cache	*ac = run->agent;
	struct job		**fb;
	size_t			  n;
	int			  r;

	if (ac == NULL || ac->nfallback == 0)
		return 0;
	fb = ac->fallback;
	n = ac->nfallback;
	ac->fallback = NULL;
	ac->nfallback = 0;
	r = ssh_run(run, fb, n);
	free(fb);
	return r;
}

void
agent_close(struct run *run)
{
	struct agent_cache	*ac = run->agent;
	size_t			 i;

	if (ac == NULL)
		return;
	for (i = 0; i < ac->nall; i++) {
		host_disconnect(ac->all[i]);
		free(ac->all[i]->known);
		free(ac->all[i]->dead);
		free(ac->all[i]);
	}
	for (i = 0; i < ac->nkeys; i++) {
		explicit_bzero(ac->keys[i]->secret,
		    sizeof ac->keys[i]->secret);
		free(ac->keys[i]->path);
		free(ac->keys[i]->why);
		free(ac->keys[i]);
	}
	if (ac->ctx != NULL)
		zmq_ctx_term(ac->ctx);
	hmap_free(&ac->hosts);
	free(ac->all);
	free(ac->keys);
	free(ac->fallback);
	free(ac);
	run->agent = NULL;
}
