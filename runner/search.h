/*
 * search.h: where "pipeline: NAME" finds NAME: next to the including
 * file, then in each directory of REOPS_PATH, then in the library of
 * shipped pipelines (the installed one, or the build tree's own).
 */
#ifndef REOPS_SEARCH_H
#define REOPS_SEARCH_H

#include <stdio.h>

#include "util.h"

char		*pipeline_find(const char *, const char *, struct buf *);
const char	*pipeline_library(void);
void		 pipeline_search_print(FILE *);

#endif
