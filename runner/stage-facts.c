/*
 * stage-facts.c: "facts" gathers os, version, kernel, arch, cpus, memory
 * and uptime of each host into columns, so pick can select on them
 * (pick: { column: os, match: ^debian }). One small POSIX sh script per
 * host, the same over ssh and locally; its key=value lines are parsed here.
 */
#include <stdlib.h>
#include <string.h>

#include "run.h"

static const struct stage_key facts_keys[] = {
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

/* Every fact is one line, even where a tool is missing. */
static const char facts_script[] =
	"if [ -r /etc/os-release ]; then "
	"(. /etc/os-release; echo \"os=${ID:-$(uname -s)}\"; "
	"echo \"version=${VERSION_ID:-}\"); "
	"else echo \"os=$(uname -s)\"; echo version=; fi; "
	"echo \"kernel=$(uname -r)\"; "
	"echo \"arch=$(uname -m)\"; "
	"echo \"cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || "
	"nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)\"; "
	"echo \"memory=$(awk '/^MemTotal:/ { print int($2 / 1024) }' "
	"/proc/meminfo 2>/dev/null)\"; "
	"echo \"uptime=$(cut -d. -f1 /proc/uptime 2>/dev/null)\"";

static const char *const fact_names[] = { "os", "version", "kernel", "arch",
    "cpus", "memory", "uptime", NULL };
#define NFACTS	(nitems(fact_names) - 1)

static int
facts_command(struct buf *cmd, struct stage *st, const struct row *r,
    struct buf *why)
{
	buf_adds(cmd, facts_script);
	return 0;
}

static int
parse_facts(struct table *t, struct row *r)
{
	const char	*p, *end, *nl, *eq;
	size_t		 i, found = 0;

	/* Every column is set, so the table has the same shape on each row. */
	for (i = 0; i < NFACTS; i++)
		row_sets(t, r, fact_names[i], "");
	p = r->out.data != NULL ? r->out.data : "";
	end = p + r->out.len;
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if ((eq = memchr(p, '=', (size_t)(nl - p))) == NULL)
			continue;
		for (i = 0; i < NFACTS; i++) {
			if (strlen(fact_names[i]) == (size_t)(eq - p) &&
			    memcmp(fact_names[i], p, (size_t)(eq - p)) == 0) {
				row_set(t, r, fact_names[i], eq + 1,
				    (size_t)(nl - eq - 1));
				found++;
			}
		}
	}
	return found == NFACTS ? 0 : -1;
}

static void
facts_answer(struct job *j)
{
	struct table	*t = j->table;
	struct row	*r = j->row;

	if (r->status != ST_OK)
		return;
	if (parse_facts(t, r) != 0) {
		r->status = ST_FAILED;
		buf_adds(&r->err, "reops-run: facts: the host's answer lacks "
		    "some facts\n");
		return;
	}
	/* The facts are in their columns now. */
	buf_reset(&r->out);
}

static int
facts_host(struct run *run, struct stage *st, struct table *t)
{
	return run_commands(run, st, t, facts_command, facts_answer);
}

const struct stage_entry stage_facts_entry = {
	.name = "facts",
	.usage = "facts: { timeout: SECONDS }",
	.summary = "os, version, kernel, arch, cpus, memory, uptime as columns",
	.keys = facts_keys,
	.columns = fact_names,
	.flags = STAGE_REMOTE,
	.host = facts_host,
};
