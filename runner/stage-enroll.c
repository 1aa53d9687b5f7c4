/*
 * stage-enroll.c: "enroll" installs a reops-agent on each host and pins
 * its key, over ssh whatever the host's group's transport is (job.via):
 * ssh's host key is what vouches for the agent's key, as CurveZMQ never
 * shows it in clear. Per host, each step only when needed, so a second
 * run changes nothing and says so (changed: false):
 *  1. probe: the paths on the host and the sha256 of the binary there;
 *  2. put the binary (transport_put) when its sha256 differs;
 *  3. set up: the agent's key (--keygen, never over a file), the runner's
 *     public key in its authorized file, and the agent started: a systemd
 *     unit where systemd runs, else detached with a pid file;
 *  4. here: wait until the agent answers a ping with the runner's key,
 *     to the key read back from the host, then pin that key in the
 *     group's known-agents file (known_agents_add, under its lock).
 * Every value in a remote command is shell-quoted; the key read back is
 * data, checked to be Z85 before it is used.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "agent-client.h"
#include "knownagents.h"
#include "progress.h"
#include "run.h"
#include "ssh.h"

#ifndef REOPS_BINDIR
#define REOPS_BINDIR	"/usr/local/bin"
#endif

#define ENROLL_BINARY_MAX	((size_t)256 << 20)
#define ENROLL_WAIT_DEFAULT	10	/* seconds for the agent to answer */
#define PING_RETRY_MS		100	/* after the agent refused our key */

