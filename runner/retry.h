/*
 * retry.h: --retry FILE reads a table that --json or the json stage wrote
 * and keeps, per pipeline, the targets whose last status was not ok.
 */
#ifndef REOPS_RETRY_H
#define REOPS_RETRY_H

#include <stddef.h>

#include "select.h"

struct retry;

/* Reads FILE (at most RETRY_FILE_MAX bytes) or parses a buffer of it. */
#define RETRY_FILE_MAX	(512 * 1024 * 1024)
int	retry_load(const char *, struct retry **, struct err *);
int	retry_parse(const char *, const char *, size_t, struct retry **,
	    struct err *);
void	retry_free(struct retry *);

/* How many rows the table has. */
size_t	retry_rows(const struct retry *);
/* -1 (with the error) when no row is of any of the pipelines named. */
int	retry_check(const struct retry *, const char *const *, size_t,
	    struct err *);

/* Keeps, in order, the targets whose last status for the pipeline was not ok. */
void	retry_filter(const struct retry *, const char *, struct target *,
	    size_t *);

#endif
