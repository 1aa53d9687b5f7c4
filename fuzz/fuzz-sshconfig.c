/*
 * fuzz-sshconfig.c: libFuzzer harness for the ssh_config reader. Each
 * input is an ssh_config parsed from memory, then looked up for a few
 * host names as the ssh transport does. HOME is a private scratch
 * directory, so a relative Include looks in an empty ~/.ssh.
 */
/* fuzz-sources: @librunner */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"
#include "ssh.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char	*tmp;
	char		*dir;

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	dir = xasprintf("%s/fuzz-sshconfig.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		abort();
	}
	setenv("HOME", dir, 1);
	free(dir);
	log_level = -10;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hosts[] = { "web-1", "10.0.0.5",
	    "db.example.com", "" };
	struct ssh_config	*c;
	struct ssh_host_config	 hc;
	struct err		 e;
	size_t			 i;

	if (ssh_config_load_buffer("fuzz_config", (const char *)data, size,
	    &c, &e) != 0)
		return 0;
	for (i = 0; i < nitems(hosts); i++) {
		ssh_config_lookup(c, hosts[i], &hc);
		ssh_host_config_free(&hc);
	}
	ssh_config_free(c);
	return 0;
}