static const struct stage_key enroll_keys[] = {
	{ "binary", ARG_STRING, 0 },
	{ "path", ARG_STRING, 0 },
	{ "dir", ARG_STRING, 0 },
	{ "listen", ARG_STRING, 0 },
	{ "start", ARG_STRING, 0 },
	{ "wait", ARG_INT, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

static const char *const enroll_columns[] = { "agent_key", "endpoint",
    "service", "agent_pid", "changed", NULL };

/* What prepare read: the binary to install, and its digest. */
struct enroll {
	char		*binary;
	struct buf	 data;
	char		 sha256[65];
	const char	*start;		/* auto, systemd or detached */
};

/* One host on its way through the steps. */
struct enrollee {
	struct row	*row;
	char		*path;		/* of the binary, on the host */
	char		*dir;		/* the agent's files, on the host */
	char		 sha256[65];	/* of the binary there; "" none */
	int		 copied;
	char		*endpoint;	/* where this runner reaches it */
	char		 key[AGENT_KEY_LEN + 1];	/* the agent's, read back */
	char		 service[16];
	char		 pid[16];
	const struct agent_keys	*keys;	/* the runner's */
	struct agent_client	*client;
	int		 answered;
	long long	 retry_at;	/* a refused ping, tried again then */
	char		 why[sizeof ((struct err *)0)->msg]; /* a refusal */
	struct buf	 changes;	/* what this run changed, a line each */
	long long	 start;
	int		 told;		/* final, and the progress told */
};

/*
 * Step 1, on the host: the binary's path and the agent's directory (a
 * leading ~/ is the remote user's home; the defaults depend on whether
 * that user is root), and the sha256 of a binary already there. The
 * directory of the binary is made, as the binary will go there anyway.
 */
static const char probe_script[] =
	"set -e; "
	"if [ \"$(id -u)\" = 0 ]; then "
	"dp=/usr/local/bin/reops-agent; dd=/var/lib/reops-agent; "
	"else dp=$HOME/.local/bin/reops-agent; dd=$HOME/.config/reops-agent; "
	"fi; "
	"p=${p:-$dp}; d=${d:-$dd}; "
	"case $p in \\~/*) p=$HOME/${p#??};; esac; "
	"case $d in \\~/*) d=$HOME/${d#??};; esac; "
	"for v in \"$p\" \"$d\"; do case $v in /*) ;; *) "
	"echo \"reops-run: enroll: '$v' is not an absolute path\" >&2; "
	"exit 2;; esac; done; "
	"printf 'path=%s\\ndir=%s\\n' \"$p\" \"$d\"; "
	"if [ -f \"$p\" ]; then "
	"if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum <\"$p\"); "
	"elif command -v shasum >/dev/null 2>&1; then "
	"s=$(shasum -a 256 <\"$p\"); else s=; fi; "
	"printf 'sha256=%s\\n' \"${s%% *}\"; fi; "
	"mkdir -p -- \"$(dirname -- \"$p\")\"";

/*
 * Step 3, on the host, with b (binary), d (directory), l (endpoint to
 * listen on), k (the runner's public key), c (its comment), m (auto,
 * systemd or detached) and copied (1: the binary was replaced) set
 * before it. Prints service=, pid=, changed= (words) and key=.
 * A running agent is restarted when its binary or command line changed,
 * sent SIGHUP when only its authorized file did, else left alone.
 */
static const char setup_script[] =
	"set -e; umask 077; ch=; "
	"say() { ch=\"$ch $1\"; }; "
	"alive() { kill -0 \"$1\" 2>/dev/null || return 1; "
	"[ -r \"/proc/$1/stat\" ] || return 0; "
	"z=$(sed -e 's/^.*) //' -e 's/ .*//' \"/proc/$1/stat\" 2>/dev/null) "
	"|| return 0; [ \"$z\" != Z ]; }; "
	"nap() { sleep 0.1 2>/dev/null || sleep 1; }; "
	"if [ ! -d \"$d\" ]; then mkdir -p -m 0700 -- \"$d\"; say dir; fi; "
	"if [ ! -e \"$d/agent.key\" ]; then "
	"\"$b\" --keygen \"$d/agent.key\" >/dev/null; say key; fi; "
	"[ -e \"$d/authorized\" ] || : >\"$d/authorized\"; "
	"au=0; "
	"if ! awk -v k=\"$k\" '$1 == k { f = 1 } END { exit !f }' "
	"\"$d/authorized\"; then "
	"printf '%s %s\\n' \"$k\" \"$c\" >>\"$d/authorized\"; au=1; "
	"say authorized; fi; "
	"u=$(id -u); "
	"if [ \"$m\" = auto ]; then m=detached; "
	"if command -v systemctl >/dev/null 2>&1; then "
	"if [ \"$u\" = 0 ]; then [ ! -d /run/systemd/system ] || m=systemd; "
	"elif systemctl --user show-environment >/dev/null 2>&1; then "
	"m=systemd; fi; fi; fi; "
	"if [ \"$m\" = systemd ]; then "
	"case \"$b$d$l\" in *[!]A-Za-z0-9/._+@:*=,[-]*) "
	"echo \"reops-run: enroll: '$b', '$d' or '$l' has a character that a "
	"systemd unit reads otherwise; use start: detached\" >&2; exit 2;; "
	"esac; "
	"if [ \"$u\" = 0 ]; then sc=systemctl; ud=/etc/systemd/system; "
	"wb=multi-user.target; svc=systemd; "
	"else sc='systemctl --user'; "
	"ud=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user; "
	"wb=default.target; svc=systemd-user; fi; "
	"mkdir -p -- \"$ud\"; f=$ud/reops-agent.service; "
	"t=$(mktemp -- \"$f.reops.XXXXXX\"); trap 'rm -f -- \"$t\"' EXIT; "
	"printf '%s\\n' '[Unit]' "
	"'Description=reops-agent, the CurveZMQ agent of reops-run' "
	"'Documentation=man:reops-agent(8)' 'After=network-online.target' "
	"'Wants=network-online.target' '' '[Service]' 'Type=simple' "
	"\"ExecStart=$b -d -k $d/agent.key -a $d/authorized -l $l\" "
	"'ExecReload=/bin/kill -HUP $MAINPID' 'KillMode=mixed' "
	"'TimeoutStopSec=10' 'Restart=on-failure' '' '[Install]' "
	"\"WantedBy=$wb\" >\"$t\"; chmod 0644 -- \"$t\"; "
	"uc=0; "
	"if cmp -s -- \"$t\" \"$f\"; then rm -f -- \"$t\"; "
	"else mv -f -- \"$t\" \"$f\"; uc=1; say unit; $sc daemon-reload; fi; "
	"trap - EXIT; "
	"if ! $sc is-enabled --quiet reops-agent.service 2>/dev/null; then "
	"$sc enable --quiet reops-agent.service; say enabled; fi; "
	"if [ \"$u\" != 0 ] && command -v loginctl >/dev/null 2>&1 && "
	"! loginctl show-user \"$(id -un)\" -p Linger 2>/dev/null | "
	"grep -q =yes; then "
	"if loginctl enable-linger 2>/dev/null; then say linger; else "
	"echo \"reops-run: enroll: loginctl enable-linger was refused: the "
	"agent runs while $(id -un) has a session\" >&2; fi; fi; "
	"if ! $sc is-active --quiet reops-agent.service; then "
	"$sc start reops-agent.service; say started; "
	"elif [ $uc = 1 ] || [ \"$copied\" = 1 ]; then "
	"$sc restart reops-agent.service; say restarted; "
	"elif [ $au = 1 ]; then $sc reload reops-agent.service; say reloaded; "
	"fi; "
	"pid=$($sc show -p MainPID reops-agent.service); pid=${pid#MainPID=}; "
	"else "
	"svc=detached; pf=$d/agent.pid; lf=$d/agent.log; cf=$d/agent.cmd; "
	"rb=$(readlink -f -- \"$b\" 2>/dev/null) || rb=$b; "
	"pid=$(cat -- \"$pf\" 2>/dev/null) || pid=; "
	"case $pid in ''|*[!0-9]*) pid=;; esac; "
	"ours=0; e=; "
	"if [ -n \"$pid\" ] && alive \"$pid\"; then "
	"if [ -d \"/proc/$pid\" ]; then "
	"e=$(readlink -- \"/proc/$pid/exe\" 2>/dev/null) || e=; "
	"case $e in \"$rb\"|\"$rb (deleted)\") ours=1;; esac; "
	"else case $(ps -o comm= -p \"$pid\" 2>/dev/null) in "
	"reops-agent*) ours=1; e=$rb;; esac; fi; fi; "
	"want=$(printf '%s\\n' \"$b\" \"$d\" \"$l\"); "
	"have=$(cat -- \"$cf\" 2>/dev/null) || have=; "
	"st=1; what=started; "
	"if [ $ours = 1 ]; then "
	"if [ \"$copied\" = 1 ] || [ \"$want\" != \"$have\" ] || "
	"[ \"$e\" != \"$rb\" ]; then "
	"kill -TERM \"$pid\" 2>/dev/null || :; i=0; "
	"while alive \"$pid\" && [ $i -lt 100 ]; do nap; i=$((i + 1)); done; "
	"if alive \"$pid\"; then kill -KILL \"$pid\" 2>/dev/null || :; i=0; "
	"while alive \"$pid\" && [ $i -lt 50 ]; do nap; i=$((i + 1)); done; "
	"fi; what=restarted; "
	"else st=0; "
	"if [ $au = 1 ]; then kill -HUP \"$pid\"; say reloaded; fi; fi; fi; "
	"if [ $st = 1 ]; then "
	"printf '%s\\n' \"$want\" >\"$cf\"; rm -f -- \"$pf\"; : >>\"$lf\"; "
	"n=$(wc -c <\"$lf\"); "
	"if command -v setsid >/dev/null 2>&1; then ss=setsid; "
	"else ss=nohup; fi; "
	"$ss /bin/sh -c 'echo $$ >\"$1.tmp\" && mv -f -- \"$1.tmp\" \"$1\" && "
	"exec \"$2\" -d -k \"$3/agent.key\" -a \"$3/authorized\" -l \"$4\" "
	"</dev/null >>\"$5\" 2>&1' reops-agent \"$pf\" \"$b\" \"$d\" \"$l\" "
	"\"$lf\" </dev/null >/dev/null 2>&1 & "
	"i=0; pid=; "
	"while [ $i -lt 100 ]; do "
	"[ -n \"$pid\" ] || pid=$(cat -- \"$pf\" 2>/dev/null) || :; "
	"if [ -n \"$pid\" ]; then "
	"tail -c +$((n + 1)) -- \"$lf\" | grep -q 'listening on' && break; "
	"alive \"$pid\" || break; fi; "
	"nap; i=$((i + 1)); done; "
	"if [ -z \"$pid\" ] || ! alive \"$pid\"; then "
	"echo \"reops-run: enroll: the agent did not start; the end of $lf:\" "
	">&2; tail -c +$((n + 1)) -- \"$lf\" | tail -n 5 >&2; exit 1; fi; "
	"say $what; fi; fi; "
	"printf 'service=%s\\npid=%s\\nchanged=%s\\nkey=' \"$svc\" \"$pid\" "
	"\"$ch\"; head -n 1 -- \"$d/agent.key.pub\"";

/*
 * The default binary: the reops-agent beside the running reops-run (the
 * build tree, or where both were installed), else the configured bindir.
 */
static char *
default_binary(void)
{
	char	 self[PATH_MAX], *dir, *p;
	ssize_t	 n;

	if ((n = readlink("/proc/self/exe", self, sizeof self - 1)) > 0) {
		self[n] = '\0';
		dir = path_dir(self);
		p = xasprintf("%s/reops-agent", dir);
		free(dir);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return xstrdup(REOPS_BINDIR "/reops-agent");
}

/* The binary is read now, so a missing one stops the run before it starts. */
static int
enroll_prepare(struct stage *st, struct err *e)
{
	const struct node	*bin, *start, *wait;
	struct enroll		*en;
	struct err		 why;
	char			*base;

	en = xcalloc(1, sizeof *en);
	buf_init(&en->data);
	st->data = en;
	en->start = "auto";
	if ((start = stage_arg(st, "start")) != NULL) {
		if (strcmp(start->str, "auto") != 0 &&
		    strcmp(start->str, "systemd") != 0 &&
		    strcmp(start->str, "detached") != 0)
			return node_err(e, start, "'start' of stage 'enroll' "
			    "must be auto, systemd or detached, not '%s'",
			    start->str);
		en->start = start->str;
	}
	if ((wait = stage_arg(st, "wait")) != NULL &&
	    (stage_int(st, "wait", 0) < 1 || stage_int(st, "wait", 0) > 3600))
		return node_err(e, wait, "'wait' of stage 'enroll' must be "
		    "from 1 to 3600 seconds, not '%s'", wait->str);
	if ((bin = stage_arg(st, "binary")) != NULL) {
		/* A relative binary is beside the pipeline file. */
		base = path_dir(st->owner != NULL ? st->owner->file : NULL);
		en->binary = bin->str[0] == '/' || base == NULL ||
		    base[0] == '\0' || strcmp(base, ".") == 0 ?
		    xstrdup(bin->str) : xasprintf("%s/%s", base, bin->str);
		free(base);
	} else
		en->binary = default_binary();
	if (read_regular_file(en->binary, ENROLL_BINARY_MAX, &en->data,
	    &why) != 0)
		return node_err(e, bin != NULL ? bin : st->key, "%s%s", why.msg,
		    bin != NULL ? "" : " (the reops-agent to install; set "
		    "'binary')");
	sha256_hex(en->data.data != NULL ? en->data.data : "", en->data.len,
	    en->sha256);
	return 0;
}

static void
enroll_cleanup(struct stage *st)
{
	struct enroll	*en = st->data;

	if (en == NULL)
		return;
	free(en->binary);
	buf_free(&en->data);
	free(en);
	st->data = NULL;
}

/* Makes the directories of path, as mkdir -p -m 0700 would. */
static void
make_dirs(const char *path)
{
	char	*dir, *p;

	dir = path_dir(path);
	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		(void)mkdir(dir, 0700);
		*p = '/';
	}
	(void)mkdir(dir, 0700);
	free(dir);
}

/* A key file as reops-agent --keygen writes it: never over a file. */
static int
write_key(const char *path, const char *key, mode_t mode, struct err *e)
{
	char	line[AGENT_KEY_LEN + 2];
	int	fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode)) == -1) {
		if (errno == EEXIST)
			return 1;
		return err_set(e, "unable to create '%s': %s", path,
		    xstrerror(errno));
	}
	snprintf(line, sizeof line, "%s\n", key);
	if (fchmod(fd, mode) == -1 ||
	    write(fd, line, AGENT_KEY_LEN + 1) != AGENT_KEY_LEN + 1 ||
	    fsync(fd) == -1) {
		err_set(e, "unable to write '%s': %s", path, xstrerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd) == -1) {
		unlink(path);
		return err_set(e, "unable to write '%s': %s", path,
		    xstrerror(errno));
	}
	return 0;
}

