/*
 * node.c: libyaml's event parser turned into a tree of nodes with
 * positions. All nodes and strings of a document live in one arena freed
 * with the document, so aliases may share nodes freely.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "node.h"

#define ARENA_CHUNK	(64 * 1024)

struct arena_chunk {
	struct arena_chunk	*next;
	size_t			 used;
	size_t			 size;
	max_align_t		 data[];
};

struct open_node {
	struct node	 *node;
	struct node	**kids;
	size_t		  n;
	size_t		  cap;
};

void *
doc_alloc(struct doc *d, size_t size)
{
	struct arena_chunk	*c = d->chunks;
	size_t			 align = sizeof(max_align_t), want;
	void			*p;

	size = (size + align - 1) & ~(align - 1);
	if (c == NULL || c->size - c->used < size) {
		want = size > ARENA_CHUNK ? size : ARENA_CHUNK;
		c = xmalloc(sizeof *c + want);
		c->used = 0;
		c->size = want;
		c->next = d->chunks;
		d->chunks = c;
	}
	p = (char *)c->data + c->used;
	c->used += size;
	return p;
}

char *
doc_strdup(struct doc *d, const char *s, size_t len)
{
	char	*p;

	p = doc_alloc(d, len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void
doc_free(struct doc *d)
{
	struct arena_chunk	*c, *next;

	if (d == NULL)
		return;
	for (c = d->chunks; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(d->file);
	free(d);
}

static struct node *
node_new(struct doc *d, enum node_type type, const yaml_mark_t *mark)
{
	struct node	*n;

	n = doc_alloc(d, sizeof *n);
	memset(n, 0, sizeof *n);
	n->type = type;
	n->file = d->file;
	n->line = (int)mark->line + 1;
	n->col = (int)mark->column + 1;
	n->span = -1;
	return n;
}

static int
check_duplicate_keys(struct node *m, struct err *e)
{
	struct hmap	 seen;
	struct node	*k, *prev;
	size_t		 i, j;
	int		 r = 0;

	for (i = 0; i < map_nkeys(m); i++) {
		if (map_key(m, i)->type != NODE_SCALAR)
			return node_err(e, map_key(m, i),
			    "mapping keys must be scalars, not a %s",
			    node_type_name(map_key(m, i)));
	}
	if (map_nkeys(m) <= 8) {
		for (i = 0; i < map_nkeys(m); i++)
			for (j = 0; j < i; j++)
				if (strcmp(map_key(m, i)->str,
				    map_key(m, j)->str) == 0)
					return node_err(e, map_key(m, i),
					    "duplicate key '%s' (first at "
					    "line %d)", map_key(m, i)->str,
					    map_key(m, j)->line);
		return 0;
	}
	hmap_init(&seen);
	for (i = 0; i < map_nkeys(m); i++) {
		k = map_key(m, i);
		if ((prev = hmap_put(&seen, k->str, k)) != NULL) {
			r = node_err(e, k, "duplicate key '%s' (first at line "
			    "%d)", k->str, prev->line);
			break;
		}
	}
	hmap_free(&seen);
	return r;
}

/* The byte at a libyaml mark (line and column count characters). */
static const char *
mark_byte(const char *text, size_t len, const yaml_mark_t *m)
{
	const char	*s = text, *end = text + len;
	size_t		 line = 0, col = 0;

	if (text == NULL)
		return NULL;
	while (s < end && line < m->line)
		if (*s++ == '\n')
			line++;
	while (s < end && col < m->column && *s != '\n') {
		/* Skip a whole UTF-8 sequence per column. */
		s++;
		while (s < end && (*s & 0xc0) == 0x80)
			s++;
		col++;
	}
	return s < end ? s : NULL;
}

/* Line and column (in characters, as libyaml counts) of a byte offset. */
static void
offset_place(const char *text, size_t len, size_t off, int *line, int *col)
{
	size_t	i;

	*line = 1;
	*col = 1;
	if (text == NULL)
		return;
	for (i = 0; i < off && i < len; i++) {
		if (text[i] == '\n' || (text[i] == '\r' &&
		    (i + 1 >= len || text[i + 1] != '\n'))) {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80)
			(*col)++;
	}
}

/*
 * libyaml's problem, at its place, with where the construct it was in
 * began when that is elsewhere: an unclosed quote or bracket is found at
 * the end of the file, but the user wants to see where it opened.
 */
