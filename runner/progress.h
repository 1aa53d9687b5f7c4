/*
 * progress.h: watching a run. On a terminal, one live line on stderr for
 * the running stage; with -v, one line per row as it finishes.
 */
#ifndef REOPS_PROGRESS_H
#define REOPS_PROGRESS_H

#include <stddef.h>

struct progress;
struct row;

/* live: draw the line (stderr is a terminal); verbose: a line per row. */
struct progress	*progress_new(int, int);
void		 progress_free(struct progress *);
int		 progress_verbose(const struct progress *);
void		 progress_stage_begin(struct progress *, const char *);
void		 progress_stage_end(struct progress *);
void		 progress_add(struct progress *, size_t);
void		 progress_row(struct progress *, const struct row *);

#endif
