/*
 * when.h: which rows a stage runs on. A selector is what `pick` takes (a
 * status word, or { column, match, invert }), or { all: [...] },
 * { any: [...] } of those, or any-status. A stage without `when:` runs on
 * the ok rows (when_selects with NULL).
 *
 *	when: failed
 *	when: { column: os, match: "^debian" }
 *	when: { all: [ successful, { column: stdout, match: x, invert: true } ] }
 */
#ifndef REOPS_WHEN_H
#define REOPS_WHEN_H

#include "node.h"
#include "rx.h"
#include "table.h"

enum when_kind {
	WHEN_STATUS,		/* status */
	WHEN_ANY_STATUS,	/* every row */
	WHEN_COLUMN,		/* column matches re (or not, with invert) */
	WHEN_ALL,		/* every kid */
	WHEN_ANY		/* some kid */
};

struct when {
	enum when_kind	  kind;
	const struct node *where;
	int		  status;	/* WHEN_STATUS: an ST_ value */
	const char	 *column;	/* WHEN_COLUMN */
	const char	 *pattern;
	pcre2_code	 *re;
	int		  invert;
	struct when	**kids;		/* WHEN_ALL, WHEN_ANY */
	size_t		  nkids;
};

/* what names the selector in errors, e.g. "'when'" or "stage 'pick'". */
int	 when_parse(const struct node *, const char *, struct when **,
	    struct err *);
void	 when_free(struct when *);
/*
 * 1 when w (NULL: the default, ok rows) selects r, 0 when not, -1 when a
 * regex gave up (why says so; the caller fails the row).
 */
int	 when_selects(const struct when *, const struct row *, char *,
	    size_t);
/* The statuses w can select, as a mask of 1 << ST_; columns: all four. */
unsigned when_statuses(const struct when *);
/* w as one line of text, for --check, --graph and -v. */
void	 when_describe(struct buf *, const struct when *);
/* The columns w reads, for the loader's column check. */
void	 when_columns(const struct when *, void (*)(void *, const char *,
	    const struct node *), void *);

#endif