/*
 * The runner's key pair at path, made (0600, its .pub beside it) when
 * there is none; another run making it at the same time is fine.
 */
static int
runner_keys(const char *path, struct agent_keys *k, int *made, struct err *e)
{
	char	pub[AGENT_KEY_LEN + 1], sec[AGENT_KEY_LEN + 1], *pubpath;
	int	r;

	*made = 0;
	memset(k, 0, sizeof *k);
	if (access(path, F_OK) == -1 && errno == ENOENT) {
		make_dirs(path);
		if (zmq_curve_keypair(pub, sec) == -1)
			return err_set(e, "unable to make a key pair: %s",
			    zmq_strerror(zmq_errno()));
		r = write_key(path, sec, 0600, e);
		explicit_bzero(sec, sizeof sec);
		if (r == -1)
			return -1;
		*made = r == 0;
	}
	if (agent_key_read_secret(path, k->secret, k->public, e) == -1)
		return -1;
	pubpath = xasprintf("%s.pub", path);
	r = write_key(pubpath, k->public, 0644, e);
	free(pubpath);
	return r == -1 ? -1 : 0;
}

/* One line "name=value" of out: its value, or NULL. */
static char *
out_value(const struct buf *out, const char *name)
{
	const char	*p, *end, *nl;
	size_t		 len = strlen(name);

	if (out->data == NULL)
		return NULL;
	p = out->data;
	end = p + out->len;
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if ((size_t)(nl - p) > len && memcmp(p, name, len) == 0 &&
		    p[len] == '=') {
			if (memchr(p, '\0', (size_t)(nl - p)) != NULL)
				return NULL;
			return xstrndup(p + len + 1, (size_t)(nl - p - len - 1));
		}
	}
	return NULL;
}

