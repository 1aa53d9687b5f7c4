/*
 * fuzz-knownagents.c: libFuzzer harness for the known-agents reader: each
 * input is a known-agents file's text, looked up for a host and port
 * taken from its own first bytes (so that found lines are reached too),
 * then for the default port on loopback, as the agent transport looks
 * up each host. enroll writes these files from what a host answered.
 */
/* fuzz-sources: @librunner */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "knownagents.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_level = -10;
	return 0;
}

static void
lookup(const uint8_t *data, size_t size, const char *host, int port)
{
	char		 key[KNOWN_AGENTS_KEY_LEN + 1], *text;
	struct err	 e;
	int		 line, r;

	if ((text = malloc(size + 1)) == NULL)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	r = known_agents_lookup_text("fuzz_known_agents", text, host, port,
	    key, &line, &e);
	if (r == 1 && (strlen(key) != KNOWN_AGENTS_KEY_LEN ||
	    !z85_key_valid(key, strlen(key)) || line < 1))
		abort();	/* a found key is always a whole Z85 key */
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	host[64];
	size_t	n;

	/* The first line's first word, up to a ':' or a blank, is a host. */
	for (n = 0; n < size && n < sizeof(host) - 1; n++) {
		if (data[n] == ':' || data[n] == ' ' || data[n] == '\t' ||
		    data[n] == '\n' || data[n] == '\0')
			break;
		host[n] = (char)data[n];
	}
	host[n] = '\0';
	if (host[0] == '[' && n > 1)
		memmove(host, host + 1, n);
	lookup(data, size, host, 7707);
	lookup(data, size, host, 4242);
	lookup(data, size, "127.0.0.1", 7707);
	return 0;
}
