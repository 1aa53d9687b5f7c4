/*
 * pipeline-stage.c: one stage item of a pipeline: its stage looked up in
 * the table, its arguments checked against the entry's keys and types,
 * and beside them name, when and serial.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline-int.h"
#include "when.h"

static int
check_arg_type(const struct stage *st, const struct stage_key *k,
    const struct node *v, struct err *e)
{
	long long	n;
	size_t		i;
	int		b;

	switch (k->type) {
	case ARG_STRING:
		if (v->type != NODE_SCALAR)
			return node_err(e, v, "'%s' of stage '%s' must be a "
			    "string, not a %s", k->name, st->entry->name,
			    node_type_name(v));
		return 0;
	case ARG_INT:
		if (node_as_int(v, &n) != 0 || n < 0 || n > INT_MAX)
			return node_err(e, v, "'%s' of stage '%s' must be a "
			    "whole number, not %s%s%s", k->name,
			    st->entry->name, v->type == NODE_SCALAR ? "'" :
			    "a ", v->type == NODE_SCALAR ? v->str :
			    node_type_name(v), v->type == NODE_SCALAR ? "'" :
			    "");
		return 0;
	case ARG_BOOL:
		if (node_as_bool(v, &b) != 0)
			return node_err(e, v, "'%s' of stage '%s' must be true "
			    "or false, not %s%s%s", k->name, st->entry->name,
			    v->type == NODE_SCALAR ? "'" : "a ",
			    v->type == NODE_SCALAR ? v->str :
			    node_type_name(v), v->type == NODE_SCALAR ? "'" :
			    "");
		return 0;
	case ARG_STRINGS:
		if (v->type == NODE_SCALAR)
			return 0;
		if (v->type != NODE_SEQ)
			return node_err(e, v, "'%s' of stage '%s' must be a "
			    "string or a list of strings, not a mapping",
			    k->name, st->entry->name);
		for (i = 0; i < v->nkids; i++)
			if (v->kids[i]->type != NODE_SCALAR)
				return node_err(e, v->kids[i], "each of '%s' "
				    "of stage '%s' must be a string, not a %s",
				    k->name, st->entry->name,
				    node_type_name(v->kids[i]));
		return 0;
	case ARG_MAP:
		if (v->type != NODE_MAP)
			return node_err(e, v, "'%s' of stage '%s' must be a "
			    "mapping, not a %s", k->name, st->entry->name,
			    node_type_name(v));
		return 0;
	}
	return 0;
}

static const struct stage_key *
find_key(const struct stage_entry *ent, const char *name)
{
	const struct stage_key	*k;

	for (k = ent->keys; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

/* A scalar (or list) argument becomes { shorthand: value }. */
static struct node *
shorthand_map(struct pipeline *p, const char *key, struct node *v)
{
	struct node	*m, *k;

	m = doc_alloc(p->doc, sizeof *m);
	k = doc_alloc(p->doc, sizeof *k);
	*m = *v;
	m->type = NODE_MAP;
	m->str = NULL;
	m->len = 0;
	*k = *v;
	k->type = NODE_SCALAR;
	k->str = doc_strdup(p->doc, key, strlen(key));
	k->len = strlen(key);
	k->nkids = 0;
	k->kids = NULL;
	m->kids = doc_alloc(p->doc, 2 * sizeof *m->kids);
	m->kids[0] = k;
	m->kids[1] = v;
	m->nkids = 2;
	return m;
}

static int
stage_args(struct pipeline *p, struct stage *st, struct node *v,
    struct err *e)
{
	const struct stage_entry *ent = st->entry;
	const struct stage_key	*k;
	const char		*allowed[32];
	char			 what[128];
	size_t			 n = 0, i;

	if (node_is_null(v))
		v = NULL;
	else if (ent->keys == NULL && v->type != NODE_MAP)
		return node_err(e, v, "stage '%s' takes a mapping, not a %s",
		    ent->name, node_type_name(v));
	else if (v->type != NODE_MAP) {
		k = ent->shorthand != NULL ? find_key(ent, ent->shorthand) :
		    NULL;
		if (k == NULL && ent->keys[0].name == NULL)
			return node_err(e, v, "stage '%s' takes no arguments",
			    ent->name);
		if (k == NULL)
			return node_err(e, v, "stage '%s' takes a mapping of "
			    "keys, not a %s", ent->name, node_type_name(v));
		if (v->type == NODE_SEQ && k->type != ARG_STRINGS)
			return node_err(e, v, "stage '%s' takes a %s, not a "
			    "list", ent->name, k->type == ARG_STRING ?
			    "string or a mapping" : "mapping");
		v = shorthand_map(p, ent->shorthand, v);
	}
	st->args = v;
	if (ent->keys == NULL)
		return 0;	/* names of the user's: the load hook's */
	if (v != NULL) {
		for (k = ent->keys; k->name != NULL && n < nitems(allowed) - 1;
		    k++)
			allowed[n++] = k->name;
		allowed[n] = NULL;
		snprintf(what, sizeof what, "stage '%s'", ent->name);
		p->row_stage = st;
		if (node_check_keys(v, allowed, what, e) != 0 ||
		    pipeline_expand_args(p, ent, v, e) != 0) {
			p->row_stage = NULL;
			return -1;
		}
		p->row_stage = NULL;
		for (i = 0; i < map_nkeys(v); i++) {
			k = find_key(ent, map_key(v, i)->str);
			if (check_arg_type(st, k, map_val(v, i), e) != 0)
				return -1;
		}
	}
	for (k = ent->keys; k->name != NULL; k++)
		if (k->required && node_get(v, k->name) == NULL)
			return node_err(e, v != NULL ? v : st->where,
			    "stage '%s' needs '%s'", ent->name, k->name);
	return 0;
}

