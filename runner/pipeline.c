/*
 * pipeline.c: loading a pipeline file. Everything is checked here, before
 * anything runs: the YAML, the stage names and their keys and types,
 * ${param} references, regexes, includes and their cycles. The first
 * problem becomes one FILE:LINE:COLUMN error.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "search.h"
#include "secret.h"
#include "virt.h"
#include "when.h"

static const char *const top_keys[] = { "pipeline", "description", "hosts",
    "systems", "params", "serial", "max-fail", "stages", NULL };

struct chain {
	const char	*real;		/* realpath, for comparing */
	const char	*shown;		/* the path as the user wrote it */
	const struct chain *up;
};

struct scope {
	const struct param *params;
	size_t		    n;
};

static int load_file(const char *, struct overrides *, const struct scope *,
    const struct node *, int, const struct chain *, const struct node *,
    struct pipeline **, struct err *);

static int
valid_param_name(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
	    *s == '_'))
		return 0;
	for (s++; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

static int
row_variable(const char *name, size_t len)
{
	return (len == 6 && strncmp(name, "target", 6) == 0) ||
	    (len == 5 && strncmp(name, "group", 5) == 0);
}

static const struct param *
param_get(const struct pipeline *p, const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < p->nparams; i++)
		if (strlen(p->params[i].name) == len &&
		    strncmp(p->params[i].name, name, len) == 0)
			return &p->params[i];
	return NULL;
}

/* Valid until the next param_set. */
static struct param *
param_set(struct pipeline *p, const char *name, const char *value)
{
	size_t	i;

	for (i = 0; i < p->nparams; i++) {
		if (strcmp(p->params[i].name, name) == 0) {
			p->params[i].value = value;
			return &p->params[i];
		}
	}
	p->params = xgrow(p->params, p->nparams,
	    sizeof *p->params);
	memset(&p->params[p->nparams], 0, sizeof *p->params);
	p->params[p->nparams].name = name;
	p->params[p->nparams].value = value;
	return &p->params[p->nparams++];
}

static void
mark_used(struct overrides *ov, const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < ov->n; i++)
		if (strlen(ov->keys[i]) == len &&
		    strncmp(ov->keys[i], name, len) == 0)
			ov->used[i] = 1;
}

/*
 * A ${row.COLUMN} at byte off of n: allowed only in the keys of the
 * stage being loaded that expand it per row (row_keys); noted in the
 * stage, where it is, for pipeline_check_rows.
 */
static int
row_ref(struct pipeline *p, const struct node *n, size_t off,
    const char *name, size_t len, struct err *e)
{
	struct stage		*st = p->row_stage;
	const char *const	*k;
	struct rowref		*ref;
	struct buf		 keys;
	int			 col = node_col_at(n, off), ok = 0, r;

	if (len == 0)
		return err_at(e, n->file, n->line, col, "'${row.}' names no "
		    "column; write '${row.COLUMN}', such as '${row.stdout}'");
	if (st == NULL)
		return err_at(e, n->file, n->line, col, "'${row.%.*s}' can "
		    "only be used in the arguments of a stage", (int)len,
		    name);
	for (k = st->entry->row_keys; k != NULL && *k != NULL; k++)
		if (strcmp(*k, p->row_key) == 0)
			ok = 1;
	if (!ok) {
		buf_init(&keys);
		for (k = st->entry->row_keys; k != NULL && *k != NULL; k++)
			buf_printf(&keys, "%s'%s'", keys.len ? ", " : "", *k);
		if (keys.len == 0)
			r = err_at(e, n->file, n->line, col, "'${row.%.*s}' "
			    "cannot be used in '%s': stage '%s' takes no row "
			    "values (its arguments are read once, at load)",
			    (int)len, name, p->row_key, st->entry->name);
		else
			r = err_at(e, n->file, n->line, col, "'${row.%.*s}' "
			    "cannot be used in '%s' of stage '%s', which is "
			    "read once, at load; row values go in %s",
			    (int)len, name, p->row_key, st->entry->name,
			    keys.data);
		buf_free(&keys);
		return r;
	}
	st->rowrefs = xgrow(st->rowrefs, st->nrowrefs, sizeof *st->rowrefs);
	ref = &st->rowrefs[st->nrowrefs++];
	ref->column = doc_strdup(p->doc, name, len);
	ref->file = n->file;
	ref->line = n->line;
	ref->col = col;
	return 0;
}

/*
 * Replaces ${name} in a scalar by the param's value. ${target},
 * ${group} and ${row.COLUMN} stay for expand_row; $${ is a literal ${.
 */
