/*
 * stage-destroy.c: "destroy" forces each system off, undefines it and
 * deletes the volumes reops-run created for it, and nothing else.
 */
#include "virt.h"

static const struct stage_key destroy_keys[] = {
	{ NULL, 0, 0 }
};

static int
destroy_system(struct run *run, struct stage *st, struct table *t)
{
	return virt_stage(run, st, t, virt_destroy, WAIT_NONE, 0);
}

const struct stage_entry stage_destroy_entry = {
	.name = "destroy",
	.usage = "destroy",
	.summary = "force off and undefine each system, delete its volumes",
	.keys = destroy_keys,
	.columns = virt_columns,
	.flags = STAGE_DESTRUCTIVE,
	.system = destroy_system,
};
