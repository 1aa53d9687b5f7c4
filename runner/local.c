/*
 * local.c: the local transport. Each job is /bin/sh -c COMMAND in its own
 * process group, up to --forks at once; one poll loop reads every stdout,
 * stderr and pidfd, so no child ever blocks on a full pipe, and a deadline
 * kills the whole process group.
 */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"
#include "secret.h"

#define KILL_GRACE_MS	1000

struct proc {
	struct job	*job;
	pid_t		 pid;
	int		 fd[3];		/* stdout, stderr, pidfd; -1 when done */
	int		 status;
	int		 exited;
	long long	 start;
	long long	 deadline;	/* 0: none */
	long long	 killed_at;	/* when SIGTERM went; 0: not yet */
	int		 timed_out;
};

static int
pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static void
child(const char *command, int in, int out, int err)
{
	sigset_t	set;
	int		null;

	setpgid(0, 0);
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	if (in != -1)
		dup2(in, 0);
	else if ((null = open("/dev/null", O_RDONLY)) != -1 && null != 0) {
		dup2(null, 0);
		close(null);
	}
	dup2(out, 1);
	dup2(err, 2);
	if (out > 2)
		close(out);
	if (err > 2)
		close(err);
	execl("/bin/sh", "sh", "-c", command, (char *)NULL);
	_exit(127);
}

/*
 * A job's input (secrets' values) as an anonymous file in memory: read
 * from the start, never on disk, gone with the last descriptor.
 */
static int
input_fd(const struct job *j)
{
	size_t	off = 0;
	ssize_t	n;
	int	fd;

	if (j->input == NULL)
		return -1;
	if ((fd = memfd_create("reops-run-input", MFD_CLOEXEC)) == -1)
		return -2;
	while (off < j->input_len) {
		n = write(fd, j->input + off, j->input_len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -2;
		}
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) == -1) {
		close(fd);
		return -2;
	}
	return fd;
}

static int
start(struct proc *p, struct job *j)
{
	int	out[2], err[2], in;

	memset(p, 0, sizeof *p);
	p->job = j;
	p->fd[0] = p->fd[1] = p->fd[2] = -1;
	buf_reset(&j->row->out);
	buf_reset(&j->row->err);
	p->start = now_ms();
	if ((in = input_fd(j)) == -2)
		return -1;
	if (pipe2(out, O_CLOEXEC) == -1)
		goto fail;
	if (pipe2(err, O_CLOEXEC) == -1) {
		close(out[0]);
		close(out[1]);
		goto fail;
	}
	if ((p->pid = fork()) == -1) {
		close(out[0]);
		close(out[1]);
		close(err[0]);
		close(err[1]);
		goto fail;
	}
	if (p->pid == 0)
		child(j->command, in, out[1], err[1]);
	if (in != -1)
		close(in);
	setpgid(p->pid, p->pid);
	close(out[1]);
	close(err[1]);
	p->fd[0] = out[0];
	p->fd[1] = err[0];
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	p->fd[2] = pidfd_open_(p->pid);
	if (j->timeout > 0)
		p->deadline = p->start + (long long)j->timeout * 1000;
	return 0;
fail:
	if (in != -1)
		close(in);
	return -1;
}

