/*
 * stage-json.c: "json" writes the table as JSON lines, one object per row,
 * to standard output or to a file (written whole, then renamed into place).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

static const struct stage_key json_keys[] = {
	{ "file", ARG_STRING, 0 },
	{ NULL, 0, 0 }
};

static int
json_rows(struct run *run, struct stage *st, struct table *t)
{
	const char	*file = stage_str(st, "file", NULL);
	char		*tmp;
	FILE		*f;
	size_t		 i;
	int		 r;

	if (file == NULL) {
		/* With --json, stdout is the final table's alone. */
		f = run->opt->json ? stderr : stdout;
		for (i = 0; i < t->n; i++)
			print_json_row(f, t, t->rows[i]);
		fflush(f);
		return 0;
	}
	tmp = xasprintf("%s.tmp.%ld", file, (long)getpid());
	if ((f = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "reops-run: %s:%d:%d: unable to write '%s': "
		    "%s\n", st->owner->file, st->where->line, st->where->col,
		    tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	for (i = 0; i < t->n; i++)
		print_json_row(f, t, t->rows[i]);
	r = ferror(f);
	if (fclose(f) != 0 || r != 0 || rename(tmp, file) != 0) {
		fprintf(stderr, "reops-run: unable to write '%s': %s\n", file,
		    strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

const struct stage_entry stage_json_entry = {
	.name = "json",
	.usage = "json: { file: FILE }",
	.summary = "write the table as JSON lines to stdout or a file",
	.shorthand = "file",
	.keys = json_keys,
	.flags = STAGE_OUTPUT,
	.host = json_rows,
	.system = json_rows,
};
