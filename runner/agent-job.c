/*
 * agent-job.c: the commands runners asked for: queued, started with
 * posix_spawn (sh-spawn.c) in a process group of their own, stopped with
 * TERM and then KILL (a deadline, a kill request, a runner gone, the agent
 * stopping), and their exit seen, while the process stays a zombie until
 * its end is reported (agent-reply.c).
 */
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "agent-int.h"
#include "sh-spawn.h"

struct job *
find_job(struct server *s, const unsigned char *rid, size_t rlen, uint32_t id)
{
	size_t	i;

	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i]->rlen == rlen && s->jobs[i]->id == id &&
		    memcmp(s->jobs[i]->rid, rid, rlen) == 0)
			return s->jobs[i];
	return NULL;
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->command);
	buf_free(&j->input);
	buf_free(&j->pending);
	free(j);
}

void
remove_job(struct server *s, struct job *j)
{
	size_t	i;

	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i] == j) {
			memmove(&s->jobs[i], &s->jobs[i + 1],
			    (s->njobs - i - 1) * sizeof s->jobs[0]);
			s->njobs--;
			break;
		}
	if (j->state == JOB_RUNNING)
		s->running--;
	job_free(j);
}

/* TERM to the command's process group now, KILL after the grace. */
void
job_stop(struct job *j, enum job_cause cause)
{
	if (j->state != JOB_RUNNING || j->cause != CAUSE_NONE)
		return;
	j->cause = cause;
	killpg(j->pid, SIGTERM);
	j->kill_at = now_ms() + AGENT_GRACE_MS;
}

/*
 * The input of exec-input as an anonymous file in memory, read from its
 * start: never on disk, never in a pipe the loop would have to feed.
 * -1 when it cannot be made.
 */
static int
input_fd(const struct buf *in)
{
	size_t	off = 0;
	ssize_t	n;
	int	fd;

	if ((fd = memfd_create("reops-agent-input", MFD_CLOEXEC)) == -1)
		return -1;
	while (off < in->len) {
		if ((n = write(fd, in->data + off, in->len - off)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The command: /bin/sh -c in its own process group (sh-spawn.c), stdin
 * from the request's input or /dev/null, in $HOME or else /, with no
 * descriptor of ours. 0, or an errno.
 */
static int
job_spawn(struct job *j, int in, int out, int err)
{
	const char	*home;

	if ((home = getenv("HOME")) != NULL && *home != '\0' &&
	    spawn_sh(&j->pid, j->command, in, out, err, home,
	    SPAWN_CLOSE_OTHERS) == 0)
		return 0;
	/* A $HOME it cannot enter (or no /bin/sh): as fork did, from /. */
	return spawn_sh(&j->pid, j->command, in, out, err, "/",
	    SPAWN_CLOSE_OTHERS);
}

int
job_start(struct server *s, struct job *j)
{
	int	out[2] = { -1, -1 }, err[2] = { -1, -1 }, in = -1, e;

	if (j->has_input && (in = input_fd(&j->input)) == -1)
		goto fail;
	/* Only our ends are non-blocking: the command's writes must block. */
	if (pipe2(out, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1 ||
	    fcntl(out[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(err[0], F_SETFL, O_NONBLOCK) == -1)
		goto fail;
	/* Out of 0-2 (a closed std stream), so no dup2 hits another. */
	if (spawn_above_std(&in) != 0 || spawn_above_std(&out[1]) != 0 ||
	    spawn_above_std(&err[1]) != 0)
		goto fail;
	if ((e = job_spawn(j, in, out[1], err[1])) != 0) {
		errno = e;
		goto fail;
	}
	if (in != -1)
		close(in);
	buf_free(&j->input);		/* the memfd has it now */
	close(out[1]);
	close(err[1]);
	j->fd[0] = out[0];
	j->fd[1] = err[0];
	j->state = JOB_RUNNING;
	s->running++;
	j->start = now_ms();
	if (j->deadline_ms > 0)
		j->deadline_at = j->start + j->deadline_ms;
	return 0;

 fail:
	if (in != -1)
		close(in);
	if (out[0] != -1) {
		close(out[0]);
		close(out[1]);
	}
	if (err[0] != -1) {
		close(err[0]);
		close(err[1]);
	}
	return -1;
}

void
job_exited(struct job *j)
{
	siginfo_t	si;

	memset(&si, 0, sizeof si);
	/* WNOWAIT: the zombie keeps the process group id ours to signal. */
	if (waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
	    -1 || si.si_pid == 0)
		return;
	j->exited = 1;
	if (si.si_code == CLD_EXITED)
		j->status = (si.si_status & 0xff) << 8;
	else
		j->status = si.si_status & 0x7f;
}

/* Stops everything a runner started: it will never read the answers. */
void
runner_gone(struct server *s, const unsigned char *rid, size_t rlen)
{
	size_t	i, n = 0;
	char	key[AGENT_KEY_LEN + 1] = "";

	for (i = 0; i < s->njobs;) {
		struct job *j = s->jobs[i];

		if (j->rlen != rlen || memcmp(j->rid, rid, rlen) != 0 ||
		    j->gone) {
			i++;
			continue;
		}
		snprintf(key, sizeof key, "%s", j->key);
		n++;
		if (j->state == JOB_QUEUED) {
			remove_job(s, j);
			continue;
		}
		j->gone = 1;
		buf_reset(&j->pending);
		job_stop(j, CAUSE_GONE);
		i++;
	}
	if (n > 0)
		agent_log(LOG_NOTICE, "runner %s went away: stopping its %zu "
		    "request%s", key, n, n == 1 ? "" : "s");
}

/* Stops every command, waiting up to the grace for TERM to work. */
void
stop_all(struct server *s)
{
	long long	until;
	size_t		i;

	for (i = 0; i < s->njobs; i++) {
		s->jobs[i]->gone = 1;
		job_stop(s->jobs[i], CAUSE_SHUTDOWN);
	}
	until = now_ms() + AGENT_GRACE_MS;
	while (s->running > 0 && now_ms() < until) {
		for (i = 0; i < s->njobs; i++)
			if (s->jobs[i]->state == JOB_RUNNING)
				job_exited(s->jobs[i]);
		for (i = 0; i < s->njobs; i++)
			if (s->jobs[i]->state == JOB_RUNNING &&
			    !s->jobs[i]->exited)
				break;
		if (i == s->njobs)
			break;
		usleep(20000);
	}
	while (s->njobs > 0) {
		struct job *j = s->jobs[0];

		if (j->state == JOB_RUNNING) {
			killpg(j->pid, SIGKILL);
			waitpid(j->pid, NULL, 0);
			if (j->fd[0] != -1)
				close(j->fd[0]);
			if (j->fd[1] != -1)
				close(j->fd[1]);
		}
		remove_job(s, j);
	}
}
