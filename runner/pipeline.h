/*
 * pipeline.h: a pipeline file loaded and validated into memory before
 * anything runs: selector, params, stages and resolved includes.
 */
#ifndef REOPS_PIPELINE_H
#define REOPS_PIPELINE_H

#include "node.h"
#include "select.h"
#include "stage.h"

struct param {
	const char	*name;
	const char	*value;		/* NULL: a secret not given (--check) */
	int		 secret;	/* see secret.h */
	const struct node *where;	/* its declaration, or NULL */
	const char	*env;		/* the variable it is read from */
};

struct overrides;

/* A batch size or a failure limit: n rows, or n percent of them. */
struct batch_spec {
	int		 n;
	int		 percent;
};

struct pipeline {
	struct doc	*doc;
	const char	*file;
	const char	*name;
	const char	*description;
	int		 kind;		/* SEL_HOSTS or SEL_SYSTEMS */
	int		 has_selector;
	struct selector	 sel;
	struct param	*params;	/* resolved: defaults, include, --set */
	size_t		 nparams;
	struct stage	*stages;
	size_t		 nstages;
	struct overrides *ov;
	const struct pipeline *parent;	/* inline (a branch's): its doc */
	const struct node *secret_ok;	/* the node a secret may be used in */
	int		 secret_used;	/* ... and was */
	struct batch_spec *serial;	/* batch sizes; NULL: no batches */
	size_t		 nserial;
	struct batch_spec max_fail;	/* with serial: rows that may fail */
	const struct node *serial_where; /* 'serial:', for messages */
	struct stage	*row_stage;	/* whose arguments are expanded */
	const char	*row_key;	/* ... under which key */
};

#define SEL_HOSTS	0
#define SEL_SYSTEMS	1

/* --set k=v pairs given on the command line; used[] says which applied. */
struct overrides {
	char		**keys;
	char		**values;
	unsigned char	 *used;
	size_t		  n;
	int		  check;	/* --check: secrets may have no value */
};

/* What a stage's load hook passes on to pipeline_load_sub. */
struct chain;
struct load_ctx {
	struct overrides	*ov;
	const struct chain	*chain;	/* the files including this one */
};

int	pipeline_load(const char *, struct overrides *, struct pipeline **,
	    struct err *);
int	pipeline_load_sub(struct pipeline *, struct stage *,
	    const struct node *, const struct node *, struct load_ctx *,
	    struct err *);
int	pipeline_load_inline(struct pipeline *, const struct node *,
	    struct load_ctx *, struct pipeline **, struct err *);
void	pipeline_free(struct pipeline *);

/*
 * The columns that can exist at a point of a pipeline, for checking what
 * reads them (${row.COLUMN}, a 'when', pick's column): pipeline_check_rows
 * takes those at its start (the fixed ones of columns_fixed, or those at
 * a stage that runs sub-pipelines) and leaves those at its end. Names are
 * not copied.
 */
struct columns {
	const char	**names;
	size_t		  n;
};

void	columns_fixed(struct columns *, int);
void	columns_add(struct columns *, const char *);
int	columns_has(const struct columns *, const char *);
void	columns_copy(struct columns *, const struct columns *);
void	columns_free(struct columns *);
int	pipeline_check_rows(const struct pipeline *, struct columns *,
	    struct err *);
int	pipeline_destructive(const struct pipeline *);
size_t	pipeline_batches(const struct pipeline *, size_t, size_t **);
size_t	pipeline_max_fail(const struct pipeline *, size_t);

#endif