static int
yaml_error(struct doc *d, yaml_parser_t *p, const char *text, size_t len,
    struct err *e)
{
	const yaml_mark_t	*pm = &p->problem_mark, *cm = &p->context_mark;
	const char		*c;
	char			 where[64] = "";
	int			 line, col;

	if (p->error == YAML_READER_ERROR) {
		/* The reader counts bytes, not lines and columns. */
		offset_place(text, len, p->problem_offset, &line, &col);
		if (p->problem_value != -1)
			return err_at(e, d->file, line, col, "%s (byte 0x%02x)",
			    p->problem != NULL ? p->problem : "invalid text",
			    (unsigned)p->problem_value & 0xff);
		return err_at(e, d->file, line, col, "%s",
		    p->problem != NULL ? p->problem : "invalid text");
	}
	c = mark_byte(text, len, pm);
	if (p->error == YAML_SCANNER_ERROR && c != NULL && *c == '\t')
		return err_at(e, d->file, (int)pm->line + 1,
		    (int)pm->column + 1, "found a tab character where YAML "
		    "allows only spaces (indent with spaces)");
	if (p->context != NULL &&
	    (cm->line != pm->line || cm->column != pm->column))
		snprintf(where, sizeof where, " that starts at line %d, "
		    "column %d", (int)cm->line + 1, (int)cm->column + 1);
	return err_at(e, d->file, (int)pm->line + 1, (int)pm->column + 1,
	    "%s%s%s%s", p->problem != NULL ? p->problem : "invalid YAML",
	    p->context != NULL ? " " : "",
	    p->context != NULL ? p->context : "", where);
}

/* A container is done: how much it holds, aliases counted again. */
static void
close_node(struct node *n)
{
	size_t	i;

	n->flags &= ~NODE_OPEN;
	n->reach = 1;
	n->height = 1;
	for (i = 0; i < n->nkids; i++) {
		n->reach += n->kids[i]->reach;
		if (n->kids[i]->height + 1 > n->height)
			n->height = n->kids[i]->height + 1;
	}
}

/*
 * An alias shares its node, but whoever walks the tree walks it again:
 * what aliases repeat is bounded ("billion laughs"), and so is the depth
 * it reaches at the alias. An alias inside its own anchor is a cycle.
 */
static int
check_alias(struct doc *d, const struct node *n, const yaml_event_t *ev,
    size_t depth, size_t *aliased, struct err *e)
{
	const char	*name = (const char *)ev->data.alias.anchor;
	int		 line = (int)ev->start_mark.line + 1;
	int		 col = (int)ev->start_mark.column + 1;

	if (n == NULL)
		return err_at(e, d->file, line, col, "unknown alias '*%s'",
		    name);
	if (n->flags & NODE_OPEN)
		return err_at(e, d->file, line, col, "alias '*%s' is inside "
		    "the node it names (at line %d)", name, n->line);
	if (depth + (size_t)n->height > DOC_MAX_DEPTH)
		return err_at(e, d->file, line, col, "alias '*%s' nests more "
		    "than %d levels deep", name, DOC_MAX_DEPTH);
	*aliased += n->reach;
	if (*aliased > DOC_MAX_ALIASED)
		return err_at(e, d->file, line, col, "aliases repeat more than "
		    "%d nodes; '*%s' is one too many", DOC_MAX_ALIASED, name);
	return 0;
}

static int
parse_events(struct doc *d, yaml_parser_t *p, const char *text, size_t len,
    struct err *e)
{
	yaml_event_t	 ev;
	struct open_node *stack = NULL;
	size_t		 depth = 0, cap = 0, aliased = 0;
	struct hmap	 anchors;
	struct node	*n, *parent_node;
	struct open_node *top;
	int		 done = 0, r = -1, ndocs = 0;
	const char	*anchor;