static void
fail(struct enrollee *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A step here failed the row: one line of reason. */
static void
fail(struct enrollee *h, const char *fmt, ...)
{
	struct row	*r = h->row;
	va_list		 ap;

	r->status = ST_FAILED;
	r->code = 1;
	buf_adds(&r->err, "reops-run: enroll: ");
	va_start(ap, fmt);
	buf_vprintf(&r->err, fmt, ap);
	va_end(ap);
	buf_addc(&r->err, '\n');
}

static void
quoted_var(struct buf *b, const char *name, const char *value)
{
	buf_printf(b, "%s=", name);
	shell_quote(b, value);
	buf_adds(b, "; ");
}

/*
 * Runs each job over ssh, whatever the rows' groups' transport, as a
 * step: the progress hears of a host once, for the stage (told).
 */
static int
run_over_ssh(struct run *run, struct job *jobs, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		jobs[i].via = JOB_VIA(TR_SSH);
		jobs[i].step = 1;
	}
	return n > 0 ? run_jobs(run, jobs, n) : 0;
}

/* A host is final: its time is taken and the progress told, once. */
static void
told(struct run *run, struct enrollee *h)
{
	if (h->told)
		return;
	h->told = 1;
	h->row->duration_ms = now_ms() - h->start;
	run_row_done(run, h->row);
}