static void
drain(struct proc *p, int which)
{
	struct buf	*b = which == 0 ? &p->job->row->out :
			    &p->job->row->err;
	char		 chunk[65536];
	ssize_t		 n;
	int		 rounds;

	/* Bounded, so one chatty child cannot starve the others. */
	for (rounds = 0; rounds < 16; rounds++) {
		n = read(p->fd[which], chunk, sizeof chunk);
		if (n > 0) {
			buf_add(b, chunk, (size_t)n);
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		close(p->fd[which]);
		p->fd[which] = -1;
		return;
	}
}

static void
reap(struct proc *p, int block)
{
	pid_t	r;

	if (p->exited)
		return;
	do
		r = waitpid(p->pid, &p->status, block ? 0 : WNOHANG);
	while (r == -1 && errno == EINTR);
	if (r == p->pid || (r == -1 && errno == ECHILD)) {
		p->exited = 1;
		if (p->fd[2] != -1) {
			close(p->fd[2]);
			p->fd[2] = -1;
		}
	}
}

static const char *
signame(int sig)
{
	switch (sig) {
	case SIGHUP: return "SIGHUP";
	case SIGINT: return "SIGINT";
	case SIGQUIT: return "SIGQUIT";
	case SIGILL: return "SIGILL";
	case SIGABRT: return "SIGABRT";
	case SIGFPE: return "SIGFPE";
	case SIGKILL: return "SIGKILL";
	case SIGSEGV: return "SIGSEGV";
	case SIGPIPE: return "SIGPIPE";
	case SIGALRM: return "SIGALRM";
	case SIGTERM: return "SIGTERM";
	case SIGBUS: return "SIGBUS";
	case SIGUSR1: return "SIGUSR1";
	case SIGUSR2: return "SIGUSR2";
	}
	return "signal";
}

/* Exit status and signals as the ssh transport maps them too. */
static void
finish(struct proc *p)
{
	struct row	*r = p->job->row;
	int		 sig;

	r->duration_ms = now_ms() - p->start;
	if (p->timed_out) {
		r->status = ST_FAILED;
		r->code = 124;
		buf_printf(&r->err, "reops-run: timed out after %ds\n",
		    p->job->timeout);
	} else if (run_interrupted && p->killed_at != 0) {
		r->status = ST_FAILED;
		r->code = 130;
		buf_adds(&r->err, "reops-run: interrupted\n");
	} else if (WIFEXITED(p->status)) {
		r->code = WEXITSTATUS(p->status);
		r->status = r->code == 0 ? ST_OK : ST_FAILED;
	} else if (WIFSIGNALED(p->status)) {
		sig = WTERMSIG(p->status);
		r->code = 128 + sig;
		r->status = ST_FAILED;
		buf_printf(&r->err, "reops-run: killed by signal %d (%s)\n",
		    sig, signame(sig));
	} else {
		r->code = -1;
		r->status = ST_FAILED;
	}
	secret_mask_row(r);
}

static void
terminate(struct proc *p, long long now)
{
	if (p->exited)
		return;
	if (p->killed_at == 0) {
		kill(-p->pid, SIGTERM);
		p->killed_at = now;
	} else if (now - p->killed_at >= KILL_GRACE_MS)
		kill(-p->pid, SIGKILL);
}

static int
done(const struct proc *p)
{
	return p->fd[0] == -1 && p->fd[1] == -1 && p->exited;
}

int
local_run(struct run *run, struct job **jobs, size_t n)
{
	struct proc	*procs;
	struct pollfd	*pfd;
	size_t		 next = 0, running = 0, i, k, np;
	int		 forks, wait_ms, r = 0;
	long long	 now, until;

	forks = run->opt->forks > 0 ? run->opt->forks : DEFAULT_FORKS;
	procs = xcalloc((size_t)forks, sizeof *procs);
	pfd = xcalloc((size_t)forks * 3, sizeof *pfd);
	while (next < n || running > 0) {
		while (!run_interrupted && next < n &&
		    running < (size_t)forks) {
			for (i = 0; procs[i].job != NULL; i++)
				;
			if (start(&procs[i], jobs[next]) != 0) {
				buf_printf(&jobs[next]->row->err, "reops-run: "
				    "unable to start /bin/sh: %s\n",
				    strerror(errno));
				jobs[next]->row->status = ST_FAILED;
				jobs[next]->row->code = 127;
				procs[i].job = NULL;
				next++;
				continue;
			}
			next++;
			running++;
		}
		if (run_interrupted) {
			/* Stop starting work; what never started is skipped. */
			for (; next < n; next++) {
				jobs[next]->row->status = ST_SKIPPED;
				buf_adds(&jobs[next]->row->err, "reops-run: not "
				    "started: interrupted\n");
			}
		}
		if (running == 0)
			break;
		now = now_ms();
		wait_ms = -1;
		np = 0;
		for (i = 0; i < (size_t)forks; i++) {
			struct proc *p = &procs[i];

			if (p->job == NULL)
				continue;
			if (run_interrupted)
				terminate(p, now);
			else if (p->deadline != 0 && now >= p->deadline) {
				p->timed_out = 1;
				terminate(p, now);
			}
			until = -1;
			if (p->killed_at != 0)
				until = p->killed_at + KILL_GRACE_MS - now;
			else if (p->deadline != 0)
				until = p->deadline - now;
			if (p->fd[2] == -1 && !p->exited)
				until = until < 0 || until > 50 ? 50 : until;
			if (until >= 0 && (wait_ms < 0 || until < wait_ms))
				wait_ms = until < 0 ? 0 : (int)until;
			for (k = 0; k < 3; k++) {
				pfd[np].fd = p->fd[k];
				pfd[np].events = POLLIN;
				pfd[np].revents = 0;
				np++;
			}
		}
		if (poll(pfd, np, wait_ms) == -1 && errno != EINTR) {
			r = -1;
			break;
		}
		np = 0;
		for (i = 0; i < (size_t)forks; i++) {
			struct proc *p = &procs[i];

			if (p->job == NULL)
				continue;
			for (k = 0; k < 2; k++)
				if (p->fd[k] != -1 && pfd[np + k].revents != 0)
					drain(p, (int)k);
			if (p->fd[2] == -1 || pfd[np + 2].revents != 0)
				reap(p, 0);
			np += 3;
			if (done(p)) {
				finish(p);
				p->job = NULL;
				running--;
			}
		}
	}
	for (i = 0; i < (size_t)forks; i++) {
		if (procs[i].job == NULL)
			continue;
		kill(-procs[i].pid, SIGKILL);
		for (k = 0; k < 3; k++)
			if (procs[i].fd[k] != -1)
				close(procs[i].fd[k]);
		reap(&procs[i], 1);
	}
	free(procs);
	free(pfd);
	return r;
}
