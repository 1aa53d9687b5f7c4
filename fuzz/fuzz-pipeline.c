/*
 * fuzz-pipeline.c: libFuzzer harness for the pipeline loader. Each input
 * is written to p.yaml in a private scratch directory and loaded as
 * `reops-run --check` would load it (includes resolve beside it; inc.yaml
 * is there to be included). Nothing runs: loading must not crash, leak,
 * hang or overflow whatever the bytes.
 */
/* fuzz-sources: @librunner */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "stage.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	*path;

static void
put(const char *name, const void *data, size_t len)
{
	int	fd;

	if ((fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1 || write(fd, data, len) != (ssize_t)len ||
	    close(fd) != 0) {
		perror(name);
		abort();
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char inc[] = "params: { flags: -a }\n"
	    "stages:\n  - exec: uname ${flags:q}\n";
	const char	*tmp;
	char		*dir, *name;

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	dir = xasprintf("%s/fuzz-pipeline.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		abort();
	}
	name = xasprintf("%s/inc.yaml", dir);
	put(name, inc, sizeof inc - 1);
	free(name);
	path = xasprintf("%s/p.yaml", dir);
	free(dir);
	log_level = -10;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct overrides	 ov;
	struct pipeline		*p;
	struct err		 e;
	struct buf		 b;
	char			*keys[] = { "what" }, *values[] = { "-s; x" };
	unsigned char		 used[1] = { 0 };
	size_t			 i;

	put(path, data, size);
	memset(&ov, 0, sizeof ov);
	ov.keys = keys;
	ov.values = values;
	ov.used = used;
	ov.n = 1;
	if (pipeline_load(path, &ov, &p, &e) != 0)
		return 0;
	buf_init(&b);
	for (i = 0; i < p->nstages; i++)
		stage_describe(&b, &p->stages[i]);
	(void)pipeline_destructive(p);
	buf_free(&b);
	pipeline_free(p);
	return 0;
}
