/*
 * select.c: resolving selectors. A name is a group (for systems: a type)
 * or a host (a system); "all" is everything; "~re" matches target names.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "select.h"

static int
add_item(struct selector *s, const struct node *where, const char *text,
    struct err *e)
{
	struct sel_item	*it;

	s->items = xgrow(s->items, s->n, sizeof *s->items);
	it = &s->items[s->n++];
	memset(it, 0, sizeof *it);
	it->where = where;
	it->text = text;
	if (text[0] != '~')
		return 0;
	if (where != NULL)
		return rx_compile(where, text + 1, 1, &it->re, e);
	return rx_compile_arg("--limit", text + 1, &it->re, e);
}

/* A bounded read: a limit file is a list of names, not a data set. */
#define LIMIT_FILE_MAX	(16 * 1024 * 1024)

static char *
read_limit_file(const char *path, struct err *e)
{
	struct buf	 b;
	char		 chunk[8192];
	size_t		 n;
	FILE		*f;
	int		 bad;

	if ((f = fopen(path, "re")) == NULL) {
		err_set(e, "--limit: unable to read '%s': %s", path,
		    strerror(errno));
		return NULL;
	}
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_add(&b, chunk, n);
		if (b.len > LIMIT_FILE_MAX) {
			fclose(f);
			buf_free(&b);
			err_set(e, "--limit: '%s' is larger than %d MiB; a "
			    "limit file lists names", path,
			    LIMIT_FILE_MAX / (1024 * 1024));
			return NULL;
		}
	}
	bad = ferror(f);
	fclose(f);
	if (bad) {
		buf_free(&b);
		err_set(e, "--limit: unable to read '%s': %s", path,
		    strerror(errno));
		return NULL;
	}
	if (memchr(b.data, '\0', b.len) != NULL) {
		buf_free(&b);
		err_set(e, "--limit: '%s' holds a NUL byte; a limit file "
		    "lists names, one a line", path);
		return NULL;
	}
	return buf_steal(&b);
}

/*
 * @FILE: one item a line (a name, a group, "~regex", or "!" and one of
 * them), blank lines and "#" comments (a line's or its rest) ignored. Items keep their line and
 * column for errors.
 */
static int
add_limit_file(struct selector *s, const char *path, int negate,
    struct err *e)
{
	char	*data, *p, *line, *end, why[sizeof e->msg];
	size_t	 had = s->n;
	int	 lineno = 0, col, neg;

	if ((data = read_limit_file(path, e)) == NULL)
		return -1;
	s->files = xreallocarray(s->files, s->nfiles + 2, sizeof *s->files);
	s->files[s->nfiles++] = xstrdup(path);
	s->files[s->nfiles++] = data;
	path = s->files[s->nfiles - 2];
	for (p = data; (line = strsep(&p, "\n")) != NULL;) {
		lineno++;
		for (col = 1; *line == ' ' || *line == '\t'; line++)
			col++;
		/* "#" after a blank starts a comment: names have no blanks. */
		for (end = line; *end != '\0'; end++)
			if (*end == '#' && end > line && (end[-1] == ' ' ||
			    end[-1] == '\t'))
				break;
		*end = '\0';
		while (end > line && (end[-1] == ' ' || end[-1] == '\t' ||
		    end[-1] == '\r'))
			*--end = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		neg = 0;
		if (*line == '!') {
			if (negate)
				return err_at(e, path, lineno, col, "'%s': "
				    "'!' in a file given as '!@%s'", line,
				    path);
			neg = 1;
			line++;
			col++;
		}
		if (*line == '\0' || *line == '@')
			return err_at(e, path, lineno, col, "'%s' is not a "
			    "name, group or ~regex", line);
		if (add_item(s, NULL, line, e) != 0) {
			s->n--;
			snprintf(why, sizeof why, "%s", e->msg +
			    strlen("--limit: "));
			return err_at(e, path, lineno, col, "%s", why);
		}
		s->items[s->n - 1].negate = negate || neg;
		s->items[s->n - 1].file = path;
		s->items[s->n - 1].line = lineno;
		s->items[s->n - 1].col = col;
	}
	if (s->n == had && !negate)
		return err_set(e, "--limit: '%s' lists no names", path);
	return 0;
}

int
selector_parse(const struct node *n, int systems, struct selector *s,
    struct err *e)
{
	const char	*what = systems ? "systems" : "hosts";
	size_t		 i;

	memset(s, 0, sizeof *s);
	s->systems = systems;
	s->where = n;
	if (n->type == NODE_SCALAR && !node_is_null(n))
		return add_item(s, n, n->str, e);
	if (n->type == NODE_SEQ && n->nkids == 0)
		return node_err(e, n, "'%s' is an empty list; name at least "
		    "one %s", what, systems ? "system or type" :
		    "host or group");
	if (n->type != NODE_SEQ)
		return node_err(e, n, "'%s' must be a name, \"~regex\", all, "
		    "or a list of them, not %s", what, node_is_null(n) ?
		    "nothing" : "a mapping");
	for (i = 0; i < n->nkids; i++) {
		if (n->kids[i]->type != NODE_SCALAR ||
		    node_is_null(n->kids[i]))
			return node_err(e, n->kids[i], "each of '%s' must be a "
			    "name or \"~regex\", not a %s", what,
			    node_type_name(n->kids[i]));
		if (add_item(s, n->kids[i], n->kids[i]->str, e) != 0)
			return -1;
	}
	return 0;
}