/* The hosts a step failed go no further: they are final now. */
static void
told_failed(struct run *run, struct enrollee *hs, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (hs[i].row->status != ST_OK)
			told(run, &hs[i]);
}

/* Step 1: where the binary and the agent's files are, and the digest. */
static int
step_probe(struct run *run, struct stage *st, struct enrollee *hs, size_t n,
    int timeout)
{
	struct job	*jobs;
	struct buf	 cmd, p, d;
	char		*v;
	size_t		 i, m = 0;
	int		 ret;

	jobs = xcalloc(n, sizeof *jobs);
	for (i = 0; i < n; i++) {
		/* A row failed here (the runner's key) goes no further. */
		if (hs[i].row->status != ST_OK)
			continue;
		buf_init(&cmd);
		buf_init(&p);
		buf_init(&d);
		expand_row(&p, stage_str(st, "path", ""), hs[i].row,
		    EXPAND_TEXT, NULL);
		expand_row(&d, stage_str(st, "dir", ""), hs[i].row,
		    EXPAND_TEXT, NULL);
		quoted_var(&cmd, "p", p.data != NULL ? p.data : "");
		quoted_var(&cmd, "d", d.data != NULL ? d.data : "");
		buf_free(&p);
		buf_free(&d);
		buf_adds(&cmd, probe_script);
		jobs[m].row = hs[i].row;
		jobs[m].command = buf_steal(&cmd);
		jobs[m].timeout = timeout > 0 ? timeout :
		    row_timeout(run, hs[i].row, 0);
		m++;
	}
	ret = run_over_ssh(run, jobs, m);
	for (i = 0; i < m; i++)
		free(jobs[i].command);
	for (i = 0; i < n; i++) {
		if (hs[i].row->status != ST_OK)
			continue;
		hs[i].path = out_value(&hs[i].row->out, "path");
		hs[i].dir = out_value(&hs[i].row->out, "dir");
		if ((v = out_value(&hs[i].row->out, "sha256")) != NULL) {
			snprintf(hs[i].sha256, sizeof hs[i].sha256, "%s", v);
			free(v);
		}
		buf_reset(&hs[i].row->out);
		if (hs[i].path == NULL || hs[i].dir == NULL ||
		    hs[i].path[0] != '/' || hs[i].dir[0] != '/')
			fail(&hs[i], "the host did not say where the agent "
			    "goes");
	}
	free(jobs);
	return ret;
}

/* Step 2: the binary, to the hosts that do not have this one. */
static int
step_put(struct run *run, struct enroll *en, struct enrollee *hs, size_t n,
    int timeout)
{
	struct put_file	 pf;
	struct job	*jobs;
	size_t		 i, m = 0;
	int		 ret;

	jobs = xcalloc(n, sizeof *jobs);
	for (i = 0; i < n; i++) {
		if (hs[i].row->status != ST_OK ||
		    strcmp(hs[i].sha256, en->sha256) == 0)
			continue;
		memset(&pf, 0, sizeof pf);
		pf.src = en->binary;
		pf.data = en->data.data != NULL ? en->data.data : "";
		pf.len = en->data.len;
		pf.dest = hs[i].path;
		pf.mode = "0755";
		jobs[m].row = hs[i].row;
		jobs[m].timeout = timeout > 0 ? timeout :
		    row_timeout(run, hs[i].row, 0);
		jobs[m].via = JOB_VIA(TR_SSH);	/* before the put: its way */
		transport_put(&jobs[m], &pf);
		m++;
	}
	ret = run_over_ssh(run, jobs, m);
	for (i = 0; i < m; i++) {
		struct row	*r = jobs[i].row;
		struct enrollee	*h;

		free(jobs[i].command);
		for (h = hs; h->row != r; h++)
			;
		if (r->status != ST_OK)
			continue;
		if (r->out.len >= 64 && memcmp(r->out.data, en->sha256,
		    64) != 0)
			fail(h, "sha256 of the binary that landed in '%s' is "
			    "%.64s, not %s", h->path, r->out.data, en->sha256);
		else {
			h->copied = 1;
			buf_printf(&h->changes, "copied %s to %s\n",
			    en->binary, h->path);
		}
		buf_reset(&r->out);
	}
	free(jobs);
	return ret;
}

/* The endpoint this runner reaches a host's agent at. */
static char *
agent_endpoint(const struct host *hst)
{
	const char	*a = hst->address != NULL ? hst->address : hst->name;

	if (strchr(a, ':') != NULL)
		return xasprintf("tcp://[%s]:%d", a, agent_port(hst));
	return xasprintf("tcp://%s:%d", a, agent_port(hst));
}

/*
 * Where the agent listens by default: the host's address when it is an
 * IP address, else every interface (ZeroMQ binds no DNS name).
 */
