/*
 * progress.c: a live line on a terminal for the running stage ("exec
 * 3/5, 1 failed, 0 unreachable, 2 running, 4.2s"), redrawn at most ten
 * times a second and erased when the stage ends, so what stays on the
 * screen is what a run without it prints. Rows finish on the local
 * transport's loop and on the ssh thread at once, and a ticker thread
 * keeps the clock moving while nothing finishes: one mutex guards it all,
 * and each piece of output is one write(2), never half a line.
 */
#include <sys/ioctl.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"
#include "table.h"

#define REDRAW_MS	100	/* at most ten times a second */
#define TICK_MS		200	/* the clock, while no row finishes */
#define MAX_DEPTH	16	/* "pipeline" stages inside stages */
#define LINE_MAX_	512

struct frame {
	const char	*stage;
	size_t		 total;
	size_t		 done;
	size_t		 failed;
	size_t		 unreachable;
	long long	 start;
};

struct progress {
	pthread_mutex_t	 lock;
	pthread_cond_t	 wake;
	pthread_t	 ticker;
	int		 ticking;	/* the ticker thread runs */
	int		 stop;
	int		 live;
	int		 verbose;
	int		 depth;		/* frames in use; 0: no stage */
	struct frame	 f[MAX_DEPTH];
	int		 drawn;		/* the line is on the screen */
	long long	 last_draw;
};

static void
write_all(const char *s, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = write(STDERR_FILENO, s, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;		/* nothing to be done on a bad tty */
		s += n;
		len -= (size_t)n;
	}
}

static size_t
columns(void)
{
	struct winsize	ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* Appends s to line (at len), as printable ASCII or UTF-8 bytes only. */
static size_t
add_text(char *line, size_t len, size_t size, const char *s)
{
	for (; *s != '\0' && len + 1 < size; s++)
		line[len++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' :
		    *s;
	line[len] = '\0';
	return len;
}

static size_t
add_raw(char *line, size_t len, size_t size, const char *s)
{
	size_t	n = strlen(s);

	if (len + n + 1 > size)
		n = size - len - 1;
	memcpy(line + len, s, n);
	line[len + n] = '\0';
	return len + n;
}

static struct frame *
current(struct progress *p)
{
	return p->depth > 0 && p->depth <= MAX_DEPTH ? &p->f[p->depth - 1] :
	    NULL;
}

/* With the lock held; at most once in REDRAW_MS. */
static void
draw(struct progress *p)
{
	struct frame	*f = current(p);
	char		 line[LINE_MAX_], tail[160];
	size_t		 len, width, i, chars;
	long long	 now = now_ms(), ms;

	if (!p->live || f == NULL || f->total == 0)
		return;
	/* Also after a -v line took it away: a burst of rows is no flood. */
	if (now - p->last_draw < REDRAW_MS)
		return;
	ms = now - f->start;
	snprintf(tail, sizeof tail, " %zu/%zu, %zu failed, %zu unreachable, "
	    "%zu running, %lld.%llds", f->done, f->total, f->failed,
	    f->unreachable, f->total - f->done, ms / 1000, ms % 1000 / 100);
	len = add_raw(line, 0, sizeof line, "\r");
	len = add_text(line, len, sizeof line, f->stage);
	len = add_text(line, len, sizeof line, tail);
	/* One screen line, or \r cannot take it back: cut to the width. */
	width = columns() - 1;
	if (width > sizeof line - 8)
		width = sizeof line - 8;
	for (i = 1, chars = 0; i < len; i++) {
		if (((unsigned char)line[i] & 0xc0) != 0x80)
			chars++;
		if (chars > width) {
			len = i;
			break;
		}
	}
	line[len] = '\0';
	len = add_raw(line, len, sizeof line, "\033[K");
	write_all(line, len);
	p->drawn = 1;
	p->last_draw = now;
}

static void
erase(struct progress *p)
{
	if (!p->drawn)
		return;
	write_all("\r\033[K", 4);
	p->drawn = 0;
}

static void *
ticker_main(void *arg)
{
	struct progress	*p = arg;
	struct timespec	 ts;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (current(p) == NULL) {
			pthread_cond_wait(&p->wake, &p->lock);
			continue;
		}
		draw(p);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->wake, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct progress *
progress_new(int live, int verbose)
{
	struct progress		*p;
	pthread_condattr_t	 ca;
	sigset_t		 all, old;

	p = xcalloc(1, sizeof *p);
	p->live = live;
	p->verbose = verbose;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (live) {
		/* Signals stay with the main thread, whose poll they end. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		p->ticking = pthread_create(&p->ticker, NULL, ticker_main,
		    p) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return p;
}

void
progress_free(struct progress *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	erase(p);
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	if (p->ticking)
		pthread_join(p->ticker, NULL);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* Whether it writes a line per row (-v); a branch's lanes do the same. */
int
progress_verbose(const struct progress *p)
{
	return p != NULL && p->verbose;
}

void
progress_stage_begin(struct progress *p, const char *stage)
{
	struct frame	*f;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	erase(p);
	if (++p->depth <= MAX_DEPTH) {
		f = &p->f[p->depth - 1];
		memset(f, 0, sizeof *f);
		f->stage = stage;
		f->start = now_ms();
	}
	p->last_draw = 0;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

void
progress_stage_end(struct progress *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	erase(p);
	if (p->depth > 0)
		p->depth--;
	pthread_mutex_unlock(&p->lock);
}

/* The rows a stage handed to the transports, as they are handed. */
void
progress_add(struct progress *p, size_t n)
{
	struct frame	*f;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	if ((f = current(p)) != NULL)
		f->total += n;
	pthread_mutex_unlock(&p->lock);
}

void
progress_row(struct progress *p, const struct row *r)
{
	struct frame	*f;
	char		 line[LINE_MAX_], tail[96];
	size_t		 len;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	if ((f = current(p)) != NULL) {
		f->done++;
		if (r->status == ST_FAILED)
			f->failed++;
		else if (r->status == ST_UNREACHABLE)
			f->unreachable++;
	}
	if (p->verbose) {
		/* The live line comes back at the next redraw. */
		len = add_raw(line, 0, sizeof line, p->drawn ? "\r\033[K" :
		    "");
		len = add_text(line, len, sizeof line, "reops-run: ");
		if (f != NULL) {
			len = add_text(line, len, sizeof line, f->stage);
			len = add_text(line, len, sizeof line, ": ");
		}
		len = add_text(line, len, sizeof line, r->target);
		snprintf(tail, sizeof tail, ": %s code=%d time=%lldms\n",
		    status_name(r->status), r->code, r->duration_ms);
		if (len + strlen(tail) + 1 > sizeof line)
			len = sizeof line - strlen(tail) - 1;
		len = add_raw(line, len, sizeof line, tail);
		write_all(line, len);
		p->drawn = 0;
	}
	draw(p);
	pthread_mutex_unlock(&p->lock);
}
