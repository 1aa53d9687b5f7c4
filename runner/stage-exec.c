/*
 * stage-exec.c: "exec" runs a shell command on each host.
 */
#include "run.h"

static const struct stage_key exec_keys[] = {
	{ "command", ARG_STRING, 1 },
	{ "sudo", ARG_BOOL, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

/* sudo -n never prompts: without a rule that allows it, the row fails. */
static int
exec_command(struct buf *cmd, struct stage *st, const struct row *r,
    struct buf *why)
{
	struct buf	c;

	buf_init(&c);
	/* A row value is one quoted word of the command, never code. */
	if (expand_row(&c, stage_str(st, "command", ""), r, EXPAND_SHELL,
	    why) != 0) {
		buf_free(&c);
		return -1;
	}
	if (stage_bool(st, "sudo", 0)) {
		buf_adds(cmd, "sudo -n -- /bin/sh -c ");
		shell_quote(cmd, c.data != NULL ? c.data : "");
	} else
		buf_add(cmd, c.data != NULL ? c.data : "", c.len);
	buf_free(&c);
	return 0;
}

static int
exec_host(struct run *run, struct stage *st, struct table *t)
{
	return run_commands(run, st, t, exec_command, NULL);
}

static const char *const exec_row_keys[] = { "command", NULL };

const struct stage_entry stage_exec_entry = {
	.name = "exec",
	.usage = "exec: { command: COMMAND, sudo: BOOL, timeout: SECONDS }",
	.summary = "run a shell command on each host",
	.shorthand = "command",
	.keys = exec_keys,
	.row_keys = exec_row_keys,
	.secret_key = "command",
	.flags = STAGE_REMOTE,
	.host = exec_host,
};
