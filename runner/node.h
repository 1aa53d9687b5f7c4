/*
 * node.h: a YAML document loaded into a small tree of nodes, each of which
 * remembers its file, line and column so every later error can name them.
 */
#ifndef REOPS_NODE_H
#define REOPS_NODE_H

#include <stddef.h>

#include "util.h"

enum node_type {
	NODE_SCALAR,
	NODE_SEQ,
	NODE_MAP
};

struct node {
	enum node_type	  type;
	int		  line;
	int		  col;
	const char	 *file;
	char		 *str;		/* scalar text, NUL-terminated */
	size_t		  len;
	int		  plain;	/* an unquoted scalar */
	int		  span;		/* columns of the source text of a
					   one-line scalar, else -1 */
	struct node	**kids;		/* seq: items; map: key, value, ... */
	size_t		  nkids;
	size_t		  reach;	/* nodes in it, with what aliases repeat */
	int		  height;	/* levels of it, through aliases */
	int		  flags;
};

#define NODE_OPEN	0x1	/* still being parsed: an alias may not name it */
#define NODE_EXPANDED	0x2	/* its ${param}s are done (aliases share it) */

/*
 * What one document may hold, so that a small hostile file cannot take
 * all time, memory or stack: reops-pipeline(5) LIMITS.
 */
#define DOC_MAX_BYTES	(16 * 1024 * 1024)
#define DOC_MAX_DEPTH	256
#define DOC_MAX_ALIASED	1000000

struct arena_chunk;
struct doc {
	char			*file;
	struct node		*root;	/* NULL for an empty file */
	struct arena_chunk	*chunks;
};

int		 doc_load(const char *, struct doc **, struct err *);
int		 doc_load_string(const char *, const char *, size_t, struct doc **,
		    struct err *);
void		 doc_free(struct doc *);
void		*doc_alloc(struct doc *, size_t);
char		*doc_strdup(struct doc *, const char *, size_t);

const char	*node_type_name(const struct node *);
struct node	*node_get(const struct node *, const char *);
int		 node_is_null(const struct node *);
int		 node_as_bool(const struct node *, int *);
int		 node_as_int(const struct node *, long long *);
int		 node_err(struct err *, const struct node *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
int		 node_col_at(const struct node *, size_t);

#define map_nkeys(n)	((n)->nkids / 2)
#define map_key(n, i)	((n)->kids[2 * (i)])
#define map_val(n, i)	((n)->kids[2 * (i) + 1])

/* Checks a mapping's keys against the allowed ones ("did you mean"). */
int		 node_check_keys(const struct node *, const char *const *,
		    const char *, struct err *);
int		 node_want(const struct node *, enum node_type, const char *,
		    struct err *);

#endif
