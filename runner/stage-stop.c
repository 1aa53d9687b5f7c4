/*
 * stage-stop.c: "stop" asks each system to shut down (ACPI), waits for all
 * of them against one deadline, then forces off those still running.
 */
#include "virt.h"

static const struct stage_key stop_keys[] = {
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

static int
stop_system(struct run *run, struct stage *st, struct table *t)
{
	return virt_stage(run, st, t, virt_shutdown, WAIT_SHUTOFF,
	    (int)stage_int(st, "timeout", 0));
}

const struct stage_entry stage_stop_entry = {
	.name = "stop",
	.usage = "stop: { timeout: SECONDS }",
	.summary = "shut each system down, forcing it off after the timeout",
	.shorthand = "timeout",
	.keys = stop_keys,
	.columns = virt_columns,
	.flags = STAGE_DESTRUCTIVE,
	.system = stop_system,
};
