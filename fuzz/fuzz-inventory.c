/*
 * fuzz-inventory.c: libFuzzer harness for the inventory loader. Each input
 * is one hosts.d file, loaded from memory; when it loads, every host and
 * every system is selected and a --limit with a regex resolved against
 * it, as reops-run does before a run.
 */
/* fuzz-sources: @librunner */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"
#include "select.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_level = -10;
	return 0;
}

static void
resolve(const struct inventory *inv, int systems)
{
	struct selector	 sel, lim;
	struct target	*t;
	struct err	 e;
	struct node	 all;
	size_t		 n;

	memset(&all, 0, sizeof all);
	all.type = NODE_SCALAR;
	all.str = "all";
	all.len = 3;
	all.plain = 1;
	all.file = "fuzz";
	all.line = all.col = 1;
	all.span = -1;
	if (selector_parse(&all, systems, &sel, &e) != 0)
		abort();
	if (selector_parse_limit("~[0-9],web", &lim, &e) != 0)
		abort();
	if (selector_resolve(&sel, NULL, inv, &t, &n, &e) == 0)
		free(t);
	if (selector_resolve(&sel, &lim, inv, &t, &n, &e) == 0)
		free(t);
	selector_free(&sel);
	selector_free(&lim);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inventory	*inv;
	struct err		 e;

	if (inventory_load_string("fuzz.yaml", (const char *)data, size, &inv,
	    &e) != 0)
		return 0;
	resolve(inv, 0);
	resolve(inv, 1);
	inventory_free(inv);
	return 0;
}
