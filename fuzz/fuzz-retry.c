/*
 * fuzz-retry.c: libFuzzer harness for the --retry table reader: any bytes
 * are a table (then a second parse of the same bytes agrees) or one
 * located error; nothing may read out of bounds, recurse or leak.
 */
/* fuzz-sources: runner/retry.c runner/util.c runner/secret.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "retry.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_level = -10;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct retry	*r, *again;
	struct err	 e;
	int		 ok;

	memset(&e, 0, sizeof e);
	ok = retry_parse("fuzz.json", (const char *)data, size, &r, &e) == 0;
	if (!ok) {
		/* An error is one located line. */
		if (r != NULL || !e.located || strncmp(e.msg, "fuzz.json:",
		    10) != 0 || strchr(e.msg, '\n') != NULL)
			abort();
		return 0;
	}
	if (retry_parse("fuzz.json", (const char *)data, size, &again,
	    &e) != 0 || retry_rows(again) != retry_rows(r))
		abort();
	retry_free(again);
	retry_free(r);
	return 0;
}
