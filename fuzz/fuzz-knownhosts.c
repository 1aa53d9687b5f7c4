/*
 * fuzz-knownhosts.c: libFuzzer harness for the known_hosts reader: each
 * input is a known_hosts file read from memory line by line, as the ssh
 * transport reads each file (libssh2's line parser, @revoked lines).
 */
/* fuzz-sources: @librunner */
#include <stdint.h>

#include "util.h"
#include "knownhosts.h"

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
	known_hosts_free(known_hosts_load_buffer("fuzz_known_hosts",
	    (const char *)data, size));
	return 0;
}
