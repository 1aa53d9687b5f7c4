/*
 * plan.c: what --check and --graph print. Both walk the loaded pipelines
 * and their sub-pipelines (includes, branches) through struct stage_sub,
 * without knowing which stage made them, and run nothing.
 *
 * --check draws a tree in plain ASCII ("+-", "`-", "|"): it goes through
 * pipes, logs, mail and any locale unchanged, and grep finds its lines.
 * The stage numbers keep the left column, so "^  2.1 " still finds a
 * stage; the tree is drawn where the stage's text starts.
 *
 * --graph writes Graphviz DOT. Every string from a file (names, arguments,
 * paths, regexes) is masked for secrets and then quoted and escaped, so no
 * pipeline can end a string or add a statement to the graph; node names
 * are made here from stage numbers alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "secret.h"
#include "when.h"

/* A stage's text in the graph: longer arguments are cut to this. */
#define GRAPH_ARGS_MAX	60

static void	plan_stages(FILE *, const struct pipeline *, const char *,
		    const char *, int);

/* A sub-pipeline of an include: one, without a name. */
static int
is_include(const struct stage *st)
{
	return st->nsubs == 1 && st->subs[0].name == NULL;
}

/* Branches, not an include: their arguments are drawn as the branches. */
static int
is_branches(const struct stage *st)
{
	return st->nsubs > 0 && !is_include(st);
}

/* Some rows pass a branch stage by: none of its branches selects every row. */
static int
rows_pass_by(const struct stage *st)
{
	size_t	j;

	for (j = 0; j < st->nsubs; j++)
		if (st->subs[j].when != NULL &&
		    st->subs[j].when->kind == WHEN_ANY_STATUS)
			return 0;
	return 1;
}

/* stage_describe, but a branch stage's arguments are its branches below. */
static void
describe(struct buf *b, const struct stage *st)
{
	if (!is_branches(st)) {
		stage_describe(b, st);
		return;
	}
	if (st->name != NULL)
		buf_printf(b, "%s: ", st->name);
	buf_adds(b, st->entry->name);
}

/* The number of sub-pipeline j of st: "2." (include) or "2.3." (branch). */
static char *
sub_number(const struct stage *st, const char *num, size_t j)
{
	if (is_include(st))
		return xasprintf("%s.", num);
	return xasprintf("%s.%zu.", num, j + 1);
}

/* The widest stage number, so that the stage texts line up. */
static int
number_width(const struct pipeline *p, const char *prefix)
{
	char	*num, *sub;
	size_t	 i, j;
	int	 w = 0, k;

	for (i = 0; i < p->nstages; i++) {
		num = xasprintf("%s%zu", prefix, i + 1);
		if ((k = (int)strlen(num)) > w)
			w = k;
		for (j = 0; j < p->stages[i].nsubs; j++) {
			sub = sub_number(&p->stages[i], num, j);
			if ((k = number_width(p->stages[i].subs[j].p, sub)) > w)
				w = k;
			free(sub);
		}
		free(num);
	}
	return w;
}

static void
plan_subs(FILE *f, const struct stage *st, const char *num,
    const char *tree, int w)
{
	struct buf	 b;
	char		*sub, *kids;
	size_t		 j;
	int		 last;

	for (j = 0; j < st->nsubs; j++) {
		sub = sub_number(st, num, j);
		buf_init(&b);
		if (is_include(st)) {
			fprintf(f, "  %-*s %s`- include %s\n", w, "", tree,
			    st->subs[j].p->file);
			kids = xasprintf("%s   ", tree);
		} else {
			/* The last line closes the branches' tree. */
			last = j + 1 == st->nsubs && !rows_pass_by(st);
			when_describe(&b, st->subs[j].when);
			fprintf(f, "  %-*s %s%s %s  when: %s\n", w, "", tree,
			    last ? "`-" : "+-",
			    st->subs[j].name != NULL ? st->subs[j].name : "",
			    b.data != NULL ? b.data : "");
			kids = xasprintf("%s%s", tree, last ? "   " : "|  ");
		}
		plan_stages(f, st->subs[j].p, sub, kids, w);
		free(kids);
		buf_free(&b);
		free(sub);
	}
	if (is_branches(st) && rows_pass_by(st))
		fprintf(f, "  %-*s %s`- rows no branch selects pass through\n",
		    w, "", tree);
}

