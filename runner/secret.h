/*
 * secret.h: the values of secret parameters. Each value registered here
 * is masked as *** wherever reops-run writes something (rows' captured
 * output, log lines, error messages, the --check plan), and reaches a
 * command on its standard input, never in the command's text.
 */
#ifndef REOPS_SECRET_H
#define REOPS_SECRET_H

#include "util.h"

struct pipeline;
struct row;

#define SECRET_MASK		"***"
/* The shell variable that holds secret NAME in a command. */
#define SECRET_VAR_PREFIX	"REOPS_SECRET_"
/*
 * Put before a command that uses a secret: sets the variables from the
 * shell assignments on stdin. $(...) drops trailing newlines only after
 * the last closing quote, so every value arrives whole.
 */
#define SECRET_PREAMBLE		"eval \"$(cat)\"; "
/* The most --set-file reads. */
#define SECRET_FILE_MAX		(64 * 1024)

void	secret_register(const char *);
void	secret_clear(void);
void	secret_mask_buf(struct buf *);
void	secret_mask_row(struct row *);
void	secret_var(struct buf *, const char *);
void	secret_ref(struct buf *, const char *);
int	secret_input(const struct pipeline *, const char *, struct buf *);
int	secret_read_file(const char *, char **, struct err *);

#endif