static int
expand_scalar(struct pipeline *p, struct node *n, struct err *e)
{
	struct buf	 b;
	const struct param *v;
	const char	*s = n->str, *end, *near, **names;
	size_t		 i, len;
	int		 changed = 0, quote;

	/* Once: an alias shares the node, and a value is not a template. */
	if ((n->flags & NODE_EXPANDED) || strstr(s, "${") == NULL)
		return 0;
	n->flags |= NODE_EXPANDED;
	buf_init(&b);
	while (*s != '\0') {
		if (s[0] == '$' && s[1] == '$' && s[2] == '{') {
			buf_adds(&b, "$${");
			s += 3;
			continue;
		}
		if (s[0] != '$' || s[1] != '{') {
			buf_addc(&b, *s++);
			continue;
		}
		if ((end = strchr(s + 2, '}')) == NULL) {
			buf_free(&b);
			return err_at(e, n->file, n->line,
			    node_col_at(n, (size_t)(s - n->str)),
			    "unterminated '${' in '%s'", n->str);
		}
		len = (size_t)(end - s - 2);
		/* ${name:q}: the value as one shell-quoted word. */
		quote = len > 2 && strncmp(end - 2, ":q", 2) == 0;
		if (quote)
			len -= 2;
		if (len >= 4 && strncmp(s + 2, "row.", 4) == 0) {
			if (row_ref(p, n, (size_t)(s - n->str), s + 6,
			    len - 4, e) != 0) {
				buf_free(&b);
				return -1;
			}
			/* Always one quoted word in a command: no ':q'. */
			buf_add(&b, s, len + 2);
			buf_addc(&b, '}');
			s = end + 1;
			changed |= quote;
			continue;
		}
		if (row_variable(s + 2, len)) {
			/* Target and group names are shell words already. */
			buf_adds(&b, "${");
			buf_add(&b, s + 2, len);
			buf_addc(&b, '}');
			s = end + 1;
			changed |= quote;
			continue;
		}
		if ((v = param_get(p, s + 2, len)) == NULL) {
			char	*name = xstrndup(s + 2, len);
			int	 col = node_col_at(n, (size_t)(s - n->str));

			names = xcalloc(p->nparams + 3, sizeof *names);
			for (i = 0; i < p->nparams; i++)
				names[i] = p->params[i].name;
			names[i++] = "target";
			names[i++] = "group";
			near = closest_name(name, names, i);
			if (near != NULL)
				err_at(e, n->file, n->line, col, "unknown "
				    "parameter '${%s}'; did you mean '${%s}'?",
				    name, near);
			else if (p->nparams == 0)
				err_at(e, n->file, n->line, col, "unknown "
				    "parameter '${%s}'; the pipeline declares "
				    "no params", name);
			else
				err_at(e, n->file, n->line, col, "unknown "
				    "parameter '${%s}'", name);
			free(names);
			free(name);
			buf_free(&b);
			return -1;
		}
		if (v->secret && n != p->secret_ok) {
			buf_free(&b);
			return err_at(e, n->file, n->line,
			    node_col_at(n, (size_t)(s - n->str)), "secret "
			    "parameter '${%s}' may only be used in the command "
			    "of an exec stage", v->name);
		}
		if (!v->secret && v->value != NULL &&
		    has_row_value(v->value)) {
			buf_free(&b);
			return err_at(e, n->file, n->line,
			    node_col_at(n, (size_t)(s - n->str)), "parameter "
			    "'${%s}' holds '${row.'; write row values in the "
			    "stage's arguments, not in parameters", v->name);
		}
		/* A secret's reference is one quoted word already. */
		if (v->secret) {
			secret_ref(&b, v->name);
			p->secret_used = 1;
		} else if (quote)
			shell_quote(&b, v->value);
		else
			buf_adds(&b, v->value);
		mark_used(p->ov, s + 2, len);
		s = end + 1;
		changed = 1;
	}
	if (changed) {
		n->str = doc_strdup(p->doc, b.data, b.len);
		n->len = b.len;
		/* Columns inside the value no longer match the source. */
		n->span = -1;
	}
	buf_free(&b);
	return 0;
}

static int
expand_tree(struct pipeline *p, struct node *n, struct err *e)
{
	size_t	i;

	if (n == NULL)
		return 0;
	if (n->type == NODE_SCALAR)
		return expand_scalar(p, n, e);
	for (i = 0; i < n->nkids; i++) {
		/* Mapping keys are names, never expanded. */
		if (n->type == NODE_MAP && i % 2 == 0)
			continue;
		if (expand_tree(p, n->kids[i], e) != 0)
			return -1;
	}
	return 0;
}

/*
 * expand_tree, where the shell command under the entry's secret_key (exec's
 * command) may use secrets: it then reads their values from stdin first
 * (SECRET_PREAMBLE), inside any sudo.
 */
static int
secret_expand_tree(struct pipeline *p, const struct stage_entry *ent,
    struct node *v, struct err *e)
{
	struct node	*cmd;
	char		*s;
	size_t		 i;
	int		 r;

	cmd = ent->secret_key != NULL ? node_get(v, ent->secret_key) : NULL;
	p->secret_ok = cmd;
	p->secret_used = 0;
	/* Each key by itself: row values are allowed in some only. */
	r = 0;
	for (i = 0; i < map_nkeys(v) && r == 0; i++) {
		p->row_key = map_key(v, i)->str;
		r = expand_tree(p, map_val(v, i), e);
	}
	p->row_key = NULL;
	if (r == 0 && p->secret_used) {
		s = xasprintf("%s%s", SECRET_PREAMBLE, cmd->str);
		cmd->len = strlen(s);
		cmd->str = doc_strdup(p->doc, s, cmd->len);
		free(s);
	}
	p->secret_ok = NULL;
	p->secret_used = 0;
	return r;
}

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
		    secret_expand_tree(p, ent, v, e) != 0) {
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

static const char *
kind_word(int kind)
{
	return kind == SEL_SYSTEMS ? "systems" : "hosts";
}


/*
 * "a/inc/../b.yaml" as "a/b.yaml", so that messages name files the way a
 * person would; kept only when it is the same file (no symlink between).
 */
static char *
clean_path(const char *path)
{
	char	*copy, *p, *word, **parts, *out, *r1, *r2;
	size_t	 n = 0, i, len = 0;
	int	 abs = path[0] == '/';

	copy = xstrdup(path);
	parts = xcalloc(strlen(path) + 1, sizeof *parts);
	for (p = copy; (word = strsep(&p, "/")) != NULL;) {
		if (*word == '\0' || strcmp(word, ".") == 0)
			continue;
		if (strcmp(word, "..") == 0 && n > 0 &&
		    strcmp(parts[n - 1], "..") != 0) {
			n--;
			continue;
		}
		if (strcmp(word, "..") == 0 && n == 0 && abs)
			continue;
		parts[n++] = word;
	}
	for (i = 0; i < n; i++)
		len += strlen(parts[i]) + 1;
	out = xmalloc(len + 2);
	out[0] = '\0';
	if (abs)
		strcat(out, "/");
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(out, "/");
		strcat(out, parts[i]);
	}
	if (n == 0 && !abs)
		strcat(out, ".");
	free(parts);
	free(copy);
	r1 = realpath(path, NULL);
	r2 = realpath(out, NULL);
	/* Neither exists: the error names the cleaner of the two. */
	if ((r1 != NULL || r2 != NULL) &&
	    (r1 == NULL || r2 == NULL || strcmp(r1, r2) != 0)) {
		free(out);
		out = xstrdup(path);
	}
	free(r1);
	free(r2);
	return out;
}