static void
plan_stages(FILE *f, const struct pipeline *p, const char *prefix,
    const char *tree, int w)
{
	const struct stage	*st;
	struct buf		 b;
	char			*num;
	size_t			 i;

	for (i = 0; i < p->nstages; i++) {
		st = &p->stages[i];
		buf_init(&b);
		describe(&b, st);
		num = xasprintf("%s%zu", prefix, i + 1);
		fprintf(f, "  %-*s %s%s  (%s:%d:%d)\n", w, num, tree, b.data,
		    p->file, st->where->line, st->where->col);
		if (st->when != NULL) {
			buf_reset(&b);
			when_describe(&b, st->when);
			fprintf(f, "  %-*s %s  when: %s\n", w, "", tree,
			    b.data);
		}
		if (st->serial > 0)
			fprintf(f, "  %-*s %s  serial: %d row%s at a time\n",
			    w, "", tree, st->serial, st->serial == 1 ? "" : "s");
		if (st->entry->flags & STAGE_DESTRUCTIVE)
			fprintf(f, "  %-*s %s  destructive: would %s (asks "
			    "first; --yes when not on a terminal)\n", w, "",
			    tree, st->entry->summary);
		plan_subs(f, st, num, tree, w);
		free(num);
		buf_free(&b);
	}
}

/* A pipeline's serial: and max-fail: as written, e.g. "1, 2, 50%". */
static void
serial_text(struct buf *b, const struct pipeline *p)
{
	size_t	k;

	for (k = 0; k < p->nserial; k++)
		buf_printf(b, "%s%d%s", k > 0 ? ", " : "", p->serial[k].n,
		    p->serial[k].percent ? "%" : "");
}

/*
 * Rolling batches (a top-level serial:), after the targets: the batch
 * sizes for these n rows, a run of equal sizes as "2 x3", and how many
 * rows may fail before no further batch starts:
 *	batches: 1, 2 x3 (4 batches; serial: 1, 2); max-fail: 0 of 7 rows
 */
static void
plan_batches(FILE *f, const struct pipeline *p, size_t n)
{
	struct buf	 b;
	size_t		*sizes, nb, k, same;

	if (p->serial == NULL)
		return;
	nb = pipeline_batches(p, n, &sizes);
	buf_init(&b);
	for (k = 0; k < nb; k += same) {
		for (same = 1; k + same < nb && sizes[k + same] == sizes[k];
		    same++)
			;
		buf_printf(&b, "%s%zu", k > 0 ? ", " : "", sizes[k]);
		if (same > 1)
			buf_printf(&b, " x%zu", same);
	}
	fprintf(f, "batches: %s (%zu batch%s; serial: ", nb > 0 ? b.data :
	    "none", nb, nb == 1 ? "" : "es");
	buf_reset(&b);
	serial_text(&b, p);
	fprintf(f, "%s); max-fail: %zu of %zu rows\n", b.data,
	    pipeline_max_fail(p, n), n);
	buf_free(&b);
	free(sizes);
}

/* What --check prints: the targets, then the stages that would run. */
static void
plan_write(FILE *f, const struct pipeline *p, const struct target *t,
    size_t n, int systems)
{
	size_t	i;
	int	w;

	fprintf(f, "pipeline %s (%s)\n", p->name != NULL ? p->name : p->file,
	    p->file);
	if (p->description != NULL)
		fprintf(f, "  %s\n", p->description);
	fprintf(f, "targets: %zu %s\n", n, systems ? "systems" : "hosts");
	for (i = 0; i < n; i++) {
		if (systems)
			fprintf(f, "  %s  type=%s uri=%s\n", t[i].system->name,
			    t[i].system->type->name,
			    t[i].system->hypervisor.uri);
		else
			fprintf(f, "  %s  group=%s transport=%s\n",
			    t[i].host->name, t[i].host->group->name,
			    transport_name(t[i].host->group->transport));
	}
	plan_batches(f, p, n);
	fprintf(f, "stages:\n");
	if ((w = number_width(p, "")) < 6)
		w = 6;
	plan_stages(f, p, "", "", w);
}

