/*
 * stage.c: the table of builtin stages, looked up by exact name, and the
 * helpers stages use to read their checked arguments.
 */
#include <string.h>

#include "pipeline.h"
#include "stage.h"

extern const struct stage_entry stage_create_entry;
extern const struct stage_entry stage_destroy_entry;
extern const struct stage_entry stage_copy_entry;
extern const struct stage_entry stage_exec_entry;
extern const struct stage_entry stage_facts_entry;
extern const struct stage_entry stage_json_entry;
extern const struct stage_entry stage_ls_entry;
extern const struct stage_entry stage_parse_entry;
extern const struct stage_entry stage_pick_entry;
extern const struct stage_entry stage_ping_entry;
extern const struct stage_entry stage_pipeline_entry;
extern const struct stage_entry stage_pkg_entry;
extern const struct stage_entry stage_pretty_entry;
extern const struct stage_entry stage_provision_entry;
extern const struct stage_entry stage_reload_entry;
extern const struct stage_entry stage_start_entry;
extern const struct stage_entry stage_stop_entry;

const struct stage_entry *const stage_table[] = {
	&stage_ls_entry,
	&stage_exec_entry,
	&stage_copy_entry,
	&stage_pkg_entry,
	&stage_facts_entry,
	&stage_ping_entry,
	&stage_parse_entry,
	&stage_pick_entry,
	&stage_pretty_entry,
	&stage_json_entry,
	&stage_pipeline_entry,
	&stage_create_entry,
	&stage_start_entry,
	&stage_stop_entry,
	&stage_reload_entry,
	&stage_destroy_entry,
	&stage_provision_entry,
};
const size_t stage_count = nitems(stage_table);

const struct stage_entry *
stage_find(const char *name)
{
	size_t	i;

	for (i = 0; i < stage_count; i++)
		if (strcmp(stage_table[i]->name, name) == 0)
			return stage_table[i];
	return NULL;
}

const struct node *
stage_arg(const struct stage *st, const char *key)
{
	return node_get(st->args, key);
}

const char *
stage_str(const struct stage *st, const char *key, const char *def)
{
	const struct node	*v;

	if ((v = stage_arg(st, key)) == NULL || v->type != NODE_SCALAR)
		return def;
	return v->str;
}

long long
stage_int(const struct stage *st, const char *key, long long def)
{
	const struct node	*v;
	long long		 n;

	if ((v = stage_arg(st, key)) == NULL || node_as_int(v, &n) != 0)
		return def;
	return n;
}

int
stage_bool(const struct stage *st, const char *key, int def)
{
	const struct node	*v;
	int			 b;

	if ((v = stage_arg(st, key)) == NULL || node_as_bool(v, &b) != 0)
		return def;
	return b;
}

/* ${target} and ${group} of a row; $${ stands for a literal ${. */
void
expand_row(struct buf *b, const char *s, const struct row *r)
{
	while (*s != '\0') {
		if (strncmp(s, "$${", 3) == 0) {
			buf_adds(b, "${");
			s += 3;
		} else if (strncmp(s, "${target}", 9) == 0) {
			buf_adds(b, r->target);
			s += 9;
		} else if (strncmp(s, "${group}", 8) == 0) {
			buf_adds(b, r->group);
			s += 8;
		} else
			buf_addc(b, *s++);
	}
}

/* "ls path=/ flags=-la", for --check and -v. */
void
stage_describe(struct buf *b, const struct stage *st)
{
	const struct node	*v;
	size_t			 i, j;

	buf_adds(b, st->entry->name);
	if (st->args == NULL)
		return;
	for (i = 0; i < map_nkeys(st->args); i++) {
		v = map_val(st->args, i);
		buf_printf(b, " %s=", map_key(st->args, i)->str);
		if (v->type == NODE_SCALAR)
			buf_adds(b, v->str);
		else if (v->type == NODE_SEQ) {
			for (j = 0; j < v->nkids; j++)
				buf_printf(b, "%s%s", j ? "," : "",
				    v->kids[j]->type == NODE_SCALAR ?
				    v->kids[j]->str : "...");
		} else
			buf_adds(b, "{...}");
	}
}
