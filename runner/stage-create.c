/*
 * stage-create.c: "create" defines each system from its machine spec on
 * its hypervisor, gives it a copy-on-write disk (and a cloud-init seed when
 * its type asks), starts it and waits until it is ready.
 */
#include "virt.h"

static const struct stage_key create_keys[] = {
	{ "wait", ARG_STRING, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

static int
create_system(struct run *run, struct stage *st, struct table *t)
{
	return virt_stage(run, st, t, virt_create, virt_wait_arg(st, WAIT_SSH),
	    (int)stage_int(st, "timeout", 0));
}

const struct stage_entry stage_create_entry = {
	.name = "create",
	.usage = "create: { wait: none|running|ip|ssh, timeout: SECONDS }",
	.summary = "define, give a disk to and start each system, then wait",
	.shorthand = "wait",
	.keys = create_keys,
	.columns = virt_columns,
	.prepare = virt_wait_prepare,
	.system = create_system,
};
