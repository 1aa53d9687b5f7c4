/*
 * local.c: the local transport. Each job is /bin/sh -c COMMAND in its own
 * process group, started with posix_spawn (sh-spawn.c), as many at once
 * as the shared --forks budget gives; one poll loop reads every stdout,
 * stderr and pidfd, so no child ever blocks on a full pipe, and a
 * deadline kills the whole process group.
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

#include "sh-spawn.h"
#include "transport.h"

#define KILL_GRACE_MS	1000
/* How often a loop looks at run_interrupted when nothing happens. */
#define INTERRUPT_POLL_MS	200
/*
 * Descriptors a command takes from the run's budget while it starts
 * (its pipes, both ends, and room for one more pair).
 */
#define START_FDS	6

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
	int		 fds;		/* taken from the budget */
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

/*
 * 0 with the command running; -1 when nothing could be made for it (errno
 * says why); 1 when /bin/sh could not be run: the row is final, and says
 * why as the child used to before it exited 127.
 */
static int
start(struct proc *p, struct job *j)
{
	int	out[2], err[2], in, e;

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
	if (spawn_above_std(&in) != 0 || spawn_above_std(&out[1]) != 0 ||
	    spawn_above_std(&err[1]) != 0)
		e = errno;
	else
		e = spawn_sh(&p->pid, j->command, in, out[1], err[1], NULL, 0);
	if (in != -1)
		close(in);
	close(out[1]);
	close(err[1]);
	if (e != 0) {
		close(out[0]);
		close(err[0]);
		buf_printf(&j->row->err, "reops-run: cannot run command: "
		    "%s\n", xstrerror(e));
		j->row->duration_ms = now_ms() - p->start;
		job_end(j, END_EXIT, 127, NULL);
		job_done(j);
		return 1;
	}
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

/* The row's end, as every transport says it. */
static void
finish(struct proc *p)
{
	struct job	*j = p->job;

	j->row->duration_ms = now_ms() - p->start;
	if (p->timed_out)
		job_end(j, END_TIMEOUT, j->timeout, NULL);
	else if (run_interrupted && p->killed_at != 0)
		job_end(j, END_INTERRUPTED, 0, NULL);
	else if (WIFEXITED(p->status))
		job_end(j, END_EXIT, WEXITSTATUS(p->status), NULL);
	else if (WIFSIGNALED(p->status))
		job_end(j, END_SIGNAL, WTERMSIG(p->status), NULL);
	else
		job_end(j, END_EXIT, -1, NULL);
	job_done(j);
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

/* Too few descriptors for even one command, however long it waits. */
static void
not_started(struct job *j)
{
	char	*why;

	why = xasprintf("not started: too few file descriptors (the limit "
	    "on open files is %ld)", fd_limit());
	job_end(j, END_NOT_RUN, 127, why);
	free(why);
}

/* copy: the script reads the file where it is. */
void
local_put(struct job *j, const struct put_file *pf)
{
	j->command = put_command(pf, 1);
}

static void
not_finished(struct job *j)
{
	buf_adds(&j->row->err, "reops-run: not finished: internal error\n");
	j->row->status = ST_FAILED;
	j->row->code = -1;
}

int
local_run(struct run *run, struct job **jobs, size_t n)
{
	struct proc	*procs;
	struct pollfd	*pfd;
	struct held	 hb;
	size_t		 next = 0, running = 0, i, k, np;
	int		 forks, wait_ms, held, full, sr, r = 0;
	long long	 now, until;

	forks = forks_max(run);
	procs = xcalloc((size_t)forks, sizeof *procs);
	/* Each command's three, and the wake-up when held back. */
	pfd = xcalloc((size_t)forks * 3 + 1, sizeof *pfd);
	held_init(&hb);
	while (next < n || running > 0) {
		held = full = 0;
		held_look(&hb);
		while (!run_interrupted && next < n) {
			/* ping: a local row is there, with nothing to run. */
			if (jobs[next]->command == NULL) {
				buf_reset(&jobs[next]->row->out);
				buf_reset(&jobs[next]->row->err);
				jobs[next]->row->duration_ms = 0;
				job_end(jobs[next], END_EXIT, 0, NULL);
				job_done(jobs[next++]);
				continue;
			}
			/* --forks counts the rows of every transport. */
			if (forks_take(run) != 0) {
				full = 1;
				break;
			}
			/* What does not fit in the descriptors waits. */
			if (fd_reserve(START_FDS) != 0) {
				forks_give();
				if (!fd_fits_ever(START_FDS)) {
					not_started(jobs[next++]);
					continue;
				}
				held = 1;
				break;
			}
			for (i = 0; procs[i].job != NULL; i++)
				;
			if ((sr = start(&procs[i], jobs[next])) != 0) {
				fd_release(START_FDS);
				forks_give();
				if (sr == 1) {
					procs[i].job = NULL;
					next++;
					continue;
				}
				buf_printf(&jobs[next]->row->err, "reops-run: "
				    "unable to start /bin/sh: %s\n",
				    xstrerror(errno));
				jobs[next]->row->status = ST_FAILED;
				jobs[next]->row->code = 127;
				procs[i].job = NULL;
				next++;
				continue;
			}
			for (k = 0; k < 3; k++)
				if (procs[i].fd[k] != -1)
					procs[i].fds++;
			fd_release(START_FDS - procs[i].fds);
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
		/* With ours all done, others may hold the descriptors or
		 * the --forks slots: then we wait for them. */
		if (running == 0 && (next >= n || (!held && !full)))
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
		/* Slots or descriptors another loop gives back wake us. */
		if ((pfd[np].fd = held_wait(&hb, (full ? HELD_FORKS : 0) |
		    (held ? HELD_FDS : 0))) != -1) {
			pfd[np].events = POLLIN;
			pfd[np].revents = 0;
			np++;
		}
		/* In a thread (a branch's) no SIGINT ends the poll. */
		if (wait_ms < 0 || wait_ms > INTERRUPT_POLL_MS)
			wait_ms = INTERRUPT_POLL_MS;
		if (poll(pfd, np, wait_ms) == -1 && errno != EINTR) {
			log_warn("local commands: poll: %s", xstrerror(errno));
			r = -1;
			break;
		}
		held_disarm(&hb);
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
				fd_release(p->fds);
				forks_give();
				p->job = NULL;
				running--;
			}
		}
	}
	/* After an error: what runs is killed, and no row that did not
	 * finish, or never started, is left as it was (ok). */
	for (i = 0; i < (size_t)forks; i++) {
		if (procs[i].job == NULL)
			continue;
		kill(-procs[i].pid, SIGKILL);
		for (k = 0; k < 3; k++)
			if (procs[i].fd[k] != -1)
				close(procs[i].fd[k]);
		reap(&procs[i], 1);
		fd_release(procs[i].fds);
		forks_give();
		not_finished(procs[i].job);
	}
	for (; next < n; next++)
		not_finished(jobs[next]);
	held_end(&hb);
	free(procs);
	free(pfd);
	return r;
}
