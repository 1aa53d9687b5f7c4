/*
 * pipeline-int.h: what the parts of the pipeline loader share and nothing
 * else needs. pipeline.c walks a file (its top keys, selector, stages)
 * and frees it; pipeline-stage.c loads one stage item; pipeline-params.c
 * resolves params and expands ${...}; pipeline-include.c finds included
 * files and catches cycles; pipeline-serial.c reads serial and max-fail;
 * pipeline-columns.c checks the columns that rows are read by.
 */
#ifndef REOPS_PIPELINE_INT_H
#define REOPS_PIPELINE_INT_H

#include "pipeline.h"

/* The files including the one being loaded, innermost first. */
struct chain {
	const char	*real;		/* realpath, for comparing */
	const char	*shown;		/* the path as the user wrote it */
	const struct chain *up;
};

/* The params an including file passes on. */
struct scope {
	const struct param *params;
	size_t		    n;
};

/* pipeline.c */
int	pipeline_load_file(const char *, struct overrides *,
	    const struct scope *, const struct node *, int,
	    const struct chain *, const struct node *, struct pipeline **,
	    struct err *);
const char *pipeline_kind_word(int);
const struct node *pipeline_second_key(const struct node *, const char *,
	    const char *);

/* pipeline-stage.c */
int	pipeline_load_stage(struct pipeline *, struct stage *, struct node *,
	    struct overrides *, const struct chain *, struct err *);

/* pipeline-params.c */
int	pipeline_load_params(struct pipeline *, const struct node *,
	    const struct scope *, const struct node *, struct overrides *,
	    struct err *);
int	pipeline_expand_tree(struct pipeline *, struct node *, struct err *);
int	pipeline_expand_args(struct pipeline *, const struct stage_entry *,
	    struct node *, struct err *);

/* pipeline-include.c */
int	pipeline_include_cycle(const struct chain *, const char *,
	    const char *, const struct node *, struct err *);

/* pipeline-serial.c */
int	pipeline_load_serial(struct pipeline *, struct node *, struct err *);

#endif