	hmap_init(&anchors);
	while (!done) {
		if (!yaml_parser_parse(p, &ev)) {
			yaml_error(d, p, text, len, e);
			goto out;
		}
		n = NULL;
		anchor = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++ndocs > 1) {
				err_at(e, d->file, (int)ev.start_mark.line + 1,
				    (int)ev.start_mark.column + 1,
				    "a file holds one YAML document, not "
				    "several");
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		case YAML_SCALAR_EVENT:
			n = node_new(d, NODE_SCALAR, &ev.start_mark);
			n->str = doc_strdup(d, (char *)ev.data.scalar.value,
			    ev.data.scalar.length);
			n->len = ev.data.scalar.length;
			n->plain = ev.data.scalar.style ==
			    YAML_PLAIN_SCALAR_STYLE;
			n->reach = 1;
			if (ev.end_mark.line == ev.start_mark.line)
				n->span = (int)(ev.end_mark.column -
				    ev.start_mark.column);
			anchor = (const char *)ev.data.scalar.anchor;
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			/* Stop here, before libyaml spends long on the rest. */
			if (depth >= DOC_MAX_DEPTH) {
				err_at(e, d->file, (int)ev.start_mark.line + 1,
				    (int)ev.start_mark.column + 1, "nested "
				    "more than %d levels deep", DOC_MAX_DEPTH);
				yaml_event_delete(&ev);
				goto out;
			}
			n = node_new(d, ev.type == YAML_SEQUENCE_START_EVENT ?
			    NODE_SEQ : NODE_MAP, &ev.start_mark);
			anchor = ev.type == YAML_SEQUENCE_START_EVENT ?
			    (const char *)ev.data.sequence_start.anchor :
			    (const char *)ev.data.mapping_start.anchor;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			top = &stack[--depth];
			top->node->kids = doc_alloc(d,
			    top->n * sizeof *top->kids);
			if (top->n != 0)
				memcpy(top->node->kids, top->kids,
				    top->n * sizeof *top->kids);
			top->node->nkids = top->n;
			free(top->kids);
			close_node(top->node);
			if (top->node->type == NODE_MAP &&
			    check_duplicate_keys(top->node, e) != 0) {
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		case YAML_ALIAS_EVENT:
			n = hmap_get(&anchors,
			    (const char *)ev.data.alias.anchor);
			if (check_alias(d, n, &ev, depth, &aliased, e) != 0) {
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		default:
			break;
		}
		if (anchor != NULL) {
			anchor = doc_strdup(d, anchor, strlen(anchor));
			/* A later anchor of the same name replaces the first. */
			hmap_set(&anchors, anchor, n);
		}
		if (n != NULL) {
			if (depth == 0)
				d->root = n;
			else {
				top = &stack[depth - 1];
				if (top->n == top->cap) {
					top->cap = top->cap == 0 ? 8 :
					    top->cap * 2;
					top->kids = xreallocarray(top->kids,
					    top->cap, sizeof *top->kids);
				}
				top->kids[top->n++] = n;
			}
			if (ev.type == YAML_SEQUENCE_START_EVENT ||
			    ev.type == YAML_MAPPING_START_EVENT) {
				if (depth == cap) {
					cap = cap == 0 ? 16 : cap * 2;
					stack = xreallocarray(stack, cap,
					    sizeof *stack);
				}
				parent_node = n;
				parent_node->flags |= NODE_OPEN;
				stack[depth].node = parent_node;
				stack[depth].kids = NULL;
				stack[depth].n = 0;
				stack[depth].cap = 0;
				depth++;
			}
		}
		yaml_event_delete(&ev);
	}
	r = 0;
out:
	while (depth > 0)
		free(stack[--depth].kids);
	free(stack);
	hmap_free(&anchors);
	return r;
}

static struct doc *
doc_new(const char *file)
{
	struct doc	*d;

	d = xcalloc(1, sizeof *d);
	d->file = xstrdup(file);
	return d;
}

/*
 * The whole file is read first so that errors can look at its bytes. Only
 * a regular file of at most DOC_MAX_BYTES: not a FIFO (which would hang),
 * a device (/dev/zero never ends) or a directory.
 */
int
doc_load(const char *path, struct doc **out, struct err *e)
{
	struct buf	 text;
	int		 r = -1;

	*out = NULL;
	buf_init(&text);
	if (read_regular_file(path, DOC_MAX_BYTES, &text, e) == 0)
		r = doc_load_string(path, text.data != NULL ? text.data : "",
		    text.len, out, e);
	buf_free(&text);
	return r;
}

int
doc_load_string(const char *name, const char *text, size_t len,
    struct doc **out, struct err *e)
{
	yaml_parser_t	 p;
	struct doc	*d;
	int		 r;

