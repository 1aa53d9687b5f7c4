/*
 * rx.h: PCRE2 patterns compiled at load time, with errors that point at
 * the offending character of the YAML scalar that held the pattern.
 */
#ifndef REOPS_RX_H
#define REOPS_RX_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "node.h"

int	rx_compile(const struct node *, const char *, size_t, pcre2_code **,
	    struct err *);
int	rx_compile_arg(const char *, const char *, pcre2_code **,
	    struct err *);
/* Bounds on one match, far above what a sane pattern needs. */
#define RX_MATCH_LIMIT	1000000
#define RX_DEPTH_LIMIT	100000

int	rx_match(const pcre2_code *, const char *, size_t, char *, size_t);

#endif
