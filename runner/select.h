/*
 * select.h: target selectors ("web", [web, db-1], all, "~regex") and
 * --limit, resolved against the inventory into an ordered target list.
 */
#ifndef REOPS_SELECT_H
#define REOPS_SELECT_H

#include <stdint.h>

#include "inventory.h"
#include "rx.h"

struct sel_item {
	const struct node *where;	/* NULL for --limit items */
	const char	  *text;
	pcre2_code	  *re;		/* for "~regex" */
	int		   negate;	/* --limit "!item": removes */
	const char	  *file;	/* --limit "@FILE": its line, column */
	int		   line;
	int		   col;
};

struct selector {
	int		 systems;	/* selects systems, not hosts */
	const struct node *where;
	struct sel_item	*items;
	size_t		 n;
	char		*limit;		/* owned copy of a --limit string */
	char		**files;	/* --limit @FILE: names and contents */
	size_t		 nfiles;
};

/* A target is a host or a system; exactly one is set. */
struct target {
	const struct host	*host;
	const struct system	*system;
};

int	selector_parse(const struct node *, int, struct selector *,
	    struct err *);
int	selector_parse_limit(const char *, struct selector *, struct err *);
void	selector_free(struct selector *);
uint64_t selector_hash(const char *);
void	selector_shard(struct target *, size_t *, unsigned, unsigned);
int	selector_resolve(const struct selector *, const struct selector *,
	    const struct inventory *, struct target **, size_t *,
	    struct err *);

#endif
