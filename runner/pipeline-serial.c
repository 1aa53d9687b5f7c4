/*
 * pipeline-serial.c: serial and max-fail, read at load, and the batches
 * and failure limit they give for a number of rows.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "pipeline-int.h"

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
int
pipeline_load_serial(struct pipeline *p, struct node *root, struct err *e)
{
	struct node	*serial, *maxfail;
	size_t		 i;

	serial = node_get(root, "serial");
	maxfail = node_get(root, "max-fail");
	if (serial == NULL) {
		if (maxfail != NULL)
			return node_err(e, pipeline_second_key(root, "max-fail",
			    "max-fail"), "'max-fail' needs 'serial': without "
			    "batches every row runs at once");
		return 0;
	}
	if (pipeline_expand_tree(p, serial, e) != 0 ||
	    (maxfail != NULL && pipeline_expand_tree(p, maxfail, e) != 0))
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
