/*
 * pipeline-include.c: the file an include names (beside the including
 * file, then REOPS_PATH and the library, see search.c), and the chain of
 * including files that catches cycles.
 */
#include <stdlib.h>
#include <string.h>

#include "pipeline-int.h"
#include "search.h"


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
	r = pipeline_load_file(path, ctx->ov, &sc, params, p->kind,
	    ctx->chain, file, &stage_add_sub(st, NULL)->p, e);
	free(path);
	return r;
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

/*
 * An error when real, the file about to be loaded from from as path, is
 * one of those including it (up): -1 then, else 0.
 */
int
pipeline_include_cycle(const struct chain *up, const char *real,
    const char *path, const struct node *from, struct err *e)
{
	const struct chain	*c;
	struct buf		 msg;

	for (c = up; c != NULL; c = c->up) {
		if (strcmp(c->real, real) != 0)
			continue;
		buf_init(&msg);
		cycle_chain(&msg, up, real);
		buf_printf(&msg, " -> %s", path);
		node_err(e, from, "include cycle: %s", msg.data);
		buf_free(&msg);
		return -1;
	}
	return 0;
}
