/*
 * util.h: memory, growable byte buffers, error values and small string
 * helpers shared by every part of reops-run.
 */
#ifndef REOPS_UTIL_H
#define REOPS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Exit status of reops-run, stable and documented in reops-run(1). */
#define EXIT_OK		0
#define EXIT_FAILED	1
#define EXIT_USAGE	2
#define EXIT_UNREACH	3
#define EXIT_INTERNAL	4
#define EXIT_UNDELIVERED	5	/* publish: rows not delivered */
#define EXIT_INTERRUPT	130

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure is the one error that is fatal anywhere (exit 4). */
void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
void	*xreallocarray(void *, size_t, size_t);
void	*xgrow(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
char	*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

/* A binary-safe, growable byte buffer; data is always NUL-terminated. */
struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};
void	 buf_init(struct buf *);
void	 buf_free(struct buf *);
void	 buf_reset(struct buf *);
void	 buf_add(struct buf *, const void *, size_t);
void	 buf_addc(struct buf *, char);
void	 buf_adds(struct buf *, const char *);
void	 buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 buf_vprintf(struct buf *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
char	*buf_steal(struct buf *);
void	 buf_move(struct buf *, struct buf *);

/*
 * An error value: library code fills it and returns -1; only main decides
 * what is fatal. The message is the whole user-visible line, already
 * prefixed by FILE:LINE:COLUMN where there is a place to name.
 */
struct err {
	char	msg[1024];
	int	located;	/* msg starts with FILE:LINE:COLUMN */
};
int	 err_set(struct err *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	 err_at(struct err *, const char *, int, int, const char *, ...)
	    __attribute__((format(printf, 5, 6)));

/* Logging to stderr; -v raises the level, -q lowers it. */
extern int log_level;
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));

long long	 now_ms(void);
const char	*xstrerror(int);
int		 edit_distance(const char *, const char *);
const char	*closest_name(const char *, const char *const *, size_t);
void		 shell_quote(struct buf *, const char *);
char		*path_dir(const char *);
int		 utf8_valid(const char *, size_t);
int		 name_valid(const char *);	/* not empty, no controls */
void		 base64_encode(struct buf *, const unsigned char *, size_t,
		    int);

/* An open-addressing string hash map with borrowed keys. */
struct hmap_slot {
	const char	*key;
	void		*value;
};
struct hmap {
	struct hmap_slot *slots;
	size_t		  n;
	size_t		  cap;
};
void	 hmap_init(struct hmap *);
void	 hmap_free(struct hmap *);
void	*hmap_get(const struct hmap *, const char *);
/* Returns the existing value when key is present (and does not replace it). */
void	*hmap_put(struct hmap *, const char *, void *);
void	 hmap_set(struct hmap *, const char *, void *);

int	 read_regular_file(const char *, size_t, struct buf *, struct err *);

#endif
