/*
 * pipeline.c: loading a pipeline file. Everything is checked here and in
 * the pipeline-*.c beside it, before anything runs: the YAML, the stage
 * names and their keys and types, ${param} references, regexes, includes
 * and their cycles. The first problem becomes one FILE:LINE:COLUMN error.
 * This file walks a file's top keys, its selector and its stages, loads
 * inline pipelines (a branch's) and frees what was loaded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline-int.h"
#include "when.h"

static const char *const top_keys[] = { "pipeline", "description", "hosts",
    "systems", "params", "serial", "max-fail", "stages", NULL };

const char *
pipeline_kind_word(int kind)
{
	return kind == SEL_SYSTEMS ? "systems" : "hosts";
}

/* The key of whichever of a and b comes later in the mapping. */
const struct node *
pipeline_second_key(const struct node *m, const char *a, const char *b)
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
		return node_err(e, pipeline_second_key(root, "hosts",
		    "systems"), "a pipeline selects 'hosts' or 'systems', not "
		    "both");
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
		    pipeline_kind_word(p->kind), pipeline_kind_word(inherited));
	if (pipeline_expand_tree(p, hosts != NULL ? hosts : systems, e) != 0)
		return -1;
	p->has_selector = 1;
	return selector_parse(hosts != NULL ? hosts : systems, p->kind,
	    &p->sel, e);
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

int
pipeline_load_file(const char *path, struct overrides *ov,
    const struct scope *parent, const struct node *incparams, int inherited,
    const struct chain *up, const struct node *from, struct pipeline **out,
    struct err *e)
{
	struct pipeline		*p;
	struct node		*root, *v, *stages;
	struct chain		 link;
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
	if (pipeline_include_cycle(up, real, path, from, e) != 0) {
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
	if (pipeline_load_params(p, root, parent, incparams, ov, e) != 0 ||
	    load_selector(p, root, inherited, e) != 0 ||
	    pipeline_load_serial(p, root, e) != 0)
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
		if (pipeline_load_stage(p, &p->stages[i], stages->kids[i], ov,
		    &link, e) != 0)
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

	if (pipeline_load_file(path, ov, NULL, NULL, -1, NULL, NULL, out,
	    e) != 0)
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
		if (pipeline_load_stage(p, &p->stages[i], stages->kids[i],
		    ctx->ov, ctx->chain, e) != 0) {
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
