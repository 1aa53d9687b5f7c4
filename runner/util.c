/*
 * util.c: allocation, buffers, error values, logging and small helpers.
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "secret.h"
#include "util.h"

int log_level = 0;

static void
oom(void)
{
	static const char msg[] = "reops-run: out of memory\n";

	(void)!fwrite(msg, 1, sizeof msg - 1, stderr);
	exit(EXIT_INTERNAL);
}

void *
xmalloc(size_t size)
{
	void	*p;

	if ((p = malloc(size == 0 ? 1 : size)) == NULL)
		oom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void	*p;

	if ((p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size)) == NULL)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t size)
{
	if ((p = realloc(p, size == 0 ? 1 : size)) == NULL)
		oom();
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		oom();
	return xrealloc(p, n * size);
}

/*
 * Room for element n of an array that holds n: the array doubles when n
 * reaches a power of two (from 8), so adding elements one at a time costs
 * O(n) copying in all, not O(n^2), and the allocator (ASan's quarantine
 * above all) is not left with n ever larger freed blocks. Only for arrays
 * that xgrow alone allocates: their capacity is implied by their count.
 */
void *
xgrow(void *p, size_t n, size_t size)
{
	if (n == 0)
		return xreallocarray(p, 8, size);
	if (n < 8 || (n & (n - 1)) != 0)
		return p;
	if (n > SIZE_MAX / 2)
		oom();
	return xreallocarray(p, n * 2, size);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t len)
{
	char	*p;

	p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	struct buf	 b;
	va_list		 ap;

	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return buf_steal(&b);
}

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