	*out = NULL;
	d = doc_new(name);
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	r = parse_events(d, &p, text, len, e);
	yaml_parser_delete(&p);
	if (r != 0) {
		doc_free(d);
		return -1;
	}
	*out = d;
	return 0;
}

const char *
node_type_name(const struct node *n)
{
	if (n->type == NODE_SEQ)
		return "list";
	if (n->type == NODE_MAP)
		return "mapping";
	return "scalar";
}

struct node *
node_get(const struct node *m, const char *key)
{
	size_t	i;

	if (m == NULL || m->type != NODE_MAP)
		return NULL;
	for (i = 0; i < map_nkeys(m); i++)
		if (strcmp(map_key(m, i)->str, key) == 0)
			return map_val(m, i);
	return NULL;
}

int
node_is_null(const struct node *n)
{
	if (n == NULL)
		return 1;
	if (n->type != NODE_SCALAR || !n->plain)
		return 0;
	return n->len == 0 || strcmp(n->str, "~") == 0 ||
	    strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0 ||
	    strcmp(n->str, "NULL") == 0;
}

int
node_as_bool(const struct node *n, int *v)
{
	if (n->type != NODE_SCALAR || !n->plain)
		return -1;
	if (strcmp(n->str, "true") == 0 || strcmp(n->str, "True") == 0 ||
	    strcmp(n->str, "TRUE") == 0) {
		*v = 1;
		return 0;
	}
	if (strcmp(n->str, "false") == 0 || strcmp(n->str, "False") == 0 ||
	    strcmp(n->str, "FALSE") == 0) {
		*v = 0;
		return 0;
	}
	return -1;
}

int
node_as_int(const struct node *n, long long *v)
{
	char	*end;

	if (n->type != NODE_SCALAR || n->len == 0)
		return -1;
	errno = 0;
	*v = strtoll(n->str, &end, 10);
	if (errno != 0 || *end != '\0' || n->str[0] == ' ')
		return -1;
	return 0;
}

int
node_err(struct err *e, const struct node *n, const char *fmt, ...)
{
	char	msg[900];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return err_at(e, n->file, n->line, n->col, "%s", msg);
}

static size_t
utf8_chars(const char *s, size_t len)
{
	size_t	i, n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

/*
 * The column of byte off of a scalar's value, for errors inside it (a
 * regex, a ${param}). Exact only when the source text is the value itself
 * on one line, plus quotes: no escapes, no '' and no folding; otherwise
 * the scalar's own column.
 */
int
node_col_at(const struct node *n, size_t off)
{
	size_t	quotes = n->plain ? 0 : 2;

	if (n->type != NODE_SCALAR || n->span < 0 || off > n->len ||
	    (size_t)n->span != utf8_chars(n->str, n->len) + quotes)
		return n->col;
	return n->col + (int)(quotes / 2) + (int)utf8_chars(n->str, off);
}

/*
 * Every key of map must be one of allowed (NULL-terminated); what names
 * the mapping in the message, e.g. "stage 'ls'" or "group 'web'".
 */
int
node_check_keys(const struct node *map, const char *const *allowed,
    const char *what, struct err *e)
{
	struct buf	 list;
	const char	*near;
	size_t		 i, j, n;
	int		 r;

	for (n = 0; allowed[n] != NULL; n++)
		;
	for (i = 0; i < map_nkeys(map); i++) {
		for (j = 0; j < n; j++)
			if (strcmp(map_key(map, i)->str, allowed[j]) == 0)
				break;
		if (j < n)
			continue;
		near = closest_name(map_key(map, i)->str, allowed, n);
		if (near != NULL)
			return node_err(e, map_key(map, i),
			    "unknown key '%s' in %s; did you mean '%s'?",
			    map_key(map, i)->str, what, near);
		if (n == 0)
			return node_err(e, map_key(map, i),
			    "unknown key '%s' in %s; it takes no keys",
			    map_key(map, i)->str, what);
		buf_init(&list);
		for (j = 0; j < n; j++)
			buf_printf(&list, "%s%s", j ? ", " : "", allowed[j]);
		r = node_err(e, map_key(map, i),
		    "unknown key '%s' in %s; expected one of: %s",
		    map_key(map, i)->str, what, list.data);
		buf_free(&list);
		return r;
	}
	return 0;
}

/* what is the subject of the message, e.g. "'hosts' of group 'web'". */
int
node_want(const struct node *n, enum node_type type, const char *what,
    struct err *e)
{
	static const char *const names[] = { "a scalar", "a list",
	    "a mapping" };

	if (n->type == type)
		return 0;
	return node_err(e, n, "%s must be %s, not %s", what, names[type],
	    n->type == NODE_SCALAR ? "a scalar" : n->type == NODE_SEQ ?
	    "a list" : "a mapping");
}
