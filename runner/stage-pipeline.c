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
include_rows(struct run *run, struct stage *st, struct table *t)
{
	return run_pipeline(run, st->sub, t);
}

const struct stage_entry stage_pipeline_entry = {
	.name = "pipeline",
	.usage = "pipeline: { file: FILE, params: { NAME: VALUE } }",
	.summary = "run another pipeline file's stages on this table",
	.shorthand = "file",
	.keys = pipeline_keys,
	.host = include_rows,
	.system = include_rows,
};
