/*
 * unit-select.c: selectors resolved against a real inventory directory:
 * groups, hosts, lists, all, ~regex, --limit, order, dedupe and errors.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inventory.h"
#include "select.h"
#include "tap.h"

static const char inventory_text[] =
	"groups:\n"
	"  web:\n"
	"    transport: local\n"
	"    hosts: [web-1, web-2, web-3]\n"
	"  db:\n"
	"    transport: local\n"
	"    hosts: [db-1, db-2]\n"
	"  mail:\n"
	"    transport: local\n"
	"    hosts: [mx]\n"
	"types:\n"
	"  demo:\n"
	"systems:\n"
	"  lab-1:\n"
	"    type: demo\n"
	"    hypervisor: { uri: \"test:///default\" }\n"
	"    machine: { cpu: 1 }\n"
	"  lab-2:\n"
	"    type: demo\n"
	"    hypervisor: { uri: \"test:///default\" }\n"
	"    machine: { cpu: 1 }\n";

static struct inventory	*inv;
static char		 dir[] = "/tmp/unit-select.XXXXXX";

static void
setup(void)
{
	struct err	 e;
	char		*path;
	FILE		*f;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	path = xasprintf("%s/10-all.yaml", dir);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(1);
	}
	fputs(inventory_text, f);
	fclose(f);
	if (inventory_load(dir, &inv, &e) != 0) {
		printf("Bail out! %s\n", e.msg);
		exit(1);
	}
	unlink(path);
	free(path);
	rmdir(dir);
}

/*
 * Resolves the YAML selector text (with an optional --limit) and writes
 * the names it selects, comma-separated, or "error: MSG".
 */
static char *
resolve(const char *yaml, int systems, const char *limit)
{
	struct doc	*d;
	struct selector	 s, lim;
	struct target	*t;
	struct err	 e;
	struct buf	 b;
	size_t		 n, i;
	int		 have_limit = 0;

	buf_init(&b);
	memset(&lim, 0, sizeof lim);
	if (doc_load_string("sel.yaml", yaml, strlen(yaml), &d, &e) != 0) {
		buf_printf(&b, "error: %s", e.msg);
		return buf_steal(&b);
	}
	if (selector_parse(node_get(d->root, "hosts"), systems, &s, &e) != 0) {
		buf_printf(&b, "error: %s", e.msg);
		goto out;
	}
	if (limit != NULL) {
		have_limit = 1;
		if (selector_parse_limit(limit, &lim, &e) != 0) {
			buf_printf(&b, "error: %s", e.msg);
			goto out;
		}
	}
	if (selector_resolve(&s, have_limit ? &lim : NULL, inv, &t, &n,
	    &e) != 0) {
		buf_printf(&b, "error: %s", e.msg);
		goto out;
	}
	for (i = 0; i < n; i++)
		buf_printf(&b, "%s%s", i ? "," : "", systems ?
		    t[i].system->name : t[i].host->name);
	free(t);
out:
	selector_free(&s);
	selector_free(&lim);
	doc_free(d);
	if (b.data == NULL)
		buf_adds(&b, "");
	return buf_steal(&b);
}

#define check(yaml, systems, limit, want, ...) do {			\
	char *got_ = resolve((yaml), (systems), (limit));		\
	is_str(got_, (want), __VA_ARGS__);				\
	free(got_);							\
} while (0)