/* The keys a stage item may have beside its stage key. */
static const char *const item_keys[] = { "name", "when", "serial", NULL };

static int
item_key(const char *k)
{
	size_t	i;

	for (i = 0; item_keys[i] != NULL; i++)
		if (strcmp(k, item_keys[i]) == 0)
			return 1;
	return 0;
}

/* "'name'", "'name' and 'when'": the item keys an item has, for errors. */
static const char *
item_keys_text(const struct node *item)
{
	static char	 text[64];
	size_t		 i, n = 0;

	text[0] = '\0';
	for (i = 0; i < map_nkeys(item); i++) {
		if (!item_key(map_key(item, i)->str))
			continue;
		snprintf(text + strlen(text), sizeof text - strlen(text),
		    "%s'%s'", n++ == 0 ? "" : ", ", map_key(item, i)->str);
	}
	return text;
}

/* name: TEXT, when: SELECTOR and serial: N beside a stage key. */
static int
load_item_keys(struct pipeline *p, struct stage *st, struct node *item,
    struct err *e)
{
	const struct node	*v;
	long long		 n;
	char			*end;

	(void)p;
	if ((v = node_get(item, "name")) != NULL) {
		if (v->type != NODE_SCALAR || !name_valid(v->str))
			return node_err(e, v, "a stage's 'name' is one line of "
			    "text");
		st->name = v->str;
	}
	if ((v = node_get(item, "when")) != NULL &&
	    when_parse(v, "'when'", &st->when, e) != 0)
		return -1;
	if ((v = node_get(item, "serial")) != NULL) {
		errno = 0;
		n = v->type == NODE_SCALAR ? strtoll(v->str, &end, 10) : 0;
		if (v->type != NODE_SCALAR || v->str[0] == '\0' ||
		    *end != '\0' || errno != 0 || n < 1 || n > INT_MAX)
			return node_err(e, v, "a stage's 'serial' must be a "
			    "whole number of rows, at least 1");
		st->serial = (int)n;
	}
	return 0;
}

int
pipeline_load_stage(struct pipeline *p, struct stage *st, struct node *item,
    struct overrides *ov, const struct chain *chain, struct err *e)
{
	const struct stage_entry *ent;
	struct load_ctx		 ctx;
	const struct node	*k;
	struct node		*name, *v = NULL;
	const char		*near, **names;
	size_t			 i, nstage, nother;

	st->where = item;
	st->owner = p;
	if (item->type == NODE_SCALAR)
		name = item;
	else if (item->type == NODE_MAP) {
		/* The stage key, and beside it name, when and serial. */
		name = NULL;
		nstage = nother = 0;
		for (i = 0; i < map_nkeys(item); i++) {
			k = map_key(item, i);
			if (item_key(k->str))
				continue;
			if (name == NULL) {
				name = map_key(item, i);
				v = map_val(item, i);
			}
			if (stage_find(k->str) != NULL)
				nstage++;
			else
				nother++;
		}
		if (name == NULL)
			return node_err(e, item, "a stage item has %s but no "
			    "stage", item_keys_text(item));
		if (nstage > 1)
			return node_err(e, item, "a stage item is one stage, "
			    "not %zu (make each an item of its own)", nstage);
		if (nstage + nother > 1)
			return node_err(e, item, "a stage is one 'name: "
			    "arguments' pair, not %zu keys (indent the "
			    "arguments under the stage name)", nstage + nother);
		if (load_item_keys(p, st, item, e) != 0)
			return -1;
	} else
		return node_err(e, item, "a stage must be a name or a "
		    "'name: arguments' mapping, not a list");
	st->key = name;
	if ((ent = stage_find(name->str)) == NULL) {
		names = xcalloc(stage_count, sizeof *names);
		for (i = 0; i < stage_count; i++)
			names[i] = stage_table[i]->name;
		near = closest_name(name->str, names, stage_count);
		free(names);
		if (near != NULL)
			return node_err(e, name, "unknown stage '%s'; did you "
			    "mean '%s'?", name->str, near);
		return node_err(e, name, "unknown stage '%s'; "
		    "'reops-run --list-stages' lists them", name->str);
	}
	st->entry = ent;
	if ((p->kind == SEL_HOSTS && ent->host == NULL) ||
	    (p->kind == SEL_SYSTEMS && ent->system == NULL))
		return node_err(e, name, "stage '%s' does not run on %s; it "
		    "works on %s", ent->name, pipeline_kind_word(p->kind),
		    pipeline_kind_word(!p->kind));
	if (st->when != NULL && (ent->flags & STAGE_TABLE))
		return node_err(e, st->when->where, "stage '%s' takes no "
		    "'when': it works on the whole table", ent->name);
	if (stage_args(p, st, v, e) != 0)
		return -1;
	ctx.ov = ov;
	ctx.chain = chain;
	if (ent->load != NULL && ent->load(p, st, &ctx, e) != 0)
		return -1;
	if (ent->prepare != NULL && ent->prepare(st, e) != 0)
		return -1;
	return 0;
}