/*
 * A stage's load hook loads another file as its sub-pipeline: FILE is
 * relative to the including file, PARAMS (or NULL) sets its params, and
 * the include chain catches cycles.
 */
int
pipeline_load_sub(struct pipeline *p, struct stage *st,
    const struct node *file, const struct node *params,
    struct load_ctx *ctx, struct err *e)
{
	struct scope		 sc;
	struct buf		 tried;
	char			*dir, *path, *tmp, *found;
	int			 r;

	if (file->str[0] == '/')
		path = xstrdup(file->str);
	else {
		dir = path_dir(p->file);
		tmp = strcmp(dir, ".") == 0 ? xstrdup(file->str) :
		    xasprintf("%s/%s", dir, file->str);
		path = clean_path(tmp);
		free(tmp);
		free(dir);
		/* Then REOPS_PATH and the library: search.c. */
		buf_init(&tried);
		found = pipeline_find(path, file->str, &tried);
		free(path);
		if ((path = found) == NULL) {
			r = node_err(e, file, "unable to find '%s' in %s",
			    file->str, tried.data);
			buf_free(&tried);
			return r;
		}
		buf_free(&tried);
	}
	sc.params = p->params;
	sc.n = p->nparams;
	r = load_file(path, ctx->ov, &sc, params, p->kind, ctx->chain, file,
	    &stage_add_sub(st, NULL)->p, e);
	free(path);
	return r;
}