int
main(void)
{
	setup();
	ok(inv->nhosts == 6 && inv->ngroups == 3 && inv->nsystems == 2,
	    "the inventory has 6 hosts in 3 groups and 2 systems");

	check("hosts: web", 0, NULL, "web-1,web-2,web-3", "a group");
	check("hosts: db-2", 0, NULL, "db-2", "a host");
	check("hosts: all", 0, NULL, "web-1,web-2,web-3,db-1,db-2,mx",
	    "all, in inventory order");
	check("hosts: [db, web-2]", 0, NULL, "db-1,db-2,web-2",
	    "a list: items in order, each in inventory order");
	check("hosts: [web-2, web, web-2]", 0, NULL, "web-2,web-1,web-3",
	    "a target selected twice appears once, where first selected");
	check("hosts: '~-[12]$'", 0, NULL, "web-1,web-2,db-1,db-2",
	    "~regex matches host names");
	check("hosts: '~^(mx|db-1)$'", 0, NULL, "db-1,mx",
	    "~regex with an alternation");
	check("hosts: [mx, '~^web']", 0, NULL, "mx,web-1,web-2,web-3",
	    "a list mixing a host and a ~regex");
	check("hosts: all", 1, NULL, "lab-1,lab-2", "all systems");
	check("hosts: demo", 1, NULL, "lab-1,lab-2", "systems by type");
	check("hosts: '~2$'", 1, NULL, "lab-2", "systems by ~regex");

	check("hosts: all", 0, "web", "web-1,web-2,web-3",
	    "--limit a group");
	check("hosts: web", 0, "web-3,web-1", "web-1,web-3",
	    "--limit narrows but keeps the selection's order");
	check("hosts: [db, web]", 0, "~-2$", "db-2,web-2",
	    "--limit ~regex");
	check("hosts: all", 0, ",mx,,", "mx",
	    "--limit ignores empty words");

	check("hosts: web-4", 0, NULL, "error: sel.yaml:1:8: no host or group "
	    "named 'web-4' in the inventory; did you mean 'web-1'?",
	    "an unknown host says what is near");
	check("hosts: [web, zzzzzzzzzz]", 0, NULL, "error: sel.yaml:1:14: no "
	    "host or group named 'zzzzzzzzzz' in the inventory",
	    "an unknown name far from all is named at its place in a list");
	check("hosts: '~^nope'", 0, NULL,
	    "error: sel.yaml:1:8: '~^nope' matches no host",
	    "a ~regex that matches nothing is an error");
	check("hosts: 'lab-3'", 1, NULL, "error: sel.yaml:1:8: no system or "
	    "type named 'lab-3' in the inventory; did you mean 'lab-1'?",
	    "an unknown system");
	check("hosts: '~web-(1'", 0, NULL, "error: sel.yaml:1:16: bad regex "
	    "'web-(1': missing closing parenthesis at offset 6",
	    "a bad ~regex: PCRE2's message at its column");
	check("hosts: []", 0, NULL, "error: sel.yaml:1:8: 'hosts' is an "
	    "empty list; name at least one host or group", "an empty list");
	check("hosts: [web, [db]]", 0, NULL, "error: sel.yaml:1:14: each of "
	    "'hosts' must be a name or \"~regex\", not a list",
	    "a list in a list");
	check("hosts: web", 0, "db", "error: sel.yaml:1:8: --limit 'db' "
	    "leaves none of the hosts this selects",
	    "--limit leaving nothing names the selector");
	check("hosts: web", 0, "web-9", "error: --limit: no host or group "
	    "named 'web-9' in the inventory; did you mean 'web-1'?",
	    "--limit naming nothing");
	check("hosts: web", 0, "~(", "error: --limit: bad regex '(': "
	    "missing closing parenthesis at offset 1",
	    "--limit with a bad regex");
	check("hosts: web", 0, ",,", "error: --limit: empty pattern",
	    "--limit with no words");

	check("hosts: all", 0, "web,!web-2", "web-1,web-3",
	    "--limit !name removes it");
	check("hosts: all", 0, "!web,!~^db", "mx",
	    "--limit of only ! items narrows from all");
	check("hosts: [db, web]", 0, "!db-1", "db-2,web-1,web-2,web-3",
	    "--limit ! keeps the selection's order");
	check("hosts: all", 0, "!,web", "error: --limit: '!' must be "
	    "followed by a name, group or ~regex", "--limit with a bare !");
	check("hosts: all", 0, "!web-9", "error: --limit: no host or group "
	    "named 'web-9' in the inventory; did you mean 'web-1'?",
	    "--limit !name naming nothing");
	check("hosts: all", 0, "@", "error: --limit: '@' must be followed "
	    "by a file name", "--limit with a bare @");

	/* FNV-1a 64 test vectors: shards must not move between versions. */
	ok(selector_hash("") == 0xcbf29ce484222325ULL &&
	    selector_hash("a") == 0xaf63dc4c8601ec8cULL &&
	    selector_hash("foobar") == 0x85944171f73967e8ULL,
	    "selector_hash is FNV-1a 64");

	inventory_free(inv);
	return tap_done();
}
