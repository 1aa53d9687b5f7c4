/*
 * stage.h: the builtin stage table. Each stage is one file exporting one
 * struct stage_entry: its name, its argument keys (checked by the loader
 * before anything runs) and one function per row kind.
 *
 * Adding a stage touches: runner/stage-NAME.c, one line in stage_table[]
 * (stage.c), Makefile.am, reops-pipeline(5), schemas/pipeline.schema.json,
 * an example under pipelines/ and a test that runs it.
 */
#ifndef REOPS_STAGE_H
#define REOPS_STAGE_H

#include "node.h"
#include "table.h"

struct run;
struct stage;
struct pipeline;

enum arg_type {
	ARG_STRING,
	ARG_INT,
	ARG_BOOL,
	ARG_STRINGS,	/* a string or a list of strings */
	ARG_MAP
};

struct stage_key {
	const char	*name;
	enum arg_type	 type;
	int		 required;
};

#define STAGE_REMOTE		0x1	/* runs on each row's target */
#define STAGE_DESTRUCTIVE	0x2	/* asks for confirmation (--yes) */
#define STAGE_OUTPUT		0x4	/* prints and passes the table on */

typedef int (*stage_fn)(struct run *, struct stage *, struct table *);

struct stage_entry {
	const char		*name;
	const char		*usage;
	const char		*summary;
	const char		*shorthand;	/* the key a scalar sets */
	const struct stage_key	*keys;		/* ends with { NULL } */
	int			 flags;
	int	(*prepare)(struct stage *, struct err *);
	void	(*cleanup)(struct stage *);
	stage_fn		 host;		/* on host rows, or NULL */
	stage_fn		 system;	/* on system rows, or NULL */
};

struct stage {
	const struct stage_entry *entry;
	const struct node	*where;		/* the stage's item */
	struct node		*args;		/* a mapping, or NULL */
	struct pipeline		*owner;
	struct pipeline		*sub;		/* the included pipeline */
	void			*data;		/* what prepare compiled */
};

extern const struct stage_entry *const stage_table[];
extern const size_t stage_count;

const struct stage_entry *stage_find(const char *);
const struct node	*stage_arg(const struct stage *, const char *);
const char		*stage_str(const struct stage *, const char *,
			    const char *);
long long		 stage_int(const struct stage *, const char *,
			    long long);
int			 stage_bool(const struct stage *, const char *, int);
void			 expand_row(struct buf *, const char *,
			    const struct row *);
void			 stage_describe(struct buf *, const struct stage *);

#endif
