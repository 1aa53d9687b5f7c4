/*
 * stage-pretty.c: "pretty" prints the table for people and passes it on.
 */
#include "run.h"

static const struct stage_key pretty_keys[] = {
	{ NULL, 0, 0 }
};

static int
pretty_rows(struct run *run, struct stage *st, struct table *t)
{
	print_pretty(run, run->out, t);
	return 0;
}

const struct stage_entry stage_pretty_entry = {
	.name = "pretty",
	.usage = "pretty",
	.summary = "print the table: aligned on a terminal, plain otherwise",
	.keys = pretty_keys,
	.flags = STAGE_OUTPUT,
	.host = pretty_rows,
	.system = pretty_rows,
};