/*
 * --limit takes names and ~regexes separated by commas, like Ansible's;
 * "@FILE" reads items from a file, "!ITEM" removes what ITEM selects.
 */
int
selector_parse_limit(const char *text, struct selector *s, struct err *e)
{
	char	*p, *word;
	int	 negate;

	memset(s, 0, sizeof *s);
	s->limit = xstrdup(text);
	for (p = s->limit; (word = strsep(&p, ",")) != NULL;) {
		if ((negate = *word == '!'))
			word++;
		if (*word == '\0') {
			if (negate)
				return err_set(e, "--limit: '!' must be "
				    "followed by a name, group or ~regex");
			continue;
		}
		if (*word == '@') {
			if (word[1] == '\0')
				return err_set(e, "--limit: '@' must be "
				    "followed by a file name");
			if (add_limit_file(s, word + 1, negate, e) != 0)
				return -1;
			continue;
		}
		if (add_item(s, NULL, word, e) != 0)
			return -1;
		s->items[s->n - 1].negate = negate;
	}
	if (s->n == 0)
		return err_set(e, "--limit: empty pattern");
	return 0;
}

void
selector_free(struct selector *s)
{
	size_t	i;

	for (i = 0; i < s->n; i++)
		pcre2_code_free(s->items[i].re);
	free(s->items);
	free(s->limit);
	for (i = 0; i < s->nfiles; i++)
		free(s->files[i]);
	free(s->files);
	memset(s, 0, sizeof *s);
}

struct universe {
	size_t		  n;
	const char	**name;
	const char	**group;
	struct target	 *t;
	struct hmap	  byname;
};

static void
universe_init(struct universe *u, const struct inventory *inv, int systems)
{
	size_t	i;

	memset(u, 0, sizeof *u);
	u->n = systems ? inv->nsystems : inv->nhosts;
	u->name = xcalloc(u->n, sizeof *u->name);
	u->group = xcalloc(u->n, sizeof *u->group);
	u->t = xcalloc(u->n, sizeof *u->t);
	hmap_init(&u->byname);
	for (i = 0; i < u->n; i++) {
		if (systems) {
			u->t[i].system = inv->systems[i];
			u->name[i] = inv->systems[i]->name;
			u->group[i] = inv->systems[i]->type->name;
		} else {
			u->t[i].host = inv->hosts[i];
			u->name[i] = inv->hosts[i]->name;
			u->group[i] = inv->hosts[i]->group->name;
		}
		hmap_put(&u->byname, u->name[i], (void *)(i + 1));
	}
}

static void
universe_free(struct universe *u)
{
	free(u->name);
	free(u->group);
	free(u->t);
	hmap_free(&u->byname);
}

enum item_problem {
	NO_MATCH,
	EMPTY_INVENTORY,
	UNKNOWN_NAME
};

static int
item_error(const struct sel_item *it, int systems, enum item_problem what,
    const char *near, struct err *e)
{
	const char	*kind = systems ? "system" : "host";
	char		 msg[512];
	size_t		 len;

	switch (what) {
	case NO_MATCH:
		snprintf(msg, sizeof msg, "'%s' matches no %s", it->text, kind);
		break;
	case EMPTY_INVENTORY:
		snprintf(msg, sizeof msg, "'%s' selects nothing: the inventory "
		    "has no %s", it->text, kind);
		break;
	case UNKNOWN_NAME:
		snprintf(msg, sizeof msg, "no %s or %s named '%s' in the "
		    "inventory", kind, systems ? "type" : "group", it->text);
		break;
	}
	if (near != NULL) {
		len = strlen(msg);
		snprintf(msg + len, sizeof msg - len, "; did you mean '%s'?",
		    near);
	}
	if (it->where != NULL)
		return node_err(e, it->where, "%s", msg);
	if (it->file != NULL)
		return err_at(e, it->file, it->line, it->col, "%s", msg);
	return err_set(e, "--limit: %s", msg);
}

/* A regex that gave up (PCRE2's match or depth limit) is an error. */
static int
rx_error(const struct sel_item *it, const char *name, const char *why,
    struct err *e)
{
	if (it->where != NULL)
		return node_err(e, it->where, "regex '%s' gave up on '%s': %s "
		    "(it backtracks too much; simplify it)", it->text + 1,
		    name, why);
	return err_set(e, "--limit: regex '%s' gave up on '%s': %s (it "
	    "backtracks too much; simplify it)", it->text + 1, name, why);
}

