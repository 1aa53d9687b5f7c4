/*
 * stage-ls.c: "ls" lists a directory on each host (re-mote's ls), or
 * each system with its state, ip and machine, as libvirt reports them.
 */
#include <string.h>

#include "run.h"
#include "virt.h"

static const struct stage_key ls_keys[] = {
	{ "path", ARG_STRING, 0 },
	{ "flags", ARG_STRING, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

/* Flags are ls options only ("-la", "-l -h"): nothing for the shell. */
static int
ls_prepare(struct stage *st, struct err *e)
{
	const struct node	*v;
	const char		*p;
	int			 start = 1;

	if ((v = stage_arg(st, "flags")) == NULL)
		return 0;
	for (p = v->str; *p != '\0'; p++) {
		if (start && *p != '-')
			break;
		start = *p == ' ';
		if (*p == ' ' || *p == '-' || (*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
			continue;
		break;
	}
	if (*p != '\0' || v->len == 0)
		return node_err(e, v, "'flags' of stage 'ls' must be ls "
		    "options such as '-la', not '%s'", v->str);
	return 0;
}

static int
ls_command(struct buf *cmd, struct stage *st, const struct row *r,
    struct buf *why)
{
	struct buf	path;

	buf_init(&path);
	/* The path is quoted whole below: a row value goes in as it is. */
	if (expand_row(&path, stage_str(st, "path", "."), r, EXPAND_TEXT,
	    why) != 0) {
		buf_free(&path);
		return -1;
	}
	buf_adds(cmd, "ls ");
	if (stage_arg(st, "flags") != NULL)
		buf_printf(cmd, "%s ", stage_str(st, "flags", ""));
	/*
	 * "--" ends the options, unless a flag that takes an argument
	 * (GNU ls -I, -w, --sort...) takes it as its own: so a path that
	 * begins with a dash is also made one that cannot be an option.
	 */
	buf_adds(cmd, "-- ");
	if (path.data != NULL && path.data[0] == '-')
		buf_adds(cmd, "./");
	shell_quote(cmd, path.data != NULL ? path.data : ".");
	buf_free(&path);
	return 0;
}

static int
ls_host(struct run *run, struct stage *st, struct table *t)
{
	return run_commands(run, st, t, ls_command, NULL);
}

static int
ls_system(struct run *run, struct stage *st, struct table *t)
{
	return virt_stage(run, st, t, virt_nothing, WAIT_NONE, 0);
}

static const char *const ls_row_keys[] = { "path", NULL };

const struct stage_entry stage_ls_entry = {
	.name = "ls",
	.usage = "ls: { path: PATH, flags: FLAGS, timeout: SECONDS }",
	.summary = "list a directory on each host; list systems",
	.shorthand = "path",
	.keys = ls_keys,
	.row_keys = ls_row_keys,
	.columns = virt_columns,
	.flags = STAGE_REMOTE,
	.prepare = ls_prepare,
	.host = ls_host,
	.system = ls_system,
};
