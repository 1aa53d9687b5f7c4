/*
 * stage.h: the builtin stage table. Each stage is one file exporting one
 * struct stage_entry: its name, its argument keys (checked by the loader
 * before anything runs), the columns it adds, its hooks and one function
 * per row kind. The core (loader, runner, printers) knows stages only
 * through this table and names none of them.
 *
 * Adding a stage touches:
 *  - runner/stage-NAME.c, exporting stage_NAME_entry;
 *  - one STAGE(NAME) line in runner/stages.def (the declaration, the
 *    table and the per-run state slot all come from it);
 *  - Makefile.am (the source file);
 *  - reops-pipeline(5) (a .Ss NAME section naming every key),
 *    schemas/pipeline.schema.json (every key, with its type) and the
 *    README's stage table: t0500 and t0510 check them against
 *    `reops-run --list-stages=json`;
 *  - an example under pipelines/ and a test that runs it, and the
 *    columns check of t0530.
 */
#ifndef REOPS_STAGE_H
#define REOPS_STAGE_H

#include "node.h"
#include "table.h"

struct run;
struct stage;
struct pipeline;
struct target;
struct load_ctx;	/* the loader's: overrides, include chain */
struct when;

/*
 * STAGE_ID_ls...: each stage's position in stage_table[], and the index
 * of its slot of per-run state, run->stage_state[STAGE_ID_NAME], which
 * only the stage itself reads (set by its preload, freed by free_run).
 */
enum stage_id {
#define STAGE(name)	STAGE_ID_##name,
#include "stages.def"
#undef STAGE
	STAGE_COUNT
};

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
#define STAGE_TABLE		0x8	/* takes the whole table: no 'when:' */

typedef int (*stage_fn)(struct run *, struct stage *, struct table *);

struct stage_entry {
	const char		*name;
	const char		*usage;
	const char		*summary;
	const char		*shorthand;	/* the key a scalar sets */
	/*
	 * Ends with { NULL }. NULL: the arguments are a mapping of names
	 * of the user's (branch), which the load hook checks.
	 */
	const struct stage_key	*keys;
	const char *const	*columns;	/* it adds; ends with NULL */
	const char		*secret_key;	/* may use secret params */
	/* The keys whose strings expand ${row.COLUMN}; ends with NULL. */
	const char *const	*row_keys;
	int			 flags;
	/*
	 * Columns that depend on the stage's arguments (an include's come
	 * from its stages): add() is called once for each, after load.
	 */
	void	(*arg_columns)(const struct stage *,
		    void (*add)(void *, const char *), void *);
	/*
	 * Columns its arguments name for reading (pick's column): fn() is
	 * called for each, with the node that names it, after load. The
	 * loader checks that each can exist where the stage runs.
	 */
	void	(*arg_reads)(const struct stage *,
		    void (*fn)(void *, const char *, const struct node *),
		    void *);
	/* After the arguments are checked: e.g. load an included file. */
	int	(*load)(struct pipeline *, struct stage *, struct load_ctx *,
		    struct err *);
	int	(*prepare)(struct stage *, struct err *);
	/*
	 * The statuses of the rows it passes on, as a mask of 1 << ST_
	 * (pick by status); NULL: any. The loader checks that the next
	 * stage can run on some of them.
	 */
	unsigned (*keeps)(const struct stage *);
	void	(*cleanup)(struct stage *);
	/*
	 * For each stage of each loaded pipeline, with the pipeline's
	 * targets, before anything runs (and before --check prints): load
	 * what the run will need into the stage's run->stage_state slot.
	 */
	int	(*preload)(struct run *, const struct pipeline *,
		    const struct stage *, const struct target *, size_t,
		    struct err *);
	void	(*free_run)(struct run *);	/* its stage_state slot */
	stage_fn		 host;		/* on host rows, or NULL */
	stage_fn		 system;	/* on system rows, or NULL */
};

/*
 * A pipeline inside a stage: an include's file (name and when NULL), or
 * one branch of a branch stage. The loader, preload, --check and --graph
 * walk these without knowing which stage made them.
 */
struct stage_sub {
	const char		*name;		/* a branch's name, or NULL */
	struct when		*when;		/* a branch's selector, owned */
	struct pipeline		*p;
};

/*
 * A stage item is the stage key and its arguments, with beside it:
 *	name: TEXT	names the stage for pretty, --check, -v, progress
 *	when: SELECTOR	the rows it runs on (when.h); default: ok rows
 *	serial: N	at most N of its rows at a time
 */
struct stage {
	const struct stage_entry *entry;
	const char		*name;		/* its 'name:', or NULL */
	const struct node	*where;		/* the stage's item */
	const struct node	*key;		/* the stage key in the item */
	struct node		*args;		/* a mapping, or NULL */
	struct when		*when;		/* its 'when:', or NULL */
	int			 serial;	/* its 'serial:'; 0: none */
	struct pipeline		*owner;
	struct stage_sub	*subs;		/* included or branch pipelines */
	size_t			 nsubs;
	void			*data;		/* what prepare compiled */
	struct rowref		*rowrefs;	/* its ${row.COLUMN}s */
	size_t			 nrowrefs;
};

/* A ${row.COLUMN} in a stage's arguments, where the file has it. */
struct rowref {
	const char	*column;
	const char	*file;
	int		 line;
	int		 col;
};

/*
 * How expand_row inserts a ${row.COLUMN} value (a trailing newline
 * dropped): as it is (into an argument that is quoted whole later), as
 * one shell-quoted word (into a shell command), or as one component of a
 * path on this machine (no '/', not '.', '..' or empty: a host must not
 * choose which local file is read or written).
 */
enum expand_mode {
	EXPAND_TEXT,
	EXPAND_SHELL,
	EXPAND_PATH
};

extern const struct stage_entry *const stage_table[];
extern const size_t stage_count;

const struct stage_entry *stage_find(const char *);
struct stage_sub	*stage_add_sub(struct stage *, const char *);
int			 stage_selects(const struct stage *,
			    const struct row *, char *, size_t);
int			 stages_preload(struct run *, const struct pipeline *,
			    const struct target *, size_t, struct err *);
void			 stages_free_run(struct run *);
void			 stage_columns(const struct stage *,
			    void (*)(void *, const char *), void *);
void			 stage_reads(const struct stage *, void (*)(void *,
			    const char *, const struct node *), void *);
const struct node	*stage_arg(const struct stage *, const char *);
const char		*stage_str(const struct stage *, const char *,
			    const char *);
long long		 stage_int(const struct stage *, const char *,
			    long long);
int			 stage_bool(const struct stage *, const char *, int);
int			 expand_row(struct buf *, const char *,
			    const struct row *, enum expand_mode, struct buf *);
int			 has_row_value(const char *);
void			 stage_describe(struct buf *, const struct stage *);
const char		*stage_name(const struct stage *);

#endif
