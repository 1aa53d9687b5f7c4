/*
 * stage-reload.c: "reload" destroys each system and creates it again from
 * its machine spec: a fresh disk from the base image (re-core's reload).
 */
#include "virt.h"

static const struct stage_key reload_keys[] = {
	{ "wait", ARG_STRING, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

static int
reload_one(struct virt_op *op)
{
	if (virt_destroy(op) != 0)
		return -1;
	buf_adds(&op->note, "; ");
	return virt_create(op);
}

static int
reload_system(struct run *run, struct stage *st, struct table *t)
{
	return virt_stage(run, st, t, reload_one, virt_wait_arg(st, WAIT_SSH),
	    (int)stage_int(st, "timeout", 0));
}

const struct stage_entry stage_reload_entry = {
	.name = "reload",
	.usage = "reload: { wait: none|running|ip|ssh, timeout: SECONDS }",
	.summary = "destroy each system and create it again",
	.shorthand = "wait",
	.keys = reload_keys,
	.columns = virt_columns,
	.flags = STAGE_DESTRUCTIVE,
	.prepare = virt_wait_prepare,
	.system = reload_system,
};
