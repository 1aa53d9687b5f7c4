/*
 * stage-pipeline.c: "pipeline" runs another file's stages on the current
 * table. The loader resolves the file (relative to the including one),
 * its params and cycles before anything runs.
 */
#include "run.h"

static const struct stage_key pipeline_keys[] = {
	{ "file", ARG_STRING, 1 },
	{ "params", ARG_MAP, 0 },
	{ NULL, 0, 0 }
};

static int
include_load(struct pipeline *p, struct stage *st, struct load_ctx *ctx,
    struct err *e)
{
	return pipeline_load_sub(p, st, stage_arg(st, "file"),
	    stage_arg(st, "params"), ctx, e);
}

/* An include adds the columns its stages add. */
static void
include_columns(const struct stage *st, void (*add)(void *, const char *),
    void *arg)
{
	size_t	i;

	for (i = 0; st->nsubs > 0 && i < st->subs[0].p->nstages; i++)
		stage_columns(&st->subs[0].p->stages[i], add, arg);
}

static int
include_rows(struct run *run, struct stage *st, struct table *t)
{
	return run_pipeline(run, st->subs[0].p, t);
}

const struct stage_entry stage_pipeline_entry = {
	.name = "pipeline",
	.usage = "pipeline: { file: FILE, params: { NAME: VALUE } }",
	.summary = "run another pipeline file's stages on this table",
	.shorthand = "file",
	.keys = pipeline_keys,
	.flags = STAGE_TABLE,
	.arg_columns = include_columns,
	.load = include_load,
	.host = include_rows,
	.system = include_rows,
};