/* A stage's name: not empty, no control characters. */
static int
one_line(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
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
		if (v->type != NODE_SCALAR || !one_line(v->str))
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

static int
load_stage(struct pipeline *p, struct stage *st, struct node *item,
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
		    "works on %s", ent->name, kind_word(p->kind),
		    kind_word(!p->kind));
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

static int
valid_env_name(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
	    *s == '_'))
		return 0;
	for (s++; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

static int
secret_in_file(struct err *e, const struct node *n, const char *name)
{
	return node_err(e, n, "parameter '%s' is secret: its value comes from "
	    "the environment, --set-file or --set, never from a pipeline file",
	    name);
}

static const char *const param_keys[] = { "value", "secret", "env", NULL };

/*
 * One entry of params: a default value, or { value: DEFAULT, env: NAME,
 * secret: BOOL }. An environment variable that is set and not empty wins
 * over the default. Once secret, a parameter stays secret in the files it
 * includes.
 */
static int
load_param(struct pipeline *p, const struct node *k, const struct node *v,
    struct err *e)
{
	const struct node	*val = NULL, *sec, *env = NULL;
	const struct param	*old;
	struct param		*prm;
	const char		*value = NULL, *ev;
	char			 what[160];
	int			 secret = 0;

	if (v->type == NODE_SCALAR)
		val = v;
	else if (v->type == NODE_MAP) {
		snprintf(what, sizeof what, "parameter '%s'", k->str);
		if (node_check_keys(v, param_keys, what, e) != 0)
			return -1;
		if ((sec = node_get(v, "secret")) != NULL &&
		    node_as_bool(sec, &secret) != 0)
			return node_err(e, sec, "'secret' of parameter '%s' "
			    "must be true or false", k->str);
		if ((val = node_get(v, "value")) != NULL &&
		    val->type != NODE_SCALAR)
			return node_err(e, val, "'value' of parameter '%s' "
			    "must be a string, not a %s", k->str,
			    node_type_name(val));
		if ((env = node_get(v, "env")) != NULL &&
		    (env->type != NODE_SCALAR || !valid_env_name(env->str)))
			return node_err(e, env, "'env' of parameter '%s' must "
			    "be the name of an environment variable: letters, "
			    "digits and '_', not starting with a digit",
			    k->str);
		if (env != NULL && (ev = getenv(env->str)) != NULL &&
		    *ev != '\0')
			value = doc_strdup(p->doc, ev, strlen(ev));
	} else
		return node_err(e, v, "parameter '%s' must be a string or a "
		    "mapping of 'value', 'env' and 'secret', not a list",
		    k->str);
	old = param_get(p, k->str, strlen(k->str));
	if (old != NULL && old->secret)
		secret = 1;
	if (secret && val != NULL)
		return secret_in_file(e, val, k->str);
	if (val != NULL && has_row_value(val->str))
		return err_at(e, val->file, val->line, node_col_at(val,
		    (size_t)(strstr(val->str, "${row.") - val->str)),
		    "parameter '%s' holds '${row.'; write row values in the "
		    "stage's arguments, not in parameters", k->str);
	if (value == NULL && val != NULL)
		value = val->str;
	if (value == NULL && old != NULL)
		value = old->value;
	prm = param_set(p, k->str, value);
	prm->secret = secret;
	prm->where = k;
	if (env != NULL)
		prm->env = env->str;
	return 0;
}

/* Every parameter has a value, and no two secrets share a variable. */
static int
check_params(struct pipeline *p, const struct overrides *ov,
    struct err *e)
{
	const struct param	*a, *b;
	struct buf		 va, vb;
	size_t			 i, j;
	int			 r = 0;

	for (i = 0; i < p->nparams && r == 0; i++) {
		a = &p->params[i];
		if (a->value != NULL && (!a->secret || *a->value != '\0'))
			continue;
		if (a->secret && ov->check)
			continue;
		if (a->env != NULL)
			r = node_err(e, a->where, "%sparameter '%s' has no "
			    "value: set the environment variable '%s', or give "
			    "--set-file %s=FILE", a->secret ? "secret " : "",
			    a->name, a->env, a->name);
		else
			r = node_err(e, a->where, "%sparameter '%s' has no "
			    "value: give --set-file %s=FILE or --set %s=VALUE",
			    a->secret ? "secret " : "", a->name, a->name,
			    a->name);
	}
	buf_init(&va);
	buf_init(&vb);
	for (i = 0; i < p->nparams && r == 0; i++) {
		for (j = i + 1; j < p->nparams && r == 0; j++) {
			a = &p->params[i];
			b = &p->params[j];
			if (!a->secret || !b->secret)
				continue;
			buf_reset(&va);
			buf_reset(&vb);
			secret_var(&va, a->name);
			secret_var(&vb, b->name);
			if (strcmp(va.data, vb.data) == 0)
				r = node_err(e, b->where != NULL ? b->where :
				    a->where, "secret parameters '%s' and '%s' "
				    "would share the shell variable '%s'; rename "
				    "one", a->name, b->name, va.data);
		}
	}
	buf_free(&va);
	buf_free(&vb);
	if (r != 0)
		return -1;
	for (i = 0; i < p->nparams; i++)
		if (p->params[i].secret && p->params[i].value != NULL)
			secret_register(p->params[i].value);
	return 0;
}

static int
load_params(struct pipeline *p, const struct node *root,
    const struct scope *parent, const struct node *incparams,
    struct overrides *ov, struct err *e)
{
	const struct node	*params, *k, *v;
	const struct param	*old;
	struct param		*prm;
	size_t			 i;

	if (parent != NULL)
		for (i = 0; i < parent->n; i++) {
			prm = param_set(p, parent->params[i].name,
			    parent->params[i].value);
			prm->secret = parent->params[i].secret;
			prm->where = parent->params[i].where;
			prm->env = parent->params[i].env;
		}
	params = node_get(root, "params");
	if (params != NULL && !node_is_null(params)) {
		if (node_want(params, NODE_MAP, "'params'", e) != 0)
			return -1;
		for (i = 0; i < map_nkeys(params); i++) {
			k = map_key(params, i);
			v = map_val(params, i);
			if (!valid_param_name(k->str))
				return node_err(e, k, "invalid parameter name "
				    "'%s': use letters, digits, '_' and '-', "
				    "starting with a letter or '_'", k->str);
			if (load_param(p, k, v, e) != 0)
				return -1;
			for (size_t j = 0; j < ov->n; j++)
				if (strcmp(ov->keys[j], k->str) == 0)
					ov->used[j] = 1;
		}
	}
	if (incparams != NULL && !node_is_null(incparams)) {
		for (i = 0; i < map_nkeys(incparams); i++) {
			k = map_key(incparams, i);
			v = map_val(incparams, i);
			if (v->type != NODE_SCALAR)
				return node_err(e, v, "parameter '%s' must be "
				    "a string, not a %s", k->str,
				    node_type_name(v));
			old = param_get(p, k->str, strlen(k->str));
			if (old != NULL && old->secret)
				return secret_in_file(e, v, k->str);
			param_set(p, k->str, v->str);
		}
	}
	/* --set wins over everything the files say. */
	for (i = 0; i < ov->n; i++)
		param_set(p, ov->keys[i], ov->values[i]);
	return check_params(p, ov, e);
}

/* The key of whichever of a and b comes later in the mapping. */
static const struct node *
second_key(const struct node *m, const char *a, const char *b)
{
	const struct node	*last = m;
	size_t			 i;

	for (i = 0; i < map_nkeys(m); i++)
		if (strcmp(map_key(m, i)->str, a) == 0 ||
		    strcmp(map_key(m, i)->str, b) == 0)
			last = map_key(m, i);
	return last;
}

static int
load_selector(struct pipeline *p, struct node *root, int inherited,
    struct err *e)
{
	struct node	*hosts, *systems;

	hosts = node_get(root, "hosts");
	systems = node_get(root, "systems");
	if (hosts != NULL && systems != NULL)
		return node_err(e, second_key(root, "hosts", "systems"), "a "
		    "pipeline selects 'hosts' or 'systems', not both");
	if (hosts == NULL && systems == NULL) {
		if (inherited >= 0) {
			p->kind = inherited;
			return 0;
		}
		return node_err(e, root, "a pipeline needs 'hosts' or "
		    "'systems' to say what it runs on");
	}
	p->kind = hosts != NULL ? SEL_HOSTS : SEL_SYSTEMS;
	if (inherited >= 0 && inherited != p->kind)
		return node_err(e, hosts != NULL ? hosts : systems, "pipeline "
		    "selects %s but is included by one on %s",
		    kind_word(p->kind), kind_word(inherited));
	if (expand_tree(p, hosts != NULL ? hosts : systems, e) != 0)
		return -1;
	p->has_selector = 1;
	return selector_parse(hosts != NULL ? hosts : systems, p->kind,
	    &p->sel, e);
}

/*
 * "N" or "N%", digits only: 0; -1 when it is neither, -2 when N is too
 * large.
 */
static int
batch_spec_parse(const struct node *n, struct batch_spec *b)
{
	const char	*s;
	char		*end;
	unsigned long	 v;

	if (n->type != NODE_SCALAR || n->str[0] < '0' || n->str[0] > '9')
		return -1;
	s = n->str;
	errno = 0;
	v = strtoul(s, &end, 10);
	if ((b->percent = *end == '%'))
		end++;
	if (*end != '\0')
		return -1;
	if (errno != 0 || v > INT_MAX)
		return -2;
	b->n = (int)v;
	return 0;
}

static int
serial_item(const struct node *n, struct batch_spec *b, struct err *e)
{
	switch (batch_spec_parse(n, b)) {
	case -1:
		if (n->type != NODE_SCALAR)
			return node_err(e, n, "'serial' takes a number of "
			    "rows, a percentage such as '25%%' or a list of "
			    "them, not a %s", node_type_name(n));
		return node_err(e, n, "'serial' takes a number of rows, a "
		    "percentage such as '25%%' or a list of them, not '%s'",
		    n->str);
	case -2:
		return node_err(e, n, "'serial' of '%s' rows is too large",
		    n->str);
	}
	if (b->n == 0 && !b->percent)
		return node_err(e, n, "'serial' must be at least 1 row, not "
		    "'0'");
	if (b->percent && (b->n < 1 || b->n > 100))
		return node_err(e, n, "'serial' must be from 1%% to 100%% of "
		    "the rows, not '%s'", n->str);
	return 0;
}

/*
 * serial: N | N% | [N, N%, ...] and max-fail: N | N%, as Ansible's
 * serial and max_fail_percentage (see reops-pipeline(5)). Params expand
 * in both, so that --set can size the batches.
 */
static int
load_serial(struct pipeline *p, struct node *root, struct err *e)
{
	struct node	*serial, *maxfail;
	size_t		 i;

	serial = node_get(root, "serial");
	maxfail = node_get(root, "max-fail");
	if (serial == NULL) {
		if (maxfail != NULL)
			return node_err(e, second_key(root, "max-fail",
			    "max-fail"), "'max-fail' needs 'serial': without "
			    "batches every row runs at once");
		return 0;
	}
	if (expand_tree(p, serial, e) != 0 ||
	    (maxfail != NULL && expand_tree(p, maxfail, e) != 0))
		return -1;
	p->serial_where = serial;
	if (serial->type == NODE_SEQ) {
		if (serial->nkids == 0)
			return node_err(e, serial, "'serial' is an empty list; "
			    "give one batch size or more");
		p->nserial = serial->nkids;
		p->serial = doc_alloc(p->doc, p->nserial * sizeof *p->serial);
		for (i = 0; i < serial->nkids; i++)
			if (serial_item(serial->kids[i], &p->serial[i], e) != 0)
				return -1;
	} else {
		p->nserial = 1;
		p->serial = doc_alloc(p->doc, sizeof *p->serial);
		if (serial_item(serial, p->serial, e) != 0)
			return -1;
	}
	if (maxfail == NULL)
		return 0;
	switch (batch_spec_parse(maxfail, &p->max_fail)) {
	case -1:
		if (maxfail->type != NODE_SCALAR)
			return node_err(e, maxfail, "'max-fail' takes a number "
			    "of rows or a percentage such as '10%%', not a %s",
			    node_type_name(maxfail));
		return node_err(e, maxfail, "'max-fail' takes a number of "
		    "rows or a percentage such as '10%%', not '%s'",
		    maxfail->str);
	case -2:
		return node_err(e, maxfail, "'max-fail' of '%s' rows is too "
		    "large", maxfail->str);
	}
	if (p->max_fail.percent && p->max_fail.n > 100)
		return node_err(e, maxfail, "'max-fail' must be from 0%% to "
		    "100%% of the rows, not '%s'", maxfail->str);
	return 0;
}

/* "a.yaml -> b.yaml" from the file that is included again down to up. */
static void
cycle_chain(struct buf *b, const struct chain *c, const char *real)
{
	if (c == NULL)
		return;
	if (strcmp(c->real, real) != 0) {
		cycle_chain(b, c->up, real);
		buf_adds(b, " -> ");
	}
	buf_adds(b, c->shown);
}

/* "failed", "failed or unreachable": the statuses of a mask. */
static void
status_words(struct buf *b, unsigned mask)
{
	static const int order[] = { ST_OK, ST_FAILED, ST_UNREACHABLE,
	    ST_SKIPPED };
	size_t		 i, n = 0, k = 0;

	for (i = 0; i < nitems(order); i++)
		n += (mask >> order[i]) & 1;
	for (i = 0; i < nitems(order); i++) {
		if (!((mask >> order[i]) & 1))
			continue;
		if (k > 0)
			buf_adds(b, k + 1 == n ? " or " : ", ");
		buf_adds(b, order[i] == ST_OK ? "successful" :
		    status_name((enum row_status)order[i]));
		k++;
	}
}

/*
 * After a stage that passes on rows of some statuses only (pick: failed),
 * the next stage that runs on rows must be able to select one of them:
 * else it runs on none, which is never what was meant. Output stages
 * pass the table on and are looked past.
 */
static int
check_keeps(const struct pipeline *p, struct err *e)
{
	const struct stage	*st, *next = NULL;
	struct buf		 runs, kept;
	unsigned		 mask;
	size_t			 i, j;
	int			 r;

	for (i = 0; i < p->nstages; i++) {
		st = &p->stages[i];
		if (st->entry->keeps == NULL)
			continue;
		mask = st->entry->keeps(st);
		for (j = i + 1; j < p->nstages; j++)
			if (!((next = &p->stages[j])->entry->flags &
			    STAGE_OUTPUT))
				break;
		if (j == p->nstages || (next->entry->flags & STAGE_TABLE) ||
		    (when_statuses(next->when) & mask) != 0)
			continue;
		buf_init(&runs);
		buf_init(&kept);
		when_describe(&runs, next->when);
		status_words(&kept, mask);
		r = node_err(e, next->when != NULL ? next->when->where :
		    next->where, "stage '%s' runs on %s rows and '%s' (line %d) "
		    "kept only %s rows; add 'when: %s' to run on the rows it "
		    "kept", stage_name(next), runs.data,
		    stage_name(st), st->where->line, kept.data,
		    (mask & (mask - 1)) == 0 ? kept.data : "any-status");
		buf_free(&runs);
		buf_free(&kept);
		return r;
	}
	return 0;
}

static int
load_file(const char *path, struct overrides *ov, const struct scope *parent,
    const struct node *incparams, int inherited, const struct chain *up,
    const struct node *from, struct pipeline **out, struct err *e)
{
	struct pipeline		*p;
	struct node		*root, *v, *stages;
	struct chain		 link;
	const struct chain	*c;
	struct buf		 msg;
	char			*real;
	size_t			 i;
	int			 r = -1;

	*out = NULL;
	if ((real = realpath(path, NULL)) == NULL) {
		if (from != NULL)
			return node_err(e, from, "unable to open '%s': %s",
			    path, strerror(errno));
		return err_set(e, "unable to open '%s': %s", path,
		    strerror(errno));
	}
	for (c = up; c != NULL; c = c->up) {
		if (strcmp(c->real, real) != 0)
			continue;
		buf_init(&msg);
		cycle_chain(&msg, up, real);
		buf_printf(&msg, " -> %s", path);
		node_err(e, from, "include cycle: %s", msg.data);
		buf_free(&msg);
		free(real);
		return -1;
	}
	link.real = real;
	link.shown = path;
	link.up = up;

	p = xcalloc(1, sizeof *p);
	p->ov = ov;
	if (doc_load(path, &p->doc, e) != 0) {
		/* An include that cannot be read: at the line that names it. */
		if (from != NULL && !e->located) {
			char	*why = xstrdup(e->msg);

			node_err(e, from, "%s", why);
			free(why);
		}
		free(real);
		free(p);
		return -1;
	}
	p->file = p->doc->file;
	if ((root = p->doc->root) == NULL || node_is_null(root)) {
		err_at(e, path, 1, 1, "empty pipeline: expected a mapping with "
		    "'stages'");
		goto out;
	}
	if (root->type != NODE_MAP) {
		node_err(e, root, "a pipeline must be a mapping with 'stages', "
		    "not a %s", node_type_name(root));
		goto out;
	}
	if (node_check_keys(root, top_keys, "a pipeline", e) != 0)
		goto out;
	if ((v = node_get(root, "pipeline")) != NULL) {
		if (v->type != NODE_SCALAR) {
			node_err(e, v, "'pipeline' (its name) must be a "
			    "string, not a %s", node_type_name(v));
			goto out;
		}
		p->name = v->str;
	}
	if ((v = node_get(root, "description")) != NULL) {
		if (v->type != NODE_SCALAR) {
			node_err(e, v, "'description' must be a string, not "
			    "a %s", node_type_name(v));
			goto out;
		}
		p->description = v->str;
	}
	if (load_params(p, root, parent, incparams, ov, e) != 0 ||
	    load_selector(p, root, inherited, e) != 0 ||
	    load_serial(p, root, e) != 0)
		goto out;
	if ((stages = node_get(root, "stages")) == NULL) {
		node_err(e, root, "a pipeline needs 'stages'");
		goto out;
	}
	if (stages->type != NODE_SEQ) {
		node_err(e, stages, "'stages' must be a list of stages, not "
		    "%s%s%s", node_is_null(stages) ? "nothing" :
		    stages->type == NODE_MAP ? "a mapping" : "'",
		    stages->type == NODE_SCALAR && !node_is_null(stages) ?
		    stages->str : "", stages->type == NODE_SCALAR &&
		    !node_is_null(stages) ? "'" : "");
		goto out;
	}
	if (stages->nkids == 0) {
		node_err(e, stages, "'stages' is empty; a pipeline needs at "
		    "least one stage");
		goto out;
	}
	p->stages = xcalloc(stages->nkids, sizeof *p->stages);
	for (i = 0; i < stages->nkids; i++) {
		p->nstages = i + 1;
		if (load_stage(p, &p->stages[i], stages->kids[i], ov, &link,
		    e) != 0)
			goto out;
	}
	if (check_keeps(p, e) != 0)
		goto out;
	r = 0;
out:
	free(real);
	if (r != 0) {
		pipeline_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

int
pipeline_load(const char *path, struct overrides *ov, struct pipeline **out,
    struct err *e)
{
	struct columns	cols;
	int		r;

	if (load_file(path, ov, NULL, NULL, -1, NULL, NULL, out, e) != 0)
		return -1;
	columns_fixed(&cols, (*out)->kind);
	r = pipeline_check_rows(*out, &cols, e);
	columns_free(&cols);
	if (r != 0) {
		pipeline_free(*out);
		*out = NULL;
	}
	return r;
}

/* The columns every row has: what the runner fills, and a system's. */
static const char *const fixed_columns[] = { "target", "kind", "group",
    "status", "code", "stdout", "stderr", "duration_ms", NULL };

void
columns_fixed(struct columns *c, int kind)
{
	const char *const	*n;

	memset(c, 0, sizeof *c);
	for (n = fixed_columns; *n != NULL; n++)
		columns_add(c, *n);
	if (kind == SEL_SYSTEMS)
		for (n = virt_columns; *n != NULL; n++)
			columns_add(c, *n);
}

int
columns_has(const struct columns *c, const char *name)
{
	size_t	i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->names[i], name) == 0)
			return 1;
	return 0;
}

/* name must live as long as c (a stage table's, or a loaded file's). */
void
columns_add(struct columns *c, const char *name)
{
	if (columns_has(c, name))
		return;
	c->names = xgrow(c->names, c->n, sizeof *c->names);
	c->names[c->n++] = name;
}

void
columns_copy(struct columns *to, const struct columns *from)
{
	size_t	i;

	memset(to, 0, sizeof *to);
	for (i = 0; i < from->n; i++)
		columns_add(to, from->names[i]);
}

void
columns_free(struct columns *c)
{
	free(c->names);
	memset(c, 0, sizeof *c);
}

static void
add_column(void *arg, const char *name)
{
	columns_add(arg, name);
}

struct later {
	const char	*want;
	int		 found;
};

static void
find_column(void *arg, const char *name)
{
	struct later	*l = arg;

	if (strcmp(l->want, name) == 0)
		l->found = 1;
}

/*
 * The error for a column that cannot exist at stage at of p: what names
 * the place ("'${row.x}'", "'when'"); a later stage that adds it, else
 * the nearest name, else all the names, says what to do.
 */
static int
unknown_column(const struct pipeline *p, size_t at, const char *name,
    const char *what, int rowform, const char *file, int line, int col,
    const struct columns *c, struct err *e)
{
	const struct stage	*st;
	struct later		 l;
	struct buf		 all;
	const char		*near;
	size_t			 i;
	int			 r;

	l.want = name;
	for (i = at + 1; i < p->nstages; i++) {
		st = &p->stages[i];
		l.found = 0;
		stage_columns(st, find_column, &l);
		if (l.found)
			return err_at(e, file, line, col, "column '%s' of %s "
			    "does not exist yet: stage '%s' at line %d adds it, "
			    "after this one", name, what, stage_name(st),
			    st->where->line);
	}
	if ((near = closest_name(name, c->names, c->n)) != NULL)
		return err_at(e, file, line, col, "unknown column '%s' in "
		    "%s; did you mean '%s%s%s'?", name, what, rowform ?
		    "${row." : "", near, rowform ? "}" : "");
	buf_init(&all);
	for (i = 0; i < c->n; i++)
		buf_printf(&all, "%s%s", i ? ", " : "", c->names[i]);
	r = err_at(e, file, line, col, "unknown column '%s' in %s; the "
	    "columns here are %s", name, what, all.data);
	buf_free(&all);
	return r;
}

static int
unknown_row_value(const struct pipeline *p, size_t at,
    const struct rowref *ref, const struct columns *c, struct err *e)
{
	char	*what;
	int	 r;

	what = xasprintf("'${row.%s}'", ref->column);
	r = unknown_column(p, at, ref->column, what, 1, ref->file, ref->line,
	    ref->col, c, e);
	free(what);
	return r;
}

/* when_columns' callback: the first column of a 'when' that is not there. */
struct when_check {
	const struct columns	*c;
	const char		*name;
	const struct node	*where;
};

static void
check_when_column(void *arg, const char *name, const struct node *where)
{
	struct when_check	*wc = arg;

	if (wc->name == NULL && !columns_has(wc->c, name)) {
		wc->name = name;
		wc->where = where;
	}
}

static int
check_when(const struct pipeline *p, size_t at, const struct when *w,
    const struct columns *c, struct err *e)
{
	struct when_check	 wc = { c, NULL, NULL };
	const struct node	*n;

	when_columns(w, check_when_column, &wc);
	if (wc.name == NULL)
		return 0;
	/* At the column's own value, when the selector has one. */
	n = wc.where;
	if (n != NULL && n->type == NODE_MAP && node_get(n, "column") != NULL)
		n = node_get(n, "column");
	return unknown_column(p, at, wc.name, "'when'", 0, n->file, n->line,
	    n->col, c, e);
}

/*
 * Every ${row.COLUMN} names a column that can exist when its stage runs:
 * one of c, which holds the columns at the pipeline's start, or one an
 * earlier stage adds. A stage's sub-pipelines (an include, each branch)
 * start with the columns at that stage, and after it come all that any
 * of them adds. On return c holds the columns at the pipeline's end.
 */
int
pipeline_check_rows(const struct pipeline *p, struct columns *c,
    struct err *e)
{
	const struct stage	*st;
	struct columns		 in, added;
	size_t			 i, j, k;
	int			 r = 0;

	for (i = 0; i < p->nstages; i++) {
		st = &p->stages[i];
		if (check_when(p, i, st->when, c, e) != 0)
			return -1;
		for (j = 0; j < st->nrowrefs; j++)
			if (!columns_has(c, st->rowrefs[j].column))
				return unknown_row_value(p, i, &st->rowrefs[j],
				    c, e);
		memset(&added, 0, sizeof added);
		for (j = 0; j < st->nsubs && r == 0; j++) {
			if ((r = check_when(p, i, st->subs[j].when, c, e)) != 0)
				break;
			columns_copy(&in, c);
			r = pipeline_check_rows(st->subs[j].p, &in, e);
			for (k = 0; k < in.n; k++)
				columns_add(&added, in.names[k]);
			columns_free(&in);
		}
		for (k = 0; k < added.n; k++)
			columns_add(c, added.names[k]);
		columns_free(&added);
		if (r != 0)
			return -1;
		stage_columns(st, add_column, c);
	}
	return 0;
}

/*
 * A stage's load hook loads a list of stages written in its arguments (a
 * branch's) as a pipeline of its own, which shares the parent's file and
 * doc, its params, kind and include chain.
 */
int
pipeline_load_inline(struct pipeline *parent, const struct node *stages,
    struct load_ctx *ctx, struct pipeline **out, struct err *e)
{
	struct pipeline	*p;
	size_t		 i;

	*out = NULL;
	if (stages->type != NODE_SEQ || stages->nkids == 0)
		return node_err(e, stages, "'stages' must be a list of one or "
		    "more stages, not %s", node_is_null(stages) ? "nothing" :
		    stages->type == NODE_SEQ ? "an empty list" :
		    node_type_name(stages));
	p = xcalloc(1, sizeof *p);
	p->parent = parent;
	p->doc = parent->doc;
	p->file = parent->file;
	p->kind = parent->kind;
	p->ov = parent->ov;
	p->params = xcalloc(parent->nparams + 1, sizeof *p->params);
	if (parent->nparams > 0)
		memcpy(p->params, parent->params, parent->nparams *
		    sizeof *p->params);
	p->nparams = parent->nparams;
	p->stages = xcalloc(stages->nkids, sizeof *p->stages);
	for (i = 0; i < stages->nkids; i++) {
		p->nstages = i + 1;
		if (load_stage(p, &p->stages[i], stages->kids[i], ctx->ov,
		    ctx->chain, e) != 0) {
			pipeline_free(p);
			return -1;
		}
	}
	if (check_keeps(p, e) != 0) {
		pipeline_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

void
pipeline_free(struct pipeline *p)
{
	size_t	i, j;

	if (p == NULL)
		return;
	for (i = 0; i < p->nstages; i++) {
		if (p->stages[i].entry != NULL &&
		    p->stages[i].entry->cleanup != NULL)
			p->stages[i].entry->cleanup(&p->stages[i]);
		for (j = 0; j < p->stages[i].nsubs; j++) {
			pipeline_free(p->stages[i].subs[j].p);
			when_free(p->stages[i].subs[j].when);
		}
		free(p->stages[i].subs);
		when_free(p->stages[i].when);
		free(p->stages[i].rowrefs);
	}
	free(p->stages);
	free(p->params);
	selector_free(&p->sel);
	if (p->parent == NULL)
		doc_free(p->doc);
	free(p);
}

/*
 * The batch sizes for nrows rows, as Ansible splits them: each of
 * 'serial' in turn, the last repeating; N% is of all the rows, rounded
 * down as Ansible computes it (in floating point), and at least 1.
 * Without 'serial', one batch of them all. *sizes is the caller's to free.
 */
size_t
pipeline_batches(const struct pipeline *p, size_t nrows, size_t **sizes)
{
	const struct batch_spec	*b;
	size_t			*s = NULL, n = 0, left = nrows, size, k = 0;

	while (left > 0) {
		if (p->nserial == 0)
			size = left;
		else {
			b = &p->serial[k];
			if (!b->percent)
				size = (size_t)b->n;
			else if ((size = (size_t)((double)b->n / 100.0 *
			    (double)nrows)) == 0)
				size = 1;
			if (k + 1 < p->nserial)
				k++;
		}
		if (size > left)
			size = left;
		s = xgrow(s, n, sizeof *s);
		s[n++] = size;
		left -= size;
	}
	*sizes = s;
	return n;
}

/*
 * How many of nrows rows may fail or be unreachable before no further
 * batch starts: max-fail N, or N% of them rounded down (more than N% of
 * the rows is more than that many).
 */
size_t
pipeline_max_fail(const struct pipeline *p, size_t nrows)
{
	if (!p->max_fail.percent)
		return (size_t)p->max_fail.n;
	return (size_t)((unsigned long long)p->max_fail.n * nrows / 100);
}

int
pipeline_destructive(const struct pipeline *p)
{
	size_t	i, j;

	for (i = 0; i < p->nstages; i++) {
		if (p->stages[i].entry->flags & STAGE_DESTRUCTIVE)
			return 1;
		for (j = 0; j < p->stages[i].nsubs; j++)
			if (pipeline_destructive(p->stages[i].subs[j].p))
				return 1;
	}
	return 0;
}