/* Marks in hit[] the targets that it selects; returns how many. */
static int
match_item(const struct sel_item *it, const struct universe *u, int systems,
    unsigned char *hit, size_t *count, struct err *e)
{
	const char	**names;
	const char	 *near;
	char		  why[128];
	size_t		  i, n = 0, idx;
	int		  r;

	*count = 0;
	if (it->re != NULL) {
		for (i = 0; i < u->n; i++) {
			r = rx_match(it->re, u->name[i], strlen(u->name[i]),
			    why, sizeof why);
			if (r < 0)
				return rx_error(it, u->name[i], why, e);
			if (r > 0) {
				hit[i] = 1;
				n++;
			}
		}
		if (n == 0)
			return item_error(it, systems, NO_MATCH, NULL, e);
	} else if (strcmp(it->text, "all") == 0) {
		for (i = 0; i < u->n; i++)
			hit[i] = 1;
		n = u->n;
		if (n == 0)
			return item_error(it, systems, EMPTY_INVENTORY, NULL,
			    e);
	} else if ((idx = (size_t)hmap_get(&u->byname, it->text)) != 0) {
		hit[idx - 1] = 1;
		n = 1;
	} else {
		for (i = 0; i < u->n; i++)
			if (strcmp(u->group[i], it->text) == 0) {
				hit[i] = 1;
				n++;
			}
		if (n == 0) {
			names = xcalloc(u->n * 2 + 1, sizeof *names);
			for (i = 0; i < u->n; i++) {
				names[2 * i] = u->name[i];
				names[2 * i + 1] = u->group[i];
			}
			near = u->n <= 10000 ?
			    closest_name(it->text, names, 2 * u->n) : NULL;
			free(names);
			return item_error(it, systems, UNKNOWN_NAME, near, e);
		}
	}
	*count = n;
	return 0;
}

int
selector_resolve(const struct selector *s, const struct selector *limit,
    const struct inventory *inv, struct target **out, size_t *nout,
    struct err *e)
{
	struct universe	 u;
	unsigned char	*hit, *sel, *lim = NULL;
	size_t		 i, j, count, n = 0;
	int		 r = -1;

	*out = NULL;
	*nout = 0;
	universe_init(&u, inv, s->systems);
	hit = xcalloc(u.n + 1, 1);
	sel = xcalloc(u.n + 1, 1);
	*out = xcalloc(u.n + 1, sizeof **out);
	if (limit != NULL) {
		/* What the items add, less what the "!" items remove. */
		lim = xcalloc(u.n + 1, 1);
		for (j = 0; j < limit->n && limit->items[j].negate; j++)
			;
		if (j == limit->n)
			memset(lim, 1, u.n);
		for (j = 0; j < limit->n; j++) {
			if (limit->items[j].negate)
				continue;
			if (match_item(&limit->items[j], &u, s->systems, lim,
			    &count, e) != 0)
				goto out;
		}
		for (j = 0; j < limit->n; j++) {
			if (!limit->items[j].negate)
				continue;
			memset(hit, 0, u.n);
			if (match_item(&limit->items[j], &u, s->systems, hit,
			    &count, e) != 0)
				goto out;
			for (i = 0; i < u.n; i++)
				if (hit[i])
					lim[i] = 0;
		}
	}
	/* Selection order: items in order, each in inventory order. */
	for (j = 0; j < s->n; j++) {
		memset(hit, 0, u.n);
		if (match_item(&s->items[j], &u, s->systems, hit, &count,
		    e) != 0)
			goto out;
		for (i = 0; i < u.n; i++) {
			if (!hit[i] || sel[i] || (lim != NULL && !lim[i]))
				continue;
			sel[i] = 1;
			(*out)[n++] = u.t[i];
		}
	}
	if (n == 0 && limit != NULL) {
		/* Point at the selector that --limit emptied. */
		if (s->where != NULL)
			node_err(e, s->where, "--limit '%s' leaves none of the "
			    "%ss this selects", limit->limit, s->systems ?
			    "system" : "host");
		else
			err_set(e, "--limit '%s' leaves no %s to run on",
			    limit->limit, s->systems ? "system" : "host");
		goto out;
	}
	*nout = n;
	r = 0;
out:
	if (r != 0) {
		free(*out);
		*out = NULL;
	}
	free(hit);
	free(sel);
	free(lim);
	universe_free(&u);
	return r;
}

/* FNV-1a, 64 bits: stable across versions and machines, so shards are. */
uint64_t
selector_hash(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static const char *
target_name(const struct target *t)
{
	return t->host != NULL ? t->host->name : t->system->name;
}

/* --shard I/N keeps the targets whose name hashes to I - 1 modulo N. */
void
selector_shard(struct target *t, size_t *n, unsigned index, unsigned count)
{
	size_t	i, k = 0;

	for (i = 0; i < *n; i++)
		if (selector_hash(target_name(&t[i])) % count == index - 1)
			t[k++] = t[i];
	*n = k;
}
