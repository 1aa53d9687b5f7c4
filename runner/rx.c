/*
 * rx.c: compiling and matching PCRE2 patterns for selectors and pick.
 */
#include <stdio.h>
#include <string.h>

#include "rx.h"

/*
 * Compiles pattern, which starts skip bytes into the scalar at n (after
 * the '~' of a selector, say); a bad pattern is reported at the column of
 * the error inside the scalar when the scalar sits on one line.
 */
int
rx_compile(const struct node *n, const char *pattern, size_t skip,
    pcre2_code **out, struct err *e)
{
	PCRE2_UCHAR	msg[256];
	PCRE2_SIZE	off;
	int		code, col;

	*out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
	    PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
	if (*out != NULL)
		return 0;
	pcre2_get_error_message(code, msg, sizeof msg);
	col = node_col_at(n, skip + (size_t)off);
	return err_at(e, n->file, n->line, col, "bad regex '%s': %s at offset "
	    "%zu", pattern, (const char *)msg, (size_t)off);
}

/* The same for a pattern from the command line; what names the option. */
int
rx_compile_arg(const char *what, const char *pattern, pcre2_code **out,
    struct err *e)
{
	PCRE2_UCHAR	msg[256];
	PCRE2_SIZE	off;
	int		code;

	*out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
	    PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
	if (*out != NULL)
		return 0;
	pcre2_get_error_message(code, msg, sizeof msg);
	return err_set(e, "%s: bad regex '%s': %s at offset %zu", what,
	    pattern, (const char *)msg, (size_t)off);
}

/*
 * 1 on a match, 0 on none; invalid UTF-8 in s is matched around. A
 * pattern that backtracks without end (nested quantifiers) stops at
 * RX_MATCH_LIMIT steps or RX_DEPTH_LIMIT nested backtracking points and
 * is -1, with PCRE2's reason ("match limit exceeded") in why: never a
 * silent "no match".
 */
int
rx_match(const pcre2_code *re, const char *s, size_t len, char *why,
    size_t whylen)
{
	pcre2_match_context	*mc;
	pcre2_match_data	*md;
	int			 r;

	mc = pcre2_match_context_create(NULL);
	md = pcre2_match_data_create_from_pattern(re, NULL);
	if (mc == NULL || md == NULL)
		r = PCRE2_ERROR_NOMEMORY;
	else {
		pcre2_set_match_limit(mc, RX_MATCH_LIMIT);
		pcre2_set_depth_limit(mc, RX_DEPTH_LIMIT);
		r = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, mc);
	}
	pcre2_match_data_free(md);
	pcre2_match_context_free(mc);
	if (r >= 0)
		return 1;
	if (r == PCRE2_ERROR_NOMATCH)
		return 0;
	if (why != NULL && whylen > 0 &&
	    pcre2_get_error_message(r, (PCRE2_UCHAR *)why, whylen) < 0)
		snprintf(why, whylen, "PCRE2 error %d", r);
	return -1;
}