static char *
default_listen(const struct host *hst)
{
	const char	*a = hst->address != NULL ? hst->address : hst->name;
	unsigned char	 addr[16];

	if (inet_pton(AF_INET, a, addr) == 1)
		return xasprintf("tcp://%s:%d", a, agent_port(hst));
	if (inet_pton(AF_INET6, a, addr) == 1)
		return xasprintf("tcp://[%s]:%d", a, agent_port(hst));
	return xasprintf("tcp://*:%d", agent_port(hst));
}

/* The comment after the runner's key in the agent's authorized file. */
static char *
runner_comment(void)
{
	char	host[256], *p;

	if (gethostname(host, sizeof host) == -1)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	for (p = host; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			*p = '_';
	return xasprintf("reops-run@%s", host);
}

/* What the setup script's words for its changes mean, for stdout. */
static const char *
change_text(const char *word)
{
	static const struct {
		const char	*word;
		const char	*text;
	} texts[] = {
		{ "dir", "made the agent's directory" },
		{ "key", "made the agent's key" },
		{ "authorized", "authorized this runner's key" },
		{ "unit", "wrote the systemd unit" },
		{ "enabled", "enabled the systemd unit" },
		{ "linger", "enabled lingering for the user" },
		{ "started", "started the agent" },
		{ "restarted", "restarted the agent" },
		{ "reloaded", "reloaded the agent's authorized keys" },
	};
	size_t	i;

	for (i = 0; i < nitems(texts); i++)
		if (strcmp(texts[i].word, word) == 0)
			return texts[i].text;
	return word;
}

/* Step 3: key, authorized runner, agent started; its key read back. */
static int
step_setup(struct run *run, struct stage *st, struct enroll *en,
    struct enrollee *hs, size_t n, int timeout)
{
	struct job	*jobs;
	struct buf	 cmd, l;
	char		*comment, *v, *w, *next;
	size_t		 i, m = 0;
	int		 ret;

	comment = runner_comment();
	jobs = xcalloc(n, sizeof *jobs);
	for (i = 0; i < n; i++) {
		if (hs[i].row->status != ST_OK)
			continue;
		buf_init(&cmd);
		buf_init(&l);
		if (stage_arg(st, "listen") != NULL)
			expand_row(&l, stage_str(st, "listen", ""),
			    hs[i].row, EXPAND_TEXT, NULL);
		else {
			v = default_listen(hs[i].row->host);
			buf_adds(&l, v);
			free(v);
		}
		quoted_var(&cmd, "b", hs[i].path);
		quoted_var(&cmd, "d", hs[i].dir);
		quoted_var(&cmd, "l", l.data != NULL ? l.data : "");
		quoted_var(&cmd, "k", hs[i].keys->public);
		quoted_var(&cmd, "c", comment);
		quoted_var(&cmd, "m", en->start);
		quoted_var(&cmd, "copied", hs[i].copied ? "1" : "0");
		buf_free(&l);
		buf_adds(&cmd, setup_script);
		jobs[m].row = hs[i].row;
		jobs[m].command = buf_steal(&cmd);
		jobs[m].timeout = timeout > 0 ? timeout :
		    row_timeout(run, hs[i].row, 0);
		m++;
	}
	free(comment);
	ret = run_over_ssh(run, jobs, m);
	for (i = 0; i < m; i++) {
		struct row	*r = jobs[i].row;
		struct enrollee	*h;

		free(jobs[i].command);
		for (h = hs; h->row != r; h++)
			;
		if (r->status != ST_OK)
			continue;
		if ((v = out_value(&r->out, "service")) != NULL) {
			snprintf(h->service, sizeof h->service, "%s", v);
			free(v);
		}
		if ((v = out_value(&r->out, "pid")) != NULL) {
			if (v[0] != '\0' && strspn(v, "0123456789") ==
			    strlen(v))
				snprintf(h->pid, sizeof h->pid, "%s", v);
			free(v);
		}
		if ((v = out_value(&r->out, "changed")) != NULL) {
			for (w = v; w != NULL; w = next) {
				if ((next = strchr(w, ' ')) != NULL)
					*next++ = '\0';
				if (*w != '\0')
					buf_printf(&h->changes, "%s\n",
					    change_text(w));
			}
			free(v);
		}
		/* The key is data from the host: Z85, 40 characters. */
		v = out_value(&r->out, "key");
		if (v == NULL || !z85_key_valid(v, strlen(v)))
			fail(h, "'%s/agent.key.pub' on the host is not a "
			    "reops-agent public key", h->dir);
		else
			memcpy(h->key, v, AGENT_KEY_LEN + 1);
		free(v);
		buf_reset(&r->out);
	}
	free(jobs);
	return ret;
}

/* Connects to h's agent and sends it a ping: 0, or -1 with e set. */
static int
ping_open(void *ctx, struct enrollee *h, struct err *e)
{
	struct agent_client_opt	opt = { 0 };
	struct agent_keys	k;
	int			r = -1;

	k = *h->keys;
	memcpy(k.server_public, h->key, sizeof k.server_public);
	if ((h->client = agent_client_open(ctx, h->endpoint, &k, &opt,
	    e)) != NULL && (r = agent_client_send(h->client, FRAME_PING, 1,
	    NULL, 0, NULL, 0, e)) == -1) {
		agent_client_close(h->client);
		h->client = NULL;
	}
	explicit_bzero(&k, sizeof k);
	return r;
}

/*
 * Reads what h's agent sent: 1 once h is done (answered, or failed),
 * 0 while it is not. A refusal of the runner's key is tried again until
 * the deadline, as an agent told to re-read its authorized file (SIGHUP,
 * systemctl reload) does so a moment later.
 */
static int
ping_read(struct enrollee *h, long long deadline)
{
	struct agent_reply	reply;
	struct err		e;
	int			r;

	while ((r = agent_client_recv(h->client, &reply, &e)) == 1) {
		if (reply.f.id == 1 && reply.f.type == FRAME_RESULT)
			h->answered = 1;
		else if (reply.f.id == 1 && reply.f.type == FRAME_ERROR)
			fail(h, "the agent at '%s' refused a ping: %.*s",
			    h->endpoint, (int)reply.f.b[0].len,
			    (const char *)reply.f.b[0].p);
		agent_reply_free(&reply);
		if (h->answered || h->row->status != ST_OK)
			return 1;
	}
	if (r == 0)
		return 0;
	if (agent_client_failure(h->client) == AGENT_EAUTH &&
	    now_ms() + PING_RETRY_MS < deadline) {
		agent_client_close(h->client);
		h->client = NULL;
		h->retry_at = now_ms() + PING_RETRY_MS;
		snprintf(h->why, sizeof h->why, "%s", e.msg);
		return 0;
	}
	fail(h, "%s", e.msg);
	return 1;
}

/*
 * Step 4: each agent answers a ping, to the key read back and with the
 * runner's key, before wait seconds have passed.
 */
static void
step_wait(struct enrollee *hs, size_t n, int wait_s)
{
	zmq_pollitem_t	*items;
	struct err	 e;
	long long	 deadline, wait_ms;
	size_t		 i, m, left = 0;
	void		*ctx;

	if ((ctx = zmq_ctx_new()) == NULL) {
		for (i = 0; i < n; i++)
			if (hs[i].row->status == ST_OK)
				fail(&hs[i], "unable to set up ZeroMQ: %s",
				    zmq_strerror(zmq_errno()));
		return;
	}
	items = xcalloc(2 * n, sizeof *items);
	deadline = now_ms() + (long long)wait_s * 1000;
	for (i = 0; i < n; i++) {
		if (hs[i].row->status != ST_OK)
			continue;
		if (ping_open(ctx, &hs[i], &e) == -1)
			fail(&hs[i], "%s", e.msg);
		else
			left++;
	}
	while (left > 0 && !run_interrupted) {
		wait_ms = deadline - now_ms();
		if (wait_ms > 200)
			wait_ms = 200;
		for (i = 0; i < n; i++) {
			if (hs[i].answered || hs[i].row->status != ST_OK)
				continue;
			if (hs[i].client == NULL && now_ms() >= hs[i].retry_at &&
			    ping_open(ctx, &hs[i], &e) == -1) {
				fail(&hs[i], "%s", e.msg);
				left--;
				continue;
			}
			if (hs[i].client == NULL) {
				if (hs[i].retry_at - now_ms() < wait_ms)
					wait_ms = hs[i].retry_at - now_ms();
				continue;
			}
			if (ping_read(&hs[i], deadline))
				left--;
		}
		if (left == 0 || now_ms() >= deadline)
			break;
		for (i = 0, m = 0; i < n; i++)
			if (hs[i].client != NULL && !hs[i].answered &&
			    hs[i].row->status == ST_OK) {
				agent_client_pollitems(hs[i].client,
				    &items[m]);
				m += 2;
			}
		(void)zmq_poll(items, (int)m, wait_ms > 0 ? (long)wait_ms : 0);
	}
	for (i = 0; i < n; i++) {
		if (!hs[i].answered && hs[i].row->status == ST_OK) {
			if (run_interrupted) {
				hs[i].row->status = ST_FAILED;
				hs[i].row->code = CODE_INTERRUPTED;
				buf_adds(&hs[i].row->err,
				    "reops-run: interrupted\n");
			} else if (hs[i].why[0] != '\0')
				fail(&hs[i], "%s", hs[i].why);	/* refused */
			else
				fail(&hs[i], "the agent did not answer at "
				    "'%s' within %ds (its log on the host: "
				    "%s/agent.log, or the journal)",
				    hs[i].endpoint, wait_s, hs[i].dir);
		}
		agent_client_close(hs[i].client);
		hs[i].client = NULL;
	}
	free(items);
	zmq_ctx_term(ctx);
}

/* Step 5: the key, pinned for the host and port; never over another. */
static void
step_pin(struct enrollee *h)
{
	const struct host	*hst = h->row->host;
	const char		*a = hst->address != NULL ? hst->address :
				    hst->name;
	struct err		 e;
	char			*file;
	int			 r;

	file = known_agents_path(hst->group);
	r = known_agents_add(file, a, agent_port(hst), h->key, &e);
	if (r == 0)
		buf_printf(&h->changes, "pinned the agent's key in %s\n", file);
	else if (r != 1)
		fail(h, "%s", e.msg);
	free(file);
}

/* The runner's keys of each group's key file, made once a run. */
struct key_cache {
	char		*path;
	struct agent_keys keys;
	int		 ok;
	int		 made;
	char		 why[sizeof ((struct err *)0)->msg];
};

static int
enroll_host(struct run *run, struct stage *st, struct table *t)
{
	struct enroll		*en = st->data;
	struct enrollee		*hs;
	struct key_cache	*kc;
	struct err		 e;
	char			*path;
	size_t			 i, j, n = 0, nkc = 0;
	int			 ret = 0, timeout, wait_s;

	timeout = (int)stage_int(st, "timeout", 0);
	wait_s = (int)stage_int(st, "wait", ENROLL_WAIT_DEFAULT);
	hs = xcalloc(t->n + 1, sizeof *hs);
	kc = xcalloc(t->n, sizeof *kc);
	for (i = 0; i < t->n; i++) {
		/* The rows its when selected (run_stage): each starts anew. */
		t->rows[i]->status = ST_OK;
		t->rows[i]->code = 0;
		buf_reset(&t->rows[i]->out);
		buf_reset(&t->rows[i]->err);
		hs[n].row = t->rows[i];
		hs[n].start = now_ms();
		buf_init(&hs[n].changes);
		hs[n].endpoint = agent_endpoint(t->rows[i]->host);
		path = agent_key_path(t->rows[i]->host->group);
		for (j = 0; j < nkc && strcmp(kc[j].path, path) != 0; j++)
			;
		if (j == nkc) {
			kc[j].path = path;
			kc[j].ok = runner_keys(path, &kc[j].keys,
			    &kc[j].made, &e) == 0;
			if (!kc[j].ok)
				snprintf(kc[j].why, sizeof kc[j].why, "%s",
				    e.msg);
			nkc++;
		} else
			free(path);
		hs[n].keys = &kc[j].keys;
		if (!kc[j].ok)
			fail(&hs[n], "the runner's key: %s", kc[j].why);
		else if (kc[j].made)
			buf_printf(&hs[n].changes, "made this runner's key "
			    "%s\n", kc[j].path);
		n++;
	}
	progress_add(run->progress, n);
	told_failed(run, hs, n);
	if (n > 0 && step_probe(run, st, hs, n, timeout) != 0)
		ret = -1;
	told_failed(run, hs, n);
	if (n > 0 && !run_interrupted && step_put(run, en, hs, n,
	    timeout) != 0)
		ret = -1;
	told_failed(run, hs, n);
	if (n > 0 && !run_interrupted && step_setup(run, st, en, hs, n,
	    timeout) != 0)
		ret = -1;
	told_failed(run, hs, n);
	if (n > 0 && !run_interrupted)
		step_wait(hs, n, wait_s);
	told_failed(run, hs, n);
	for (i = 0; i < n; i++) {
		struct row	*r = hs[i].row;

		if (r->status == ST_OK && run_interrupted && !hs[i].answered) {
			/* ^C between two steps: this host was left halfway. */
			r->status = ST_FAILED;
			r->code = CODE_INTERRUPTED;
			buf_adds(&r->err, "reops-run: interrupted\n");
		} else if (r->status == ST_OK)
			step_pin(&hs[i]);
		row_sets(t, r, "agent_key", hs[i].key);
		row_sets(t, r, "endpoint", hs[i].endpoint);
		row_sets(t, r, "service", hs[i].service);
		row_sets(t, r, "agent_pid", hs[i].pid);
		row_sets(t, r, "changed", hs[i].changes.len > 0 ? "true" :
		    "false");
		if (r->status == ST_OK) {
			buf_reset(&r->out);
			buf_move(&r->out, &hs[i].changes);
		}
		told(run, &hs[i]);
		free(hs[i].path);
		free(hs[i].dir);
		free(hs[i].endpoint);
		buf_free(&hs[i].changes);
	}
	for (i = 0; i < nkc; i++) {
		explicit_bzero(&kc[i].keys, sizeof kc[i].keys);
		free(kc[i].path);
	}
	free(kc);
	free(hs);
	return ret;
}

const struct stage_entry stage_enroll_entry = {
	.name = "enroll",
	.usage = "enroll: { binary: FILE, path: PATH, dir: PATH, "
	    "listen: ENDPOINT, start: auto|systemd|detached, wait: SECONDS, "
	    "timeout: SECONDS }",
	.summary = "install, start and pin a reops-agent over ssh",
	.keys = enroll_keys,
	.columns = enroll_columns,
	.flags = STAGE_REMOTE,
	.prepare = enroll_prepare,
	.cleanup = enroll_cleanup,
	.host = enroll_host,
};