/*
 * Written whole to a memory stream first, then masked: a secret never
 * reaches f. Without memory for it, no plan at all (as xmalloc).
 */
static void
write_masked(FILE *f, void (*fn)(FILE *, const void *), const void *arg)
{
	struct buf	 b;
	FILE		*mem;
	char		*data = NULL;
	size_t		 len = 0;

	if ((mem = open_memstream(&data, &len)) == NULL) {
		fputs("reops-run: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	fn(mem, arg);
	if (fclose(mem) != 0) {
		fputs("reops-run: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	buf_init(&b);
	buf_add(&b, data, len);
	free(data);
	secret_mask_buf(&b);
	fwrite(b.data, 1, b.len, f);
	buf_free(&b);
}

struct plan_args {
	const struct pipeline	*p;
	const struct target	*t;
	size_t			 n;
	int			 systems;
};

static void
plan_fn(FILE *f, const void *arg)
{
	const struct plan_args	*a = arg;

	plan_write(f, a->p, a->t, a->n, a->systems);
}

void
print_plan(FILE *f, const struct pipeline *p, const struct target *t,
    size_t n, int systems)
{
	struct plan_args	a;

	a.p = p;
	a.t = t;
	a.n = n;
	a.systems = systems;
	write_masked(f, plan_fn, &a);
}

/*
 * --graph. A quoted DOT string of s: '"' and '\' escaped, '&' as "&amp;"
 * (dot decodes entities), a newline a line break, other control bytes
 * shown as \xNN, never raw. The text is
 * masked for secrets before it is escaped, so that a secret with a quote
 * in it is still found.
 */
static void
dot_str(FILE *f, const char *s)
{
	struct buf	 b;
	const unsigned char *c;

	buf_init(&b);
	buf_adds(&b, s);
	secret_mask_buf(&b);
	fputc('"', f);
	for (c = (const unsigned char *)b.data; c != NULL && *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else if (*c == '&')	/* dot reads "&amp;" as "&" */
			fputs("&amp;", f);
		else if (*c == '\n')
			fputs("\\n", f);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(f, "\\\\x%02x", *c);
		else
			fputc(*c, f);
	}
	fputc('"', f);
	buf_free(&b);
}

/* At most max bytes of s, cut before a UTF-8 sequence, then "...". */
static void
cut(struct buf *b, size_t max)
{
	size_t	n = max;

	if (b->len <= max)
		return;
	while (n > 0 && ((unsigned char)b->data[n] & 0xc0) == 0x80)
		n--;
	b->len = n;
	b->data[n] = '\0';
	buf_adds(b, "...");
}

/*
 * The graph's state: the node the rows come from, and the label for the
 * edge out of it (a branch's when on its first edge).
 */
struct gstate {
	FILE	*f;
	FILE	*edges;		/* a memory stream, written out last */
	char	*prev;
	char	*label;
	char	*indent;
};

/*
 * Edges are kept apart and written after every node and cluster: an edge
 * inside a cluster's braces would pull both its ends into the cluster.
 */
static void
graph_edge(struct gstate *g, const char *to, const char *style)
{
	FILE	*f = g->edges;

	fprintf(f, "\t%s -> %s", g->prev, to);
	if (g->label != NULL || style != NULL) {
		fputs(" [", f);
		if (g->label != NULL) {
			fputs("label=", f);
			dot_str(f, g->label);
		}
		if (style != NULL)
			fprintf(f, "%sstyle=%s", g->label != NULL ? ", " : "",
			    style);
		fputc(']', f);
	}
	fputs(";\n", f);
	free(g->label);
	g->label = NULL;
}

static void
graph_node(struct gstate *g, const char *id, const char *num,
    const struct stage *st)
{
	struct stage	 bare;
	struct buf	 b, t;
	size_t		 klen = strlen(st->entry->name);

	buf_init(&b);
	buf_init(&t);
	buf_printf(&b, "%s  %s", num, st->entry->name);
	if (st->name != NULL) {
		buf_addc(&b, '\n');
		buf_adds(&b, st->name);
	}
	/* stage_describe without the name is "KEY ARGS...": the args. */
	bare = *st;
	bare.name = NULL;
	describe(&t, &bare);
	if (t.len > klen + 1) {
		buf_reset(&b);
		buf_add(&b, t.data + klen + 1, t.len - klen - 1);
		cut(&b, GRAPH_ARGS_MAX);
		buf_reset(&t);
		buf_printf(&t, "%s  %s", num, st->entry->name);
		if (st->name != NULL)
			buf_printf(&t, "\n%s", st->name);
		buf_printf(&t, "\n%s", b.data);
		buf_move(&b, &t);
	}
	if (st->when != NULL) {
		buf_adds(&b, "\nwhen: ");
		when_describe(&b, st->when);
	}
	if (st->serial > 0)
		buf_printf(&b, "\nserial: %d", st->serial);
	fprintf(g->f, "%s%s [label=", g->indent, id);
	dot_str(g->f, b.data);
	if (st->entry->flags & STAGE_DESTRUCTIVE)
		fputs(", color=red", g->f);
	fputs("];\n", g->f);
	buf_free(&t);
	buf_free(&b);
}

static void	graph_stages(struct gstate *, const struct pipeline *,
		    const char *, const char *);

static void
graph_cluster(struct gstate *g, const char *id, const char *label,
    const struct pipeline *p, const char *idprefix, const char *numprefix)
{
	char	*saved = g->indent, *none;

	fprintf(g->f, "%ssubgraph cluster_%s {\n", g->indent, id);
	g->indent = xasprintf("%s\t", saved);
	fprintf(g->f, "%slabel=", g->indent);
	dot_str(g->f, label);
	fputs(";\n", g->f);
	/* dot draws no empty cluster: a node says there is nothing. */
	if (p->nstages == 0) {
		none = xasprintf("%s_none", idprefix);
		fprintf(g->f, "%s%s [label=\"no stages\", shape=plaintext];"
		    "\n", g->indent, none);
		graph_edge(g, none, NULL);
		free(g->prev);
		g->prev = none;
	}
	graph_stages(g, p, idprefix, numprefix);
	free(g->indent);
	g->indent = saved;
	fprintf(g->f, "%s}\n", g->indent);
}

static void
graph_stages(struct gstate *g, const struct pipeline *p,
    const char *idprefix, const char *numprefix)
{
	const struct stage	*st;
	struct buf		 b;
	char			*id, *num, *merge, *sid, *snum, *cl, *lab;
	size_t			 i, j;

	for (i = 0; i < p->nstages; i++) {
		st = &p->stages[i];
		id = xasprintf("%s_%zu", idprefix, i + 1);
		num = xasprintf("%s%zu", numprefix, i + 1);
		graph_node(g, id, num, st);
		graph_edge(g, id, NULL);
		free(g->prev);
		g->prev = xstrdup(id);
		if (is_include(st)) {
			sid = xasprintf("%s_1", id);
			snum = xasprintf("%s.", num);
			lab = xasprintf("include %s", st->subs[0].p->file);
			graph_cluster(g, sid, lab, st->subs[0].p, sid, snum);
			free(lab);
			free(snum);
			free(sid);
		} else if (st->nsubs > 0) {
			/* Declared here, not first inside a cluster. */
			merge = xasprintf("%s_merge", id);
			fprintf(g->f, "%s%s [label=\"merge\", shape=circle, "
			    "fontsize=9];\n", g->indent, merge);
			for (j = 0; j < st->nsubs; j++) {
				sid = xasprintf("%s_%zu", id, j + 1);
				snum = xasprintf("%s.%zu.", num, j + 1);
				/* The name on the cluster, the when on its edge. */
				buf_init(&b);
				when_describe(&b, st->subs[j].when);
				cl = xstrdup(st->subs[j].name != NULL ?
				    st->subs[j].name : "");
				free(g->prev);
				g->prev = xstrdup(id);
				g->label = buf_steal(&b);
				graph_cluster(g, sid, cl, st->subs[j].p, sid,
				    snum);
				/* A branch without stages: straight through. */
				graph_edge(g, merge, NULL);
				free(cl);
				free(snum);
				free(sid);
			}
			free(g->prev);
			g->prev = xstrdup(id);
			if (rows_pass_by(st)) {
				g->label = xstrdup("rows no branch selects");
				graph_edge(g, merge, "dashed");
			}
			free(g->prev);
			g->prev = merge;
		}
		free(num);
		free(id);
	}
}

/* The start node's text: what the pipeline selects, and its file. */
static char *
start_label(const struct pipeline *p)
{
	struct buf	b;
	size_t		i;

	buf_init(&b);
	buf_printf(&b, "%s\n", p->name != NULL ? p->name : p->file);
	buf_adds(&b, p->kind == SEL_SYSTEMS ? "systems: " : "hosts: ");
	if (!p->has_selector)
		buf_adds(&b, "(none)");
	for (i = 0; i < p->sel.n; i++)
		buf_printf(&b, "%s%s", i > 0 ? ", " : "", p->sel.items[i].text);
	if (p->serial != NULL) {
		buf_adds(&b, "\nserial: ");
		serial_text(&b, p);
		buf_printf(&b, "; max-fail: %d%s", p->max_fail.n,
		    p->max_fail.percent ? "%" : "");
	}
	return buf_steal(&b);
}

struct graph_args {
	struct pipeline *const	*pl;
	size_t			 n;
};

static void
graph_fn(FILE *f, const void *arg)
{
	const struct graph_args	*a = arg;
	struct gstate		 g;
	char			*id, *lab, *edges = NULL;
	size_t			 i, elen = 0;

	fputs("digraph reops {\n"
	    "\tgraph [rankdir=TB, fontname=\"Helvetica\", fontsize=10];\n"
	    "\tnode [shape=box, style=rounded, fontname=\"Helvetica\", "
	    "fontsize=10];\n"
	    "\tedge [fontname=\"Helvetica\", fontsize=9];\n", f);
	memset(&g, 0, sizeof g);
	g.f = f;
	g.indent = xstrdup("\t");
	if ((g.edges = open_memstream(&edges, &elen)) == NULL) {
		fputs("reops-run: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	for (i = 0; i < a->n; i++) {
		id = xasprintf("p%zu", i + 1);
		lab = start_label(a->pl[i]);
		fprintf(f, "\t%s_start [shape=oval, label=", id);
		dot_str(f, lab);
		fputs("];\n", f);
		free(lab);
		/* One pipeline after another, each on its own targets. */
		lab = xasprintf("%s_start", id);
		if (g.prev != NULL) {
			g.label = xstrdup("then");
			graph_edge(&g, lab, "dotted");
		}
		free(g.prev);
		g.prev = lab;
		graph_stages(&g, a->pl[i], id, "");
		fprintf(f, "\t%s_end [shape=oval, label=\"end\"];\n", id);
		lab = xasprintf("%s_end", id);
		graph_edge(&g, lab, NULL);
		free(g.prev);
		g.prev = lab;
		free(id);
	}
	if (fclose(g.edges) != 0) {
		fputs("reops-run: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	fwrite(edges, 1, elen, f);
	fputs("}\n", f);
	free(edges);
	free(g.prev);
	free(g.indent);
}

void
print_graph(FILE *f, struct pipeline *const *pl, size_t n)
{
	struct graph_args	a;

	/*
	 * Not write_masked: a secret such as "shape" must not mask the
	 * graph's own words. dot_str masks every string from a file.
	 */
	a.pl = pl;
	a.n = n;
	graph_fn(f, &a);
}
