/*
 * pipeline-params.c: a pipeline's params (defaults, the environment, an
 * include's params:, --set), and ${name} expanded in the arguments at
 * load; ${target}, ${group} and ${row.COLUMN} are noted and left for each
 * row.
 */
#include <stdlib.h>
#include <string.h>

#include "pipeline-int.h"
#include "secret.h"

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

int
pipeline_expand_tree(struct pipeline *p, struct node *n, struct err *e)
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
		if (pipeline_expand_tree(p, n->kids[i], e) != 0)
			return -1;
	}
	return 0;
}

/*
 * pipeline_expand_tree on a stage's arguments, each key by itself, where
 * the shell command under the entry's secret_key (exec's command) may
 * use secrets: it then reads their values from stdin first
 * (SECRET_PREAMBLE), inside any sudo.
 */
int
pipeline_expand_args(struct pipeline *p, const struct stage_entry *ent,
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
		r = pipeline_expand_tree(p, map_val(v, i), e);
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

int
pipeline_load_params(struct pipeline *p, const struct node *root,
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