static void
buf_grow(struct buf *b, size_t more)
{
	size_t	need, cap;

	if (more > SIZE_MAX - b->len - 1)
		oom();
	need = b->len + more + 1;
	if (need <= b->cap)
		return;
	cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void
buf_add(struct buf *b, const void *p, size_t len)
{
	buf_grow(b, len);
	if (len != 0)
		memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list	ap2;
	int	n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	buf_grow(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/* Hands the bytes to the caller (never NULL) and leaves b empty. */
char *
buf_steal(struct buf *b)
{
	char	*p;

	if (b->data == NULL)
		return xstrdup("");
	p = b->data;
	buf_init(b);
	return p;
}

void
buf_move(struct buf *dst, struct buf *src)
{
	buf_free(dst);
	*dst = *src;
	buf_init(src);
}

int
err_set(struct err *e, const char *fmt, ...)
{
	va_list	ap;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->located = 0;
	return -1;
}

int
err_at(struct err *e, const char *file, int line, int col, const char *fmt,
    ...)
{
	va_list	ap;
	int	n;

	if (e == NULL)
		return -1;
	n = snprintf(e->msg, sizeof e->msg, "%s:%d:%d: ", file, line, col);
	if (n < 0 || (size_t)n >= sizeof e->msg)
		return -1;
	va_start(ap, fmt);
	vsnprintf(e->msg + n, sizeof e->msg - (size_t)n, fmt, ap);
	va_end(ap);
	e->located = 1;
	return -1;
}

/*
 * The line is made whole, masked, then written with one write(2): lines
 * of the ssh thread and the main thread never run into each other.
 */
static void
log_emit(int level, const char *prefix, const char *fmt, va_list ap)
{
	struct buf	b;
	size_t		off = 0;
	ssize_t		n;

	if (log_level < level)
		return;
	buf_init(&b);
	buf_printf(&b, "reops-run: %s", prefix);
	buf_vprintf(&b, fmt, ap);
	buf_addc(&b, '\n');
	secret_mask_buf(&b);
	fflush(stderr);
	while (off < b.len) {
		n = write(STDERR_FILENO, b.data + off, b.len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf_free(&b);
}

void
log_debug(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_emit(2, "debug: ", fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_emit(1, "", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_emit(-1, "warning: ", fmt, ap);
	va_end(ap);
}

/*
 * strerror for threads: the ssh transport and the virt workers run beside
 * the main thread, and strerror may format into a buffer they would share.
 */
const char *
xstrerror(int errnum)
{
	static __thread char	buf[128];

	return strerror_r(errnum, buf, sizeof buf);
}

long long
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Levenshtein distance, for "did you mean". */
int
edit_distance(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b), i, j;
	int	*prev, *cur, *tmp, d;

	prev = xcalloc(lb + 1, sizeof *prev);
	cur = xcalloc(lb + 1, sizeof *cur);
	for (j = 0; j <= lb; j++)
		prev[j] = (int)j;
	for (i = 1; i <= la; i++) {
		cur[0] = (int)i;
		for (j = 1; j <= lb; j++) {
			d = prev[j - 1] + (a[i - 1] != b[j - 1]);
			if (prev[j] + 1 < d)
				d = prev[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			cur[j] = d;
		}
		tmp = prev;
		prev = cur;
		cur = tmp;
	}
	d = prev[lb];
	free(prev);
	free(cur);
	return d;
}

/* The nearest of names to s, or NULL when none is close enough to suggest. */
const char *
closest_name(const char *s, const char *const *names, size_t n)
{
	const char	*best = NULL;
	int		 bestd = 0, d, limit;
	size_t		 i;

	limit = strlen(s) <= 3 ? 1 : 2;
	for (i = 0; i < n; i++) {
		d = edit_distance(s, names[i]);
		if (d <= limit && (best == NULL || d < bestd)) {
			best = names[i];
			bestd = d;
		}
	}
	return best;
}

/* The directory part of a path ("." for none), as dirname(1) says it. */
char *
path_dir(const char *path)
{
	const char	*slash;

	if (path == NULL || (slash = strrchr(path, '/')) == NULL)
		return xstrdup(".");
	return xstrndup(path, (size_t)(slash - path) + (slash == path));
}

/* Appends s as one single-quoted word for /bin/sh. */
void
shell_quote(struct buf *b, const char *s)
{
	buf_addc(b, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			buf_adds(b, "'\\''");
		else
			buf_addc(b, *s);
	}
	buf_addc(b, '\'');
}

/*
 * A name shown on one line (a stage's, a branch's): not empty, no control
 * characters.
 */
int
name_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int
utf8_valid(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n, k;
	unsigned int		 cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = p[i] & 0x07;
		} else
			return 0;
		if (len - i - 1 < n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static uint64_t
hash_str(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

void
hmap_init(struct hmap *m)
{
	m->slots = NULL;
	m->n = 0;
	m->cap = 0;
}

void
hmap_free(struct hmap *m)
{
	free(m->slots);
	hmap_init(m);
}

void *
hmap_get(const struct hmap *m, const char *key)
{
	size_t	i;

	if (m->cap == 0)
		return NULL;
	i = hash_str(key) & (m->cap - 1);
	while (m->slots[i].key != NULL) {
		if (strcmp(m->slots[i].key, key) == 0)
			return m->slots[i].value;
		i = (i + 1) & (m->cap - 1);
	}
	return NULL;
}

void *
hmap_put(struct hmap *m, const char *key, void *value)
{
	struct hmap_slot	*old;
	size_t			 oldcap, i, j;

	if ((m->n + 1) * 2 > m->cap) {
		old = m->slots;
		oldcap = m->cap;
		m->cap = oldcap == 0 ? 64 : oldcap * 2;
		m->slots = xcalloc(m->cap, sizeof *m->slots);
		for (j = 0; j < oldcap; j++) {
			if (old[j].key == NULL)
				continue;
			i = hash_str(old[j].key) & (m->cap - 1);
			while (m->slots[i].key != NULL)
				i = (i + 1) & (m->cap - 1);
			m->slots[i] = old[j];
		}
		free(old);
	}
	i = hash_str(key) & (m->cap - 1);
	while (m->slots[i].key != NULL) {
		if (strcmp(m->slots[i].key, key) == 0)
			return m->slots[i].value;
		i = (i + 1) & (m->cap - 1);
	}
	m->slots[i].key = key;
	m->slots[i].value = value;
	m->n++;
	return NULL;
}

void
hmap_set(struct hmap *m, const char *key, void *value)
{
	size_t	i;

	if (hmap_put(m, key, value) == NULL)
		return;
	i = hash_str(key) & (m->cap - 1);
	while (strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	m->slots[i].value = value;
}

/* Standard alphabet; without padding when pad is 0, as in SHA256:... */
void
base64_encode(struct buf *b, const unsigned char *p, size_t n, int pad)
{
	static const char	a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t		v;
	size_t			i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		buf_addc(b, a[v >> 18]);
		buf_addc(b, a[(v >> 12) & 63]);
		buf_addc(b, a[(v >> 6) & 63]);
		buf_addc(b, a[v & 63]);
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		buf_addc(b, a[v >> 18]);
		buf_addc(b, a[(v >> 12) & 63]);
		if (pad)
			buf_adds(b, "==");
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		buf_addc(b, a[v >> 18]);
		buf_addc(b, a[(v >> 12) & 63]);
		buf_addc(b, a[(v >> 6) & 63]);
		if (pad)
			buf_addc(b, '=');
	}
}

/*
 * The bytes of a regular file of at most max bytes, into b (which the
 * caller frees and, for a secret, wipes). Anything else is refused before
 * a byte is read: a FIFO would hang the read (O_NONBLOCK keeps even the
 * open from waiting), a device such as /dev/zero never ends. Errors read
 * "unable to read 'FILE': why".
 */
int
read_regular_file(const char *path, size_t max, struct buf *b, struct err *e)
{
	struct stat	 st;
	char		 chunk[65536];
	ssize_t		 n;
	int		 fd, r = -1;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC)) == -1)
		return err_set(e, "unable to open '%s': %s", path,
		    xstrerror(errno));
	if (fstat(fd, &st) == -1) {
		err_set(e, "unable to read '%s': %s", path, xstrerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(e, "unable to read '%s': not a regular file", path);
		goto out;
	}
	for (;;) {
		if ((st.st_size > 0 && (size_t)st.st_size > max) ||
		    b->len > max) {
			if (max % (1024 * 1024) == 0)
				err_set(e, "unable to read '%s': larger than "
				    "%zu MiB", path, max / (1024 * 1024));
			else
				err_set(e, "unable to read '%s': larger than "
				    "%zu bytes", path, max);
			goto out;
		}
		if ((n = read(fd, chunk, sizeof chunk)) == -1) {
			if (errno == EINTR)
				continue;
			err_set(e, "unable to read '%s': %s", path,
			    xstrerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		buf_add(b, chunk, (size_t)n);
	}
	r = 0;
out:
	explicit_bzero(chunk, sizeof chunk);
	close(fd);
	return r;
}
