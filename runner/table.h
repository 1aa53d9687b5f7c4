/*
 * table.h: the result table handed from stage to stage. One row per
 * target: fixed columns plus named extra columns, all binary-safe.
 */
#ifndef REOPS_TABLE_H
#define REOPS_TABLE_H

#include <stddef.h>

#include "util.h"

struct host;
struct system;

enum row_kind {
	ROW_HOST,
	ROW_SYSTEM
};

enum row_status {
	ST_OK,
	ST_FAILED,
	ST_UNREACHABLE,
	ST_SKIPPED
};

struct column {
	char		*name;
	struct buf	 value;
};

struct row {
	char		*target;
	enum row_kind	 kind;
	char		*group;
	enum row_status	 status;
	int		 code;
	struct buf	 out;
	struct buf	 err;
	long long	 duration_ms;
	struct column	*cols;		/* extra columns, in table order */
	size_t		 ncols;
	const struct host	*host;	/* inventory entry of a host row */
	const struct system	*system;/* inventory entry of a system row */
};

struct table {
	struct row	**rows;
	size_t		  n;
	size_t		  cap;
	char		**cols;		/* extra column names, first-seen order */
	size_t		  ncols;
	const char	 *pipeline;	/* the run's pipeline, for JSON rows */
};

struct table	*table_new(void);
void		 table_free(struct table *);
struct row	*table_add(struct table *, const char *, enum row_kind,
		    const char *);
void		 table_keep(struct table *, const unsigned char *);
void		 row_set(struct table *, struct row *, const char *,
		    const void *, size_t);
void		 row_sets(struct table *, struct row *, const char *,
		    const char *);
const struct buf *row_get(const struct row *, const char *);
const char	*row_value(const struct row *, const char *, size_t *);

const char	*status_name(enum row_status);
const char	*kind_name(enum row_kind);
int		 column_is_fixed(const char *);

#endif
