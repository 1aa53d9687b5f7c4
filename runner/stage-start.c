/*
 * stage-start.c: "start" boots (or resumes) each system and waits until it
 * is ready, like create does.
 */
#include "virt.h"

static const struct stage_key start_keys[] = {
	{ "wait", ARG_STRING, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

static int
start_system(struct run *run, struct stage *st, struct table *t)
{
	return virt_stage(run, st, t, virt_start, virt_wait_arg(st, WAIT_SSH),
	    (int)stage_int(st, "timeout", 0));
}

const struct stage_entry stage_start_entry = {
	.name = "start",
	.usage = "start: { wait: none|running|ip|ssh, timeout: SECONDS }",
	.summary = "start each system, then wait until it is ready",
	.shorthand = "wait",
	.keys = start_keys,
	.columns = virt_columns,
	.prepare = virt_wait_prepare,
	.system = start_system,
};
